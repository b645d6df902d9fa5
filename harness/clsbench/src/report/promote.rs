//! Committed reference runs: `results/<hardware-slug>/<suite>/` holds `results.json`,
//! `manifest.json`, `summary.md` and the plots its summary links to, of a run promoted as the
//! reference for that machine (see `results/README.md`). `results.json` carries every document's gold label and
//! predictions, so a reference needs no predictions files to be compared against.

use crate::error::{Error, IoOp, Result};
use crate::report::results::Results;
use std::path::{Path, PathBuf};

/// Files copied from a run into its reference directory (`results.json` is required).
pub const REFERENCE_FILES: [&str; 3] = ["results.json", "manifest.json", "summary.md"];

/// Fresh runs under `results/` are ignored by the top-level `.gitignore`; this file, written
/// into each reference directory, re-includes the reference files (and itself) so that
/// promoted references are tracked while ordinary runs never show up in `git status`.
const REFERENCE_GITIGNORE: &str =
    "# A committed clsbench reference run (written by `clsbench promote`): track these files.\n\
!.gitignore\n!results.json\n!manifest.json\n!summary.md\n!plots/\n!plots/*.png\n!plots/*.svg\n";

/// The run's plot directory (`report::plots::PLOTS_DIR`), copied so summary.md's links work.
const PLOT_EXTENSIONS: [&str; 2] = ["png", "svg"];

/// `<root>/<hardware-slug>/<suite>/`.
pub fn reference_dir(root: &Path, hardware_slug: &str, suite: &str) -> PathBuf {
    root.join(hardware_slug).join(suite)
}

/// `path` itself when it is a file, else `path/results.json`.
pub fn results_file(path: &Path) -> PathBuf {
    if path.is_file() {
        path.to_path_buf()
    } else {
        path.join("results.json")
    }
}

/// Copy a run's results into `<root>/<slug>/<suite>/`; refuses to replace an existing
/// reference unless `force`. Returns the reference directory.
pub fn promote(run_dir: &Path, root: &Path, force: bool) -> Result<PathBuf> {
    let results_path = results_file(run_dir);
    let results = Results::read(&results_path)?;
    let src_dir = results_path.parent().unwrap_or(Path::new("."));
    // Both come from a results file that may have been edited (or written by a version that
    // did not check suite names): directory names, checked, so promote never writes above root.
    let dest = crate::fsutil::join_under(
        root,
        &[
            ("results.json hardware.slug", &results.hardware.slug),
            ("results.json suite.name", &results.suite.name),
        ],
    )?;
    let existing = dest.join("results.json");
    if existing.is_file() && !force {
        let what = Results::read(&existing)
            .map(|r| format!("run {:?} of {}, clsbench {}", r.run_id, r.created, r.git_rev))
            .unwrap_or_else(|e| format!("unreadable: {e}"));
        return Err(Error::bad_input(format!(
            "a reference already exists at {} ({what}); pass --force to replace it with {}",
            dest.display(),
            results_path.display()
        )));
    }
    if src_dir.canonicalize().ok() == dest.canonicalize().ok() {
        return Err(Error::bad_input(format!(
            "{} is already the reference directory",
            dest.display()
        )));
    }
    std::fs::create_dir_all(&dest).map_err(|e| Error::io_op(&dest, IoOp::CreateDir, e))?;
    for name in REFERENCE_FILES {
        let src = src_dir.join(name);
        if !src.is_file() {
            if name == "results.json" {
                return Err(Error::bad_input(format!("{}: missing", src.display())));
            }
            continue;
        }
        let bytes = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
        crate::fsutil::write_atomic(&dest.join(name), &bytes)?;
    }
    copy_plots(
        &src_dir.join(super::plots::PLOTS_DIR),
        &dest.join(super::plots::PLOTS_DIR),
    )?;
    crate::fsutil::write_atomic(&dest.join(".gitignore"), REFERENCE_GITIGNORE.as_bytes())?;
    Ok(dest)
}

/// Replace `dest`'s plots with `src`'s PNG and SVG files (none when the run drew none).
fn copy_plots(src: &Path, dest: &Path) -> Result<()> {
    let is_plot = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| PLOT_EXTENSIONS.contains(&e))
    };
    if dest.is_dir() {
        for entry in std::fs::read_dir(dest).map_err(|e| Error::io(dest, e))? {
            let path = entry.map_err(|e| Error::io(dest, e))?.path();
            if is_plot(&path) {
                std::fs::remove_file(&path).map_err(|e| Error::io_op(&path, IoOp::Remove, e))?;
            }
        }
    }
    let Ok(entries) = std::fs::read_dir(src) else {
        return Ok(());
    };
    std::fs::create_dir_all(dest).map_err(|e| Error::io_op(dest, IoOp::CreateDir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(src, e))?.path();
        if is_plot(&path) {
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            crate::fsutil::write_atomic(&dest.join(path.file_name().expect("a file")), &bytes)?;
        }
    }
    Ok(())
}
