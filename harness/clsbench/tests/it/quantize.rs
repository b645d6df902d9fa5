//! Quantised inference end to end: a transformer's `quantize` formats become rows of their
//! own (`<id>@<format>`) beside the trained model, scored, paired against it and timed; a
//! re-run reuses them; `run --job` + `merge` carry them; a format that cannot hold the
//! checkpoint's layers is refused before training. Needs the model mirror's MiniLM (skips,
//! saying so, without it).

use crate::common::*;
use std::path::{Path, PathBuf};

/// The tiny suite with timing on (a short protocol) and a MiniLM linear probe listing `formats`.
fn suite_with_probe(dir: &Path, minilm: &Path, formats: &str) -> PathBuf {
    std::fs::copy(repo().join("fixtures/tiny/complaints.csv"), dir.join("complaints.csv")).unwrap();
    let base = std::fs::read_to_string(repo().join("fixtures/tiny/suite.toml")).unwrap();
    let base = base.replace(
        "[perf]\nenabled = false\n",
        "[perf]\nwarmup = 1\nsingle_examples = 3\nbatch_sizes = [8]\nrepeats = 1\n",
    );
    assert!(
        base.contains("single_examples = 3"),
        "fixtures/tiny/suite.toml changed its [perf] table"
    );
    let model = format!(
        "\n[[models]]\nid = \"minilm\"\nkind = \"encoder\"\ncheckpoint = \"{}\"\nmethod = \"linear-probe\"\npooling = \"mean\"\n\
         learning_rate = 1e-2\nepochs = 1\nmax_length = 32\nbatch_size = 16\nquantize = {formats}\n",
        minilm.display()
    );
    std::fs::write(dir.join("suite.toml"), base + &model).unwrap();
    dir.join("suite.toml")
}

/// (id, prob) of every row of a predictions.csv.
fn probs(path: &Path) -> Vec<(String, f64)> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let h = r.headers().unwrap().clone();
    let (id, prob) = (
        h.iter().position(|c| c == "id").unwrap(),
        h.iter().position(|c| c == "prob").unwrap(),
    );
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            (rec[id].to_string(), rec[prob].parse().unwrap())
        })
        .collect()
}

#[test]
fn quantised_variants_are_rows_of_their_own_paired_with_their_model_and_reused() {
    let Some(minilm) = model_mirror("all-MiniLM-L6-v2") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let suite = suite_with_probe(dir.path(), &minilm, "[\"q8_0\", \"q4_0\"]");
    let out = dir.path().join("out");
    let run = || {
        let o = clsbench()
            .arg("run")
            .arg(&suite)
            .args(["--only", "minilm", "--run-id", "r", "--output-dir"])
            .arg(&out)
            .assert()
            .success()
            .get_output()
            .clone();
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let first = run();
    assert!(
        first.contains("minilm@q8_0: quantising minilm's backbone linear layers to q8_0"),
        "{first}"
    );
    let run_dir = out.join("tiny/r");
    let r = read_json(&run_dir.join("results.json"));
    let ids: Vec<&str> = r["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["minilm", "minilm@q8_0", "minilm@q4_0"]);
    for (m, format) in r["models"].as_array().unwrap()[1..].iter().zip(["q8_0", "q4_0"]) {
        assert_eq!(
            (m["variant_of"].as_str(), m["quantize"].as_str()),
            (Some("minilm"), Some(format))
        );
        assert_eq!(m["dir"], format!("minilm/{format}"));
        assert!(
            m["perf"]["timing"]["single"]["median_ms"].as_f64().unwrap() > 0.0,
            "{}",
            m["perf"]
        );
        assert!(m["perf"]["memory"]["peak_rss_bytes"].as_u64().unwrap() > 0);
    }
    assert!(
        r["models"][0].get("variant_of").is_none(),
        "the trained model is no variant"
    );

    // The variant predicts with quantised weights: its probabilities differ from the model's,
    // and q8_0 (8-bit blocks) stays close to them.
    let base = probs(&run_dir.join("models/minilm/predictions.csv"));
    let q8 = probs(&run_dir.join("models/minilm/q8_0/predictions.csv"));
    assert!(run_dir.join("models/minilm/q8_0/probabilities.safetensors").is_file());
    assert_eq!(base.len(), q8.len());
    let diffs: Vec<f64> = base
        .iter()
        .zip(&q8)
        .map(|((ia, pa), (ib, pb))| {
            assert_eq!(ia, ib);
            (pa - pb).abs()
        })
        .collect();
    let max = diffs.iter().cloned().fold(0.0, f64::max);
    assert!(
        max > 0.0,
        "q8_0 gave exactly the full-precision probabilities: nothing was quantised"
    );
    assert!(max < 0.05, "q8_0 moved a probability by {max}");

    // Paired against the model like any pair: McNemar, the MDE and the per-tier bootstraps.
    let val = split(&r, "val");
    let pair = val["mcnemar"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["a"] == "minilm" && p["b"] == "minilm@q8_0")
        .expect("the pair model / variant");
    assert!(!pair["tier_deltas"].as_array().unwrap().is_empty(), "{pair}");
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
    assert!(summary.contains("## Quantised variants (val split)"), "{summary}");
    assert!(summary.contains("| minilm@q4_0 | minilm |"), "{summary}");

    let again = run();
    for id in ["minilm", "minilm@q8_0", "minilm@q4_0"] {
        assert!(
            again.contains(&format!("{id}: finished results with the same inputs exist, reusing")),
            "{id} not reused: {again}"
        );
    }
    assert!(!again.contains("quantising"), "{again}");
}

#[test]
fn a_format_that_cannot_hold_the_checkpoints_layers_is_refused_before_training() {
    let Some(minilm) = model_mirror("all-MiniLM-L6-v2") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let suite = suite_with_probe(dir.path(), &minilm, "[\"q8_0\", \"q4k\"]");
    let err = stderr_on_exit(
        clsbench()
            .arg("run")
            .arg(&suite)
            .args(["--only", "minilm", "--output-dir"])
            .arg(dir.path().join("out")),
        2,
    );
    assert!(
        err.contains("model \"minilm\"")
            && err.contains("field `quantize`")
            && err.contains("encoder.layer.*.attention.self.query")
            && err.contains("[384, 384]")
            && err.contains("q4_0"),
        "{err}"
    );
    assert!(!err.contains("training"), "trained before refusing: {err}");
}

#[test]
fn a_jobs_variants_travel_with_it_into_the_merge() {
    let Some(minilm) = model_mirror("all-MiniLM-L6-v2") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let suite = suite_with_probe(dir.path(), &minilm, "[\"q8_0\"]");
    let shared = dir.path().join("shared");
    for job in ["0", "1", "2"] {
        clsbench()
            .arg("run")
            .arg(&suite)
            .args(["--job", job, "--no-perf", "--output-dir"])
            .arg(&shared)
            .assert()
            .success();
    }
    clsbench().arg("merge").arg(&shared).assert().success();
    let merged = shared.join("tiny/merged");
    let r = read_json(&merged.join("results.json"));
    let ids: Vec<&str> = r["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["tfidf-lr", "tfidf-lr-unigram", "minilm", "minilm@q8_0"]);
    assert!(merged.join("models/minilm/q8_0/predictions.csv").is_file());
}

/// What broke: a job whose model was reused but whose q4_0 variant failed (its trained weights
/// were gone) exited 3 yet recorded `status: ok` in job.json, so `merge` counted it finished.
#[test]
fn a_job_whose_variant_failed_is_failed_not_finished() {
    let Some(minilm) = model_mirror("all-MiniLM-L6-v2") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let suite = suite_with_probe(dir.path(), &minilm, "[\"q8_0\"]");
    let shared = dir.path().join("shared");
    let job = || {
        let mut c = clsbench();
        c.arg("run")
            .arg(&suite)
            .args(["--job", "2", "--no-perf", "--output-dir"])
            .arg(&shared);
        c
    };
    job().assert().success();
    let job_dir = shared.join("tiny/jobs/minilm");
    assert_eq!(read_json(&job_dir.join("job.json"))["status"], "ok");
    // The model's results stay (and are reused); its trained weights and the variant go.
    let model_dir = job_dir.join("models/minilm");
    let trained = read_json(&model_dir.join("trained.json"));
    for f in trained["files"].as_array().unwrap() {
        std::fs::remove_file(model_dir.join(f[0].as_str().unwrap())).unwrap();
    }
    std::fs::remove_file(model_dir.join("q8_0/model.json")).unwrap();
    let err = stderr_on_exit(&mut job(), 3);
    assert!(
        err.contains("minilm: finished results with the same inputs exist, reusing"),
        "{err}"
    );
    let record = read_json(&job_dir.join("job.json"));
    assert_eq!(record["status"], "failed", "{record}");
    assert!(
        record["error"].as_str().unwrap().starts_with("minilm@q8_0: "),
        "{record}"
    );
    let err = stderr_on_exit(clsbench().arg("merge").arg(&shared), 5);
    assert!(err.contains("failed: 2 (minilm)"), "{err}");
}
