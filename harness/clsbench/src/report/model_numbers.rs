//! Speed, cost and size numbers of one model, as `verify`, `compare` and the decision tables
//! read them from `results.json` (`perf`, `train_report`). Each accessor says which field it
//! reads and returns `None` when the model has no such number (not timed, not priced, not a
//! fine-tuned transformer) or it is not finite; callers then say that the number is missing.

use crate::report::results::ModelResult;

/// Single-example latency, median, in milliseconds: `perf.timing.single.median_ms`.
pub fn latency_ms(m: &ModelResult) -> Option<f64> {
    finite(m.perf.as_ref()?.timing.as_ref()?.single.as_ref()?.median_ms)
}

/// Documents per second at the batch size that prices the model (`perf.cost.docs_per_s`),
/// else at the best measured batch size (`perf.timing.batches[].docs_per_s`).
pub fn throughput_docs_per_s(m: &ModelResult) -> Option<f64> {
    let perf = m.perf.as_ref()?;
    if let Some(v) = perf.cost.docs_per_s.and_then(finite) {
        return Some(v);
    }
    perf.timing
        .as_ref()?
        .batches
        .iter()
        .filter_map(|b| finite(b.docs_per_s))
        .fold(None, |best, v| Some(best.map_or(v, |b: f64| b.max(v))))
}

/// Price of classifying one million documents, in US dollars: `perf.cost.usd_per_million_docs`.
pub fn cost_per_1m_usd(m: &ModelResult) -> Option<f64> {
    finite(m.perf.as_ref()?.cost.usd_per_million_docs?)
}

/// Share of parameters that training updates (0..1), from a fine-tuned transformer's report:
/// `trainable_params / total_params`.
pub fn trainable_share(m: &ModelResult) -> Option<f64> {
    let report = m.transformer_report()?;
    (report.total_params > 0).then(|| report.trainable_params as f64 / report.total_params as f64)
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perf::timing::BatchTiming;
    use crate::perf::PerfReport;
    use crate::report::results::{ModelStatus, TrainRecord};
    use crate::report::testkit;
    use crate::train::TrainReport;

    fn model(perf: Option<PerfReport>, train_report: Option<TrainRecord>) -> ModelResult {
        ModelResult {
            id: "m".into(),
            kind: "decoder".into(),
            status: ModelStatus::Ok,
            error: None,
            seed: None,
            dir: None,
            spec: serde_json::Value::Null,
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
        let mut perf = testkit::perf(10.0, None, 5.0);
        let timing = perf.timing.as_mut().unwrap();
        let batch = timing.batches[0].clone();
        timing.batches = [(1, 10.0), (32, 90.0), (64, 80.0)]
            .map(|(batch_size, docs_per_s)| BatchTiming {
                batch_size,
                docs_per_s,
                ..batch.clone()
            })
            .to_vec();
        perf.cost.docs_per_s = Some(80.0);
        assert_eq!(throughput_docs_per_s(&model(Some(perf.clone()), None)), Some(80.0));
        perf.cost.docs_per_s = None;
        assert_eq!(throughput_docs_per_s(&model(Some(perf.clone()), None)), Some(90.0));
        perf.cost.docs_per_s = Some(f64::NAN);
        assert_eq!(
            throughput_docs_per_s(&model(Some(perf), None)),
            Some(90.0),
            "NaN is not a number"
        );
    }

    #[test]
    fn missing_numbers_are_none() {
        let mut untimed = testkit::perf(10.0, None, 5.0);
        untimed.timing = None;
        let m = model(Some(untimed), None);
        assert_eq!(latency_ms(&m), None);
        assert_eq!(cost_per_1m_usd(&m), None, "no price");
        assert_eq!(trainable_share(&m), None, "no training report");
        let baseline = model(None, Some(TrainRecord::TfidfLogreg(tfidf_fit())));
        assert_eq!(trainable_share(&baseline), None, "not a transformer");
        assert_eq!(cost_per_1m_usd(&model(None, None)), None);
    }

    #[test]
    fn trainable_share_from_counts() {
        // The seed's PEFT count for Qwen2.5-0.5B LoRA r16 (fixtures/seed/README.md).
        let report = TrainReport::for_tests(10, &[1.0], 2_263_936, 496_397_952);
        let m = model(None, Some(TrainRecord::Transformer(Box::new(report))));
        let share = trainable_share(&m).unwrap();
        assert!((share - 2_263_936.0 / 496_397_952.0).abs() < 1e-15 && (share * 100.0 - 0.456).abs() < 1e-3);
        let timed = model(Some(testkit::perf(10.0, Some(0.5), 53.2)), None);
        assert_eq!((latency_ms(&timed), cost_per_1m_usd(&timed)), (Some(53.2), Some(0.5)));
    }

    fn tfidf_fit() -> crate::baseline::FitReport {
        serde_json::from_value(serde_json::json!({
            "n_features": 10, "iterations": 3, "evaluations": 4, "converged": true, "final_loss": 0.1,
            "max_abs_gradient": 1e-5, "termination": "gradient below tol", "fit_seconds": 1.0,
            "vectorize_seconds": 0.5
        }))
        .unwrap()
    }
}
