//! A linear layer that is a frozen base, a trainable base, or a frozen base plus a LoRA
//! adapter (Hu et al. 2021, as PEFT implements it): y = x W^T + b + s * (drop(x) A^T) B^T with
//! s = alpha / r, A kaiming-uniform (a = sqrt(5)), B zero, dropout on the input of A only.
//! For inference the adapter is merged: W' = W + s * B A, one matmul instead of three.

use super::layers::Dropout;
use candle_core::{Result, Tensor};

/// The adapter of one linear layer.
#[derive(Clone, Debug)]
pub struct LoraAdapter {
    /// [r, in_features]
    pub a: Tensor,
    /// [out_features, r]
    pub b: Tensor,
    /// alpha / r
    pub scale: f64,
    pub dropout: Dropout,
}

#[derive(Clone, Debug)]
pub struct Linear {
    /// [out_features, in_features], as PyTorch stores it.
    weight: Tensor,
    bias: Option<Tensor>,
    lora: Option<LoraAdapter>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>, lora: Option<LoraAdapter>) -> Linear {
        Linear { weight, bias, lora }
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Trainable tensors are f32 master copies (see `precision`): each is cast to the input's
    /// dtype here, as autocast does (a no-op for tensors already in it, e.g. all of them in f32).
    pub fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let dtype = xs.dtype();
        let y = matmul_t(xs, &self.weight.to_dtype(dtype)?)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(&b.to_dtype(dtype)?)?,
            None => y,
        };
        match &self.lora {
            None => Ok(y),
            Some(l) => {
                let x = l.dropout.forward(xs, train)?;
                let delta = matmul_t(&matmul_t(&x, &l.a.to_dtype(dtype)?)?, &l.b.to_dtype(dtype)?)?;
                y + (delta * l.scale)?
            }
        }
    }
}

/// W + s * B A: the weight a LoRA-adapted layer computes with, so that inference needs no
/// adapter at all.
pub fn merged_weight(weight: &Tensor, a: &Tensor, b: &Tensor, scale: f64) -> Result<Tensor> {
    let delta = (b.matmul(a)? * scale)?.to_dtype(weight.dtype())?;
    weight + delta
}

/// x W^T for x of any rank >= 2 (folds leading dims into one matmul, as candle_nn does,
/// because a broadcast batched matmul is much slower on CPU).
pub fn matmul_t(xs: &Tensor, w: &Tensor) -> Result<Tensor> {
    let dims = xs.dims();
    let k = *dims.last().expect("rank >= 1");
    let lead: usize = dims[..dims.len() - 1].iter().product();
    let mut out_shape = dims[..dims.len() - 1].to_vec();
    out_shape.push(w.dim(0)?);
    let x2 = if dims.len() == 2 {
        xs.clone()
    } else {
        xs.contiguous()?.reshape((lead, k))?
    };
    let y = if !w.track_op() && xs.track_op() {
        // A frozen weight under a gradient-carrying input: candle's matmul backward would also
        // compute (and keep) the gradient of the constant weight, a full extra matmul per
        // layer that PyTorch skips for requires_grad=False; this op only returns dL/dx. A
        // trainable weight cast to f16 / bf16 is no variable but tracks its op: it takes the
        // ordinary matmul, so its gradient reaches the f32 master copy.
        x2.apply_op1(FrozenMatmulT { weight: w.clone() })?
    } else {
        x2.matmul(&w.t()?)?
    };
    if dims.len() == 2 {
        Ok(y)
    } else {
        y.reshape(out_shape)
    }
}

/// x [m, k] -> x W^T [m, n] for a constant W [n, k], whose backward yields dL/dx = g W only.
struct FrozenMatmulT {
    weight: Tensor,
}

impl FrozenMatmulT {
    fn bmnk(&self, layout: &candle_core::Layout) -> Result<(usize, usize, usize, usize)> {
        let (m, k) = layout.shape().dims2()?;
        let (n, kw) = self.weight.dims2()?;
        if k != kw {
            candle_core::bail!("frozen matmul: input has {k} features, weight expects {kw}");
        }
        Ok((1, m, n, k))
    }
}

impl candle_core::CustomOp1 for FrozenMatmulT {
    fn name(&self) -> &'static str {
        "frozen-matmul-t"
    }

    fn cpu_fwd(
        &self,
        s: &candle_core::CpuStorage,
        l: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use candle_core::backend::BackendStorage;
        let bmnk = self.bmnk(l)?;
        let (ws, wl) = self.weight.storage_and_layout();
        let candle_core::Storage::Cpu(ws) = &*ws else {
            candle_core::bail!("frozen matmul: weight not on the CPU")
        };
        Ok((s.matmul(ws, bmnk, l, &wl.transpose(0, 1)?)?, (bmnk.1, bmnk.2).into()))
    }

    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &candle_core::Layout,
    ) -> Result<(candle_core::CudaStorage, candle_core::Shape)> {
        use candle_core::backend::BackendStorage;
        let bmnk = self.bmnk(l)?;
        let (ws, wl) = self.weight.storage_and_layout();
        let candle_core::Storage::Cuda(ws) = &*ws else {
            candle_core::bail!("frozen matmul: weight not on the GPU")
        };
        Ok((s.matmul(ws, bmnk, l, &wl.transpose(0, 1)?)?, (bmnk.1, bmnk.2).into()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad_res.matmul(&self.weight)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::layers::testing::max_abs;
    use candle_core::{DType, Device};
    use rand::SeedableRng;
    use std::sync::{Arc, Mutex};

    #[test]
    fn merged_layer_computes_what_the_adapter_does() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (6, 4), &dev).unwrap();
        let bias = Tensor::randn(0f32, 1.0, (6,), &dev).unwrap();
        let a = Tensor::randn(0f32, 1.0, (2, 4), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, (6, 2), &dev).unwrap();
        let rng = Arc::new(Mutex::new(rand_chacha::ChaCha8Rng::seed_from_u64(0)));
        let lora = LoraAdapter {
            a: a.clone(),
            b: b.clone(),
            scale: 2.0,
            dropout: Dropout::new(0.1, rng),
        };
        let adapted = Linear::new(w.clone(), Some(bias.clone()), Some(lora));
        let merged = Linear::new(merged_weight(&w, &a, &b, 2.0).unwrap(), Some(bias), None);
        let x = Tensor::randn(0f32, 1.0, (3, 5, 4), &dev).unwrap();
        let want = merged.forward(&x, false).unwrap();
        let max = max_abs(&(adapted.forward(&x, false).unwrap() - &want).unwrap());
        // Relative to the outputs' size: the inputs are unseeded randn, so an absolute 1e-5
        // failed now and then on outputs of magnitude ~10 (f32 rounding of two sums).
        let scale = max_abs(&want);
        assert!(max < 1e-6 * scale.max(1.0) * 4.0, "{max} (outputs up to {scale})");
        assert_eq!(want.dims(), &[3, 5, 6]);
        assert_eq!(merged.weight().dtype(), DType::F32);
    }

    #[test]
    fn frozen_matmul_gives_the_input_gradient_of_an_ordinary_matmul() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (6, 4), &dev).unwrap();
        let x = candle_core::Var::randn(0f32, 1.0, (3, 5, 4), &dev).unwrap();
        let target = Tensor::randn(0f32, 1.0, (3, 5, 6), &dev).unwrap();
        let y = matmul_t(x.as_tensor(), &w).unwrap();
        let reference = x.as_tensor().broadcast_matmul(&w.t().unwrap()).unwrap();
        let d = (&y - &reference)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
        let g = (y * &target).unwrap().sum_all().unwrap().backward().unwrap();
        let g_ref = (reference * &target).unwrap().sum_all().unwrap().backward().unwrap();
        let (gx, gx_ref) = (g.get(x.as_tensor()).unwrap(), g_ref.get(x.as_tensor()).unwrap());
        let d = (gx - gx_ref)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
        // Only the input's gradient is produced, none for the frozen weight.
        assert!(g.get(&w).is_none());
    }
}
