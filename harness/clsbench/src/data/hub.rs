//! Hub datasets: the parquet files of a Hugging Face dataset repo, fetched with hf-hub (its
//! cache honoured), or read from a local directory. Rows of a split are read in file order,
//! files in name order, which is the order the Hub's `datasets` library yields them: the seed's
//! index files refer to that order.

use super::RawRow;
use crate::error::{Error, Result};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use std::path::{Path, PathBuf};

/// Parquet files of `split`, sorted by name: files whose path has a component or file-name
/// prefix equal to the split name (`train/0000.parquet`, `default/train/...`,
/// `data/train-00000-of-00001.parquet`).
pub fn split_files(all: &[PathBuf], split: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = all
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .filter(|p| {
            p.components().any(|c| c.as_os_str() == split)
                || p.file_name()
                    .and_then(|f| f.to_str())
                    .is_some_and(|f| f.starts_with(&format!("{split}-")) || f.starts_with(&format!("{split}.")))
        })
        .cloned()
        .collect();
    files.sort();
    files
}

/// All files under `dir`, recursively (relative order is fixed by sorting later).
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let entry = entry.map_err(|e| Error::io(&d, e))?;
            let path = entry.path();
            // Follow symlinks: the hf-hub cache's snapshot files are links to blobs.
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    Ok(out)
}

/// Local paths of the repo's parquet files: from `local_dir` when given, else from the Hub
/// (downloading into the hf-hub cache), else, when the Hub is unreachable, from the cache.
pub fn fetch_parquet_files(repo: &str, revision: &str, local_dir: Option<&Path>) -> Result<Vec<PathBuf>> {
    if let Some(dir) = local_dir {
        if !dir.is_dir() {
            return Err(Error::bad_input(format!(
                "dataset.local_dir {}: no such directory",
                dir.display()
            )));
        }
        return files_under(dir);
    }
    let hub_repo = hf_hub::Repo::with_revision(repo.to_string(), hf_hub::RepoType::Dataset, revision.to_string());
    let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1");
    let online = if offline {
        Err(Online::Offline)
    } else {
        download_all(&hub_repo)
    };
    match online {
        Ok(files) => Ok(files),
        Err(why) => {
            // Offline: use whatever a previous run left in the cache.
            let cache = hf_hub::Cache::from_env();
            let snapshots = cache.path().join(hub_repo.folder_name()).join("snapshots");
            let cached = if snapshots.is_dir() {
                files_under(&snapshots)?
            } else {
                Vec::new()
            };
            if cached.iter().any(|p| p.extension().is_some_and(|e| e == "parquet")) {
                return Ok(cached);
            }
            let message = |why: &dyn std::fmt::Display| {
                format!(
                    "dataset {repo:?} (revision {revision:?}): cannot reach the Hugging Face Hub ({why}) and nothing \
                     is cached under {}. Connect to the internet once, or download the parquet files yourself and set \
                     `dataset.local_dir` to their directory.",
                    snapshots.display()
                )
            };
            Err(match why {
                Online::Offline => Error::bad_input(message(&"HF_HUB_OFFLINE=1")),
                Online::NoParquet => Error::bad_input(format!(
                    "dataset {repo:?} (revision {revision:?}): the repo has no parquet files at this revision"
                )),
                Online::Failed { file, source } => Error::Hub {
                    repo: repo.to_string(),
                    message: message(&match file {
                        Some(f) => format!("{f}: {source}"),
                        None => source.to_string(),
                    }),
                    source: Box::new(source),
                },
            })
        }
    }
}

/// Why the parquet files did not come from the Hub.
enum Online {
    /// `HF_HUB_OFFLINE=1`: not asked.
    Offline,
    /// The Hub failed or refused, on `file` when it was a download.
    Failed {
        file: Option<String>,
        source: hf_hub::api::sync::ApiError,
    },
    /// The repo has no parquet files at the revision.
    NoParquet,
}

fn download_all(repo: &hf_hub::Repo) -> std::result::Result<Vec<PathBuf>, Online> {
    fn failed(file: Option<&str>) -> impl FnOnce(hf_hub::api::sync::ApiError) -> Online {
        let file = file.map(str::to_string);
        move |source| Online::Failed { file, source }
    }
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(false)
        .build()
        .map_err(failed(None))?;
    let api_repo = api.repo(repo.clone());
    let info = api_repo.info().map_err(failed(None))?;
    let mut out = Vec::new();
    for s in info.siblings.iter().filter(|s| s.rfilename.ends_with(".parquet")) {
        let local = api_repo.get(&s.rfilename).map_err(failed(Some(&s.rfilename)))?;
        // Keep the repo path (its directory names the split); hf-hub gives the snapshot path,
        // which ends with the repo path.
        out.push(local);
    }
    if out.is_empty() {
        return Err(Online::NoParquet);
    }
    Ok(out)
}

/// Read `text_column` and `label_column` of every row of the given parquet files.
pub fn read_rows(files: &[PathBuf], text_column: &str, label_column: &str) -> Result<Vec<RawRow>> {
    let mut rows = Vec::new();
    for path in files {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let reader = SerializedFileReader::new(file)
            .map_err(|e| Error::bad_input(format!("{}: not a readable parquet file: {e}", path.display())))?;
        let schema = reader.metadata().file_metadata().schema_descr();
        let names: Vec<String> = schema.columns().iter().map(|c| c.name().to_string()).collect();
        for want in [text_column, label_column] {
            if !names.iter().any(|n| n == want) {
                return Err(Error::bad_input(format!(
                    "{}: no column {want:?}; the file has {}",
                    path.display(),
                    names.join(", ")
                )));
            }
        }
        let iter = reader
            .get_row_iter(None)
            .map_err(|e| Error::bad_input(format!("{}: cannot read rows: {e}", path.display())))?;
        for (row_in_file, row) in iter.enumerate() {
            let row = row.map_err(|e| Error::bad_input(format!("{}: row {row_in_file}: {e}", path.display())))?;
            let mut text = None;
            let mut label = None;
            for (name, field) in row.get_column_iter() {
                if name == text_column {
                    text = Some(field_to_string(field));
                } else if name == label_column {
                    label = Some(field_to_string(field));
                }
            }
            let index = rows.len();
            let at = || format!("{}: row {row_in_file}", path.display());
            let text = text.flatten().filter(|t| !t.trim().is_empty()).ok_or_else(|| {
                Error::bad_input(format!(
                    "{}: column {text_column:?} is empty; expected a document",
                    at()
                ))
            })?;
            let label = label
                .flatten()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .ok_or_else(|| {
                    Error::bad_input(format!("{}: column {label_column:?} is empty; expected a label", at()))
                })?;
            rows.push(RawRow {
                index,
                id: index.to_string(),
                text,
                label,
                line: row_in_file + 1,
            });
        }
    }
    Ok(rows)
}

fn field_to_string(field: &Field) -> Option<String> {
    match field {
        Field::Null => None,
        Field::Str(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_files_match_common_hub_layouts() {
        let all: Vec<PathBuf> = [
            "default/train/0001.parquet",
            "default/train/0000.parquet",
            "default/test/0000.parquet",
            "data/train-00000-of-00001.parquet",
            "README.md",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let train = split_files(&all, "train");
        assert_eq!(
            train,
            [
                "data/train-00000-of-00001.parquet",
                "default/train/0000.parquet",
                "default/train/0001.parquet"
            ]
            .iter()
            .map(PathBuf::from)
            .collect::<Vec<_>>()
        );
        assert_eq!(split_files(&all, "test").len(), 1);
    }

    #[test]
    fn reads_the_fixture_parquet_like_the_hub_dataset() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/hub-mini");
        let files = fetch_parquet_files("determined-ai/consumer_complaints_medium", "main", Some(&dir)).unwrap();
        let train = split_files(&files, "train");
        let rows = read_rows(&train, "Consumer Complaint", "Issue").unwrap();
        assert!(!rows.is_empty());
        assert_eq!(rows[0].index, 0);
        assert!(rows.iter().all(|r| !r.text.is_empty() && !r.label.is_empty()));
    }

    #[test]
    fn missing_column_is_named() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/hub-mini");
        let files = fetch_parquet_files("x/y", "main", Some(&dir)).unwrap();
        let err = read_rows(&split_files(&files, "train"), "Narrative", "Issue")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"Narrative\"") && err.contains("Consumer Complaint"),
            "{err}"
        );
    }

    #[test]
    fn offline_without_cache_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("HF_HOME", dir.path());
        std::env::set_var("HF_HUB_OFFLINE", "1");
        let err = fetch_parquet_files("nobody/nothing", "main", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot reach") && err.contains("local_dir"), "{err}");
    }
}
