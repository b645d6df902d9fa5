//! Progress bars with ETA for long steps, drawn on stderr only when it is a terminal (or
//! CLSBENCH_PROGRESS=1), so logs and CI output stay clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// A bar of `len` steps labelled `what`; hidden when stderr is not a terminal.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let visible = std::io::stderr().is_terminal() || std::env::var_os("CLSBENCH_PROGRESS").is_some_and(|v| v == "1");
    let pb = ProgressBar::with_draw_target(Some(len), if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() });
    pb.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    pb
}
