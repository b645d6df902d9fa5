//! Training throughput: examples/s over the whole fit and wall time per epoch.
//!
//! The fit reports what it did in its `train_report` JSON; this module reads two optional keys
//! from it and falls back to what the pipeline knows:
//! - `train_examples` (number): examples one epoch saw (after `max_train_examples`);
//!   default: the training split's size;
//! - `epoch_wall_s` (array of numbers): wall seconds of each epoch; default: none recorded.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingPerf {
    /// Wall time of the whole fit (loading, tokenising and training).
    pub wall_s: f64,
    /// Examples per epoch.
    pub train_examples: usize,
    /// Passes over the training examples; `None` for fits without epochs (L-BFGS baselines).
    pub epochs: Option<usize>,
    /// train_examples x epochs (or x 1) / wall_s.
    pub examples_per_s: Option<f64>,
    /// Wall seconds of each epoch, when the fit recorded them.
    #[serde(default)]
    pub epoch_wall_s: Vec<f64>,
}

/// Training throughput of one fit.
pub fn from_fit(
    wall_s: f64,
    train_split_size: usize,
    epochs: Option<usize>,
    train_report: Option<&serde_json::Value>,
) -> TrainingPerf {
    let reported = |key: &str| train_report.and_then(|r| r.get(key));
    let train_examples = reported("train_examples")
        .and_then(|v| v.as_u64())
        .map(|n| n as usize)
        .unwrap_or(train_split_size);
    let epoch_wall_s: Vec<f64> = reported("epoch_wall_s")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
        .unwrap_or_default();
    let seen = train_examples as f64 * epochs.unwrap_or(1) as f64;
    TrainingPerf {
        wall_s,
        train_examples,
        epochs,
        examples_per_s: (wall_s > 0.0 && seen > 0.0).then(|| seen / wall_s),
        epoch_wall_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_examples_and_epochs_take_precedence() {
        let report = serde_json::json!({"train_examples": 300, "epoch_wall_s": [2.0, 1.5]});
        let t = from_fit(4.0, 1000, Some(2), Some(&report));
        assert_eq!(
            (t.train_examples, t.epochs, t.examples_per_s),
            (300, Some(2), Some(150.0))
        );
        assert_eq!(t.epoch_wall_s, vec![2.0, 1.5]);
    }

    #[test]
    fn baseline_without_epochs_counts_one_pass() {
        let t = from_fit(2.0, 500, None, None);
        assert_eq!((t.train_examples, t.examples_per_s), (500, Some(250.0)));
        assert!(from_fit(0.0, 500, None, None).examples_per_s.is_none());
    }
}
