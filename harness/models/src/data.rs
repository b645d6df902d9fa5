//! The data a model trains and predicts on: labelled documents in their splits, and the input
//! files' sha256 for provenance. Reading, label merging and splitting are clsbench's `data`.

use serde::{Deserialize, Serialize};

/// One labelled document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    /// Stable id (a column of the data, or the row number).
    pub id: String,
    pub text: String,
    /// Class id: position in `Dataset::labels`.
    pub label: usize,
}

/// An input file and its sha256, for the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    pub role: String,
    pub path: String,
    pub sha256: String,
}

/// A labelled, split dataset ready for training and evaluation.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Class names; class id = position.
    pub labels: Vec<String>,
    pub train: Vec<Example>,
    pub val: Vec<Example>,
    pub test: Vec<Example>,
    pub inputs: Vec<InputFile>,
}

impl Dataset {
    /// Examples per class in the training split (tiers and class weights use these).
    pub fn train_counts(&self) -> Vec<usize> {
        let mut counts = vec![0usize; self.labels.len()];
        for e in &self.train {
            counts[e.label] += 1;
        }
        counts
    }
}
