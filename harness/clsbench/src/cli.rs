//! Command-line definitions only (clap derive); `main.rs` dispatches them.

use clap::{Parser, Subcommand, ValueEnum};
use clsbench::models::device::DeviceRequest;
use clsbench::models::precision::DTypeRequest;
use std::path::PathBuf;

/// Benchmark supervised text classifiers: train, evaluate with bootstrap confidence
/// intervals, time, price, and verify published claims.
#[derive(Debug, Parser)]
#[command(name = "clsbench", version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("CLSBENCH_GIT_REV"), ")"))]
pub struct Cli {
    /// Print nothing but errors on stderr (no steps, no progress); results and stdout output
    /// are unchanged.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a suite: fit every model, score it with CIs, write results to <output_dir>/<suite>/<run-id>/.
    Run(RunArgs),
    /// List a suite's jobs (one per model) with cache keys and estimated time and memory;
    /// with --slurm, write a Slurm job array that runs them.
    Plan(PlanArgs),
    /// Assemble the finished jobs of a shared directory (`run --job`) into one run; exit 5
    /// when some jobs are missing, failed or still running.
    Merge(MergeArgs),
    /// Describe a suite's dataset: rows per split, classes, class-count histogram, tiers.
    Describe(DescribeArgs),
    /// Score predictions made anywhere (CSV) with the same metrics and confidence intervals.
    Score(ScoreArgs),
    /// Print a base model's output as JSON, for parity checks against PyTorch: encoders the
    /// attention-masked mean of the last hidden state, decoders the top-10 next-token logits.
    Forward(ForwardArgs),
    /// Check published claims against a run: each claim gets our number, its CI and a verdict.
    Verify(VerifyArgs),
    /// Compare two runs of a suite (regressions in quality and speed); exit 1 on a regression.
    Compare(CompareArgs),
    /// Copy a run's results to results/<hardware-slug>/<suite>/ as the committed reference.
    Promote(PromoteArgs),
    /// Redraw a finished run's summary.md, metrics tables and plots from its results.json
    /// (nothing is trained, predicted, timed or resampled again).
    Report(ReportArgs),
    /// Correctness checks of a device against the CPU on tiny random models (forward parity,
    /// gradients of every trainable variable, f16 / bf16, the f16 loss scaler); exit 1 when one
    /// fails. Run by scripts/gpu-check.sh.
    #[command(hide = true)]
    GpuCheck(GpuCheckArgs),
    /// Throughput of real-size shapes with random weights (no checkpoint needed): inference
    /// docs/s per batch size, single-example p50/p95, training step time, peak device memory.
    /// Run by scripts/gpu-check.sh.
    #[command(hide = true)]
    GpuPerf(GpuPerfArgs),
}

#[derive(Debug, clap::Args)]
pub struct GpuCheckArgs {
    /// The device to check against the CPU (cuda, cuda:N; cpu checks the CPU's own f16/bf16).
    #[arg(long, value_parser = parse_device, default_value = "cuda")]
    pub device: DeviceRequest,
    /// Compute dtypes to check, comma-separated; `auto`: f32 and f16, and bf16 where the
    /// device has it (the CPU, compute capability >= 8).
    #[arg(long, default_value = "auto")]
    pub dtypes: String,
    /// Write the report as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// A flag given twice takes its last value (scripts/gpu-check.sh appends to a caller's flags).
#[derive(Debug, clap::Args)]
#[command(args_override_self = true)]
pub struct GpuPerfArgs {
    #[arg(long, value_parser = parse_device, default_value = "cuda")]
    pub device: DeviceRequest,
    /// Shapes, comma-separated: modernbert-base, qwen2.5-0.5b, tiny-modernbert, tiny-qwen2.
    #[arg(long, default_value = "modernbert-base,qwen2.5-0.5b")]
    pub shapes: String,
    /// Compute dtype: auto (f32 on the CPU, f16 below compute capability 8, bf16 from 8), f32,
    /// f16 or bf16.
    #[arg(long, value_parser = DTypeRequest::parse, default_value = "auto")]
    pub dtype: DTypeRequest,
    /// Inference batch sizes, comma-separated.
    #[arg(long, default_value = "1,32,64")]
    pub batch_sizes: String,
    #[arg(long, default_value_t = 128)]
    pub max_length: usize,
    /// Training batch size.
    #[arg(long, default_value_t = 32)]
    pub train_batch: usize,
    #[arg(long, default_value_t = 50)]
    pub single_examples: usize,
    /// Timed forwards per batch size.
    #[arg(long, default_value_t = 10)]
    pub repeats: usize,
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Timed training steps (after one untimed step).
    #[arg(long, default_value_t = 5)]
    pub train_steps: usize,
    /// Time training only.
    #[arg(long)]
    pub skip_inference: bool,
    /// Time inference only.
    #[arg(long)]
    pub skip_training: bool,
    /// Write the reports as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The suite file (TOML).
    pub suite: PathBuf,
    /// Name of the run directory (default: the hardware slug, so a re-run resumes it).
    #[arg(long)]
    pub run_id: Option<String>,
    /// Write under this directory instead of the suite's `output_dir`.
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    /// Redo every model even when finished results with the same inputs exist.
    #[arg(long)]
    pub force: bool,
    /// Run only job N of `clsbench plan SUITE` into <output_dir>/<suite>/jobs/<job-id>/ (for
    /// job arrays and shell loops; `clsbench merge` assembles them).
    #[arg(long, value_name = "N", conflicts_with_all = ["only", "run_id"])]
    pub job: Option<usize>,
    /// Run only these model ids (repeatable).
    #[arg(long = "only", value_name = "MODEL_ID")]
    pub only: Vec<String>,
    /// Skip the latency/throughput protocol.
    #[arg(long)]
    pub no_perf: bool,
    /// Where transformers run: auto, cpu, cuda or cuda:N (default: the suite's `device`
    /// field, itself "auto": CUDA when built with it and a GPU is present, else the CPU).
    #[arg(long, value_name = "DEVICE", value_parser = parse_device)]
    pub device: Option<DeviceRequest>,
    /// Peak training memory per model, GiB: batches whose estimate exceeds it are split into
    /// micro-batches with gradient accumulation (overrides the suite's `max_memory_gb`).
    #[arg(long, value_name = "GIB", value_parser = parse_gib)]
    pub max_memory_gb: Option<f64>,
}

/// `--max-memory-gb` values: finite and positive.
fn parse_gib(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("expected a number of GiB > 0 (e.g. 12 or 7.5), got {s:?}")),
    }
}

/// `--device` values, with the accepted forms in the error.
fn parse_device(s: &str) -> Result<DeviceRequest, String> {
    DeviceRequest::parse(s)
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The suite file (TOML).
    pub suite: PathBuf,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write <DIR>/<suite>/plan.json and array.sbatch (a job array; tasks write their jobs
    /// under DIR, which every node must see).
    #[arg(long, value_name = "DIR")]
    pub slurm: Option<PathBuf>,
    /// Slurm partition.
    #[arg(long, requires = "slurm")]
    pub partition: Option<String>,
    /// GPUs per array task (default: 1 when the suite has a transformer, else 0).
    #[arg(long, requires = "slurm")]
    pub gpus_per_job: Option<u32>,
    /// CPUs per array task (default: the partition's).
    #[arg(long, requires = "slurm")]
    pub cpus_per_job: Option<usize>,
    /// At most K tasks at once (`--array=0-(N-1)%K`; default: all).
    #[arg(long, value_name = "K", requires = "slurm")]
    pub max_parallel: Option<usize>,
    /// Time limit per task, HH:MM:SS or D-HH:MM:SS (default: 3x the largest estimate, at least 10 minutes).
    #[arg(long, requires = "slurm")]
    pub time: Option<String>,
    /// Tasks run with --no-perf (no latency/throughput protocol).
    #[arg(long)]
    pub no_perf: bool,
}

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The shared directory the jobs wrote to (`--output-dir` of `run --job`), or its
    /// <suite>/ subdirectory.
    pub shared_dir: PathBuf,
    /// The merged run directory (default: <shared_dir>/<suite>/merged).
    #[arg(long, value_name = "RUN_DIR")]
    pub out: Option<PathBuf>,
    /// The suite file, when the path the jobs recorded is not valid on this machine.
    #[arg(long)]
    pub suite: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    pub suite: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RngArg {
    /// numpy's legacy RandomState(seed).randint replayed exactly (the seed study's resamples).
    Numpy,
    /// ChaCha8 streams, one per resample.
    Chacha,
}

#[derive(Debug, clap::Args)]
pub struct ScoreArgs {
    /// Predictions CSV: wide (`id,gold,<model>,<model>...`) or long (`id,model,gold,pred`).
    pub predictions: PathBuf,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = 1000)]
    pub resamples: usize,
    /// Confidence level of the intervals.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Bootstrap seed (the seed study: 49 = 42 + 7).
    #[arg(long, default_value_t = 49)]
    pub seed: u64,
    #[arg(long, value_enum, default_value_t = RngArg::Numpy)]
    pub rng: RngArg,
    /// A model's per-class probabilities (a probabilities file, as `clsbench run` writes beside
    /// predictions.csv; README "Probabilities files"): adds NLL, Brier and temperature scaling.
    /// Repeat it for several models; the file's `model` metadata names its model.
    #[arg(long = "probs", value_name = "FILE")]
    pub probs: Vec<PathBuf>,
    /// Seed of the temperature-scaling halves, RandomState(seed).permutation(n) (the seed study:
    /// 1041 = 42 + 999).
    #[arg(long, default_value_t = 1041)]
    pub calibration_seed: u64,
    /// Also write score.json, score.md and reliability.png/.svg into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The run directory (holding results.json), or a results.json file.
    pub run: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ForwardArgs {
    /// A model directory in Hugging Face layout (config.json, *.safetensors, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// A text to run (repeatable).
    #[arg(long = "text", required_unless_present = "file")]
    pub texts: Vec<String>,
    /// A file with one text per line.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Where the model runs: auto, cpu, cuda or cuda:N (default: cpu, where the references
    /// were made).
    #[arg(long, value_name = "DEVICE", value_parser = parse_device, default_value = "cpu")]
    pub device: DeviceRequest,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The claims file (TOML; format in fixtures/claims/README.md).
    #[arg(long)]
    pub claims: PathBuf,
    /// The run directory (or its results.json).
    pub run_dir: PathBuf,
    /// Write verdicts.md and verdicts.json here (default: the run directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Exit 1 when any claim is contradicted.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// BASE_RUN NEW_RUN (directories or results.json files); with --reference, only NEW_RUN.
    #[arg(value_name = "RUN", num_args = 1..=2, required = true)]
    pub runs: Vec<PathBuf>,
    /// Compare NEW_RUN against the committed reference for its hardware and suite,
    /// <results-root>/<hardware-slug>/<suite>/.
    #[arg(long)]
    pub reference: bool,
    /// Where committed references live.
    #[arg(long, default_value = "results")]
    pub results_root: PathBuf,
    /// A quality delta is a regression when its whole CI lies below minus this margin.
    #[arg(long, default_value_t = 0.0)]
    pub quality_margin: f64,
    /// A throughput drop larger than this fraction (same hardware) is a regression.
    #[arg(long, default_value_t = 0.10)]
    pub speed_threshold: f64,
    /// A model or split of BASE_RUN that NEW_RUN lacks is a note, not a regression (e.g. for a
    /// NEW_RUN made with --only). Runs with no model or split in common are refused regardless.
    #[arg(long)]
    pub allow_missing: bool,
    /// Write compare.md and compare.json here (default: the new run's directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// The run directory (or its results.json).
    pub run_dir: PathBuf,
    /// Where committed references live.
    #[arg(long, default_value = "results")]
    pub results_root: PathBuf,
    /// Replace an existing reference.
    #[arg(long)]
    pub force: bool,
}
