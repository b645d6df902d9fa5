//! A suite as independent jobs without Slurm (issue 15): `clsbench run SUITE --job N` in a
//! shell loop, then `clsbench merge`, must equal one `clsbench run`; `plan` lists the jobs and
//! writes the job array; bad input (an index out of range, two suites in one directory, an
//! edited manifest, a merge while a job runs, jobs of other data or labels) is refused or
//! reported partial. The real-Slurm test is tests/slurm/run.sh (`make test-slurm`).

mod common;

use common::{clsbench, read_json, repo, stderr_on_exit};
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

    clsbench()
        .arg("run")
        .arg(&suite)
        .args(["--run-id", "single", "--output-dir"])
        .arg(dir.path().join("single"))
        .assert()
        .success();
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
