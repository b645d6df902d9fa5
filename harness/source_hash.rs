// Shared by the build scripts of clsbench and clsbench-models (`include!`d, since a build
// script cannot depend on a workspace crate without a crate of its own): the sha256 of the
// `.rs` files under some directories, each file's relative path and bytes, in sorted order,
// and the `rerun-if-changed` lines that keep it current.

fn collect_rs(path: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            collect_rs(&entry.path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// sha256 (hex) of the Rust sources under `parts`, relative to this crate's manifest directory.
fn source_sha256(parts: &[&str]) -> String {
    use sha2::Digest as _;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for part in parts {
        collect_rs(&root.join(part), &mut files);
        println!("cargo:rerun-if-changed={part}");
    }
    files.sort();
    let mut all = Vec::new();
    for f in &files {
        all.extend_from_slice(f.strip_prefix(root).unwrap_or(f).to_string_lossy().as_bytes());
        all.push(0);
        all.extend_from_slice(&std::fs::read(f).unwrap_or_default());
        all.push(0);
    }
    hex::encode(sha2::Sha256::digest(&all))
}
