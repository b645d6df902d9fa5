//! Correctness checks of a device against the CPU's f32, on tiny random models of every family
//! (see the module above). Each check is a value against a tolerance, or a condition, and a
//! failure (a tensor error included) is recorded rather than stopping the rest, so one run
//! reports everything that is wrong.

use super::{tiny_families, TinyFamily};
use crate::error::Result;
use crate::models::device::{GpuInfo, ResolvedDevice};
use crate::models::params::{LoraSettings, Mode, NamedVar, ParamBuilder, Source};
use crate::models::precision::{dtype_name, MASTER_DTYPE};
use crate::models::text::pad_batch;
use crate::models::{build_classifier, SequenceClassifier};
use crate::train::loss::cross_entropy;
use crate::train::loss_scale::LossScaler;
use crate::train::optim::GroupedAdamW;
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// `forward`, `forward-training-ops`, `gradients`, `gradient-parity`, `loss-scaler-overflow`.
    pub check: String,
    pub family: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    pub dtype: String,
    pub passed: bool,
    /// The measured quantity (a relative error) where the check has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub device: String,
    pub gpu: Option<GpuInfo>,
    pub checks: Vec<Check>,
}

impl CheckReport {
    pub fn failed(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.passed).collect()
    }
}

const SEED: u64 = 11;
const N_CLASSES: usize = 3;
/// PyTorch GradScaler's initial scale: what f16 training starts with.
const F16_SCALE: f64 = 65_536.0;

/// Largest |device - CPU f32| of the logits relative to the largest |CPU logit|. f32: the
/// device sums in another order (cuBLAS, fused kernels), nothing more; f16 has an 11-bit
/// significand, bf16 an 8-bit one, and both round every activation of every layer.
pub fn forward_tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => 1e-2,
        DType::BF16 => 6e-2,
        _ => 1e-4,
    }
}

/// Relative L2 error of all the gradients of a full fine-tune against the CPU's f32 ones.
pub fn gradient_tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => 2e-2,
        DType::BF16 => 1.2e-1,
        _ => 1e-4,
    }
}

/// The dtypes worth checking on `device`: f32 and f16 everywhere, bf16 on the CPU and from
/// compute capability 8.0 (below it candle's bf16 kernels are not built and clsbench falls back
/// to f16, see `precision`).
pub fn dtypes_for(device: &ResolvedDevice) -> Vec<DType> {
    match &device.gpu {
        Some(g) if g.compute_capability.0 < 8 => vec![DType::F32, DType::F16],
        _ => vec![DType::F32, DType::F16, DType::BF16],
    }
}

/// Run every check on `device` in each of `dtypes`.
pub fn run(device: &ResolvedDevice, dtypes: &[DType]) -> Result<CheckReport> {
    let mut checks = Vec::new();
    for family in tiny_families()? {
        for &dtype in dtypes {
            for train_ops in [false, true] {
                checks.push(forward_parity(&family, &device.device, dtype, train_ops));
            }
            for mode in modes(&family) {
                checks.push(gradients_reach_every_variable(&family, &device.device, dtype, mode));
            }
            checks.push(gradient_parity(&family, &device.device, dtype));
        }
    }
    if dtypes.contains(&DType::F16) {
        checks.push(loss_scaler_skips_an_overflowing_step(&device.device));
    }
    Ok(CheckReport {
        device: device.label.clone(),
        gpu: device.gpu.clone(),
        checks,
    })
}

fn modes(family: &TinyFamily) -> Vec<Mode> {
    vec![
        Mode::Full,
        Mode::Lora(LoraSettings {
            r: 4,
            alpha: 8.0,
            dropout: 0.1,
            targets: family.lora_targets.iter().map(|s| s.to_string()).collect(),
        }),
        Mode::LinearProbe,
    ]
}

fn method_name(mode: &Mode) -> &'static str {
    match mode {
        Mode::Full => "full",
        Mode::Lora(_) => "lora",
        Mode::LinearProbe => "linear-probe",
        Mode::Inference { .. } => "inference",
    }
}

/// Three sequences of different lengths (padding included), on `device`.
fn batch(family: &TinyFamily, device: &Device) -> Result<(Tensor, Tensor, Vec<usize>)> {
    let seqs: [&[u32]; 3] = [&[1, 5, 9, 13, 2], &[1, 7, 2], &[1, 3, 4, 6, 8, 10, 12, 2]];
    let b = pad_batch(&seqs, 0, family.side, 8, device)?;
    Ok((b.input_ids, b.attention_mask, vec![0, 1, 2]))
}

type Built = (Box<dyn SequenceClassifier>, Vec<NamedVar>);

fn build(family: &TinyFamily, mode: Mode, dtype: DType, device: &Device) -> Result<Built> {
    let p = ParamBuilder::new(Source::Random, mode, dtype, device.clone(), SEED);
    let (model, params) = build_classifier(&family.config, p, N_CLASSES, None)?;
    Ok((model, params.trainable))
}

fn host_f32(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?
        .flatten_all()?
        .to_vec1()?)
}

fn max_abs(v: &[f32]) -> f64 {
    v.iter().fold(0f64, |m, x| m.max((*x as f64).abs()))
}

fn finish(check: &str, family: &TinyFamily, method: Option<&str>, dtype: DType, outcome: Result<Outcome>) -> Check {
    let (passed, value, tolerance, detail) = match outcome {
        Ok(o) => (o.passed, o.value, o.tolerance, o.detail),
        Err(e) => (false, None, None, format!("error: {}", e.message())),
    };
    Check {
        check: check.to_string(),
        family: family.name.to_string(),
        method: method.map(str::to_string),
        dtype: dtype_name(dtype).to_string(),
        passed,
        value,
        tolerance,
        detail,
    }
}

struct Outcome {
    passed: bool,
    value: Option<f64>,
    tolerance: Option<f64>,
    detail: String,
}

fn within(value: f64, tolerance: f64, what: &str) -> Outcome {
    Outcome {
        passed: value.is_finite() && value <= tolerance,
        value: Some(value),
        tolerance: Some(tolerance),
        detail: format!("{what} {value:.3e} (tolerance {tolerance:.0e})"),
    }
}

/// The device's logits in `dtype` against the CPU's in f32, same random weights; with
/// `train_ops`, through the differentiable ops training uses (dropout masks come from the same
/// seeded stream on both).
pub fn forward_parity(family: &TinyFamily, device: &Device, dtype: DType, train_ops: bool) -> Check {
    let outcome = (|| -> Result<Outcome> {
        let logits = |dev: &Device, dt: DType| -> Result<Vec<f32>> {
            let (model, _) = build(family, Mode::Inference { lora: None }, dt, dev)?;
            let (ids, mask, _) = batch(family, dev)?;
            host_f32(&model.forward(&ids, &mask, train_ops)?)
        };
        let want = logits(&Device::Cpu, DType::F32)?;
        let got = logits(device, dtype)?;
        let diff: Vec<f32> = got.iter().zip(&want).map(|(a, b)| a - b).collect();
        let rel = max_abs(&diff) / max_abs(&want).max(1e-12);
        Ok(within(
            rel,
            forward_tolerance(dtype),
            "max |logit difference| / max |logit|",
        ))
    })();
    let name = if train_ops { "forward-training-ops" } else { "forward" };
    finish(name, family, None, dtype, outcome)
}

/// Backward of the (scaled, for f16) loss; gradients of the trainable variables, unscaled.
fn gradients(
    model: &dyn SequenceClassifier,
    family: &TinyFamily,
    device: &Device,
    scale: Option<f64>,
) -> Result<(f64, GradStore)> {
    let (ids, mask, labels) = batch(family, device)?;
    let loss = cross_entropy(&model.forward(&ids, &mask, true)?, &labels, None)?;
    let value = loss.to_scalar::<f32>()? as f64;
    let grads = match scale {
        None => loss.backward()?,
        Some(s) => (loss * s)?.backward()?,
    };
    Ok((value, grads))
}

/// One AdamW step (scaled for f16, as training does), then a second backward: every trainable
/// variable must get a gradient, in f32 (the master dtype), finite and not all zero. (The step
/// first: LoRA's B starts at zero, and A's gradient with it.) In f16 the loss scaler does what
/// it does in training: a backward whose scaled gradients overflow is dropped and the scale
/// halved, at most 16 times.
pub fn gradients_reach_every_variable(family: &TinyFamily, device: &Device, dtype: DType, mode: Mode) -> Check {
    let method = method_name(&mode);
    let outcome = (|| -> Result<Outcome> {
        let (model, vars) = build(family, mode, dtype, device)?;
        let mut opt = GroupedAdamW::new(&vars, 1e-2, 0.01, false)?;
        let mut scaler = (dtype == DType::F16).then(|| LossScaler::new(F16_SCALE, 2.0, 0.5, 2000));
        let mut stepped = false;
        for _ in 0..16 {
            let (_, grads) = gradients(model.as_ref(), family, device, scaler.as_ref().map(|s| s.scale()))?;
            opt.accumulate(&grads)?;
            drop(grads);
            stepped = match scaler.as_mut() {
                None => opt.step(1e-2, Some(1.0)).map(|_| true)?,
                Some(s) => opt.step_scaled(1e-2, Some(1.0), s)?.is_some(),
            };
            if stepped {
                break;
            }
        }
        if !stepped {
            return Ok(Outcome {
                passed: false,
                value: None,
                tolerance: None,
                detail: "no step was taken: every scaled backward overflowed".into(),
            });
        }
        let mut problems = Vec::new();
        let mut unscaled: Option<Vec<(String, Option<Tensor>)>> = None;
        for _ in 0..16 {
            let scale = scaler.as_ref().map(|s| s.scale());
            let (_, grads) = gradients(model.as_ref(), family, device, scale)?;
            let mut all = Vec::with_capacity(vars.len());
            let mut finite = true;
            for v in &vars {
                let g = match grads.get(v.var.as_tensor()) {
                    Some(g) => Some(match scale {
                        Some(s) => (g / s)?,
                        None => g.clone(),
                    }),
                    None => None,
                };
                if let Some(g) = &g {
                    finite &= host_f32(g)?.iter().all(|x| x.is_finite());
                }
                all.push((v.name.clone(), g));
            }
            match scaler.as_mut() {
                Some(s) if !finite => {
                    s.update(false);
                }
                _ => {
                    unscaled = Some(all);
                    break;
                }
            }
        }
        let Some(unscaled) = unscaled else {
            return Ok(Outcome {
                passed: false,
                value: None,
                tolerance: None,
                detail: "every scaled backward overflowed".into(),
            });
        };
        for (name, g) in &unscaled {
            match g {
                None => problems.push(format!("{name}: no gradient")),
                Some(g) if g.dtype() != MASTER_DTYPE => {
                    problems.push(format!("{name}: gradient in {:?}, not f32", g.dtype()))
                }
                Some(g) => {
                    let values = host_f32(g)?;
                    if values.iter().any(|x| !x.is_finite()) {
                        problems.push(format!("{name}: non-finite gradient"));
                    } else if max_abs(&values) == 0.0 {
                        problems.push(format!("{name}: zero gradient"));
                    }
                }
            }
        }
        let scaled = scaler
            .as_ref()
            .map(|s| {
                format!(
                    " (loss scale {}, {} overflowing backward(s) skipped)",
                    s.scale(),
                    s.skipped_steps()
                )
            })
            .unwrap_or_default();
        Ok(Outcome {
            passed: problems.is_empty() && !vars.is_empty(),
            value: Some(vars.len() as f64),
            tolerance: None,
            detail: if problems.is_empty() {
                format!(
                    "{} trainable variables, each with a finite non-zero f32 gradient{scaled}",
                    vars.len()
                )
            } else {
                problems.join("; ")
            },
        })
    })();
    finish("gradients", family, Some(method), dtype, outcome)
}

/// Full fine-tune gradients on the device in `dtype` (f16: scaled by 2^16 and unscaled, as
/// training does) against the CPU's in f32: relative L2 error over all of them.
pub fn gradient_parity(family: &TinyFamily, device: &Device, dtype: DType) -> Check {
    let outcome = (|| -> Result<Outcome> {
        // (gradients, the loss scale they were taken at); f16 halves the scale after an
        // overflowing backward, as the scaler does in training.
        let flat = |dev: &Device, dt: DType| -> Result<(Vec<f32>, Option<f64>)> {
            let (model, vars) = build(family, Mode::Full, dt, dev)?;
            let mut scale = (dt == DType::F16).then_some(F16_SCALE);
            for _ in 0..16 {
                let (_, grads) = gradients(model.as_ref(), family, dev, scale)?;
                let mut out = Vec::new();
                for v in &vars {
                    let g = grads
                        .get(v.var.as_tensor())
                        .ok_or_else(|| crate::Error::Model(format!("{}: no gradient", v.name)))?;
                    let g = match scale {
                        Some(s) => (g / s)?,
                        None => g.clone(),
                    };
                    out.extend(host_f32(&g)?);
                }
                match scale {
                    Some(s) if out.iter().any(|x| !x.is_finite()) => scale = Some(s / 2.0),
                    _ => return Ok((out, scale)),
                }
            }
            Err(crate::Error::Model("every scaled backward overflowed".into()))
        };
        let (want, _) = flat(&Device::Cpu, DType::F32)?;
        let (got, scale) = flat(device, dtype)?;
        if got.len() != want.len() {
            return Ok(Outcome {
                passed: false,
                value: None,
                tolerance: None,
                detail: format!("{} gradient values on the device, {} on the CPU", got.len(), want.len()),
            });
        }
        let (mut num, mut den) = (0f64, 0f64);
        for (a, b) in got.iter().zip(&want) {
            num += ((a - b) as f64).powi(2);
            den += (*b as f64).powi(2);
        }
        let rel = (num / den.max(1e-300)).sqrt();
        let mut o = within(
            rel,
            gradient_tolerance(dtype),
            "||grad - grad_cpu_f32|| / ||grad_cpu_f32||",
        );
        if let Some(s) = scale {
            o.detail.push_str(&format!(" at loss scale {s}"));
        }
        Ok(o)
    })();
    finish("gradient-parity", family, Some("full"), dtype, outcome)
}

/// f16 with a loss scale so large that the backward overflows: the step is skipped (weights,
/// bit for bit, and step count unchanged), the scale halves, one skipped step is counted; with
/// a sane scale the next step is taken.
pub fn loss_scaler_skips_an_overflowing_step(device: &Device) -> Check {
    let family = tiny_families()
        .ok()
        .and_then(|f| f.into_iter().find(|f| f.name == "qwen2"));
    let Some(family) = family else {
        return Check {
            check: "loss-scaler-overflow".into(),
            family: "qwen2".into(),
            method: Some("lora".into()),
            dtype: "f16".into(),
            passed: false,
            value: None,
            tolerance: None,
            detail: "the tiny qwen2 config did not parse".into(),
        };
    };
    let outcome = (|| -> Result<Outcome> {
        let mode = modes(&family).remove(1);
        let (model, vars) = build(&family, mode, DType::F16, device)?;
        let mut opt = GroupedAdamW::new(&vars, 1e-2, 0.01, false)?;
        // The logits' gradient is scale x (p - y) / batch: at 2^24 it is far past f16's 65504.
        let huge = 16_777_216.0;
        let mut scaler = LossScaler::new(huge, 2.0, 0.5, 2000);
        let before: Vec<Vec<f32>> = vars
            .iter()
            .map(|v| host_f32(v.var.as_tensor()))
            .collect::<Result<_>>()?;
        let (_, grads) = gradients(model.as_ref(), &family, device, Some(scaler.scale()))?;
        opt.accumulate(&grads)?;
        drop(grads);
        let skipped = opt.step_scaled(1e-2, None, &mut scaler)?.is_none();
        let after: Vec<Vec<f32>> = vars
            .iter()
            .map(|v| host_f32(v.var.as_tensor()))
            .collect::<Result<_>>()?;
        let unchanged = before
            .iter()
            .zip(&after)
            .all(|(a, b)| a.iter().map(|x| x.to_bits()).eq(b.iter().map(|x| x.to_bits())));
        let halved = scaler.scale() == huge / 2.0 && scaler.skipped_steps() == 1;
        let mut sane = LossScaler::new(1024.0, 2.0, 0.5, 2000);
        let (_, grads) = gradients(model.as_ref(), &family, device, Some(sane.scale()))?;
        opt.accumulate(&grads)?;
        drop(grads);
        let applied = opt.step_scaled(1e-2, None, &mut sane)?.is_some();
        let moved: Vec<Vec<f32>> = vars
            .iter()
            .map(|v| host_f32(v.var.as_tensor()))
            .collect::<Result<_>>()?;
        let changed = after.iter().zip(&moved).any(|(a, b)| a != b);
        Ok(Outcome {
            passed: skipped && unchanged && halved && applied && changed,
            value: Some(scaler.scale()),
            tolerance: None,
            detail: format!(
                "at scale 2^24: step skipped {skipped}, weights unchanged {unchanged}, scale -> {} and skipped steps {}; \
                 at scale 1024: step taken {applied}, weights changed {changed}",
                scaler.scale(),
                scaler.skipped_steps()
            ),
        })
    })();
    finish("loss-scaler-overflow", &family, Some("lora"), DType::F16, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::device::{DeviceRequest, ResolvedDevice};

    /// The same checks the GPU runs, on the CPU against itself: f32 must agree exactly in
    /// forward and gradients (it is the same computation), and the f16 / bf16 paths (candle's
    /// CPU kernels have both) must pass the tolerances the GPU is held to.
    #[test]
    fn every_check_passes_on_the_cpu_in_f32_f16_and_bf16() {
        let cpu = ResolvedDevice::cpu(DeviceRequest::Cpu);
        let report = run(&cpu, &[DType::F32, DType::F16, DType::BF16]).unwrap();
        // 4 families x 3 dtypes x (2 forward + 3 methods + 1 parity) + the scaler check.
        assert_eq!(report.checks.len(), 4 * 3 * 6 + 1);
        let failed: Vec<String> = report
            .failed()
            .iter()
            .map(|c| format!("{} {} {:?} {}: {}", c.check, c.family, c.method, c.dtype, c.detail))
            .collect();
        assert!(failed.is_empty(), "{failed:#?}");
        for c in report
            .checks
            .iter()
            .filter(|c| c.dtype == "f32" && c.check.contains("forward"))
        {
            assert_eq!(
                c.value,
                Some(0.0),
                "{} {}: the CPU against itself in f32",
                c.check,
                c.family
            );
        }
        for c in report
            .checks
            .iter()
            .filter(|c| c.dtype != "f32" && c.value.is_some() && c.tolerance.is_some())
        {
            // Half precision does round: a zero here would mean the dtype never reached the model.
            assert!(
                c.value.unwrap() > 0.0,
                "{} {} {}: exactly equal to f32",
                c.check,
                c.family,
                c.dtype
            );
        }
    }
}
