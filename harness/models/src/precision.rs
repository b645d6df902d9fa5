//! Mixed precision as PyTorch's autocast + GradScaler and PEFT give it, resolved from a model's
//! `dtype` field and the device:
//!
//! - the frozen weights and the activations are in the *compute* dtype (f32, f16 or bf16);
//! - every trainable tensor (LoRA adapters, the head, all weights under full fine-tuning) is
//!   kept in f32 (the *master* copy, which the optimiser updates, with its moments in f32 too)
//!   and cast to the compute dtype where it is used, a differentiable cast, so gradients arrive
//!   in f32;
//! - the loss is computed in f32 from logits cast up;
//! - f16 training scales the loss dynamically (train/loss_scale.rs), since f16 gradients
//!   underflow; bf16 has f32's exponent range and needs no scaling.
//!
//! `auto` (the default): f32 on the CPU; on a GPU bf16 from compute capability 8.0 (Ampere)
//! on, f16 before it (T4: 7.5). bf16 asked of a GPU below 8.0 falls back to f16 and says so
//! (its tensor cores have no bf16, and candle's bf16 WMMA kernels need sm_80). f16 / bf16 on
//! the CPU run (candle's CPU kernels have both), slowly: that is how the half-precision paths
//! are tested without a GPU.

use super::device::ResolvedDevice;
use candle_core::DType;
use serde::{Deserialize, Serialize};

/// A model's `dtype` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DTypeRequest {
    #[default]
    Auto,
    F32,
    F16,
    Bf16,
}

impl DTypeRequest {
    pub fn parse(s: &str) -> std::result::Result<DTypeRequest, String> {
        match s {
            "auto" => Ok(DTypeRequest::Auto),
            "f32" => Ok(DTypeRequest::F32),
            "f16" => Ok(DTypeRequest::F16),
            "bf16" => Ok(DTypeRequest::Bf16),
            other => Err(format!(
                "expected \"auto\", \"f32\", \"f16\" or \"bf16\", got {other:?}"
            )),
        }
    }
}

impl DTypeRequest {
    pub fn as_str(self) -> &'static str {
        match self {
            DTypeRequest::Auto => "auto",
            DTypeRequest::F32 => "f32",
            DTypeRequest::F16 => "f16",
            DTypeRequest::Bf16 => "bf16",
        }
    }
}

impl Serialize for DTypeRequest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The resolved precision of one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Precision {
    /// Frozen weights and activations.
    pub compute: DType,
    /// Scale the loss dynamically (f16 only).
    pub loss_scaling: bool,
}

/// The dtype of trainable tensors, their gradients, the optimiser state and the loss.
pub const MASTER_DTYPE: DType = DType::F32;

/// A precision with the reason it is not what was asked, when it is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPrecision {
    pub precision: Precision,
    pub note: Option<String>,
}

pub fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        DType::F64 => "f64",
        _ => "other",
    }
}

impl Precision {
    pub fn of(compute: DType) -> Precision {
        Precision {
            compute,
            loss_scaling: compute == DType::F16,
        }
    }
}

/// `request` on a device of compute capability `cc` (`None`: the CPU).
pub fn resolve_for(request: DTypeRequest, cc: Option<(u32, u32)>) -> ResolvedPrecision {
    let plain = |dtype| ResolvedPrecision {
        precision: Precision::of(dtype),
        note: None,
    };
    match (request, cc) {
        (DTypeRequest::Auto, None) => plain(DType::F32),
        (DTypeRequest::Auto, Some((major, _))) if major >= 8 => plain(DType::BF16),
        (DTypeRequest::Auto, Some(_)) => plain(DType::F16),
        (DTypeRequest::F32, _) => plain(DType::F32),
        (DTypeRequest::F16, _) => plain(DType::F16),
        (DTypeRequest::Bf16, Some((major, minor))) if major < 8 => ResolvedPrecision {
            precision: Precision::of(DType::F16),
            note: Some(format!(
                "dtype bf16 needs compute capability >= 8.0 (Ampere or newer); this GPU is {major}.{minor}: \
                 using f16 with dynamic loss scaling instead"
            )),
        },
        (DTypeRequest::Bf16, _) => plain(DType::BF16),
    }
}

/// A model's `dtype` on a resolved device.
pub fn resolve(request: DTypeRequest, device: &ResolvedDevice) -> ResolvedPrecision {
    let mut r = resolve_for(request, device.gpu.as_ref().map(|g| g.compute_capability));
    if device.device.is_cpu() && r.precision.compute != DType::F32 && r.note.is_none() {
        r.note = Some(format!(
            "dtype {} on the CPU: candle's CPU kernels for it are several times slower than f32",
            dtype_name(r.precision.compute)
        ));
    }
    r
}

/// What results record about a model's precision (`train_report.precision`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrecisionReport {
    /// Frozen weights and activations.
    pub compute_dtype: String,
    /// Trainable tensors, gradients, optimiser state, loss.
    pub master_dtype: String,
    /// Dynamic loss scaling, when it ran (f16 training).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scaling: Option<crate::train::loss_scale::LossScaleReport>,
    /// Why the precision is not what the suite asked for, or what it costs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_f32_on_the_cpu_f16_before_ampere_and_bf16_from_it() {
        let t4 = Some((7, 5));
        let a100 = Some((8, 0));
        let h200 = Some((9, 0));
        assert_eq!(
            resolve_for(DTypeRequest::Auto, None).precision,
            Precision::of(DType::F32)
        );
        assert_eq!(resolve_for(DTypeRequest::Auto, t4).precision.compute, DType::F16);
        assert!(resolve_for(DTypeRequest::Auto, t4).precision.loss_scaling);
        for cc in [a100, h200] {
            let r = resolve_for(DTypeRequest::Auto, cc);
            assert_eq!((r.precision.compute, r.precision.loss_scaling), (DType::BF16, false));
        }
        for cc in [None, t4, h200] {
            assert_eq!(resolve_for(DTypeRequest::F32, cc).precision, Precision::of(DType::F32));
            assert!(!Precision::of(DType::F32).loss_scaling);
        }
    }

    #[test]
    fn bf16_below_compute_capability_8_falls_back_to_f16_and_says_so() {
        let r = resolve_for(DTypeRequest::Bf16, Some((7, 5)));
        assert_eq!(r.precision, Precision::of(DType::F16));
        let note = r.note.unwrap();
        assert!(
            note.contains("compute capability >= 8.0") && note.contains("7.5") && note.contains("f16"),
            "{note}"
        );
        assert_eq!(resolve_for(DTypeRequest::Bf16, Some((8, 6))).note, None);
    }

    #[test]
    fn half_precision_on_the_cpu_runs_with_a_note_and_bad_names_are_refused() {
        let cpu = ResolvedDevice::cpu(super::super::device::DeviceRequest::Cpu);
        let r = resolve(DTypeRequest::Bf16, &cpu);
        assert_eq!(r.precision.compute, DType::BF16);
        assert!(r.note.unwrap().contains("on the CPU"));
        assert_eq!(resolve(DTypeRequest::Auto, &cpu).precision.compute, DType::F32);
        let e = DTypeRequest::parse("fp16").unwrap_err();
        assert!(e.starts_with("expected \"auto\"") && e.contains("\"fp16\""), "{e}");
    }
}
