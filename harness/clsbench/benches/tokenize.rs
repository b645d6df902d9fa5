//! Tokenisation speed per model family (BERT WordPiece, Llama and Qwen2 byte-level BPE) on real
//! CFPB narratives, truncated to 128 tokens as the suites do. Tokenizers are read from
//! `$CLSBENCH_MODEL_DIR/<name>/tokenizer.json` or `~/.cache/model-mirror/<name>/`; a family
//! whose tokenizer is absent is skipped with a message (benches never touch the network).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::path::PathBuf;
use tokenizers::{Tokenizer, TruncationParams};

const FAMILIES: [(&str, &str); 3] = [
    ("bert", "all-MiniLM-L6-v2"),
    ("llama", "SmolLM2-135M-Instruct"),
    ("qwen2", "Qwen2.5-Coder-0.5B-Instruct"),
];

fn tokenizer_path(name: &str) -> Option<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(d) = std::env::var("CLSBENCH_MODEL_DIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(h) = std::env::var("HOME") {
        dirs.push(PathBuf::from(h).join(".cache/model-mirror"));
    }
    dirs.into_iter()
        .map(|d| d.join(name).join("tokenizer.json"))
        .find(|p| p.is_file())
}

/// The first `n` narratives of the real long-tail fixture.
fn texts(n: usize) -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/cfpb-issues-mini/complaints.csv"
    );
    let mut reader = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let col = reader
        .headers()
        .expect("header")
        .iter()
        .position(|h| h == "narrative")
        .expect("narrative column");
    reader
        .records()
        .take(n)
        .map(|r| r.expect("row")[col].to_string())
        .collect()
}

fn tokenize(c: &mut Criterion) {
    let docs = texts(64);
    let mut group = c.benchmark_group("tokenize_64_docs_max128");
    group.throughput(Throughput::Elements(docs.len() as u64));
    for (family, name) in FAMILIES {
        let Some(path) = tokenizer_path(name) else {
            eprintln!("tokenize: skipping {family}: no {name}/tokenizer.json under $CLSBENCH_MODEL_DIR or ~/.cache/model-mirror");
            continue;
        };
        let mut tok = Tokenizer::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        tok.with_truncation(Some(TruncationParams {
            max_length: 128,
            ..Default::default()
        }))
        .expect("truncation");
        let batch: Vec<&str> = docs.iter().map(String::as_str).collect();
        group.bench_with_input(BenchmarkId::new(family, name), &batch, |b, batch| {
            b.iter(|| tok.encode_batch(batch.clone(), true).expect("encode"))
        });
    }
    group.finish();
}

criterion_group!(benches, tokenize);
criterion_main!(benches);
