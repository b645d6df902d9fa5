//! Speed, cost and size numbers of one model, read from the loosely typed parts of
//! `results.json` (`perf`, `train_report`).
//!
//! Those fields are written by other steps (`perf::PerfReport`, the training report) and are
//! stored untyped, so `verify` and `compare` read them only through this module: a change of
//! shape is one edit here. Each accessor names the field it reads and returns `None` when it
//! does not hold a finite number; callers then say that the number is missing.

use crate::report::results::ModelResult;
use serde_json::Value;

/// Single-example latency, median, in milliseconds: `perf.timing.single.median_ms`.
pub fn latency_ms(m: &ModelResult) -> Option<f64> {
    first_number(&perf(m)?, &["/timing/single/median_ms"])
}

/// Documents per second at the batch size that prices the model (`perf.cost.docs_per_s`),
/// else at the best measured batch size (`perf.timing.batches[].docs_per_s`).
pub fn throughput_docs_per_s(m: &ModelResult) -> Option<f64> {
    let perf = perf(m)?;
    if let Some(v) = first_number(&perf, &["/cost/docs_per_s"]) {
        return Some(v);
    }
    let batches = perf.pointer("/timing/batches")?.as_array()?;
    batches
        .iter()
        .filter_map(|b| first_number(b, &["/docs_per_s"]))
        .fold(None, |best, v| Some(best.map_or(v, |b: f64| b.max(v))))
}

/// Price of classifying one million documents, in US dollars: `perf.cost.usd_per_million_docs`.
pub fn cost_per_1m_usd(m: &ModelResult) -> Option<f64> {
    first_number(&perf(m)?, &["/cost/usd_per_million_docs"])
}

/// Share of parameters that training updates (0..1), from the training report:
/// `trainable_params / total_params`.
pub fn trainable_share(m: &ModelResult) -> Option<f64> {
    let report = m.train_report.as_ref()?;
    let trainable = first_number(report, &["/trainable_params"])?;
    let total = first_number(report, &["/total_params"])?;
    (total > 0.0).then(|| trainable / total)
}

fn perf(m: &ModelResult) -> Option<Value> {
    // Through `to_value` so this keeps working when `perf` becomes a typed struct.
    serde_json::to_value(m.perf.as_ref()?).ok().filter(|v| !v.is_null())
}

fn first_number(v: &Value, pointers: &[&str]) -> Option<f64> {
    pointers
        .iter()
        .find_map(|p| v.pointer(p)?.as_f64())
        .filter(|x| x.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::results::ModelStatus;
    use serde_json::json;

    fn model(perf: Option<Value>, train_report: Option<Value>) -> ModelResult {
        ModelResult {
            id: "m".into(),
            kind: "decoder".into(),
            status: ModelStatus::Ok,
            error: None,
            seed: None,
            dir: None,
            spec: Value::Null,
            cache_key: String::new(),
            train_wall_s: 0.0,
            predict_wall_s: 0.0,
            train_report,
            weights: Vec::new(),
            predictions: None,
            probabilities: None,
            perf,
            variant_of: None,
            quantize: None,
        }
    }

    #[test]
    fn throughput_prefers_the_priced_batch_then_the_best() {
        let batches = json!([{"batch_size": 1, "docs_per_s": 10.0}, {"batch_size": 32, "docs_per_s": 90.0}, {"batch_size": 64, "docs_per_s": 80.0}]);
        let priced = model(
            Some(json!({"timing": {"batches": batches}, "cost": {"batch_size": 64, "docs_per_s": 80.0}})),
            None,
        );
        assert_eq!(throughput_docs_per_s(&priced), Some(80.0));
        let unpriced = model(
            Some(json!({"timing": {"batches": batches}, "cost": {"docs_per_s": null}})),
            None,
        );
        assert_eq!(throughput_docs_per_s(&unpriced), Some(90.0));
    }

    #[test]
    fn missing_or_non_numeric_fields_are_none() {
        let m = model(
            Some(json!({"timing": {"single": {"median_ms": "fast"}}})),
            Some(json!({"trainable_params": 5})),
        );
        assert_eq!(latency_ms(&m), None);
        assert_eq!(trainable_share(&m), None, "no total: no share");
        assert_eq!(cost_per_1m_usd(&model(None, None)), None);
    }

    #[test]
    fn trainable_share_from_counts() {
        // The seed's PEFT count for Qwen2.5-0.5B LoRA r16 (fixtures/seed/README.md).
        let m = model(
            None,
            Some(json!({"trainable_params": 2_263_936u64, "total_params": 496_397_952u64})),
        );
        let share = trainable_share(&m).unwrap();
        assert!((share - 2_263_936.0 / 496_397_952.0).abs() < 1e-15 && (share * 100.0 - 0.456).abs() < 1e-3);
        assert_eq!(
            latency_ms(&model(Some(json!({"timing": {"single": {"median_ms": 53.2}}})), None)),
            Some(53.2)
        );
    }
}
