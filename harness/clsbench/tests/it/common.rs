//! Helpers shared by the end-to-end test modules.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `clsbench` binary built for these tests.
pub fn clsbench() -> Command {
    Command::cargo_bin("clsbench").unwrap()
}

/// A checkpoint of the model mirror (`$CLSBENCH_MODEL_DIR`, default `~/.cache/model-mirror`;
/// tools/fetch-models.sh), or `None` after saying on stderr that the test is skipped.
pub fn model_mirror(name: &str) -> Option<PathBuf> {
    let root = std::env::var_os("CLSBENCH_MODEL_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/model-mirror")))?;
    let dir = root.join(name);
    if dir.join("config.json").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: model mirror {} not found (run tools/fetch-models.sh or set CLSBENCH_MODEL_DIR)",
            dir.display()
        );
        None
    }
}

/// A JSON file, panicking with its path when it cannot be read.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// Run `cmd`, assert it exits with `code`, return its stderr.
pub fn stderr_on_exit(cmd: &mut Command, code: i32) -> String {
    let out = cmd.assert().code(code).get_output().clone();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The analysis of `split` in a results.json value.
pub fn split<'a>(results: &'a serde_json::Value, split: &str) -> &'a serde_json::Value {
    results["splits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["split"] == split)
        .unwrap_or_else(|| panic!("results have no {split:?} split"))
}
