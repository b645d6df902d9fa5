//! clsbench: a benchmarking harness for supervised text classifiers.
//!
//! The modules follow the pipeline, left to right:
//! `suite` (what to run, resolved into typed plans) -> `data` (read, merge labels, split) ->
//! `models` / `baseline` (classifiers) -> `train` (fit them) -> the statistics (crate
//! `clsbench-stats`, in `harness/stats`: metrics, bootstrap, McNemar, calibration) -> `perf`
//! (latency, throughput, hardware, cost) -> `report` (results files, summary, plots, claims,
//! comparisons). `pipeline` wires them together for `clsbench run`.
//!
//! Arrows point one way, and crate edges enforce two of them: the statistics know nothing of
//! models, suites or files, and `models` / `train` (crate `clsbench-models`, in
//! `harness/models`) know nothing of suites, results or the pipeline; neither can import this
//! crate. `report` reads results and never trains.

pub mod analysis;
pub mod baseline;
pub mod calibration_run;
pub mod data;
pub mod device_check;
pub mod jobs;
pub mod perf;
pub mod pipeline;
pub mod report;
pub mod scoring;
pub mod slurm;
pub mod suite;

// clsbench-models, under the names the pipeline has always used: `models` is the crate itself
// (architectures, layers, loader, device, precision), `train` its training loop.
pub use clsbench_models as models;
pub use clsbench_models::{classifier, error, fsutil, observer, train};
pub use error::{Error, Result};

/// sha256 of this crate's code that determines predictions (`data` and `baseline`), computed by
/// build.rs. The resume cache key takes it beside `clsbench_models::SOURCE_SHA256` (the
/// transformers and training), so a changed tokeniser or training loop never reuses old
/// predictions.
pub const SOURCE_SHA256: &str = env!("CLSBENCH_SOURCE_SHA256");
