//! What a run tells the person watching it, behind one trait, so the library never prints:
//! the `clsbench` binary draws it on stderr (indicatif bars on a terminal, see its
//! `progress.rs`), `--quiet` and the tests pass [`Quiet`], a program embedding the library
//! passes its own (a log, a UI, a channel).
//!
//! Narration has two levels, as the binary prints them: a [`RunObserver::step`] is one thing
//! the run does or decides (`minilm-full: training (encoder)`, a cache hit, a failure), a
//! [`RunObserver::detail`] belongs to the step before it (an epoch's losses, the memory plan,
//! a resumed checkpoint). Nothing here is needed to read the results: everything a run decides
//! is also in its results.json and manifest.

/// The watcher of a run, shared by the threads that predict (hence `Sync`).
pub trait RunObserver: Sync {
    /// One thing the run does or decides.
    fn step(&self, text: &str);
    /// A line under the last step.
    fn detail(&self, text: &str);
    /// A long stretch of `len` units (batches, documents) labelled `what` begins; the handle
    /// advances it and ends it when dropped.
    fn progress(&self, len: u64, what: &str) -> Box<dyn Progress + '_>;
}

/// One long stretch of a run: `inc` as units finish; dropping it ends the display.
pub trait Progress: Send + Sync {
    fn inc(&self, n: u64);
}

/// Says nothing: `--quiet`, tests, and library callers that only want the results.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl RunObserver for Quiet {
    fn step(&self, _: &str) {}
    fn detail(&self, _: &str) {}
    fn progress(&self, _: u64, _: &str) -> Box<dyn Progress + '_> {
        Box::new(NoProgress)
    }
}

/// A progress handle that draws nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn inc(&self, _: u64) {}
}

/// Records every line, for tests that check what a run says (the order, the wording).
#[derive(Debug, Default)]
pub struct Recorder {
    lines: std::sync::Mutex<Vec<String>>,
}

impl Recorder {
    /// The lines so far: steps as they came, details indented by two spaces.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn push(&self, line: String) {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }
}

impl RunObserver for Recorder {
    fn step(&self, text: &str) {
        self.push(text.to_string());
    }
    fn detail(&self, text: &str) {
        self.push(format!("  {text}"));
    }
    fn progress(&self, _: u64, _: &str) -> Box<dyn Progress + '_> {
        Box::new(NoProgress)
    }
}
