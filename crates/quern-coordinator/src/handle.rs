//! The coordinator's application layer: every operation a worker or a client
//! can ask for, on domain types. Each runs its [`Cluster`] decision under the
//! one lock and makes the decision's effects durable before it returns, so
//! nothing is acknowledged that is not stored. The gRPC service only converts
//! and validates messages; a REST API calls the same handle.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use quern_core::{AttemptId, Counters, JobId, JobPlan, JobSpec, PhaseProgress, TaskId, TaskKind, WorkerId};
use quern_storage::Storage;
use tokio::sync::{Mutex, MutexGuard, broadcast, oneshot};

pub use crate::cluster::HeartbeatAnswer;
use crate::cluster::{Assignment, Cluster, Effect, Job, JobEvent, NewJob, Outcome, Worker};
use crate::code::CodeStore;
use crate::error::Error;
use crate::launch::{Demand, LaunchControl};
use crate::nudge::{Nudge, Nudges};
use crate::state::{AttemptEnd, JobPhase, WorkerAdmin, WorkerState};
use crate::storage_work::{self, StorageWork};
use crate::store::{Store, StoredAttempt, StoredJob, StoredWorker};

/// The most of an attempt's log the coordinator keeps: its last 64 KiB.
const LOG_TAIL: usize = 64 << 10;

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// How long a submission waits for a worker to plan it.
const PLAN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How many events a subscriber may fall behind before it misses some.
const EVENT_BACKLOG: usize = 4096;

/// The coordinator's state, shared by the handle's clones and the ticker.
struct Shared {
    state: Mutex<Memory>,
    store: Store,
    policy: crate::Policy,
    heartbeat_interval_ms: u32,
    events: broadcast::Sender<Event>,
    /// Decisions waiting to be written, grouped into one transaction.
    writes: std::sync::Mutex<PendingWrites>,
    /// Submissions waiting for a worker's plan, by ticket.
    plans: std::sync::Mutex<HashMap<u64, oneshot::Sender<PlanAnswer>>>,
    /// How long a submission waits for its plan.
    plan_timeout: std::time::Duration,
    /// Where job outputs are (local directories, S3 prefixes).
    storage: Storage,
    /// Work on job outputs whose decisions are stored, waiting to run.
    storage_work: std::sync::Mutex<StorageQueue>,
    /// How many items of output work have run (see [`StorageQueue::queued`]).
    storage_done: tokio::sync::watch::Sender<u64>,
    /// The nudges given so far, which workers watch.
    nudges: tokio::sync::watch::Sender<Nudges>,
    /// Where the code files jobs ship are stored, once set; a coordinator
    /// without refuses jobs that ship code.
    code: std::sync::OnceLock<CodeStore>,
    /// Held while chains move on, so that a step is submitted once.
    chains: Mutex<()>,
    /// The launcher loop, if workers are launched on demand.
    launcher: std::sync::OnceLock<LaunchControl>,
}

/// Output work ready to run (its decisions are stored), in decision order.
#[derive(Default)]
struct StorageQueue {
    work: Vec<StorageWork>,
    /// A task is running the work; it takes more until none is left.
    running: bool,
    /// How many items were ever queued: once `storage_done` reaches this,
    /// everything queued so far has run.
    queued: u64,
}

/// A worker's answer to a planning request.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanAnswer {
    /// The plan.
    Planned(JobPlan),
    /// The spec cannot run, as the worker found (missing input, bad
    /// parameter): the submission is refused.
    Refused(String),
    /// Planning failed otherwise (a store unreachable, a crash).
    Failed(String),
}

/// How a submission ended.
enum Created {
    /// The job exists.
    Job(JobId),
    /// The job was stored, but a later write failed (the submission's
    /// answer is an error; the job stays, as the store has it).
    Stored(Error),
    /// Nothing was created: the output claim must go.
    Nothing(Error),
}

/// The coordinator's working state.
struct Memory {
    cluster: Cluster,
    /// A write failed: memory may be ahead of the store, so it is rebuilt
    /// from the store before it is used again.
    stale: bool,
}

/// What waits to be written: the effects of decisions taken since the last
/// batch was handed to the writer, the events they publish once stored, and
/// the callers waiting to answer.
#[derive(Default)]
struct PendingWrites {
    effects: Vec<Effect>,
    /// The output work of the same decisions, which runs once they are stored.
    work: Vec<StorageWork>,
    events: Vec<Event>,
    /// What to nudge workers to ask for once the batch is stored.
    nudge: Nudge,
    waiters: Vec<oneshot::Sender<Result<(), String>>>,
    /// A writer task is running; it takes batches until none is left.
    writing: bool,
}

/// A change to the coordinator's state, published once it is stored: what a
/// live view (the dashboard, `quern status --follow`) follows instead of
/// polling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A job changed state: submitted, started, ended.
    Job {
        /// The job.
        id: JobId,
        /// Its new state.
        state: JobPhase,
    },
    /// A task's record changed: an attempt started, failed or committed, or
    /// the task must run again.
    Task {
        /// Its job.
        job: JobId,
        /// The task.
        task: TaskId,
        /// Its committed attempt, if any.
        committed: Option<u32>,
        /// Its failed attempts so far.
        failures: u32,
    },
    /// An attempt started on a worker.
    AttemptStarted {
        /// Its job.
        job: JobId,
        /// The attempt.
        attempt: AttemptId,
        /// Where it runs.
        worker_id: WorkerId,
    },
    /// An attempt ended.
    AttemptEnded {
        /// Its job.
        job: JobId,
        /// The attempt.
        attempt: AttemptId,
        /// How.
        end: AttemptEnd,
    },
    /// Something happened to a job that its tasks do not show (a worker
    /// lost, one launched for it that cannot start).
    JobEvent {
        /// The job.
        job: JobId,
        /// A CamelCase reason (the platform's, when it gave one).
        reason: String,
        /// What happened.
        message: String,
    },
    /// A worker registered or was lost.
    Worker {
        /// The worker.
        id: WorkerId,
        /// Its new state.
        state: WorkerState,
    },
}

impl Event {
    fn of(effect: &Effect) -> Event {
        match effect {
            Effect::Job(row) => Event::Job { id: row.id, state: row.state },
            Effect::Task(job, row) => Event::Task {
                job: *job,
                task: row.task,
                committed: row.record.committed,
                failures: row.record.failures,
            },
            Effect::AttemptStarted { job, attempt, worker, .. } => {
                Event::AttemptStarted { job: *job, attempt: *attempt, worker_id: worker.clone() }
            }
            Effect::AttemptEnded { job, attempt, outcome, .. } => {
                Event::AttemptEnded { job: *job, attempt: *attempt, end: *outcome }
            }
            Effect::Worker(row) => Event::Worker { id: row.id.clone(), state: row.state },
            Effect::JobEvent(e) => Event::JobEvent { job: e.job, reason: e.reason.clone(), message: e.message.clone() },
        }
    }
}

/// The coordinator's operations. Cheap to clone: clones share one state.
#[derive(Clone)]
pub struct CoordinatorHandle {
    shared: Arc<Shared>,
}

/// A worker as it registers.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Its id (kept across its restarts).
    pub worker_id: WorkerId,
    /// Its host name.
    pub host: String,
    /// Where its shuffle service listens.
    pub shuffle_address: String,
    /// Attempts it runs at once (at least 1).
    pub slots: u32,
    /// The apps it has.
    pub apps: Vec<quern_core::AppInfo>,
    /// Its build version.
    pub version: String,
    /// Jobs whose data its work directory holds.
    pub held_jobs: Vec<JobId>,
}

/// What a registering worker is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// How often to heartbeat.
    pub heartbeat_interval_ms: u32,
    /// Of its held jobs, those that ended: their data may go.
    pub forget_jobs: Vec<JobId>,
}

/// An attempt running now, as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningAttemptView {
    /// The attempt.
    pub attempt: AttemptId,
    /// Its worker.
    pub worker_id: WorkerId,
    /// Fraction of its input done, as last reported.
    pub fraction: f64,
    /// Records done, as last reported.
    pub records: u64,
    /// When it started (ms since the epoch).
    pub started_ms: i64,
}

/// A job, as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    /// Its id.
    pub id: JobId,
    /// Its app.
    pub app: String,
    /// The user who submitted it (empty: the cluster token's holder).
    pub owner: String,
    /// Its output location.
    pub output: String,
    /// Its state.
    pub state: JobPhase,
    /// The phase running: map, reduce, done.
    pub stage: &'static str,
    /// Why it failed.
    pub error: String,
    /// Higher goes first.
    pub priority: i32,
    /// Map tasks by state.
    pub maps: PhaseProgress,
    /// Reduce tasks by state.
    pub reduces: PhaseProgress,
    /// Counters of its committed attempts, and its failed attempts.
    pub counters: Counters,
    /// When it was submitted, started, ended (ms since the epoch; 0: not yet).
    pub submitted_ms: i64,
    /// When its first attempt started.
    pub started_ms: i64,
    /// When it ended.
    pub finished_ms: i64,
    /// Bytes of input.
    pub input_bytes: u64,
    /// How its keys are partitioned, as planned.
    pub partitioner: quern_core::Partitioner,
    /// The code files it ships, by name: what it ran.
    pub code: std::collections::BTreeMap<String, quern_core::CodeHash>,
    /// Attempts running now.
    pub running: Vec<RunningAttemptView>,
}

/// Where a task stands, as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum TaskStatus {
    /// No attempt runs, none committed.
    Pending,
    /// An attempt runs.
    Running,
    /// An attempt committed.
    Succeeded,
    /// It failed too often: its job failed.
    Failed,
}

/// A task with its attempts, as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskView {
    /// The task.
    pub task: TaskId,
    /// Where it stands.
    pub state: TaskStatus,
    /// Its committed attempt.
    pub committed: Option<u32>,
    /// Its attempts that failed (counted against its limit).
    pub failures: u32,
    /// Every attempt, in order.
    pub attempts: Vec<AttemptView>,
}

/// An attempt, as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptView {
    /// The attempt.
    pub attempt: AttemptId,
    /// Where it ran.
    pub worker_id: WorkerId,
    /// How it ended (`None`: running).
    pub outcome: Option<AttemptEnd>,
    /// Why it failed, if it did.
    pub error: String,
    /// When it started (ms since the epoch).
    pub started_ms: i64,
    /// When it ended (0: running).
    pub finished_ms: i64,
    /// Fraction of its input done (as last reported, if running; 1 if it
    /// committed).
    pub fraction: f64,
    /// Records done, as last reported (running attempts only).
    pub records: u64,
}

/// How a worker stands, as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum WorkerHealth {
    /// It heartbeats and gets work.
    Alive,
    /// It heartbeats and finishes its attempts, but gets no new ones (an
    /// admin drained it).
    Draining,
    /// It heartbeats, but every job leaves it out for now.
    Blacklisted,
    /// It was silent past the worker timeout.
    Lost,
    /// An admin removed it from the cluster.
    Deregistered,
}

/// A worker, as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerView {
    /// What it registered with.
    pub row: StoredWorker,
    /// Attempts it runs now.
    pub running: u32,
    /// Whether it is alive, blacklisted or lost.
    pub health: WorkerHealth,
    /// Excluded from every job until then (0: not).
    pub blacklisted_until_ms: i64,
    /// Running jobs that stopped using it.
    pub excluded_by_jobs: Vec<JobId>,
}

impl CoordinatorHandle {
    /// Opens the state database (taking its lock: see [`crate::store::open`]) and
    /// restores every job that was running.
    pub(crate) async fn open(
        state_url: &str,
        storage: Storage,
        policy: crate::Policy,
        heartbeat_interval_ms: u32,
    ) -> Result<CoordinatorHandle, Error> {
        let store = crate::store::open(state_url).await?;
        CoordinatorHandle::with_store(store, storage, policy, heartbeat_interval_ms).await
    }

    /// A coordinator over `store` (which it restores from), without a
    /// network: for simulations, tests, and a store of one's own. It
    /// commits and cleans up job outputs through `storage`.
    pub async fn with_store(
        store: Store,
        storage: Storage,
        policy: crate::Policy,
        heartbeat_interval_ms: u32,
    ) -> Result<CoordinatorHandle, Error> {
        let saved = store.load().await?;
        let resumed = saved.jobs.iter().filter(|j| !j.job.state.is_terminal()).count();
        let (mut cluster, effects) = Cluster::restore(policy, saved, now_ms())?;
        let work = cluster.take_storage_work();
        store.apply_all(&effects).await?;
        if resumed > 0 {
            tracing::info!(jobs = resumed, "resuming running jobs");
        }
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        let shared = Arc::new(Shared {
            state: Mutex::new(Memory { cluster, stale: false }),
            store,
            policy,
            heartbeat_interval_ms,
            events,
            writes: std::sync::Mutex::new(PendingWrites::default()),
            plans: std::sync::Mutex::new(HashMap::new()),
            plan_timeout: PLAN_TIMEOUT,
            storage,
            storage_work: std::sync::Mutex::new(StorageQueue::default()),
            storage_done: tokio::sync::watch::Sender::new(0),
            nudges: tokio::sync::watch::Sender::new(Nudges::default()),
            code: std::sync::OnceLock::new(),
            chains: Mutex::new(()),
            launcher: std::sync::OnceLock::new(),
        });
        let handle = CoordinatorHandle { shared };
        handle.run_storage_work(work);
        Ok(handle)
    }

    /// The storage job outputs are committed through (and the REST API
    /// reads and writes files through).
    pub fn storage(&self) -> &Storage {
        &self.shared.storage
    }

    /// The state store.
    pub(crate) fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Held while chains move on.
    pub(crate) fn chain_lock(&self) -> &Mutex<()> {
        &self.shared.chains
    }

    /// Stores the code files jobs ship in `code` from now on (the first
    /// store set stays).
    pub fn set_code_store(&self, code: CodeStore) {
        let _ = self.shared.code.set(code);
    }

    /// Where the code files jobs ship are stored.
    pub fn code_store(&self) -> Result<&CodeStore, Error> {
        self.shared.code.get().ok_or_else(|| Error::Refused("this coordinator stores no code files".into()))
    }

    /// Refuses a spec that ships a code file the code store lacks.
    async fn check_code(&self, spec: &JobSpec) -> Result<(), Error> {
        if spec.code.is_empty() {
            return Ok(());
        }
        let missing = self.code_store()?.missing(spec.code.values().copied().collect()).await?;
        if let Some((name, hash)) = spec.code.iter().find(|(_, h)| missing.contains(h)) {
            return Err(Error::Refused(format!(
                "the job's code file {name} ({hash:?}) is not stored on the coordinator: upload it first \
                 (quern submit does)"
            )));
        }
        Ok(())
    }

    /// Every change from now on, in order, each once it is stored. A
    /// subscriber that falls more than 4,096 events behind is told how many
    /// it missed (`RecvError::Lagged`) and should read the state afresh.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// The nudges given so far, changing each time workers should ask for
    /// work or heartbeat at once (see [`crate::nudge`]).
    pub fn nudges(&self) -> tokio::sync::watch::Receiver<Nudges> {
        self.shared.nudges.subscribe()
    }

    /// Nudges the workers (watchers wake only if `nudge` asks for something).
    fn nudge(&self, nudge: Nudge) {
        self.shared.nudges.send_if_modified(|counts| counts.add(nudge));
    }

    /// The working state, rebuilt from the store first if a write failed
    /// since it was last used: memory never runs ahead of the store.
    async fn memory(&self) -> Result<MutexGuard<'_, Memory>, Error> {
        let mut memory = self.shared.state.lock().await;
        if memory.stale {
            let unavailable = |e: Error| Error::Unavailable(format!("reloading the coordinator state: {e}"));
            let saved = self.shared.store.load().await.map_err(unavailable)?;
            let (mut cluster, effects) = Cluster::restore(self.shared.policy, saved, now_ms())?;
            self.shared.store.apply_all(&effects).await.map_err(unavailable)?;
            self.run_storage_work(cluster.take_storage_work());
            memory.cluster = cluster;
            memory.stale = false;
            tracing::warn!("reloaded the coordinator state from the store after a failed write");
        }
        Ok(memory)
    }

    /// Queues a decision's effects (call with the state's lock held, so that
    /// batches keep the order of the decisions). Returns what to wait for
    /// before answering: the batch holding these effects, or holding the
    /// effects of earlier decisions not yet stored, which this decision may
    /// have read; `None` if nothing is waiting to be stored.
    fn queue(&self, effects: Vec<Effect>, work: Vec<StorageWork>) -> Option<oneshot::Receiver<Result<(), String>>> {
        let mut w = self.shared.writes.lock().unwrap_or_else(PoisonError::into_inner);
        if effects.is_empty() && work.is_empty() && w.waiters.is_empty() && !w.writing {
            return None;
        }
        if self.shared.events.receiver_count() > 0 {
            w.events.extend(effects.iter().map(Event::of));
        }
        w.nudge = w.nudge.and(Nudge::after(&effects));
        w.effects.extend(effects);
        w.work.extend(work);
        let (tx, rx) = oneshot::channel();
        w.waiters.push(tx);
        if !w.writing {
            w.writing = true;
            // A task of its own, so that a caller that goes away (a
            // cancelled RPC) never leaves a batch unwritten.
            tokio::spawn(self.clone().write_batches());
        }
        Some(rx)
    }

    /// The writer: takes the queued batch, stores it in one transaction,
    /// starts its output work, publishes its events and answers its
    /// waiters; again until nothing is queued. Concurrent decisions thus
    /// share transactions (group commit).
    async fn write_batches(self) {
        loop {
            let (effects, work, events, nudge, waiters) = {
                let mut w = self.shared.writes.lock().unwrap_or_else(PoisonError::into_inner);
                if w.waiters.is_empty() {
                    w.writing = false;
                    return;
                }
                (
                    std::mem::take(&mut w.effects),
                    std::mem::take(&mut w.work),
                    std::mem::take(&mut w.events),
                    std::mem::take(&mut w.nudge),
                    std::mem::take(&mut w.waiters),
                )
            };
            match self.shared.store.apply_all(&effects).await {
                Ok(()) => {
                    self.run_storage_work(work);
                    for event in events {
                        // No subscriber left is no error.
                        let _ = self.shared.events.send(event);
                    }
                    self.nudge(nudge);
                    for waiter in waiters {
                        let _ = waiter.send(Ok(()));
                    }
                }
                Err(e) => {
                    // Memory is ahead of the store: throw it away, with the
                    // decisions queued since, which were taken on top of it.
                    tracing::error!("storing the coordinator state: {e}");
                    let mut memory = self.shared.state.lock().await;
                    memory.stale = true;
                    let later = {
                        let mut w = self.shared.writes.lock().unwrap_or_else(PoisonError::into_inner);
                        w.effects.clear();
                        w.work.clear();
                        w.events.clear();
                        w.nudge = Nudge::default();
                        w.writing = false;
                        std::mem::take(&mut w.waiters)
                    };
                    drop(memory);
                    let message = format!("the coordinator could not store the change, and made none: {e}");
                    for waiter in waiters.into_iter().chain(later) {
                        let _ = waiter.send(Err(message.clone()));
                    }
                    return;
                }
            }
        }
    }

    /// Runs output work whose decisions are stored, in order, outside the
    /// lock (see [`crate::storage_work`]); what it finds comes back as a
    /// decision of its own.
    fn run_storage_work(&self, work: Vec<StorageWork>) {
        if work.is_empty() {
            return;
        }
        let mut queue = self.shared.storage_work.lock().unwrap_or_else(PoisonError::into_inner);
        queue.queued += work.len() as u64;
        queue.work.extend(work);
        if !queue.running {
            queue.running = true;
            tokio::spawn(self.clone().storage_worker());
        }
    }

    /// Takes the queued output work, runs it (each job's in order, jobs
    /// side by side), and hands what it found to the cluster; again until
    /// nothing is queued. If that decision cannot be stored, memory is
    /// rebuilt from the store, whose restore queues the lost work again (a
    /// job whose every task committed is committed again).
    async fn storage_worker(self) {
        loop {
            let work = {
                let mut queue = self.shared.storage_work.lock().unwrap_or_else(PoisonError::into_inner);
                if queue.work.is_empty() {
                    queue.running = false;
                    return;
                }
                std::mem::take(&mut queue.work)
            };
            let count = work.len() as u64;
            let outcomes = storage_work::run_all(&self.shared.storage, work).await;
            if !outcomes.is_empty()
                && let Err(e) = self.decide(|c| Ok(((), c.storage_done(outcomes, now_ms())))).await
            {
                tracing::error!("recording the end of output work: {e}");
            }
            self.shared.storage_done.send_modify(|done| *done += count);
        }
    }

    /// Waits until the output work queued so far has run (for a caller
    /// whose stored decision queued work it must see done).
    pub(crate) async fn storage_settled(&self) {
        let queued = self.shared.storage_work.lock().unwrap_or_else(PoisonError::into_inner).queued;
        let mut done = self.shared.storage_done.subscribe();
        // The sender lives in `shared`, which outlives this wait.
        let _ = done.wait_for(|&d| d >= queued).await;
    }

    /// Waits until what a decision queued is stored.
    async fn stored(waiting: Option<oneshot::Receiver<Result<(), String>>>) -> Result<(), Error> {
        match waiting {
            None => Ok(()),
            Some(rx) => match rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(message)) => Err(Error::Unavailable(message)),
                Err(_) => Err(Error::Unavailable("the coordinator's writer stopped".into())),
            },
        }
    }

    /// Runs `op` on the cluster under the lock, queues its effects, and
    /// answers once they are stored; if storing fails, the answer is an
    /// error and the cluster is as the store has it.
    async fn decide<T>(&self, op: impl FnOnce(&mut Cluster) -> Result<(T, Vec<Effect>), Error>) -> Result<T, Error> {
        let (answer, waiting) = {
            let mut memory = self.memory().await?;
            let (answer, effects) = op(&mut memory.cluster)?;
            let work = memory.cluster.take_storage_work();
            (answer, self.queue(effects, work))
        };
        Self::stored(waiting).await?;
        Ok(answer)
    }

    /// The periodic check: lost workers, hung attempts.
    pub(crate) async fn tick(&self) -> Result<(), Error> {
        self.decide(|c| Ok(((), c.tick(now_ms())))).await
    }

    /// A worker registers (again).
    pub async fn register(&self, r: Registration) -> Result<Registered, Error> {
        if r.worker_id.as_str().is_empty() || r.slots == 0 || r.shuffle_address.is_empty() {
            return Err(Error::BadRequest("a worker needs an id, at least one slot and a shuffle address".into()));
        }
        let now = now_ms();
        let row = StoredWorker {
            id: r.worker_id,
            host: r.host,
            shuffle_address: r.shuffle_address,
            slots: r.slots,
            apps: r.apps,
            version: r.version,
            state: WorkerState::Alive,
            admin: crate::state::WorkerAdmin::Enabled,
            registered_at_ms: now,
            last_heartbeat_ms: now,
        };
        tracing::info!(worker = %row.id, host = %row.host, slots = row.slots, "worker registered");
        let interval = self.shared.heartbeat_interval_ms;
        self.decide(|c| {
            c.check_registration(&row.id)?;
            let effects = c.register(row, now);
            Ok((Registered { heartbeat_interval_ms: interval, forget_jobs: c.ended_jobs(&r.held_jobs, now) }, effects))
        })
        .await
    }

    /// A worker's heartbeat, with the progress of its attempts as (job,
    /// attempt, fraction, records).
    pub async fn heartbeat(
        &self,
        worker_id: &str,
        progress: &[(JobId, AttemptId, f64, u64)],
    ) -> Result<HeartbeatAnswer, Error> {
        self.decide(|c| Ok(c.heartbeat(worker_id, progress, now_ms()))).await
    }

    /// Up to `free` attempts for a worker; `None` if it must register again.
    pub async fn poll(&self, worker_id: &str, free: u32) -> Result<Option<Vec<Assignment>>, Error> {
        self.decide(|c| {
            if !c.workers().any(|w| w.row.id == worker_id && w.alive) {
                return Ok((None, Vec::new()));
            }
            let (assignments, effects) = c.poll(worker_id, free.min(64), now_ms())?;
            Ok((Some(assignments), effects))
        })
        .await
    }

    /// A worker reports how an attempt ended, with its log (of which the
    /// last 64 KiB are kept). Returns whether its output was committed.
    pub async fn report(
        &self,
        worker_id: &str,
        job: JobId,
        attempt: AttemptId,
        outcome: Outcome,
        mut log: Vec<u8>,
    ) -> Result<bool, Error> {
        if log.len() > LOG_TAIL {
            log.drain(..log.len() - LOG_TAIL);
        }
        self.decide(|c| c.report(worker_id, job, attempt, outcome, log, now_ms())).await
    }

    /// Submits a job as its spec; returns its id once the job is created.
    /// A worker that has the app plans it (the coordinator never runs user
    /// code); this waits for the plan, up to the plan timeout. A spec that
    /// cannot run (a bad spec, an app no worker offers, an existing output,
    /// a missing input or a bad parameter as the planning worker finds, a
    /// plan beyond the bounds) is refused and creates nothing.
    pub async fn submit(&self, spec: JobSpec, priority: i32) -> Result<JobId, Error> {
        self.submit_as(spec, priority, "").await
    }

    /// [`CoordinatorHandle::submit`], recording `owner` as the user who
    /// submitted the job (empty: the cluster token's holder).
    pub async fn submit_as(&self, spec: JobSpec, priority: i32, owner: &str) -> Result<JobId, Error> {
        let spec_json = serde_json::to_string(&spec).map_err(|e| Error::BadRequest(format!("spec: {e}")))?;
        self.check_code(&spec).await?;
        self.memory().await?.cluster.check_submission(&spec)?;
        let created = self.claim_plan_and_create(&spec, spec_json, priority, owner).await;
        if let Ok(mut memory) = self.memory().await {
            memory.cluster.submission_done(&spec);
        }
        created
    }

    /// Claims a checked submission's output, has it planned, and creates
    /// the job; removes the claim if no job is created.
    async fn claim_plan_and_create(
        &self,
        spec: &JobSpec,
        spec_json: String,
        priority: i32,
        owner: &str,
    ) -> Result<JobId, Error> {
        // Claim the output (a directory made, or a conditional PUT) outside
        // the lock; from here on, a submission that creates no job removes
        // its claim.
        let output = spec.output.clone();
        let storage = self.shared.storage.clone();
        tokio::task::spawn_blocking(move || storage.setup_output(&output).map(drop))
            .await
            .map_err(|e| Error::Unavailable(format!("claiming the output: {e}")))?
            .map_err(|e| Error::Refused(e.to_string()))?;
        match self.plan_and_create(spec.clone(), spec_json, priority, owner.to_owned()).await {
            Created::Job(id) => Ok(id),
            Created::Stored(e) => Err(e),
            Created::Nothing(e) => {
                let storage = self.shared.storage.clone();
                let output = spec.output.clone();
                let abort = tokio::task::spawn_blocking(move || match storage.open_output(&output) {
                    Ok(committer) => committer.abort_job(),
                    Err(e) => tracing::warn!(output = %output, "removing a refused job's output claim: {e}"),
                });
                let _ = abort.await;
                Err(e)
            }
        }
    }

    /// Has a worker plan a submitted spec whose output is claimed, then
    /// creates the job.
    async fn plan_and_create(&self, spec: JobSpec, spec_json: String, priority: i32, owner: String) -> Created {
        let (ticket, answer) = {
            let mut memory = match self.memory().await {
                Ok(memory) => memory,
                Err(e) => return Created::Nothing(e),
            };
            let ticket = memory.cluster.request_plan(&spec, spec_json.clone());
            let (tx, rx) = oneshot::channel();
            self.shared.plans.lock().unwrap_or_else(PoisonError::into_inner).insert(ticket, tx);
            // A heartbeat answer hands the spec to a worker: ask for one now.
            self.nudge(Nudge::HEARTBEAT);
            (ticket, rx)
        };
        let planned = match tokio::time::timeout(self.shared.plan_timeout, answer).await {
            Ok(Ok(PlanAnswer::Planned(plan))) => Ok(plan),
            Ok(Ok(PlanAnswer::Refused(message))) => Err(Error::Refused(message)),
            Ok(Ok(PlanAnswer::Failed(message))) => {
                Err(Error::Unavailable(format!("planning the job failed: {message}")))
            }
            Ok(Err(_)) | Err(_) => Err(Error::Unavailable(format!(
                "no worker planned the job within {}s; are workers with app '{}' running?",
                self.shared.plan_timeout.as_secs(),
                spec.app
            ))),
        };
        let mut memory = match self.memory().await {
            Ok(memory) => memory,
            Err(e) => return Created::Nothing(e),
        };
        memory.cluster.plan_done(ticket);
        self.shared.plans.lock().unwrap_or_else(PoisonError::into_inner).remove(&ticket);
        let plan = match planned.and_then(|plan| Cluster::check_plan(&spec, &plan).map(|()| plan)) {
            Ok(plan) => plan,
            Err(e) => return Created::Nothing(e),
        };
        let plan_json = match serde_json::to_string(&plan) {
            Ok(json) => json,
            Err(e) => return Created::Nothing(Error::BadRequest(format!("plan: {e}"))),
        };
        let now = now_ms();
        let row = StoredJob {
            id: JobId(0),
            app: spec.app.clone(),
            spec_json: spec_json.clone(),
            plan_json: plan_json.clone(),
            priority,
            state: JobPhase::Pending,
            error: String::new(),
            counters: Counters::default(),
            submitted_at_ms: now,
            started_at_ms: 0,
            finished_at_ms: 0,
            owner: owner.clone(),
        };
        // Under the lock, so that the job is in memory before any decision
        // can see its id.
        let id = match self.shared.store.insert_job(&row).await {
            Ok(id) => id,
            Err(e) => return Created::Nothing(e),
        };
        tracing::info!(job = %id, app = %spec.app, maps = plan.splits.len(), reduces = plan.partitions, "job submitted");
        // Stored by the insert: subscribers hear of it now.
        let _ = self.shared.events.send(Event::Job { id, state: JobPhase::Pending });
        let effects = memory.cluster.add_job(NewJob { id, spec, plan, spec_json, plan_json, priority, owner }, now);
        let work = memory.cluster.take_storage_work();
        let waiting = self.queue(effects, work);
        drop(memory);
        match Self::stored(waiting).await {
            Ok(()) => {
                // Its tasks wait for workers.
                self.nudge(Nudge::POLL);
                Created::Job(id)
            }
            Err(e) => Created::Stored(e),
        }
    }

    /// A worker's answer to a planning request. An answer nobody waits for
    /// any more (given up, or from a worker that lost the request) is
    /// dropped.
    pub async fn report_plan(&self, worker_id: &str, ticket: u64, answer: PlanAnswer) {
        let waiting = self.shared.plans.lock().unwrap_or_else(PoisonError::into_inner).remove(&ticket);
        match waiting {
            Some(tx) => {
                tracing::debug!(ticket, worker = %worker_id, "plan reported");
                let _ = tx.send(answer);
            }
            None => tracing::debug!(ticket, worker = %worker_id, "a plan nobody waits for"),
        }
    }

    /// Every job, oldest first.
    pub async fn jobs(&self) -> Result<Vec<JobView>, Error> {
        Ok(self.memory().await?.cluster.jobs().map(job_view).collect())
    }

    /// One job.
    pub async fn job(&self, id: JobId) -> Result<JobView, Error> {
        self.memory().await?.cluster.job(id).map(job_view).ok_or(Error::NoSuchJob(id))
    }

    /// Every user of the REST API, by name.
    pub async fn users(&self) -> Result<Vec<crate::store::StoredUser>, Error> {
        self.shared.store.users().await
    }

    /// One user, if there is one of that name.
    pub async fn user(&self, name: &str) -> Result<Option<crate::store::StoredUser>, Error> {
        Ok(self.shared.store.users().await?.into_iter().find(|u| u.name == name))
    }

    /// Stores a user, or changes its role and password.
    pub async fn put_user(&self, user: &crate::store::StoredUser) -> Result<(), Error> {
        self.shared.store.put_user(user).await
    }

    /// Removes a user; false if there was none.
    pub async fn remove_user(&self, name: &str) -> Result<bool, Error> {
        self.shared.store.remove_user(name).await
    }

    /// A job's spec and plan (JSON, as stored): what a worker fetches once
    /// per job before it runs the job's attempts.
    pub async fn spec_and_plan(&self, id: JobId) -> Result<(Arc<str>, Arc<str>), Error> {
        self.memory().await?.cluster.job(id).map(Job::spec_and_plan).ok_or(Error::NoSuchJob(id))
    }

    /// Kills a job; false if it had already ended (or was committing its
    /// output). Returns once the job's output is removed, so that the same
    /// output can be used again at once.
    pub async fn kill(&self, id: JobId) -> Result<bool, Error> {
        let killed = self.decide(|c| c.kill(id, now_ms())).await?;
        self.storage_settled().await;
        Ok(killed)
    }

    /// Every worker ever registered.
    pub async fn workers(&self) -> Result<Vec<WorkerView>, Error> {
        let memory = self.memory().await?;
        let now = now_ms();
        Ok(memory.cluster.workers().map(|w| worker_view(&memory.cluster, w, now)).collect())
    }

    /// Drains a worker (admins): it finishes the attempts it runs and gets
    /// no new ones. Answers it as it now stands.
    pub async fn drain_worker(&self, worker_id: &str) -> Result<WorkerView, Error> {
        self.decide_about_worker(worker_id, |c, _| c.drain(worker_id)).await
    }

    /// Enables a drained or deregistered worker again and lifts its
    /// blacklist (admins).
    pub async fn enable_worker(&self, worker_id: &str) -> Result<WorkerView, Error> {
        self.decide_about_worker(worker_id, |c, _| c.enable(worker_id)).await
    }

    /// Removes a worker from the cluster now (admins): its attempts run
    /// again elsewhere, and it may not register again until enabled.
    pub async fn deregister_worker(&self, worker_id: &str) -> Result<WorkerView, Error> {
        self.decide_about_worker(worker_id, |c, now| c.deregister(worker_id, now)).await
    }

    async fn decide_about_worker(
        &self,
        worker_id: &str,
        decision: impl FnOnce(&mut Cluster, i64) -> Result<Vec<Effect>, Error>,
    ) -> Result<WorkerView, Error> {
        let now = now_ms();
        self.decide(|c| {
            let effects = decision(c, now)?;
            let worker = c.workers().find(|w| w.row.id == worker_id);
            let view = worker.map(|w| worker_view(c, w, now)).ok_or_else(|| Error::NoSuchWorker(worker_id.into()))?;
            Ok((view, effects))
        })
        .await
    }

    /// Hands admins' `workers add` and `remove` to a launcher loop
    /// ([`crate::launch::run_launcher`]) from now on (the first one set
    /// stays).
    pub fn set_launcher(&self, control: LaunchControl) {
        let _ = self.shared.launcher.set(control);
    }

    /// The launcher loop, if this coordinator launches workers.
    pub fn launcher(&self) -> Result<&LaunchControl, Error> {
        self.shared
            .launcher
            .get()
            .ok_or_else(|| Error::Refused("this coordinator launches no workers: start it with --launcher".to_owned()))
    }

    /// The work waiting for slots and the workers' load, for the launcher.
    pub async fn launch_demand(&self) -> Result<Demand, Error> {
        Ok(self.memory().await?.cluster.demand())
    }

    /// A launched worker ended on its platform, for `why` (see
    /// [`Cluster::worker_ended`]).
    pub async fn worker_ended(&self, worker: &WorkerId, why: &str, for_job: Option<JobId>) -> Result<(), Error> {
        self.decide(|c| Ok(((), c.worker_ended(worker, why, for_job, now_ms())))).await
    }

    /// Records an event on a job that has not ended (what a launcher saw).
    pub async fn note_job_event(&self, job: JobId, reason: &str, message: &str) -> Result<(), Error> {
        self.decide(|c| Ok(((), c.note_job_event(job, reason, message, now_ms())))).await
    }

    /// A job's events, oldest first.
    pub async fn job_events(&self, job: JobId) -> Result<Vec<JobEvent>, Error> {
        if self.memory().await?.cluster.job(job).is_none() {
            return Err(Error::NoSuchJob(job));
        }
        self.shared.store.job_events(job).await
    }

    /// A job's attempts (of one task, if given), with their logs.
    pub async fn logs(&self, job: JobId, task: Option<TaskId>) -> Result<Vec<StoredAttempt>, Error> {
        if self.memory().await?.cluster.job(job).is_none() {
            return Err(Error::NoSuchJob(job));
        }
        self.shared.store.attempts(job, task, true).await
    }

    /// Every task of a job (maps, then reduces) with its attempts: where
    /// each ran, when, how it ended, and the progress of those running.
    /// Attempts are read from the store, so one that started a moment ago
    /// may show once its start is stored.
    pub async fn tasks(&self, id: JobId) -> Result<Vec<TaskView>, Error> {
        let (records, progress, map_count, reduce_count) = {
            let memory = self.memory().await?;
            let job = memory.cluster.job(id).ok_or(Error::NoSuchJob(id))?;
            let progress: HashMap<AttemptId, (f64, u64)> = job
                .running_attempts()
                .into_iter()
                .map(|(attempt, _, fraction, records, _)| (attempt, (fraction, records)))
                .collect();
            (job.task_records(), progress, job.plan.splits.len() as u32, job.plan.partitions)
        };
        let records: HashMap<TaskId, quern_core::TaskRecord> = match records {
            Some(records) => records.into_iter().map(|r| (r.task, r.record)).collect(),
            // An ended job loaded from history: its records are stored.
            None => self.shared.store.tasks(id).await?.into_iter().map(|t| (t.task, t.record)).collect(),
        };
        let mut attempts: HashMap<TaskId, Vec<AttemptView>> = HashMap::new();
        for a in self.shared.store.attempts(id, None, false).await? {
            let (fraction, records) = match a.outcome {
                None => progress.get(&a.attempt).copied().unwrap_or((0.0, 0)),
                Some(AttemptEnd::Succeeded) => (1.0, 0),
                Some(_) => (0.0, 0),
            };
            attempts.entry(a.attempt.task).or_default().push(AttemptView {
                attempt: a.attempt,
                worker_id: a.worker_id,
                outcome: a.outcome,
                error: a.error,
                started_ms: a.started_at_ms,
                finished_ms: a.finished_at_ms,
                fraction,
                records,
            });
        }
        let tasks = (0..map_count)
            .map(|index| TaskId { kind: TaskKind::Map, index })
            .chain((0..reduce_count).map(|index| TaskId { kind: TaskKind::Reduce, index }));
        Ok(tasks
            .map(|task| {
                let record = records.get(&task).copied().unwrap_or_default();
                let attempts = attempts.remove(&task).unwrap_or_default();
                let state = if record.committed.is_some() {
                    TaskStatus::Succeeded
                } else if record.failed {
                    TaskStatus::Failed
                } else if attempts.iter().any(|a| a.outcome.is_none()) {
                    TaskStatus::Running
                } else {
                    TaskStatus::Pending
                };
                TaskView { task, state, committed: record.committed, failures: record.failures, attempts }
            })
            .collect())
    }
}

fn job_view(job: &Job) -> JobView {
    let (maps, reduces) = match &job.sched {
        Some(s) => (s.progress(TaskKind::Map), s.progress(TaskKind::Reduce)),
        None => {
            // Loaded from history: only totals, all done if it succeeded.
            let done = job.phase == JobPhase::Succeeded;
            let ended =
                |total: u32| PhaseProgress { total, succeeded: if done { total } else { 0 }, ..Default::default() };
            (ended(job.plan.splits.len() as u32), ended(job.plan.partitions))
        }
    };
    JobView {
        id: job.id,
        app: job.spec.app.clone(),
        owner: job.owner.clone(),
        output: job.spec.output.clone(),
        state: job.phase,
        stage: job.stage(),
        error: job.error.clone(),
        priority: job.priority,
        maps,
        reduces,
        counters: job.counters(),
        submitted_ms: job.submitted_ms,
        started_ms: job.started_ms,
        finished_ms: job.finished_ms,
        input_bytes: job.input_bytes(),
        partitioner: job.plan.partitioner,
        code: job.spec.code.clone(),
        running: job
            .running_attempts()
            .into_iter()
            .map(|(attempt, worker, fraction, records, started_ms)| RunningAttemptView {
                attempt,
                worker_id: worker.into(),
                fraction,
                records,
                started_ms,
            })
            .collect(),
    }
}

fn worker_view(cluster: &Cluster, w: &Worker, now: i64) -> WorkerView {
    let blacklisted = w.blacklisted(now);
    WorkerView {
        row: w.row.clone(),
        running: w.running.len() as u32,
        health: match (w.row.admin, w.alive, blacklisted) {
            (WorkerAdmin::Deregistered, _, _) => WorkerHealth::Deregistered,
            (_, false, _) => WorkerHealth::Lost,
            (WorkerAdmin::Draining, true, _) => WorkerHealth::Draining,
            (WorkerAdmin::Enabled, true, true) => WorkerHealth::Blacklisted,
            (WorkerAdmin::Enabled, true, false) => WorkerHealth::Alive,
        },
        blacklisted_until_ms: if blacklisted { w.blacklisted_until_ms } else { 0 },
        excluded_by_jobs: cluster.excluding_jobs(&w.row.id, now),
    }
}
