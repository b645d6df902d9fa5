//! McNemar's test on the per-document correctness of two models scored on the same documents.
//!
//! Only discordant documents matter: b = a right and b wrong, c = a wrong and b right. With
//! b + c <= 25 the exact two-sided binomial test (n = b + c, p = 1/2) is used, otherwise the
//! chi-squared test with continuity correction, (|b - c| - 1)² / (b + c) on 1 degree of freedom.
//! Both match statsmodels' `mcnemar(table, exact=..., correction=True)`, including its statistic
//! (min(b, c) for the exact test).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use statrs::distribution::{Binomial, ChiSquared, ContinuousCDF, DiscreteCDF};

/// Largest number of discordant documents tested exactly (the usual rule of thumb).
pub const EXACT_MAX_DISCORDANT: usize = 25;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum McNemarMethod {
    /// Two-sided exact binomial test.
    ExactBinomial,
    /// Chi-squared with continuity correction, 1 df.
    ChiSquaredCorrected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McNemar {
    /// Documents model a got right and model b got wrong.
    pub a_right_b_wrong: usize,
    /// Documents model a got wrong and model b got right.
    pub a_wrong_b_right: usize,
    pub method: McNemarMethod,
    /// min(b, c) for the exact test, the corrected chi-squared value otherwise.
    pub statistic: f64,
    pub p_value: f64,
}

/// The discordant pairs of two models on the same documents: (a right and b wrong, a wrong
/// and b right). `what` names the statistic in the length-mismatch error.
pub fn discordant_counts(what: &str, gold: &[usize], pred_a: &[usize], pred_b: &[usize]) -> Result<(usize, usize)> {
    if gold.len() != pred_a.len() || gold.len() != pred_b.len() {
        return Err(Error::bad_input(format!(
            "{what}: gold has {} labels, model a {} and model b {}: expected one prediction per document",
            gold.len(),
            pred_a.len(),
            pred_b.len()
        )));
    }
    let (mut b, mut c) = (0, 0);
    for ((g, pa), pb) in gold.iter().zip(pred_a).zip(pred_b) {
        match (pa == g, pb == g) {
            (true, false) => b += 1,
            (false, true) => c += 1,
            _ => {}
        }
    }
    Ok((b, c))
}

/// McNemar's test of models a and b against the same gold labels.
pub fn mcnemar(gold: &[usize], pred_a: &[usize], pred_b: &[usize]) -> Result<McNemar> {
    let (b, c) = discordant_counts("McNemar", gold, pred_a, pred_b)?;
    mcnemar_from_discordant(b, c)
}

/// McNemar's test from the discordant counts b (a right, b wrong) and c (a wrong, b right).
pub fn mcnemar_from_discordant(b: usize, c: usize) -> Result<McNemar> {
    let n = b + c;
    let (method, statistic, p_value) = if n <= EXACT_MAX_DISCORDANT {
        let binomial =
            Binomial::new(0.5, n as u64).map_err(|e| Error::Distribution(format!("McNemar binomial: {e}")))?;
        let k = b.min(c);
        (
            McNemarMethod::ExactBinomial,
            k as f64,
            (2.0 * binomial.cdf(k as u64)).min(1.0),
        )
    } else {
        let diff = b.abs_diff(c) as f64 - 1.0;
        let statistic = diff * diff / n as f64;
        let chi2 = ChiSquared::new(1.0).map_err(|e| Error::Distribution(format!("McNemar chi-squared: {e}")))?;
        (McNemarMethod::ChiSquaredCorrected, statistic, chi2.sf(statistic))
    };
    Ok(McNemar {
        a_right_b_wrong: b,
        a_wrong_b_right: c,
        method,
        statistic,
        p_value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_reference::{assert_close, reference, usizes};

    #[test]
    fn matches_statsmodels() {
        let r = reference();
        for case in r["mcnemar"].as_array().unwrap() {
            let (b, c) = (
                case["b"].as_u64().unwrap() as usize,
                case["c"].as_u64().unwrap() as usize,
            );
            let got = mcnemar_from_discordant(b, c).unwrap();
            let what = format!("b = {b}, c = {c}");
            let exact = case["exact"].as_bool().unwrap();
            assert_eq!(got.method == McNemarMethod::ExactBinomial, exact, "{what}");
            assert_close(got.statistic, &case["statistic"], 1e-12, &format!("{what}: statistic"));
            assert_close(got.p_value, &case["p_value"], 1e-12, &format!("{what}: p-value"));
        }
    }

    #[test]
    fn counts_discordant_documents_of_the_long_tail_models() {
        let r = reference();
        let lt = &r["long_tail"];
        let got = mcnemar(&usizes(&lt["gold"]), &usizes(&lt["pred_a"]), &usizes(&lt["pred_b"])).unwrap();
        // The script appends the long-tail models' own (b, c) as the last case.
        let last = r["mcnemar"].as_array().unwrap().last().unwrap();
        assert_eq!(got.a_right_b_wrong as u64, last["b"].as_u64().unwrap());
        assert_eq!(got.a_wrong_b_right as u64, last["c"].as_u64().unwrap());
        assert_close(got.p_value, &last["p_value"], 1e-12, "long-tail p-value");
    }

    #[test]
    fn length_mismatch_is_an_error() {
        let err = mcnemar(&[0, 1], &[0, 1], &[0]).unwrap_err().to_string();
        assert!(err.contains("model b 1"), "{err}");
    }
}
