//! Plots of a run, as PNG and SVG under `<run>/plots/`: quality vs cost, per-class F1 of two
//! models, the long tail, the label distribution, and the paired bootstrap of the macro-F1
//! difference. Drawn from `results.json` alone, so `clsbench report` can redraw them.

pub mod data;
pub mod distributions;
pub mod per_class;
pub mod quality_cost;
pub mod reliability;
pub mod style;

use crate::error::Result;
use crate::report::results::Results;
use data::PlotData;
use std::path::Path;

/// A plot's file stem (under `plots/`) and title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlotInfo {
    pub stem: &'static str,
    pub title: &'static str,
}

pub const QUALITY_VS_COST: PlotInfo = PlotInfo {
    stem: "quality_vs_cost",
    title: "Quality vs cost",
};
pub const PER_CLASS_SCATTER: PlotInfo = PlotInfo {
    stem: "per_class_f1_scatter",
    title: "Per-class F1, model vs model",
};
pub const LONG_TAIL: PlotInfo = PlotInfo {
    stem: "long_tail",
    title: "Long tail: per-class F1 vs training examples",
};
pub const LABEL_DISTRIBUTION: PlotInfo = PlotInfo {
    stem: "label_distribution",
    title: "Label distribution",
};
pub const BOOTSTRAP_DELTA: PlotInfo = PlotInfo {
    stem: "bootstrap_delta",
    title: "Paired bootstrap of the macro-F1 difference",
};

pub const RELIABILITY: PlotInfo = PlotInfo {
    stem: "reliability",
    title: "Reliability diagrams (calibration)",
};

/// The plots directory inside a run directory.
pub const PLOTS_DIR: &str = "plots";

/// Which plots `d` can be drawn as, and why the others cannot.
pub fn plan(d: &PlotData) -> Vec<(PlotInfo, std::result::Result<(), String>)> {
    let need = |ok: bool, why: &str| if ok { Ok(()) } else { Err(why.to_string()) };
    vec![
        (
            QUALITY_VS_COST,
            need(
                quality_cost::CostAxis::choose(&d.models).is_some(),
                "no model has a measured throughput (timing skipped or failed)",
            ),
        ),
        (
            PER_CLASS_SCATTER,
            need(d.scatter_pair.is_some(), "needs two finished models"),
        ),
        (LONG_TAIL, need(!d.models.is_empty(), "no model finished")),
        (LABEL_DISTRIBUTION, need(!d.train_counts.is_empty(), "no classes")),
        (
            BOOTSTRAP_DELTA,
            need(
                d.delta.as_ref().is_some_and(|x| !x.samples.is_empty()),
                "needs two finished models with bootstrap samples",
            ),
        ),
    ]
}

/// Draw the plots of a finished run into `<run_dir>/plots/`.
pub fn write_all(run_dir: &Path, results: &Results) -> Result<PlotsWritten> {
    let dir = run_dir.join(PLOTS_DIR);
    let mut out = match PlotData::from_results(results) {
        Some(d) => render_all(&dir, &d)?,
        None => PlotsWritten::default(),
    };
    match reliability_of(results) {
        Ok(plot) => {
            style::save(&dir, RELIABILITY.stem, &plot)?;
            out.written.push(RELIABILITY);
        }
        Err(why) => out.skipped.push((RELIABILITY, why)),
    }
    Ok(out)
}

/// The reliability diagrams of the primary split (else the first analysed one).
fn reliability_of(results: &Results) -> std::result::Result<reliability::Reliability, String> {
    let primary = results.evaluation.primary_split.as_str();
    let a = results
        .split(primary)
        .or_else(|| results.splits.first())
        .ok_or("no split was analysed")?;
    let title = format!("{} {} ({} documents)", results.suite.name, a.split, a.n);
    reliability::Reliability::from_split(&title, a)
        .ok_or_else(|| "no model has per-class probabilities (results of an older clsbench?)".to_string())
}

/// The plots `write_all` draws for `results`, and why the others are not drawn (for links).
pub fn plan_for(results: &Results) -> Vec<(PlotInfo, std::result::Result<(), String>)> {
    let mut plan = PlotData::from_results(results).map(|d| plan(&d)).unwrap_or_default();
    plan.push((RELIABILITY, reliability_of(results).map(|_| ())));
    plan
}

/// What `render_all` wrote and skipped.
#[derive(Debug, Clone, Default)]
pub struct PlotsWritten {
    pub written: Vec<PlotInfo>,
    pub skipped: Vec<(PlotInfo, String)>,
}

/// Draw every plot `d` allows into `dir` (`<stem>.png` and `<stem>.svg`).
pub fn render_all(dir: &Path, d: &PlotData) -> Result<PlotsWritten> {
    let mut out = PlotsWritten::default();
    for (info, possible) in plan(d) {
        if let Err(why) = possible {
            out.skipped.push((info, why));
            continue;
        }
        match info.stem {
            "quality_vs_cost" => style::save(dir, info.stem, &quality_cost::QualityCost { data: d })?,
            "per_class_f1_scatter" => style::save(dir, info.stem, &per_class::PerClassScatter { data: d })?,
            "long_tail" => style::save(dir, info.stem, &per_class::LongTail { data: d })?,
            "label_distribution" => style::save(dir, info.stem, &distributions::LabelDistribution { data: d })?,
            "bootstrap_delta" => style::save(dir, info.stem, &distributions::BootstrapDelta { data: d })?,
            other => unreachable!("plan() lists {other} but render_all cannot draw it"),
        }
        out.written.push(info);
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::data::{DeltaSamples, ModelPoint, PlotData};
    use super::*;

    /// A small run's worth of numbers, shaped like the seed's (a long tail, three models).
    pub fn sample_data() -> PlotData {
        let train_counts: Vec<usize> = (0..30).map(|i| (3000.0 * 0.8f64.powi(i)) as usize + 1).collect();
        let (rare, rare_threshold) = data::rare_quartile(&train_counts);
        let f1 = |scale: f64, shift: f64| -> Vec<Option<f64>> {
            train_counts
                .iter()
                .enumerate()
                .map(|(i, &n)| (i != 7).then(|| ((n as f64).ln() / 8.0 * scale + shift).clamp(0.0, 1.0)))
                .collect()
        };
        let model = |id: &str, kind: &str, f: f64, usd: Option<f64>, hours: f64, pc: Vec<Option<f64>>| ModelPoint {
            id: id.into(),
            kind: kind.into(),
            macro_f1: f,
            macro_f1_ci: Some((f - 0.012, f + 0.011)),
            accuracy: f + 0.3,
            accuracy_ci: Some((f + 0.29, f + 0.31)),
            per_class_f1: pc,
            usd_per_million_docs: usd,
            hours_per_million_docs: Some(hours),
            priced_batch: Some(32),
            seeds: None,
        };
        // A bell shape without a random generator: sums of three evenly spread sequences.
        let u = |i: usize, p: usize| ((i * p) % 1000) as f64 / 1000.0;
        let samples: Vec<f64> = (0..1000)
            .map(|i| 0.031 + (u(i, 7919) + u(i, 104729) + u(i, 1299709) - 1.5) * 0.02)
            .collect();
        let models = vec![
            model("tfidf-lr", "tfidf-logreg", 0.17, Some(0.05), 0.6, f1(0.8, -0.1)),
            model("modernbert-base", "encoder", 0.209, Some(1.2), 14.0, f1(0.9, -0.05)),
            model("qwen2.5-0.5b-lora", "decoder", 0.240, Some(23.0), 270.0, f1(1.0, -0.04)),
        ];
        PlotData {
            suite: "sample".into(),
            split: "val".into(),
            n_docs: 6430,
            confidence: 0.95,
            labels: (0..30).map(|i| format!("class {i}")).collect(),
            train_counts,
            rare,
            rare_threshold,
            scatter_pair: data::pick_pair(&models),
            models,
            delta: Some(DeltaSamples {
                a: "modernbert-base".into(),
                b: "qwen2.5-0.5b-lora".into(),
                point: 0.031,
                ci: (0.013, 0.049),
                samples,
            }),
            hardware_slug: "cpu-xeon-2c".into(),
            price_note: Some("$0.085/h, AWS EC2 c5.large on-demand (2024-06)".into()),
        }
    }

    fn assert_valid_files(dir: &Path, stem: &str) {
        let png = std::fs::read(dir.join(format!("{stem}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png is a PNG");
        assert!(png.len() > 20_000, "{stem}.png is only {} bytes", png.len());
        let svg = std::fs::read_to_string(dir.join(format!("{stem}.svg"))).unwrap();
        assert!(
            svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
            "{stem}.svg is an SVG document"
        );
        assert!(
            svg.matches("<text").count() >= 5,
            "{stem}.svg has titles, labels and ticks"
        );
        assert!(svg.len() > 5_000, "{stem}.svg is only {} bytes", svg.len());
    }

    #[test]
    fn every_plot_is_written_as_png_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        let d = sample_data();
        let out = render_all(dir.path(), &d).unwrap();
        assert!(out.skipped.is_empty(), "{:?}", out.skipped);
        assert_eq!(out.written.len(), 5);
        for info in &out.written {
            assert_valid_files(dir.path(), info.stem);
        }
        if let Ok(keep) = std::env::var("CLSBENCH_KEEP_PLOTS") {
            for info in &out.written {
                for ext in ["png", "svg"] {
                    let name = format!("{}.{ext}", info.stem);
                    std::fs::create_dir_all(&keep).unwrap();
                    std::fs::copy(dir.path().join(&name), Path::new(&keep).join(&name)).unwrap();
                }
            }
        }
    }

    #[test]
    fn plot_data_from_the_sample_results_pairs_encoder_with_decoder() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/results-sample/results.json"
        );
        let r = Results::read(Path::new(path)).unwrap();
        let d = PlotData::from_results(&r).unwrap();
        assert_eq!(d.split, "val");
        let ids: Vec<&str> = d.models.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["tfidf-lr", "minilm-probe", "smollm2-probe"]);
        assert_eq!(d.scatter_pair, Some((1, 2)), "encoder on x, decoder on y");
        let delta = d.delta.as_ref().unwrap();
        assert_eq!((delta.a.as_str(), delta.b.as_str()), ("minilm-probe", "smollm2-probe"));
        assert_eq!(delta.samples.len(), r.evaluation.resamples);
        let (f1_enc, f1_dec) = (d.models[1].macro_f1, d.models[2].macro_f1);
        assert!(
            (delta.point - (f1_dec - f1_enc)).abs() < 1e-12,
            "delta is decoder minus encoder"
        );
        for m in &d.models {
            let (lo, hi) = m.macro_f1_ci.unwrap();
            assert!(
                lo <= hi && (0.0..=1.0).contains(&lo) && hi <= 1.0,
                "{}: [{lo}, {hi}]",
                m.id
            );
            assert!(m.usd_per_million_docs.unwrap() > 0.0 && m.priced_batch.is_some());
            assert_eq!(m.per_class_f1.len(), d.labels.len());
        }
        assert_eq!(plan(&d).iter().filter(|(_, ok)| ok.is_ok()).count(), 5);
    }

    #[test]
    fn plots_that_lack_data_are_skipped_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = sample_data();
        d.models.truncate(1);
        d.scatter_pair = data::pick_pair(&d.models);
        d.delta = None;
        for m in &mut d.models {
            m.usd_per_million_docs = None;
            m.hours_per_million_docs = None;
        }
        let out = render_all(dir.path(), &d).unwrap();
        let skipped: Vec<&str> = out.skipped.iter().map(|(i, _)| i.stem).collect();
        assert_eq!(
            skipped,
            vec!["quality_vs_cost", "per_class_f1_scatter", "bootstrap_delta"]
        );
        assert!(!dir.path().join("quality_vs_cost.png").exists());
        assert_valid_files(dir.path(), "long_tail");
    }

    /// Issue 13: a model with several seeds gets a seed band and one dot per seed beside its
    /// whisker in both panels, and the caption says what they are.
    #[test]
    fn seeds_draw_a_band_beside_the_whisker() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = sample_data();
        style::save(dir.path(), "plain", &quality_cost::QualityCost { data: &d }).unwrap();
        d.models[2].seeds = Some(data::SeedBand {
            macro_f1: vec![0.232, 0.240, 0.251],
            macro_f1_ci: (0.221, 0.259),
            accuracy: vec![0.53, 0.54, 0.55],
            accuracy_ci: (0.52, 0.56),
        });
        style::save(dir.path(), "seeds", &quality_cost::QualityCost { data: &d }).unwrap();
        let read = |stem: &str| std::fs::read_to_string(dir.path().join(format!("{stem}.svg"))).unwrap();
        let (plain, seeds) = (read("plain"), read("seeds"));
        assert_eq!(seeds.matches("<circle").count(), plain.matches("<circle").count() + 6);
        assert_eq!(seeds.matches("<rect").count(), plain.matches("<rect").count() + 2);
        assert!(seeds.contains("seed-aware CI over seeds") && !plain.contains("seed-aware CI"));
        d.models[2].seeds.as_mut().unwrap().macro_f1_ci = (0.221, 0.259);
        style::save(dir.path(), "seeds", &quality_cost::QualityCost { data: &d }).unwrap();
        assert_valid_files(dir.path(), "seeds");
    }

    #[test]
    fn unpriced_model_switches_the_cost_axis_to_hours() {
        let mut d = sample_data();
        d.models[2].usd_per_million_docs = None;
        assert_eq!(
            quality_cost::CostAxis::choose(&d.models),
            Some(quality_cost::CostAxis::HoursPerMillionDocs)
        );
        let dir = tempfile::tempdir().unwrap();
        style::save(dir.path(), "q", &quality_cost::QualityCost { data: &d }).unwrap();
        let svg = std::fs::read_to_string(dir.path().join("q.svg")).unwrap();
        assert!(svg.contains("hours per 1M documents"), "x axis names hours");
    }
}
