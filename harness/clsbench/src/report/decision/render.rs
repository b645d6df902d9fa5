//! The decisions in `summary.md`: one table per decision, a column per constraint.

use super::{DecisionReport, Verdict};
use crate::report::results::Results;
use std::fmt::Write;

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "FAIL",
        Verdict::Unknown => "unknown",
    }
}

/// A measured value at the precision its size needs.
fn value(v: f64) -> String {
    match v.abs() {
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 1.0 => format!("{v:.2}"),
        a if a >= 0.01 => format!("{v:.4}"),
        _ => format!("{v:.2e}"),
    }
}

pub fn render(s: &mut String, r: &Results) {
    for d in &r.decisions {
        render_one(s, d);
    }
}

pub fn render_one(s: &mut String, d: &DecisionReport) {
    let _ = writeln!(
        s,
        "\n## Decision: {} ({} split)\n\nConstraints: {}. ECE bins: {}. A verdict uses the measured value (as the seed's \
         week-5 envelope); `[CI]` is the percentile interval where the bootstrap gives one, `~` marks an interval that \
         contains the bound (the split cannot settle that check); `unknown` = not measured.\n",
        d.name,
        d.split,
        d.constraints.iter().map(|c| c.describe()).collect::<Vec<_>>().join("; "),
        d.ece_convention.label()
    );
    let mut header = "| row | verdict |".to_string();
    let mut rule = "|---|---|".to_string();
    for c in &d.constraints {
        let _ = write!(header, " {} |", c.describe());
        rule.push_str("---|");
    }
    let _ = writeln!(s, "{header}\n{rule}");
    for row in &d.rows {
        let mut line = format!("| {} | {} |", row.model, verdict(row.verdict));
        for c in &row.checks {
            let cell = match c.measured {
                Some(v) => {
                    let ci =
                        c.ci.map(|i| format!(" [{}, {}]", value(i.lower), value(i.upper)))
                            .unwrap_or_default();
                    let unsettled = if c.ci_contains_bound == Some(true) { " ~" } else { "" };
                    format!("{} {}{ci}{unsettled}", verdict(c.verdict), value(v))
                }
                None => format!("unknown ({})", c.note.as_deref().unwrap_or("not measured")),
            };
            let _ = write!(line, " {} |", cell.replace('|', "/"));
        }
        let _ = writeln!(s, "{line}");
    }
    match (&d.cheapest, &d.note) {
        (Some(c), _) => {
            let by = match c.by.as_str() {
                "usd_per_million_docs" => format!("${} per 1M documents", value(c.value)),
                _ => format!(
                    "{} device-hours per 1M documents (no price for every passing row)",
                    value(c.value)
                ),
            };
            let _ = writeln!(
                s,
                "\nPassing: {}. Cheapest passing: **{}** ({by}).",
                d.passing.join(", "),
                c.model
            );
        }
        (None, note) => {
            let _ = writeln!(
                s,
                "\nNo cheapest passing row: {}.",
                note.as_deref().unwrap_or("none passes")
            );
        }
    }
}
