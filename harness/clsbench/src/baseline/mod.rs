//! The seed's classical baseline: TF-IDF word n-grams + multinomial logistic regression,
//! reproducing scikit-learn's `TfidfVectorizer` + `LogisticRegression(solver="lbfgs")`.
//!
//! `tfidf` builds the features, `logreg` fits the classifier with `lbfgs`, `sparse` is the
//! matrix they share. Reference numbers from scikit-learn come from
//! `fixtures/reference/make_baseline_reference.py`.

pub mod lbfgs;
pub mod logreg;
pub mod sparse;
pub mod tfidf;

use crate::classifier::TextClassifier;
use crate::error::{Error, Result};
use crate::suite::TfidfLogregSpec;
use logreg::{LogRegParams, LogisticRegression, OptimizationReport};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tfidf::{TfidfParams, TfidfVectorizer};

/// What a fit did, for the results manifest and logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// Vocabulary size after the `max_features` cut.
    pub n_features: usize,
    /// How L-BFGS ended (iterations, evaluations, convergence, final loss and gradient).
    #[serde(flatten)]
    pub optimization: OptimizationReport,
    /// Wall time of vectorising and optimising, in seconds.
    pub fit_seconds: f64,
    /// Of which building the vocabulary and the training matrix.
    pub vectorize_seconds: f64,
}

/// A fitted TF-IDF + logistic-regression classifier.
#[derive(Debug, Clone)]
pub struct TfidfLogReg {
    vectorizer: TfidfVectorizer,
    model: LogisticRegression,
}

impl TfidfLogReg {
    /// Fits on `texts` with class ids `labels` (each below `n_classes`). Classes without
    /// training examples get probability 0, as scikit-learn (which never sees them) implies.
    pub fn fit(
        texts: &[&str],
        labels: &[usize],
        n_classes: usize,
        spec: &TfidfLogregSpec,
    ) -> Result<(Self, FitReport)> {
        if texts.len() != labels.len() {
            return Err(Error::bad_input(format!(
                "tfidf-logreg: {} training texts but {} labels",
                texts.len(),
                labels.len()
            )));
        }
        let start = Instant::now();
        let tfidf = TfidfParams {
            ngram_range: spec.ngram_range,
            max_features: spec.max_features,
            sublinear_tf: spec.sublinear_tf,
        };
        let (vectorizer, x) = TfidfVectorizer::fit_transform(texts, &tfidf)?;
        let vectorize_seconds = start.elapsed().as_secs_f64();
        let params = LogRegParams {
            c: spec.c,
            max_iter: spec.max_iter,
            tol: spec.tol,
        };
        let (model, optimisation) = LogisticRegression::fit(&x, labels, n_classes, &params)?;
        let report = FitReport {
            n_features: vectorizer.n_features(),
            optimization: optimisation,
            fit_seconds: start.elapsed().as_secs_f64(),
            vectorize_seconds,
        };
        Ok((TfidfLogReg { vectorizer, model }, report))
    }

    pub fn vectorizer(&self) -> &TfidfVectorizer {
        &self.vectorizer
    }

    pub fn model(&self) -> &LogisticRegression {
        &self.model
    }

    /// Class probabilities in full precision.
    pub fn predict_proba_f64(&self, texts: &[&str]) -> Result<Vec<Vec<f64>>> {
        self.model.predict_proba(&self.vectorizer.transform(texts))
    }
}

impl TextClassifier for TfidfLogReg {
    fn n_classes(&self) -> usize {
        self.model.n_classes()
    }

    fn predict_proba(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(self
            .predict_proba_f64(texts)?
            .into_iter()
            .map(|row| row.into_iter().map(|p| p as f32).collect())
            .collect())
    }
}

#[cfg(test)]
mod tests;
