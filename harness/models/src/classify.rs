//! A trained transformer behind the pipeline's `TextClassifier`: tokenize, sort by length so
//! each batch pads little, pad to a multiple of 8, forward with the fused ops, softmax, and put
//! rows back in input order.

use super::text::TextEncoder;
use super::SequenceClassifier;
use crate::classifier::TextClassifier;
use crate::error::{Error, Result};
use candle_core::{DType, Device};

pub struct TransformerClassifier {
    model: Box<dyn SequenceClassifier>,
    encoder: TextEncoder,
    device: Device,
    batch_size: usize,
}

impl TransformerClassifier {
    pub fn new(model: Box<dyn SequenceClassifier>, encoder: TextEncoder, device: Device, batch_size: usize) -> Self {
        TransformerClassifier {
            model,
            encoder,
            device,
            batch_size: batch_size.max(1),
        }
    }

    pub fn encoder(&self) -> &TextEncoder {
        &self.encoder
    }

    /// Logits for already tokenized sequences, in the given order. Running out of GPU memory
    /// is reported with the batch size that did not fit.
    pub fn logits_for_ids(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        batched_logits(self.model.as_ref(), &self.encoder, seqs, self.batch_size, &self.device).map_err(|e| {
            let longest = seqs.iter().map(Vec::len).max().unwrap_or(0);
            super::device::with_out_of_memory_context(e, "predicting", self.batch_size.min(seqs.len()), longest)
        })
    }

    /// Wait for the device's queued work (timing reads clocks after it).
    pub fn synchronize(&self) -> Result<()> {
        Ok(self.device.synchronize()?)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }
}

/// Inference logits for tokenized sequences, batched longest-first so that each batch pads
/// little (the order of the output rows is the input order).
pub fn batched_logits(
    model: &dyn SequenceClassifier,
    encoder: &TextEncoder,
    seqs: &[Vec<u32>],
    batch_size: usize,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(seqs[i].len()));
    let mut out = vec![Vec::new(); seqs.len()];
    for chunk in order.chunks(batch_size.max(1)) {
        let batch: Vec<&[u32]> = chunk.iter().map(|&i| seqs[i].as_slice()).collect();
        let b = encoder.pad(&batch, 8, device)?;
        let logits = model.forward(&b.input_ids, &b.attention_mask, false)?;
        let rows: Vec<Vec<f32>> = logits.to_dtype(DType::F32)?.to_vec2()?;
        for (&i, row) in chunk.iter().zip(rows) {
            out[i] = row;
        }
    }
    Ok(out)
}

impl TextClassifier for TransformerClassifier {
    fn n_classes(&self) -> usize {
        self.model.n_classes()
    }

    /// Tokens after the tokenizer's truncation, for tokens/s in the timing protocol.
    fn count_tokens(&self, text: &str) -> Option<usize> {
        self.encoder.encode(&[text]).ok().map(|seqs| seqs[0].len())
    }

    fn synchronize(&self) -> Result<()> {
        TransformerClassifier::synchronize(self)
    }

    fn device_memory_used_bytes(&self) -> Option<u64> {
        super::device::device_memory_used_bytes(&self.device)
    }

    fn predict_proba(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let seqs = self.encoder.encode(texts)?;
        let logits = self.logits_for_ids(&seqs)?;
        logits.into_iter().map(|row| softmax_row(&row)).collect()
    }
}

/// Softmax of one row in f64 for stability; NaN logits are an error, not a silent argmax 0.
fn softmax_row(row: &[f32]) -> Result<Vec<f32>> {
    if row.iter().any(|v| !v.is_finite()) {
        return Err(Error::Model("the model produced non-finite logits".into()));
    }
    let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exps: Vec<f64> = row.iter().map(|&v| (v as f64 - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    Ok(exps.iter().map(|e| (e / sum) as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_rows_sum_to_one_and_reject_nan() {
        let p = softmax_row(&[1.0, 2.0, 3.0]).unwrap();
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[2] > p[1] && p[1] > p[0]);
        assert!(softmax_row(&[f32::NAN, 0.0]).is_err());
    }
}
