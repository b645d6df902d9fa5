//! One function per subcommand: turn typed flags into library calls and print the outcome.

use crate::cli::{
    Cli, Command, CompareArgs, DescribeArgs, ForwardArgs, GpuCheckArgs, GpuPerfArgs, MergeArgs, PlanArgs, PromoteArgs,
    ReportArgs, RngArg, RunArgs, ScoreArgs, VerifyArgs,
};
use crate::terminal::Terminal;
use clsbench::analysis::{self, SplitInput};
use clsbench::error::{Error, Result};
use clsbench::observer::{Quiet, RunObserver};
use clsbench::suite::{EvaluationSpec, ResampleRng, Suite};
use std::collections::{BTreeSet, HashMap};

pub fn dispatch(cli: Cli) -> Result<()> {
    let terminal = Terminal::from_env();
    let obs: &dyn RunObserver = if cli.quiet { &Quiet } else { &terminal };
    match cli.command {
        Command::Run(args) => run(args, obs),
        Command::Plan(args) => plan(args, obs),
        Command::Merge(args) => merge(args, obs),
        Command::Describe(args) => describe(args),
        Command::Score(args) => score(args, obs),
        Command::Forward(args) => forward(args),
        Command::Verify(args) => verify(args, obs),
        Command::Compare(args) => compare(args, obs),
        Command::Promote(args) => promote(args, obs),
        Command::Report(args) => report(args, obs),
        Command::GpuCheck(args) => gpu_check(args),
        Command::GpuPerf(args) => gpu_perf(args, obs),
    }
}

fn gpu_check(args: GpuCheckArgs) -> Result<()> {
    use clsbench::device_check::{checks, parse_dtypes, render};
    let device = clsbench::models::device::resolve(args.device, "--device")?;
    let dtypes = if args.dtypes == "auto" {
        clsbench::device_check::checks::dtypes_for(&device)
    } else {
        parse_dtypes(&args.dtypes)?
    };
    let report = checks::run(&device, &dtypes)?;
    if let Some(out) = &args.out {
        clsbench::fsutil::write_json_atomic(out, &report)?;
    }
    println!("{}", render::checks_markdown(&report));
    let failed = report.failed();
    if failed.is_empty() {
        return Ok(());
    }
    Err(Error::Failed(format!(
        "{} of {} device checks failed: {}",
        failed.len(),
        report.checks.len(),
        failed
            .iter()
            .map(|c| format!("{} {} {}", c.check, c.family, c.dtype))
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

fn gpu_perf(args: GpuPerfArgs, obs: &dyn RunObserver) -> Result<()> {
    use clsbench::device_check::{render, synthetic};
    let sizes = args
        .batch_sizes
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .ok()
                .filter(|&b| b > 0)
                .ok_or_else(|| Error::bad_input(format!("--batch-sizes: expected positive integers, got {s:?}")))
        })
        .collect::<Result<Vec<_>>>()?;
    if args.max_length == 0 || args.train_batch == 0 {
        return Err(Error::bad_input("--max-length and --train-batch must be at least 1"));
    }
    let shapes = args
        .shapes
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(synthetic::shape)
        .collect::<Result<Vec<_>>>()?;
    let device = clsbench::models::device::resolve(args.device, "--device")?;
    let precision = clsbench::models::precision::resolve(args.dtype, &device);
    if let Some(note) = &precision.note {
        obs.step(note);
    }
    let opts = synthetic::PerfOptions {
        batch_sizes: sizes,
        max_length: args.max_length,
        train_batch: args.train_batch,
        single_examples: args.single_examples,
        repeats: args.repeats,
        warmup: args.warmup,
        train_steps: args.train_steps,
        skip_inference: args.skip_inference,
        skip_training: args.skip_training,
        ..synthetic::PerfOptions::default()
    };
    let mut reports = Vec::new();
    for shape in &shapes {
        obs.step(&format!("timing {} on {}", shape.name, device.label));
        reports.push(synthetic::run_shape(
            &device,
            precision.precision.compute,
            shape,
            &opts,
        )?);
    }
    if let Some(out) = &args.out {
        let value = serde_json::json!({
            "clsbench_version": env!("CARGO_PKG_VERSION"),
            "git_rev": env!("CLSBENCH_GIT_REV"),
            "device": device.label,
            "gpu": device.gpu,
            "precision_note": precision.note,
            "shapes": reports,
        });
        clsbench::fsutil::write_json_atomic(out, &value)?;
    }
    println!("{}", render::perf_markdown(&reports));
    Ok(())
}

fn forward(args: ForwardArgs) -> Result<()> {
    let mut texts = args.texts;
    if let Some(path) = &args.file {
        let content = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        texts.extend(content.lines().filter(|l| !l.trim().is_empty()).map(str::to_string));
    }
    let device = clsbench::models::device::resolve(args.device, "--device")?;
    let value = clsbench::models::forward_json(&args.model, &texts, &device)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&value).expect("JSON value serialises")
    );
    Ok(())
}

fn report(args: ReportArgs, obs: &dyn RunObserver) -> Result<()> {
    let out = clsbench::report::regenerate::regenerate(&args.run)?;
    println!("{}", clsbench::report::summary::render(&out.results));
    for (plot, why) in &out.plots.skipped {
        obs.step(&format!("plot {} not drawn: {why}", plot.stem));
    }
    obs.step(&format!(
        "rewrote summary.md, metrics tables and {} plots in {}",
        out.plots.written.len(),
        out.run_dir.display()
    ));
    Ok(())
}

fn run(args: RunArgs, obs: &dyn RunObserver) -> Result<()> {
    let opts = clsbench::pipeline::RunOptions {
        run_id: args.run_id,
        output_dir: args.output_dir,
        force: args.force,
        only: args.only,
        no_perf: args.no_perf,
        device: args.device,
        max_memory_gb: args.max_memory_gb,
    };
    if let Some(index) = args.job {
        let out = clsbench::jobs::run_job(&args.suite, index, &opts, obs)?;
        obs.step(&format!(
            "job {index} ({}) {} in {:.1} s; wrote {}",
            out.record.job.id,
            match out.model.status {
                clsbench::report::results::ModelStatus::Ok => "finished",
                clsbench::report::results::ModelStatus::Failed => "FAILED",
                clsbench::report::results::ModelStatus::NotImplemented => "not implemented",
            },
            out.record.wall_s,
            out.job_dir.display()
        ));
        return match out.first_error {
            Some(e) => Err(e),
            None => Ok(()),
        };
    }
    let outcome = clsbench::pipeline::run(&args.suite, &opts, obs)?;
    let summary = clsbench::report::summary::render(&outcome.results);
    println!("{summary}");
    obs.step(&format!("wrote {}", outcome.run_dir.display()));
    match outcome.first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn plan(args: PlanArgs, obs: &dyn RunObserver) -> Result<()> {
    use clsbench::jobs;
    let mut prep = clsbench::pipeline::prepare(&args.suite, &[])?;
    // Estimates (and cache keys) for the device a run here would use; a device this machine
    // cannot open (planning GPU jobs on a login node) leaves the CPU's.
    if let Err(e) = prep.resolve_device(None, obs) {
        obs.step(&format!("note: {e}; estimates assume the CPU"));
    }
    let run_opts = clsbench::pipeline::RunOptions {
        no_perf: args.no_perf,
        ..Default::default()
    };
    let plan = jobs::plan(&prep, &run_opts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan).expect("plan serialises"));
    } else {
        println!(
            "suite {} ({}): {} job(s); time and memory are estimates from model size and settings on this machine ({}), not measurements",
            plan.suite.name,
            plan.suite.path,
            plan.n_jobs,
            prep.hardware.slug
        );
        println!(
            "{:>5}  {:<24} {:<13} {:>6}  {:>10}  {:>10}  cache key",
            "job", "id", "kind", "seed", "est. time", "est. mem"
        );
        for j in &plan.jobs {
            println!(
                "{:>5}  {:<24} {:<13} {:>6}  {:>10}  {:>10}  {}",
                j.job.index,
                j.job.id,
                j.kind,
                j.job.seed,
                human_seconds(j.estimate.time_s),
                human_bytes(j.estimate.memory_bytes),
                &j.cache_key[..12]
            );
        }
    }
    if let Some(dir) = args.slurm {
        let any_transformer = prep
            .suite
            .models
            .iter()
            .any(|m| !matches!(m.kind, clsbench::suite::ModelKind::TfidfLogreg(_)));
        let opts = clsbench::slurm::SlurmOptions {
            dir,
            partition: args.partition,
            gpus_per_job: args.gpus_per_job.unwrap_or(u32::from(any_transformer)),
            max_parallel: args.max_parallel,
            time: args.time,
            cpus_per_job: args.cpus_per_job,
            clsbench: std::env::current_exe()
                .map_err(|e| Error::Environment(format!("cannot find the clsbench binary: {e}")))?,
            run_flags: if args.no_perf {
                vec!["--no-perf".into()]
            } else {
                Vec::new()
            },
        };
        let w = clsbench::slurm::write(&plan, &opts)?;
        obs.step(&format!("wrote {} and {}", w.plan.display(), w.script.display()));
        obs.step(&format!(
            "submit with `{}`; then `clsbench merge {}`",
            w.submit,
            w.suite_dir.display()
        ));
        if !w.sbatch_found {
            obs.step(
                "note: sbatch is not on this machine's PATH: submit from a Slurm login node (README \"Clusters\")",
            );
        }
    }
    Ok(())
}

fn human_seconds(s: f64) -> String {
    match s {
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.0} min", s / 60.0),
        s => format!("{:.1} h", s / 3600.0),
    }
}

fn human_bytes(b: u64) -> String {
    let gib = b as f64 / (1u64 << 30) as f64;
    if gib >= 1.0 {
        format!("{gib:.1} GiB")
    } else {
        format!("{:.0} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

fn merge(args: MergeArgs, obs: &dyn RunObserver) -> Result<()> {
    use clsbench::jobs::{self, JobState};
    let opts = jobs::MergeOptions {
        out: args.out,
        suite: args.suite,
    };
    let out = jobs::merge(&args.shared_dir, &opts, obs)?;
    println!("{}", clsbench::report::summary::render(&out.results));
    for j in &out.jobs {
        let (host, wall) = j.record.as_ref().map_or(("-".to_string(), "-".to_string()), |r| {
            (r.host.clone(), format!("{:.1} s", r.wall_s))
        });
        obs.step(&format!(
            "job {:>3} {:<24} {:<9} {host} {wall}",
            j.job.index,
            j.job.id,
            format!("{:?}", j.state).to_lowercase()
        ));
    }
    obs.step(&format!("wrote {}", out.run_dir.display()));
    let unfinished = out.unfinished();
    if unfinished.is_empty() {
        return Ok(());
    }
    let list = |state: JobState| {
        unfinished
            .iter()
            .filter(|j| j.state == state)
            .map(|j| format!("{} ({})", j.job.index, j.job.id))
            .collect::<Vec<_>>()
    };
    let mut parts = Vec::new();
    for (state, name) in [
        (JobState::Running, "still running"),
        (JobState::Missing, "missing"),
        (JobState::Failed, "failed"),
    ] {
        let l = list(state);
        if !l.is_empty() {
            parts.push(format!("{name}: {}", l.join(", ")));
        }
    }
    Err(Error::Partial(format!(
        "partial merge: {} of {} job(s) finished; {}. Run them (`clsbench run SUITE --job N`) and merge again",
        out.jobs.len() - unfinished.len(),
        out.jobs.len(),
        parts.join("; ")
    )))
}

fn describe(args: DescribeArgs) -> Result<()> {
    let suite = Suite::load(&args.suite)?;
    let (dataset, load) = clsbench::data::load(&suite)?;
    let d = clsbench::report::describe::describe(&suite, &dataset, &load)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&d).expect("describe output serialises")
        );
    } else {
        print!("{}", clsbench::report::describe::render(&d));
    }
    Ok(())
}

fn score(args: ScoreArgs, obs: &dyn RunObserver) -> Result<()> {
    if let Some(out) = args.out.as_ref().filter(|o| o.exists() && !o.is_dir()) {
        return Err(Error::bad_input(format!(
            "--out {}: expected a directory (score.json and score.md go into it), but it is a file",
            out.display()
        )));
    }
    let table = clsbench::report::score_input::read(&args.predictions)?;
    // Every probabilities file is read and lined up with the predictions before any statistic.
    let scores = score_probabilities(&table, &args.probs)?;
    let eval = EvaluationSpec {
        resamples: args.resamples,
        confidence: args.confidence,
        rng: match args.rng {
            RngArg::Numpy => ResampleRng::Numpy,
            RngArg::Chacha => ResampleRng::Chacha,
        },
        bootstrap_seed: Some(args.seed),
        ..EvaluationSpec::default()
    };
    if !(args.confidence > 0.0 && args.confidence < 1.0) || args.resamples < 10 {
        return Err(Error::bad_input(
            "--confidence must be in (0, 1) and --resamples at least 10",
        ));
    }
    // Class ids: the sorted distinct labels of gold and predictions (only their identity matters).
    let labels: Vec<String> = table
        .gold
        .iter()
        .chain(table.preds.iter().flat_map(|(_, p)| p.iter()))
        .chain(
            table
                .seed_runs
                .iter()
                .flat_map(|(_, runs)| runs.iter().flat_map(|(_, p)| p.iter())),
        )
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let id: HashMap<&str, usize> = labels.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
    let to_ids = |v: &[String]| v.iter().map(|l| id[l.as_str()]).collect::<Vec<_>>();
    let input = SplitInput {
        split: "scored",
        doc_ids: table.ids.clone(),
        gold: to_ids(&table.gold),
        preds: table.preds.iter().map(|(m, p)| (m.clone(), to_ids(p))).collect(),
        n_classes: labels.len(),
        train_labels: None,
    };
    let mut a = analysis::analyse(input, &eval, args.seed)?;
    // A `seed` column: the seed-aware statistics over every model's seeds (two-level bootstrap,
    // ASO), as `run` gives a suite with several seeds.
    if !table.seed_runs.is_empty() {
        let runs: Vec<analysis::SeedRuns> = table
            .seed_runs
            .iter()
            .map(|(m, runs)| analysis::SeedRuns {
                model: m.clone(),
                runs: runs.iter().map(|(s, p)| (*s, to_ids(p))).collect(),
            })
            .collect();
        a.seeds = analysis::seed_analysis_paired(&a.gold, &runs, labels.len(), &eval, args.seed)?;
        if a.seeds.is_none() {
            obs.step(
                "the seed column gives every model one seed: no seed-aware intervals and no ASO \
                 (both need at least two seeds of a model)",
            );
        }
    }
    let cfg = clsbench_stats::bootstrap::BootstrapConfig {
        resamples: eval.resamples,
        confidence: eval.confidence,
        seed: args.seed,
        rng: eval.rng,
    };
    clsbench::calibration_run::attach(&mut a, &scores, &cfg, args.calibration_seed)?;
    let md = clsbench::report::score_input::render(&a, &labels, &eval);
    println!("{md}");
    if let Some(dir) = &args.out {
        let title = format!("{} ({} documents)", args.predictions.display(), a.n);
        if let Some(plot) = clsbench::report::plots::reliability::Reliability::from_split(&title, &a) {
            clsbench::report::plots::style::save(dir, "reliability", &plot)?;
        }
        clsbench::fsutil::write_json_atomic(
            &dir.join("score.json"),
            &serde_json::json!({"labels": labels, "evaluation": eval, "analysis": a}),
        )?;
        clsbench::fsutil::write_atomic(&dir.join("score.md"), md.as_bytes())?;
        obs.step(&format!("wrote {}", dir.display()));
    }
    Ok(())
}

/// Each model's calibration input for `score`: its `--probs` file (every class) if given, else its
/// `prob` column (the predicted class), else none.
fn score_probabilities(
    table: &clsbench::report::score_input::ScoreTable,
    files: &[std::path::PathBuf],
) -> Result<Vec<Option<clsbench::calibration_run::SplitScores>>> {
    use clsbench::calibration_run::{align, SplitScores};
    let models: Vec<&str> = table.preds.iter().map(|(m, _)| m.as_str()).collect();
    let mut by_model: HashMap<usize, (String, clsbench::report::probabilities::ProbabilitiesFile)> = HashMap::new();
    for path in files {
        let origin = path.display().to_string();
        let file = clsbench::report::probabilities::read(path)?;
        let k = match file.model.as_deref() {
            Some(m) => models.iter().position(|x| *x == m).ok_or_else(|| {
                Error::bad_input(format!(
                    "--probs {origin}: its model {m:?} (metadata `model`) is not one of the predictions' models ({})",
                    models.join(", ")
                ))
            })?,
            None if models.len() == 1 => 0,
            None => {
                return Err(Error::bad_input(format!(
                    "--probs {origin}: the file names no model (metadata `model`) and the predictions hold {} models",
                    models.len()
                )))
            }
        };
        if by_model.insert(k, (origin.clone(), file)).is_some() {
            return Err(Error::bad_input(format!(
                "--probs {origin}: a second probabilities file for model {:?}",
                models[k]
            )));
        }
    }
    let mut out = Vec::with_capacity(models.len());
    for (k, (model, pred)) in table.preds.iter().enumerate() {
        let Some((origin, file)) = by_model.get(&k) else {
            out.push(table.probs[k].clone().map(SplitScores::Confidence));
            continue;
        };
        let class: HashMap<&str, usize> = file.classes.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
        let to_class = |labels: &[String], what: &str| -> Result<Vec<usize>> {
            labels
                .iter()
                .zip(&table.ids)
                .map(|(l, id)| {
                    class.get(l.as_str()).copied().ok_or_else(|| {
                        Error::bad_input(format!(
                            "--probs {origin}: document {id:?}: the {what} label {l:?} of model {model:?} is not one of the file's {} classes (metadata `classes`)",
                            file.classes.len()
                        ))
                    })
                })
                .collect()
        };
        let (gold, pred) = (to_class(&table.gold, "gold")?, to_class(pred, "predicted")?);
        let log_probs = align(file, &format!("--probs {origin}"), &table.ids, &pred)?;
        out.push(Some(SplitScores::LogProbs { log_probs, gold, pred }));
    }
    Ok(out)
}

fn verify(args: VerifyArgs, obs: &dyn RunObserver) -> Result<()> {
    use clsbench::report::{claims, promote::results_file, results::Results};
    let claims_file = claims::ClaimsFile::load(&args.claims)?;
    let path = results_file(&args.run_dir);
    let results = Results::read(&path)?;
    let report = claims::verify(&claims_file, &results, &path)?;
    let out = args
        .out
        .unwrap_or_else(|| path.parent().map(|p| p.to_path_buf()).unwrap_or_default());
    claims::render::write(&out, &report)?;
    println!("{}", claims::render::render(&report));
    obs.step(&format!(
        "wrote {} and {}",
        out.join("verdicts.md").display(),
        out.join("verdicts.json").display()
    ));
    let contradicted = report.count(claims::Verdict::Contradicted);
    if args.strict && contradicted > 0 {
        return Err(Error::Failed(format!(
            "{contradicted} claim(s) contradicted (--strict)"
        )));
    }
    Ok(())
}

fn compare(args: CompareArgs, obs: &dyn RunObserver) -> Result<()> {
    use clsbench::report::{compare, promote, results::Results};
    let (base_path, new_path) = match (args.reference, args.runs.as_slice()) {
        (false, [base, new]) => (promote::results_file(base), promote::results_file(new)),
        (true, [new]) => {
            let new_path = promote::results_file(new);
            let new = Results::read(&new_path)?;
            let dir = promote::reference_dir(&args.results_root, &new.hardware.slug, &new.suite.name);
            if !dir.join("results.json").is_file() {
                return Err(Error::bad_input(format!(
                    "no committed reference for suite {:?} on hardware {:?} at {}; make one with `clsbench promote {}`",
                    new.suite.name,
                    new.hardware.slug,
                    dir.display(),
                    new_path.parent().unwrap_or(&new_path).display()
                )));
            }
            (dir.join("results.json"), new_path)
        }
        (false, _) => {
            return Err(Error::bad_input(
                "compare needs BASE_RUN and NEW_RUN (or --reference NEW_RUN)",
            ))
        }
        (true, _) => return Err(Error::bad_input("with --reference, give only NEW_RUN")),
    };
    let base = Results::read(&base_path)?;
    let new = Results::read(&new_path)?;
    let opts = compare::CompareOptions {
        quality_margin: args.quality_margin,
        speed_threshold: args.speed_threshold,
        allow_missing: args.allow_missing,
    };
    let c = compare::compare(&base, &base_path, &new, &new_path, &opts)?;
    let out = args
        .out
        .unwrap_or_else(|| new_path.parent().map(|p| p.to_path_buf()).unwrap_or_default());
    compare::render::write(&out, &c)?;
    println!("{}", compare::render::render(&c));
    obs.step(&format!(
        "wrote {} and {}",
        out.join("compare.md").display(),
        out.join("compare.json").display()
    ));
    if c.has_regression() {
        return Err(Error::Failed(format!(
            "{} regression(s) against {}",
            c.regressions.len(),
            base_path.display()
        )));
    }
    Ok(())
}

fn promote(args: PromoteArgs, obs: &dyn RunObserver) -> Result<()> {
    let dest = clsbench::report::promote::promote(&args.run_dir, &args.results_root, args.force)?;
    println!("{}", dest.display());
    obs.step(&format!(
        "reference written to {}; commit it with `git add {}`",
        dest.display(),
        dest.display()
    ));
    Ok(())
}
