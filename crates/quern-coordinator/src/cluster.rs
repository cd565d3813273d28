//! The coordinator's working state and every decision it makes: which
//! attempt goes to which worker, what a report means, when a worker is lost,
//! when an attempt has hung, when to launch a backup. Synchronous and free of
//! I/O except the output commit renames: each operation returns the
//! [`Effect`]s to make durable, which the service writes to the [`Store`]
//! before it answers.
//!
//! One [`Scheduler`] per job does the task bookkeeping (the same one the
//! embedded runner uses); this module adds workers, time and placement.
//!
//! [`Store`]: crate::store::Store

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use quern_core::{
    AttemptId, CommitDecision, Counters, Failure, FailureOutcome, JobPlan, JobSpec, JobState, Next, Scheduler, TaskId,
    TaskKind, TaskRecord,
};
use quern_storage::OutputCommitter;
use serde::{Deserialize, Serialize};

use crate::error::Error;
pub use crate::state::JobPhase;
use crate::state::{AttemptEnd, WorkerState};
use crate::store::{JobRow, TaskRow, WorkerRow};

/// Timing policy.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// A worker silent this long is lost.
    pub worker_timeout_ms: i64,
    /// An attempt without progress this long has hung and is failed.
    pub task_timeout_ms: i64,
    /// Launch backup attempts for stragglers near the end of a phase.
    pub speculation: bool,
    /// A worker on which attempts of this many different tasks of one job
    /// failed is excluded from that job (Hadoop's per-job blacklist).
    pub blacklist_task_failures: u32,
    /// A worker excluded by this many jobs is excluded from every job for
    /// [`Policy::blacklist_expiry_ms`] (the cluster-wide blacklist).
    pub blacklist_jobs: u32,
    /// How long a failure counts against a worker, and how long a
    /// cluster-wide exclusion lasts.
    pub blacklist_expiry_ms: i64,
}

impl Policy {
    /// Defaults for the blacklist: 3 failed tasks exclude a worker from a
    /// job, 2 such jobs from the cluster, failures count for 10 minutes.
    pub const fn with_timeouts(worker_timeout_ms: i64, task_timeout_ms: i64, speculation: bool) -> Policy {
        Policy {
            worker_timeout_ms,
            task_timeout_ms,
            speculation,
            blacklist_task_failures: 3,
            blacklist_jobs: 2,
            blacklist_expiry_ms: 10 * 60 * 1000,
        }
    }
}

/// Where a committed map's output is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapOutputLoc {
    /// The worker that has it.
    pub worker_id: String,
    /// Its shuffle service.
    pub shuffle_address: String,
    /// The run file on that worker.
    pub path: String,
    /// One segment per global partition.
    pub segments: Vec<Segment>,
}

pub use quern_core::Segment;

/// A map output index as the engine reports it (its `RunIndex`).
#[derive(Debug, Clone, Deserialize)]
pub struct ReportedIndex {
    /// The run file.
    pub path: std::path::PathBuf,
    /// Its segments.
    pub segments: Vec<Segment>,
}

/// What must be made durable.
#[derive(Debug, Clone)]
pub enum Effect {
    /// A job row changed.
    Job(JobRow),
    /// A task record changed.
    Task(u64, TaskRow),
    /// An attempt started.
    AttemptStarted {
        /// Its job.
        job: u64,
        /// The attempt.
        attempt: AttemptId,
        /// Where it runs.
        worker: String,
        /// When.
        at_ms: i64,
    },
    /// An attempt ended.
    AttemptEnded {
        /// Its job.
        job: u64,
        /// The attempt.
        attempt: AttemptId,
        /// How.
        outcome: AttemptEnd,
        /// Why, if it failed.
        error: String,
        /// Its stderr.
        log: Option<Vec<u8>>,
        /// Its counters.
        counters_json: Option<String>,
        /// When.
        at_ms: i64,
    },
    /// A worker changed.
    Worker(WorkerRow),
}

#[derive(Debug, Clone)]
struct RunningAttempt {
    worker: String,
    started_ms: i64,
    last_progress_ms: i64,
    records: u64,
    fraction: f64,
}

/// One job.
#[derive(Debug)]
pub struct Job {
    /// Its id.
    pub id: u64,
    /// Its spec.
    pub spec: JobSpec,
    /// Its plan.
    pub plan: JobPlan,
    spec_json: String,
    plan_json: String,
    /// Higher goes first.
    pub priority: i32,
    /// Task bookkeeping (absent once the job has ended and was loaded from
    /// history).
    pub sched: Option<Scheduler>,
    /// Its state.
    pub phase: JobPhase,
    /// Why it failed.
    pub error: String,
    /// The counters of each task's committed attempt (maps, reduces): a
    /// job counts committed work only, once, however often it ran.
    task_counters: [Vec<Option<Counters>>; 2],
    /// The sum of `task_counters` (for an ended job loaded from history: its
    /// stored counters).
    committed_counters: Counters,
    /// Attempts that failed (counted against their task's limit).
    failed_attempts: u64,
    /// For each worker, the tasks of this job that failed there, and when
    /// they last did: retries go elsewhere, and a worker where several
    /// tasks failed is excluded from the job.
    failures: HashMap<String, HashMap<TaskId, i64>>,
    map_outputs: Vec<Option<MapOutputLoc>>,
    running: HashMap<AttemptId, RunningAttempt>,
    /// Durations of committed attempts, per phase (for speculation).
    durations: [Vec<i64>; 2],
    /// The median of `durations`, with the count it was computed from:
    /// recomputed only when the count grew by 1 %, so idle polls stay cheap.
    median: [(usize, i64); 2],
    /// Times (ms since the epoch; 0: not yet).
    pub submitted_ms: i64,
    /// First attempt started.
    pub started_ms: i64,
    /// Ended.
    pub finished_ms: i64,
}

impl Job {
    fn row(&self) -> JobRow {
        JobRow {
            id: self.id,
            app: self.spec.app.clone(),
            spec_json: self.spec_json.clone(),
            plan_json: self.plan_json.clone(),
            priority: self.priority,
            state: self.phase,
            error: self.error.clone(),
            counters_json: serde_json::to_string(&self.counters()).unwrap_or_else(|_| "{}".into()),
            submitted_at_ms: self.submitted_ms,
            started_at_ms: self.started_ms,
            finished_at_ms: self.finished_ms,
        }
    }

    fn task_row(&self, task: TaskId) -> Option<TaskRow> {
        let record = self.sched.as_ref()?.record(task)?;
        let map_output_json = match task.kind {
            TaskKind::Map => self.map_outputs[task.index as usize].as_ref().and_then(|l| serde_json::to_string(l).ok()),
            TaskKind::Reduce => None,
        };
        let counters_json = self.task_counters[task.kind as usize]
            .get(task.index as usize)
            .and_then(Option::as_ref)
            .and_then(|c| serde_json::to_string(c).ok());
        Some(TaskRow { task, record, map_output_json, counters_json })
    }

    /// Forgets a map's output and its counters: the map runs again.
    fn forget_map_output(&mut self, map: u32) {
        if let Some(loc) = self.map_outputs.get_mut(map as usize) {
            *loc = None;
        }
        self.set_task_counters(TaskId { kind: TaskKind::Map, index: map }, None);
    }

    /// The job's counters: the sum over committed attempts, plus the
    /// number of failed attempts.
    pub fn counters(&self) -> Counters {
        let mut c = self.committed_counters.clone();
        c.engine.failed_attempts = self.failed_attempts;
        c
    }

    /// Records (or, with `None`, forgets) the counters of `task`'s
    /// committed attempt.
    fn set_task_counters(&mut self, task: TaskId, counters: Option<Counters>) {
        let Some(slot) = self.task_counters[task.kind as usize].get_mut(task.index as usize) else { return };
        let had = slot.is_some();
        match (had, counters) {
            (false, Some(c)) => {
                self.committed_counters.merge(&c);
                *slot = Some(c);
            }
            (_, new) => {
                *slot = new;
                self.committed_counters = Counters::default();
                for c in self.task_counters.iter().flatten().flatten() {
                    self.committed_counters.merge(c);
                }
            }
        }
    }

    /// Records that an attempt of `task` failed on `worker` at `now_ms`.
    /// Returns true if that makes the worker excluded from this job.
    fn record_failure(&mut self, worker: &str, task: TaskId, now_ms: i64, policy: &Policy) -> bool {
        self.failed_attempts += 1;
        let before = self.excludes(worker, now_ms, policy);
        let tasks = self.failures.entry(worker.to_owned()).or_default();
        tasks.retain(|_, at| now_ms - *at < policy.blacklist_expiry_ms);
        tasks.insert(task, now_ms);
        !before && self.excludes(worker, now_ms, policy)
    }

    /// Whether attempts of enough different tasks failed on `worker`
    /// lately to keep it away from this job.
    fn excludes(&self, worker: &str, now_ms: i64, policy: &Policy) -> bool {
        self.failures.get(worker).is_some_and(|tasks| {
            let recent = tasks.values().filter(|&&at| now_ms - at < policy.blacklist_expiry_ms).count();
            recent >= policy.blacklist_task_failures.max(1) as usize
        })
    }

    /// Whether an attempt of `task` failed on `worker` lately.
    fn failed_on(&self, worker: &str, task: TaskId, now_ms: i64, policy: &Policy) -> bool {
        self.failures
            .get(worker)
            .and_then(|tasks| tasks.get(&task))
            .is_some_and(|&at| now_ms - at < policy.blacklist_expiry_ms)
    }

    fn committer(&self) -> OutputCommitter {
        OutputCommitter::open(Path::new(&self.spec.output))
    }

    /// The phase name: map, reduce, done.
    pub fn stage(&self) -> &'static str {
        match self.sched.as_ref().and_then(Scheduler::phase) {
            Some(TaskKind::Map) => "map",
            Some(TaskKind::Reduce) => "reduce",
            None => "done",
        }
    }

    /// Attempts running now: (attempt, worker, fraction done, records,
    /// started at), in task order.
    pub fn running_attempts(&self) -> Vec<(AttemptId, &str, f64, u64, i64)> {
        let mut v: Vec<_> =
            self.running.iter().map(|(a, r)| (*a, r.worker.as_str(), r.fraction, r.records, r.started_ms)).collect();
        v.sort_by_key(|(a, ..)| (a.task, a.attempt));
        v
    }

    /// Input bytes of the job.
    pub fn input_bytes(&self) -> u64 {
        self.plan.splits.iter().map(quern_core::InputSplit::len).sum()
    }
}

/// One worker.
#[derive(Debug, Clone)]
pub struct Worker {
    /// What it registered with.
    pub row: WorkerRow,
    /// Attempts it runs now.
    pub running: HashSet<(u64, AttemptId)>,
    /// Attempts to tell it to stop, at its next heartbeat.
    cancels: Vec<(u64, AttemptId)>,
    /// Ended jobs whose data it may delete.
    forget: Vec<u64>,
    /// Whether it is alive (not lost).
    pub alive: bool,
    /// Jobs that excluded it, and when: enough of them exclude it from
    /// the cluster.
    excluded_by: BTreeMap<u64, i64>,
    /// Excluded from every job until then (ms since the epoch; 0: never).
    pub blacklisted_until_ms: i64,
}

impl Worker {
    fn new(row: WorkerRow, alive: bool) -> Worker {
        Worker {
            row,
            running: HashSet::new(),
            cancels: Vec::new(),
            forget: Vec::new(),
            alive,
            excluded_by: BTreeMap::new(),
            blacklisted_until_ms: 0,
        }
    }

    /// Whether it is excluded from every job now.
    pub fn blacklisted(&self, now_ms: i64) -> bool {
        self.blacklisted_until_ms > now_ms
    }
}

/// A job accepted by [`Cluster::check_submission`] and stored.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The id the store gave it.
    pub id: u64,
    /// Its spec.
    pub spec: JobSpec,
    /// Its plan.
    pub plan: JobPlan,
    /// The spec as submitted.
    pub spec_json: String,
    /// The plan as submitted.
    pub plan_json: String,
    /// Higher goes first.
    pub priority: i32,
}

/// What a poll hands a worker.
#[derive(Debug, Clone)]
pub struct Assignment {
    /// The job.
    pub job: u64,
    /// The attempt.
    pub attempt: AttemptId,
    /// The job's spec, as submitted.
    pub spec_json: String,
    /// The job's plan, as submitted.
    pub plan_json: String,
    /// A reduce's inputs: (map index, location, segment).
    pub inputs: Vec<(u32, MapOutputLoc, Segment)>,
}

/// How an attempt ended, as a worker reports it.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Finished.
    Succeeded {
        /// Counters.
        counters: Counters,
        /// A map's output index, if it has one.
        map_output: Option<ReportedIndex>,
    },
    /// Failed.
    Failed(Failure),
    /// A reduce could not read the output of these maps (a fetch failed,
    /// or the output is gone from the worker that wrote it).
    FetchFailed {
        /// The maps.
        maps: Vec<u32>,
        /// Why.
        message: String,
    },
    /// Stopped on request.
    Cancelled,
}

/// The coordinator's state.
#[derive(Debug)]
pub struct Cluster {
    jobs: BTreeMap<u64, Job>,
    workers: BTreeMap<String, Worker>,
    policy: Policy,
}

fn failure_message(outcome: &FailureOutcome) -> AttemptEnd {
    match outcome {
        FailureOutcome::Retrying | FailureOutcome::JobFailed => AttemptEnd::Failed,
        FailureOutcome::Ignored => AttemptEnd::Stale,
    }
}

impl Cluster {
    /// An empty cluster.
    pub fn new(policy: Policy) -> Cluster {
        Cluster { jobs: BTreeMap::new(), workers: BTreeMap::new(), policy }
    }

    /// Rebuilds the state from the store's rows after a restart. Jobs that
    /// were running resume: committed tasks stay committed (their commits are
    /// finished again, which is idempotent), in-flight attempts run again.
    /// Known workers get one worker timeout to come back.
    pub fn restore(
        policy: Policy,
        jobs: Vec<(JobRow, Vec<TaskRow>)>,
        workers: Vec<WorkerRow>,
        now_ms: i64,
    ) -> Result<(Cluster, Vec<Effect>), Error> {
        let mut cluster = Cluster::new(policy);
        for mut row in workers {
            let alive = row.state == WorkerState::Alive;
            row.last_heartbeat_ms = now_ms;
            cluster.workers.insert(row.id.clone(), Worker::new(row, alive));
        }
        let mut effects = Vec::new();
        for (row, tasks) in jobs {
            let spec: JobSpec = serde_json::from_str(&row.spec_json).map_err(|e| Error::Corrupt(e.to_string()))?;
            let plan: JobPlan = serde_json::from_str(&row.plan_json).map_err(|e| Error::Corrupt(e.to_string()))?;
            let phase = row.state;
            let corrupt = |what: String| move |e: serde_json::Error| Error::Corrupt(format!("{what}: {e}"));
            let mut maps = vec![TaskRecord::default(); plan.splits.len()];
            let mut reduces = vec![TaskRecord::default(); plan.partitions as usize];
            let mut map_outputs = vec![None; plan.splits.len()];
            let mut task_counters = [vec![None; maps.len()], vec![None; reduces.len()]];
            for t in &tasks {
                let slot = match t.task.kind {
                    TaskKind::Map => maps.get_mut(t.task.index as usize),
                    TaskKind::Reduce => reduces.get_mut(t.task.index as usize),
                };
                let slot = slot.ok_or_else(|| Error::Corrupt(format!("job {} has no task {}", row.id, t.task)))?;
                *slot = t.record;
                if t.record.committed.is_none() {
                    continue;
                }
                // A committed task's output location and counters must be
                // readable: guessing "none" would silently drop its records.
                let what = |field: &str| format!("job {} task {} {field}", row.id, t.task);
                let json = t.counters_json.as_deref().ok_or_else(|| Error::Corrupt(what("has no counters")))?;
                task_counters[t.task.kind as usize][t.task.index as usize] =
                    Some(serde_json::from_str(json).map_err(corrupt(what("counters")))?);
                if let (TaskKind::Map, Some(json)) = (t.task.kind, &t.map_output_json) {
                    map_outputs[t.task.index as usize] =
                        Some(serde_json::from_str(json).map_err(corrupt(what("map output")))?);
                }
            }
            let (sched, committed_counters, failed_attempts) = if phase.is_terminal() {
                let counters: Counters =
                    serde_json::from_str(&row.counters_json).map_err(corrupt(format!("job {} counters", row.id)))?;
                let failed = counters.engine.failed_attempts;
                (None, counters, failed)
            } else {
                let mut sum = Counters::default();
                for c in task_counters.iter().flatten().flatten() {
                    sum.merge(c);
                }
                let failed = maps.iter().chain(&reduces).map(|r| u64::from(r.failures)).sum();
                (Some(Scheduler::restore(&maps, &reduces, spec.max_attempts)), sum, failed)
            };
            let job = Job {
                id: row.id,
                spec,
                plan,
                spec_json: row.spec_json,
                plan_json: row.plan_json,
                priority: row.priority,
                sched,
                phase,
                error: row.error,
                task_counters,
                committed_counters,
                failed_attempts,
                failures: HashMap::new(),
                map_outputs,
                running: HashMap::new(),
                durations: [Vec::new(), Vec::new()],
                median: [(0, 0); 2],
                submitted_ms: row.submitted_at_ms,
                started_ms: row.started_at_ms,
                finished_ms: row.finished_at_ms,
            };
            let id = job.id;
            if !phase.is_terminal() {
                // Finish any commit a crash interrupted (idempotent).
                let committer = job.committer();
                for (kind, records) in [(TaskKind::Map, &maps), (TaskKind::Reduce, &reduces)] {
                    for (i, r) in records.iter().enumerate() {
                        if let Some(attempt) = r.committed {
                            let a = AttemptId { task: TaskId { kind, index: i as u32 }, attempt };
                            if let Err(e) = committer.commit_task(a) {
                                tracing::warn!(job = id, %a, "re-committing after restart: {e}");
                            }
                        }
                    }
                }
            }
            cluster.jobs.insert(id, job);
            cluster.settle(id, now_ms, &mut effects);
        }
        Ok((cluster, effects))
    }

    /// Every job, by id.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs.values()
    }

    /// One job.
    pub fn job(&self, id: u64) -> Option<&Job> {
        self.jobs.get(&id)
    }

    /// Every worker, by id.
    pub fn workers(&self) -> impl Iterator<Item = &Worker> {
        self.workers.values()
    }

    /// Accepts a job: checks it can run, creates its output directory, and
    /// returns the row to insert. The caller inserts it and then calls
    /// [`Cluster::add_job`] with the id the store gave.
    pub fn check_submission(&self, spec: &JobSpec, plan: &JobPlan) -> Result<(), Error> {
        spec.validate().map_err(|e| Error::Refused(e.to_string()))?;
        if plan.partitions as usize != plan.outputs.iter().map(|o| o.reducers as usize).sum::<usize>() {
            return Err(Error::BadRequest("plan: partitions do not add up".into()));
        }
        let alive: Vec<&Worker> = self.workers.values().filter(|w| w.alive).collect();
        if !alive.is_empty() && !alive.iter().any(|w| w.row.apps.contains(&spec.app)) {
            return Err(Error::Refused(format!("no worker offers app '{}'", spec.app)));
        }
        for split in &plan.splits {
            if !split.file.path.exists() {
                return Err(Error::Refused(format!("input {}: not visible to the coordinator", split.file.name)));
            }
        }
        OutputCommitter::setup(Path::new(&spec.output)).map_err(|e| Error::Refused(e.to_string()))?;
        Ok(())
    }

    /// Adds an accepted job.
    pub fn add_job(&mut self, new: NewJob, now_ms: i64) -> Vec<Effect> {
        let NewJob { id, spec, plan, spec_json, plan_json, priority } = new;
        let sched = Scheduler::new(plan.splits.len() as u32, plan.partitions, spec.max_attempts);
        let (maps, reduces) = (plan.splits.len(), plan.partitions as usize);
        let job = Job {
            id,
            spec,
            plan,
            spec_json,
            plan_json,
            priority,
            sched: Some(sched),
            phase: JobPhase::Pending,
            error: String::new(),
            task_counters: [vec![None; maps], vec![None; reduces]],
            committed_counters: Counters::default(),
            failed_attempts: 0,
            failures: HashMap::new(),
            map_outputs: vec![None; maps],
            running: HashMap::new(),
            durations: [Vec::new(), Vec::new()],
            median: [(0, 0); 2],
            submitted_ms: now_ms,
            started_ms: 0,
            finished_ms: 0,
        };
        self.jobs.insert(id, job);
        let mut effects = Vec::new();
        self.settle(id, now_ms, &mut effects);
        effects
    }

    /// A worker (re)registers. Attempts it was thought to run are lost: a
    /// registering worker has none.
    pub fn register(&mut self, row: WorkerRow, now_ms: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let Some(old) = self.workers.get(&row.id) {
            let running: Vec<(u64, AttemptId)> = old.running.iter().copied().collect();
            for (job, attempt) in running {
                self.lose_attempt(job, attempt, AttemptEnd::Lost, "the worker restarted", now_ms, &mut effects);
            }
        }
        let id = row.id.clone();
        let mut row = row;
        row.state = WorkerState::Alive;
        row.last_heartbeat_ms = now_ms;
        effects.push(Effect::Worker(row.clone()));
        let mut worker = Worker::new(row, true);
        if let Some(old) = self.workers.get(&id) {
            // A restart does not clear a worker's record of failures.
            worker.excluded_by = old.excluded_by.clone();
            worker.blacklisted_until_ms = old.blacklisted_until_ms;
        }
        self.workers.insert(id, worker);
        effects
    }

    /// A heartbeat: progress of the worker's attempts. Returns whether the
    /// worker must register again, the attempts to cancel and the jobs to
    /// forget.
    pub fn heartbeat(
        &mut self,
        worker_id: &str,
        progress: &[(u64, AttemptId, f64, u64)],
        now_ms: i64,
    ) -> (bool, Vec<(u64, AttemptId)>, Vec<u64>) {
        let Some(worker) = self.workers.get_mut(worker_id).filter(|w| w.alive) else {
            return (true, Vec::new(), Vec::new());
        };
        worker.row.last_heartbeat_ms = now_ms;
        let mut cancels = std::mem::take(&mut worker.cancels);
        let forget = std::mem::take(&mut worker.forget);
        for &(job, attempt, fraction, records) in progress {
            let known =
                self.jobs.get_mut(&job).and_then(|j| j.running.get_mut(&attempt)).filter(|r| r.worker == worker_id);
            match known {
                Some(r) => {
                    if records != r.records || fraction > r.fraction {
                        r.last_progress_ms = now_ms;
                    }
                    r.records = records;
                    r.fraction = fraction;
                }
                // An attempt the coordinator does not know of (it restarted,
                // or gave up on the attempt): stop it.
                None => cancels.push((job, attempt)),
            }
        }
        cancels.sort_by_key(|(j, a)| (*j, a.task, a.attempt));
        cancels.dedup();
        (false, cancels, forget)
    }

    /// Hands a worker up to `free` attempts: highest priority first, then the
    /// job with the fewest running attempts (fair share), then the oldest.
    /// When nothing is pending, a straggler may get a backup attempt.
    pub fn poll(&mut self, worker_id: &str, free: u32, now_ms: i64) -> Result<(Vec<Assignment>, Vec<Effect>), Error> {
        let Some(worker) = self.workers.get(worker_id).filter(|w| w.alive) else {
            return Err(Error::BadRequest(format!("unknown worker {worker_id}: register first")));
        };
        let apps = worker.row.apps.clone();
        let mut out = Vec::new();
        let mut effects = Vec::new();
        for _ in 0..free {
            let mut candidates: Vec<(i32, usize, u64)> = self
                .jobs
                .values()
                .filter(|j| !j.phase.is_terminal() && apps.contains(&j.spec.app))
                .map(|j| (-j.priority, j.running.len(), j.id))
                .collect();
            candidates.sort();
            let mut assigned = None;
            for &(_, _, id) in &candidates {
                let Some(avoid) = self.placement(id, worker_id, now_ms) else { continue };
                let job = self.jobs.get_mut(&id).expect("invariant: candidate jobs exist");
                let Some(sched) = job.sched.as_mut() else { continue };
                if let Next::Run(attempt) = sched.next_attempt_where(|t| !avoid.contains(&t)) {
                    assigned = Some((id, attempt));
                    break;
                }
            }
            if assigned.is_none() && self.policy.speculation {
                assigned = candidates.iter().find_map(|&(_, _, id)| {
                    self.placement(id, worker_id, now_ms)?;
                    self.backup_for(id, worker_id, now_ms)
                });
            }
            let Some((id, attempt)) = assigned else { break };
            out.push(self.start_attempt(id, attempt, worker_id, now_ms, &mut effects));
        }
        Ok((out, effects))
    }

    /// Where `worker_id` stands with job `id`: `None` if the job excludes it
    /// (attempts of several of its tasks failed there, or the whole cluster
    /// excludes it) while a healthy worker can run the job; otherwise the
    /// tasks it should not get, because they failed there and a healthy
    /// worker where they did not fail exists. Where no other worker can
    /// help, the worker is used anyway: a blacklist slows a job down, it
    /// never stalls one.
    fn placement(&self, id: u64, worker_id: &str, now_ms: i64) -> Option<HashSet<TaskId>> {
        let job = self.jobs.get(&id)?;
        let policy = &self.policy;
        let shunned = |w: &Worker| w.blacklisted(now_ms) || job.excludes(&w.row.id, now_ms, policy);
        let failed_here = job.failures.get(worker_id);
        let me = self.workers.get(worker_id)?;
        if !shunned(me) && failed_here.is_none_or(HashMap::is_empty) {
            return Some(HashSet::new());
        }
        let healthy: Vec<&str> = self
            .workers
            .values()
            .filter(|w| w.alive && w.row.id != worker_id && w.row.apps.contains(&job.spec.app) && !shunned(w))
            .map(|w| w.row.id.as_str())
            .collect();
        if healthy.is_empty() {
            return Some(HashSet::new());
        }
        if shunned(me) {
            return None;
        }
        let avoid = failed_here
            .into_iter()
            .flat_map(HashMap::keys)
            .copied()
            .filter(|&t| job.failed_on(worker_id, t, now_ms, policy))
            .filter(|&t| healthy.iter().any(|w| !job.failed_on(w, t, now_ms, policy)))
            .collect();
        Some(avoid)
    }

    /// Records that an attempt of `task` of job `job_id` failed on
    /// `worker_id`; excludes the worker from the job, and from the cluster,
    /// when it keeps failing.
    fn note_failure(&mut self, job_id: u64, worker_id: &str, task: TaskId, now_ms: i64) {
        let policy = self.policy;
        let Some(job) = self.jobs.get_mut(&job_id) else { return };
        if !job.record_failure(worker_id, task, now_ms, &policy) {
            return;
        }
        tracing::warn!(
            job = job_id,
            worker = worker_id,
            "attempts of {} different tasks failed on this worker: the job stops using it",
            policy.blacklist_task_failures
        );
        let Some(worker) = self.workers.get_mut(worker_id) else { return };
        worker.excluded_by.retain(|_, at| now_ms - *at < policy.blacklist_expiry_ms);
        worker.excluded_by.insert(job_id, now_ms);
        if worker.excluded_by.len() >= policy.blacklist_jobs.max(1) as usize && !worker.blacklisted(now_ms) {
            worker.blacklisted_until_ms = now_ms + policy.blacklist_expiry_ms;
            let jobs: Vec<u64> = worker.excluded_by.keys().copied().collect();
            tracing::warn!(
                worker = worker_id,
                ?jobs,
                "excluded by {} jobs: no job uses this worker for {} s (unless no other can)",
                jobs.len(),
                policy.blacklist_expiry_ms / 1000
            );
        }
    }

    /// Jobs that exclude `worker_id` now (it failed attempts of several of
    /// their tasks), by id.
    pub fn excluding_jobs(&self, worker_id: &str, now_ms: i64) -> Vec<u64> {
        self.jobs
            .values()
            .filter(|j| !j.phase.is_terminal() && j.excludes(worker_id, now_ms, &self.policy))
            .map(|j| j.id)
            .collect()
    }

    /// Of the jobs a (re)starting worker still holds data of, the ones it
    /// may delete: ended or unknown.
    pub fn ended_jobs(&self, held: &[u64]) -> Vec<u64> {
        held.iter().copied().filter(|id| self.jobs.get(id).is_none_or(|j| j.phase.is_terminal())).collect()
    }

    /// A backup attempt of a straggler of job `id` for `worker_id`, if one
    /// is due: the job's current phase has nothing pending, and an attempt
    /// on another worker has run more than twice the phase's median (and
    /// at least 2 s).
    fn backup_for(&mut self, id: u64, worker_id: &str, now_ms: i64) -> Option<(u64, AttemptId)> {
        let job = self.jobs.get_mut(&id)?;
        let sched = job.sched.as_mut()?;
        let phase = sched.phase()?;
        if sched.has_pending(phase) {
            return None;
        }
        let durations = &job.durations[phase as usize];
        if durations.is_empty() {
            return None;
        }
        let (counted, median) = &mut job.median[phase as usize];
        if *counted == 0 || durations.len() > *counted + *counted / 100 {
            let mut copy = durations.clone();
            let mid = copy.len() / 2;
            *median = *copy.select_nth_unstable(mid).1;
            *counted = durations.len();
        }
        let threshold = (*median * 2).max(2_000);
        let mut stragglers: Vec<(&AttemptId, &RunningAttempt)> = job
            .running
            .iter()
            .filter(|(a, r)| a.task.kind == phase && r.worker != worker_id && now_ms - r.started_ms > threshold)
            .collect();
        stragglers.sort_by_key(|(a, r)| (r.started_ms, a.task));
        for (a, _) in stragglers {
            if let Some(backup) = sched.backup_attempt(a.task) {
                tracing::info!(job = id, attempt = %backup, "backup attempt for a straggler");
                return Some((id, backup));
            }
        }
        None
    }

    fn start_attempt(
        &mut self,
        id: u64,
        attempt: AttemptId,
        worker_id: &str,
        now_ms: i64,
        effects: &mut Vec<Effect>,
    ) -> Assignment {
        let job = self.jobs.get_mut(&id).expect("invariant: the job exists");
        job.running.insert(
            attempt,
            RunningAttempt {
                worker: worker_id.to_owned(),
                started_ms: now_ms,
                last_progress_ms: now_ms,
                records: 0,
                fraction: 0.0,
            },
        );
        if job.phase == JobPhase::Pending {
            job.phase = JobPhase::Running;
            job.started_ms = now_ms;
            effects.push(Effect::Job(job.row()));
        }
        if let Some(row) = job.task_row(attempt.task) {
            effects.push(Effect::Task(id, row));
        }
        effects.push(Effect::AttemptStarted { job: id, attempt, worker: worker_id.to_owned(), at_ms: now_ms });
        let inputs = match attempt.task.kind {
            TaskKind::Map => Vec::new(),
            TaskKind::Reduce => job
                .map_outputs
                .iter()
                .enumerate()
                .filter_map(|(m, loc)| {
                    let loc = loc.as_ref()?;
                    let seg = *loc.segments.get(attempt.task.index as usize)?;
                    (seg.records > 0).then(|| (m as u32, loc.clone(), seg))
                })
                .collect(),
        };
        let assignment =
            Assignment { job: id, attempt, spec_json: job.spec_json.clone(), plan_json: job.plan_json.clone(), inputs };
        if let Some(w) = self.workers.get_mut(worker_id) {
            w.running.insert((id, attempt));
        }
        assignment
    }

    /// A worker reports how an attempt ended. Returns whether its output was
    /// committed.
    pub fn report(
        &mut self,
        worker_id: &str,
        job_id: u64,
        attempt: AttemptId,
        outcome: Outcome,
        log: Vec<u8>,
        now_ms: i64,
    ) -> Result<(bool, Vec<Effect>), Error> {
        let mut effects = Vec::new();
        if let Some(w) = self.workers.get_mut(worker_id) {
            w.running.remove(&(job_id, attempt));
        }
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return Err(Error::BadRequest(format!("no job {job_id}")));
        };
        let ran = job.running.remove(&attempt);
        // Once a job has ended, its output area is gone (or published) and
        // a late attempt cannot re-create it: nothing to delete, and an
        // attempt directory of the same name may belong to a newer job
        // writing to the same output.
        let live = !job.phase.is_terminal();
        let committer = job.committer();
        let abort = |attempt| {
            if live {
                committer.abort_task(attempt);
            }
        };
        let Some(sched) = job.sched.as_mut() else {
            // The job ended (and was reloaded from history): nothing to do.
            return Ok((false, effects));
        };
        let log = Some(log);
        let mut committed = false;
        let mut failed_here = false;
        match outcome {
            Outcome::Succeeded { counters, map_output } => {
                let counters_json = serde_json::to_string(&counters).ok();
                match sched.succeeded(attempt) {
                    CommitDecision::Commit { superseded } => {
                        if let Err(e) = committer.commit_task(attempt) {
                            sched.fail_job(format!("committing {attempt}: {e}"));
                        } else {
                            committed = true;
                            job.set_task_counters(attempt.task, Some(counters));
                            if let Some(r) = &ran {
                                job.durations[attempt.task.kind as usize].push(now_ms - r.started_ms);
                            }
                            if attempt.task.kind == TaskKind::Map {
                                let shuffle_address = self
                                    .workers
                                    .get(worker_id)
                                    .map(|w| w.row.shuffle_address.clone())
                                    .unwrap_or_default();
                                job.map_outputs[attempt.task.index as usize] = map_output.map(|idx| MapOutputLoc {
                                    worker_id: worker_id.to_owned(),
                                    shuffle_address,
                                    path: idx.path.display().to_string(),
                                    segments: idx.segments,
                                });
                            }
                            for other in superseded {
                                if let Some(r) = job.running.remove(&other) {
                                    if let Some(w) = self.workers.get_mut(&r.worker) {
                                        w.cancels.push((job_id, other));
                                        w.running.remove(&(job_id, other));
                                    }
                                    effects.push(Effect::AttemptEnded {
                                        job: job_id,
                                        attempt: other,
                                        outcome: AttemptEnd::Cancelled,
                                        error: format!("superseded by {attempt}"),
                                        log: None,
                                        counters_json: None,
                                        at_ms: now_ms,
                                    });
                                }
                            }
                        }
                        if let Some(row) = job.task_row(attempt.task) {
                            effects.push(Effect::Task(job_id, row));
                        }
                        let outcome = if committed { AttemptEnd::Succeeded } else { AttemptEnd::Failed };
                        effects.push(Effect::AttemptEnded {
                            job: job_id,
                            attempt,
                            outcome,
                            error: String::new(),
                            log,
                            counters_json,
                            at_ms: now_ms,
                        });
                    }
                    CommitDecision::Discard => {
                        abort(attempt);
                        effects.push(Effect::AttemptEnded {
                            job: job_id,
                            attempt,
                            outcome: AttemptEnd::Discarded,
                            error: "another attempt committed, or the attempt was given up".into(),
                            log,
                            counters_json,
                            at_ms: now_ms,
                        });
                    }
                }
            }
            Outcome::Failed(mut failure) => {
                let error = failure.message.clone();
                // Name the worker, so a job that fails says where.
                failure.message = format!("{} (on worker {worker_id})", failure.message);
                let result = sched.failed(attempt, failure);
                abort(attempt);
                failed_here = result != FailureOutcome::Ignored;
                match result {
                    FailureOutcome::Retrying => {
                        tracing::warn!(job = job_id, %attempt, "attempt failed, will retry: {error}")
                    }
                    FailureOutcome::JobFailed => {
                        tracing::error!(job = job_id, %attempt, "attempt failed, job fails: {error}")
                    }
                    FailureOutcome::Ignored => {}
                }
                if let Some(row) = job.task_row(attempt.task) {
                    effects.push(Effect::Task(job_id, row));
                }
                effects.push(Effect::AttemptEnded {
                    job: job_id,
                    attempt,
                    outcome: failure_message(&result),
                    error,
                    log,
                    counters_json: None,
                    at_ms: now_ms,
                });
            }
            Outcome::FetchFailed { maps, message } => {
                tracing::warn!(job = job_id, %attempt, ?maps, "map outputs lost, the maps run again: {message}");
                sched.attempt_lost(attempt);
                let lost: Vec<u32> = maps.iter().copied().filter(|&m| sched.map_output_lost(m)).collect();
                for m in lost {
                    job.forget_map_output(m);
                    if let Some(row) = job.task_row(TaskId { kind: TaskKind::Map, index: m }) {
                        effects.push(Effect::Task(job_id, row));
                    }
                }
                abort(attempt);
                let names: Vec<String> = maps.iter().map(|m| format!("m-{m:05}")).collect();
                effects.push(Effect::AttemptEnded {
                    job: job_id,
                    attempt,
                    outcome: AttemptEnd::FetchFailed,
                    error: format!("{}: {message}", names.join(", ")),
                    log,
                    counters_json: None,
                    at_ms: now_ms,
                });
            }
            Outcome::Cancelled => {
                sched.attempt_lost(attempt);
                abort(attempt);
                effects.push(Effect::AttemptEnded {
                    job: job_id,
                    attempt,
                    outcome: AttemptEnd::Cancelled,
                    error: String::new(),
                    log,
                    counters_json: None,
                    at_ms: now_ms,
                });
            }
        }
        if failed_here {
            self.note_failure(job_id, worker_id, attempt.task, now_ms);
        }
        self.settle(job_id, now_ms, &mut effects);
        Ok((committed, effects))
    }

    /// Kills a job. Returns false if it had already ended.
    pub fn kill(&mut self, job_id: u64, now_ms: i64) -> Result<(bool, Vec<Effect>), Error> {
        let job = self.jobs.get_mut(&job_id).ok_or(Error::NoSuchJob(job_id))?;
        let Some(sched) = job.sched.as_mut().filter(|_| !job.phase.is_terminal()) else {
            return Ok((false, Vec::new()));
        };
        let _ = sched.kill();
        let mut effects = Vec::new();
        self.settle(job_id, now_ms, &mut effects);
        Ok((true, effects))
    }

    /// Periodic checks: lost workers, hung attempts.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        let lost: Vec<String> = self
            .workers
            .values()
            .filter(|w| w.alive && now_ms - w.row.last_heartbeat_ms > self.policy.worker_timeout_ms)
            .map(|w| w.row.id.clone())
            .collect();
        for id in lost {
            self.lose_worker(&id, now_ms, &mut effects);
        }
        let mut hung = Vec::new();
        for job in self.jobs.values() {
            for (a, r) in &job.running {
                if now_ms - r.last_progress_ms > self.policy.task_timeout_ms {
                    hung.push((job.id, *a, r.worker.clone()));
                }
            }
        }
        for (job_id, attempt, worker) in hung {
            let secs = self.policy.task_timeout_ms as f64 / 1000.0;
            tracing::warn!(job = job_id, %attempt, worker, "no progress for {secs}s: failing the attempt");
            if let Some(w) = self.workers.get_mut(&worker) {
                w.cancels.push((job_id, attempt));
                w.running.remove(&(job_id, attempt));
            }
            let Some(job) = self.jobs.get_mut(&job_id) else { continue };
            job.running.remove(&attempt);
            let mut counted = false;
            if let Some(sched) = job.sched.as_mut() {
                let failure = Failure { message: format!("no progress for {secs}s (hung?)"), retryable: true };
                counted = sched.failed(attempt, failure) != FailureOutcome::Ignored;
                if let Some(row) = job.task_row(attempt.task) {
                    effects.push(Effect::Task(job_id, row));
                }
            }
            if counted {
                self.note_failure(job_id, &worker, attempt.task, now_ms);
            }
            effects.push(Effect::AttemptEnded {
                job: job_id,
                attempt,
                outcome: AttemptEnd::Failed,
                error: format!("no progress for {secs}s"),
                log: None,
                counters_json: None,
                at_ms: now_ms,
            });
            self.settle(job_id, now_ms, &mut effects);
        }
        effects
    }

    /// Declares a worker lost: its attempts run again elsewhere, and the map
    /// outputs it held are made again where a reduce still needs them.
    fn lose_worker(&mut self, id: &str, now_ms: i64, effects: &mut Vec<Effect>) {
        let Some(worker) = self.workers.get_mut(id) else { return };
        tracing::warn!(worker = id, "worker lost: no heartbeat");
        worker.alive = false;
        worker.row.state = WorkerState::Lost;
        worker.cancels.clear();
        let running: Vec<(u64, AttemptId)> = worker.running.drain().collect();
        effects.push(Effect::Worker(worker.row.clone()));
        for (job, attempt) in running {
            self.lose_attempt(job, attempt, AttemptEnd::Lost, "its worker was lost", now_ms, effects);
        }
        let job_ids: Vec<u64> = self.jobs.keys().copied().collect();
        for job_id in job_ids {
            let job = self.jobs.get_mut(&job_id).expect("invariant: listed above");
            let Some(sched) = job.sched.as_mut() else { continue };
            if job.phase.is_terminal() {
                continue;
            }
            let reduces_left = sched.progress(TaskKind::Reduce);
            if reduces_left.total > 0 && reduces_left.succeeded == reduces_left.total {
                continue;
            }
            let held: Vec<u32> = (0..job.map_outputs.len() as u32)
                .filter(|&m| job.map_outputs[m as usize].as_ref().is_some_and(|l| l.worker_id == id))
                .collect();
            let requeued: Vec<u32> = held.into_iter().filter(|&m| sched.map_output_lost(m)).collect();
            for m in requeued {
                job.forget_map_output(m);
                if let Some(row) = job.task_row(TaskId { kind: TaskKind::Map, index: m }) {
                    effects.push(Effect::Task(job_id, row));
                }
            }
            self.settle(job_id, now_ms, effects);
        }
    }

    fn lose_attempt(
        &mut self,
        job_id: u64,
        attempt: AttemptId,
        outcome: AttemptEnd,
        why: &str,
        now_ms: i64,
        effects: &mut Vec<Effect>,
    ) {
        let Some(job) = self.jobs.get_mut(&job_id) else { return };
        job.running.remove(&attempt);
        if let Some(sched) = job.sched.as_mut() {
            sched.attempt_lost(attempt);
            if let Some(row) = job.task_row(attempt.task) {
                effects.push(Effect::Task(job_id, row));
            }
        }
        if !job.phase.is_terminal() {
            job.committer().abort_task(attempt);
        }
        effects.push(Effect::AttemptEnded {
            job: job_id,
            attempt,
            outcome,
            error: why.to_owned(),
            log: None,
            counters_json: None,
            at_ms: now_ms,
        });
    }

    /// Brings a job's stored state in line with its scheduler: commits it
    /// when every task has committed; cleans up when it failed or was killed.
    fn settle(&mut self, job_id: u64, now_ms: i64, effects: &mut Vec<Effect>) {
        let Some(job) = self.jobs.get_mut(&job_id) else { return };
        let Some(sched) = job.sched.as_ref() else { return };
        if job.phase.is_terminal() {
            return;
        }
        let new_phase = match sched.state() {
            JobState::Succeeded => {
                let names: Vec<String> = job.plan.outputs.iter().map(|o| o.name.clone()).collect();
                match job.committer().commit_job(&names) {
                    Ok(_) => JobPhase::Succeeded,
                    Err(e) => {
                        job.error = format!("committing the output: {e}");
                        JobPhase::Failed
                    }
                }
            }
            JobState::Failed { message, .. } => {
                job.error = message.clone();
                JobPhase::Failed
            }
            JobState::Killed => {
                job.error = "killed".into();
                JobPhase::Killed
            }
            JobState::Mapping | JobState::Reducing => return,
        };
        job.phase = new_phase;
        job.finished_ms = now_ms;
        if job.started_ms == 0 {
            job.started_ms = now_ms;
        }
        if new_phase != JobPhase::Succeeded {
            job.committer().abort_job();
        }
        tracing::info!(job = job_id, state = new_phase.as_str(), "job ended");
        let running: Vec<(AttemptId, RunningAttempt)> = job.running.drain().collect();
        for (attempt, r) in running {
            if let Some(w) = self.workers.get_mut(&r.worker) {
                w.cancels.push((job_id, attempt));
                w.running.remove(&(job_id, attempt));
            }
            effects.push(Effect::AttemptEnded {
                job: job_id,
                attempt,
                outcome: AttemptEnd::Cancelled,
                error: format!("the job {}", new_phase.as_str()),
                log: None,
                counters_json: None,
                at_ms: now_ms,
            });
        }
        for w in self.workers.values_mut() {
            w.forget.push(job_id);
        }
        let job = self.jobs.get(&job_id).expect("invariant: still here");
        effects.push(Effect::Job(job.row()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quern_core::{Compression, InputFile, InputSplit, PlannedOutput};

    const POLICY: Policy = Policy::with_timeouts(1_000, 60_000, false);

    fn worker(id: &str, apps: &[&str]) -> WorkerRow {
        WorkerRow {
            id: id.into(),
            host: "h".into(),
            shuffle_address: format!("http://{id}:1"),
            slots: 2,
            apps: apps.iter().map(|a| a.to_string()).collect(),
            version: "t".into(),
            state: WorkerState::Alive,
            registered_at_ms: 0,
            last_heartbeat_ms: 0,
        }
    }

    /// A job of `maps` maps and one reducer whose output is `out`.
    fn job(id: u64, app: &str, maps: usize, priority: i32, out: &Path) -> NewJob {
        OutputCommitter::setup(out).expect("output");
        let spec = JobSpec::new(app, vec!["in".into()], out.display().to_string());
        let file = InputFile { path: "in".into(), name: "in".into(), len: 10, compression: Compression::None };
        let plan = JobPlan {
            splits: (0..maps).map(|_| InputSplit { file: file.clone(), start: 0, end: Some(10) }).collect(),
            outputs: vec![PlannedOutput { name: String::new(), reducers: 1, first_partition: 0 }],
            partitions: 1,
        };
        NewJob { id, spec, plan, spec_json: "{}".into(), plan_json: "{}".into(), priority }
    }

    fn succeeded(index: Option<ReportedIndex>) -> Outcome {
        Outcome::Succeeded { counters: Counters::default(), map_output: index }
    }

    fn index(path: &str) -> Option<ReportedIndex> {
        Some(ReportedIndex {
            path: path.into(),
            segments: vec![Segment { offset: 0, len: 10, records: 1, raw_len: 12 }],
        })
    }

    fn poll_one(c: &mut Cluster, w: &str, now: i64) -> Option<Assignment> {
        c.poll(w, 1, now).expect("poll").0.pop()
    }

    /// Workers a and b and job 1 of two maps, m0 running on a, m1 on b.
    fn two_maps_on_a_and_b(dir: &Path) -> (Cluster, Assignment, Assignment) {
        let mut c = Cluster::new(POLICY);
        c.register(worker("a", &["wc"]), 0);
        c.register(worker("b", &["wc"]), 0);
        c.add_job(job(1, "wc", 2, 0, &dir.join("out")), 0);
        let m0 = poll_one(&mut c, "a", 0).expect("m0");
        let m1 = poll_one(&mut c, "b", 0).expect("m1");
        (c, m0, m1)
    }

    #[test]
    fn priority_first_then_the_job_with_fewest_running_attempts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Cluster::new(POLICY);
        c.register(worker("w", &["wc"]), 0);
        c.add_job(job(1, "wc", 3, 0, &dir.path().join("a")), 0);
        c.add_job(job(2, "wc", 3, 0, &dir.path().join("b")), 0);
        c.add_job(job(3, "wc", 1, 9, &dir.path().join("c")), 0);
        let order: Vec<u64> = (0..5).filter_map(|_| poll_one(&mut c, "w", 1)).map(|a| a.job).collect();
        assert_eq!(order, vec![3, 1, 2, 1, 2], "priority, then fair share, then age");
    }

    #[test]
    fn tasks_go_only_to_workers_with_the_app() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Cluster::new(POLICY);
        c.register(worker("other", &["grep"]), 0);
        c.register(worker("w", &["wc"]), 0);
        c.add_job(job(1, "wc", 1, 0, &dir.path().join("a")), 0);
        assert!(poll_one(&mut c, "other", 1).is_none());
        assert!(poll_one(&mut c, "w", 1).is_some());
    }

    #[test]
    fn a_late_success_from_a_worker_presumed_lost_is_discarded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Cluster::new(POLICY);
        c.register(worker("a", &["wc"]), 0);
        c.add_job(job(1, "wc", 1, 0, &dir.path().join("out")), 0);
        let first = poll_one(&mut c, "a", 0).expect("m0 on a");
        c.tick(5_000); // a is silent past the timeout: lost
        assert!(!c.workers().find(|w| w.row.id == "a").expect("a").alive);
        c.register(worker("b", &["wc"]), 5_000);
        let second = poll_one(&mut c, "b", 5_000).expect("m0 again on b");
        assert_eq!((second.attempt.task, second.attempt.attempt), (first.attempt.task, 2));
        let (committed, _) =
            c.report("a", 1, first.attempt, succeeded(index("/a/map.out")), vec![], 5_100).expect("report");
        assert!(!committed, "the lost worker's late success must not commit");
        let (committed, _) =
            c.report("b", 1, second.attempt, succeeded(index("/b/map.out")), vec![], 5_200).expect("report");
        assert!(committed);
        let reduce = poll_one(&mut c, "b", 5_300).expect("the reduce");
        assert_eq!(reduce.inputs.len(), 1);
        assert_eq!(reduce.inputs[0].1.path, "/b/map.out", "reduces read the committed attempt's output");
    }

    #[test]
    fn a_lost_worker_s_map_outputs_are_made_again_while_reduces_need_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut c, m0, m1) = two_maps_on_a_and_b(dir.path());
        c.report("a", 1, m0.attempt, succeeded(index("/a/map.out")), vec![], 10).expect("report");
        c.report("b", 1, m1.attempt, succeeded(index("/b/map.out")), vec![], 10).expect("report");
        assert_eq!(c.job(1).map(Job::stage), Some("reduce"));
        // b keeps heartbeating; a goes silent.
        c.heartbeat("b", &[], 900);
        c.tick(1_500);
        assert_eq!(c.job(1).map(Job::stage), Some("map"), "m0's output was on a");
        let again = poll_one(&mut c, "b", 1_600).expect("m0 again");
        assert_eq!((again.attempt.task, again.attempt.attempt), (m0.attempt.task, 2));
        c.report("b", 1, again.attempt, succeeded(index("/b/m0.out")), vec![], 1_700).expect("report");
        let reduce = poll_one(&mut c, "b", 1_800).expect("the reduce");
        let (committed, _) = c.report("b", 1, reduce.attempt, succeeded(None), vec![], 1_900).expect("report");
        assert!(committed);
        assert_eq!(c.job(1).map(|j| j.phase), Some(JobPhase::Succeeded));
        assert!(dir.path().join("out/_SUCCESS").exists());
    }

    #[test]
    fn a_hung_attempt_is_failed_and_cancelled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Cluster::new(Policy { task_timeout_ms: 500, ..POLICY });
        c.register(worker("a", &["wc"]), 0);
        c.add_job(job(1, "wc", 1, 0, &dir.path().join("out")), 0);
        let m0 = poll_one(&mut c, "a", 0).expect("m0");
        c.heartbeat("a", &[(1, m0.attempt, 0.1, 5)], 300);
        c.tick(600);
        assert!(c.job(1).is_some_and(|j| j.running.contains_key(&m0.attempt)), "progress at 300 ms keeps it alive");
        c.heartbeat("a", &[(1, m0.attempt, 0.1, 5)], 700);
        c.tick(900);
        let (_, cancels, _) = c.heartbeat("a", &[], 950);
        assert_eq!(cancels, vec![(1, m0.attempt)]);
        assert_eq!(c.job(1).map(|j| j.counters().engine.failed_attempts), Some(1));
        assert_eq!(poll_one(&mut c, "a", 1_000).map(|a| a.attempt.attempt), Some(2));
    }

    fn failed(message: &str) -> Outcome {
        Outcome::Failed(Failure { message: message.into(), retryable: true })
    }

    fn counted(input_records: u64) -> Outcome {
        let mut counters = Counters::default();
        counters.engine.input_records = input_records;
        Outcome::Succeeded { counters, map_output: index("/x/map.out") }
    }

    #[test]
    fn a_failed_task_is_retried_on_another_worker_when_there_is_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Cluster::new(POLICY);
        c.register(worker("sick", &["wc"]), 0);
        c.add_job(job(1, "wc", 2, 0, &dir.path().join("out")), 0);
        let m0 = poll_one(&mut c, "sick", 0).expect("m0");
        c.report("sick", 1, m0.attempt, failed("disk full"), vec![], 10).expect("report");
        // Alone, the sick worker gets the retry: a job never stalls.
        let again = poll_one(&mut c, "sick", 20).expect("m0 again, nobody else can");
        assert_eq!(again.attempt.task, m0.attempt.task);
        c.report("sick", 1, again.attempt, failed("disk full"), vec![], 30).expect("report");
        // With a healthy worker about, the sick one gets other tasks only.
        c.register(worker("ok", &["wc"]), 40);
        let next = poll_one(&mut c, "sick", 50).expect("another task");
        assert_ne!(next.attempt.task, m0.attempt.task, "m0 failed on sick: its retry waits for ok");
        let retry = poll_one(&mut c, "ok", 60).expect("m0 on ok");
        assert_eq!((retry.attempt.task, retry.attempt.attempt), (m0.attempt.task, 3));
    }

    #[test]
    fn a_worker_failing_several_tasks_is_excluded_from_the_job_then_from_the_cluster_until_expiry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = Policy { blacklist_task_failures: 2, blacklist_jobs: 2, blacklist_expiry_ms: 10_000, ..POLICY };
        let mut c = Cluster::new(policy);
        c.register(worker("sick", &["wc"]), 0);
        c.register(worker("ok", &["wc"]), 0);
        for id in [1, 2] {
            c.add_job(job(id, "wc", 4, 0, &dir.path().join(format!("out{id}"))), 0);
        }
        let beat = |c: &mut Cluster, now| {
            c.heartbeat("sick", &[], now);
            c.heartbeat("ok", &[], now);
        };
        // Job 1 hands sick two tasks; both fail: job 1 stops using it.
        for now in [100, 200] {
            let a = poll_one(&mut c, "sick", now).expect("a task");
            assert_eq!(a.job, 1);
            c.report("sick", 1, a.attempt, failed("disk full"), vec![], now + 1).expect("report");
        }
        assert_eq!(c.excluding_jobs("sick", 300), vec![1]);
        let a = poll_one(&mut c, "sick", 300).expect("job 2 still uses sick");
        assert_eq!(a.job, 2, "job 1 excludes sick");
        c.report("sick", 2, a.attempt, failed("disk full"), vec![], 301).expect("report");
        let b = poll_one(&mut c, "sick", 400).expect("a task of job 2");
        c.report("sick", 2, b.attempt, failed("disk full"), vec![], 401).expect("report");
        // Excluded by two jobs: excluded from the cluster, jobs to come too.
        c.add_job(job(3, "wc", 1, 9, &dir.path().join("out3")), 500);
        assert!(c.workers().find(|w| w.row.id == "sick").is_some_and(|w| w.blacklisted(500)));
        assert!(poll_one(&mut c, "sick", 500).is_none(), "no job uses a blacklisted worker while ok can run it");
        assert!(poll_one(&mut c, "ok", 500).is_some_and(|a| a.job == 3));
        // Once the failures expire, it gets work again.
        beat(&mut c, 10_300);
        assert!(c.workers().find(|w| w.row.id == "sick").is_some_and(|w| !w.blacklisted(10_600)));
        assert!(poll_one(&mut c, "sick", 10_600).is_some(), "the blacklist expires");
        // The failures were counted as failed attempts of their jobs.
        assert_eq!(c.job(1).map(|j| j.counters().engine.failed_attempts), Some(2));
    }

    #[test]
    fn counters_count_each_task_s_committed_attempt_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut c, m0, m1) = two_maps_on_a_and_b(dir.path());
        c.report("a", 1, m0.attempt, counted(10), vec![], 10).expect("report");
        c.report("b", 1, m1.attempt, counted(20), vec![], 10).expect("report");
        let records = |c: &Cluster| c.job(1).map(|j| j.counters().engine.input_records);
        assert_eq!(records(&c), Some(30));
        // a is lost with m0's output: m0 runs again and counts once.
        c.heartbeat("b", &[], 900);
        c.tick(1_500);
        assert_eq!(records(&c), Some(20), "a lost map output no longer counts");
        let again = poll_one(&mut c, "b", 1_600).expect("m0 again");
        c.report("b", 1, again.attempt, counted(10), vec![], 1_700).expect("report");
        assert_eq!(records(&c), Some(30), "re-run work is counted once");
    }

    #[test]
    fn restore_refuses_unreadable_task_state_instead_of_guessing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let new = job(1, "wc", 1, 0, &dir.path().join("out"));
        let row = JobRow {
            id: 1,
            app: "wc".into(),
            spec_json: serde_json::to_string(&new.spec).expect("spec"),
            plan_json: serde_json::to_string(&new.plan).expect("plan"),
            priority: 0,
            state: JobPhase::Running,
            error: String::new(),
            counters_json: "{}".into(),
            submitted_at_ms: 0,
            started_at_ms: 0,
            finished_at_ms: 0,
        };
        let task = |map_output: &str, counters: &str| TaskRow {
            task: TaskId { kind: TaskKind::Map, index: 0 },
            record: TaskRecord { started: 1, failures: 0, committed: Some(1), failed: false },
            map_output_json: Some(map_output.into()),
            counters_json: Some(counters.into()),
        };
        let loc = r#"{"worker_id":"a","shuffle_address":"http://a:1","path":"/a/map.out","segments":[]}"#;
        let restore = |t: TaskRow| Cluster::restore(POLICY, vec![(row.clone(), vec![t])], vec![], 0).map(|_| ());
        let counters = serde_json::to_string(&Counters::default()).expect("counters");
        assert!(restore(task(loc, &counters)).is_ok());
        for bad in [task("{not json", &counters), task(loc, "[1]")] {
            let err = restore(bad).expect_err("unreadable state is an error");
            assert!(err.to_string().contains("job 1 task m-00000"), "{err}");
        }
    }
}
