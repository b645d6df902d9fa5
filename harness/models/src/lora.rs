//! A linear layer that is a frozen base, a trainable base, or a frozen base plus a LoRA
//! adapter (Hu et al. 2021, as PEFT implements it): y = x W^T + b + s * (drop(x) A^T) B^T with
//! s = alpha / r, A kaiming-uniform (a = sqrt(5)), B zero, dropout on the input of A only.
//! For inference the adapter is merged: W' = W + s * B A, one matmul instead of three.

use super::layers::Dropout;
use super::quantize::QuantFormat;
use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Module, Result, Tensor};

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
    /// The weight in a GGML block format, for inference only (`quantized`): when set, the
    /// forward multiplies with it and `weight` is kept only as the full-precision reference.
    quantized: Option<(QuantFormat, QMatMul)>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>, lora: Option<LoraAdapter>) -> Linear {
        Linear {
            weight,
            bias,
            lora: None,
            quantized: None,
        }
        .with_lora(lora)
    }

    fn with_lora(mut self, lora: Option<LoraAdapter>) -> Linear {
        self.lora = lora;
        self
    }

    /// This layer with its weight quantised to `format` for inference; the full-precision
    /// weight is dropped so the quantised model holds only the packed blocks (the memory the
    /// seed's int8 rows report). A LoRA adapter must be merged first (`merged_weight`):
    /// quantising the base and adding an f32 adapter would time neither deployment.
    /// `layer` names the module in the error when the shape does not fit the format's blocks.
    pub fn quantized(&self, layer: &str, format: QuantFormat) -> Result<Linear> {
        if self.lora.is_some() {
            candle_core::bail!("`{layer}`: merge the LoRA adapter before quantising");
        }
        let (out_features, in_features) = self.weight.dims2()?;
        format
            .check_shape(layer, out_features, in_features)
            .map_err(candle_core::Error::msg)?;
        let q = QTensor::quantize(&self.weight.to_dtype(DType::F32)?, format.ggml())?;
        let qmm = QMatMul::from_qtensor(q)?;
        // A placeholder of no elements: the f32 weight's memory is released, and `weight()`
        // callers (parity checks, counting) see that this layer is not full precision.
        let weight = Tensor::zeros(0, DType::F32, self.weight.device())?;
        Ok(Linear {
            weight,
            bias: self.bias.clone(),
            lora: None,
            quantized: Some((format, qmm)),
        })
    }

    /// Bytes the weight occupies as the forward uses it (packed blocks when quantised).
    pub fn weight_bytes(&self) -> usize {
        match &self.quantized {
            Some((_, QMatMul::QTensor(q))) => q.storage_size_in_bytes(),
            Some((_, QMatMul::Tensor(t) | QMatMul::TensorF16(t))) => t.elem_count() * t.dtype().size_in_bytes(),
            None => self.weight.elem_count() * self.weight.dtype().size_in_bytes(),
        }
    }

    /// The quantisation format of this layer's weight, if any.
    pub fn quant_format(&self) -> Option<QuantFormat> {
        self.quantized.as_ref().map(|(f, _)| *f)
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
        let y = match &self.quantized {
            None => matmul_t(xs, &self.weight.to_dtype(dtype)?)?,
            Some((_, qmm)) => {
                if train {
                    candle_core::bail!("a quantised linear layer is for inference only");
                }
                // candle's quantized matmul takes f32 activations (it quantises them to the
                // weight's companion format itself) and has no backward.
                qmm.forward(&xs.to_dtype(DType::F32)?.contiguous()?)?.to_dtype(dtype)?
            }
        };
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
    use crate::layers::testing::max_abs;
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

    /// Max |x W^T - quantised| against the bound the format guarantees. q8_0 rounds each weight
    /// to the nearest step of its block's scale d_w = max|w| / 127 (error <= d_w / 2) and candle
    /// quantises the activations to q8_0 as well (error <= d_x / 2 per block of 32), so per
    /// output |err| <= sum over blocks (e d_w * sum|x| + e d_x * sum|w^|). The scales are stored
    /// as f16 (relative rounding 2^-11, times up to 127 steps), so e = 1/2 + 127 / 2048; the
    /// 1.01 and the small absolute slack cover f32 summation.
    #[test]
    fn q8_0_linear_stays_within_its_rounding_bound_of_the_f32_layer() {
        let dev = Device::Cpu;
        let (n, k, m) = (24, 96, 7);
        let w = Tensor::randn(0f32, 0.5, (n, k), &dev).unwrap();
        let bias = Tensor::randn(0f32, 1.0, (n,), &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (1, m, k), &dev).unwrap();
        let full = Linear::new(w.clone(), Some(bias), None);
        let q = full.quantized("encoder.layer.0.q", QuantFormat::Q8_0).unwrap();
        assert_eq!(q.quant_format(), Some(QuantFormat::Q8_0));
        let want: Vec<Vec<f32>> = full.forward(&x, false).unwrap().squeeze(0).unwrap().to_vec2().unwrap();
        let got: Vec<Vec<f32>> = q.forward(&x, false).unwrap().squeeze(0).unwrap().to_vec2().unwrap();
        let wv: Vec<Vec<f32>> = w.to_vec2().unwrap();
        let xv: Vec<Vec<f32>> = x.squeeze(0).unwrap().to_vec2().unwrap();
        let mut worst_ratio = 0f64;
        let mut any_error = false;
        for i in 0..m {
            for j in 0..n {
                let mut bound = 0f64;
                for b in (0..k).step_by(32) {
                    let xs = &xv[i][b..b + 32];
                    let ws = &wv[j][b..b + 32];
                    let dx = xs.iter().fold(0f32, |a, v| a.max(v.abs())) as f64 / 127.0;
                    let dw = ws.iter().fold(0f32, |a, v| a.max(v.abs())) as f64 / 127.0;
                    let sx: f64 = xs.iter().map(|v| v.abs() as f64).sum();
                    let e = 0.5 + 127.0 / 2048.0;
                    let sw: f64 = ws.iter().map(|v| v.abs() as f64 + e * dw).sum();
                    bound += e * dw * sx + e * dx * sw;
                }
                let err = (got[i][j] - want[i][j]).abs() as f64;
                any_error |= err > 0.0;
                worst_ratio = worst_ratio.max(err / (bound * 1.01 + 1e-5));
            }
        }
        assert!(worst_ratio <= 1.0, "error exceeds the q8_0 bound by {worst_ratio}x");
        // The layer really is quantised (an exact result would mean the f32 path ran).
        assert!(any_error);
        // 34 bytes per 32 weights instead of 128.
        assert_eq!(q.weight_bytes(), n * k / 32 * 34);
        assert_eq!(full.weight_bytes(), n * k * 4);
        assert!(q.forward(&x, true).is_err(), "quantised layers must refuse training");
    }

    #[test]
    fn quantising_refuses_shapes_off_the_block_and_unmerged_adapters() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (8, 384), &dev).unwrap();
        let e = Linear::new(w.clone(), None, None)
            .quantized("bert.encoder.layer.0.attention.self.query", QuantFormat::Q4K)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("attention.self.query") && e.contains("[8, 384]") && e.contains("256"),
            "{e}"
        );
        let lora = LoraAdapter {
            a: Tensor::zeros((2, 384), DType::F32, &dev).unwrap(),
            b: Tensor::zeros((8, 2), DType::F32, &dev).unwrap(),
            scale: 1.0,
            dropout: Dropout::new(0.0, Arc::new(Mutex::new(rand_chacha::ChaCha8Rng::seed_from_u64(0)))),
        };
        let e = Linear::new(w, None, Some(lora))
            .quantized("q", QuantFormat::Q8_0)
            .unwrap_err();
        assert!(e.to_string().contains("merge"), "{e}");
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
