//! One function per subcommand: turn typed flags into library calls and print the outcome.

use crate::cli::{Cli, Command, DescribeArgs, ForwardArgs, ReportArgs, RngArg, RunArgs, ScoreArgs};
use clsbench::analysis::{self, SplitInput};
use clsbench::error::{Error, Result};
use clsbench::suite::{EvaluationSpec, ResampleRng, Suite};
use std::collections::{BTreeSet, HashMap};

pub fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(args) => run(args),
        Command::Describe(args) => describe(args),
        Command::Score(args) => score(args),
        Command::Forward(args) => forward(args),
        Command::Report(args) => report(args),
    }
}

fn forward(args: ForwardArgs) -> Result<()> {
    let mut texts = args.texts;
    if let Some(path) = &args.file {
        let content = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        texts.extend(content.lines().filter(|l| !l.trim().is_empty()).map(str::to_string));
    }
    let value = clsbench::models::forward_json(&args.model, &texts)?;
    println!("{}", serde_json::to_string_pretty(&value).expect("JSON value serialises"));
    Ok(())
}

fn report(args: ReportArgs) -> Result<()> {
    let out = clsbench::report::regenerate::regenerate(&args.run)?;
    println!("{}", clsbench::report::summary::render(&out.results));
    for (plot, why) in &out.plots.skipped {
        eprintln!("clsbench: plot {} not drawn: {why}", plot.stem);
    }
    eprintln!("clsbench: rewrote summary.md, metrics tables and {} plots in {}", out.plots.written.len(), out.run_dir.display());
    Ok(())
}

fn run(args: RunArgs) -> Result<()> {
    let opts = clsbench::pipeline::RunOptions {
        run_id: args.run_id,
        output_dir: args.output_dir,
        force: args.force,
        only: args.only,
        no_perf: args.no_perf,
    };
    let outcome = clsbench::pipeline::run(&args.suite, &opts)?;
    let summary = clsbench::report::summary::render(&outcome.results);
    println!("{summary}");
    eprintln!("clsbench: wrote {}", outcome.run_dir.display());
    match outcome.first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn describe(args: DescribeArgs) -> Result<()> {
    let suite = Suite::load(&args.suite)?;
    let (dataset, load) = clsbench::data::load(&suite)?;
    let d = clsbench::report::describe::describe(&suite, &dataset, &load)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&d).expect("describe output serialises"));
    } else {
        print!("{}", clsbench::report::describe::render(&d));
    }
    Ok(())
}

fn score(args: ScoreArgs) -> Result<()> {
    let table = clsbench::report::score_input::read(&args.predictions)?;
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
        return Err(Error::bad_input("--confidence must be in (0, 1) and --resamples at least 10"));
    }
    // Class ids: the sorted distinct labels of gold and predictions (only their identity matters).
    let labels: Vec<String> =
        table.gold.iter().chain(table.preds.iter().flat_map(|(_, p)| p.iter())).cloned().collect::<BTreeSet<_>>().into_iter().collect();
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
    let a = analysis::analyse(input, &eval, args.seed)?;
    let md = clsbench::report::score_input::render(&a, &labels, &eval);
    println!("{md}");
    if let Some(dir) = &args.out {
        clsbench::fsutil::write_json_atomic(&dir.join("score.json"), &serde_json::json!({"labels": labels, "evaluation": eval, "analysis": a}))?;
        clsbench::fsutil::write_atomic(&dir.join("score.md"), md.as_bytes())?;
        eprintln!("clsbench: wrote {}", dir.display());
    }
    Ok(())
}
