//! A suite's `[[decision]]` sections: a deployment envelope (the seed's week 5: at most 10 ms
//! per document at batch 32, macro F1 at least 0.20, ECE after temperature scaling at most
//! 0.05) that every result row is judged against. Every constraint is a named field: a
//! misspelt or unknown one is refused by the suite parser with its name and line.

use crate::suite::{PerfSpec, SplitName};
use clsbench_stats::calibration::BinConvention;
use serde::{Deserialize, Serialize};

/// `{ batch = 32, ms = 10 }`: median milliseconds per document at that batch size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyAtBatch {
    pub batch: usize,
    pub ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionSpec {
    pub name: String,
    /// The split whose numbers are judged (default: `[evaluation] primary_split`).
    #[serde(default)]
    pub split: Option<SplitName>,
    /// Bins of the ECE constraints (default `upper-closed`, the week-5 envelope's own).
    #[serde(default = "default_convention")]
    pub ece_convention: BinConvention,
    #[serde(default)]
    pub min_accuracy: Option<f64>,
    #[serde(default)]
    pub min_macro_f1: Option<f64>,
    #[serde(default)]
    pub min_weighted_f1: Option<f64>,
    /// ECE of the whole split, before scaling.
    #[serde(default)]
    pub max_ece: Option<f64>,
    /// ECE of the evaluation half after temperature scaling.
    #[serde(default)]
    pub max_ece_after_scaling: Option<f64>,
    #[serde(default)]
    pub max_nll: Option<f64>,
    #[serde(default)]
    pub max_brier: Option<f64>,
    #[serde(default)]
    pub max_ms_per_doc_at_batch: Option<LatencyAtBatch>,
    /// Median single-document latency.
    #[serde(default)]
    pub max_p50_ms: Option<f64>,
    #[serde(default)]
    pub max_p95_ms: Option<f64>,
    #[serde(default)]
    pub max_usd_per_million_docs: Option<f64>,
    /// Peak memory while timing: device memory on a GPU, else the process's resident set.
    #[serde(default)]
    pub max_peak_memory_mib: Option<f64>,
}

fn default_convention() -> BinConvention {
    BinConvention::UpperClosed
}

/// What a constraint measures; also its name in results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Accuracy,
    MacroF1,
    WeightedF1,
    Ece,
    EceAfterScaling,
    Nll,
    Brier,
    MsPerDocAtBatch,
    P50Ms,
    P95Ms,
    UsdPerMillionDocs,
    PeakMemoryMib,
}

impl Metric {
    /// For tables.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::MacroF1 => "macro F1",
            Metric::WeightedF1 => "weighted F1",
            Metric::Ece => "ECE",
            Metric::EceAfterScaling => "ECE after T (eval half)",
            Metric::Nll => "NLL",
            Metric::Brier => "Brier",
            Metric::MsPerDocAtBatch => "ms/doc",
            Metric::P50Ms => "p50 ms",
            Metric::P95Ms => "p95 ms",
            Metric::UsdPerMillionDocs => "$/1M docs",
            Metric::PeakMemoryMib => "peak MiB",
        }
    }

    /// Whether it needs the timing protocol.
    pub fn is_timed(self) -> bool {
        matches!(
            self,
            Metric::MsPerDocAtBatch | Metric::P50Ms | Metric::P95Ms | Metric::UsdPerMillionDocs | Metric::PeakMemoryMib
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BoundKind {
    /// The measured value must be at least the bound.
    Min,
    /// The measured value must be at most the bound.
    Max,
}

/// One constraint: metric, bound and (for latency) the batch size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Constraint {
    pub metric: Metric,
    pub kind: BoundKind,
    pub bound: f64,
    #[serde(default)]
    pub batch: Option<usize>,
}

impl Constraint {
    /// The suite field it came from.
    pub fn field(&self) -> String {
        let prefix = match self.kind {
            BoundKind::Min => "min",
            BoundKind::Max => "max",
        };
        format!(
            "{prefix}_{}",
            serde_json::to_value(self.metric)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        )
    }

    /// `ms/doc @32 ≤ 10`.
    pub fn describe(&self) -> String {
        let op = match self.kind {
            BoundKind::Min => "≥",
            BoundKind::Max => "≤",
        };
        let at = self.batch.map(|b| format!(" @{b}")).unwrap_or_default();
        format!("{}{at} {op} {}", self.metric.label(), self.bound)
    }
}

impl DecisionSpec {
    /// The constraints in a fixed order (quality, calibration, speed, cost).
    pub fn constraints(&self) -> Vec<Constraint> {
        let c = |metric, kind, bound: Option<f64>| {
            bound.map(|bound| Constraint {
                metric,
                kind,
                bound,
                batch: None,
            })
        };
        let (min, max) = (BoundKind::Min, BoundKind::Max);
        let mut out: Vec<Constraint> = [
            c(Metric::Accuracy, min, self.min_accuracy),
            c(Metric::MacroF1, min, self.min_macro_f1),
            c(Metric::WeightedF1, min, self.min_weighted_f1),
            c(Metric::Ece, max, self.max_ece),
            c(Metric::EceAfterScaling, max, self.max_ece_after_scaling),
            c(Metric::Nll, max, self.max_nll),
            c(Metric::Brier, max, self.max_brier),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let Some(l) = self.max_ms_per_doc_at_batch {
            out.push(Constraint {
                metric: Metric::MsPerDocAtBatch,
                kind: max,
                bound: l.ms,
                batch: Some(l.batch),
            });
        }
        out.extend(
            [
                c(Metric::P50Ms, max, self.max_p50_ms),
                c(Metric::P95Ms, max, self.max_p95_ms),
                c(Metric::UsdPerMillionDocs, max, self.max_usd_per_million_docs),
                c(Metric::PeakMemoryMib, max, self.max_peak_memory_mib),
            ]
            .into_iter()
            .flatten(),
        );
        out
    }
}

/// Checks the sections against the rest of the suite; the error names the section and field.
pub fn validate(decisions: &[DecisionSpec], splits: &[SplitName], perf: &PerfSpec) -> std::result::Result<(), String> {
    let mut names = std::collections::BTreeSet::new();
    for (i, d) in decisions.iter().enumerate() {
        let at = format!("decision[{i}] ({:?})", d.name);
        if d.name.trim().is_empty() {
            return Err(format!("decision[{i}]: field `name`: expected a name for the decision"));
        }
        if !names.insert(d.name.as_str()) {
            return Err(format!("{at}: field `name`: two decisions with this name"));
        }
        if let Some(split) = d.split {
            if !splits.contains(&split) {
                return Err(format!(
                    "{at}: field `split`: {:?} is not one of [evaluation] `splits`",
                    split.as_str()
                ));
            }
        }
        let constraints = d.constraints();
        if constraints.is_empty() {
            return Err(format!(
                "{at}: no constraint; expected at least one of min_accuracy, min_macro_f1, min_weighted_f1, max_ece, \
                 max_ece_after_scaling, max_nll, max_brier, max_ms_per_doc_at_batch, max_p50_ms, max_p95_ms, \
                 max_usd_per_million_docs, max_peak_memory_mib"
            ));
        }
        for c in &constraints {
            let field = c.field();
            let share = matches!(
                c.metric,
                Metric::Accuracy | Metric::MacroF1 | Metric::WeightedF1 | Metric::Ece | Metric::EceAfterScaling
            );
            if share && !(0.0..=1.0).contains(&c.bound) {
                return Err(format!(
                    "{at}: field `{field}`: expected a number in [0, 1], got {}",
                    c.bound
                ));
            }
            let positive = c.bound > 0.0 && c.bound.is_finite();
            if !share && !positive {
                return Err(format!(
                    "{at}: field `{field}`: expected a finite number > 0, got {}",
                    c.bound
                ));
            }
            if c.metric.is_timed() && !perf.enabled {
                return Err(format!(
                    "{at}: field `{field}` needs the timing protocol, but [perf] `enabled` = false"
                ));
            }
            if let Some(batch) = c.batch {
                if !perf.batch_sizes.contains(&batch) {
                    return Err(format!(
                        "{at}: field `{field}`: batch {batch} is not one of the measured [perf] `batch_sizes` {:?}",
                        perf.batch_sizes
                    ));
                }
            }
        }
    }
    Ok(())
}
