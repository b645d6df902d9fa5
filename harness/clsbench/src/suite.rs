//! The suite file: what to compare, on which data, with which statistics.
//!
//! A suite is TOML, documented field by field in the README. Every table rejects unknown
//! fields (a misspelt `learning_rate` must not silently fall back to a default), and
//! `Suite::load` names the file, line and field of anything wrong. Relative paths in a suite
//! are resolved against the suite file's own directory, as Cargo does for its manifests.

use crate::error::{Error, Result};
use crate::models::params::LoraSettings;
use crate::models::precision::DTypeRequest;
use crate::models::{Family, Pooling};
use crate::train::plan::{Method, TrainPlan};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    /// Short name; results go to `<output_dir>/<name>/<run-id>/`.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Seed for splits, shuffling, initialisation and dropout.
    pub seed: u64,
    /// Training seeds: every model trains once per seed (default: `[seed]`). A model's own
    /// `seeds` overrides this list.
    #[serde(default)]
    pub seeds: Option<Vec<u64>>,
    /// What the training seeds control: `["training"]` (initialisation of new weights, dropout,
    /// batch order; the split stays the one `seed` draws) or `["training", "split"]` (each seed
    /// also re-draws the stratified split; comparisons across seeds are then unpaired).
    #[serde(default = "default_seed_controls")]
    pub seed_controls: Vec<SeedControl>,
    pub dataset: DatasetSpec,
    #[serde(default)]
    pub labels: LabelSpec,
    pub split: SplitSpec,
    #[serde(default)]
    pub evaluation: EvaluationSpec,
    #[serde(default)]
    pub perf: PerfSpec,
    /// Where results are written, relative to the current directory (default `results`).
    #[serde(default = "default_output_dir")]
    pub output_dir: PathBuf,
    /// Where transformers run: `auto` (CUDA when built with it and a GPU is present, else the
    /// CPU), `cpu`, `cuda` or `cuda:N`; `clsbench run --device` overrides it.
    #[serde(default = "default_device")]
    pub device: String,
    /// Default `max_memory_gb` of every transformer model that sets none (GiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_gb: Option<f64>,
    pub models: Vec<ModelSpec>,
    /// `[[decision]]`: deployment envelopes every result row is judged against.
    #[serde(default)]
    pub decision: Vec<crate::report::decision::spec::DecisionSpec>,
}

fn default_device() -> String {
    "auto".to_string()
}

fn default_seed_controls() -> Vec<SeedControl> {
    vec![SeedControl::Training]
}

/// What a training seed controls (`seed_controls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeedControl {
    /// Initialisation of new weights, dropout and batch order.
    Training,
    /// The stratified train/val/test split.
    Split,
}

fn default_output_dir() -> PathBuf {
    PathBuf::from("results")
}

/// Where the rows come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DatasetSpec {
    /// One CSV file; the split section decides train/val/test.
    Csv {
        path: PathBuf,
        text_column: String,
        label_column: String,
        /// Column holding a stable row id; default: the 0-based data row number.
        #[serde(default)]
        id_column: Option<String>,
    },
    /// Separate train and test CSV files (val is carved from train by the split section).
    CsvSplits {
        train: PathBuf,
        test: PathBuf,
        text_column: String,
        label_column: String,
        #[serde(default)]
        id_column: Option<String>,
    },
    /// A Hugging Face Hub dataset's parquet files, fetched with hf-hub (cache honoured), or
    /// read from `local_dir` (a directory holding `<split>*.parquet` files) when given.
    Hub {
        repo: String,
        #[serde(default = "default_revision")]
        revision: String,
        text_column: String,
        label_column: String,
        #[serde(default)]
        local_dir: Option<PathBuf>,
    },
}

fn default_revision() -> String {
    "refs/convert/parquet".to_string()
}

impl DatasetSpec {
    pub fn text_column(&self) -> &str {
        match self {
            DatasetSpec::Csv { text_column, .. }
            | DatasetSpec::CsvSplits { text_column, .. }
            | DatasetSpec::Hub { text_column, .. } => text_column,
        }
    }
    pub fn label_column(&self) -> &str {
        match self {
            DatasetSpec::Csv { label_column, .. }
            | DatasetSpec::CsvSplits { label_column, .. }
            | DatasetSpec::Hub { label_column, .. } => label_column,
        }
    }
}

/// Label processing, applied in this order: merge map, label list, minimum count.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSpec {
    /// JSON object raw label -> canonical label (keys starting with `_` are comments).
    #[serde(default)]
    pub merge_map: Option<PathBuf>,
    /// JSON array of the class names; class id = position. Rows whose (merged) label is not
    /// in the list are dropped and counted. Without a list, the classes are the sorted
    /// distinct labels that survive `min_count` (Python `sorted()` order: byte order).
    #[serde(default)]
    pub label_list: Option<PathBuf>,
    /// Drop classes with fewer examples than this over all rows (before splitting).
    #[serde(default)]
    pub min_count: Option<usize>,
    /// With a label list: drop rows whose merged label is not listed (the seed drops its 7
    /// small classes this way) instead of stopping with an error.
    #[serde(default)]
    pub drop_unlisted: bool,
}

/// How rows become train / val / test.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SplitSpec {
    /// Per-class stratified split with the suite's seed. Fractions must sum to 1. Every
    /// class with at least 2 examples gets at least one train example.
    Stratified { train: f64, val: f64, test: f64 },
    /// Canonical index files (JSON arrays of row indices into the train rows / train file);
    /// test = the dataset's own test split (hub or csv-splits).
    Indices {
        train_indices: PathBuf,
        val_indices: PathBuf,
    },
    /// The dataset's own train/test files; val is a stratified `val` fraction of train.
    TrainTest { val: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitName {
    Train,
    Val,
    Test,
}

impl SplitName {
    pub fn as_str(self) -> &'static str {
        match self {
            SplitName::Train => "train",
            SplitName::Val => "val",
            SplitName::Test => "test",
        }
    }
}

/// Interval method for bootstrap confidence intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IntervalMethod {
    /// The seed's: 2.5th/97.5th percentiles of the resampled statistic.
    Percentile,
    /// Bias-corrected and accelerated (Efron 1987), jackknife acceleration.
    Bca,
}

pub use crate::train::plan::{ClassWeights, TrainMethod, Warmup};
/// The bootstrap's random stream and the tier schemes are the statistics' own settings; the
/// suite names them as they are.
pub use clsbench_stats::resample::ResampleRng;
pub use clsbench_stats::tiers::TierScheme;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationSpec {
    /// Splits to score every model on.
    #[serde(default = "default_eval_splits")]
    pub splits: Vec<SplitName>,
    /// Split whose numbers headline the summary (the seed reports val).
    #[serde(default = "default_primary_split")]
    pub primary_split: SplitName,
    #[serde(default = "default_resamples")]
    pub resamples: usize,
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// Interval methods to report (all are computed from the same resamples).
    #[serde(default = "default_intervals")]
    pub intervals: Vec<IntervalMethod>,
    #[serde(default = "default_rng")]
    pub rng: ResampleRng,
    /// Bootstrap seed; the seed's week-4 homework used RandomState(SEED + 7) = 49.
    #[serde(default)]
    pub bootstrap_seed: Option<u64>,
    #[serde(default = "default_tiers")]
    pub tiers: Vec<TierScheme>,
    /// Seed of the temperature-scaling halves, `RandomState(seed).permutation(n)`; default
    /// suite seed + 999 (the seed study's RandomState(42 + 999)).
    #[serde(default)]
    pub calibration_seed: Option<u64>,
}

fn default_eval_splits() -> Vec<SplitName> {
    vec![SplitName::Val, SplitName::Test]
}
fn default_primary_split() -> SplitName {
    SplitName::Val
}
fn default_resamples() -> usize {
    1000
}
fn default_confidence() -> f64 {
    0.95
}
fn default_intervals() -> Vec<IntervalMethod> {
    vec![IntervalMethod::Percentile, IntervalMethod::Bca]
}
fn default_rng() -> ResampleRng {
    ResampleRng::Numpy
}
fn default_tiers() -> Vec<TierScheme> {
    vec![TierScheme::Rank, TierScheme::Count, TierScheme::RareQuartile]
}

impl Default for EvaluationSpec {
    fn default() -> Self {
        EvaluationSpec {
            splits: default_eval_splits(),
            primary_split: default_primary_split(),
            resamples: default_resamples(),
            confidence: default_confidence(),
            intervals: default_intervals(),
            rng: default_rng(),
            bootstrap_seed: None,
            tiers: default_tiers(),
            calibration_seed: None,
        }
    }
}

impl EvaluationSpec {
    /// The bootstrap seed: explicit, else the suite seed + 7 as in the seed's homework.
    pub fn bootstrap_seed(&self, suite_seed: u64) -> u64 {
        self.bootstrap_seed.unwrap_or(suite_seed.saturating_add(7))
    }

    /// The bootstrap's runtime settings, resampling with `bootstrap_seed`.
    pub fn bootstrap_config(&self, bootstrap_seed: u64) -> clsbench_stats::bootstrap::BootstrapConfig {
        clsbench_stats::bootstrap::BootstrapConfig {
            resamples: self.resamples,
            confidence: self.confidence,
            seed: bootstrap_seed,
            rng: self.rng,
        }
    }

    /// The temperature-scaling split seed: explicit, else the suite seed + 999 as the seed's.
    pub fn calibration_seed(&self, suite_seed: u64) -> u64 {
        self.calibration_seed
            .unwrap_or(suite_seed.saturating_add(clsbench_stats::calibration::SPLIT_SEED_OFFSET))
    }
}

/// Timing protocol (separate from the accuracy run: timing never changes predictions).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerfSpec {
    /// Skip timing entirely.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Untimed warm-up passes before any measurement.
    #[serde(default = "default_warmup")]
    pub warmup: usize,
    /// Texts timed one at a time (the first N of the primary split).
    #[serde(default = "default_single")]
    pub single_examples: usize,
    #[serde(default = "default_batch_sizes")]
    pub batch_sizes: Vec<usize>,
    /// Timed batches per batch size; the median is reported.
    #[serde(default = "default_repeats")]
    pub repeats: usize,
    /// Price table overriding the built-in one (see `harness/clsbench/prices.toml`).
    #[serde(default)]
    pub prices: Option<PathBuf>,
    /// Hardware slug to price (default: the detected one).
    #[serde(default)]
    pub hardware: Option<String>,
    /// Stop a batch size's repeats once this many seconds were spent on it (at least one timed
    /// batch always runs); the results record the repeats done. Default: no limit.
    #[serde(default)]
    pub time_budget_s: Option<f64>,
    /// Batch size whose throughput prices the models (default: each model's best measured).
    #[serde(default)]
    pub cost_batch_size: Option<usize>,
}

fn default_true() -> bool {
    true
}
fn default_warmup() -> usize {
    3
}
fn default_single() -> usize {
    50
}
fn default_batch_sizes() -> Vec<usize> {
    vec![1, 8, 32, 64]
}
fn default_repeats() -> usize {
    10
}

impl Default for PerfSpec {
    fn default() -> Self {
        PerfSpec {
            enabled: true,
            warmup: default_warmup(),
            single_examples: default_single(),
            batch_sizes: default_batch_sizes(),
            repeats: default_repeats(),
            prices: None,
            hardware: None,
            time_budget_s: None,
            cost_batch_size: None,
        }
    }
}

/// One model of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSpec {
    /// Unique id used in results, claims and comparisons.
    pub id: String,
    /// This model's training seeds, overriding the suite's `seeds`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seeds: Option<Vec<u64>>,
    #[serde(flatten)]
    pub kind: ModelKind,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ModelKind {
    /// TF-IDF + multinomial logistic regression (the seed's classical baseline).
    TfidfLogreg(TfidfLogregSpec),
    /// Encoder (BERT, ModernBERT) + sequence-classification head.
    Encoder(TransformerSpec),
    /// Decoder (Llama, Qwen2) + classification head on the last non-pad token.
    Decoder(TransformerSpec),
}

// Hand-written because serde cannot combine `flatten` with `deny_unknown_fields`: we take
// `id` and `kind` out of the table, then decode the rest strictly into the kind's own struct.
impl<'de> Deserialize<'de> for ModelSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut table = toml::Table::deserialize(d)?;
        let id = match table.remove("id") {
            Some(toml::Value::String(s)) => s,
            Some(other) => return Err(D::Error::custom(format!("field `id`: expected a string, got {other}"))),
            None => return Err(D::Error::custom("missing field `id`")),
        };
        let kind = match table.remove("kind") {
            Some(toml::Value::String(s)) => s,
            _ => {
                return Err(D::Error::custom(format!(
                    "model {id:?}: missing field `kind` (tfidf-logreg, encoder or decoder)"
                )))
            }
        };
        let seeds = match table.remove("seeds") {
            None => None,
            Some(v) => Some(Vec::<u64>::deserialize(v).map_err(|e| {
                D::Error::custom(format!(
                    "model {id:?}: field `seeds`: {} (expected a list of non-negative integers)",
                    e.message().trim()
                ))
            })?),
        };
        if kind == "tfidf-logreg" && table.contains_key("gradient_checkpointing") {
            return Err(D::Error::custom(format!(
                "model {id:?}: field `gradient_checkpointing`: recomputes transformer layers, and tfidf-logreg has none; remove the field"
            )));
        }
        if kind == "tfidf-logreg" && table.contains_key("quantize") {
            return Err(D::Error::custom(format!(
                "model {id:?}: field `quantize`: quantises a transformer's linear layers, and tfidf-logreg has none \
                 (its sparse logistic regression is already tiny); remove the field"
            )));
        }
        let rest = toml::Value::Table(table);
        let fail = |e: serde_path_to_error::Error<toml::de::Error>| {
            let path = e.path().to_string();
            let message = e.into_inner().message().trim().to_string();
            // "field `epochs`: ..." unless the error is about the model table itself.
            let field = if path == "." {
                String::new()
            } else {
                format!("field `{path}`: ")
            };
            D::Error::custom(format!("model {id:?}: {field}{message}"))
        };
        let kind = match kind.as_str() {
            "tfidf-logreg" => ModelKind::TfidfLogreg(serde_path_to_error::deserialize(rest).map_err(fail)?),
            "encoder" => ModelKind::Encoder(serde_path_to_error::deserialize(rest).map_err(fail)?),
            "decoder" => ModelKind::Decoder(serde_path_to_error::deserialize(rest).map_err(fail)?),
            other => {
                return Err(D::Error::custom(format!(
                    "model {id:?}: unknown kind {other:?}; expected one of \"tfidf-logreg\", \"encoder\", \"decoder\""
                )))
            }
        };
        Ok(ModelSpec { id, seeds, kind })
    }
}

impl ModelSpec {
    /// A transformer entry's training plan (`None` for the TF-IDF baseline). Every entry was
    /// resolved once when the suite loaded, so this fails only for a spec changed since.
    pub fn train_plan(&self) -> Result<Option<TrainPlan>> {
        match self.kind.trainer() {
            Trainer::TfidfLogreg(_) => Ok(None),
            Trainer::Transformer(t, family) => self.plan_for(t, family).map(Some),
        }
    }

    /// The training plan of this entry's transformer `t` (from [`ModelKind::trainer`]).
    pub fn plan_for(&self, t: &TransformerSpec, family: Family) -> Result<TrainPlan> {
        t.resolve(&format!("model {:?}", self.id), family)
            .map_err(Error::bad_input)
    }
}

/// What an entry trains, for code that treats encoders and decoders alike: the baseline's
/// settings, or a transformer's settings with its family.
#[derive(Debug, Clone, Copy)]
pub enum Trainer<'a> {
    TfidfLogreg(&'a TfidfLogregSpec),
    Transformer(&'a TransformerSpec, Family),
}

impl ModelKind {
    pub fn trainer(&self) -> Trainer<'_> {
        match self {
            ModelKind::TfidfLogreg(p) => Trainer::TfidfLogreg(p),
            ModelKind::Encoder(t) => Trainer::Transformer(t, Family::Encoder),
            ModelKind::Decoder(t) => Trainer::Transformer(t, Family::Decoder),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ModelKind::TfidfLogreg(_) => "tfidf-logreg",
            ModelKind::Encoder(_) => "encoder",
            ModelKind::Decoder(_) => "decoder",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TfidfLogregSpec {
    #[serde(default = "default_ngram_range")]
    pub ngram_range: [usize; 2],
    #[serde(default = "default_max_features")]
    pub max_features: Option<usize>,
    #[serde(default)]
    pub sublinear_tf: bool,
    /// Inverse regularisation strength, as scikit-learn's `C`.
    #[serde(default = "default_c")]
    pub c: f64,
    /// L-BFGS iterations (scikit-learn's default is 100; the seed used 1000).
    #[serde(default = "default_max_iter")]
    pub max_iter: usize,
    /// Gradient tolerance (scikit-learn's `tol`).
    #[serde(default = "default_tol")]
    pub tol: f64,
}

fn default_ngram_range() -> [usize; 2] {
    [1, 2]
}
fn default_max_features() -> Option<usize> {
    Some(50_000)
}
fn default_c() -> f64 {
    1.0
}
fn default_max_iter() -> usize {
    1000
}
fn default_tol() -> f64 {
    1e-4
}

impl Default for TfidfLogregSpec {
    fn default() -> Self {
        TfidfLogregSpec {
            ngram_range: default_ngram_range(),
            max_features: default_max_features(),
            sublinear_tf: false,
            c: default_c(),
            max_iter: default_max_iter(),
            tol: default_tol(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoraSpec {
    pub r: usize,
    pub alpha: f64,
    #[serde(default)]
    pub dropout: f64,
    /// Module names as PEFT spells them (`q_proj`, `Wqkv`, `query`, ...).
    pub targets: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TransformerSpec {
    /// Hub id (`Qwen/Qwen2.5-0.5B`) or a local directory in Hugging Face layout.
    pub checkpoint: String,
    /// Local directory tried before the Hub: `$CLSBENCH_MODEL_DIR/<last part of checkpoint>`
    /// is also tried automatically.
    #[serde(default)]
    pub local_dir: Option<PathBuf>,
    pub method: TrainMethod,
    #[serde(default)]
    pub lora: Option<LoraSpec>,
    pub learning_rate: f64,
    /// Epochs to train, or at most, with `early_stopping_patience`.
    pub epochs: usize,
    /// Stop once this many epochs in a row bring no higher val macro F1 than the best so far
    /// (as transformers' `EarlyStoppingCallback`); the best epoch's weights are kept either
    /// way, and the learning-rate schedule still spans `epochs`. Left out of the serialised
    /// spec when unset, so cache keys of runs without it are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping_patience: Option<usize>,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_eval_batch_size")]
    pub eval_batch_size: usize,
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// Decay biases and norm weights too, as `torch.optim.AdamW(model.parameters())` in the
    /// seed's custom loops does; default false: HF Trainer's groups, which exempt them.
    #[serde(default)]
    pub decay_bias_and_norm: bool,
    #[serde(default = "default_warmup_spec")]
    pub warmup: Warmup,
    #[serde(default)]
    pub grad_clip: Option<f64>,
    #[serde(default = "default_one")]
    pub grad_accumulation: usize,
    #[serde(default = "default_class_weights")]
    pub class_weights: ClassWeights,
    /// Pooling for encoders (`cls` or `mean`); decoders always read the last non-pad token.
    #[serde(default)]
    pub pooling: Option<String>,
    /// Sort batches by length to cut padding (training batches are still shuffled as groups).
    #[serde(default)]
    pub length_bucketing: bool,
    /// Compute dtype (frozen weights, activations): `auto` (f32 on the CPU, f16 on a GPU of
    /// compute capability < 8, bf16 from 8), `f32`, `f16` or `bf16`; trainable tensors, the
    /// optimiser and the loss stay f32 (models/precision.rs).
    #[serde(default = "default_dtype")]
    pub dtype: String,
    /// Cap on training rows (a stratified subsample), for CPU-scale runs.
    #[serde(default)]
    pub max_train_examples: Option<usize>,
    /// Recompute each transformer layer in backward instead of keeping its activations
    /// (models/recompute.rs): less memory, about one more forward of time. Left out of the
    /// serialised spec when off, so cache keys of runs without it are unchanged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gradient_checkpointing: bool,
    /// Peak memory cap in GiB for training (train/memory.rs): each batch is split into
    /// micro-batches whose gradients accumulate when the estimate at the whole batch exceeds
    /// it. Defaults to the suite's top-level `max_memory_gb`; `clsbench run --max-memory-gb`
    /// overrides both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_gb: Option<f64>,
    /// Quantised inference variants of the trained model (`["q8_0", "q4_0"]`), each scored,
    /// timed and priced as its own row `<id>@<format>` beside the full-precision one
    /// (models/quantize.rs). Training is unchanged: left out of the model's cache key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quantize: Vec<crate::models::quantize::QuantFormat>,
}

impl TransformerSpec {
    /// This entry's training plan, every value checked; `at` names the entry in errors
    /// (`models[1] (id "x")`). `Suite::parse` resolves every entry, so a suite that loaded
    /// resolves again without error (after `--max-memory-gb` too, which only sets a cap > 0).
    pub fn resolve(&self, at: &str, family: Family) -> std::result::Result<TrainPlan, String> {
        let t = self;
        if t.method != TrainMethod::Lora && t.lora.is_some() {
            return Err(format!("{at}: field `lora` is only used with method = \"lora\""));
        }
        positive(at, "learning_rate", t.learning_rate)?;
        for (field, value) in [
            ("epochs", t.epochs),
            ("batch_size", t.batch_size),
            ("eval_batch_size", t.eval_batch_size),
            ("max_length", t.max_length),
            ("grad_accumulation", t.grad_accumulation),
        ] {
            if value == 0 {
                return Err(format!("{at}: field `{field}`: expected at least 1, got 0"));
            }
        }
        if !(t.weight_decay >= 0.0 && t.weight_decay.is_finite()) {
            return Err(format!(
                "{at}: field `weight_decay`: expected a number >= 0, got {}",
                t.weight_decay
            ));
        }
        if let Some(clip) = t.grad_clip {
            // A negative clip factor turns AdamW's steps uphill: silently wrong training.
            positive(at, "grad_clip", clip)?;
        }
        if let Warmup::Ratio(r) = t.warmup {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!(
                    "{at}: field `warmup`: `ratio` is a fraction of all steps in [0, 1], got {r}"
                ));
            }
        }
        if t.early_stopping_patience == Some(0) {
            return Err(format!(
                "{at}: field `early_stopping_patience`: expected at least 1 epoch without improvement (or leave it out to train every epoch), got 0"
            ));
        }
        if t.max_train_examples == Some(0) {
            return Err(format!(
                "{at}: field `max_train_examples`: expected at least 1 (or leave it out to train on every row), got 0"
            ));
        }
        let mut lora = None;
        if let Some(l) = &t.lora {
            if l.r == 0 {
                return Err(format!("{at}: field `lora.r`: expected a rank >= 1, got 0"));
            }
            positive(at, "lora.alpha", l.alpha)?;
            if !(0.0..1.0).contains(&l.dropout) {
                return Err(format!(
                    "{at}: field `lora.dropout`: expected a probability in [0, 1), got {}",
                    l.dropout
                ));
            }
            if l.targets.is_empty() || l.targets.iter().any(|t| t.trim().is_empty()) {
                return Err(format!(
                    "{at}: field `lora.targets`: expected module names (e.g. [\"q_proj\", \"v_proj\"])"
                ));
            }
            lora = Some(LoraSettings {
                r: l.r,
                alpha: l.alpha,
                dropout: l.dropout,
                targets: l.targets.clone(),
            });
        }
        if let Some(gb) = t.max_memory_gb {
            positive(at, "max_memory_gb", gb)?;
        }
        if let Some(f) = t
            .quantize
            .iter()
            .enumerate()
            .find_map(|(i, f)| t.quantize[..i].contains(f).then_some(f))
        {
            return Err(format!("{at}: field `quantize`: {:?} is listed twice", f.as_str()));
        }
        let dtype = DTypeRequest::parse(&t.dtype).map_err(|e| format!("{at}: field `dtype`: {e}"))?;
        let pooling = match t.pooling.as_deref() {
            None => None,
            Some("cls") => Some(Pooling::Cls),
            Some("mean") => Some(Pooling::Mean),
            Some(p) => {
                return Err(format!(
                    "{at}: field `pooling`: expected \"cls\" or \"mean\", got {p:?}"
                ))
            }
        };
        let method = match (t.method, lora) {
            (TrainMethod::Full, _) => Method::Full,
            (TrainMethod::LinearProbe, _) => Method::LinearProbe,
            (TrainMethod::Lora, Some(l)) => Method::Lora(l),
            (TrainMethod::Lora, None) => {
                return Err(format!(
                    "{at}: method = \"lora\" needs a [models.lora] table (r, alpha, targets)"
                ))
            }
        };
        Ok(TrainPlan {
            family,
            checkpoint: t.checkpoint.clone(),
            local_dir: t.local_dir.clone(),
            method,
            learning_rate: t.learning_rate,
            epochs: t.epochs,
            early_stopping_patience: t.early_stopping_patience,
            batch_size: t.batch_size,
            eval_batch_size: t.eval_batch_size,
            max_length: t.max_length,
            weight_decay: t.weight_decay,
            decay_bias_and_norm: t.decay_bias_and_norm,
            warmup: t.warmup,
            grad_clip: t.grad_clip,
            grad_accumulation: t.grad_accumulation,
            class_weights: t.class_weights,
            pooling,
            length_bucketing: t.length_bucketing,
            dtype,
            max_train_examples: t.max_train_examples,
            gradient_checkpointing: t.gradient_checkpointing,
            max_memory_gb: t.max_memory_gb,
            quantize: t.quantize.clone(),
        })
    }
}

fn default_batch_size() -> usize {
    32
}
fn default_eval_batch_size() -> usize {
    64
}
fn default_max_length() -> usize {
    128
}
fn default_weight_decay() -> f64 {
    0.01
}
fn default_warmup_spec() -> Warmup {
    Warmup::Ratio(0.1)
}
fn default_one() -> usize {
    1
}
fn default_class_weights() -> ClassWeights {
    ClassWeights::None
}
fn default_dtype() -> String {
    "auto".to_string()
}

/// Where the field named by a model entry's error (`model "ID": field `F`: ...`) starts in the
/// suite text: toml's span for such errors is the whole `[[models]]` array, since a model
/// table is decoded in two steps (see `ModelSpec`'s deserialiser).
fn model_field_offset(text: &str, message: &str) -> Option<usize> {
    #[derive(Deserialize)]
    struct Spans {
        #[serde(default)]
        models: Vec<std::collections::BTreeMap<String, toml::Spanned<toml::Value>>>,
    }
    let rest = message.strip_prefix("model \"")?;
    let (id, rest) = rest.split_once('"')?;
    let field = rest.strip_prefix(": field `")?.split('`').next()?;
    let top = field.split(['.', '[']).next()?;
    let spans: Spans = toml::from_str(text).ok()?;
    let model = spans
        .models
        .iter()
        .find(|m| m.get("id").is_some_and(|v| v.get_ref().as_str() == Some(id)))?;
    model.get(top).map(|v| v.span().start)
}

/// A seed list, when given, is non-empty and has no seed twice.
fn check_seed_list(field: &str, seeds: Option<&[u64]>) -> std::result::Result<(), String> {
    let Some(seeds) = seeds else { return Ok(()) };
    if seeds.is_empty() {
        return Err(format!(
            "{field}: expected at least one seed (or leave it out to train once with `seed`)"
        ));
    }
    let mut seen = BTreeSet::new();
    if let Some(dup) = seeds.iter().find(|s| !seen.insert(**s)) {
        return Err(format!(
            "{field}: seed {dup} is listed twice; every training seed must differ"
        ));
    }
    Ok(())
}

/// A finite number > 0 in `field`, else the error naming it.
fn positive(at: &str, field: &str, value: f64) -> std::result::Result<(), String> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(format!(
            "{at}: field `{field}`: expected a finite number > 0, got {value}"
        ))
    }
}

impl Suite {
    /// The training seeds of a model, in suite order: its own `seeds`, else the suite's, else
    /// the one `seed`.
    pub fn seeds_of(&self, model: &ModelSpec) -> Vec<u64> {
        model
            .seeds
            .clone()
            .or_else(|| self.seeds.clone())
            .unwrap_or_else(|| vec![self.seed])
    }

    /// Whether any model trains under more than one seed.
    pub fn has_several_seeds(&self) -> bool {
        self.models.iter().any(|m| self.seeds_of(m).len() > 1)
    }

    /// Whether each training seed also re-draws the split.
    pub fn seeds_redraw_split(&self) -> bool {
        self.seed_controls.contains(&SeedControl::Split)
    }

    /// Read, parse and validate a suite; relative paths are made relative to the suite's
    /// directory.
    pub fn load(path: &Path) -> Result<Suite> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut suite = Suite::parse(&text, path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        suite.resolve_paths(base);
        Ok(suite)
    }

    /// Parse and validate suite text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Suite> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let suite: Suite = toml::from_str(text).map_err(|e| {
            let message = e.message().trim();
            let at = model_field_offset(text, message)
                .or(e.span().map(|s| s.start))
                .map(|offset| format!(" line {}:", line_of(offset)))
                .unwrap_or_default();
            Error::bad_input(format!("{}:{at} {message}", origin.display()))
        })?;
        let mut suite = suite;
        suite
            .validate()
            .map_err(|msg| Error::bad_input(format!("{}: {msg}", origin.display())))?;
        if let Some(gb) = suite.max_memory_gb {
            for t in suite.transformer_specs_mut() {
                t.max_memory_gb.get_or_insert(gb);
            }
        }
        Ok(suite)
    }

    fn transformer_specs_mut(&mut self) -> impl Iterator<Item = &mut TransformerSpec> {
        self.models.iter_mut().filter_map(|m| match &mut m.kind {
            ModelKind::Encoder(t) | ModelKind::Decoder(t) => Some(t),
            ModelKind::TfidfLogreg(_) => None,
        })
    }

    /// `clsbench run --max-memory-gb`: the cap of every transformer, over the suite's own.
    pub fn cap_memory(&mut self, gb: f64) {
        self.max_memory_gb = Some(gb);
        for t in self.transformer_specs_mut() {
            t.max_memory_gb = Some(gb);
        }
    }

    fn validate(&self) -> std::result::Result<(), String> {
        // The name becomes a directory under `output_dir`: one path component.
        crate::fsutil::path_component("field `name`", &self.name).map_err(|e| e.to_string())?;
        crate::models::device::DeviceRequest::parse(&self.device).map_err(|e| format!("field `device`: {e}"))?;
        if self.models.is_empty() {
            return Err("field `models`: expected at least one [[models]] entry".into());
        }
        check_seed_list("field `seeds`", self.seeds.as_deref())?;
        if let Some(gb) = self.max_memory_gb {
            if !(gb > 0.0 && gb.is_finite()) {
                return Err(format!(
                    "field `max_memory_gb`: expected a finite number of GiB > 0, got {gb}"
                ));
            }
        }
        if self.seed_controls.first() != Some(&SeedControl::Training)
            || self.seed_controls.iter().collect::<BTreeSet<_>>().len() != self.seed_controls.len()
        {
            return Err(format!(
                "field `seed_controls`: expected [\"training\"] or [\"training\", \"split\"], got {:?}",
                self.seed_controls
            ));
        }
        if self.seed_controls.contains(&SeedControl::Split) && matches!(self.split, SplitSpec::Indices { .. }) {
            return Err(
                "field `seed_controls`: \"split\" re-draws a stratified split per seed, but [split] method = \"indices\" \
                 fixes the split; use seed_controls = [\"training\"]"
                    .into(),
            );
        }
        let mut ids = BTreeSet::new();
        for (i, m) in self.models.iter().enumerate() {
            let at = format!("models[{i}] (id {:?})", m.id);
            check_seed_list(&format!("{at}: field `seeds`"), m.seeds.as_deref())?;
            if m.seeds.is_some() && self.seeds_redraw_split() {
                return Err(format!(
                    "{at}: field `seeds`: with seed_controls = [\"training\", \"split\"] every seed draws a split all \
                     models share, so seeds are set once at the top level"
                ));
            }
            if m.id.is_empty() || !m.id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return Err(format!("{at}: field `id`: expected letters, digits, '-', '_' or '.'"));
            }
            if !ids.insert(m.id.clone()) {
                return Err(format!("{at}: field `id`: duplicate model id"));
            }
            match &m.kind {
                ModelKind::TfidfLogreg(t) => {
                    if t.ngram_range[0] == 0 || t.ngram_range[0] > t.ngram_range[1] {
                        return Err(format!(
                            "{at}: field `ngram_range`: expected [min, max] with 1 <= min <= max"
                        ));
                    }
                    positive(&at, "c", t.c)?;
                    positive(&at, "tol", t.tol)?;
                    if t.max_iter == 0 {
                        return Err(format!("{at}: field `max_iter`: expected at least 1 iteration, got 0"));
                    }
                    if t.max_features == Some(0) {
                        return Err(format!(
                            "{at}: field `max_features`: expected at least 1 (or leave it out for the default), got 0"
                        ));
                    }
                }
                ModelKind::Encoder(t) => {
                    t.resolve(&at, Family::Encoder)?;
                }
                ModelKind::Decoder(t) => {
                    t.resolve(&at, Family::Decoder)?;
                }
            }
        }
        if let SplitSpec::Stratified { train, val, test } = self.split {
            let all = [train, val, test];
            if all.iter().any(|f| !(0.0..=1.0).contains(f)) || (train + val + test - 1.0).abs() > 1e-9 || train <= 0.0 {
                return Err(format!("[split]: fields `train`, `val`, `test`: expected fractions summing to 1, got {train} + {val} + {test}"));
            }
        }
        if let SplitSpec::TrainTest { val } = self.split {
            if !(0.0..1.0).contains(&val) {
                return Err(format!(
                    "[split]: field `val`: expected a fraction in [0, 1), got {val}"
                ));
            }
        }
        let e = &self.evaluation;
        // A split that is scored must get rows.
        let empty_split = match self.split {
            SplitSpec::Stratified { val, test, .. } => [(SplitName::Val, val), (SplitName::Test, test)]
                .into_iter()
                .find(|&(split, f)| f == 0.0 && e.splits.contains(&split)),
            SplitSpec::TrainTest { val } => {
                (val == 0.0 && e.splits.contains(&SplitName::Val)).then_some((SplitName::Val, val))
            }
            SplitSpec::Indices { .. } => None,
        };
        if let Some((split, _)) = empty_split {
            return Err(format!(
                "[split]: field `{0}`: 0 leaves the {0} split empty, but [evaluation] `splits` scores it; \
                 give `{0}` a fraction > 0 or remove \"{0}\" from `splits`",
                split.as_str()
            ));
        }
        if !(e.confidence > 0.0 && e.confidence < 1.0) {
            return Err(format!(
                "[evaluation]: field `confidence`: expected a number in (0, 1), got {}",
                e.confidence
            ));
        }
        if e.resamples < 10 {
            return Err(format!(
                "[evaluation]: field `resamples`: expected at least 10, got {}",
                e.resamples
            ));
        }
        if e.rng == ResampleRng::Numpy {
            // numpy's RandomState takes a 32-bit seed.
            let seed = e.bootstrap_seed.unwrap_or(self.seed.saturating_add(7));
            if seed > u64::from(u32::MAX) {
                let field = if e.bootstrap_seed.is_some() {
                    "[evaluation]: field `bootstrap_seed`"
                } else {
                    "field `seed` (bootstrap seed = seed + 7)"
                };
                return Err(format!(
                    "{field}: rng = \"numpy\" replays RandomState, whose seed must be < 2^32; got {seed} (use rng = \"chacha\" for larger seeds)"
                ));
            }
        }
        if e.calibration_seed(self.seed) > u64::from(u32::MAX) {
            return Err(format!(
                "[evaluation]: field `calibration_seed` (default: seed + 999): the temperature-scaling halves replay numpy's RandomState, whose seed must be < 2^32; got {}",
                e.calibration_seed(self.seed)
            ));
        }
        if e.splits.is_empty() {
            return Err("[evaluation]: field `splits`: expected at least one of \"val\", \"test\"".into());
        }
        if !e.splits.contains(&e.primary_split) {
            return Err("[evaluation]: field `primary_split` must be one of `splits`".into());
        }
        if e.splits.contains(&SplitName::Train) {
            return Err("[evaluation]: field `splits`: scoring on the training split is not allowed".into());
        }
        if self.perf.batch_sizes.is_empty() {
            return Err("[perf]: field `batch_sizes`: expected at least one batch size (or `enabled = false`)".into());
        }
        if self.perf.batch_sizes.contains(&0) || self.perf.repeats == 0 {
            return Err("[perf]: fields `batch_sizes` and `repeats` must be >= 1".into());
        }
        if let Some(b) = self.perf.cost_batch_size {
            if !self.perf.batch_sizes.contains(&b) {
                return Err(format!(
                    "[perf]: field `cost_batch_size`: {b} is not one of the measured `batch_sizes` {:?}",
                    self.perf.batch_sizes
                ));
            }
        }
        if self.perf.time_budget_s.is_some_and(|t| !(t >= 0.0 && t.is_finite())) || self.perf.cost_batch_size == Some(0)
        {
            return Err("[perf]: field `time_budget_s` must be >= 0 seconds and `cost_batch_size` >= 1".into());
        }
        crate::report::decision::spec::validate(&self.decision, &e.splits, &self.perf)?;
        Ok(())
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        match &mut self.dataset {
            DatasetSpec::Csv { path, .. } => fix(path),
            DatasetSpec::CsvSplits { train, test, .. } => {
                fix(train);
                fix(test);
            }
            DatasetSpec::Hub { local_dir, .. } => {
                if let Some(d) = local_dir {
                    fix(d)
                }
            }
        }
        for p in [
            &mut self.labels.merge_map,
            &mut self.labels.label_list,
            &mut self.perf.prices,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
        if let SplitSpec::Indices {
            train_indices,
            val_indices,
        } = &mut self.split
        {
            fix(train_indices);
            fix(val_indices);
        }
        for m in &mut self.models {
            if let ModelKind::Encoder(t) | ModelKind::Decoder(t) = &mut m.kind {
                if let Some(d) = &mut t.local_dir {
                    fix(d)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
seed = 1
[dataset]
source = "csv"
path = "data.csv"
text_column = "text"
label_column = "label"
[split]
method = "stratified"
train = 0.7
val = 0.1
test = 0.2
[[models]]
id = "tfidf"
kind = "tfidf-logreg"
"#;

    fn parse(text: &str) -> Result<Suite> {
        Suite::parse(text, Path::new("suite.toml"))
    }

    const FULL_FT_ENCODER: &str = "[[models]]\nid = \"enc\"\nkind = \"encoder\"\ncheckpoint = \"m\"\nmethod = \"full\"\nlearning_rate = 1e-4\nepochs = 1\n";

    fn encoder_spec(s: &Suite) -> &TransformerSpec {
        match &s.models[1].kind {
            ModelKind::Encoder(t) => t,
            other => panic!("wrong kind {other:?}"),
        }
    }

    #[test]
    fn gradient_checkpointing_on_tfidf_is_refused_naming_the_field() {
        let text = MINIMAL.replace(
            "kind = \"tfidf-logreg\"",
            "kind = \"tfidf-logreg\"\ngradient_checkpointing = true",
        );
        let err = parse(&text).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
        let msg = err.to_string();
        assert!(
            msg.contains("field `gradient_checkpointing`") && msg.contains("tfidf"),
            "{msg}"
        );
    }

    #[test]
    fn quantize_lists_formats_refusing_tfidf_duplicates_and_unknown_names() {
        use crate::models::quantize::QuantFormat;
        let s = parse(&format!("{MINIMAL}{FULL_FT_ENCODER}quantize = [\"q8_0\", \"q4_0\"]\n")).unwrap();
        assert_eq!(encoder_spec(&s).quantize, [QuantFormat::Q8_0, QuantFormat::Q4_0]);
        let plain = parse(&format!("{MINIMAL}{FULL_FT_ENCODER}")).unwrap();
        assert!(encoder_spec(&plain).quantize.is_empty());
        assert!(!serde_json::to_string(encoder_spec(&plain))
            .unwrap()
            .contains("quantize"));

        let tfidf = MINIMAL.replace(
            "kind = \"tfidf-logreg\"",
            "kind = \"tfidf-logreg\"\nquantize = [\"q8_0\"]",
        );
        let msg = parse(&tfidf).unwrap_err().to_string();
        assert!(
            msg.contains("field `quantize`") && msg.contains("tfidf-logreg has none"),
            "{msg}"
        );

        let twice = parse(&format!("{MINIMAL}{FULL_FT_ENCODER}quantize = [\"q8_0\", \"q8_0\"]\n")).unwrap_err();
        assert_eq!(twice.exit_code(), crate::error::exit::BAD_INPUT);
        assert!(
            twice.to_string().contains("field `quantize`: \"q8_0\" is listed twice"),
            "{twice}"
        );

        let unknown = parse(&format!("{MINIMAL}{FULL_FT_ENCODER}quantize = [\"int8\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("model \"enc\"")
                && unknown.contains("quantize")
                && unknown.contains("int8")
                && unknown.contains("q8_0"),
            "{unknown}"
        );
    }

    #[test]
    fn memory_cap_defaults_from_the_top_level_and_the_flag_overrides_both() {
        let s = parse(&format!("{MINIMAL}{FULL_FT_ENCODER}gradient_checkpointing = true\n")).unwrap();
        assert!(encoder_spec(&s).gradient_checkpointing);
        assert_eq!(encoder_spec(&s).max_memory_gb, None);
        // Off and unset fields stay out of the serialised spec (and so out of cache keys).
        let plain = parse(&format!("{MINIMAL}{FULL_FT_ENCODER}")).unwrap();
        let json = serde_json::to_string(encoder_spec(&plain)).unwrap();
        assert!(
            !json.contains("gradient_checkpointing") && !json.contains("max_memory_gb"),
            "{json}"
        );
        let with_default = MINIMAL.replace("seed = 1\n", "seed = 1\nmax_memory_gb = 12.0\n");
        let s = parse(&format!("{with_default}{FULL_FT_ENCODER}")).unwrap();
        assert_eq!(encoder_spec(&s).max_memory_gb, Some(12.0));
        let mut s = parse(&format!("{with_default}{FULL_FT_ENCODER}max_memory_gb = 6.5\n")).unwrap();
        assert_eq!(encoder_spec(&s).max_memory_gb, Some(6.5));
        s.cap_memory(3.0);
        assert_eq!(encoder_spec(&s).max_memory_gb, Some(3.0));
        for (text, field) in [
            (
                format!("{MINIMAL}{FULL_FT_ENCODER}max_memory_gb = 0.0\n"),
                "field `max_memory_gb`",
            ),
            (
                format!("{MINIMAL}{FULL_FT_ENCODER}max_memory_gb = -2.0\n"),
                "field `max_memory_gb`",
            ),
            (
                format!(
                    "{}{FULL_FT_ENCODER}",
                    MINIMAL.replace("seed = 1\n", "seed = 1\nmax_memory_gb = nan\n")
                ),
                "field `max_memory_gb`",
            ),
        ] {
            let msg = parse(&text).unwrap_err().to_string();
            assert!(msg.contains(field), "{msg}");
        }
    }

    #[test]
    fn minimal_suite_gets_seed_defaults() {
        let s = parse(MINIMAL).unwrap();
        assert_eq!(s.evaluation.resamples, 1000);
        assert_eq!(s.evaluation.bootstrap_seed(s.seed), 8);
        assert_eq!(s.evaluation.rng, ResampleRng::Numpy);
        match &s.models[0].kind {
            ModelKind::TfidfLogreg(t) => assert_eq!(t, &TfidfLogregSpec::default()),
            other => panic!("wrong kind {other:?}"),
        }
    }

    #[test]
    fn device_and_dtype_default_to_auto_and_bad_values_name_the_field() {
        let s = parse(&format!("{MINIMAL}{ENCODER}")).unwrap();
        assert_eq!(s.device, "auto");
        match &s.models[1].kind {
            ModelKind::Encoder(t) => assert_eq!(t.dtype, "auto"),
            other => panic!("{other:?}"),
        }
        for ok in ["cpu", "cuda", "cuda:1"] {
            let text = MINIMAL.replace("seed = 1", &format!("seed = 1\ndevice = \"{ok}\""));
            assert_eq!(parse(&text).unwrap().device, ok);
        }
        let text = MINIMAL.replace("seed = 1", "seed = 1\ndevice = \"gpu0\"");
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("field `device`") && err.contains("\"cuda:N\"") && err.contains("gpu0"),
            "{err}"
        );
        let text = format!("{MINIMAL}{ENCODER}").replace("epochs = 1\n", "epochs = 1\ndtype = \"fp16\"\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("field `dtype`") && err.contains("\"bf16\"") && err.contains("fp16"),
            "{err}"
        );
    }

    #[test]
    fn misspelt_field_is_an_error_naming_it() {
        let text = MINIMAL.replace("seed = 1", "seed = 1\nsede = 2");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("sede") && err.contains("suite.toml"), "{err}");
    }

    #[test]
    fn misspelt_model_field_is_an_error() {
        let text = MINIMAL.replace("kind = \"tfidf-logreg\"", "kind = \"tfidf-logreg\"\nmax_featurs = 10");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("max_featurs"), "{err}");
    }

    #[test]
    fn unknown_model_kind_is_an_error() {
        let text = MINIMAL.replace("tfidf-logreg", "random-forest");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("random-forest") && err.contains("line"), "{err}");
    }

    #[test]
    fn missing_field_is_named() {
        let text = MINIMAL.replace("seed = 1\n", "");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("seed"), "{err}");
    }

    #[test]
    fn fractions_must_sum_to_one() {
        let text = MINIMAL.replace("test = 0.2", "test = 0.3");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("[split]") && err.contains("summing to 1"), "{err}");
    }

    #[test]
    fn lora_method_needs_lora_table() {
        let text = format!(
            "{MINIMAL}\n[[models]]\nid = \"enc\"\nkind = \"encoder\"\ncheckpoint = \"x\"\nmethod = \"lora\"\nlearning_rate = 1e-4\nepochs = 1\n"
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("models[1]") && err.contains("lora"), "{err}");
    }

    /// The runtime reads a typed plan, never the schema's strings: dtype, pooling and the LoRA
    /// table come out parsed, the family from `kind`, a memory cap set by the flag included.
    #[test]
    fn a_transformer_entry_resolves_into_a_typed_plan() {
        let text = format!(
            "{MINIMAL}\n[[models]]\nid = \"dec\"\nkind = \"decoder\"\ncheckpoint = \"x\"\nmethod = \"lora\"\n\
             lora = {{ r = 8, alpha = 16, targets = [\"q_proj\"] }}\nlearning_rate = 1e-3\nepochs = 2\ndtype = \"bf16\"\n\
             \n[[models]]\nid = \"enc\"\nkind = \"encoder\"\ncheckpoint = \"y\"\nmethod = \"full\"\npooling = \"mean\"\n\
             learning_rate = 1e-4\nepochs = 1\n"
        );
        let mut suite = parse(&text).unwrap();
        suite.cap_memory(3.5);
        assert_eq!(
            suite.models[0].train_plan().unwrap(),
            None,
            "the TF-IDF baseline has no plan"
        );
        let dec = suite.models[1].train_plan().unwrap().unwrap();
        assert_eq!(dec.family, Family::Decoder);
        assert_eq!(dec.dtype, DTypeRequest::Bf16);
        assert_eq!(dec.pooling, None);
        assert_eq!(dec.max_memory_gb, Some(3.5));
        assert_eq!(
            dec.method,
            Method::Lora(LoraSettings {
                r: 8,
                alpha: 16.0,
                dropout: 0.0,
                targets: vec!["q_proj".into()],
            })
        );
        let enc = suite.models[2].train_plan().unwrap().unwrap();
        assert_eq!(
            (enc.family, enc.method.clone(), enc.pooling),
            (Family::Encoder, Method::Full, Some(Pooling::Mean))
        );
        assert_eq!(enc.dtype, DTypeRequest::Auto);
    }

    #[test]
    fn duplicate_model_ids_are_rejected() {
        let text = format!("{MINIMAL}\n[[models]]\nid = \"tfidf\"\nkind = \"tfidf-logreg\"\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("duplicate"), "{err}");
    }

    const ENCODER: &str = "\n[[models]]\nid = \"enc\"\nkind = \"encoder\"\ncheckpoint = \"x\"\nmethod = \"full\"\nlearning_rate = 1e-4\nepochs = 1\n";

    /// Values that used to be accepted and then trained silently wrong, or failed only after
    /// earlier models had trained (issue: hardening, defect 1): each is refused at parse
    /// time, naming its field.
    #[test]
    fn values_that_train_silently_wrong_are_refused_naming_the_field() {
        let cases: &[(&str, &str, &str)] = &[
            // (replace, with, field named in the error)
            ("epochs = 1\n", "epochs = 1\ngrad_clip = -1.0\n", "grad_clip"),
            ("epochs = 1\n", "epochs = 1\ngrad_clip = 0.0\n", "grad_clip"),
            ("epochs = 1\n", "epochs = 1\nweight_decay = -5\n", "weight_decay"),
            ("epochs = 1\n", "epochs = 1\nwarmup = { ratio = 2.0 }\n", "warmup"),
            (
                "epochs = 1\n",
                "epochs = 1\nwarmup = { ratio = 0.1, steps = 5 }\n",
                "warmup",
            ),
            (
                "epochs = 1\n",
                "epochs = 1\nmax_train_examples = 0\n",
                "max_train_examples",
            ),
            ("epochs = 1\n", "epochs = 1\neval_batch_size = 0\n", "eval_batch_size"),
            (
                "epochs = 1\n",
                "epochs = 1\nearly_stopping_patience = 0\n",
                "early_stopping_patience",
            ),
            ("learning_rate = 1e-4", "learning_rate = inf", "learning_rate"),
            ("learning_rate = 1e-4", "learning_rate = nan", "learning_rate"),
            (
                "method = \"full\"",
                "method = \"lora\"\nlora = { r = 0, alpha = 16, targets = [\"query\"] }",
                "lora.r",
            ),
            (
                "method = \"full\"",
                "method = \"lora\"\nlora = { r = 8, alpha = 0, targets = [\"query\"] }",
                "lora.alpha",
            ),
            (
                "method = \"full\"",
                "method = \"lora\"\nlora = { r = 8, alpha = 16, dropout = 1.0, targets = [\"query\"] }",
                "lora.dropout",
            ),
            (
                "method = \"full\"",
                "method = \"lora\"\nlora = { r = 8, alpha = 16, targets = [] }",
                "lora.targets",
            ),
            (
                "kind = \"tfidf-logreg\"",
                "kind = \"tfidf-logreg\"\nmax_iter = 0",
                "max_iter",
            ),
            (
                "kind = \"tfidf-logreg\"",
                "kind = \"tfidf-logreg\"\nmax_features = 0",
                "max_features",
            ),
            ("kind = \"tfidf-logreg\"", "kind = \"tfidf-logreg\"\ntol = -1.0", "tol"),
            ("kind = \"tfidf-logreg\"", "kind = \"tfidf-logreg\"\nc = inf", "`c`"),
            ("name = \"t\"", "name = \"..\"", "name"),
            ("name = \"t\"", "name = \"a b\"", "name"),
            ("val = 0.1\ntest = 0.2", "val = 0.0\ntest = 0.3", "`val`"),
            ("seed = 1", "seed = 4294967295", "seed"),
        ];
        for (from, to, field) in cases {
            let text = format!("{MINIMAL}{ENCODER}");
            assert!(text.contains(from), "case {to:?}: {from:?} not in the suite");
            let err = parse(&text.replacen(from, to, 1)).expect_err(to).to_string();
            assert!(err.contains(field), "case {to:?}: error does not name {field}: {err}");
        }
        parse(&format!("{MINIMAL}{ENCODER}")).unwrap();
    }

    #[test]
    fn seed_lists_default_to_the_seed_and_models_override_them() {
        let s = parse(&format!("{MINIMAL}{ENCODER}")).unwrap();
        assert!(s.models.iter().all(|m| s.seeds_of(m) == vec![1]));
        assert!(!s.has_several_seeds() && !s.seeds_redraw_split());
        let text = format!("{MINIMAL}{ENCODER}")
            .replacen("seed = 1\n", "seed = 1\nseeds = [1, 2, 3]\n", 1)
            .replacen("kind = \"tfidf-logreg\"", "kind = \"tfidf-logreg\"\nseeds = [5]", 1);
        let s = parse(&text).unwrap();
        assert_eq!(s.seeds_of(&s.models[0]), vec![5]);
        assert_eq!(s.seeds_of(&s.models[1]), vec![1, 2, 3]);
        assert!(s.has_several_seeds());
        let split = MINIMAL.replacen(
            "seed = 1\n",
            "seed = 1\nseeds = [1, 2]\nseed_controls = [\"training\", \"split\"]\n",
            1,
        );
        assert!(parse(&split).unwrap().seeds_redraw_split());
    }

    /// Issue 13's bad input: each refused at parse time, naming the field.
    #[test]
    fn bad_seed_lists_and_seed_controls_are_refused_naming_the_field() {
        let cases: &[(&str, &str, &str)] = &[
            ("seed = 1\n", "seed = 1\nseeds = [1, 2, 1]\n", "listed twice"),
            ("seed = 1\n", "seed = 1\nseeds = []\n", "at least one seed"),
            ("seed = 1\n", "seed = 1\nseed_controls = [\"training\", \"dropout\"]\n", "dropout"),
            ("seed = 1\n", "seed = 1\nseed_controls = [\"split\"]\n", "seed_controls"),
            ("seed = 1\n", "seed = 1\nseed_controls = [\"training\", \"training\"]\n", "seed_controls"),
            ("kind = \"tfidf-logreg\"", "kind = \"tfidf-logreg\"\nseeds = [2, 2]", "models[0] (id \"tfidf\"): field `seeds`"),
            ("kind = \"tfidf-logreg\"", "kind = \"tfidf-logreg\"\nseeds = [-1]", "field `seeds`"),
            ("kind = \"tfidf-logreg\"", "kind = \"tfidf-logreg\"\nseeds = 3", "field `seeds`"),
            (
                "seed = 1\n",
                "seed = 1\nseeds = [1, 2]\nseed_controls = [\"training\", \"split\"]\n[[models]]\nid = \"x\"\nkind = \"tfidf-logreg\"\nseeds = [3]\n",
                "set once at the top level",
            ),
        ];
        for (from, to, needle) in cases {
            let text = MINIMAL.replacen(from, to, 1);
            let err = parse(&text).expect_err(to).to_string();
            assert!(
                err.contains(needle),
                "case {to:?}: error does not say {needle:?}: {err}"
            );
        }
    }

    #[test]
    fn perf_settings_that_price_what_was_not_measured_are_refused() {
        for (perf, field) in [
            ("[perf]\nbatch_sizes = [1, 8]\ncost_batch_size = 7\n", "cost_batch_size"),
            ("[perf]\nbatch_sizes = []\n", "batch_sizes"),
            ("[evaluation]\nbootstrap_seed = 4294967296\n", "bootstrap_seed"),
        ] {
            let text = MINIMAL.replace("[[models]]", &format!("{perf}[[models]]"));
            let err = parse(&text).expect_err(perf).to_string();
            assert!(err.contains(field), "{perf}: {err}");
        }
        let chacha = MINIMAL.replace(
            "[[models]]",
            "[evaluation]\nrng = \"chacha\"\nbootstrap_seed = 4294967296\n[[models]]",
        );
        parse(&chacha).unwrap();
    }

    /// What a suite error must point at: a line, a field, a table or a model.
    fn names_a_place(msg: &str) -> bool {
        [
            "line ",
            "field",
            "models[",
            "model \"",
            "[split]",
            "[evaluation]",
            "[perf]",
            "[dataset]",
            "[labels]",
        ]
        .iter()
        .any(|p| msg.contains(p))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

        /// Mutated suites (a line dropped, a value replaced by one of another type or range,
        /// bytes inserted) never panic the parser, and every error names where it is.
        #[test]
        fn mutated_suites_never_panic_and_errors_name_a_place(
            line in 0usize..64,
            action in 0u8..3,
            value in proptest::sample::select(vec![
                "-1", "0", "1e400", "inf", "-inf", "nan", "18446744073709551616", "\"\"", "\"..\"",
                "[]", "[0]", "{}", "{ ratio = 0.1, steps = 5 }", "true", "\"x\"", "1.5", "[1, 0]",
                "{ r = 0, alpha = 1, targets = [] }", "\"\\u0000\"", "99999999999",
            ]),
            junk in "[ -~\n]{0,12}",
        ) {
            let base = format!("{MINIMAL}{ENCODER}[perf]\nbatch_sizes = [1, 8]\n");
            let lines: Vec<&str> = base.lines().collect();
            let i = line % lines.len();
            let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            match action {
                0 => { out.remove(i); }
                1 => {
                    if let Some((k, _)) = lines[i].split_once(" = ") {
                        out[i] = format!("{k} = {value}");
                    }
                }
                _ => out.insert(i, junk.clone()),
            }
            let text = out.join("\n");
            if let Err(e) = parse(&text) {
                let msg = e.to_string();
                proptest::prop_assert!(names_a_place(&msg), "no line or field in {msg:?} for:\n{text}");
            }
        }
    }

    /// Regression (hardening, defect 10): a type error in a model entry pointed at the first
    /// `[[models]]` header and did not name the field.
    #[test]
    fn model_type_error_names_the_field_and_its_line() {
        let text = format!("{MINIMAL}{ENCODER}").replace("epochs = 1", "epochs = \"three\"");
        let line = text.lines().position(|l| l.starts_with("epochs")).unwrap() + 1;
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.contains(&format!("line {line}:")) && err.contains("field `epochs`"),
            "{err}"
        );
        let text = format!("{MINIMAL}{ENCODER}").replace(
            "method = \"full\"",
            "method = \"lora\"\nlora = { r = \"eight\", alpha = 16, targets = [\"query\"] }",
        );
        let line = text.lines().position(|l| l.starts_with("lora")).unwrap() + 1;
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.contains(&format!("line {line}:")) && err.contains("field `lora.r`"),
            "{err}"
        );
    }

    #[test]
    fn relative_paths_resolve_against_the_suite_dir() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        std::fs::write(&p, MINIMAL).unwrap();
        let s = Suite::load(&p).unwrap();
        match s.dataset {
            DatasetSpec::Csv { path, .. } => assert_eq!(path, dir.path().join("data.csv")),
            _ => unreachable!(),
        }
    }
}
