//! Confidence intervals from bootstrap samples: the seed's percentile interval and BCa.

use crate::metrics::numpy_pairwise_sum;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub lower: f64,
    pub upper: f64,
}

impl Interval {
    /// Whether `value` lies outside the closed interval (the seed's "CI excludes 0").
    pub fn excludes(&self, value: f64) -> bool {
        value < self.lower || value > self.upper
    }
}

/// `np.percentile(samples, q)` with numpy's default linear interpolation, on samples already
/// sorted ascending; `q` in percent. NaN for no samples. Written out (not a crate) to reproduce numpy's arithmetic:
/// virtual index (n - 1) * q / 100, and its `_lerp`, which interpolates from the upper
/// neighbour when the fraction is >= 0.5.
pub fn percentile_linear(sorted: &[f64], q_percent: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let h = (n - 1) as f64 * (q_percent / 100.0);
    if h.is_nan() || h <= 0.0 {
        return sorted[0];
    }
    if h >= (n - 1) as f64 {
        return sorted[n - 1];
    }
    let lo = h.floor();
    let gamma = h - lo;
    let (a, b) = (sorted[lo as usize], sorted[lo as usize + 1]);
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

/// The seed's interval: the (1 - c)/2 and (1 + c)/2 percentiles of the sorted samples
/// (2.5 and 97.5 for c = 0.95).
pub fn percentile_interval(sorted: &[f64], confidence: f64) -> Interval {
    let tail = (1.0 - confidence) / 2.0;
    Interval {
        lower: percentile_linear(sorted, 100.0 * tail),
        upper: percentile_linear(sorted, 100.0 * (1.0 - tail)),
    }
}

/// The pieces of a BCa interval, kept for reports and tests.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BcaInterval {
    pub lower: f64,
    pub upper: f64,
    /// Bias correction z0 = Φ⁻¹(share of resamples below the point estimate).
    pub z0: f64,
    /// Acceleration from the jackknife.
    pub acceleration: f64,
    /// Percentile levels (fractions) actually read off the samples.
    pub alpha_lower: f64,
    pub alpha_upper: f64,
}

impl BcaInterval {
    pub fn interval(&self) -> Interval {
        Interval {
            lower: self.lower,
            upper: self.upper,
        }
    }
}

/// Bias-corrected and accelerated interval (Efron & Tibshirani 1993, *An Introduction to the
/// Bootstrap*, ch. 14.3, eqs. 14.9-14.15).
///
/// - z0 = Φ⁻¹(p), p = share of resamples below the point estimate, ties counted half (as
///   `scipy.stats.bootstrap` does; E&T count strictly below, which biases z0 for discrete
///   statistics such as accuracy, where many resamples tie the point);
/// - a = Σ d³ / (6 (Σ d²)^{3/2}), d_i = mean(θ₍.₎) − θ₍i₎ over the leave-one-out values θ₍i₎;
/// - levels α₁,₂ = Φ(z0 + (z0 + z) / (1 − a (z0 + z))) for z = Φ⁻¹((1 ∓ c)/2), read off the
///   sorted samples with [`percentile_linear`].
///
/// `None` where BCa is undefined: every resample on one side of the point (p = 0 or 1), a
/// constant jackknife (a = 0/0), or levels that come out non-finite. statrs gives Φ⁻¹; no crate
/// offers BCa over precomputed resamples and jackknife values.
pub fn bca_interval(sorted: &[f64], point: f64, jackknife: &[f64], confidence: f64) -> Option<BcaInterval> {
    let b = sorted.len();
    if b == 0 || jackknife.len() < 2 {
        return None;
    }
    let below = sorted.partition_point(|&x| x < point);
    let at_or_below = sorted.partition_point(|&x| x <= point);
    let share_below = (below + at_or_below) as f64 / (2 * b) as f64;
    if share_below <= 0.0 || share_below >= 1.0 {
        return None;
    }
    let normal = Normal::standard();
    let z0 = normal.inverse_cdf(share_below);

    // numpy's summation order throughout: the d_i are tiny differences of nearly equal
    // numbers, so the rounding of the mean shows in `a` from the 8th digit on.
    let mean = mean_numpy(jackknife);
    let d: Vec<f64> = jackknife.iter().map(|&theta| mean - theta).collect();
    let sum_d2 = numpy_pairwise_sum(&d.iter().map(|&x| x * x).collect::<Vec<_>>());
    let sum_d3 = numpy_pairwise_sum(&d.iter().map(|&x| x.powf(3.0)).collect::<Vec<_>>());
    if sum_d2 == 0.0 {
        return None;
    }
    let acceleration = sum_d3 / (6.0 * sum_d2.powf(1.5));

    let tail = (1.0 - confidence) / 2.0;
    let level = |z: f64| standard_normal_cdf(z0 + (z0 + z) / (1.0 - acceleration * (z0 + z)));
    let z = normal.inverse_cdf(tail);
    let (alpha_lower, alpha_upper) = (level(z), level(-z));
    if !(alpha_lower.is_finite() && alpha_upper.is_finite()) {
        return None;
    }
    Some(BcaInterval {
        lower: percentile_linear(sorted, 100.0 * alpha_lower),
        upper: percentile_linear(sorted, 100.0 * alpha_upper),
        z0,
        acceleration,
        alpha_lower,
        alpha_upper,
    })
}

/// Φ, computed as Cephes' `ndtr` (SciPy) does: erf near 0, erfc in the tails, so that both
/// tails keep full relative precision.
pub fn standard_normal_cdf(x: f64) -> f64 {
    let t = x * std::f64::consts::FRAC_1_SQRT_2;
    let z = t.abs();
    if z < std::f64::consts::FRAC_1_SQRT_2 {
        0.5 + 0.5 * libm::erf(t)
    } else {
        let y = 0.5 * libm::erfc(z);
        if t > 0.0 {
            1.0 - y
        } else {
            y
        }
    }
}

/// `np.mean`: numpy's pairwise sum divided by the count.
pub fn mean_numpy(values: &[f64]) -> f64 {
    numpy_pairwise_sum(values) / values.len() as f64
}

/// Sorted copy of bootstrap samples; NaN-free by construction (scores of non-empty resamples).
pub fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut s = samples.to_vec();
    s.sort_unstable_by(f64::total_cmp);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_interpolates_like_numpy() {
        let r = crate::test_reference::reference();
        for case in r["percentiles"].as_array().unwrap() {
            let samples: Vec<f64> = case["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let s = sorted(&samples);
            for (q, want) in case["q"]
                .as_array()
                .unwrap()
                .iter()
                .zip(case["values"].as_array().unwrap())
            {
                let got = percentile_linear(&s, q.as_f64().unwrap());
                crate::test_reference::assert_close(got, want, 1e-15, &format!("percentile {q}"));
            }
        }
    }

    #[test]
    fn bca_is_undefined_when_every_resample_is_on_one_side() {
        let s = [1.0, 2.0, 3.0];
        assert!(bca_interval(&s, 0.5, &[0.1, 0.2, 0.3], 0.95).is_none());
        assert!(
            bca_interval(&s, 2.0, &[0.5, 0.5, 0.5], 0.95).is_none(),
            "constant jackknife"
        );
        assert!(bca_interval(&s, 2.0, &[0.1, 0.2, 0.4], 0.95).is_some());
    }

    #[test]
    fn interval_excludes_only_outside_values() {
        let i = Interval {
            lower: -0.1,
            upper: 0.2,
        };
        assert!(!i.excludes(0.0) && !i.excludes(0.2) && i.excludes(0.21) && i.excludes(-0.11));
    }
}
