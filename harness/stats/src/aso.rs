//! Almost Stochastic Order (del Barrio et al. 2018; Dror et al. 2019, "Deep Dominance") on the
//! per-seed scores of two models (issue 13, item 3), with deep-significance's `aso()` (Ulmer et
//! al. 2022, deepsig 1.2.8, `deepsig/aso.py`) as the reference semantics, followed step by step:
//!
//! - F⁻¹, G⁻¹: empirical quantile functions of A's and B's scores, F⁻¹(p) = x₍⌈n p⌉₎ (sorted,
//!   1-based, clipped to 1..n).
//! - Violation ratio ε_W2(F, G) = ∫_{V} (G⁻¹ − F⁻¹)² dt / ∫₀¹ (G⁻¹ − F⁻¹)² dt, V = {t : F⁻¹(t) <
//!   G⁻¹(t)} (where A is worse), on deepsig's grid t = dt, 2 dt, ... < 1 (`np.arange(dt, 1, dt)`,
//!   dt = 0.005) with rectangle sums; like deepsig, the violation sum skips the first grid point
//!   and a zero denominator gives 0.5.
//! - σ̂ = std over B bootstrap iterations of √(nm/(n+m)) (ε*_b − ε), where iteration b resamples n
//!   scores from F⁻¹ and m from G⁻¹ (uniform draws through the quantile functions).
//! - ε_min = clip(ε − σ̂ / √(nm/(n+m)) · Φ⁻¹(1 − c), 0, 1) with confidence c = 0.95, Bonferroni-
//!   corrected over k comparisons as c + (1 − c)/k.
//!
//! Reading (Ulmer et al.'s recommendation): ε_min < 0.2 means A almost stochastically dominates B;
//! ε_min = 0 is full stochastic order. ε_min is not symmetric: ε_min(B, A) is reported too.
//!
//! Streams: with [`ResampleRng::Numpy`], iteration b (1-based) draws from numpy's
//! `RandomState(seed + b)`, `uniform(0, 1, n)` for A then for B, exactly as deepsig does with
//! `seed=`: our ε_min equals deepsig's to rounding. With ChaCha, iteration b draws the resampled
//! positions from its own stream; then ε_min differs from deepsig's by its Monte-Carlo spread.
//!
//! Written here, not bound from Python: the harness has no Python at run time.

use crate::error::{Error, Result};
use crate::intervals::mean_numpy;
use crate::metrics::numpy_pairwise_sum;
use crate::resample::ResampleRng;
use crate::resample::{chacha_purpose_stream, lemire_fill, NumpyRandomState};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

/// ε_min below this: A almost stochastically dominates B (Ulmer et al. 2022's recommendation).
pub const ASO_DOMINANCE_THRESHOLD: f64 = 0.2;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AsoConfig {
    /// Confidence before the Bonferroni correction (deepsig's `confidence_level`).
    pub confidence: f64,
    pub bootstrap_iterations: usize,
    /// Grid step of the integrals.
    pub dt: f64,
    pub seed: u64,
    pub rng: ResampleRng,
}

impl Default for AsoConfig {
    /// deepsig's defaults (0.95, 1,000 iterations, dt = 0.005), numpy streams from seed 1234.
    fn default() -> Self {
        AsoConfig {
            confidence: 0.95,
            bootstrap_iterations: 1000,
            dt: 0.005,
            seed: 1234,
            rng: ResampleRng::Numpy,
        }
    }
}

/// One directed ASO comparison: does A dominate B?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aso {
    /// Positions of the models in the input ([`aso`] calls them 0 and 1).
    pub a: usize,
    pub b: usize,
    pub n_seeds_a: usize,
    pub n_seeds_b: usize,
    /// Upper bound on the violation ratio at the corrected confidence.
    pub epsilon_min: f64,
    /// ε_W2 of the observed scores.
    pub violation_ratio: f64,
    /// Bootstrap standard deviation of √(nm/(n+m)) ε*.
    pub sigma_hat: f64,
    /// Comparisons the confidence was corrected for.
    pub num_comparisons: usize,
    /// c + (1 - c) / k (= c for one comparison).
    pub corrected_confidence: f64,
    /// `epsilon_min < ASO_DOMINANCE_THRESHOLD`.
    pub a_dominates_b: bool,
}

/// ε_min for "A is better than B" from per-seed scores (higher = better), corrected for
/// `num_comparisons` comparisons. Refuses fewer than two scores per model.
pub fn aso(scores_a: &[f64], scores_b: &[f64], num_comparisons: usize, cfg: &AsoConfig) -> Result<Aso> {
    check(&[scores_a, scores_b], num_comparisons, cfg)?;
    let confidence = corrected_confidence(cfg.confidence, num_comparisons);
    let fit = Fit::new(scores_a, scores_b, cfg)?;
    Ok(fit.result(0, 1, fit.violation_ratio, num_comparisons, confidence))
}

/// ASO for every ordered pair of models, Bonferroni-corrected over the m(m-1)/2 unordered
/// pairs, as deepsig's `multi_aso`: one bootstrap per unordered pair {i, j} (i < j), and
/// ε(j, i) = 1 - ε(i, j) with the same σ̂. Pairs come as (i, j), (j, i) for i < j.
///
/// Unlike `multi_aso`, two models are one comparison with no correction: `multi_aso` adds
/// (1 - c)/1 to c there, which makes the confidence 1 and every ε_min 1; `aso()` skips the
/// correction for k = 1, and so do we.
pub fn aso_pairs(scores: &[&[f64]], cfg: &AsoConfig) -> Result<Vec<Aso>> {
    let m = scores.len();
    if m < 2 {
        return Err(Error::bad_input(format!(
            "ASO: {m} model(s) given, need at least two to compare"
        )));
    }
    let comparisons = m * (m - 1) / 2;
    check(scores, comparisons, cfg)?;
    let confidence = corrected_confidence(cfg.confidence, comparisons);
    let mut out = Vec::with_capacity(2 * comparisons);
    for i in 0..m {
        for j in i + 1..m {
            let fit = Fit::new(scores[i], scores[j], cfg)?;
            out.push(fit.result(i, j, fit.violation_ratio, comparisons, confidence));
            out.push(fit.result(j, i, 1.0 - fit.violation_ratio, comparisons, confidence));
        }
    }
    Ok(out)
}

fn check(scores: &[&[f64]], num_comparisons: usize, cfg: &AsoConfig) -> Result<()> {
    for (j, s) in scores.iter().enumerate() {
        if s.len() < 2 {
            return Err(Error::bad_input(format!(
                "ASO: model {j} has {} score(s), one per training seed; ASO compares score \
                 distributions over seeds and needs at least two seeds per model (three or more \
                 is advisable): run it with several seeds, e.g. `seeds = [42, 43, 44]`",
                s.len()
            )));
        }
        if let Some(i) = s.iter().position(|x| !x.is_finite()) {
            return Err(Error::bad_input(format!(
                "ASO: model {j}, score [{i}] = {} is not a finite number",
                s[i]
            )));
        }
    }
    if num_comparisons == 0 {
        return Err(Error::bad_input("ASO: the number of comparisons must be at least 1"));
    }
    if cfg.bootstrap_iterations == 0 {
        return Err(Error::bad_input("ASO: `bootstrap_iterations` must be at least 1"));
    }
    if !(cfg.dt > 0.0 && cfg.dt < 1.0) {
        return Err(Error::bad_input(format!("ASO: `dt` must be in (0, 1), got {}", cfg.dt)));
    }
    if !(cfg.confidence > 0.0 && cfg.confidence < 1.0) {
        return Err(Error::bad_input(format!(
            "ASO: `confidence` must be in (0, 1), got {}",
            cfg.confidence
        )));
    }
    Ok(())
}

fn corrected_confidence(confidence: f64, comparisons: usize) -> f64 {
    if comparisons > 1 {
        confidence + (1.0 - confidence) / comparisons as f64
    } else {
        confidence
    }
}

/// The observed violation ratio and the bootstrap spread of one (A, B).
struct Fit {
    n_a: usize,
    n_b: usize,
    violation_ratio: f64,
    /// The bootstrap ratios, kept to compute σ̂ around either direction's ratio.
    samples: Vec<f64>,
    scale: f64,
}

impl Fit {
    fn new(scores_a: &[f64], scores_b: &[f64], cfg: &AsoConfig) -> Result<Fit> {
        let grid = grid(cfg.dt);
        let (sorted_a, sorted_b) = (sorted(scores_a), sorted(scores_b));
        let observed = violation_ratio(&sorted_a, &sorted_b, &grid, cfg.dt);
        let (n_a, n_b) = (scores_a.len(), scores_b.len());
        let mut samples = Vec::with_capacity(cfg.bootstrap_iterations);
        let (mut draw_a, mut draw_b) = (vec![0.0; n_a], vec![0.0; n_b]);
        for iteration in 1..=cfg.bootstrap_iterations as u64 {
            match cfg.rng {
                ResampleRng::Numpy => {
                    let seed = cfg
                        .seed
                        .checked_add(iteration)
                        .filter(|s| *s <= u64::from(u32::MAX))
                        .ok_or_else(|| {
                            Error::bad_input(format!(
                                "ASO: numpy streams use RandomState(seed + iteration), which must stay below 2^32; \
                             seed {} with {} iterations does not",
                                cfg.seed, cfg.bootstrap_iterations
                            ))
                        })?;
                    let mut rs = NumpyRandomState::new(seed)?;
                    for (out, sorted) in [(&mut draw_a, &sorted_a), (&mut draw_b, &sorted_b)] {
                        for slot in out.iter_mut() {
                            *slot = quantile(sorted, rs.random_sample());
                        }
                    }
                }
                ResampleRng::Chacha => {
                    let mut rng = chacha_purpose_stream(cfg.seed, ASO_PURPOSE, iteration);
                    for (out, sorted) in [(&mut draw_a, &sorted_a), (&mut draw_b, &sorted_b)] {
                        let mut idx = vec![0u32; out.len()];
                        lemire_fill(&mut rng, out.len() as u32, &mut idx);
                        for (slot, i) in out.iter_mut().zip(idx) {
                            *slot = sorted[i as usize];
                        }
                    }
                }
            }
            samples.push(violation_ratio(&sorted(&draw_a), &sorted(&draw_b), &grid, cfg.dt));
        }
        // Python's n * m / (n + m) on ints is a true division.
        let scale = ((n_a * n_b) as f64 / (n_a + n_b) as f64).sqrt();
        Ok(Fit {
            n_a,
            n_b,
            violation_ratio: observed,
            samples,
            scale,
        })
    }

    fn result(&self, a: usize, b: usize, ratio: f64, comparisons: usize, confidence: f64) -> Aso {
        // deepsig computes σ̂ around the A-vs-B ratio for both directions (the deviations
        // only change sign), so it is the same number either way.
        let scaled: Vec<f64> = self
            .samples
            .iter()
            .map(|s| self.scale * (s - self.violation_ratio))
            .collect();
        let sigma_hat = numpy_std(&scaled);
        let z = Normal::standard().inverse_cdf(1.0 - confidence);
        let epsilon_min = (ratio - (1.0 / self.scale) * sigma_hat * z).clamp(0.0, 1.0);
        let (n_seeds_a, n_seeds_b) = if a < b {
            (self.n_a, self.n_b)
        } else {
            (self.n_b, self.n_a)
        };
        Aso {
            a,
            b,
            n_seeds_a,
            n_seeds_b,
            epsilon_min,
            violation_ratio: ratio,
            sigma_hat,
            num_comparisons: comparisons,
            corrected_confidence: confidence,
            a_dominates_b: epsilon_min < ASO_DOMINANCE_THRESHOLD,
        }
    }
}

const ASO_PURPOSE: &[u8; 24] = b"aso quantile draws\0\0\0\0\0\0";

/// `np.arange(dt, 1, dt)`: length ⌈(1 - dt)/dt⌉, values start + i·δ with δ = (start + dt) - start
/// (numpy's `DOUBLE_fill`).
fn grid(dt: f64) -> Vec<f64> {
    let len = ((1.0 - dt) / dt).ceil() as usize;
    let delta = (dt + dt) - dt;
    (0..len)
        .map(|i| match i {
            0 => dt,
            1 => dt + dt,
            _ => dt + i as f64 * delta,
        })
        .collect()
}

/// deepsig's empirical quantile: sorted[clip(⌈n p⌉ - 1, 0, n - 1)].
fn quantile(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let index = (n as f64 * p).ceil() as i64 - 1;
    sorted[index.clamp(0, n as i64 - 1) as usize]
}

/// deepsig's `compute_violation_ratio` on sorted scores.
fn violation_ratio(sorted_a: &[f64], sorted_b: &[f64], grid: &[f64], dt: f64) -> f64 {
    let mut squared = Vec::with_capacity(grid.len());
    let mut violated = Vec::with_capacity(grid.len());
    for &t in grid {
        let (f, g) = (quantile(sorted_a, t), quantile(sorted_b, t));
        let diff = g - f;
        squared.push(diff * diff * dt);
        violated.push(if f >= g { 0.0 } else { diff * diff * dt });
    }
    let distance = numpy_pairwise_sum(&squared);
    if distance == 0.0 {
        return 0.5;
    }
    // deepsig sums diff[1:]: the first grid point never counts as a violation.
    numpy_pairwise_sum(&violated[1..]) / distance
}

/// `np.std` (ddof = 0).
fn numpy_std(values: &[f64]) -> f64 {
    let mean = mean_numpy(values);
    let squares: Vec<f64> = values.iter().map(|v| (v - mean) * (v - mean)).collect();
    (numpy_pairwise_sum(&squares) / values.len() as f64).sqrt()
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut s = values.to_vec();
    s.sort_unstable_by(f64::total_cmp);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_reference::{assert_close, f64s, seed_stats_reference};

    fn scores(name: &str) -> Vec<f64> {
        f64s(&seed_stats_reference()["aso"]["scores"][name])
    }

    #[test]
    fn grid_is_numpy_arange() {
        let g = grid(0.005);
        assert_eq!(g.len(), 199);
        assert_eq!((g[0], g[1]), (0.005, 0.01));
        assert!((g[198] - 0.995).abs() < 1e-15);
    }

    #[test]
    fn aso_replays_deepsig_with_its_seed() {
        for case in seed_stats_reference()["aso"]["cases"].as_array().unwrap() {
            let (a, b) = (case["a"].as_str().unwrap(), case["b"].as_str().unwrap());
            let k = case["num_comparisons"].as_u64().unwrap() as usize;
            let cfg = AsoConfig {
                seed: case["seed"].as_u64().unwrap(),
                ..AsoConfig::default()
            };
            let got = aso(&scores(a), &scores(b), k, &cfg).unwrap();
            let at = format!("aso({a}, {b}), {k} comparisons");
            assert_close(
                got.violation_ratio,
                &case["violation_ratio"],
                1e-14,
                &format!("{at}: violation ratio"),
            );
            assert_close(got.epsilon_min, &case["eps_min"], 1e-12, &format!("{at}: epsilon_min"));
        }
    }

    #[test]
    fn aso_pairs_replay_deepsig_multi_aso() {
        let r = &seed_stats_reference()["aso"];
        let names: Vec<&str> = r["multi_aso_order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let all: Vec<Vec<f64>> = names.iter().map(|n| scores(n)).collect();
        let views: Vec<&[f64]> = all.iter().map(Vec::as_slice).collect();
        let pairs = aso_pairs(&views, &AsoConfig::default()).unwrap();
        assert_eq!(pairs.len(), 6);
        for p in &pairs {
            assert_eq!(p.num_comparisons, 3);
            assert_close(
                p.epsilon_min,
                &r["multi_aso"][p.a][p.b],
                1e-12,
                &format!("multi_aso[{}][{}]", p.a, p.b),
            );
        }
    }

    #[test]
    fn aso_chacha_is_within_deepsigs_spread() {
        // deepsig's unseeded runs (10 per case in the script) give its mean and spread; our
        // ChaCha stream is one more independent draw: within 4 sd of deepsig's mean, plus
        // 0.01 for the uncertainty of that mean and sd from 10 runs.
        for case in seed_stats_reference()["aso"]["cases"].as_array().unwrap() {
            let (a, b) = (case["a"].as_str().unwrap(), case["b"].as_str().unwrap());
            let k = case["num_comparisons"].as_u64().unwrap() as usize;
            let cfg = AsoConfig {
                rng: ResampleRng::Chacha,
                seed: 7,
                ..AsoConfig::default()
            };
            let got = aso(&scores(a), &scores(b), k, &cfg).unwrap().epsilon_min;
            let (mean, sd) = (
                case["unseeded_mean"].as_f64().unwrap(),
                case["unseeded_sd"].as_f64().unwrap(),
            );
            assert!(
                (got - mean).abs() <= 4.0 * sd + 0.01,
                "aso({a}, {b}) k={k}: {got} vs deepsig {mean} ± {sd}"
            );
        }
    }

    #[test]
    fn a_single_seed_is_refused_with_the_reason() {
        let err = aso(&[0.57], &[0.56, 0.55], 1, &AsoConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("model 0 has 1 score") && err.contains("at least two seeds"),
            "{err}"
        );
        let err = aso_pairs(&[&[0.5, 0.6], &[0.4]], &AsoConfig::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("model 1 has 1 score"), "{err}");
        assert!(aso(&[0.5, f64::NAN], &[0.5, 0.6], 1, &AsoConfig::default()).is_err());
    }

    #[test]
    fn clear_dominance_reads_as_dominance() {
        let better = [0.70, 0.71, 0.72, 0.715, 0.705];
        let worse = [0.60, 0.61, 0.62, 0.605, 0.615];
        for rng in [ResampleRng::Numpy, ResampleRng::Chacha] {
            let cfg = AsoConfig {
                rng,
                ..AsoConfig::default()
            };
            let ab = aso(&better, &worse, 1, &cfg).unwrap();
            assert_eq!((ab.epsilon_min, ab.a_dominates_b), (0.0, true), "{rng:?}");
            let ba = aso(&worse, &better, 1, &cfg).unwrap();
            assert!(ba.epsilon_min > 0.9 && !ba.a_dominates_b, "{rng:?}: {ba:?}");
        }
    }
}
