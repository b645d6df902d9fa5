//! Library errors. Each variant says what was wrong and where (file, line, field), so the CLI
//! can print one clear line; `exit_code` maps them to the codes documented in the README.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user gave us something we cannot use: a suite field, a data file, a CSV row.
    #[error("{0}")]
    BadInput(String),

    /// An input file could not be read at all.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Something was asked of a model family or method that is not implemented yet.
    #[error("not implemented: {0}")]
    NotImplemented(String),

    /// Training diverged or a tensor operation failed.
    #[error("model error: {0}")]
    Model(String),

    /// A comparison or claim check found a regression / contradiction (exit code 1 when asked).
    #[error("{0}")]
    Failed(String),
}

impl Error {
    pub fn bad_input(msg: impl Into<String>) -> Self {
        Error::BadInput(msg.into())
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Exit codes: 1 = a regression or contradicted claim (only when asked to gate on it),
    /// 2 = bad input or usage, 3 = a model failed (diverged, out of memory, tensor error).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::BadInput(_) | Error::Io { .. } | Error::NotImplemented(_) => 2,
            Error::Failed(_) => 1,
            Error::Model(_) => 3,
        }
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Model(e.to_string())
    }
}
