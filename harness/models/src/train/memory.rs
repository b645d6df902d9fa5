//! The memory planner: an estimate of a training run's peak memory from the model config, the
//! method, dtype, batch, length and checkpointing, made before any weight is loaded, and the
//! micro-batch size that keeps it under a cap (`max_memory_gb`).
//!
//! ## Where the bytes go
//! - weights: frozen tensors in the compute dtype, trainable ones as f32 master copies (plus
//!   their per-forward cast to the compute dtype in f16/bf16);
//! - gradients (f32, one per trainable value; two while micro-batches accumulate), AdamW's two
//!   moments, and the best epoch's snapshot of the trainable tensors;
//! - activations: candle keeps every op's output that the graph references until backward,
//!   so a layer costs the sum of its ops' outputs. [`OpCoefficients`] holds how many tensors
//!   of an op's width each op kind keeps (derived from the composed ops in `models::layers` and
//!   the layer code, see each field); `layer_elements` adds them up per family.
//!   With checkpointing only each layer's output (and a leaf copy of the first input) stays;
//!   backward then holds one layer's recomputed activations and their gradients;
//! - backward's transient: the gradients of one layer's activations (about as large as them),
//!   plus a workspace proportional to the kept activations that the op count does not explain
//!   (`OpCoefficients::backward_workspace`, fitted to measured peaks: see there);
//! - a fixed process overhead (binary, tokenizer, data, allocator slack).
//!
//! Loading comes before all of it and can be the larger peak: on the CPU the checkpoint is
//! memory-mapped, and each tensor read through the map leaves its pages resident beside its
//! copy until the build ends and the map is dropped. The load peak is then weights + the
//! mapped bytes of the tensors read + a smaller overhead ([`LOAD_OVERHEAD_BYTES`]), without
//! optimiser state or activations; the estimate is the larger of the two peaks. With LoRA and
//! checkpointing (little training state beside frozen weights) loading dominates:
//! Qwen2.5-Coder-0.5B LoRA 8 x 128 with checkpointing measured 3.82 GiB against a training
//! peak estimated at 2.49.

use super::plan::TrainMethod;
use crate::params::LoraSettings;
use crate::ModelConfig;
use candle_core::DType;
use serde::{Deserialize, Serialize};

/// How many tensors of its width each op kind keeps alive in candle's graph until backward.
/// The one place these live: the fused ops (issue 11 item 1) change `layer_norm`, `rms_norm`,
/// `softmax`, `rope`, `activation`, `attention_scores` and `dropout`, which then need
/// re-fitting against measured peaks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpCoefficients {
    /// A linear layer: its matmul output (per output feature).
    pub linear: f64,
    /// A linear layer with a bias: the biased output besides the matmul's.
    pub linear_bias: f64,
    /// Composed layer norm (with bias), per hidden feature: centred, squared, normalised,
    /// scaled, shifted (mean and variance are one value per token).
    pub layer_norm: f64,
    /// Without a bias (ModernBERT): one tensor fewer.
    pub layer_norm_no_bias: f64,
    /// candle_nn's `rms_norm_slow`: x^2, x / rms, * weight.
    pub rms_norm: f64,
    /// Attention scores per score element: q k^T, the 1/sqrt(d) scaling, the additive mask.
    pub attention_scores: f64,
    /// candle_nn's composed softmax per score element: x - max, exp, / sum (kept in f32).
    pub softmax: f64,
    /// Rotate-half RoPE (`rope_slow`) per element of q or k: -x2 (half), cat, * cos, * sin, +.
    pub rope: f64,
    /// Our seeded dropout: the mask tensor and the product.
    pub dropout: f64,
    /// A copy made by `contiguous` / `reshape` of a transposed view (head split and merge).
    pub layout_copy: f64,
    /// An element-wise activation (its output; its input is the linear's output).
    pub activation: f64,
    /// The gated MLP product act(gate) * up (Llama's SwiGLU, ModernBERT's GeGLU), per
    /// intermediate feature: composed, the activation's output and the product; fused, the
    /// product only.
    pub gated_activation: f64,
    /// An element-wise binary op's output (residual add, gated product).
    pub elementwise: f64,
    /// Not derived but fitted: the peak RSS of a training step exceeds weights + optimiser +
    /// the counted activations + one layer's gradients by this fraction of the counted
    /// activations (backward's temporaries, gradients pending across layers, freed pages the
    /// allocator has not returned yet). Fitted on this machine (`cargo bench --bench models
    /// -- --skip-inference --steps 1 --models M --modes X` under `/usr/bin/time -v`, one run
    /// each): MiniLM full 32 x 128 needed 0.31, SmolLM2-135M LoRA 16 x 64 needed 0.78; 0.5
    /// puts both within 15% (+11%, -14%), and SmolLM2 LoRA 16 x 128 (not used in the fit) at
    /// -9% of the 14.6 GiB it had reached when the shared machine's OOM killer stopped it.
    /// That the two families need different values says the op count misses something
    /// Llama-specific; re-fit after the fused ops land (README "Training memory").
    pub backward_workspace: f64,
    /// With checkpointing, backward's extra: how many layers' worth of activations (the
    /// recomputed layer and its activations' gradients) are alive at once. Fitted like
    /// `backward_workspace`: 2 with the composed ops, 1 with the fused ones (measured peaks of
    /// MiniLM full 32 x 128 and SmolLM2 LoRA 16 x 64 and 16 x 128, within 7%; README
    /// "Training memory").
    pub recompute_layers: f64,
}

/// The composed ops of this code base (before the fused ops of issue 11 item 1).
pub const COMPOSED_OPS: OpCoefficients = OpCoefficients {
    linear: 1.0,
    linear_bias: 1.0,
    layer_norm: 5.0,
    layer_norm_no_bias: 4.0,
    rms_norm: 3.0,
    attention_scores: 3.0,
    softmax: 3.0,
    rope: 4.5,
    dropout: 2.0,
    layout_copy: 1.0,
    activation: 1.0,
    gated_activation: 2.0,
    elementwise: 1.0,
    backward_workspace: 0.5,
    recompute_layers: 2.0,
};

/// The fused CPU ops of `models::layers` (f32 on the CPU): each `CustomOp` keeps only its
/// output in the graph (its inputs are other ops' outputs, already counted) and recomputes its
/// statistics in backward: layer norm, RMSNorm and rope keep 1 tensor instead of 5 / 3 / 4.5;
/// the attention op takes q k^T and the mask and folds the scaling in, so the scores keep
/// 1 tensor (q k^T) and the softmax 1 (P) instead of 3 and 3; the gated product keeps 1 instead
/// of 2. Linear layers, layout copies, dropout and residual adds are unchanged.
/// `backward_workspace` checked against measured peaks with the fused ops (0.5 still puts the
/// three rows of README "Training memory" within 9%); `recompute_layers` re-fitted.
pub const FUSED_OPS: OpCoefficients = OpCoefficients {
    layer_norm: 1.0,
    layer_norm_no_bias: 1.0,
    rms_norm: 1.0,
    attention_scores: 1.0,
    softmax: 1.0,
    rope: 1.0,
    gated_activation: 1.0,
    backward_workspace: 0.5,
    recompute_layers: 1.0,
    ..COMPOSED_OPS
};

/// Bytes the process holds besides training state (binary, tokenizer, texts, allocator slack).
pub const PROCESS_OVERHEAD_BYTES: f64 = 0.3 * GIB;

/// Bytes the process holds while the weights load, besides them and the map: the binary,
/// tokenizer and texts, without training's allocator slack. Fitted, not counted: the load-bound
/// peaks measured (`cargo bench --bench models`, LoRA with checkpointing, under
/// `/usr/bin/time -v`) left 0.12 GiB beside weights and map for Qwen2.5-Coder-0.5B (3.82 GiB =
/// 1.85 + 1.85 + 0.12) and 0.04 GiB for SmolLM2-135M (1.05 = 0.51 + 0.50 + 0.04).
pub const LOAD_OVERHEAD_BYTES: f64 = 0.1 * GIB;

const GIB: f64 = (1u64 << 30) as f64;

/// What the planner is asked about one run.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    pub config: &'a ModelConfig,
    pub method: TrainMethod,
    pub lora: Option<&'a LoraSettings>,
    /// Compute dtype (frozen weights, activations).
    pub dtype: DType,
    /// Training runs the fused ops (`models::layers::trains_fused`: f32 on the CPU), which keep
    /// fewer buffers than the composed ones every other device and dtype runs.
    pub fused_ops: bool,
    pub total_params: usize,
    pub trainable_params: usize,
    /// Padded sequence length (the suite's `max_length`: an upper bound of every batch's).
    pub seq_len: usize,
    pub gradient_checkpointing: bool,
    /// Batches per optimiser step, or micro-batches per batch when split (> 1 keeps the
    /// running gradient sum beside the newest gradients).
    pub grad_accumulation: usize,
    /// On the CPU, the bytes of the checkpoint's tensors the build reads through the memory
    /// map (resident beside their copies until it ends); `None` where the copies go to another
    /// device's memory, which the map does not share.
    pub mapped_checkpoint_bytes: Option<f64>,
}

/// Peak memory of one training step at a given micro-batch size, by part, in bytes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MemoryEstimate {
    pub micro_batch: usize,
    pub seq_len: usize,
    pub weights_bytes: f64,
    /// Gradients, AdamW moments and the best-epoch snapshot.
    pub optimizer_bytes: f64,
    /// Kept until backward (all layers, or their checkpoints).
    pub activation_bytes: f64,
    /// Alive only during backward (one layer's activation gradients, and its recompute).
    pub backward_bytes: f64,
    pub overhead_bytes: f64,
    /// While the weights load (CPU): the memory-mapped checkpoint bytes resident beside the
    /// weights' copies. Absent from train reports written before it was estimated (0).
    #[serde(default)]
    pub load_bytes: f64,
    /// The larger of the training peak and the load peak.
    pub total_bytes: f64,
}

impl MemoryEstimate {
    pub fn total_gib(&self) -> f64 {
        self.total_bytes / GIB
    }

    /// The peak of a training step: weights, optimiser state, activations, backward, overhead.
    pub fn training_bytes(&self) -> f64 {
        self.weights_bytes + self.optimizer_bytes + self.activation_bytes + self.backward_bytes + self.overhead_bytes
    }

    /// The peak while the weights load: their copies, the mapped checkpoint, overhead.
    pub fn loading_bytes(&self) -> f64 {
        if self.load_bytes > 0.0 {
            self.weights_bytes + self.load_bytes + LOAD_OVERHEAD_BYTES
        } else {
            0.0
        }
    }

    /// Loading, not training, sets the peak (smaller micro-batches do not lower it).
    pub fn load_bound(&self) -> bool {
        self.loading_bytes() > self.training_bytes()
    }

    /// "3.2 GiB (weights 0.5, optimiser 1.2, activations 1.1, backward 0.1, overhead 0.3)",
    /// and, when loading sets the peak, "3.8 GiB while loading (weights 1.8, mapped
    /// checkpoint 1.8, overhead 0.1; training 2.5 GiB: optimiser ...)".
    pub fn describe(&self) -> String {
        let training = format!(
            "optimiser {:.2}, activations {:.2}, backward {:.2}",
            self.optimizer_bytes / GIB,
            self.activation_bytes / GIB,
            self.backward_bytes / GIB,
        );
        if self.load_bound() {
            format!(
                "{:.2} GiB while loading (weights {:.2}, mapped checkpoint {:.2}, overhead {:.2}; training {:.2} GiB: {training})",
                self.total_gib(),
                self.weights_bytes / GIB,
                self.load_bytes / GIB,
                LOAD_OVERHEAD_BYTES / GIB,
                self.training_bytes() / GIB,
            )
        } else {
            format!(
                "{:.2} GiB (weights {:.2}, {training}, overhead {:.2})",
                self.total_gib(),
                self.weights_bytes / GIB,
                self.overhead_bytes / GIB
            )
        }
    }
}

/// Activation elements one layer keeps per token, and per token outside the layers
/// (embeddings), for `c` under `ops`.
fn layer_elements(p: &PlanInput, ops: &OpCoefficients) -> (f64, f64) {
    let lora_on = |module: &str| p.lora.and_then(|l| l.matches(&format!("probe.{module}"))).is_some();
    let lora_dropout = p.lora.is_some_and(|l| l.dropout > 0.0);
    let r = p.lora.map_or(0, |l| l.r) as f64;
    // One linear's outputs, plus its adapter's: drop(x) (mask + product) on the input,
    // x A^T (r), (.) B^T, * scale, + base.
    let linear = |module: &str, inp: usize, out: usize, bias: bool| {
        let mut e = out as f64 * (ops.linear + if bias { ops.linear_bias } else { 0.0 });
        if lora_on(module) {
            e += r + 3.0 * out as f64 * ops.elementwise;
            if lora_dropout {
                e += ops.dropout * inp as f64;
            }
        }
        e
    };
    let seq = p.seq_len as f64;
    match p.config {
        ModelConfig::Bert(c) => {
            let (h, i) = (c.hidden_size, c.intermediate_size);
            let a = (c.num_attention_heads as f64) * seq;
            let drop = |prob: f64, w: f64| if prob > 0.0 { ops.dropout * w } else { 0.0 };
            let hf = h as f64;
            let layer = linear("attention.self.query", h, h, true)
                + linear("attention.self.key", h, h, true)
                + linear("attention.self.value", h, h, true)
                + 3.0 * ops.layout_copy * hf
                + a * (ops.attention_scores + ops.softmax)
                + drop(c.attention_probs_dropout_prob, a)
                + 2.0 * ops.layout_copy * hf // probs v, then the head merge's copy
                + linear("attention.output.dense", h, h, true)
                + drop(c.hidden_dropout_prob, hf)
                + ops.elementwise * hf
                + ops.layer_norm * hf
                + linear("intermediate.dense", h, i, true)
                + ops.activation * i as f64
                + linear("output.dense", i, h, true)
                + drop(c.hidden_dropout_prob, hf)
                + ops.elementwise * hf
                + ops.layer_norm * hf;
            // Word lookup, + position, + token type, layer norm, dropout.
            let embeddings = 3.0 * hf + ops.layer_norm * hf + drop(c.hidden_dropout_prob, hf);
            (layer, embeddings)
        }
        ModelConfig::ModernBert(c) => {
            let (h, i) = (c.hidden_size, c.intermediate_size);
            let hf = h as f64;
            let a = (c.num_attention_heads as f64) * seq;
            let drop = |prob: f64, w: f64| if prob > 0.0 { ops.dropout * w } else { 0.0 };
            let norm = if c.norm_bias {
                ops.layer_norm
            } else {
                ops.layer_norm_no_bias
            };
            let layer = norm * hf // attn_norm (layer 0 has none: a slight overestimate)
                + linear("attn.Wqkv", h, 3 * h, c.attention_bias)
                + 3.0 * ops.layout_copy * hf
                + 2.0 * ops.rope * hf // q and k, rotated in f32
                + a * (ops.attention_scores + ops.softmax)
                + drop(c.attention_dropout, a)
                + 2.0 * ops.layout_copy * hf
                + linear("attn.Wo", h, h, c.attention_bias)
                + drop(c.attention_dropout, hf)
                + ops.elementwise * hf
                + norm * hf
                + linear("mlp.Wi", h, 2 * i, c.mlp_bias)
                + ops.gated_activation * i as f64
                + drop(c.mlp_dropout, i as f64)
                + linear("mlp.Wo", i, h, c.mlp_bias)
                + ops.elementwise * hf;
            let embeddings = hf + norm * hf + drop(c.embedding_dropout, hf);
            (layer, embeddings)
        }
        ModelConfig::Llama(c) | ModelConfig::Qwen2(c) => {
            let qkv_bias = matches!(p.config, ModelConfig::Qwen2(_)) || c.attention_bias;
            let (h, i, hd) = (c.hidden_size, c.intermediate_size, c.head_dim());
            let (q_dim, kv_dim) = (c.num_attention_heads * hd, c.n_kv_heads() * hd);
            let a = (c.num_attention_heads as f64) * seq;
            let hf = h as f64;
            let repeat = if kv_dim < q_dim { 2.0 * q_dim as f64 } else { 0.0 }; // repeat_kv of k and v
            let layer = ops.rms_norm * hf
                + linear("self_attn.q_proj", h, q_dim, qkv_bias)
                + linear("self_attn.k_proj", h, kv_dim, qkv_bias)
                + linear("self_attn.v_proj", h, kv_dim, qkv_bias)
                + ops.layout_copy * (q_dim + 2 * kv_dim) as f64
                + ops.rope * (q_dim + kv_dim) as f64
                + repeat
                + a * (ops.attention_scores + ops.softmax)
                + 2.0 * ops.layout_copy * q_dim as f64
                + linear("self_attn.o_proj", q_dim, h, c.attention_bias)
                + ops.elementwise * hf
                + ops.rms_norm * hf
                + linear("mlp.gate_proj", h, i, c.mlp_bias)
                + linear("mlp.up_proj", h, i, c.mlp_bias)
                + ops.gated_activation * i as f64
                + linear("mlp.down_proj", i, h, c.mlp_bias)
                + ops.elementwise * hf;
            (layer, hf)
        }
    }
}

/// The estimate at micro-batch size `micro_batch`, with `ops`' coefficients.
pub fn estimate_with(p: &PlanInput, micro_batch: usize, ops: &OpCoefficients) -> MemoryEstimate {
    let dsize = p.dtype.size_in_bytes() as f64;
    let trainable = p.trainable_params as f64;
    let frozen = p.total_params.saturating_sub(p.trainable_params) as f64;
    let cast_copies = if p.dtype == DType::F32 { 0.0 } else { trainable * dsize };
    let weights_bytes = frozen * dsize + trainable * 4.0 + cast_copies;
    let optimizer_bytes = trainable * 4.0 * (1.0 /* grads */ + 2.0 /* AdamW */ + 1.0/* snapshot */);
    let (layers, ..) = p.config.dims();
    let tokens = (micro_batch * p.seq_len) as f64;
    let (per_layer, embeddings) = layer_elements(p, ops);
    let layer_bytes = per_layer * tokens * dsize;
    let hidden = p.config.dims().1 as f64;
    let (activation_bytes, backward_bytes) = match p.method {
        // Nothing in the backbone is tracked: a layer's intermediates are freed as the
        // forward moves on; one layer's worth is alive at a time.
        TrainMethod::LinearProbe => (0.0, layer_bytes),
        _ if p.gradient_checkpointing => (
            // Each layer's output, the first layer's leaf copy, and the embeddings.
            (layers as f64 + 1.0) * hidden * tokens * dsize + embeddings * tokens * dsize,
            // One layer recomputed, and its activations' gradients.
            ops.recompute_layers * layer_bytes,
        ),
        _ => (layers as f64 * layer_bytes + embeddings * tokens * dsize, layer_bytes),
    };
    let backward_bytes = backward_bytes + ops.backward_workspace * activation_bytes;
    // Accumulating micro-batches (or grad_accumulation) keeps the running sum beside the
    // newest gradients while they are added.
    let accumulating = if p.grad_accumulation > 1 { trainable * 4.0 } else { 0.0 };
    let optimizer_bytes = optimizer_bytes + accumulating;
    let overhead_bytes = PROCESS_OVERHEAD_BYTES;
    let mut e = MemoryEstimate {
        micro_batch,
        seq_len: p.seq_len,
        weights_bytes,
        optimizer_bytes,
        activation_bytes,
        backward_bytes,
        overhead_bytes,
        load_bytes: p.mapped_checkpoint_bytes.unwrap_or(0.0),
        total_bytes: 0.0,
    };
    e.total_bytes = e.training_bytes().max(e.loading_bytes());
    e
}

/// The estimate with the coefficients of the ops that will run: fused or composed.
pub fn estimate(p: &PlanInput, micro_batch: usize) -> MemoryEstimate {
    estimate_with(p, micro_batch, if p.fused_ops { &FUSED_OPS } else { &COMPOSED_OPS })
}

/// How one batch is run: whole, or split into micro-batches whose gradients accumulate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MemoryPlan {
    pub batch_size: usize,
    /// Rows per micro-batch (= `batch_size` when the batch is not split).
    pub micro_batch_size: usize,
    /// Micro-batches per batch.
    pub micro_batches: usize,
    /// The cap it was planned under, GiB (`max_memory_gb`), if any.
    pub max_memory_gb: Option<f64>,
    /// The estimated peak at `micro_batch_size`.
    pub estimate: MemoryEstimate,
    /// The estimated peak of the whole batch (what splitting avoided).
    pub full_batch_estimate_gib: f64,
}

/// A batch that cannot fit even one row at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct DoesNotFit {
    pub at_one_row: MemoryEstimate,
    pub cap_gib: f64,
}

/// Split `batch_size` into the fewest equal micro-batches (`ceil(batch / k)` rows, the last
/// one shorter) whose estimate fits under `cap_gib`; with no cap the batch stays whole.
pub fn plan(p: &PlanInput, batch_size: usize, cap_gib: Option<f64>) -> Result<MemoryPlan, DoesNotFit> {
    let full = estimate(p, batch_size);
    let Some(cap) = cap_gib else {
        return Ok(MemoryPlan {
            batch_size,
            micro_batch_size: batch_size,
            micro_batches: 1,
            max_memory_gb: None,
            full_batch_estimate_gib: full.total_gib(),
            estimate: full,
        });
    };
    for k in 1..=batch_size {
        let micro = batch_size.div_ceil(k);
        // Skip k whose micro-batch size equals the previous k's (same peak, more splits).
        if k > 1 && batch_size.div_ceil(k - 1) == micro {
            continue;
        }
        // A split batch accumulates its micro-batches' gradients.
        let accumulating = PlanInput {
            grad_accumulation: if micro < batch_size {
                p.grad_accumulation.max(2)
            } else {
                p.grad_accumulation
            },
            ..p.clone()
        };
        let e = estimate(&accumulating, micro);
        if e.total_gib() <= cap {
            return Ok(MemoryPlan {
                batch_size,
                micro_batch_size: micro,
                micro_batches: batch_size.div_ceil(micro),
                max_memory_gb: Some(cap),
                full_batch_estimate_gib: full.total_gib(),
                estimate: e,
            });
        }
    }
    Err(DoesNotFit {
        at_one_row: estimate(p, 1),
        cap_gib: cap,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bert() -> ModelConfig {
        ModelConfig::parse(
            r#"{"model_type":"bert","vocab_size":30522,"hidden_size":384,"num_hidden_layers":6,
                "num_attention_heads":12,"intermediate_size":1536}"#,
            std::path::Path::new("config.json"),
        )
        .unwrap()
    }

    fn input(c: &ModelConfig, ckpt: bool) -> PlanInput<'_> {
        PlanInput {
            config: c,
            method: TrainMethod::Full,
            lora: None,
            dtype: DType::F32,
            total_params: 22_700_000,
            trainable_params: 22_700_000,
            seq_len: 128,
            fused_ops: false,
            gradient_checkpointing: ckpt,
            grad_accumulation: 1,
            mapped_checkpoint_bytes: None,
        }
    }

    /// LoRA r 8 (alpha 16) on BERT's query and value projections.
    fn lora_query_value(dropout: f64) -> LoraSettings {
        LoraSettings {
            r: 8,
            alpha: 16.0,
            dropout,
            targets: vec!["query".into(), "value".into()],
        }
    }

    #[test]
    fn bert_layer_sums_the_ops_it_keeps() {
        // Written out from BertLayer::forward with MiniLM's sizes (h 384, i 1536, 12 heads,
        // seq 128, dropout on): 31 hidden-wide tensors, 3 intermediate-wide, 8 score rows.
        let c = bert();
        let (layer, emb) = layer_elements(&input(&c, false), &COMPOSED_OPS);
        assert_eq!(layer, 31.0 * 384.0 + 3.0 * 1536.0 + 8.0 * 12.0 * 128.0);
        assert_eq!(emb, 10.0 * 384.0);
    }

    #[test]
    fn fused_ops_keep_one_tensor_per_norm_and_two_score_rows() {
        // The same BertLayer under the fused ops: each norm keeps 1 (not 5) hidden-wide
        // tensor, the attention 2 score rows (q k^T, P) instead of 6; dropout unchanged.
        let c = bert();
        let (layer, emb) = layer_elements(&input(&c, false), &FUSED_OPS);
        assert_eq!(layer, 23.0 * 384.0 + 3.0 * 1536.0 + 4.0 * 12.0 * 128.0);
        assert_eq!(emb, 6.0 * 384.0);
        let composed = estimate(&input(&c, false), 16);
        let fused = estimate(
            &PlanInput {
                fused_ops: true,
                ..input(&c, false)
            },
            16,
        );
        assert!(
            fused.activation_bytes < 0.8 * composed.activation_bytes,
            "{fused:?} vs {composed:?}"
        );
        assert_eq!(fused.weights_bytes, composed.weights_bytes);
    }

    #[test]
    fn activations_scale_with_tokens_and_checkpointing_keeps_less() {
        let c = bert();
        let p = input(&c, false);
        let (a8, a16) = (estimate(&p, 8), estimate(&p, 16));
        assert!((a16.activation_bytes / a8.activation_bytes - 2.0).abs() < 1e-9);
        assert_eq!(a16.weights_bytes, a8.weights_bytes);
        let ck = estimate(&input(&c, true), 16);
        assert!(ck.activation_bytes < a16.activation_bytes / 10.0, "{ck:?} vs {a16:?}");
        // Backward: one recomputed layer and its gradients, against one layer's gradients and
        // the workspace of all kept activations.
        let (layer, _) = layer_elements(&p, &COMPOSED_OPS);
        let layer_bytes = layer * 16.0 * 128.0 * 4.0;
        assert!((a16.backward_bytes - layer_bytes - 0.5 * a16.activation_bytes).abs() < 1.0);
        assert!((ck.backward_bytes - 2.0 * layer_bytes - 0.5 * ck.activation_bytes).abs() < 1.0);
        assert!(ck.total_bytes < a16.total_bytes);
    }

    #[test]
    fn plan_splits_to_the_fewest_micro_batches_that_fit() {
        let c = bert();
        let p = input(&c, false);
        let whole = plan(&p, 32, None).unwrap();
        assert_eq!((whole.micro_batch_size, whole.micro_batches), (32, 1));
        // A cap between the estimates at 8 and 11 rows: 32 -> 4 micro-batches of 8.
        let cap = (estimate(&p, 8).total_gib() + estimate(&p, 11).total_gib()) / 2.0;
        let split = plan(&p, 32, Some(cap)).unwrap();
        assert_eq!((split.micro_batch_size, split.micro_batches), (8, 4));
        assert!(split.estimate.total_gib() <= cap);
        let roomy = plan(&p, 32, Some(1e6)).unwrap();
        assert_eq!(roomy.micro_batches, 1);
        let too_small = estimate(&p, 1).total_gib() * 0.99;
        let err = plan(&p, 32, Some(too_small)).unwrap_err();
        assert_eq!(err.at_one_row.micro_batch, 1);
    }

    #[test]
    fn lora_keeps_the_adapters_activations_and_no_optimiser_state_for_the_backbone() {
        let c = bert();
        let lora = lora_query_value(0.1);
        let mut p = input(&c, false);
        let (full_layer, _) = layer_elements(&p, &COMPOSED_OPS);
        p.method = TrainMethod::Lora;
        p.lora = Some(&lora);
        p.trainable_params = 150_000;
        let (lora_layer, _) = layer_elements(&p, &COMPOSED_OPS);
        // Per adapted linear: r + 3 outputs + dropout (mask + product) of the input.
        assert_eq!(lora_layer - full_layer, 2.0 * (8.0 + 3.0 * 384.0 + 2.0 * 384.0));
        assert!(estimate(&p, 8).optimizer_bytes < estimate(&input(&c, false), 8).optimizer_bytes / 100.0);
    }

    #[test]
    fn loading_sets_the_peak_when_little_trains_beside_mapped_weights() {
        // LoRA with checkpointing: a few MB of training state beside 500M frozen f32 weights,
        // whose memory-mapped bytes stay resident while they are copied.
        let c = bert();
        let lora = lora_query_value(0.0);
        let mut p = input(&c, true);
        p.method = TrainMethod::Lora;
        p.lora = Some(&lora);
        p.total_params = 500_000_000;
        p.trainable_params = 150_000;
        p.fused_ops = true;
        let unmapped = estimate(&p, 1);
        assert_eq!(unmapped.load_bytes, 0.0);
        assert!(!unmapped.load_bound());
        assert_eq!(unmapped.total_bytes, unmapped.training_bytes());

        let mapped = 500_000_000.0 * 4.0;
        p.mapped_checkpoint_bytes = Some(mapped);
        let e = estimate(&p, 1);
        assert!(e.load_bound(), "{e:?}");
        assert_eq!(e.total_bytes, e.weights_bytes + mapped + LOAD_OVERHEAD_BYTES);
        assert_eq!(e.training_bytes(), unmapped.training_bytes());
        assert!(e.describe().contains("while loading"), "{}", e.describe());
        // A cap between the two peaks: no micro-batch size helps, so the plan refuses and the
        // refusal says loading is what does not fit.
        let cap = (e.training_bytes() + e.loading_bytes()) / 2.0 / GIB;
        let err = plan(&p, 32, Some(cap)).unwrap_err();
        assert!(err.at_one_row.load_bound());
        // Full fine-tuning of the same model: training (AdamW state, activations) dominates.
        let full = PlanInput {
            total_params: 500_000_000,
            trainable_params: 500_000_000,
            mapped_checkpoint_bytes: Some(mapped),
            ..input(&c, false)
        };
        assert!(!estimate(&full, 16).load_bound());
    }
}
