//! Deployment decisions: every result row of a split (each model, and any variant row such as a
//! quantised `model@q8_0`) judged against a suite's `[[decision]]` constraints, pass or fail per
//! constraint with the measured value and its confidence interval where one exists, and the
//! cheapest row that passes them all.
//!
//! A verdict uses the point estimate, as the seed's week-5 envelope does; each check also says
//! whether its interval contains the bound, so a pass (or fail) that the data cannot settle is
//! visible. A measurement that is missing (not timed, no probabilities) makes the check
//! `unknown`, never a pass.

pub mod render;
pub mod spec;

use crate::analysis::{ModelAnalysis, SplitAnalysis};
use crate::report::results::{ModelResult, ModelStatus};
use crate::suite::SplitName;
use clsbench_stats::bootstrap::Estimate;
use clsbench_stats::calibration::BinConvention;
use clsbench_stats::intervals::Interval;
use serde::{Deserialize, Serialize};
use spec::{BoundKind, Constraint, DecisionSpec, Metric};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    Fail,
    /// Not measured (timing skipped or failed, no probabilities, a failed model).
    Unknown,
}

/// One constraint for one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConstraintCheck {
    pub constraint: Constraint,
    pub measured: Option<f64>,
    /// The percentile interval of the measured value, where the bootstrap gives one.
    #[serde(default)]
    pub ci: Option<Interval>,
    pub verdict: Verdict,
    /// Whether the interval contains the bound: the data cannot settle this check (`None`
    /// without an interval).
    #[serde(default)]
    pub ci_contains_bound: Option<bool>,
    /// Why the value is missing.
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRow {
    pub model: String,
    pub verdict: Verdict,
    pub checks: Vec<ConstraintCheck>,
    /// What ranks the passing rows.
    #[serde(default)]
    pub usd_per_million_docs: Option<f64>,
    #[serde(default)]
    pub hours_per_million_docs: Option<f64>,
}

/// The cheapest passing row and what it was ranked by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cheapest {
    pub model: String,
    /// `usd_per_million_docs`, or `hours_per_million_docs` when a passing row has no price.
    pub by: String,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionReport {
    pub name: String,
    pub split: String,
    pub ece_convention: BinConvention,
    pub constraints: Vec<Constraint>,
    pub rows: Vec<DecisionRow>,
    /// Rows that pass every constraint, in row order.
    pub passing: Vec<String>,
    pub cheapest: Option<Cheapest>,
    /// Why no cheapest row is named, when none is.
    #[serde(default)]
    pub note: Option<String>,
}

/// Judges every decision of the suite on the analysed splits.
pub fn judge_all(
    decisions: &[DecisionSpec],
    primary: SplitName,
    splits: &[SplitAnalysis],
    models: &[ModelResult],
) -> Vec<DecisionReport> {
    decisions
        .iter()
        .map(|d| {
            let split = d.split.unwrap_or(primary).as_str();
            judge(d, split, splits.iter().find(|s| s.split == split), models)
        })
        .collect()
}

/// One decision on one split (`None`: the split was not analysed, every row unknown).
pub fn judge(d: &DecisionSpec, split: &str, a: Option<&SplitAnalysis>, models: &[ModelResult]) -> DecisionReport {
    let constraints = d.constraints();
    // Rows: every analysed row of the split (models and variants), then models without one.
    let mut ids: Vec<&str> = a
        .map(|a| a.models.iter().map(|m| m.model.as_str()).collect())
        .unwrap_or_default();
    for m in models {
        if !ids.contains(&m.id.as_str()) {
            ids.push(&m.id);
        }
    }
    let rows: Vec<DecisionRow> = ids
        .iter()
        .map(|&id| {
            let analysed = a.and_then(|a| a.model(id).map(|(j, m)| (a, j, m)));
            let result = models.iter().find(|m| m.id == id);
            row(d, &constraints, id, analysed, result)
        })
        .collect();
    let passing: Vec<String> = rows
        .iter()
        .filter(|r| r.verdict == Verdict::Pass)
        .map(|r| r.model.clone())
        .collect();
    let (cheapest, note) = cheapest(&rows);
    DecisionReport {
        name: d.name.clone(),
        split: split.to_string(),
        ece_convention: d.ece_convention,
        constraints,
        rows,
        passing,
        cheapest,
        note,
    }
}

fn cheapest(rows: &[DecisionRow]) -> (Option<Cheapest>, Option<String>) {
    let passing: Vec<&DecisionRow> = rows.iter().filter(|r| r.verdict == Verdict::Pass).collect();
    if passing.is_empty() {
        return (None, Some("no row passes every constraint".into()));
    }
    let pick = |by: &str, value: fn(&DecisionRow) -> Option<f64>| {
        let values: Option<Vec<(f64, &str)>> = passing.iter().map(|r| Some((value(r)?, r.model.as_str()))).collect();
        values.and_then(|v| {
            // The first of equally cheap rows (suite order).
            v.into_iter()
                .fold(None, |best: Option<(f64, &str)>, x| match best {
                    Some(b) if b.0 <= x.0 => Some(b),
                    _ => Some(x),
                })
                .map(|(value, model)| Cheapest {
                    model: model.to_string(),
                    by: by.to_string(),
                    value,
                })
        })
    };
    match pick("usd_per_million_docs", |r| r.usd_per_million_docs)
        .or_else(|| pick("hours_per_million_docs", |r| r.hours_per_million_docs))
    {
        Some(c) => (Some(c), None),
        None => (
            None,
            Some("a passing row has neither a price nor a measured throughput, so they cannot be ranked".into()),
        ),
    }
}

fn row(
    d: &DecisionSpec,
    constraints: &[Constraint],
    id: &str,
    analysed: Option<(&SplitAnalysis, usize, &ModelAnalysis)>,
    result: Option<&ModelResult>,
) -> DecisionRow {
    let perf = result.and_then(|m| m.perf.as_ref());
    let failed = result.filter(|r| r.status != ModelStatus::Ok).map(|r| {
        format!(
            "the model did not finish ({})",
            r.error.as_deref().unwrap_or("no predictions")
        )
    });
    let checks: Vec<ConstraintCheck> = constraints
        .iter()
        .map(|&c| {
            let (measured, ci, note) = match (&failed, analysed) {
                (Some(why), _) => (None, None, Some(why.clone())),
                (None, None) if !c.metric.is_timed() => (None, None, Some("not scored on this split".into())),
                _ => measure(d, c, analysed, perf),
            };
            check(c, measured, ci, note)
        })
        .collect();
    let verdict = if checks.iter().any(|c| c.verdict == Verdict::Fail) {
        Verdict::Fail
    } else if checks.iter().any(|c| c.verdict == Verdict::Unknown) {
        Verdict::Unknown
    } else {
        Verdict::Pass
    };
    DecisionRow {
        model: id.to_string(),
        verdict,
        checks,
        usd_per_million_docs: perf.as_ref().and_then(|p| p.cost.usd_per_million_docs),
        hours_per_million_docs: perf.as_ref().and_then(|p| p.cost.device_hours_per_million_docs),
    }
}

type Measured = (Option<f64>, Option<Interval>, Option<String>);

fn with_ci(value: f64, e: Option<&Estimate>) -> Measured {
    (Some(value), e.map(|e| e.percentile), None)
}

fn missing(why: &str) -> Measured {
    (None, None, Some(why.to_string()))
}

fn measure(
    d: &DecisionSpec,
    c: Constraint,
    analysed: Option<(&SplitAnalysis, usize, &ModelAnalysis)>,
    perf: Option<&crate::perf::PerfReport>,
) -> Measured {
    let boot = analysed.and_then(|(a, j, _)| a.bootstrap.as_ref()?.models.iter().find(|b| b.model == j));
    let model = analysed.map(|(_, _, m)| m);
    let calibration = model.and_then(|m| m.calibration.as_ref());
    let no_probs = "no per-class probabilities for this row";
    let timing = perf.and_then(|p| p.timing.as_ref());
    let not_timed = "not timed (timing skipped or failed)";
    match c.metric {
        Metric::Accuracy => model.map_or(missing(no_probs), |m| {
            with_ci(m.metrics.accuracy, boot.map(|b| &b.accuracy))
        }),
        Metric::MacroF1 => model.map_or(missing(no_probs), |m| {
            with_ci(m.metrics.macro_f1, boot.map(|b| &b.macro_f1))
        }),
        Metric::WeightedF1 => model.map_or(missing(no_probs), |m| (Some(m.metrics.weighted_f1), None, None)),
        Metric::Ece => calibration.map_or(missing(no_probs), |cal| {
            let b = cal.full.binned(d.ece_convention);
            with_ci(b.ece, b.ece_ci.as_ref())
        }),
        Metric::EceAfterScaling => match calibration.and_then(|cal| cal.temperature.as_ref()) {
            Some(t) => {
                let b = t.after.binned(d.ece_convention);
                with_ci(b.ece, b.ece_ci.as_ref())
            }
            None => missing("no temperature scaling (needs per-class probabilities)"),
        },
        Metric::Nll => calibration
            .and_then(|cal| cal.full.nll)
            .map_or(missing(no_probs), |v| (Some(v), None, None)),
        Metric::Brier => calibration
            .and_then(|cal| cal.full.brier)
            .map_or(missing(no_probs), |v| (Some(v), None, None)),
        Metric::MsPerDocAtBatch => {
            let batch = c.batch.unwrap_or_default();
            match timing.map(|t| t.batches.iter().find(|b| b.batch_size == batch)) {
                Some(Some(b)) => (Some(b.ms_per_doc), None, None),
                Some(None) => missing(&format!("batch {batch} was not timed (failed or skipped)")),
                None => missing(not_timed),
            }
        }
        Metric::P50Ms => timing
            .and_then(|t| t.single.as_ref())
            .map_or(missing(not_timed), |s| (Some(s.median_ms), None, None)),
        Metric::P95Ms => timing
            .and_then(|t| t.single.as_ref())
            .map_or(missing(not_timed), |s| (Some(s.p95_ms), None, None)),
        Metric::UsdPerMillionDocs => match perf {
            Some(p) => match p.cost.usd_per_million_docs {
                Some(v) => (Some(v), None, None),
                None => missing(p.cost.unknown_reason.as_deref().unwrap_or("no price for this hardware")),
            },
            None => missing(not_timed),
        },
        Metric::PeakMemoryMib => perf
            .and_then(|p| p.memory.device_peak_bytes.or(p.memory.peak_rss_bytes))
            .map_or(missing("peak memory not measured"), |b| {
                (Some(b as f64 / f64::from(1u32 << 20)), None, None)
            }),
    }
}

fn check(c: Constraint, measured: Option<f64>, ci: Option<Interval>, note: Option<String>) -> ConstraintCheck {
    let passes = |v: f64| match c.kind {
        BoundKind::Min => v >= c.bound,
        BoundKind::Max => v <= c.bound,
    };
    let verdict = match measured {
        None => Verdict::Unknown,
        Some(v) if passes(v) => Verdict::Pass,
        Some(_) => Verdict::Fail,
    };
    let ci_contains_bound = ci.map(|i| i.lower <= c.bound && c.bound <= i.upper);
    ConstraintCheck {
        constraint: c,
        measured,
        ci,
        verdict,
        ci_contains_bound,
        note,
    }
}

#[cfg(test)]
mod tests;
