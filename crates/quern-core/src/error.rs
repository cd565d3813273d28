//! Error types at the app and spec boundaries.
//!
//! [`AppError`] is what user code returns from map, reduce and combine;
//! [`InputError`] is what an [`crate::InputFormat`] returns; [`SpecError`] is a
//! job description that cannot run. Each says whether retrying can help, so
//! the scheduler classifies a failure once.

use std::fmt;

/// An error returned by user code (map, reduce, combine, or building an app).
///
/// Wraps any error; [`AppError::retryable`] tells the scheduler whether
/// another attempt might succeed (default: yes, as transient failures are the
/// common case for user code that talks to the world).
#[derive(Debug)]
pub struct AppError {
    message: String,
    retryable: bool,
}

impl AppError {
    /// An error with a message; retryable.
    pub fn new(message: impl Into<String>) -> Self {
        AppError { message: message.into(), retryable: true }
    }

    /// An error that another attempt cannot fix (bad parameters, bad data).
    pub fn permanent(message: impl Into<String>) -> Self {
        AppError { message: message.into(), retryable: false }
    }

    /// Whether another attempt of the same task might succeed.
    pub fn retryable(&self) -> bool {
        self.retryable
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AppError {}

impl From<std::io::Error> for AppError {
    fn from(e: std::io::Error) -> Self {
        AppError::new(e.to_string())
    }
}

/// An error while reading records from an input split.
///
/// The message includes the cause, which is therefore not also returned as
/// `source()` (a report printing the chain would show it twice).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Reading failed.
    #[error("read error: {0}")]
    Io(std::io::Error),
    /// The bytes are not what the format expects.
    #[error("{}: {message}", at(*.line, *.offset))]
    Malformed {
        /// 1-based line number, when the format knows it.
        line: Option<u64>,
        /// Byte offset of the bad record in the (uncompressed) file.
        offset: u64,
        /// What is wrong.
        message: String,
    },
}

impl From<std::io::Error> for InputError {
    fn from(e: std::io::Error) -> Self {
        InputError::Io(e)
    }
}

fn at(line: Option<u64>, offset: u64) -> String {
    match line {
        Some(l) => format!("line {l}"),
        None => format!("byte {offset}"),
    }
}

impl InputError {
    /// Whether another attempt might read the input successfully: I/O
    /// errors are (a network file system, a disk hiccup), except those of
    /// kind [`std::io::ErrorKind::InvalidData`], which are about the bytes
    /// themselves (a corrupt or truncated compressed file, as
    /// `quern-storage` reports it): another attempt would read the same
    /// bytes. Malformed records are not retryable either.
    pub fn retryable(&self) -> bool {
        match self {
            InputError::Io(e) => e.kind() != std::io::ErrorKind::InvalidData,
            InputError::Malformed { .. } => false,
        }
    }
}

/// A job description that cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpecError {
    /// No app of that name is registered.
    #[error("unknown app '{name}' (known apps: {known})")]
    UnknownApp {
        /// The name asked for.
        name: String,
        /// The names registered, comma-separated.
        known: String,
    },
    /// A `--param` the app does not take.
    #[error("app '{app}' has no parameter '{param}' (it takes: {known})")]
    UnknownParam {
        /// The app.
        app: String,
        /// The parameter given.
        param: String,
        /// The parameters the app takes.
        known: String,
    },
    /// A required parameter is missing.
    #[error("app '{app}' needs parameter '{param}': {help}")]
    MissingParam {
        /// The app.
        app: String,
        /// The missing parameter.
        param: String,
        /// Its help text.
        help: String,
    },
    /// A parameter value is not usable.
    #[error("parameter '{param}': {message}")]
    BadParam {
        /// The parameter.
        param: String,
        /// Why not.
        message: String,
    },
    /// A field of the spec is out of range.
    #[error("{field}: {message}")]
    BadField {
        /// The field (as named on the command line).
        field: &'static str,
        /// Why not.
        message: String,
    },
    /// The inputs cut at the split size make more map tasks than a job may
    /// have.
    #[error(
        "--split-size: the inputs make {tasks} map tasks at {} a split, and a job may have at most {max}: \
         raise --split-size",
        bytes(*.split_size)
    )]
    TooManyMapTasks {
        /// The map tasks the job would have.
        tasks: u64,
        /// The split size asked for.
        split_size: u64,
        /// The most a job may have.
        max: u64,
    },
    /// A step of a chain is not a valid job.
    #[error("step {step}: {cause}")]
    Step {
        /// The step, from 1.
        step: usize,
        /// What is wrong with it (part of the message, not a `source()`).
        cause: Box<SpecError>,
    },
}

fn bytes(n: u64) -> String {
    if n == 1 { "1 byte".to_owned() } else { format!("{n} bytes") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn input_errors_about_the_bytes_are_permanent() {
        assert!(InputError::from(io::Error::new(io::ErrorKind::TimedOut, "slow disk")).retryable());
        assert!(InputError::from(io::Error::other("EIO")).retryable());
        assert!(!InputError::from(io::Error::new(io::ErrorKind::InvalidData, "corrupt gzip data")).retryable());
        assert!(!InputError::Malformed { line: Some(3), offset: 10, message: "bad".into() }.retryable());
    }

    #[test]
    fn an_io_input_error_prints_its_cause_once() {
        use std::error::Error as _;
        let e = InputError::from(io::Error::new(io::ErrorKind::InvalidData, "corrupt gzip data"));
        assert_eq!(e.to_string(), "read error: corrupt gzip data");
        assert!(e.source().is_none(), "the cause is in the message already");
    }
}
