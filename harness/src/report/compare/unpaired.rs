//! CI of a metric difference between two runs that did not score the same documents:
//! resample each run independently (its own documents, its own stream), take the difference
//! per resample, and the percentile interval of those differences.
//!
//! `eval::bootstrap::paired_bootstrap` draws one index set shared by all models, which is
//! exactly wrong here (the two runs' documents do not correspond), hence this small loop.

use crate::eval::bootstrap::BootstrapConfig;
use crate::eval::metrics;
use crate::report::claims::Ci;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub struct DifferenceCis {
    pub accuracy: Ci,
    pub macro_f1: Ci,
}

/// (gold, pred) of the base run and of the new run; CIs of new − base.
pub fn difference_cis(
    base: (&[usize], &[usize]),
    new: (&[usize], &[usize]),
    n_classes: usize,
    cfg: &BootstrapConfig,
) -> DifferenceCis {
    // Two fixed, distinct streams: the result depends only on the seed.
    let mut rng_base = ChaCha8Rng::seed_from_u64(cfg.seed);
    rng_base.set_stream(1);
    let mut rng_new = ChaCha8Rng::seed_from_u64(cfg.seed);
    rng_new.set_stream(2);
    let mut acc = Vec::with_capacity(cfg.resamples);
    let mut f1 = Vec::with_capacity(cfg.resamples);
    let draw = |rng: &mut ChaCha8Rng, (gold, pred): (&[usize], &[usize])| {
        let n = gold.len();
        let (mut g, mut p) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            let i = rng.gen_range(0..n);
            g.push(gold[i]);
            p.push(pred[i]);
        }
        metrics::compute(&g, &p, n_classes)
    };
    for _ in 0..cfg.resamples {
        let b = draw(&mut rng_base, base);
        let n = draw(&mut rng_new, new);
        acc.push(n.accuracy - b.accuracy);
        f1.push(n.macro_f1 - b.macro_f1);
    }
    DifferenceCis {
        accuracy: percentile_ci(acc, cfg.confidence),
        macro_f1: percentile_ci(f1, cfg.confidence),
    }
}

/// Percentile interval with numpy's default (linear) interpolation, as the seed computed its
/// CIs with `np.percentile`.
fn percentile_ci(mut values: Vec<f64>, confidence: f64) -> Ci {
    values.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| {
        let pos = p * (values.len() - 1) as f64;
        let (i, frac) = (pos.floor() as usize, pos - pos.floor());
        let next = values[(i + 1).min(values.len() - 1)];
        values[i] + frac * (next - values[i])
    };
    let alpha = (1.0 - confidence) / 2.0;
    Ci {
        lo: q(alpha),
        hi: q(1.0 - alpha),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy_linear_interpolation() {
        // np.percentile(np.arange(1, 11), [2.5, 97.5]) == [1.225, 9.775]
        let ci = percentile_ci((1..=10).map(f64::from).collect(), 0.95);
        assert!((ci.lo - 1.225).abs() < 1e-12 && (ci.hi - 9.775).abs() < 1e-12, "{ci:?}");
    }

    #[test]
    fn a_clear_drop_has_a_ci_below_zero_and_identical_runs_straddle_it() {
        let gold: Vec<usize> = (0..400).map(|i| i % 4).collect();
        let good: Vec<usize> = gold
            .iter()
            .enumerate()
            .map(|(i, &g)| if i % 10 == 0 { (g + 1) % 4 } else { g })
            .collect();
        let bad: Vec<usize> = gold
            .iter()
            .enumerate()
            .map(|(i, &g)| if i % 3 == 0 { (g + 1) % 4 } else { g })
            .collect();
        let cfg = BootstrapConfig {
            resamples: 300,
            confidence: 0.95,
            seed: 1,
            rng: crate::suite::ResampleRng::Chacha,
        };
        let d = difference_cis((&gold, &good), (&gold, &bad), 4, &cfg);
        assert!(
            d.accuracy.hi < 0.0 && d.macro_f1.hi < 0.0,
            "{:?} {:?}",
            d.accuracy,
            d.macro_f1
        );
        let same = difference_cis((&gold, &good), (&gold, &good), 4, &cfg);
        assert!(same.accuracy.lo < 0.0 && same.accuracy.hi > 0.0, "{:?}", same.accuracy);
    }
}
