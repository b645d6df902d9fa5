//! The results schema: `results.json` of a run (versioned; documented in the README) and the
//! per-model `model.json` that makes runs resumable.
//!
//! Every part a reader uses is typed: a renamed field stops compiling instead of turning a
//! verdict into "inconclusive". The one untyped field is a model's `spec`, the suite entry as
//! it was run: a record of the user's input (read by nobody, kept for provenance), whose shape
//! is the suite schema's and not the results'.
//!
//! Versions: 2 (this one) types `train_report` as a [`TrainRecord`] tagged by `fit` and `perf`
//! as a [`PerfReport`]. Version 1 files (untagged training reports) are migrated on reading;
//! anything else, or a part that does not fit the types, is refused naming the file and the
//! field.

use crate::analysis::SplitAnalysis;
use crate::baseline::FitReport;
use crate::data::{InputFile, LoadReport};
use crate::error::{Error, Result};
use crate::models::quantize::QuantFormat;
use crate::perf::hardware::Hardware;
use crate::perf::PerfReport;
use crate::suite::EvaluationSpec;
use crate::train::TrainReport;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Bump when a field changes meaning or disappears; readers refuse other versions clearly.
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub schema_version: u32,
    pub clsbench_version: String,
    pub git_rev: String,
    pub suite: SuiteInfo,
    pub run_id: String,
    /// RFC 3339 time the statistics were computed.
    pub created: String,
    pub hardware: Hardware,
    pub dataset: DatasetInfo,
    pub evaluation: EvaluationSpec,
    /// One entry per model: its first training seed's run (the only one with one seed).
    pub models: Vec<ModelResult>,
    /// The runs of every further training seed, model by model in seed order (empty with one
    /// seed per model). Their predictions feed the seed-aware statistics of each split.
    #[serde(default)]
    pub seed_runs: Vec<ModelResult>,
    /// One analysis per evaluated split, over the models that finished.
    pub splits: Vec<SplitAnalysis>,
    /// The suite's `[[decision]]` sections judged on those splits (absent in older results).
    #[serde(default)]
    pub decisions: Vec<crate::report::decision::DecisionReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuiteInfo {
    pub name: String,
    pub path: String,
    pub sha256: String,
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetInfo {
    pub labels: Vec<String>,
    pub train_counts: Vec<usize>,
    pub n_train: usize,
    pub n_val: usize,
    pub n_test: usize,
    pub inputs: Vec<InputFile>,
    pub load: LoadReport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelStatus {
    Ok,
    /// The model's kind or method is not implemented in this version: reported, not dropped.
    NotImplemented,
    Failed,
}

/// One model's outcome; also stored alone as `models/<id>/model.json` for resuming.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelResult {
    pub id: String,
    pub kind: String,
    pub status: ModelStatus,
    #[serde(default)]
    pub error: Option<String>,
    /// The training seed of this run; absent in results written before suites had `seeds`
    /// (then the suite's `seed`).
    #[serde(default)]
    pub seed: Option<u64>,
    /// This run's directory under `models/`: the id with one seed, `<id>.seed<S>` with several;
    /// absent in older results (the id).
    #[serde(default)]
    pub dir: Option<String>,
    /// The model's suite entry, as run.
    pub spec: serde_json::Value,
    /// sha256 over everything that determines the predictions (spec, data, seed, version):
    /// a later run with the same key reuses them.
    pub cache_key: String,
    pub train_wall_s: f64,
    pub predict_wall_s: f64,
    /// What training reported (iterations, epochs, losses, trainable parameters...).
    #[serde(default)]
    pub train_report: Option<TrainRecord>,
    /// sha256 of the weights a model started from.
    #[serde(default)]
    pub weights: Vec<InputFile>,
    /// Relative path of the predictions file inside the run directory.
    #[serde(default)]
    pub predictions: Option<String>,
    /// Relative path (inside the model's directory) of its per-class probabilities file
    /// (`report::probabilities`); absent in results written before it existed.
    #[serde(default)]
    pub probabilities: Option<String>,
    /// Latency / throughput / memory / cost (filled by the perf step; `None` when not timed).
    #[serde(default)]
    pub perf: Option<PerfReport>,
    /// A quantised variant's full-precision model (its id): this row is that trained model
    /// with its backbone linear layers in `quantize`'s format. Absent for trained models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant_of: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantize: Option<QuantFormat>,
}

impl ModelResult {
    /// The run's directory name under `models/`.
    pub fn dir_name(&self) -> &str {
        self.dir.as_deref().unwrap_or(&self.id)
    }

    /// Read a `model.json` (the resume cache, a job's model in `merge`); one written before
    /// schema 2 is migrated as in [`Results::read`].
    pub fn read(path: &Path) -> Result<ModelResult> {
        let mut value: serde_json::Value = crate::fsutil::read_json(path)?;
        migrate_model_v1(&mut value).map_err(|e| Error::bad_input(format!("{}: {e}", path.display())))?;
        typed(value, path)
    }

    /// The transformer fit's report, for a model that was fine-tuned.
    pub fn transformer_report(&self) -> Option<&TrainReport> {
        match self.train_report.as_ref()? {
            TrainRecord::Transformer(r) => Some(r),
            _ => None,
        }
    }
}

/// What a model's fit reported, by kind of fit (`train_report` in results.json, its kind in
/// the field `fit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fit", rename_all = "kebab-case")]
pub enum TrainRecord {
    /// A fine-tuned transformer (full or LoRA): epochs, losses, parameters, precision, memory.
    Transformer(Box<TrainReport>),
    /// TF-IDF + logistic regression: vocabulary and how L-BFGS ended.
    TfidfLogreg(FitReport),
    /// A quantised variant: the trained model re-loaded with its backbone quantised.
    Quantized(QuantizedRecord),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantizedRecord {
    /// The id of the full-precision model this variant quantises.
    pub quantized_from: String,
    pub format: QuantFormat,
    /// Seconds to re-load and quantise the trained model: the variant's "training".
    pub load_and_quantize_s: f64,
}

/// Schema 1 stored a model's training report untagged: give it its `fit` from its fields (an
/// epoch list is a transformer's, `quantized_from` a variant's, `n_features` the TF-IDF
/// baseline's). A report that already has one is left alone, so this is safe on any version.
fn migrate_model_v1(model: &mut serde_json::Value) -> std::result::Result<(), String> {
    let id = model.get("id").and_then(|v| v.as_str()).unwrap_or("?").to_string();
    let Some(report) = model.get_mut("train_report").and_then(|r| r.as_object_mut()) else {
        return Ok(());
    };
    if report.contains_key("fit") {
        return Ok(());
    }
    let fit = if report.contains_key("epochs") {
        "transformer"
    } else if report.contains_key("quantized_from") {
        "quantized"
    } else if report.contains_key("n_features") {
        "tfidf-logreg"
    } else {
        return Err(format!(
            "model {id}: field `train_report`: a schema-1 training report of no known kind \
             (expected `epochs`, `quantized_from` or `n_features`)"
        ));
    };
    report.insert("fit".into(), fit.into());
    Ok(())
}

/// `value` as a `T`, or an error naming the file and the field that does not fit.
fn typed<T: serde::de::DeserializeOwned>(value: serde_json::Value, path: &Path) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        Error::bad_input(format!(
            "{}: field `{}`: {}; re-run the suite, or read it with the clsbench version that wrote it",
            path.display(),
            e.path(),
            e.inner()
        ))
    })
}

impl Results {
    /// Read a results file: schema 2 as it is, schema 1 migrated ([`migrate_model_v1`]);
    /// other versions, and parts that do not fit the types, are refused naming the field.
    pub fn read(path: &Path) -> Result<Results> {
        let mut value: serde_json::Value = crate::fsutil::read_json(path)?;
        let version = value.get("schema_version").and_then(|v| v.as_u64());
        match version {
            Some(v) if v == SCHEMA_VERSION as u64 => {}
            Some(1) => {
                for list in ["models", "seed_runs"] {
                    if let Some(models) = value.get_mut(list).and_then(|m| m.as_array_mut()) {
                        for m in models {
                            migrate_model_v1(m).map_err(|e| Error::bad_input(format!("{}: {e}", path.display())))?;
                        }
                    }
                }
                value["schema_version"] = SCHEMA_VERSION.into();
            }
            _ => {
                return Err(Error::bad_input(format!(
                    "{}: results schema version {} is not supported by this clsbench (reads 1 and {SCHEMA_VERSION}); \
                     re-run the suite, or use the clsbench version that wrote it",
                    path.display(),
                    version.map_or("missing".to_string(), |v| v.to_string())
                )))
            }
        }
        typed(value, path)
    }

    pub fn model(&self, id: &str) -> Option<&ModelResult> {
        self.models.iter().find(|m| m.id == id)
    }

    pub fn split(&self, name: &str) -> Option<&SplitAnalysis> {
        self.splits.iter().find(|s| s.split == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn repo(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
    }

    /// Every results.json in the repository: the committed references and the sample.
    fn committed_results() -> Vec<PathBuf> {
        let mut out = vec![repo("fixtures/results-sample/results.json")];
        for slug in std::fs::read_dir(repo("results")).unwrap().flatten() {
            for suite in std::fs::read_dir(slug.path()).into_iter().flatten().flatten() {
                let p = suite.path().join("results.json");
                if p.is_file() {
                    out.push(p);
                }
            }
        }
        assert!(out.len() >= 3, "{out:?}");
        out
    }

    fn write(dir: &Path, value: &serde_json::Value) -> PathBuf {
        let path = dir.join("results.json");
        std::fs::write(&path, serde_json::to_vec(value).unwrap()).unwrap();
        path
    }

    #[test]
    fn committed_schema_1_results_migrate_with_each_fit_typed_by_kind() {
        for path in committed_results() {
            let raw: serde_json::Value = crate::fsutil::read_json(&path).unwrap();
            let r = Results::read(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(r.schema_version, SCHEMA_VERSION);
            for (m, raw_m) in r.models.iter().zip(raw["models"].as_array().unwrap()) {
                match (&m.train_report, m.kind.as_str(), &m.variant_of) {
                    (None, ..) => assert_ne!(m.status, ModelStatus::Ok, "{}: {}", path.display(), m.id),
                    (Some(TrainRecord::TfidfLogreg(f)), "tfidf-logreg", None) => {
                        assert_eq!(
                            f.n_features as u64,
                            raw_m["train_report"]["n_features"].as_u64().unwrap()
                        )
                    }
                    (Some(TrainRecord::Transformer(t)), "encoder" | "decoder", None) => {
                        let epochs = raw_m["train_report"]["epochs"].as_array().unwrap();
                        assert_eq!(t.epochs.len(), epochs.len());
                        assert_eq!(
                            t.trainable_params as u64,
                            raw_m["train_report"]["trainable_params"].as_u64().unwrap()
                        );
                    }
                    (Some(TrainRecord::Quantized(q)), _, Some(base)) => assert_eq!(&q.quantized_from, base),
                    (other, kind, _) => panic!("{}: {}: {kind} with {other:?}", path.display(), m.id),
                }
                // The typed perf holds the numbers the file has.
                if let Some(p) = &m.perf {
                    let raw_p50 = raw_m.pointer("/perf/timing/single/median_ms").and_then(|v| v.as_f64());
                    assert_eq!(p.single_median_ms(), raw_p50, "{}: {}", path.display(), m.id);
                }
            }
        }
    }

    #[test]
    fn schema_2_round_trips_and_reads_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        let r = Results::read(&repo("fixtures/results-sample/results.json")).unwrap();
        let path = write(dir.path(), &serde_json::to_value(&r).unwrap());
        let back = Results::read(&path).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&r).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(r#""fit":"tfidf-logreg""#) && text.contains(r#""schema_version":2"#));
    }

    /// Regression: perf was stored untyped, so a renamed or mistyped perf field made `verify`
    /// say "inconclusive" and dropped the model from the summary without a word.
    #[test]
    fn a_perf_field_of_another_shape_is_refused_naming_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let mut raw: serde_json::Value =
            crate::fsutil::read_json(&repo("fixtures/results-sample/results.json")).unwrap();
        raw["models"][1]["perf"]["timing"]["single"]["median_ms"] = "fast".into();
        let err = Results::read(&write(dir.path(), &raw)).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
        let msg = err.to_string();
        assert!(
            msg.contains("results.json: field `models[1].perf.timing.single.median_ms`"),
            "{msg}"
        );
    }

    #[test]
    fn other_versions_and_unknown_schema_1_fits_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut raw: serde_json::Value =
            crate::fsutil::read_json(&repo("fixtures/results-sample/results.json")).unwrap();
        let mut future = raw.clone();
        future["schema_version"] = 3.into();
        let msg = Results::read(&write(dir.path(), &future)).unwrap_err().to_string();
        assert!(
            msg.contains("schema version 3 is not supported") && msg.contains("reads 1 and 2"),
            "{msg}"
        );
        let id = raw["models"][0]["id"].as_str().unwrap().to_string();
        raw["models"][0]["train_report"] = serde_json::json!({"loss": 0.5});
        let msg = Results::read(&write(dir.path(), &raw)).unwrap_err().to_string();
        assert!(msg.contains(&format!("model {id}: field `train_report`")), "{msg}");
    }

    #[test]
    fn a_schema_1_model_json_is_migrated_too() {
        let dir = tempfile::tempdir().unwrap();
        let raw: serde_json::Value = crate::fsutil::read_json(&repo("fixtures/results-sample/results.json")).unwrap();
        let path = dir.path().join("model.json");
        std::fs::write(&path, serde_json::to_vec(&raw["models"][0]).unwrap()).unwrap();
        let m = ModelResult::read(&path).unwrap();
        assert!(m.train_report.is_some() && m.id == raw["models"][0]["id"].as_str().unwrap());
    }
}
