//! Cost per million documents from a measured throughput and an hourly price.
//!
//! cost per 1M documents = price per hour / (documents per second x 3600) x 1e6, at one batch
//! size per model: the best measured unless the suite names one. A missing price makes the cost
//! unknown (`None`), never zero.

use super::prices::{AppliedPrice, PriceTable};
use super::timing::BatchTiming;
use serde::{Deserialize, Serialize};

const SECONDS_PER_HOUR: f64 = 3600.0;
const MILLION: f64 = 1e6;

/// Hours of the priced hardware (GPU-hours on a GPU, instance-hours on a CPU) to classify one
/// million documents at `docs_per_s`; `None` for a non-positive or non-finite throughput.
pub fn device_hours_per_million_docs(docs_per_s: f64) -> Option<f64> {
    (docs_per_s.is_finite() && docs_per_s > 0.0).then(|| MILLION / (docs_per_s * SECONDS_PER_HOUR))
}

/// US dollars to classify one million documents at `docs_per_s` on hardware costing
/// `usd_per_hour`.
pub fn usd_per_million_docs(usd_per_hour: f64, docs_per_s: f64) -> Option<f64> {
    device_hours_per_million_docs(docs_per_s).map(|hours| hours * usd_per_hour)
}

/// How the batch size that prices a model was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchChoice {
    /// The batch size with the highest measured documents/s.
    BestMeasured,
    /// The suite's `[perf] cost_batch_size`.
    Configured,
    /// The suite's size was not measured (failed or not in `batch_sizes`); best measured used.
    ConfiguredUnavailable,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    /// The slug that was priced (detected, or the suite's `[perf] hardware`).
    pub hardware_slug: String,
    /// Batch size whose throughput is priced; `None` when nothing was measured.
    pub batch_size: Option<usize>,
    pub batch_choice: BatchChoice,
    pub docs_per_s: Option<f64>,
    pub device_hours_per_million_docs: Option<f64>,
    /// The price used, with its source, date and table; `None` when the slug has no price.
    pub price: Option<AppliedPrice>,
    /// `None` when unknown: no price for the slug, or no throughput measured.
    pub usd_per_million_docs: Option<f64>,
    /// Why the cost is unknown, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
}

/// Price a model's measured throughput on `hardware_slug`.
pub fn price_throughput(
    batches: &[BatchTiming],
    configured_batch: Option<usize>,
    hardware_slug: &str,
    prices: &PriceTable,
) -> CostReport {
    let best = batches
        .iter()
        .filter(|b| b.docs_per_s.is_finite())
        .max_by(|a, b| a.docs_per_s.total_cmp(&b.docs_per_s));
    let (chosen, choice) = match configured_batch {
        None => (best, BatchChoice::BestMeasured),
        Some(size) => match batches.iter().find(|b| b.batch_size == size) {
            Some(b) => (Some(b), BatchChoice::Configured),
            None => (best, BatchChoice::ConfiguredUnavailable),
        },
    };
    let docs_per_s = chosen.map(|b| b.docs_per_s);
    let hours = docs_per_s.and_then(device_hours_per_million_docs);
    let price = prices.lookup(hardware_slug);
    let usd = match (&price, docs_per_s) {
        (Some(p), Some(d)) => usd_per_million_docs(p.entry.usd_per_hour, d),
        _ => None,
    };
    let unknown_reason = match (&price, hours) {
        (_, None) => Some("no batch size was measured".to_string()),
        (None, _) => Some(format!(
            "no price for hardware slug {hardware_slug:?} in the price table; add one with [perf] prices"
        )),
        _ => None,
    };
    CostReport {
        hardware_slug: hardware_slug.to_string(),
        batch_size: chosen.map(|b| b.batch_size),
        batch_choice: choice,
        docs_per_s,
        device_hours_per_million_docs: hours,
        price,
        usd_per_million_docs: usd,
        unknown_reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perf::test_reference::{assert_close_rel, reference};

    fn batch(size: usize, docs_per_s: f64) -> BatchTiming {
        let pass_ms = 64.0 / docs_per_s * 1e3;
        BatchTiming {
            batch_size: size,
            repeats: 1,
            pool_docs: 64,
            median_pass_ms: pass_ms,
            p95_pass_ms: pass_ms,
            median_batch_ms: pass_ms / (64 / size) as f64,
            ms_per_doc: 1e3 / docs_per_s,
            docs_per_s,
            tokens_per_s: None,
        }
    }

    #[test]
    fn cost_arithmetic_matches_the_python_reference() {
        let cases = reference()["cost"].as_array().unwrap();
        assert!(cases.len() >= 4);
        for c in cases {
            let (price, dps) = (c["usd_per_hour"].as_f64().unwrap(), c["docs_per_s"].as_f64().unwrap());
            let what = format!("${price}/h at {dps} docs/s");
            assert_close_rel(
                usd_per_million_docs(price, dps).unwrap(),
                &c["usd_per_million_docs"],
                1e-12,
                &what,
            );
            assert_close_rel(
                device_hours_per_million_docs(dps).unwrap(),
                &c["hours_per_million_docs"],
                1e-12,
                &what,
            );
        }
    }

    #[test]
    fn zero_or_missing_throughput_has_no_cost() {
        assert_eq!(usd_per_million_docs(1.0, 0.0), None);
        assert_eq!(usd_per_million_docs(1.0, f64::NAN), None);
        let r = price_throughput(&[], None, "t4", &PriceTable::builtin().unwrap());
        assert_eq!((r.batch_size, r.usd_per_million_docs), (None, None));
        assert!(r.unknown_reason.unwrap().contains("no batch size"));
    }

    #[test]
    fn best_batch_is_priced_by_default_and_names_its_price() {
        let prices = PriceTable::builtin().unwrap();
        let batches = [batch(1, 50.0), batch(32, 400.0), batch(64, 380.0)];
        let r = price_throughput(&batches, None, "t4", &prices);
        assert_eq!((r.batch_size, r.batch_choice), (Some(32), BatchChoice::BestMeasured));
        let t4 = prices.lookup("t4").unwrap();
        assert_eq!(
            r.usd_per_million_docs,
            usd_per_million_docs(t4.entry.usd_per_hour, 400.0)
        );
        assert_eq!(r.price, Some(t4));
        assert!(r.unknown_reason.is_none());
    }

    #[test]
    fn configured_batch_is_used_and_falls_back_when_unmeasured() {
        let prices = PriceTable::builtin().unwrap();
        let batches = [batch(1, 50.0), batch(8, 200.0), batch(32, 400.0)];
        let r = price_throughput(&batches, Some(8), "t4", &prices);
        assert_eq!((r.batch_size, r.batch_choice), (Some(8), BatchChoice::Configured));
        let r = price_throughput(&batches, Some(64), "t4", &prices);
        assert_eq!(
            (r.batch_size, r.batch_choice),
            (Some(32), BatchChoice::ConfiguredUnavailable)
        );
    }

    #[test]
    fn unknown_slug_is_unknown_cost_not_zero() {
        let r = price_throughput(&[batch(8, 100.0)], None, "tpu-v5e", &PriceTable::builtin().unwrap());
        assert_eq!(r.usd_per_million_docs, None);
        assert!(r.device_hours_per_million_docs.is_some(), "hours do not need a price");
        assert!(r.unknown_reason.unwrap().contains("tpu-v5e"));
    }
}
