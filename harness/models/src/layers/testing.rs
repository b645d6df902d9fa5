//! Checks shared by the layer tests: fused op vs composed reference (forward and every input's
//! gradient on a random upstream gradient) and central finite differences.

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The largest absolute entry of a tensor (shared by the model tests).
pub(crate) fn max_abs(t: &Tensor) -> f32 {
    t.to_dtype(DType::F32)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Uniform draws in [-2, 2), seeded.
pub(crate) fn sample(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.gen_range(-2.0..2.0)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// max |a - b| <= tol * max(1, max |b|): absolute for entries of order one, relative beyond.
pub(crate) fn assert_close(a: &Tensor, b: &Tensor, tol: f32, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes differ");
    let diff = max_abs(&(a.to_dtype(DType::F32).unwrap() - b.to_dtype(DType::F32).unwrap()).unwrap());
    let scale = max_abs(b).max(1.0);
    assert!(diff <= tol * scale, "{what}: max |diff| {diff:e} > {tol:e} * {scale}");
}

/// sum(y * g) for a fixed random upstream gradient `g`.
fn weighted_sum(y: &Tensor, g: &Tensor) -> Tensor {
    (y * g).unwrap().sum_all().unwrap()
}

/// `fused` and `reference` on the same inputs (as variables): forward within `fwd_tol`, and the
/// gradient of sum(y * g) for a random `g` within `grad_tol` for every input.
pub(crate) fn check_gradients_match(
    inputs: &[Tensor],
    fused: impl Fn(&[Tensor]) -> Result<Tensor>,
    reference: impl Fn(&[Tensor]) -> Result<Tensor>,
    fwd_tol: f32,
    grad_tol: f32,
    what: &str,
) {
    let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y_fused = fused(&ts).unwrap();
    let y_ref = reference(&ts).unwrap();
    assert_close(&y_fused, &y_ref, fwd_tol, &format!("{what} forward"));
    let g = sample(y_ref.dims(), 99);
    let grads_fused = weighted_sum(&y_fused, &g).backward().unwrap();
    let grads_ref = weighted_sum(&y_ref, &g).backward().unwrap();
    for (i, t) in ts.iter().enumerate() {
        let gf = grads_fused
            .get(t)
            .unwrap_or_else(|| panic!("{what}: no fused gradient for input {i}"));
        let gr = grads_ref
            .get(t)
            .unwrap_or_else(|| panic!("{what}: no reference gradient for input {i}"));
        assert_close(gf, gr, grad_tol, &format!("{what} gradient of input {i}"));
    }
}

/// Central finite differences in f32 inputs with the loss summed in f64.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fd {
    pub eps: f64,
    pub atol: f64,
    pub rtol: f64,
}

impl Default for Fd {
    /// eps = 1e-2 on inputs of order one: the truncation error eps^2 / 6 * |f'''| is ~2e-5 for
    /// these smooth ops, and the f32 rounding of y (6e-8 relative per entry, a few hundred
    /// entries weighted by |g| < 2, summed in f64) divided by 2 eps stays below ~5e-4; atol
    /// 2e-3 and rtol 1e-2 leave a margin over both, while a wrong term in a backward (a
    /// missing factor, a sign) is off by O(1).
    fn default() -> Fd {
        Fd {
            eps: 1e-2,
            atol: 2e-3,
            rtol: 1e-2,
        }
    }
}

/// The fused backward of sum(y * g) against central differences of that loss, for every entry
/// of every input.
pub(crate) fn check_finite_differences(inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>, fd: Fd, what: &str) {
    let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&ts).unwrap();
    let g = sample(y.dims(), 77);
    let grads = weighted_sum(&y, &g).backward().unwrap();
    let g64 = g.to_dtype(DType::F64).unwrap();
    let loss_at = |xs: &[Tensor]| -> f64 {
        let y = f(xs).unwrap().to_dtype(DType::F64).unwrap();
        (y * &g64).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap()
    };
    for (i, t) in ts.iter().enumerate() {
        let analytic: Vec<f32> = grads
            .get(t)
            .unwrap_or_else(|| panic!("{what}: no gradient for input {i}"))
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let base: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        for (j, &a) in analytic.iter().enumerate() {
            // The step actually taken in f32, not the f64 one asked for.
            let moved = |delta: f64| (f64::from(base[j]) + delta) as f32;
            let at = |x: f32| {
                let mut v = base.clone();
                v[j] = x;
                let mut xs: Vec<Tensor> = inputs.to_vec();
                xs[i] = Tensor::from_vec(v, t.dims(), t.device()).unwrap();
                loss_at(&xs)
            };
            let (hi, lo) = (moved(fd.eps), moved(-fd.eps));
            let numeric = (at(hi) - at(lo)) / (f64::from(hi) - f64::from(lo));
            let err = (numeric - f64::from(a)).abs();
            assert!(
                err <= fd.atol + fd.rtol * numeric.abs(),
                "{what}: input {i} entry {j}: analytic {a} vs finite difference {numeric}"
            );
        }
    }
}
