//! Quantised inference: after training (LoRA merged first), every backbone linear layer's
//! weight is stored in a GGML block format and multiplied with candle's quantized matmul
//! (`candle_core::quantized::QMatMul`), the int8/int4 inference of the seed's week 5.
//!
//! Formats offered and why: `q8_0` (blocks of 32, one f16 scale, int8 values) and `q4_0`
//! (blocks of 32, 4-bit values) fit every model we run; the k-quant `q4k` packs 256 values per
//! super-block and so needs `in_features % 256 == 0`, which MiniLM (384), SmolLM2 (576) and
//! Qwen2.5-0.5B (896) do not meet. `q4k` is accepted, and a model whose linear layers it cannot
//! hold is refused naming the layer and its shape (`check_shape`) rather than silently
//! falling back to another format.

use super::config::ModelConfig;
use candle_core::quantized::GgmlDType;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A quantisation format a suite can ask for (`quantize = ["q8_0"]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantFormat {
    #[serde(rename = "q8_0")]
    Q8_0,
    #[serde(rename = "q4_0")]
    Q4_0,
    #[serde(rename = "q4k")]
    Q4K,
}

impl QuantFormat {
    pub const ALL: [QuantFormat; 3] = [QuantFormat::Q8_0, QuantFormat::Q4_0, QuantFormat::Q4K];

    pub fn as_str(self) -> &'static str {
        match self {
            QuantFormat::Q8_0 => "q8_0",
            QuantFormat::Q4_0 => "q4_0",
            QuantFormat::Q4K => "q4k",
        }
    }

    pub fn ggml(self) -> GgmlDType {
        match self {
            QuantFormat::Q8_0 => GgmlDType::Q8_0,
            QuantFormat::Q4_0 => GgmlDType::Q4_0,
            QuantFormat::Q4K => GgmlDType::Q4K,
        }
    }

    /// Values per block: a weight's `in_features` must be a multiple of it.
    pub fn block_size(self) -> usize {
        self.ggml().block_size()
    }

    /// The row id of a model's quantised variant, e.g. `minilm@q8_0`.
    pub fn variant_id(self, model_id: &str) -> String {
        format!("{model_id}@{}", self.as_str())
    }

    /// `Err` naming the layer, its shape and the block size when `format` cannot hold a
    /// weight of `in_features` columns (checked before any training where the shapes are
    /// known from the config, and again when the weight is quantised).
    pub fn check_shape(self, layer: &str, out_features: usize, in_features: usize) -> Result<(), String> {
        let block = self.block_size();
        if in_features.is_multiple_of(block) {
            Ok(())
        } else {
            Err(format!(
                "quantize = \"{}\" needs in_features divisible by {block}, but `{layer}` is [{out_features}, {in_features}]{}",
                self.as_str(),
                if self == QuantFormat::Q4K { "; use \"q4_0\" (blocks of 32) instead" } else { "" }
            ))
        }
    }
}

/// Every backbone linear layer shape of `config` as (HF module name, out, in), one entry per
/// distinct role (`*` for the layer index): what `check_config` tests before any training.
pub fn backbone_linear_shapes(config: &ModelConfig) -> Vec<(String, usize, usize)> {
    match config {
        ModelConfig::Bert(c) => {
            let (h, i) = (c.hidden_size, c.intermediate_size);
            let layer = |m: &str| format!("encoder.layer.*.{m}");
            vec![
                (layer("attention.self.query"), h, h),
                (layer("attention.self.key"), h, h),
                (layer("attention.self.value"), h, h),
                (layer("attention.output.dense"), h, h),
                (layer("intermediate.dense"), i, h),
                (layer("output.dense"), h, i),
            ]
        }
        ModelConfig::ModernBert(c) => {
            let (h, i) = (c.hidden_size, c.intermediate_size);
            let layer = |m: &str| format!("layers.*.{m}");
            vec![
                (layer("attn.Wqkv"), 3 * h, h),
                (layer("attn.Wo"), h, h),
                (layer("mlp.Wi"), 2 * i, h),
                (layer("mlp.Wo"), h, i),
            ]
        }
        ModelConfig::Llama(c) | ModelConfig::Qwen2(c) => {
            let (h, i) = (c.hidden_size, c.intermediate_size);
            let (q, kv) = (c.num_attention_heads * c.head_dim(), c.n_kv_heads() * c.head_dim());
            let layer = |m: &str| format!("model.layers.*.{m}");
            vec![
                (layer("self_attn.q_proj"), q, h),
                (layer("self_attn.k_proj"), kv, h),
                (layer("self_attn.v_proj"), kv, h),
                (layer("self_attn.o_proj"), h, q),
                (layer("mlp.gate_proj"), i, h),
                (layer("mlp.up_proj"), i, h),
                (layer("mlp.down_proj"), h, i),
            ]
        }
    }
}

/// Whether `format` can hold every backbone linear layer of `config`: the first layer it
/// cannot is named with its shape (the check the suite's `quantize` gets before training).
pub fn check_config(format: QuantFormat, config: &ModelConfig) -> Result<(), String> {
    backbone_linear_shapes(config)
        .iter()
        .try_for_each(|(name, out, inp)| format.check_shape(name, *out, *inp))
}

impl fmt::Display for QuantFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for QuantFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        QuantFormat::ALL.into_iter().find(|f| f.as_str() == s).ok_or_else(|| {
            let known: Vec<&str> = QuantFormat::ALL.iter().map(|f| f.as_str()).collect();
            format!("unknown quantisation format {s:?}; expected one of {known:?}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_round_trip_and_name_variants() {
        for f in QuantFormat::ALL {
            assert_eq!(f.as_str().parse::<QuantFormat>().unwrap(), f);
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{}\"", f.as_str()));
        }
        assert!("int8".parse::<QuantFormat>().unwrap_err().contains("q8_0"));
        assert_eq!(QuantFormat::Q8_0.variant_id("minilm"), "minilm@q8_0");
    }

    #[test]
    fn config_check_names_the_first_layer_a_format_cannot_hold() {
        let bert = ModelConfig::parse(
            r#"{"model_type": "bert", "vocab_size": 100, "hidden_size": 384, "num_hidden_layers": 6,
                "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 512}"#,
            std::path::Path::new("config.json"),
        )
        .unwrap();
        assert!(check_config(QuantFormat::Q8_0, &bert).is_ok());
        let e = check_config(QuantFormat::Q4K, &bert).unwrap_err();
        assert!(
            e.contains("`encoder.layer.*.attention.self.query` is [384, 384]"),
            "{e}"
        );
        // Qwen2.5-0.5B-like: heads x head_dim (14 x 64) is the o_proj input, 4,864 the down_proj's.
        let qwen = ModelConfig::parse(
            r#"{"model_type": "qwen2", "vocab_size": 100, "hidden_size": 896, "num_hidden_layers": 2,
                "num_attention_heads": 14, "num_key_value_heads": 2, "intermediate_size": 4864,
                "max_position_embeddings": 512}"#,
            std::path::Path::new("config.json"),
        )
        .unwrap();
        let shapes = backbone_linear_shapes(&qwen);
        assert!(
            shapes.contains(&("model.layers.*.self_attn.k_proj".into(), 128, 896)),
            "{shapes:?}"
        );
        assert!(
            shapes.contains(&("model.layers.*.mlp.down_proj".into(), 896, 4864)),
            "{shapes:?}"
        );
        assert!(check_config(QuantFormat::Q4_0, &qwen).is_ok());
        assert!(check_config(QuantFormat::Q4K, &qwen).unwrap_err().contains("q_proj"));
    }

    #[test]
    fn k_quants_refuse_the_hidden_sizes_of_our_models_naming_the_layer() {
        // MiniLM 384, SmolLM2 576, Qwen 896: none a multiple of 256, all of 32.
        for in_features in [384, 576, 896] {
            let e = QuantFormat::Q4K.check_shape("layer.0.q", 10, in_features).unwrap_err();
            assert!(
                e.contains("layer.0.q") && e.contains(&format!("[10, {in_features}]")),
                "{e}"
            );
            assert!(QuantFormat::Q8_0.check_shape("q", 10, in_features).is_ok());
            assert!(QuantFormat::Q4_0.check_shape("q", 10, in_features).is_ok());
        }
        assert!(QuantFormat::Q4K.check_shape("q", 10, 512).is_ok());
        assert!(QuantFormat::Q8_0.check_shape("q", 10, 40).is_err());
    }
}
