//! Calibration of evaluated splits: each model's scores lined up with a split analysis'
//! documents, then `clsbench_stats::calibration` for all of the split's models at once (one pass over the
//! split's bootstrap resamples). `run` and `merge` read the models' probabilities files from the
//! run directory; `score` takes a `prob` column or `--probs` files.

use crate::analysis::SplitAnalysis;
use crate::error::{Error, Result};
use crate::report::probabilities::{self, ProbabilitiesFile};
use crate::report::results::{ModelResult, ModelStatus};
use crate::suite::Suite;
use clsbench_stats::bootstrap::BootstrapConfig;
use clsbench_stats::calibration::{self, CalibrationInput, LogProbs, ModelScores};
use std::collections::HashMap;
use std::path::Path;

/// One model's scores on a split, in the split's document order.
pub enum SplitScores {
    /// The predicted class's probability (a `prob` column): ECE, MCE, the diagram.
    Confidence(Vec<f64>),
    /// Every class's log-probability; `gold` and `pred` index its columns (a probabilities
    /// file's classes need not be the split's label ids).
    LogProbs {
        log_probs: LogProbs,
        gold: Vec<usize>,
        pred: Vec<usize>,
    },
}

/// Fills `split.models[j].calibration` from `scores[j]` (`None`: that model is not calibrated).
pub fn attach(
    split: &mut SplitAnalysis,
    scores: &[Option<SplitScores>],
    cfg: &BootstrapConfig,
    split_seed: u64,
) -> Result<()> {
    let mut which = Vec::new();
    let mut inputs = Vec::new();
    for (j, s) in scores.iter().enumerate() {
        let Some(s) = s else { continue };
        let model = &split.models[j];
        inputs.push(match s {
            SplitScores::Confidence(conf) => CalibrationInput {
                gold: &split.gold,
                pred: &model.pred,
                scores: ModelScores::Confidence(conf),
            },
            SplitScores::LogProbs { log_probs, gold, pred } => CalibrationInput {
                gold,
                pred,
                scores: ModelScores::LogProbs(log_probs),
            },
        });
        which.push(j);
    }
    let reports = calibration::calibrate(&inputs, cfg, split_seed)?;
    for (j, report) in which.into_iter().zip(reports) {
        split.models[j].calibration = Some(report);
    }
    Ok(())
}

/// The rows of `file` for `doc_ids`, in that order, from whichever of its splits holds each;
/// every `pred[i]` must be an argmax of its row (the file belongs to these predictions).
pub fn align(file: &ProbabilitiesFile, origin: &str, doc_ids: &[String], pred: &[usize]) -> Result<LogProbs> {
    let mut at: HashMap<&str, (usize, usize)> = HashMap::new();
    for (s, split) in file.splits.iter().enumerate() {
        for (r, id) in split.doc_ids.iter().enumerate() {
            at.insert(id.as_str(), (s, r));
        }
    }
    let k = file.classes.len();
    let mut values = Vec::with_capacity(doc_ids.len() * k);
    for (id, &p) in doc_ids.iter().zip(pred) {
        let &(s, r) = at.get(id.as_str()).ok_or_else(|| {
            Error::bad_input(format!(
                "{origin}: no probabilities for document {id:?} (the file holds {})",
                file.splits
                    .iter()
                    .map(|s| format!("{} {} documents", s.doc_ids.len(), s.split))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let row = file.splits[s].log_probs.row(r);
        let (best, best_value) = row
            .iter()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |b, (c, &v)| if v > b.1 { (c, v) } else { b });
        if row[p] < best_value {
            return Err(Error::bad_input(format!(
                "{origin}: document {id:?}: the predicted class {:?} has probability {:.6} but class {:?} has {:.6}: \
                 these probabilities do not belong to these predictions",
                file.classes[p],
                row[p].exp(),
                file.classes[best],
                best_value.exp()
            )));
        }
        values.extend_from_slice(row);
    }
    LogProbs::new(k, values).map_err(|e| Error::bad_input(format!("{origin}: {e}")))
}

/// Calibration for every split of a run, from the models' probabilities files under
/// `<run_dir>/models/<id>/`; models without one (results of an older clsbench) stay uncalibrated.
pub fn attach_run(
    splits: &mut [SplitAnalysis],
    suite: &Suite,
    labels: &[String],
    models: &[ModelResult],
    run_dir: &Path,
) -> Result<()> {
    let mut files: HashMap<&str, (String, ProbabilitiesFile)> = HashMap::new();
    for m in models.iter().filter(|m| m.status == ModelStatus::Ok) {
        let Some(name) = &m.probabilities else { continue };
        let path = run_dir.join("models").join(m.dir_name()).join(name);
        let origin = path.display().to_string();
        let file = probabilities::read(&path).map_err(|e| {
            Error::bad_input(format!(
                "model {:?}: {}; re-run it with --force to write it again",
                m.id,
                e.message()
            ))
        })?;
        if file.classes != labels {
            return Err(Error::bad_input(format!(
                "{origin}: its {} classes are not the dataset's {} labels in order; the data changed: re-run with --force",
                file.classes.len(),
                labels.len()
            )));
        }
        files.insert(m.id.as_str(), (origin, file));
    }
    let cfg = suite
        .evaluation
        .bootstrap_config(suite.evaluation.bootstrap_seed(suite.seed));
    let split_seed = suite.evaluation.calibration_seed(suite.seed);
    for split in splits.iter_mut() {
        let scores = split
            .models
            .iter()
            .map(|m| {
                let Some((origin, file)) = files.get(m.model.as_str()) else {
                    return Ok(None);
                };
                Ok(Some(SplitScores::LogProbs {
                    log_probs: align(file, origin, &split.doc_ids, &m.pred)?,
                    gold: split.gold.clone(),
                    pred: m.pred.clone(),
                }))
            })
            .collect::<Result<Vec<_>>>()?;
        attach(split, &scores, &cfg, split_seed)?;
    }
    Ok(())
}
