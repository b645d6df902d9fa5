//! The results schema: `results.json` of a run (versioned; documented in the README) and the
//! per-model `model.json` that makes runs resumable.

use crate::analysis::SplitAnalysis;
use crate::data::{InputFile, LoadReport};
use crate::error::{Error, Result};
use crate::perf::hardware::Hardware;
use crate::suite::EvaluationSpec;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Bump when a field changes meaning or disappears; readers refuse other versions clearly.
pub const SCHEMA_VERSION: u32 = 1;

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
    pub train_report: Option<serde_json::Value>,
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
    /// Stored untyped so that readers of other shapes (claims, compare, edited files) keep
    /// working; `perf_report()` gives the typed view.
    pub perf: Option<serde_json::Value>,
    /// A quantised variant's full-precision model (its id): this row is that trained model
    /// with its backbone linear layers in `quantize`'s format. Absent for trained models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant_of: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantize: Option<crate::models::quantize::QuantFormat>,
}

impl ModelResult {
    /// The run's directory name under `models/`.
    pub fn dir_name(&self) -> &str {
        self.dir.as_deref().unwrap_or(&self.id)
    }

    /// The perf step's report, when present and of the current shape.
    pub fn perf_report(&self) -> Option<crate::perf::PerfReport> {
        serde_json::from_value(self.perf.clone()?).ok()
    }
}

impl Results {
    /// Read a results file, refusing other schema versions with a clear message.
    pub fn read(path: &Path) -> Result<Results> {
        let value: serde_json::Value = crate::fsutil::read_json(path)?;
        let version = value.get("schema_version").and_then(|v| v.as_u64());
        if version != Some(SCHEMA_VERSION as u64) {
            return Err(Error::bad_input(format!(
                "{}: results schema version {} is not supported by this clsbench (expects {SCHEMA_VERSION}); \
                 re-run the suite, or use the clsbench version that wrote it",
                path.display(),
                version.map_or("missing".to_string(), |v| v.to_string())
            )));
        }
        serde_json::from_value(value).map_err(|e| Error::bad_input(format!("{}: {e}", path.display())))
    }

    pub fn model(&self, id: &str) -> Option<&ModelResult> {
        self.models.iter().find(|m| m.id == id)
    }

    pub fn split(&self, name: &str) -> Option<&SplitAnalysis> {
        self.splits.iter().find(|s| s.split == name)
    }
}
