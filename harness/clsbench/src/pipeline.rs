//! `clsbench run`: suite -> data -> fit each model -> predictions -> statistics -> results.
//!
//! Each model's predictions are written (atomically) as soon as it finishes, with a cache key
//! over everything that determines them; a re-run reuses finished models with the same key, so
//! an interrupted run resumes without losing work. Statistics are recomputed from the
//! predictions files every time: they are cheap and always consistent with them.

use crate::classifier::TextClassifier;
use crate::data::{self, Dataset, Example};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::jobs::Job;
use crate::models::device::{DeviceRequest, ResolvedDevice};
use crate::models::quantize::QuantFormat;
use crate::observer::RunObserver;
use crate::perf::hardware::Hardware;
use crate::report::manifest;
use crate::report::predictions::{self, PredictionRow};
use crate::report::probabilities;
use crate::report::results::{
    DatasetInfo, ModelResult, ModelStatus, QuantizedRecord, Results, SuiteInfo, TrainRecord, SCHEMA_VERSION,
};
use crate::suite::{ModelKind, ModelSpec, SplitName, Suite, Trainer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Options of `clsbench run` beyond the suite itself.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run directory name under `<output_dir>/<suite>/` (default: the hardware slug).
    pub run_id: Option<String>,
    /// Override the suite's output directory.
    pub output_dir: Option<PathBuf>,
    /// Redo models even when finished results with the same inputs exist.
    pub force: bool,
    /// Only these model ids (default: all).
    pub only: Vec<String>,
    /// Skip the timing protocol.
    pub no_perf: bool,
    /// `--device`: overrides the suite's `device` field.
    pub device: Option<DeviceRequest>,
    /// `--max-memory-gb`: overrides every transformer's `max_memory_gb`.
    pub max_memory_gb: Option<f64>,
}

/// What `run` produced, for the CLI to print.
pub struct RunOutcome {
    pub run_dir: PathBuf,
    pub results: Results,
    /// The first failure among models, to map to an exit code after everything was written.
    pub first_error: Option<Error>,
}

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_REV: &str = env!("CLSBENCH_GIT_REV");

pub fn run(suite_path: &Path, opts: &RunOptions, obs: &dyn RunObserver) -> Result<RunOutcome> {
    let started = chrono::Utc::now();
    let mut prep = prepare(suite_path, &opts.only)?;
    prep.resolve_device(opts.device, obs)?;
    prep.cap_memory(opts.max_memory_gb);
    prep.check_memory_plans()?;
    prep.check_quantize_formats()?;
    let run_id = opts.run_id.clone().unwrap_or_else(|| prep.hardware.slug.clone());
    let output_dir = opts.output_dir.clone().unwrap_or_else(|| prep.suite.output_dir.clone());
    // Both become directory names: checked as path components before anything is written.
    let run_dir = fsutil::join_under(
        &output_dir,
        &[("suite field `name`", &prep.suite.name), ("--run-id", &run_id)],
    )?;
    obs.step(&format!("suite {} -> {}", prep.suite.name, run_dir.display()));
    let _lock = lock_and_sweep(&run_dir, obs)?;
    let dataset = &prep.dataset;
    obs.step(&format!(
        "{} classes; train {} / val {} / test {} rows",
        dataset.labels.len(),
        dataset.train.len(),
        dataset.val.len(),
        dataset.test.len()
    ));
    write_split_files(&run_dir, &prep)?;
    let (models, first_error) = run_models(&prep, &run_dir, opts, &prep.jobs, obs)?;
    let results = assemble(&prep, run_id, models, &run_dir, started, None)?;
    Ok(RunOutcome {
        run_dir,
        results,
        first_error,
    })
}

/// Everything a run needs before the first model trains: the suite, the machine, the price
/// table, the data and the selected models' weights hashes, each checked up front. Shared by
/// `run`, `run --job` and `merge` (`crate::jobs`).
pub struct Prepared {
    pub suite: Suite,
    pub suite_path: PathBuf,
    pub suite_sha: String,
    pub hardware: Hardware,
    pub prices: crate::perf::prices::PriceTable,
    pub dataset: Dataset,
    pub load_report: data::LoadReport,
    /// The selected models, in suite order, with the sha256 of their base weights.
    pub selected: Vec<(ModelSpec, Option<String>)>,
    /// The selected models' jobs (one per model and training seed), in `jobs::expand` order.
    pub jobs: Vec<Job>,
    /// With `seed_controls = ["training", "split"]`: the dataset each further training seed
    /// draws (the first seed's is `dataset`). Empty otherwise: every seed shares `dataset`.
    pub seed_datasets: BTreeMap<u64, Dataset>,
    /// Where transformers run: resolved by `resolve_device` before any model trains (`run`,
    /// `run --job`, and `plan` where it can); `None` for `merge`, which trains nothing.
    pub device: Option<ResolvedDevice>,
}

/// Where and in which compute dtype a transformer runs: part of its cache key, so a model
/// trained on another device or in another precision is not reused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Placement {
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// The resolved compute dtype (`f32`, `f16`, `bf16`).
    pub dtype: String,
}

impl Prepared {
    /// The cache key of one selected model under one training seed (`timed`: whether the perf
    /// step runs for it), with its placement on this run's device once that is resolved.
    pub fn cache_key(&self, spec: &ModelSpec, weights_sha: Option<&str>, timed: bool, seed: u64) -> String {
        self.cache_key_at(spec, weights_sha, timed, seed, self.placement(spec).as_ref())
    }

    /// The cache key with a given placement (`merge` checks a job's key with the placement
    /// the job recorded).
    pub fn cache_key_at(
        &self,
        spec: &ModelSpec,
        weights_sha: Option<&str>,
        timed: bool,
        seed: u64,
        placement: Option<&Placement>,
    ) -> String {
        let data_key: Vec<&str> = self.dataset.inputs.iter().map(|i| i.sha256.as_str()).collect();
        cache_key(&self.suite, spec, &data_key, weights_sha, timed, seed, placement)
    }

    /// A transformer's device and resolved compute dtype on this run's device (`None` for the
    /// TF-IDF baseline, which always runs on the CPU, and before the device is resolved).
    pub fn placement(&self, spec: &ModelSpec) -> Option<Placement> {
        let device = self.device.as_ref()?;
        let plan = spec.train_plan().ok()??;
        let p = crate::models::precision::resolve(plan.dtype, device);
        Some(Placement {
            device: device.label.clone(),
            dtype: crate::models::precision::dtype_name(p.precision.compute).to_string(),
        })
    }

    /// `--max-memory-gb`: every transformer's cap (the suite's and the selected copies).
    pub fn cap_memory(&mut self, gb: Option<f64>) {
        let Some(gb) = gb else { return };
        self.suite.cap_memory(gb);
        for (spec, _) in &mut self.selected {
            if let ModelKind::Encoder(t) | ModelKind::Decoder(t) = &mut spec.kind {
                t.max_memory_gb = Some(gb);
            }
        }
    }

    /// Every selected transformer's memory plan, before the first model trains: a
    /// `max_memory_gb` too small for one row at a time is bad input (exit 2) up front.
    pub fn check_memory_plans(&self) -> Result<()> {
        let device = self.device_or_cpu();
        for (spec, _) in &self.selected {
            if let Some(plan) = spec.train_plan()? {
                if plan.max_memory_gb.is_some() {
                    crate::train::preflight_memory(&plan, self.dataset.labels.len(), &device)
                        .map_err(|e| Error::bad_input(format!("model {:?}: {}", spec.id, e.message())))?;
                }
            }
        }
        Ok(())
    }

    /// Every selected transformer's `quantize` formats against its checkpoint's layer shapes,
    /// before the first model trains: a format that cannot hold a layer is bad input (exit 2)
    /// naming the model and the layer, not a failure found after training.
    pub fn check_quantize_formats(&self) -> Result<()> {
        for (spec, _) in &self.selected {
            if let Some(plan) = spec.train_plan()? {
                crate::train::check_quantize_formats(&plan)
                    .map_err(|e| Error::bad_input(format!("model {:?}: {}", spec.id, e.message())))?;
            }
        }
        Ok(())
    }

    /// The resolved device, or the CPU before one is resolved.
    pub fn device_or_cpu(&self) -> ResolvedDevice {
        self.device
            .clone()
            .unwrap_or_else(|| ResolvedDevice::cpu(DeviceRequest::Cpu))
    }

    /// Resolve the device of the run once, before any model trains: `--device` (`request`)
    /// or the suite's `device` field. A GPU that is not there, or `cuda` in a build without
    /// it, is refused here; the hardware fingerprint then describes the device used.
    pub fn resolve_device(&mut self, request: Option<DeviceRequest>, obs: &dyn RunObserver) -> Result<()> {
        let (request, what) = match request {
            Some(r) => (r, "--device".to_string()),
            None => (
                DeviceRequest::parse(&self.suite.device)
                    .map_err(|e| Error::bad_input(format!("{}: field `device`: {e}", self.suite_path.display())))?,
                format!("{}: field `device`", self.suite_path.display()),
            ),
        };
        let device = crate::models::device::resolve(request, &what)?;
        if let Some(note) = &device.note {
            obs.step(note);
        }
        if let Some(gpu) = &device.gpu {
            obs.step(&format!(
                "models run on {} ({}, compute capability {}, {:.1} GiB)",
                device.label,
                gpu.name,
                gpu.compute_capability_string(),
                gpu.memory_bytes as f64 / (1u64 << 30) as f64
            ));
        }
        self.hardware = Hardware::detect_for(&device);
        self.device = Some(device);
        Ok(())
    }

    /// The data a job trains and is scored on.
    pub fn dataset_for(&self, seed: u64) -> &Dataset {
        self.seed_datasets.get(&seed).unwrap_or(&self.dataset)
    }

    /// Whether `seed` is the first of `model`'s training seeds: that run is the model's entry
    /// in results (the one a one-seed suite has), the only one timed.
    pub fn is_first_seed(&self, model: &str, seed: Option<u64>) -> bool {
        let Some(seed) = seed else { return true };
        self.suite
            .models
            .iter()
            .find(|m| m.id == model)
            .is_none_or(|m| self.suite.seeds_of(m).first() == Some(&seed))
    }

    /// A selected model's spec and weights hash.
    pub fn selected_spec(&self, model: &str) -> Option<&(ModelSpec, Option<String>)> {
        self.selected.iter().find(|(s, _)| s.id == model)
    }

    /// Whether the timing protocol runs under these options.
    pub fn timed(&self, opts: &RunOptions) -> bool {
        self.suite.perf.enabled && !opts.no_perf
    }
}

/// Load and check the suite, data and the `only` models' checkpoints (all models when empty).
pub fn prepare(suite_path: &Path, only: &[String]) -> Result<Prepared> {
    let suite = Suite::load(suite_path)?;
    let suite_sha = fsutil::sha256_file(suite_path)?;
    for id in only {
        if !suite.models.iter().any(|m| &m.id == id) {
            return Err(Error::bad_input(format!(
                "--only {id:?}: no model with that id in {}",
                suite_path.display()
            )));
        }
    }
    let hardware = Hardware::detect();
    // A bad price table is bad input: refuse it before any model trains.
    let prices = crate::perf::prices::PriceTable::with_user_file(suite.perf.prices.as_deref())?;
    // Data errors (an empty file, one class) are bad input: found before the lock is taken
    // or any model trains.
    let (dataset, load_report, seed_datasets) = load_datasets(&suite)?;
    // Every selected checkpoint is found and hashed before the first model trains: a typo in
    // the last model's checkpoint must not surface after the others trained for an hour.
    let selected = suite
        .models
        .iter()
        .filter(|m| only.is_empty() || only.contains(&m.id))
        .map(|m| Ok((m.clone(), current_weights_sha256(m)?)))
        .collect::<Result<Vec<_>>>()?;
    let jobs = crate::jobs::expand(&suite)
        .into_iter()
        .filter(|j| only.is_empty() || only.contains(&j.model))
        .collect();
    Ok(Prepared {
        suite,
        suite_path: suite_path.to_path_buf(),
        suite_sha,
        hardware,
        prices,
        dataset,
        load_report,
        selected,
        jobs,
        seed_datasets,
        device: None,
    })
}

/// The suite's data: one split, or with `seed_controls = ["training", "split"]` one split per
/// training seed (the first seed's is the run's `dataset`, the others keyed by seed). Only
/// the split differs between them: rows, labels and classes are decided over all rows.
fn load_datasets(suite: &Suite) -> Result<(Dataset, data::LoadReport, BTreeMap<u64, Dataset>)> {
    if !suite.seeds_redraw_split() {
        let (dataset, report) = data::load(suite)?;
        return Ok((dataset, report, BTreeMap::new()));
    }
    // Validation keeps per-model `seeds` out of split-seeded suites: every model shares these.
    let seeds = suite.seeds.clone().unwrap_or_else(|| vec![suite.seed]);
    let with_split_seed = |seed: u64| {
        let mut s = suite.clone();
        s.seed = seed;
        data::load(&s)
    };
    let (dataset, report) = with_split_seed(seeds[0])?;
    let mut others = BTreeMap::new();
    for &seed in &seeds[1..] {
        others.insert(seed, with_split_seed(seed)?.0);
    }
    Ok((dataset, report, others))
}

/// Take the run directory's lock and remove temp files a killed run left there.
pub fn lock_and_sweep(run_dir: &Path, obs: &dyn RunObserver) -> Result<fsutil::DirLock> {
    let lock = fsutil::DirLock::acquire(run_dir)?;
    let swept = fsutil::sweep_stale_temps(run_dir);
    if swept > 0 {
        obs.step(&format!("removed {swept} temp file(s) left by an interrupted run"));
    }
    Ok(lock)
}

/// Fit (or reuse) each of `jobs` into `<run_dir>/models/<job id>/`; the caller holds the
/// directory's lock. Returns the runs' entries (in job order) and the first model failure.
/// Only each model's first seed is timed: latency and cost do not depend on the seed.
pub fn run_models(
    prep: &Prepared,
    run_dir: &Path,
    opts: &RunOptions,
    jobs: &[Job],
    obs: &dyn RunObserver,
) -> Result<(Vec<ModelResult>, Option<Error>)> {
    let mut models = Vec::new();
    let mut first_error = None;
    for job in jobs {
        let (spec, weights_sha) = prep
            .selected_spec(&job.model)
            .ok_or_else(|| Error::bad_input(format!("job {:?}: model {:?} is not selected", job.id, job.model)))?;
        let dataset = prep.dataset_for(job.seed);
        let first_seed = prep.is_first_seed(&spec.id, Some(job.seed));
        let perf = (prep.timed(opts) && first_seed).then_some((&prep.hardware, &prep.prices));
        let key = prep.cache_key(spec, weights_sha.as_deref(), perf.is_some(), job.seed);
        let model_dir = run_dir.join("models").join(&job.id);
        let cached = (!opts.force)
            .then(|| load_cached(&model_dir, &key, &job.id, obs))
            .flatten();
        if opts.force {
            // --force means from scratch: epoch checkpoints of an interrupted run go too.
            let resume = model_dir.join(crate::train::resume::RESUME_DIR);
            if resume.is_dir() {
                std::fs::remove_dir_all(&resume).map_err(|e| Error::io_op(&resume, crate::error::IoOp::Remove, e))?;
            }
        }
        let result = match cached {
            Some(r) => {
                obs.step(&format!(
                    "{}: finished results with the same inputs exist, reusing (use --force to redo)",
                    job.id
                ));
                r
            }
            None => {
                let r = fit_and_predict(prep, spec, job, dataset, &model_dir, &key, perf, obs)?;
                fsutil::write_json_atomic(&model_dir.join("model.json"), &r)?;
                r
            }
        };
        // Quantised variants of the first seed's model (a deployment question: one trained
        // model, several ways to serve it), each its own row after the model's.
        let mut variants = Vec::new();
        if let (Some(plan), ModelStatus::Ok, true) = (spec.train_plan()?, result.status, first_seed) {
            for &format in &plan.quantize {
                let v = run_variant(prep, spec, &plan, job, &model_dir, &result, format, perf, opts, obs)?;
                variants.push(v);
            }
        }
        for result in std::iter::once(result).chain(variants) {
            match result.status {
                ModelStatus::Ok => {}
                ModelStatus::NotImplemented => obs.step(&format!(
                    "{}: not implemented in this version: {}",
                    job.id,
                    result.error.as_deref().unwrap_or("")
                )),
                ModelStatus::Failed => {
                    obs.step(&format!(
                        "{}: FAILED: {}",
                        job.id,
                        result.error.as_deref().unwrap_or("")
                    ));
                    if first_error.is_none() {
                        first_error = Some(Error::ModelFailed {
                            id: if result.variant_of.is_some() {
                                result.id.clone()
                            } else {
                                job.id.clone()
                            },
                            message: result.error.clone().unwrap_or_default(),
                        });
                    }
                }
            }
            models.push(result);
        }
    }
    Ok((models, first_error))
}

/// A quantised variant's directory, under its model's own.
pub fn variant_dir(model_dir: &Path, format: QuantFormat) -> PathBuf {
    model_dir.join(format.as_str())
}

/// A quantised variant's cache key: its trained model's key and the format.
pub fn variant_key(model_key: &str, format: QuantFormat) -> String {
    fsutil::sha256_bytes(format!("{model_key}+quantize={}", format.as_str()).as_bytes())
}

/// A finished model's quantised variant `<id>@<format>`, in `models/<job>/<format>/`: the
/// trained weights re-loaded with the backbone linear layers in `format`, scored on every
/// split and timed like the model itself. Its cache key is the model's and the format, so a
/// retrained model redoes its variants and a re-run reuses them.
#[allow(clippy::too_many_arguments)]
fn run_variant(
    prep: &Prepared,
    spec: &ModelSpec,
    plan: &crate::train::plan::TrainPlan,
    job: &Job,
    model_dir: &Path,
    base: &ModelResult,
    format: QuantFormat,
    perf: Option<(&Hardware, &crate::perf::prices::PriceTable)>,
    opts: &RunOptions,
    obs: &dyn RunObserver,
) -> Result<ModelResult> {
    let id = format.variant_id(&spec.id);
    let dir = variant_dir(model_dir, format);
    let key = variant_key(&base.cache_key, format);
    if !opts.force {
        if let Some(r) = load_cached(&dir, &key, &id, obs) {
            obs.step(&format!(
                "{id}: finished results with the same inputs exist, reusing (use --force to redo)"
            ));
            return Ok(r);
        }
    }
    let dataset = prep.dataset_for(job.seed);
    let mut result = ModelResult {
        id: id.clone(),
        kind: spec.kind.name().to_string(),
        status: ModelStatus::Ok,
        error: None,
        seed: Some(job.seed),
        dir: Some(format!("{}/{}", job.id, format.as_str())),
        spec: serde_json::to_value(spec).unwrap_or_default(),
        cache_key: key,
        train_wall_s: 0.0,
        predict_wall_s: 0.0,
        train_report: None,
        weights: base.weights.clone(),
        predictions: None,
        probabilities: None,
        perf: None,
        variant_of: Some(spec.id.clone()),
        quantize: Some(format),
    };
    obs.step(&format!(
        "{id}: quantising {}'s backbone linear layers to {format}",
        spec.id
    ));
    let device = prep.device_or_cpu();
    let t0 = Instant::now();
    let loaded = crate::train::quantized_for_pipeline(plan, dataset.labels.len(), model_dir, &device, format);
    // Time to re-load and quantise: the variant's "training".
    result.train_wall_s = t0.elapsed().as_secs_f64();
    result.train_report = Some(TrainRecord::Quantized(QuantizedRecord {
        quantized_from: spec.id.clone(),
        format,
        load_and_quantize_s: result.train_wall_s,
    }));
    let classifier = match loaded {
        Ok(c) => c,
        Err(e) if e.exit_code() == crate::error::exit::ENVIRONMENT => return Err(e),
        Err(e) => {
            result.status = ModelStatus::Failed;
            result.error = Some(e.message());
            fsutil::write_json_atomic(&dir.join("model.json"), &result)?;
            return Ok(result);
        }
    };
    predict_and_write(
        classifier.as_ref(),
        &prep.suite,
        dataset,
        &spec.id,
        &dir,
        &mut result,
        obs,
    )?;
    obs.step(&format!(
        "{id}: done in {:.1} s (load + quantise) + {:.1} s (predict)",
        result.train_wall_s, result.predict_wall_s
    ));
    if let (Some((hardware, prices)), ModelStatus::Ok) = (perf, result.status) {
        let report = time_model(classifier.as_ref(), &prep.suite, &id, dataset, hardware, prices, obs);
        result.perf = Some(report);
    }
    fsutil::write_json_atomic(&dir.join("model.json"), &result)?;
    Ok(result)
}

/// Statistics over `models` (read back from their predictions files under `run_dir`), then
/// summary, tables, plots, results.json and manifest.json. `jobs` (from `merge`) goes into the
/// manifest.
pub fn assemble(
    prep: &Prepared,
    run_id: String,
    runs: Vec<ModelResult>,
    run_dir: &Path,
    started: chrono::DateTime<chrono::Utc>,
    jobs: Option<serde_json::Value>,
) -> Result<Results> {
    let (suite, dataset) = (&prep.suite, &prep.dataset);
    // Each model's first seed is its entry; further seeds feed the seed-aware statistics.
    let (models, seed_runs): (Vec<ModelResult>, Vec<ModelResult>) =
        runs.into_iter().partition(|r| prep.is_first_seed(&r.id, r.seed));
    let mut splits = crate::scoring::analyse_run(prep, &models, &seed_runs, run_dir)?;
    crate::calibration_run::attach_run(&mut splits, suite, &dataset.labels, &models, run_dir)?;
    let decisions =
        crate::report::decision::judge_all(&suite.decision, suite.evaluation.primary_split, &splits, &models);
    let results = Results {
        schema_version: SCHEMA_VERSION,
        clsbench_version: VERSION.to_string(),
        git_rev: GIT_REV.to_string(),
        suite: SuiteInfo {
            name: suite.name.clone(),
            path: prep.suite_path.display().to_string(),
            sha256: prep.suite_sha.clone(),
            seed: suite.seed,
        },
        run_id,
        created: chrono::Utc::now().to_rfc3339(),
        hardware: prep.hardware.clone(),
        dataset: DatasetInfo {
            labels: dataset.labels.clone(),
            train_counts: dataset.train_counts(),
            n_train: dataset.train.len(),
            n_val: dataset.val.len(),
            n_test: dataset.test.len(),
            inputs: dataset.inputs.clone(),
            load: prep.load_report.clone(),
        },
        evaluation: suite.evaluation.clone(),
        models,
        seed_runs,
        splits,
        decisions,
    };
    // summary.md, metrics tables and plots first (the same code `clsbench report` reruns),
    // results.json and the manifest last: a reader who finds results.json finds everything
    // it promises, and a run stopped before that point has no results.json of its own.
    crate::report::regenerate::write_outputs(run_dir, &results)?;
    fsutil::write_json_atomic(&run_dir.join("results.json"), &results)?;
    manifest::write_with_jobs(
        &run_dir.join("manifest.json"),
        &results,
        started,
        chrono::Utc::now(),
        jobs,
    )?;
    Ok(results)
}

/// sha256 over everything that determines what a model's entry holds: its suite entry, the
/// data, labels, split and seed, the training seed, the scored splits, the perf settings (and
/// whether timing runs), the code that predicts (`crate::SOURCE_SHA256` for data and baseline,
/// `clsbench_models::SOURCE_SHA256` for the transformers and training), and the base weights
/// as they are on disk now (re-hashed, memoised by size and mtime), so a changed or truncated
/// checkpoint retrains. The seed lists themselves are left out: adding a seed to a suite
/// reuses the seeds already trained. A run whose training seed is the suite's `seed` (and
/// whose split is the suite's) has the key it had before suites had `seeds`. A transformer's
/// placement (device and resolved compute dtype) is part of it once the device is resolved.
fn cache_key(
    suite: &Suite,
    spec: &ModelSpec,
    data_shas: &[&str],
    weights_sha: Option<&str>,
    timed: bool,
    training_seed: u64,
    placement: Option<&Placement>,
) -> String {
    // Quantised variants are predictions of the trained model, keyed on their own
    // (`variant_key`): listing formats must not retrain it.
    let mut spec = ModelSpec {
        seeds: None,
        ..spec.clone()
    };
    if let ModelKind::Encoder(t) | ModelKind::Decoder(t) = &mut spec.kind {
        t.quantize.clear();
    }
    let mut key = serde_json::json!({
        "clsbench": VERSION,
        "source": crate::SOURCE_SHA256,
        "models_source": clsbench_models::SOURCE_SHA256,
        "model": spec,
        "weights": weights_sha,
        "seed": suite.seed,
        "labels": suite.labels,
        "split": suite.split,
        "eval_splits": suite.evaluation.splits,
        "perf": timed.then_some(&suite.perf),
        "data": data_shas,
    });
    if training_seed != suite.seed {
        key["training_seed"] = training_seed.into();
    }
    if suite.seeds_redraw_split() {
        key["split_seed"] = training_seed.into();
    }
    // Only with a placement, so the keys of the TF-IDF baseline do not change with devices.
    if let Some(p) = placement {
        key["placement"] = serde_json::json!(p);
    }
    fsutil::sha256_bytes(key.to_string().as_bytes())
}

/// The sha256 of a transformer's base weights as they are on disk now (`None` for models
/// without pretrained weights); a checkpoint that cannot be found is an error naming it.
fn current_weights_sha256(spec: &ModelSpec) -> Result<Option<String>> {
    match &spec.kind {
        ModelKind::Encoder(t) | ModelKind::Decoder(t) => {
            let files = crate::models::loader::resolve(&t.checkpoint, t.local_dir.as_deref()).map_err(|e| match e {
                Error::BadInput(m) => Error::bad_input(format!("model {:?}: {m}", spec.id)),
                e @ Error::Json { .. } => Error::bad_input(format!("model {:?}: {e}", spec.id)),
                other => other,
            })?;
            files.weights_sha256().map(Some)
        }
        ModelKind::TfidfLogreg(_) => Ok(None),
    }
}

fn load_cached(model_dir: &Path, key: &str, id: &str, obs: &dyn RunObserver) -> Option<ModelResult> {
    let r = ModelResult::read(&model_dir.join("model.json")).ok()?;
    let preds_ok = r.predictions.as_ref().is_some_and(|p| model_dir.join(p).is_file());
    // Calibration needs every class's probabilities: entries from before they were kept (or
    // whose file went missing) are redone.
    let probs_ok = r.probabilities.as_ref().is_some_and(|p| model_dir.join(p).is_file());
    if r.cache_key != key && r.status == ModelStatus::Ok {
        obs.step(&format!(
            "{id}: settings, data, weights or code changed since the last run; training again"
        ));
    } else if r.status == ModelStatus::Ok && preds_ok && !probs_ok {
        obs.step(&format!(
            "{id}: no per-class probabilities file (written by an older clsbench?); training again"
        ));
    }
    (r.cache_key == key && r.status == ModelStatus::Ok && preds_ok && probs_ok).then_some(r)
}

/// Fit one model and write its predictions; a model's failures become a `Failed` result, not
/// an abort, so one broken model does not cost the others' work. What the environment causes
/// (a full disk, a read-only directory) stops the run: every later model would fail the same.
#[allow(clippy::too_many_arguments)]
fn fit_and_predict(
    prep: &Prepared,
    spec: &ModelSpec,
    job: &Job,
    dataset: &Dataset,
    model_dir: &Path,
    key: &str,
    perf: Option<(&Hardware, &crate::perf::prices::PriceTable)>,
    obs: &dyn RunObserver,
) -> Result<ModelResult> {
    let suite = &prep.suite;
    let device = prep.device_or_cpu();
    let device = &device;
    let mut result = ModelResult {
        id: spec.id.clone(),
        kind: spec.kind.name().to_string(),
        status: ModelStatus::Ok,
        error: None,
        seed: Some(job.seed),
        dir: Some(job.id.clone()),
        spec: serde_json::to_value(spec).unwrap_or_default(),
        cache_key: key.to_string(),
        train_wall_s: 0.0,
        predict_wall_s: 0.0,
        train_report: None,
        weights: Vec::new(),
        predictions: None,
        probabilities: None,
        perf: None,
        variant_of: None,
        quantize: None,
    };
    obs.step(&format!("{}: training ({})", job.id, spec.kind.name()));
    let t0 = Instant::now();
    let fitted = fit(spec, dataset, model_dir, job.seed, device, obs);
    result.train_wall_s = t0.elapsed().as_secs_f64();
    let classifier = match fitted {
        Ok((c, report, weights)) => {
            result.train_report = Some(report);
            result.weights = weights;
            c
        }
        Err(Error::NotImplemented(msg)) => {
            result.status = ModelStatus::NotImplemented;
            result.error = Some(msg);
            return Ok(result);
        }
        Err(e) if e.exit_code() == crate::error::exit::ENVIRONMENT => return Err(e),
        Err(e) => {
            result.status = ModelStatus::Failed;
            result.error = Some(e.message());
            return Ok(result);
        }
    };
    predict_and_write(
        classifier.as_ref(),
        suite,
        dataset,
        &spec.id,
        model_dir,
        &mut result,
        obs,
    )?;
    obs.step(&format!(
        "{}: done in {:.1} s (train) + {:.1} s (predict)",
        job.id, result.train_wall_s, result.predict_wall_s
    ));
    if let (Some((hardware, prices)), ModelStatus::Ok) = (perf, result.status) {
        let mut report = time_model(classifier.as_ref(), suite, &spec.id, dataset, hardware, prices, obs);
        let epochs = match &spec.kind {
            ModelKind::Encoder(t) | ModelKind::Decoder(t) => Some(t.epochs),
            ModelKind::TfidfLogreg(_) => None,
        };
        report.training = Some(crate::perf::training::from_fit(
            result.train_wall_s,
            dataset.train.len(),
            epochs,
            result.transformer_report(),
        ));
        result.perf = Some(report);
    }
    Ok(result)
}

/// Predict every scored split and write `predictions.csv` and the probabilities file into
/// `model_dir`, recorded in `result`; a model that predicts nonsense (NaN) is marked failed.
fn predict_and_write(
    classifier: &dyn TextClassifier,
    suite: &Suite,
    dataset: &Dataset,
    model_id: &str,
    model_dir: &Path,
    result: &mut ModelResult,
    obs: &dyn RunObserver,
) -> Result<()> {
    let t1 = Instant::now();
    match predict_splits(classifier, suite, dataset, obs) {
        Ok((rows, scored)) => {
            result.predict_wall_s = t1.elapsed().as_secs_f64();
            predictions::write(&model_dir.join("predictions.csv"), &rows)?;
            result.predictions = Some("predictions.csv".to_string());
            let splits: Vec<probabilities::SplitRows> = scored
                .into_iter()
                .map(|(split, examples, probabilities)| probabilities::SplitRows {
                    split: split.as_str(),
                    doc_ids: examples.iter().map(|e| e.id.as_str()).collect(),
                    probabilities,
                })
                .collect();
            let file = model_dir.join(probabilities::FILE_NAME);
            probabilities::write(&file, model_id, &dataset.labels, &splits)?;
            result.probabilities = Some(probabilities::FILE_NAME.to_string());
        }
        Err(e) => {
            result.status = ModelStatus::Failed;
            result.error = Some(e.message());
        }
    }
    Ok(())
}

/// The timing protocol, after the predictions are written (timing never changes them).
fn time_model(
    classifier: &dyn TextClassifier,
    suite: &Suite,
    model_id: &str,
    dataset: &Dataset,
    hardware: &Hardware,
    prices: &crate::perf::prices::PriceTable,
    obs: &dyn RunObserver,
) -> crate::perf::PerfReport {
    let primary = match suite.evaluation.primary_split {
        SplitName::Test => &dataset.test,
        _ => &dataset.val,
    };
    let source = if primary.is_empty() { &dataset.test } else { primary };
    let texts: Vec<&str> = source.iter().map(|e| e.text.as_str()).collect();
    obs.step(&format!(
        "{model_id}: timing (batch sizes {:?})",
        suite.perf.batch_sizes
    ));
    let report = crate::perf::measure(classifier, &texts, &suite.perf, hardware, prices);
    if let Some(e) = &report.error {
        obs.step(&format!("{model_id}: timing failed: {e}"));
    }
    report
}

type Fitted = (Box<dyn TextClassifier>, TrainRecord, Vec<data::InputFile>);

fn fit(
    spec: &ModelSpec,
    dataset: &Dataset,
    model_dir: &Path,
    training_seed: u64,
    device: &ResolvedDevice,
    obs: &dyn RunObserver,
) -> Result<Fitted> {
    match spec.kind.trainer() {
        Trainer::TfidfLogreg(params) => {
            let texts: Vec<&str> = dataset.train.iter().map(|e| e.text.as_str()).collect();
            let labels: Vec<usize> = dataset.train.iter().map(|e| e.label).collect();
            let (model, report) = crate::baseline::TfidfLogReg::fit(&texts, &labels, dataset.labels.len(), params)?;
            Ok((Box::new(model), TrainRecord::TfidfLogreg(report), Vec::new()))
        }
        Trainer::Transformer(t, family) => {
            let plan = spec.plan_for(t, family)?;
            let (model, report, inputs) =
                crate::train::fit_for_pipeline(&spec.id, &plan, dataset, training_seed, model_dir, device, obs)?;
            Ok((model, TrainRecord::Transformer(Box::new(report)), inputs))
        }
    }
}

/// Each scored split's examples and every class's probability for each of them.
type ScoredSplit<'a> = (SplitName, &'a [Example], Vec<Vec<f32>>);

/// Predictions (argmax and its probability) of every scored split, and all class probabilities
/// for the probabilities file. A probability that is not a number is the model's failure,
/// named by document: a diverged model must not reach the statistics.
fn predict_splits<'a>(
    model: &dyn TextClassifier,
    suite: &Suite,
    dataset: &'a Dataset,
    obs: &dyn RunObserver,
) -> Result<(Vec<PredictionRow>, Vec<ScoredSplit<'a>>)> {
    let mut rows = Vec::new();
    let mut scored = Vec::new();
    for &split in &suite.evaluation.splits {
        let examples: &[Example] = match split {
            SplitName::Val => &dataset.val,
            SplitName::Test => &dataset.test,
            SplitName::Train => &dataset.train,
        };
        let bar = obs.progress(examples.len() as u64, split.as_str());
        let mut all = Vec::with_capacity(examples.len());
        // Chunks keep memory bounded and let the bar move; predictions do not depend on them.
        for chunk in examples.chunks(256) {
            let texts: Vec<&str> = chunk.iter().map(|e| e.text.as_str()).collect();
            let probs = model.predict_proba(&texts)?;
            for (e, row) in chunk.iter().zip(probs) {
                check_probabilities(&row, e, split, &dataset.labels)?;
                let (p, prob) = crate::classifier::argmax(&row);
                rows.push(PredictionRow {
                    id: e.id.clone(),
                    split: split.as_str().to_string(),
                    gold: dataset.labels[e.label].clone(),
                    pred: dataset.labels[p].clone(),
                    prob,
                });
                all.push(row);
            }
            bar.inc(chunk.len() as u64);
        }
        drop(bar);
        scored.push((split, examples, all));
    }
    Ok((rows, scored))
}

/// One probability row per class, each a finite number (NaN logits give NaN rows).
fn check_probabilities(row: &[f32], e: &Example, split: SplitName, labels: &[String]) -> Result<()> {
    if row.len() != labels.len() {
        return Err(Error::Model(format!(
            "document {:?} ({}): {} probabilities for {} classes",
            e.id,
            split.as_str(),
            row.len(),
            labels.len()
        )));
    }
    match row.iter().position(|p| !p.is_finite()) {
        None => Ok(()),
        Some(k) => Err(Error::Model(format!(
            "document {:?} ({}): the probability of class {:?} is {} (NaN or infinite logits: the model diverged or its weights are broken)",
            e.id,
            split.as_str(),
            labels[k],
            row[k]
        ))),
    }
}

/// `split.csv` (and with split-seeded suites `split.seed<S>.csv` for every further seed).
pub fn write_split_files(run_dir: &Path, prep: &Prepared) -> Result<()> {
    write_split_file(&run_dir.join("split.csv"), &prep.dataset)?;
    for (seed, dataset) in &prep.seed_datasets {
        write_split_file(&run_dir.join(format!("split.seed{seed}.csv")), dataset)?;
    }
    Ok(())
}

/// `split.csv`: which row went where, so anyone can rebuild the exact split (the scikit-learn
/// reference script reads it).
pub fn write_split_file(path: &Path, dataset: &Dataset) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let enc = |e: csv::Error| Error::encode("split file", e);
    w.write_record(["id", "split", "label"]).map_err(enc)?;
    for (name, rows) in [
        ("train", &dataset.train),
        ("val", &dataset.val),
        ("test", &dataset.test),
    ] {
        for e in rows.iter() {
            w.write_record([e.id.as_str(), name, dataset.labels[e.label].as_str()])
                .map_err(enc)?;
        }
    }
    let bytes = w.into_inner().map_err(|e| Error::encode("split file", e))?;
    fsutil::write_atomic(path, &bytes)
}

#[cfg(test)]
mod probability_tests {
    use super::*;
    use crate::observer::Quiet;

    /// Probabilities from the text: "nan" makes a NaN row (what NaN logits give).
    struct Scripted;
    impl TextClassifier for Scripted {
        fn n_classes(&self) -> usize {
            2
        }
        fn predict_proba(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
            Ok(texts
                .iter()
                .map(|t| {
                    if *t == "nan" {
                        vec![f32::NAN, f32::NAN]
                    } else {
                        vec![0.25, 0.75]
                    }
                })
                .collect())
        }
    }

    fn dataset(val_texts: &[&str]) -> Dataset {
        let example = |i: usize, text: &str| Example {
            id: format!("doc-{i}"),
            text: text.to_string(),
            label: i % 2,
        };
        Dataset {
            labels: vec!["a".into(), "b".into()],
            train: Vec::new(),
            val: val_texts.iter().enumerate().map(|(i, t)| example(i, t)).collect(),
            test: vec![example(9, "fine")],
            inputs: Vec::new(),
        }
    }

    fn suite() -> Suite {
        let text = "name = \"t\"\nseed = 1\n[dataset]\nsource = \"csv\"\npath = \"d.csv\"\ntext_column = \"t\"\nlabel_column = \"l\"\n\
                    [split]\nmethod = \"stratified\"\ntrain = 0.8\nval = 0.1\ntest = 0.1\n[[models]]\nid = \"m\"\nkind = \"tfidf-logreg\"\n";
        Suite::parse(text, Path::new("s.toml")).unwrap()
    }

    #[test]
    fn every_split_keeps_every_class_probability_beside_the_argmax() {
        let d = dataset(&["x", "y"]);
        let (rows, scored) = predict_splits(&Scripted, &suite(), &d, &Quiet).unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r.pred == "b" && r.prob == 0.75));
        let names: Vec<&str> = scored.iter().map(|(s, ..)| s.as_str()).collect();
        assert_eq!(names, ["val", "test"]);
        assert_eq!(scored[0].2, vec![vec![0.25, 0.75]; 2]);
        assert_eq!(scored[0].1.len(), 2);
    }

    #[test]
    fn nan_probabilities_fail_the_model_naming_the_document() {
        let d = dataset(&["x", "nan"]);
        let err = predict_splits(&Scripted, &suite(), &d, &Quiet).unwrap_err();
        let msg = err.message();
        assert!(
            msg.contains("\"doc-1\"") && msg.contains("val") && msg.contains("NaN"),
            "{msg}"
        );
        assert_eq!(err.exit_code(), crate::error::exit::MODEL_FAILED);
        // The run reports it as that model's failure: "model ID failed: <message>".
        let failed = Error::ModelFailed {
            id: "m".into(),
            message: msg.clone(),
        };
        assert!(failed.to_string().starts_with("model m failed: document \"doc-1\""));
    }
}
