//! The engine's errors: [`Error`] for a job (what the CLI reports), and
//! [`TaskError`] for one attempt (what the scheduler classifies as retryable
//! or not).
//!
//! Every error's message is complete on its own (it includes its cause), so
//! none also returns the cause as `source()`: a report that prints the chain
//! (anyhow's `{:#}`) would print the cause twice. Messages are also flattened
//! into strings (a failed task's message, an attempt outcome on the wire),
//! which is why the cause stays in the message.

use std::io;

use quern_core::{AppError, InputError, SpecError};

/// Why a job could not run or did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The job description is unusable.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// An input or the output could not be used.
    #[error(transparent)]
    Storage(#[from] quern_storage::StorageError),
    /// Creating, writing or committing output or scratch files failed.
    #[error("{context} {path}: {cause}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file or directory.
        path: String,
        /// The cause (part of the message, not a `source()`).
        cause: io::Error,
    },
    /// A task failed for good.
    #[error("job failed: {message}")]
    JobFailed {
        /// The task, its input and the error.
        message: String,
    },
    /// The job was cancelled (Ctrl-C or kill).
    #[error("job cancelled")]
    Cancelled,
}

impl Error {
    pub(crate) fn io(context: &'static str, path: &std::path::Path, cause: io::Error) -> Error {
        Error::Io { context, path: path.display().to_string(), cause }
    }

    /// Whether the job was refused before any work started (bad spec, bad
    /// input, existing output), as opposed to failing while it ran.
    pub fn is_refusal(&self) -> bool {
        match self {
            Error::Spec(_) => true,
            Error::Storage(e) => e.is_refusal(),
            _ => false,
        }
    }
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// Reading the input failed or found malformed data. The message is
    /// the cause alone: whoever reports the attempt names its split first
    /// (`describe_task`), so the split is not said twice.
    #[error("{cause}")]
    Input {
        /// The split, as `file [bytes a..b]`.
        split: String,
        /// The cause (part of the message, not a `source()`).
        cause: InputError,
    },
    /// The app's map, reduce or combine returned an error.
    #[error("{context}: {cause}")]
    App {
        /// Where: `map of FILE at byte N`, `reduce of key ...`.
        context: String,
        /// The app's error (part of the message, not a `source()`).
        cause: AppError,
    },
    /// The app's code panicked.
    #[error("{context}: panicked: {message}")]
    Panic {
        /// Where, as for `App`.
        context: String,
        /// The panic message.
        message: String,
    },
    /// Local I/O (spills, map outputs, output files) failed.
    #[error("{context}: {cause}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause (part of the message, not a `source()`).
        cause: io::Error,
    },
    /// The job was cancelled while the attempt ran.
    #[error("cancelled")]
    Cancelled,
}

impl TaskError {
    /// Whether another attempt might succeed.
    pub fn retryable(&self) -> bool {
        match self {
            TaskError::Input { cause, .. } => cause.retryable(),
            TaskError::App { cause, .. } => cause.retryable(),
            TaskError::Panic { .. } | TaskError::Io { .. } => true,
            TaskError::Cancelled => false,
        }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> TaskError {
        let context = context.into();
        move |cause| TaskError::Io { context, cause }
    }
}

/// The message of a caught panic.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
