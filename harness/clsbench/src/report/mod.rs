//! Report: the results schema and everything written from results — metrics tables,
//! manifest, summary.md (and plots, claims, comparisons). Report reads results; it never trains.

pub mod calibration_summary;
pub mod claims;
pub mod compare;
pub mod decision;
pub mod describe;
pub mod manifest;
pub mod metrics_csv;
pub mod model_numbers;
pub mod perf_summary;
pub mod plots;
pub mod predictions;
pub mod probabilities;
pub mod promote;
pub mod quantized_summary;
pub mod regenerate;
pub mod results;
pub mod score_input;
pub mod summary;

#[cfg(test)]
pub(crate) mod testkit;
