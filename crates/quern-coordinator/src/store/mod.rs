//! The coordinator's durable state, behind one trait with two
//! implementations: SQLite (the default, a file under `--data-dir`) and
//! PostgreSQL (for shared deployments). The coordinator keeps its working
//! state in memory and writes every change here before it answers the
//! request that caused it, so after `kill -9` and a restart
//! [`StateStore::jobs`], [`StateStore::tasks`] and [`StateStore::workers`]
//! give back every job, task record and worker.
//!
//! The trait speaks in records ([`StoredJob`], [`StoredTask`],
//! [`StoredWorker`], [`StoredAttempt`]) and [`Effect`]s with typed fields;
//! how they become rows (JSON columns, state names, integer widths) is
//! private to the implementations, which share their SQL (`sql.rs`). Nothing
//! else in the crate knows SQL, and the decisions (`cluster`) do not know
//! which store they have.
//!
//! One coordinator per state: [`open`] takes an exclusive lock on the state
//! and holds it for the life of the store (SQLite: a lock on the file
//! `DB.lock` beside the database, naming the holder's process id;
//! PostgreSQL: a session-level advisory lock). A second coordinator on the
//! same state is refused instead of running the same jobs.
//!
//! Stored data that does not parse is an error naming the job, task or
//! worker and the field ([`Error::Corrupt`]), never a default.

use std::sync::Arc;

use quern_core::{AttemptId, Counters, JobId, TaskId, TaskRecord, WorkerId};

use crate::cluster::{Effect, MapOutputLoc};
use crate::error::Error;
use crate::state::{AttemptEnd, JobPhase, WorkerState};

#[macro_use]
mod sql;

mod migrations;
mod postgres;
mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredJob {
    /// Its id (0 before it is inserted).
    pub id: JobId,
    /// The app.
    pub app: String,
    /// `quern_core::JobSpec` as the engine's JSON (sent to workers as is).
    pub spec_json: String,
    /// `quern_core::JobPlan` as the engine's JSON (sent to workers as is).
    pub plan_json: String,
    /// Higher runs first.
    pub priority: i32,
    /// Its state.
    pub state: JobPhase,
    /// Why it failed.
    pub error: String,
    /// Its counters.
    pub counters: Counters,
    /// Times, in milliseconds since the epoch (0: not yet).
    pub submitted_at_ms: i64,
    /// When the first attempt started.
    pub started_at_ms: i64,
    /// When it ended.
    pub finished_at_ms: i64,
    /// The user who submitted it (empty: submitted with the cluster token).
    pub owner: String,
}

/// What changes of a job once it is stored: its state, error, counters and
/// times (the spec and plan never change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUpdate {
    /// The job.
    pub id: JobId,
    /// Its state.
    pub state: JobPhase,
    /// Why it failed.
    pub error: String,
    /// Its counters.
    pub counters: Counters,
    /// When the first attempt started (0: not yet).
    pub started_at_ms: i64,
    /// When it ended (0: not yet).
    pub finished_at_ms: i64,
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTask {
    /// The task.
    pub task: TaskId,
    /// What the scheduler needs to resume it.
    pub record: TaskRecord,
    /// Where a committed map's output is.
    pub map_output: Option<MapOutputLoc>,
    /// The counters of the committed attempt.
    pub counters: Option<Counters>,
}

/// A worker as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWorker {
    /// Its id.
    pub id: WorkerId,
    /// Its host name.
    pub host: String,
    /// Where its shuffle service listens.
    pub shuffle_address: String,
    /// Attempts it runs at once.
    pub slots: u32,
    /// The apps it has, with their help and parameters.
    pub apps: Vec<quern_core::AppInfo>,
    /// Its build version.
    pub version: String,
    /// Whether it is alive.
    pub state: WorkerState,
    /// Whether an admin drained or deregistered it.
    pub admin: crate::state::WorkerAdmin,
    /// When it registered.
    pub registered_at_ms: i64,
    /// Its last heartbeat.
    pub last_heartbeat_ms: i64,
}

impl StoredWorker {
    /// Whether it has the app called `name`.
    pub fn offers(&self, name: &str) -> bool {
        self.apps.iter().any(|a| a.name == name)
    }

    /// The names of its apps.
    pub fn app_names(&self) -> Vec<String> {
        self.apps.iter().map(|a| a.name.clone()).collect()
    }
}

/// An attempt's history, as `quern logs` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAttempt {
    /// The attempt.
    pub attempt: AttemptId,
    /// Where it ran.
    pub worker_id: WorkerId,
    /// How it ended (`None`: it is running).
    pub outcome: Option<AttemptEnd>,
    /// Its error, if any.
    pub error: String,
    /// Its stderr (last 64 KiB).
    pub log: Vec<u8>,
    /// The digest of what it wrote, when it succeeded ("" otherwise, and
    /// for attempts recorded before digests were).
    pub output_digest: String,
    /// When it started.
    pub started_at_ms: i64,
    /// When it ended (0: running).
    pub finished_at_ms: i64,
}

/// A user of the REST API and the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUser {
    /// Its name (unique).
    pub name: String,
    /// What it may do.
    pub role: crate::state::Role,
    /// An argon2 hash of its password (a PHC string: algorithm, salt, hash).
    pub password_hash: String,
    /// When it was created.
    pub created_at_ms: i64,
}

/// A chain of jobs (a multi-step job): its spec, and the job of each step
/// submitted so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChain {
    /// Its id: the id of its first step's first job.
    pub id: JobId,
    /// The user who submitted it ("" for the cluster token).
    pub owner: String,
    /// Its jobs' priority.
    pub priority: i32,
    /// The `quern_core::ChainSpec`, as JSON.
    pub spec_json: String,
    /// The job running (or last run) for each step; `None` for steps not
    /// submitted yet.
    pub jobs: Vec<Option<JobId>>,
    /// Where it is.
    pub state: crate::state::ChainPhase,
    /// Why it failed ("" otherwise).
    pub error: String,
}

/// A store of the coordinator's state. Every method is one transaction:
/// all of it or none of it.
#[async_trait::async_trait]
pub trait StateStore: Send + Sync + std::fmt::Debug {
    /// Stores a new job; returns its id.
    async fn insert_job(&self, job: &StoredJob) -> Result<JobId, Error>;

    /// Makes effects durable, in one transaction: all or nothing. Effects on
    /// the same row are applied in order (the last one wins).
    async fn apply_all(&self, effects: &[Effect]) -> Result<(), Error>;

    /// Every job, oldest first.
    async fn jobs(&self) -> Result<Vec<StoredJob>, Error>;

    /// A job's tasks (those that ever started).
    async fn tasks(&self, job: JobId) -> Result<Vec<StoredTask>, Error>;

    /// Every worker ever registered, by id.
    async fn workers(&self) -> Result<Vec<StoredWorker>, Error>;

    /// Stores a user, or changes its role and password.
    async fn put_user(&self, user: &StoredUser) -> Result<(), Error>;

    /// Every user, by name.
    async fn users(&self) -> Result<Vec<StoredUser>, Error>;

    /// Removes a user; false if there was none of that name.
    async fn remove_user(&self, name: &str) -> Result<bool, Error>;

    /// Stores a chain, or its new state.
    async fn put_chain(&self, chain: &StoredChain) -> Result<(), Error>;

    /// Every chain, by id.
    async fn chains(&self) -> Result<Vec<StoredChain>, Error>;

    /// A job's events, oldest first.
    async fn job_events(&self, job: JobId) -> Result<Vec<crate::cluster::JobEvent>, Error>;

    /// A job's attempts (of one task, if given), by task and attempt; with
    /// their logs if `logs` (otherwise each log is empty).
    async fn attempts(&self, job: JobId, task: Option<TaskId>, logs: bool) -> Result<Vec<StoredAttempt>, Error>;

    /// A job's attempts that have started and not ended, without their logs.
    async fn running_attempts(&self, job: JobId) -> Result<Vec<StoredAttempt>, Error>;

    /// Everything a coordinator restores from: every job (with the tasks and
    /// running attempts of those that have not ended) and every worker.
    async fn load(&self) -> Result<SavedState, Error> {
        let mut jobs = Vec::new();
        for job in self.jobs().await? {
            let (tasks, running) = if job.state.is_terminal() {
                (Vec::new(), Vec::new())
            } else {
                (self.tasks(job.id).await?, self.running_attempts(job.id).await?)
            };
            jobs.push(SavedJob { job, tasks, running });
        }
        Ok(SavedState { jobs, workers: self.workers().await? })
    }
}

/// A job as a coordinator restores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedJob {
    /// The job.
    pub job: StoredJob,
    /// Its tasks that ever started (none for an ended job).
    pub tasks: Vec<StoredTask>,
    /// Its attempts that started and did not end (none for an ended job).
    pub running: Vec<StoredAttempt>,
}

/// Everything a coordinator restores from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedState {
    /// Every job, oldest first.
    pub jobs: Vec<SavedJob>,
    /// Every worker ever registered.
    pub workers: Vec<StoredWorker>,
}

/// A shared store.
pub type Store = Arc<dyn StateStore>;

/// Opens the state at `url` like [`open`] but without the coordinator's
/// lock: for administration beside a running coordinator (its users, which
/// it reads at each login), never for running a coordinator.
pub async fn open_unlocked(url: &str) -> Result<Store, Error> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open_unlocked(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open_unlocked(url).await?))
    } else {
        Err(Error::StateUrl(redact(url)))
    }
}

/// Opens (creating and migrating it if needed) the state at `url`:
/// `sqlite://PATH` (or `sqlite::memory:`) or `postgres://…`
/// (`postgresql://…`), taking its lock (see the module docs).
pub async fn open(url: &str) -> Result<Store, Error> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(url).await?))
    } else {
        Err(Error::StateUrl(redact(url)))
    }
}

/// `url` without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    match path {
        Some(p) => format!("{scheme}://{authority}/{p}"),
        None => format!("{scheme}://{authority}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(redact("postgres://quern:s3cret@db:5432/q"), "postgres://quern:***@db:5432/q");
        assert_eq!(redact("postgres://quern@db/q"), "postgres://quern@db/q");
        assert_eq!(redact("sqlite:///var/q.db"), "sqlite:///var/q.db");
        assert_eq!(redact("postgresql://u:p@h"), "postgresql://u:***@h");
    }

    #[tokio::test]
    async fn an_unknown_scheme_is_refused_by_name() {
        let e = open("mysql://u:pw@h/db").await.expect_err("not a state store");
        let message = e.to_string();
        assert!(message.contains("mysql://u:***@h/db") && message.contains("postgres://"), "{message}");
    }
}
