//! The performance part of `summary.md`: latency, throughput, memory and cost per model, the
//! throughput at every batch size, training speed, the prices used, and links to the plots.

use super::plots::PlotInfo;
use super::results::{ModelResult, ModelStatus, Results};
use crate::perf::memory::RssScope;
use crate::perf::PerfReport;
use std::fmt::Write;

fn f(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}")).unwrap_or_else(|| "-".into())
}

/// Three significant digits, for numbers spanning orders of magnitude (docs/s, $).
fn sig3(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.digits$}")
}

fn mib(bytes: Option<u64>) -> String {
    bytes
        .map(|b| format!("{:.0}", b as f64 / (1024.0 * 1024.0)))
        .unwrap_or_else(|| "unavailable".into())
}

/// Why a model has no perf record, in words.
fn missing_reason(m: &ModelResult) -> &'static str {
    match m.status {
        ModelStatus::Failed => "not timed: the model failed",
        ModelStatus::NotImplemented => "not timed: not implemented",
        ModelStatus::Ok => "not timed (timing disabled or --no-perf)",
    }
}

pub fn render(s: &mut String, r: &Results) {
    let _ = writeln!(s, "\n## Performance on `{}`\n", r.hardware.slug);
    let hw = &r.hardware;
    let gpu = hw
        .gpu
        .as_ref()
        .map(|g| {
            format!(
                "; GPU {} (compute capability {}, {} MiB, driver {})",
                g.name,
                g.compute_capability.as_deref().unwrap_or("?"),
                mib(g.memory_bytes),
                g.driver.as_deref().unwrap_or("?")
            )
        })
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "Hardware: {} ({} threads used of {}, {} physical cores), {} MiB RAM{gpu}.\n",
        hw.cpu_model,
        hw.threads_used,
        hw.cpu_threads,
        hw.cpu_cores.map(|c| c.to_string()).unwrap_or_else(|| "?".into()),
        mib(Some(hw.ram_bytes)),
    );
    let timed: Vec<(&ModelResult, &PerfReport)> = r
        .models
        .iter()
        .filter_map(|m| m.perf.as_ref().map(|p| (m, p)))
        .collect();
    if let Some((_, p)) = timed.iter().find(|(_, p)| p.timing.is_some()) {
        let t = p.timing.as_ref().expect("checked");
        let pool = t.batches.first().map_or(0, |b| b.pool_docs);
        let repeats = t.batches.iter().map(|b| b.repeats).max().unwrap_or(0);
        let _ = writeln!(
            s,
            "Protocol: run after the accuracy run, outputs discarded (timing never changes predictions). {} untimed \
             warm-up calls; single-example latency over {} calls, one text each, cycling over the first {} texts of `{}`; then, per batch \
             size, {} untimed batches and up to {repeats} timed passes over the same {pool} documents (so every \
             size sees the same texts), median pass reported. Clocks are read after the probabilities reach the \
             host, which waits for the device. Peak RSS is the process's high-water mark, reset before each \
             model's timing where the kernel allows (`timing`), else since process start (`process`).\n",
            t.warmup,
            t.single.as_ref().map_or(0, |x| x.n),
            t.single.as_ref().map_or(0, |x| x.n.min(t.n_texts)),
            r.evaluation.primary_split.as_str(),
            t.warmup,
        );
    }
    let busy: Vec<String> = timed
        .iter()
        .filter_map(|(m, p)| {
            let other = p.timing.as_ref()?.other_cpu_cores?;
            (other > crate::perf::contention::BUSY_OTHER_CORES).then(|| format!("{} ({other:.2} cores)", m.id))
        })
        .collect();
    if !busy.is_empty() {
        let _ = writeln!(
            s,
            "**Warning:** other processes used the CPU while these models were timed (average cores used by \
             everything but clsbench, above {}): {}. Their timings are pessimistic; re-run on an idle machine to compare.\n",
            crate::perf::contention::BUSY_OTHER_CORES,
            busy.join(", ")
        );
    }
    let _ = writeln!(
        s,
        "| model | single p50 ms | single p95 ms | priced batch | docs/s | tokens/s | peak RSS MiB | device peak MiB | $ / 1M docs | hours / 1M docs |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for m in &r.models {
        let Some(p) = m.perf.as_ref() else {
            let _ = writeln!(s, "| {} | {} | | | | | | | | |", m.id, missing_reason(m));
            continue;
        };
        let single = p.timing.as_ref().and_then(|t| t.single.as_ref());
        let priced = p.priced_batch();
        let unit = p.timing.as_ref().map(|t| t.token_unit.as_str()).unwrap_or("");
        let tokens = priced
            .and_then(|b| b.tokens_per_s)
            .map(|v| format!("{} ({unit})", sig3(v)))
            .unwrap_or_else(|| "-".into());
        let rss = match (p.memory.peak_rss_bytes, p.memory.rss_scope) {
            (Some(peak), Some(RssScope::Timing)) => match p.memory.start_rss_bytes {
                Some(start) => format!("{} (timing; {} at start)", mib(Some(peak)), mib(Some(start))),
                None => format!("{} (timing)", mib(Some(peak))),
            },
            (Some(peak), _) => format!("{} (process)", mib(Some(peak))),
            (None, _) => "unavailable".into(),
        };
        let usd = match p.cost.usd_per_million_docs {
            Some(v) => sig3(v),
            None => "unknown".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            m.id,
            f(single.map(|x| x.median_ms), 3),
            f(single.map(|x| x.p95_ms), 3),
            p.cost.batch_size.map(|b| b.to_string()).unwrap_or_else(|| "-".into()),
            p.cost.docs_per_s.map(sig3).unwrap_or_else(|| "-".into()),
            tokens,
            rss,
            p.memory
                .device_peak_bytes
                .map(|b| mib(Some(b)))
                .unwrap_or_else(|| "-".into()),
            usd,
            p.cost
                .device_hours_per_million_docs
                .map(sig3)
                .unwrap_or_else(|| "-".into()),
        );
    }
    render_batches(s, &timed);
    render_training(s, &timed);
    render_prices(s, &timed);
    render_plots(s, r);
}

fn render_batches(s: &mut String, timed: &[(&ModelResult, &PerfReport)]) {
    let mut sizes: Vec<usize> = timed
        .iter()
        .filter_map(|(_, p)| p.timing.as_ref())
        .flat_map(|t| t.batches.iter().map(|b| b.batch_size))
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    if sizes.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\nThroughput by batch size (documents/s over the pool; median ms per batch in parentheses):\n"
    );
    let head: Vec<String> = sizes.iter().map(|b| format!("batch {b}")).collect();
    let _ = writeln!(
        s,
        "| model | {} |\n|---|{}",
        head.join(" | "),
        "---:|".repeat(sizes.len())
    );
    let mut notes = Vec::new();
    for (m, p) in timed {
        let Some(t) = &p.timing else {
            notes.push(format!(
                "- {}: timing failed: {}",
                m.id,
                p.error.as_deref().unwrap_or("unknown error")
            ));
            continue;
        };
        let cells: Vec<String> = sizes
            .iter()
            .map(|&size| match t.batches.iter().find(|b| b.batch_size == size) {
                Some(b) => format!("{} ({:.2})", sig3(b.docs_per_s), b.median_batch_ms),
                None if t.failed_batches.iter().any(|f| f.batch_size == size) => "failed".into(),
                None if t.skipped_batch_sizes.contains(&size) => "skipped".into(),
                None => "-".into(),
            })
            .collect();
        let _ = writeln!(s, "| {} | {} |", m.id, cells.join(" | "));
        for fb in &t.failed_batches {
            notes.push(format!(
                "- {}: batch {} failed ({}); larger sizes skipped{}; cost uses the best batch that ran.",
                m.id,
                fb.batch_size,
                fb.error.replace('\n', " "),
                if t.skipped_batch_sizes.is_empty() {
                    String::new()
                } else {
                    format!(" ({:?})", t.skipped_batch_sizes)
                }
            ));
        }
        if let Some(b) = t.batches.iter().find(|b| b.repeats < 2) {
            notes.push(format!(
                "- {}: batch {} ran {} timed repeat(s) within the time budget.",
                m.id, b.batch_size, b.repeats
            ));
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(s, "\n{}", notes.join("\n"));
    }
}

fn render_training(s: &mut String, timed: &[(&ModelResult, &PerfReport)]) {
    let rows: Vec<_> = timed
        .iter()
        .filter_map(|(m, p)| p.training.as_ref().map(|t| (m, t)))
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\nTraining (`wall s` covers the whole fit: loading, tokenising, training and per-epoch validation; \
         `train examples/s` counts optimiser time only):\n\n\
         | model | wall s | examples/epoch | epochs | examples/s (wall) | train examples/s | train s per epoch |\n\
         |---|---:|---:|---:|---:|---:|---|"
    );
    for (m, t) in rows {
        let per_epoch = if t.epoch_train_s.is_empty() {
            "-".to_string()
        } else {
            t.epoch_train_s
                .iter()
                .map(|x| format!("{x:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            s,
            "| {} | {:.1} | {} | {} | {} | {} | {} |",
            m.id,
            t.wall_s,
            t.train_examples,
            match (t.epochs, t.best_epoch) {
                (None, _) => "- (not epoch-based)".into(),
                (Some(e), None) => e.to_string(),
                (Some(e), Some(b)) => format!("{e} (best {b}{})", if t.stopped_early { ", stopped early" } else { "" }),
            },
            t.examples_per_s.map(sig3).unwrap_or_else(|| "-".into()),
            t.train_examples_per_s.map(sig3).unwrap_or_else(|| "-".into()),
            per_epoch
        );
    }
}

fn render_prices(s: &mut String, timed: &[(&ModelResult, &PerfReport)]) {
    let mut lines: Vec<String> = Vec::new();
    for (_, p) in timed {
        let line = match (&p.cost.price, &p.cost.unknown_reason) {
            (Some(price), _) => format!(
                "- `{}`: ${}/hour, {} (read {}; {}){}",
                p.cost.hardware_slug,
                price.entry.usd_per_hour,
                price.entry.source,
                price.entry.date,
                price.table,
                price
                    .entry
                    .note
                    .as_ref()
                    .map(|n| format!(". Note: {n}"))
                    .unwrap_or_default()
            ),
            (None, Some(reason)) => format!("- cost unknown: {reason}"),
            (None, None) => continue,
        };
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\nCost per 1M documents = price per hour / (documents/s at the priced batch x 3600) x 1e6; the priced \
         batch is each model's best measured unless the suite sets `[perf] cost_batch_size`. Prices are an added \
         assumption (the seed study had none):\n\n{}",
        lines.join("\n")
    );
}

/// Links to the plots `plots::write_all` draws for these results, and why others are not drawn.
pub fn render_plots(s: &mut String, r: &Results) {
    let plan = super::plots::plan_for(r);
    if plan.is_empty() {
        return;
    }
    let written: Vec<PlotInfo> = plan.iter().filter(|(_, ok)| ok.is_ok()).map(|(p, _)| *p).collect();
    let skipped: Vec<(PlotInfo, String)> = plan
        .iter()
        .filter_map(|(p, ok)| ok.as_ref().err().map(|why| (*p, why.clone())))
        .collect();
    let _ = writeln!(s, "\n## Plots\n");
    for p in written {
        let dir = super::plots::PLOTS_DIR;
        let _ = writeln!(s, "- [{}]({dir}/{}.png) ([SVG]({dir}/{}.svg))", p.title, p.stem, p.stem);
    }
    for (p, why) in skipped {
        let _ = writeln!(s, "- {}: not drawn ({why})", p.title);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Results {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/results-sample/results.json"
        );
        Results::read(std::path::Path::new(path)).unwrap()
    }

    #[test]
    fn every_timed_model_gets_latency_throughput_and_cost() {
        let r = sample();
        let mut s = String::new();
        render(&mut s, &r);
        for m in &r.models {
            let p = m.perf.as_ref().unwrap();
            let row = s.lines().find(|l| l.starts_with(&format!("| {} | ", m.id))).unwrap();
            let single = p.timing.as_ref().unwrap().single.as_ref().unwrap();
            assert!(
                row.contains(&format!("| {:.3} | {:.3} |", single.median_ms, single.p95_ms)),
                "{row}"
            );
            assert!(row.contains(&sig3(p.cost.usd_per_million_docs.unwrap())), "{row}");
        }
    }

    #[test]
    fn a_failed_model_is_listed_as_not_timed() {
        let mut r = sample();
        r.models[1].status = ModelStatus::Failed;
        r.models[1].perf = None;
        let mut s = String::new();
        render(&mut s, &r);
        assert!(
            s.contains(&format!("| {} | not timed: the model failed |", r.models[1].id)),
            "{s}"
        );
    }

    /// Regression: a model timed right after it trained on every core was flagged "busy" from
    /// the 1-minute load average, which counts clsbench's own threads.
    #[test]
    fn only_other_processes_cpu_time_flags_a_timing_as_busy() {
        let mut r = sample();
        let set = |r: &mut Results, i: usize, load: f64, other: Option<f64>| {
            let perf = r.models[i].perf.as_mut().unwrap();
            let timing = perf.timing.as_mut().unwrap();
            timing.load_average_1m = Some(load);
            timing.other_cpu_cores = other;
        };
        set(&mut r, 0, 9.0, Some(0.02));
        set(&mut r, 1, 0.1, None);
        let mut s = String::new();
        render(&mut s, &r);
        assert!(!s.contains("**Warning:**"), "{s}");
        set(&mut r, 1, 0.1, Some(1.4));
        let mut s = String::new();
        render(&mut s, &r);
        let warning = s.lines().find(|l| l.starts_with("**Warning:**")).expect("a warning");
        assert!(
            warning.contains(&format!("{} (1.40 cores)", r.models[1].id)),
            "{warning}"
        );
        assert!(!warning.contains(&r.models[0].id), "{warning}");
    }

    #[test]
    fn sig3_keeps_three_significant_digits() {
        assert_eq!(sig3(1234.4), "1234");
        assert_eq!(sig3(12.345), "12.3");
        assert_eq!(sig3(0.0012345), "0.00123");
    }
}
