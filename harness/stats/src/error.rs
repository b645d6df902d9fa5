//! The statistics' one error type. Every function here takes numbers the caller already
//! validated once (suite settings, predictions read from files); what can still be wrong is
//! said in the message, and the caller decides what it means for the user (the CLI maps
//! [`Error::Invalid`] to "bad input").

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The inputs cannot be scored as given: lengths that differ, a class id out of range, an
    /// empty sample, a non-finite probability, a setting out of its range. The message names
    /// the statistic and the value.
    #[error("{0}")]
    Invalid(String),
    /// A distribution could not be built for a test statistic (statrs refused its parameters):
    /// a bug in the caller, not the user's input.
    #[error("{0}")]
    Distribution(String),
}

impl Error {
    pub fn bad_input(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }
}
