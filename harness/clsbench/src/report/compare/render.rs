//! `compare.md` and `compare.json`.

use super::{Comparison, Pairing, Ratio};
use crate::error::Result;
use std::fmt::Write;
use std::path::Path;

pub fn write(dir: &Path, c: &Comparison) -> Result<()> {
    crate::fsutil::write_json_atomic(&dir.join("compare.json"), c)?;
    crate::fsutil::write_atomic(&dir.join("compare.md"), render(c).as_bytes())
}

fn ratio_cells(r: &Option<Ratio>, digits: usize) -> String {
    match r {
        Some(r) => format!("{:.d$} | {:.d$} | {:.3}x", r.base, r.new, r.ratio, d = digits),
        None => "— | — | —".into(),
    }
}

pub fn render(c: &Comparison) -> String {
    let mut s = String::new();
    let conf = c.confidence * 100.0;
    let _ = writeln!(s, "# {}: `{}` vs `{}`\n", c.new.suite, c.base.run_id, c.new.run_id);
    for (role, r) in [("base", &c.base), ("new", &c.new)] {
        let _ = writeln!(
            s,
            "- {role}: `{}` (run `{}`, clsbench {}, {}, hardware `{}`)",
            r.results_file, r.run_id, r.git_rev, r.created, r.hardware_slug
        );
    }
    let _ = writeln!(
        s,
        "\nQuality regression: a delta (new − base) whose {conf:.0}% CI lies below {} ({} bootstrap resamples). \
         Speed regression: throughput down by more than {:.0}% on the same hardware{}. \
         Missing: a model or split of the base run that the new run lacks{}.\n",
        if c.options.quality_margin > 0.0 {
            format!("−{}", c.options.quality_margin)
        } else {
            "0".into()
        },
        c.resamples,
        c.options.speed_threshold * 100.0,
        if c.same_hardware {
            ""
        } else {
            " (not the case here: speed is information only)"
        },
        if c.options.allow_missing {
            " (a note here, not a regression: --allow-missing)"
        } else {
            " (a regression unless --allow-missing)"
        }
    );
    if c.regressions.is_empty() {
        let _ = writeln!(s, "**No regression.**\n");
    } else {
        let _ = writeln!(s, "**{} regression(s):**\n", c.regressions.len());
        for r in &c.regressions {
            let split = r.split.as_deref().map(|s| format!(" on {s}")).unwrap_or_default();
            let _ = writeln!(s, "- `{}` ({}{split}): {}", r.model, r.kind.name(), r.detail);
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "## Quality (new − base)\n\n| model | split | pairing | accuracy base | new | Δ | {conf:.0}% CI | macro F1 base | new | Δ | {conf:.0}% CI | zero-F1 classes | changed predictions |\n|---|---|---|---:|---:|---:|---|---:|---:|---:|---|---|---:|"
    );
    for m in &c.models {
        for sc in &m.splits {
            let pairing = match &sc.pairing {
                Pairing::Paired => format!("paired (n {})", sc.n_new),
                Pairing::Unpaired { reason } => format!("unpaired: {reason} (n {} / {})", sc.n_base, sc.n_new),
            };
            let ci = |d: &super::Delta| {
                d.ci.map(|ci| format!("[{:+.4}, {:+.4}]", ci.lower, ci.upper))
                    .unwrap_or_else(|| "—".into())
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.4} | {:.4} | {:+.4} | {} | {:.4} | {:.4} | {:+.4} | {} | {} → {} | {} |",
                m.model,
                sc.split,
                pairing,
                sc.accuracy.base,
                sc.accuracy.new,
                sc.accuracy.delta,
                ci(&sc.accuracy),
                sc.macro_f1.base,
                sc.macro_f1.new,
                sc.macro_f1.delta,
                ci(&sc.macro_f1),
                sc.zero_f1_base,
                sc.zero_f1_new,
                sc.changed_predictions
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "—".into())
            );
        }
    }
    let _ = writeln!(
        s,
        "\n## Speed and cost (ratio = new / base)\n\n| model | docs/s base | new | ratio | latency ms base | new | ratio | $ per 1M base | new | ratio | judged |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for m in &c.models {
        let sp = &m.speed;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            m.model,
            ratio_cells(&sp.throughput_docs_per_s, 1),
            ratio_cells(&sp.latency_ms, 2),
            ratio_cells(&sp.cost_per_1m_usd, 2),
            if sp.judged {
                "yes (same hardware)"
            } else {
                "no (other hardware)"
            }
        );
    }
    if !c.notes.is_empty() {
        let _ = writeln!(s, "\nNotes:\n");
        for n in &c.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s
}
