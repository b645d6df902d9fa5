//! `clsbench forward`: the base model's output on a few texts, as JSON, to compare against
//! PyTorch transformers / llama.cpp on the same weights (`/work/shared/reference/*.json`).
//! Encoders: the attention-masked mean of the last hidden state (sentence-transformers'
//! pooling), texts encoded with special tokens. Decoders: the top-10 next-token logits at the
//! last position, texts encoded without special tokens (as the references were made).
//! Each text is its own batch of one, so no padding enters the comparison.

use super::config::ModelConfig;
use super::params::{Mode, ParamBuilder, Source};
use super::text::TextEncoder;
use super::{bert, llama, loader};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use serde_json::json;
use std::path::Path;

pub fn forward_json(model_dir: &Path, texts: &[String]) -> Result<serde_json::Value> {
    let files = loader::from_dir(model_dir)?;
    let config = files.read_config()?;
    let device = Device::Cpu;
    let weights = loader::Weights::open(&files.weights)?;
    let params = ParamBuilder::new(
        Source::Checkpoint(weights),
        Mode::Inference { lora: None },
        DType::F32,
        device.clone(),
        0,
    );
    let decoder = config.family() == super::Family::Decoder;
    let encoder = TextEncoder::load(&files, &config, None, !decoder)?;
    let mut results = Vec::new();
    match &config {
        ModelConfig::Bert(c) => {
            let p = params.with_alias("bert.", "");
            let model = bert::BertModel::load(&p, "bert", c)?;
            for text in texts {
                let ids = encoder.encode(&[text.as_str()])?.remove(0);
                let (input, mask) = single(&ids, &device)?;
                let hidden = model.forward(&input, &mask, false)?;
                let pooled: Vec<f32> = bert::masked_mean(&hidden, &mask)?.squeeze(0)?.to_vec1()?;
                let norm = pooled.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
                results
                    .push(json!({"text": text, "token_ids": ids, "mean_pooled": pooled, "mean_pooled_l2norm": norm}));
            }
        }
        ModelConfig::Llama(c) | ModelConfig::Qwen2(c) => {
            let qkv_bias = matches!(config, ModelConfig::Qwen2(_)) || c.attention_bias;
            let model = llama::LlamaModel::load(&params, c, qkv_bias)?;
            let lm_head = if !c.tie_word_embeddings && params.has("lm_head.weight") {
                Some(params.tensor(
                    "lm_head.weight",
                    &[c.vocab_size, c.hidden_size],
                    super::params::Role::Backbone,
                    super::params::Init::Zeros,
                )?)
            } else {
                None
            };
            for text in texts {
                let ids = encoder.encode(&[text.as_str()])?.remove(0);
                if ids.is_empty() {
                    return Err(Error::bad_input(format!("text {text:?} encodes to no tokens")));
                }
                let (input, mask) = single(&ids, &device)?;
                let logits: Vec<f32> = llama::last_position_logits(&model, lm_head.as_ref(), &input, &mask)?
                    .squeeze(0)?
                    .to_vec1()?;
                let mut order: Vec<usize> = (0..logits.len()).collect();
                order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
                order.truncate(10);
                let top_logits: Vec<f32> = order.iter().map(|&i| logits[i]).collect();
                results.push(json!({"text": text, "token_ids": ids, "top10_ids": order, "top10_logits": top_logits}));
            }
        }
        ModelConfig::ModernBert(_) => return Err(Error::NotImplemented("forward for ModernBERT".into())),
    }
    Ok(json!({
        "model_dir": model_dir.display().to_string(),
        "model_type": config.model_type(),
        "output": if decoder { "top-10 next-token logits at the last position" } else { "attention-masked mean of the last hidden state" },
        "weights_sha256": files.weights_sha256()?,
        "results": results,
    }))
}

fn single(ids: &[u32], device: &Device) -> Result<(Tensor, Tensor)> {
    let n = ids.len();
    Ok((
        Tensor::from_vec(ids.to_vec(), (1, n), device)?,
        Tensor::ones((1, n), DType::U32, device)?,
    ))
}

/// Shared by the mirror-based tests of this crate: the offline model mirror built by
/// `fetch-models.sh`, or `None` (with a printed reason) so the test can skip.
#[cfg(test)]
pub(crate) fn test_mirror_model(name: &str) -> Option<std::path::PathBuf> {
    // The same variable the loader reads (`make bench` and CI set it), then the default.
    let root = std::env::var_os(crate::models::loader::MODEL_DIR_ENV)
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/model-mirror")))?;
    let dir = root.join(name);
    if dir.join("config.json").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: model mirror {} not found (run tools/fetch-models.sh or set CLSBENCH_MODEL_DIR)",
            dir.display()
        );
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(name: &str) -> serde_json::Value {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/reference")
            .join(name);
        crate::fsutil::read_json(&p).unwrap()
    }

    fn floats(v: &serde_json::Value) -> Vec<f64> {
        v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
    }

    #[test]
    fn minilm_mean_pooled_matches_transformers() {
        let Some(dir) = test_mirror_model("all-MiniLM-L6-v2") else {
            return;
        };
        let r = reference("minilm.json");
        let sentences = r["sentences"].as_array().unwrap();
        let texts: Vec<String> = sentences
            .iter()
            .map(|s| s["text"].as_str().unwrap().to_string())
            .collect();
        let out = forward_json(&dir, &texts).unwrap();
        assert_eq!(out["weights_sha256"], r["model_safetensors_sha256"]);
        for (got, want) in out["results"].as_array().unwrap().iter().zip(sentences) {
            assert_eq!(got["token_ids"], want["token_ids"], "{}", want["text"]);
            let pooled = floats(&got["mean_pooled"]);
            let first: Vec<f64> = floats(&want["mean_pooled_first16"]);
            let max_diff = first
                .iter()
                .zip(&pooled)
                .map(|(w, g)| (w - g).abs())
                .fold(0f64, f64::max);
            eprintln!(
                "minilm: {:?}: max |pooled diff| over 16 dims {max_diff:.2e}",
                want["text"]
            );
            for (i, w) in floats(&want["mean_pooled_first16"]).iter().enumerate() {
                assert!(
                    (pooled[i] - w).abs() < 1e-4,
                    "{}: dim {i}: {} vs {w}",
                    want["text"],
                    pooled[i]
                );
            }
            let norm = got["mean_pooled_l2norm"].as_f64().unwrap();
            assert!(
                (norm - want["mean_pooled_l2norm"].as_f64().unwrap()).abs() < 1e-4,
                "{norm}"
            );
        }
    }

    fn check_decoder(mirror_name: &str, reference_name: &str) {
        let Some(dir) = test_mirror_model(mirror_name) else {
            return;
        };
        let r = reference(reference_name);
        let prompts = r["prompts"].as_array().unwrap();
        let texts: Vec<String> = prompts
            .iter()
            .map(|s| s["prompt"].as_str().unwrap().to_string())
            .collect();
        let out = forward_json(&dir, &texts).unwrap();
        assert_eq!(out["weights_sha256"], r["model_safetensors_sha256"]);
        for (got, want) in out["results"].as_array().unwrap().iter().zip(prompts) {
            assert_eq!(got["token_ids"], want["token_ids"], "{}", want["prompt"]);
            let ids: Vec<u64> = got["top10_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            let logits = floats(&got["top10_logits"]);
            let want_logits = floats(&want["top10_logits"]);
            let mut max_diff = 0f64;
            for (k, id) in want["top10_ids"].as_array().unwrap().iter().enumerate() {
                let id = id.as_u64().unwrap();
                let pos = ids
                    .iter()
                    .position(|&g| g == id)
                    .unwrap_or_else(|| panic!("token {id} not in our top 10 {ids:?}"));
                let diff = (logits[pos] - want_logits[k]).abs();
                max_diff = max_diff.max(diff);
                assert!(
                    diff < 1e-4,
                    "{}: token {id}: {} vs {} (diff {diff})",
                    want["prompt"],
                    logits[pos],
                    want_logits[k]
                );
            }
            eprintln!("{mirror_name}: {:?}: max |logit diff| {max_diff:.2e}", want["prompt"]);
        }
    }

    #[test]
    fn smollm2_top10_logits_match_transformers() {
        check_decoder("SmolLM2-135M-Instruct", "smollm2.json");
    }

    #[test]
    fn qwen2_top10_logits_match_transformers() {
        check_decoder("Qwen2.5-Coder-0.5B-Instruct", "qwen.json");
    }
}
