//! A suite as a list of independent jobs, for clusters: `clsbench plan` lists them (with an
//! estimate of time and memory), `clsbench run SUITE --job N` runs one into its own directory,
//! `clsbench merge` assembles finished jobs into the run a single `clsbench run` would write.
//!
//! Layout under a shared directory `SHARED` (every path a component-checked name):
//! ```text
//! SHARED/<suite>/plan.json          the job list (`clsbench plan --slurm`), checked by run and merge
//! SHARED/<suite>/array.sbatch       the Slurm job array (crate::slurm), logs/ beside it
//! SHARED/<suite>/jobs/<job-id>/     one job: its own run directory (lock, models/<id>/, job.json)
//! SHARED/<suite>/merged/            what `clsbench merge` writes by default
//! ```
//! A job's directory is written only by that job, under its `DirLock`, with atomic writes, so
//! array tasks running at the same time never meet; a requeued task finds its finished model
//! by cache key, or its interrupted training's epoch checkpoint in `models/<id>/resume/`.
//! `job.json` is written last: a job directory without it never finished.

use crate::data::InputFile;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::observer::RunObserver;
use crate::perf::hardware::Hardware;
use crate::pipeline::{self, Prepared, RunOptions};
use crate::report::results::{ModelResult, ModelStatus, Results, SuiteInfo};
use crate::suite::{ModelKind, ModelSpec, Suite, TrainMethod, Trainer};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const PLAN_FILE: &str = "plan.json";
pub const JOBS_DIR: &str = "jobs";
pub const JOB_FILE: &str = "job.json";
pub const MERGED_DIR: &str = "merged";
/// Bump when a field of plan.json or job.json changes meaning.
pub const JOBS_SCHEMA_VERSION: u32 = 1;

/// One unit of work: a model under one training seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Position in the suite's job list: the `--job` index and the Slurm array task id.
    pub index: usize,
    /// Stable name (the model id for the suite's `seed`, `<model>.seed<S>` for other training
    /// seeds), also the job's directory name.
    pub id: String,
    pub model: String,
    pub seed: u64,
}

/// The suite's jobs, in a fixed order: models in suite order, and within a model its training
/// seeds in suite order (`Suite::seeds_of`). Indices follow this order, so reordering the
/// suite's models changes indices but never ids or cache keys.
pub fn expand(suite: &Suite) -> Vec<Job> {
    let mut jobs = Vec::new();
    for m in &suite.models {
        let seeds = suite.seeds_of(m);
        for &seed in &seeds {
            jobs.push(Job {
                index: jobs.len(),
                id: job_id(&m.id, seed, suite.seed),
                model: m.id.clone(),
                seed,
            });
        }
    }
    jobs
}

/// A job's id, also its directory under a run's `models/`: the model id for the suite's own
/// `seed` (so one-seed suites read as before `seeds` existed, and adding seeds to a suite reuses
/// the run it had), `<model>.seed<S>` for every other training seed.
pub fn job_id(model: &str, seed: u64, suite_seed: u64) -> String {
    if seed == suite_seed {
        model.to_string()
    } else {
        format!("{model}.seed{seed}")
    }
}

/// What a job is expected to need: a rough guide to size a cluster request, not a measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Parameters of the base model (from its safetensors headers); `None` for TF-IDF.
    pub parameters: Option<u64>,
    pub time_s: f64,
    pub memory_bytes: u64,
    /// How the numbers were made (the assumptions behind them).
    pub basis: String,
}

/// A job with its cache key and estimate, as `plan` lists it and plan.json stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedJob {
    #[serde(flatten)]
    pub job: Job,
    pub kind: String,
    pub cache_key: String,
    pub estimate: Estimate,
}

/// `plan.json`: the suite, its data and labels, and every job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub schema_version: u32,
    pub suite: SuiteInfo,
    pub data: Vec<InputFile>,
    pub labels: Vec<String>,
    pub n_jobs: usize,
    pub jobs: Vec<PlannedJob>,
    pub note: String,
}

/// Expand, key and estimate every job of a prepared suite (all models selected).
pub fn plan(prep: &Prepared, opts: &RunOptions) -> Result<Plan> {
    let timed = prep.timed(opts);
    let mut jobs = Vec::new();
    for job in expand(&prep.suite) {
        let (spec, weights) = prep
            .selected
            .iter()
            .find(|(s, _)| s.id == job.model)
            .expect("plan prepares every model");
        jobs.push(PlannedJob {
            kind: spec.kind.name().to_string(),
            cache_key: prep.cache_key(
                spec,
                weights.as_deref(),
                timed && prep.is_first_seed(&job.model, Some(job.seed)),
                job.seed,
            ),
            estimate: estimate(spec, prep)?,
            job,
        });
    }
    Ok(Plan {
        schema_version: JOBS_SCHEMA_VERSION,
        suite: suite_info(prep)?,
        data: prep.dataset.inputs.clone(),
        labels: prep.dataset.labels.clone(),
        n_jobs: jobs.len(),
        jobs,
        note: "time and memory are estimates from model size and settings, not measurements".into(),
    })
}

fn suite_info(prep: &Prepared) -> Result<SuiteInfo> {
    // Absolute, so a job array started elsewhere (or merge) finds the same file.
    let path = std::fs::canonicalize(&prep.suite_path).map_err(|e| Error::io(&prep.suite_path, e))?;
    Ok(SuiteInfo {
        name: prep.suite.name.clone(),
        path: path.display().to_string(),
        sha256: prep.suite_sha.clone(),
        seed: prep.suite.seed,
    })
}

/// Sustained arithmetic throughput assumed for the estimates. The CPU figure is per thread and
/// conservative: candle's training steps measured 20-28 GFLOP/s per thread on this project's
/// 2-core machines (MiniLM full fine-tuning, SmolLM2-135M LoRA; non-embedding parameters x
/// tokens x 6 or 4) and inference more; the GPU figure is a fraction of a data-centre GPU's.
const CPU_FLOPS_PER_THREAD: f64 = 15e9;
/// L-BFGS over a sparse TF-IDF matrix: memory-bound, far below the dense rate.
const SPARSE_FLOPS_PER_THREAD: f64 = 5e9;
const GPU_FLOPS: f64 = 5e13;
/// Subword tokens per whitespace word for English prose (WordPiece and BPE vocabularies of
/// 30-150k entries give 1.2-1.4 on the CFPB narratives), plus the special tokens.
const TOKENS_PER_WORD: f64 = 1.4;
const SPECIAL_TOKENS: f64 = 2.0;

/// Mean tokens per row after truncation at `max_length`, from whitespace words (no tokenizer
/// is loaded to plan).
fn mean_truncated_tokens(texts: &[&str], max_length: usize) -> f64 {
    if texts.is_empty() {
        return 0.0;
    }
    let sum: f64 = texts
        .iter()
        .map(|t| (t.split_whitespace().count() as f64 * TOKENS_PER_WORD + SPECIAL_TOKENS).min(max_length as f64))
        .sum();
    sum / texts.len() as f64
}

fn estimate(spec: &ModelSpec, prep: &Prepared) -> Result<Estimate> {
    let d = &prep.dataset;
    let n_classes = d.labels.len() as f64;
    let n_train = d.train.len() as f64;
    let eval_texts: Vec<&str> = prep
        .suite
        .evaluation
        .splits
        .iter()
        .flat_map(|s| match s {
            crate::suite::SplitName::Train => d.train.iter(),
            crate::suite::SplitName::Val => d.val.iter(),
            crate::suite::SplitName::Test => d.test.iter(),
        })
        .map(|e| e.text.as_str())
        .collect();
    let threads = prep.hardware.threads_used.max(1) as f64;
    match spec.kind.trainer() {
        Trainer::TfidfLogreg(p) => {
            let words: f64 = d.train.iter().map(|e| e.text.split_whitespace().count() as f64).sum();
            let ngrams = (p.ngram_range[1] - p.ngram_range[0] + 1) as f64;
            let nnz = words * ngrams;
            // Without a cap, the vocabulary is bounded by the n-grams seen.
            let features = p.max_features.map_or(nnz, |m| (m as f64).min(nnz));
            // L-BFGS: a gradient is two passes over the sparse matrix per class; 10 history pairs.
            let flops = p.max_iter as f64 * 4.0 * nnz * n_classes;
            let memory = nnz * 12.0 * 2.0 + features * n_classes * 8.0 * 24.0 + 64e6;
            Ok(Estimate {
                parameters: None,
                time_s: flops / (SPARSE_FLOPS_PER_THREAD * threads) + 1.0,
                memory_bytes: memory as u64,
                basis: format!(
                    "TF-IDF: {nnz:.0} train n-grams x {n_classes} classes x max_iter {} L-BFGS passes at {:.0} GFLOP/s; \
                     memory: sparse matrix + weights and 10 L-BFGS pairs",
                    p.max_iter,
                    SPARSE_FLOPS_PER_THREAD * threads / 1e9
                ),
            })
        }
        Trainer::Transformer(t, family) => {
            let files = crate::models::loader::resolve(&t.checkpoint, t.local_dir.as_deref())?;
            let params = crate::models::loader::stored_tensors(&files.weights)?.elements as f64;
            let config: serde_json::Value = fsutil::read_json(&files.config)?;
            let dim = |k: &str| config.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
            // Embedding lookups cost no multiply-adds: only the other parameters count (with
            // tied embeddings a classifier has no LM head to multiply by either).
            let compute_params = (params - dim("vocab_size") * dim("hidden_size")).max(params * 0.05);
            let train_n = t.max_train_examples.map_or(n_train, |m| n_train.min(m as f64));
            let val_texts: Vec<&str> = d.val.iter().map(|e| e.text.as_str()).collect();
            let train_texts: Vec<&str> = d.train.iter().map(|e| e.text.as_str()).collect();
            // Length bucketing pads each batch to about its rows' length; without it a batch
            // pads to its longest row, about max_length for long documents.
            let per_row = |texts: &[&str]| {
                if t.length_bucketing {
                    mean_truncated_tokens(texts, t.max_length)
                } else {
                    t.max_length as f64
                }
            };
            let epochs = t.epochs as f64;
            let tokens_train = train_n * per_row(&train_texts) * epochs;
            // Inference always sorts by length (classify.rs): per-epoch validation, then the
            // evaluated splits.
            let tokens_eval = d.val.len() as f64 * mean_truncated_tokens(&val_texts, t.max_length) * epochs
                + eval_texts.len() as f64 * mean_truncated_tokens(&eval_texts, t.max_length);
            // Forward 2P FLOPs per token; backward 4P with weight gradients, ~2P with activation
            // gradients only (LoRA), none through a frozen backbone (linear probe).
            let train_flops_per_token = match t.method {
                TrainMethod::Full => 6.0,
                TrainMethod::Lora => 4.0,
                TrainMethod::LinearProbe => 2.0,
            };
            let recompute = if t.gradient_checkpointing { 2.0 } else { 0.0 };
            let flops = compute_params * ((train_flops_per_token + recompute) * tokens_train + 2.0 * tokens_eval);
            let on_gpu = prep.hardware.gpu.is_some();
            let rate = if on_gpu {
                GPU_FLOPS
            } else {
                CPU_FLOPS_PER_THREAD * threads
            };
            // The training planner's own estimate (train/memory.rs), as `run` logs it.
            let device = prep.device_or_cpu();
            let train_plan = spec.plan_for(t, family)?;
            let plan = crate::train::preflight_memory(&train_plan, d.labels.len(), &device)?;
            let memory = plan.estimate.total_gib() * (1u64 << 30) as f64;
            Ok(Estimate {
                parameters: Some(params as u64),
                time_s: flops / rate + 5.0,
                memory_bytes: memory as u64,
                basis: format!(
                    "{:.0}M non-embedding parameters x {:.0} train tokens (at most {} epochs, max_length {}) at {:.0} GFLOP/s ({}); \
                     memory: the training planner's estimate at {} x {} ({})",
                    compute_params / 1e6,
                    tokens_train,
                    t.epochs,
                    t.max_length,
                    rate / 1e9,
                    if on_gpu { "GPU" } else { "CPU" },
                    plan.micro_batch_size,
                    t.max_length,
                    plan.estimate.describe()
                ),
            })
        }
    }
}

/// `SHARED/<suite>/`, with the suite name checked as a path component.
pub fn suite_dir(shared: &Path, suite_name: &str) -> Result<PathBuf> {
    fsutil::join_under(shared, &[("suite field `name`", suite_name)])
}

/// `<suite_dir>/jobs/<job-id>/`.
pub fn job_dir(suite_dir: &Path, job_id: &str) -> Result<PathBuf> {
    fsutil::join_under(&suite_dir.join(JOBS_DIR), &[("job id", job_id)])
}

/// `job.json`: what one finished job was, where and how long it ran. Written last.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub schema_version: u32,
    pub suite: SuiteInfo,
    pub data: Vec<InputFile>,
    pub labels: Vec<String>,
    #[serde(flatten)]
    pub job: Job,
    pub cache_key: String,
    /// The device and compute dtype the job's transformer ran on (part of its cache key);
    /// absent for the TF-IDF baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<crate::pipeline::Placement>,
    /// The model's status (`ok`, `failed`, `not-implemented`).
    pub status: ModelStatus,
    #[serde(default)]
    pub error: Option<String>,
    pub hardware: Hardware,
    pub host: String,
    pub started: String,
    pub finished: String,
    pub wall_s: f64,
    /// `SLURM_*` variables of the task that ran it (job and array ids, node, restart count).
    #[serde(default)]
    pub slurm: std::collections::BTreeMap<String, String>,
}

/// What `run --job` did.
pub struct JobOutcome {
    pub job_dir: PathBuf,
    pub record: JobRecord,
    pub model: ModelResult,
    pub first_error: Option<Error>,
}

/// `clsbench run SUITE --job N`: job N alone, into `<output_dir>/<suite>/jobs/<job-id>/`.
pub fn run_job(suite_path: &Path, index: usize, opts: &RunOptions, obs: &dyn RunObserver) -> Result<JobOutcome> {
    let started = chrono::Utc::now();
    let t0 = std::time::Instant::now();
    let suite = Suite::load(suite_path)?;
    let jobs = expand(&suite);
    let job = jobs.get(index).cloned().ok_or_else(|| {
        Error::bad_input(format!(
            "--job {index}: suite {:?} has {} job(s), numbered 0 to {}; `clsbench plan {}` lists them",
            suite.name,
            jobs.len(),
            jobs.len().saturating_sub(1),
            suite_path.display()
        ))
    })?;
    let output_dir = opts.output_dir.clone().unwrap_or_else(|| suite.output_dir.clone());
    let suite_dir = suite_dir(&output_dir, &suite.name)?;
    check_against_plan(&suite_dir, &suite, &fsutil::sha256_file(suite_path)?)?;
    let mut prep = pipeline::prepare(suite_path, std::slice::from_ref(&job.model))?;
    prep.resolve_device(opts.device, obs)?;
    prep.cap_memory(opts.max_memory_gb);
    prep.check_memory_plans()?;
    prep.check_quantize_formats()?;
    let job_dir = job_dir(&suite_dir, &job.id)?;
    obs.step(&format!(
        "suite {} job {index} ({}) -> {}",
        suite.name,
        job.id,
        job_dir.display()
    ));
    let _lock = pipeline::lock_and_sweep(&job_dir, obs)?;
    // A re-run replaces the record: until it finishes, the job reads as running (lock held)
    // or unfinished, never as the previous attempt's result.
    let record_path = job_dir.join(JOB_FILE);
    if record_path.exists() {
        std::fs::remove_file(&record_path).map_err(|e| Error::io_op(&record_path, crate::error::IoOp::Remove, e))?;
    }
    // The job's model first, then its quantised variants (in its directory, merged with it).
    let (models, first_error) = pipeline::run_models(&prep, &job_dir, opts, std::slice::from_ref(&job), obs)?;
    let mut results = models.into_iter();
    let model = results.next().expect("one model per job");
    // A job is finished when all it was asked for is: a quantised variant that failed fails
    // the job (`merge` lists it as failed, not finished), though the model's own results
    // stand and are reused when the job runs again.
    let (status, error) = match results.find(|v| v.status == ModelStatus::Failed) {
        Some(v) if model.status == ModelStatus::Ok => (
            ModelStatus::Failed,
            Some(format!("{}: {}", v.id, v.error.as_deref().unwrap_or("failed"))),
        ),
        _ => (model.status, model.error.clone()),
    };
    let record = JobRecord {
        schema_version: JOBS_SCHEMA_VERSION,
        suite: suite_info(&prep)?,
        data: prep.dataset.inputs.clone(),
        labels: prep.dataset.labels.clone(),
        placement: prep.selected.first().and_then(|(spec, _)| prep.placement(spec)),
        job,
        cache_key: model.cache_key.clone(),
        status,
        error,
        hardware: prep.hardware.clone(),
        host: sysinfo::System::host_name().unwrap_or_else(|| "unknown".into()),
        started: started.to_rfc3339(),
        finished: chrono::Utc::now().to_rfc3339(),
        wall_s: t0.elapsed().as_secs_f64(),
        slurm: std::env::vars()
            .filter(|(k, _)| {
                [
                    "SLURM_JOB_ID",
                    "SLURM_ARRAY_JOB_ID",
                    "SLURM_ARRAY_TASK_ID",
                    "SLURM_JOB_NODELIST",
                    "SLURM_RESTART_COUNT",
                    "SLURM_JOB_PARTITION",
                ]
                .contains(&k.as_str())
            })
            .collect(),
    };
    fsutil::write_json_atomic(&record_path, &record)?;
    Ok(JobOutcome {
        job_dir,
        record,
        model,
        first_error,
    })
}

/// A plan.json next to the jobs fixes what each index means: a task whose suite no longer
/// matches it would run another job than the array was planned for.
fn check_against_plan(suite_dir: &Path, suite: &Suite, suite_sha: &str) -> Result<()> {
    let path = suite_dir.join(PLAN_FILE);
    if !path.is_file() {
        return Ok(());
    }
    let plan = read_plan(&path)?;
    if plan.suite.sha256 != suite_sha || plan.suite.name != suite.name {
        return Err(Error::bad_input(format!(
            "{}: planned for suite {:?} with sha256 {}, but this suite is {:?} with sha256 {suite_sha}: \
             the suite changed since `clsbench plan`; plan again or use another output directory",
            path.display(),
            plan.suite.name,
            short(&plan.suite.sha256),
            suite.name
        )));
    }
    check_plan_jobs(&plan, &expand(suite), &path)
}

pub fn read_plan(path: &Path) -> Result<Plan> {
    let plan: Plan = fsutil::read_json(path)?;
    if plan.schema_version != JOBS_SCHEMA_VERSION {
        return Err(Error::bad_input(format!(
            "{}: plan schema version {} (this clsbench writes {JOBS_SCHEMA_VERSION}); plan again",
            path.display(),
            plan.schema_version
        )));
    }
    Ok(plan)
}

/// The plan's job list must be the suite's: `n_jobs` right, indices 0..n in order, each
/// index the same id, model and seed.
fn check_plan_jobs(plan: &Plan, expected: &[Job], path: &Path) -> Result<()> {
    let edited = |what: String| {
        Error::bad_input(format!(
            "{}: {what}; the manifest does not match the suite (edited by hand?): write it again with `clsbench plan SUITE --slurm DIR`",
            path.display()
        ))
    };
    if plan.n_jobs != plan.jobs.len() {
        return Err(edited(format!(
            "n_jobs is {} but {} jobs are listed",
            plan.n_jobs,
            plan.jobs.len()
        )));
    }
    if plan.jobs.len() != expected.len() {
        return Err(edited(format!(
            "{} jobs listed, the suite has {}",
            plan.jobs.len(),
            expected.len()
        )));
    }
    for (i, (p, e)) in plan.jobs.iter().zip(expected).enumerate() {
        if p.job != *e {
            return Err(edited(format!(
                "job {i} is listed as index {} id {:?} (model {:?}, seed {}), the suite's job {i} is {:?} (model {:?}, seed {})",
                p.job.index, p.job.id, p.job.model, p.job.seed, e.id, e.model, e.seed
            )));
        }
    }
    Ok(())
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// Where a job stands, as `merge` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    Finished,
    /// Finished, but its model failed (or is not implemented).
    Failed,
    /// Its directory is locked by a live process.
    Running,
    /// Never started, or stopped before it finished (killed, cancelled, preempted).
    Missing,
}

/// One job's line in a merged run's manifest.
#[derive(Debug, Clone, Serialize)]
pub struct MergedJob {
    #[serde(flatten)]
    pub job: Job,
    pub state: JobState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<JobRecord>,
}

pub struct MergeOptions {
    /// The merged run directory (default `<suite_dir>/merged`).
    pub out: Option<PathBuf>,
    /// The suite file, when the path recorded in the jobs is not valid here.
    pub suite: Option<PathBuf>,
}

pub struct MergeOutcome {
    pub run_dir: PathBuf,
    pub results: Results,
    pub jobs: Vec<MergedJob>,
}

impl MergeOutcome {
    pub fn unfinished(&self) -> Vec<&MergedJob> {
        self.jobs.iter().filter(|j| j.state != JobState::Finished).collect()
    }
}

/// The suite directory a merge reads: `shared` itself when it holds `jobs/`, else its one
/// subdirectory that does; two suites' jobs are refused.
pub fn find_suite_dir(shared: &Path) -> Result<PathBuf> {
    if shared.join(JOBS_DIR).is_dir() {
        return Ok(shared.to_path_buf());
    }
    let entries = std::fs::read_dir(shared).map_err(|e| Error::io(shared, e))?;
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(JOBS_DIR).is_dir())
        .collect();
    found.sort();
    match found.len() {
        0 => Err(Error::bad_input(format!(
            "{}: no jobs here (expected <suite>/jobs/<job-id>/ from `clsbench run SUITE --job N --output-dir {}`)",
            shared.display(),
            shared.display()
        ))),
        1 => Ok(found.pop().unwrap()),
        _ => Err(Error::bad_input(format!(
            "{} holds jobs of {} suites ({}); merge one at a time: clsbench merge {}",
            shared.display(),
            found.len(),
            found
                .iter()
                .map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(", "),
            found[0].display()
        ))),
    }
}

/// `clsbench merge`: the finished jobs under `shared` as one run, with the statistics of a
/// single `clsbench run` (recomputed over all merged models by the pipeline's own code).
pub fn merge(shared: &Path, opts: &MergeOptions, obs: &dyn RunObserver) -> Result<MergeOutcome> {
    let started = chrono::Utc::now();
    let suite_dir = find_suite_dir(shared)?;
    let dir_name = suite_dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let plan_path = suite_dir.join(PLAN_FILE);
    let plan = plan_path.is_file().then(|| read_plan(&plan_path)).transpose()?;

    // Every job record present, each checked to be of this suite directory.
    let mut records = std::collections::BTreeMap::new();
    let jobs_root = suite_dir.join(JOBS_DIR);
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&jobs_root)
        .map_err(|e| Error::io(&jobs_root, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    entries.sort();
    for dir in &entries {
        let path = dir.join(JOB_FILE);
        if path.is_file() {
            let r: JobRecord = fsutil::read_json(&path)?;
            if r.suite.name != dir_name {
                return Err(Error::bad_input(format!(
                    "{}: a job of suite {:?} in the directory of suite {dir_name:?}: refusing to merge jobs of two suites",
                    path.display(),
                    r.suite.name
                )));
            }
            records.insert(
                dir.file_name().unwrap_or_default().to_string_lossy().into_owned(),
                (path, r),
            );
        }
    }
    // The suite: given, else where the plan or the jobs recorded it.
    let suite_path = match (&opts.suite, &plan, records.values().next()) {
        (Some(p), _, _) => p.clone(),
        (None, Some(plan), _) => PathBuf::from(&plan.suite.path),
        (None, None, Some((_, r))) => PathBuf::from(&r.suite.path),
        (None, None, None) => {
            return Err(Error::bad_input(format!(
                "{}: no finished job and no plan.json: nothing says which suite this is",
                suite_dir.display()
            )))
        }
    };
    let prep = pipeline::prepare(&suite_path, &[])?;
    if prep.suite.name != dir_name {
        return Err(Error::bad_input(format!(
            "{}: suite {:?}, but {} holds jobs of suite {dir_name:?}",
            suite_path.display(),
            prep.suite.name,
            suite_dir.display()
        )));
    }
    let expected = expand(&prep.suite);
    if let Some(plan) = &plan {
        if plan.suite.sha256 != prep.suite_sha {
            return Err(Error::bad_input(format!(
                "{}: planned for suite sha256 {}, but {} is now {}: the suite changed since the jobs were planned",
                plan_path.display(),
                short(&plan.suite.sha256),
                suite_path.display(),
                short(&prep.suite_sha)
            )));
        }
        check_plan_jobs(plan, &expected, &plan_path)?;
    }
    let data: Vec<&str> = prep.dataset.inputs.iter().map(|i| i.sha256.as_str()).collect();
    let run_opts = RunOptions::default();
    let mut merged = Vec::new();
    for job in &expected {
        let dir = job_dir(&suite_dir, &job.id)?;
        let record = records.remove(&job.id);
        if let Some((path, r)) = &record {
            check_record(path, r, job, &prep, &data, &run_opts)?;
        }
        let running = dir.is_dir() && lock_is_held(&dir);
        let state = match (&record, running) {
            (_, true) => JobState::Running,
            (None, false) => JobState::Missing,
            (Some((_, r)), false) if r.status == ModelStatus::Ok => JobState::Finished,
            (Some(_), false) => JobState::Failed,
        };
        merged.push(MergedJob {
            job: job.clone(),
            state,
            record: record.map(|(_, r)| r),
        });
    }
    if let Some((id, (path, _))) = records.into_iter().next() {
        return Err(Error::bad_input(format!(
            "{}: job {id:?} is not a job of suite {:?} as it is now (its jobs: {})",
            path.display(),
            prep.suite.name,
            expected.iter().map(|j| j.id.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }

    let run_dir = opts.out.clone().unwrap_or_else(|| suite_dir.join(MERGED_DIR));
    let _lock = pipeline::lock_and_sweep(&run_dir, obs)?;
    pipeline::write_split_files(&run_dir, &prep)?;
    let mut models = Vec::new();
    for j in &merged {
        let dest = run_dir.join("models").join(&j.job.id);
        // A model of an earlier, partial merge that is not finished now must not be reused.
        if dest.exists() {
            std::fs::remove_dir_all(&dest).map_err(|e| Error::io_op(&dest, crate::error::IoOp::Remove, e))?;
        }
        if !matches!(j.state, JobState::Finished | JobState::Failed) {
            continue;
        }
        let src = job_dir(&suite_dir, &j.job.id)?.join("models").join(&j.job.id);
        let model = ModelResult::read(&src.join("model.json"))?;
        copy_model_dir(&src, &dest)?;
        let variants = finished_variants(&prep, &j.job, &model, &dest)?;
        models.push(model);
        models.extend(variants);
    }
    // The merged run is described by the machine that ran its first job (every job's own
    // hardware is in the manifest).
    let mut prep = prep;
    if let Some(r) = merged.iter().find_map(|j| j.record.as_ref()) {
        prep.hardware = r.hardware.clone();
    }
    let unfinished: Vec<&MergedJob> = merged.iter().filter(|j| j.state != JobState::Finished).collect();
    let jobs_value = serde_json::json!({
        "partial": !unfinished.is_empty(),
        "unfinished": unfinished.iter().map(|j| serde_json::json!({"index": j.job.index, "id": j.job.id, "state": j.state})).collect::<Vec<_>>(),
        "jobs": merged,
    });
    let run_id = run_dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let results = pipeline::assemble(&prep, run_id, models, &run_dir, started, Some(jobs_value))?;
    Ok(MergeOutcome {
        run_dir,
        results,
        jobs: merged,
    })
}

/// The quantised variants a finished job wrote beside its model (`pipeline::run_variant`), in
/// the suite's format order; a variant whose model.json is missing (the job stopped while
/// timing it) is left out, as `run` would redo it.
fn finished_variants(prep: &Prepared, job: &Job, model: &ModelResult, dir: &Path) -> Result<Vec<ModelResult>> {
    let Some((spec, _)) = prep.selected_spec(&job.model) else {
        return Ok(Vec::new());
    };
    let formats = match &spec.kind {
        ModelKind::Encoder(t) | ModelKind::Decoder(t) if prep.is_first_seed(&job.model, Some(job.seed)) => &t.quantize,
        _ => return Ok(Vec::new()),
    };
    let mut out = Vec::new();
    for &format in formats {
        let path = pipeline::variant_dir(dir, format).join("model.json");
        if !path.is_file() {
            continue;
        }
        let v = ModelResult::read(&path)?;
        // A variant of an earlier training of this job is not this model's.
        if v.cache_key == pipeline::variant_key(&model.cache_key, format) {
            out.push(v);
        }
    }
    Ok(out)
}

/// A job record must be of this suite's data, labels and settings; each mismatch says which.
fn check_record(
    path: &Path,
    r: &JobRecord,
    job: &Job,
    prep: &Prepared,
    data: &[&str],
    opts: &RunOptions,
) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::bad_input(format!(
            "{}: refusing to merge job {:?}: {why}",
            path.display(),
            job.id
        )))
    };
    let theirs: Vec<&str> = r.data.iter().map(|i| i.sha256.as_str()).collect();
    if theirs != data {
        return refuse(format!(
            "it ran on data with sha256 {}, the suite's data is {}; re-run it (`clsbench run SUITE --job {}`)",
            theirs.iter().map(|s| short(s)).collect::<Vec<_>>().join(","),
            data.iter().map(|s| short(s)).collect::<Vec<_>>().join(","),
            job.index
        ));
    }
    if r.labels != prep.dataset.labels {
        return refuse(format!(
            "its label set ({} classes) differs from the suite's ({} classes); re-run it",
            r.labels.len(),
            prep.dataset.labels.len()
        ));
    }
    if r.job != *job {
        return refuse(format!(
            "it is job {} (model {:?}, seed {}), the suite's job {:?} is index {} (model {:?}, seed {})",
            r.job.index, r.job.model, r.job.seed, job.id, job.index, job.model, job.seed
        ));
    }
    let (spec, weights) = prep
        .selected
        .iter()
        .find(|(s, _)| s.id == job.model)
        .expect("all models prepared");
    // A job may have run with or without timing; either key is the suite's.
    let keys = [
        prep.cache_key_at(
            spec,
            weights.as_deref(),
            prep.timed(opts),
            job.seed,
            r.placement.as_ref(),
        ),
        prep.cache_key_at(spec, weights.as_deref(), false, job.seed, r.placement.as_ref()),
    ];
    if !keys.contains(&r.cache_key) {
        return refuse(format!(
            "its cache key {} is not the suite's ({}): settings, weights or code changed since it ran (suite sha256 then {}, now {}); \
             re-run it (`clsbench run SUITE --job {}`)",
            short(&r.cache_key),
            short(&keys[0]),
            short(&r.suite.sha256),
            short(&prep.suite_sha),
            job.index
        ));
    }
    Ok(())
}

/// Whether another process holds `dir`'s run lock right now (a job still running).
fn lock_is_held(dir: &Path) -> bool {
    let Ok(file) = std::fs::File::open(dir.join(fsutil::DirLock::FILE)) else {
        return false;
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(_)) => false,
    }
}

/// Copy a finished model's files (predictions, model.json, train report, adapters), leaving
/// out epoch checkpoints and temp files; every file is written atomically.
fn copy_model_dir(src: &Path, dest: &Path) -> Result<()> {
    let entries = std::fs::read_dir(src).map_err(|e| Error::io(src, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == crate::train::resume::RESUME_DIR {
            continue;
        }
        if path.is_dir() {
            copy_model_dir(&path, &dest.join(&name))?;
        } else {
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            fsutil::write_atomic(&dest.join(&name), &bytes)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_model_ids_for_the_suite_seed_and_carry_any_other_seed() {
        assert_eq!(job_id("tfidf", 7, 7), "tfidf");
        assert_eq!(job_id("tfidf", 8, 7), "tfidf.seed8");
    }

    /// The plan once assumed every row was `max_length` tokens long and counted the embedding
    /// matrix's multiply-adds: its estimates ran ~8x the measured time, and `plan --slurm`'s
    /// 3x margin asked clusters for days.
    #[test]
    fn mean_truncated_tokens_counts_words_and_stops_at_max_length() {
        let long = "w ".repeat(100);
        let texts = ["a b c", long.as_str()];
        // 3 words -> 3 x 1.4 + 2 = 6.2 tokens; 100 words -> 142, cut to 64.
        assert!((mean_truncated_tokens(&texts, 64) - (6.2 + 64.0) / 2.0).abs() < 1e-9);
        assert_eq!(mean_truncated_tokens(&[], 64), 0.0);
    }
}
