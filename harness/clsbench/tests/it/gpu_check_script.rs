//! scripts/gpu-check.sh and scripts/gpu_reference.py without a GPU: the script unpacks an
//! xz-packed binary, runs every step on the CPU with tiny shapes (GPU_CHECK_DEVICE=cpu), records
//! each step's exit status, and writes no more files than a device call brings back (8); the
//! comparison table's ratios are the two JSON files' numbers divided. Needs python3 (skips,
//! saying so, without it); PyTorch is optional (its step is then recorded as failed).

use crate::common::{read_json, repo};
use std::path::Path;
use std::process::Command;

fn python() -> Option<String> {
    let py = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    match Command::new(&py).arg("--version").output() {
        Ok(o) if o.status.success() => Some(py),
        _ => {
            eprintln!("SKIPPED: {py} not found; scripts/gpu-check.sh needs Python");
            None
        }
    }
}

fn has_torch(py: &str) -> bool {
    Command::new(py)
        .args(["-c", "import torch, transformers, peft"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn pack(py: &str, bin: &Path, out: &Path) {
    let ok = Command::new(py)
        .args([
            "-c",
            // preset 0: a debug binary is hundreds of MB, and only the format matters here.
            "import lzma, shutil, sys; shutil.copyfileobj(open(sys.argv[1], 'rb'), lzma.open(sys.argv[2], 'wb', preset=0))",
        ])
        .arg(bin)
        .arg(out)
        .status()
        .unwrap()
        .success();
    assert!(ok, "packing {}", bin.display());
}

const TINY: &str = "--shapes tiny-qwen2,tiny-modernbert --batch-sizes 1,2 --max-length 16 --train-batch 2 \
                    --single-examples 2 --repeats 1 --warmup 0 --train-steps 1 --n-classes 5";

#[test]
fn the_gpu_check_script_runs_every_step_on_the_cpu_and_records_each_status() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let packed = dir.path().join("clsbench.xz");
    pack(&py, Path::new(env!("CARGO_BIN_EXE_clsbench")), &packed);
    let out = dir.path().join("out");
    let status = Command::new("bash")
        .arg(repo().join("scripts/gpu-check.sh"))
        .arg(&packed)
        .env("OUT", &out)
        .env("PYTHON", &py)
        .env("GPU_CHECK_DEVICE", "cpu")
        .env("GPU_CHECK_PERF_ARGS", TINY.replace(" --n-classes 5", ""))
        .env("GPU_CHECK_F16_SHAPE", "tiny-qwen2")
        .status()
        .unwrap();
    let torch = has_torch(&py);
    let log = std::fs::read_to_string(out.join("gpu-check.log")).unwrap();
    assert_eq!(status.code(), Some(if torch { 0 } else { 1 }), "{log}");

    let summary = read_json(&out.join("gpu-check.json"));
    let steps: Vec<(String, i64)> = summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap().to_string(), s["status"].as_i64().unwrap()))
        .collect();
    let names: Vec<&str> = steps.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        names,
        ["binary", "checks", "candle-perf", "candle-qwen-f16", "pytorch-perf"],
        "{log}"
    );
    for (name, st) in &steps[..4] {
        assert_eq!(*st, 0, "{name}: {log}");
    }
    assert_eq!(steps[4].1 == 0, torch, "{log}");

    let checks = read_json(&out.join("checks.json"));
    assert!(checks["checks"].as_array().unwrap().iter().all(|c| c["passed"] == true));
    let perf = read_json(&out.join("candle-perf.json"));
    assert_eq!(perf["shapes"].as_array().unwrap().len(), 2);
    let f16 = read_json(&out.join("candle-qwen-f16.json"));
    assert_eq!(f16["shapes"][0]["dtype"], "f16");
    assert!(f16["shapes"][0]["inference"].as_array().unwrap().is_empty());
    assert_eq!(f16["shapes"][0]["training"]["steps"], 1);

    let md = std::fs::read_to_string(out.join("gpu-check.md")).unwrap();
    assert!(md.contains("## Device checks on cpu"), "{md}");
    assert!(md.contains("| tiny-qwen2 | lora | cpu | f32 | 1 |"), "{md}");
    // What a device call brings back: at most 8 files.
    let files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(files.len() <= 8, "{files:?}");
}

#[test]
fn the_comparison_divides_the_two_reports_numbers() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let candle = dir.path().join("candle.json");
    let ok = Command::new(env!("CARGO_BIN_EXE_clsbench"))
        .args(["gpu-perf", "--device", "cpu", "--out"])
        .arg(&candle)
        .args(TINY.replace(" --n-classes 5", "").split_whitespace())
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    // PyTorch's report as the script writes it, here derived from clsbench's: half the
    // throughput, twice the step time.
    let mut torch = read_json(&candle);
    torch["torch_version"] = "test".into();
    torch["transformers_version"] = "test".into();
    torch["peft_version"] = "test".into();
    for s in torch["shapes"].as_array_mut().unwrap() {
        for b in s["inference"].as_array_mut().unwrap() {
            b["docs_per_s"] = (b["docs_per_s"].as_f64().unwrap() / 2.0).into();
        }
        s["training"]["median_step_ms"] = (s["training"]["median_step_ms"].as_f64().unwrap() * 2.0).into();
    }
    let torch_path = dir.path().join("torch.json");
    std::fs::write(&torch_path, torch.to_string()).unwrap();
    let out = Command::new(&py)
        .arg(repo().join("scripts/gpu_reference.py"))
        .arg("--compare")
        .arg(&candle)
        .arg(&torch_path)
        .output()
        .unwrap();
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c = read_json(&candle);
    let first = &c["shapes"][0];
    let docs = first["inference"][0]["docs_per_s"].as_f64().unwrap();
    let row = format!(
        "| tiny-qwen2 | f32 | inference docs/s, batch 1 | {:.1} | {:.1} | 2.00 |",
        docs,
        docs / 2.0
    );
    assert!(md.contains(&row), "{row}\n{md}");
    assert!(md.contains("| tiny-qwen2 | f32 | training step ms, 2 x 16 |"), "{md}");
    assert!(
        md.contains("Target (>= 1.0x PyTorch eager") && md.contains(": met"),
        "{md}"
    );
}
