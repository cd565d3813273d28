//! The SQL both stores share, and how records become rows and back.
//!
//! The statements are written once, with `$N` placeholders (which SQLite
//! and PostgreSQL both accept) and `sqlx::QueryBuilder` for the batched
//! writes; `impl_sql_store!` stamps them out for each sqlx database, whose
//! connection types differ. The schemas (`migrations/sqlite`,
//! `migrations/postgres`) have the same tables and columns, which a test
//! checks; every integer column is 64-bit.

use std::collections::BTreeMap;

use quern_core::{AttemptId, Counters, JobId, TaskId, TaskKind};

use crate::cluster::{Effect, MapOutputLoc};
use crate::error::Error;
use crate::state::AttemptEnd;

use super::{JobUpdate, StoredTask, StoredWorker};

/// Rows per batched statement: well under both databases' limits on bound
/// parameters (at most 11 per row).
pub(super) const BATCH_ROWS: usize = 500;

pub(super) fn db(context: &str) -> impl FnOnce(sqlx::Error) -> Error + '_ {
    move |cause| Error::Database { context: context.to_owned(), cause }
}

pub(super) fn kind_str(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Map => "map",
        TaskKind::Reduce => "reduce",
    }
}

pub(super) fn kind_of(s: &str, whose: &dyn Fn() -> String) -> Result<TaskKind, Error> {
    match s {
        "map" => Ok(TaskKind::Map),
        "reduce" => Ok(TaskKind::Reduce),
        other => Err(Error::Corrupt(format!("{}: unknown task kind {other:?}", whose()))),
    }
}

pub(super) fn u32_of(v: i64, field: &str, whose: &dyn Fn() -> String) -> Result<u32, Error> {
    u32::try_from(v).map_err(|_| Error::Corrupt(format!("{} field {field}: out of range: {v}", whose())))
}

pub(super) fn u64_of(v: i64, field: &str, whose: &dyn Fn() -> String) -> Result<u64, Error> {
    u64::try_from(v).map_err(|_| Error::Corrupt(format!("{} field {field}: negative: {v}", whose())))
}

/// Parses a JSON column, naming the record and the field when it does not.
pub(super) fn json_of<T: serde::de::DeserializeOwned>(
    text: &str,
    field: &str,
    whose: &dyn Fn() -> String,
) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt(format!("{} field {field}: {e}", whose())))
}

/// A worker's app as stored: its name, help and parameters since migration
/// 0004, its bare name in rows written before.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum StoredApp {
    Named(String),
    Described(quern_core::AppInfo),
}

/// Reads a worker's stored apps (either form).
pub(super) fn apps_of(text: &str, whose: &dyn Fn() -> String) -> Result<Vec<quern_core::AppInfo>, Error> {
    let apps: Vec<StoredApp> = json_of(text, "apps_json", whose)?;
    Ok(apps
        .into_iter()
        .map(|a| match a {
            StoredApp::Named(name) => quern_core::AppInfo::named(name),
            StoredApp::Described(info) => info,
        })
        .collect())
}

/// Names the record and field of a corrupt stored state name.
pub(super) fn named<T>(parsed: Result<T, Error>, field: &str, whose: &dyn Fn() -> String) -> Result<T, Error> {
    parsed.map_err(|e| match e {
        Error::Corrupt(m) => Error::Corrupt(format!("{} field {field}: {m}", whose())),
        other => other,
    })
}

pub(super) fn json<T: serde::Serialize>(value: &T, what: &str) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::Corrupt(format!("encoding {what}: {e}")))
}

/// An attempt's start, ready to bind.
pub(super) struct StartRow<'a> {
    pub job: i64,
    pub attempt: AttemptId,
    pub worker: &'a str,
    pub at_ms: i64,
}

/// An attempt's end, ready to bind.
pub(super) struct EndRow<'a> {
    pub job: i64,
    pub attempt: AttemptId,
    pub outcome: AttemptEnd,
    pub error: &'a str,
    pub log: Option<&'a [u8]>,
    pub counters_json: Option<String>,
    pub output_digest: &'a str,
    pub at_ms: i64,
}

/// A task's record, ready to bind.
pub(super) struct TaskRow {
    pub job: i64,
    pub task: StoredTask,
    pub map_output_json: Option<String>,
    pub counters_json: Option<String>,
}

/// A batch of effects, folded so that each row is written once (the last
/// change wins), in the order the statements must run: jobs, tasks, attempt
/// starts, attempt ends, workers, job events (appended, in order).
#[derive(Default)]
pub(super) struct Batch<'a> {
    pub jobs: BTreeMap<JobId, (&'a JobUpdate, String)>,
    pub tasks: BTreeMap<(JobId, TaskId), TaskRow>,
    pub starts: BTreeMap<(JobId, TaskId, u32), StartRow<'a>>,
    pub ends: BTreeMap<(JobId, TaskId, u32), EndRow<'a>>,
    pub workers: BTreeMap<&'a str, (&'a StoredWorker, String)>,
    pub events: Vec<&'a crate::cluster::JobEvent>,
}

impl<'a> Batch<'a> {
    pub(super) fn of(effects: &'a [Effect]) -> Result<Batch<'a>, Error> {
        let mut b = Batch::default();
        for effect in effects {
            match effect {
                Effect::Job(update) => {
                    let counters = json(&update.counters, "a job's counters")?;
                    b.jobs.insert(update.id, (update, counters));
                }
                Effect::Task(job, task) => {
                    let map_output_json =
                        task.map_output.as_ref().map(|l: &MapOutputLoc| json(l, "a map output")).transpose()?;
                    let counters_json =
                        task.counters.as_ref().map(|c: &Counters| json(c, "a task's counters")).transpose()?;
                    let row = TaskRow { job: job.0 as i64, task: task.clone(), map_output_json, counters_json };
                    b.tasks.insert((*job, task.task), row);
                }
                Effect::AttemptStarted { job, attempt, worker, at_ms } => {
                    let row = StartRow { job: job.0 as i64, attempt: *attempt, worker: worker.as_str(), at_ms: *at_ms };
                    b.starts.insert((*job, attempt.task, attempt.attempt), row);
                }
                Effect::AttemptEnded { job, attempt, outcome, error, log, counters, output_digest, at_ms } => {
                    let counters_json = counters.as_ref().map(|c| json(c, "an attempt's counters")).transpose()?;
                    let key = (*job, attempt.task, attempt.attempt);
                    let earlier_log = b.ends.get(&key).and_then(|e| e.log);
                    let row = EndRow {
                        job: job.0 as i64,
                        attempt: *attempt,
                        outcome: *outcome,
                        error,
                        log: log.as_deref().or(earlier_log),
                        counters_json,
                        output_digest: output_digest.as_deref().unwrap_or_default(),
                        at_ms: *at_ms,
                    };
                    b.ends.insert(key, row);
                }
                Effect::Worker(w) => {
                    b.workers.insert(w.id.as_str(), (w, json(&w.apps, "a worker's apps")?));
                }
                Effect::JobEvent(event) => b.events.push(event),
            }
        }
        Ok(b)
    }
}

/// Implements the shared SQL for a store type with a `pool: sqlx::Pool<$db>`
/// field.
macro_rules! impl_sql_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// An attempt as stored, from a row of `kind, idx, attempt,
            /// worker_id, outcome, error, log, started_at_ms, finished_at_ms`.
            fn attempt_of(
                job: quern_core::JobId,
                r: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::store::StoredAttempt, $crate::error::Error> {
                use $crate::store::sql::{db, kind_of, named, u32_of};
                use sqlx::Row;
                let e = || db("loading attempts");
                let kind: String = r.try_get("kind").map_err(e())?;
                let idx: i64 = r.try_get("idx").map_err(e())?;
                let number: i64 = r.try_get("attempt").map_err(e())?;
                let whose = || format!("job {job} attempt {kind} {idx} #{number}");
                let id = quern_core::TaskId { kind: kind_of(&kind, &whose)?, index: u32_of(idx, "idx", &whose)? };
                let outcome: String = r.try_get("outcome").map_err(e())?;
                let log: Option<Vec<u8>> = r.try_get("log").map_err(e())?;
                Ok($crate::store::StoredAttempt {
                    attempt: quern_core::AttemptId { task: id, attempt: u32_of(number, "attempt", &whose)? },
                    worker_id: quern_core::WorkerId::new(r.try_get::<String, _>("worker_id").map_err(e())?),
                    outcome: match outcome.as_str() {
                        "running" => None,
                        s => Some(named($crate::state::AttemptEnd::parse(s), "outcome", &whose)?),
                    },
                    error: r.try_get("error").map_err(e())?,
                    output_digest: r.try_get("output_digest").map_err(e())?,
                    log: log.unwrap_or_default(),
                    started_at_ms: r.try_get("started_at_ms").map_err(e())?,
                    finished_at_ms: r.try_get("finished_at_ms").map_err(e())?,
                })
            }

            async fn write_batch(&self, effects: &[$crate::cluster::Effect]) -> Result<(), $crate::error::Error> {
                use $crate::store::sql::{BATCH_ROWS, Batch, db, kind_str};
                if effects.is_empty() {
                    return Ok(());
                }
                let batch = Batch::of(effects)?;
                let mut tx = self.pool.begin().await.map_err(db("starting a transaction"))?;
                for (update, counters) in batch.jobs.values() {
                    sqlx::query(
                        "UPDATE jobs SET state = $1, error = $2, counters_json = $3, started_at_ms = $4, \
                         finished_at_ms = $5 WHERE id = $6",
                    )
                    .bind(update.state.as_str())
                    .bind(&update.error)
                    .bind(counters)
                    .bind(update.started_at_ms)
                    .bind(update.finished_at_ms)
                    .bind(update.id.0 as i64)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("updating a job"))?;
                }
                let tasks: Vec<_> = batch.tasks.values().collect();
                for chunk in tasks.chunks(BATCH_ROWS) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO tasks (job_id, kind, idx, started, failures, committed, failed, \
                         map_output_json, counters_json) ",
                    );
                    q.push_values(chunk, |mut b, t| {
                        let r = t.task.record;
                        b.push_bind(t.job)
                            .push_bind(kind_str(t.task.task.kind))
                            .push_bind(i64::from(t.task.task.index))
                            .push_bind(i64::from(r.started))
                            .push_bind(i64::from(r.failures))
                            .push_bind(r.committed.map(i64::from))
                            .push_bind(r.failed)
                            .push_bind(t.map_output_json.clone())
                            .push_bind(t.counters_json.clone());
                    });
                    q.push(
                        " ON CONFLICT (job_id, kind, idx) DO UPDATE SET started = excluded.started, \
                         failures = excluded.failures, committed = excluded.committed, failed = excluded.failed, \
                         map_output_json = excluded.map_output_json, counters_json = excluded.counters_json",
                    );
                    q.build().execute(&mut *tx).await.map_err(db("saving tasks"))?;
                }
                let starts: Vec<_> = batch.starts.values().collect();
                for chunk in starts.chunks(BATCH_ROWS) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO attempts (job_id, kind, idx, attempt, worker_id, started_at_ms) ",
                    );
                    q.push_values(chunk, |mut b, s| {
                        b.push_bind(s.job)
                            .push_bind(kind_str(s.attempt.task.kind))
                            .push_bind(i64::from(s.attempt.task.index))
                            .push_bind(i64::from(s.attempt.attempt))
                            .push_bind(s.worker.to_owned())
                            .push_bind(s.at_ms);
                    });
                    q.push(
                        " ON CONFLICT (job_id, kind, idx, attempt) DO UPDATE SET worker_id = excluded.worker_id, \
                         started_at_ms = excluded.started_at_ms",
                    );
                    q.build().execute(&mut *tx).await.map_err(db("recording attempts"))?;
                }
                let ends: Vec<_> = batch.ends.values().collect();
                for chunk in ends.chunks(BATCH_ROWS) {
                    // Every ended attempt was started, so this updates; the
                    // insert's worker and start are never used.
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO attempts (job_id, kind, idx, attempt, worker_id, started_at_ms, outcome, error, \
                         log, counters_json, output_digest, finished_at_ms) ",
                    );
                    q.push_values(chunk, |mut b, e| {
                        b.push_bind(e.job)
                            .push_bind(kind_str(e.attempt.task.kind))
                            .push_bind(i64::from(e.attempt.task.index))
                            .push_bind(i64::from(e.attempt.attempt))
                            .push_bind("")
                            .push_bind(e.at_ms)
                            .push_bind(e.outcome.as_str())
                            .push_bind(e.error.to_owned())
                            .push_bind(e.log.map(<[u8]>::to_vec))
                            .push_bind(e.counters_json.clone())
                            .push_bind(e.output_digest.to_owned())
                            .push_bind(e.at_ms);
                    });
                    q.push(
                        " ON CONFLICT (job_id, kind, idx, attempt) DO UPDATE SET outcome = excluded.outcome, \
                         error = excluded.error, log = COALESCE(excluded.log, attempts.log), \
                         counters_json = excluded.counters_json, output_digest = excluded.output_digest, \
                         finished_at_ms = excluded.finished_at_ms",
                    );
                    q.build().execute(&mut *tx).await.map_err(db("finishing attempts"))?;
                }
                let workers: Vec<_> = batch.workers.values().collect();
                for chunk in workers.chunks(BATCH_ROWS) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO workers (id, host, shuffle_address, slots, apps_json, version, state, \
                         registered_at_ms, last_heartbeat_ms, admin) ",
                    );
                    q.push_values(chunk, |mut b, (w, apps)| {
                        b.push_bind(w.id.as_str().to_owned())
                            .push_bind(w.host.clone())
                            .push_bind(w.shuffle_address.clone())
                            .push_bind(i64::from(w.slots))
                            .push_bind(apps.clone())
                            .push_bind(w.version.clone())
                            .push_bind(w.state.as_str())
                            .push_bind(w.registered_at_ms)
                            .push_bind(w.last_heartbeat_ms)
                            .push_bind(w.admin.as_str());
                    });
                    q.push(
                        " ON CONFLICT (id) DO UPDATE SET host = excluded.host, \
                         shuffle_address = excluded.shuffle_address, slots = excluded.slots, \
                         apps_json = excluded.apps_json, version = excluded.version, state = excluded.state, \
                         registered_at_ms = excluded.registered_at_ms, last_heartbeat_ms = excluded.last_heartbeat_ms, \
                         admin = excluded.admin",
                    );
                    q.build().execute(&mut *tx).await.map_err(db("saving workers"))?;
                }
                for chunk in batch.events.chunks(BATCH_ROWS) {
                    let mut q =
                        sqlx::QueryBuilder::<$db>::new("INSERT INTO job_events (job_id, at_ms, reason, message) ");
                    q.push_values(chunk, |mut b, e| {
                        b.push_bind(e.job.0 as i64)
                            .push_bind(e.at_ms)
                            .push_bind(e.reason.clone())
                            .push_bind(e.message.clone());
                    });
                    q.build().execute(&mut *tx).await.map_err(db("recording job events"))?;
                }
                tx.commit().await.map_err(db("committing a transaction"))
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::StateStore for $store {
            async fn insert_job(
                &self,
                job: &$crate::store::StoredJob,
            ) -> Result<quern_core::JobId, $crate::error::Error> {
                use $crate::store::sql::{db, json};
                use sqlx::Row;
                let counters = json(&job.counters, "a job's counters")?;
                let row = sqlx::query(
                    "INSERT INTO jobs (app, spec_json, plan_json, priority, state, error, counters_json, \
                     submitted_at_ms, started_at_ms, finished_at_ms, owner) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                )
                .bind(&job.app)
                .bind(&job.spec_json)
                .bind(&job.plan_json)
                .bind(i64::from(job.priority))
                .bind(job.state.as_str())
                .bind(&job.error)
                .bind(counters)
                .bind(job.submitted_at_ms)
                .bind(job.started_at_ms)
                .bind(job.finished_at_ms)
                .bind(&job.owner)
                .fetch_one(&self.pool)
                .await
                .map_err(db("inserting a job"))?;
                let id: i64 = row.try_get(0).map_err(db("reading a new job's id"))?;
                u64::try_from(id)
                    .map(quern_core::JobId)
                    .map_err(|_| $crate::error::Error::Corrupt(format!("negative job id {id}")))
            }

            async fn apply_all(&self, effects: &[$crate::cluster::Effect]) -> Result<(), $crate::error::Error> {
                self.write_batch(effects).await
            }

            async fn jobs(&self) -> Result<Vec<$crate::store::StoredJob>, $crate::error::Error> {
                use $crate::store::sql::{db, json_of, named, u64_of};
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT id, app, spec_json, plan_json, priority, state, error, counters_json, \
                     submitted_at_ms, started_at_ms, finished_at_ms, owner FROM jobs ORDER BY id",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(db("loading jobs"))?;
                let mut jobs = Vec::with_capacity(rows.len());
                for r in rows {
                    let get = |c: &str| -> Result<i64, $crate::error::Error> { r.try_get(c).map_err(db("loading jobs")) };
                    let text = |c: &str| -> Result<String, $crate::error::Error> { r.try_get(c).map_err(db("loading jobs")) };
                    let raw_id = get("id")?;
                    let whose = || format!("job {raw_id}");
                    let priority = get("priority")?;
                    jobs.push($crate::store::StoredJob {
                        id: quern_core::JobId(u64_of(raw_id, "id", &whose)?),
                        app: text("app")?,
                        spec_json: text("spec_json")?,
                        plan_json: text("plan_json")?,
                        priority: i32::try_from(priority).map_err(|_| {
                            $crate::error::Error::Corrupt(format!("{} field priority: out of range: {priority}", whose()))
                        })?,
                        state: named($crate::state::JobPhase::parse(&text("state")?), "state", &whose)?,
                        error: text("error")?,
                        counters: json_of(&text("counters_json")?, "counters_json", &whose)?,
                        submitted_at_ms: get("submitted_at_ms")?,
                        started_at_ms: get("started_at_ms")?,
                        finished_at_ms: get("finished_at_ms")?,
                        owner: text("owner")?,
                    });
                }
                Ok(jobs)
            }

            async fn tasks(
                &self,
                job: quern_core::JobId,
            ) -> Result<Vec<$crate::store::StoredTask>, $crate::error::Error> {
                use $crate::store::sql::{db, json_of, kind_of, u32_of};
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT kind, idx, started, failures, committed, failed, map_output_json, counters_json \
                     FROM tasks WHERE job_id = $1 ORDER BY kind, idx",
                )
                .bind(job.0 as i64)
                .fetch_all(&self.pool)
                .await
                .map_err(db("loading tasks"))?;
                let mut tasks = Vec::with_capacity(rows.len());
                for r in rows {
                    let e = || db("loading tasks");
                    let kind: String = r.try_get("kind").map_err(e())?;
                    let idx: i64 = r.try_get("idx").map_err(e())?;
                    let whose = || format!("job {job} task {kind} {idx}");
                    let task = quern_core::TaskId { kind: kind_of(&kind, &whose)?, index: u32_of(idx, "idx", &whose)? };
                    let whose = || format!("job {job} task {task}");
                    let committed: Option<i64> = r.try_get("committed").map_err(e())?;
                    let map_output: Option<String> = r.try_get("map_output_json").map_err(e())?;
                    let counters: Option<String> = r.try_get("counters_json").map_err(e())?;
                    tasks.push($crate::store::StoredTask {
                        task,
                        record: quern_core::TaskRecord {
                            started: u32_of(r.try_get("started").map_err(e())?, "started", &whose)?,
                            failures: u32_of(r.try_get("failures").map_err(e())?, "failures", &whose)?,
                            committed: committed.map(|c| u32_of(c, "committed", &whose)).transpose()?,
                            failed: r.try_get("failed").map_err(e())?,
                        },
                        map_output: map_output.map(|j| json_of(&j, "map_output_json", &whose)).transpose()?,
                        counters: counters.map(|j| json_of(&j, "counters_json", &whose)).transpose()?,
                    });
                }
                Ok(tasks)
            }

            async fn workers(&self) -> Result<Vec<$crate::store::StoredWorker>, $crate::error::Error> {
                use $crate::store::sql::{apps_of, db, named, u32_of};
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT id, host, shuffle_address, slots, apps_json, version, state, registered_at_ms, \
                     last_heartbeat_ms, admin FROM workers ORDER BY id",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(db("loading workers"))?;
                let mut workers = Vec::with_capacity(rows.len());
                for r in rows {
                    let e = || db("loading workers");
                    let id: String = r.try_get("id").map_err(e())?;
                    let id = quern_core::WorkerId::new(id);
                    let whose = || format!("worker {id}");
                    let apps: String = r.try_get("apps_json").map_err(e())?;
                    let state: String = r.try_get("state").map_err(e())?;
                    let admin: String = r.try_get("admin").map_err(e())?;
                    workers.push($crate::store::StoredWorker {
                        host: r.try_get("host").map_err(e())?,
                        shuffle_address: r.try_get("shuffle_address").map_err(e())?,
                        slots: u32_of(r.try_get("slots").map_err(e())?, "slots", &whose)?,
                        apps: apps_of(&apps, &whose)?,
                        version: r.try_get("version").map_err(e())?,
                        state: named($crate::state::WorkerState::parse(&state), "state", &whose)?,
                        admin: named($crate::state::WorkerAdmin::parse(&admin), "admin", &whose)?,
                        registered_at_ms: r.try_get("registered_at_ms").map_err(e())?,
                        last_heartbeat_ms: r.try_get("last_heartbeat_ms").map_err(e())?,
                        id,
                    });
                }
                Ok(workers)
            }

            async fn running_attempts(
                &self,
                job: quern_core::JobId,
            ) -> Result<Vec<$crate::store::StoredAttempt>, $crate::error::Error> {
                use $crate::store::sql::db;
                // The logs stay behind: a restore needs who runs what.
                let rows = sqlx::query(
                    "SELECT kind, idx, attempt, worker_id, outcome, '' AS error, CAST(NULL AS BYTEA) AS log, \
                     output_digest, started_at_ms, finished_at_ms FROM attempts \
                     WHERE job_id = $1 AND outcome = 'running' ORDER BY kind, idx, attempt",
                )
                .bind(job.0 as i64)
                .fetch_all(&self.pool)
                .await
                .map_err(db("loading running attempts"))?;
                rows.iter().map(|r| Self::attempt_of(job, r)).collect()
            }

            async fn put_user(&self, user: &$crate::store::StoredUser) -> Result<(), $crate::error::Error> {
                use $crate::store::sql::db;
                sqlx::query(
                    "INSERT INTO users (name, role, password_hash, created_at_ms) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (name) DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash",
                )
                .bind(&user.name)
                .bind(user.role.as_str())
                .bind(&user.password_hash)
                .bind(user.created_at_ms)
                .execute(&self.pool)
                .await
                .map_err(db("storing a user"))?;
                Ok(())
            }

            async fn users(&self) -> Result<Vec<$crate::store::StoredUser>, $crate::error::Error> {
                use $crate::store::sql::{db, named};
                use sqlx::Row;
                let rows = sqlx::query("SELECT name, role, password_hash, created_at_ms FROM users ORDER BY name")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("loading users"))?;
                let mut users = Vec::with_capacity(rows.len());
                for r in rows {
                    let e = || db("loading users");
                    let name: String = r.try_get("name").map_err(e())?;
                    let whose = || format!("user {name}");
                    let role: String = r.try_get("role").map_err(e())?;
                    users.push($crate::store::StoredUser {
                        role: named($crate::state::Role::parse(&role), "role", &whose)?,
                        password_hash: r.try_get("password_hash").map_err(e())?,
                        created_at_ms: r.try_get("created_at_ms").map_err(e())?,
                        name,
                    });
                }
                Ok(users)
            }

            async fn put_chain(&self, chain: &$crate::store::StoredChain) -> Result<(), $crate::error::Error> {
                use $crate::store::sql::db;
                let jobs: Vec<Option<u64>> = chain.jobs.iter().map(|j| j.map(|j| j.0)).collect();
                let jobs = serde_json::to_string(&jobs).map_err(|e| $crate::error::Error::Corrupt(e.to_string()))?;
                sqlx::query(
                    "INSERT INTO chains (id, owner, priority, spec_json, jobs_json, state, error) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET \
                     jobs_json = excluded.jobs_json, state = excluded.state, error = excluded.error",
                )
                .bind(chain.id.0 as i64)
                .bind(&chain.owner)
                .bind(chain.priority)
                .bind(&chain.spec_json)
                .bind(jobs)
                .bind(chain.state.as_str())
                .bind(&chain.error)
                .execute(&self.pool)
                .await
                .map_err(db("storing a chain"))?;
                Ok(())
            }

            async fn chains(&self) -> Result<Vec<$crate::store::StoredChain>, $crate::error::Error> {
                use $crate::store::sql::db;
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT id, owner, priority, spec_json, jobs_json, state, error FROM chains ORDER BY id",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(db("loading chains"))?;
                let mut chains = Vec::with_capacity(rows.len());
                for r in rows {
                    let e = || db("loading chains");
                    let jobs: String = r.try_get("jobs_json").map_err(e())?;
                    let jobs: Vec<Option<u64>> = serde_json::from_str(&jobs)
                        .map_err(|err| $crate::error::Error::Corrupt(format!("a chain's jobs_json: {err}")))?;
                    let state: String = r.try_get("state").map_err(e())?;
                    chains.push($crate::store::StoredChain {
                        id: quern_core::JobId(r.try_get::<i64, _>("id").map_err(e())? as u64),
                        owner: r.try_get("owner").map_err(e())?,
                        priority: r.try_get("priority").map_err(e())?,
                        spec_json: r.try_get("spec_json").map_err(e())?,
                        jobs: jobs.into_iter().map(|j| j.map(quern_core::JobId)).collect(),
                        state: $crate::state::ChainPhase::parse(&state)?,
                        error: r.try_get("error").map_err(e())?,
                    });
                }
                Ok(chains)
            }

            async fn job_events(
                &self,
                job: quern_core::JobId,
            ) -> Result<Vec<$crate::cluster::JobEvent>, $crate::error::Error> {
                use $crate::store::sql::db;
                use sqlx::Row;
                let rows = sqlx::query("SELECT at_ms, reason, message FROM job_events WHERE job_id = $1 ORDER BY id")
                    .bind(job.0 as i64)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("loading job events"))?;
                let mut events = Vec::with_capacity(rows.len());
                for r in rows {
                    let e = || db("loading job events");
                    events.push($crate::cluster::JobEvent {
                        job,
                        at_ms: r.try_get("at_ms").map_err(e())?,
                        reason: r.try_get("reason").map_err(e())?,
                        message: r.try_get("message").map_err(e())?,
                    });
                }
                Ok(events)
            }

            async fn remove_user(&self, name: &str) -> Result<bool, $crate::error::Error> {
                use $crate::store::sql::db;
                let done = sqlx::query("DELETE FROM users WHERE name = $1")
                    .bind(name)
                    .execute(&self.pool)
                    .await
                    .map_err(db("removing a user"))?;
                Ok(done.rows_affected() > 0)
            }

            async fn attempts(
                &self,
                job: quern_core::JobId,
                task: Option<quern_core::TaskId>,
                logs: bool,
            ) -> Result<Vec<$crate::store::StoredAttempt>, $crate::error::Error> {
                use $crate::store::sql::{db, kind_str};
                let mut q = sqlx::QueryBuilder::<$db>::new(if logs {
                    "SELECT kind, idx, attempt, worker_id, outcome, error, log, output_digest, started_at_ms, \
                     finished_at_ms FROM attempts WHERE job_id = "
                } else {
                    "SELECT kind, idx, attempt, worker_id, outcome, error, CAST(NULL AS BYTEA) AS log, output_digest, \
                     started_at_ms, finished_at_ms FROM attempts WHERE job_id = "
                });
                q.push_bind(job.0 as i64);
                if let Some(t) = task {
                    q.push(" AND kind = ").push_bind(kind_str(t.kind));
                    q.push(" AND idx = ").push_bind(i64::from(t.index));
                }
                q.push(" ORDER BY kind, idx, attempt");
                let rows = q.build().fetch_all(&self.pool).await.map_err(db("loading attempts"))?;
                rows.iter().map(|r| Self::attempt_of(job, r)).collect()
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_apps_read_as_bare_names_or_described() {
        let whose = || "worker w1".to_owned();
        let old = apps_of(r#"["wordcount","grep"]"#, &whose).expect("rows before 0004");
        assert_eq!(old, vec![quern_core::AppInfo::named("wordcount"), quern_core::AppInfo::named("grep")]);
        let new = apps_of(
            r#"[{"name":"grep","about":"matching lines","params":[{"name":"pattern","help":"a regex","required":true}]}]"#,
            &whose,
        )
        .expect("rows since 0004");
        assert_eq!(new[0].params[0].name, "pattern");
        let err = apps_of(r#"[{"nom":"grep"}]"#, &whose).expect_err("neither form");
        assert!(err.to_string().contains("worker w1 field apps_json"), "{err}");
    }
}
