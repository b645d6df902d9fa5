//! ModernBERT (transformers' `ModernBertModel` / `ModernBertForSequenceClassification`, e.g.
//! answerdotai/ModernBERT-base): a pre-norm encoder with rotary positions, full attention every
//! `global_attn_every_n_layers` layers (from layer 0) and a sliding window of
//! |i - j| <= `local_attention / 2` in the others, each kind with its own rope theta, a GeGLU
//! MLP, and a `head` (dense, activation, norm) between the pooled state and `classifier`.
//! HF weight names, so Hub checkpoints (saved as `ModernBertForMaskedLM` or `ModernBertModel`)
//! load.
//!
//! Written here rather than taken from candle-transformers because its ModernBERT is
//! inference-only: its fused rope, softmax and layer norm have no backward pass (q and k would
//! get no gradient), its `ModernBertForSequenceClassification` returns softmax probabilities
//! rather than logits, and its masks are built in f32, which breaks bf16.

use super::bert::masked_mean;
use super::config::ModernBertConfig;
use super::layers::{self, Dropout};
use super::lora::Linear;
use super::params::{Init, ParamBuilder, Role};
use super::recompute::{self, Recompute};
use super::{Pooling, SequenceClassifier};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor, D};
use std::sync::Arc;

/// LayerNorm with the bias only when `norm_bias` (ModernBERT-base has none).
struct LayerNorm {
    weight: Tensor,
    bias: Option<Tensor>,
    /// The bias, or zeros: candle's fused kernel (inference) needs one.
    fused_bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    fn load(p: &ParamBuilder, prefix: &str, c: &ModernBertConfig, optional: bool) -> Result<LayerNorm> {
        let h = c.hidden_size;
        let weight = p.tensor_opt(&format!("{prefix}.weight"), &[h], Role::Backbone, Init::Ones, optional)?;
        let bias = if c.norm_bias {
            Some(p.tensor_opt(&format!("{prefix}.bias"), &[h], Role::Backbone, Init::Zeros, optional)?)
        } else {
            None
        };
        let fused_bias = match &bias {
            Some(b) => b.clone(),
            None => Tensor::zeros(h, p.dtype(), p.device())?,
        };
        Ok(LayerNorm {
            weight,
            bias,
            fused_bias,
            eps: c.norm_eps,
        })
    }

    fn forward(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let bias = if train {
            self.bias.as_ref()
        } else {
            Some(&self.fused_bias)
        };
        layers::layer_norm(xs, &self.weight, bias, self.eps, train)
    }
}

/// cos / sin tables of one rope theta, in f32.
struct RopeTables {
    cos: Tensor,
    sin: Tensor,
}

impl RopeTables {
    fn new(seq_len: usize, head_dim: usize, theta: f64, device: &Device) -> candle_core::Result<RopeTables> {
        let (cos, sin) = layers::rope_tables(seq_len, head_dim, theta, DType::F32, device)?;
        Ok(RopeTables { cos, sin })
    }

    /// transformers (>= 5) rotates q and k in f32 whatever the model's dtype, then casts back.
    fn apply(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        layers::rope(&xs.to_dtype(DType::F32)?, &self.cos, &self.sin, train)?.to_dtype(xs.dtype())
    }
}

struct Attention {
    wqkv: Linear,
    wo: Linear,
    probs_dropout: Dropout,
    out_dropout: Dropout,
    n_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn load(p: &ParamBuilder, prefix: &str, c: &ModernBertConfig) -> Result<Attention> {
        let h = c.hidden_size;
        let out_std = c.initializer_range / (2.0 * c.num_hidden_layers as f64).sqrt();
        Ok(Attention {
            wqkv: p.linear(
                &format!("{prefix}.Wqkv"),
                h,
                3 * h,
                c.attention_bias,
                Role::Backbone,
                c.initializer_range,
            )?,
            wo: p.linear(&format!("{prefix}.Wo"), h, h, c.attention_bias, Role::Backbone, out_std)?,
            probs_dropout: p.dropout(c.attention_dropout),
            out_dropout: p.dropout(c.attention_dropout),
            n_heads: c.num_attention_heads,
            head_dim: h / c.num_attention_heads,
        })
    }

    /// `mask`: additive, [batch, 1, 1 or seq, seq].
    fn forward(&self, xs: &Tensor, mask: &Tensor, rope: &RopeTables, train: bool) -> candle_core::Result<Tensor> {
        let (b, t, h) = xs.dims3()?;
        let (nh, hd) = (self.n_heads, self.head_dim);
        // Wqkv's output is q | k | v, each heads-major: transformers views it as [.., 3, heads, head_dim].
        let qkv = self.wqkv.forward(xs, train)?.reshape((b, t, 3, nh, hd))?;
        let part = |i: usize| qkv.narrow(2, i, 1)?.squeeze(2)?.transpose(1, 2)?.contiguous();
        let q = rope.apply(&part(0)?, train)?;
        let k = rope.apply(&part(1)?, train)?;
        let v = part(2)?;
        // As transformers' eager attention: softmax in f32, then back to the model's dtype.
        let probs = layers::attention_softmax(&q.matmul(&k.t()?)?, mask, 1.0 / (hd as f64).sqrt(), train)?;
        let probs = self.probs_dropout.forward(&probs, train)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, h))?;
        self.out_dropout.forward(&self.wo.forward(&ctx, train)?, train)
    }
}

/// GeGLU: `Wi` gives [input | gate], out = Wo(drop(act(input) * gate)).
struct Mlp {
    wi: Linear,
    wo: Linear,
    dropout: Dropout,
    intermediate: usize,
    act: layers::Activation,
}

impl Mlp {
    fn load(p: &ParamBuilder, prefix: &str, c: &ModernBertConfig) -> Result<Mlp> {
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let out_std = c.initializer_range / (2.0 * c.num_hidden_layers as f64).sqrt();
        Ok(Mlp {
            wi: p.linear(
                &format!("{prefix}.Wi"),
                h,
                2 * i,
                c.mlp_bias,
                Role::Backbone,
                c.initializer_range,
            )?,
            wo: p.linear(&format!("{prefix}.Wo"), i, h, c.mlp_bias, Role::Backbone, out_std)?,
            dropout: p.dropout(c.mlp_dropout),
            intermediate: i,
            act: layers::Activation::parse(&c.hidden_activation)?,
        })
    }

    fn forward(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let y = self.wi.forward(xs, train)?;
        let input = y.narrow(D::Minus1, 0, self.intermediate)?;
        let gate = y.narrow(D::Minus1, self.intermediate, self.intermediate)?;
        let inner = layers::gated_activation(&input, &gate, self.act, train)?;
        self.wo.forward(&self.dropout.forward(&inner, train)?, train)
    }
}

struct EncoderLayer {
    /// Layer 0 has none: the embeddings' norm precedes it.
    attn_norm: Option<LayerNorm>,
    attn: Attention,
    mlp_norm: LayerNorm,
    mlp: Mlp,
    global: bool,
}

impl EncoderLayer {
    fn load(p: &ParamBuilder, prefix: &str, c: &ModernBertConfig, index: usize) -> Result<EncoderLayer> {
        Ok(EncoderLayer {
            attn_norm: if index == 0 {
                None
            } else {
                Some(LayerNorm::load(p, &format!("{prefix}.attn_norm"), c, false)?)
            },
            attn: Attention::load(p, &format!("{prefix}.attn"), c)?,
            mlp_norm: LayerNorm::load(p, &format!("{prefix}.mlp_norm"), c, false)?,
            mlp: Mlp::load(p, &format!("{prefix}.mlp"), c)?,
            global: index.is_multiple_of(c.global_attn_every_n_layers),
        })
    }

    fn forward(&self, xs: &Tensor, mask: &Tensor, rope: &RopeTables, train: bool) -> candle_core::Result<Tensor> {
        let normed = match &self.attn_norm {
            Some(n) => n.forward(xs, train)?,
            None => xs.clone(),
        };
        let xs = (xs + self.attn.forward(&normed, mask, rope, train)?)?;
        let mlp = self.mlp.forward(&self.mlp_norm.forward(&xs, train)?, train)?;
        xs + mlp
    }
}

/// The encoder without a head; `forward` returns the final-norm hidden state [batch, seq, hidden].
pub struct ModernBertModel {
    tok_embeddings: Tensor,
    emb_norm: LayerNorm,
    emb_dropout: Dropout,
    /// Shared with the recompute closures of gradient checkpointing.
    layers: Vec<Arc<EncoderLayer>>,
    recompute: Option<Recompute>,
    final_norm: LayerNorm,
    hidden: usize,
    head_dim: usize,
    global_rope_theta: f64,
    local_rope_theta: f64,
    half_window: usize,
    /// The compute dtype: trainable embeddings (f32 master copies) are cast to it.
    dtype: DType,
}

impl ModernBertModel {
    /// `prefix` is the HF module path of the encoder (`model` inside the task models).
    pub fn load(p: &ParamBuilder, prefix: &str, c: &ModernBertConfig) -> Result<ModernBertModel> {
        if c.global_attn_every_n_layers == 0 {
            return Err(Error::bad_input(
                "ModernBERT config: field `global_attn_every_n_layers`: must be at least 1, got 0",
            ));
        }
        Ok(ModernBertModel {
            tok_embeddings: p.tensor(
                &format!("{prefix}.embeddings.tok_embeddings.weight"),
                &[c.vocab_size, c.hidden_size],
                Role::Backbone,
                Init::Normal(c.initializer_range),
            )?,
            emb_norm: LayerNorm::load(p, &format!("{prefix}.embeddings.norm"), c, false)?,
            emb_dropout: p.dropout(c.embedding_dropout),
            layers: (0..c.num_hidden_layers)
                .map(|i| EncoderLayer::load(p, &format!("{prefix}.layers.{i}"), c, i).map(Arc::new))
                .collect::<Result<_>>()?,
            recompute: p.recompute(),
            final_norm: LayerNorm::load(p, &format!("{prefix}.final_norm"), c, false)?,
            hidden: c.hidden_size,
            head_dim: c.hidden_size / c.num_attention_heads,
            global_rope_theta: c.global_rope_theta,
            local_rope_theta: c.local_rope_theta,
            half_window: c.local_attention / 2,
            dtype: p.dtype(),
        })
    }

    /// `input_ids`, `attention_mask`: [batch, seq] u32 (1 = token, 0 = padding). Positions are
    /// 0..seq for every row, as transformers uses without explicit position_ids.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        let xs = self
            .tok_embeddings
            .index_select(&input_ids.flatten_all()?, 0)?
            .reshape((b, t, self.hidden))?
            .to_dtype(self.dtype)?;
        let mut xs = self.emb_dropout.forward(&self.emb_norm.forward(&xs, train)?, train)?;
        let masks = attention_masks(attention_mask, self.half_window, xs.dtype())?;
        let global_rope = Arc::new(RopeTables::new(t, self.head_dim, self.global_rope_theta, xs.device())?);
        let local_rope = Arc::new(RopeTables::new(t, self.head_dim, self.local_rope_theta, xs.device())?);
        for layer in &self.layers {
            let (mask, rope) = if layer.global {
                (masks.global.clone(), global_rope.clone())
            } else {
                (masks.local.clone(), local_rope.clone())
            };
            let layer = layer.clone();
            xs = recompute::run_layer(self.recompute.as_ref(), train, &xs, move |x| {
                layer.forward(x, &mask, &rope, train)
            })?;
        }
        self.final_norm.forward(&xs, train)
    }
}

/// Additive attention masks in the model's dtype: 0 where a query may attend a key, the
/// dtype's most negative finite value elsewhere (finite, so that a padding query whose whole
/// window is padding gets a uniform row instead of NaN, which would reach every token through
/// 0 * NaN in the next layer's attention).
#[derive(Debug)]
pub struct AttentionMasks {
    /// Global layers: padding only, [batch, 1, 1, seq].
    pub global: Tensor,
    /// Sliding-window layers: padding or |query - key| > half window, [batch, 1, seq, seq].
    pub local: Tensor,
}

pub fn attention_masks(
    attention_mask: &Tensor,
    half_window: usize,
    dtype: DType,
) -> candle_core::Result<AttentionMasks> {
    let (b, t) = attention_mask.dims2()?;
    let device = attention_mask.device();
    let padding = attention_mask.eq(0u32)?.reshape((b, 1, 1, t))?;
    // |i - j| > half window, built on the device (no host round trip per forward on a GPU).
    // Positions in f32, exact below 2^24, so that the difference may be negative.
    let pos = Tensor::arange(0u32, t as u32, device)?.to_dtype(DType::F32)?;
    let distance = pos.reshape((t, 1))?.broadcast_sub(&pos.reshape((1, t))?)?.abs()?;
    let far = distance.gt(half_window as f64)?.reshape((1, 1, t, t))?;
    let global = additive(&padding, dtype)?;
    // Blocked if either blocks it: the minimum of two masks holding 0 or the same minimum,
    // not their sum (which overflows to -inf).
    let local = global.broadcast_minimum(&additive(&far, dtype)?)?;
    Ok(AttentionMasks { global, local })
}

/// 1 (blocked) -> the dtype's minimum, 0 -> 0, computed in `dtype` itself: going through f32
/// would round f32::MIN to -inf in bf16 and f16.
fn additive(blocked: &Tensor, dtype: DType) -> candle_core::Result<Tensor> {
    blocked.to_dtype(dtype)?.affine(layers::mask_min(dtype), 0.0)
}

/// `ModernBertForSequenceClassification`: pool (cls or attention-masked mean) -> head (dense,
/// activation, norm) -> dropout -> classifier. Returns logits.
pub struct ModernBertForSequenceClassification {
    model: ModernBertModel,
    head_dense: Linear,
    head_norm: LayerNorm,
    head_act: layers::Activation,
    dropout: Dropout,
    classifier: Linear,
    pooling: Pooling,
    n_classes: usize,
}

impl ModernBertForSequenceClassification {
    /// `pooling` overrides the config's `classifier_pooling`. The `head` comes with Hub
    /// checkpoints (ModernBertForMaskedLM has it) and is backbone: frozen under LoRA, as PEFT's
    /// sequence-classification task only trains `classifier`. A checkpoint without it (saved
    /// as `ModernBertModel`) gets a fresh one, initialised as transformers does.
    pub fn load(p: &ParamBuilder, c: &ModernBertConfig, n_classes: usize, pooling: Option<Pooling>) -> Result<Self> {
        let h = c.hidden_size;
        let pooling = match pooling {
            Some(p) => p,
            None => Pooling::parse(&c.classifier_pooling)?,
        };
        let out_std = c.initializer_range / (2.0 * c.num_hidden_layers as f64).sqrt();
        Ok(ModernBertForSequenceClassification {
            model: ModernBertModel::load(p, "model", c)?,
            head_dense: p.linear_opt("head.dense", h, h, c.classifier_bias, Role::Backbone, out_std, true)?,
            head_norm: LayerNorm::load(p, "head.norm", c, true)?,
            head_act: layers::Activation::parse(&c.classifier_activation)?,
            dropout: p.dropout(c.classifier_dropout),
            // transformers draws a new classifier from a normal of std hidden^-0.5 truncated at
            // 2 std; the truncation is not reproduced (ParamBuilder's init is a plain normal).
            classifier: p.linear("classifier", h, n_classes, true, Role::Head, (h as f64).powf(-0.5))?,
            pooling,
            n_classes,
        })
    }

    pub fn pooling(&self) -> Pooling {
        self.pooling
    }
}

impl SequenceClassifier for ModernBertForSequenceClassification {
    fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let hidden = self.model.forward(input_ids, attention_mask, train)?;
        let pooled = match self.pooling {
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Mean => masked_mean(&hidden, attention_mask)?,
        };
        let dense = layers::activation(&self.head_dense.forward(&pooled, train)?, self.head_act, train)?;
        let head = self.head_norm.forward(&dense, train)?;
        self.classifier.forward(&self.dropout.forward(&head, train)?, train)
    }

    fn n_classes(&self) -> usize {
        self.n_classes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build_classifier;
    use crate::config::ModelConfig;
    use crate::loader::Weights;
    use crate::params::{BuiltParams, LoraSettings, Mode, ParamKind, Source};
    use std::path::{Path, PathBuf};

    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(rel)
    }

    /// The tiny reference config (4 layers: 0 and 3 global, 1 and 2 with a +-3 window) with
    /// `overrides` merged in.
    fn tiny_config(dir: &str, overrides: serde_json::Value) -> ModelConfig {
        let path = fixture(&format!("reference/{dir}/config.json"));
        let mut v: serde_json::Value = crate::fsutil::read_json(&path).unwrap();
        for (k, x) in overrides.as_object().unwrap() {
            v[k] = x.clone();
        }
        ModelConfig::parse(&v.to_string(), &path).unwrap()
    }

    fn modernbert(c: &ModelConfig) -> &ModernBertConfig {
        match c {
            ModelConfig::ModernBert(m) => m,
            other => panic!("{other:?}"),
        }
    }

    fn builder(source: Source, mode: Mode, dtype: DType) -> ParamBuilder {
        ParamBuilder::new(source, mode, dtype, Device::Cpu, 7)
    }

    fn checkpoint(dir: &str) -> Source {
        Source::Checkpoint(Weights::open(&[fixture(&format!("reference/{dir}/model.safetensors"))]).unwrap())
    }

    fn lora(targets: &[&str], dropout: f64) -> LoraSettings {
        LoraSettings {
            r: 4,
            alpha: 8.0,
            dropout,
            targets: targets.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn expected(dir: &str) -> serde_json::Value {
        crate::fsutil::read_json(&fixture(&format!("reference/{dir}/expected.json"))).unwrap()
    }

    fn u32_matrix(v: &serde_json::Value) -> Tensor {
        let rows: Vec<Vec<u32>> = serde_json::from_value(v.clone()).unwrap();
        let (b, t) = (rows.len(), rows[0].len());
        Tensor::from_vec(rows.concat(), (b, t), &Device::Cpu).unwrap()
    }

    fn floats(v: &serde_json::Value) -> Vec<f32> {
        fn walk(v: &serde_json::Value, out: &mut Vec<f32>) {
            match v {
                serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
                x => out.push(x.as_f64().unwrap() as f32),
            }
        }
        let mut out = Vec::new();
        walk(v, &mut out);
        out
    }

    fn flat(t: &Tensor) -> Vec<f32> {
        t.to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    /// Two rows of 12 tokens, the second padded after 7 (as in the reference).
    fn batch() -> (Tensor, Tensor) {
        let e = expected("modernbert-tiny");
        (u32_matrix(&e["input_ids"]), u32_matrix(&e["attention_mask"]))
    }

    fn logits_of(config: &ModelConfig, source: Source, mode: Mode, pooling: Option<Pooling>, train: bool) -> Vec<f32> {
        let (model, _) = build_classifier(config, builder(source, mode, DType::F32), 5, pooling).unwrap();
        let (ids, mask) = batch();
        flat(&model.forward(&ids, &mask, train).unwrap())
    }

    #[test]
    fn logits_match_transformers_on_tiny_random_models() {
        for dir in ["modernbert-tiny", "modernbert-tiny-bias"] {
            let config = tiny_config(dir, serde_json::json!({}));
            let want = expected(dir);
            for (pooling, key) in [(Pooling::Cls, "logits_cls"), (Pooling::Mean, "logits_mean")] {
                let fused = logits_of(
                    &config,
                    checkpoint(dir),
                    Mode::Inference { lora: None },
                    Some(pooling),
                    false,
                );
                // The training path (differentiable ops; the fixtures have no dropout) on the same weights.
                let differentiable = logits_of(&config, checkpoint(dir), Mode::Full, Some(pooling), true);
                let reference = floats(&want[key]);
                let (d_fused, d_train) = (
                    max_abs_diff(&fused, &reference),
                    max_abs_diff(&differentiable, &reference),
                );
                eprintln!("{dir} {key}: max |logit diff| fused {d_fused:.2e}, differentiable {d_train:.2e}");
                assert!(
                    d_fused < 1e-4 && d_train < 1e-4,
                    "{dir} {key}: {fused:?} vs {reference:?}"
                );
            }
            // Without an override the config's `classifier_pooling` decides.
            let default_key = format!("logits_{}", modernbert(&config).classifier_pooling);
            let default = logits_of(&config, checkpoint(dir), Mode::Inference { lora: None }, None, false);
            assert!(max_abs_diff(&default, &floats(&want[default_key.as_str()])) < 1e-4);
        }
    }

    #[test]
    fn last_hidden_state_matches_transformers_at_every_position() {
        // Padding positions included: their queries see only padding in the local layers, which
        // must stay finite (a NaN there would spread to every token).
        let config = tiny_config("modernbert-tiny", serde_json::json!({}));
        let p = builder(
            checkpoint("modernbert-tiny"),
            Mode::Inference { lora: None },
            DType::F32,
        );
        let model = ModernBertModel::load(&p, "model", modernbert(&config)).unwrap();
        let (ids, mask) = batch();
        let got = flat(&model.forward(&ids, &mask, false).unwrap());
        let want = floats(&expected("modernbert-tiny")["last_hidden_state"]);
        let d = max_abs_diff(&got, &want);
        eprintln!("modernbert-tiny last_hidden_state: max |diff| {d:.2e}");
        assert!(got.iter().all(|v| v.is_finite()) && d < 1e-4, "{d}");
    }

    #[test]
    fn parity_depends_on_the_window_and_the_local_theta() {
        // The reference would not catch a wrong window or theta if they did not matter on it.
        let want = floats(&expected("modernbert-tiny")["logits_cls"]);
        for overrides in [
            serde_json::json!({"local_attention": 64}),
            serde_json::json!({"local_rope_theta": 160000.0}),
            serde_json::json!({"global_attn_every_n_layers": 1}),
        ] {
            let config = tiny_config("modernbert-tiny", overrides.clone());
            let got = logits_of(
                &config,
                checkpoint("modernbert-tiny"),
                Mode::Inference { lora: None },
                Some(Pooling::Cls),
                false,
            );
            let d = max_abs_diff(&got, &want);
            assert!(d > 1e-3, "{overrides}: logits moved only {d}");
        }
    }

    #[test]
    fn checkpoint_saved_as_modernbert_model_loads_without_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let src = fixture("reference/modernbert-tiny/model.safetensors");
        let tensors = candle_core::safetensors::load(&src, &Device::Cpu).unwrap();
        let renamed: std::collections::HashMap<String, Tensor> = tensors
            .into_iter()
            .map(|(k, v)| (k.strip_prefix("model.").map(str::to_string).unwrap_or(k), v))
            .collect();
        assert!(renamed.contains_key("layers.1.attn.Wqkv.weight"));
        let path = dir.path().join("model.safetensors");
        candle_core::safetensors::save(&renamed, &path).unwrap();
        let config = tiny_config("modernbert-tiny", serde_json::json!({}));
        let got = logits_of(
            &config,
            Source::Checkpoint(Weights::open(&[path]).unwrap()),
            Mode::Inference { lora: None },
            Some(Pooling::Mean),
            false,
        );
        assert!(max_abs_diff(&got, &floats(&expected("modernbert-tiny")["logits_mean"])) < 1e-4);
    }

    /// A random tiny model (no checkpoint), every dropout at 0.1 unless `no_dropout`.
    fn random_model(mode: Mode, no_dropout: bool) -> (Box<dyn SequenceClassifier>, BuiltParams) {
        let p = if no_dropout { 0.0 } else { 0.1 };
        let config = tiny_config(
            "modernbert-tiny-bias",
            serde_json::json!({"attention_dropout": p, "mlp_dropout": p, "embedding_dropout": p,
                               "classifier_dropout": p, "classifier_pooling": "mean"}),
        );
        build_classifier(&config, builder(Source::Random, mode, DType::F32), 5, None).unwrap()
    }

    fn loss(model: &dyn SequenceClassifier) -> Tensor {
        let (ids, mask) = batch();
        let logits = model.forward(&ids, &mask, true).unwrap();
        let labels = Tensor::new(&[3u32, 1], &Device::Cpu).unwrap();
        candle_nn::loss::cross_entropy(&logits, &labels).unwrap()
    }

    /// Gradient norm of every trainable tensor, by name.
    fn grad_norms(model: &dyn SequenceClassifier, built: &BuiltParams) -> Vec<(String, ParamKind, f32)> {
        let grads = loss(model).backward().unwrap();
        built
            .trainable
            .iter()
            .map(|v| {
                let norm = grads
                    .get(v.var.as_tensor())
                    .map(|g| g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap())
                    .unwrap_or(0.0);
                (v.name.clone(), v.kind, norm)
            })
            .collect()
    }

    fn sgd_step(model: &dyn SequenceClassifier, built: &BuiltParams, lr: f64) {
        let grads = loss(model).backward().unwrap();
        for v in &built.trainable {
            if let Some(g) = grads.get(v.var.as_tensor()) {
                v.var.set(&(v.var.as_tensor() - (g * lr).unwrap()).unwrap()).unwrap();
            }
        }
    }

    #[test]
    fn full_fine_tune_sends_a_gradient_to_every_weight() {
        let (model, built) = random_model(Mode::Full, false);
        let norms = grad_norms(model.as_ref(), &built);
        // 4 layers of (Wqkv, Wo, Wi, Wo: weight + bias; mlp_norm; attn_norm except layer 0), the
        // embeddings and their norm, final norm, head dense + norm, classifier.
        assert_eq!(norms.len(), 4 * 10 + 3 * 2 + 3 + 2 + 4 + 2, "{norms:?}");
        let dead: Vec<_> = norms
            .iter()
            .filter(|(_, _, n)| n.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater))
            .collect();
        assert!(dead.is_empty(), "no gradient reached {dead:?}");
        for q_or_k in ["model.layers.1.attn.Wqkv.weight", "model.layers.0.attn.Wqkv.weight"] {
            assert!(norms.iter().any(|(n, _, g)| n == q_or_k && *g > 0.0));
        }
    }

    #[test]
    fn lora_gradients_reach_b_first_then_a() {
        let mode = Mode::Lora(lora(&["Wqkv", "Wo", "Wi", "Wo2"], 0.1));
        let (model, built) = random_model(mode, false);
        let kinds: std::collections::BTreeSet<_> = built.trainable.iter().map(|v| format!("{:?}", v.kind)).collect();
        assert_eq!(kinds.into_iter().collect::<Vec<_>>(), ["Head", "LoraA", "LoraB"]);
        // 4 adapted linears per layer, A and B each, plus classifier weight and bias.
        assert_eq!(built.trainable.len(), 4 * 4 * 2 + 2);
        // B starts at zero, so A's gradient (through B) is exactly zero on the first step while
        // B's and the classifier's are not; after one SGD step B is non-zero and A's flows too.
        for (name, kind, norm) in grad_norms(model.as_ref(), &built) {
            match kind {
                ParamKind::LoraA => assert_eq!(norm, 0.0, "{name}"),
                _ => assert!(norm > 0.0, "{name}: no gradient"),
            }
        }
        sgd_step(model.as_ref(), &built, 0.5);
        for (name, _, norm) in grad_norms(model.as_ref(), &built) {
            assert!(norm > 0.0, "{name}: no gradient after one step");
        }
    }

    #[test]
    fn fused_and_differentiable_paths_agree() {
        for mode in [Mode::Full, Mode::Lora(lora(&["Wqkv", "Wo", "Wi"], 0.0))] {
            let (model, built) = random_model(mode, true);
            // Move LoRA B off zero so the adapters take part.
            sgd_step(model.as_ref(), &built, 0.5);
            let (ids, mask) = batch();
            let fused = flat(&model.forward(&ids, &mask, false).unwrap());
            let differentiable = flat(&model.forward(&ids, &mask, true).unwrap());
            let d = max_abs_diff(&fused, &differentiable);
            assert!(d < 1e-5, "fused vs differentiable: {d}");
        }
    }

    #[test]
    fn merged_adapters_reproduce_the_trained_lora_model() {
        // Train adapters a step, then rebuild for inference from the saved tensors: the merged
        // weights (W + s B A, with "Wo2" resolved the same way) must give the same logits.
        let config = tiny_config("modernbert-tiny", serde_json::json!({}));
        let settings = lora(&["Wqkv", "Wi", "Wo2"], 0.0);
        let p = builder(checkpoint("modernbert-tiny"), Mode::Lora(settings.clone()), DType::F32);
        let (trained, built) = build_classifier(&config, p, 5, None).unwrap();
        sgd_step(trained.as_ref(), &built, 0.5);
        let saved: std::collections::HashMap<String, Tensor> = built
            .trainable
            .iter()
            .map(|v| (v.name.clone(), v.var.as_tensor().copy().unwrap()))
            .collect();
        assert!(saved.contains_key("model.layers.2.mlp.Wo.lora_B.weight"));
        let p = builder(
            checkpoint("modernbert-tiny"),
            Mode::Inference { lora: Some(settings) },
            DType::F32,
        )
        .with_overrides(saved);
        let (merged, none) = build_classifier(&config, p, 5, None).unwrap();
        assert!(none.trainable.is_empty());
        let (ids, mask) = batch();
        let a = flat(&trained.forward(&ids, &mask, false).unwrap());
        let b = flat(&merged.forward(&ids, &mask, false).unwrap());
        let base = logits_of(
            &config,
            checkpoint("modernbert-tiny"),
            Mode::Inference { lora: None },
            None,
            false,
        );
        assert!(max_abs_diff(&a, &base) > 1e-3, "the step did not move the model");
        assert!(max_abs_diff(&a, &b) < 1e-5, "{a:?} vs {b:?}");
    }

    #[test]
    fn peft_counts_on_the_real_modernbert_base_config() {
        let reference: serde_json::Value =
            crate::fsutil::read_json(&fixture("reference/modernbert-peft-count.json")).unwrap();
        let config = ModelConfig::from_file(&fixture("configs/modernbert-base.json")).unwrap();
        let count = |mode: Mode| {
            let p = builder(Source::Zeros, mode, DType::F32);
            let (_, built) = build_classifier(&config, p, 113, None).unwrap();
            built
        };
        let seed = LoraSettings {
            r: 16,
            alpha: 32.0,
            dropout: 0.1,
            targets: vec!["Wqkv".into(), "Wo".into(), "Wi".into(), "Wo2".into()],
        };
        let built = count(Mode::Lora(seed));
        // PEFT (fixtures/reference/make_modernbert_reference.py) and the seed README agree.
        assert_eq!(
            built.trainable_params() as u64,
            reference["lora_trainable_params"].as_u64().unwrap()
        );
        assert_eq!(built.trainable_params(), 3_466_097);
        assert!(!built.trainable.iter().any(|v| v.name.starts_with("head.")));
        let full = count(Mode::Full);
        assert_eq!(
            full.trainable_params() as u64,
            reference["full_model_params"].as_u64().unwrap()
        );
        assert_eq!(full.frozen_params, 0);
        let probe = count(Mode::LinearProbe);
        assert_eq!(probe.trainable_params(), 768 * 113 + 113);
        assert_eq!(probe.total_params(), full.total_params());
    }

    #[test]
    fn wo2_alone_means_mlp_wo_and_is_redundant_beside_wo() {
        let names = |targets: &[&str]| -> Vec<String> {
            let (_, built) = random_model(Mode::Lora(lora(targets, 0.0)), true);
            built
                .trainable
                .iter()
                .filter(|v| v.kind == ParamKind::LoraA && v.name.contains("layers.1."))
                .map(|v| v.name.clone())
                .collect()
        };
        assert_eq!(names(&["Wo2"]), ["model.layers.1.mlp.Wo.lora_A.weight"]);
        assert_eq!(names(&["Wqkv", "Wo", "Wi", "Wo2"]), names(&["Wqkv", "Wo", "Wi"]));
        assert_eq!(names(&["Wo"]).len(), 2);
        let config = tiny_config("modernbert-tiny", serde_json::json!({}));
        let err = build_classifier(
            &config,
            builder(Source::Random, Mode::Lora(lora(&["query"], 0.0)), DType::F32),
            5,
            None,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("query") && err.contains("Wqkv"), "{err}");
    }

    fn reference_layers() -> (ModernBertModel, usize) {
        let config = tiny_config("modernbert-tiny", serde_json::json!({}));
        let c = modernbert(&config);
        // The reference weights: far from init, so every attended token visibly moves the output.
        let p = builder(
            checkpoint("modernbert-tiny"),
            Mode::Inference { lora: None },
            DType::F32,
        );
        (ModernBertModel::load(&p, "model", c).unwrap(), c.local_attention / 2)
    }

    #[test]
    fn local_layers_ignore_tokens_outside_the_window() {
        let (model, half) = reference_layers();
        assert_eq!(half, 3);
        let (t, h) = (12, model.hidden);
        let mask = Tensor::ones((1, t), DType::U32, &Device::Cpu).unwrap();
        let masks = attention_masks(&mask, half, DType::F32).unwrap();
        let rope = RopeTables::new(t, model.head_dim, 10_000.0, &Device::Cpu).unwrap();
        let xs = Tensor::randn(0f32, 1.0, (1, t, h), &Device::Cpu).unwrap();
        // Change only the last token (not by a constant, which the layer's norm would remove).
        let bump = Tensor::cat(
            &[
                Tensor::zeros((1, t - 1, h), DType::F32, &Device::Cpu).unwrap(),
                Tensor::randn(0f32, 1.0, (1, 1, h), &Device::Cpu).unwrap(),
            ],
            1,
        )
        .unwrap();
        let moved = (&xs + bump).unwrap();
        let per_position = |layer: &EncoderLayer, mask: &Tensor| -> Vec<f32> {
            let a = layer.forward(&xs, mask, &rope, false).unwrap();
            let b = layer.forward(&moved, mask, &rope, false).unwrap();
            let d = (a - b).unwrap().abs().unwrap().max(D::Minus1).unwrap();
            flat(&d)
        };
        let local = &model.layers[1];
        assert!(!local.global && model.layers[0].global && model.layers[3].global);
        let d = per_position(local, &masks.local);
        // Token 11 is seen by queries 8..=11 only.
        for (i, di) in d.iter().enumerate() {
            if i + half < t - 1 {
                assert_eq!(*di, 0.0, "query {i} saw token {} outside its window", t - 1);
            } else {
                assert!(*di > 1e-4, "query {i} did not see token {}", t - 1);
            }
        }
        // The same layer with the global mask sees it everywhere.
        let d = per_position(local, &masks.global);
        assert!(d.iter().all(|di| *di > 1e-6), "{d:?}");
    }

    #[test]
    fn masks_block_padding_and_far_keys() {
        let mask = Tensor::new(&[[1u32, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], &Device::Cpu).unwrap();
        let m = attention_masks(&mask, 1, DType::F32).unwrap();
        assert_eq!(m.global.dims(), &[2, 1, 1, 6]);
        assert_eq!(m.local.dims(), &[2, 1, 6, 6]);
        let local: Vec<f32> = flat(&m.local);
        let min = f32::MIN;
        for r in 0..2 {
            for i in 0..6usize {
                for j in 0..6 {
                    let padded = r == 1 && j >= 3;
                    let far = i.abs_diff(j) > 1;
                    let want = if padded || far { min } else { 0.0 };
                    assert_eq!(local[(r * 6 + i) * 6 + j], want, "row {r} query {i} key {j}");
                }
            }
        }
        assert_eq!(
            flat(&m.global),
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, min, min, min]
        );
    }

    #[test]
    fn masks_are_built_in_the_model_dtype_and_stay_finite() {
        let mask = Tensor::new(&[[1u32, 1, 0, 0]], &Device::Cpu).unwrap();
        for dtype in [DType::BF16, DType::F16, DType::F32, DType::F64] {
            let m = attention_masks(&mask, 1, dtype).unwrap();
            assert_eq!((m.global.dtype(), m.local.dtype()), (dtype, dtype));
            let local: Vec<f64> = m
                .local
                .to_dtype(DType::F64)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert!(local.iter().all(|v| v.is_finite()), "{dtype:?}: {local:?}");
            let blocked = local.iter().filter(|&&v| v == layers::mask_min(dtype)).count();
            // Query 3's window (keys 2, 3) is all padding: every key of its row is blocked.
            assert_eq!(blocked, 16 - 5, "{dtype:?}: {local:?}");
        }
    }

    #[test]
    fn bf16_forward_is_finite_and_close_to_f32() {
        let config = tiny_config("modernbert-tiny", serde_json::json!({}));
        let (ids, mask) = batch();
        let run = |dtype: DType| {
            let p = builder(checkpoint("modernbert-tiny"), Mode::Inference { lora: None }, dtype);
            let (model, _) = build_classifier(&config, p, 5, Some(Pooling::Mean)).unwrap();
            let out = model.forward(&ids, &mask, false).unwrap();
            assert_eq!(out.dtype(), dtype);
            flat(&out)
        };
        let (bf16, f32) = (run(DType::BF16), run(DType::F32));
        assert!(bf16.iter().all(|v| v.is_finite()), "{bf16:?}");
        let d = max_abs_diff(&bf16, &f32);
        assert!(d < 0.1, "bf16 vs f32: {d}");
    }

    #[test]
    fn head_returns_logits_not_probabilities() {
        let config = tiny_config("modernbert-tiny", serde_json::json!({}));
        let (model, _) = build_classifier(
            &config,
            builder(
                checkpoint("modernbert-tiny"),
                Mode::Inference { lora: None },
                DType::F32,
            ),
            5,
            None,
        )
        .unwrap();
        let (ids, mask) = batch();
        let rows: Vec<Vec<f32>> = model.forward(&ids, &mask, false).unwrap().to_vec2().unwrap();
        for row in rows {
            let sum: f32 = row.iter().sum();
            assert!(
                (sum - 1.0).abs() > 1e-2 && row.iter().any(|v| *v < 0.0),
                "{row:?} looks like probabilities"
            );
        }
    }

    #[test]
    fn zero_global_every_is_a_clear_error() {
        let config = tiny_config("modernbert-tiny", serde_json::json!({"global_attn_every_n_layers": 0}));
        let err = build_classifier(&config, builder(Source::Random, Mode::Full, DType::F32), 5, None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("global_attn_every_n_layers"), "{err}");
    }
}
