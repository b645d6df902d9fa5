//! `clsbench report RUN`: redraw a finished run's human-readable outputs (summary.md,
//! metrics.csv / per_class.csv, plots) from its results.json. Nothing is trained, predicted,
//! timed or resampled: the outputs are a pure function of results.json.

use super::plots::{self, PlotsWritten};
use super::results::Results;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

pub struct Regenerated {
    pub run_dir: PathBuf,
    pub results: Results,
    pub plots: PlotsWritten,
}

/// `run` is a run directory or its results.json.
pub fn regenerate(run: &Path) -> Result<Regenerated> {
    let (run_dir, results_path) = if run.is_dir() {
        (run.to_path_buf(), run.join("results.json"))
    } else {
        (run.parent().unwrap_or(Path::new(".")).to_path_buf(), run.to_path_buf())
    };
    if !results_path.is_file() {
        return Err(Error::bad_input(format!(
            "{}: no results.json here; expected a run directory written by `clsbench run` (or its results.json)",
            run.display()
        )));
    }
    let results = Results::read(&results_path)?;
    // Rewriting a run's files takes its lock (a `clsbench run` into it may be under way) and
    // clears temp files that a killed writer left.
    let _lock = crate::fsutil::DirLock::acquire(&run_dir)?;
    crate::fsutil::sweep_stale_temps(&run_dir);
    write_outputs(&run_dir, &results).map(|plots| Regenerated {
        run_dir,
        results,
        plots,
    })
}

/// Everything derived from results: plots first, then the summary that links them.
pub fn write_outputs(run_dir: &Path, results: &Results) -> Result<PlotsWritten> {
    let drawn = plots::write_all(run_dir, results)?;
    super::metrics_csv::write(run_dir, results)?;
    super::summary::write(&run_dir.join("summary.md"), results)?;
    Ok(drawn)
}
