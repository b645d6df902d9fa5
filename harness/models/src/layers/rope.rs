//! Rotary position embedding in the rotate-half (GPT-NeoX / HF) layout, and its tables.
//!
//! Fused, the rotation is one pass that records one node keeping only its input; its backward
//! is the inverse rotation (the same kernel with sin negated). Composed (candle's `rope_slow`)
//! it concatenates the tables, splits, negates and concatenates x, and multiplies and adds,
//! each a full-size buffer held until backward.

use super::fused_supported;
use super::kernel::{contiguous_f32, par_rows};
use candle_core::{bail, CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor, D};

/// `xs`: [batch, heads, seq, head_dim]; `cos`, `sin`: [seq (or more), head_dim / 2].
pub fn rope(xs: &Tensor, cos: &Tensor, sin: &Tensor, train: bool) -> Result<Tensor> {
    if !train {
        return candle_nn::rotary_emb::rope(&xs.contiguous()?, cos, sin);
    }
    if fused_supported(xs) && cos.dtype() == DType::F32 && sin.dtype() == DType::F32 {
        let (_, _, t, d) = xs.dims4()?;
        let (rows, half) = cos.dims2()?;
        if d % 2 != 0 || half * 2 != d || rows < t || sin.dims() != cos.dims() {
            bail!(
                "rope: tables {:?} / {:?} do not fit head_dim {d} at seq {t}",
                cos.dims(),
                sin.dims()
            );
        }
        let op = Rotate { inverse: false };
        return xs.contiguous()?.apply_op3(&cos.contiguous()?, &sin.contiguous()?, op);
    }
    reference::rope(xs, cos, sin)
}

/// cos and sin tables [seq_len, head_dim / 2] for positions 0..seq_len, computed in f32 as
/// transformers does (inv_freq = 1 / theta^(2i/d)), then cast to `dtype`.
pub fn rope_tables(
    seq_len: usize,
    head_dim: usize,
    theta: f64,
    dtype: DType,
    device: &candle_core::Device,
) -> Result<(Tensor, Tensor)> {
    let half = head_dim / 2;
    let inv_freq: Vec<f32> = (0..half)
        .map(|i| 1f32 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
        .collect();
    let mut freqs = Vec::with_capacity(seq_len * half);
    for p in 0..seq_len {
        for f in &inv_freq {
            freqs.push(p as f32 * f);
        }
    }
    let freqs = Tensor::from_vec(freqs, (seq_len, half), device)?;
    Ok((freqs.cos()?.to_dtype(dtype)?, freqs.sin()?.to_dtype(dtype)?))
}

/// The composition the fused op replaces.
pub mod reference {
    use candle_core::{Result, Tensor};

    pub fn rope(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        candle_nn::rotary_emb::rope_slow(xs, cos, sin)
    }
}

/// y1 = x1 cos - x2 sin, y2 = x2 cos + x1 sin over the two halves of each head's vector;
/// `inverse` rotates by -angle (sin negated), which is the forward's backward.
#[derive(Debug, Clone, Copy)]
struct Rotate {
    inverse: bool,
}

impl CustomOp3 for Rotate {
    fn name(&self) -> &'static str {
        if self.inverse {
            "fused-rope-grad"
        } else {
            "fused-rope"
        }
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
        let cos = contiguous_f32(self.name(), s2, l2)?;
        let sin = contiguous_f32(self.name(), s3, l3)?;
        let &[_, _, t, d] = l1.dims() else {
            bail!(
                "{}: expected [batch, heads, seq, head_dim], got {:?}",
                self.name(),
                l1.dims()
            )
        };
        let half = d / 2;
        if cos.len() < t * half || sin.len() < t * half {
            bail!("{}: tables too short for seq {t}", self.name());
        }
        let sign = if self.inverse { -1f32 } else { 1.0 };
        let mut out = vec![0f32; x.len()];
        par_rows(&mut out, d, |r, y| {
            let pos = r % t;
            let (x1, x2) = x[r * d..(r + 1) * d].split_at(half);
            let (c, s) = (&cos[pos * half..(pos + 1) * half], &sin[pos * half..(pos + 1) * half]);
            let (y1, y2) = y.split_at_mut(half);
            for i in 0..half {
                let s = sign * s[i];
                y1[i] = x1[i] * c[i] - x2[i] * s;
                y2[i] = x2[i] * c[i] + x1[i] * s;
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = grad.apply_op3_no_bwd(cos, sin, &Rotate { inverse: !self.inverse })?;
        // The tables are constants in every model; their gradients only when asked for.
        if !(cos.track_op() || sin.track_op()) {
            return Ok((Some(dx), None, None));
        }
        let half = x.dim(D::Minus1)? / 2;
        let (x1, x2) = (x.narrow(D::Minus1, 0, half)?, x.narrow(D::Minus1, half, half)?);
        let (g1, g2) = (grad.narrow(D::Minus1, 0, half)?, grad.narrow(D::Minus1, half, half)?);
        let d_cos = ((&g1 * &x1)? + (&g2 * &x2)?)?.sum((0, 1))?;
        let mut d_sin = ((&g2 * &x1)? - (&g1 * &x2)?)?.sum((0, 1))?;
        if self.inverse {
            d_sin = d_sin.neg()?;
        }
        let pad = |g: Tensor| -> Result<Tensor> {
            let extra = cos.dim(0)? - g.dim(0)?;
            if extra == 0 {
                return Ok(g);
            }
            Tensor::cat(&[g.clone(), Tensor::zeros((extra, half), g.dtype(), g.device())?], 0)
        };
        Ok((Some(dx), Some(pad(d_cos)?), Some(pad(d_sin)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::testing::{assert_close, check_finite_differences, check_gradients_match, sample, Fd};
    use candle_core::Device;

    /// Each output is two products and a sum of the same f32 values in both versions: forward
    /// within 1e-6, gradients within 1e-5.
    #[test]
    fn rope_matches_the_composed_reference() {
        let (cos, sin) = rope_tables(7, 8, 10_000.0, DType::F32, &Device::Cpu).unwrap();
        let x = sample(&[2, 3, 7, 8], 1);
        check_gradients_match(
            &[x],
            |v| rope(&v[0], &cos, &sin, true),
            |v| reference::rope(&v[0], &cos, &sin),
            1e-6,
            1e-5,
            "rope",
        );
        // A non-contiguous view (heads and seq swapped) and trainable tables longer than seq.
        let x = sample(&[2, 5, 3, 8], 2);
        let (cos, sin) = (sample(&[9, 4], 3), sample(&[9, 4], 4));
        check_gradients_match(
            &[x, cos, sin],
            |v| rope(&v[0].transpose(1, 2)?, &v[1], &v[2], true),
            |v| reference::rope(&v[0].transpose(1, 2)?, &v[1], &v[2]),
            1e-6,
            1e-5,
            "rope, transposed input, trainable tables",
        );
    }

    #[test]
    fn rope_gradient_matches_finite_differences() {
        let x = sample(&[1, 2, 3, 6], 5);
        let (cos, sin) = (sample(&[3, 3], 6), sample(&[3, 3], 7));
        check_finite_differences(
            &[x, cos, sin],
            |v| rope(&v[0], &v[1], &v[2], true),
            Fd::default(),
            "rope",
        );
    }

    #[test]
    fn training_and_inference_rope_agree() {
        let (cos, sin) = rope_tables(5, 8, 10_000.0, DType::F32, &Device::Cpu).unwrap();
        let x = sample(&[2, 3, 5, 8], 8);
        assert_close(
            &rope(&x, &cos, &sin, true).unwrap(),
            &rope(&x, &cos, &sin, false).unwrap(),
            1e-6,
            "rope",
        );
    }
}
