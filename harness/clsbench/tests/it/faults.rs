//! Fault injection through the CLI: runs killed at random points, a full disk, a read-only
//! output directory. What a user must get: only complete files (or none), the environment's
//! exit code with one clear line, no temp files left behind, and a next run that completes.
//!
//! The disk tests mount small tmpfs file systems and so need root; elsewhere they say they
//! skip.

use crate::common::repo;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const ENVIRONMENT_EXIT: i32 = 4;

/// A suite small enough to run many times: TF-IDF on the committed CFPB fixture.
fn tiny_suite(dir: &Path, perf: bool) -> PathBuf {
    let data = repo().join("fixtures/cfpb-issues-mini/complaints.csv");
    let merge = repo().join("fixtures/seed/label_merge_mapping.json");
    let text = format!(
        r#"name = "faults"
seed = 42
[dataset]
source = "csv"
path = {data:?}
text_column = "narrative"
label_column = "issue"
id_column = "complaint_id"
[labels]
merge_map = {merge:?}
min_count = 5
[split]
method = "stratified"
train = 0.7
val = 0.1
test = 0.2
[evaluation]
resamples = 200
[perf]
enabled = {perf}
warmup = 1
single_examples = 3
batch_sizes = [1, 8]
repeats = 2
[[models]]
id = "tfidf-lr"
kind = "tfidf-logreg"
max_features = 5000
max_iter = 40
"#
    );
    let path = dir.join("suite.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run_cmd(suite: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clsbench"));
    cmd.args(["run"])
        .arg(suite)
        .arg("--output-dir")
        .arg(out)
        .args(["--run-id", "r"])
        .env("CLSBENCH_PROGRESS", "0");
    cmd
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn is_temp(p: &Path) -> bool {
    p.file_name().is_some_and(|n| n.to_string_lossy().contains(".tmp-"))
}

/// Every file that is not a temp file is whole: JSON parses, PNGs end in IEND, SVGs close,
/// CSV and Markdown end with a newline.
fn assert_complete(files: &[PathBuf]) {
    for p in files.iter().filter(|p| !is_temp(p)) {
        let bytes = std::fs::read(p).unwrap();
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        let whole = match ext {
            "json" => serde_json::from_slice::<serde_json::Value>(&bytes).is_ok(),
            "png" => bytes.ends_with(&[0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82]),
            "svg" => String::from_utf8_lossy(&bytes).trim_end().ends_with("</svg>"),
            "csv" | "md" => bytes.ends_with(b"\n"),
            _ => true,
        };
        assert!(whole, "{} is incomplete ({} bytes)", p.display(), bytes.len());
    }
}

#[test]
fn killed_runs_leave_only_complete_files_and_the_next_run_sweeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path(), true);
    let out = dir.path().join("out");
    // A fixed pseudo-random sequence of kill times (ms), so a failure reproduces.
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut kills = 0;
    for _ in 0..12 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // A whole run of this suite takes about a second on 2 cores (debug build).
        let delay = 20 + state % 900;
        let mut child = run_cmd(&suite, &out)
            .arg("--force")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        let mut files = Vec::new();
        walk(&out, &mut files);
        assert_complete(&files);
    }
    assert!(kills > 0, "every run finished before its kill; the test killed nothing");

    let status = run_cmd(&suite, &out).output().unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let mut files = Vec::new();
    walk(&out, &mut files);
    assert_complete(&files);
    let temps: Vec<_> = files.iter().filter(|p| is_temp(p)).collect();
    assert!(temps.is_empty(), "temp files left after a completed run: {temps:?}");
    for name in ["results.json", "summary.md", "metrics.csv", "manifest.json"] {
        assert!(out.join("faults/r").join(name).is_file(), "{name} missing");
    }
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, options: &str) -> Option<Mount> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipping: cannot mount a tmpfs at {} (needs root)", at.display());
        }
        ok.then(|| Mount(at.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_is_an_environment_error_and_leaves_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path(), false);
    let out = dir.path().join("small");
    // Room for the lock and the first small files, not for split.csv (~70 KB) and the rest.
    let Some(_mount) = Mount::tmpfs(&out, "size=32k") else {
        return;
    };
    let output = run_cmd(&suite, &out).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(ENVIRONMENT_EXIT), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("cannot write") && last.contains("No space left"),
        "{stderr}"
    );
    let mut files = Vec::new();
    walk(&out, &mut files);
    let temps: Vec<_> = files.iter().filter(|p| is_temp(p)).collect();
    assert!(temps.is_empty(), "temp files left on the full disk: {temps:?}");
    assert!(!out.join("faults/r/results.json").exists());
}

#[test]
fn read_only_output_directory_is_an_environment_error() {
    let dir = tempfile::tempdir().unwrap();
    let suite = tiny_suite(dir.path(), false);
    let out = dir.path().join("ro");
    let Some(_mount) = Mount::tmpfs(&out, "ro,size=64k") else {
        return;
    };
    let output = run_cmd(&suite, &out).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(ENVIRONMENT_EXIT), "{stderr}");
    assert!(stderr.contains("Read-only file system"), "{stderr}");
}
