//! `manifest.json`: everything needed to trace a run's numbers — the sha256 of the suite,
//! data and weights, clsbench's version and git revision, the crate versions that shape
//! results, the machine, the seed, and when it ran.

use super::results::Results;
use crate::error::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Serialize)]
struct Manifest<'a> {
    schema_version: u32,
    clsbench_version: &'a str,
    git_rev: &'a str,
    crate_versions: BTreeMap<&'a str, &'a str>,
    rustc_target: &'a str,
    suite: &'a super::results::SuiteInfo,
    seed: u64,
    bootstrap_seed: u64,
    data: &'a [crate::data::InputFile],
    weights: BTreeMap<&'a str, &'a [crate::data::InputFile]>,
    hardware: &'a crate::perf::hardware::Hardware,
    started: String,
    finished: String,
    command: Vec<String>,
    /// A merged run's jobs (`clsbench merge`): status, hardware and wall time of each.
    #[serde(skip_serializing_if = "Option::is_none")]
    jobs: Option<serde_json::Value>,
}

pub fn write(
    path: &Path,
    r: &Results,
    started: chrono::DateTime<chrono::Utc>,
    finished: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    write_with_jobs(path, r, started, finished, None)
}

/// `write`, plus the jobs a merged run was assembled from.
pub fn write_with_jobs(
    path: &Path,
    r: &Results,
    started: chrono::DateTime<chrono::Utc>,
    finished: chrono::DateTime<chrono::Utc>,
    jobs: Option<serde_json::Value>,
) -> Result<()> {
    let crate_versions = env!("CLSBENCH_CRATE_VERSIONS")
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let m = Manifest {
        schema_version: super::results::SCHEMA_VERSION,
        clsbench_version: &r.clsbench_version,
        git_rev: &r.git_rev,
        crate_versions,
        rustc_target: std::env::consts::ARCH,
        suite: &r.suite,
        seed: r.suite.seed,
        bootstrap_seed: r.evaluation.bootstrap_seed(r.suite.seed),
        data: &r.dataset.inputs,
        weights: r
            .models
            .iter()
            .filter(|m| !m.weights.is_empty())
            .map(|m| (m.id.as_str(), m.weights.as_slice()))
            .collect(),
        hardware: &r.hardware,
        started: started.to_rfc3339(),
        finished: finished.to_rfc3339(),
        command: std::env::args().collect(),
        jobs,
    };
    crate::fsutil::write_json_atomic(path, &m)
}
