//! AdamW with two parameter groups (decayed / not decayed), gradient accumulation across
//! micro-batches and global-norm clipping. The update itself is candle_nn's `AdamW`, which is
//! PyTorch's (decoupled decay theta *= 1 - lr*wd, then the bias-corrected Adam step); one
//! instance per group because candle's optimiser has no parameter groups.

use crate::error::{Error, Result};
use crate::models::params::{hf_no_decay, NamedVar};
use candle_core::backprop::GradStore;
use candle_core::Tensor;
use candle_nn::{AdamW, Optimizer as _, ParamsAdamW};

pub struct GroupedAdamW {
    vars: Vec<NamedVar>,
    decayed: Vec<bool>,
    decay: AdamW,
    no_decay: AdamW,
    accumulated: Vec<Option<Tensor>>,
}

/// What one optimiser step saw.
#[derive(Debug, Clone, Copy)]
pub struct StepInfo {
    /// Global L2 norm of the accumulated gradient, before clipping.
    pub grad_norm: f64,
}

impl GroupedAdamW {
    /// `decay_all`: decay every tensor (the seed's custom loops); else HF Trainer's groups.
    pub fn new(vars: &[NamedVar], lr: f64, weight_decay: f64, decay_all: bool) -> Result<GroupedAdamW> {
        let decayed: Vec<bool> = vars.iter().map(|v| decay_all || !hf_no_decay(&v.name)).collect();
        let pick = |want: bool| -> Vec<candle_core::Var> {
            vars.iter()
                .zip(&decayed)
                .filter(|(_, &d)| d == want)
                .map(|(v, _)| v.var.clone())
                .collect()
        };
        let params = |wd: f64| ParamsAdamW {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: wd,
        };
        Ok(GroupedAdamW {
            vars: vars.to_vec(),
            decay: AdamW::new(pick(true), params(weight_decay))?,
            no_decay: AdamW::new(pick(false), params(0.0))?,
            decayed,
            accumulated: vec![None; vars.len()],
        })
    }

    pub fn n_decayed(&self) -> usize {
        self.vars
            .iter()
            .zip(&self.decayed)
            .filter(|(_, &d)| d)
            .map(|(v, _)| v.var.elem_count())
            .sum()
    }

    /// Add one micro-batch's gradients (of our variables only; the rest of the store, which
    /// can be large, is dropped by the caller).
    pub fn accumulate(&mut self, grads: &GradStore) -> Result<()> {
        for (slot, v) in self.accumulated.iter_mut().zip(&self.vars) {
            if let Some(g) = grads.get(v.var.as_tensor()) {
                *slot = Some(match slot.take() {
                    Some(acc) => (acc + g)?,
                    None => g.clone(),
                });
            }
        }
        Ok(())
    }

    /// Clip (PyTorch's `clip_grad_norm_`: scale by max_norm / (norm + 1e-6) when that is < 1),
    /// update with learning rate `lr`, and clear the accumulated gradients. A non-finite
    /// gradient norm is an error and leaves the weights untouched.
    pub fn step(&mut self, lr: f64, clip: Option<f64>) -> Result<StepInfo> {
        let mut sq = 0f64;
        for g in self.accumulated.iter().flatten() {
            sq += g
                .sqr()?
                .sum_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?;
        }
        let grad_norm = sq.sqrt();
        if !grad_norm.is_finite() {
            self.accumulated.iter_mut().for_each(|g| *g = None);
            return Err(Error::Model(format!("gradient norm is {grad_norm}")));
        }
        let scale = clip.and_then(|max| clip_factor(grad_norm, max));
        let mut store = GradStore::default();
        for (slot, v) in self.accumulated.iter_mut().zip(&self.vars) {
            if let Some(g) = slot.take() {
                let g = match scale {
                    Some(s) => (g * s)?,
                    None => g,
                };
                store.insert(v.var.as_tensor(), g);
            }
        }
        self.decay.set_learning_rate(lr);
        self.no_decay.set_learning_rate(lr);
        self.decay.step(&store)?;
        self.no_decay.step(&store)?;
        Ok(StepInfo { grad_norm })
    }
}

/// PyTorch's `clip_grad_norm_` factor: max_norm / (norm + 1e-6) when that is below 1.
pub fn clip_factor(grad_norm: f64, max_norm: f64) -> Option<f64> {
    let f = max_norm / (grad_norm + 1e-6);
    (f < 1.0).then_some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::params::ParamKind;
    use candle_core::{Device, Var};

    fn named(name: &str, values: &[f32]) -> NamedVar {
        NamedVar {
            name: name.into(),
            var: Var::new(values, &Device::Cpu).unwrap(),
            kind: ParamKind::Base,
        }
    }

    #[test]
    fn one_step_matches_pytorch_adamw_and_skips_decay_for_bias() {
        // First AdamW step from the update rule: m = (1-b1) g, v = (1-b2) g^2, bias-corrected
        // m_hat = g, v_hat = g^2, so theta' = theta (1 - lr wd) - lr * g / (|g| + eps).
        let w = named("layer.weight", &[1.0, -2.0]);
        let b = named("layer.bias", &[0.5]);
        let mut opt = GroupedAdamW::new(&[w.clone(), b.clone()], 0.1, 0.5, false).unwrap();
        let loss = ((w.var.as_tensor() * 3.0).unwrap().sum_all().unwrap()
            + (b.var.as_tensor() * -1.0).unwrap().sum_all().unwrap())
        .unwrap();
        opt.accumulate(&loss.backward().unwrap()).unwrap();
        let info = opt.step(0.1, None).unwrap();
        assert!((info.grad_norm - (9.0f64 + 9.0 + 1.0).sqrt()).abs() < 1e-6);
        let got_w: Vec<f32> = w.var.as_tensor().to_vec1().unwrap();
        let step = 0.1 * 3.0 / (3.0 + 1e-8);
        assert!(
            (got_w[0] as f64 - (1.0 * (1.0 - 0.05) - step)).abs() < 1e-6,
            "{got_w:?}"
        );
        assert!(
            (got_w[1] as f64 - (-2.0 * (1.0 - 0.05) - step)).abs() < 1e-6,
            "{got_w:?}"
        );
        let got_b: Vec<f32> = b.var.as_tensor().to_vec1().unwrap();
        assert!(
            (got_b[0] as f64 - (0.5 + 0.1)).abs() < 1e-6,
            "bias must not decay: {got_b:?}"
        );
    }

    #[test]
    fn clipping_scales_to_the_max_norm() {
        let w = named("w", &[0.0, 0.0]);
        let mut opt = GroupedAdamW::new(std::slice::from_ref(&w), 0.0, 0.0, false).unwrap();
        let loss = (w.var.as_tensor() * 10.0).unwrap().sum_all().unwrap();
        // Accumulating two micro-batches sums their gradients.
        opt.accumulate(&loss.backward().unwrap()).unwrap();
        opt.accumulate(&loss.backward().unwrap()).unwrap();
        let info = opt.step(0.0, Some(1.0)).unwrap();
        assert!((info.grad_norm - (800.0f64).sqrt()).abs() < 1e-4);
        assert_eq!(clip_factor(0.5, 1.0), None);
        assert!((clip_factor(4.0, 1.0).unwrap() - 1.0 / (4.0 + 1e-6)).abs() < 1e-12);
    }
}
