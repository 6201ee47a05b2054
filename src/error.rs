//! Error classes shared by every component.
//!
//! Every error in trailwatch answers one question for the operator: *whose
//! fault is it, and will retrying help?* Following Arroyo's error domains we
//! classify each error as:
//!
//! - [`ErrorClass::User`]: bad input or bad configuration. Retrying the same
//!   thing fails the same way; the record goes to the dead-letter output or
//!   the command exits with a usage/config error.
//! - [`ErrorClass::External`]: a broker, stream, file system or sink failed.
//!   Retrying (with backoff) may help.
//!   An output whose reader is gone for good (a closed pipe) is
//!   [`Error::OutputClosed`], and a record an output refuses as too large
//!   is [`Error::TooLarge`]: both are classed as user, since retrying the
//!   same bytes cannot help.
//! - [`ErrorClass::Internal`]: a bug in trailwatch. Reported loudly.

use std::fmt;

/// Who is at fault for an error, and whether retrying may help.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Bad input records, rules or configuration. Not retryable.
    User,
    /// A dependency (broker, stream, disk, sink) failed. Retryable.
    External,
    /// A trailwatch bug.
    Internal,
}

impl ErrorClass {
    /// Stable lowercase name, used as a metric label and in dead-letter headers.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::User => "user",
            ErrorClass::External => "external",
            ErrorClass::Internal => "internal",
        }
    }

    /// Whether retrying the failed operation may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorClass::External)
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Top-level error for commands and services.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config error: {0}")]
    Config(String),
    #[error("rule error: {0}")]
    Rules(String),
    #[error("i/o error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("source error: {0}")]
    Source(String),
    #[error("sink error: {0}")]
    Sink(String),
    /// The reader of an output went away (`trailwatch replay | head`): the
    /// engine stops instead of retrying, and commits nothing more.
    #[error("output closed: {0}")]
    OutputClosed(String),
    /// An output refused a record as larger than it takes (a Kafka
    /// `MessageSizeTooLarge`): resending the same bytes fails the same way,
    /// so the engine stops instead of retrying for ever. Dead letters are
    /// cut to fit before they are sent; this is left for an output whose
    /// real limit is below the one it was configured with.
    #[error("record too large for the output: {0}")]
    TooLarge(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The class of this error (see the module docs).
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Config(_) | Error::Rules(_) | Error::OutputClosed(_) | Error::TooLarge(_) => {
                ErrorClass::User
            }
            Error::Io { .. } | Error::Source(_) | Error::Sink(_) => ErrorClass::External,
            Error::Internal(_) => ErrorClass::Internal,
        }
    }

    /// Process exit code for this error (documented in the README).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) => 2,
            Error::Rules(_) => 3,
            Error::Io { .. }
            | Error::Source(_)
            | Error::Sink(_)
            | Error::OutputClosed(_)
            | Error::TooLarge(_) => 4,
            Error::Internal(_) => 70,
        }
    }

    /// Helper to wrap an i/o error with the path it concerns.
    pub fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
