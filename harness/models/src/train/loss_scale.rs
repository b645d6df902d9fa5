//! Dynamic loss scaling for f16 training, PyTorch's `torch.amp.GradScaler` rule: the loss is
//! multiplied by the scale S before the backward pass, so that small f16 gradients do not
//! underflow to zero; the accumulated gradients are divided by S before clipping and the
//! optimiser step. When any of them is inf or NaN (the scaled backward overflowed), the step is
//! skipped (the weights, moments and schedule do not move), S is multiplied by `backoff`, and
//! the count of skipped steps grows; after `growth_interval` steps in a row without overflow, S
//! is multiplied by `growth`. Defaults are PyTorch's: S = 2^16, x2 every 2000 good steps, x0.5
//! on overflow.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    scale: f64,
    growth: f64,
    backoff: f64,
    growth_interval: usize,
    /// Good steps in a row since the last change of scale.
    good_steps: usize,
    skipped_steps: usize,
    initial_scale: f64,
}

/// What the training report records about the scaler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossScaleReport {
    pub initial_scale: f64,
    pub final_scale: f64,
    pub growth_interval: usize,
    /// Optimiser steps skipped because a scaled gradient was inf or NaN.
    pub skipped_steps: usize,
}

/// What to do with the step whose gradients were just checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepDecision {
    Apply,
    /// Overflow: drop the gradients, leave the weights as they are.
    Skip,
}

impl Default for LossScaler {
    fn default() -> Self {
        LossScaler::new(65_536.0, 2.0, 0.5, 2000)
    }
}

impl LossScaler {
    pub fn new(initial_scale: f64, growth: f64, backoff: f64, growth_interval: usize) -> LossScaler {
        LossScaler {
            scale: initial_scale,
            growth,
            backoff,
            growth_interval: growth_interval.max(1),
            good_steps: 0,
            skipped_steps: 0,
            initial_scale,
        }
    }

    /// The factor the loss is multiplied by before `backward`.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The factor the accumulated gradients are multiplied by before the step.
    pub fn inverse_scale(&self) -> f64 {
        1.0 / self.scale
    }

    pub fn skipped_steps(&self) -> usize {
        self.skipped_steps
    }

    /// After the gradients of a step were unscaled and checked: `all_finite` says whether
    /// every one was finite.
    pub fn update(&mut self, all_finite: bool) -> StepDecision {
        if all_finite {
            self.good_steps += 1;
            if self.good_steps == self.growth_interval {
                self.scale *= self.growth;
                self.good_steps = 0;
            }
            StepDecision::Apply
        } else {
            self.scale *= self.backoff;
            self.good_steps = 0;
            self.skipped_steps += 1;
            StepDecision::Skip
        }
    }

    pub fn report(&self) -> LossScaleReport {
        LossScaleReport {
            initial_scale: self.initial_scale,
            final_scale: self.scale,
            growth_interval: self.growth_interval,
            skipped_steps: self.skipped_steps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_halves_the_scale_and_skips_good_steps_grow_it_after_the_interval() {
        let mut s = LossScaler::new(1024.0, 2.0, 0.5, 3);
        assert_eq!(s.update(false), StepDecision::Skip);
        assert_eq!((s.scale(), s.skipped_steps()), (512.0, 1));
        // Two good steps: not yet the interval.
        assert_eq!(s.update(true), StepDecision::Apply);
        assert_eq!(s.update(true), StepDecision::Apply);
        assert_eq!(s.scale(), 512.0);
        // The third in a row doubles it.
        s.update(true);
        assert_eq!(s.scale(), 1024.0);
        // An overflow resets the run of good steps.
        s.update(true);
        s.update(true);
        s.update(false);
        s.update(true);
        s.update(true);
        assert_eq!((s.scale(), s.skipped_steps()), (512.0, 2));
        let r = s.report();
        assert_eq!(
            (r.initial_scale, r.final_scale, r.growth_interval, r.skipped_steps),
            (1024.0, 512.0, 3, 2)
        );
        assert_eq!(s.inverse_scale() * s.scale(), 1.0);
    }
}
