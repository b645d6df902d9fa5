//! Texts to padded id batches: the checkpoint's tokenizer.json with its own padding switched
//! off (all-MiniLM-L6-v2 ships "pad to 128", which would make every batch 128 long and put
//! pads into mean pooling), truncation to `max_length`, and our own dynamic padding: longest
//! in batch rounded up to a multiple of 8, on the right for encoders and on the left for
//! decoders (the seed's `padding_side="left"`, pad = eos).

use super::config::{Family, ModelConfig};
use super::loader::ModelFiles;
use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use tokenizers::{Tokenizer, TruncationParams};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadSide {
    Left,
    Right,
}

/// A padded batch: `input_ids` and `attention_mask` are [batch, seq] u32.
pub struct Batch {
    pub input_ids: Tensor,
    pub attention_mask: Tensor,
}

pub struct TextEncoder {
    tokenizer: Tokenizer,
    pub max_length: usize,
    pub pad_id: u32,
    pub side: PadSide,
    add_special_tokens: bool,
}

impl TextEncoder {
    /// The checkpoint's tokenizer, truncating to `max_length` (`None`: no truncation).
    pub fn load(
        files: &ModelFiles,
        config: &ModelConfig,
        max_length: Option<usize>,
        add_special_tokens: bool,
    ) -> Result<Self> {
        let path = &files.tokenizer;
        let mut tokenizer = Tokenizer::from_file(path)
            .map_err(|e| Error::bad_input(format!("{}: cannot load tokenizer: {e}", path.display())))?;
        let shipped_pad = tokenizer.get_padding().map(|p| p.pad_id);
        tokenizer.with_padding(None);
        let trunc = max_length.map(|m| TruncationParams {
            max_length: m,
            ..Default::default()
        });
        tokenizer
            .with_truncation(trunc)
            .map_err(|e| Error::bad_input(format!("{}: cannot set truncation: {e}", path.display())))?;
        let family = config.family();
        let pad_id = match family {
            Family::Decoder => decoder_pad_id(files, config, &tokenizer)?,
            Family::Encoder => encoder_pad_id(config, shipped_pad, &tokenizer),
        };
        Ok(TextEncoder {
            tokenizer,
            max_length: max_length.unwrap_or(usize::MAX),
            pad_id,
            side: if family == Family::Decoder {
                PadSide::Left
            } else {
                PadSide::Right
            },
            add_special_tokens,
        })
    }

    /// Token ids of each text, truncated.
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), self.add_special_tokens)
            .map_err(|e| Error::Model(format!("tokenizer failed: {e}")))?;
        Ok(encodings.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    pub fn pad(&self, seqs: &[&[u32]], multiple_of: usize, device: &Device) -> Result<Batch> {
        pad_batch(seqs, self.pad_id, self.side, multiple_of, device)
    }
}

/// The seed's decoder padding: pad = the tokenizer's eos token (tokenizer_config.json
/// `eos_token`), else config.json `eos_token_id`, else `pad_token_id`.
fn decoder_pad_id(files: &ModelFiles, config: &ModelConfig, tokenizer: &Tokenizer) -> Result<u32> {
    if let Some(tc) = &files.tokenizer_config {
        let v: serde_json::Value = crate::fsutil::read_json(tc)?;
        let eos = v
            .get("eos_token")
            .and_then(|e| e.as_str().or_else(|| e.get("content").and_then(|c| c.as_str())));
        if let Some(id) = eos.and_then(|e| tokenizer.token_to_id(e)) {
            return Ok(id);
        }
    }
    let c = match config {
        ModelConfig::Llama(c) | ModelConfig::Qwen2(c) => c,
        _ => unreachable!("decoder_pad_id called for an encoder"),
    };
    c.eos_token_id
        .as_ref()
        .and_then(|e| e.first())
        .or(c.pad_token_id)
        .map(|i| i as u32)
        .ok_or_else(|| {
            Error::bad_input(format!(
                "{}: no eos_token_id or pad_token_id to pad with",
                files.config.display()
            ))
        })
}

fn encoder_pad_id(config: &ModelConfig, shipped_pad: Option<u32>, tokenizer: &Tokenizer) -> u32 {
    let from_config = match config {
        ModelConfig::Bert(c) => Some(c.pad_token_id),
        ModelConfig::ModernBert(c) => c.pad_token_id,
        _ => None,
    };
    shipped_pad
        .or(from_config.map(|i| i as u32))
        .or_else(|| tokenizer.token_to_id("[PAD]"))
        .unwrap_or(0)
}

/// Pad to the longest sequence rounded up to `multiple_of` (HF `pad_to_multiple_of`).
pub fn pad_batch(seqs: &[&[u32]], pad_id: u32, side: PadSide, multiple_of: usize, device: &Device) -> Result<Batch> {
    let longest = seqs.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
    let m = multiple_of.max(1);
    let t = longest.div_ceil(m) * m;
    let mut ids = Vec::with_capacity(seqs.len() * t);
    let mut mask = Vec::with_capacity(seqs.len() * t);
    for s in seqs {
        let pad = t - s.len();
        if side == PadSide::Left {
            ids.extend(std::iter::repeat_n(pad_id, pad));
            mask.extend(std::iter::repeat_n(0u32, pad));
        }
        ids.extend_from_slice(s);
        mask.extend(std::iter::repeat_n(1u32, s.len()));
        if side == PadSide::Right {
            ids.extend(std::iter::repeat_n(pad_id, pad));
            mask.extend(std::iter::repeat_n(0u32, pad));
        }
    }
    Ok(Batch {
        input_ids: Tensor::from_vec(ids, (seqs.len(), t), device)?,
        attention_mask: Tensor::from_vec(mask, (seqs.len(), t), device)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_to_multiple_of_eight_on_the_requested_side() {
        let a = [5u32, 6, 7];
        let b = [8u32; 9];
        let batch = pad_batch(&[&a, &b], 0, PadSide::Left, 8, &Device::Cpu).unwrap();
        let ids: Vec<Vec<u32>> = batch.input_ids.to_vec2().unwrap();
        let mask: Vec<Vec<u32>> = batch.attention_mask.to_vec2().unwrap();
        assert_eq!(ids[0].len(), 16);
        assert_eq!(&ids[0][13..], &[5, 6, 7]);
        assert_eq!(mask[0].iter().sum::<u32>(), 3);
        assert_eq!(mask[0][12], 0);
        let batch = pad_batch(&[&a], 1, PadSide::Right, 8, &Device::Cpu).unwrap();
        let ids: Vec<Vec<u32>> = batch.input_ids.to_vec2().unwrap();
        assert_eq!(ids[0], vec![5, 6, 7, 1, 1, 1, 1, 1]);
    }
}
