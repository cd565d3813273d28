//! Both state stores, SQLite and PostgreSQL (a real server on 127.0.0.1),
//! through the one `StateStore` trait: the same records come back, a second
//! coordinator is refused, corrupt rows are errors, and the two schemas are
//! kept in step.

use std::collections::BTreeMap;

use quern_coordinator::Error;
use quern_coordinator::cluster::{Effect, MapOutputLoc, Segment};
use quern_coordinator::state::{AttemptEnd, ChainPhase, JobPhase, Role, WorkerState};
use quern_coordinator::store::{self, JobUpdate, Store, StoredChain, StoredJob, StoredTask, StoredUser, StoredWorker};
use quern_core::{AttemptId, Counters, JobId, TaskId, TaskKind, TaskRecord};
use quern_testkit::postgres::TestPostgres;
use sqlx::{Connection, Row};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

fn sample_job() -> StoredJob {
    StoredJob {
        id: JobId(0),
        app: "wordcount".into(),
        spec_json: r#"{"app":"wordcount"}"#.into(),
        plan_json: "{}".into(),
        priority: -2,
        state: JobPhase::Pending,
        error: String::new(),
        counters: Counters::default(),
        submitted_at_ms: 1_764_000_000_000,
        started_at_ms: 0,
        finished_at_ms: 0,
        owner: "ann".into(),
    }
}

/// Writes a job with a task, two attempts and a worker through `store`,
/// then reads them back through `reopened`.
async fn round_trip(store: Store, reopen: impl AsyncFnOnce(Store) -> Store) {
    let mut job = sample_job();
    job.id = store.insert_job(&job).await.expect("insert");
    let second = store.insert_job(&StoredJob { owner: String::new(), ..sample_job() }).await.expect("insert another");
    let ann = StoredUser {
        name: "ann".into(),
        role: Role::Admin,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at_ms: 5,
    };
    let bob = StoredUser { name: "bob".into(), role: Role::User, password_hash: "h".into(), created_at_ms: 6 };
    store.put_user(&bob).await.expect("bob");
    store.put_user(&ann).await.expect("ann");
    let bob = StoredUser { role: Role::Admin, password_hash: "h2".into(), ..bob };
    store.put_user(&bob).await.expect("bob's new role and password");
    let mut chain = StoredChain {
        id: job.id,
        owner: "ann".into(),
        priority: -3,
        spec_json: r#"{"inputs":["a"],"output":"b","steps":[]}"#.into(),
        jobs: vec![Some(job.id), None],
        state: ChainPhase::Running,
        error: String::new(),
    };
    store.put_chain(&chain).await.expect("a chain");
    chain.jobs[1] = Some(JobId(99));
    chain.state = ChainPhase::Failed;
    chain.error = "step 2 of 2 (job 99, top) failed: boom".into();
    store.put_chain(&chain).await.expect("the chain moved on");
    assert!(second > job.id, "ids grow");
    let mut counters = Counters::default();
    counters.engine.input_records = 42;
    counters.app.insert("lines".into(), 7);
    let task = StoredTask {
        task: TaskId { kind: TaskKind::Map, index: 3 },
        record: TaskRecord { started: 2, failures: 1, committed: Some(2), failed: false },
        map_output: Some(MapOutputLoc {
            worker_id: "w1".into(),
            shuffle_address: "http://127.0.0.1:9".into(),
            path: "/work/job-1/m-00003#2.run".into(),
            segments: vec![Segment { offset: 0, len: 10, records: 2, raw_len: 14 }],
        }),
        counters: Some(counters.clone()),
    };
    let a1 = AttemptId { task: task.task, attempt: 1 };
    let a2 = AttemptId { task: task.task, attempt: 2 };
    let worker = StoredWorker {
        id: "w1".into(),
        host: "h1".into(),
        shuffle_address: "http://127.0.0.1:9".into(),
        slots: 4,
        apps: vec![
            quern_core::AppInfo::named("wordcount"),
            quern_core::AppInfo {
                name: "grep".into(),
                about: "lines matching a pattern".into(),
                params: vec![quern_core::ParamSpec::required("pattern", "a regex")],
            },
        ],
        version: "0.1.0".into(),
        state: WorkerState::Alive,
        admin: quern_coordinator::state::WorkerAdmin::Draining,
        registered_at_ms: 5,
        last_heartbeat_ms: 6,
    };
    let update = JobUpdate {
        id: job.id,
        state: JobPhase::Running,
        error: String::new(),
        counters: counters.clone(),
        started_at_ms: 7,
        finished_at_ms: 0,
    };
    let mut earlier = task.clone();
    earlier.record.committed = None;
    earlier.map_output = None;
    store
        .apply_all(&[
            Effect::Worker(worker.clone()),
            Effect::Job(update),
            Effect::AttemptStarted { job: job.id, attempt: a1, worker: "w1".into(), at_ms: 8 },
            Effect::Task(job.id, earlier),
            Effect::AttemptEnded {
                job: job.id,
                attempt: a1,
                outcome: AttemptEnd::Failed,
                error: "boom".into(),
                log: Some(b"first log".to_vec()),
                counters: None,
                output_digest: None,
                at_ms: 9,
            },
            Effect::AttemptStarted { job: job.id, attempt: a2, worker: "w1".into(), at_ms: 10 },
            // The last change to a row wins, also within one batch.
            Effect::Task(job.id, task.clone()),
        ])
        .await
        .expect("a batch");
    store
        .apply_all(&[Effect::AttemptEnded {
            job: job.id,
            attempt: a2,
            outcome: AttemptEnd::Succeeded,
            error: String::new(),
            log: Some(vec![0, 159, 146, 150]),
            counters: Some(counters.clone()),
            output_digest: None,
            at_ms: 11,
        }])
        .await
        .expect("another");

    let store = reopen(store).await;
    job.state = JobPhase::Running;
    job.counters = counters;
    job.started_at_ms = 7;
    let jobs = store.jobs().await.expect("jobs");
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0], job);
    assert_eq!(store.tasks(job.id).await.expect("tasks"), vec![task.clone()]);
    assert!(store.tasks(second).await.expect("tasks").is_empty());
    assert_eq!(store.workers().await.expect("workers"), vec![worker]);
    assert_eq!(store.users().await.expect("users"), vec![ann, bob.clone()], "by name, bob's change kept");
    assert_eq!(store.chains().await.expect("chains"), vec![chain], "the chain's last state");
    assert!(store.remove_user("bob").await.expect("remove"));
    assert!(!store.remove_user("bob").await.expect("remove again"), "no second bob");
    assert_eq!(store.users().await.expect("users").len(), 1);
    assert_eq!(jobs[1].owner, "", "a job of the cluster token's holder");
    let attempts = store.attempts(job.id, None, true).await.expect("attempts");
    let seen: Vec<_> = attempts
        .iter()
        .map(|a| (a.attempt, a.worker_id.as_str(), a.outcome, a.error.as_str(), a.log.as_slice(), a.started_at_ms))
        .collect();
    assert_eq!(
        seen,
        vec![
            (a1, "w1", Some(AttemptEnd::Failed), "boom", &b"first log"[..], 8),
            (a2, "w1", Some(AttemptEnd::Succeeded), "", &[0u8, 159, 146, 150][..], 10),
        ]
    );
    let other = TaskId { kind: TaskKind::Reduce, index: 0 };
    assert!(store.attempts(job.id, Some(other), true).await.expect("attempts").is_empty());
    let without_logs = store.attempts(job.id, Some(task.task), false).await.expect("attempts");
    assert_eq!(
        without_logs.iter().map(|a| (a.attempt, a.error.as_str(), a.log.len())).collect::<Vec<_>>(),
        vec![(a1, "boom", 0), (a2, "", 0)],
        "errors but not logs"
    );
}

#[test]
fn sqlite_keeps_every_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("state.db").display());
    runtime().block_on(async {
        let store = store::open(&url).await.expect("open");
        round_trip(store, async |s| {
            drop(s);
            store::open(&url).await.expect("reopen")
        })
        .await;
    });
}

#[test]
fn postgres_keeps_every_record_and_admits_one_coordinator_at_a_time() {
    let pg = TestPostgres::start();
    let url = pg.url();
    runtime().block_on(async {
        let store = store::open(&url).await.expect("open");
        let refused = store::open(&url).await.expect_err("a second coordinator on the same state");
        assert!(matches!(refused, Error::LockedDatabase { .. }), "{refused:?}");
        let message = refused.to_string();
        assert!(message.contains(&url) && message.contains("backend pid"), "{message}");
        round_trip(store, async |s| {
            drop(s);
            // The lock goes with its session.
            store::open(&url).await.expect("reopen once the first is closed")
        })
        .await;
    });
}

#[test]
fn a_postgres_row_that_does_not_parse_is_an_error_naming_the_job_and_the_field() {
    let pg = TestPostgres::start();
    let url = pg.url();
    runtime().block_on(async {
        let store = store::open(&url).await.expect("open");
        let id = store.insert_job(&sample_job()).await.expect("insert");
        let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
        sqlx::query("UPDATE jobs SET counters_json = '{\"engine\": 3' WHERE id = $1")
            .bind(id.0 as i64)
            .execute(&mut conn)
            .await
            .expect("corrupt it");
        let e = store.jobs().await.expect_err("corrupt counters");
        assert!(e.to_string().contains(&format!("job {id} field counters_json")), "{e}");
        sqlx::query("UPDATE jobs SET counters_json = '{}', state = 'sleeping' WHERE id = $1")
            .bind(id.0 as i64)
            .execute(&mut conn)
            .await
            .expect("corrupt it");
        let e = store.jobs().await.expect_err("unknown state");
        assert!(e.to_string().contains(&format!("job {id} field state")), "{e}");
    });
}

/// Table → column → (type class, nullable, part of the primary key).
type Schema = BTreeMap<String, BTreeMap<String, (String, bool, bool)>>;

fn type_class(declared: &str) -> String {
    let t = declared.to_ascii_lowercase();
    match t.as_str() {
        "integer" | "bigint" | "bigserial" => "integer",
        "text" => "text",
        "boolean" => "boolean",
        "blob" | "bytea" => "bytes",
        other => other,
    }
    .to_owned()
}

#[test]
fn the_sqlite_and_postgres_schemas_stay_in_step() {
    let pg = TestPostgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite_url = format!("sqlite://{}", dir.path().join("state.db").display());
    runtime().block_on(async {
        let lite = store::open(&sqlite_url).await.expect("sqlite");
        let post = store::open(&pg.url()).await.expect("postgres");

        let mut sqlite = sqlx::SqliteConnection::connect(&sqlite_url).await.expect("sqlite");
        let mut lite_schema = Schema::new();
        let tables: Vec<String> = sqlx::query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name <> '_sqlx_migrations'",
        )
        .fetch_all(&mut sqlite)
        .await
        .expect("tables")
        .iter()
        .map(|r| r.get(0))
        .collect();
        for table in tables {
            let columns = sqlx::query("SELECT name, type, \"notnull\", pk FROM pragma_table_info($1)")
                .bind(&table)
                .fetch_all(&mut sqlite)
                .await
                .expect("columns");
            for c in columns {
                let (name, ty, notnull, pk): (String, String, i64, i64) =
                    (c.get("name"), c.get("type"), c.get("notnull"), c.get("pk"));
                // SQLite's INTEGER PRIMARY KEY is never null.
                let nullable = notnull == 0 && pk == 0;
                lite_schema.entry(table.clone()).or_default().insert(name, (type_class(&ty), nullable, pk > 0));
            }
        }

        let mut postgres = sqlx::PgConnection::connect(&pg.url()).await.expect("postgres");
        let mut pg_schema = Schema::new();
        let columns = sqlx::query(
            "SELECT c.table_name::text, c.column_name::text, c.data_type::text, c.is_nullable::text, \
             EXISTS (SELECT 1 FROM information_schema.table_constraints t \
                     JOIN information_schema.key_column_usage k \
                       ON k.constraint_name = t.constraint_name AND k.table_name = t.table_name \
                     WHERE t.constraint_type = 'PRIMARY KEY' AND t.table_name = c.table_name \
                       AND k.column_name = c.column_name) AS pk \
             FROM information_schema.columns c \
             WHERE c.table_schema = 'public' AND c.table_name <> '_sqlx_migrations'",
        )
        .fetch_all(&mut postgres)
        .await
        .expect("columns");
        for c in columns {
            let (table, name, ty, nullable, pk): (String, String, String, String, bool) =
                (c.get(0), c.get(1), c.get(2), c.get(3), c.get(4));
            pg_schema.entry(table).or_default().insert(name, (type_class(&ty), nullable == "YES", pk));
        }
        assert!(!lite_schema.is_empty());
        assert_eq!(lite_schema, pg_schema, "migrations/sqlite and migrations/postgres describe different schemas");

        let versions = |rows: Vec<i64>| rows;
        let lite_versions = versions(
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&mut sqlite)
                .await
                .expect("versions"),
        );
        let pg_versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut postgres)
            .await
            .expect("versions");
        assert_eq!(lite_versions, pg_versions, "both stores have the same migrations");
        drop((lite, post));
    });
}
