//! Training transformer classifiers (stub until the models land).
use crate::error::{Error, Result};
pub fn fit_for_pipeline(
    spec: &crate::suite::ModelSpec,
    _t: &crate::suite::TransformerSpec,
    _d: &crate::data::Dataset,
    _seed: u64,
    _dir: &std::path::Path,
) -> Result<(Box<dyn crate::classifier::TextClassifier>, serde_json::Value, Vec<crate::data::InputFile>)> {
    Err(Error::NotImplemented(format!("{} models", spec.kind.name())))
}
