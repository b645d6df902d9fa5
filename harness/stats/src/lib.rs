//! clsbench-stats: the evaluation statistics of clsbench. scikit-learn-exact metrics, class
//! tiers, the paired bootstrap (percentile and BCa intervals, numpy-replay or ChaCha
//! resamples), McNemar's test, the seed-aware statistics (two-level bootstrap, ASO, power) and
//! calibration (ECE, MCE, NLL, Brier, temperature scaling).
//!
//! Knows nothing of models, suites or files: everything here takes gold and predicted class
//! ids (or probabilities) and plain settings ([`bootstrap::BootstrapConfig`],
//! [`resample::ResampleRng`], [`tiers::TierScheme`]). The crate edge enforces it: this crate
//! depends on no other part of clsbench. Reference numbers for the tests come from
//! fixtures/reference/make_eval_reference.py (and its siblings).

pub mod error;
pub use error::{Error, Result};

pub mod aso;
pub mod bootstrap;
pub mod calibration;
pub mod intervals;
pub mod mcnemar;
pub mod metrics;
pub mod power;
pub mod resample;
pub mod tier_bootstrap;
pub mod tiers;
pub mod two_level;

#[cfg(test)]
pub(crate) mod test_reference {
    //! Loads fixtures/reference/eval_reference.json once for all eval tests.
    use serde_json::Value;
    use std::sync::OnceLock;

    pub fn reference() -> &'static Value {
        static REFERENCE: OnceLock<Value> = OnceLock::new();
        REFERENCE.get_or_init(|| {
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../fixtures/reference/eval_reference.json"
            );
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
        })
    }

    /// fixtures/reference/seed_stats_reference.json (issue 13's statistics).
    pub fn seed_stats_reference() -> &'static Value {
        static REFERENCE: OnceLock<Value> = OnceLock::new();
        REFERENCE.get_or_init(|| {
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../fixtures/reference/seed_stats_reference.json"
            );
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
        })
    }

    /// fixtures/reference/calibration_reference.json (issue 14's calibration statistics).
    pub fn calibration_reference() -> &'static Value {
        static REFERENCE: OnceLock<Value> = OnceLock::new();
        REFERENCE.get_or_init(|| {
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../fixtures/reference/calibration_reference.json"
            );
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
        })
    }

    pub fn f64s(v: &Value) -> Vec<f64> {
        v.as_array()
            .expect("a JSON array")
            .iter()
            .map(|x| x.as_f64().expect("a number"))
            .collect()
    }

    pub fn usizes(v: &Value) -> Vec<usize> {
        v.as_array()
            .expect("a JSON array")
            .iter()
            .map(|x| x.as_u64().expect("an unsigned integer") as usize)
            .collect()
    }

    /// |actual - expected| <= tol, with both numbers in the message.
    pub fn assert_close(actual: f64, expected: &Value, tol: f64, what: &str) {
        let expected = expected
            .as_f64()
            .unwrap_or_else(|| panic!("{what}: reference is not a number: {expected}"));
        assert!(
            (actual - expected).abs() <= tol,
            "{what}: got {actual:e}, reference {expected:e} (diff {:e} > {tol:e})",
            (actual - expected).abs()
        );
    }
}
