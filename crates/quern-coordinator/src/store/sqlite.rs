//! The SQLite store: the default, one file under `--data-dir`, in WAL mode,
//! through one connection (SQLite has one writer anyway). Its lock is the
//! file `DB.lock` beside the database.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::error::Error;

/// The migrations, embedded at build time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

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

/// The coordinator's state in SQLite.
#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Held as long as the store lives.
    _lock: Option<StateLock>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://PATH` or
    /// `sqlite::memory:`) and applies pending migrations.
    ///
    /// First takes the state's lock (`PATH.lock`; none for an in-memory
    /// database): if another process holds it, fails with [`Error::Locked`],
    /// naming the lock file and the holder's process id, without touching
    /// the database.
    pub async fn open(url: &str) -> Result<SqliteStore, Error> {
        let options: SqliteConnectOptions =
            url.parse().map_err(|e| Error::Database { context: format!("parsing --state {url}"), cause: e })?;
        let lock = lock_path(url, &options).map(|path| StateLock::take(&path)).transpose()?;
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| Error::Database { context: format!("opening {url}"), cause: e })?;
        MIGRATOR.run(&pool).await.map_err(|e| Error::Migrate { url: url.to_owned(), cause: e })?;
        Ok(SqliteStore { pool, _lock: lock })
    }
}

impl_sql_store!(SqliteStore, sqlx::Sqlite);

#[cfg(test)]
mod tests {
    use quern_core::{AttemptId, Counters, TaskId, TaskKind, TaskRecord};

    use super::*;
    use crate::cluster::{Effect, MapOutputLoc, Segment};
    use crate::state::{AttemptEnd, JobPhase, WorkerState};
    use crate::store::{JobUpdate, StoredJob, StoredTask, StoredWorker, open};

    #[tokio::test]
    async fn a_state_is_opened_by_one_store_at_a_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("q.db").display());
        let first = open(&url).await.expect("open");
        let lock = dir.path().join("q.db.lock");
        let again = open(&url).await.expect_err("the state is in use");
        assert!(
            matches!(&again, Error::Locked { path, holder: Some(pid) } if *path == lock && *pid == std::process::id()),
            "{again:?}"
        );
        let message = again.to_string();
        assert!(message.contains(&lock.display().to_string()) && message.contains("pid"), "{message}");
        // A clone shares the lock; the lock goes with the last one.
        let clone = first.clone();
        drop(first);
        assert!(open(&url).await.is_err(), "a clone still holds the lock");
        drop(clone);
        let reopened = open(&url).await.expect("reopen once released");
        assert!(reopened.jobs().await.expect("jobs").is_empty());
        // In-memory states are private to their store: no lock.
        let a = open("sqlite::memory:").await.expect("memory");
        let b = open("sqlite::memory:").await.expect("another memory");
        drop((a, b));
    }

    pub(crate) fn sample_job() -> StoredJob {
        StoredJob {
            id: 0,
            app: "wordcount".into(),
            spec_json: "{}".into(),
            plan_json: "{}".into(),
            priority: 3,
            state: JobPhase::Pending,
            error: String::new(),
            counters: Counters::default(),
            submitted_at_ms: 10,
            started_at_ms: 0,
            finished_at_ms: 0,
        }
    }

    #[tokio::test]
    async fn rows_survive_reopening_the_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("q.db").display());
        let store = open(&url).await.expect("open");
        let mut job = sample_job();
        job.id = store.insert_job(&job).await.expect("insert");
        let mut counters = Counters::default();
        counters.engine.input_records = 7;
        let update = JobUpdate {
            id: job.id,
            state: JobPhase::Running,
            error: String::new(),
            counters: counters.clone(),
            started_at_ms: 11,
            finished_at_ms: 0,
        };
        let task = StoredTask {
            task: TaskId { kind: TaskKind::Map, index: 2 },
            record: TaskRecord { started: 2, failures: 1, committed: Some(2), failed: false },
            map_output: Some(MapOutputLoc {
                worker_id: "w1".into(),
                shuffle_address: "http://127.0.0.1:1".into(),
                path: "/w/m2".into(),
                segments: vec![Segment { offset: 0, len: 10, records: 1, raw_len: 12 }],
            }),
            counters: Some(counters.clone()),
        };
        let a = AttemptId { task: task.task, attempt: 2 };
        let w = StoredWorker {
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
        store
            .apply_all(&[
                Effect::Job(update.clone()),
                Effect::Task(job.id, task.clone()),
                Effect::AttemptStarted { job: job.id, attempt: a, worker: "w1".into(), at_ms: 12 },
                Effect::AttemptEnded {
                    job: job.id,
                    attempt: a,
                    outcome: AttemptEnd::Succeeded,
                    error: String::new(),
                    log: Some(b"log".to_vec()),
                    counters: Some(counters.clone()),
                    at_ms: 13,
                },
                Effect::Worker(w.clone()),
            ])
            .await
            .expect("apply");
        drop(store);

        let store = open(&url).await.expect("reopen");
        job.state = JobPhase::Running;
        job.started_at_ms = 11;
        job.counters = counters;
        assert_eq!(store.jobs().await.expect("jobs"), vec![job.clone()]);
        assert_eq!(store.tasks(job.id).await.expect("tasks"), vec![task.clone()]);
        assert_eq!(store.workers().await.expect("workers"), vec![w]);
        let attempts = store.attempts(job.id, Some(task.task)).await.expect("attempts");
        assert_eq!(attempts.len(), 1);
        assert_eq!((attempts[0].outcome, attempts[0].log.as_slice()), (Some(AttemptEnd::Succeeded), &b"log"[..]));
        assert!(store.attempts(job.id, Some(TaskId { kind: TaskKind::Reduce, index: 0 })).await.expect("a").is_empty());
    }

    #[tokio::test]
    async fn a_map_output_that_does_not_parse_is_an_error_naming_job_task_and_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("q.db").display());
        let store = SqliteStore::open(&url).await.expect("open");
        let id = crate::store::StateStore::insert_job(&store, &sample_job()).await.expect("insert");
        sqlx::query(
            "INSERT INTO tasks (job_id, kind, idx, started, failures, committed, failed, map_output_json, \
             counters_json) VALUES ($1, 'map', 4, 1, 0, 1, false, '{\"worker_id\": 3', '{}')",
        )
        .bind(id as i64)
        .execute(&store.pool)
        .await
        .expect("a corrupt row");
        let e = crate::store::StateStore::tasks(&store, id).await.expect_err("corrupt");
        let message = e.to_string();
        assert!(
            matches!(e, Error::Corrupt(_)) && message.contains(&format!("job {id} task m-00004 field map_output_json")),
            "{message}"
        );
    }
}
