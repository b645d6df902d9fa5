//! End to end: a run keeps every class's probabilities and calibrates every model on every
//! split, `clsbench score` reproduces those numbers from the run's own files and the reference
//! fixture's, `[[decision]]` envelopes are judged, and bad probabilities files or decisions exit 2
//! naming what is wrong.

use crate::common::{clsbench, read_json, repo, split, stderr_on_exit};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The tiny suite with an envelope the TF-IDF models can be judged on without timing.
fn tiny_suite_with_decision(dir: &Path) -> PathBuf {
    for f in ["suite.toml", "complaints.csv"] {
        std::fs::copy(repo().join("fixtures/tiny").join(f), dir.join(f)).unwrap();
    }
    let path = dir.join("suite.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text +=
        "\n[[decision]]\nname = \"tiny envelope\"\nmin_macro_f1 = 0.3\nmax_ece = 0.5\nmax_ece_after_scaling = 0.5\n";
    std::fs::write(&path, text).unwrap();
    path
}

fn run(suite: &Path, out: &Path) -> PathBuf {
    clsbench()
        .arg("run")
        .arg(suite)
        .args(["--run-id", "r"])
        .arg("--output-dir")
        .arg(out)
        .assert()
        .success();
    out.join("tiny/r")
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn close(a: &Value, b: &Value, tol: f64, what: &str) {
    let (a, b) = (f(a), f(b));
    assert!((a - b).abs() <= tol, "{what}: {a} vs {b}");
}

#[test]
fn a_run_calibrates_every_model_and_score_reproduces_it_from_the_runs_files() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite_with_decision(dir.path());
    let run_dir = run(&suite, &dir.path().join("out"));
    let r = read_json(&run_dir.join("results.json"));
    let model = read_json(&run_dir.join("models/tfidf-lr/model.json"));
    assert_eq!(model["probabilities"], "probabilities.safetensors");
    assert!(run_dir.join("models/tfidf-lr/probabilities.safetensors").is_file());
    assert!(run_dir.join("plots/reliability.png").is_file());
    for name in ["val", "test"] {
        for m in split(&r, name)["models"].as_array().unwrap() {
            let c = &m["calibration"];
            assert_eq!(c["source"], "class-probabilities", "{name}");
            let ece = f(&c["full"]["digitize"]["ece"]);
            assert!((0.0..=1.0).contains(&ece));
            assert!(c["full"]["upper_closed"]["ece_ci"]["percentile"]["lower"].is_number());
            let t = &c["temperature"];
            assert!(f(&t["temperature"]) > 0.0);
            assert_eq!(t["split_seed"], 7 + 999, "the suite seed + 999");
            assert!(
                f(&t["calibration_nll_after"]) <= f(&t["calibration_nll_before"]) + 1e-12,
                "T minimises the NLL"
            );
        }
    }
    // The decision: one row per model, verdicts from the numbers above.
    let d = &r["decisions"][0];
    assert_eq!(d["name"], "tiny envelope");
    assert_eq!(d["split"], "val");
    let val = split(&r, "val");
    for (row, m) in d["rows"]
        .as_array()
        .unwrap()
        .iter()
        .zip(val["models"].as_array().unwrap())
    {
        assert_eq!(row["model"], m["model"]);
        let f1 = f(&m["metrics"]["macro_f1"]);
        assert_eq!(row["checks"][0]["measured"], m["metrics"]["macro_f1"]);
        assert_eq!(row["checks"][0]["verdict"], if f1 >= 0.3 { "pass" } else { "fail" });
        assert_eq!(
            row["checks"][1]["measured"],
            m["calibration"]["full"]["upper_closed"]["ece"]
        );
    }
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
    assert!(summary.contains("## Decision: tiny envelope (val split)"), "{summary}");
    assert!(summary.contains("| model | ECE [lo, hi) |"), "{summary}");

    // `score` on the val rows of the run's own files gives the run's numbers exactly: the same
    // probabilities, the same resamples (seed 7 + 7) and the same halves (7 + 999).
    let preds = std::fs::read_to_string(run_dir.join("models/tfidf-lr/predictions.csv")).unwrap();
    let mut long = String::from("id,model,gold,pred,prob\n");
    let mut rdr = csv::Reader::from_reader(preds.as_bytes());
    for row in rdr.records() {
        let row = row.unwrap();
        if &row[1] == "val" {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record([&row[0], "tfidf-lr", &row[2], &row[3], &row[4]])
                .unwrap();
            long += &String::from_utf8(w.into_inner().unwrap()).unwrap();
        }
    }
    let csv_path = dir.path().join("val.csv");
    std::fs::write(&csv_path, long).unwrap();
    let out = dir.path().join("score");
    std::fs::create_dir_all(&out).unwrap();
    clsbench()
        .arg("score")
        .arg(&csv_path)
        .arg("--probs")
        .arg(run_dir.join("models/tfidf-lr/probabilities.safetensors"))
        .args([
            "--resamples",
            "200",
            "--seed",
            "14",
            "--calibration-seed",
            "1006",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success();
    let s = read_json(&out.join("score.json"));
    let got = &s["analysis"]["models"][0]["calibration"];
    let want = &val["models"][0]["calibration"];
    assert_eq!(got, want, "score --probs equals the run's calibration");
    assert!(out.join("reliability.png").is_file() && out.join("reliability.svg").is_file());

    // With the prob column alone: ECE and the diagram from the predicted class's probability
    // (predictions.csv keeps it in f32, the probabilities file in f16: the ECE agrees to 1e-3).
    clsbench()
        .arg("score")
        .arg(&csv_path)
        .args(["--resamples", "200", "--seed", "14", "--out"])
        .arg(&out)
        .assert()
        .success();
    let s = read_json(&out.join("score.json"));
    let c = &s["analysis"]["models"][0]["calibration"];
    assert_eq!(c["source"], "predicted-class-probability");
    assert!(c["full"]["nll"].is_null() && c["temperature"].is_null());
    close(
        &c["full"]["digitize"]["ece"],
        &want["full"]["digitize"]["ece"],
        1e-3,
        "ECE from prob",
    );
}

#[test]
fn score_with_probabilities_files_equals_the_numpy_reference() {
    let fixture = repo().join("fixtures/reference/calibration_score");
    let reference = read_json(&repo().join("fixtures/reference/calibration_reference.json"));
    let dir = tempfile::tempdir().unwrap();
    clsbench()
        .arg("score")
        .arg(fixture.join("predictions.csv"))
        .arg("--probs")
        .arg(fixture.join("enc.safetensors"))
        .arg("--probs")
        .arg(fixture.join("dec.safetensors"))
        .args(["--resamples", "200", "--out"])
        .arg(dir.path())
        .assert()
        .success();
    let s = read_json(&dir.path().join("score.json"));
    for m in s["analysis"]["models"].as_array().unwrap() {
        let name = m["model"].as_str().unwrap();
        let (got, want) = (&m["calibration"], &reference["score_fixture"][name]);
        for conv in ["digitize", "upper_closed"] {
            close(
                &got["full"][conv]["ece"],
                &want[conv]["ece"],
                1e-12,
                &format!("{name} {conv} ece"),
            );
            close(
                &got["full"][conv]["mce"],
                &want[conv]["mce"],
                1e-12,
                &format!("{name} {conv} mce"),
            );
            close(
                &got["temperature"]["after"][conv]["ece"],
                &want["after"][conv]["ece"],
                1e-11,
                &format!("{name} {conv} ece after"),
            );
        }
        close(&got["full"]["nll"], &want["nll"], 1e-12, &format!("{name} nll"));
        close(&got["full"]["brier"], &want["brier"], 1e-12, &format!("{name} brier"));
        let t = f(&want["temperature"]);
        close(
            &got["temperature"]["temperature"],
            &want["temperature"],
            1e-10 * t,
            &format!("{name} T"),
        );
        close(
            &got["temperature"]["after"]["nll"],
            &want["after"]["nll"],
            1e-11,
            &format!("{name} nll after"),
        );
    }
}

#[test]
fn bad_probabilities_files_exit_2_naming_the_file_and_what_is_wrong() {
    let fixture = repo().join("fixtures/reference/calibration_score");
    let preds = fixture.join("predictions.csv");
    let score = |probs: &Path| {
        let mut cmd = clsbench();
        cmd.arg("score")
            .arg(&preds)
            .arg("--probs")
            .arg(probs)
            .args(["--resamples", "20"]);
        stderr_on_exit(&mut cmd, 2)
    };
    let err = score(Path::new("no/such.safetensors"));
    assert!(err.contains("no/such.safetensors"), "{err}");

    // A file of the wrong shape: 5 columns for 6 classes.
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture.join("enc.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
    let mut h: Value = serde_json::from_str(header).unwrap();
    let classes: Vec<String> = serde_json::from_str(h["__metadata__"]["classes"].as_str().unwrap()).unwrap();
    h["__metadata__"]["classes"] = Value::String(serde_json::to_string(&classes[..5]).unwrap());
    let wrong = dir.path().join("wrong-shape.safetensors");
    let mut text = h.to_string().into_bytes();
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend_from_slice(&bytes[8 + header_len..]);
    std::fs::write(&wrong, out).unwrap();
    let err = score(&wrong);
    assert!(
        err.contains("wrong-shape.safetensors") && err.contains("shape"),
        "{err}"
    );

    // Another model's file: enc's probabilities claimed for a model the CSV does not have.
    h["__metadata__"]["classes"] = Value::String(serde_json::to_string(&classes).unwrap());
    h["__metadata__"]["model"] = Value::String("qwen".into());
    let other = dir.path().join("other.safetensors");
    let mut text = h.to_string().into_bytes();
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend_from_slice(&bytes[8 + header_len..]);
    std::fs::write(&other, out).unwrap();
    let err = score(&other);
    assert!(
        err.contains("other.safetensors") && err.contains("\"qwen\"") && err.contains("enc, dec"),
        "{err}"
    );

    // enc's file given for dec's predictions: the argmax check names the document.
    let mut swapped = String::new();
    for line in std::fs::read_to_string(&preds).unwrap().lines() {
        swapped += &line
            .replacen(",enc,", ",tmp,", 1)
            .replacen(",dec,", ",enc,", 1)
            .replacen(",tmp,", ",dec,", 1);
        swapped.push('\n');
    }
    let swapped_csv = dir.path().join("swapped.csv");
    std::fs::write(&swapped_csv, swapped).unwrap();
    let mut cmd = clsbench();
    cmd.arg("score")
        .arg(&swapped_csv)
        .arg("--probs")
        .arg(fixture.join("enc.safetensors"))
        .args(["--resamples", "20"]);
    let err = stderr_on_exit(&mut cmd, 2);
    assert!(
        err.contains("enc.safetensors") && err.contains("document \"c") && err.contains("do not belong"),
        "{err}"
    );
}

#[test]
fn a_damaged_probabilities_file_in_a_run_is_named_and_a_missing_one_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite_with_decision(dir.path());
    let out = dir.path().join("out");
    let run_dir = run(&suite, &out);
    let file = run_dir.join("models/tfidf-lr/probabilities.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let mut cmd = clsbench();
    cmd.arg("run")
        .arg(&suite)
        .args(["--run-id", "r"])
        .arg("--output-dir")
        .arg(&out);
    let err = stderr_on_exit(&mut cmd, 2);
    assert!(
        err.contains("probabilities.safetensors") && err.contains("tfidf-lr") && err.contains("--force"),
        "{err}"
    );
    // A missing file makes the model run again (its entry cannot be calibrated otherwise).
    std::fs::remove_file(&file).unwrap();
    let stderr = stderr_on_exit(
        clsbench()
            .arg("run")
            .arg(&suite)
            .args(["--run-id", "r"])
            .arg("--output-dir")
            .arg(&out),
        0,
    );
    assert!(stderr.contains("no per-class probabilities file"), "{stderr}");
    assert!(file.is_file());
}

#[test]
fn a_decision_naming_an_unknown_metric_exits_2_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite_with_decision(dir.path());
    let text = std::fs::read_to_string(&suite)
        .unwrap()
        .replace("max_ece = 0.5", "max_ece_before_lunch = 0.5");
    std::fs::write(&suite, text).unwrap();
    let out = dir.path().join("out");
    let mut cmd = clsbench();
    cmd.arg("run").arg(&suite).arg("--output-dir").arg(&out);
    let err = stderr_on_exit(&mut cmd, 2);
    assert!(
        err.contains("max_ece_before_lunch") && err.contains("suite.toml") && err.contains("line"),
        "{err}"
    );
    assert!(!out.exists(), "nothing was written");
}
