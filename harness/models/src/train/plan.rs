//! What one transformer trains with: a suite's `[[models]]` entry resolved into typed,
//! validated settings (clsbench's `suite::TransformerSpec::resolve`, which runs for every
//! model before the first one trains). This crate cannot read the suite schema: the schema is
//! TOML's shape, this is the runtime's, and the leaf enums below (also recorded in results and
//! checkpoints) are shared by both.

use crate::params::{LoraSettings, Mode};
use crate::precision::DTypeRequest;
use crate::quantize::QuantFormat;
use crate::{Family, Pooling};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrainMethod {
    /// Every weight trains.
    Full,
    /// Frozen base, LoRA adapters on `lora.targets`, head fully trained.
    Lora,
    /// Frozen backbone, head only.
    LinearProbe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassWeights {
    None,
    /// w_c = sqrt(max_count / count_c), normalised to mean 1 (the seed's week 3).
    SqrtInverse,
}

/// A learning-rate warm-up: either a number of steps or a fraction of all steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Warmup {
    Steps(usize),
    Ratio(f64),
}

// Hand-written so that `{ ratio = 0.1, steps = 5 }` names `warmup` and says what to write
// (serde's externally tagged enum says only "wanted exactly 1 element").
impl<'de> Deserialize<'de> for Warmup {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Either {
            steps: Option<usize>,
            ratio: Option<f64>,
        }
        // The field's name is added by the caller (`model "ID": field `warmup`: ...`).
        let Either { steps, ratio } = Either::deserialize(d)?;
        match (steps, ratio) {
            (Some(n), None) => Ok(Warmup::Steps(n)),
            (None, Some(r)) => Ok(Warmup::Ratio(r)),
            _ => Err(serde::de::Error::custom(
                "expected exactly one of `ratio` (a fraction of all steps) or `steps`, \
                 e.g. warmup = { ratio = 0.1 }",
            )),
        }
    }
}

/// What trains, with the LoRA settings that only LoRA has.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum Method {
    Full,
    Lora(LoraSettings),
    LinearProbe,
}

impl Method {
    /// The method's name, as suites, checkpoints and results record it.
    pub fn kind(&self) -> TrainMethod {
        match self {
            Method::Full => TrainMethod::Full,
            Method::Lora(_) => TrainMethod::Lora,
            Method::LinearProbe => TrainMethod::LinearProbe,
        }
    }

    pub fn lora(&self) -> Option<&LoraSettings> {
        match self {
            Method::Lora(l) => Some(l),
            _ => None,
        }
    }

    /// The models' parameter mode for training.
    pub fn mode(&self) -> Mode {
        match self {
            Method::Full => Mode::Full,
            Method::Lora(l) => Mode::Lora(l.clone()),
            Method::LinearProbe => Mode::LinearProbe,
        }
    }
}

/// One transformer's training and inference settings, every value checked: batch sizes,
/// epochs and lengths >= 1, rates and clip factors finite and > 0, LoRA settings in range.
/// Serialised (without family) into the epoch checkpoint's fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainPlan {
    #[serde(skip)]
    pub family: Family,
    /// Hub id or local directory in Hugging Face layout.
    pub checkpoint: String,
    /// Local directory tried before the Hub.
    pub local_dir: Option<PathBuf>,
    pub method: Method,
    pub learning_rate: f64,
    /// Epochs to train, or at most, with `early_stopping_patience`.
    pub epochs: usize,
    pub early_stopping_patience: Option<usize>,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub max_length: usize,
    pub weight_decay: f64,
    pub decay_bias_and_norm: bool,
    pub warmup: Warmup,
    pub grad_clip: Option<f64>,
    pub grad_accumulation: usize,
    pub class_weights: ClassWeights,
    /// Encoders only; `None` keeps the checkpoint's own (ModernBERT) or [CLS] (BERT).
    pub pooling: Option<Pooling>,
    pub length_bucketing: bool,
    pub dtype: DTypeRequest,
    pub max_train_examples: Option<usize>,
    pub gradient_checkpointing: bool,
    /// Peak memory cap in GiB (the suite's, or `--max-memory-gb`).
    pub max_memory_gb: Option<f64>,
    /// Quantised inference variants of the trained model.
    pub quantize: Vec<QuantFormat>,
}
