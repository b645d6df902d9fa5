//! BERT (transformers' `BertModel` / `BertForSequenceClassification`), post-LayerNorm, absolute
//! positions, with HF weight names so any BERT checkpoint (e.g. all-MiniLM-L6-v2) loads.

use super::config::BertConfig;
use super::layers::{self, Dropout};
use super::lora::Linear;
use super::params::{Init, ParamBuilder, Role};
use super::recompute::{self, Recompute};
use super::{Pooling, SequenceClassifier};
use crate::error::Result;
use candle_core::{DType, Tensor, D};
use std::sync::Arc;

struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    fn load(p: &ParamBuilder, prefix: &str, size: usize, eps: f64) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: p.tensor(&format!("{prefix}.weight"), &[size], Role::Backbone, Init::Ones)?,
            bias: p.tensor(&format!("{prefix}.bias"), &[size], Role::Backbone, Init::Zeros)?,
            eps,
        })
    }

    fn forward(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        layers::layer_norm(xs, &self.weight, Some(&self.bias), self.eps, train)
    }
}

struct BertLayer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_output: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
    attn_dropout: Dropout,
    hidden_dropout: Dropout,
    n_heads: usize,
    act: layers::Activation,
}

impl BertLayer {
    fn load(p: &ParamBuilder, prefix: &str, c: &BertConfig) -> Result<BertLayer> {
        let h = c.hidden_size;
        let std = c.initializer_range;
        let lin =
            |name: &str, i: usize, o: usize| p.linear(&format!("{prefix}.{name}"), i, o, true, Role::Backbone, std);
        Ok(BertLayer {
            query: lin("attention.self.query", h, h)?,
            key: lin("attention.self.key", h, h)?,
            value: lin("attention.self.value", h, h)?,
            attn_output: lin("attention.output.dense", h, h)?,
            attn_norm: LayerNorm::load(p, &format!("{prefix}.attention.output.LayerNorm"), h, c.layer_norm_eps)?,
            intermediate: lin("intermediate.dense", h, c.intermediate_size)?,
            output: lin("output.dense", c.intermediate_size, h)?,
            output_norm: LayerNorm::load(p, &format!("{prefix}.output.LayerNorm"), h, c.layer_norm_eps)?,
            attn_dropout: p.dropout(c.attention_probs_dropout_prob),
            hidden_dropout: p.dropout(c.hidden_dropout_prob),
            n_heads: c.num_attention_heads,
            act: layers::Activation::parse(&c.hidden_act)?,
        })
    }

    /// `mask`: additive [batch, 1, 1, seq].
    fn forward(&self, xs: &Tensor, mask: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let (b, t, h) = xs.dims3()?;
        let d = h / self.n_heads;
        let heads = |x: Tensor| x.reshape((b, t, self.n_heads, d))?.transpose(1, 2)?.contiguous();
        let q = heads(self.query.forward(xs, train)?)?;
        let k = heads(self.key.forward(xs, train)?)?;
        let v = heads(self.value.forward(xs, train)?)?;
        let scores = q.matmul(&k.t()?)?;
        let probs = layers::attention_softmax(&scores, mask, 1.0 / (d as f64).sqrt(), train)?;
        let probs = self.attn_dropout.forward(&probs, train)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, h))?;
        let attn = self
            .hidden_dropout
            .forward(&self.attn_output.forward(&ctx, train)?, train)?;
        let xs = self.attn_norm.forward(&(attn + xs)?, train)?;
        let inter = layers::activation(&self.intermediate.forward(&xs, train)?, self.act, train)?;
        let out = self
            .hidden_dropout
            .forward(&self.output.forward(&inter, train)?, train)?;
        self.output_norm.forward(&(out + xs)?, train)
    }
}

/// The encoder without a head; `forward` returns the last hidden state [batch, seq, hidden].
pub struct BertModel {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    emb_norm: LayerNorm,
    emb_dropout: Dropout,
    /// Shared with the recompute closures of gradient checkpointing.
    layers: Vec<Arc<BertLayer>>,
    recompute: Option<Recompute>,
    hidden: usize,
    /// The compute dtype: trainable embeddings (f32 master copies) are cast to it.
    dtype: DType,
}

impl BertModel {
    /// `prefix` is the HF module path of the encoder (`bert` inside `BertForSequenceClassification`).
    pub fn load(p: &ParamBuilder, prefix: &str, c: &BertConfig) -> Result<BertModel> {
        let h = c.hidden_size;
        let emb = |name: &str, rows: usize| {
            p.tensor(
                &format!("{prefix}.embeddings.{name}.weight"),
                &[rows, h],
                Role::Backbone,
                Init::Normal(c.initializer_range),
            )
        };
        Ok(BertModel {
            word: emb("word_embeddings", c.vocab_size)?,
            position: emb("position_embeddings", c.max_position_embeddings)?,
            token_type: emb("token_type_embeddings", c.type_vocab_size)?,
            emb_norm: LayerNorm::load(p, &format!("{prefix}.embeddings.LayerNorm"), h, c.layer_norm_eps)?,
            emb_dropout: p.dropout(c.hidden_dropout_prob),
            layers: (0..c.num_hidden_layers)
                .map(|i| BertLayer::load(p, &format!("{prefix}.encoder.layer.{i}"), c).map(Arc::new))
                .collect::<Result<_>>()?,
            recompute: p.recompute(),
            hidden: h,
            dtype: p.dtype(),
        })
    }

    /// `input_ids` [batch, seq] u32, `attention_mask` [batch, seq] u32 (1 = token, 0 = pad).
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        if t > self.position.dim(0)? {
            candle_core::bail!(
                "sequence length {t} exceeds max_position_embeddings {}",
                self.position.dim(0)?
            );
        }
        let words = self
            .word
            .index_select(&input_ids.flatten_all()?, 0)?
            .reshape((b, t, self.hidden))?
            .to_dtype(self.dtype)?;
        // token_type_ids are all 0 for single-sentence classification, as the seed feeds them.
        let xs = words
            .broadcast_add(&self.position.narrow(0, 0, t)?.to_dtype(self.dtype)?)?
            .broadcast_add(&self.token_type.narrow(0, 0, 1)?.to_dtype(self.dtype)?)?;
        let mut xs = self.emb_dropout.forward(&self.emb_norm.forward(&xs, train)?, train)?;
        let mask = padding_mask(attention_mask, xs.dtype())?;
        for layer in &self.layers {
            let (layer, mask) = (layer.clone(), mask.clone());
            xs = recompute::run_layer(self.recompute.as_ref(), train, &xs, move |x| {
                layer.forward(x, &mask, train)
            })?;
        }
        Ok(xs)
    }
}

/// Additive key mask [batch, 1, 1, seq]: 0 where attended, the dtype's minimum at padding.
pub fn padding_mask(attention_mask: &Tensor, dtype: DType) -> candle_core::Result<Tensor> {
    let (b, t) = attention_mask.dims2()?;
    let m = attention_mask.to_dtype(DType::F32)?;
    // The target dtype's own minimum: f32's would round to -inf in f16 and bf16.
    let add = ((m.ones_like()? - m)? * layers::mask_min(dtype))?;
    add.to_dtype(dtype)?.reshape((b, 1, 1, t))
}

/// `BertForSequenceClassification`: pooler (dense + tanh on [CLS]) -> dropout -> classifier.
/// With `Pooling::Mean` the pooler is skipped and the classifier reads the attention-masked mean
/// of the last hidden state, as sentence-transformers checkpoints (MiniLM) were trained to be
/// used: their pooler is absent, so a frozen backbone (linear probe, LoRA) would otherwise feed
/// the classifier through a random, frozen projection.
pub struct BertForSequenceClassification {
    bert: BertModel,
    pooling: Pooling,
    /// Only with `Pooling::Cls`.
    pooler: Option<Linear>,
    dropout: Dropout,
    classifier: Linear,
    n_classes: usize,
}

impl BertForSequenceClassification {
    pub fn load(p: &ParamBuilder, c: &BertConfig, n_classes: usize, pooling: Pooling) -> Result<Self> {
        let h = c.hidden_size;
        let bert = BertModel::load(p, "bert", c)?;
        // A checkpoint saved without its pooler gets a fresh one, as transformers does; built as a
        // `linear` so that LoRA targets such as "dense" reach it, as they do in PEFT.
        let pooler = match pooling {
            Pooling::Cls => Some(p.linear_opt(
                "bert.pooler.dense",
                h,
                h,
                true,
                Role::Backbone,
                c.initializer_range,
                true,
            )?),
            Pooling::Mean => None,
        };
        Ok(BertForSequenceClassification {
            bert,
            pooling,
            pooler,
            dropout: p.dropout(c.classifier_dropout.unwrap_or(c.hidden_dropout_prob)),
            classifier: p.linear("classifier", h, n_classes, true, Role::Head, c.initializer_range)?,
            n_classes,
        })
    }
}

impl SequenceClassifier for BertForSequenceClassification {
    fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let hidden = self.bert.forward(input_ids, attention_mask, train)?;
        let pooled = match (&self.pooling, &self.pooler) {
            (Pooling::Cls, Some(pooler)) => {
                let cls = hidden.narrow(1, 0, 1)?.squeeze(1)?;
                pooler.forward(&cls, train)?.tanh()?
            }
            _ => masked_mean(&hidden, attention_mask)?,
        };
        self.classifier.forward(&self.dropout.forward(&pooled, train)?, train)
    }

    fn n_classes(&self) -> usize {
        self.n_classes
    }
}

/// Mean of the last hidden state over attended positions: [batch, hidden].
pub fn masked_mean(hidden: &Tensor, attention_mask: &Tensor) -> candle_core::Result<Tensor> {
    let m = attention_mask.to_dtype(hidden.dtype())?.unsqueeze(D::Minus1)?;
    let sum = hidden.broadcast_mul(&m)?.sum(1)?;
    sum.broadcast_div(&m.sum(1)?)
}
