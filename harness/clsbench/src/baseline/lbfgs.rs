//! L-BFGS with SciPy's L-BFGS-B conventions (unconstrained case), as scikit-learn's
//! `solver="lbfgs"` runs it, using argmin's More-Thuente line search.
//!
//! Why not argmin's own `LBFGS` solver: it was the first version of this module, and on
//! the Issue mini set (2.15 M weights) it spent two thirds of the fit inside its two-loop
//! recursion, which allocates a fresh vector for every vector operation; at the seed's
//! size (5.65 M weights) that overhead would dominate. It also stops on the Euclidean
//! gradient norm, starts with step 1 rather than SciPy's 1/||d||, and never skips a
//! curvature pair. The recursion here works in place on a fixed-size history and follows
//! SciPy's rules; the line search, the delicate part, is still argmin's.
//!
//! SciPy's rules mirrored: `m` = 10 correction pairs; stop when max |g| <= gtol (before
//! any iteration too) or when (f_old - f) / max(|f_old|, |f|, 1) <= ftol; first step
//! 1/||d||, later steps 1; More-Thuente with c1 = 1e-3, c2 = 0.9 and at most 50 trials;
//! a pair is skipped when sᵀy <= eps · (-gᵀs); a failed line search clears the history and
//! retries along -g once before giving up.
//!
//! Vector reductions run over fixed 64 Ki-element chunks summed in order, so results are
//! identical whatever the number of threads.

use argmin::core::{CostFunction, Executor, Gradient, LineSearch, State, TerminationReason};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use rayon::prelude::*;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Stopping and memory settings, SciPy's names in comments.
#[derive(Debug, Clone, PartialEq)]
pub struct LbfgsSettings {
    /// Correction pairs kept (`maxcor`).
    pub memory: usize,
    /// Iterations (`maxiter`).
    pub max_iter: usize,
    /// Stop when max |gradient| <= this (`gtol`, scikit-learn's `tol`).
    pub gtol: f64,
    /// Stop when the relative loss decrease is <= this (`ftol`).
    pub ftol: f64,
    /// Function evaluations per line search (`maxls`).
    pub max_line_search_steps: u64,
}

impl LbfgsSettings {
    /// What scikit-learn 1.9 passes to SciPy for `LogisticRegression(solver="lbfgs")`.
    pub fn scikit_learn(max_iter: usize, tol: f64) -> Self {
        LbfgsSettings {
            memory: 10,
            max_iter,
            gtol: tol,
            ftol: 64.0 * f64::EPSILON,
            max_line_search_steps: 50,
        }
    }
}

/// Why the minimisation stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    GradientTolerance,
    LossChangeTolerance,
    MaxIterations,
    LineSearchFailed(String),
}

impl Stop {
    /// SciPy reports success (and scikit-learn no ConvergenceWarning) for the first two.
    pub fn converged(&self) -> bool {
        matches!(self, Stop::GradientTolerance | Stop::LossChangeTolerance)
    }

    pub fn describe(&self) -> String {
        match self {
            Stop::GradientTolerance => "max |gradient| <= tol".into(),
            Stop::LossChangeTolerance => "relative loss decrease <= ftol".into(),
            Stop::MaxIterations => "max_iter reached".into(),
            Stop::LineSearchFailed(why) => format!("line search failed: {why}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LbfgsOutcome {
    pub x: Vec<f64>,
    pub loss: f64,
    pub max_abs_gradient: f64,
    pub iterations: usize,
    /// Loss-and-gradient evaluations, line-search trials included.
    pub evaluations: usize,
    pub stop: Stop,
}

/// Minimises `f` (returning the loss and its gradient) from `x0`.
pub fn minimize<F>(f: &F, x0: Vec<f64>, settings: &LbfgsSettings) -> LbfgsOutcome
where
    F: Fn(&[f64]) -> (f64, Vec<f64>) + Sync,
{
    let objective = Memoised {
        f,
        last: Mutex::new(None),
        evaluations: AtomicUsize::new(0),
    };
    let mut x = x0;
    let (mut loss, mut gradient) = objective.evaluate(&x, |loss, gradient| (loss, gradient.clone()));
    let mut history: VecDeque<Pair> = VecDeque::with_capacity(settings.memory);
    let mut iterations = 0;
    let stop = loop {
        if max_abs(&gradient) <= settings.gtol {
            break Stop::GradientTolerance;
        }
        if iterations >= settings.max_iter {
            break Stop::MaxIterations;
        }
        let direction = two_loop_direction(&gradient, &history);
        let first_step = if iterations == 0 {
            (1.0 / dot(&direction, &direction).sqrt()).min(1e10)
        } else {
            1.0
        };
        let (x_new, loss_new, gradient_new) = match line_search(
            &objective,
            &x,
            loss,
            &gradient,
            direction,
            first_step,
            settings.max_line_search_steps,
        ) {
            Ok(found) => found,
            Err(_) if !history.is_empty() => {
                history.clear();
                continue;
            }
            Err(why) => break Stop::LineSearchFailed(why),
        };
        iterations += 1;
        let pair = Pair::new(&x, &x_new, &gradient, &gradient_new);
        if pair.sy > f64::EPSILON * -pair.gs {
            if history.len() == settings.memory {
                history.pop_front();
            }
            history.push_back(pair);
        }
        let loss_old = loss;
        (x, loss, gradient) = (x_new, loss_new, gradient_new);
        if (loss_old - loss) <= settings.ftol * loss_old.abs().max(loss.abs()).max(1.0) {
            break if max_abs(&gradient) <= settings.gtol {
                Stop::GradientTolerance
            } else {
                Stop::LossChangeTolerance
            };
        }
    };
    LbfgsOutcome {
        max_abs_gradient: max_abs(&gradient),
        x,
        loss,
        iterations,
        evaluations: objective.evaluations.load(Ordering::Relaxed),
        stop,
    }
}

struct Pair {
    s: Vec<f64>,
    y: Vec<f64>,
    sy: f64,
    yy: f64,
    /// gᵀs with the gradient at the start of the step (negative for a descent step).
    gs: f64,
}

impl Pair {
    /// s = x_new - x, y = g_new - g and their products, in one pass over the four vectors.
    fn new(x: &[f64], x_new: &[f64], g: &[f64], g_new: &[f64]) -> Pair {
        let n = x.len();
        let (mut s, mut y) = (vec![0.0; n], vec![0.0; n]);
        let partial: Vec<[f64; 3]> = s
            .par_chunks_mut(CHUNK)
            .zip(y.par_chunks_mut(CHUNK))
            .enumerate()
            .map(|(c, (s, y))| {
                let range = c * CHUNK..(c * CHUNK + s.len());
                let (x, x_new, g, g_new) = (
                    &x[range.clone()],
                    &x_new[range.clone()],
                    &g[range.clone()],
                    &g_new[range],
                );
                let mut sums = [0.0; 3];
                for i in 0..s.len() {
                    s[i] = x_new[i] - x[i];
                    y[i] = g_new[i] - g[i];
                    sums[0] += s[i] * y[i];
                    sums[1] += y[i] * y[i];
                    sums[2] += g[i] * s[i];
                }
                sums
            })
            .collect();
        let total = partial
            .iter()
            .fold([0.0; 3], |a, p| [a[0] + p[0], a[1] + p[1], a[2] + p[2]]);
        Pair {
            s,
            y,
            sy: total[0],
            yy: total[1],
            gs: total[2],
        }
    }
}

/// -H·g by the two-loop recursion, H0 = (sᵀy / yᵀy) I from the newest pair. Each
/// update of q is fused with the dot product the next step needs (same arithmetic, one
/// pass over q fewer per step: the recursion is memory-bound).
fn two_loop_direction(gradient: &[f64], history: &VecDeque<Pair>) -> Vec<f64> {
    let m = history.len();
    let gamma = history.back().map_or(1.0, |p| p.sy / p.yy);
    let mut q = gradient.to_vec();
    if m == 0 {
        update_then_dot(&mut q, 0.0, None, -gamma, None);
        return q;
    }
    let mut alphas = vec![0.0; m];
    let mut next_dot = dot(&history[m - 1].s, &q);
    for k in (0..m).rev() {
        alphas[k] = next_dot / history[k].sy;
        // After the last step of the first loop, scale by -H0 and start the second loop.
        let (scale, next) = if k > 0 {
            (1.0, &history[k - 1].s)
        } else {
            (-gamma, &history[0].y)
        };
        next_dot = update_then_dot(&mut q, -alphas[k], Some(&history[k].y), scale, Some(next));
    }
    // q now holds -H0·(...); continuing with negated coefficients keeps it negated.
    for k in 0..m {
        let beta = next_dot / history[k].sy;
        let next = history.get(k + 1).map(|p| p.y.as_slice());
        next_dot = update_then_dot(&mut q, -alphas[k] - beta, Some(&history[k].s), 1.0, next);
    }
    q
}

/// q <- (q + alpha·x) · scale, then returns next·q (0 without `next`), in one pass.
fn update_then_dot(q: &mut [f64], alpha: f64, x: Option<&[f64]>, scale: f64, next: Option<&[f64]>) -> f64 {
    let partial: Vec<f64> = q
        .par_chunks_mut(CHUNK)
        .enumerate()
        .map(|(c, q)| {
            let range = c * CHUNK..c * CHUNK + q.len();
            if let Some(x) = x {
                for (qi, xi) in q.iter_mut().zip(&x[range.clone()]) {
                    *qi += alpha * xi;
                }
            }
            if scale != 1.0 {
                for qi in q.iter_mut() {
                    *qi *= scale;
                }
            }
            next.map_or(0.0, |next| q.iter().zip(&next[range]).map(|(a, b)| a * b).sum())
        })
        .collect();
    partial.iter().sum()
}

/// More-Thuente from (x, loss, gradient) along `direction`; the accepted point, or why none.
fn line_search<F>(
    objective: &Memoised<'_, F>,
    x: &[f64],
    loss: f64,
    gradient: &[f64],
    direction: Vec<f64>,
    first_step: f64,
    max_steps: u64,
) -> std::result::Result<(Vec<f64>, f64, Vec<f64>), String>
where
    F: Fn(&[f64]) -> (f64, Vec<f64>) + Sync,
{
    let mut search = MoreThuenteLineSearch::new()
        .with_c(1e-3, 0.9)
        .map_err(|e| e.to_string())?;
    search.search_direction(direction);
    search.initial_step_length(first_step).map_err(|e| e.to_string())?;
    let result = Executor::new(objective, search)
        .configure(|state| {
            state
                .param(x.to_vec())
                .gradient(gradient.to_vec())
                .cost(loss)
                .max_iters(max_steps)
        })
        .run()
        .map_err(|e| e.to_string())?;
    let mut state = result.state;
    if state.get_termination_reason() != Some(&TerminationReason::SolverConverged) {
        return Err(state
            .get_termination_reason()
            .map_or("no result".into(), |r| r.text().to_string()));
    }
    let loss_new = state.get_cost();
    if loss_new.is_nan() || loss_new > loss {
        return Err(format!("no decrease (loss {loss} -> {loss_new})"));
    }
    let x_new = state.take_param().ok_or("no point returned")?;
    let gradient_new = state.take_gradient().ok_or("no gradient returned")?;
    Ok((x_new, loss_new, gradient_new))
}

/// The objective as argmin sees it. More-Thuente asks for the cost and then the gradient
/// at the same point; one evaluation gives both, so the last one is kept.
struct Evaluation {
    x: Vec<f64>,
    loss: f64,
    gradient: Vec<f64>,
}

struct Memoised<'a, F> {
    f: &'a F,
    last: Mutex<Option<Evaluation>>,
    evaluations: AtomicUsize,
}

impl<F: Fn(&[f64]) -> (f64, Vec<f64>) + Sync> Memoised<'_, F> {
    fn evaluate<T>(&self, x: &[f64], pick: impl FnOnce(f64, &Vec<f64>) -> T) -> T {
        let mut last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if last.as_ref().is_none_or(|e| e.x != x) {
            let (loss, gradient) = (self.f)(x);
            self.evaluations.fetch_add(1, Ordering::Relaxed);
            *last = Some(Evaluation {
                x: x.to_vec(),
                loss,
                gradient,
            });
        }
        let e = last.as_ref().expect("just evaluated");
        pick(e.loss, &e.gradient)
    }
}

impl<F: Fn(&[f64]) -> (f64, Vec<f64>) + Sync> CostFunction for &Memoised<'_, F> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, x: &Vec<f64>) -> std::result::Result<f64, argmin::core::Error> {
        Ok(self.evaluate(x, |loss, _| loss))
    }
}

impl<F: Fn(&[f64]) -> (f64, Vec<f64>) + Sync> Gradient for &Memoised<'_, F> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, x: &Vec<f64>) -> std::result::Result<Vec<f64>, argmin::core::Error> {
        Ok(self.evaluate(x, |_, gradient| gradient.clone()))
    }
}

const CHUNK: usize = 1 << 16;

/// Dot product over fixed chunks summed in order: the same bits on any thread count.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let partial: Vec<f64> = a
        .par_chunks(CHUNK)
        .zip(b.par_chunks(CHUNK))
        .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x * y).sum())
        .collect();
    partial.iter().sum()
}

pub fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rosenbrock's function: the classic non-quadratic test, minimum 0 at (1, 1).
    fn rosenbrock(x: &[f64]) -> (f64, Vec<f64>) {
        let (a, b) = (x[0], x[1]);
        let loss = (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2);
        let gradient = vec![-2.0 * (1.0 - a) - 400.0 * a * (b - a * a), 200.0 * (b - a * a)];
        (loss, gradient)
    }

    #[test]
    fn finds_the_rosenbrock_minimum() {
        let settings = LbfgsSettings::scikit_learn(1000, 1e-8);
        let out = minimize(&rosenbrock, vec![-1.2, 1.0], &settings);
        assert!(out.stop.converged(), "{:?}", out.stop);
        assert!(
            (out.x[0] - 1.0).abs() < 1e-6 && (out.x[1] - 1.0).abs() < 1e-6,
            "{:?}",
            out.x
        );
        assert!(out.iterations > 10 && out.evaluations >= out.iterations);
    }

    #[test]
    fn stops_at_max_iter_without_claiming_convergence() {
        let settings = LbfgsSettings::scikit_learn(3, 1e-8);
        let out = minimize(&rosenbrock, vec![-1.2, 1.0], &settings);
        assert_eq!((out.iterations, out.stop.clone()), (3, Stop::MaxIterations));
        assert!(!out.stop.converged());
    }

    #[test]
    fn zero_gradient_start_takes_no_iteration() {
        let settings = LbfgsSettings::scikit_learn(10, 1e-4);
        let out = minimize(&rosenbrock, vec![1.0, 1.0], &settings);
        assert_eq!(
            (out.iterations, out.evaluations, out.stop),
            (0, 1, Stop::GradientTolerance)
        );
    }

    #[test]
    fn dot_is_chunk_exact() {
        let a: Vec<f64> = (0..200_000).map(|i| (i as f64).sin()).collect();
        let sequential: f64 = a.chunks(CHUNK).map(|c| c.iter().map(|x| x * x).sum::<f64>()).sum();
        assert_eq!(dot(&a, &a).to_bits(), sequential.to_bits());
    }
}
