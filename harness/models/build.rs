//! Hashes this crate's sources: the epoch checkpoints' fingerprint includes it, so a changed
//! training loop, tokeniser or layer never continues a checkpoint written by the old one.

fn collect_rs(path: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            collect_rs(&entry.path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

fn main() {
    use sha2::Digest as _;
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect_rs(&src, &mut files);
    files.sort();
    let mut all = Vec::new();
    for f in &files {
        all.extend_from_slice(f.strip_prefix(&src).unwrap_or(f).to_string_lossy().as_bytes());
        all.push(0);
        all.extend_from_slice(&std::fs::read(f).unwrap_or_default());
        all.push(0);
    }
    println!("cargo:rerun-if-changed=src");
    println!(
        "cargo:rustc-env=CLSBENCH_MODELS_SOURCE_SHA256={}",
        hex::encode(sha2::Sha256::digest(&all))
    );
}
