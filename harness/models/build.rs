//! Hashes this crate's sources: the epoch checkpoints' fingerprint includes it, so a changed
//! training loop, tokeniser or layer never continues a checkpoint written by the old one, and
//! clsbench's resume cache key includes it, so it never reuses predictions made by the old one.

include!("../source_hash.rs");

fn main() {
    println!(
        "cargo:rustc-env=CLSBENCH_MODELS_SOURCE_SHA256={}",
        source_sha256(&["src"])
    );
}
