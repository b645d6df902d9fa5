//! End-to-end tests through the `clsbench` binary: a tiny real-data suite runs, writes every
//! results file with the documented fields, resumes, and bad input exits 2 with a message
//! naming what is wrong.

mod common;

use common::{clsbench, read_json, repo, split, stderr_on_exit};
use std::path::{Path, PathBuf};

/// Copy the tiny suite and its data into a temp dir so tests can edit them.
fn tiny_suite(dir: &Path) -> PathBuf {
    for f in ["suite.toml", "complaints.csv"] {
        std::fs::copy(repo().join("fixtures/tiny").join(f), dir.join(f)).unwrap();
    }
    dir.join("suite.toml")
}

#[test]
fn run_writes_results_with_provenance_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let out = dir.path().join("out");
    let run = |extra: &[&str]| {
        let mut cmd = clsbench();
        cmd.args([
            "run",
            suite.to_str().unwrap(),
            "--run-id",
            "r1",
            "--output-dir",
            out.to_str().unwrap(),
        ])
        .args(extra);
        cmd.assert().success().get_output().clone()
    };
    let first = run(&[]);
    let run_dir = out.join("tiny/r1");
    for f in [
        "results.json",
        "manifest.json",
        "summary.md",
        "metrics.csv",
        "per_class.csv",
        "split.csv",
        "models/tfidf-lr/predictions.csv",
        "models/tfidf-lr/model.json",
    ] {
        assert!(run_dir.join(f).is_file(), "missing {f}");
    }
    let r = read_json(&run_dir.join("results.json"));
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["suite"]["seed"], 7);
    assert_eq!(r["dataset"]["labels"].as_array().unwrap().len(), 5);
    let (n_val, n_test) = (
        r["dataset"]["n_val"].as_u64().unwrap(),
        r["dataset"]["n_test"].as_u64().unwrap(),
    );
    assert_eq!(r["dataset"]["n_train"].as_u64().unwrap() + n_val + n_test, 123);
    assert_eq!(r["models"][0]["status"], "ok");
    let val = split(&r, "val");
    assert_eq!(val["n"].as_u64().unwrap(), n_val);
    let acc = val["models"][0]["metrics"]["accuracy"].as_f64().unwrap();
    assert!(
        acc > 0.4,
        "TF-IDF on 4 well-separated classes should beat chance by far, got {acc}"
    );
    let boot = &val["bootstrap"];
    let ci = &boot["models"][0]["accuracy"]["percentile"];
    assert!(ci["lower"].as_f64().unwrap() <= acc && acc <= ci["upper"].as_f64().unwrap());
    assert_eq!(
        boot["pairs"].as_array().unwrap().len(),
        2,
        "two models -> both ordered pairs"
    );
    assert_eq!(val["mcnemar"].as_array().unwrap().len(), 1);

    let m = read_json(&run_dir.join("manifest.json"));
    assert_eq!(m["suite"]["sha256"].as_str().unwrap().len(), 64);
    assert!(m["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["role"] == "data" && i["sha256"].as_str().unwrap().len() == 64));
    assert!(m["hardware"]["cpu_threads"].as_u64().unwrap() >= 1);
    assert!(m["crate_versions"]["candle-core"].is_string());

    // Predictions: one row per evaluated document.
    let preds = std::fs::read_to_string(run_dir.join("models/tfidf-lr/predictions.csv")).unwrap();
    assert!(preds.starts_with("id,split,gold,pred,prob"));
    let rows = csv::Reader::from_reader(preds.as_bytes()).records().count() as u64;
    assert_eq!(rows, n_val + n_test);

    // Resume: nothing is refitted, and the numbers are identical (determinism).
    let second = run(&[]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("reusing"), "{stderr}");
    let r2 = read_json(&run_dir.join("results.json"));
    assert_eq!(r["splits"], r2["splits"]);
    // --force refits and still gives identical predictions on the same CPU.
    run(&["--force"]);
    let r3 = read_json(&run_dir.join("results.json"));
    assert_eq!(r["splits"], r3["splits"]);
    let _ = first;
}

#[test]
fn bad_suite_field_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let text = std::fs::read_to_string(&suite)
        .unwrap()
        .replace("resamples = 200", "resampels = 200");
    std::fs::write(&suite, text).unwrap();
    let err = stderr_on_exit(clsbench().args(["run", suite.to_str().unwrap()]), 2);
    assert!(err.contains("resampels") && err.contains("suite.toml"), "{err}");
}

#[test]
fn missing_data_file_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    std::fs::remove_file(dir.path().join("complaints.csv")).unwrap();
    let err = stderr_on_exit(clsbench().args(["describe", suite.to_str().unwrap()]), 2);
    assert!(err.contains("complaints.csv"), "{err}");
}

#[test]
fn missing_label_column_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let text = std::fs::read_to_string(&suite)
        .unwrap()
        .replace("label_column = \"issue\"", "label_column = \"Issue\"");
    std::fs::write(&suite, text).unwrap();
    let err = stderr_on_exit(clsbench().args(["describe", suite.to_str().unwrap()]), 2);
    assert!(err.contains("\"Issue\"") && err.contains("issue"), "{err}");
}

#[test]
fn unknown_model_kind_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let text = std::fs::read_to_string(&suite)
        .unwrap()
        .replacen("kind = \"tfidf-logreg\"", "kind = \"svm\"", 1);
    std::fs::write(&suite, text).unwrap();
    let err = stderr_on_exit(clsbench().args(["run", suite.to_str().unwrap()]), 2);
    assert!(err.contains("\"svm\"") && err.contains("tfidf-logreg"), "{err}");
}

#[test]
fn singleton_class_in_stratified_split_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let mut csv = std::fs::read_to_string(dir.path().join("complaints.csv")).unwrap();
    csv.push_str("999999,A class of one,\"only one complaint has this label\"\n");
    std::fs::write(dir.path().join("complaints.csv"), csv).unwrap();
    let err = stderr_on_exit(clsbench().args(["describe", suite.to_str().unwrap()]), 2);
    assert!(err.contains("A class of one") && err.contains("min_count"), "{err}");
}

#[test]
fn describe_prints_split_sizes_and_tiers() {
    let out = clsbench()
        .args(["describe", repo().join("fixtures/tiny/suite.toml").to_str().unwrap()])
        .assert()
        .success()
        .get_output()
        .clone();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("5 classes") && text.contains("split: train"), "{text}");
    assert!(
        text.contains("tiers (rank)") && text.contains("tiers (rarequartile)"),
        "{text}"
    );
}

#[test]
fn score_reads_long_format_and_rejects_unknown_ids() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.csv");
    let mut text = String::from("id,model,gold,pred\n");
    for i in 0..40 {
        let gold = ["a", "b", "c"][i % 3];
        let enc = if i % 4 == 0 { "a" } else { gold };
        let dec = if i % 5 == 0 { "b" } else { gold };
        text.push_str(&format!("{i},enc,{gold},{enc}\n{i},dec,{gold},{dec}\n"));
    }
    std::fs::write(&p, &text).unwrap();
    let out = clsbench()
        .args([
            "score",
            p.to_str().unwrap(),
            "--resamples",
            "100",
            "--out",
            dir.path().to_str().unwrap(),
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.contains("| enc |") && md.contains("| dec |"), "{md}");
    let score = read_json(&dir.path().join("score.json"));
    assert_eq!(score["analysis"]["n"], 40);

    std::fs::write(&p, format!("{text}77,dec,a,a\n")).unwrap();
    let err = stderr_on_exit(clsbench().args(["score", p.to_str().unwrap()]), 2);
    assert!(err.contains("unknown id \"77\""), "{err}");
}
