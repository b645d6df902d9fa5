//! A linear layer that is a frozen base, a trainable base, or a frozen base plus a LoRA
//! adapter (Hu et al. 2021, as PEFT implements it): y = x W^T + b + s * (drop(x) A^T) B^T with
//! s = alpha / r, A kaiming-uniform (a = sqrt(5)), B zero, dropout on the input of A only.
//! For inference the adapter is merged: W' = W + s * B A, one matmul instead of three.

use super::ops::Dropout;
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

    pub fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let y = matmul_t(xs, &self.weight)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        match &self.lora {
            None => Ok(y),
            Some(l) => {
                let x = l.dropout.forward(xs, train)?;
                let delta = matmul_t(&matmul_t(&x, &l.a)?, &l.b)?;
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
    if dims.len() == 2 {
        return xs.matmul(&w.t()?);
    }
    let lead: usize = dims[..dims.len() - 1].iter().product();
    let mut out_shape = dims[..dims.len() - 1].to_vec();
    out_shape.push(w.dim(0)?);
    xs.contiguous()?.reshape((lead, k))?.matmul(&w.t()?)?.reshape(out_shape)
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let d = (adapted.forward(&x, false).unwrap() - merged.forward(&x, false).unwrap()).unwrap();
        let max = d
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(max < 1e-5, "{max}");
        assert_eq!(merged.forward(&x, false).unwrap().dims(), &[3, 5, 6]);
        assert_eq!(merged.weight().dtype(), DType::F32);
    }
}
