//! The layers every model family shares, in one place: attention probabilities with the
//! additive mask (`attention`), masks (`mask`), LayerNorm and RMSNorm (`norm`), activations and
//! the gated MLP product (`act`), rotary embeddings (`rope`), seeded dropout (`dropout`) and
//! log-softmax + cross-entropy (`loss`).
//!
//! Each differentiable op has two implementations:
//! - a **fused** candle `CustomOp` with a hand-written backward (itself one fused kernel), used
//!   when training on the CPU in f32. The graph then keeps one node per op instead of the five
//!   to ten primitives a composition records, each holding its own buffer until backward: the
//!   attention softmax stores its [batch, heads, seq, seq] probabilities once, the norms keep
//!   only their input and output. The kernels run over rows with rayon in chunked loops over
//!   contiguous slices, so they use every core and the compiler vectorises them;
//! - the **composed reference** (`reference` in each module): the same function written with
//!   candle primitives, whose backward candle derives. It runs for other dtypes and devices
//!   (candle calls a `CustomOp`'s `cuda_fwd` only if we dispatch to it, and the dispatch here
//!   never does off the CPU, so the CUDA build needs no kernels of ours) and is what the tests
//!   compare the fused ops with.
//!
//! `train = false` keeps the inference kernels (candle's fused ones, or ours without a graph
//! node), so predictions do not depend on this module's training path.

pub mod act;
pub mod attention;
pub mod dropout;
mod kernel;
pub mod loss;
pub mod mask;
pub mod norm;
pub mod rope;

pub use act::{activation, gated_activation, Activation};
pub use attention::{attention_softmax, softmax_last_dim};
pub use dropout::Dropout;
pub use loss::cross_entropy;
pub use mask::mask_min;
pub use norm::{layer_norm, rms_norm};
pub use rope::{rope, rope_tables};

use candle_core::{DType, Device, Result, Tensor};

/// Whether the fused CPU kernels can run on `xs`: f32 on the CPU. Everything else takes the
/// composed reference.
fn fused_supported(xs: &Tensor) -> bool {
    trains_fused(xs.device(), xs.dtype())
}

/// Whether training on `device` in `dtype` runs through the fused ops (the memory planner
/// counts their buffers, not the composed ones').
pub fn trains_fused(device: &Device, dtype: DType) -> bool {
    device.is_cpu() && dtype == DType::F32
}

/// f16 / bf16 to f32; other dtypes unchanged.
fn upcast(xs: &Tensor) -> Result<Tensor> {
    match xs.dtype() {
        DType::F16 | DType::BF16 => xs.to_dtype(DType::F32),
        _ => Ok(xs.clone()),
    }
}

#[cfg(test)]
pub(crate) mod testing;
