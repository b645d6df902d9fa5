//! Attention probabilities: softmax(scale * scores + mask) over the keys, as transformers'
//! eager attention computes them (in f32 whatever the model's dtype, cast back to it).
//!
//! Fused, the op takes the raw q k^T scores, the additive mask (broadcast over heads and
//! queries without being materialised) and the scale, and the graph stores the [batch, heads,
//! seq, seq] probabilities P once: the backward needs only P and its upstream gradient,
//! dS = P * (dP - rowsum(dP * P)). Composed, the scaled scores, the masked scores, the shifted
//! scores, their exponentials and the probabilities each live until backward.

use super::kernel::{contiguous_f32, dot, max, par_rows, StridedRows};
use super::{fused_supported, upcast};
use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, D};

/// softmax(`scale` * `scores` + `mask`) over the last dim. `scores`: [batch, heads, q, k];
/// `mask`: additive, broadcastable to it ([batch, 1, 1 or q, k]).
pub fn attention_softmax(scores: &Tensor, mask: &Tensor, scale: f64, train: bool) -> Result<Tensor> {
    if !(fused_supported(scores) && mask.dtype() == DType::F32) {
        let masked = (scores * scale)?.broadcast_add(mask)?;
        return softmax_last_dim(&upcast(&masked)?, train)?.to_dtype(scores.dtype());
    }
    let x = scores.contiguous()?;
    let mut m = mask.broadcast_as(x.shape())?;
    if m.dims().last() > Some(&1) && m.stride().last() != Some(&1) {
        m = m.contiguous()?;
    }
    let op = MaskedSoftmax { scale: scale as f32 };
    if train {
        x.apply_op2(&m, op)
    } else {
        x.apply_op2_no_bwd(&m, &op)
    }
}

/// Softmax over the last dimension (candle's fused kernel when not training).
pub fn softmax_last_dim(xs: &Tensor, train: bool) -> Result<Tensor> {
    if train {
        candle_nn::ops::softmax(xs, D::Minus1)
    } else {
        candle_nn::ops::softmax_last_dim(xs)
    }
}

/// The composition the fused op replaces.
pub mod reference {
    use candle_core::{Result, Tensor, D};

    pub fn attention_softmax(scores: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
        let masked = (scores * scale)?.broadcast_add(mask)?;
        candle_nn::ops::softmax(&super::upcast(&masked)?, D::Minus1)?.to_dtype(scores.dtype())
    }
}

#[derive(Debug, Clone, Copy)]
struct MaskedSoftmax {
    scale: f32,
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "fused-masked-softmax"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(self.name(), s1, l1)?;
        let mask = StridedRows::new(self.name(), s2, l2)?;
        if l1.dims() != l2.dims() {
            bail!("{}: mask {:?} vs scores {:?}", self.name(), l2.dims(), l1.dims());
        }
        let width = l1.dims().last().copied().unwrap_or(1);
        let scale = self.scale;
        let mut out = vec![0f32; x.len()];
        par_rows(&mut out, width, |r, p| {
            let (x, m) = (&x[r * width..(r + 1) * width], mask.row(r));
            for ((p, &x), &m) in p.iter_mut().zip(x).zip(m) {
                *p = x * scale + m;
            }
            let top = max(p);
            let mut total = 0f32;
            for p in p.iter_mut() {
                *p = (*p - top).exp();
                total += *p;
            }
            for p in p.iter_mut() {
                *p /= total;
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _scores: &Tensor,
        mask: &Tensor,
        probs: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let d_scores = probs.apply_op2_no_bwd(&grad, &SoftmaxGrad { scale: self.scale })?;
        // The mask is a constant in every model; its gradient is only computed when asked for.
        let d_mask = if mask.track_op() {
            Some(probs.apply_op2_no_bwd(&grad, &SoftmaxGrad { scale: 1.0 })?)
        } else {
            None
        };
        Ok((Some(d_scores), d_mask))
    }
}

/// scale * P * (dP - rowsum(dP * P)), row by row.
struct SoftmaxGrad {
    scale: f32,
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "fused-masked-softmax-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let p = contiguous_f32(self.name(), s1, l1)?;
        let dp = contiguous_f32(self.name(), s2, l2)?;
        if p.len() != dp.len() {
            bail!("{}: probabilities and gradient differ in size", self.name());
        }
        let width = l1.dims().last().copied().unwrap_or(1);
        let scale = self.scale;
        let mut out = vec![0f32; p.len()];
        par_rows(&mut out, width, |r, dx| {
            let (p, dp) = (&p[r * width..(r + 1) * width], &dp[r * width..(r + 1) * width]);
            let along = dot(p, dp);
            for ((dx, &p), &dp) in dx.iter_mut().zip(p).zip(dp) {
                *dx = scale * p * (dp - along);
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::mask_min;
    use crate::layers::testing::{assert_close, check_finite_differences, check_gradients_match, sample, Fd};
    use candle_core::{Device, Var};

    /// [batch, 1, 1, k] padding mask: batch row 1 is all padding (every query row of it is
    /// fully masked), batch row 0 pads its last two keys.
    fn padding_mask(k: usize) -> Tensor {
        let min = mask_min(DType::F32) as f32;
        let mut v = vec![0f32; 2 * k];
        v[k - 2..k].fill(min);
        v[k..].fill(min);
        Tensor::from_vec(v, (2, 1, 1, k), &Device::Cpu).unwrap()
    }

    /// [batch, 1, q, k] causal mask under left padding (batch row 1's first two positions are
    /// padding, so its first two query rows are fully masked).
    fn causal_mask(t: usize) -> Tensor {
        let min = mask_min(DType::F32) as f32;
        let mut v = vec![0f32; 2 * t * t];
        for b in 0..2 {
            for i in 0..t {
                for j in 0..t {
                    if j > i || (b == 1 && (j < 2 || i < 2)) {
                        v[(b * t + i) * t + j] = min;
                    }
                }
            }
        }
        Tensor::from_vec(v, (2, 1, t, t), &Device::Cpu).unwrap()
    }

    /// Forward and gradients within 1e-6 / 1e-5 of the composition: the same f32 operations,
    /// only the order of the row sums differs (a few ulps of values of order one).
    #[test]
    fn masked_softmax_matches_the_composed_reference() {
        for (name, mask) in [("padding", padding_mask(6)), ("causal", causal_mask(6))] {
            let scores = (sample(&[2, 3, 6, 6], 1) * 3.0).unwrap();
            check_gradients_match(
                &[scores],
                |v| attention_softmax(&v[0], &mask, 0.35, true),
                |v| reference::attention_softmax(&v[0], &mask, 0.35),
                1e-6,
                1e-5,
                name,
            );
        }
    }

    #[test]
    fn non_contiguous_scores_and_a_trainable_mask() {
        // Scores seen through a transpose; the mask as a variable, so its gradient (summed by
        // candle over the broadcast heads and queries) is computed and compared too.
        let scores = sample(&[2, 3, 5, 4], 2);
        let mask = sample(&[2, 1, 1, 5], 3);
        check_gradients_match(
            &[scores, mask],
            |v| attention_softmax(&v[0].transpose(2, 3)?, &v[1], 0.5, true),
            |v| reference::attention_softmax(&v[0].transpose(2, 3)?, &v[1], 0.5),
            1e-6,
            1e-5,
            "transposed",
        );
    }

    #[test]
    fn fully_masked_rows_are_uniform_not_nan() {
        let scores = sample(&[2, 2, 6, 6], 4);
        let p = attention_softmax(&scores, &padding_mask(6), 0.5, true).unwrap();
        let row: Vec<f32> = p.get(1).unwrap().get(0).unwrap().get(3).unwrap().to_vec1().unwrap();
        assert!(row.iter().all(|&v| (v - 1.0 / 6.0).abs() < 1e-6), "{row:?}");
    }

    #[test]
    fn inference_path_equals_the_reference() {
        let scores = sample(&[2, 4, 9, 9], 5);
        let mask = causal_mask(9);
        let fast = attention_softmax(&scores, &mask, 0.25, false).unwrap();
        assert_close(
            &fast,
            &reference::attention_softmax(&scores, &mask, 0.25).unwrap(),
            1e-6,
            "inference",
        );
    }

    /// A finite mask of moderate values: under mask_min the scores' perturbations are absorbed
    /// (min + x == min in f32), so a finite difference would read 0 where the analytic
    /// gradient, like the composition's, is P (dP - rowsum) (compared above instead).
    #[test]
    fn masked_softmax_gradient_matches_finite_differences() {
        let scores = sample(&[2, 2, 4, 5], 6);
        let mask = (sample(&[2, 1, 1, 5], 7) - 1.0).unwrap();
        check_finite_differences(
            &[scores, mask],
            |v| attention_softmax(&v[0], &v[1], 0.8, true),
            Fd::default(),
            "masked softmax",
        );
    }

    #[test]
    fn nan_passes_through_forward_and_backward() {
        let mut v = sample(&[1, 1, 2, 4], 8)
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        v[1] = f32::NAN;
        let x = Var::from_vec(v, (1, 1, 2, 4), &Device::Cpu).unwrap();
        let mask = Tensor::zeros((1, 1, 1, 4), DType::F32, &Device::Cpu).unwrap();
        let p = attention_softmax(x.as_tensor(), &mask, 1.0, true).unwrap();
        let rows: Vec<Vec<f32>> = p.squeeze(0).unwrap().squeeze(0).unwrap().to_vec2().unwrap();
        assert!(rows[0].iter().all(|v| v.is_nan()) && rows[1].iter().all(|v| v.is_finite()));
        let up = Tensor::from_vec(
            vec![1f32, 1.0, 1.0, 1.0, f32::NAN, 0.0, 0.0, 0.0],
            (1, 1, 2, 4),
            &Device::Cpu,
        )
        .unwrap();
        let grads = (p * up).unwrap().sum_all().unwrap().backward().unwrap();
        let g: Vec<f32> = grads
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(g.iter().all(|v| v.is_nan()), "{g:?}");
    }
}
