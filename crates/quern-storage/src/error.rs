//! Storage errors: an input that cannot be read, an output that exists, or
//! I/O that failed while planning or committing.

use std::io;

/// Why an input or output operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An input path is missing, unreadable or matches nothing.
    #[error("input {path}: {message}")]
    Input {
        /// The path or pattern.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The output directory exists already; nothing was touched.
    #[error("output {path} already exists; choose another path or remove it")]
    OutputExists {
        /// The output path.
        path: String,
    },
    /// Creating or committing output failed.
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
}

impl StorageError {
    pub(crate) fn io(context: &'static str, path: &std::path::Path, source: io::Error) -> StorageError {
        StorageError::Io { context, path: path.display().to_string(), source }
    }

    /// Whether the error is the job's own fault (bad paths), found before any
    /// work started, rather than a failure of the storage itself.
    pub fn is_refusal(&self) -> bool {
        matches!(self, StorageError::Input { .. } | StorageError::OutputExists { .. })
    }
}
