//! End to end through the binary: `clsbench report` redraws summary and plots from a finished
//! run's results.json (fixtures/results-sample), and the perf step's bad inputs (a price table
//! without sources, hardware without a price) are handled as documented.

use crate::common::{clsbench, repo, stderr_on_exit};
use std::path::{Path, PathBuf};

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is a PNG", path.display());
    assert!(bytes.len() > 20_000, "{} is only {} bytes", path.display(), bytes.len());
}

#[test]
fn report_redraws_summary_and_plots_from_results_alone() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::copy(
        repo().join("fixtures/results-sample/results.json"),
        run.join("results.json"),
    )
    .unwrap();
    let out = clsbench()
        .args(["report", run.to_str().unwrap()])
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert_eq!(stdout.trim(), summary.trim(), "prints what it writes");
    for model in ["tfidf-lr", "minilm-probe", "smollm2-probe"] {
        let row = summary
            .lines()
            .find(|l| l.starts_with(&format!("| {model} |")) && l.contains("(timing"))
            .unwrap_or_else(|| panic!("no perf row for {model} in\n{summary}"));
        assert_eq!(row.matches('|').count(), 11, "{row}");
    }
    assert!(
        summary.contains("built-in harness/clsbench/prices.toml"),
        "names the price table"
    );
    for stem in [
        "quality_vs_cost",
        "per_class_f1_scatter",
        "long_tail",
        "label_distribution",
        "bootstrap_delta",
    ] {
        assert_png(&run.join("plots").join(format!("{stem}.png")));
        let svg = std::fs::read_to_string(run.join("plots").join(format!("{stem}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<text"), "{stem}.svg");
        assert!(summary.contains(&format!("(plots/{stem}.png)")), "summary links {stem}");
    }
    for f in ["metrics.csv", "per_class.csv"] {
        assert!(run.join(f).is_file(), "{f} rewritten");
    }
}

#[test]
fn report_without_results_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    assert!(stderr_on_exit(clsbench().args(["report", dir.path().to_str().unwrap()]), 2).contains("no results.json"));
}

/// The tiny suite with timing on, one model, and `extra` appended to its [perf] table.
fn tiny_timed_suite(dir: &Path, extra: &str) -> PathBuf {
    std::fs::copy(repo().join("fixtures/tiny/complaints.csv"), dir.join("complaints.csv")).unwrap();
    let text = std::fs::read_to_string(repo().join("fixtures/tiny/suite.toml")).unwrap();
    let text = text.replace(
        "[perf]\nenabled = false",
        &format!("[perf]\nwarmup = 1\nsingle_examples = 3\nbatch_sizes = [1, 4]\nrepeats = 2\n{extra}"),
    );
    assert!(
        text.contains("single_examples = 3"),
        "fixtures/tiny/suite.toml changed its [perf] table"
    );
    let path = dir.join("suite.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn price_table_without_source_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("prices.toml"),
        "[[price]]\nslug = \"cpu-*-2c\"\nusd_per_hour = 0.1\ndate = \"2025-01\"\n",
    )
    .unwrap();
    let suite = tiny_timed_suite(dir.path(), "prices = \"prices.toml\"");
    let err = stderr_on_exit(
        clsbench().args([
            "run",
            suite.to_str().unwrap(),
            "--output-dir",
            dir.path().join("out").to_str().unwrap(),
        ]),
        2,
    );
    assert!(err.contains("prices.toml") && err.contains("source"), "{err}");
    assert!(!dir.path().join("out/tiny").join("models").exists(), "nothing trained");
}

#[test]
fn hardware_without_a_price_reports_unknown_cost_not_zero() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_timed_suite(dir.path(), "hardware = \"tpu-v5e\"");
    let out_dir = dir.path().join("out");
    clsbench()
        .args(["run", suite.to_str().unwrap(), "--run-id", "r", "--only", "tfidf-lr"])
        .args(["--output-dir", out_dir.to_str().unwrap()])
        .assert()
        .success();
    let run = out_dir.join("tiny/r");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    let cost = &results["models"][0]["perf"]["cost"];
    assert_eq!(cost["hardware_slug"], "tpu-v5e");
    assert!(cost["usd_per_million_docs"].is_null(), "{cost}");
    assert!(cost["device_hours_per_million_docs"].as_f64().unwrap() > 0.0);
    assert!(cost["unknown_reason"].as_str().unwrap().contains("tpu-v5e"));
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    let row = summary
        .lines()
        .find(|l| l.starts_with("| tfidf-lr |") && l.contains("(timing"))
        .unwrap();
    assert!(row.contains("| unknown |"), "{row}");
    assert!(
        summary.contains("cost unknown: no price for hardware slug \"tpu-v5e\""),
        "{summary}"
    );
}
