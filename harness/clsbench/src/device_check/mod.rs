//! What `scripts/gpu-check.sh` runs on a GPU through the carried binary (hidden subcommands
//! `clsbench gpu-check` and `clsbench gpu-perf`), and what the CPU tests run with `--device cpu`:
//!
//! - `checks`: tiny random models of every family (BERT, Llama, Qwen2, ModernBERT) built
//!   from their configs alone: forward parity of the device against the CPU in f32, in f16
//!   and bf16 within tolerances; one training step where every trainable variable of every
//!   method gets a finite, non-zero f32 gradient; gradients of the device's half precision
//!   (unscaled) against the CPU's f32; f16's loss scaler skipping an overflowing step.
//! - `synthetic`: throughput of real-size shapes with random weights (ModernBERT-base full
//!   fine-tune, Qwen2.5-0.5B + LoRA r16 on q/k/v/o): inference documents/s per batch size,
//!   single-example p50/p95, training step time, peak device memory.
//! - `render`: the Markdown tables of both.
//!
//! Nothing here reads weights, tokenizers or data: random token ids stand in for text, so the
//! device needs only the binary.

pub mod checks;
pub mod render;
pub mod synthetic;

use crate::error::{Error, Result};
use crate::models::text::PadSide;
use crate::models::ModelConfig;
use std::path::Path;

pub use clsbench_models::tiny::{TINY_BERT, TINY_LLAMA, TINY_MODERNBERT, TINY_QWEN2};
/// answerdotai/ModernBERT-base's config.json.
pub const MODERNBERT_BASE: &str = include_str!("../../../../fixtures/configs/modernbert-base.json");
/// Qwen/Qwen2.5-0.5B's config.json.
pub const QWEN2_5_0_5B: &str = include_str!("../../../../fixtures/configs/qwen2.5-0.5b.json");

/// A tiny model of one family, with its LoRA targets (PEFT names) and padding side.
pub struct TinyFamily {
    pub name: &'static str,
    pub config: ModelConfig,
    pub lora_targets: Vec<&'static str>,
    pub side: PadSide,
}

pub fn parse_config(text: &str, name: &str) -> Result<ModelConfig> {
    ModelConfig::parse(text, Path::new(name))
}

/// Every family, tiny.
pub fn tiny_families() -> Result<Vec<TinyFamily>> {
    let attention = vec!["q_proj", "k_proj", "v_proj", "o_proj"];
    Ok(vec![
        TinyFamily {
            name: "bert",
            config: parse_config(TINY_BERT, "tiny-bert.json")?,
            lora_targets: vec!["query", "key", "value", "dense"],
            side: PadSide::Right,
        },
        TinyFamily {
            name: "llama",
            config: parse_config(TINY_LLAMA, "tiny-llama.json")?,
            lora_targets: attention.clone(),
            side: PadSide::Left,
        },
        TinyFamily {
            name: "qwen2",
            config: parse_config(TINY_QWEN2, "tiny-qwen2.json")?,
            lora_targets: attention,
            side: PadSide::Left,
        },
        TinyFamily {
            name: "modernbert",
            config: parse_config(TINY_MODERNBERT, "tiny-modernbert.json")?,
            lora_targets: vec!["Wqkv", "Wo"],
            side: PadSide::Right,
        },
    ])
}

/// `f32`, `f16`, `bf16` (comma-separated lists in the subcommands' flags).
pub fn parse_dtypes(list: &str) -> Result<Vec<candle_core::DType>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s {
            "f32" => Ok(candle_core::DType::F32),
            "f16" => Ok(candle_core::DType::F16),
            "bf16" => Ok(candle_core::DType::BF16),
            other => Err(Error::bad_input(format!(
                "--dtypes: expected f32, f16 or bf16, got {other:?}"
            ))),
        })
        .collect()
}
