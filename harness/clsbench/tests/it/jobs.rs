//! A suite as independent jobs without Slurm (issue 15): `clsbench run SUITE --job N` in a
//! shell loop, then `clsbench merge`, must equal one `clsbench run`; `plan` lists the jobs and
//! writes the job array; bad input (an index out of range, two suites in one directory, an
//! edited manifest, a merge while a job runs, jobs of other data or labels) is refused or
//! reported partial. The real-Slurm test is tests/slurm/run.sh (`make test-slurm`).

use crate::common::{clsbench, read_json, repo, stderr_on_exit};
use std::path::{Path, PathBuf};

fn tiny_suite(dir: &Path) -> PathBuf {
    for f in ["suite.toml", "complaints.csv"] {
        std::fs::copy(repo().join("fixtures/tiny").join(f), dir.join(f)).unwrap();
    }
    dir.join("suite.toml")
}

fn run_job(suite: &Path, i: usize, shared: &Path) {
    clsbench()
        .arg("run")
        .arg(suite)
        .args(["--job", &i.to_string(), "--output-dir"])
        .arg(shared)
        .assert()
        .success();
}

/// The suite in one process, as run id "single" under `out`.
fn run_single(suite: &Path, out: &Path) {
    clsbench()
        .arg("run")
        .arg(suite)
        .args(["--run-id", "single", "--output-dir"])
        .arg(out)
        .assert()
        .success();
}

#[test]
fn shell_loop_of_jobs_then_merge_equals_a_single_run() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let shared = dir.path().join("shared");
    for i in 0..2 {
        run_job(&suite, i, &shared);
    }
    let jobs = shared.join("tiny/jobs");
    assert!(jobs.join("tfidf-lr/job.json").is_file());
    assert!(jobs
        .join("tfidf-lr-unigram/models/tfidf-lr-unigram/predictions.csv")
        .is_file());
    clsbench().arg("merge").arg(&shared).assert().success();

    run_single(&suite, &dir.path().join("single"));
    let single_dir = dir.path().join("single/tiny/single");
    let merged_dir = shared.join("tiny/merged");
    let single = read_json(&single_dir.join("results.json"));
    let merged = read_json(&merged_dir.join("results.json"));
    assert_eq!(
        single["splits"], merged["splits"],
        "metrics, bootstrap intervals and McNemar must be identical"
    );
    assert_eq!(single["dataset"]["labels"], merged["dataset"]["labels"]);
    for (a, b) in single["models"]
        .as_array()
        .unwrap()
        .iter()
        .zip(merged["models"].as_array().unwrap())
    {
        assert_eq!(a["id"], b["id"]);
        assert_eq!(a["cache_key"], b["cache_key"]);
        let id = a["id"].as_str().unwrap();
        let pa = std::fs::read(single_dir.join("models").join(id).join("predictions.csv")).unwrap();
        let pb = std::fs::read(merged_dir.join("models").join(id).join("predictions.csv")).unwrap();
        assert_eq!(pa, pb, "predictions of {id}");
    }
    for f in ["summary.md", "metrics.csv", "per_class.csv", "split.csv"] {
        assert!(merged_dir.join(f).is_file(), "{f}");
    }
    let manifest = read_json(&merged_dir.join("manifest.json"));
    assert_eq!(manifest["jobs"]["partial"], false);
    let listed = manifest["jobs"]["jobs"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    for j in listed {
        assert_eq!(j["state"], "finished");
        assert!(j["record"]["hardware"]["cpu_threads"].as_u64().unwrap() >= 1);
        assert!(j["record"]["wall_s"].as_f64().unwrap() >= 0.0);
    }

    // A re-run of a finished job reuses it; a second merge gives the same statistics.
    let out = clsbench()
        .arg("run")
        .arg(&suite)
        .args(["--job", "0", "--output-dir"])
        .arg(&shared)
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("reusing"));
    clsbench().arg("merge").arg(shared.join("tiny")).assert().success();
    assert_eq!(read_json(&merged_dir.join("results.json"))["splits"], single["splits"]);
}

#[test]
fn plan_lists_jobs_with_keys_and_estimates_and_writes_a_job_array() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let out = clsbench()
        .arg("plan")
        .arg(&suite)
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .clone();
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["n_jobs"], 2);
    let j = &plan["jobs"][1];
    assert_eq!(
        (j["index"].as_u64(), j["id"].as_str(), j["seed"].as_u64()),
        (Some(1), Some("tfidf-lr-unigram"), Some(7))
    );
    assert_eq!(j["cache_key"].as_str().unwrap().len(), 64);
    assert!(j["estimate"]["time_s"].as_f64().unwrap() > 0.0);
    assert!(j["estimate"]["memory_bytes"].as_u64().unwrap() > 0);
    let text = clsbench()
        .arg("plan")
        .arg(&suite)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(String::from_utf8_lossy(&text).contains("estimate"));

    let slurm = dir.path().join("cluster");
    // Without Slurm on this machine the script is still written, with a note saying so.
    let err = clsbench()
        .arg("plan")
        .arg(&suite)
        .arg("--slurm")
        .arg(&slurm)
        .args([
            "--partition",
            "gpu",
            "--max-parallel",
            "1",
            "--time",
            "01:30:00",
            "--gpus-per-job",
            "1",
        ])
        .env("PATH", "/nonexistent")
        .assert()
        .success()
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&err).contains("sbatch is not on this machine's PATH"));
    let script = std::fs::read_to_string(slurm.join("tiny/array.sbatch")).unwrap();
    for line in [
        "#SBATCH --array=0-1%1",
        "#SBATCH --requeue",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=01:30:00",
        "#SBATCH --gres=gpu:1",
        "/logs/%A_%a.out",
        "--job \"$SLURM_ARRAY_TASK_ID\" --output-dir",
    ] {
        assert!(script.contains(line), "{line:?} not in\n{script}");
    }
    assert_eq!(read_json(&slurm.join("tiny/plan.json"))["n_jobs"], 2);

    let err = stderr_on_exit(
        clsbench()
            .arg("plan")
            .arg(&suite)
            .arg("--slurm")
            .arg(&slurm)
            .args(["--time", "90 minutes"]),
        2,
    );
    assert!(err.contains("--time") && err.contains("HH:MM:SS"), "{err}");
}

#[test]
fn job_index_out_of_range_exits_2_naming_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let err = stderr_on_exit(
        clsbench()
            .arg("run")
            .arg(&suite)
            .args(["--job", "2", "--output-dir"])
            .arg(dir.path().join("s")),
        2,
    );
    assert!(err.contains("--job 2") && err.contains("0 to 1"), "{err}");
    assert!(
        !dir.path().join("s/tiny/jobs").exists(),
        "nothing written for a bad index"
    );
}

#[test]
fn merge_with_a_missing_or_running_job_is_partial_exit_5_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let shared = dir.path().join("shared");
    run_job(&suite, 0, &shared);
    let err = stderr_on_exit(clsbench().arg("merge").arg(&shared), 5);
    assert!(
        err.contains("partial merge") && err.contains("missing: 1 (tfidf-lr-unigram)"),
        "{err}"
    );
    let merged = shared.join("tiny/merged");
    let manifest = read_json(&merged.join("manifest.json"));
    assert_eq!(manifest["jobs"]["partial"], true);
    assert_eq!(manifest["jobs"]["unfinished"][0]["id"], "tfidf-lr-unigram");
    assert_eq!(
        read_json(&merged.join("results.json"))["models"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A job whose directory lock is held by a live process is still running.
    let running = shared.join("tiny/jobs/tfidf-lr-unigram");
    std::fs::create_dir_all(&running).unwrap();
    let lock = std::fs::File::create(running.join(".lock")).unwrap();
    lock.try_lock().unwrap();
    let err = stderr_on_exit(clsbench().arg("merge").arg(&shared), 5);
    assert!(err.contains("still running: 1 (tfidf-lr-unigram)"), "{err}");
    // ... and `run --job` of it is refused while it holds the lock (exit 4).
    stderr_on_exit(
        clsbench()
            .arg("run")
            .arg(&suite)
            .args(["--job", "1", "--output-dir"])
            .arg(&shared),
        4,
    );
    drop(lock);
    run_job(&suite, 1, &shared);
    clsbench().arg("merge").arg(&shared).assert().success();
    assert_eq!(
        read_json(&merged.join("results.json"))["models"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn shared_directory_with_jobs_of_two_suites_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let other = dir.path().join("other.toml");
    let text = std::fs::read_to_string(&suite)
        .unwrap()
        .replace("name = \"tiny\"", "name = \"tiny-two\"");
    std::fs::write(&other, text).unwrap();
    let shared = dir.path().join("shared");
    run_job(&suite, 0, &shared);
    run_job(&other, 0, &shared);
    let err = stderr_on_exit(clsbench().arg("merge").arg(&shared), 2);
    assert!(
        err.contains("jobs of 2 suites") && err.contains("tiny, tiny-two"),
        "{err}"
    );
    // A job of one suite copied into the other's directory is refused by its record.
    let copied = shared.join("tiny/jobs/tfidf-lr-unigram");
    std::fs::create_dir_all(&copied).unwrap();
    std::fs::copy(shared.join("tiny-two/jobs/tfidf-lr/job.json"), copied.join("job.json")).unwrap();
    let err = stderr_on_exit(clsbench().arg("merge").arg(shared.join("tiny")), 2);
    assert!(err.contains("a job of suite \"tiny-two\""), "{err}");
}

#[test]
fn hand_edited_manifest_is_refused_by_run_and_merge() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let shared = dir.path().join("shared");
    clsbench()
        .arg("plan")
        .arg(&suite)
        .arg("--slurm")
        .arg(&shared)
        .assert()
        .success();
    run_job(&suite, 0, &shared);
    let plan_path = shared.join("tiny/plan.json");
    let mut plan = read_json(&plan_path);
    plan["jobs"][1]["id"] = "tfidf-lr".into();
    std::fs::write(&plan_path, serde_json::to_string(&plan).unwrap()).unwrap();
    let err = stderr_on_exit(clsbench().arg("merge").arg(&shared), 2);
    assert!(
        err.contains("plan.json") && err.contains("job 1") && err.contains("edited by hand"),
        "{err}"
    );
    let err = stderr_on_exit(
        clsbench()
            .arg("run")
            .arg(&suite)
            .args(["--job", "1", "--output-dir"])
            .arg(&shared),
        2,
    );
    assert!(err.contains("edited by hand"), "{err}");
    plan["jobs"][1]["id"] = "tfidf-lr-unigram".into();
    plan["n_jobs"] = 3.into();
    std::fs::write(&plan_path, serde_json::to_string(&plan).unwrap()).unwrap();
    let err = stderr_on_exit(clsbench().arg("merge").arg(&shared), 2);
    assert!(err.contains("n_jobs is 3 but 2 jobs are listed"), "{err}");
}

#[test]
fn jobs_of_other_data_or_labels_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path());
    let shared = dir.path().join("shared");
    for i in 0..2 {
        run_job(&suite, i, &shared);
    }
    // Another label set in a record.
    let record = shared.join("tiny/jobs/tfidf-lr/job.json");
    let original = std::fs::read_to_string(&record).unwrap();
    let mut r: serde_json::Value = serde_json::from_str(&original).unwrap();
    r["labels"].as_array_mut().unwrap().pop();
    std::fs::write(&record, serde_json::to_string(&r).unwrap()).unwrap();
    let err = stderr_on_exit(clsbench().arg("merge").arg(&shared), 2);
    assert!(
        err.contains("refusing to merge job \"tfidf-lr\"") && err.contains("label set"),
        "{err}"
    );
    std::fs::write(&record, original).unwrap();

    // The data changed after the jobs ran: every job is of other data.
    let csv = dir.path().join("complaints.csv");
    let data = std::fs::read_to_string(&csv).unwrap();
    assert!(data.contains(" the "));
    std::fs::write(&csv, data.replacen(" the ", " THE ", 1)).unwrap();
    let err = stderr_on_exit(clsbench().arg("merge").arg(&shared), 2);
    assert!(
        err.contains("refusing to merge") && err.contains("ran on data with sha256"),
        "{err}"
    );
}

/// The tiny suite with `seeds` (and optionally `seed_controls`) added after its `seed`.
fn seeded_suite(dir: &Path, extra: &str) -> PathBuf {
    let suite = tiny_suite(dir);
    let text = std::fs::read_to_string(&suite).unwrap();
    assert!(text.contains("seed = 7\n"));
    std::fs::write(&suite, text.replacen("seed = 7\n", &format!("seed = 7\n{extra}\n"), 1)).unwrap();
    suite
}

/// Issue 13: every (model, seed) is a job of its own; a shell loop of them merged equals one
/// run, seed statistics included; the suite seed's run keeps the model's directory name, so a
/// one-seed run is reused when seeds are added.
#[test]
fn seeds_are_jobs_and_merge_equals_a_single_run() {
    let dir = tempfile::tempdir().unwrap();
    let suite = seeded_suite(dir.path(), "seeds = [7, 8]");
    let plan = clsbench()
        .args(["plan", "--json"])
        .arg(&suite)
        .assert()
        .success()
        .get_output()
        .clone();
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let ids: Vec<&str> = plan["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "tfidf-lr",
            "tfidf-lr.seed8",
            "tfidf-lr-unigram",
            "tfidf-lr-unigram.seed8"
        ]
    );
    let shared = dir.path().join("shared");
    for i in 0..4 {
        run_job(&suite, i, &shared);
    }
    clsbench().arg("merge").arg(&shared).assert().success();
    run_single(&suite, &dir.path().join("single"));
    let single = read_json(&dir.path().join("single/tiny/single/results.json"));
    let merged = read_json(&shared.join("tiny/merged/results.json"));
    assert_eq!(single["splits"], merged["splits"]);
    for key in ["id", "seed", "dir", "cache_key"] {
        let of = |r: &serde_json::Value| {
            r["seed_runs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m[key].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(of(&single), of(&merged), "seed_runs {key}");
    }
    let val = crate::common::split(&single, "val");
    let seeds = &val["seeds"];
    assert_eq!(seeds["method"], "two-level");
    assert_eq!(seeds["models"][0]["seeds"], serde_json::json!([7, 8]));
    // TF-IDF + L-BFGS does not depend on the training seed: both seeds score the same, and the
    // seed mean is the first seed's accuracy.
    let acc = &seeds["models"][0]["accuracy"];
    assert_eq!(acc[0], acc[1]);
    assert_eq!(
        seeds["models"][0]["accuracy_mean"]["point"],
        val["models"][0]["metrics"]["accuracy"]
    );
    assert_eq!(single["seed_runs"].as_array().unwrap().len(), 2);
    assert_eq!(single["seed_runs"][0]["seed"], 8);
    assert_eq!(single["seed_runs"][0]["dir"], "tfidf-lr.seed8");
    let summary = std::fs::read_to_string(dir.path().join("single/tiny/single/summary.md")).unwrap();
    assert!(
        summary.contains("Training seeds (two-level bootstrap") && summary.contains("tfidf-lr (seed 8)"),
        "{summary}"
    );

    // The suite's own seed keeps its directory and cache key: a one-seed run of the same suite
    // reuses it.
    let one_dir = dir.path().join("one");
    std::fs::create_dir_all(&one_dir).unwrap();
    let one = tiny_suite(&one_dir);
    let out = dir.path().join("single");
    let err = stderr_on_exit(
        clsbench()
            .arg("run")
            .arg(&one)
            .args(["--run-id", "single", "--output-dir"])
            .arg(&out),
        0,
    );
    assert!(
        err.contains("tfidf-lr: finished results with the same inputs exist, reusing"),
        "{err}"
    );
}

/// Issue 13: `seed_controls = ["training", "split"]` re-draws the split per seed; results say
/// the comparison is unpaired and keep every seed's split file.
#[test]
fn split_seeds_redraw_the_split_and_are_unpaired() {
    let dir = tempfile::tempdir().unwrap();
    let suite = seeded_suite(
        dir.path(),
        "seeds = [7, 8, 9]\nseed_controls = [\"training\", \"split\"]",
    );
    let out = dir.path().join("out");
    clsbench()
        .arg("run")
        .arg(&suite)
        .args(["--run-id", "r", "--output-dir"])
        .arg(&out)
        .assert()
        .success();
    let run = out.join("tiny/r");
    let first = std::fs::read_to_string(run.join("split.csv")).unwrap();
    let second = std::fs::read_to_string(run.join("split.seed8.csv")).unwrap();
    assert_ne!(first, second, "seed 8 must draw another split");
    assert!(run.join("split.seed9.csv").is_file());
    let results = read_json(&run.join("results.json"));
    let seeds = &crate::common::split(&results, "val")["seeds"];
    assert_eq!(seeds["method"], "seed-bootstrap-unpaired");
    let acc: Vec<f64> = seeds["models"][0]["accuracy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(acc.len(), 3);
    assert!(acc.iter().any(|&a| a != acc[0]), "other splits, other scores: {acc:?}");
    // The first seed's split is the run's: its per-seed score is the document table's.
    assert_eq!(
        acc[0],
        crate::common::split(&results, "val")["models"][0]["metrics"]["accuracy"]
            .as_f64()
            .unwrap()
    );
}

/// Issue 13: `score` with a `seed` column gives the seed-aware statistics; one seed per model
/// says why there are none.
#[test]
fn score_with_a_seed_column_gives_seed_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.csv");
    let mut text = String::from("id,model,seed,gold,pred\n");
    for seed in [1, 2, 3] {
        for i in 0..60 {
            let gold = ["a", "b", "c"][i % 3];
            let enc = if (i + seed) % 4 == 0 { "a" } else { gold };
            let dec = if (i + seed) % 7 == 0 { "b" } else { gold };
            text.push_str(&format!("{i},enc,{seed},{gold},{enc}\n{i},dec,{seed},{gold},{dec}\n"));
        }
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
    assert!(
        md.contains("Training seeds (two-level") && md.contains("| enc | 1, 2, 3 |"),
        "{md}"
    );
    let score = read_json(&dir.path().join("score.json"));
    let seeds = &score["analysis"]["seeds"];
    assert_eq!(seeds["models"][1]["seeds"], serde_json::json!([1, 2, 3]));
    assert!(seeds["pairs"][0]["aso_accuracy"]["b_over_a"]["epsilon_min"].is_number());

    let one: String = text
        .lines()
        .filter(|l| !l.contains(",2,") && !l.contains(",3,"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&p, one).unwrap();
    let err = stderr_on_exit(clsbench().args(["score", p.to_str().unwrap(), "--resamples", "100"]), 0);
    assert!(err.contains("one seed") && err.contains("no ASO"), "{err}");
}

/// Issue 13: the training seed reaches training (a transformer's head initialisation, batch
/// order, dropout): two seeds of a MiniLM linear probe train differently, and the same seed
/// again reproduces its predictions. Needs the model mirror (MiniLM).
#[test]
fn training_seeds_change_a_transformer_and_repeat_exactly() {
    let Some(mirror) = std::env::var_os("CLSBENCH_MODEL_DIR").map(PathBuf::from) else {
        eprintln!("skipping: CLSBENCH_MODEL_DIR not set (the model mirror; see tools/fetch-models.sh)");
        return;
    };
    let model = mirror.join("all-MiniLM-L6-v2");
    if !model.join("model.safetensors").is_file() {
        eprintln!("skipping: no MiniLM in the model mirror at {}", mirror.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let suite = seeded_suite(dir.path(), "seeds = [7, 8]");
    let text = std::fs::read_to_string(&suite).unwrap();
    std::fs::write(
        &suite,
        format!(
            "{text}\n[[models]]\nid = \"probe\"\nkind = \"encoder\"\ncheckpoint = {model:?}\nmethod = \"linear-probe\"\npooling = \"mean\"\nlearning_rate = 1e-2\nepochs = 1\nbatch_size = 8\nmax_length = 32\n"
        ),
    )
    .unwrap();
    let run = |run_id: &str| {
        clsbench()
            .env_remove("CLSBENCH_MODEL_DIR")
            .arg("run")
            .arg(&suite)
            .args(["--only", "probe", "--run-id", run_id, "--output-dir"])
            .arg(dir.path().join("out"))
            .assert()
            .success();
        dir.path().join("out/tiny").join(run_id)
    };
    let a = run("a");
    let loss = |run: &Path, model_dir: &str| {
        read_json(&run.join("models").join(model_dir).join("model.json"))["train_report"]["epochs"][0]["train_loss"]
            .clone()
    };
    assert!(loss(&a, "probe").is_number(), "{}", loss(&a, "probe"));
    assert_ne!(
        loss(&a, "probe"),
        loss(&a, "probe.seed8"),
        "seeds 7 and 8 must train differently"
    );
    let b = run("b");
    for m in ["probe", "probe.seed8"] {
        let p = |run: &Path| std::fs::read(run.join("models").join(m).join("predictions.csv")).unwrap();
        assert_eq!(p(&a), p(&b), "{m}: the same seed must give the same predictions");
    }
}
