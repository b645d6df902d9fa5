//! clsbench-models: every line of candle in clsbench. Transformer classifiers (BERT and
//! ModernBERT encoders, Llama and Qwen2 decoders, one file per architecture over the shared
//! `layers`), each with Hugging Face weight names and `*ForSequenceClassification` head
//! semantics, LoRA adapters, a `train` flag that picks differentiable ops for training and
//! fused ones for inference; and `train`, the fine-tuning loop over a typed `TrainPlan`.
//!
//! Below it only the statistics (crate clsbench-stats); above it clsbench, which resolves a
//! suite into plans and runs them. The crate edge keeps the arrows one way: nothing here can
//! read a suite, a results file or the pipeline. It also holds what both sides share: the
//! error enum and exit codes, atomic file writes (`fsutil`), the `RunObserver`, the
//! `TextClassifier` trait and the dataset types.

pub mod classifier;
pub mod data;
pub mod error;
pub mod fsutil;
pub mod observer;
pub mod tiny;
pub mod train;

pub mod bert;
pub mod classify;
pub mod config;
pub mod device;
pub mod layers;
pub mod llama;
pub mod loader;
pub mod lora;
pub mod modernbert;
pub mod params;
pub mod parity;
pub mod precision;
pub mod quantize;
pub mod recompute;
pub mod text;

pub use classify::TransformerClassifier;
pub use config::{Family, ModelConfig};
pub use parity::forward_json;

pub use error::{Error, Result};

/// sha256 of this crate's sources, computed by build.rs: part of the epoch checkpoints'
/// fingerprint, so a changed training loop never continues another's checkpoint (clsbench's
/// cache key hashes these sources too).
pub const SOURCE_SHA256: &str = env!("CLSBENCH_MODELS_SOURCE_SHA256");

use candle_core::Tensor;
use params::{BuiltParams, ParamBuilder};

/// A sequence classifier: token ids in, class logits out.
pub trait SequenceClassifier: Send + Sync {
    /// `input_ids`, `attention_mask`: [batch, seq] u32 (mask 1 = token, 0 = padding).
    /// Returns logits [batch, n_classes]. `train` turns on dropout and the differentiable ops.
    fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> candle_core::Result<Tensor>;

    fn n_classes(&self) -> usize;
}

/// Pooling of an encoder's hidden states for the classification head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    Cls,
    Mean,
}

impl Pooling {
    pub fn parse(s: &str) -> Result<Pooling> {
        match s {
            "cls" => Ok(Pooling::Cls),
            "mean" => Ok(Pooling::Mean),
            other => Err(Error::bad_input(format!(
                "pooling: expected \"cls\" or \"mean\", got {other:?}"
            ))),
        }
    }
}

/// Build `config`'s `*ForSequenceClassification` with `n_classes` outputs from `params`.
/// `pooling` overrides ModernBERT's `classifier_pooling`; BERT always pools [CLS] through its
/// pooler, decoders always read the last non-pad token.
pub fn build_classifier(
    config: &ModelConfig,
    params: ParamBuilder,
    n_classes: usize,
    pooling: Option<Pooling>,
) -> Result<(Box<dyn SequenceClassifier>, BuiltParams)> {
    if n_classes < 2 {
        return Err(Error::bad_input(format!(
            "a classifier needs at least 2 classes, got {n_classes}"
        )));
    }
    let model: Box<dyn SequenceClassifier>;
    let recompute = params.recompute();
    let params = match config {
        ModelConfig::Bert(c) => {
            // Checkpoints saved as `BertModel` (sentence-transformers) lack the `bert.` prefix.
            let p = params.with_alias("bert.", "");
            let pooling = pooling.unwrap_or(Pooling::Cls);
            model = Box::new(bert::BertForSequenceClassification::load(&p, c, n_classes, pooling)?);
            p
        }
        ModelConfig::Llama(c) => {
            model = Box::new(llama::LlamaForSequenceClassification::load(
                &params,
                c,
                c.attention_bias,
                n_classes,
            )?);
            params
        }
        ModelConfig::Qwen2(c) => {
            model = Box::new(llama::LlamaForSequenceClassification::load(
                &params, c, true, n_classes,
            )?);
            params
        }
        ModelConfig::ModernBert(c) => {
            // Checkpoints saved as `ModernBertModel` lack the `model.` prefix. The seed's LoRA
            // targets name mlp.Wo "Wo2", which matches no ModernBERT module in PEFT ("Wo"
            // already covers attn.Wo and mlp.Wo there); alone, it means mlp.Wo.
            let p = params.with_alias("model.", "").with_lora_target_alias("Wo2", "mlp.Wo");
            model = Box::new(modernbert::ModernBertForSequenceClassification::load(
                &p, c, n_classes, pooling,
            )?);
            p
        }
    };
    let built = params.finish()?;
    if let Some(r) = recompute {
        r.track(built.trainable.iter().map(|v| v.var.as_tensor()))?;
    }
    Ok((model, built))
}
