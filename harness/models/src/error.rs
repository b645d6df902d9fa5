//! Library errors. Each variant says what was wrong and where (file, line, field), so the CLI
//! can print one clear line; `exit_code` maps them to the codes documented in the README, and
//! is the only place that does.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit codes (README "Exit codes"), in one place.
pub mod exit {
    pub const OK: i32 = 0;
    /// A regression or contradicted claim (only when asked to gate on it).
    pub const GATE_FAILED: i32 = 1;
    /// Bad input or usage: the message names the file, line or field.
    pub const BAD_INPUT: i32 = 2;
    /// A model failed (diverged, out of memory, tensor error).
    pub const MODEL_FAILED: i32 = 3;
    /// The environment stopped the run: disk full, read-only or unwritable output, the run
    /// directory locked by another process, the network unreachable.
    pub const ENVIRONMENT: i32 = 4;
    /// `clsbench merge` assembled only some of a suite's jobs (others missing, failed or still
    /// running): the merged run is written and its manifest lists the rest.
    pub const PARTIAL: i32 = 5;
    /// A bug in clsbench: encoding its own results (JSON, CSV, a probabilities file, a plot)
    /// into memory failed. Not the input's fault nor a model's; sysexits' EX_SOFTWARE.
    pub const INTERNAL: i32 = 70;
}

/// The cause of an [`Error::Encode`]: serde's, csv's, safetensors', plotters' error, or a
/// message where the encoder's own check found the fault.
pub type EncodeSource = Box<dyn std::error::Error + Send + Sync>;

/// What was being done to a file when it failed, so a write error never says "cannot read".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoOp {
    Read,
    Write,
    CreateDir,
    Rename,
    Remove,
    Lock,
}

impl std::fmt::Display for IoOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IoOp::Read => "read",
            IoOp::Write => "write",
            IoOp::CreateDir => "create directory",
            IoOp::Rename => "rename into place",
            IoOp::Remove => "remove",
            IoOp::Lock => "lock",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user gave us something we cannot use: a suite field, a data file, a CSV row.
    #[error("{0}")]
    BadInput(String),

    /// A file could not be read, written, renamed or removed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: IoOp,
        #[source]
        source: std::io::Error,
    },

    /// A JSON file we read (a merge map, a config, a results.json) is not valid JSON or not of
    /// the shape expected: the message names the file, line and column.
    #[error("{}: line {}, column {}: {source}", path.display(), source.line(), source.column())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// Something outside the input stopped the run (a lock held by another process, the
    /// network); the message says what to do.
    #[error("{0}")]
    Environment(String),

    /// Something was asked of a model family or method that is not implemented yet.
    #[error("not implemented: {0}")]
    NotImplemented(String),

    /// Training diverged, or a model's inputs or outputs were not what it needs.
    #[error("model error: {0}")]
    Model(String),

    /// A tensor operation failed inside candle (shape, dtype, device, kernel). The message
    /// leaves out the backtrace candle appends under `RUST_BACKTRACE=1` (results and summaries
    /// keep the message); the source keeps candle's error.
    #[error("model error: {message}")]
    Candle {
        message: String,
        #[source]
        source: candle_core::Error,
    },

    /// A model of the run failed; its message is recorded in the results.
    #[error("model {id} failed: {message}")]
    ModelFailed { id: String, message: String },

    /// Encoding our own results (JSON, CSV, a probabilities file, a plot) failed: a bug, not
    /// the user's input nor a model's failure (exit 70). Every encoder writes into memory
    /// (files are written afterwards by `write_atomic`), so no disk error arrives here.
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: String,
        #[source]
        source: EncodeSource,
    },

    /// A merge that could use only some jobs; the message names the others.
    #[error("{0}")]
    Partial(String),

    /// The Hugging Face Hub did not give a model's or dataset's file: unreachable or failing
    /// (the environment, exit 4), or refusing the request (no such repository or file, a gated
    /// one without access: the input, exit 2). The message says what was asked and what to do.
    #[error("{message}")]
    Hub {
        repo: String,
        message: String,
        #[source]
        source: Box<hf_hub::api::sync::ApiError>,
    },

    /// A statistic refused its inputs (lengths, class ids, settings out of range).
    #[error(transparent)]
    Stats(#[from] clsbench_stats::Error),

    /// A comparison or claim check found a regression / contradiction (exit code 1 when asked).
    #[error("{0}")]
    Failed(String),
}

impl Error {
    pub fn bad_input(msg: impl Into<String>) -> Self {
        Error::BadInput(msg.into())
    }

    /// A failed read of `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::io_op(path, IoOp::Read, source)
    }

    /// A failed write (create, write, fsync) of `path`.
    pub fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::io_op(path, IoOp::Write, source)
    }

    pub fn io_op(path: impl Into<PathBuf>, op: IoOp, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            op,
            source,
        }
    }

    pub fn encode(what: impl Into<String>, source: impl Into<EncodeSource>) -> Self {
        Error::Encode {
            what: what.into(),
            source: source.into(),
        }
    }

    /// The message without the variant's prefix, for a model's `error` field in results
    /// (which already says it is a model's error).
    pub fn message(&self) -> String {
        match self {
            Error::Model(m) | Error::NotImplemented(m) | Error::Candle { message: m, .. } => m.clone(),
            other => other.to_string(),
        }
    }

    /// The exit code of the README's table; see [`exit`].
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::BadInput(_) | Error::NotImplemented(_) | Error::Json { .. } => exit::BAD_INPUT,
            // A file the user named that cannot be read is bad input; anything we failed to
            // write (full disk, read-only directory) is the environment's doing.
            Error::Io {
                op: IoOp::Read, source, ..
            } if !is_environmental(source) => exit::BAD_INPUT,
            Error::Io { .. } | Error::Environment(_) => exit::ENVIRONMENT,
            Error::Failed(_) => exit::GATE_FAILED,
            Error::Partial(_) => exit::PARTIAL,
            Error::Hub { source, .. } if hub_refused(source) => exit::BAD_INPUT,
            Error::Hub { .. } => exit::ENVIRONMENT,
            Error::Stats(clsbench_stats::Error::Invalid(_)) => exit::BAD_INPUT,
            Error::Stats(clsbench_stats::Error::Distribution(_)) => exit::MODEL_FAILED,
            Error::Model(_) | Error::Candle { .. } | Error::ModelFailed { .. } => exit::MODEL_FAILED,
            Error::Encode { .. } => exit::INTERNAL,
        }
    }
}

/// The Hub answered and said no (4xx: no such repository or file, no access): what was asked
/// is wrong. Anything else (no connection, a timeout, a 5xx, a broken download) is the
/// environment's.
fn hub_refused(e: &hf_hub::api::sync::ApiError) -> bool {
    match e {
        hf_hub::api::sync::ApiError::RequestError(r) => matches!(**r, ureq::Error::Status(code, _) if code < 500),
        _ => false,
    }
}

/// Errors that no input could fix: out of space or quota, read-only file systems.
fn is_environmental(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(e.kind(), K::StorageFull | K::ReadOnlyFilesystem | K::QuotaExceeded)
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Candle {
            message: candle_text(&e),
            source: e,
        }
    }
}

/// candle's message without the backtrace it appends under `RUST_BACKTRACE=1`: results and
/// summaries keep the message; a backtrace is for a developer's terminal, not a table cell.
pub fn candle_message(e: candle_core::Error) -> String {
    candle_text(&e)
}

fn candle_text(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => candle_text(inner),
        candle_core::Error::Context { inner, context } => format!("{context}: {}", candle_text(inner)),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_errors_say_write_and_are_environment_errors() {
        let e = Error::write("out/x.json", std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert!(e.to_string().starts_with("cannot write out/x.json"), "{e}");
        assert_eq!(e.exit_code(), exit::ENVIRONMENT);
        let missing = Error::io("in.csv", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(missing.to_string().starts_with("cannot read in.csv"), "{missing}");
        assert_eq!(missing.exit_code(), exit::BAD_INPUT);
    }

    #[test]
    fn json_errors_name_file_line_and_column_and_keep_serde_s_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("merge_map.json");
        std::fs::write(&path, "{\n  \"a\": 1,\n}").unwrap();
        let e = crate::fsutil::read_json::<serde_json::Value>(&path).unwrap_err();
        assert!(matches!(&e, Error::Json { path: p, .. } if p == &path), "{e:?}");
        assert!(
            e.to_string()
                .starts_with(&format!("{}: line 3, column 1: ", path.display())),
            "{e}"
        );
        assert_eq!(e.exit_code(), exit::BAD_INPUT);
        let source = std::error::Error::source(&e).expect("serde's error is the source");
        assert!(source.downcast_ref::<serde_json::Error>().is_some());
    }

    /// Regression: an encoding failure (a bug in clsbench) exited 3 as if a model had failed,
    /// and kept only the encoder's message.
    #[test]
    fn encode_errors_are_internal_and_keep_their_cause() {
        // A map keyed by tuples is one thing serde_json refuses to encode.
        let cause = serde_json::to_vec(&std::collections::BTreeMap::from([((1u8, 2u8), 3u8)])).unwrap_err();
        let e = Error::encode("results.json", cause);
        assert!(e.to_string().starts_with("cannot encode results.json: "), "{e}");
        assert_eq!(e.exit_code(), exit::INTERNAL);
        let source = std::error::Error::source(&e).expect("the encoder's error is the source");
        assert!(source.downcast_ref::<serde_json::Error>().is_some());
        assert_eq!(
            Error::encode("a plot", "no font".to_string()).exit_code(),
            exit::INTERNAL
        );
    }

    #[test]
    fn candle_backtrace_stays_out_of_the_message() {
        let inner = candle_core::Error::Msg("shape mismatch".into());
        let with_bt = candle_core::Error::WithBacktrace {
            inner: Box::new(inner),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        let e = Error::from(with_bt);
        assert_eq!(e.to_string(), "model error: shape mismatch");
        assert_eq!(e.message(), "shape mismatch");
        assert_eq!(e.exit_code(), exit::MODEL_FAILED);
        // The cause is kept, backtrace and all, for whoever walks the source chain.
        let source = std::error::Error::source(&e).expect("candle's error is the source");
        assert!(matches!(
            source.downcast_ref::<candle_core::Error>(),
            Some(candle_core::Error::WithBacktrace { .. })
        ));
    }
}
