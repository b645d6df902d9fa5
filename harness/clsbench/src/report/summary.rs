//! `summary.md`: the human-readable face of a run — a table per split with confidence
//! intervals, pairwise deltas with McNemar, tier metrics, and what failed.

use super::results::{ModelStatus, Results};
use crate::analysis::{SeedAnalysis, SplitAnalysis};
use crate::error::Result;
use clsbench_stats::intervals::{BcaInterval, Interval};
use std::fmt::Write;
use std::path::Path;

pub fn write(path: &Path, r: &Results) -> Result<()> {
    crate::fsutil::write_atomic(path, render(r).as_bytes())
}

fn ci(i: &Interval) -> String {
    format!("[{:.4}, {:.4}]", i.lower, i.upper)
}

fn opt_ci(i: &Option<BcaInterval>) -> String {
    i.as_ref()
        .map(|b| format!("[{:.4}, {:.4}]", b.lower, b.upper))
        .unwrap_or_else(|| "-".into())
}

pub fn render(r: &Results) -> String {
    let mut s = String::new();
    let conf = r.evaluation.confidence * 100.0;
    let _ = writeln!(s, "# {} — run `{}`\n", r.suite.name, r.run_id);
    let _ = writeln!(
        s,
        "clsbench {} ({}), {}; suite sha256 `{}`, seed {}; hardware `{}` ({}, {} threads).\n",
        r.clsbench_version,
        r.git_rev,
        r.created,
        &r.suite.sha256[..12.min(r.suite.sha256.len())],
        r.suite.seed,
        r.hardware.slug,
        r.hardware.cpu_model,
        r.hardware.threads_used
    );
    let d = &r.dataset;
    let _ = writeln!(
        s,
        "Data: {} classes; train {} / val {} / test {} documents.\n",
        d.labels.len(),
        d.n_train,
        d.n_val,
        d.n_test
    );
    let _ = writeln!(
        s,
        "Intervals: {conf:.0}% from {} paired bootstrap resamples ({:?} stream, seed {}). `pct` = percentile \
         (the seed study's method), `BCa` = bias-corrected and accelerated. Macro F1 follows scikit-learn: \
         averaged over the classes present in gold or predictions, zero_division = 0.\n",
        r.evaluation.resamples,
        r.evaluation.rng,
        r.evaluation.bootstrap_seed(r.suite.seed)
    );

    let _ = writeln!(
        s,
        "## Models\n\n| model | kind | status | train s | predict s | note |\n|---|---|---|---:|---:|---|"
    );
    for m in r.models.iter().chain(&r.seed_runs) {
        let status = match m.status {
            ModelStatus::Ok => "ok",
            ModelStatus::NotImplemented => "not implemented",
            ModelStatus::Failed => "FAILED",
        };
        let note = m
            .error
            .clone()
            .or_else(|| not_converged(m))
            .or_else(|| {
                let (of, format) = (m.variant_of.as_ref()?, m.quantize?);
                Some(format!("{of} quantised to {format} (train s: re-load + quantise)"))
            })
            .unwrap_or_default()
            .replace('|', "/")
            .replace('\n', " ");
        let name = if r.seed_runs.is_empty() {
            m.id.clone()
        } else {
            format!("{} (seed {})", m.id, m.seed.unwrap_or(r.suite.seed))
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.1} | {:.1} | {} |",
            name, m.kind, status, m.train_wall_s, m.predict_wall_s, note
        );
    }
    let primary = r.evaluation.primary_split.as_str();
    let mut splits: Vec<&SplitAnalysis> = r.splits.iter().collect();
    splits.sort_by_key(|a| a.split != primary);
    for a in splits {
        render_split(&mut s, a, r.evaluation.confidence);
    }
    super::quantized_summary::render(&mut s, r);
    super::decision::render::render(&mut s, r);
    super::perf_summary::render(&mut s, r);
    s
}

/// A baseline whose optimiser stopped without converging (e.g. on `max_iter`) says so in the
/// models table: its numbers are legitimate but not those of the optimum.
fn not_converged(m: &super::results::ModelResult) -> Option<String> {
    let Some(super::results::TrainRecord::TfidfLogreg(fit)) = &m.train_report else {
        return None;
    };
    let o = &fit.optimization;
    (!o.converged).then(|| format!("NOT CONVERGED after {} iterations ({})", o.iterations, o.termination))
}

/// The seed-aware tables of a split: per-seed scores, mean and spread across seeds, the
/// seed-aware interval of every model and pair beside ASO.
fn render_seeds(s: &mut String, seeds: &SeedAnalysis, confidence: f64) {
    let conf = confidence * 100.0;
    let _ = writeln!(
        s,
        "\nTraining seeds ({}; {} resamples, percentile intervals). The table above is each model's first seed alone; \
         this one is over its seeds: per-seed scores, mean ± standard deviation (ddof = 1), and the seed-aware {conf:.0}% interval of the mean.\n\n\
         | model | seeds | accuracy per seed | mean ± sd | {conf:.0}% CI | macro F1 per seed | mean ± sd | {conf:.0}% CI |\n|---|---|---|---|---|---|---|---|",
        seeds.method.label(),
        seeds.resamples
    );
    let list = |v: &[f64]| v.iter().map(|x| format!("{x:.4}")).collect::<Vec<_>>().join(", ");
    let sd = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
    for m in &seeds.models {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.4} ± {} | {} | {} | {:.4} ± {} | {} |",
            m.model,
            m.seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
            list(&m.accuracy),
            m.accuracy_mean.point,
            sd(m.accuracy_sd),
            ci(&m.accuracy_mean.percentile),
            list(&m.macro_f1),
            m.macro_f1_mean.point,
            sd(m.macro_f1_sd),
            ci(&m.macro_f1_mean.percentile)
        );
    }
    if seeds.pairs.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\nSeed-aware differences (b − a of the seed means) and Almost Stochastic Order over the per-seed scores \
         (ε_min(b ≻ a) < 0.2: b almost stochastically dominates a; confidence 0.95, Bonferroni over the pairs; deepsig's semantics):\n\n\
         | a | b | Δ accuracy | {conf:.0}% CI | Δ macro F1 | {conf:.0}% CI | P(b > a) | ε_min acc b≻a / a≻b | ε_min F1 b≻a / a≻b |\n|---|---|---:|---|---:|---|---:|---|---|"
    );
    let eps = |p: &Option<crate::analysis::AsoPair>| {
        p.as_ref().map_or("-".to_string(), |p| {
            format!("{:.3} / {:.3}", p.b_over_a.epsilon_min, p.a_over_b.epsilon_min)
        })
    };
    for p in &seeds.pairs {
        let _ = writeln!(
            s,
            "| {} | {} | {:+.4} | {} | {:+.4} | {} | {:.3} | {} | {} |",
            p.a,
            p.b,
            p.accuracy.delta.point,
            ci(&p.accuracy.delta.percentile),
            p.macro_f1.delta.point,
            ci(&p.macro_f1.delta.percentile),
            p.macro_f1.share_b_greater,
            eps(&p.aso_accuracy),
            eps(&p.aso_macro_f1)
        );
    }
    if let Some(note) = &seeds.aso_note {
        let _ = writeln!(s, "\n{note}.");
    }
}

pub fn render_split(s: &mut String, a: &SplitAnalysis, confidence: f64) {
    let conf = confidence * 100.0;
    let _ = writeln!(s, "\n## {} ({} documents)\n", a.split, a.n);
    let _ = writeln!(
        s,
        "| model | accuracy | {conf:.0}% CI pct | BCa | macro F1 | {conf:.0}% CI pct | BCa | weighted F1 | zero-F1 classes |\n|---|---:|---|---|---:|---|---|---:|---:|"
    );
    for (i, m) in a.models.iter().enumerate() {
        let b = a.bootstrap.as_ref().and_then(|b| b.models.get(i));
        let _ = writeln!(
            s,
            "| {} | {:.4} | {} | {} | {:.4} | {} | {} | {:.4} | {} |",
            m.model,
            m.metrics.accuracy,
            b.map(|b| ci(&b.accuracy.percentile)).unwrap_or_default(),
            b.map(|b| opt_ci(&b.accuracy.bca)).unwrap_or_default(),
            m.metrics.macro_f1,
            b.map(|b| ci(&b.macro_f1.percentile)).unwrap_or_default(),
            b.map(|b| opt_ci(&b.macro_f1.bca)).unwrap_or_default(),
            m.metrics.weighted_f1,
            m.metrics.zero_f1_classes
        );
    }
    if let Some(seeds) = &a.seeds {
        render_seeds(s, seeds, confidence);
    }
    if let Some(b) = &a.bootstrap {
        if !b.pairs.is_empty() {
            let _ = writeln!(
                s,
                "\nPaired differences (b − a), same resamples for both models; McNemar on per-document correctness.\n\n\
                 | a | b | Δ accuracy | {conf:.0}% CI | Δ macro F1 | {conf:.0}% CI pct | BCa | P(b > a) | bootstrap p | McNemar p |\n|---|---|---:|---|---:|---|---|---:|---:|---|"
            );
            // Each unordered pair once, later model minus earlier (suites list baselines first).
            for p in b.pairs.iter().filter(|p| p.a < p.b) {
                let (name_a, name_b) = (&a.models[p.a].model, &a.models[p.b].model);
                let mc = a.mcnemar.iter().find(|t| &t.a == name_a && &t.b == name_b);
                let _ = writeln!(
                    s,
                    "| {} | {} | {:+.4} | {} | {:+.4} | {} | {} | {:.3} | {:.4} | {} |",
                    name_a,
                    name_b,
                    p.accuracy.delta.point,
                    ci(&p.accuracy.delta.percentile),
                    p.macro_f1.delta.point,
                    ci(&p.macro_f1.delta.percentile),
                    opt_ci(&p.macro_f1.delta.bca),
                    p.macro_f1.share_b_greater,
                    p.macro_f1.p_value,
                    mc.map(|t| format!("{:.4} ({:?})", t.test.p_value, t.test.method))
                        .unwrap_or_default()
                );
            }
        }
    }
    if a.mcnemar.iter().any(|t| t.mde.is_some()) {
        let _ = writeln!(
            s,
            "\nMinimum detectable accuracy difference (paired, 80% power, two-sided α = 0.05; Miller 2024): a gap below it is too small for this split to settle.\n\n\
             | a | b | Δ accuracy | discordant (a only / b only) | MDE | settled? |\n|---|---|---:|---|---:|---|"
        );
        for t in &a.mcnemar {
            if let Some(m) = &t.mde {
                let _ = writeln!(
                    s,
                    "| {} | {} | {:+.4} | {} / {} | {} | {} |",
                    t.a,
                    t.b,
                    m.observed_delta,
                    m.a_right_b_wrong,
                    m.a_wrong_b_right,
                    m.mde.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into()),
                    if m.observed_below_mde { "no: gap < MDE" } else { "yes" }
                );
            }
        }
    }
    if a.mcnemar.iter().any(|t| !t.tier_deltas.is_empty()) {
        let _ = writeln!(
            s,
            "\nPer-tier paired bootstraps (b − a; protocol 7B: Δaccuracy, mean and 2.5/97.5 percentiles, default_rng(42); 7C: Δmacro F1 over the tier's labels, median and quantiles, RandomState(42); * = CI excludes 0):\n\n\
             | a | b | scheme | tier | documents | Δ accuracy | CI | Δ macro F1 (median) | CI |\n|---|---|---|---|---:|---:|---|---:|---|"
        );
        for t in &a.mcnemar {
            for d in &t.tier_deltas {
                for (acc, f1) in d.delta_accuracy.iter().zip(&d.delta_macro_f1) {
                    let star = |x: bool| if x { "*" } else { "" };
                    let _ = writeln!(
                        s,
                        "| {} | {} | {:?} | {} | {} | {:+.4}{} | {} | {:+.4}{} | {} |",
                        t.a,
                        t.b,
                        d.scheme,
                        acc.tier.as_str(),
                        acc.n_examples,
                        acc.bootstrap_mean,
                        star(acc.excludes_zero),
                        ci(&acc.percentile),
                        f1.median,
                        star(f1.excludes_zero),
                        ci(&f1.quantiles)
                    );
                }
            }
        }
    }
    super::calibration_summary::render(s, a, confidence);
    let any_tiers = a.models.iter().any(|m| !m.tiers.is_empty());
    if any_tiers {
        let _ = writeln!(s, "\nTiers (by train count; see the README for the three definitions):\n\n| model | scheme | tier | classes | documents | accuracy | macro F1 |\n|---|---|---|---:|---:|---:|---:|");
        for m in &a.models {
            for t in &m.tiers {
                for tier in &t.tiers {
                    let f = |x: Option<f64>| x.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into());
                    let _ = writeln!(
                        s,
                        "| {} | {:?} | {} | {} | {} | {} | {} |",
                        m.model,
                        t.scheme,
                        tier.tier.as_str(),
                        tier.n_classes,
                        tier.n_examples,
                        f(tier.accuracy),
                        f(tier.macro_f1)
                    );
                }
            }
        }
    }
}
