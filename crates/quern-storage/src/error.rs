//! Storage errors: a location that cannot be parsed, an input that cannot
//! be read, an object store that cannot be used or reached, an output that
//! exists or is claimed by another job, or I/O that failed while planning or
//! committing.
//!
//! Every error's message is complete on its own (it includes its cause), so
//! none also returns the cause as `source()`: a report that prints the chain
//! (anyhow's `{:#}`) would print the cause twice.

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
    /// A location (a path or URL given as an input) cannot be parsed: an
    /// unknown scheme, an `s3://` URL without a bucket, a relative `file:`
    /// URL.
    #[error("{location}: {message}")]
    BadLocation {
        /// The location as given.
        location: String,
        /// What is wrong with it.
        message: String,
    },
    /// S3 cannot be used as configured: no credentials, a bad endpoint,
    /// or the object store refused them (access denied).
    #[error("input {url}: {message}")]
    S3Config {
        /// The URL being read.
        url: String,
        /// What is wrong, and which setting to fix.
        message: String,
    },
    /// The object store could not be reached or kept failing (after
    /// retries). Not a refusal: the same job may work later.
    #[error("input {url}: {message}")]
    Unavailable {
        /// The URL being read.
        url: String,
        /// The cause.
        message: String,
    },
    /// The output directory exists already; nothing was touched.
    #[error("output {path} already exists; choose another path or remove it")]
    OutputExists {
        /// The output path.
        path: String,
    },
    /// The output directory cannot be created (its parent is a file, or
    /// not writable); nothing was touched.
    #[error("output {path} cannot be created: {cause}")]
    OutputUnusable {
        /// The directory that could not be made.
        path: String,
        /// The cause (part of the message, not a `source()`).
        cause: io::Error,
    },
    /// Another job is writing to the output prefix: its claim
    /// (`PREFIX/_temporary/_claim`) exists, or it won the race to create
    /// one. Nothing was touched.
    #[error(
        "output {url} is being written by another job (it holds {url}/_temporary/_claim); choose another prefix, \
         or delete the claim if that job is known to be dead"
    )]
    OutputClaimed {
        /// The output URL.
        url: String,
    },
    /// An object-store output cannot be used as given: no credentials,
    /// access denied, no such bucket, no prefix. Nothing was touched.
    #[error("output {url}: {message}")]
    OutputRefused {
        /// The output URL.
        url: String,
        /// What is wrong, and which setting to fix.
        message: String,
    },
    /// The object store holding the output could not be reached or kept
    /// failing (after retries) while setting up, committing or aborting.
    #[error("output {url}: {message}")]
    OutputFailed {
        /// The output URL (or the object's).
        url: String,
        /// The cause.
        message: String,
    },
    /// An object or file that should be there is not: a shuffle object
    /// deleted, a map output gone. Not a refusal: whoever wrote it can
    /// write it again.
    #[error("{url}: no such object or file")]
    Missing {
        /// The location (an `s3://` URL or a path).
        url: String,
    },
    /// Copying data to, from or under a location failed (after retries, for
    /// an object store).
    #[error("{context} {url}: {message}")]
    Transfer {
        /// What was being done (`uploading to`, `reading`, `deleting`).
        context: &'static str,
        /// The location (an `s3://` URL or a path).
        url: String,
        /// The cause.
        message: String,
    },
    /// Committing output failed.
    #[error("{context} {path}: {cause}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file or directory.
        path: String,
        /// The cause (part of the message, not a `source()`).
        cause: io::Error,
    },
}

impl StorageError {
    pub(crate) fn io(context: &'static str, path: &std::path::Path, cause: io::Error) -> StorageError {
        StorageError::Io { context, path: path.display().to_string(), cause }
    }

    /// Whether the error is the job's own fault (bad paths), found before any
    /// work started, rather than a failure of the storage itself.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            StorageError::Input { .. }
                | StorageError::BadLocation { .. }
                | StorageError::S3Config { .. }
                | StorageError::OutputExists { .. }
                | StorageError::OutputUnusable { .. }
                | StorageError::OutputClaimed { .. }
                | StorageError::OutputRefused { .. }
        )
    }
}
