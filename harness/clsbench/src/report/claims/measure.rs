//! Our number for a claim, read from a run's results: the point, the interval that goes with
//! it (a model's percentile bootstrap CI, or the paired CI of a difference between two
//! models), or why there is none.

use super::file::{Claim, Combine, Metric};
use super::verdict::{Interval, Ours, Verdict};
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
    /// The seed-aware percentile interval of a model's mean over its training seeds (two-level
    /// bootstrap, or the seed bootstrap when seeds re-drew the split).
    SeedAware,
    /// The seed-aware interval of a difference of seed means.
    SeedAwareDifference,
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
    // Several training seeds: the claim rests on the seed means and their seed-aware interval.
    if let Some(m) = analysis
        .filter(|_| quality_ci && claim.of != Combine::Ratio)
        .and_then(|a| seed_aware(a, claim))
    {
        return m;
    }
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

/// The claim measured over training seeds, when the split has seed statistics for its models.
fn seed_aware(a: &SplitAnalysis, claim: &Claim) -> Option<Measurement> {
    let seeds = a.seeds.as_ref()?;
    let pick = |m: &crate::analysis::SeedModel| match claim.metric {
        Metric::Accuracy => m.accuracy_mean.clone(),
        _ => m.macro_f1_mean.clone(),
    };
    let mut per_model = Vec::new();
    let mut estimates = Vec::new();
    for id in &claim.models {
        let m = seeds.models.iter().find(|m| &m.model == id)?;
        per_model.push((id.clone(), pick(m).point));
        estimates.push(pick(m));
    }
    let (point, ci, ci_kind) = match claim.of {
        Combine::Value => (estimates[0].point, estimates[0].percentile, CiKind::SeedAware),
        Combine::Difference => {
            let (first, second) = (&claim.models[0], &claim.models[1]);
            // Pairs hold b − a with a before b in model order: first − second either way.
            let (pair, sign) = match seeds.pairs.iter().find(|p| &p.a == second && &p.b == first) {
                Some(p) => (p, 1.0),
                None => (seeds.pairs.iter().find(|p| &p.a == first && &p.b == second)?, -1.0),
            };
            let d = match claim.metric {
                Metric::Accuracy => &pair.accuracy.delta,
                _ => &pair.macro_f1.delta,
            };
            let ci = if sign > 0.0 {
                d.percentile
            } else {
                Interval {
                    lower: -d.percentile.upper,
                    upper: -d.percentile.lower,
                }
            };
            (sign * d.point, ci, CiKind::SeedAwareDifference)
        }
        Combine::Ratio => return None,
    };
    Some(Measurement::Measured {
        ours: Ours { point, ci: Some(ci) },
        ci_kind,
        per_model,
    })
}

/// The minimum detectable accuracy difference of the claim's two models on this split (from
/// the first seeds' discordance), for accuracy differences only.
pub fn accuracy_mde(claim: &Claim, a: &SplitAnalysis) -> Option<f64> {
    if claim.metric != Metric::Accuracy || claim.of != Combine::Difference {
        return None;
    }
    let (x, y) = (&claim.models[0], &claim.models[1]);
    let pair = a
        .mcnemar
        .iter()
        .find(|t| (&t.a == x && &t.b == y) || (&t.a == y && &t.b == x))?;
    pair.mde.as_ref()?.mde
}

fn model_ci(a: &SplitAnalysis, id: &str, metric: Metric) -> Option<Interval> {
    let (index, _) = a.model(id)?;
    let m = a.bootstrap.as_ref()?.models.iter().find(|m| m.model == index)?;
    match metric {
        Metric::Accuracy => Some(m.accuracy.percentile),
        Metric::MacroF1 => Some(m.macro_f1.percentile),
        _ => None,
    }
}

/// CI of metric(first) − metric(second) from the paired bootstrap (its pairs hold b − a).
fn paired_difference_ci(a: &SplitAnalysis, first: &str, second: &str, metric: Metric) -> Option<Interval> {
    let pair = a.pair(second, first)?;
    match metric {
        Metric::Accuracy => Some(pair.accuracy.delta.percentile),
        Metric::MacroF1 => Some(pair.macro_f1.delta.percentile),
        _ => None,
    }
}
