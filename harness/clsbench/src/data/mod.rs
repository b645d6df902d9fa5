//! Data: read rows (CSV or Hub parquet), merge and filter labels, split into
//! train/val/test, and record the sha256 of every input file.

pub use clsbench_models::data::{Dataset, Example, InputFile};

pub mod csv;
pub mod hub;
pub mod labels;
pub mod split;

use crate::error::{Error, Result};
use crate::suite::{DatasetSpec, SplitSpec, Suite};
use labels::LabelReport;
use split::Assign;
use std::path::Path;

/// A row as read, before label processing. `index` is the row's 0-based position in its file
/// (what canonical index files refer to); `line` is where it starts, for error messages.
#[derive(Debug, Clone)]
pub struct RawRow {
    pub index: usize,
    pub id: String,
    pub text: String,
    pub label: String,
    pub line: usize,
}

/// What loading did, for `describe` and the manifest.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct LoadReport {
    pub rows_read: usize,
    pub labels: LabelReport,
}

fn suite_has_no_id_column(spec: &DatasetSpec) -> bool {
    match spec {
        DatasetSpec::Csv { id_column, .. } | DatasetSpec::CsvSplits { id_column, .. } => id_column.is_none(),
        DatasetSpec::Hub { .. } => true,
    }
}

/// Read, merge, filter and split the suite's dataset.
pub fn load(suite: &Suite) -> Result<(Dataset, LoadReport)> {
    let mut inputs = Vec::new();
    let mut record = |role: &str, path: &Path| -> Result<()> {
        inputs.push(InputFile {
            role: role.to_string(),
            path: path.display().to_string(),
            sha256: crate::fsutil::sha256_file(path)?,
        });
        Ok(())
    };
    // `train_rows` are the rows index files and stratified splits refer to; `test_rows` come
    // from the dataset's own test split when it has one.
    let (origin, train_rows, test_rows) = match &suite.dataset {
        DatasetSpec::Csv {
            path,
            text_column,
            label_column,
            id_column,
        } => {
            let cols = csv::Columns {
                text: text_column,
                label: label_column,
                id: id_column.as_deref(),
            };
            record("data", path)?;
            (path.display().to_string(), csv::read_rows(path, &cols)?, None)
        }
        DatasetSpec::CsvSplits {
            train,
            test,
            text_column,
            label_column,
            id_column,
        } => {
            let cols = csv::Columns {
                text: text_column,
                label: label_column,
                id: id_column.as_deref(),
            };
            record("train", train)?;
            record("test", test)?;
            (
                train.display().to_string(),
                csv::read_rows(train, &cols)?,
                Some(csv::read_rows(test, &cols)?),
            )
        }
        DatasetSpec::Hub {
            repo,
            revision,
            text_column,
            label_column,
            local_dir,
        } => {
            let files = hub::fetch_parquet_files(repo, revision, local_dir.as_deref())?;
            let train_files = hub::split_files(&files, "train");
            let test_files = hub::split_files(&files, "test");
            if train_files.is_empty() {
                return Err(Error::bad_input(format!(
                    "dataset {repo:?}: no parquet files for the train split"
                )));
            }
            for f in &train_files {
                record("train", f)?;
            }
            for f in &test_files {
                record("test", f)?;
            }
            let test = if test_files.is_empty() {
                None
            } else {
                Some(hub::read_rows(&test_files, text_column, label_column)?)
            };
            (
                format!("hub dataset {repo}"),
                hub::read_rows(&train_files, text_column, label_column)?,
                test,
            )
        }
    };
    // Row-number ids restart in each file: name them after their split so they stay unique.
    let (mut train_rows, mut test_rows) = (train_rows, test_rows);
    if suite_has_no_id_column(&suite.dataset) && test_rows.is_some() {
        for r in train_rows.iter_mut() {
            r.id = format!("train-{}", r.index);
        }
        for r in test_rows.iter_mut().flatten() {
            r.id = format!("test-{}", r.index);
        }
    }
    let mut report = LoadReport {
        rows_read: train_rows.len() + test_rows.as_ref().map_or(0, Vec::len),
        ..Default::default()
    };

    // Labels: merge, then decide classes over all rows (train and test together, as the seed's
    // MIN_CLASS_COUNT is on total examples).
    let merge = suite
        .labels
        .merge_map
        .as_deref()
        .map(labels::read_merge_map)
        .transpose()?;
    if let Some(p) = &suite.labels.merge_map {
        record("merge_map", p)?;
    }
    let list = suite
        .labels
        .label_list
        .as_deref()
        .map(labels::read_label_list)
        .transpose()?;
    if let Some(p) = &suite.labels.label_list {
        record("label_list", p)?;
    }
    let all: Vec<&RawRow> = train_rows.iter().chain(test_rows.iter().flatten()).collect();
    report.labels.raw_classes = all
        .iter()
        .map(|r| r.label.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len();
    let merged: Vec<String> = all
        .iter()
        .map(|r| match merge.as_ref().and_then(|m| m.get(&r.label)) {
            Some(to) => {
                report.labels.rows_merged += 1;
                to.clone()
            }
            None => r.label.clone(),
        })
        .collect();
    let (classes, ids) = labels::decide_classes(
        &merged,
        list.as_deref(),
        suite.labels.min_count,
        suite.labels.drop_unlisted,
        &origin,
        &mut report.labels,
    )?;
    let (train_ids, test_ids) = ids.split_at(train_rows.len());
    let example = |r: &RawRow, label: usize| Example {
        id: r.id.clone(),
        text: r.text.clone(),
        label,
    };

    let (mut train, mut val, mut test) = (Vec::new(), Vec::new(), Vec::new());
    match &suite.split {
        SplitSpec::Stratified { val: fv, test: ft, .. } => {
            if test_rows.is_some() {
                return Err(Error::bad_input(
                    "[split] method = \"stratified\" splits one file; this dataset has its own test split: use \
                     method = \"train-test\" or \"indices\"",
                ));
            }
            let kept: Vec<(&RawRow, usize)> = train_rows
                .iter()
                .zip(train_ids)
                .filter_map(|(r, id)| id.map(|id| (r, id)))
                .collect();
            let labels: Vec<usize> = kept.iter().map(|(_, l)| *l).collect();
            let assign = split::stratified(&labels, classes.len(), *fv, *ft, suite.seed, &classes)?;
            for ((r, l), a) in kept.iter().zip(assign) {
                match a {
                    Assign::Train => train.push(example(r, *l)),
                    Assign::Val => val.push(example(r, *l)),
                    Assign::Test => test.push(example(r, *l)),
                }
            }
        }
        SplitSpec::TrainTest { val: fv } => {
            let test_rows = test_rows.as_ref().ok_or_else(|| {
                Error::bad_input(
                    "[split] method = \"train-test\" needs a dataset with its own test split (csv-splits or hub)",
                )
            })?;
            let kept: Vec<(&RawRow, usize)> = train_rows
                .iter()
                .zip(train_ids)
                .filter_map(|(r, id)| id.map(|id| (r, id)))
                .collect();
            let labels: Vec<usize> = kept.iter().map(|(_, l)| *l).collect();
            let assign = split::stratified(&labels, classes.len(), *fv, 0.0, suite.seed, &classes)?;
            for ((r, l), a) in kept.iter().zip(assign) {
                if a == Assign::Val {
                    val.push(example(r, *l))
                } else {
                    train.push(example(r, *l))
                }
            }
            test.extend(
                test_rows
                    .iter()
                    .zip(test_ids)
                    .filter_map(|(r, id)| id.map(|id| example(r, id))),
            );
        }
        SplitSpec::Indices {
            train_indices,
            val_indices,
        } => {
            record("train_indices", train_indices)?;
            record("val_indices", val_indices)?;
            let tr = split::read_indices(train_indices, train_rows.len())?;
            let va = split::read_indices(val_indices, train_rows.len())?;
            let mut seen = vec![false; train_rows.len()];
            for (file, idx) in [(train_indices, &tr), (val_indices, &va)] {
                for &i in idx {
                    if std::mem::replace(&mut seen[i], true) {
                        return Err(Error::bad_input(format!(
                            "{}: row {i} is listed twice (or in both index files)",
                            file.display()
                        )));
                    }
                }
            }
            for (file, idx, out) in [(train_indices, &tr, &mut train), (val_indices, &va, &mut val)] {
                for &i in idx {
                    let l = train_ids[i].ok_or_else(|| {
                        Error::bad_input(format!(
                            "{}: row {i} has label {:?}, which label processing dropped",
                            file.display(),
                            train_rows[i].label
                        ))
                    })?;
                    out.push(example(&train_rows[i], l));
                }
            }
            if let Some(test_rows) = &test_rows {
                test.extend(
                    test_rows
                        .iter()
                        .zip(test_ids)
                        .filter_map(|(r, id)| id.map(|id| example(r, id))),
                );
            }
        }
    }
    // Ids must be unique across splits: predictions files and paired statistics key on them.
    let mut ids_seen = std::collections::HashSet::new();
    for e in train.iter().chain(&val).chain(&test) {
        if !ids_seen.insert(e.id.as_str()) {
            return Err(Error::bad_input(format!(
                "{origin}: id {:?} occurs twice; ids must be unique",
                e.id
            )));
        }
    }
    // A classifier needs two classes and something to train on; say so before any model
    // trains (an empty file, `min_count` above every class, a one-class label list).
    if classes.len() < 2 || train.is_empty() {
        return Err(Error::bad_input(format!(
            "{origin}: nothing to classify after label processing: {} class(es), {} training row(s); \
             a classifier needs at least 2 classes with training rows (check the file, `min_count` and the label list)",
            classes.len(),
            train.len()
        )));
    }
    Ok((
        Dataset {
            labels: classes,
            train,
            val,
            test,
            inputs,
        },
        report,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[test]
    fn issues_mini_suite_loads_like_the_seed_readme_says() {
        // ../shared/seed/README.md: merge map + classes with >= 5 examples -> 43 classes,
        // 2,542 rows (1,779 / 252 / 511 with the seed's own per-class 70/10/20 split).
        let suite = Suite::load(&repo().join("suites/cfpb-issues-mini.toml")).unwrap();
        let (d, report) = load(&suite).unwrap();
        assert_eq!(report.rows_read, 2581);
        assert_eq!(d.labels.len(), 43);
        assert_eq!(d.train.len() + d.val.len() + d.test.len(), 2542);
        // Per-class rounding differs from numpy's split by a few rows at most.
        assert!((d.val.len() as i64 - 252).abs() <= 10, "val {}", d.val.len());
        assert!((d.test.len() as i64 - 511).abs() <= 10, "test {}", d.test.len());
        assert!(d.train_counts().iter().all(|&c| c >= 1), "every class in train");
        assert_eq!(
            d.inputs[0].sha256,
            "e831539745dabbc3e06d8bf9acf8d2805481e7366f077df64db436c8cf2dcd89"
        );
        let mut sorted = d.labels.clone();
        sorted.sort();
        assert_eq!(sorted, d.labels, "class ids follow Python sorted() order");
    }

    #[test]
    fn hub_layout_with_index_files_and_label_list() {
        let text = r#"
name = "hub"
seed = 1
[dataset]
source = "hub"
repo = "determined-ai/consumer_complaints_medium"
text_column = "Consumer Complaint"
label_column = "Issue"
local_dir = "hub-mini"
[labels]
label_list = "hub-mini/label_list.json"
[split]
method = "indices"
train_indices = "hub-mini/train_indices.json"
val_indices = "hub-mini/val_indices.json"
[[models]]
id = "t"
kind = "tfidf-logreg"
"#;
        let dir = repo().join("fixtures");
        let path = dir.join("hub-suite.toml");
        let mut suite = Suite::parse(text, &path).unwrap();
        // Same resolution as Suite::load, without writing into fixtures/.
        if let DatasetSpec::Hub { local_dir, .. } = &mut suite.dataset {
            *local_dir = Some(dir.join("hub-mini"));
        }
        suite.labels.label_list = Some(dir.join("hub-mini/label_list.json"));
        suite.split = SplitSpec::Indices {
            train_indices: dir.join("hub-mini/train_indices.json"),
            val_indices: dir.join("hub-mini/val_indices.json"),
        };
        let (d, _) = load(&suite).unwrap();
        assert_eq!((d.train.len(), d.val.len(), d.test.len()), (48, 12, 20));
        assert_eq!(d.labels.len(), 3);
        assert_eq!(d.val[0].id, "train-0", "index files refer to train rows in file order");
        assert_eq!(d.test[0].id, "test-0");
    }
}
