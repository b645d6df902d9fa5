//! `clsbench forward`: the base model's output on a few texts, as JSON, to compare against
//! PyTorch transformers / llama.cpp on the same weights (`../shared/reference/*.json` from the
//! repository root, copied into `fixtures/reference/`).
//! Encoders: the attention-masked mean of the last hidden state (sentence-transformers'
//! pooling), texts encoded with special tokens. Decoders: the top-10 next-token logits at the
//! last position, texts encoded without special tokens (as the references were made).
//! Each text is its own batch of one, so no padding enters the comparison.

use super::config::ModelConfig;
use super::device::ResolvedDevice;
use super::params::{Mode, ParamBuilder, Source};
use super::text::TextEncoder;
use super::{bert, llama, loader, modernbert};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use serde_json::json;
use std::path::Path;

pub fn forward_json(model_dir: &Path, texts: &[String], on: &ResolvedDevice) -> Result<serde_json::Value> {
    let files = loader::from_dir(model_dir)?;
    let config = files.read_config()?;
    let device = on.device.clone();
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
                results.push(mean_pooled(text, &encoder, &device, |i, m| model.forward(i, m, false))?);
            }
        }
        ModelConfig::ModernBert(c) => {
            // Checkpoints saved as `ModernBertModel` lack the `model.` prefix.
            let p = params.with_alias("model.", "");
            let model = modernbert::ModernBertModel::load(&p, "model", c)?;
            for text in texts {
                results.push(mean_pooled(text, &encoder, &device, |i, m| model.forward(i, m, false))?);
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
    }
    Ok(json!({
        "model_dir": model_dir.display().to_string(),
        "model_type": config.model_type(),
        "device": on.label,
        "output": if decoder { "top-10 next-token logits at the last position" } else { "attention-masked mean of the last hidden state" },
        "weights_sha256": files.weights_sha256()?,
        "results": results,
    }))
}

/// One encoder result: the attention-masked mean of `forward`'s last hidden state.
fn mean_pooled(
    text: &str,
    encoder: &TextEncoder,
    device: &Device,
    forward: impl Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
) -> Result<serde_json::Value> {
    let ids = encoder.encode(&[text])?.remove(0);
    if ids.is_empty() {
        return Err(Error::bad_input(format!("text {text:?} encodes to no tokens")));
    }
    let (input, mask) = single(&ids, device)?;
    let hidden = forward(&input, &mask)?;
    let pooled: Vec<f32> = bert::masked_mean(&hidden, &mask)?.squeeze(0)?.to_vec1()?;
    let norm = pooled.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
    Ok(json!({"text": text, "token_ids": ids, "mean_pooled": pooled, "mean_pooled_l2norm": norm}))
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
    let root = std::env::var_os(crate::loader::MODEL_DIR_ENV)
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

    fn cpu() -> ResolvedDevice {
        ResolvedDevice::cpu(crate::device::DeviceRequest::Cpu)
    }

    fn reference(name: &str) -> serde_json::Value {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/reference")
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
        let out = forward_json(&dir, &texts, &cpu()).unwrap();
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

    /// ModernBERT has no mirror model here: the tiny random-weight reference (PyTorch
    /// transformers' `last_hidden_state` on two id sequences, fixtures/reference/modernbert-tiny)
    /// gets a word-level tokenizer mapping "t<id>" to <id>, so texts encode to exactly its ids.
    #[test]
    fn modernbert_mean_pooled_matches_transformers_on_the_tiny_reference() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/reference/modernbert-tiny");
        let dir = tempfile::tempdir().unwrap();
        for f in ["config.json", "model.safetensors"] {
            std::fs::copy(fixture.join(f), dir.path().join(f)).unwrap();
        }
        let vocab: serde_json::Map<String, serde_json::Value> = (0..97).map(|i| (format!("t{i}"), json!(i))).collect();
        let tokenizer = json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": null,
            "decoder": null, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "t0"}
        });
        std::fs::write(dir.path().join("tokenizer.json"), tokenizer.to_string()).unwrap();
        let expected = reference("modernbert-tiny/expected.json");
        let mut texts = Vec::new();
        let mut want_pooled = Vec::new();
        for (row, mask) in expected["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .zip(expected["attention_mask"].as_array().unwrap())
        {
            let n = mask
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m.as_u64() == Some(1))
                .count();
            let ids: Vec<u64> = row.as_array().unwrap()[..n]
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            texts.push(ids.iter().map(|i| format!("t{i}")).collect::<Vec<_>>().join(" "));
            want_pooled.push(ids);
        }
        let out = forward_json(dir.path(), &texts, &cpu()).unwrap();
        assert_eq!(out["model_type"], "modernbert");
        let hidden = expected["last_hidden_state"].as_array().unwrap();
        for (b, got) in out["results"].as_array().unwrap().iter().enumerate() {
            let ids: Vec<u64> = got["token_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(
                ids, want_pooled[b],
                "row {b}: the tokenizer must reproduce the reference ids"
            );
            // The reference row's masked mean (its padding positions excluded).
            let rows: Vec<Vec<f64>> = hidden[b].as_array().unwrap()[..ids.len()].iter().map(floats).collect();
            let pooled = floats(&got["mean_pooled"]);
            assert_eq!(pooled.len(), rows[0].len());
            for (d, g) in pooled.iter().enumerate() {
                let want = rows.iter().map(|r| r[d]).sum::<f64>() / rows.len() as f64;
                assert!((g - want).abs() < 1e-4, "row {b} dim {d}: {g} vs {want}");
            }
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
        let out = forward_json(&dir, &texts, &cpu()).unwrap();
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
