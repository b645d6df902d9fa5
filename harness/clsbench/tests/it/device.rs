//! `--device`, the suite's `device` and `dtype` fields, and the hidden `gpu-check` / `gpu-perf`
//! subcommands that scripts/gpu-check.sh runs, through the binary of this (CPU) build: bad
//! requests exit 2 before anything trains, and the CPU runs what a GPU would run.

use crate::common::{clsbench, model_mirror, read_json, repo, stderr_on_exit};
use std::path::{Path, PathBuf};

fn tiny_suite(dir: &Path, extra_top: &str, models: &str) -> PathBuf {
    std::fs::copy(repo().join("fixtures/tiny/complaints.csv"), dir.join("complaints.csv")).unwrap();
    let text = std::fs::read_to_string(repo().join("fixtures/tiny/suite.toml")).unwrap();
    let text = text.replacen("seed = 7", &format!("seed = 7\n{extra_top}"), 1) + models;
    std::fs::write(dir.join("suite.toml"), text).unwrap();
    dir.join("suite.toml")
}

/// The build hint every refusal of `cuda` in a CPU build carries.
#[cfg(not(feature = "cuda"))]
fn says_how_to_build(err: &str) -> bool {
    err.contains("built without CUDA") && err.contains("make build-cuda") && err.contains("--features cuda")
}

#[test]
#[cfg(not(feature = "cuda"))]
fn cuda_in_a_build_without_it_exits_2_saying_how_to_build_before_any_model_trains() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path(), "", "");
    let out = dir.path().join("out");
    for device in ["cuda", "cuda:1"] {
        let err = stderr_on_exit(
            clsbench()
                .arg("run")
                .arg(&suite)
                .args(["--device", device])
                .arg("--output-dir")
                .arg(&out),
            2,
        );
        assert!(
            says_how_to_build(&err) && err.contains(&format!("--device = {device}")),
            "{err}"
        );
        assert!(!out.exists(), "something was written before the device was checked");
    }
    // The suite's own field, named with its file.
    let suite = tiny_suite(dir.path(), "device = \"cuda\"", "");
    let err = stderr_on_exit(clsbench().arg("run").arg(&suite).arg("--output-dir").arg(&out), 2);
    assert!(
        says_how_to_build(&err) && err.contains("suite.toml: field `device` = cuda"),
        "{err}"
    );
    assert!(!out.exists());
    // --device cpu overrides the suite's field.
    clsbench()
        .arg("run")
        .arg(&suite)
        .args(["--device", "cpu", "--output-dir"])
        .arg(&out)
        .assert()
        .success();
    // And the other commands that run models.
    let err = stderr_on_exit(
        clsbench().args(["forward", "--model", "x", "--text", "a", "--device", "cuda"]),
        2,
    );
    assert!(says_how_to_build(&err), "{err}");
    let err = stderr_on_exit(clsbench().args(["gpu-check", "--device", "cuda"]), 2);
    assert!(says_how_to_build(&err), "{err}");
}

#[test]
fn device_and_dtype_values_that_mean_nothing_exit_2_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path(), "", "");
    let err = stderr_on_exit(clsbench().arg("run").arg(&suite).args(["--device", "gpu0"]), 2);
    assert!(err.contains("gpu0") && err.contains("\"cuda:N\""), "{err}");
    let suite = tiny_suite(dir.path(), "device = \"tpu\"", "");
    let err = stderr_on_exit(clsbench().arg("run").arg(&suite), 2);
    assert!(err.contains("field `device`") && err.contains("\"tpu\""), "{err}");
    let encoder = "\n[[models]]\nid = \"enc\"\nkind = \"encoder\"\ncheckpoint = \"x\"\nmethod = \"full\"\nlearning_rate = 1e-4\nepochs = 1\ndtype = \"half\"\n";
    let suite = tiny_suite(dir.path(), "", encoder);
    let err = stderr_on_exit(clsbench().arg("run").arg(&suite), 2);
    assert!(err.contains("field `dtype`") && err.contains("\"half\""), "{err}");
}

/// A transformer run records where and in which precision it ran (results, hardware), and
/// a change of precision retrains instead of reusing (the placement is part of the cache key);
/// the same placement reached by `--device cpu` instead of `auto` is reused.
#[test]
fn a_run_records_its_device_and_precision_and_another_precision_retrains() {
    let Some(minilm) = model_mirror("all-MiniLM-L6-v2") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = |dtype: &str| {
        format!(
            "\n[[models]]\nid = \"minilm\"\nkind = \"encoder\"\ncheckpoint = \"{}\"\nmethod = \"linear-probe\"\npooling = \"mean\"\n\
             learning_rate = 1e-2\nepochs = 1\nmax_length = 32\nbatch_size = 16\ndtype = \"{dtype}\"\n",
            minilm.display()
        )
    };
    let out = dir.path().join("out");
    let run = |suite: &Path, extra: &[&str]| {
        let o = clsbench()
            .arg("run")
            .arg(suite)
            .args(["--only", "minilm", "--run-id", "r", "--output-dir"])
            .arg(&out)
            .args(extra)
            .assert()
            .success()
            .get_output()
            .clone();
        (
            read_json(&out.join("tiny/r/results.json")),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let suite = tiny_suite(dir.path(), "", &model("bf16"));
    let (r, _) = run(&suite, &[]);
    assert_eq!(r["hardware"]["device"], "cpu");
    assert!(r["hardware"]["gpu"].is_null());
    let m = &r["models"][0];
    assert_eq!(m["status"], "ok", "{m}");
    let tr = &m["train_report"];
    assert_eq!(
        (tr["device"].as_str(), tr["dtype"].as_str()),
        (Some("cpu"), Some("bf16"))
    );
    assert_eq!(tr["precision"]["master_dtype"], "f32");
    assert!(tr["precision"]["loss_scaling"].is_null(), "bf16 needs no loss scaling");
    let key_bf16 = m["cache_key"].as_str().unwrap().to_string();

    // The same placement by another route: reused.
    let (r, err) = run(&suite, &["--device", "cpu"]);
    assert!(err.contains("reusing"), "{err}");
    assert_eq!(r["models"][0]["cache_key"], key_bf16.as_str());

    // Another precision: trained again, under another key.
    let suite = tiny_suite(dir.path(), "", &model("f16"));
    let (r, err) = run(&suite, &[]);
    assert!(!err.contains("reusing"), "{err}");
    let m = &r["models"][0];
    assert_ne!(m["cache_key"], key_bf16.as_str());
    let ls = &m["train_report"]["precision"]["loss_scaling"];
    assert_eq!(m["train_report"]["dtype"], "f16");
    assert_eq!(ls["initial_scale"], 65536.0);
    assert!(
        ls["skipped_steps"].as_u64().is_some() && ls["final_scale"].as_f64().unwrap() > 0.0,
        "{ls}"
    );
}

#[test]
fn gpu_check_and_gpu_perf_run_on_the_cpu_and_write_their_reports() {
    let dir = tempfile::tempdir().unwrap();
    let checks = dir.path().join("checks.json");
    let out = clsbench()
        .args(["gpu-check", "--device", "cpu", "--dtypes", "f32,bf16", "--out"])
        .arg(&checks)
        .assert()
        .success()
        .get_output()
        .clone();
    let md = String::from_utf8_lossy(&out.stdout);
    let r = read_json(&checks);
    let n = r["checks"].as_array().unwrap().len();
    // 4 families x 2 dtypes x 6 checks; the f16 scaler check only when f16 is asked for.
    assert_eq!(n, 4 * 2 * 6);
    assert!(r["checks"].as_array().unwrap().iter().all(|c| c["passed"] == true));
    assert!(md.contains(&format!("{n} of {n} passed")), "{md}");

    let perf = dir.path().join("perf.json");
    let out = clsbench()
        .args([
            "gpu-perf",
            "--device",
            "cpu",
            "--shapes",
            "tiny-qwen2,tiny-modernbert",
            "--dtype",
            "f16",
            "--batch-sizes",
            "1,2",
            "--max-length",
            "16",
            "--train-batch",
            "2",
            "--single-examples",
            "3",
            "--repeats",
            "2",
            "--warmup",
            "1",
            "--train-steps",
            "2",
            "--out",
        ])
        .arg(&perf)
        .assert()
        .success()
        .get_output()
        .clone();
    let md = String::from_utf8_lossy(&out.stdout);
    let r = read_json(&perf);
    assert_eq!(r["device"], "cpu");
    let shapes = r["shapes"].as_array().unwrap();
    assert_eq!(shapes.len(), 2);
    for s in shapes {
        assert_eq!(s["dtype"], "f16");
        assert_eq!(s["inference"].as_array().unwrap().len(), 2);
        assert_eq!(s["single"]["n"], 3);
        assert_eq!(s["training"]["steps"], 2);
        assert!(s["training"]["skipped_steps"].is_u64(), "f16 reports its loss scaler");
        assert!(s["recomputation"].as_str().unwrap().starts_with("not available"));
    }
    assert!(md.contains("| tiny-qwen2 | lora | cpu | f16 | 1 |"), "{md}");
    assert!(md.contains("Recomputation"), "{md}");

    let err = stderr_on_exit(clsbench().args(["gpu-perf", "--device", "cpu", "--shapes", "gpt2"]), 2);
    assert!(err.contains("--shapes") && err.contains("\"gpt2\""), "{err}");
    let err = stderr_on_exit(clsbench().args(["gpu-check", "--device", "cpu", "--dtypes", "fp8"]), 2);
    assert!(err.contains("--dtypes") && err.contains("\"fp8\""), "{err}");
}
