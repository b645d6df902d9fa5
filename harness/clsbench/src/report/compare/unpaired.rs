//! CI of a metric difference between two runs that did not score the same documents:
//! resample each run independently (its own documents, its own stream), take the difference
//! per resample, and the percentile interval of those differences.
//!
//! `clsbench_stats::bootstrap::paired_bootstrap` draws one index set shared by all models, which is
//! exactly wrong here (the two runs' documents do not correspond), hence this small loop.

use crate::error::Result;
use clsbench_stats::bootstrap::BootstrapConfig;
use clsbench_stats::intervals::{percentile_interval, sorted, Interval};
use clsbench_stats::metrics::{self, Counts};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub struct DifferenceCis {
    pub accuracy: Interval,
    pub macro_f1: Interval,
}

/// (gold, pred) of the base run and of the new run; CIs of new − base.
pub fn difference_cis(
    base: (&[usize], &[usize]),
    new: (&[usize], &[usize]),
    n_classes: usize,
    cfg: &BootstrapConfig,
) -> Result<DifferenceCis> {
    // Two fixed, distinct streams: the result depends only on the seed.
    let mut rng_base = ChaCha8Rng::seed_from_u64(cfg.seed);
    rng_base.set_stream(1);
    let mut rng_new = ChaCha8Rng::seed_from_u64(cfg.seed);
    rng_new.set_stream(2);
    let mut acc = Vec::with_capacity(cfg.resamples);
    let mut f1 = Vec::with_capacity(cfg.resamples);
    // Checked once here, so that `Counts::add` below cannot index out of range.
    metrics::check_labels(base.0, base.1, n_classes)?;
    metrics::check_labels(new.0, new.1, n_classes)?;
    let draw = |rng: &mut ChaCha8Rng, (gold, pred): (&[usize], &[usize])| {
        let mut counts = Counts::new(n_classes);
        for _ in 0..gold.len() {
            let i = rng.gen_range(0..gold.len());
            counts.add(gold[i], pred[i]);
        }
        counts
    };
    for _ in 0..cfg.resamples {
        let b = draw(&mut rng_base, base);
        let n = draw(&mut rng_new, new);
        acc.push(n.accuracy() - b.accuracy());
        f1.push(n.macro_f1() - b.macro_f1());
    }
    Ok(DifferenceCis {
        accuracy: percentile_interval(&sorted(&acc), cfg.confidence),
        macro_f1: percentile_interval(&sorted(&f1), cfg.confidence),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let d = difference_cis((&gold, &good), (&gold, &bad), 4, &cfg).unwrap();
        assert!(
            d.accuracy.upper < 0.0 && d.macro_f1.upper < 0.0,
            "{:?} {:?}",
            d.accuracy,
            d.macro_f1
        );
        let same = difference_cis((&gold, &good), (&gold, &good), 4, &cfg).unwrap();
        assert!(
            same.accuracy.lower < 0.0 && same.accuracy.upper > 0.0,
            "{:?}",
            same.accuracy
        );
    }
}
