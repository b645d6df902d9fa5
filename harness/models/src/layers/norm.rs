//! LayerNorm (with or without bias) and RMSNorm over the last dimension.
//!
//! Fused, each records one graph node that keeps its input (the row statistics are recomputed
//! in backward: one pass over a row that is in cache anyway), and the backward is one pass that
//! writes the input's gradient and the weight (and bias) gradients. The weight gradients are
//! column sums over all rows, reduced in fixed blocks so that they are bit-identical from run
//! to run. Composed, LayerNorm records about ten nodes, most holding a full-size buffer.

use super::kernel::{contiguous_f32, dot, par_rows, rows_with_column_sums, sum};
use super::{fused_supported, upcast};
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

/// LayerNorm over the last dimension, with an optional bias (ModernBERT has none). The
/// statistics are computed in f32; the weight and bias (f32 master copies when they train) are
/// cast to the input's dtype.
pub fn layer_norm(xs: &Tensor, weight: &Tensor, bias: Option<&Tensor>, eps: f64, train: bool) -> Result<Tensor> {
    let weight = &weight.to_dtype(xs.dtype())?;
    let bias = bias.map(|b| b.to_dtype(xs.dtype())).transpose()?;
    let bias = bias.as_ref();
    if train && fused_supported(xs) {
        let (x, w) = (xs.contiguous()?, weight.contiguous()?);
        let op = NormOp {
            kind: Kind::Layer,
            eps: eps as f32,
        };
        return match bias {
            Some(b) => x.apply_op3(&w, &b.contiguous()?, op),
            None => x.apply_op2(&w, op),
        };
    }
    match bias {
        Some(b) if !train => candle_nn::ops::layer_norm(&xs.contiguous()?, weight, b, eps as f32),
        _ => reference::layer_norm(xs, weight, bias, eps),
    }
}

/// RMSNorm over the last dimension (Llama/Qwen2): x / sqrt(mean(x^2) + eps) * weight, the
/// weight cast to the input's dtype (candle computes the statistics in f32 for half inputs).
pub fn rms_norm(xs: &Tensor, weight: &Tensor, eps: f64, train: bool) -> Result<Tensor> {
    let weight = &weight.to_dtype(xs.dtype())?;
    if !train {
        return candle_nn::ops::rms_norm(&xs.contiguous()?, weight, eps as f32);
    }
    if fused_supported(xs) {
        let op = NormOp {
            kind: Kind::Rms,
            eps: eps as f32,
        };
        return xs.contiguous()?.apply_op2(&weight.contiguous()?, op);
    }
    reference::rms_norm(xs, weight, eps)
}

/// The compositions the fused ops replace.
pub mod reference {
    use super::upcast;
    use candle_core::{Result, Tensor, D};

    pub fn layer_norm(xs: &Tensor, weight: &Tensor, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
        let dtype = xs.dtype();
        let x = upcast(xs)?;
        let hidden = x.dim(D::Minus1)? as f64;
        let mean = (x.sum_keepdim(D::Minus1)? / hidden)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = (centred.sqr()?.sum_keepdim(D::Minus1)? / hidden)?;
        let normed = centred.broadcast_div(&(var + eps)?.sqrt()?)?.to_dtype(dtype)?;
        let y = normed.broadcast_mul(weight)?;
        match bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }

    pub fn rms_norm(xs: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
        candle_nn::ops::rms_norm_slow(xs, weight, eps as f32)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// (x - mean) / sqrt(var + eps) * w (+ b).
    Layer,
    /// x / sqrt(mean(x^2) + eps) * w.
    Rms,
}

/// Row statistics: (mean, 1 / sqrt(var + eps)) for LayerNorm, (0, 1 / sqrt(mean(x^2) + eps))
/// for RMSNorm. Two passes for LayerNorm's variance, as the composition computes it (one-pass
/// E[x^2] - E[x]^2 cancels badly for rows far from zero mean).
#[inline]
fn row_stats(kind: Kind, x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    match kind {
        Kind::Layer => {
            let mean = sum(x) / n;
            let mut acc = [0f32; 8];
            let chunks = x.chunks_exact(8);
            let mut tail = 0f32;
            for &v in chunks.remainder() {
                tail += (v - mean) * (v - mean);
            }
            for c in chunks {
                for l in 0..8 {
                    acc[l] += (c[l] - mean) * (c[l] - mean);
                }
            }
            let var = (acc.iter().sum::<f32>() + tail) / n;
            (mean, 1.0 / (var + eps).sqrt())
        }
        Kind::Rms => (0.0, 1.0 / (dot(x, x) / n + eps).sqrt()),
    }
}

fn check_width(op: &str, x: &Layout, w: &[f32]) -> Result<usize> {
    let width = x.dims().last().copied().unwrap_or(1);
    if w.len() != width {
        bail!("{op}: weight has {} entries for rows of {width}", w.len());
    }
    Ok(width)
}

/// The forward of both norms; `bias` only for LayerNorm with one.
fn norm_forward(
    op: &NormOp,
    x: &[f32],
    layout: &Layout,
    w: &[f32],
    bias: Option<&[f32]>,
) -> Result<(CpuStorage, Shape)> {
    let width = check_width(op.name(), layout, w)?;
    if bias.is_some_and(|b| b.len() != width) {
        bail!("{}: bias size differs from the weight's", op.name());
    }
    let mut out = vec![0f32; x.len()];
    par_rows(&mut out, width, |r, y| {
        let x = &x[r * width..(r + 1) * width];
        let (mean, rstd) = row_stats(op.kind, x, op.eps);
        for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
            *y = (x - mean) * rstd * w;
        }
        if let Some(b) = bias {
            for (y, &b) in y.iter_mut().zip(b) {
                *y += b;
            }
        }
    });
    Ok((CpuStorage::F32(out), layout.shape().clone()))
}

#[derive(Debug, Clone, Copy)]
struct NormOp {
    kind: Kind,
    eps: f32,
}

impl NormOp {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Layer => "fused-layer-norm",
            Kind::Rms => "fused-rms-norm",
        }
    }

    /// [dx | dw | db (LayerNorm with bias)] flattened, then split into views.
    fn backward(&self, x: &Tensor, w: &Tensor, grad: &Tensor, with_bias: bool) -> Result<Vec<Tensor>> {
        let grad_op = NormGrad {
            kind: self.kind,
            eps: self.eps,
            with_bias,
        };
        let flat = x.apply_op3_no_bwd(w, &grad.contiguous()?, &grad_op)?;
        let (n, h) = (x.elem_count(), w.elem_count());
        let mut out = vec![
            flat.narrow(0, 0, n)?.reshape(x.shape())?,
            flat.narrow(0, n, h)?.reshape(w.shape())?,
        ];
        if with_bias {
            out.push(flat.narrow(0, n + h, h)?.reshape(w.shape())?);
        }
        Ok(out)
    }
}

/// Without bias: LayerNorm (ModernBERT) or RMSNorm.
impl CustomOp2 for NormOp {
    fn name(&self) -> &'static str {
        NormOp::name(self)
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(self.name(), s1, l1)?;
        let w = contiguous_f32(self.name(), s2, l2)?;
        norm_forward(self, x, l1, w, None)
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let mut g = self.backward(x, w, grad, false)?.into_iter();
        Ok((g.next(), g.next()))
    }
}

/// LayerNorm with bias (BERT).
impl CustomOp3 for NormOp {
    fn name(&self) -> &'static str {
        NormOp::name(self)
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(self.name(), s1, l1)?;
        let w = contiguous_f32(self.name(), s2, l2)?;
        let b = contiguous_f32(self.name(), s3, l3)?;
        norm_forward(self, x, l1, w, Some(b))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let mut g = self.backward(x, w, grad, true)?.into_iter();
        Ok((g.next(), g.next(), g.next()))
    }
}

/// The norms' backward in one pass over (x, w, dy). With x_hat = (x - mean) * rstd and
/// g = dy * w:
/// - LayerNorm: dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat));
/// - RMSNorm:   dx = rstd * (g - x_hat * mean(g * x_hat));
/// - dw = sum over rows of dy * x_hat, db = sum over rows of dy.
struct NormGrad {
    kind: Kind,
    eps: f32,
    with_bias: bool,
}

impl CustomOp3 for NormGrad {
    fn name(&self) -> &'static str {
        "fused-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(self.name(), s1, l1)?;
        let w = contiguous_f32(self.name(), s2, l2)?;
        let dy = contiguous_f32(self.name(), s3, l3)?;
        let width = check_width(self.name(), l1, w)?;
        if dy.len() != x.len() {
            bail!("{}: input and gradient differ in size", self.name());
        }
        let n_cols = if self.with_bias { 2 * width } else { width };
        let (kind, eps) = (self.kind, self.eps);
        let mut dx = vec![0f32; x.len()];
        let columns = rows_with_column_sums(&mut dx, width, n_cols, |r, dx, acc| {
            let (x, dy) = (&x[r * width..(r + 1) * width], &dy[r * width..(r + 1) * width]);
            let (mean, rstd) = row_stats(kind, x, eps);
            let n = width as f32;
            // dx first holds g = dy * w, then the gradient.
            let (mut g_sum, mut gx_sum) = (0f32, 0f32);
            for (((g, &x), &dy), &w) in dx.iter_mut().zip(x).zip(dy).zip(w) {
                *g = dy * w;
                g_sum += *g;
                gx_sum += *g * (x - mean) * rstd;
            }
            let g_mean = if kind == Kind::Layer { g_sum / n } else { 0.0 };
            let gx_mean = gx_sum / n;
            for (g, &x) in dx.iter_mut().zip(x) {
                *g = rstd * (*g - g_mean - (x - mean) * rstd * gx_mean);
            }
            let (dw, db) = acc.split_at_mut(width);
            for ((dw, &x), &dy) in dw.iter_mut().zip(x).zip(dy) {
                *dw += dy * (x - mean) * rstd;
            }
            for (db, &dy) in db.iter_mut().zip(dy) {
                *db += dy;
            }
        });
        dx.extend_from_slice(&columns);
        let len = dx.len();
        Ok((CpuStorage::F32(dx), Shape::from(len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::testing::{assert_close, check_finite_differences, check_gradients_match, sample, Fd};
    use candle_core::{Device, Var};

    /// Forward within 1e-5 (rstd multiplied vs divided, row sums in lanes vs in order: a few
    /// ulps, amplified by weights of up to 2), gradients within 1e-4: the weight gradients sum
    /// 30-odd rows of products in a different order than candle's reductions.
    #[test]
    fn norms_match_the_composed_reference() {
        let eps = 1e-5;
        // Rows of 40 (not a multiple of the 8 lanes), 33 of them (more than one reduction
        // block), offset from zero mean.
        let x = (sample(&[3, 11, 40], 1) + 0.7).unwrap();
        let w = sample(&[40], 2);
        let b = sample(&[40], 3);
        check_gradients_match(
            &[x.clone(), w.clone(), b],
            |v| layer_norm(&v[0], &v[1], Some(&v[2]), eps, true),
            |v| reference::layer_norm(&v[0], &v[1], Some(&v[2]), eps),
            1e-5,
            1e-4,
            "layer norm",
        );
        check_gradients_match(
            &[x.clone(), w.clone()],
            |v| layer_norm(&v[0], &v[1], None, eps, true),
            |v| reference::layer_norm(&v[0], &v[1], None, eps),
            1e-5,
            1e-4,
            "layer norm without bias",
        );
        check_gradients_match(
            &[x, w],
            |v| rms_norm(&v[0], &v[1], 1e-6, true),
            |v| reference::rms_norm(&v[0], &v[1], 1e-6),
            1e-5,
            1e-4,
            "rms norm",
        );
    }

    #[test]
    fn norms_take_non_contiguous_inputs() {
        let x = sample(&[2, 16, 5], 4);
        let w = sample(&[5], 5);
        let b = sample(&[5], 6);
        check_gradients_match(
            &[x.clone(), w.clone(), b],
            |v| {
                layer_norm(
                    &v[0].transpose(1, 2)?.transpose(1, 2)?.narrow(1, 1, 14)?,
                    &v[1],
                    Some(&v[2]),
                    1e-5,
                    true,
                )
            },
            |v| reference::layer_norm(&v[0].narrow(1, 1, 14)?, &v[1], Some(&v[2]), 1e-5),
            1e-5,
            1e-4,
            "layer norm of a narrowed view",
        );
        let xt = sample(&[2, 5, 16], 7);
        let wt = sample(&[2], 8);
        check_gradients_match(
            &[xt, wt],
            |v| rms_norm(&v[0].transpose(1, 2)?.narrow(2, 0, 2)?, &v[1], 1e-6, true),
            |v| reference::rms_norm(&v[0].transpose(1, 2)?.narrow(2, 0, 2)?, &v[1], 1e-6),
            1e-5,
            1e-4,
            "rms norm of a transposed view",
        );
    }

    #[test]
    fn norm_gradients_match_finite_differences() {
        let x = sample(&[3, 12], 9);
        let w = sample(&[12], 10);
        let b = sample(&[12], 11);
        let fd = Fd::default();
        check_finite_differences(
            &[x.clone(), w.clone(), b],
            |v| layer_norm(&v[0], &v[1], Some(&v[2]), 1e-5, true),
            fd,
            "layer norm",
        );
        check_finite_differences(
            &[x.clone(), w.clone()],
            |v| layer_norm(&v[0], &v[1], None, 1e-5, true),
            fd,
            "layer norm, no bias",
        );
        check_finite_differences(&[x, w], |v| rms_norm(&v[0], &v[1], 1e-6, true), fd, "rms norm");
    }

    #[test]
    fn weight_gradients_are_bit_identical_across_runs() {
        let x = Var::from_tensor(&sample(&[64, 48], 12)).unwrap();
        let w = Var::from_tensor(&sample(&[48], 13)).unwrap();
        let g = sample(&[64, 48], 14);
        let run = || -> Vec<f32> {
            let y = rms_norm(x.as_tensor(), w.as_tensor(), 1e-6, true).unwrap();
            let grads = (y * &g).unwrap().sum_all().unwrap().backward().unwrap();
            grads.get(w.as_tensor()).unwrap().to_vec1().unwrap()
        };
        let first = run();
        for _ in 0..5 {
            assert_eq!(run(), first);
        }
    }

    #[test]
    fn inference_paths_are_unchanged() {
        let x = sample(&[4, 24], 15);
        let w = sample(&[24], 16);
        let b = sample(&[24], 17);
        assert_close(
            &layer_norm(&x, &w, Some(&b), 1e-5, false).unwrap(),
            &reference::layer_norm(&x, &w, Some(&b), 1e-5).unwrap(),
            1e-5,
            "layer norm",
        );
        assert_close(
            &rms_norm(&x, &w, 1e-6, false).unwrap(),
            &reference::rms_norm(&x, &w, 1e-6).unwrap(),
            1e-5,
            "rms norm",
        );
    }

    #[test]
    fn nan_passes_through_forward_and_backward() {
        let x = Var::new(&[[1f32, f32::NAN, 2.0], [0.5, 1.0, -1.0]], &Device::Cpu).unwrap();
        let w = Var::new(&[1f32, 1.0, 1.0], &Device::Cpu).unwrap();
        let y = rms_norm(x.as_tensor(), w.as_tensor(), 1e-6, true).unwrap();
        let rows: Vec<Vec<f32>> = y.to_vec2().unwrap();
        assert!(rows[0].iter().all(|v| v.is_nan()) && rows[1].iter().all(|v| v.is_finite()));
        let grads = y.sum_all().unwrap().backward().unwrap();
        let gw: Vec<f32> = grads.get(w.as_tensor()).unwrap().to_vec1().unwrap();
        assert!(gw.iter().all(|v| v.is_nan()), "{gw:?}");
    }
}
