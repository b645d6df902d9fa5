//! Two-level bootstrap over training seeds and documents (issue 13, item 2): the interval of a
//! model's score, or of a pair's difference, with both sources of variance the document
//! bootstrap alone leaves out (protocol.md section 7's caveat: seed-to-seed swings).
//!
//! Resample b draws, for each model independently, its S_j seeds with replacement, and the n
//! document indices with replacement once, shared by every model. A model's value is the mean
//! over its drawn seeds of the metric on the drawn documents,
//!
//!   θ*_j = (1 / S_j) Σ_{k=1..S_j} M(pred_{j, s*_k}[I*], gold[I*]),
//!
//! a pair's value the difference θ*_b − θ*_a. The point estimate is the mean over seeds of the
//! metric on all documents. Intervals are percentile intervals only: BCa needs an acceleration
//! from a jackknife, and for two crossed levels (seeds within models, documents shared by all)
//! there is no standard leave-one-out to take it from (dropping a document and dropping a seed
//! change the statistic on different scales), so BCa is not offered.
//!
//! Streams: document indices are exactly those of [`paired_bootstrap`] with the same
//! [`BootstrapConfig`] (numpy's `RandomState(seed)` or ChaCha); seeds are drawn from a second
//! stream, numpy `RandomState((seed + 1) mod 2^32)`, `randint(0, S_j, S_j)` model after model
//! in each resample, or a ChaCha stream keyed apart from the documents'. So with one seed per
//! model the two-level bootstrap is the document bootstrap, resample for resample.
//!
//! [`paired_bootstrap`]: crate::bootstrap::paired_bootstrap

use crate::bootstrap::{check_inputs, resample_scores, BootstrapConfig, Packed};
use crate::error::{Error, Result};
use crate::intervals::{mean_numpy, percentile_interval, sorted, Interval};
use crate::metrics::Counts;
use crate::resample::ResampleRng;
use crate::resample::{chacha_purpose_stream, lemire_fill, NumpyRandomState};
use serde::{Deserialize, Serialize};

/// A statistic of several seeds with its two-level percentile interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedAwareEstimate {
    /// Mean over seeds of the statistic on all documents.
    pub point: f64,
    /// Mean of the statistic over the resamples.
    pub bootstrap_mean: f64,
    /// Percentiles (1 - c)/2 and (1 + c)/2 of the resamples (numpy's linear interpolation).
    pub percentile: Interval,
}

/// A two-level difference b - a.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedAwareDelta {
    #[serde(flatten)]
    pub delta: SeedAwareEstimate,
    /// Share of resamples with b > a (strictly).
    pub share_b_greater: f64,
    /// Two-sided bootstrap p-value, min(1, 2 min(share(delta <= 0), share(delta >= 0))).
    pub p_value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TwoLevelModel {
    /// Position of the model in the input.
    pub model: usize,
    pub n_seeds: usize,
    /// Accuracy of each seed on all documents, in input order.
    pub per_seed_accuracy: Vec<f64>,
    pub per_seed_macro_f1: Vec<f64>,
    /// Sample standard deviation across seeds (ddof = 1); `None` for one seed.
    pub accuracy_seed_sd: Option<f64>,
    pub macro_f1_seed_sd: Option<f64>,
    pub accuracy: SeedAwareEstimate,
    pub macro_f1: SeedAwareEstimate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TwoLevelPair {
    pub a: usize,
    pub b: usize,
    /// Seed-mean accuracy of b minus that of a.
    pub accuracy: SeedAwareDelta,
    pub macro_f1: SeedAwareDelta,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TwoLevelReport {
    pub resamples: usize,
    pub confidence: f64,
    pub seed: u64,
    pub rng: ResampleRng,
    pub n_documents: usize,
    pub n_classes: usize,
    pub models: Vec<TwoLevelModel>,
    /// Every ordered pair (a, b), a != b.
    pub pairs: Vec<TwoLevelPair>,
}

/// Two-level bootstrap of accuracy and macro F1 (sklearn's, over the classes present in each
/// resample) for models given as one prediction vector per training seed, all on `gold`.
pub fn two_level_bootstrap(
    gold: &[usize],
    models: &[Vec<&[usize]>],
    n_classes: usize,
    cfg: &BootstrapConfig,
) -> Result<TwoLevelReport> {
    if let Some(j) = models.iter().position(Vec::is_empty) {
        return Err(Error::bad_input(format!(
            "two-level bootstrap: model {j} has no seeds (expected one prediction set per training seed)"
        )));
    }
    let seeds_of: Vec<u32> = models
        .iter()
        .map(|runs| u32::try_from(runs.len()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::bad_input("two-level bootstrap: too many seeds"))?;
    // Every (model, seed) is one column of the document bootstrap's scoring.
    let columns: Vec<&[usize]> = models.iter().flatten().copied().collect();
    check_inputs(gold, &columns, n_classes, cfg).map_err(|e| Error::bad_input(format!("two-level {e}")))?;
    let offsets: Vec<usize> = models
        .iter()
        .scan(0, |start, runs| {
            let here = *start;
            *start += runs.len();
            Some(here)
        })
        .collect();
    let scores = resample_scores(&Packed::new(gold, &columns, n_classes), cfg)?;
    let width = 2 * columns.len();

    // θ*_j for every resample: the mean, in draw order, of the drawn seeds' scores.
    let m = models.len();
    let mut values = vec![[Vec::with_capacity(cfg.resamples), Vec::with_capacity(cfg.resamples)]; m];
    let mut draws = SeedDraws::new(cfg)?;
    let mut drawn = Vec::new();
    let mut per_stat = Vec::new();
    for (r, row) in scores.chunks(width).enumerate() {
        draws.start_resample(r as u64);
        for j in 0..m {
            drawn.resize(seeds_of[j] as usize, 0);
            draws.fill(seeds_of[j], &mut drawn)?;
            for (stat, out) in values[j].iter_mut().enumerate() {
                per_stat.clear();
                per_stat.extend(drawn.iter().map(|&s| row[2 * (offsets[j] + s as usize) + stat]));
                out.push(mean_numpy(&per_stat));
            }
        }
    }

    let mut per_seed = Vec::with_capacity(m);
    for runs in models {
        let counts: Vec<Counts> = runs
            .iter()
            .map(|p| Counts::from_labels(gold, p, n_classes))
            .collect::<Result<_>>()?;
        per_seed.push((
            counts.iter().map(Counts::accuracy).collect(),
            counts.iter().map(Counts::macro_f1).collect(),
        ));
    }
    Ok(report(per_seed, values, gold.len(), n_classes, cfg))
}

/// The report from each model's per-seed (accuracy, macro F1) on all documents and its
/// resampled values `values[model][stat]`: shared by both bootstraps.
fn report(
    per_seed: Vec<(Vec<f64>, Vec<f64>)>,
    values: Vec<[Vec<f64>; 2]>,
    n_documents: usize,
    n_classes: usize,
    cfg: &BootstrapConfig,
) -> TwoLevelReport {
    let mut models = Vec::with_capacity(per_seed.len());
    let mut points = Vec::with_capacity(per_seed.len());
    for (j, (acc, f1)) in per_seed.into_iter().enumerate() {
        let (point_acc, point_f1) = (mean_numpy(&acc), mean_numpy(&f1));
        points.push([point_acc, point_f1]);
        models.push(TwoLevelModel {
            model: j,
            n_seeds: acc.len(),
            accuracy_seed_sd: sample_sd(&acc),
            macro_f1_seed_sd: sample_sd(&f1),
            per_seed_accuracy: acc,
            per_seed_macro_f1: f1,
            accuracy: estimate(point_acc, &values[j][0], cfg.confidence),
            macro_f1: estimate(point_f1, &values[j][1], cfg.confidence),
        });
    }
    let pairs = ordered_pairs(&values, &points, cfg.confidence);
    TwoLevelReport {
        resamples: cfg.resamples,
        confidence: cfg.confidence,
        seed: cfg.seed,
        rng: cfg.rng,
        n_documents,
        n_classes,
        models,
        pairs,
    }
}

/// Seed-only bootstrap, for runs whose training seeds also re-drew the split: each seed's
/// scores come from its own documents, so there is no shared document draw and no pairing.
/// Resample b draws, for each model independently, its S_j seeds with replacement (the seed
/// stream of [`two_level_bootstrap`]); a model's value is the mean of the drawn seeds' scores,
/// a pair's value the difference of two such independent means. The variance between seeds
/// then holds both training and split (document) variation. `scores[j][s]` is (accuracy,
/// macro F1) of model j's seed s on that seed's own split.
pub fn seed_bootstrap(scores: &[Vec<(f64, f64)>], n_classes: usize, cfg: &BootstrapConfig) -> Result<TwoLevelReport> {
    if let Some(j) = scores.iter().position(Vec::is_empty) {
        return Err(Error::bad_input(format!(
            "seed bootstrap: model {j} has no seeds (expected one score per training seed)"
        )));
    }
    if cfg.resamples == 0 {
        return Err(Error::bad_input("seed bootstrap: resamples must be >= 1"));
    }
    let m = scores.len();
    let seeds_of: Vec<u32> = scores
        .iter()
        .map(|runs| u32::try_from(runs.len()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::bad_input("seed bootstrap: too many seeds"))?;
    let mut values = vec![[Vec::with_capacity(cfg.resamples), Vec::with_capacity(cfg.resamples)]; m];
    let mut draws = SeedDraws::new(cfg)?;
    let mut drawn = Vec::new();
    for r in 0..cfg.resamples {
        draws.start_resample(r as u64);
        for (j, runs) in scores.iter().enumerate() {
            drawn.resize(runs.len(), 0);
            draws.fill(seeds_of[j], &mut drawn)?;
            let acc: Vec<f64> = drawn.iter().map(|&s| runs[s as usize].0).collect();
            let f1: Vec<f64> = drawn.iter().map(|&s| runs[s as usize].1).collect();
            values[j][0].push(mean_numpy(&acc));
            values[j][1].push(mean_numpy(&f1));
        }
    }
    let per_seed = scores
        .iter()
        .map(|runs| (runs.iter().map(|s| s.0).collect(), runs.iter().map(|s| s.1).collect()))
        .collect();
    Ok(report(per_seed, values, 0, n_classes, cfg))
}

/// Every ordered pair (a, b), a != b, of resampled values `values[model][stat]`.
fn ordered_pairs(values: &[[Vec<f64>; 2]], points: &[[f64; 2]], confidence: f64) -> Vec<TwoLevelPair> {
    let m = values.len();
    let mut pairs = Vec::with_capacity(m * m.saturating_sub(1));
    for a in 0..m {
        for b in (0..m).filter(|&b| b != a) {
            let delta = |stat: usize| {
                let samples: Vec<f64> = values[b][stat]
                    .iter()
                    .zip(&values[a][stat])
                    .map(|(x, y)| x - y)
                    .collect();
                delta_estimate(points[b][stat] - points[a][stat], &samples, confidence)
            };
            pairs.push(TwoLevelPair {
                a,
                b,
                accuracy: delta(0),
                macro_f1: delta(1),
            });
        }
    }
    pairs
}

/// The seed-draw stream (see the module docs).
enum SeedDraws {
    // Boxed: MT19937's state is 2.5 KB, ChaCha's 0.3 KB.
    Numpy(Box<NumpyRandomState>),
    Chacha {
        seed: u64,
        rng: Box<rand_chacha::ChaCha8Rng>,
    },
}

const SEED_DRAWS_PURPOSE: &[u8; 24] = b"two-level seed draws\0\0\0\0";

impl SeedDraws {
    fn new(cfg: &BootstrapConfig) -> Result<SeedDraws> {
        Ok(match cfg.rng {
            ResampleRng::Numpy => {
                SeedDraws::Numpy(Box::new(NumpyRandomState::new(cfg.seed.wrapping_add(1) & 0xFFFF_FFFF)?))
            }
            ResampleRng::Chacha => SeedDraws::Chacha {
                seed: cfg.seed,
                rng: Box::new(chacha_purpose_stream(cfg.seed, SEED_DRAWS_PURPOSE, 0)),
            },
        })
    }

    fn start_resample(&mut self, resample: u64) {
        if let SeedDraws::Chacha { seed, rng } = self {
            **rng = chacha_purpose_stream(*seed, SEED_DRAWS_PURPOSE, resample);
        }
    }

    fn fill(&mut self, n_seeds: u32, out: &mut [u32]) -> Result<()> {
        match self {
            SeedDraws::Numpy(rs) => rs.randint_into(n_seeds, out),
            SeedDraws::Chacha { rng, .. } => {
                lemire_fill(rng.as_mut(), n_seeds, out);
                Ok(())
            }
        }
    }
}

fn estimate(point: f64, samples: &[f64], confidence: f64) -> SeedAwareEstimate {
    SeedAwareEstimate {
        point,
        bootstrap_mean: mean_numpy(samples),
        percentile: percentile_interval(&sorted(samples), confidence),
    }
}

fn delta_estimate(point: f64, samples: &[f64], confidence: f64) -> SeedAwareDelta {
    let b = samples.len() as f64;
    let share = |pred: fn(f64) -> bool| samples.iter().filter(|&&d| pred(d)).count() as f64 / b;
    SeedAwareDelta {
        delta: estimate(point, samples, confidence),
        share_b_greater: share(|d| d > 0.0),
        p_value: (2.0 * share(|d| d <= 0.0).min(share(|d| d >= 0.0))).min(1.0),
    }
}

/// Sample standard deviation (ddof = 1); `None` for fewer than two values.
pub fn sample_sd(values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let mean = mean_numpy(values);
    let squares: Vec<f64> = values.iter().map(|v| (v - mean) * (v - mean)).collect();
    Some((crate::metrics::numpy_pairwise_sum(&squares) / (values.len() - 1) as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::paired_bootstrap;
    use crate::test_reference::{assert_close, seed_stats_reference, usizes};
    use serde_json::Value;

    struct Data {
        gold: Vec<usize>,
        preds: Vec<Vec<Vec<usize>>>,
        k: usize,
    }

    fn data() -> (Data, &'static Value) {
        let t = &seed_stats_reference()["two_level"];
        let preds = t["preds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|runs| runs.as_array().unwrap().iter().map(usizes).collect())
            .collect();
        (
            Data {
                gold: usizes(&t["gold"]),
                preds,
                k: t["n_classes"].as_u64().unwrap() as usize,
            },
            t,
        )
    }

    fn run(d: &Data, cfg: &BootstrapConfig) -> TwoLevelReport {
        let models: Vec<Vec<&[usize]>> = d
            .preds
            .iter()
            .map(|runs| runs.iter().map(Vec::as_slice).collect())
            .collect();
        two_level_bootstrap(&d.gold, &models, d.k, cfg).unwrap()
    }

    fn cfg(t: &Value, rng: ResampleRng) -> BootstrapConfig {
        BootstrapConfig {
            resamples: t["resamples"].as_u64().unwrap() as usize,
            confidence: t["confidence"].as_f64().unwrap(),
            seed: t["seed"].as_u64().unwrap(),
            rng,
        }
    }

    /// Our numbers in the script's `flat_numbers` order.
    fn flat(report: &TwoLevelReport) -> Vec<f64> {
        let e = |x: &SeedAwareEstimate| [x.bootstrap_mean, x.percentile.lower, x.percentile.upper];
        let mut out = Vec::new();
        for m in &report.models {
            out.extend(e(&m.accuracy));
            out.extend(e(&m.macro_f1));
        }
        for p in &report.pairs {
            out.extend(e(&p.accuracy.delta));
            out.extend(e(&p.macro_f1.delta));
        }
        out
    }

    fn reference_flat(exact: &Value) -> Vec<f64> {
        let e = |x: &Value| [&x["bootstrap_mean"], &x["lower"], &x["upper"]].map(|v| v.as_f64().unwrap());
        let mut out = Vec::new();
        for m in exact["models"].as_array().unwrap() {
            out.extend(e(&m["accuracy"]));
            out.extend(e(&m["macro_f1"]));
        }
        for p in exact["pairs"].as_array().unwrap() {
            out.extend(e(&p["accuracy"]));
            out.extend(e(&p["macro_f1"]));
        }
        out
    }

    #[test]
    fn two_level_replays_the_numpy_recipe() {
        let (d, t) = data();
        let report = run(&d, &cfg(t, ResampleRng::Numpy));
        let exact = &t["numpy"];
        for (got, want) in report.models.iter().zip(exact["models"].as_array().unwrap()) {
            for (stat, name) in [(&got.accuracy, "accuracy"), (&got.macro_f1, "macro_f1")] {
                let at = format!("model {} {name}", got.model);
                assert_close(stat.point, &want[name]["point"], 1e-15, &format!("{at} point"));
            }
        }
        for (got, want) in report.pairs.iter().zip(exact["pairs"].as_array().unwrap()) {
            assert_eq!(
                (got.a as u64, got.b as u64),
                (want["a"].as_u64().unwrap(), want["b"].as_u64().unwrap())
            );
            for (stat, name) in [(&got.accuracy, "accuracy"), (&got.macro_f1, "macro_f1")] {
                let at = format!("pair {}-{} {name}", got.b, got.a);
                assert_close(stat.delta.point, &want[name]["point"], 1e-15, &format!("{at} point"));
                assert_close(
                    stat.share_b_greater,
                    &want[name]["share_b_greater"],
                    0.0,
                    &format!("{at} share"),
                );
            }
        }
        // Same draws, same summation order: equal to rounding.
        for (i, (got, want)) in flat(&report).iter().zip(reference_flat(exact)).enumerate() {
            assert!((got - want).abs() <= 1e-14, "number {i}: got {got}, numpy {want}");
        }
    }

    #[test]
    fn two_level_chacha_agrees_with_numpy_within_monte_carlo_error() {
        // Independent streams: each number may differ from numpy's by its Monte-Carlo spread
        // (sd over 20 numpy streams in the script); 5 sd of one estimate is ~3.5 sd of the
        // difference of two.
        let (d, t) = data();
        let report = run(&d, &cfg(t, ResampleRng::Chacha));
        let sd: Vec<f64> = crate::test_reference::f64s(&t["spread_sd"]);
        for (i, ((got, want), sd)) in flat(&report)
            .iter()
            .zip(reference_flat(&t["numpy"]))
            .zip(sd)
            .enumerate()
        {
            assert!(
                (got - want).abs() <= 5.0 * sd,
                "number {i}: got {got}, numpy {want}, sd {sd}"
            );
        }
    }

    #[test]
    fn one_seed_per_model_is_the_document_bootstrap() {
        let (d, _) = data();
        for rng in [ResampleRng::Numpy, ResampleRng::Chacha] {
            let cfg = BootstrapConfig {
                resamples: 200,
                confidence: 0.9,
                seed: 7,
                rng,
            };
            let single: Vec<&[usize]> = d.preds.iter().map(|runs| runs[0].as_slice()).collect();
            let doc = paired_bootstrap(&d.gold, &single, d.k, &cfg).unwrap();
            let models: Vec<Vec<&[usize]>> = single.iter().map(|&p| vec![p]).collect();
            let two = two_level_bootstrap(&d.gold, &models, d.k, &cfg).unwrap();
            for (x, y) in two.models.iter().zip(&doc.models) {
                assert_eq!(x.accuracy.point, y.accuracy.point);
                assert_eq!(x.accuracy.percentile, y.accuracy.percentile, "{rng:?}");
                assert_eq!(x.macro_f1.percentile, y.macro_f1.percentile, "{rng:?}");
                assert_eq!(x.macro_f1.bootstrap_mean, y.macro_f1.bootstrap_mean, "{rng:?}");
                assert_eq!(x.accuracy_seed_sd, None);
            }
            for (x, y) in two.pairs.iter().zip(&doc.pairs) {
                assert_eq!((x.a, x.b), (y.a, y.b));
                assert_eq!(x.accuracy.delta.percentile, y.accuracy.delta.percentile, "{rng:?}");
                assert_eq!(x.macro_f1.delta.percentile, y.macro_f1.delta.percentile, "{rng:?}");
                assert_eq!(x.macro_f1.share_b_greater, y.macro_f1.share_b_greater, "{rng:?}");
            }
        }
    }

    #[test]
    fn identical_seeds_are_one_seed_and_seed_spread_widens_the_interval() {
        let (d, _) = data();
        let c = BootstrapConfig {
            resamples: 300,
            confidence: 0.95,
            seed: 11,
            rng: ResampleRng::Chacha,
        };
        let p = d.preds[0][0].as_slice();
        let one = two_level_bootstrap(&d.gold, &[vec![p]], d.k, &c).unwrap();
        let three = two_level_bootstrap(&d.gold, &[vec![p, p, p]], d.k, &c).unwrap();
        assert_eq!(
            three,
            two_level_bootstrap(&d.gold, &[vec![p, p, p]], d.k, &c).unwrap(),
            "deterministic"
        );
        let (x, y) = (&one.models[0].accuracy.percentile, &three.models[0].accuracy.percentile);
        assert!(
            (x.lower - y.lower).abs() < 1e-15 && (x.upper - y.upper).abs() < 1e-15,
            "{x:?} vs {y:?}"
        );
        assert_eq!(three.models[0].accuracy_seed_sd, Some(0.0));
        // A perfect seed and a ~60% seed: a quarter of the resamples draw only one of them,
        // so the interval reaches from near one seed's score to near the other's.
        let spread = two_level_bootstrap(&d.gold, &[vec![p, &d.gold]], d.k, &c).unwrap();
        let i = &spread.models[0].accuracy.percentile;
        let seed_acc = spread.models[0].per_seed_accuracy[0];
        assert!(
            i.lower < seed_acc + 0.03 && i.upper == 1.0,
            "{i:?}, seed accuracy {seed_acc}"
        );
        assert!(x.upper - x.lower < 0.5 * (i.upper - i.lower), "{x:?} vs {i:?}");
    }

    #[test]
    fn seed_bootstrap_resamples_seeds_with_the_two_level_seed_stream() {
        // Independent recomputation: RandomState(seed + 1).randint(0, S_j, S_j) model after
        // model per resample, value = mean of the drawn seeds' scores.
        let scores = vec![
            vec![(0.50, 0.20), (0.55, 0.22), (0.47, 0.19)],
            vec![(0.60, 0.30), (0.58, 0.25)],
        ];
        let cfg = BootstrapConfig {
            resamples: 200,
            confidence: 0.9,
            seed: 49,
            rng: ResampleRng::Numpy,
        };
        let report = seed_bootstrap(&scores, 5, &cfg).unwrap();
        let mut rs = NumpyRandomState::new(50).unwrap();
        let mut want: Vec<Vec<f64>> = vec![Vec::new(); 2];
        for _ in 0..cfg.resamples {
            for (j, runs) in scores.iter().enumerate() {
                let mut idx = vec![0u32; runs.len()];
                rs.randint_into(runs.len() as u32, &mut idx).unwrap();
                let drawn: Vec<f64> = idx.iter().map(|&i| runs[i as usize].0).collect();
                want[j].push(mean_numpy(&drawn));
            }
        }
        assert_eq!(
            report.models[0].accuracy.percentile,
            percentile_interval(&sorted(&want[0]), 0.9)
        );
        assert_eq!(report.models[1].accuracy.bootstrap_mean, mean_numpy(&want[1]));
        let deltas: Vec<f64> = want[1].iter().zip(&want[0]).map(|(b, a)| b - a).collect();
        let pair = report.pairs.iter().find(|p| p.a == 0 && p.b == 1).unwrap();
        assert_eq!(
            pair.accuracy.delta.percentile,
            percentile_interval(&sorted(&deltas), 0.9)
        );
        assert!((pair.accuracy.delta.point - (0.59 - (0.50 + 0.55 + 0.47) / 3.0)).abs() < 1e-12);
        assert_eq!(report.models[0].per_seed_macro_f1, vec![0.20, 0.22, 0.19]);
        assert!(seed_bootstrap(&[vec![], vec![(0.5, 0.5)]], 2, &cfg).is_err());
    }

    #[test]
    fn a_model_without_seeds_is_refused() {
        let gold = [0usize, 1];
        let err = two_level_bootstrap(&gold, &[vec![&gold[..]], vec![]], 2, &BootstrapConfig::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("model 1 has no seeds"), "{err}");
    }
}
