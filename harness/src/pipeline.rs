//! `clsbench run`: suite -> data -> fit each model -> predictions -> statistics -> results.
//!
//! Each model's predictions are written (atomically) as soon as it finishes, with a cache key
//! over everything that determines them; a re-run reuses finished models with the same key, so
//! an interrupted run resumes without losing work. Statistics are recomputed from the
//! predictions files every time: they are cheap and always consistent with them.

use crate::analysis;
use crate::classifier::TextClassifier;
use crate::data::{self, Dataset, Example};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::perf::hardware::Hardware;
use crate::report::manifest;
use crate::report::predictions::{self, PredictionRow};
use crate::report::results::{DatasetInfo, ModelResult, ModelStatus, Results, SuiteInfo, SCHEMA_VERSION};
use crate::suite::{ModelKind, ModelSpec, SplitName, Suite};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Options of `clsbench run` beyond the suite itself.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run directory name under `<output_dir>/<suite>/` (default: the hardware slug).
    pub run_id: Option<String>,
    /// Override the suite's output directory.
    pub output_dir: Option<PathBuf>,
    /// Redo models even when finished results with the same inputs exist.
    pub force: bool,
    /// Only these model ids (default: all).
    pub only: Vec<String>,
    /// Skip the timing protocol.
    pub no_perf: bool,
}

/// What `run` produced, for the CLI to print.
pub struct RunOutcome {
    pub run_dir: PathBuf,
    pub results: Results,
    /// The first failure among models, to map to an exit code after everything was written.
    pub first_error: Option<Error>,
}

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_REV: &str = env!("CLSBENCH_GIT_REV");

pub fn run(suite_path: &Path, opts: &RunOptions) -> Result<RunOutcome> {
    let started = chrono::Utc::now();
    let suite = Suite::load(suite_path)?;
    let suite_sha = fsutil::sha256_file(suite_path)?;
    for id in &opts.only {
        if !suite.models.iter().any(|m| &m.id == id) {
            return Err(Error::bad_input(format!(
                "--only {id:?}: no model with that id in {}",
                suite_path.display()
            )));
        }
    }
    let hardware = Hardware::detect();
    // A bad price table is bad input: refuse it before any model trains.
    let prices = crate::perf::prices::PriceTable::with_user_file(suite.perf.prices.as_deref())?;
    let perf = (suite.perf.enabled && !opts.no_perf).then_some((&hardware, &prices));
    let run_id = opts.run_id.clone().unwrap_or_else(|| hardware.slug.clone());
    let run_dir = opts
        .output_dir
        .clone()
        .unwrap_or_else(|| suite.output_dir.clone())
        .join(&suite.name)
        .join(&run_id);
    eprintln!("clsbench: suite {} -> {}", suite.name, run_dir.display());

    let (dataset, load_report) = data::load(&suite)?;
    eprintln!(
        "clsbench: {} classes; train {} / val {} / test {} rows",
        dataset.labels.len(),
        dataset.train.len(),
        dataset.val.len(),
        dataset.test.len()
    );
    write_split_file(&run_dir.join("split.csv"), &dataset)?;

    let data_key: Vec<&str> = dataset.inputs.iter().map(|i| i.sha256.as_str()).collect();
    let mut models = Vec::new();
    let mut first_error = None;
    for spec in &suite.models {
        if !opts.only.is_empty() && !opts.only.contains(&spec.id) {
            continue;
        }
        let key = cache_key(&suite, spec, &data_key);
        let model_dir = run_dir.join("models").join(&spec.id);
        let cached = (!opts.force).then(|| load_cached(&model_dir, &key)).flatten();
        let result = match cached {
            Some(r) => {
                eprintln!(
                    "clsbench: {}: finished results with the same inputs exist, reusing (use --force to redo)",
                    spec.id
                );
                r
            }
            None => {
                let r = fit_and_predict(&suite, spec, &dataset, &model_dir, &key, perf);
                fsutil::write_json_atomic(&model_dir.join("model.json"), &r)?;
                r
            }
        };
        match result.status {
            ModelStatus::Ok => {}
            ModelStatus::NotImplemented => {
                eprintln!(
                    "clsbench: {}: not implemented in this version: {}",
                    spec.id,
                    result.error.as_deref().unwrap_or("")
                )
            }
            ModelStatus::Failed => {
                eprintln!(
                    "clsbench: {}: FAILED: {}",
                    spec.id,
                    result.error.as_deref().unwrap_or("")
                );
                if first_error.is_none() {
                    first_error = Some(Error::Model(format!(
                        "model {}: {}",
                        spec.id,
                        result.error.clone().unwrap_or_default()
                    )));
                }
            }
        }
        models.push(result);
    }

    let splits = analysis::analyse_run(&suite, &dataset, &models, &run_dir)?;
    let results = Results {
        schema_version: SCHEMA_VERSION,
        clsbench_version: VERSION.to_string(),
        git_rev: GIT_REV.to_string(),
        suite: SuiteInfo {
            name: suite.name.clone(),
            path: suite_path.display().to_string(),
            sha256: suite_sha,
            seed: suite.seed,
        },
        run_id,
        created: chrono::Utc::now().to_rfc3339(),
        hardware,
        dataset: DatasetInfo {
            labels: dataset.labels.clone(),
            train_counts: dataset.train_counts(),
            n_train: dataset.train.len(),
            n_val: dataset.val.len(),
            n_test: dataset.test.len(),
            inputs: dataset.inputs.clone(),
            load: load_report,
        },
        evaluation: suite.evaluation.clone(),
        models,
        splits,
    };
    fsutil::write_json_atomic(&run_dir.join("results.json"), &results)?;
    manifest::write(&run_dir.join("manifest.json"), &results, started, chrono::Utc::now())?;
    // summary.md, metrics tables and plots: the same code `clsbench report` reruns.
    crate::report::regenerate::write_outputs(&run_dir, &results)?;
    Ok(RunOutcome {
        run_dir,
        results,
        first_error,
    })
}

/// sha256 over what determines a model's predictions.
fn cache_key(suite: &Suite, spec: &ModelSpec, data_shas: &[&str]) -> String {
    let key = serde_json::json!({
        "clsbench": VERSION,
        "model": spec,
        "seed": suite.seed,
        "labels": suite.labels,
        "split": suite.split,
        "eval_splits": suite.evaluation.splits,
        "data": data_shas,
    });
    fsutil::sha256_bytes(key.to_string().as_bytes())
}

fn load_cached(model_dir: &Path, key: &str) -> Option<ModelResult> {
    let r: ModelResult = fsutil::read_json(&model_dir.join("model.json")).ok()?;
    let preds_ok = r.predictions.as_ref().is_some_and(|p| model_dir.join(p).is_file());
    (r.cache_key == key && r.status == ModelStatus::Ok && preds_ok).then_some(r)
}

/// Fit one model and write its predictions; failures become a `Failed` result, not an abort,
/// so one broken model does not cost the others' work.
fn fit_and_predict(
    suite: &Suite,
    spec: &ModelSpec,
    dataset: &Dataset,
    model_dir: &Path,
    key: &str,
    perf: Option<(&Hardware, &crate::perf::prices::PriceTable)>,
) -> ModelResult {
    let mut result = ModelResult {
        id: spec.id.clone(),
        kind: spec.kind.name().to_string(),
        status: ModelStatus::Ok,
        error: None,
        spec: serde_json::to_value(spec).unwrap_or_default(),
        cache_key: key.to_string(),
        train_wall_s: 0.0,
        predict_wall_s: 0.0,
        train_report: None,
        weights: Vec::new(),
        predictions: None,
        perf: None,
    };
    eprintln!("clsbench: {}: training ({})", spec.id, spec.kind.name());
    let t0 = Instant::now();
    let fitted = fit(suite, spec, dataset, model_dir);
    result.train_wall_s = t0.elapsed().as_secs_f64();
    let classifier = match fitted {
        Ok((c, report, weights)) => {
            result.train_report = Some(report);
            result.weights = weights;
            c
        }
        Err(Error::NotImplemented(msg)) => {
            result.status = ModelStatus::NotImplemented;
            result.error = Some(msg);
            return result;
        }
        Err(e) => {
            result.status = ModelStatus::Failed;
            result.error = Some(e.to_string());
            return result;
        }
    };
    let t1 = Instant::now();
    match predict_splits(classifier.as_ref(), suite, dataset) {
        Ok(rows) => {
            result.predict_wall_s = t1.elapsed().as_secs_f64();
            let path = model_dir.join("predictions.csv");
            if let Err(e) = predictions::write(&path, &rows) {
                result.status = ModelStatus::Failed;
                result.error = Some(e.to_string());
            } else {
                result.predictions = Some("predictions.csv".to_string());
            }
        }
        Err(e) => {
            result.status = ModelStatus::Failed;
            result.error = Some(e.to_string());
        }
    }
    eprintln!(
        "clsbench: {}: done in {:.1} s (train) + {:.1} s (predict)",
        spec.id, result.train_wall_s, result.predict_wall_s
    );
    if let (Some((hardware, prices)), ModelStatus::Ok) = (perf, result.status) {
        result.perf = serde_json::to_value(time_model(
            classifier.as_ref(),
            suite,
            spec,
            dataset,
            &result,
            hardware,
            prices,
        ))
        .ok();
    }
    result
}

/// The timing protocol, after the predictions are written (timing never changes them).
fn time_model(
    classifier: &dyn TextClassifier,
    suite: &Suite,
    spec: &ModelSpec,
    dataset: &Dataset,
    result: &ModelResult,
    hardware: &Hardware,
    prices: &crate::perf::prices::PriceTable,
) -> crate::perf::PerfReport {
    let primary = match suite.evaluation.primary_split {
        SplitName::Test => &dataset.test,
        _ => &dataset.val,
    };
    let source = if primary.is_empty() { &dataset.test } else { primary };
    let texts: Vec<&str> = source.iter().map(|e| e.text.as_str()).collect();
    eprintln!(
        "clsbench: {}: timing (batch sizes {:?})",
        spec.id, suite.perf.batch_sizes
    );
    let mut report = crate::perf::measure(classifier, &texts, &suite.perf, hardware, prices);
    let epochs = match &spec.kind {
        ModelKind::Encoder(t) | ModelKind::Decoder(t) => Some(t.epochs),
        ModelKind::TfidfLogreg(_) => None,
    };
    report.training = Some(crate::perf::training::from_fit(
        result.train_wall_s,
        dataset.train.len(),
        epochs,
        result.train_report.as_ref(),
    ));
    if let Some(e) = &report.error {
        eprintln!("clsbench: {}: timing failed: {e}", spec.id);
    }
    report
}

type Fitted = (Box<dyn TextClassifier>, serde_json::Value, Vec<data::InputFile>);

fn fit(suite: &Suite, spec: &ModelSpec, dataset: &Dataset, model_dir: &Path) -> Result<Fitted> {
    match &spec.kind {
        ModelKind::TfidfLogreg(params) => {
            let texts: Vec<&str> = dataset.train.iter().map(|e| e.text.as_str()).collect();
            let labels: Vec<usize> = dataset.train.iter().map(|e| e.label).collect();
            let (model, report) = crate::baseline::TfidfLogReg::fit(&texts, &labels, dataset.labels.len(), params)?;
            let report = serde_json::to_value(&report).unwrap_or_default();
            Ok((Box::new(model), report, Vec::new()))
        }
        ModelKind::Encoder(t) | ModelKind::Decoder(t) => {
            crate::train::fit_for_pipeline(spec, t, dataset, suite.seed, model_dir)
        }
    }
}

fn predict_splits(model: &dyn TextClassifier, suite: &Suite, dataset: &Dataset) -> Result<Vec<PredictionRow>> {
    let mut rows = Vec::new();
    for &split in &suite.evaluation.splits {
        let examples: &[Example] = match split {
            SplitName::Val => &dataset.val,
            SplitName::Test => &dataset.test,
            SplitName::Train => &dataset.train,
        };
        let bar = crate::progress::bar(examples.len() as u64, split.as_str());
        // Chunks keep memory bounded and let the bar move; predictions do not depend on them.
        for chunk in examples.chunks(256) {
            let texts: Vec<&str> = chunk.iter().map(|e| e.text.as_str()).collect();
            let preds = model.predict(&texts)?;
            for (e, (p, prob)) in chunk.iter().zip(preds) {
                rows.push(PredictionRow {
                    id: e.id.clone(),
                    split: split.as_str().to_string(),
                    gold: dataset.labels[e.label].clone(),
                    pred: dataset.labels[p].clone(),
                    prob,
                });
            }
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
    }
    Ok(rows)
}

/// `split.csv`: which row went where, so anyone can rebuild the exact split (the scikit-learn
/// reference script reads it).
fn write_split_file(path: &Path, dataset: &Dataset) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let enc = |e: csv::Error| Error::Model(format!("cannot encode split file: {e}"));
    w.write_record(["id", "split", "label"]).map_err(enc)?;
    for (name, rows) in [
        ("train", &dataset.train),
        ("val", &dataset.val),
        ("test", &dataset.test),
    ] {
        for e in rows.iter() {
            w.write_record([e.id.as_str(), name, dataset.labels[e.label].as_str()])
                .map_err(enc)?;
        }
    }
    let bytes = w.into_inner().map_err(|e| Error::Model(e.to_string()))?;
    fsutil::write_atomic(path, &bytes)
}
