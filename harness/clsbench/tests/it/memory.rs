//! Training memory end to end: `--max-memory-gb` below one row is refused before any model
//! trains; a checkpointed run records its setting and the planner's estimate. Both use the
//! model mirror's MiniLM and skip, saying so, without it.

use crate::common::*;
use std::path::{Path, PathBuf};

fn minilm() -> Option<PathBuf> {
    model_mirror("all-MiniLM-L6-v2")
}

fn suite_with(dir: &Path, model: &str) -> PathBuf {
    std::fs::copy(repo().join("fixtures/tiny/complaints.csv"), dir.join("complaints.csv")).unwrap();
    let text = std::fs::read_to_string(repo().join("fixtures/tiny/suite.toml")).unwrap() + model;
    std::fs::write(dir.join("suite.toml"), &text).unwrap();
    dir.join("suite.toml")
}

fn full_ft(checkpoint: &Path, extra: &str) -> String {
    format!(
        "\n[[models]]\nid = \"minilm\"\nkind = \"encoder\"\ncheckpoint = \"{}\"\nmethod = \"full\"\npooling = \"mean\"\n\
         learning_rate = 1e-4\nepochs = 1\nmax_length = 32\nbatch_size = 16\nmax_train_examples = 32\n{extra}",
        checkpoint.display()
    )
}

#[test]
fn a_memory_cap_below_one_row_exits_2_before_training() {
    let Some(minilm) = minilm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let suite = suite_with(dir.path(), &full_ft(&minilm, ""));
    let out = dir.path().join("out");
    let err = stderr_on_exit(
        clsbench()
            .arg("run")
            .arg(&suite)
            .args([
                "--only",
                "minilm",
                "--run-id",
                "r",
                "--max-memory-gb",
                "0.05",
                "--output-dir",
            ])
            .arg(&out),
        2,
    );
    assert!(
        err.contains("max_memory_gb = 0.05") && err.contains("one row at a time") && err.contains("GiB"),
        "{err}"
    );
    assert!(!err.contains("epoch 1"), "trained before refusing: {err}");
    let bad_flag = stderr_on_exit(clsbench().arg("run").arg(&suite).args(["--max-memory-gb=0"]), 2);
    assert!(
        bad_flag.contains("--max-memory-gb") && bad_flag.contains("GiB > 0"),
        "{bad_flag}"
    );
}

#[test]
fn a_checkpointed_run_records_the_setting_and_the_estimate() {
    let Some(minilm) = minilm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let suite = suite_with(
        dir.path(),
        &full_ft(&minilm, "gradient_checkpointing = true\nmax_memory_gb = 64\n"),
    );
    let out = dir.path().join("out");
    let o = clsbench()
        .arg("run")
        .arg(&suite)
        .args(["--only", "minilm", "--run-id", "r", "--output-dir"])
        .arg(&out)
        .assert()
        .success()
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("memory: estimate") && err.contains("layers recomputed in backward"),
        "{err}"
    );
    let r = read_json(&out.join("tiny/r/results.json"));
    let tr = &r["models"][0]["train_report"];
    assert_eq!(tr["gradient_checkpointing"], true, "{tr}");
    let plan = &tr["memory_plan"];
    assert_eq!(
        (plan["micro_batches"].as_u64(), plan["batch_size"].as_u64()),
        (Some(1), Some(16)),
        "{plan}"
    );
    assert_eq!(plan["max_memory_gb"], 64.0);
    assert!(plan["estimate"]["total_bytes"].as_f64().unwrap() > 0.0);
}
