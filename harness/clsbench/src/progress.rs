//! Progress with ETA for long steps, on stderr: an indicatif bar when stderr is a terminal;
//! with CLSBENCH_PROGRESS=1 and stderr redirected (a background run's log), a plain line every
//! 30 seconds instead, since indicatif draws nothing on a non-terminal; otherwise nothing, so
//! CI output stays clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const LOG_EVERY: Duration = Duration::from_secs(30);

/// A progress display of `len` steps labelled `what`.
pub struct Progress {
    bar: ProgressBar,
    /// Plain-line mode: (label, start, last line printed).
    log: Option<(String, Instant, Mutex<Instant>)>,
}

/// A progress display of `len` steps labelled `what` (see the module doc for where it shows).
pub fn bar(len: u64, what: &str) -> Progress {
    let forced = std::env::var_os("CLSBENCH_PROGRESS").is_some_and(|v| v == "1");
    let terminal = std::io::stderr().is_terminal();
    let bar = ProgressBar::with_draw_target(
        Some(len),
        if terminal {
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
    let log = (forced && !terminal).then(|| (what.to_string(), now, Mutex::new(now)));
    Progress { bar, log }
}

impl Progress {
    pub fn inc(&self, n: u64) {
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

    pub fn finish_and_clear(&self) {
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
