//! Classical baseline (stub until the baseline lands).
use crate::error::{Error, Result};
pub struct TfidfLogReg;
#[derive(serde::Serialize)]
pub struct FitReport;
impl TfidfLogReg {
    pub fn fit(_: &[&str], _: &[usize], _: usize, _: &crate::suite::TfidfLogregSpec) -> Result<(Self, FitReport)> {
        Err(Error::NotImplemented("tfidf-logreg".into()))
    }
}
impl crate::classifier::TextClassifier for TfidfLogReg {
    fn n_classes(&self) -> usize { 0 }
    fn predict_proba(&self, _: &[&str]) -> Result<Vec<Vec<f32>>> { Ok(vec![]) }
}
