//! The CUDA checks, for a user with a GPU: `cargo test -p clsbench --features cuda --test it cuda::`
//! (the same checks scripts/gpu-check.sh runs through the carried binary). Compiled only with
//! the `cuda` feature; every test needs a GPU and says so when the driver lists none.

use crate::common::{clsbench, read_json, repo, stderr_on_exit};
use clsbench::device_check::{checks, synthetic};
use clsbench::models::device::{self, DeviceRequest, ResolvedDevice};
use std::path::{Path, PathBuf};

fn gpu() -> Option<ResolvedDevice> {
    match device::resolve(DeviceRequest::Cuda(None), "--device") {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("SKIPPED: no usable CUDA GPU: {e}");
            None
        }
    }
}

#[test]
fn device_checks_pass_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    let report = checks::run(&gpu, &checks::dtypes_for(&gpu)).unwrap();
    let failed: Vec<String> = report
        .failed()
        .iter()
        .map(|c| format!("{} {} {:?} {}: {}", c.check, c.family, c.method, c.dtype, c.detail))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn a_gpu_index_that_does_not_exist_exits_2_naming_it() {
    let Some(_) = gpu() else { return };
    let n = candle_core::cuda_backend::cudarc::driver::CudaContext::device_count().unwrap() as usize;
    let err = stderr_on_exit(clsbench().args(["gpu-check", "--device", &format!("cuda:{n}")]), 2);
    assert!(
        err.contains(&format!("GPU {n} does not exist")) && err.contains(&format!("{n} CUDA device(s)")),
        "{err}"
    );
}

#[test]
fn tiny_shapes_time_on_the_gpu_with_device_memory() {
    let Some(gpu) = gpu() else { return };
    let opts = synthetic::PerfOptions {
        batch_sizes: vec![1, 8],
        max_length: 32,
        train_batch: 8,
        single_examples: 5,
        repeats: 3,
        warmup: 1,
        train_steps: 2,
        n_classes: 5,
        ..synthetic::PerfOptions::default()
    };
    for name in ["tiny-modernbert", "tiny-qwen2"] {
        for dtype in checks::dtypes_for(&gpu) {
            let r = synthetic::run_shape(&gpu, dtype, &synthetic::shape(name).unwrap(), &opts).unwrap();
            assert_eq!(r.inference.len(), 2, "{name} {dtype:?}: {:?}", r.inference_failures);
            assert!(r.training.is_some(), "{name} {dtype:?}: {:?}", r.training_error);
            assert!(r.inference_peak_device_bytes.unwrap() > 0 && r.training_peak_device_bytes.unwrap() > 0);
        }
    }
}

/// A suite run on the GPU records the GPU, its device and the precision `auto` picked (f16
/// below compute capability 8, bf16 from it). Needs the model mirror (MiniLM).
#[test]
fn a_run_on_the_gpu_records_the_gpu_and_its_precision() {
    let Some(gpu) = gpu() else { return };
    let root = std::env::var_os("CLSBENCH_MODEL_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/model-mirror")))
        .unwrap();
    let minilm = root.join("all-MiniLM-L6-v2");
    if !minilm.join("config.json").is_file() {
        eprintln!("SKIPPED: model mirror {} not found", minilm.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo().join("fixtures/tiny/complaints.csv"),
        dir.path().join("complaints.csv"),
    )
    .unwrap();
    let suite = std::fs::read_to_string(repo().join("fixtures/tiny/suite.toml")).unwrap()
        + &format!(
            "\n[[models]]\nid = \"minilm\"\nkind = \"encoder\"\ncheckpoint = \"{}\"\nmethod = \"full\"\npooling = \"mean\"\nlearning_rate = 1e-4\nepochs = 1\nmax_length = 64\n",
            minilm.display()
        );
    std::fs::write(dir.path().join("suite.toml"), suite).unwrap();
    let out = dir.path().join("out");
    clsbench()
        .arg("run")
        .arg(dir.path().join("suite.toml"))
        .args(["--device", "cuda", "--only", "minilm", "--run-id", "g", "--output-dir"])
        .arg(&out)
        .assert()
        .success();
    let r = read_json(&out.join("tiny/g/results.json"));
    assert_eq!(r["hardware"]["device"], gpu.label.as_str());
    assert_eq!(r["hardware"]["gpu"]["name"], gpu.gpu.as_ref().unwrap().name.as_str());
    let want = if gpu.gpu.as_ref().unwrap().compute_capability.0 >= 8 {
        "bf16"
    } else {
        "f16"
    };
    assert_eq!(r["models"][0]["train_report"]["dtype"], want);
    assert_eq!(r["models"][0]["train_report"]["device"], gpu.label.as_str());
}
