//! The binary's [`RunObserver`]: what a run does, on stderr. Steps print as `clsbench: ...`,
//! details indented under them; a long stretch (an epoch's batches, a split's documents) is an
//! indicatif bar when stderr is a terminal; with `CLSBENCH_PROGRESS=1` and stderr redirected
//! (a background run's log) a plain line every 30 seconds instead, since indicatif draws
//! nothing on a non-terminal; otherwise nothing, so CI output stays clean. `--quiet` passes
//! the library's `Quiet` instead. The environment is read once, in [`Terminal::from_env`].

use clsbench::observer::{Progress, RunObserver};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const LOG_EVERY: Duration = Duration::from_secs(30);

/// Narration and progress on stderr.
#[derive(Debug, Clone, Copy)]
pub struct Terminal {
    /// stderr is a terminal: draw bars.
    terminal: bool,
    /// `CLSBENCH_PROGRESS=1` on a non-terminal: plain progress lines.
    log_lines: bool,
}

impl Terminal {
    pub fn from_env() -> Self {
        let terminal = std::io::stderr().is_terminal();
        let forced = std::env::var_os("CLSBENCH_PROGRESS").is_some_and(|v| v == "1");
        Terminal {
            terminal,
            log_lines: forced && !terminal,
        }
    }
}

impl RunObserver for Terminal {
    fn step(&self, text: &str) {
        eprintln!("clsbench: {text}");
    }

    fn detail(&self, text: &str) {
        eprintln!("  {text}");
    }

    fn progress(&self, len: u64, what: &str) -> Box<dyn Progress + '_> {
        let bar = ProgressBar::with_draw_target(
            Some(len),
            if self.terminal {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        bar.set_style(
            ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_prefix(what.to_string());
        let now = Instant::now();
        let log = self.log_lines.then(|| (what.to_string(), now, Mutex::new(now)));
        Box::new(Bar { bar, log })
    }
}

/// One progress display (see the module doc for where it shows).
struct Bar {
    bar: ProgressBar,
    /// Plain-line mode: (label, start, last line printed).
    log: Option<(String, Instant, Mutex<Instant>)>,
}

impl Progress for Bar {
    fn inc(&self, n: u64) {
        self.bar.inc(n);
        if let Some((what, start, last)) = &self.log {
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() >= LOG_EVERY {
                *last = Instant::now();
                eprintln!(
                    "  {}",
                    log_line(
                        what,
                        self.bar.position(),
                        self.bar.length().unwrap_or(0),
                        start.elapsed()
                    )
                );
            }
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// `what: pos/len (rate/s, eta Ns)`.
fn log_line(what: &str, pos: u64, len: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { pos as f64 / secs } else { 0.0 };
    let eta = if rate > 0.0 {
        format!("{:.0}s", len.saturating_sub(pos) as f64 / rate)
    } else {
        "?".into()
    };
    format!("{what}: {pos}/{len} ({rate:.2}/s, eta {eta})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_line_gives_rate_and_eta() {
        assert_eq!(
            log_line("epoch 1/3", 50, 200, Duration::from_secs(25)),
            "epoch 1/3: 50/200 (2.00/s, eta 75s)"
        );
        assert_eq!(log_line("val", 0, 10, Duration::ZERO), "val: 0/10 (0.00/s, eta ?)");
    }
}
