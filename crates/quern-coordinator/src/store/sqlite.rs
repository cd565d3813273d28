//! The SQLite store: the default, one file under `--data-dir`, in WAL mode,
//! through one connection (SQLite has one writer anyway). Its lock is the
//! file `DB.lock` beside the database.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::error::Error;

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
        SqliteStore::open_with(url, true).await
    }

    /// Opens the database without the coordinator's lock: for administration
    /// beside a running coordinator (users), never for a coordinator.
    pub async fn open_unlocked(url: &str) -> Result<SqliteStore, Error> {
        SqliteStore::open_with(url, false).await
    }

    async fn open_with(url: &str, take_lock: bool) -> Result<SqliteStore, Error> {
        let options: SqliteConnectOptions =
            url.parse().map_err(|e| Error::Database { context: format!("parsing --state {url}"), cause: e })?;
        let lock = match lock_path(url, &options) {
            Some(path) if take_lock => Some(StateLock::take(&path)?),
            _ => None,
        };
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
        super::migrations::sqlite().run(&pool).await.map_err(|e| Error::Migrate { url: url.to_owned(), cause: e })?;
        Ok(SqliteStore { pool, _lock: lock })
    }
}

impl_sql_store!(SqliteStore, sqlx::Sqlite);

#[cfg(test)]
mod tests {
    use quern_core::Counters;

    use super::*;
    use crate::state::JobPhase;
    use crate::store::{StoredJob, open};

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

    fn sample_job() -> StoredJob {
        StoredJob {
            id: quern_core::JobId(0),
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
            owner: "ann".into(),
        }
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
        .bind(id.0 as i64)
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
