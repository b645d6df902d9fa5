//! A run directory's predictions files read back, each row checked against the dataset and
//! lined up with its documents, then analysed split by split (`crate::analysis`, which stays
//! pure: class ids in, statistics out). Called by `pipeline::assemble` for `run`, `run --job`
//! and `merge`.

use crate::analysis::{analyse, seed_analysis_paired, seed_analysis_unpaired, SeedRuns, SplitAnalysis, SplitInput};
use crate::data::{Dataset, Example};
use crate::error::{Error, Result};
use crate::pipeline::Prepared;
use crate::report::predictions;
use crate::report::results::{ModelResult, ModelStatus};
use crate::suite::SplitName;
use clsbench_stats::metrics;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One seed's predictions file, read: (seed, path, rows).
type LoadedRun = (u64, PathBuf, Vec<predictions::PredictionRow>);

/// Analyse every evaluated split of a run from the predictions files of its models' first
/// seeds (`models`) and further seeds (`seed_runs`).
pub fn analyse_run(
    prep: &Prepared,
    models: &[ModelResult],
    seed_runs: &[ModelResult],
    run_dir: &Path,
) -> Result<Vec<SplitAnalysis>> {
    let (suite, dataset) = (&prep.suite, &prep.dataset);
    let bootstrap_seed = suite.evaluation.bootstrap_seed(suite.seed);
    let train_labels: Vec<usize> = dataset.train.iter().map(|e| e.label).collect();
    let load = |m: &ModelResult| -> Result<(PathBuf, Vec<predictions::PredictionRow>)> {
        let path = run_dir
            .join("models")
            .join(m.dir_name())
            .join(m.predictions.as_deref().unwrap_or("predictions.csv"));
        let rows = predictions::read(&path)?;
        Ok((path, rows))
    };
    let mut loaded = Vec::new();
    for m in models.iter().filter(|m| m.status == ModelStatus::Ok) {
        let (path, rows) = load(m)?;
        loaded.push((m.id.clone(), path, rows));
    }
    // Every finished seed of every finished model, first seed first.
    let mut seeded: Vec<(String, Vec<LoadedRun>)> = Vec::new();
    if suite.has_several_seeds() {
        for m in models.iter().filter(|m| m.status == ModelStatus::Ok) {
            let mut runs = Vec::new();
            for r in std::iter::once(m).chain(seed_runs.iter().filter(|r| r.id == m.id && r.status == ModelStatus::Ok))
            {
                let (path, rows) = load(r)?;
                runs.push((r.seed.unwrap_or(suite.seed), path, rows));
            }
            seeded.push((m.id.clone(), runs));
        }
    }
    let mut out = Vec::new();
    for &split in &suite.evaluation.splits {
        let examples = split_examples(dataset, split);
        if examples.is_empty() {
            continue;
        }
        let mut preds = Vec::new();
        for (id, path, rows) in &loaded {
            preds.push((id.clone(), aligned_predictions(dataset, split, path, rows)?));
        }
        let input = SplitInput {
            split: split.as_str(),
            doc_ids: examples.iter().map(|e| e.id.clone()).collect(),
            gold: examples.iter().map(|e| e.label).collect(),
            preds,
            n_classes: dataset.labels.len(),
            train_labels: Some(&train_labels),
        };
        let mut analysis = analyse(input, &suite.evaluation, bootstrap_seed)?;
        if !seeded.is_empty() {
            analysis.seeds = if suite.seeds_redraw_split() {
                let mut scores = Vec::new();
                for (id, runs) in &seeded {
                    let mut per_seed = Vec::new();
                    for (seed, path, rows) in runs {
                        let d = prep.dataset_for(*seed);
                        let pred = aligned_predictions(d, split, path, rows)?;
                        let gold: Vec<usize> = split_examples(d, split).iter().map(|e| e.label).collect();
                        let m = metrics::compute(&gold, &pred, d.labels.len())?;
                        per_seed.push((*seed, m.accuracy, m.macro_f1));
                    }
                    scores.push((id.clone(), per_seed));
                }
                seed_analysis_unpaired(&scores, dataset.labels.len(), &suite.evaluation, bootstrap_seed)?
            } else {
                let mut runs_of = Vec::new();
                for (id, runs) in &seeded {
                    let mut per_seed = Vec::new();
                    for (seed, path, rows) in runs {
                        per_seed.push((*seed, aligned_predictions(dataset, split, path, rows)?));
                    }
                    runs_of.push(SeedRuns {
                        model: id.clone(),
                        runs: per_seed,
                    });
                }
                seed_analysis_paired(
                    &analysis.gold,
                    &runs_of,
                    dataset.labels.len(),
                    &suite.evaluation,
                    bootstrap_seed,
                )?
            };
        }
        out.push(analysis);
    }
    Ok(out)
}

fn split_examples(dataset: &Dataset, split: SplitName) -> &[Example] {
    match split {
        SplitName::Val => &dataset.val,
        SplitName::Test => &dataset.test,
        SplitName::Train => &dataset.train,
    }
}

/// A predictions file's classes for `split`, in the dataset's document order, each row checked
/// against the dataset (id present, same gold, a known class).
fn aligned_predictions(
    dataset: &Dataset,
    split: SplitName,
    path: &Path,
    rows: &[predictions::PredictionRow],
) -> Result<Vec<usize>> {
    let label_id: HashMap<&str, usize> = dataset
        .labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let by_id: HashMap<&str, &predictions::PredictionRow> = rows
        .iter()
        .filter(|r| r.split == split.as_str())
        .map(|r| (r.id.as_str(), r))
        .collect();
    let examples = split_examples(dataset, split);
    let mut pred = Vec::with_capacity(examples.len());
    for e in examples {
        let row = by_id.get(e.id.as_str()).ok_or_else(|| {
            Error::bad_input(format!(
                "{}: no {} prediction for id {:?}; re-run with --force",
                path.display(),
                split.as_str(),
                e.id
            ))
        })?;
        if row.gold != dataset.labels[e.label] {
            return Err(Error::bad_input(format!(
                "{}: id {:?} has gold {:?} but the dataset says {:?}; the data changed: re-run with --force",
                path.display(),
                e.id,
                row.gold,
                dataset.labels[e.label]
            )));
        }
        let p = label_id.get(row.pred.as_str()).copied().ok_or_else(|| {
            Error::bad_input(format!(
                "{}: id {:?}: predicted label {:?} is not a class",
                path.display(),
                e.id,
                row.pred
            ))
        })?;
        pred.push(p);
    }
    Ok(pred)
}
