//! Hugging Face `config.json` for each supported family, read with the same defaults as
//! `transformers` so a Hub checkpoint configures the same network here as there.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::Path;

/// Encoder or decoder: which head and which padding side a model gets (the suite's `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Encoder,
    Decoder,
}

/// `BertConfig` (all-MiniLM-L6-v2 and other BERT checkpoints).
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_gelu")]
    pub hidden_act: String,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_bert_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: usize,
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    /// Dropout before the classifier; HF falls back to `hidden_dropout_prob` when null.
    #[serde(default)]
    pub classifier_dropout: Option<f64>,
    #[serde(default = "default_absolute")]
    pub position_embedding_type: String,
}

/// `LlamaConfig` and `Qwen2Config`: the same decoder, Qwen2 adds biases to q/k/v.
#[derive(Debug, Clone, Deserialize)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default = "default_silu")]
    pub hidden_act: String,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    #[serde(default)]
    pub pad_token_id: Option<usize>,
}

/// `eos_token_id` is an int in most configs and a list in some (Llama 3).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    One(usize),
    Many(Vec<usize>),
}

impl TokenIds {
    pub fn first(&self) -> Option<usize> {
        match self {
            TokenIds::One(i) => Some(*i),
            TokenIds::Many(v) => v.first().copied(),
        }
    }
}

impl LlamaConfig {
    pub fn n_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
    }
}

/// `ModernBertConfig` (answerdotai/ModernBERT-base and -large).
#[derive(Debug, Clone, Deserialize)]
pub struct ModernBertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default = "default_modernbert_eps")]
    pub norm_eps: f64,
    #[serde(default)]
    pub norm_bias: bool,
    #[serde(default = "default_global_rope")]
    pub global_rope_theta: f64,
    #[serde(default = "default_rope_theta")]
    pub local_rope_theta: f64,
    #[serde(default = "default_local_attention")]
    pub local_attention: usize,
    #[serde(default = "default_global_every")]
    pub global_attn_every_n_layers: usize,
    #[serde(default = "default_cls")]
    pub classifier_pooling: String,
    #[serde(default = "default_gelu")]
    pub classifier_activation: String,
    #[serde(default = "default_gelu")]
    pub hidden_activation: String,
    #[serde(default = "default_true")]
    pub classifier_bias: bool,
    #[serde(default)]
    pub classifier_dropout: f64,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default)]
    pub pad_token_id: Option<usize>,
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    #[serde(default)]
    pub embedding_dropout: f64,
    #[serde(default)]
    pub mlp_dropout: f64,
    #[serde(default)]
    pub attention_dropout: f64,
}

fn default_gelu() -> String {
    "gelu".into()
}
fn default_silu() -> String {
    "silu".into()
}
fn default_cls() -> String {
    "cls".into()
}
fn default_absolute() -> String {
    "absolute".into()
}
fn default_dropout() -> f64 {
    0.1
}
fn default_max_pos() -> usize {
    512
}
fn default_type_vocab() -> usize {
    2
}
fn default_bert_eps() -> f64 {
    1e-12
}
fn default_rms_eps() -> f64 {
    1e-6
}
fn default_modernbert_eps() -> f64 {
    1e-5
}
fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_global_rope() -> f64 {
    160_000.0
}
fn default_local_attention() -> usize {
    128
}
fn default_global_every() -> usize {
    3
}
fn default_init_range() -> f64 {
    0.02
}
fn default_true() -> bool {
    true
}

/// The architectures this crate can build, chosen by `model_type` in config.json.
#[derive(Debug, Clone)]
pub enum ModelConfig {
    Bert(BertConfig),
    ModernBert(ModernBertConfig),
    Llama(LlamaConfig),
    Qwen2(LlamaConfig),
}

impl ModelConfig {
    /// Parse a config.json, naming the file and the field in any error.
    pub fn from_file(path: &Path) -> Result<ModelConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, origin: &Path) -> Result<ModelConfig> {
        let bad = |e: serde_json::Error| {
            Error::bad_input(format!(
                "{}: line {}, column {}: {e}",
                origin.display(),
                e.line(),
                e.column()
            ))
        };
        let value: serde_json::Value = serde_json::from_str(text).map_err(bad)?;
        let model_type = value.get("model_type").and_then(|v| v.as_str()).ok_or_else(|| {
            Error::bad_input(format!(
                "{}: field `model_type`: missing (expected bert, modernbert, llama or qwen2)",
                origin.display()
            ))
        })?;
        let config = match model_type {
            "bert" => ModelConfig::Bert(serde_json::from_value(value).map_err(bad)?),
            "modernbert" => ModelConfig::ModernBert(serde_json::from_value(value).map_err(bad)?),
            "llama" => ModelConfig::Llama(serde_json::from_value(value).map_err(bad)?),
            "qwen2" => ModelConfig::Qwen2(serde_json::from_value(value).map_err(bad)?),
            other => {
                return Err(Error::bad_input(format!(
                    "{}: field `model_type`: unknown architecture {other:?}; supported: bert, modernbert, llama, qwen2",
                    origin.display()
                )))
            }
        };
        config
            .validate()
            .map_err(|m| Error::bad_input(format!("{}: {m}", origin.display())))?;
        Ok(config)
    }

    pub fn model_type(&self) -> &'static str {
        match self {
            ModelConfig::Bert(_) => "bert",
            ModelConfig::ModernBert(_) => "modernbert",
            ModelConfig::Llama(_) => "llama",
            ModelConfig::Qwen2(_) => "qwen2",
        }
    }

    pub fn family(&self) -> Family {
        match self {
            ModelConfig::Bert(_) | ModelConfig::ModernBert(_) => Family::Encoder,
            ModelConfig::Llama(_) | ModelConfig::Qwen2(_) => Family::Decoder,
        }
    }

    /// (layers, hidden, intermediate, attention heads): what memory estimates need.
    pub fn dims(&self) -> (usize, usize, usize, usize) {
        match self {
            ModelConfig::Bert(c) => (
                c.num_hidden_layers,
                c.hidden_size,
                c.intermediate_size,
                c.num_attention_heads,
            ),
            ModelConfig::ModernBert(c) => (
                c.num_hidden_layers,
                c.hidden_size,
                2 * c.intermediate_size,
                c.num_attention_heads,
            ),
            ModelConfig::Llama(c) | ModelConfig::Qwen2(c) => (
                c.num_hidden_layers,
                c.hidden_size,
                2 * c.intermediate_size,
                c.num_attention_heads,
            ),
        }
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let heads_divide = |hidden: usize, heads: usize| {
            if heads == 0 || !hidden.is_multiple_of(heads) {
                Err(format!("fields `hidden_size` ({hidden}) and `num_attention_heads` ({heads}): heads must divide hidden size"))
            } else {
                Ok(())
            }
        };
        match self {
            ModelConfig::Bert(c) => {
                heads_divide(c.hidden_size, c.num_attention_heads)?;
                if c.position_embedding_type != "absolute" {
                    return Err(format!(
                        "field `position_embedding_type`: only \"absolute\" is implemented, got {:?}",
                        c.position_embedding_type
                    ));
                }
                activation_supported(&c.hidden_act, "hidden_act")
            }
            ModelConfig::ModernBert(c) => {
                heads_divide(c.hidden_size, c.num_attention_heads)?;
                if !["cls", "mean"].contains(&c.classifier_pooling.as_str()) {
                    return Err(format!(
                        "field `classifier_pooling`: expected \"cls\" or \"mean\", got {:?}",
                        c.classifier_pooling
                    ));
                }
                activation_supported(&c.hidden_activation, "hidden_activation")?;
                activation_supported(&c.classifier_activation, "classifier_activation")
            }
            ModelConfig::Llama(c) | ModelConfig::Qwen2(c) => {
                if c.head_dim.is_none() {
                    heads_divide(c.hidden_size, c.num_attention_heads)?;
                }
                if c.num_attention_heads % c.n_kv_heads() != 0 {
                    return Err(format!(
                        "fields `num_attention_heads` ({}) and `num_key_value_heads` ({}): kv heads must divide heads",
                        c.num_attention_heads,
                        c.n_kv_heads()
                    ));
                }
                if let Some(s) = &c.rope_scaling {
                    let kind = s.get("rope_type").or_else(|| s.get("type")).and_then(|v| v.as_str());
                    if !s.is_null() && kind != Some("default") {
                        return Err(format!(
                            "field `rope_scaling`: {s} is not implemented (only null / default)"
                        ));
                    }
                }
                activation_supported(&c.hidden_act, "hidden_act")
            }
        }
    }
}

/// Activations as HF's `ACT2FN` spells them; "gelu" is the exact erf form.
pub fn activation_supported(name: &str, field: &str) -> std::result::Result<(), String> {
    super::layers::Activation::parse(name)
        .map(|_| ())
        .map_err(|e| format!("field `{field}`: {}", crate::error::candle_message(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_architecture_is_named() {
        let err = ModelConfig::parse(r#"{"model_type": "gpt_neox"}"#, Path::new("c.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("gpt_neox") && err.contains("c.json") && err.contains("unknown architecture"),
            "{err}"
        );
    }

    #[test]
    fn missing_field_is_named() {
        let err = ModelConfig::parse(r#"{"model_type": "bert", "vocab_size": 10}"#, Path::new("c.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("hidden_size"), "{err}");
    }

    #[test]
    fn qwen2_defaults_follow_transformers() {
        let c = ModelConfig::parse(
            r#"{"model_type": "qwen2", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
                "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "eos_token_id": [3, 4]}"#,
            Path::new("c.json"),
        )
        .unwrap();
        match c {
            ModelConfig::Qwen2(c) => {
                assert_eq!(c.head_dim(), 4);
                assert_eq!(c.n_kv_heads(), 1);
                assert_eq!(c.eos_token_id.unwrap().first(), Some(3));
                assert!(!c.tie_word_embeddings);
            }
            other => panic!("{other:?}"),
        }
    }
}
