//! Markdown of the device checks and of the synthetic perf run (the statistics live in
//! `checks` and `synthetic`; this only formats them).

use super::checks::CheckReport;
use super::synthetic::ShapeReport;
use std::fmt::Write;

pub fn checks_markdown(r: &CheckReport) -> String {
    let mut out = String::new();
    let failed = r.failed().len();
    let gpu = r
        .gpu
        .as_ref()
        .map(|g| format!(" ({}, compute capability {})", g.name, g.compute_capability_string()))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "## Device checks on {}{gpu}: {} of {} passed\n",
        r.device,
        r.checks.len() - failed,
        r.checks.len()
    );
    let _ = writeln!(
        out,
        "| check | family | method | dtype | result | value | tolerance | detail |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---:|---:|---|");
    for c in &r.checks {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            c.check,
            c.family,
            c.method.as_deref().unwrap_or("-"),
            c.dtype,
            if c.passed { "pass" } else { "**FAIL**" },
            c.value.map_or("-".into(), |v| format!("{v:.3e}")),
            c.tolerance.map_or("-".into(), |v| format!("{v:.0e}")),
            c.detail.replace('|', "\\|")
        );
    }
    out
}

fn gib(b: Option<u64>) -> String {
    b.map_or("-".into(), |b| format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64))
}

pub fn perf_markdown(reports: &[ShapeReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| shape | method | device | dtype | batch | docs/s | median batch ms | single p50 ms | single p95 ms | train step ms (batch x len) | peak memory inference / training |"
    );
    let _ = writeln!(out, "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|");
    for r in reports {
        let single = r.single.as_ref().map_or(("-".into(), "-".into()), |s| {
            (format!("{:.2}", s.median_ms), format!("{:.2}", s.p95_ms))
        });
        let train = match (&r.training, &r.training_error) {
            (Some(t), _) => format!("{:.1} ({} x {})", t.median_step_ms, t.batch_size, t.max_length),
            (None, Some(e)) => format!("failed: {}", e.replace('|', "\\|")),
            (None, None) => "-".into(),
        };
        let memory = format!(
            "{} / {}",
            gib(r.inference_peak_device_bytes),
            gib(r.training_peak_device_bytes)
        );
        if r.inference.is_empty() {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | - | - | - | {} | {} | {train} | {memory} |",
                r.shape, r.method, r.device, r.dtype, single.0, single.1
            );
        }
        for (i, t) in r.inference.iter().enumerate() {
            let first = i == 0;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {:.1} | {:.2} | {} | {} | {} | {} |",
                r.shape,
                r.method,
                r.device,
                r.dtype,
                t.batch_size,
                t.docs_per_s,
                t.median_batch_ms,
                if first { single.0.as_str() } else { "" },
                if first { single.1.as_str() } else { "" },
                if first { train.as_str() } else { "" },
                if first { memory.as_str() } else { "" },
            );
        }
        for f in &r.inference_failures {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | failed: {} | | | | | |",
                r.shape,
                r.method,
                r.device,
                r.dtype,
                f.batch_size,
                f.error.replace('|', "\\|")
            );
        }
    }
    let _ = writeln!(
        out,
        "\nRecomputation (gradient checkpointing): {}",
        super::synthetic::RECOMPUTATION
    );
    out
}
