//! Llama and Qwen2 decoders (Qwen2 = Llama with biases on q/k/v), HF weight names, no KV
//! cache (every call is a full forward of the batch), causal mask combined with the padding
//! mask so left-padded batches work, and `*ForSequenceClassification`'s `score` head on the
//! hidden state of the last non-pad token.

use super::config::LlamaConfig;
use super::layers;
use super::lora::{matmul_t, Linear};
use super::params::{Init, ParamBuilder, Role};
use super::recompute::{self, Recompute};
use super::SequenceClassifier;
use crate::error::Result;
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn load(p: &ParamBuilder, name: &str, size: usize, eps: f64) -> Result<RmsNorm> {
        Ok(RmsNorm {
            weight: p.tensor(&format!("{name}.weight"), &[size], Role::Backbone, Init::Ones)?,
            eps,
        })
    }

    fn forward(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        layers::rms_norm(xs, &self.weight, self.eps, train)
    }
}

struct DecoderLayer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    gate: Linear,
    up: Linear,
    down: Linear,
    input_norm: RmsNorm,
    post_norm: RmsNorm,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    act: layers::Activation,
}

impl DecoderLayer {
    fn load(p: &ParamBuilder, prefix: &str, c: &LlamaConfig, qkv_bias: bool) -> Result<DecoderLayer> {
        let (h, hd, nh, nkv) = (c.hidden_size, c.head_dim(), c.num_attention_heads, c.n_kv_heads());
        let std = c.initializer_range;
        let lin = |name: &str, i: usize, o: usize, bias: bool| {
            p.linear(&format!("{prefix}.{name}"), i, o, bias, Role::Backbone, std)
        };
        Ok(DecoderLayer {
            q: lin("self_attn.q_proj", h, nh * hd, qkv_bias)?,
            k: lin("self_attn.k_proj", h, nkv * hd, qkv_bias)?,
            v: lin("self_attn.v_proj", h, nkv * hd, qkv_bias)?,
            o: lin("self_attn.o_proj", nh * hd, h, c.attention_bias)?,
            gate: lin("mlp.gate_proj", h, c.intermediate_size, c.mlp_bias)?,
            up: lin("mlp.up_proj", h, c.intermediate_size, c.mlp_bias)?,
            down: lin("mlp.down_proj", c.intermediate_size, h, c.mlp_bias)?,
            input_norm: RmsNorm::load(p, &format!("{prefix}.input_layernorm"), h, c.rms_norm_eps)?,
            post_norm: RmsNorm::load(p, &format!("{prefix}.post_attention_layernorm"), h, c.rms_norm_eps)?,
            n_heads: nh,
            n_kv_heads: nkv,
            head_dim: hd,
            act: layers::Activation::parse(&c.hidden_act)?,
        })
    }

    /// `mask`: additive [batch, 1, seq, seq]; `cos`/`sin`: [seq, head_dim / 2].
    fn forward(
        &self,
        xs: &Tensor,
        mask: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        let (b, t, _) = xs.dims3()?;
        let (nh, nkv, hd) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let x = self.input_norm.forward(xs, train)?;
        let split = |y: Tensor, heads: usize| y.reshape((b, t, heads, hd))?.transpose(1, 2)?.contiguous();
        let q = layers::rope(&split(self.q.forward(&x, train)?, nh)?, cos, sin, train)?;
        let k = layers::rope(&split(self.k.forward(&x, train)?, nkv)?, cos, sin, train)?;
        let v = split(self.v.forward(&x, train)?, nkv)?;
        let (k, v) = (repeat_kv(&k, nh / nkv)?, repeat_kv(&v, nh / nkv)?);
        // As transformers' eager attention: softmax in f32, then back to the model's dtype.
        let probs = layers::attention_softmax(&q.matmul(&k.t()?)?, mask, 1.0 / (hd as f64).sqrt(), train)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, nh * hd))?;
        let xs = (xs + self.o.forward(&ctx, train)?)?;
        let x = self.post_norm.forward(&xs, train)?;
        let mlp = layers::gated_activation(
            &self.gate.forward(&x, train)?,
            &self.up.forward(&x, train)?,
            self.act,
            train,
        )?;
        xs + self.down.forward(&mlp, train)?
    }
}

/// Grouped-query attention: each kv head serves `n_rep` consecutive query heads (HF `repeat_kv`).
fn repeat_kv(xs: &Tensor, n_rep: usize) -> candle_core::Result<Tensor> {
    if n_rep == 1 {
        return Ok(xs.clone());
    }
    let (b, nkv, t, d) = xs.dims4()?;
    xs.unsqueeze(2)?
        .broadcast_as((b, nkv, n_rep, t, d))?
        .reshape((b, nkv * n_rep, t, d))
}

/// The decoder stack without a head; `forward` returns the final-norm hidden state.
pub struct LlamaModel {
    embed: Tensor,
    /// Shared with the recompute closures of gradient checkpointing.
    layers: Vec<Arc<DecoderLayer>>,
    recompute: Option<Recompute>,
    norm: RmsNorm,
    hidden: usize,
    head_dim: usize,
    rope_theta: f64,
    /// The compute dtype: trainable embeddings (f32 master copies) are cast to it.
    dtype: DType,
}

impl LlamaModel {
    pub fn load(p: &ParamBuilder, c: &LlamaConfig, qkv_bias: bool) -> Result<LlamaModel> {
        Ok(LlamaModel {
            embed: p.tensor(
                "model.embed_tokens.weight",
                &[c.vocab_size, c.hidden_size],
                Role::Backbone,
                Init::Normal(c.initializer_range),
            )?,
            layers: (0..c.num_hidden_layers)
                .map(|i| DecoderLayer::load(p, &format!("model.layers.{i}"), c, qkv_bias).map(Arc::new))
                .collect::<Result<_>>()?,
            recompute: p.recompute(),
            norm: RmsNorm::load(p, "model.norm", c.hidden_size, c.rms_norm_eps)?,
            hidden: c.hidden_size,
            head_dim: c.head_dim(),
            rope_theta: c.rope_theta,
            dtype: p.dtype(),
        })
    }

    pub fn embed_tokens(&self) -> &Tensor {
        &self.embed
    }

    /// `input_ids`, `attention_mask`: [batch, seq] u32. Positions are 0..seq for every row,
    /// as transformers uses without explicit position_ids; under left padding this shifts
    /// the real tokens' absolute positions but not their relative ones, which is all RoPE
    /// attention sees.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        let mut xs = self
            .embed
            .index_select(&input_ids.flatten_all()?, 0)?
            .reshape((b, t, self.hidden))?
            .to_dtype(self.dtype)?;
        let dtype = xs.dtype();
        let (cos, sin) = layers::rope_tables(t, self.head_dim, self.rope_theta, dtype, xs.device())?;
        let mask = causal_padding_mask(attention_mask, dtype, xs.device())?;
        for layer in &self.layers {
            let (layer, mask, cos, sin) = (layer.clone(), mask.clone(), cos.clone(), sin.clone());
            xs = recompute::run_layer(self.recompute.as_ref(), train, &xs, move |x| {
                layer.forward(x, &mask, &cos, &sin, train)
            })?;
        }
        self.norm.forward(&xs, train)
    }
}

/// Additive mask [batch, 1, seq, seq]: query i may attend key j iff j <= i and j is not padding.
/// Built with tensor ops on the mask's device, so a GPU forward copies nothing to the host. The
/// dtype's own minimum (exact in f32): f32's would round to -inf in f16/bf16, and a left-padding
/// query row masked everywhere would turn into NaN.
fn causal_padding_mask(attention_mask: &Tensor, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
    let (b, t) = attention_mask.dims2()?;
    let pos = Tensor::arange(0u32, t as u32, device)?;
    let future = pos
        .reshape((1, t))?
        .broadcast_gt(&pos.reshape((t, 1))?)?
        .reshape((1, 1, t, t))?;
    let padding = attention_mask.to_device(device)?.eq(0u32)?.reshape((b, 1, 1, t))?;
    let additive = |blocked: &Tensor| blocked.to_dtype(dtype)?.affine(layers::mask_min(dtype), 0.0);
    // Blocked if either blocks: the minimum of two masks holding 0 or the same minimum (their
    // sum would overflow to -inf).
    additive(&future)?.broadcast_minimum(&additive(&padding)?)
}

/// Flat row index (row * seq + position) of the last attended position of each row (the last
/// non-pad token; 0 for a row of padding only), [batch] u32, on the mask's device: the largest
/// of mask x (position + 1), minus one. In f32, exact for batch x seq below 2^24.
pub fn last_token_index(attention_mask: &Tensor) -> candle_core::Result<Tensor> {
    let (b, t) = attention_mask.dims2()?;
    let device = attention_mask.device();
    let positions = Tensor::arange(1u32, t as u32 + 1, device)?.to_dtype(DType::F32)?;
    let last = attention_mask
        .to_dtype(DType::F32)?
        .broadcast_mul(&positions.reshape((1, t))?)?
        .max(1)?
        .maximum(1f64)?
        .affine(1.0, -1.0)?;
    let row_start = Tensor::arange(0u32, b as u32, device)?
        .to_dtype(DType::F32)?
        .affine(t as f64, 0.0)?;
    (last + row_start)?.to_dtype(DType::U32)
}

/// Rows `flat_index` (from `last_token_index`) of `hidden` [batch, seq, hidden] -> [batch, hidden].
pub fn select_positions(hidden: &Tensor, flat_index: &Tensor) -> candle_core::Result<Tensor> {
    let (b, t, h) = hidden.dims3()?;
    hidden.reshape((b * t, h))?.index_select(flat_index, 0)
}

/// `LlamaForSequenceClassification` / `Qwen2ForSequenceClassification`: a bias-free `score`
/// linear on the last non-pad token's hidden state.
pub struct LlamaForSequenceClassification {
    model: LlamaModel,
    score: Linear,
    n_classes: usize,
}

impl LlamaForSequenceClassification {
    pub fn load(p: &ParamBuilder, c: &LlamaConfig, qkv_bias: bool, n_classes: usize) -> Result<Self> {
        Ok(LlamaForSequenceClassification {
            model: LlamaModel::load(p, c, qkv_bias)?,
            score: p.linear(
                "score",
                c.hidden_size,
                n_classes,
                false,
                Role::Head,
                c.initializer_range,
            )?,
            n_classes,
        })
    }
}

impl SequenceClassifier for LlamaForSequenceClassification {
    fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let hidden = self.model.forward(input_ids, attention_mask, train)?;
        let last = select_positions(&hidden, &last_token_index(attention_mask)?)?;
        self.score.forward(&last, train)
    }

    fn n_classes(&self) -> usize {
        self.n_classes
    }
}

/// Next-token logits at the last position of each row, for parity checks against transformers
/// / llama.cpp: [batch, vocab]. `lm_head` is the untied head, else the embedding.
pub fn last_position_logits(
    model: &LlamaModel,
    lm_head: Option<&Tensor>,
    input_ids: &Tensor,
    attention_mask: &Tensor,
) -> candle_core::Result<Tensor> {
    let hidden = model.forward(input_ids, attention_mask, false)?;
    let last = select_positions(&hidden, &last_token_index(attention_mask)?)?;
    matmul_t(&last, lm_head.unwrap_or(model.embed_tokens()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mask and last-token index as the host loop built them before they moved to tensor
    /// ops: the device-built ones must equal them value for value.
    #[test]
    fn device_built_masks_and_last_positions_equal_the_host_loop() {
        let rows: Vec<Vec<u32>> = vec![
            vec![0, 0, 1, 1, 1],
            vec![1, 1, 1, 1, 1],
            vec![0, 0, 0, 0, 1],
            vec![1, 1, 1, 0, 0],
            vec![0, 0, 0, 0, 0],
        ];
        let (b, t) = (rows.len(), rows[0].len());
        let attention = Tensor::new(rows.clone(), &Device::Cpu).unwrap();
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let min = layers::mask_min(dtype) as f32;
            let mut want = vec![0f32; b * t * t];
            for (r, row) in rows.iter().enumerate() {
                for i in 0..t {
                    for j in 0..t {
                        if j > i || row[j] == 0 {
                            want[(r * t + i) * t + j] = min;
                        }
                    }
                }
            }
            let want = Tensor::from_vec(want, (b, 1, t, t), &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let got = causal_padding_mask(&attention, dtype, &Device::Cpu).unwrap();
            assert_eq!(got.dims(), want.dims());
            assert_eq!(got.dtype(), dtype);
            let flat = |x: &Tensor| {
                x.to_dtype(DType::F32)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            };
            let (g, w) = (flat(&got), flat(&want));
            assert!(
                g.iter()
                    .zip(&w)
                    .all(|(a, b)| a.to_bits() == b.to_bits() || (*a == 0.0 && *b == 0.0)),
                "{dtype:?}: {g:?} vs {w:?}"
            );
        }
        let want: Vec<u32> = rows
            .iter()
            .enumerate()
            .map(|(r, row)| (r * t) as u32 + row.iter().rposition(|&m| m != 0).unwrap_or(0) as u32)
            .collect();
        assert_eq!(last_token_index(&attention).unwrap().to_vec1::<u32>().unwrap(), want);
    }

    /// Regression: masks were built with f32's minimum, which becomes -inf in f16 and bf16, so a
    /// padding query (masked everywhere under left padding) became NaN and spread through
    /// 0 x NaN in the next layer.
    #[test]
    fn masks_stay_finite_in_half_precision() {
        let attention = Tensor::new(&[[0u32, 0, 1, 1], [1, 1, 1, 1]], &Device::Cpu).unwrap();
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            for (what, mask) in [
                ("causal", causal_padding_mask(&attention, dtype, &Device::Cpu).unwrap()),
                ("bert", super::super::bert::padding_mask(&attention, dtype).unwrap()),
            ] {
                let v: Vec<f32> = mask
                    .to_dtype(DType::F32)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                assert!(v.iter().all(|x| x.is_finite()), "{what} {dtype:?}: {v:?}");
                assert!(v.iter().any(|&x| x < -1e4), "{what} {dtype:?}: nothing masked");
            }
        }
    }
}
