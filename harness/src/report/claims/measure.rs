//! Our number for a claim, read from a run's results: the point, the interval that goes with
//! it (a model's percentile bootstrap CI, or the paired CI of a difference between two
//! models), or why there is none.

use super::file::{Claim, Combine, Metric};
use super::verdict::{Ci, Ours, Verdict};
use crate::analysis::SplitAnalysis;
use crate::report::model_numbers;
use crate::report::results::{ModelStatus, Results};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CiKind {
    /// The model's percentile bootstrap interval.
    Percentile,
    /// The percentile interval of the paired bootstrap difference (same resamples for both).
    PairedPercentile,
    /// No interval exists for this number.
    None,
}

#[derive(Debug, Clone)]
pub enum Measurement {
    Measured {
        ours: Ours,
        ci_kind: CiKind,
        /// Each model's own value, for the reader.
        per_model: Vec<(String, f64)>,
    },
    /// No number: `NotRun` (model or split missing) or `Inconclusive` (number not recorded).
    Unavailable { verdict: Verdict, reason: String },
}

fn unavailable(verdict: Verdict, reason: String) -> Measurement {
    Measurement::Unavailable { verdict, reason }
}

/// Measure `claim` on `split` of the run.
pub fn measure(claim: &Claim, results: &Results, split: &str) -> Measurement {
    for id in &claim.models {
        let reason = match results.model(id) {
            None => format!("model {id:?} is not in this run"),
            Some(m) => match m.status {
                ModelStatus::Ok => continue,
                ModelStatus::NotImplemented => {
                    format!(
                        "model {id:?} is not implemented in this version: {}",
                        m.error.as_deref().unwrap_or("")
                    )
                }
                ModelStatus::Failed => format!("model {id:?} failed: {}", m.error.as_deref().unwrap_or("")),
            },
        };
        return unavailable(Verdict::NotRun, reason);
    }
    let analysis = results.split(split);
    let mut per_model = Vec::new();
    for id in &claim.models {
        match model_value(claim.metric, results, analysis, id, split) {
            Ok(v) => per_model.push((id.clone(), v)),
            Err(m) => return m,
        }
    }
    let quality_ci = matches!(claim.metric, Metric::Accuracy | Metric::MacroF1);
    let (point, ci, ci_kind) = match claim.of {
        Combine::Value => {
            let ci = analysis
                .filter(|_| quality_ci)
                .and_then(|a| model_ci(a, &claim.models[0], claim.metric));
            (per_model[0].1, ci, CiKind::Percentile)
        }
        Combine::Difference => {
            let ci = analysis
                .filter(|_| quality_ci)
                .and_then(|a| paired_difference_ci(a, &claim.models[0], &claim.models[1], claim.metric));
            (per_model[0].1 - per_model[1].1, ci, CiKind::PairedPercentile)
        }
        Combine::Ratio => {
            if per_model[1].1 == 0.0 {
                return unavailable(
                    Verdict::Inconclusive,
                    format!(
                        "{} of {:?} is 0: the ratio is undefined",
                        claim.metric.name(),
                        claim.models[1]
                    ),
                );
            }
            // No paired interval of a ratio is stored in results: the point is compared.
            (per_model[0].1 / per_model[1].1, None, CiKind::None)
        }
    };
    let ci_kind = if ci.is_some() { ci_kind } else { CiKind::None };
    Measurement::Measured {
        ours: Ours { point, ci },
        ci_kind,
        per_model,
    }
}

fn model_value(
    metric: Metric,
    results: &Results,
    analysis: Option<&SplitAnalysis>,
    id: &str,
    split: &str,
) -> Result<f64, Measurement> {
    let model = results.model(id).expect("checked by the caller");
    let missing = |what: &str| unavailable(Verdict::Inconclusive, format!("model {id:?}: {what}"));
    match metric {
        Metric::Accuracy | Metric::MacroF1 | Metric::ZeroF1Classes => {
            let a = analysis.ok_or_else(|| {
                unavailable(
                    Verdict::NotRun,
                    format!("split {split:?} was not evaluated in this run"),
                )
            })?;
            let m = a.models.iter().find(|m| m.model == id).ok_or_else(|| {
                unavailable(
                    Verdict::NotRun,
                    format!("model {id:?} has no predictions on split {split:?}"),
                )
            })?;
            Ok(match metric {
                Metric::Accuracy => m.metrics.accuracy,
                Metric::MacroF1 => m.metrics.macro_f1,
                _ => m.metrics.zero_f1_classes as f64,
            })
        }
        Metric::LatencyMs => {
            model_numbers::latency_ms(model).ok_or_else(|| missing("no latency recorded (perf step skipped?)"))
        }
        Metric::Throughput => model_numbers::throughput_docs_per_s(model)
            .ok_or_else(|| missing("no throughput recorded (perf step skipped?)")),
        Metric::CostPer1m => model_numbers::cost_per_1m_usd(model)
            .ok_or_else(|| missing("no cost recorded (no price for this hardware?)")),
        Metric::TrainableShare => {
            model_numbers::trainable_share(model).ok_or_else(|| missing("the training report has no parameter counts"))
        }
    }
}

/// Index of `id` among the models the split's bootstrap covered.
fn boot_index(a: &SplitAnalysis, id: &str) -> Option<usize> {
    let b = a.bootstrap.as_ref()?;
    if b.model_ids.is_empty() {
        a.models.iter().position(|m| m.model == id)
    } else {
        b.model_ids.iter().position(|m| m == id)
    }
}

fn model_ci(a: &SplitAnalysis, id: &str, metric: Metric) -> Option<Ci> {
    let m = a.bootstrap.as_ref()?.models.get(boot_index(a, id)?)?;
    let e = match metric {
        Metric::Accuracy => &m.accuracy,
        Metric::MacroF1 => &m.macro_f1,
        _ => return None,
    };
    Some(Ci {
        lo: e.percentile.lo,
        hi: e.percentile.hi,
    })
}

/// CI of metric(first) − metric(second) from the paired bootstrap, whichever way round the
/// pair was stored (pairs hold b − a).
fn paired_difference_ci(a: &SplitAnalysis, first: &str, second: &str, metric: Metric) -> Option<Ci> {
    let boot = a.bootstrap.as_ref()?;
    let (i, j) = (boot_index(a, first)?, boot_index(a, second)?);
    let id_of = |k: usize| {
        boot.model_ids
            .get(k)
            .cloned()
            .unwrap_or_else(|| a.models[k].model.clone())
    };
    for p in &boot.pairs {
        let (pa, pb) = (p.a.to_string(), p.b.to_string());
        let is = |x: &str, k: usize| x == id_of(k) || x == k.to_string();
        let flip = if is(&pa, j) && is(&pb, i) {
            false // stored first − second
        } else if is(&pa, i) && is(&pb, j) {
            true // stored second − first
        } else {
            continue;
        };
        let e = match metric {
            Metric::Accuracy => &p.accuracy,
            Metric::MacroF1 => &p.macro_f1,
            _ => return None,
        };
        let ci = e.percentile.clone();
        return Some(if flip {
            Ci { lo: -ci.hi, hi: -ci.lo }
        } else {
            Ci { lo: ci.lo, hi: ci.hi }
        });
    }
    None
}
