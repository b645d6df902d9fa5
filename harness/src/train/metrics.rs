//! Validation metrics for best-epoch selection.
// TODO: use eval::metrics::macro_f1 once merged (this is a private stand-in with the same
// sklearn semantics).

/// `sklearn.metrics.f1_score(gold, pred, average="macro", zero_division=0)`: mean F1 over the
/// classes present in gold or pred.
pub fn macro_f1(gold: &[usize], pred: &[usize], n_classes: usize) -> f64 {
    let mut tp = vec![0usize; n_classes];
    let mut n_gold = vec![0usize; n_classes];
    let mut n_pred = vec![0usize; n_classes];
    for (&g, &p) in gold.iter().zip(pred) {
        n_gold[g] += 1;
        n_pred[p] += 1;
        if g == p {
            tp[g] += 1;
        }
    }
    let mut sum = 0.0;
    let mut present = 0usize;
    for c in 0..n_classes {
        if n_gold[c] + n_pred[c] == 0 {
            continue;
        }
        present += 1;
        sum += 2.0 * tp[c] as f64 / (n_gold[c] + n_pred[c]) as f64;
    }
    if present == 0 {
        0.0
    } else {
        sum / present as f64
    }
}

pub fn accuracy(gold: &[usize], pred: &[usize]) -> f64 {
    if gold.is_empty() {
        return 0.0;
    }
    gold.iter().zip(pred).filter(|(g, p)| g == p).count() as f64 / gold.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macro_f1_over_present_labels() {
        // sklearn: f1_score([0,0,1,2], [0,1,1,1], average="macro", zero_division=0)
        // = mean(2/3, 2/4, 0) = 0.38888...; class 3 (absent from both) is not averaged.
        let f = macro_f1(&[0, 0, 1, 2], &[0, 1, 1, 1], 4);
        assert!((f - (2.0 / 3.0 + 0.5 + 0.0) / 3.0).abs() < 1e-12, "{f}");
        assert_eq!(accuracy(&[0, 0, 1, 2], &[0, 1, 1, 1]), 0.5);
    }
}
