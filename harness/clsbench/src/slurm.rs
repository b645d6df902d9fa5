//! `clsbench plan SUITE --slurm DIR`: the suite's jobs as one Slurm job array. Slurm runs the
//! tasks (we write a script, we do not schedule); each task is `clsbench run SUITE --job
//! $SLURM_ARRAY_TASK_ID --output-dir DIR`, whose per-job directory and lock make tasks safe to
//! run side by side and to requeue (`crate::jobs`).

use crate::error::{Error, Result};
use crate::fsutil;
use crate::jobs::{self, Plan};
use std::path::PathBuf;

pub const SCRIPT_FILE: &str = "array.sbatch";
pub const LOGS_DIR: &str = "logs";

#[derive(Debug, Clone)]
pub struct SlurmOptions {
    /// The shared directory: script, plan and jobs go to `<dir>/<suite>/`.
    pub dir: PathBuf,
    pub partition: Option<String>,
    pub gpus_per_job: u32,
    /// At most this many tasks at once (`%K`); default all.
    pub max_parallel: Option<usize>,
    /// `--time` per task (`HH:MM:SS` or `D-HH:MM:SS`); default from the largest estimate.
    pub time: Option<String>,
    pub cpus_per_job: Option<usize>,
    /// The clsbench binary the tasks run (default: this one).
    pub clsbench: PathBuf,
    /// Extra flags for every task's `clsbench run` (e.g. `--no-perf`).
    pub run_flags: Vec<String>,
}

pub struct Written {
    pub suite_dir: PathBuf,
    pub script: PathBuf,
    pub plan: PathBuf,
    /// The `sbatch` command to submit it.
    pub submit: String,
    /// Whether `sbatch` is on this machine's PATH.
    pub sbatch_found: bool,
}

/// Check a Slurm time limit: `MM`, `HH:MM:SS`, `D-HH:MM:SS` (the forms we document).
pub fn check_time(t: &str) -> Result<()> {
    let (days, hms) = match t.split_once('-') {
        Some((d, rest)) => (Some(d), rest),
        None => (None, t),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    let digits = |s: &str| !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit());
    let ok = days.is_none_or(digits)
        && parts.len() == 3
        && parts.iter().all(|p| digits(p))
        && parts[1].parse::<u32>().is_ok_and(|m| m < 60)
        && parts[2].parse::<u32>().is_ok_and(|s| s < 60);
    if ok {
        Ok(())
    } else {
        Err(Error::bad_input(format!(
            "--time {t:?}: expected HH:MM:SS or D-HH:MM:SS (e.g. 01:30:00)"
        )))
    }
}

/// Slurm's `HH:MM:SS` (with `D-` over a day) for `secs`, rounded up to a minute.
fn format_time(secs: f64) -> String {
    let mins = (secs / 60.0).ceil().max(1.0) as u64;
    let (d, h, m) = (mins / 1440, (mins % 1440) / 60, mins % 60);
    if d > 0 {
        format!("{d}-{h:02}:{m:02}:00")
    } else {
        format!("{h:02}:{m:02}:00")
    }
}

/// The request derived from the estimates when the user gave none: three times the largest
/// estimated time (at least 10 minutes) and twice the largest estimated memory (at least 2 GiB).
fn default_request(plan: &Plan) -> (String, u64) {
    let time_s = plan.jobs.iter().map(|j| j.estimate.time_s).fold(0.0, f64::max);
    let mem = plan.jobs.iter().map(|j| j.estimate.memory_bytes).max().unwrap_or(0);
    let mem_mib = ((mem as f64 * 2.0) / (1024.0 * 1024.0)).ceil() as u64;
    (format_time((time_s * 3.0).max(600.0)), mem_mib.max(2048))
}

/// Write `<dir>/<suite>/plan.json` and `<dir>/<suite>/array.sbatch` (and `logs/`).
pub fn write(plan: &Plan, opts: &SlurmOptions) -> Result<Written> {
    if plan.jobs.is_empty() {
        return Err(Error::bad_input(format!(
            "suite {:?} has no models: nothing to submit",
            plan.suite.name
        )));
    }
    if let Some(t) = &opts.time {
        check_time(t)?;
    }
    if opts.max_parallel == Some(0) {
        return Err(Error::bad_input("--max-parallel must be at least 1"));
    }
    if let Some(p) = &opts.partition {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.,".contains(&b)) {
            return Err(Error::bad_input(format!(
                "--partition {p:?}: expected a partition name (letters, digits, -_.,)"
            )));
        }
    }
    std::fs::create_dir_all(&opts.dir).map_err(|e| Error::io_op(&opts.dir, crate::error::IoOp::CreateDir, e))?;
    let shared = std::fs::canonicalize(&opts.dir).map_err(|e| Error::io(&opts.dir, e))?;
    let suite_dir = jobs::suite_dir(&shared, &plan.suite.name)?;
    let logs = suite_dir.join(LOGS_DIR);
    std::fs::create_dir_all(&logs).map_err(|e| Error::io_op(&logs, crate::error::IoOp::CreateDir, e))?;
    let plan_path = suite_dir.join(jobs::PLAN_FILE);
    fsutil::write_json_atomic(&plan_path, plan)?;

    let (default_time, mem_mib) = default_request(plan);
    let n = plan.jobs.len();
    let k = opts.max_parallel.unwrap_or(n).min(n);
    let mut s = String::new();
    s.push_str("#!/bin/bash\n");
    s.push_str(&format!(
        "# Written by `clsbench plan --slurm` for suite {:?} (sha256 {}): {n} job(s), listed in\n# {}. Submit with: sbatch {}\n",
        plan.suite.name,
        &plan.suite.sha256[..12.min(plan.suite.sha256.len())],
        plan_path.display(),
        suite_dir.join(SCRIPT_FILE).display()
    ));
    s.push_str("# Time and memory below come from clsbench's estimates (see plan.json); edit them freely.\n");
    s.push_str(&format!("#SBATCH --job-name=clsbench-{}\n", plan.suite.name));
    s.push_str(&format!("#SBATCH --array=0-{}%{k}\n", n - 1));
    s.push_str(&format!("#SBATCH --output={}/%A_%a.out\n", logs.display()));
    s.push_str(&format!("#SBATCH --error={}/%A_%a.err\n", logs.display()));
    // A requeued task appends to its log instead of replacing it.
    s.push_str("#SBATCH --open-mode=append\n");
    s.push_str("#SBATCH --requeue\n");
    s.push_str("#SBATCH --ntasks=1\n");
    if let Some(p) = &opts.partition {
        s.push_str(&format!("#SBATCH --partition={p}\n"));
    }
    if opts.gpus_per_job > 0 {
        s.push_str(&format!("#SBATCH --gres=gpu:{}\n", opts.gpus_per_job));
    }
    if let Some(c) = opts.cpus_per_job {
        s.push_str(&format!("#SBATCH --cpus-per-task={c}\n"));
    }
    s.push_str(&format!(
        "#SBATCH --time={}\n",
        opts.time.as_deref().unwrap_or(&default_time)
    ));
    s.push_str(&format!("#SBATCH --mem={mem_mib}M\n"));
    s.push_str("set -euo pipefail\n");
    s.push_str(&format!(
        "CLSBENCH={}\n",
        shell_quote(&opts.clsbench.display().to_string())
    ));
    s.push_str(
        "if [ ! -x \"$CLSBENCH\" ]; then\n  echo \"clsbench: $CLSBENCH is not on $(hostname); build it on a file system the nodes share, or set CLSBENCH in this script\" >&2\n  exit 2\nfi\n",
    );
    s.push_str("echo \"clsbench: task $SLURM_ARRAY_TASK_ID of array $SLURM_ARRAY_JOB_ID on $(hostname), restart ${SLURM_RESTART_COUNT:-0}\" >&2\n");
    let mut cmd = vec![
        "exec \"$CLSBENCH\" run".to_string(),
        shell_quote(&plan.suite.path),
        "--job \"$SLURM_ARRAY_TASK_ID\"".to_string(),
        "--output-dir".to_string(),
        shell_quote(&shared.display().to_string()),
    ];
    cmd.extend(opts.run_flags.iter().map(|f| shell_quote(f)));
    s.push_str(&cmd.join(" "));
    s.push('\n');
    let script = suite_dir.join(SCRIPT_FILE);
    fsutil::write_atomic(&script, s.as_bytes())?;
    Ok(Written {
        submit: format!("sbatch {}", script.display()),
        sbatch_found: on_path("sbatch"),
        suite_dir,
        script,
        plan: plan_path,
    })
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// Single-quote for bash unless the string is plainly safe.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-=+:,@".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_limits_are_checked_and_formatted_as_slurm_reads_them() {
        for ok in ["01:30:00", "1-00:00:00", "00:10:00"] {
            check_time(ok).unwrap();
        }
        for bad in ["90", "1:61:00", "abc", "01:30", "-01:00:00"] {
            assert!(check_time(bad).is_err(), "{bad}");
        }
        assert_eq!(format_time(61.0), "00:02:00");
        assert_eq!(format_time(90_000.0), "1-01:00:00");
        check_time(&format_time(1e6)).unwrap();
    }

    #[test]
    fn shell_quoting_leaves_plain_paths_and_quotes_the_rest() {
        assert_eq!(shell_quote("/a/b-c.toml"), "/a/b-c.toml");
        assert_eq!(shell_quote("/a b/it's"), "'/a b/it'\\''s'");
    }
}
