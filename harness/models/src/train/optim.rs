//! AdamW with two parameter groups (decayed / not decayed), gradient accumulation across
//! micro-batches and global-norm clipping. The update is PyTorch's (decoupled decay
//! theta *= 1 - lr*wd, then the bias-corrected Adam step), written out here with candle_nn's
//! `AdamW` arithmetic, op for op, rather than calling it: candle's optimiser keeps its moments
//! and step count private, so an epoch checkpoint could neither save nor restore them, and it
//! has no parameter groups.

use super::loss_scale::{LossScaler, StepDecision};
use crate::error::{Error, Result};
use crate::params::{hf_no_decay, NamedVar};
use candle_core::backprop::GradStore;
use candle_core::Tensor;

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

pub struct GroupedAdamW {
    vars: Vec<NamedVar>,
    decayed: Vec<bool>,
    weight_decay: f64,
    /// First and second moments, one pair per variable, in the variable's dtype.
    moments: Vec<(Tensor, Tensor)>,
    /// Optimiser steps taken (the bias correction's t).
    step_t: usize,
    accumulated: Vec<Option<Tensor>>,
}

/// What a checkpoint needs to continue the optimiser exactly: the moments (by variable name)
/// and the step count. Gradients are not part of it: a checkpoint is taken after a step, when
/// nothing is accumulated.
pub struct AdamWState {
    pub step_t: usize,
    /// (variable name, first moment, second moment).
    pub moments: Vec<(String, Tensor, Tensor)>,
}

/// What one optimiser step saw.
#[derive(Debug, Clone, Copy)]
pub struct StepInfo {
    /// Global L2 norm of the accumulated gradient, before clipping.
    pub grad_norm: f64,
}

impl GroupedAdamW {
    /// `decay_all`: decay every tensor (the seed's custom loops); else HF Trainer's groups.
    /// The learning rate is given to each `step` (the schedule's), so `_lr` is unused.
    pub fn new(vars: &[NamedVar], _lr: f64, weight_decay: f64, decay_all: bool) -> Result<GroupedAdamW> {
        let decayed: Vec<bool> = vars.iter().map(|v| decay_all || !hf_no_decay(&v.name)).collect();
        let moments = vars
            .iter()
            .map(|v| {
                let t = v.var.as_tensor();
                Ok((t.zeros_like()?, t.zeros_like()?))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GroupedAdamW {
            vars: vars.to_vec(),
            decayed,
            weight_decay,
            moments,
            step_t: 0,
            accumulated: vec![None; vars.len()],
        })
    }

    /// The moments and step count, for a checkpoint. The tensors are shared, not copied: a
    /// step replaces the moments with new tensors and never writes into the old ones.
    pub fn state(&self) -> AdamWState {
        let moments = self
            .vars
            .iter()
            .zip(&self.moments)
            .map(|(v, (m, s))| (v.name.clone(), m.clone(), s.clone()))
            .collect();
        AdamWState {
            step_t: self.step_t,
            moments,
        }
    }

    /// Continue from a checkpoint's state: every variable's moments must be there, with its
    /// shape and dtype.
    pub fn restore(&mut self, state: AdamWState) -> Result<()> {
        let mut by_name: std::collections::HashMap<String, (Tensor, Tensor)> =
            state.moments.into_iter().map(|(n, m, v)| (n, (m, v))).collect();
        for (var, slot) in self.vars.iter().zip(self.moments.iter_mut()) {
            let (m, v) = by_name
                .remove(&var.name)
                .ok_or_else(|| Error::Model(format!("optimiser state lacks the moments of `{}`", var.name)))?;
            let t = var.var.as_tensor();
            for x in [&m, &v] {
                if x.dims() != t.dims() || x.dtype() != t.dtype() {
                    return Err(Error::Model(format!(
                        "optimiser state for `{}` is {:?} {:?}, the variable is {:?} {:?}",
                        var.name,
                        x.dtype(),
                        x.dims(),
                        t.dtype(),
                        t.dims()
                    )));
                }
            }
            *slot = (m.to_device(t.device())?, v.to_device(t.device())?);
        }
        self.step_t = state.step_t;
        self.accumulated.iter_mut().for_each(|g| *g = None);
        Ok(())
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
        let grad_norm = self.grad_norm()?;
        if !grad_norm.is_finite() {
            self.discard_gradients();
            return Err(Error::Model(format!("gradient norm is {grad_norm}")));
        }
        self.apply(lr, clip, grad_norm)
    }

    /// The step of f16 training (see `loss_scale`): divide the accumulated gradients by the
    /// loss scale, then step when every one is finite, else drop them and leave the weights,
    /// moments and step count as they are (`None`). The scaler is updated either way.
    pub fn step_scaled(&mut self, lr: f64, clip: Option<f64>, scaler: &mut LossScaler) -> Result<Option<StepInfo>> {
        let inverse = scaler.inverse_scale();
        for g in self.accumulated.iter_mut() {
            if let Some(t) = g.take() {
                *g = Some((t * inverse)?);
            }
        }
        let grad_norm = self.grad_norm()?;
        match scaler.update(grad_norm.is_finite()) {
            StepDecision::Skip => {
                self.discard_gradients();
                Ok(None)
            }
            StepDecision::Apply => self.apply(lr, clip, grad_norm).map(Some),
        }
    }

    /// Drop the accumulated gradients (a skipped or failed step).
    pub fn discard_gradients(&mut self) {
        self.accumulated.iter_mut().for_each(|g| *g = None);
    }

    /// Global L2 norm of the accumulated gradients, summed in f64; non-finite when any
    /// gradient holds an inf or NaN.
    fn grad_norm(&self) -> Result<f64> {
        let mut sq = 0f64;
        for g in self.accumulated.iter().flatten() {
            sq += g
                .sqr()?
                .sum_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?;
        }
        Ok(sq.sqrt())
    }

    fn apply(&mut self, lr: f64, clip: Option<f64>, grad_norm: f64) -> Result<StepInfo> {
        let scale = clip.and_then(|max| clip_factor(grad_norm, max));
        // candle_nn's AdamW::step, op for op (so results equal what it computed).
        self.step_t += 1;
        let scale_m = 1f64 / (1f64 - BETA1.powi(self.step_t as i32));
        let scale_v = 1f64 / (1f64 - BETA2.powi(self.step_t as i32));
        for (i, slot) in self.accumulated.iter_mut().enumerate() {
            let Some(g) = slot.take() else { continue };
            let g = match scale {
                Some(s) => (g * s)?,
                None => g,
            };
            let lambda = if self.decayed[i] { self.weight_decay } else { 0.0 };
            let theta = &self.vars[i].var;
            let (m, v) = &self.moments[i];
            let next_m = ((m * BETA1)? + (&g * (1.0 - BETA1))?)?;
            let next_v = ((v * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
            let m_hat = (&next_m * scale_m)?;
            let v_hat = (&next_v * scale_v)?;
            let next_theta = (theta.as_tensor() * (1f64 - lr * lambda))?;
            let adjusted_grad = (m_hat / (v_hat.sqrt()? + EPS)?)?;
            let next_theta = (next_theta - (adjusted_grad * lr)?)?;
            theta.set(&next_theta)?;
            self.moments[i] = (next_m, next_v);
        }
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
    use crate::params::ParamKind;
    use candle_core::{Device, Var};

    fn named(name: &str, values: &[f32]) -> NamedVar {
        NamedVar {
            name: name.into(),
            var: Var::new(values, &Device::Cpu).unwrap(),
            kind: ParamKind::Base,
        }
    }

    /// A variable's values as bit patterns, for bit-for-bit comparisons.
    fn bits(v: &NamedVar) -> Vec<u32> {
        v.var
            .as_tensor()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect()
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

    /// Three steps of a quadratic loss on `w` (decayed) and `b` (not decayed).
    fn run_steps(opt: &mut GroupedAdamW, w: &NamedVar, b: &NamedVar, steps: usize) {
        for i in 0..steps {
            let loss = ((w.var.as_tensor().sqr().unwrap() * (1.0 + i as f64))
                .unwrap()
                .sum_all()
                .unwrap()
                + (b.var.as_tensor() * -1.0).unwrap().sum_all().unwrap())
            .unwrap();
            opt.accumulate(&loss.backward().unwrap()).unwrap();
            opt.step(0.05 / (1.0 + i as f64), Some(2.0)).unwrap();
        }
    }

    #[test]
    fn updates_equal_candle_nn_adamw_bit_for_bit() {
        use candle_nn::{AdamW, Optimizer as _, ParamsAdamW};
        let (w, b) = (named("layer.weight", &[1.0, -2.0, 0.3]), named("layer.bias", &[0.5]));
        let mut ours = GroupedAdamW::new(&[w.clone(), b.clone()], 0.05, 0.1, false).unwrap();
        run_steps(&mut ours, &w, &b, 4);
        // The same with candle_nn's AdamW, one instance per group, clipping done by hand.
        let (w2, b2) = (named("layer.weight", &[1.0, -2.0, 0.3]), named("layer.bias", &[0.5]));
        let params = |wd| ParamsAdamW {
            lr: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: wd,
        };
        let mut decay = AdamW::new(vec![w2.var.clone()], params(0.1)).unwrap();
        let mut no_decay = AdamW::new(vec![b2.var.clone()], params(0.0)).unwrap();
        for i in 0..4 {
            let loss = ((w2.var.as_tensor().sqr().unwrap() * (1.0 + i as f64))
                .unwrap()
                .sum_all()
                .unwrap()
                + (b2.var.as_tensor() * -1.0).unwrap().sum_all().unwrap())
            .unwrap();
            let grads = loss.backward().unwrap();
            let (gw, gb) = (
                grads.get(w2.var.as_tensor()).unwrap(),
                grads.get(b2.var.as_tensor()).unwrap(),
            );
            let norm = (gw
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_dtype(candle_core::DType::F64)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
                + gb.sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_dtype(candle_core::DType::F64)
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap())
            .sqrt();
            let mut store = GradStore::default();
            for (v, g) in [(&w2, gw), (&b2, gb)] {
                let g = match clip_factor(norm, 2.0) {
                    Some(s) => (g * s).unwrap(),
                    None => g.clone(),
                };
                store.insert(v.var.as_tensor(), g);
            }
            decay.set_learning_rate(0.05 / (1.0 + i as f64));
            no_decay.set_learning_rate(0.05 / (1.0 + i as f64));
            decay.step(&store).unwrap();
            no_decay.step(&store).unwrap();
        }
        assert_eq!(bits(&w), bits(&w2));
        assert_eq!(bits(&b), bits(&b2));
    }

    #[test]
    fn restored_state_continues_as_if_never_stopped() {
        let (w, b) = (named("layer.weight", &[1.0, -2.0, 0.3]), named("layer.bias", &[0.5]));
        let mut straight = GroupedAdamW::new(&[w.clone(), b.clone()], 0.05, 0.1, false).unwrap();
        run_steps(&mut straight, &w, &b, 2);
        let state = straight.state();
        let (w_mid, b_mid) = (w.var.as_tensor().copy().unwrap(), b.var.as_tensor().copy().unwrap());
        run_steps(&mut straight, &w, &b, 2);
        // A fresh optimiser on fresh variables, given the mid-run weights and state.
        let (w2, b2) = (named("layer.weight", &[0.0, 0.0, 0.0]), named("layer.bias", &[0.0]));
        w2.var.set(&w_mid).unwrap();
        b2.var.set(&b_mid).unwrap();
        let mut resumed = GroupedAdamW::new(&[w2.clone(), b2.clone()], 0.05, 0.1, false).unwrap();
        resumed.restore(state).unwrap();
        run_steps(&mut resumed, &w2, &b2, 2);
        assert_eq!(bits(&w), bits(&w2));
        assert_eq!(bits(&b), bits(&b2));
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
