//! Multinomial logistic regression on sparse rows, with scikit-learn's `lbfgs` objective.
//!
//! scikit-learn 1.9 (`_logistic_regression_path` + `LinearModelLoss`) minimises
//!     mean_i CE(softmax(W x_i + b), y_i) + ||W||² / (2 C n)
//! over the classes present in the training labels (intercept not penalised) with SciPy's
//! L-BFGS-B (10 correction pairs, `gtol = tol` on the largest absolute gradient entry,
//! `ftol = 64 eps`, `maxiter = max_iter`). With exactly two classes it fits the *binomial*
//! loss on a single weight vector instead, which is not the same model as a two-class
//! softmax under the same C, so we do likewise.
//!
//! Classes absent from the training labels are not fitted (scikit-learn only knows the
//! classes it saw); they get probability 0. Fitting them as extra softmax columns would
//! change the other classes' probabilities and push their unpenalised intercepts towards
//! minus infinity, so the fit would differ from scikit-learn's.
//!
//! The optimiser (`lbfgs`) follows SciPy's conventions closely enough that on the CFPB
//! sets it takes the same number of iterations as scikit-learn and ends at the same
//! weights up to rounding (probabilities within 1e-8).

use super::lbfgs::{self, LbfgsSettings};
use super::sparse::CsrMatrix;
use crate::error::{Error, Result};
use rayon::prelude::*;

/// Regularisation and stopping, as scikit-learn's `C`, `max_iter` and `tol`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRegParams {
    pub c: f64,
    pub max_iter: usize,
    pub tol: f64,
}

/// How the optimisation ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OptimizationReport {
    pub iterations: usize,
    /// Loss-and-gradient evaluations (each one pass over X and one over Xᵀ).
    pub evaluations: usize,
    /// Stopped on the gradient or loss-change tolerance (not on `max_iter` or a failed line search).
    pub converged: bool,
    /// The objective at the returned weights (mean cross-entropy + penalty).
    pub final_loss: f64,
    /// Largest absolute gradient entry at the end (converged means <= tol).
    pub max_abs_gradient: f64,
    /// Why it stopped, for logs.
    pub termination: String,
}

/// A fitted model: `n_features` weights per fitted output plus an intercept.
#[derive(Debug, Clone)]
pub struct LogisticRegression {
    n_classes: usize,
    /// Class ids seen in training, increasing; output `k` of the model is `fitted_classes[k]`
    /// (for the binomial model, the single output is the log-odds of `fitted_classes[1]`).
    fitted_classes: Vec<usize>,
    n_features: usize,
    n_outputs: usize,
    /// Feature-major: weight of feature j for output k at `j * n_outputs + k`; the
    /// intercepts are the last `n_outputs` entries (scikit-learn's ravelled layout).
    coef: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Link {
    Softmax,
    Logistic,
}

impl LogisticRegression {
    /// Fits on the rows of `x` with class ids `labels` (each below `n_classes`).
    pub fn fit(
        x: &CsrMatrix,
        labels: &[usize],
        n_classes: usize,
        params: &LogRegParams,
    ) -> Result<(Self, OptimizationReport)> {
        validate(x, labels, n_classes, params)?;
        let mut seen = vec![false; n_classes];
        for &label in labels {
            seen[label] = true;
        }
        let fitted_classes: Vec<usize> = (0..n_classes).filter(|&c| seen[c]).collect();
        if fitted_classes.len() < 2 {
            return Err(Error::bad_input(format!(
                "tfidf-logreg: the training labels hold {} distinct class(es); logistic regression needs at least 2",
                fitted_classes.len()
            )));
        }
        let (link, n_outputs) = if fitted_classes.len() == 2 {
            (Link::Logistic, 1)
        } else {
            (Link::Softmax, fitted_classes.len())
        };
        let mut output_of_class = vec![u32::MAX; n_classes];
        for (k, &c) in fitted_classes.iter().enumerate() {
            output_of_class[c] = k as u32;
        }
        let targets: Vec<u32> = labels.iter().map(|&l| output_of_class[l]).collect();
        let objective = Objective {
            x,
            xt: x.transpose(),
            targets,
            n_outputs,
            link,
            l2_strength: 1.0 / (params.c * x.n_rows as f64),
        };
        let settings = LbfgsSettings::scikit_learn(params.max_iter, params.tol);
        let outcome = lbfgs::minimize(
            &|coef: &[f64]| objective.loss_and_gradient(coef),
            vec![0.0; (x.n_cols + 1) * n_outputs],
            &settings,
        );
        let report = OptimizationReport {
            iterations: outcome.iterations,
            evaluations: outcome.evaluations,
            converged: outcome.stop.converged(),
            final_loss: outcome.loss,
            max_abs_gradient: outcome.max_abs_gradient,
            termination: outcome.stop.describe(),
        };
        let coef = outcome.x;
        let model = LogisticRegression {
            n_classes,
            fitted_classes,
            n_features: x.n_cols,
            n_outputs,
            coef,
        };
        Ok((model, report))
    }

    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Class ids the model was fitted on (the others always get probability 0).
    pub fn fitted_classes(&self) -> &[usize] {
        &self.fitted_classes
    }

    /// Class probabilities, one row of `n_classes` per row of `x`.
    pub fn predict_proba(&self, x: &CsrMatrix) -> Result<Vec<Vec<f64>>> {
        if x.n_cols != self.n_features {
            return Err(Error::bad_input(format!(
                "tfidf-logreg: input has {} features, the model was fitted on {}",
                x.n_cols, self.n_features
            )));
        }
        let k = self.n_outputs;
        let (weights, intercept) = self.coef.split_at(self.n_features * k);
        Ok((0..x.n_rows)
            .into_par_iter()
            .map(|i| {
                let mut z = intercept.to_vec();
                accumulate_logits(x, i, weights, &mut z);
                let mut proba = vec![0.0; self.n_classes];
                if k == 1 {
                    let p = sigmoid(z[0]);
                    proba[self.fitted_classes[0]] = 1.0 - p;
                    proba[self.fitted_classes[1]] = p;
                } else {
                    softmax_in_place(&mut z);
                    for (&c, &p) in self.fitted_classes.iter().zip(&z) {
                        proba[c] = p;
                    }
                }
                proba
            })
            .collect())
    }
}

fn validate(x: &CsrMatrix, labels: &[usize], n_classes: usize, params: &LogRegParams) -> Result<()> {
    if labels.len() != x.n_rows {
        return Err(Error::bad_input(format!(
            "tfidf-logreg: {} labels for {} training rows",
            labels.len(),
            x.n_rows
        )));
    }
    if let Some((row, &label)) = labels.iter().enumerate().find(|(_, &l)| l >= n_classes) {
        return Err(Error::bad_input(format!(
            "tfidf-logreg: training row {row} has class id {label}, expected below n_classes = {n_classes}"
        )));
    }
    if !(params.c.is_finite() && params.c > 0.0) {
        return Err(Error::bad_input(format!(
            "tfidf-logreg: field `c`: expected a positive number, got {}",
            params.c
        )));
    }
    if !(params.tol.is_finite() && params.tol >= 0.0) {
        return Err(Error::bad_input(format!(
            "tfidf-logreg: field `tol`: expected a number >= 0, got {}",
            params.tol
        )));
    }
    Ok(())
}

/// z += Σ_j x_ij W[j, :]
fn accumulate_logits(x: &CsrMatrix, row: usize, weights: &[f64], z: &mut [f64]) {
    let k = z.len();
    let (cols, vals) = x.row(row);
    for (&j, &v) in cols.iter().zip(vals) {
        let w = &weights[j as usize * k..(j as usize + 1) * k];
        for (zc, wc) in z.iter_mut().zip(w) {
            *zc += v * wc;
        }
    }
}

/// Replaces logits by probabilities; returns log-sum-exp of the logits.
fn softmax_in_place(z: &mut [f64]) -> f64 {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = z.iter().map(|&v| (v - max).exp()).sum();
    let log_sum_exp = max + sum.ln();
    for v in z.iter_mut() {
        *v = (*v - log_sum_exp).exp();
    }
    log_sum_exp
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// ln(1 + e^z) without overflow.
fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

/// The training objective and its gradient over the flat coefficient vector.
struct Objective<'a> {
    x: &'a CsrMatrix,
    /// Xᵀ, so that the gradient is computed one feature at a time: parallel and, with no
    /// shared accumulator, bit-for-bit the same whatever the number of threads.
    xt: CsrMatrix,
    /// Output index of each row's class (binomial: 1 for the positive class, else 0).
    targets: Vec<u32>,
    n_outputs: usize,
    link: Link,
    l2_strength: f64,
}

impl Objective<'_> {
    fn loss_and_gradient(&self, coef: &[f64]) -> (f64, Vec<f64>) {
        let k = self.n_outputs;
        let n = self.x.n_rows;
        let n_features = self.x.n_cols;
        let (weights, intercept) = coef.split_at(n_features * k);
        // Per row: logits, pointwise loss, and the residual (prediction - target) in place.
        let mut residuals = vec![0.0; n * k];
        let losses: Vec<f64> = residuals
            .par_chunks_mut(k)
            .enumerate()
            .map(|(i, r)| {
                r.copy_from_slice(intercept);
                accumulate_logits(self.x, i, weights, r);
                let target = self.targets[i] as usize;
                match self.link {
                    Link::Softmax => {
                        let z_target = r[target];
                        let log_sum_exp = softmax_in_place(r);
                        r[target] -= 1.0;
                        log_sum_exp - z_target
                    }
                    Link::Logistic => {
                        let (z, y) = (r[0], target as f64);
                        r[0] = sigmoid(z) - y;
                        softplus(z) - y * z
                    }
                }
            })
            .collect();
        let n_f = n as f64;
        let penalty = 0.5 * self.l2_strength * weights.iter().map(|w| w * w).sum::<f64>();
        let loss = losses.iter().sum::<f64>() / n_f + penalty;

        let mut gradient = vec![0.0; coef.len()];
        let (grad_weights, grad_intercept) = gradient.split_at_mut(n_features * k);
        grad_weights.par_chunks_mut(k).enumerate().for_each(|(j, g)| {
            let (rows, vals) = self.xt.row(j);
            for (&i, &v) in rows.iter().zip(vals) {
                for (gc, rc) in g.iter_mut().zip(&residuals[i as usize * k..(i as usize + 1) * k]) {
                    *gc += v * rc;
                }
            }
            for (gc, wc) in g.iter_mut().zip(&weights[j * k..(j + 1) * k]) {
                *gc = *gc / n_f + self.l2_strength * wc;
            }
        });
        for r in residuals.chunks(k) {
            for (gc, rc) in grad_intercept.iter_mut().zip(r) {
                *gc += rc;
            }
        }
        for gc in grad_intercept.iter_mut() {
            *gc /= n_f;
        }
        (loss, gradient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::tfidf::{TfidfParams, TfidfVectorizer};
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Tiny {
        logreg_docs: Vec<String>,
        logreg_cases: Vec<LogregCase>,
    }

    #[derive(Deserialize)]
    struct LogregCase {
        name: String,
        labels: Vec<usize>,
        n_classes: usize,
        c: f64,
        tol: f64,
        objective: f64,
        held_out: Vec<String>,
        held_out_proba: Vec<Vec<f64>>,
    }

    fn tiny() -> Tiny {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/reference/tfidf_tiny.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn optimum_matches_scikit_learn_on_tiny_problems() {
        let tiny = tiny();
        let docs: Vec<&str> = tiny.logreg_docs.iter().map(String::as_str).collect();
        let tfidf = TfidfParams {
            ngram_range: [1, 2],
            max_features: None,
            sublinear_tf: false,
        };
        let (vectorizer, x) = TfidfVectorizer::fit_transform(&docs, &tfidf).unwrap();
        assert!(tiny.logreg_cases.len() >= 4);
        for case in &tiny.logreg_cases {
            let params = LogRegParams {
                c: case.c,
                max_iter: 10_000,
                tol: case.tol,
            };
            let (model, report) = LogisticRegression::fit(&x, &case.labels, case.n_classes, &params).unwrap();
            assert!(report.converged, "{}: {report:?}", case.name);
            // Both optimisers stop within tol = 1e-10 of a strictly convex optimum.
            assert!(
                (report.final_loss - case.objective).abs() < 1e-9,
                "{}: loss {} vs scikit-learn {}",
                case.name,
                report.final_loss,
                case.objective
            );
            let held_out: Vec<&str> = case.held_out.iter().map(String::as_str).collect();
            let proba = model.predict_proba(&vectorizer.transform(&held_out)).unwrap();
            for (i, (got, want)) in proba.iter().zip(&case.held_out_proba).enumerate() {
                assert_eq!(got.len(), case.n_classes);
                for (c, (a, b)) in got.iter().zip(want).enumerate() {
                    assert!(
                        (a - b).abs() < 1e-6,
                        "{}: proba[{i}][{c}] = {a}, scikit-learn {b}",
                        case.name
                    );
                }
            }
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let docs = ["a bb cc", "bb dd", "cc dd ee", "ee aa bb"];
        let tfidf = TfidfParams {
            ngram_range: [1, 1],
            max_features: None,
            sublinear_tf: false,
        };
        let (_, x) = TfidfVectorizer::fit_transform(&docs, &tfidf).unwrap();
        for (labels, n_outputs, link) in [
            (vec![0u32, 1, 2, 1], 3, Link::Softmax),
            (vec![0, 1, 1, 0], 1, Link::Logistic),
        ] {
            let objective = Objective {
                x: &x,
                xt: x.transpose(),
                targets: labels,
                n_outputs,
                link,
                l2_strength: 0.3,
            };
            let coef: Vec<f64> = (0..(x.n_cols + 1) * n_outputs)
                .map(|i| ((i * 7 % 11) as f64 - 5.0) / 10.0)
                .collect();
            let (_, gradient) = objective.loss_and_gradient(&coef);
            for p in 0..coef.len() {
                let h = 1e-6;
                let mut plus = coef.clone();
                plus[p] += h;
                let mut minus = coef.clone();
                minus[p] -= h;
                let numeric =
                    (objective.loss_and_gradient(&plus).0 - objective.loss_and_gradient(&minus).0) / (2.0 * h);
                assert!(
                    (numeric - gradient[p]).abs() < 1e-7,
                    "{link:?} d/dcoef[{p}]: {} vs numeric {numeric}",
                    gradient[p]
                );
            }
        }
    }

    #[test]
    fn fit_is_bit_identical_whatever_the_thread_count() {
        // Enough weights (features x 8 classes) to span several reduction chunks.
        let docs: Vec<String> = (0..1000)
            .map(|i| {
                (0..40)
                    .map(|k| format!("w{}", (i * 7919 + k * 104_729) % 100_003))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let texts: Vec<&str> = docs.iter().map(String::as_str).collect();
        let labels: Vec<usize> = (0..1000).map(|i| i % 8).collect();
        let tfidf = TfidfParams {
            ngram_range: [1, 1],
            max_features: None,
            sublinear_tf: false,
        };
        let (_, x) = TfidfVectorizer::fit_transform(&texts, &tfidf).unwrap();
        assert!(
            (x.n_cols + 1) * 8 > 2 * 65_536,
            "too few weights ({}) to span several chunks",
            (x.n_cols + 1) * 8
        );
        let params = LogRegParams {
            c: 1.0,
            max_iter: 15,
            tol: 1e-4,
        };
        let fit_with = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let (model, report) = LogisticRegression::fit(&x, &labels, 8, &params).unwrap();
                (model.coef, report.final_loss.to_bits())
            })
        };
        let (one, loss_one) = fit_with(1);
        let (four, loss_four) = fit_with(4);
        assert_eq!(loss_one, loss_four);
        assert!(one.iter().zip(&four).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn bad_labels_are_errors_naming_the_row() {
        let mut x = CsrMatrix::with_cols(1);
        x.push_row([(0, 1.0)]);
        x.push_row([(0, 2.0)]);
        let params = LogRegParams {
            c: 1.0,
            max_iter: 10,
            tol: 1e-4,
        };
        let err = LogisticRegression::fit(&x, &[0, 5], 3, &params)
            .unwrap_err()
            .to_string();
        assert!(err.contains("row 1") && err.contains("n_classes = 3"), "{err}");
        let err = LogisticRegression::fit(&x, &[1, 1], 3, &params)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 2"), "{err}");
    }
}
