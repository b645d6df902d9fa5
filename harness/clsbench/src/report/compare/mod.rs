//! `clsbench compare BASE NEW`: regression tracking between two runs of the same suite.
//!
//! Per model and split: accuracy and macro-F1 deltas (new − base) with bootstrap CIs, paired
//! when both runs scored the same documents with the same gold labels (the same resamples
//! for both predictions, so the noise common to both cancels), unpaired otherwise (and said
//! so); zero-F1 counts; how many predictions changed. Per model: throughput, latency and cost
//! ratios (new / base). A quality regression is a delta whose whole CI lies below −margin; a
//! speed regression is throughput falling by more than the threshold on the same hardware
//! slug (across different hardware, speed ratios are information, not failure); a model that
//! worked in BASE and failed in NEW is a regression too.
//!
//! A gate must not pass on nothing: two runs with no model or no split in common are refused
//! (bad input), and a model, or a model's split, that BASE has and NEW lacks is a regression
//! of kind `missing` (a note instead with `allow_missing`), so that a NEW run made with
//! `--only`, or without a val split, cannot pass by having less to judge.

pub mod render;
mod unpaired;

use crate::analysis::{ModelAnalysis, SplitAnalysis};
use crate::error::{Error, Result};
use crate::report::claims::Interval;
use crate::report::model_numbers;
use crate::report::results::{ModelResult, ModelStatus, Results};
use clsbench_stats::bootstrap::{self, BootstrapConfig};
use clsbench_stats::metrics::{self, Metrics};
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct CompareOptions {
    /// A quality delta is a regression when its whole CI lies below −margin (metric units).
    pub quality_margin: f64,
    /// Throughput falling by more than this fraction (same hardware) is a regression.
    pub speed_threshold: f64,
    /// A model or split of the base run that the new run lacks is a note, not a regression.
    pub allow_missing: bool,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            quality_margin: 0.0,
            speed_threshold: 0.10,
            allow_missing: false,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub results_file: String,
    pub suite: String,
    pub run_id: String,
    pub git_rev: String,
    pub created: String,
    pub hardware_slug: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub base: RunInfo,
    pub new: RunInfo,
    pub same_hardware: bool,
    pub options: CompareOptions,
    pub confidence: f64,
    pub resamples: usize,
    pub models: Vec<ModelComparison>,
    /// Models present in only one run, and similar facts worth a line.
    pub notes: Vec<String>,
    pub regressions: Vec<Regression>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelComparison {
    pub model: String,
    pub splits: Vec<SplitComparison>,
    pub speed: SpeedComparison,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Pairing {
    /// Same document ids and gold labels in both runs: paired bootstrap.
    Paired,
    /// Independent bootstraps of each run; `reason` says why they could not be paired.
    Unpaired { reason: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct SplitComparison {
    pub split: String,
    pub pairing: Pairing,
    pub n_base: usize,
    pub n_new: usize,
    pub accuracy: Delta,
    pub macro_f1: Delta,
    pub zero_f1_base: usize,
    pub zero_f1_new: usize,
    /// Documents whose prediction changed (paired only).
    pub changed_predictions: Option<usize>,
}

/// new − base, with the CI of the difference when there are per-document predictions.
#[derive(Debug, Clone, Serialize)]
pub struct Delta {
    pub base: f64,
    pub new: f64,
    pub delta: f64,
    pub ci: Option<Interval>,
}

/// A number in both runs and new / base.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ratio {
    pub base: f64,
    pub new: f64,
    pub ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SpeedComparison {
    pub throughput_docs_per_s: Option<Ratio>,
    pub latency_ms: Option<Ratio>,
    pub cost_per_1m_usd: Option<Ratio>,
    /// Same hardware slug: speed can regress. Otherwise the ratios are information.
    pub judged: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RegressionKind {
    Quality,
    Speed,
    Status,
    /// In the base run, absent from the new one (a model, or a model's split).
    Missing,
}

#[derive(Debug, Clone, Serialize)]
pub struct Regression {
    pub model: String,
    pub kind: RegressionKind,
    pub split: Option<String>,
    pub detail: String,
}

impl RegressionKind {
    pub fn name(self) -> &'static str {
        match self {
            RegressionKind::Quality => "quality",
            RegressionKind::Speed => "speed",
            RegressionKind::Status => "status",
            RegressionKind::Missing => "missing",
        }
    }
}

impl Comparison {
    pub fn has_regression(&self) -> bool {
        !self.regressions.is_empty()
    }
}

fn run_info(r: &Results, path: &Path) -> RunInfo {
    RunInfo {
        results_file: path.display().to_string(),
        suite: r.suite.name.clone(),
        run_id: r.run_id.clone(),
        git_rev: r.git_rev.clone(),
        created: r.created.clone(),
        hardware_slug: r.hardware.slug.clone(),
    }
}

/// Refuse pairs of runs whose deltas would mean nothing.
fn check_comparable(base: &Results, new: &Results, base_path: &Path, new_path: &Path) -> Result<()> {
    if base.suite.name != new.suite.name {
        return Err(Error::bad_input(format!(
            "cannot compare runs of different suites: {} is suite {:?}, {} is suite {:?}; their models and data \
             differ, so deltas would not measure a regression. Compare two runs of the same suite",
            base_path.display(),
            base.suite.name,
            new_path.display(),
            new.suite.name
        )));
    }
    let (bl, nl) = (&base.dataset.labels, &new.dataset.labels);
    if bl != nl {
        let first = bl
            .iter()
            .zip(nl)
            .position(|(a, b)| a != b)
            .unwrap_or(bl.len().min(nl.len()));
        let at = |v: &Vec<String>| v.get(first).map_or("(none)".to_string(), |l| format!("{l:?}"));
        return Err(Error::bad_input(format!(
            "cannot compare {} and {}: their label sets differ ({} vs {} classes; class id {first} is {} vs {}), so \
             class ids and metrics refer to different tasks. The suite's data or label processing changed: \
             re-run the base with the current suite",
            base_path.display(),
            new_path.display(),
            bl.len(),
            nl.len(),
            at(bl),
            at(nl)
        )));
    }
    Ok(())
}

/// Refuse pairs of runs that share no model or no split: every model of one would be
/// "missing" from the other, and nothing could be judged.
fn check_overlap(base: &Results, new: &Results, base_path: &Path, new_path: &Path) -> Result<()> {
    let models = |r: &Results| r.models.iter().map(|m| m.id.clone()).collect::<Vec<_>>();
    let splits = |r: &Results| r.splits.iter().map(|s| s.split.clone()).collect::<Vec<_>>();
    let (bm, nm, bs, ns) = (models(base), models(new), splits(base), splits(new));
    let no_model = !bm.iter().any(|m| nm.contains(m));
    let no_split = !bs.iter().any(|s| ns.contains(s));
    if no_model || no_split {
        return Err(Error::bad_input(format!(
            "nothing to compare: {} has models {bm:?} on splits {bs:?}, {} has models {nm:?} on splits {ns:?}; \
             no {} is in both runs, so no regression could be seen. Compare runs that share a model and a split \
             (for a run made with --only, a base made with the same --only)",
            base_path.display(),
            new_path.display(),
            if no_model { "model" } else { "split" }
        )));
    }
    Ok(())
}

impl Comparison {
    /// Something of the base run that the new run lacks: a regression, or a note when allowed.
    fn missing(&mut self, opts: &CompareOptions, model: &str, split: Option<&str>, detail: String) {
        if opts.allow_missing {
            self.notes.push(format!("{detail} (allowed by --allow-missing)"));
        } else {
            self.regressions.push(Regression {
                model: model.to_string(),
                kind: RegressionKind::Missing,
                split: split.map(str::to_string),
                detail,
            });
        }
    }
}

/// Compare two runs (BASE, NEW) of the same suite.
pub fn compare(
    base: &Results,
    base_path: &Path,
    new: &Results,
    new_path: &Path,
    opts: &CompareOptions,
) -> Result<Comparison> {
    if !(opts.quality_margin >= 0.0 && opts.quality_margin.is_finite()) {
        return Err(Error::bad_input(format!(
            "--quality-margin must be >= 0, got {}",
            opts.quality_margin
        )));
    }
    if !(opts.speed_threshold >= 0.0 && opts.speed_threshold < 1.0) {
        return Err(Error::bad_input(format!(
            "--speed-threshold must be in [0, 1), got {}",
            opts.speed_threshold
        )));
    }
    check_comparable(base, new, base_path, new_path)?;
    check_overlap(base, new, base_path, new_path)?;
    let same_hardware = base.hardware.slug == new.hardware.slug;
    let cfg = BootstrapConfig {
        resamples: new.evaluation.resamples,
        confidence: new.evaluation.confidence,
        seed: new.evaluation.bootstrap_seed(new.suite.seed),
        rng: new.evaluation.rng,
    };
    let n_classes = new.dataset.labels.len();
    let mut out = Comparison {
        base: run_info(base, base_path),
        new: run_info(new, new_path),
        same_hardware,
        options: *opts,
        confidence: cfg.confidence,
        resamples: cfg.resamples,
        models: Vec::new(),
        notes: Vec::new(),
        regressions: Vec::new(),
    };
    if base.evaluation.confidence != new.evaluation.confidence || base.evaluation.resamples != new.evaluation.resamples
    {
        out.notes.push(format!(
            "the runs used different bootstrap settings; deltas use the new run's ({} resamples, {:.0}% CIs)",
            cfg.resamples,
            cfg.confidence * 100.0
        ));
    }
    for bm in &base.models {
        let Some(nm) = new.model(&bm.id) else {
            let detail = format!(
                "model {:?} is in the base run, not in the new one (new run made with --only?)",
                bm.id
            );
            out.missing(opts, &bm.id, None, detail);
            continue;
        };
        match (bm.status, nm.status) {
            (ModelStatus::Ok, ModelStatus::Ok) => {}
            (ModelStatus::Ok, status) => {
                out.regressions.push(Regression {
                    model: bm.id.clone(),
                    kind: RegressionKind::Status,
                    split: None,
                    detail: format!(
                        "worked in the base run, {} in the new one: {}",
                        if status == ModelStatus::Failed {
                            "failed"
                        } else {
                            "not implemented"
                        },
                        nm.error.as_deref().unwrap_or("")
                    ),
                });
                continue;
            }
            _ => {
                out.notes.push(format!(
                    "model {:?} did not finish in the base run; nothing to compare",
                    bm.id
                ));
                continue;
            }
        }
        let mut mc = ModelComparison {
            model: bm.id.clone(),
            splits: Vec::new(),
            speed: speed(bm, nm, same_hardware),
        };
        for ba in base.splits.iter().filter(|a| a.model(&bm.id).is_some()) {
            let Some(na) = new.split(&ba.split) else {
                let detail = format!("split {:?} is in the base run, not in the new one", ba.split);
                out.missing(opts, &bm.id, Some(&ba.split), detail);
                continue;
            };
            if na.model(&bm.id).is_none() {
                let detail = format!(
                    "the new run's split {:?} has no predictions of model {:?}; the base run's has",
                    ba.split, bm.id
                );
                out.missing(opts, &bm.id, Some(&ba.split), detail);
                continue;
            }
            if let Some(sc) = compare_split(&bm.id, ba, na, n_classes, &cfg)? {
                out.regressions
                    .extend(quality_regressions(&bm.id, &sc, opts.quality_margin, cfg.confidence));
                mc.splits.push(sc);
            }
        }
        if let Some(t) = mc.speed.throughput_docs_per_s.filter(|_| same_hardware) {
            if t.ratio < 1.0 - opts.speed_threshold {
                out.regressions.push(Regression {
                    model: bm.id.clone(),
                    kind: RegressionKind::Speed,
                    split: None,
                    detail: format!(
                        "throughput {:.1} -> {:.1} docs/s ({:+.1}%, threshold −{:.0}%) on {}",
                        t.base,
                        t.new,
                        (t.ratio - 1.0) * 100.0,
                        opts.speed_threshold * 100.0,
                        new.hardware.slug
                    ),
                });
            }
        }
        out.models.push(mc);
    }
    for nm in new.models.iter().filter(|m| base.model(&m.id).is_none()) {
        out.notes
            .push(format!("model {:?} is new (not in the base run)", nm.id));
    }
    for na in new.splits.iter().filter(|a| base.split(&a.split).is_none()) {
        out.notes
            .push(format!("split {:?} is new (not in the base run)", na.split));
    }
    let judged_quality = out.models.iter().any(|m| !m.splits.is_empty());
    if !judged_quality && !out.has_regression() {
        return Err(Error::bad_input(format!(
            "nothing to compare between {} and {}: no model has quality numbers on a split of both runs ({}). \
             A gate that judged nothing would pass; compare runs in which a shared model finished",
            base_path.display(),
            new_path.display(),
            out.notes.join("; ")
        )));
    }
    if !same_hardware {
        out.notes.push(format!(
            "different hardware ({} vs {}): speed and cost ratios are information, not regressions",
            base.hardware.slug, new.hardware.slug
        ));
    }
    Ok(out)
}

/// Accuracy or macro-F1 deltas whose whole CI lies below −margin.
fn quality_regressions(model: &str, sc: &SplitComparison, margin: f64, confidence: f64) -> Vec<Regression> {
    let pairing = match sc.pairing {
        Pairing::Paired => "paired",
        Pairing::Unpaired { .. } => "unpaired",
    };
    let bound = if margin > 0.0 {
        format!("−{margin}")
    } else {
        "0".into()
    };
    [("accuracy", &sc.accuracy), ("macro F1", &sc.macro_f1)]
        .into_iter()
        .filter_map(|(name, d)| {
            let ci = d.ci.filter(|ci| ci.upper < -margin)?;
            Some(Regression {
                model: model.to_string(),
                kind: RegressionKind::Quality,
                split: Some(sc.split.clone()),
                detail: format!(
                    "{name} {:.4} -> {:.4} (Δ {:+.4}, {:.0}% CI [{:+.4}, {:+.4}], {pairing}, below {bound})",
                    d.base,
                    d.new,
                    d.delta,
                    confidence * 100.0,
                    ci.lower,
                    ci.upper
                ),
            })
        })
        .collect()
}

fn ratio(base: Option<f64>, new: Option<f64>) -> Option<Ratio> {
    let (b, n) = (base?, new?);
    (b > 0.0).then(|| Ratio {
        base: b,
        new: n,
        ratio: n / b,
    })
}

fn speed(base: &ModelResult, new: &ModelResult, same_hardware: bool) -> SpeedComparison {
    SpeedComparison {
        throughput_docs_per_s: ratio(
            model_numbers::throughput_docs_per_s(base),
            model_numbers::throughput_docs_per_s(new),
        ),
        latency_ms: ratio(model_numbers::latency_ms(base), model_numbers::latency_ms(new)),
        cost_per_1m_usd: ratio(
            model_numbers::cost_per_1m_usd(base),
            model_numbers::cost_per_1m_usd(new),
        ),
        judged: same_hardware,
    }
}

fn compare_split(
    model: &str,
    base: &SplitAnalysis,
    new: &SplitAnalysis,
    n_classes: usize,
    cfg: &BootstrapConfig,
) -> Result<Option<SplitComparison>> {
    let (Some((_, bm)), Some((_, nm))) = (base.model(model), new.model(model)) else {
        return Ok(None);
    };
    let has_preds = |a: &SplitAnalysis, p: &[usize]| !p.is_empty() && p.len() == a.gold.len();
    let pairing = if !has_preds(base, &bm.pred) || !has_preds(new, &nm.pred) {
        Pairing::Unpaired {
            reason: "a run has no per-document predictions; no CI".into(),
        }
    } else if base.doc_ids != new.doc_ids {
        Pairing::Unpaired {
            reason: "the runs scored different documents".into(),
        }
    } else if base.gold != new.gold {
        Pairing::Unpaired {
            reason: "the gold labels of the documents differ".into(),
        }
    } else {
        Pairing::Paired
    };
    let (acc_ci, f1_ci, changed) = match &pairing {
        Pairing::Paired => {
            // Model 0 = base, 1 = new: the pair (0, 1) holds new − base.
            let report = bootstrap::paired_bootstrap(&new.gold, &[&bm.pred, &nm.pred], n_classes, cfg)?;
            let Some(pair) = report.pairs.iter().find(|p| p.a == 0 && p.b == 1) else {
                return Ok(None);
            };
            let changed = bm.pred.iter().zip(&nm.pred).filter(|(a, b)| a != b).count();
            (
                Some(pair.accuracy.delta.percentile),
                Some(pair.macro_f1.delta.percentile),
                Some(changed),
            )
        }
        Pairing::Unpaired { .. } if has_preds(base, &bm.pred) && has_preds(new, &nm.pred) => {
            let d = unpaired::difference_cis((&base.gold, &bm.pred), (&new.gold, &nm.pred), n_classes, cfg)?;
            (Some(d.accuracy), Some(d.macro_f1), None)
        }
        Pairing::Unpaired { .. } => (None, None, None),
    };
    // Points come from the predictions when there are any, so that they always agree with the
    // intervals computed from the same predictions.
    let points = |a: &SplitAnalysis, m: &ModelAnalysis| -> Result<Metrics> {
        if has_preds(a, &m.pred) {
            Ok(metrics::compute(&a.gold, &m.pred, n_classes)?)
        } else {
            Ok(m.metrics.clone())
        }
    };
    let (b, n) = (points(base, bm)?, points(new, nm)?);
    let delta = |b: f64, n: f64, ci: Option<Interval>| Delta {
        base: b,
        new: n,
        delta: n - b,
        ci,
    };
    Ok(Some(SplitComparison {
        split: base.split.clone(),
        pairing,
        n_base: base.n,
        n_new: new.n,
        accuracy: delta(b.accuracy, n.accuracy, acc_ci),
        macro_f1: delta(b.macro_f1, n.macro_f1, f1_ci),
        zero_f1_base: b.zero_f1_classes,
        zero_f1_new: n.zero_f1_classes,
        changed_predictions: changed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testkit::{self, model, pred_with_errors};
    use std::path::Path;

    const K: usize = 6;
    const N: usize = 600;

    fn run(slug: &str, pred: Vec<usize>, docs_per_s: f64) -> Results {
        let gold = testkit::gold(N, K);
        let mut m = model("tfidf", pred);
        m.perf = Some(testkit::perf(1000.0 / docs_per_s, None, 1000.0 / docs_per_s));
        testkit::results("suite-a", slug, K, testkit::ids(N), gold, vec![m])
    }

    fn cmp(base: &Results, new: &Results) -> Result<Comparison> {
        compare(
            base,
            Path::new("base.json"),
            new,
            Path::new("new.json"),
            &CompareOptions::default(),
        )
    }

    #[test]
    fn a_run_compared_with_itself_has_no_regression() {
        let gold = testkit::gold(N, K);
        let r = run("cpu-x-2c", pred_with_errors(&gold, K, 4, 0), 500.0);
        let c = cmp(&r, &r).unwrap();
        assert!(!c.has_regression(), "{:?}", c.regressions);
        let sc = &c.models[0].splits[0];
        assert!(matches!(sc.pairing, Pairing::Paired));
        assert_eq!(sc.changed_predictions, Some(0));
        assert_eq!(
            (sc.accuracy.delta, sc.accuracy.ci.map(|ci| (ci.lower, ci.upper))),
            (0.0, Some((0.0, 0.0)))
        );
        assert_eq!(c.models[0].speed.throughput_docs_per_s.unwrap().ratio, 1.0);
    }

    #[test]
    fn three_points_less_accuracy_and_half_the_throughput_are_regressions() {
        let gold = testkit::gold(N, K);
        let base_pred = pred_with_errors(&gold, K, 4, 0);
        // 3% more wrong: every 33rd document that was right becomes wrong.
        let new_pred: Vec<usize> = base_pred
            .iter()
            .zip(&gold)
            .enumerate()
            .map(|(i, (&p, &g))| if p == g && i % 33 == 1 { (g + 2) % K } else { p })
            .collect();
        let base = run("cpu-x-2c", base_pred, 500.0);
        let new = run("cpu-x-2c", new_pred, 250.0);
        let c = cmp(&base, &new).unwrap();
        let kinds: Vec<RegressionKind> = c.regressions.iter().map(|r| r.kind).collect();
        assert!(
            kinds.contains(&RegressionKind::Quality) && kinds.contains(&RegressionKind::Speed),
            "{:?}",
            c.regressions
        );
        let acc = &c.models[0].splits[0].accuracy;
        assert!(acc.delta < -0.02 && acc.ci.unwrap().upper < 0.0, "{acc:?}");
        // A margin wider than the drop turns the quality flag off.
        let opts = CompareOptions {
            quality_margin: 0.2,
            speed_threshold: 0.6,
            ..CompareOptions::default()
        };
        let c = compare(&base, Path::new("b"), &new, Path::new("n"), &opts).unwrap();
        assert!(!c.has_regression(), "{:?}", c.regressions);
    }

    #[test]
    fn speed_on_other_hardware_is_information_only() {
        let gold = testkit::gold(N, K);
        let pred = pred_with_errors(&gold, K, 4, 0);
        let c = cmp(&run("t4", pred.clone(), 500.0), &run("cpu-x-2c", pred, 50.0)).unwrap();
        assert!(!c.has_regression(), "{:?}", c.regressions);
        assert!(!c.models[0].speed.judged && c.notes.iter().any(|n| n.contains("different hardware")));
        assert!((c.models[0].speed.throughput_docs_per_s.unwrap().ratio - 0.1).abs() < 1e-12);
    }

    #[test]
    fn different_documents_are_compared_unpaired_and_say_so() {
        let gold = testkit::gold(N, K);
        let pred = pred_with_errors(&gold, K, 4, 0);
        let base = run("cpu-x-2c", pred.clone(), 500.0);
        let mut new = run("cpu-x-2c", pred, 500.0);
        new.splits[0].doc_ids[0] = "another document".into();
        let c = cmp(&base, &new).unwrap();
        let sc = &c.models[0].splits[0];
        assert!(matches!(&sc.pairing, Pairing::Unpaired { reason } if reason.contains("different documents")));
        let ci = sc.accuracy.ci.unwrap();
        assert!(
            ci.lower < 0.0 && ci.upper > 0.0,
            "same predictions, independent resamples: {ci:?}"
        );
        assert!(!c.has_regression());
        assert!(render::render(&c).contains("unpaired: the runs scored different documents"));
    }

    #[test]
    fn different_suites_or_label_sets_are_refused_with_the_reason() {
        let gold = testkit::gold(N, K);
        let base = run("cpu-x-2c", gold.clone(), 500.0);
        let mut other = base.clone();
        other.suite.name = "suite-b".into();
        let e = cmp(&base, &other).unwrap_err().to_string();
        assert!(e.contains("different suites") && e.contains("\"suite-b\""), "{e}");
        let mut relabelled = base.clone();
        relabelled.dataset.labels[3] = "merged".into();
        let e = cmp(&base, &relabelled).unwrap_err().to_string();
        assert!(e.contains("label sets differ") && e.contains("class id 3"), "{e}");
    }

    #[test]
    fn a_model_that_stopped_working_is_a_regression() {
        let gold = testkit::gold(N, K);
        let base = run("cpu-x-2c", gold.clone(), 500.0);
        let mut new = base.clone();
        new.models[0].status = ModelStatus::Failed;
        new.models[0].error = Some("diverged".into());
        let c = cmp(&base, &new).unwrap();
        assert_eq!(c.regressions.len(), 1);
        assert!(c.regressions[0].kind == RegressionKind::Status && c.regressions[0].detail.contains("diverged"));
    }

    /// Two models, each predicting `gold` with a few errors, on split "val" (and "test" when asked).
    fn run_of(models: &[&'static str], with_test_split: bool) -> Results {
        let gold = testkit::gold(N, K);
        let models = models
            .iter()
            .enumerate()
            .map(|(i, &id)| model(id, pred_with_errors(&gold, K, 4 + i, 0)))
            .collect();
        let mut r = testkit::results("suite-a", "cpu-x-2c", K, testkit::ids(N), gold, models);
        if with_test_split {
            let mut test = r.splits[0].clone();
            test.split = "test".into();
            r.splits.push(test);
        }
        r
    }

    fn allowing_missing() -> CompareOptions {
        CompareOptions {
            allow_missing: true,
            ..CompareOptions::default()
        }
    }

    #[test]
    fn compare_with_no_models_in_common_is_an_error() {
        let (base, new) = (run_of(&["tfidf-lr"], false), run_of(&["mini"], false));
        for opts in [CompareOptions::default(), allowing_missing()] {
            let e = compare(&base, Path::new("base.json"), &new, Path::new("new.json"), &opts).unwrap_err();
            assert!(matches!(e, Error::BadInput(_)), "{e:?}");
            let e = e.to_string();
            assert!(
                e.contains("nothing to compare")
                    && e.contains("no model")
                    && e.contains("\"tfidf-lr\"")
                    && e.contains("\"mini\""),
                "{e}"
            );
        }
    }

    #[test]
    fn compare_with_no_splits_in_common_is_an_error() {
        let base = run_of(&["tfidf"], false);
        let mut new = base.clone();
        new.splits[0].split = "test".into();
        let e = cmp(&base, &new).unwrap_err();
        assert!(
            matches!(e, Error::BadInput(_)) && e.to_string().contains("no split"),
            "{e}"
        );
    }

    #[test]
    fn compare_where_no_shared_model_finished_in_the_base_is_an_error() {
        let mut base = run_of(&["tfidf"], false);
        base.models[0].status = ModelStatus::Failed;
        let new = run_of(&["tfidf"], false);
        let e = cmp(&base, &new).unwrap_err();
        assert!(
            matches!(e, Error::BadInput(_)) && e.to_string().contains("did not finish"),
            "{e}"
        );
    }

    #[test]
    fn a_model_missing_from_the_new_run_is_a_regression_unless_allowed() {
        let base = run_of(&["tfidf", "mini"], false);
        let new = run_of(&["tfidf"], false);
        let c = cmp(&base, &new).unwrap();
        assert_eq!(c.regressions.len(), 1, "{:?}", c.regressions);
        let r = &c.regressions[0];
        assert!(
            r.kind == RegressionKind::Missing && r.model == "mini" && r.split.is_none(),
            "{r:?}"
        );
        let md = render::render(&c);
        assert!(
            md.contains("1 regression(s)") && md.contains("`mini` (missing)"),
            "{md}"
        );

        let c = compare(&base, Path::new("b"), &new, Path::new("n"), &allowing_missing()).unwrap();
        assert!(!c.has_regression(), "{:?}", c.regressions);
        assert!(
            c.notes
                .iter()
                .any(|n| n.contains("\"mini\"") && n.contains("--allow-missing")),
            "{:?}",
            c.notes
        );
        assert!(render::render(&c).contains("allowed by --allow-missing"));
    }

    #[test]
    fn a_split_missing_from_the_new_run_is_a_regression_unless_allowed() {
        let base = run_of(&["tfidf", "mini"], true);
        let new = run_of(&["tfidf", "mini"], false);
        let c = cmp(&base, &new).unwrap();
        let missing: Vec<(&str, Option<&str>)> = c
            .regressions
            .iter()
            .map(|r| {
                assert_eq!(r.kind, RegressionKind::Missing, "{r:?}");
                (r.model.as_str(), r.split.as_deref())
            })
            .collect();
        assert_eq!(missing, [("tfidf", Some("test")), ("mini", Some("test"))]);
        assert!(render::render(&c).contains("`tfidf` (missing on test): split \"test\" is in the base run"));
        let c = compare(&base, Path::new("b"), &new, Path::new("n"), &allowing_missing()).unwrap();
        assert!(!c.has_regression(), "{:?}", c.regressions);
        // The other way round, a split only the new run has is a note.
        let c = cmp(&new, &base).unwrap();
        assert!(!c.has_regression() && c.notes.iter().any(|n| n.contains("split \"test\" is new")));
    }
}
