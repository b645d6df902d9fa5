//! Performance: hardware fingerprint, latency/throughput protocol, peak memory, prices and
//! cost. `measure` runs the whole protocol on one fitted model and returns what results record.

pub mod contention;
pub mod cost;
pub mod hardware;
pub mod memory;
pub mod prices;
pub mod timing;
pub mod training;

use crate::classifier::TextClassifier;
use crate::suite::PerfSpec;
use hardware::Hardware;
use prices::PriceTable;
use serde::{Deserialize, Serialize};

pub use cost::CostReport;
pub use memory::MemoryReport;
pub use timing::TimingReport;
pub use training::TrainingPerf;

/// One model's performance record (`perf` in results.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerfReport {
    /// The timing protocol's results; `None` when it failed (see `error`).
    pub timing: Option<TimingReport>,
    pub memory: MemoryReport,
    pub cost: CostReport,
    /// Training throughput, from the fit (filled by the pipeline).
    #[serde(default)]
    pub training: Option<TrainingPerf>,
    /// Why timing failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PerfReport {
    /// Median single-example latency (ms).
    pub fn single_median_ms(&self) -> Option<f64> {
        self.timing.as_ref()?.single.as_ref().map(|s| s.median_ms)
    }

    /// The measured batch that prices the model.
    pub fn priced_batch(&self) -> Option<&timing::BatchTiming> {
        let size = self.cost.batch_size?;
        self.timing.as_ref()?.batches.iter().find(|b| b.batch_size == size)
    }
}

/// Time one fitted model on `texts` (real documents of the primary split), record its peak
/// memory and price its throughput. Call it after the model's predictions are written: its
/// outputs are discarded, so timing never changes predictions.
pub fn measure(
    model: &dyn TextClassifier,
    texts: &[&str],
    spec: &PerfSpec,
    hardware: &Hardware,
    prices: &PriceTable,
) -> PerfReport {
    let start_rss_bytes = memory::current_rss_bytes();
    let rss_scope = if memory::reset_peak_rss() {
        memory::RssScope::Timing
    } else {
        memory::RssScope::Process
    };
    let sampler = hardware
        .gpu
        .is_some()
        .then(|| memory::DeviceMemorySampler::start(std::time::Duration::from_millis(50)));
    // The CUDA driver's own count (cuMemGetInfo through the model's device), sampled beside
    // the timing; nvidia-smi's (above) is the fallback where the model has no device memory
    // to report.
    let (timed, driver_peak) = memory::with_model_memory_sampled(model, std::time::Duration::from_millis(20), || {
        timing::time_classifier(model, texts, spec, &timing::WallClock::new())
    });
    let (smi_peak, smi_source) = sampler.map(|s| s.finish()).unwrap_or((None, None));
    let (device_peak_bytes, device_source) = match driver_peak {
        Some(bytes) => (Some(bytes), Some(memory::DRIVER_SOURCE.to_string())),
        None => (smi_peak, smi_source),
    };
    let peak_rss_bytes = memory::peak_rss_bytes();
    let memory = MemoryReport {
        peak_rss_bytes,
        rss_scope: peak_rss_bytes.map(|_| rss_scope),
        start_rss_bytes,
        device_peak_bytes,
        device_source,
    };
    let slug = spec.hardware.clone().unwrap_or_else(|| hardware.slug.clone());
    let (timing, error) = match timed {
        Ok(t) => (Some(t), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let batches = timing.as_ref().map(|t| t.batches.as_slice()).unwrap_or(&[]);
    let cost = cost::price_throughput(batches, spec.cost_batch_size, &slug, prices);
    PerfReport {
        timing,
        memory,
        cost,
        training: None,
        error,
    }
}

#[cfg(test)]
pub(crate) mod test_reference {
    //! fixtures/perf/perf_reference.json, written by fixtures/perf/make_perf_reference.py.
    use serde_json::Value;
    use std::sync::OnceLock;

    pub fn reference() -> &'static Value {
        static REFERENCE: OnceLock<Value> = OnceLock::new();
        REFERENCE.get_or_init(|| {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/perf/perf_reference.json");
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
        })
    }

    /// |actual - expected| <= rel_tol x max(1, |expected|).
    pub fn assert_close_rel(actual: f64, expected: &Value, rel_tol: f64, what: &str) {
        let expected = expected
            .as_f64()
            .unwrap_or_else(|| panic!("{what}: reference is not a number: {expected}"));
        let tol = rel_tol * expected.abs().max(1.0);
        assert!(
            (actual - expected).abs() <= tol,
            "{what}: got {actual:e}, reference {expected:e}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Constant;
    impl TextClassifier for Constant {
        fn n_classes(&self) -> usize {
            3
        }
        fn predict_proba(&self, texts: &[&str]) -> crate::Result<Vec<Vec<f32>>> {
            Ok(texts.iter().map(|t| vec![t.len() as f32, 1.0, 0.0]).collect())
        }
    }

    #[test]
    fn measure_fills_timing_memory_and_cost() {
        let spec = PerfSpec {
            warmup: 1,
            single_examples: 3,
            batch_sizes: vec![1, 4],
            repeats: 3,
            ..PerfSpec::default()
        };
        let hw = Hardware::detect();
        let r = measure(
            &Constant,
            &["a", "b c", "d"],
            &spec,
            &hw,
            &PriceTable::builtin().unwrap(),
        );
        let t = r.timing.as_ref().unwrap();
        assert_eq!(t.single.as_ref().unwrap().n, 3);
        assert_eq!(t.batches.len(), 2);
        assert!(r.cost.batch_size.is_some() && r.cost.docs_per_s.unwrap() > 0.0);
        assert_eq!(r.cost.hardware_slug, hw.slug);
        #[cfg(target_os = "linux")]
        assert!(r.memory.peak_rss_bytes.unwrap() > 0);
        let json = serde_json::to_string(&r).unwrap();
        // serde_json parses floats to within an ulp (no `float_roundtrip`): compare the rest.
        let back: PerfReport = serde_json::from_str(&json).unwrap();
        assert_eq!((back.cost.price, back.memory), (r.cost.price.clone(), r.memory.clone()));
        assert_eq!(back.timing.unwrap().batches.len(), 2);
    }

    #[test]
    fn suite_hardware_slug_overrides_the_detected_one_for_pricing() {
        let spec = PerfSpec {
            warmup: 0,
            single_examples: 1,
            batch_sizes: vec![2],
            repeats: 1,
            hardware: Some("t4".into()),
            ..PerfSpec::default()
        };
        let r = measure(
            &Constant,
            &["a"],
            &spec,
            &Hardware::detect(),
            &PriceTable::builtin().unwrap(),
        );
        assert_eq!(r.cost.hardware_slug, "t4");
        assert_eq!(r.cost.price.unwrap().entry.slug, "t4");
    }
}
