//! Paired bootstrap and metrics at the seed's scale: val n = 6,430 documents, 113 classes with
//! a long-tailed distribution, two models. Target: 10,000 paired resamples in under 1 s.
//!
//! `CARGO_TARGET_DIR=target/native RUSTFLAGS="-C target-cpu=native" cargo bench --bench bootstrap`

use clsbench_stats::bootstrap::{paired_bootstrap, BootstrapConfig};
use clsbench_stats::metrics;
use clsbench_stats::resample::{chacha_indices, NumpyRandomState, ResampleRng};
use criterion::{criterion_group, criterion_main, Criterion};
use rand::distributions::{Distribution, WeightedIndex};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::time::Duration;

const N_DOCUMENTS: usize = 6430;
const N_CLASSES: usize = 113;
const RESAMPLES: usize = 10_000;

/// Zipf-like gold labels; each model is right with a probability that grows with class
/// frequency, and otherwise predicts a frequent class.
fn long_tail_data() -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let weights: Vec<f64> = (0..N_CLASSES).map(|c| 1.0 / (c as f64 + 1.0).powf(1.3)).collect();
    let prior = WeightedIndex::new(&weights).unwrap();
    let gold: Vec<usize> = (0..N_DOCUMENTS).map(|_| prior.sample(&mut rng)).collect();
    let mut predict = |skill: f64| -> Vec<usize> {
        gold.iter()
            .map(|&g| {
                let hit = skill * (1.0 - g as f64 / N_CLASSES as f64);
                if rng.gen::<f64>() < hit {
                    g
                } else {
                    prior.sample(&mut rng)
                }
            })
            .collect()
    };
    let (a, b) = (predict(0.6), predict(0.65));
    (gold, a, b)
}

fn bench_bootstrap(c: &mut Criterion) {
    let (gold, a, b) = long_tail_data();
    let mut group = c.benchmark_group("paired_bootstrap_macro_f1_10k_resamples_n6430_k113");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    for (name, rng) in [("numpy", ResampleRng::Numpy), ("chacha", ResampleRng::Chacha)] {
        let cfg = BootstrapConfig {
            resamples: RESAMPLES,
            confidence: 0.95,
            seed: 49,
            rng,
        };
        group.bench_function(name, |bench| {
            bench.iter(|| paired_bootstrap(black_box(&gold), &[&a, &b], N_CLASSES, &cfg).unwrap())
        });
    }
    group.finish();
}

fn bench_metrics(c: &mut Criterion) {
    let (gold, a, _) = long_tail_data();
    c.bench_function("metrics_compute_n6430_k113", |bench| {
        bench.iter(|| metrics::compute(black_box(&gold), black_box(&a), N_CLASSES).unwrap())
    });
}

/// Index generation alone, to split the bootstrap's time between drawing and scoring.
fn bench_index_streams(c: &mut Criterion) {
    let mut group = c.benchmark_group("resample_indices_10k_x_n6430");
    group.sample_size(10);
    let mut buf = vec![0u32; N_DOCUMENTS];
    group.bench_function("numpy_sequential", |bench| {
        bench.iter(|| {
            let mut rs = NumpyRandomState::new(49).unwrap();
            for _ in 0..RESAMPLES {
                rs.randint_into(N_DOCUMENTS as u32, &mut buf).unwrap();
            }
            black_box(buf[0])
        })
    });
    group.bench_function("chacha_one_thread", |bench| {
        bench.iter(|| {
            for r in 0..RESAMPLES {
                chacha_indices(49, r as u64, N_DOCUMENTS as u32, &mut buf).unwrap();
            }
            black_box(buf[0])
        })
    });
    group.finish();
}

criterion_group!(benches, bench_bootstrap, bench_metrics, bench_index_streams);
criterion_main!(benches);
