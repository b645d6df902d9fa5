//! Report: the results schema and everything written from results — metrics tables,
//! manifest, summary.md (and plots, claims, comparisons). Report reads results; it never trains.

pub mod manifest;
pub mod metrics_csv;
pub mod perf_summary;
pub mod plots;
pub mod describe;
pub mod predictions;
pub mod regenerate;
pub mod results;
pub mod score_input;
pub mod summary;
