//! Per-tier paired bootstraps of the seed's protocol (issue 13, item 5), both replaying numpy's
//! streams draw for draw:
//!
//! - 7B, Δaccuracy (week 5): `rng = np.random.default_rng(42)`; tiers in report order (head →
//!   mid → tail) share the one stream; per tier, each resample is
//!   `rng.choice(tier_idx, len(tier_idx), replace=True)`, used for both models; report the point
//!   Δ, the mean Δ over resamples and its 2.5 / 97.5 percentiles (asterisk if they exclude 0).
//!   Replayed with [`NumpyGenerator`] (PCG64 + SeedSequence).
//! - 7C, Δmacro F1 (week 6): `np.random.RandomState(42)`, the same loop, macro F1 over the
//!   tier's fixed label set (the sorted tier classes present in the tier's gold, fixed before
//!   resampling: `f1_score(labels=..., average="macro", zero_division=0)`), report the median Δ
//!   and `np.quantile` 0.025 / 0.975. Replayed with [`NumpyRandomState`]: `RandomState.choice`
//!   with replacement is `tier_idx[randint(0, len, len)]`.
//!
//! `tier_idx` are the documents whose gold class is in the tier, ascending (`np.where`). Δ is
//! always b − a. A tier without documents is left out and draws nothing (numpy would raise).

use crate::error::{Error, Result};
use crate::intervals::{mean_numpy, percentile_interval, sorted, Interval};
use crate::metrics::{check_labels, Counts};
use crate::resample::{NumpyGenerator, NumpyRandomState};
use crate::tiers::TierScheme;
use crate::tiers::{tier_names, TierName};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TierBootstrapConfig {
    pub resamples: usize,
    pub confidence: f64,
    /// The stream's seed: 42 in both of the seed's labs.
    pub seed: u64,
}

impl Default for TierBootstrapConfig {
    fn default() -> Self {
        TierBootstrapConfig {
            resamples: 1000,
            confidence: 0.95,
            seed: 42,
        }
    }
}

/// 7B: one tier's Δaccuracy (b − a).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierDeltaAccuracy {
    pub tier: TierName,
    pub n_examples: usize,
    /// Δ on all of the tier's documents.
    pub point: f64,
    /// Mean Δ over the resamples (what the seed reports).
    pub bootstrap_mean: f64,
    pub percentile: Interval,
    /// The seed's asterisk: the interval excludes 0.
    pub excludes_zero: bool,
}

/// 7C: one tier's Δmacro F1 (b − a) over the tier's fixed label set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierDeltaMacroF1 {
    pub tier: TierName,
    pub n_examples: usize,
    /// Size of the fixed label set.
    pub n_labels: usize,
    pub point: f64,
    /// Median Δ over the resamples (what the seed reports).
    pub median: f64,
    /// `np.quantile` (1 - c)/2 and (1 + c)/2.
    pub quantiles: Interval,
    pub excludes_zero: bool,
}

/// 7B: per-tier paired bootstrap of Δaccuracy, replaying `default_rng(cfg.seed)`.
pub fn tier_delta_accuracy_bootstrap(
    gold: &[usize],
    pred_a: &[usize],
    pred_b: &[usize],
    assignment: &[TierName],
    scheme: TierScheme,
    cfg: &TierBootstrapConfig,
) -> Result<Vec<TierDeltaAccuracy>> {
    check(gold, pred_a, pred_b, assignment, cfg)?;
    let mut rng = NumpyGenerator::new(cfg.seed);
    let mut out = Vec::new();
    for (tier, idx) in tier_documents(gold, assignment, scheme)? {
        let n = idx.len();
        let accuracy = |pred: &[usize], docs: &mut dyn Iterator<Item = usize>| -> f64 {
            docs.filter(|&i| pred[i] == gold[i]).count() as f64 / n as f64
        };
        let point = accuracy(pred_b, &mut idx.iter().copied()) - accuracy(pred_a, &mut idx.iter().copied());
        let mut draws = vec![0u32; n];
        let mut deltas = Vec::with_capacity(cfg.resamples);
        for _ in 0..cfg.resamples {
            rng.integers_into(n as u32, &mut draws)?;
            let acc_b = accuracy(pred_b, &mut draws.iter().map(|&d| idx[d as usize]));
            let acc_a = accuracy(pred_a, &mut draws.iter().map(|&d| idx[d as usize]));
            deltas.push(acc_b - acc_a);
        }
        let percentile = percentile_interval(&sorted(&deltas), cfg.confidence);
        out.push(TierDeltaAccuracy {
            tier,
            n_examples: n,
            point,
            bootstrap_mean: mean_numpy(&deltas),
            percentile,
            excludes_zero: percentile.excludes(0.0),
        });
    }
    Ok(out)
}

/// 7C: per-tier paired bootstrap of Δmacro F1, replaying `RandomState(cfg.seed)`.
pub fn tier_delta_macro_f1_bootstrap(
    gold: &[usize],
    pred_a: &[usize],
    pred_b: &[usize],
    assignment: &[TierName],
    scheme: TierScheme,
    cfg: &TierBootstrapConfig,
) -> Result<Vec<TierDeltaMacroF1>> {
    check(gold, pred_a, pred_b, assignment, cfg)?;
    let k = assignment.len();
    let mut rs = NumpyRandomState::new(cfg.seed)?;
    let mut out = Vec::new();
    for (tier, idx) in tier_documents(gold, assignment, scheme)? {
        let n = idx.len();
        let mut present = vec![false; k];
        idx.iter().for_each(|&i| present[gold[i]] = true);
        let labels: Vec<usize> = (0..k).filter(|&c| present[c]).collect();
        let macro_f1 = |pred: &[usize], docs: &mut dyn Iterator<Item = usize>| -> f64 {
            let mut counts = Counts::new(k);
            docs.for_each(|i| counts.add(gold[i], pred[i]));
            counts.macro_f1_over(&labels)
        };
        let point = macro_f1(pred_b, &mut idx.iter().copied()) - macro_f1(pred_a, &mut idx.iter().copied());
        let mut draws = vec![0u32; n];
        let mut deltas = Vec::with_capacity(cfg.resamples);
        for _ in 0..cfg.resamples {
            rs.randint_into(n as u32, &mut draws)?;
            let f1_b = macro_f1(pred_b, &mut draws.iter().map(|&d| idx[d as usize]));
            let f1_a = macro_f1(pred_a, &mut draws.iter().map(|&d| idx[d as usize]));
            deltas.push(f1_b - f1_a);
        }
        let s = sorted(&deltas);
        let quantiles = percentile_interval(&s, cfg.confidence);
        out.push(TierDeltaMacroF1 {
            tier,
            n_examples: n,
            n_labels: labels.len(),
            point,
            median: median_numpy(&s),
            quantiles,
            excludes_zero: quantiles.excludes(0.0),
        });
    }
    Ok(out)
}

/// `np.median` of sorted values: the middle one, or the mean of the two middle ones.
fn median_numpy(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn check(
    gold: &[usize],
    pred_a: &[usize],
    pred_b: &[usize],
    assignment: &[TierName],
    cfg: &TierBootstrapConfig,
) -> Result<()> {
    let k = assignment.len();
    for (name, pred) in [("a", pred_a), ("b", pred_b)] {
        check_labels(gold, pred, k).map_err(|e| Error::bad_input(format!("per-tier bootstrap, model {name}: {e}")))?;
    }
    if cfg.resamples == 0 {
        return Err(Error::bad_input("per-tier bootstrap: `resamples` must be at least 1"));
    }
    if !(cfg.confidence > 0.0 && cfg.confidence < 1.0) {
        return Err(Error::bad_input(format!(
            "per-tier bootstrap: `confidence` must be in (0, 1), got {}",
            cfg.confidence
        )));
    }
    Ok(())
}

/// The non-empty tiers in report order with their documents (ascending).
fn tier_documents(gold: &[usize], assignment: &[TierName], scheme: TierScheme) -> Result<Vec<(TierName, Vec<usize>)>> {
    let mut out = Vec::new();
    for &tier in tier_names(scheme) {
        let idx: Vec<usize> = (0..gold.len()).filter(|&i| assignment[gold[i]] == tier).collect();
        if idx.is_empty() {
            continue;
        }
        if u32::try_from(idx.len()).is_err() {
            return Err(Error::bad_input(format!(
                "per-tier bootstrap: tier {} has too many documents",
                tier.as_str()
            )));
        }
        out.push((tier, idx));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_reference::{assert_close, f64s, reference, seed_stats_reference, usizes};

    struct LongTail {
        gold: Vec<usize>,
        a: Vec<usize>,
        b: Vec<usize>,
        assignment: Vec<TierName>,
    }

    fn long_tail() -> LongTail {
        let lt = &reference()["long_tail"];
        let assignment = lt["tiers"]["rank"]["assignment"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| match v.as_str().unwrap() {
                "head" => TierName::Head,
                "mid" => TierName::Mid,
                "tail" => TierName::Tail,
                other => panic!("unexpected tier {other}"),
            })
            .collect();
        LongTail {
            gold: usizes(&lt["gold"]),
            a: usizes(&lt["pred_a"]),
            b: usizes(&lt["pred_b"]),
            assignment,
        }
    }

    fn cfg() -> TierBootstrapConfig {
        TierBootstrapConfig {
            resamples: seed_stats_reference()["tier_bootstrap"]["resamples"].as_u64().unwrap() as usize,
            ..TierBootstrapConfig::default()
        }
    }

    #[test]
    fn delta_accuracy_replays_protocol_7b() {
        let d = long_tail();
        let got = tier_delta_accuracy_bootstrap(&d.gold, &d.a, &d.b, &d.assignment, TierScheme::Rank, &cfg()).unwrap();
        let want = seed_stats_reference()["tier_bootstrap"]["delta_accuracy_7b"]
            .as_array()
            .unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            let at = format!("7B {}", g.tier.as_str());
            assert_eq!(g.tier.as_str(), w["tier"].as_str().unwrap());
            assert_eq!(g.n_examples as u64, w["n"].as_u64().unwrap(), "{at}");
            assert_close(g.point, &w["point"], 1e-15, &format!("{at} point"));
            assert_close(g.bootstrap_mean, &w["mean"], 1e-15, &format!("{at} mean"));
            assert_close(g.percentile.lower, &w["lower"], 1e-15, &format!("{at} lower"));
            assert_close(g.percentile.upper, &w["upper"], 1e-15, &format!("{at} upper"));
            assert_eq!(g.excludes_zero, g.percentile.lower > 0.0 || g.percentile.upper < 0.0);
        }
    }

    #[test]
    fn delta_macro_f1_replays_protocol_7c() {
        let d = long_tail();
        let got = tier_delta_macro_f1_bootstrap(&d.gold, &d.a, &d.b, &d.assignment, TierScheme::Rank, &cfg()).unwrap();
        let want = seed_stats_reference()["tier_bootstrap"]["delta_macro_f1_7c"]
            .as_array()
            .unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            let at = format!("7C {}", g.tier.as_str());
            assert_eq!(g.n_examples as u64, w["n"].as_u64().unwrap(), "{at}");
            assert_eq!(g.n_labels as u64, w["n_labels"].as_u64().unwrap(), "{at}");
            assert_close(g.point, &w["point"], 1e-15, &format!("{at} point"));
            assert_close(g.median, &w["median"], 1e-15, &format!("{at} median"));
            assert_close(g.quantiles.lower, &w["lower"], 1e-15, &format!("{at} lower"));
            assert_close(g.quantiles.upper, &w["upper"], 1e-15, &format!("{at} upper"));
        }
        // The stream's first resamples of the head tier: five deltas, their median is the
        // third smallest of the script's first five.
        let mut first = f64s(&want[0]["first_deltas"]);
        first.sort_by(f64::total_cmp);
        let short = TierBootstrapConfig {
            resamples: first.len(),
            ..cfg()
        };
        let head =
            &tier_delta_macro_f1_bootstrap(&d.gold, &d.a, &d.b, &d.assignment, TierScheme::Rank, &short).unwrap()[0];
        assert!(
            (head.median - first[2]).abs() <= 1e-15,
            "{} vs {}",
            head.median,
            first[2]
        );
    }

    #[test]
    fn empty_tiers_are_left_out_and_bad_input_refused() {
        // Only head documents: mid and tail draw nothing.
        let assignment = vec![TierName::Head, TierName::Head, TierName::Tail];
        let gold = [0, 1, 0, 1];
        let got = tier_delta_accuracy_bootstrap(
            &gold,
            &gold,
            &[0, 0, 0, 1],
            &assignment,
            TierScheme::Rank,
            &TierBootstrapConfig::default(),
        )
        .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].tier, got[0].point), (TierName::Head, -0.25));
        assert!(tier_delta_accuracy_bootstrap(
            &gold,
            &gold,
            &[0, 3, 0, 1],
            &assignment,
            TierScheme::Rank,
            &TierBootstrapConfig::default()
        )
        .is_err());
        let zero = TierBootstrapConfig {
            resamples: 0,
            ..TierBootstrapConfig::default()
        };
        assert!(tier_delta_macro_f1_bootstrap(&gold, &gold, &gold, &assignment, TierScheme::Rank, &zero).is_err());
    }
}
