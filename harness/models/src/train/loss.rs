//! Cross-entropy with optional class weights, with PyTorch's `nn.CrossEntropyLoss(weight=w)`
//! semantics: sum_i w[y_i] * -log p_i[y_i] / sum_i w[y_i]. The op itself (fused, with its
//! backward) lives with the other layers in `models::layers::loss`.

use crate::error::Result;
use candle_core::Tensor;

/// `logits` [batch, K]; `labels` class ids; `weights` one per class or `None` (all 1).
pub fn cross_entropy(logits: &Tensor, labels: &[usize], weights: Option<&[f32]>) -> Result<Tensor> {
    Ok(crate::layers::cross_entropy(logits, labels, weights)?)
}

/// The seed's sqrt-inverse weights: w_c = sqrt(max_count / count_c), normalised to mean 1.
/// A class without training rows never appears as a target; it gets the largest weight so the
/// normalisation stays finite.
pub fn sqrt_inverse_weights(counts: &[usize]) -> Vec<f32> {
    let max = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let raw: Vec<f64> = counts.iter().map(|&c| (max / c.max(1) as f64).sqrt()).collect();
    let mean = raw.iter().sum::<f64>() / raw.len().max(1) as f64;
    raw.iter().map(|w| (w / mean) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn weighted_mean_matches_pytorch() {
        // PyTorch's weighted mean, written out from its documented formula.
        let logits = Tensor::new(&[[1f32, 2.0, 0.0], [0.0, 0.0, 3.0]], &Device::Cpu).unwrap();
        let l = cross_entropy(&logits, &[1, 0], Some(&[2.0, 1.0, 1.0]))
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let lp1 = 2.0 - (1f64.exp() + 2f64.exp() + 1.0).ln();
        let lp0 = 0.0 - (1.0 + 1.0 + 3f64.exp()).ln();
        let want = -(lp1 + 2.0 * lp0) / 3.0;
        assert!((l as f64 - want).abs() < 1e-5, "{l} vs {want}");
    }

    #[test]
    fn sqrt_inverse_is_mean_one() {
        let w = sqrt_inverse_weights(&[100, 25, 4]);
        let mean = w.iter().sum::<f32>() / 3.0;
        assert!((mean - 1.0).abs() < 1e-6);
        assert!((w[1] / w[0] - 2.0).abs() < 1e-5 && (w[2] / w[0] - 5.0).abs() < 1e-5);
    }
}
