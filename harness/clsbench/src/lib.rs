//! clsbench: a benchmarking harness for supervised text classifiers.
//!
//! The modules follow the pipeline, left to right:
//! `suite` (what to run) -> `data` (read, merge labels, split) -> `models` / `baseline`
//! (classifiers) -> `train` (fit them) -> the statistics (crate `clsbench-stats`, in
//! `harness/stats`: metrics, bootstrap, McNemar, calibration) -> `perf` (latency, throughput,
//! hardware, cost) -> `report` (results files, summary, plots, claims, comparisons).
//! `pipeline` wires them together for `clsbench run`.
//!
//! Arrows point one way: `report` reads results and never trains; the statistics know nothing
//! of models, suites or files (a crate edge: they cannot import this crate); `models` knows
//! nothing of suites.

pub mod analysis;
pub mod baseline;
pub mod calibration_run;
pub mod classifier;
pub mod data;
pub mod device_check;
pub mod error;
pub mod fsutil;
pub mod jobs;
pub mod models;
pub mod observer;
pub mod perf;
pub mod pipeline;
pub mod report;
pub mod scoring;
pub mod slurm;
pub mod suite;
pub mod train;

pub use error::{Error, Result};

/// sha256 of the code that determines predictions (`data`, `models`, `train`, `baseline`,
/// `classifier.rs`), computed by build.rs: part of the resume cache key and of the epoch
/// checkpoints' fingerprint, so a changed training loop never reuses old work.
pub const SOURCE_SHA256: &str = env!("CLSBENCH_SOURCE_SHA256");
