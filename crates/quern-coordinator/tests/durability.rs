//! The durability rules, through the application layer with a store that
//! refuses writes on demand: the coordinator acknowledges nothing it has not
//! stored, a failed write leaves its memory as the store has it (and the
//! worker's retry gets the answer it would have had), and a restarted
//! coordinator takes back the attempts its workers still run.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use quern_coordinator::cluster::{Effect, Outcome, ReportedIndex, Segment};
use quern_coordinator::store::{StoredAttempt, StoredChain, StoredJob, StoredTask, StoredUser, StoredWorker};
use quern_coordinator::{CoordinatorHandle, Error, Event, Policy, Registration, StateStore, Store};
use quern_core::{AttemptId, Counters, InputFile, InputSplit, JobId, JobPlan, JobSpec, PlannedOutput, TaskId};

/// A store whose writes fail while `refuse` is set, like a full disk or a
/// database that went away.
#[derive(Debug)]
struct RefusingStore {
    inner: Store,
    refuse: AtomicBool,
}

#[async_trait::async_trait]
impl StateStore for RefusingStore {
    async fn insert_job(&self, job: &StoredJob) -> Result<JobId, Error> {
        self.inner.insert_job(job).await
    }
    async fn apply_all(&self, effects: &[Effect]) -> Result<(), Error> {
        if self.refuse.load(Ordering::SeqCst) && !effects.is_empty() {
            return Err(Error::Unavailable("injected: no space left on the database's disk".into()));
        }
        self.inner.apply_all(effects).await
    }
    async fn jobs(&self) -> Result<Vec<StoredJob>, Error> {
        self.inner.jobs().await
    }
    async fn tasks(&self, job: JobId) -> Result<Vec<StoredTask>, Error> {
        self.inner.tasks(job).await
    }
    async fn workers(&self) -> Result<Vec<StoredWorker>, Error> {
        self.inner.workers().await
    }
    async fn attempts(&self, job: JobId, task: Option<TaskId>, logs: bool) -> Result<Vec<StoredAttempt>, Error> {
        self.inner.attempts(job, task, logs).await
    }
    async fn running_attempts(&self, job: JobId) -> Result<Vec<StoredAttempt>, Error> {
        self.inner.running_attempts(job).await
    }
    async fn put_user(&self, user: &StoredUser) -> Result<(), Error> {
        self.inner.put_user(user).await
    }
    async fn users(&self) -> Result<Vec<StoredUser>, Error> {
        self.inner.users().await
    }
    async fn remove_user(&self, name: &str) -> Result<bool, Error> {
        self.inner.remove_user(name).await
    }
    async fn put_chain(&self, chain: &StoredChain) -> Result<(), Error> {
        self.inner.put_chain(chain).await
    }
    async fn chains(&self) -> Result<Vec<StoredChain>, Error> {
        self.inner.chains().await
    }
    async fn job_events(&self, job: JobId) -> Result<Vec<quern_coordinator::cluster::JobEvent>, Error> {
        self.inner.job_events(job).await
    }
}

const POLICY: Policy = Policy::with_timeouts(60_000, 600_000, false);

struct Fixture {
    dir: tempfile::TempDir,
    store: Arc<RefusingStore>,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("state.db").display());
        let inner = quern_coordinator::store::open(&url).await.expect("store");
        Fixture { dir, store: Arc::new(RefusingStore { inner, refuse: AtomicBool::new(false) }) }
    }

    /// A coordinator over the fixture's store (a restart: memory is new,
    /// the store is the same).
    async fn coordinator(&self) -> CoordinatorHandle {
        let store: Store = self.store.clone();
        CoordinatorHandle::with_store(store, quern_storage::Storage::default(), POLICY, 200).await.expect("coordinator")
    }

    /// A job of two maps and one reducer, submitted with worker w1 registered.
    async fn job(&self, handle: &CoordinatorHandle) -> JobId {
        let input = self.dir.path().join("in.txt");
        std::fs::write(&input, "a b\nc d\n").expect("input");
        handle
            .register(Registration {
                worker_id: "w1".into(),
                host: "h".into(),
                shuffle_address: "http://127.0.0.1:1".into(),
                slots: 2,
                apps: vec![quern_core::AppInfo::named("wordcount")],
                version: "t".into(),
                held_jobs: vec![],
            })
            .await
            .expect("register");
        let out = self.dir.path().join("out");
        let spec = JobSpec::new("wordcount", vec![input.display().to_string()], out.display().to_string());
        let file = InputFile {
            location: input.display().to_string(),
            name: "in.txt".into(),
            len: 8,
            compression: quern_core::Compression::None,
        };
        let plan = JobPlan {
            splits: vec![
                InputSplit { file: file.clone(), start: 0, end: Some(4) },
                InputSplit { file, start: 4, end: Some(8) },
            ],
            outputs: vec![PlannedOutput { name: String::new(), reducers: 1, first_partition: 0, cut_points: None }],
            partitions: 1,
            shuffle: None,
            partitioner: Default::default(),
        };
        common::submit_planned(handle, "w1", spec, plan).await.expect("submit")
    }
}

fn map_done(attempt: AttemptId) -> Outcome {
    let mut counters = Counters::default();
    counters.engine.input_records = 2;
    let index = ReportedIndex {
        path: format!("/w1/{attempt}.run").into(),
        segments: vec![Segment { offset: 0, len: 10, records: 2, raw_len: 12 }],
    };
    Outcome::Succeeded { counters, map_output: Some(index), output_digest: None }
}

#[tokio::test]
async fn a_failed_write_changes_nothing_and_the_retry_gets_the_answer_it_would_have_had() {
    let f = Fixture::new().await;
    let handle = f.coordinator().await;
    let id = f.job(&handle).await;
    let maps = handle.poll("w1", 2).await.expect("poll").expect("registered");
    assert_eq!(maps.len(), 2);
    let (m0, m1) = (maps[0].attempt, maps[1].attempt);
    assert!(handle.report("w1", id, m0, map_done(m0), vec![]).await.expect("report"));
    let mut events = handle.events();

    f.store.refuse.store(true, Ordering::SeqCst);
    let refused = handle.report("w1", id, m1, map_done(m1), b"log".to_vec()).await;
    assert!(matches!(&refused, Err(Error::Unavailable(m)) if m.contains("no space left")), "{refused:?}");
    assert!(events.try_recv().is_err(), "nothing that was not stored is published");
    // Memory is what the store has: one map committed, the other running.
    let job = handle.job(id).await.expect("job");
    assert_eq!((job.maps.succeeded, job.maps.running, job.reduces.pending), (1, 1, 1), "{job:?}");
    let polled = handle.poll("w1", 2).await.expect("poll").expect("registered");
    assert!(polled.is_empty(), "m1 is still running, and the reduce waits for it: {polled:?}");

    f.store.refuse.store(false, Ordering::SeqCst);
    // The worker retries its report: the answer it would have had.
    assert!(handle.report("w1", id, m1, map_done(m1), b"log".to_vec()).await.expect("retry"));
    assert!(matches!(events.try_recv(), Ok(Event::Task { .. } | Event::AttemptEnded { .. })));
    let reduces = handle.poll("w1", 2).await.expect("poll").expect("registered");
    assert_eq!(reduces.len(), 1);
    let inputs: Vec<u32> = reduces[0].inputs.iter().map(|(m, _, _)| *m).collect();
    assert_eq!(inputs, vec![0, 1], "the reduce reads both maps' outputs");
    let done = Outcome::Succeeded { counters: Counters::default(), map_output: None, output_digest: None };
    assert!(handle.report("w1", id, reduces[0].attempt, done, vec![]).await.expect("reduce"));
    let job = common::ended(&handle, id).await;
    assert_eq!((job.state.as_str(), job.counters.engine.input_records), ("succeeded", 4));
    // And the store agrees, after a restart.
    let again = f.coordinator().await;
    assert_eq!(again.job(id).await.expect("job").state.as_str(), "succeeded");
}

#[tokio::test]
async fn a_restart_takes_back_the_attempts_its_workers_still_run() {
    let f = Fixture::new().await;
    let first = f.coordinator().await;
    let id = f.job(&first).await;
    let maps = first.poll("w1", 2).await.expect("poll").expect("registered");
    let (m0, m1) = (maps[0].attempt, maps[1].attempt);
    drop(first);

    let handle = f.coordinator().await;
    let job = handle.job(id).await.expect("job");
    assert_eq!(job.maps.running, 2, "both attempts are taken back");
    // The worker runs m0 only (the answer to its poll for m1 was lost).
    let answer = handle.heartbeat("w1", &[(id, m0, 0.5, 1)]).await.expect("heartbeat");
    assert!(!answer.reregister && answer.cancel.is_empty(), "{answer:?}");
    let again = handle.poll("w1", 1).await.expect("poll").expect("registered");
    assert_eq!(again.iter().map(|a| a.attempt).collect::<Vec<_>>(), vec![AttemptId { task: m1.task, attempt: 2 }]);
    assert!(handle.report("w1", id, m0, map_done(m0), vec![]).await.expect("report"), "m0's report is accepted");
    let logs = handle.logs(id, Some(m1.task)).await.expect("logs");
    let ends: Vec<_> = logs.iter().map(|a| (a.attempt.attempt, a.outcome.map(|o| o.as_str()))).collect();
    assert_eq!(ends, vec![(1, Some("lost")), (2, None)]);
}
