//! The calibration table of one split in `summary.md` and `score.md`: ECE in both of the seed's
//! bin conventions with intervals, MCE, NLL, Brier, and temperature scaling before and after
//! on the evaluation half.

use crate::analysis::SplitAnalysis;
use clsbench_stats::bootstrap::Estimate;
use clsbench_stats::calibration::{BinConvention, BinnedCalibration, CalibrationReport, N_BINS};
use std::fmt::Write;

fn ci(e: &Option<Estimate>) -> String {
    e.as_ref()
        .map(|e| format!("[{:.4}, {:.4}]", e.percentile.lower, e.percentile.upper))
        .unwrap_or_else(|| "-".into())
}

fn num(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into())
}

/// The table, or nothing when no model of the split has scores.
pub fn render(s: &mut String, a: &SplitAnalysis, confidence: f64) {
    let calibrated: Vec<(&str, &CalibrationReport)> = a
        .models
        .iter()
        .filter_map(|m| m.calibration.as_ref().map(|c| (m.model.as_str(), c)))
        .collect();
    if calibrated.is_empty() {
        return;
    }
    let conf = confidence * 100.0;
    let (d, u) = (BinConvention::Digitize.label(), BinConvention::UpperClosed.label());
    let _ = writeln!(
        s,
        "\nCalibration ({N_BINS} equal-width bins of the max probability; ECE = Σ (n_b/N) |acc_b − conf_b|, \
         {conf:.0}% percentile CI on the same paired resamples as above; conventions: `[lo, hi)` = {d}, \
         `(lo, hi]` = {u}). Temperature scaling: one T fitted (NLL) on the first half of \
         RandomState(seed + 999).permutation(n), scored on the other half; argmax unchanged.\n\n\
         | model | ECE [lo, hi) | CI | ECE (lo, hi] | CI | MCE [lo, hi) / (lo, hi] | NLL | Brier | T | eval half ECE (lo, hi] before → after | CI after | ECE [lo, hi) after | NLL before → after |\n\
         |---|---:|---|---:|---|---|---:|---:|---:|---|---|---:|---|"
    );
    for (model, c) in calibrated {
        let (dig, up) = (&c.full.digitize, &c.full.upper_closed);
        let (t, half, ci_after, dig_after, nll) = match &c.temperature {
            Some(t) => (
                format!("{:.3}{}", t.temperature, if t.at_bound { " (bound)" } else { "" }),
                format!("{:.4} → {:.4}", t.before.upper_closed.ece, t.after.upper_closed.ece),
                ci(&t.after.upper_closed.ece_ci),
                format!("{:.4}", t.after.digitize.ece),
                format!("{} → {}", num(t.before.nll), num(t.after.nll)),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into(), "-".into()),
        };
        let _ = writeln!(
            s,
            "| {model} | {:.4} | {} | {:.4} | {} | {:.4} / {:.4} | {} | {} | {t} | {half} | {ci_after} | {dig_after} | {nll} |",
            dig.ece,
            ci(&dig.ece_ci),
            up.ece,
            ci(&up.ece_ci),
            dig.mce,
            up.mce,
            num(c.full.nll),
            num(c.full.brier),
        );
    }
    let _ = writeln!(
        s,
        "\nReliability (`[lo, hi)` bins, {d}; accuracy / mean confidence (documents), empty bins left out):\n"
    );
    for m in a.models.iter().filter(|m| m.calibration.is_some()) {
        let c = m.calibration.as_ref().expect("filtered");
        let _ = writeln!(s, "- {}: {}", m.model, bins_line(&c.full.digitize));
    }
}

/// `[lo, hi): acc / conf (n)` for each non-empty bin.
pub fn bins_line(b: &BinnedCalibration) -> String {
    b.bins
        .iter()
        .filter_map(|bin| {
            Some(format!(
                "[{:.2}, {:.2}) {:.2}/{:.2} ({})",
                bin.lower, bin.upper, bin.accuracy?, bin.mean_confidence?, bin.count
            ))
        })
        .collect::<Vec<_>>()
        .join("; ")
}
