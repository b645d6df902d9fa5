//! Learning-rate schedule: linear warm-up then linear decay to zero, as transformers'
//! `get_linear_schedule_with_warmup` (the seed's schedule for every headline run).

use super::plan::Warmup;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearSchedule {
    pub base_lr: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl LinearSchedule {
    /// `Warmup::Ratio(r)` becomes ceil(r * total) steps, as `TrainingArguments.get_warmup_steps`.
    pub fn new(base_lr: f64, warmup: Warmup, total_steps: usize) -> LinearSchedule {
        let warmup_steps = match warmup {
            Warmup::Steps(n) => n,
            Warmup::Ratio(r) => (r * total_steps as f64).ceil() as usize,
        };
        LinearSchedule {
            base_lr,
            warmup_steps,
            total_steps,
        }
    }

    /// The rate for optimiser step `step` (0-based). As in transformers, step 0 of a warm-up
    /// runs at rate 0: the scheduler advances after each optimiser step.
    pub fn lr(&self, step: usize) -> f64 {
        let factor = if step < self.warmup_steps {
            step as f64 / self.warmup_steps.max(1) as f64
        } else {
            let left = self.total_steps.saturating_sub(step) as f64;
            (left / self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64).max(0.0)
        };
        self.base_lr * factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_then_decays_to_zero() {
        // Values of transformers' lr_lambda for warmup 2, total 6: 0, .5, 1, .75, .5, .25.
        let s = LinearSchedule::new(1.0, Warmup::Steps(2), 6);
        let got: Vec<f64> = (0..6).map(|i| s.lr(i)).collect();
        assert_eq!(got, vec![0.0, 0.5, 1.0, 0.75, 0.5, 0.25]);
        assert_eq!(s.lr(6), 0.0);
    }

    #[test]
    fn ratio_rounds_up() {
        assert_eq!(LinearSchedule::new(1.0, Warmup::Ratio(0.1), 5424).warmup_steps, 543);
        assert_eq!(LinearSchedule::new(1.0, Warmup::Ratio(0.0), 10).lr(0), 1.0);
    }
}
