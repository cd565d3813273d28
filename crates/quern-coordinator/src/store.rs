//! Durable state in SQLite, through sqlx, with the migrations in
//! `migrations/`. The coordinator keeps its working state in memory and
//! writes every change here before answering the RPC that caused it, so
//! after `kill -9` and a restart [`Store::jobs`], [`Store::tasks`] and
//! [`Store::workers`] give back every job, task record and worker.
//!
//! Only this module knows SQL. A PostgreSQL store is another implementation
//! of the same functions; the scheduler does not change.
//!
//! One coordinator per state: [`Store::open`] takes an exclusive lock on the
//! state and holds it for the life of the `Store` (for SQLite, a lock on the
//! file `DB.lock` beside the database, which also names the holder's process
//! id; a PostgreSQL store would take an advisory lock). A second coordinator
//! on the same state is refused instead of running the same jobs.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};

use crate::cluster::Effect;

use quern_core::{AttemptId, TaskId, TaskKind, TaskRecord};

use crate::error::Error;
use crate::state::{AttemptEnd, JobPhase, WorkerState};

/// The migrations, embedded at build time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    /// Its id.
    pub id: u64,
    /// The app.
    pub app: String,
    /// `quern_core::JobSpec` as JSON.
    pub spec_json: String,
    /// `quern_core::JobPlan` as JSON.
    pub plan_json: String,
    /// Higher runs first.
    pub priority: i32,
    /// Its state.
    pub state: JobPhase,
    /// Why it failed.
    pub error: String,
    /// `quern_core::Counters` as JSON.
    pub counters_json: String,
    /// Times, in milliseconds since the epoch (0: not yet).
    pub submitted_at_ms: i64,
    /// When the first attempt started.
    pub started_at_ms: i64,
    /// When it ended.
    pub finished_at_ms: i64,
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    /// The task.
    pub task: TaskId,
    /// What the scheduler needs to resume it.
    pub record: TaskRecord,
    /// Where a committed map's output is, as JSON.
    pub map_output_json: Option<String>,
    /// The counters of the committed attempt (`quern_core::Counters` as
    /// JSON).
    pub counters_json: Option<String>,
}

/// A worker as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRow {
    /// Its id.
    pub id: String,
    /// Its host name.
    pub host: String,
    /// Where its shuffle service listens.
    pub shuffle_address: String,
    /// Attempts it runs at once.
    pub slots: u32,
    /// The apps it has.
    pub apps: Vec<String>,
    /// Its build version.
    pub version: String,
    /// Whether it is alive.
    pub state: WorkerState,
    /// When it registered.
    pub registered_at_ms: i64,
    /// Its last heartbeat.
    pub last_heartbeat_ms: i64,
}

/// An attempt's history, as `quern logs` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    /// The attempt.
    pub attempt: AttemptId,
    /// Where it ran.
    pub worker_id: String,
    /// How it ended (`None`: it is running).
    pub outcome: Option<AttemptEnd>,
    /// Its error, if any.
    pub error: String,
    /// Its stderr (last 64 KiB).
    pub log: Vec<u8>,
    /// When it started.
    pub started_at_ms: i64,
    /// When it ended (0: running).
    pub finished_at_ms: i64,
}

fn db(context: &str) -> impl FnOnce(sqlx::Error) -> Error + '_ {
    move |cause| Error::Database { context: context.to_owned(), cause }
}

/// Writes one effect.
async fn write(conn: &mut SqliteConnection, effect: Effect) -> Result<(), Error> {
    match effect {
        Effect::Job(row) => update_job(conn, &row).await,
        Effect::Task(job, row) => save_task(conn, job, &row).await,
        Effect::AttemptStarted { job, attempt, worker, at_ms } => {
            insert_attempt(conn, job, attempt, &worker, at_ms).await
        }
        Effect::AttemptEnded { job, attempt, outcome, error, log, counters_json, at_ms } => {
            finish_attempt(conn, job, attempt, outcome, &error, log.as_deref(), counters_json.as_deref(), at_ms).await
        }
        Effect::Worker(row) => save_worker(conn, &row).await,
    }
}

fn kind_str(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Map => "map",
        TaskKind::Reduce => "reduce",
    }
}

fn kind_of(s: &str) -> Result<TaskKind, Error> {
    match s {
        "map" => Ok(TaskKind::Map),
        "reduce" => Ok(TaskKind::Reduce),
        other => Err(Error::Corrupt(format!("unknown task kind {other:?}"))),
    }
}

fn u32_of(v: i64, what: &str) -> Result<u32, Error> {
    u32::try_from(v).map_err(|_| Error::Corrupt(format!("{what} out of range: {v}")))
}

/// The exclusive lock on a state database, held while it is open.
#[derive(Debug)]
struct StateLock {
    /// Locked; released when closed (on drop, or by the OS when the process
    /// dies, even by `kill -9`).
    _file: File,
}

/// The lock file of the SQLite database `options` opens: `DB.lock` beside it;
/// `None` for an in-memory database, which no other process can open.
fn lock_path(url: &str, options: &SqliteConnectOptions) -> Option<PathBuf> {
    let file = options.get_filename();
    let in_memory = file.to_str().is_some_and(|f| f == ":memory:" || f.starts_with("file:sqlx-in-memory-"))
        || url.split_once('?').is_some_and(|(_, query)| query.split('&').any(|kv| kv == "mode=memory"));
    if in_memory {
        return None;
    }
    let mut name = file.as_os_str().to_owned();
    name.push(".lock");
    Some(PathBuf::from(name))
}

impl StateLock {
    /// Takes the lock at `path` without waiting, and writes this process's
    /// id into the file for whoever finds it taken.
    fn take(path: &Path) -> Result<StateLock, Error> {
        let io = |cause| Error::Lock { path: path.to_owned(), cause };
        let mut file = File::options().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                // The holder may not have written its id yet: then it is unknown.
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim().parse::<u32>().ok();
                return Err(Error::Locked { path: path.to_owned(), holder });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).and_then(|()| file.rewind()).map_err(io)?;
        writeln!(file, "{}", std::process::id()).and_then(|()| file.flush()).map_err(io)?;
        Ok(StateLock { _file: file })
    }
}

/// The coordinator's database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    /// Held as long as any clone of the store lives.
    _lock: Option<Arc<StateLock>>,
}

impl Store {
    /// Opens (creating if needed) the database at `url` (`sqlite://PATH` or
    /// `sqlite::memory:`) and applies pending migrations.
    ///
    /// First takes the state's lock (`PATH.lock`; none for an in-memory
    /// database): if another process holds it, fails with [`Error::Locked`],
    /// naming the lock file and the holder's process id, without touching
    /// the database.
    pub async fn open(url: &str) -> Result<Store, Error> {
        let options: SqliteConnectOptions =
            url.parse().map_err(|e| Error::Database { context: format!("parsing --state {url}"), cause: e })?;
        let lock = lock_path(url, &options).map(|path| StateLock::take(&path)).transpose()?.map(Arc::new);
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true);
        // One connection: SQLite has one writer anyway, and the coordinator
        // serialises its writes.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| Error::Database { context: format!("opening {url}"), cause: e })?;
        MIGRATOR.run(&pool).await.map_err(|e| Error::Migrate { url: url.to_owned(), cause: e })?;
        Ok(Store { pool, _lock: lock })
    }

    /// Stores a new job; returns its id.
    pub async fn insert_job(&self, job: &JobRow) -> Result<u64, Error> {
        let id: i64 = sqlx::query(
            "INSERT INTO jobs (app, spec_json, plan_json, priority, state, submitted_at_ms) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&job.app)
        .bind(&job.spec_json)
        .bind(&job.plan_json)
        .bind(job.priority)
        .bind(job.state.as_str())
        .bind(job.submitted_at_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(db("inserting a job"))?
        .get(0);
        u64::try_from(id).map_err(|_| Error::Corrupt(format!("negative job id {id}")))
    }

    /// Makes one effect of a cluster decision durable.
    pub async fn apply(&self, effect: Effect) -> Result<(), Error> {
        self.apply_all(vec![effect]).await
    }

    /// Makes the effects of one decision durable, in one transaction: all or
    /// nothing, and one commit instead of one per row.
    pub async fn apply_all(&self, effects: Vec<Effect>) -> Result<(), Error> {
        if effects.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(db("starting a transaction"))?;
        for effect in effects {
            write(&mut tx, effect).await?;
        }
        tx.commit().await.map_err(db("committing a transaction"))
    }

    /// Every job, oldest first.
    pub async fn jobs(&self) -> Result<Vec<JobRow>, Error> {
        let rows = sqlx::query(
            "SELECT id, app, spec_json, plan_json, priority, state, error, counters_json, submitted_at_ms, \
             started_at_ms, finished_at_ms FROM jobs ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("loading jobs"))?;
        rows.into_iter()
            .map(|r| {
                Ok(JobRow {
                    id: u64::try_from(r.get::<i64, _>(0)).map_err(|_| Error::Corrupt("negative job id".into()))?,
                    app: r.get(1),
                    spec_json: r.get(2),
                    plan_json: r.get(3),
                    priority: r.get(4),
                    state: JobPhase::parse(r.get(5))?,
                    error: r.get(6),
                    counters_json: r.get(7),
                    submitted_at_ms: r.get(8),
                    started_at_ms: r.get(9),
                    finished_at_ms: r.get(10),
                })
            })
            .collect()
    }

    /// A job's tasks.
    pub async fn tasks(&self, job_id: u64) -> Result<Vec<TaskRow>, Error> {
        let rows = sqlx::query(
            "SELECT kind, idx, started, failures, committed, failed, map_output_json, counters_json FROM tasks \
             WHERE job_id = ?",
        )
        .bind(job_id as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db("loading tasks"))?;
        rows.into_iter()
            .map(|r| {
                let committed: Option<i64> = r.get(4);
                Ok(TaskRow {
                    task: TaskId { kind: kind_of(&r.get::<String, _>(0))?, index: u32_of(r.get(1), "task index")? },
                    record: TaskRecord {
                        started: u32_of(r.get(2), "started")?,
                        failures: u32_of(r.get(3), "failures")?,
                        committed: committed.map(|c| u32_of(c, "committed")).transpose()?,
                        failed: r.get(5),
                    },
                    map_output_json: r.get(6),
                    counters_json: r.get(7),
                })
            })
            .collect()
    }

    /// Every worker ever registered.
    pub async fn workers(&self) -> Result<Vec<WorkerRow>, Error> {
        let rows = sqlx::query(
            "SELECT id, host, shuffle_address, slots, apps_json, version, state, registered_at_ms, \
             last_heartbeat_ms FROM workers ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("loading workers"))?;
        rows.into_iter()
            .map(|r| {
                let apps: String = r.get(4);
                Ok(WorkerRow {
                    id: r.get(0),
                    host: r.get(1),
                    shuffle_address: r.get(2),
                    slots: u32_of(r.get(3), "slots")?,
                    apps: serde_json::from_str(&apps).map_err(|e| Error::Corrupt(e.to_string()))?,
                    version: r.get(5),
                    state: WorkerState::parse(r.get(6))?,
                    registered_at_ms: r.get(7),
                    last_heartbeat_ms: r.get(8),
                })
            })
            .collect()
    }

    /// A job's attempts, optionally of one task only, in order.
    pub async fn attempts(&self, job_id: u64, task: Option<TaskId>) -> Result<Vec<AttemptRow>, Error> {
        let rows = sqlx::query(
            "SELECT kind, idx, attempt, worker_id, outcome, error, log, started_at_ms, finished_at_ms \
             FROM attempts WHERE job_id = ? ORDER BY kind, idx, attempt",
        )
        .bind(job_id as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db("loading attempts"))?;
        let mut out = Vec::new();
        for r in rows {
            let id = TaskId { kind: kind_of(&r.get::<String, _>(0))?, index: u32_of(r.get(1), "task index")? };
            if task.is_some_and(|t| t != id) {
                continue;
            }
            let log: Option<Vec<u8>> = r.get(6);
            out.push(AttemptRow {
                attempt: AttemptId { task: id, attempt: u32_of(r.get(2), "attempt")? },
                worker_id: r.get(3),
                outcome: match r.get::<&str, _>(4) {
                    "running" => None,
                    s => Some(AttemptEnd::parse(s)?),
                },
                error: r.get(5),
                log: log.unwrap_or_default(),
                started_at_ms: r.get(7),
                finished_at_ms: r.get(8),
            });
        }
        Ok(out)
    }
}

// The rows' SQL, shared by single writes and transactions.

/// Updates a job's state, error, counters and times.
async fn update_job(conn: &mut SqliteConnection, job: &JobRow) -> Result<(), Error> {
    sqlx::query(
        "UPDATE jobs SET state = ?, error = ?, counters_json = ?, started_at_ms = ?, finished_at_ms = ? \
         WHERE id = ?",
    )
    .bind(job.state.as_str())
    .bind(&job.error)
    .bind(&job.counters_json)
    .bind(job.started_at_ms)
    .bind(job.finished_at_ms)
    .bind(job.id as i64)
    .execute(&mut *conn)
    .await
    .map_err(db("updating a job"))?;
    Ok(())
}

/// Saves a task's record (insert or replace).
async fn save_task(conn: &mut SqliteConnection, job_id: u64, task: &TaskRow) -> Result<(), Error> {
    let r = task.record;
    sqlx::query(
        "INSERT INTO tasks (job_id, kind, idx, started, failures, committed, failed, map_output_json, counters_json) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (job_id, kind, idx) DO UPDATE SET started = excluded.started, \
         failures = excluded.failures, committed = excluded.committed, failed = excluded.failed, \
         map_output_json = excluded.map_output_json, counters_json = excluded.counters_json",
    )
    .bind(job_id as i64)
    .bind(kind_str(task.task.kind))
    .bind(i64::from(task.task.index))
    .bind(i64::from(r.started))
    .bind(i64::from(r.failures))
    .bind(r.committed.map(i64::from))
    .bind(r.failed)
    .bind(task.map_output_json.as_deref())
    .bind(task.counters_json.as_deref())
    .execute(&mut *conn)
    .await
    .map_err(db("saving a task"))?;
    Ok(())
}

/// Records that an attempt started on a worker.
async fn insert_attempt(
    conn: &mut SqliteConnection,
    job_id: u64,
    attempt: AttemptId,
    worker: &str,
    now_ms: i64,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT OR REPLACE INTO attempts (job_id, kind, idx, attempt, worker_id, started_at_ms) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(job_id as i64)
    .bind(kind_str(attempt.task.kind))
    .bind(i64::from(attempt.task.index))
    .bind(i64::from(attempt.attempt))
    .bind(worker)
    .bind(now_ms)
    .execute(&mut *conn)
    .await
    .map_err(db("recording an attempt"))?;
    Ok(())
}

/// Records how an attempt ended.
#[allow(clippy::too_many_arguments)]
async fn finish_attempt(
    conn: &mut SqliteConnection,
    job_id: u64,
    attempt: AttemptId,
    outcome: AttemptEnd,
    error: &str,
    log: Option<&[u8]>,
    counters_json: Option<&str>,
    now_ms: i64,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE attempts SET outcome = ?, error = ?, log = COALESCE(?, log), counters_json = ?, finished_at_ms = ? \
         WHERE job_id = ? AND kind = ? AND idx = ? AND attempt = ?",
    )
    .bind(outcome.as_str())
    .bind(error)
    .bind(log)
    .bind(counters_json)
    .bind(now_ms)
    .bind(job_id as i64)
    .bind(kind_str(attempt.task.kind))
    .bind(i64::from(attempt.task.index))
    .bind(i64::from(attempt.attempt))
    .execute(&mut *conn)
    .await
    .map_err(db("finishing an attempt"))?;
    Ok(())
}

/// Saves a worker (insert or replace).
async fn save_worker(conn: &mut SqliteConnection, w: &WorkerRow) -> Result<(), Error> {
    let apps = serde_json::to_string(&w.apps).map_err(|e| Error::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT OR REPLACE INTO workers (id, host, shuffle_address, slots, apps_json, version, state, \
         registered_at_ms, last_heartbeat_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&w.id)
    .bind(&w.host)
    .bind(&w.shuffle_address)
    .bind(i64::from(w.slots))
    .bind(apps)
    .bind(&w.version)
    .bind(w.state.as_str())
    .bind(w.registered_at_ms)
    .bind(w.last_heartbeat_ms)
    .execute(&mut *conn)
    .await
    .map_err(db("saving a worker"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_state_is_opened_by_one_store_at_a_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("q.db").display());
        let first = Store::open(&url).await.expect("open");
        let lock = dir.path().join("q.db.lock");
        let again = Store::open(&url).await.expect_err("the state is in use");
        assert!(
            matches!(&again, Error::Locked { path, holder: Some(pid) } if *path == lock && *pid == std::process::id()),
            "{again:?}"
        );
        let message = again.to_string();
        assert!(message.contains(&lock.display().to_string()) && message.contains("pid"), "{message}");
        // A clone shares the lock; the lock goes with the last one.
        let clone = first.clone();
        drop(first);
        assert!(Store::open(&url).await.is_err(), "a clone still holds the lock");
        drop(clone);
        let reopened = Store::open(&url).await.expect("reopen once released");
        assert!(reopened.jobs().await.expect("jobs").is_empty());
        // In-memory states are private to their store: no lock.
        let a = Store::open("sqlite::memory:").await.expect("memory");
        let b = Store::open("sqlite::memory:").await.expect("another memory");
        drop((a, b));
    }

    #[tokio::test]
    async fn rows_survive_reopening_the_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("q.db").display());
        let store = Store::open(&url).await.expect("open");
        let mut job = JobRow {
            id: 0,
            app: "wordcount".into(),
            spec_json: "{}".into(),
            plan_json: "{}".into(),
            priority: 3,
            state: JobPhase::Pending,
            error: String::new(),
            counters_json: "{}".into(),
            submitted_at_ms: 10,
            started_at_ms: 0,
            finished_at_ms: 0,
        };
        job.id = store.insert_job(&job).await.expect("insert");
        job.state = JobPhase::Running;
        job.started_at_ms = 11;
        store.apply(Effect::Job(job.clone())).await.expect("update");
        let task = TaskRow {
            task: TaskId { kind: TaskKind::Map, index: 2 },
            record: TaskRecord { started: 2, failures: 1, committed: Some(2), failed: false },
            map_output_json: Some(r#"{"w":1}"#.into()),
            counters_json: Some("{}".into()),
        };
        store.apply(Effect::Task(job.id, task.clone())).await.expect("task");
        let a = AttemptId { task: task.task, attempt: 2 };
        store
            .apply_all(vec![
                Effect::AttemptStarted { job: job.id, attempt: a, worker: "w1".into(), at_ms: 12 },
                Effect::AttemptEnded {
                    job: job.id,
                    attempt: a,
                    outcome: AttemptEnd::Succeeded,
                    error: String::new(),
                    log: Some(b"log".to_vec()),
                    counters_json: Some("{}".into()),
                    at_ms: 13,
                },
            ])
            .await
            .expect("attempt");
        let w = WorkerRow {
            id: "w1".into(),
            host: "h".into(),
            shuffle_address: "http://127.0.0.1:1".into(),
            slots: 2,
            apps: vec!["wordcount".into()],
            version: "0.1.0".into(),
            state: WorkerState::Alive,
            registered_at_ms: 1,
            last_heartbeat_ms: 2,
        };
        store.apply(Effect::Worker(w.clone())).await.expect("worker");
        drop(store);

        let store = Store::open(&url).await.expect("reopen");
        assert_eq!(store.jobs().await.expect("jobs"), vec![job.clone()]);
        assert_eq!(store.tasks(job.id).await.expect("tasks"), vec![task.clone()]);
        assert_eq!(store.workers().await.expect("workers"), vec![w]);
        let attempts = store.attempts(job.id, Some(task.task)).await.expect("attempts");
        assert_eq!(attempts.len(), 1);
        assert_eq!((attempts[0].outcome, attempts[0].log.as_slice()), (Some(AttemptEnd::Succeeded), &b"log"[..]));
        assert!(store.attempts(job.id, Some(TaskId { kind: TaskKind::Reduce, index: 0 })).await.expect("a").is_empty());
    }
}
