//! Records provenance at build time: the git revision of the source and the versions of the
//! crates that shape results (from Cargo.lock), so every result can say what produced it.

use std::process::Command;

const TRACKED_CRATES: &[&str] = &[
    "candle-core",
    "candle-nn",
    "tokenizers",
    "safetensors",
    "hf-hub",
    "statrs",
    "rand_mt",
    "rand_chacha",
    "argmin",
    "parquet",
];

/// Sources (under this crate's directory) whose changes can change a model's predictions: the
/// data reading and the baseline. clsbench-models hashes its own sources
/// (`clsbench_models::SOURCE_SHA256`); the cache key takes both.
const PREDICTION_SOURCES: &[&str] = &["src/data", "src/baseline"];

include!("../source_hash.rs");

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let rev = Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .current_dir(&root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=CLSBENCH_GIT_REV={rev}");

    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
    let mut versions = Vec::new();
    let mut name = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_string());
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take()) {
            if TRACKED_CRATES.contains(&n.as_str()) {
                versions.push(format!("{n}={}", v.trim_matches('"')));
            }
        }
    }
    println!("cargo:rustc-env=CLSBENCH_CRATE_VERSIONS={}", versions.join(","));
    // The code that determines predictions, hashed for the resume cache key (pipeline.rs):
    // a changed training loop or tokeniser must not reuse predictions made by the old one.
    println!(
        "cargo:rustc-env=CLSBENCH_SOURCE_SHA256={}",
        source_sha256(PREDICTION_SOURCES)
    );
    println!("cargo:rerun-if-changed=../Cargo.lock");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/index");
}
