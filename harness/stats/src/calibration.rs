//! Calibration of a classifier's confidence, as the seed study measures it (protocol.md
//! section 10): expected and maximum calibration error over 15 equal-width bins in both of the
//! seed's bin conventions, negative log-likelihood, the Brier score, and temperature scaling
//! fitted on one half of the split and scored on the other. ECE intervals come from the same
//! document resamples as every other metric (`eval::resample::for_each_resample`).
//!
//! Pure functions over per-document confidences or per-class log-probabilities; nothing here
//! knows models or files. Reference numbers: fixtures/reference/make_calibration_reference.py.
//!
//! Definitions (N documents; confidence c_i = the largest probability of document i, correct_i
//! = its argmax is its gold class):
//! - ECE = Σ_b (n_b / N) |acc_b − conf_b| over the non-empty bins b of 15 equal-width bins with
//!   the edges of `np.linspace(0, 1, 16)`; MCE = max_b |acc_b − conf_b|.
//! - NLL = mean −ln max(p_i,gold, 1e-12); Brier = mean Σ_k (p_ik − [k = gold_i])² (the original
//!   multi-class score, range [0, 2]; scikit-learn's `brier_score_loss` with `scale_by_half=False`).
//! - Temperature scaling: logits z = the log-probabilities (softmax(z) = p, and a constant per
//!   row changes nothing), one scalar T minimising mean −ln softmax(z / T)_gold on the
//!   calibration half, then every document's probabilities become softmax(z / T). T > 0 keeps
//!   the argmax, so accuracy and F1 are unchanged.

use crate::bootstrap::{estimate, BootstrapConfig, Estimate};
use crate::error::{Error, Result};
use crate::intervals::mean_numpy;
use crate::resample::{for_each_resample, NumpyRandomState};
use serde::{Deserialize, Serialize};

/// Equal-width confidence bins, as the seed.
pub const N_BINS: usize = 15;
/// Probabilities are clipped here before the logarithm of the NLL (the seed's 1e-12).
pub const PROB_FLOOR: f64 = 1e-12;
/// Stored log-probabilities are floored here: just below ln of the smallest positive f32
/// (ln 1.4e-45 = −103.28), so every non-zero f32 probability keeps its logarithm and a zero
/// becomes e^−104 instead of −∞ (which would make the temperature fit's gradient NaN).
pub const LOG_PROB_FLOOR: f64 = -104.0;
/// The seed's calibration split: `RandomState(SEED + 999)`, SEED = 42.
pub const SPLIT_SEED_OFFSET: u64 = 999;
/// T is searched in this range; a loss still falling at a bound returns the bound (`at_bound`).
pub const TEMPERATURE_RANGE: (f64, f64) = (0.01, 100.0);

/// Which documents fall in which bin; the seed uses both and they differ only at bin edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BinConvention {
    /// Week 4: `np.clip(np.digitize(conf, edges) - 1, 0, 14)`: bins [lo, hi), 1.0 in the last.
    Digitize,
    /// Weeks 5-6: `(conf > lo) & (conf <= hi)` masks: bins (lo, hi]; a confidence of exactly 0
    /// is in no bin (it still counts in N).
    UpperClosed,
}

impl BinConvention {
    pub const BOTH: [BinConvention; 2] = [BinConvention::Digitize, BinConvention::UpperClosed];

    /// How summaries name it.
    pub fn label(self) -> &'static str {
        match self {
            BinConvention::Digitize => "week 4 (np.digitize)",
            BinConvention::UpperClosed => "weeks 5-6 (masks)",
        }
    }
}

/// The bin edges of `np.linspace(0, 1, 16)`: numpy computes i * (1 / 15) and sets the last
/// edge to 1 exactly; the same doubles, so a confidence on an edge falls where numpy puts it.
pub fn bin_edges() -> [f64; N_BINS + 1] {
    let step = 1.0 / N_BINS as f64;
    let mut edges = [0.0; N_BINS + 1];
    for (i, e) in edges.iter_mut().enumerate() {
        *e = i as f64 * step;
    }
    edges[N_BINS] = 1.0;
    edges
}

/// The bin of a confidence in [0, 1], `None` when the convention puts it in none.
pub fn bin_of(confidence: f64, convention: BinConvention, edges: &[f64; N_BINS + 1]) -> Option<usize> {
    match convention {
        // np.digitize (right=False) returns the number of edges <= x.
        BinConvention::Digitize => {
            let at_or_below = edges.partition_point(|&e| e <= confidence);
            Some(at_or_below.saturating_sub(1).min(N_BINS - 1))
        }
        BinConvention::UpperClosed => {
            let below = edges.partition_point(|&e| e < confidence);
            (1..=N_BINS)
                .contains(&below)
                .then(|| below - 1)
                .filter(|_| confidence <= 1.0)
        }
    }
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    /// Share of the bin's documents whose prediction is right; `None` for an empty bin.
    pub accuracy: Option<f64>,
    pub mean_confidence: Option<f64>,
}

/// ECE, MCE and the reliability diagram under one bin convention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinnedCalibration {
    pub convention: BinConvention,
    pub ece: f64,
    pub mce: f64,
    pub bins: Vec<ReliabilityBin>,
    /// Documents in no bin (confidence exactly 0 under `upper-closed`).
    #[serde(default)]
    pub unbinned: usize,
    /// The ECE with its bootstrap intervals (`None` where not bootstrapped, or where a resample
    /// held none of the documents scored).
    #[serde(default)]
    pub ece_ci: Option<Estimate>,
}

/// The calibration numbers of one set of documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationScores {
    pub n_documents: usize,
    /// Week 4's bins.
    pub digitize: BinnedCalibration,
    /// Weeks 5-6's bins.
    pub upper_closed: BinnedCalibration,
    /// `None` when only the predicted class's probability is known.
    #[serde(default)]
    pub nll: Option<f64>,
    #[serde(default)]
    pub brier: Option<f64>,
}

impl CalibrationScores {
    pub fn binned(&self, convention: BinConvention) -> &BinnedCalibration {
        match convention {
            BinConvention::Digitize => &self.digitize,
            BinConvention::UpperClosed => &self.upper_closed,
        }
    }

    fn binned_mut(&mut self, convention: BinConvention) -> &mut BinnedCalibration {
        match convention {
            BinConvention::Digitize => &mut self.digitize,
            BinConvention::UpperClosed => &mut self.upper_closed,
        }
    }
}

/// Temperature scaling fitted on the calibration half and scored on the evaluation half.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemperatureScaling {
    pub temperature: f64,
    /// The loss was still falling at an end of [`TEMPERATURE_RANGE`]: T is that end.
    pub at_bound: bool,
    /// `RandomState(split_seed).permutation(n)`: the first n / 2 (rounded down) calibrate.
    pub split_seed: u64,
    pub n_calibration: usize,
    pub n_evaluation: usize,
    /// Mean cross-entropy on the calibration half at T = 1 and at the fitted T.
    pub calibration_nll_before: f64,
    pub calibration_nll_after: f64,
    /// The evaluation half at T = 1 and at the fitted T (ECE intervals: the split's resamples
    /// restricted to evaluation-half documents, T held fixed).
    pub before: CalibrationScores,
    pub after: CalibrationScores,
}

/// Where the confidences came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScoreSource {
    /// Every class's probability: all statistics.
    ClassProbabilities,
    /// The predicted class's probability alone (a `prob` column): ECE, MCE and the diagram.
    PredictedClassProbability,
}

/// Calibration of one model on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationReport {
    pub source: ScoreSource,
    pub n_bins: usize,
    /// Every document of the split.
    pub full: CalibrationScores,
    /// `None` without class probabilities or with fewer than two documents.
    #[serde(default)]
    pub temperature: Option<TemperatureScaling>,
}

/// Per-class log-probabilities, one row per document, each row normalised (log-softmax) when
/// built, so rows rounded on storage (f16) are proper distributions again.
#[derive(Debug, Clone, PartialEq)]
pub struct LogProbs {
    n_classes: usize,
    values: Vec<f64>,
}

impl LogProbs {
    /// `values` row-major, `n_classes` per row, every value finite (floor zeros at
    /// [`LOG_PROB_FLOOR`] first); an error names the first bad row and class.
    pub fn new(n_classes: usize, mut values: Vec<f64>) -> Result<LogProbs> {
        if n_classes == 0 || !values.len().is_multiple_of(n_classes) {
            return Err(Error::bad_input(format!(
                "log-probabilities: {} values do not make rows of {n_classes} classes",
                values.len()
            )));
        }
        if let Some(at) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::bad_input(format!(
                "log-probabilities: row {}, class {}: {} is not a finite number",
                at / n_classes,
                at % n_classes,
                values[at]
            )));
        }
        for row in values.chunks_mut(n_classes) {
            let lse = log_sum_exp(row);
            row.iter_mut().for_each(|v| *v -= lse);
        }
        Ok(LogProbs { n_classes, values })
    }

    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    pub fn n_documents(&self) -> usize {
        self.values.len() / self.n_classes
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.n_classes..][..self.n_classes]
    }

    /// softmax(z / T) as log-probabilities.
    pub fn scaled(&self, temperature: f64) -> LogProbs {
        let values = self.values.iter().map(|v| v / temperature).collect();
        LogProbs::new(self.n_classes, values).expect("finite values divided by a finite T > 0")
    }

    /// The rows of `docs`, in that order.
    pub fn select(&self, docs: &[usize]) -> LogProbs {
        let mut values = Vec::with_capacity(docs.len() * self.n_classes);
        docs.iter().for_each(|&i| values.extend_from_slice(self.row(i)));
        LogProbs {
            n_classes: self.n_classes,
            values,
        }
    }
}

fn log_sum_exp(row: &[f64]) -> f64 {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

/// Checks confidences are in [0, 1] and align with `correct`.
fn check_confidences(confidence: &[f64], correct: &[bool]) -> Result<()> {
    if confidence.len() != correct.len() {
        return Err(Error::bad_input(format!(
            "calibration: {} confidences for {} documents",
            confidence.len(),
            correct.len()
        )));
    }
    if let Some(i) = confidence.iter().position(|c| !(0.0..=1.0).contains(c)) {
        return Err(Error::bad_input(format!(
            "calibration: document {i}: confidence {} is not a probability in [0, 1]",
            confidence[i]
        )));
    }
    Ok(())
}

/// ECE, MCE and the diagram of one convention, with numpy's arithmetic (pairwise means per bin,
/// bins added in order) so that the numbers equal the seed's loops to the last bits.
pub fn binned(confidence: &[f64], correct: &[bool], convention: BinConvention) -> Result<BinnedCalibration> {
    check_confidences(confidence, correct)?;
    let edges = bin_edges();
    let mut members: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); N_BINS];
    let mut unbinned = 0;
    for (&c, &ok) in confidence.iter().zip(correct) {
        match bin_of(c, convention, &edges) {
            Some(b) => {
                members[b].0.push(c);
                members[b].1.push(f64::from(u8::from(ok)));
            }
            None => unbinned += 1,
        }
    }
    let n = confidence.len() as f64;
    let (mut ece, mut mce) = (0.0, 0.0f64);
    let mut bins = Vec::with_capacity(N_BINS);
    for (b, (conf, hits)) in members.iter().enumerate() {
        let count = conf.len();
        let (accuracy, mean_confidence) = if count == 0 {
            (None, None)
        } else {
            let (acc, mean_conf) = (mean_numpy(hits), mean_numpy(conf));
            let gap = (acc - mean_conf).abs();
            ece += count as f64 / n * gap;
            mce = mce.max(gap);
            (Some(acc), Some(mean_conf))
        };
        bins.push(ReliabilityBin {
            lower: edges[b],
            upper: edges[b + 1],
            count,
            accuracy,
            mean_confidence,
        });
    }
    Ok(BinnedCalibration {
        convention,
        ece,
        mce,
        bins,
        unbinned,
        ece_ci: None,
    })
}

fn check_rows(log_probs: &LogProbs, gold: &[usize], pred: &[usize]) -> Result<()> {
    let (n, k) = (log_probs.n_documents(), log_probs.n_classes());
    if gold.len() != n || pred.len() != n {
        return Err(Error::bad_input(format!(
            "calibration: {n} probability rows for {} gold labels and {} predictions",
            gold.len(),
            pred.len()
        )));
    }
    if let Some(i) = (0..n).find(|&i| gold[i] >= k || pred[i] >= k) {
        return Err(Error::bad_input(format!(
            "calibration: document {i}: class {} outside the {k} probability columns",
            gold[i].max(pred[i])
        )));
    }
    Ok(())
}

/// Mean −ln max(p_gold, 1e-12).
pub fn nll(log_probs: &LogProbs, gold: &[usize]) -> f64 {
    let terms: Vec<f64> = gold
        .iter()
        .enumerate()
        .map(|(i, &g)| -log_probs.row(i)[g].exp().clamp(PROB_FLOOR, 1.0).ln())
        .collect();
    mean_numpy(&terms)
}

/// Mean Σ_k (p_k − [k = gold])².
pub fn brier(log_probs: &LogProbs, gold: &[usize]) -> f64 {
    let terms: Vec<f64> = gold
        .iter()
        .enumerate()
        .map(|(i, &g)| {
            log_probs
                .row(i)
                .iter()
                .enumerate()
                .map(|(k, v)| {
                    let d = v.exp() - f64::from(u8::from(k == g));
                    d * d
                })
                .sum::<f64>()
        })
        .collect();
    mean_numpy(&terms)
}

/// The probability each row gives its predicted class (its confidence: the predicted class is
/// an argmax).
pub fn confidences(log_probs: &LogProbs, pred: &[usize]) -> Vec<f64> {
    pred.iter()
        .enumerate()
        .map(|(i, &p)| log_probs.row(i)[p].exp())
        .collect()
}

fn correctness(gold: &[usize], pred: &[usize]) -> Vec<bool> {
    gold.iter().zip(pred).map(|(g, p)| g == p).collect()
}

/// ECE and MCE in both conventions from confidences alone (no NLL or Brier).
pub fn scores_from_confidences(confidence: &[f64], correct: &[bool]) -> Result<CalibrationScores> {
    Ok(CalibrationScores {
        n_documents: confidence.len(),
        digitize: binned(confidence, correct, BinConvention::Digitize)?,
        upper_closed: binned(confidence, correct, BinConvention::UpperClosed)?,
        nll: None,
        brier: None,
    })
}

/// Every statistic from per-class log-probabilities; `pred` must be each row's argmax.
pub fn scores(log_probs: &LogProbs, gold: &[usize], pred: &[usize]) -> Result<CalibrationScores> {
    check_rows(log_probs, gold, pred)?;
    let mut s = scores_from_confidences(&confidences(log_probs, pred), &correctness(gold, pred))?;
    s.nll = Some(nll(log_probs, gold));
    s.brier = Some(brier(log_probs, gold));
    Ok(s)
}

/// The fitted temperature.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TemperatureFit {
    pub temperature: f64,
    pub at_bound: bool,
    /// Mean cross-entropy at T = 1 and at `temperature`.
    pub loss_at_1: f64,
    pub loss: f64,
}

/// Mean cross-entropy of softmax(β z) and its first two derivatives in β.
///
/// With p = softmax(β z): d/dβ = mean Σ_k p_k (z_k − z_gold) (written against z_gold so that a
/// document whose p_gold rounds to 1 contributes its tiny negative share, not a cancellation),
/// d²/dβ² = mean Var_p(z) ≥ 0: the loss is convex in β = 1 / T, so its minimum is unique.
fn loss_and_derivatives(log_probs: &LogProbs, gold: &[usize], beta: f64) -> (f64, f64, f64) {
    let (mut loss, mut d1, mut d2) = (Vec::with_capacity(gold.len()), 0.0, 0.0);
    let mut p = vec![0.0; log_probs.n_classes()];
    for (i, &g) in gold.iter().enumerate() {
        let z = log_probs.row(i);
        let max = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(beta * v));
        let mut total = 0.0;
        for (pk, &zk) in p.iter_mut().zip(z) {
            *pk = (beta * zk - max).exp();
            total += *pk;
        }
        loss.push(max + total.ln() - beta * z[g]);
        let (mut mean, mut second) = (0.0, 0.0);
        for (&pk, &zk) in p.iter().zip(z) {
            let (w, d) = (pk / total, zk - z[g]);
            mean += w * d;
            second += w * d * d;
        }
        d1 += mean;
        d2 += second - mean * mean;
    }
    let n = gold.len() as f64;
    (mean_numpy(&loss), d1 / n, d2 / n)
}

/// One T minimising the mean cross-entropy of softmax(z / T) on `log_probs`.
///
/// The seed fits T with torch's L-BFGS (week 4: T from 1.5, lr 0.1, 200 iterations; weeks 5-6:
/// log T from 0), which stops near the optimum within its gradient tolerance. The loss is
/// convex in β = 1 / T with a unique minimum, so we find that minimum itself: the root of the
/// derivative by Newton's method safeguarded by bisection inside [1/100, 1/0.01], to machine
/// precision (the reference checks it against SciPy's `brentq` on the same derivative and
/// `minimize_scalar(method="bounded")` on the loss). Hand-written because argmin's Brent stops
/// at √ε of the loss's flat bottom (T to ~1e-8) and its Newton solver wants matrix types for a
/// one-dimensional problem; the safeguarded iteration is a dozen lines.
pub fn fit_temperature(log_probs: &LogProbs, gold: &[usize]) -> Result<TemperatureFit> {
    if gold.is_empty() || gold.len() != log_probs.n_documents() {
        return Err(Error::bad_input(format!(
            "temperature scaling: {} calibration documents for {} probability rows",
            gold.len(),
            log_probs.n_documents()
        )));
    }
    let (t_min, t_max) = TEMPERATURE_RANGE;
    let (mut lo, mut hi) = (1.0 / t_max, 1.0 / t_min);
    let eval = |beta: f64| loss_and_derivatives(log_probs, gold, beta);
    let loss_at_1 = eval(1.0).0;
    let (_, g_lo, _) = eval(lo);
    let (_, g_hi, _) = eval(hi);
    let (beta, at_bound) = if g_lo >= 0.0 {
        (lo, true)
    } else if g_hi <= 0.0 {
        (hi, true)
    } else {
        let mut beta = 1.0;
        for _ in 0..200 {
            let (_, g, h) = eval(beta);
            if g == 0.0 {
                break;
            }
            if g > 0.0 {
                hi = beta;
            } else {
                lo = beta;
            }
            let newton = beta - g / h;
            let next = if h > 0.0 && newton > lo && newton < hi {
                newton
            } else {
                0.5 * (lo + hi)
            };
            let done = (next - beta).abs() <= 4.0 * f64::EPSILON * beta || hi - lo <= 4.0 * f64::EPSILON * beta;
            beta = next;
            if done {
                break;
            }
        }
        (beta, false)
    };
    Ok(TemperatureFit {
        temperature: 1.0 / beta,
        at_bound,
        loss_at_1,
        loss: eval(beta).0,
    })
}

/// What the calibration of one model takes.
pub enum ModelScores<'a> {
    /// The predicted class's probability per document.
    Confidence(&'a [f64]),
    /// Every class's log-probability per document; gold and pred index its columns.
    LogProbs(&'a LogProbs),
}

/// One model's documents, all models in the same document order (they share the resamples).
pub struct CalibrationInput<'a> {
    pub gold: &'a [usize],
    pub pred: &'a [usize],
    pub scores: ModelScores<'a>,
}

/// The per-document pieces the ECE bootstrap accumulates.
struct BootstrapTerms {
    /// Per convention: each document's bin (`u8::MAX` for none) and correct − confidence.
    full: [(Vec<u8>, Vec<f64>); 2],
    /// Per convention, at T = 1 and at the fitted T, over the evaluation half.
    half: Option<HalfTerms>,
}

struct HalfTerms {
    in_eval: Vec<bool>,
    before: [(Vec<u8>, Vec<f64>); 2],
    after: [(Vec<u8>, Vec<f64>); 2],
}

fn terms(confidence: &[f64], correct: &[bool], convention: BinConvention) -> (Vec<u8>, Vec<f64>) {
    let edges = bin_edges();
    confidence
        .iter()
        .zip(correct)
        .map(|(&c, &ok)| {
            let bin = bin_of(c, convention, &edges).map_or(u8::MAX, |b| b as u8);
            (bin, f64::from(u8::from(ok)) - c)
        })
        .unzip()
}

fn both(confidence: &[f64], correct: &[bool]) -> [(Vec<u8>, Vec<f64>); 2] {
    BinConvention::BOTH.map(|c| terms(confidence, correct, c))
}

/// Calibration of every model on one split, with ECE intervals from `cfg`'s resamples (one
/// pass over them for all models) and temperature scaling on the `split_seed` halves.
pub fn calibrate(
    inputs: &[CalibrationInput],
    cfg: &BootstrapConfig,
    split_seed: u64,
) -> Result<Vec<CalibrationReport>> {
    let Some(n) = inputs.first().map(|m| m.gold.len()) else {
        return Ok(Vec::new());
    };
    if inputs.iter().any(|m| m.gold.len() != n || m.pred.len() != n) {
        return Err(Error::bad_input(
            "calibration: every model must score the same documents",
        ));
    }
    // Calibration half = the first n / 2 of the permutation, as the seed's `perm[:n // 2]`.
    let permutation = NumpyRandomState::new(split_seed)
        .map_err(|_| {
            Error::bad_input(format!(
                "temperature scaling: split seed {split_seed}: numpy's RandomState needs a seed in 0..=4294967295"
            ))
        })?
        .permutation(n)?;
    let (cal, eval) = permutation.split_at(n / 2);
    let mut reports = Vec::with_capacity(inputs.len());
    let mut all_terms = Vec::with_capacity(inputs.len());
    for m in inputs {
        let correct = correctness(m.gold, m.pred);
        let (report, terms) = match &m.scores {
            ModelScores::Confidence(conf) => {
                let report = CalibrationReport {
                    source: ScoreSource::PredictedClassProbability,
                    n_bins: N_BINS,
                    full: scores_from_confidences(conf, &correct)?,
                    temperature: None,
                };
                let terms = BootstrapTerms {
                    full: both(conf, &correct),
                    half: None,
                };
                (report, terms)
            }
            ModelScores::LogProbs(lp) => {
                let full = scores(lp, m.gold, m.pred)?;
                let conf = confidences(lp, m.pred);
                let mut terms = BootstrapTerms {
                    full: both(&conf, &correct),
                    half: None,
                };
                let temperature = if cal.is_empty() || eval.is_empty() {
                    None
                } else {
                    let pick = |v: &[usize], docs: &[usize]| docs.iter().map(|&i| v[i]).collect::<Vec<_>>();
                    let fit = fit_temperature(&lp.select(cal), &pick(m.gold, cal))?;
                    let scaled = lp.scaled(fit.temperature);
                    let (eval_gold, eval_pred) = (pick(m.gold, eval), pick(m.pred, eval));
                    let mut in_eval = vec![false; n];
                    eval.iter().for_each(|&i| in_eval[i] = true);
                    terms.half = Some(HalfTerms {
                        in_eval,
                        before: both(&conf, &correct),
                        after: both(&confidences(&scaled, m.pred), &correct),
                    });
                    Some(TemperatureScaling {
                        temperature: fit.temperature,
                        at_bound: fit.at_bound,
                        split_seed,
                        n_calibration: cal.len(),
                        n_evaluation: eval.len(),
                        calibration_nll_before: fit.loss_at_1,
                        calibration_nll_after: fit.loss,
                        before: scores(&lp.select(eval), &eval_gold, &eval_pred)?,
                        after: scores(&scaled.select(eval), &eval_gold, &eval_pred)?,
                    })
                };
                let report = CalibrationReport {
                    source: ScoreSource::ClassProbabilities,
                    n_bins: N_BINS,
                    full,
                    temperature,
                };
                (report, terms)
            }
        };
        reports.push(report);
        all_terms.push(terms);
    }
    attach_intervals(&mut reports, &all_terms, n, cfg)?;
    Ok(reports)
}

/// Σ_b |S_b| / count: the ECE from per-bin sums of (correct − confidence), since
/// (n_b / N) |acc_b − conf_b| = |S_b| / N.
fn ece_from_sums(sums: &[f64; N_BINS], count: usize) -> f64 {
    if count == 0 {
        return f64::NAN;
    }
    sums.iter().map(|s| s.abs()).sum::<f64>() / count as f64
}

/// Adds one document's term to its bin's sum.
fn add(sums: &mut [f64; N_BINS], bins: &[u8], diffs: &[f64], i: usize) {
    if let Some(s) = sums.get_mut(usize::from(bins[i])) {
        *s += diffs[i];
    }
}

/// Leave-one-out ECE of every document among `n` (those outside `members` leave it unchanged
/// but the count; with `members` = `None`, all are members).
fn jackknife(bins: &[u8], diffs: &[f64], members: Option<&[bool]>) -> Vec<f64> {
    let member = |i: usize| members.is_none_or(|m| m[i]);
    let mut sums = [0.0; N_BINS];
    let mut count = 0;
    for i in (0..bins.len()).filter(|&i| member(i)) {
        add(&mut sums, bins, diffs, i);
        count += 1;
    }
    let total: f64 = sums.iter().map(|s| s.abs()).sum();
    (0..bins.len())
        .map(|i| {
            if !member(i) {
                return total / count as f64;
            }
            let rest = (count - 1) as f64;
            match sums.get(usize::from(bins[i])) {
                Some(s) => (total - s.abs() + (s - diffs[i]).abs()) / rest,
                None => total / rest,
            }
        })
        .collect()
}

/// One interval per statistic: the point is the exact (numpy-order) ECE already computed.
fn interval(point: f64, samples: &[f64], jack: &[f64], confidence: f64) -> Option<Estimate> {
    (!samples.iter().any(|s| s.is_nan())).then(|| estimate(point, samples, jack, confidence))
}

fn attach_intervals(
    reports: &mut [CalibrationReport],
    terms: &[BootstrapTerms],
    n: usize,
    cfg: &BootstrapConfig,
) -> Result<()> {
    // samples[model][statistic][resample], statistics: full x 2, eval before x 2, after x 2.
    let mut samples: Vec<[Vec<f64>; 6]> = terms
        .iter()
        .map(|_| std::array::from_fn(|_| Vec::with_capacity(cfg.resamples)))
        .collect();
    for_each_resample(cfg, n, |_, indices| {
        for (t, out) in terms.iter().zip(samples.iter_mut()) {
            for (c, (bins, diffs)) in t.full.iter().enumerate() {
                let mut sums = [0.0; N_BINS];
                indices.iter().for_each(|&i| add(&mut sums, bins, diffs, i as usize));
                out[c].push(ece_from_sums(&sums, n));
            }
            if let Some(h) = &t.half {
                let mut sums = [[0.0; N_BINS]; 4];
                let mut count = 0;
                for &i in indices.iter().filter(|&&i| h.in_eval[i as usize]) {
                    let i = i as usize;
                    for c in 0..2 {
                        add(&mut sums[c], &h.before[c].0, &h.before[c].1, i);
                        add(&mut sums[2 + c], &h.after[c].0, &h.after[c].1, i);
                    }
                    count += 1;
                }
                for (s, sum) in sums.iter().enumerate() {
                    out[2 + s].push(ece_from_sums(sum, count));
                }
            }
        }
    })?;
    for ((report, t), s) in reports.iter_mut().zip(terms).zip(&samples) {
        for (c, convention) in BinConvention::BOTH.into_iter().enumerate() {
            let (bins, diffs) = &t.full[c];
            let full = report.full.binned_mut(convention);
            full.ece_ci = interval(full.ece, &s[c], &jackknife(bins, diffs, None), cfg.confidence);
            if let (Some(h), Some(ts)) = (&t.half, report.temperature.as_mut()) {
                let before = ts.before.binned_mut(convention);
                let jack = jackknife(&h.before[c].0, &h.before[c].1, Some(&h.in_eval));
                before.ece_ci = interval(before.ece, &s[2 + c], &jack, cfg.confidence);
                let after = ts.after.binned_mut(convention);
                let jack = jackknife(&h.after[c].0, &h.after[c].1, Some(&h.in_eval));
                after.ece_ci = interval(after.ece, &s[4 + c], &jack, cfg.confidence);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "calibration_tests.rs"]
mod tests;
