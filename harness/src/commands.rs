//! One function per subcommand: turn typed flags into library calls and print the outcome.

use crate::cli::{
    Cli, Command, CompareArgs, DescribeArgs, ForwardArgs, PromoteArgs, ReportArgs, RngArg, RunArgs, ScoreArgs,
    VerifyArgs,
};
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
        Command::Verify(args) => verify(args),
        Command::Compare(args) => compare(args),
        Command::Promote(args) => promote(args),
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
    println!(
        "{}",
        serde_json::to_string_pretty(&value).expect("JSON value serialises")
    );
    Ok(())
}

fn report(args: ReportArgs) -> Result<()> {
    let out = clsbench::report::regenerate::regenerate(&args.run)?;
    println!("{}", clsbench::report::summary::render(&out.results));
    for (plot, why) in &out.plots.skipped {
        eprintln!("clsbench: plot {} not drawn: {why}", plot.stem);
    }
    eprintln!(
        "clsbench: rewrote summary.md, metrics tables and {} plots in {}",
        out.plots.written.len(),
        out.run_dir.display()
    );
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
        println!(
            "{}",
            serde_json::to_string_pretty(&d).expect("describe output serialises")
        );
    } else {
        print!("{}", clsbench::report::describe::render(&d));
    }
    Ok(())
}

fn score(args: ScoreArgs) -> Result<()> {
    if let Some(out) = args.out.as_ref().filter(|o| o.exists() && !o.is_dir()) {
        return Err(Error::bad_input(format!(
            "--out {}: expected a directory (score.json and score.md go into it), but it is a file",
            out.display()
        )));
    }
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
        return Err(Error::bad_input(
            "--confidence must be in (0, 1) and --resamples at least 10",
        ));
    }
    // Class ids: the sorted distinct labels of gold and predictions (only their identity matters).
    let labels: Vec<String> = table
        .gold
        .iter()
        .chain(table.preds.iter().flat_map(|(_, p)| p.iter()))
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
    let a = analysis::analyse(input, &eval, args.seed)?;
    let md = clsbench::report::score_input::render(&a, &labels, &eval);
    println!("{md}");
    if let Some(dir) = &args.out {
        clsbench::fsutil::write_json_atomic(
            &dir.join("score.json"),
            &serde_json::json!({"labels": labels, "evaluation": eval, "analysis": a}),
        )?;
        clsbench::fsutil::write_atomic(&dir.join("score.md"), md.as_bytes())?;
        eprintln!("clsbench: wrote {}", dir.display());
    }
    Ok(())
}

fn verify(args: VerifyArgs) -> Result<()> {
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
    eprintln!(
        "clsbench: wrote {} and {}",
        out.join("verdicts.md").display(),
        out.join("verdicts.json").display()
    );
    let contradicted = report.count(claims::Verdict::Contradicted);
    if args.strict && contradicted > 0 {
        return Err(Error::Failed(format!(
            "{contradicted} claim(s) contradicted (--strict)"
        )));
    }
    Ok(())
}

fn compare(args: CompareArgs) -> Result<()> {
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
    eprintln!(
        "clsbench: wrote {} and {}",
        out.join("compare.md").display(),
        out.join("compare.json").display()
    );
    if c.has_regression() {
        return Err(Error::Failed(format!(
            "{} regression(s) against {}",
            c.regressions.len(),
            base_path.display()
        )));
    }
    Ok(())
}

fn promote(args: PromoteArgs) -> Result<()> {
    let dest = clsbench::report::promote::promote(&args.run_dir, &args.results_root, args.force)?;
    println!("{}", dest.display());
    eprintln!(
        "clsbench: reference written to {}; commit it with `git add {}`",
        dest.display(),
        dest.display()
    );
    Ok(())
}
