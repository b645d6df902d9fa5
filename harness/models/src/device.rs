//! Where models run: the suite's `device` field or `clsbench run --device`, resolved once per
//! run into a [`ResolvedDevice`] (one candle `Device`, shared by every model: candle treats two
//! `Device::new_cuda(0)` as different devices) before any model trains, so a bad request is
//! refused up front.
//!
//! `auto` (the default) is the first CUDA GPU when this binary was built with `--features
//! cuda` and the driver reports one, else the CPU. `cuda` / `cuda:N` insist on a GPU: in a build
//! without the feature that is bad input whose message says how to build one, and an index
//! the driver does not list is refused naming it.

use crate::error::{Error, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceRequest {
    /// CUDA when built with it and a GPU is present, else the CPU.
    #[default]
    Auto,
    Cpu,
    /// `cuda` (`None`: GPU 0) or `cuda:N`.
    Cuda(Option<usize>),
}

impl DeviceRequest {
    /// `auto`, `cpu`, `cuda` or `cuda:N`; the error says which forms are accepted.
    pub fn parse(s: &str) -> std::result::Result<DeviceRequest, String> {
        let expected = || format!("expected \"auto\", \"cpu\", \"cuda\" or \"cuda:N\" (N a GPU index), got {s:?}");
        match s {
            "auto" => Ok(DeviceRequest::Auto),
            "cpu" => Ok(DeviceRequest::Cpu),
            "cuda" => Ok(DeviceRequest::Cuda(None)),
            other => match other.strip_prefix("cuda:") {
                Some(n) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => {
                    n.parse().map(|i| DeviceRequest::Cuda(Some(i))).map_err(|_| expected())
                }
                _ => Err(expected()),
            },
        }
    }
}

impl std::fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceRequest::Auto => f.write_str("auto"),
            DeviceRequest::Cpu => f.write_str("cpu"),
            DeviceRequest::Cuda(None) => f.write_str("cuda"),
            DeviceRequest::Cuda(Some(i)) => write!(f, "cuda:{i}"),
        }
    }
}

/// What the driver says about the GPU a run uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    pub ordinal: usize,
    pub name: String,
    /// (major, minor), e.g. (7, 5) for a T4, (9, 0) for an H100 / H200.
    pub compute_capability: (u32, u32),
    pub memory_bytes: u64,
}

impl GpuInfo {
    pub fn compute_capability_string(&self) -> String {
        format!("{}.{}", self.compute_capability.0, self.compute_capability.1)
    }
}

/// The device of a run, resolved once.
#[derive(Debug, Clone)]
pub struct ResolvedDevice {
    pub device: Device,
    /// `cpu` or `cuda:N`: what results record.
    pub label: String,
    pub gpu: Option<GpuInfo>,
    pub requested: DeviceRequest,
    /// Why `auto` chose the CPU in a CUDA build (no driver, no GPU), for the run's log.
    pub note: Option<String>,
}

impl ResolvedDevice {
    pub fn cpu(requested: DeviceRequest) -> ResolvedDevice {
        ResolvedDevice {
            device: Device::Cpu,
            label: "cpu".into(),
            gpu: None,
            requested,
            note: None,
        }
    }

    pub fn is_cuda(&self) -> bool {
        self.device.is_cuda()
    }

    /// Wait for the device's queued work (a no-op on the CPU): timings read clocks after it.
    pub fn synchronize(&self) -> Result<()> {
        Ok(self.device.synchronize()?)
    }
}

/// How to get a CUDA build; every message that refuses `cuda` in a CPU build says it.
pub const HOW_TO_BUILD_CUDA: &str = "build one with `make build-cuda` (tools/build-cuda.sh: nvcc and the CUDA libraries from PyPI wheels) \
     or `cargo build --release -p clsbench --features cuda` with nvcc installed and CUDA_COMPUTE_CAP set (README \"GPU\")";

/// The decision, apart from creating the device (so every branch is tested without a GPU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Cpu { note: Option<String> },
    Cuda(usize),
}

/// Decide where to run. `cuda_built`: this binary has the `cuda` feature; `devices`: the
/// driver's device count, or why it could not be asked. `what` names the setting in errors
/// (`--device` or the suite field).
pub fn choose(
    request: DeviceRequest,
    cuda_built: bool,
    devices: &std::result::Result<usize, String>,
    what: &str,
) -> Result<Choice> {
    match request {
        DeviceRequest::Cpu => Ok(Choice::Cpu { note: None }),
        DeviceRequest::Auto if !cuda_built => Ok(Choice::Cpu { note: None }),
        DeviceRequest::Auto => match devices {
            Ok(n) if *n > 0 => Ok(Choice::Cuda(0)),
            Ok(_) => Ok(Choice::Cpu {
                note: Some("device auto: the CUDA driver lists no GPU; running on the CPU".into()),
            }),
            Err(e) => Ok(Choice::Cpu {
                note: Some(format!("device auto: CUDA is unavailable ({e}); running on the CPU")),
            }),
        },
        DeviceRequest::Cuda(index) => {
            if !cuda_built {
                return Err(Error::bad_input(format!(
                    "{what} = {request}: this clsbench was built without CUDA; {HOW_TO_BUILD_CUDA}"
                )));
            }
            let index = index.unwrap_or(0);
            match devices {
                Err(e) => Err(Error::Environment(format!(
                    "{what} = {request}: CUDA is unavailable on this machine ({e}); check the NVIDIA driver (nvidia-smi) or use --device cpu"
                ))),
                Ok(0) => Err(Error::Environment(format!(
                    "{what} = {request}: the CUDA driver lists no GPU on this machine; use --device cpu"
                ))),
                Ok(n) if index >= *n => Err(Error::bad_input(format!(
                    "{what} = {request}: GPU {index} does not exist: this machine has {n} CUDA device(s), cuda:0 to cuda:{}",
                    n - 1
                ))),
                Ok(_) => Ok(Choice::Cuda(index)),
            }
        }
    }
}

/// Resolve `request` on this machine; `what` names the setting in errors.
pub fn resolve(request: DeviceRequest, what: &str) -> Result<ResolvedDevice> {
    let devices = if cfg!(feature = "cuda") && request != DeviceRequest::Cpu {
        cuda_device_count()
    } else {
        Ok(0)
    };
    match choose(request, cfg!(feature = "cuda"), &devices, what)? {
        Choice::Cpu { note } => Ok(ResolvedDevice {
            note,
            ..ResolvedDevice::cpu(request)
        }),
        Choice::Cuda(ordinal) => open_cuda(ordinal, request, what),
    }
}

#[cfg(feature = "cuda")]
fn cuda_device_count() -> std::result::Result<usize, String> {
    use candle_core::cuda_backend::cudarc::driver::CudaContext;
    CudaContext::device_count()
        .map(|n| n.max(0) as usize)
        .map_err(|e| format!("{e:?}"))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device_count() -> std::result::Result<usize, String> {
    Err("this binary was built without the cuda feature".into())
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize, requested: DeviceRequest, what: &str) -> Result<ResolvedDevice> {
    let device = Device::new_cuda(ordinal).map_err(|e| {
        Error::Environment(format!(
            "{what} = {requested}: cannot open GPU {ordinal}: {}",
            crate::error::candle_message(e)
        ))
    })?;
    let gpu = gpu_info(&device)
        .map_err(|e| Error::Environment(format!("{what} = {requested}: cannot query GPU {ordinal}: {e}")))?;
    Ok(ResolvedDevice {
        device,
        label: format!("cuda:{ordinal}"),
        gpu: Some(gpu),
        requested,
        note: None,
    })
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(ordinal: usize, requested: DeviceRequest, what: &str) -> Result<ResolvedDevice> {
    // `choose` never picks CUDA in a build without it.
    Err(Error::bad_input(format!(
        "{what} = {requested}: GPU {ordinal} asked of a build without CUDA; {HOW_TO_BUILD_CUDA}"
    )))
}

/// Name, compute capability and memory of a CUDA device, from the driver.
#[cfg(feature = "cuda")]
pub fn gpu_info(device: &Device) -> std::result::Result<GpuInfo, String> {
    let cuda = device.as_cuda_device().map_err(|e| e.to_string())?;
    let stream = cuda.cuda_stream();
    let ctx = stream.context();
    let (major, minor) = ctx.compute_capability().map_err(|e| format!("{e:?}"))?;
    Ok(GpuInfo {
        ordinal: ctx.ordinal(),
        name: ctx.name().map_err(|e| format!("{e:?}"))?,
        compute_capability: (major.max(0) as u32, minor.max(0) as u32),
        memory_bytes: ctx.total_mem().map_err(|e| format!("{e:?}"))? as u64,
    })
}

/// Device memory in use on the GPU right now (total - free, as the driver reports it: every
/// process's allocations and the CUDA contexts), `None` on the CPU.
pub fn device_memory_used_bytes(device: &Device) -> Option<u64> {
    #[cfg(feature = "cuda")]
    {
        if let Ok(cuda) = device.as_cuda_device() {
            let stream = cuda.cuda_stream();
            return stream
                .context()
                .mem_get_info()
                .ok()
                .map(|(free, total)| (total - free) as u64);
        }
    }
    let _ = device;
    None
}

/// Whether a model error is the GPU running out of memory, as candle reports it through
/// cudarc: `DriverError(CUDA_ERROR_OUT_OF_MEMORY, "out of memory")` from an allocation,
/// `CublasError(CUBLAS_STATUS_ALLOC_FAILED)` from cuBLAS's workspace, cuRAND's
/// `CURAND_STATUS_ALLOCATION_FAILED`.
pub fn is_out_of_device_memory(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "cuda_error_out_of_memory",
        "out of memory",
        "cublas_status_alloc_failed",
        "curand_status_allocation_failed",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

/// A model error, with what was running (`during`, e.g. "training at optimizer step 3") and
/// the batch shape when it is the GPU's memory running out, so the model's failure in results
/// says which batch size did not fit and what to change. Other errors pass through.
pub fn with_out_of_memory_context(e: Error, during: &str, batch_size: usize, max_length: usize) -> Error {
    let text = e.message();
    if is_out_of_device_memory(&text) {
        Error::Model(format!(
            "out of device memory {during} with batch_size {batch_size} x max_length {max_length}: {text}; \
             lower batch_size (raise grad_accumulation to keep the effective batch), eval_batch_size or max_length"
        ))
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_out_of_device_memory_error_becomes_a_model_failure_naming_the_batch_size() {
        // What candle returns when cudarc's allocation fails: a CUDA error whose text is
        // cudarc's `DriverError` debug form.
        let cuda_oom = || {
            crate::Error::from(candle_core::Error::Cuda(Box::new(std::io::Error::other(
                "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")",
            ))))
        };
        let e = with_out_of_memory_context(cuda_oom(), "training at optimizer step 7", 64, 128);
        assert_eq!(e.exit_code(), crate::error::exit::MODEL_FAILED);
        let m = e.message();
        assert!(
            m.starts_with("out of device memory training at optimizer step 7 with batch_size 64 x max_length 128: "),
            "{m}"
        );
        assert!(
            m.contains("CUDA_ERROR_OUT_OF_MEMORY") && m.contains("lower batch_size"),
            "{m}"
        );
        let cublas = crate::Error::from(candle_core::Error::Cuda(Box::new(std::io::Error::other(
            "CublasError(CUBLAS_STATUS_ALLOC_FAILED)",
        ))));
        assert!(with_out_of_memory_context(cublas, "predicting", 32, 64)
            .message()
            .contains("with batch_size 32 x max_length 64"));
        // Anything else passes through unchanged.
        let other = crate::Error::from(candle_core::Error::Msg("shape mismatch".into()));
        assert_eq!(
            with_out_of_memory_context(other, "predicting", 32, 64).message(),
            "shape mismatch"
        );
    }

    #[test]
    fn requests_parse_and_print_back() {
        for s in ["auto", "cpu", "cuda", "cuda:0", "cuda:3"] {
            assert_eq!(DeviceRequest::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(DeviceRequest::parse("cuda:12"), Ok(DeviceRequest::Cuda(Some(12))));
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", "CUDA", "cuda:1:2", ""] {
            let e = DeviceRequest::parse(bad).unwrap_err();
            assert!(e.contains("\"cuda:N\"") && e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn cuda_in_a_build_without_it_is_bad_input_that_says_how_to_build() {
        for req in [DeviceRequest::Cuda(None), DeviceRequest::Cuda(Some(1))] {
            let e = choose(req, false, &Ok(0), "--device").unwrap_err();
            assert_eq!(e.exit_code(), crate::error::exit::BAD_INPUT);
            let m = e.to_string();
            assert!(
                m.starts_with(&format!("--device = {req}: this clsbench was built without CUDA")),
                "{m}"
            );
            assert!(m.contains("make build-cuda") && m.contains("--features cuda"), "{m}");
        }
    }

    #[test]
    fn a_gpu_index_that_does_not_exist_is_refused_naming_it() {
        let e = choose(DeviceRequest::Cuda(Some(2)), true, &Ok(1), "field `device`").unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::BAD_INPUT);
        assert_eq!(
            e.to_string(),
            "field `device` = cuda:2: GPU 2 does not exist: this machine has 1 CUDA device(s), cuda:0 to cuda:0"
        );
        assert_eq!(
            choose(DeviceRequest::Cuda(Some(1)), true, &Ok(2), "--device").unwrap(),
            Choice::Cuda(1)
        );
    }

    #[test]
    fn no_driver_or_no_gpu_is_an_environment_error_for_cuda_and_the_cpu_for_auto() {
        let no_driver: std::result::Result<usize, String> = Err("CUDA_ERROR_NO_DEVICE".into());
        for devices in [no_driver, Ok(0)] {
            let e = choose(DeviceRequest::Cuda(None), true, &devices, "--device").unwrap_err();
            assert_eq!(e.exit_code(), crate::error::exit::ENVIRONMENT, "{e}");
            match choose(DeviceRequest::Auto, true, &devices, "--device").unwrap() {
                Choice::Cpu { note: Some(n) } => assert!(n.contains("running on the CPU"), "{n}"),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            choose(DeviceRequest::Auto, true, &Ok(4), "--device").unwrap(),
            Choice::Cuda(0)
        );
        assert_eq!(
            choose(DeviceRequest::Auto, false, &Ok(4), "--device").unwrap(),
            Choice::Cpu { note: None }
        );
    }

    #[test]
    #[cfg(not(feature = "cuda"))]
    fn this_cpu_build_resolves_auto_and_cpu_to_the_cpu_and_refuses_cuda() {
        for req in [DeviceRequest::Auto, DeviceRequest::Cpu] {
            let d = resolve(req, "--device").unwrap();
            assert!(d.device.is_cpu() && d.label == "cpu" && d.gpu.is_none());
        }
        let e = resolve(DeviceRequest::Cuda(None), "--device").unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::BAD_INPUT);
        assert_eq!(device_memory_used_bytes(&Device::Cpu), None);
    }
}
