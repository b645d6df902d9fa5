//! Log-softmax + cross-entropy with optional class weights, with PyTorch's
//! `nn.CrossEntropyLoss(weight=w)` mean: sum_i w[y_i] * -log p_i[y_i] / sum_i w[y_i].
//!
//! Fused, the loss is one node keeping only the logits; its backward recomputes the softmax
//! row by row: d logits_i = g * w[y_i] / sum w * (softmax_i - onehot(y_i)). Composed, the
//! log-softmax, the one-hot target product and the sums are each kept until backward.

use super::fused_supported;
use super::kernel::{contiguous_f32, max, par_rows};
use candle_core::{bail, CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

/// `logits` [batch, K] (any float dtype: the loss is computed in f32); `labels` class ids;
/// `weights` one per class or `None` (all 1). Returns the scalar loss.
pub fn cross_entropy(logits: &Tensor, labels: &[usize], weights: Option<&[f32]>) -> Result<Tensor> {
    let (b, k) = logits.dims2()?;
    check_targets(b, k, labels, weights)?;
    let logits = logits.to_dtype(DType::F32)?;
    if !fused_supported(&logits) {
        return reference::cross_entropy(&logits, labels, weights);
    }
    let total: f64 = labels.iter().map(|&y| f64::from(weights.map_or(1.0, |w| w[y]))).sum();
    let row_weights = labels
        .iter()
        .map(|&y| (f64::from(weights.map_or(1.0, |w| w[y])) / total) as f32)
        .collect();
    logits.contiguous()?.apply_op1(CrossEntropy {
        labels: labels.to_vec(),
        row_weights,
    })
}

fn check_targets(b: usize, k: usize, labels: &[usize], weights: Option<&[f32]>) -> Result<()> {
    if labels.len() != b {
        bail!("cross-entropy: {} labels for a batch of {b}", labels.len());
    }
    if let Some(&y) = labels.iter().find(|&&y| y >= k) {
        bail!("cross-entropy: label {y} out of range for {k} classes");
    }
    if let Some(w) = weights.filter(|w| w.len() != k) {
        bail!("cross-entropy: {} class weights for {k} classes", w.len());
    }
    Ok(())
}

/// The composition the fused op replaces.
pub mod reference {
    use candle_core::{DType, Result, Tensor, D};

    pub fn cross_entropy(logits: &Tensor, labels: &[usize], weights: Option<&[f32]>) -> Result<Tensor> {
        let (b, k) = logits.dims2()?;
        super::check_targets(b, k, labels, weights)?;
        let mut target = vec![0f32; b * k];
        let mut total = 0f64;
        for (i, &y) in labels.iter().enumerate() {
            let w = weights.map_or(1.0, |w| w[y]);
            target[i * k + y] = w;
            total += w as f64;
        }
        let target = Tensor::from_vec(target, (b, k), logits.device())?;
        let logp = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
        (logp * target)?.sum_all()? * (-1.0 / total)
    }
}

/// max + ln(sum(exp(x - max))) of one row.
#[inline]
fn log_sum_exp(x: &[f32]) -> f32 {
    let top = max(x);
    let total: f32 = x.iter().map(|&v| (v - top).exp()).sum();
    top + total.ln()
}

#[derive(Debug, Clone)]
struct CrossEntropy {
    labels: Vec<usize>,
    /// w[y_i] / sum_i w[y_i].
    row_weights: Vec<f32>,
}

impl CustomOp1 for CrossEntropy {
    fn name(&self) -> &'static str {
        "fused-cross-entropy"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(self.name(), storage, layout)?;
        let k = layout.dims().last().copied().unwrap_or(1);
        // A batch has tens of rows: summed in order, in f64, on one thread.
        let loss: f64 = x
            .chunks(k)
            .zip(&self.labels)
            .zip(&self.row_weights)
            .map(|((row, &y), &w)| f64::from(w) * f64::from(log_sum_exp(row) - row[y]))
            .sum();
        Ok((CpuStorage::F32(vec![loss as f32]), Shape::from(())))
    }

    fn bwd(&self, logits: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let upstream = grad.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        let op = CrossEntropyGrad {
            labels: &self.labels,
            row_weights: &self.row_weights,
            upstream,
        };
        Ok(Some(logits.apply_op1_no_bwd(&op)?))
    }
}

/// upstream * w_i * (softmax(row_i) - onehot(y_i)).
struct CrossEntropyGrad<'a> {
    labels: &'a [usize],
    row_weights: &'a [f32],
    upstream: f32,
}

impl CustomOp1 for CrossEntropyGrad<'_> {
    fn name(&self) -> &'static str {
        "fused-cross-entropy-grad"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(self.name(), storage, layout)?;
        let k = layout.dims().last().copied().unwrap_or(1);
        let mut out = vec![0f32; x.len()];
        par_rows(&mut out, k, |r, d| {
            let row = &x[r * k..(r + 1) * k];
            let lse = log_sum_exp(row);
            let scale = self.upstream * self.row_weights[r];
            for (d, &v) in d.iter_mut().zip(row) {
                *d = scale * (v - lse).exp();
            }
            d[self.labels[r]] -= scale;
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::testing::{check_finite_differences, check_gradients_match, sample, Fd};

    const LABELS: [usize; 5] = [0, 3, 3, 1, 4];
    const WEIGHTS: [f32; 5] = [0.5, 2.0, 1.0, 1.5, 0.25];

    /// The loss within 1e-6 (f64 sum over rows vs candle's f32 sums of a 5 x 5 product) and
    /// the logits' gradient within 1e-6 (softmax minus one-hot, the same f32 operations).
    #[test]
    fn cross_entropy_matches_the_composed_reference() {
        for weights in [None, Some(&WEIGHTS[..])] {
            let logits = (sample(&[5, 5], 1) * 3.0).unwrap();
            check_gradients_match(
                &[logits],
                |v| cross_entropy(&v[0], &LABELS, weights),
                |v| reference::cross_entropy(&v[0], &LABELS, weights),
                1e-6,
                1e-6,
                &format!("cross-entropy, weights {weights:?}"),
            );
        }
        // Logits seen through a transpose.
        let logits = sample(&[5, 5], 2);
        check_gradients_match(
            &[logits],
            |v| cross_entropy(&v[0].t()?, &LABELS, Some(&WEIGHTS)),
            |v| reference::cross_entropy(&v[0].t()?, &LABELS, Some(&WEIGHTS)),
            1e-6,
            1e-6,
            "cross-entropy of transposed logits",
        );
    }

    #[test]
    fn cross_entropy_gradient_matches_finite_differences() {
        let logits = sample(&[5, 5], 3);
        check_finite_differences(
            &[logits],
            |v| cross_entropy(&v[0], &LABELS, Some(&WEIGHTS)),
            Fd::default(),
            "cross-entropy",
        );
    }

    #[test]
    fn bad_targets_are_named_errors() {
        let logits = sample(&[2, 3], 4);
        let err = |labels: &[usize], w: Option<&[f32]>| cross_entropy(&logits, labels, w).unwrap_err().to_string();
        assert!(err(&[0], None).contains("1 labels for a batch of 2"));
        assert!(err(&[0, 3], None).contains("label 3 out of range for 3 classes"));
        assert!(err(&[0, 1], Some(&[1.0])).contains("1 class weights for 3 classes"));
    }
}
