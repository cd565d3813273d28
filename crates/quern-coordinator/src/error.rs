//! The coordinator's errors, and their mapping to gRPC statuses.
//!
//! A message either includes its cause, which is then not also returned as
//! `source()`, or leaves it to `source()`: never both, or a report printing
//! the chain would show the cause twice.

/// Why a coordinator operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database failed.
    #[error("{context}: {cause}")]
    Database {
        /// What was being done.
        context: String,
        /// The cause (part of the message, not a `source()`).
        cause: sqlx::Error,
    },
    /// Applying migrations failed.
    #[error("migrating {url}: {cause}")]
    Migrate {
        /// The database.
        url: String,
        /// The cause (part of the message, not a `source()`).
        cause: sqlx::migrate::MigrateError,
    },
    /// Another process (a coordinator) holds the state's lock.
    #[error(
        "the coordinator state is in use: {} is locked by {}; stop that coordinator or choose another --data-dir",
        path.display(),
        holder.map_or_else(|| "another process".to_owned(), |pid| format!("pid {pid}"))
    )]
    Locked {
        /// The lock file.
        path: std::path::PathBuf,
        /// The holder's process id, as it wrote it in the lock file.
        holder: Option<u32>,
    },
    /// Another coordinator holds the advisory lock of a PostgreSQL state.
    #[error(
        "the coordinator state is in use: {url} is locked by {holder}; stop that coordinator or choose another --state"
    )]
    LockedDatabase {
        /// The database (without its password).
        url: String,
        /// Who holds the lock, as far as the database shows.
        holder: String,
    },
    /// `--state` names no store quern has.
    #[error("--state {0}: not a state store; use sqlite://PATH or postgres://USER@HOST/DATABASE")]
    StateUrl(String),
    /// The state's lock file could not be opened or locked.
    #[error("locking the coordinator state with {}: {cause}", path.display())]
    Lock {
        /// The lock file.
        path: std::path::PathBuf,
        /// The cause (part of the message, not a `source()`).
        cause: std::io::Error,
    },
    /// Stored data does not make sense.
    #[error("corrupt coordinator state: {0}")]
    Corrupt(String),
    /// A request is malformed or refers to nothing (a buggy or stale peer).
    #[error("{0}")]
    BadRequest(String),
    /// A job was refused at submit time.
    #[error("{0}")]
    Refused(String),
    /// The coordinator cannot store (or reload) its state just now; nothing
    /// was changed, and the same request may be retried.
    #[error("{0}")]
    Unavailable(String),
    /// No such job.
    #[error("no job {0}")]
    NoSuchJob(quern_core::JobId),
    /// No such worker.
    #[error("no worker {0}")]
    NoSuchWorker(String),
    /// The cluster token is unusable.
    #[error(transparent)]
    Token(#[from] quern_proto::TokenError),
    /// Serving failed. tonic's error does not print its own cause, so this
    /// one is a chain: the message, then tonic's error as the `source()`.
    #[error("serving gRPC")]
    Transport(#[from] tonic::transport::Error),
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> tonic::Status {
        match &e {
            Error::BadRequest(_) => tonic::Status::invalid_argument(e.to_string()),
            Error::Refused(_) => tonic::Status::failed_precondition(e.to_string()),
            Error::NoSuchJob(_) | Error::NoSuchWorker(_) => tonic::Status::not_found(e.to_string()),
            Error::Unavailable(_) => tonic::Status::unavailable(e.to_string()),
            _ => tonic::Status::internal(e.to_string()),
        }
    }
}
