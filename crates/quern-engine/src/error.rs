//! The engine's errors: [`Error`] for a job (what the CLI reports), and
//! [`TaskError`] for one attempt (what the scheduler classifies as retryable
//! or not).

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
    #[error("{context} {path}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file or directory.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
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
    pub(crate) fn io(context: &'static str, path: &std::path::Path, source: io::Error) -> Error {
        Error::Io { context, path: path.display().to_string(), source }
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
    /// Reading the input failed or found malformed data.
    #[error("{split}: {source}")]
    Input {
        /// The split, as `file [bytes a..b]`.
        split: String,
        /// The cause.
        #[source]
        source: InputError,
    },
    /// The app's map, reduce or combine returned an error.
    #[error("{context}: {source}")]
    App {
        /// Where: `map of FILE at byte N`, `reduce of key ...`.
        context: String,
        /// The app's error.
        #[source]
        source: AppError,
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
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The job was cancelled while the attempt ran.
    #[error("cancelled")]
    Cancelled,
}

impl TaskError {
    /// Whether another attempt might succeed.
    pub fn retryable(&self) -> bool {
        match self {
            TaskError::Input { source, .. } => source.retryable(),
            TaskError::App { source, .. } => source.retryable(),
            TaskError::Panic { .. } | TaskError::Io { .. } => true,
            TaskError::Cancelled => false,
        }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> TaskError {
        let context = context.into();
        move |source| TaskError::Io { context, source }
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
