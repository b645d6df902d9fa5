//! Minimum detectable effect of a paired accuracy comparison (issue 13, item 4): the smallest
//! true accuracy difference that a two-sided paired test at level α detects with the given
//! power, on this split's n documents and the pair's observed discordance.
//!
//! Miller 2024 ("Adding Error Bars to Evals: A Statistical Approach to Language Model
//! Evaluations", section on power analysis) for paired differences, one score per question:
//!
//!   MDE = (z_{1-α/2} + z_{power}) · √(Var(d) / n),
//!
//! with d_i = correct_b,i − correct_a,i ∈ {−1, 0, +1} and Var(d) its sample variance (ddof = 1,
//! as Miller's standard errors): with b documents only a gets right and c only b gets right,
//! Var(d) = ((b + c) − (c − b)² / n) / (n − 1). Only discordant documents move it, so two models
//! that disagree on few documents can settle small gaps on a small split, and vice versa.
//! Defaults: α = 0.05 two-sided, power 0.80 (z sum 2.8016).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

pub const DEFAULT_ALPHA: f64 = 0.05;
pub const DEFAULT_POWER: f64 = 0.80;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinimumDetectableEffect {
    pub n: usize,
    /// Documents model a got right and model b got wrong.
    pub a_right_b_wrong: usize,
    /// Documents model a got wrong and model b got right.
    pub a_wrong_b_right: usize,
    /// Two-sided level.
    pub alpha: f64,
    pub power: f64,
    /// Accuracy of b minus accuracy of a, (c − b) / n.
    pub observed_delta: f64,
    /// Sample standard deviation of the per-document difference d.
    pub sd_diff: f64,
    /// The minimum detectable accuracy difference; `None` without discordant documents (then
    /// Var(d) = 0 and the normal approximation says nothing).
    pub mde: Option<f64>,
    /// |observed_delta| < mde: this split is too small (or the models too alike) to settle a
    /// gap of the observed size.
    pub observed_below_mde: bool,
}

/// MDE of b vs a from per-document correctness on the same documents.
pub fn minimum_detectable_effect(
    gold: &[usize],
    pred_a: &[usize],
    pred_b: &[usize],
    alpha: f64,
    power: f64,
) -> Result<MinimumDetectableEffect> {
    let (b, c) = super::mcnemar::discordant_counts("minimum detectable effect", gold, pred_a, pred_b)?;
    mde_from_discordant(gold.len(), b, c, alpha, power)
}

/// MDE from n and the discordant counts b (a right, b wrong) and c (a wrong, b right).
pub fn mde_from_discordant(
    n: usize,
    a_right_b_wrong: usize,
    a_wrong_b_right: usize,
    alpha: f64,
    power: f64,
) -> Result<MinimumDetectableEffect> {
    let (b, c) = (a_right_b_wrong, a_wrong_b_right);
    if n < 2 || b + c > n {
        return Err(Error::bad_input(format!(
            "minimum detectable effect: {n} documents with {b} + {c} discordant: need at least two documents and no more discordant than documents"
        )));
    }
    if !(alpha > 0.0 && alpha < 1.0 && power > 0.0 && power < 1.0) {
        return Err(Error::bad_input(format!(
            "minimum detectable effect: alpha ({alpha}) and power ({power}) must be in (0, 1)"
        )));
    }
    let nf = n as f64;
    let observed_delta = (c as f64 - b as f64) / nf;
    let squares = (b + c) as f64 - (c as f64 - b as f64).powi(2) / nf;
    let variance = (squares / (nf - 1.0)).max(0.0);
    let sd_diff = variance.sqrt();
    let normal = Normal::standard();
    let z = normal.inverse_cdf(1.0 - alpha / 2.0) + normal.inverse_cdf(power);
    let mde = (b + c > 0).then(|| z * (variance / nf).sqrt());
    Ok(MinimumDetectableEffect {
        n,
        a_right_b_wrong: b,
        a_wrong_b_right: c,
        alpha,
        power,
        observed_delta,
        sd_diff,
        mde,
        observed_below_mde: mde.is_some_and(|m| observed_delta.abs() < m),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_reference::{assert_close, seed_stats_reference};

    #[test]
    fn mde_matches_scipy() {
        for case in seed_stats_reference()["mde"].as_array().unwrap() {
            let get = |k: &str| case[k].as_u64().unwrap() as usize;
            let (n, b, c) = (get("n"), get("a_right_b_wrong"), get("a_wrong_b_right"));
            let got = mde_from_discordant(
                n,
                b,
                c,
                case["alpha"].as_f64().unwrap(),
                case["power"].as_f64().unwrap(),
            )
            .unwrap();
            let at = format!("n = {n}, b = {b}, c = {c}");
            assert_close(
                got.observed_delta,
                &case["observed_delta"],
                1e-15,
                &format!("{at}: delta"),
            );
            assert_close(got.sd_diff, &case["sd_diff"], 1e-13, &format!("{at}: sd"));
            assert_close(got.mde.unwrap(), &case["mde"], 1e-13, &format!("{at}: mde"));
        }
    }

    #[test]
    fn counts_discordance_and_flags_gaps_below_the_mde() {
        // 8 documents: a right/b wrong on one, a wrong/b right on two.
        let gold = [0, 1, 2, 0, 1, 2, 0, 1];
        let a = [0, 1, 2, 0, 1, 0, 1, 1];
        let b = [0, 1, 1, 0, 1, 2, 0, 1];
        let got = minimum_detectable_effect(&gold, &a, &b, DEFAULT_ALPHA, DEFAULT_POWER).unwrap();
        assert_eq!((got.a_right_b_wrong, got.a_wrong_b_right), (1, 2));
        assert_eq!(got.observed_delta, 1.0 / 8.0);
        assert!(got.observed_below_mde, "{got:?}");
        let same = minimum_detectable_effect(&gold, &a, &a, DEFAULT_ALPHA, DEFAULT_POWER).unwrap();
        assert_eq!((same.mde, same.observed_below_mde), (None, false));
        assert!(mde_from_discordant(1, 0, 0, 0.05, 0.8).is_err());
        assert!(minimum_detectable_effect(&gold, &a, &b[..3], 0.05, 0.8).is_err());
    }
}
