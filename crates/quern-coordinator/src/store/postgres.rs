//! The PostgreSQL store, for shared deployments (`--state postgres://…`).
//! Its lock is a session-level advisory lock held by one connection kept
//! open for the life of the store: PostgreSQL releases it when that session
//! ends, however the coordinator died.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool, Row};

use super::redact;
use crate::error::Error;

/// The advisory lock's key: ("quer", 1), the coordinator's state.
const LOCK_KEY: (i32, i32) = (0x7175_6572, 1);

/// The coordinator's state in PostgreSQL.
#[derive(Debug)]
pub struct PostgresStore {
    pool: PgPool,
    /// The session holding the advisory lock (none when opened for
    /// administration).
    _lock: Option<std::sync::Mutex<PgConnection>>,
}

impl PostgresStore {
    /// Connects to `url`, takes the state's advisory lock (refusing with
    /// [`Error::LockedDatabase`] if another coordinator holds it) and
    /// applies pending migrations.
    pub async fn open(url: &str) -> Result<PostgresStore, Error> {
        let shown = redact(url);
        let options: PgConnectOptions =
            url.parse().map_err(|e| Error::Database { context: format!("parsing --state {shown}"), cause: e })?;
        let mut lock = options
            .connect()
            .await
            .map_err(|e| Error::Database { context: format!("connecting to {shown}"), cause: e })?;
        let locked: bool = sqlx::query("SELECT pg_try_advisory_lock($1, $2)")
            .bind(LOCK_KEY.0)
            .bind(LOCK_KEY.1)
            .fetch_one(&mut lock)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| Error::Database { context: format!("locking the state in {shown}"), cause: e })?;
        if !locked {
            let holder = holder(&mut lock).await;
            let _ = lock.close().await;
            return Err(Error::LockedDatabase { url: shown, holder });
        }
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| Error::Database { context: format!("connecting to {shown}"), cause: e })?;
        super::migrations::postgres().run(&pool).await.map_err(|e| Error::Migrate { url: shown, cause: e })?;
        Ok(PostgresStore { pool, _lock: Some(std::sync::Mutex::new(lock)) })
    }

    /// Connects to `url` without the coordinator's lock: for administration
    /// beside a running coordinator (users), never for a coordinator.
    pub async fn open_unlocked(url: &str) -> Result<PostgresStore, Error> {
        let shown = redact(url);
        let options: PgConnectOptions =
            url.parse().map_err(|e| Error::Database { context: format!("parsing --state {shown}"), cause: e })?;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| Error::Database { context: format!("connecting to {shown}"), cause: e })?;
        super::migrations::postgres().run(&pool).await.map_err(|e| Error::Migrate { url: shown, cause: e })?;
        Ok(PostgresStore { pool, _lock: None })
    }
}

/// Who holds the state's lock: its backend's process id and client address,
/// as far as this connection may see them.
async fn holder(conn: &mut PgConnection) -> String {
    let row = sqlx::query(
        "SELECT a.pid, COALESCE(host(a.client_addr), 'a local socket') FROM pg_locks l \
         JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.granted LIMIT 1",
    )
    .bind(i64::from(LOCK_KEY.0))
    .bind(i64::from(LOCK_KEY.1))
    .fetch_optional(conn)
    .await;
    match row {
        Ok(Some(r)) => match (r.try_get::<i32, _>(0), r.try_get::<String, _>(1)) {
            (Ok(pid), Ok(client)) => format!("the session of backend pid {pid} from {client}"),
            _ => "another session".into(),
        },
        _ => "another session".into(),
    }
}

impl_sql_store!(PostgresStore, sqlx::Postgres);
