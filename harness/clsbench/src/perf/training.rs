//! Training throughput: examples/s over the whole fit and per epoch.
//!
//! The transformer fit's `train_report` (`train::TrainReport`) carries `train_examples` and an
//! `epochs` array whose entries have `train_seconds` (validation excluded); fits without them
//! (the TF-IDF baseline) fall back to the training split's size and one pass.

use crate::train::TrainReport;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingPerf {
    /// Wall time of the whole fit (loading, tokenising, training, per-epoch validation).
    pub wall_s: f64,
    /// Examples per epoch.
    pub train_examples: usize,
    /// Passes over the training examples; `None` for fits without epochs (L-BFGS baselines).
    pub epochs: Option<usize>,
    /// train_examples x epochs (or x 1) / wall_s.
    pub examples_per_s: Option<f64>,
    /// Training seconds of each epoch (validation excluded), when the fit reports them.
    #[serde(default)]
    pub epoch_train_s: Vec<f64>,
    /// train_examples x epochs / sum(epoch_train_s): the optimiser's own throughput.
    #[serde(default)]
    pub train_examples_per_s: Option<f64>,
    /// The epoch whose weights were kept, when the fit reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_epoch: Option<usize>,
    /// Early stopping ended the fit before its last scheduled epoch.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped_early: bool,
}

/// Training throughput of one fit.
pub fn from_fit(
    wall_s: f64,
    train_split_size: usize,
    epochs: Option<usize>,
    train_report: Option<&TrainReport>,
) -> TrainingPerf {
    let train_examples = train_report.map_or(train_split_size, |r| r.train_examples);
    let epoch_train_s: Vec<f64> =
        train_report.map_or_else(Vec::new, |r| r.epochs.iter().map(|e| e.train_seconds).collect());
    let n_epochs = if epoch_train_s.is_empty() {
        epochs
    } else {
        Some(epoch_train_s.len())
    };
    let seen = train_examples as f64 * n_epochs.unwrap_or(1) as f64;
    let train_s: f64 = epoch_train_s.iter().sum();
    TrainingPerf {
        wall_s,
        train_examples,
        epochs: n_epochs,
        examples_per_s: (wall_s > 0.0 && seen > 0.0).then(|| seen / wall_s),
        train_examples_per_s: (train_s > 0.0 && seen > 0.0).then(|| seen / train_s),
        epoch_train_s,
        best_epoch: train_report.map(|r| r.best_epoch),
        stopped_early: train_report.is_some_and(|r| r.stopped_early_after.is_some()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transformer_report_gives_examples_and_epoch_times() {
        let report = TrainReport::for_tests(300, &[2.0, 1.0], 1, 10);
        let t = from_fit(4.0, 1000, Some(2), Some(&report));
        assert_eq!(
            (t.train_examples, t.epochs, t.examples_per_s),
            (300, Some(2), Some(150.0))
        );
        assert_eq!(
            (t.epoch_train_s.clone(), t.train_examples_per_s),
            (vec![2.0, 1.0], Some(200.0))
        );
    }

    #[test]
    fn baseline_without_epochs_counts_one_pass() {
        let t = from_fit(2.0, 500, None, None);
        assert_eq!(
            (t.train_examples, t.examples_per_s, t.train_examples_per_s),
            (500, Some(250.0), None)
        );
        assert!(from_fit(0.0, 500, None, None).examples_per_s.is_none());
    }
}
