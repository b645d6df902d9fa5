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
/// data reading and the baseline here, and all of clsbench-models (transformers, training).
const PREDICTION_SOURCES: &[&str] = &["src/data", "src/baseline", "../models/src"];

fn collect_rs(path: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            collect_rs(&entry.path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

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
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for part in PREDICTION_SOURCES {
        collect_rs(&src.join(part), &mut files);
        println!("cargo:rerun-if-changed={part}");
    }
    files.sort();
    let mut all = Vec::new();
    for f in &files {
        all.extend_from_slice(f.strip_prefix(src).unwrap_or(f).to_string_lossy().as_bytes());
        all.push(0);
        all.extend_from_slice(&std::fs::read(f).unwrap_or_default());
        all.push(0);
    }
    println!("cargo:rustc-env=CLSBENCH_SOURCE_SHA256={}", sha256_hex(&all));
    println!("cargo:rerun-if-changed=../Cargo.lock");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/index");
}
