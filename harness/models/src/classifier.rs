//! The one interface every trained model offers the pipeline: texts in, class probabilities
//! out. The TF-IDF baseline and the transformer classifiers both implement it, so evaluation
//! and timing never need to know which is which.

use crate::error::Result;

/// A fitted text classifier over a fixed label set.
pub trait TextClassifier: Send + Sync {
    /// Number of classes (the width of each probability row).
    fn n_classes(&self) -> usize;

    /// Class probabilities for each text, one row of `n_classes` per text (rows sum to 1).
    fn predict_proba(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;

    /// Input tokens the model reads for `text` (after its own truncation), for tokens/s in the
    /// timing protocol; `None` for models without a tokenizer (timing then counts words).
    fn count_tokens(&self, _text: &str) -> Option<usize> {
        None
    }

    /// Wait until work the model queued on its device has finished (a GPU runs asynchronously);
    /// timing reads its clocks after this. The default, for CPU-only models, does nothing.
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    /// Device memory in use now (GPU models), for the peak in the perf report.
    fn device_memory_used_bytes(&self) -> Option<u64> {
        None
    }

    /// Argmax class and its probability for each text (ties go to the lowest class id,
    /// as numpy's argmax does).
    fn predict(&self, texts: &[&str]) -> Result<Vec<(usize, f32)>> {
        Ok(self.predict_proba(texts)?.iter().map(|row| argmax(row)).collect())
    }
}

/// Index and value of the largest element; the first one wins ties.
pub fn argmax(row: &[f32]) -> (usize, f32) {
    let mut best = (0usize, f32::NEG_INFINITY);
    for (i, &v) in row.iter().enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best
}
