//! End-to-end tests through the `clsbench` binary: a tiny real-data suite runs, writes every
//! results file with the documented fields, resumes, and bad input exits 2 with a message
//! naming what is wrong.

use crate::common::{clsbench, read_json, repo, split, stderr_on_exit};
use std::path::{Path, PathBuf};

/// Copy the tiny suite and its data into a temp dir so tests can edit them.
fn tiny_suite(dir: &Path) -> PathBuf {
    for f in ["suite.toml", "complaints.csv"] {
        std::fs::copy(repo().join("fixtures/tiny").join(f), dir.join(f)).unwrap();
    }
    dir.join("suite.toml")
}

/// `clsbench run SUITE --output-dir OUT`, for more flags to be added.
fn run_into(suite: &Path, out: &Path) -> assert_cmd::Command {
    let mut cmd = clsbench();
    cmd.arg("run").arg(suite).arg("--output-dir").arg(out);
    cmd
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
    assert_eq!(r["schema_version"], 2);
    assert_eq!(r["models"][0]["train_report"]["fit"], "tfidf-logreg");
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

/// Regression (hardening, defect 3): `--run-id ../../escaped` wrote outside the output
/// directory; an absolute or empty run id was taken as given.
#[test]
fn run_id_outside_the_output_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let out = dir.path().join("out");
    for run_id in ["../../escaped", "/abs", "", ".."] {
        let err = stderr_on_exit(run_into(&suite, &out).args(["--run-id", run_id]), 2);
        assert!(err.contains("--run-id"), "{run_id:?}: {err}");
    }
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(!out.exists() && names.len() == 2, "something was written: {names:?}");
}

/// Regression (hardening, defect 10): a header-only CSV exited 3 from `run` (after the
/// models started) but 2 from `describe`.
#[test]
fn empty_dataset_exits_2_from_run_and_describe() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let csv = dir.path().join("complaints.csv");
    let header = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    for (what, edit) in [
        ("header only", None),
        ("min_count above every class", Some("[labels]\nmin_count = 31\n")),
    ] {
        match edit {
            None => std::fs::write(&csv, format!("{header}\n")).unwrap(),
            Some(labels) => {
                std::fs::copy(repo().join("fixtures/tiny/complaints.csv"), &csv).unwrap();
                let text = std::fs::read_to_string(repo().join("fixtures/tiny/suite.toml")).unwrap();
                std::fs::write(&suite, text.replace("[split]", &format!("{labels}[split]"))).unwrap();
            }
        }
        let out = dir.path().join("out");
        for cmd in ["run", "describe"] {
            let mut c = clsbench();
            c.args([cmd, suite.to_str().unwrap()]);
            if cmd == "run" {
                c.args(["--output-dir", out.to_str().unwrap()]);
            }
            let err = stderr_on_exit(&mut c, 2);
            assert!(
                err.contains("nothing to classify") || err.contains("class"),
                "{what}, {cmd}: {err}"
            );
        }
        assert!(!out.exists(), "{what}: run wrote files before refusing");
    }
}

/// A checkpoint that does not exist is found out before the first model trains.
#[test]
fn missing_checkpoint_exits_2_before_any_model_trains() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let mut text = std::fs::read_to_string(&suite).unwrap();
    text.push_str(
        "\n[[models]]\nid = \"enc\"\nkind = \"encoder\"\ncheckpoint = \"./no-such-model\"\nmethod = \"linear-probe\"\nlearning_rate = 1e-3\nepochs = 1\n",
    );
    std::fs::write(&suite, text).unwrap();
    let out = dir.path().join("out");
    let err = stderr_on_exit(&mut run_into(&suite, &out), 2);
    assert!(err.contains("\"enc\"") && err.contains("no-such-model"), "{err}");
    assert!(
        !out.join("tiny").exists(),
        "models ran before the checkpoint was checked"
    );
}

/// Regression (hardening, defect 10): "model error: model mini: model error: ..." said it
/// twice.
#[test]
fn failed_model_message_is_not_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let text = std::fs::read_to_string(&suite).unwrap();
    // No complaint has 5,000 words: the vocabulary is empty and the fit fails.
    std::fs::write(
        &suite,
        text.replacen("max_iter = 200", "max_iter = 200\nngram_range = [5000, 5000]", 1),
    )
    .unwrap();
    let out = dir.path().join("out");
    let err = stderr_on_exit(&mut run_into(&suite, &out), 3);
    let last = err.lines().last().unwrap();
    assert!(
        last.contains("model tfidf-lr failed: ") && last.contains("empty vocabulary"),
        "{err}"
    );
    assert_eq!(
        last.matches("model").count(),
        1 + last.matches("model ").count() - 1,
        "{last}"
    );
    assert!(!last.contains("model error: model"), "{last}");
    // The other model still ran.
    let r = read_json(
        &out.join("tiny")
            .join(
                std::fs::read_dir(out.join("tiny"))
                    .unwrap()
                    .next()
                    .unwrap()
                    .unwrap()
                    .file_name(),
            )
            .join("results.json"),
    );
    assert_eq!(r["models"][1]["status"], "ok");
}

/// Regression (hardening, defect 2): turning `[perf] enabled` on reused the cached model and
/// never timed it.
#[test]
fn changed_perf_settings_are_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let out = dir.path().join("out");
    let run = |code: i32| stderr_on_exit(run_into(&suite, &out).args(["--run-id", "r"]), code);
    run(0);
    let again = run(0);
    assert!(again.contains("reusing"), "an unchanged suite must reuse: {again}");
    let text = std::fs::read_to_string(&suite).unwrap();
    std::fs::write(
        &suite,
        text.replace(
            "enabled = false",
            "enabled = true\nwarmup = 1\nsingle_examples = 2\nbatch_sizes = [1]\nrepeats = 1",
        ),
    )
    .unwrap();
    let timed = run(0);
    assert!(
        !timed.contains("reusing") && timed.contains("training again"),
        "{timed}"
    );
    let m = read_json(&out.join("tiny/r/models/tfidf-lr/model.json"));
    assert!(m["perf"]["timing"].is_object(), "not timed: {}", m["perf"]);
}

/// Regression (hardening, defect 2): a truncated checkpoint still reused the cached model and
/// manifest.json kept the old sha256. Needs the model mirror (MiniLM).
#[test]
fn truncated_weights_are_not_reused() {
    let Some(mirror) = std::env::var_os("CLSBENCH_MODEL_DIR").map(PathBuf::from) else {
        eprintln!("skipping: CLSBENCH_MODEL_DIR not set (the model mirror; see tools/fetch-models.sh)");
        return;
    };
    let src = mirror.join("all-MiniLM-L6-v2");
    if !src.join("model.safetensors").is_file() {
        eprintln!("skipping: no MiniLM in the model mirror at {}", mirror.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("minilm");
    std::fs::create_dir(&model).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, model.join(p.file_name().unwrap())).unwrap();
        }
    }
    let suite = tiny_suite(dir.path());
    let text = std::fs::read_to_string(&suite).unwrap();
    std::fs::write(
        &suite,
        format!(
            "{text}\n[[models]]\nid = \"probe\"\nkind = \"encoder\"\ncheckpoint = {model:?}\nmethod = \"linear-probe\"\npooling = \"mean\"\nlearning_rate = 1e-2\nepochs = 1\nmax_length = 32\n"
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = |code: i32| {
        stderr_on_exit(
            clsbench().env_remove("CLSBENCH_MODEL_DIR").args([
                "run",
                suite.to_str().unwrap(),
                "--output-dir",
                out.to_str().unwrap(),
                "--run-id",
                "r",
                "--only",
                "probe",
            ]),
            code,
        )
    };
    run(0);
    let weights = model.join("model.safetensors");
    let len = std::fs::metadata(&weights).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&weights)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let after = run(3);
    assert!(
        after.contains("training again") && !after.contains("reusing"),
        "{after}"
    );
}

/// Regression (hardening, defect 10): `score --out FILE` on an existing file said "cannot
/// read".
#[test]
fn score_out_on_an_existing_file_says_it_wants_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let preds = dir.path().join("p.csv");
    std::fs::write(&preds, "id,model,gold,pred\n1,a,x,x\n2,a,y,x\n").unwrap();
    let file = dir.path().join("taken");
    std::fs::write(&file, "").unwrap();
    let err = stderr_on_exit(clsbench().arg("score").arg(&preds).arg("--out").arg(&file), 2);
    assert!(
        err.contains("expected a directory") && !err.contains("cannot read"),
        "{err}"
    );
}

/// Regression (issue 10): `clsbench describe SUITE | head -1` panicked on the closed pipe.
#[test]
fn closed_stdout_ends_quietly() {
    use std::process::{Command, Stdio};
    let suite = repo().join("fixtures/tiny/suite.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_clsbench"))
        .arg("describe")
        .arg(&suite)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away before anything is printed
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Regression (hardening, defect 1): an optimiser stopped by `max_iter` showed only as
/// `converged: false` deep in results.json.
#[test]
fn unconverged_baseline_is_flagged_in_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let text = std::fs::read_to_string(&suite).unwrap();
    std::fs::write(&suite, text.replacen("max_iter = 200", "max_iter = 2", 1)).unwrap();
    let out = dir.path().join("out");
    run_into(&suite, &out).args(["--run-id", "r"]).assert().success();
    let summary = std::fs::read_to_string(out.join("tiny/r/summary.md")).unwrap();
    let row = summary.lines().find(|l| l.starts_with("| tfidf-lr |")).unwrap();
    assert!(row.contains("NOT CONVERGED after 2 iterations"), "{row}");
    let other = summary.lines().find(|l| l.starts_with("| tfidf-lr-unigram |")).unwrap();
    assert!(!other.contains("NOT CONVERGED"), "{other}");
}

/// Issue 10: the library printed its steps itself, so nothing could run it quietly. `--quiet`
/// leaves stderr empty while the run writes the same predictions as a narrated one, and a bad
/// input still says what is wrong.
#[test]
fn quiet_run_prints_nothing_but_writes_the_same_results() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let out = dir.path().join("out");
    let loud = run_into(&suite, &out)
        .args(["--run-id", "loud", "--no-perf"])
        .assert()
        .success();
    let loud_err = String::from_utf8_lossy(&loud.get_output().stderr).into_owned();
    assert!(loud_err.contains("clsbench: tfidf-lr: training"), "{loud_err}");
    let quiet = run_into(&suite, &out)
        .args(["--run-id", "quiet", "--no-perf", "--quiet"])
        .assert()
        .success();
    let quiet_out = quiet.get_output();
    assert_eq!(String::from_utf8_lossy(&quiet_out.stderr), "");
    assert!(
        String::from_utf8_lossy(&quiet_out.stdout).contains("tfidf-lr"),
        "the summary still goes to stdout"
    );
    let preds = |run: &str| {
        std::fs::read_to_string(out.join("tiny").join(run).join("models/tfidf-lr/predictions.csv")).unwrap()
    };
    assert_eq!(preds("loud"), preds("quiet"));
    // `-q` anywhere on the line, and errors are never silenced.
    let mut bad = clsbench();
    bad.args(["-q", "run"]).arg(dir.path().join("no-such-suite.toml"));
    let err = stderr_on_exit(&mut bad, 2);
    assert!(err.contains("no-such-suite.toml"), "{err}");
}
