//! Test support: small but complete `Results` built from gold labels and predictions through
//! the real analysis (metrics, paired bootstrap), without training anything.

use crate::analysis::{self, SplitInput};
use crate::data::{InputFile, LoadReport};
use crate::perf::hardware::Hardware;
use crate::report::results::{DatasetInfo, ModelResult, ModelStatus, Results, SuiteInfo, SCHEMA_VERSION};
use crate::suite::{EvaluationSpec, ResampleRng};

pub struct Model {
    pub id: &'static str,
    pub pred: Vec<usize>,
    pub perf: Option<crate::perf::PerfReport>,
    pub train_report: Option<crate::report::results::TrainRecord>,
}

pub fn model(id: &'static str, pred: Vec<usize>) -> Model {
    Model {
        id,
        pred,
        perf: None,
        train_report: None,
    }
}

/// Gold labels of `n` documents over `k` classes, with a long tail (class c has weight k − c).
pub fn gold(n: usize, k: usize) -> Vec<usize> {
    let weights: Vec<usize> = (0..k).map(|c| k - c).collect();
    let total: usize = weights.iter().sum();
    (0..n)
        .map(|i| {
            let mut r = (i * 7919) % total;
            let mut c = 0;
            while r >= weights[c] {
                r -= weights[c];
                c += 1;
            }
            c
        })
        .collect()
}

/// Predictions equal to `gold` except every `every`-th document (from `offset`), shifted by one class.
pub fn pred_with_errors(gold: &[usize], k: usize, every: usize, offset: usize) -> Vec<usize> {
    gold.iter()
        .enumerate()
        .map(|(i, &g)| if i % every == offset % every { (g + 1) % k } else { g })
        .collect()
}

/// A run of suite `suite` on `slug`, with one evaluated split "val" over `doc_ids`.
pub fn results(
    suite: &str,
    slug: &str,
    k: usize,
    doc_ids: Vec<String>,
    gold: Vec<usize>,
    models: Vec<Model>,
) -> Results {
    let eval = EvaluationSpec {
        resamples: 200,
        rng: ResampleRng::Chacha,
        tiers: Vec::new(),
        ..EvaluationSpec::default()
    };
    let preds: Vec<(String, Vec<usize>)> = models.iter().map(|m| (m.id.to_string(), m.pred.clone())).collect();
    let input = SplitInput {
        split: "val",
        doc_ids,
        gold: gold.clone(),
        preds,
        n_classes: k,
        train_labels: None,
    };
    let split = analysis::analyse(input, &eval, 49).expect("valid synthetic predictions");
    let mut hardware = Hardware::detect();
    hardware.slug = slug.to_string();
    Results {
        schema_version: SCHEMA_VERSION,
        clsbench_version: "test".into(),
        git_rev: "test".into(),
        suite: SuiteInfo {
            name: suite.into(),
            path: format!("{suite}.toml"),
            sha256: "0".repeat(64),
            seed: 42,
        },
        run_id: format!("{slug}-run"),
        created: "2026-01-01T00:00:00Z".into(),
        hardware,
        dataset: DatasetInfo {
            labels: (0..k).map(|c| format!("class {c}")).collect(),
            train_counts: vec![10; k],
            n_train: 10 * k,
            n_val: gold.len(),
            n_test: 0,
            inputs: Vec::<InputFile>::new(),
            load: LoadReport::default(),
        },
        evaluation: eval,
        models: models
            .into_iter()
            .map(|m| ModelResult {
                id: m.id.into(),
                kind: "tfidf-logreg".into(),
                status: ModelStatus::Ok,
                error: None,
                seed: None,
                dir: None,
                spec: serde_json::Value::Null,
                cache_key: String::new(),
                train_wall_s: 1.0,
                predict_wall_s: 1.0,
                train_report: m.train_report,
                weights: Vec::new(),
                predictions: None,
                probabilities: None,
                perf: m.perf,
                variant_of: None,
                quantize: None,
            })
            .collect(),
        seed_runs: Vec::new(),
        splits: vec![split],
        decisions: Vec::new(),
    }
}

pub fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("doc{i}")).collect()
}

/// A timed model's perf record: single-text median latency `p50` ms (p95 twice that), one
/// batch size (32) at `ms_per_doc_32` ms per document, priced at `usd` per million documents
/// (`None`: no price for the hardware).
pub fn perf(ms_per_doc_32: f64, usd: Option<f64>, p50: f64) -> crate::perf::PerfReport {
    use crate::perf::{cost::BatchChoice, timing::*, CostReport, MemoryReport, PerfReport};
    PerfReport {
        timing: Some(TimingReport {
            n_texts: 10,
            warmup: 1,
            single: Some(LatencyStats {
                n: 10,
                median_ms: p50,
                p95_ms: 2.0 * p50,
                mean_ms: p50,
                min_ms: p50,
                max_ms: 2.0 * p50,
            }),
            batches: vec![BatchTiming {
                batch_size: 32,
                repeats: 3,
                pool_docs: 64,
                median_pass_ms: 64.0 * ms_per_doc_32,
                p95_pass_ms: 64.0 * ms_per_doc_32,
                median_batch_ms: 32.0 * ms_per_doc_32,
                ms_per_doc: ms_per_doc_32,
                docs_per_s: 1000.0 / ms_per_doc_32,
                tokens_per_s: None,
            }],
            failed_batches: Vec::new(),
            skipped_batch_sizes: Vec::new(),
            token_unit: "whitespace words".into(),
            protocol_wall_s: 1.0,
            load_average_1m: None,
            other_cpu_cores: None,
        }),
        memory: MemoryReport {
            peak_rss_bytes: Some(512 << 20),
            rss_scope: None,
            start_rss_bytes: None,
            device_peak_bytes: None,
            device_source: None,
        },
        cost: CostReport {
            hardware_slug: "cpu-x-2c".into(),
            batch_size: Some(32),
            batch_choice: BatchChoice::BestMeasured,
            docs_per_s: Some(1000.0 / ms_per_doc_32),
            device_hours_per_million_docs: Some(ms_per_doc_32 / 3.6),
            price: None,
            usd_per_million_docs: usd,
            unknown_reason: usd.is_none().then(|| "no price for cpu-x-2c".into()),
        },
        training: None,
        error: None,
    }
}
