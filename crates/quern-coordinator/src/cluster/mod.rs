//! The coordinator's working state and every decision it makes: which
//! attempt goes to which worker, what a report means, when a worker is lost,
//! when an attempt has hung, when to launch a backup. Synchronous and free of
//! I/O except the output commit renames: each operation returns the
//! [`Effect`]s to make durable, which the service writes to the [`Store`]
//! before it answers.
//!
//! One [`Scheduler`] per job does the task bookkeeping (the same one the
//! embedded runner uses); this module adds workers, time and placement:
//! - here: the state, restore after a restart, submission, kill, and
//!   `settle` (a job's end: commit or clean up);
//! - `job`, `worker`: what the coordinator knows of each;
//! - `placement`: polls, retries away from failing workers, blacklists,
//!   backup attempts;
//! - `report`: what an attempt's end means;
//! - `liveness`: registration, heartbeats, lost workers, hung attempts;
//! - `admin`: workers drained, deregistered and enabled by an admin;
//! - `planning`: submitted specs handed to workers that have the app, to
//!   be planned there (the coordinator never runs user code).
//!
//! [`Store`]: crate::store::Store

use std::collections::{BTreeMap, HashMap, HashSet};

use quern_core::{
    AttemptId, AttemptResult, Counters, Failure, FailureOutcome, JobId, JobPlan, JobSpec, JobState, Next, Scheduler,
    TaskId, TaskKind, TaskRecord, Verdict, WorkerId,
};
use serde::{Deserialize, Serialize};

use crate::error::Error;
pub use crate::state::JobPhase;
use crate::state::{AttemptEnd, WorkerAdmin, WorkerState};
use crate::storage_work::{StorageOutcome, StorageWork};
use crate::store::{JobUpdate, SavedState, StoredTask, StoredWorker};

mod admin;
mod capacity;
mod job;
mod liveness;
mod placement;
mod planning;
mod report;
#[cfg(test)]
mod tests;
mod worker;

use job::RunningAttempt;
pub use job::{Job, TaskRecordView};
pub use worker::Worker;

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
    /// How long the intermediate data of an ended job (map outputs on the
    /// workers, or under its shuffle prefix in storage) is kept before it is
    /// deleted (0: at once).
    pub retention_ms: i64,
}

impl Policy {
    /// Defaults for the blacklist: 3 failed tasks exclude a worker from a
    /// job, 2 such jobs from the cluster, failures count for 10 minutes;
    /// an ended job's intermediate data goes at once.
    pub const fn with_timeouts(worker_timeout_ms: i64, task_timeout_ms: i64, speculation: bool) -> Policy {
        Policy {
            worker_timeout_ms,
            task_timeout_ms,
            speculation,
            blacklist_task_failures: 3,
            blacklist_jobs: 2,
            blacklist_expiry_ms: 10 * 60 * 1000,
            retention_ms: 0,
        }
    }
}

/// Where a committed map's output is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapOutputLoc {
    /// The worker that has it.
    pub worker_id: WorkerId,
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
    /// A job's state, error, counters or times changed.
    Job(JobUpdate),
    /// A task record changed.
    Task(JobId, StoredTask),
    /// An attempt started.
    AttemptStarted {
        /// Its job.
        job: JobId,
        /// The attempt.
        attempt: AttemptId,
        /// Where it runs.
        worker: WorkerId,
        /// When.
        at_ms: i64,
    },
    /// An attempt ended.
    AttemptEnded {
        /// Its job.
        job: JobId,
        /// The attempt.
        attempt: AttemptId,
        /// How.
        outcome: AttemptEnd,
        /// Why, if it failed.
        error: String,
        /// Its stderr.
        log: Option<Vec<u8>>,
        /// Its counters.
        counters: Option<Counters>,
        /// The digest of what it wrote, when it succeeded.
        output_digest: Option<String>,
        /// When.
        at_ms: i64,
    },
    /// A worker changed.
    Worker(StoredWorker),
    /// Something happened to a job that its tasks do not show: a worker
    /// lost, a worker launched for it that cannot start.
    JobEvent(JobEvent),
}

/// Something that happened to a job, with the platform's reason when it
/// gave one (Kubernetes' `OOMKilled`, `Evicted`, `ErrImagePull`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEvent {
    /// The job.
    pub job: JobId,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// A CamelCase reason: `WorkerLost`, `WorkerNotStarted`, or the
    /// platform's own.
    pub reason: String,
    /// What happened, for people.
    pub message: String,
}

/// A job accepted by [`Cluster::check_submission`] and stored.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The id the store gave it.
    pub id: JobId,
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
    /// The user who submitted it (empty: the cluster token's holder).
    pub owner: String,
}

/// What a poll hands a worker (which fetches the job's spec and plan once,
/// [`Job::spec_and_plan`]).
#[derive(Debug, Clone)]
pub struct Assignment {
    /// The job.
    pub job: JobId,
    /// The attempt.
    pub attempt: AttemptId,
    /// A reduce's inputs: (map index, location, segment).
    pub inputs: Vec<(u32, MapOutputLoc, Segment)>,
}

/// What a heartbeat is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatAnswer {
    /// The coordinator does not know the worker: register again.
    pub reregister: bool,
    /// Attempts to stop.
    pub cancel: Vec<(JobId, AttemptId)>,
    /// Ended jobs whose data may go.
    pub forget_jobs: Vec<JobId>,
    /// Submitted specs for the worker to plan.
    pub plans: Vec<PlanRequest>,
}

/// A submitted spec for a worker to plan (see `planning`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRequest {
    /// Which submission.
    pub ticket: u64,
    /// The spec, as the engine's JSON.
    pub spec_json: std::sync::Arc<str>,
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
        /// The digest of every file it wrote (`quern_engine::OutputDigest`).
        output_digest: Option<String>,
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
    jobs: BTreeMap<JobId, Job>,
    workers: BTreeMap<WorkerId, Worker>,
    policy: Policy,
    /// Submitted specs waiting to be planned by a worker, by ticket.
    plans: BTreeMap<u64, planning::PendingPlan>,
    next_ticket: u64,
    /// Work on job outputs that decisions queued, in order, for the caller
    /// to run once the decisions are stored ([`Cluster::take_storage_work`]).
    storage_work: Vec<StorageWork>,
    /// Outputs of submissions under way (checked, not yet a job or
    /// refused), as [`output_key`]s.
    claiming: HashSet<String>,
}

/// An output location as one string per place: `out/` and `out`, or
/// `s3://b/p/` and `s3://b/p`, are one output.
fn output_key(output: &str) -> String {
    quern_storage::Location::parse(output).map_or_else(|_| output.to_owned(), |l| l.to_string())
}

impl Cluster {
    /// An empty cluster.
    pub fn new(policy: Policy) -> Cluster {
        Cluster {
            jobs: BTreeMap::new(),
            workers: BTreeMap::new(),
            policy,
            plans: BTreeMap::new(),
            next_ticket: 1,
            storage_work: Vec::new(),
            claiming: HashSet::new(),
        }
    }

    /// Rebuilds the state from what the store saved, after a restart or
    /// after a failed write (when memory may be ahead of the store). Jobs
    /// that were running resume: committed tasks stay committed (their
    /// commits are finished again, which is idempotent); an attempt that was
    /// running on a worker still alive is taken back (its report will be
    /// accepted; if the worker's next heartbeat does not list it, it is
    /// lost), other in-flight attempts are lost and run again. Known workers
    /// get one worker timeout to come back.
    pub fn restore(policy: Policy, saved: SavedState, now_ms: i64) -> Result<(Cluster, Vec<Effect>), Error> {
        let mut cluster = Cluster::new(policy);
        for mut row in saved.workers {
            let alive = row.state == WorkerState::Alive;
            row.last_heartbeat_ms = now_ms;
            cluster.workers.insert(row.id.clone(), Worker::new(row, alive));
        }
        let mut effects = Vec::new();
        for saved_job in saved.jobs {
            let (row, tasks, running) = (saved_job.job, saved_job.tasks, saved_job.running);
            let corrupt = |field: &'static str| {
                let id = row.id;
                move |e: serde_json::Error| Error::Corrupt(format!("job {id} field {field}: {e}"))
            };
            let spec: JobSpec = serde_json::from_str(&row.spec_json).map_err(corrupt("spec_json"))?;
            let plan: JobPlan = serde_json::from_str(&row.plan_json).map_err(corrupt("plan_json"))?;
            let phase = row.state;
            let mut maps = vec![TaskRecord::default(); plan.splits.len()];
            let mut reduces = vec![TaskRecord::default(); plan.partitions as usize];
            let mut map_outputs = vec![None; plan.splits.len()];
            let mut task_counters = [vec![None; maps.len()], vec![None; reduces.len()]];
            for t in tasks {
                let slot = match t.task.kind {
                    TaskKind::Map => maps.get_mut(t.task.index as usize),
                    TaskKind::Reduce => reduces.get_mut(t.task.index as usize),
                };
                let slot = slot.ok_or_else(|| Error::Corrupt(format!("job {} has no task {}", row.id, t.task)))?;
                *slot = t.record;
                if t.record.committed.is_none() {
                    continue;
                }
                // A committed task's counters and a committed map's output
                // location must be there: guessing "none" would silently
                // drop its records.
                let missing =
                    |field: &str| Error::Corrupt(format!("job {} task {} field {field}: missing", row.id, t.task));
                task_counters[t.task.kind as usize][t.task.index as usize] =
                    Some(t.counters.ok_or_else(|| missing("counters_json"))?);
                if t.task.kind == TaskKind::Map && plan.partitions > 0 {
                    map_outputs[t.task.index as usize] = Some(t.map_output.ok_or_else(|| missing("map_output_json"))?);
                }
            }
            let (sched, committed_counters, failed_attempts) = if phase.is_terminal() {
                let failed = row.counters.engine.failed_attempts;
                (None, row.counters, failed)
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
                spec_json: row.spec_json.into(),
                plan_json: row.plan_json.into(),
                priority: row.priority,
                owner: row.owner,
                sched,
                phase,
                error: row.error,
                task_counters,
                committed_counters,
                failed_attempts,
                failures: HashMap::new(),
                committing: false,
                // Data of a job that ended before the restart and is past
                // its retention was released then (and a returning worker
                // names what it still holds).
                released: phase.is_terminal() && now_ms - row.finished_at_ms >= policy.retention_ms,
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
                for (kind, records) in [(TaskKind::Map, &maps), (TaskKind::Reduce, &reduces)] {
                    for (i, r) in records.iter().enumerate() {
                        if let Some(attempt) = r.committed {
                            let attempt = AttemptId { task: TaskId { kind, index: i as u32 }, attempt };
                            cluster.storage_work.push(job.commit_task(attempt));
                        }
                    }
                }
            }
            let mut job = job;
            for a in running {
                let worker = cluster.workers.get_mut(&a.worker_id).filter(|w| w.alive && !phase.is_terminal());
                let taken = worker.is_some() && job.sched.as_mut().is_some_and(|s| s.adopt(a.attempt));
                let adopted = match worker {
                    Some(w) if taken => {
                        w.running.insert((id, a.attempt));
                        job.running.insert(
                            a.attempt,
                            RunningAttempt {
                                worker: a.worker_id.clone(),
                                started_ms: a.started_at_ms,
                                last_progress_ms: now_ms,
                                records: 0,
                                fraction: 0.0,
                                adopted: true,
                            },
                        );
                        true
                    }
                    _ => false,
                };
                if !adopted {
                    effects.push(Effect::AttemptEnded {
                        job: id,
                        attempt: a.attempt,
                        outcome: AttemptEnd::Lost,
                        error: "the coordinator restarted".into(),
                        log: None,
                        counters: None,
                        output_digest: None,
                        at_ms: now_ms,
                    });
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
    pub fn job(&self, id: JobId) -> Option<&Job> {
        self.jobs.get(&id)
    }

    /// Every worker, by id.
    pub fn workers(&self) -> impl Iterator<Item = &Worker> {
        self.workers.values()
    }

    /// Checks a submitted spec before it is planned: the spec itself, that
    /// a worker offers its app (when any worker is alive; with none, the
    /// spec waits for one), and that no running job or submission under way
    /// writes its output. The output is then the submission's until
    /// [`Cluster::submission_done`]; the caller claims it in storage (where
    /// it must not exist), outside the lock.
    ///
    /// The storage claim alone decides between coordinators, or a
    /// coordinator and `quern run`; this check makes two submissions to one
    /// coordinator exclusive even on a store whose conditional writes race.
    pub fn check_submission(&mut self, spec: &JobSpec) -> Result<(), Error> {
        spec.validate().map_err(|e| Error::Refused(e.to_string()))?;
        let alive: Vec<&Worker> = self.workers.values().filter(|w| w.alive).collect();
        if !alive.is_empty() && !alive.iter().any(|w| w.row.offers(&spec.app)) {
            let offered: std::collections::BTreeSet<String> = alive.iter().flat_map(|w| w.row.app_names()).collect();
            let offered: Vec<String> = offered.into_iter().collect();
            return Err(Error::Refused(format!(
                "unknown app '{}': no worker offers it (the live workers offer: {})",
                spec.app,
                offered.join(", ")
            )));
        }
        let output = output_key(&spec.output);
        let running = self.jobs.values().find(|j| !j.phase.is_terminal() && output_key(&j.spec.output) == output);
        if let Some(job) = running {
            return Err(Error::Refused(format!("output {output} is being written by job {}", job.id)));
        }
        if !self.claiming.insert(output.clone()) {
            return Err(Error::Refused(format!("output {output} is being written by another job being submitted")));
        }
        Ok(())
    }

    /// A submission checked by [`Cluster::check_submission`] became a job
    /// or was refused: its output is no longer held by it.
    pub fn submission_done(&mut self, spec: &JobSpec) {
        self.claiming.remove(&output_key(&spec.output));
    }

    /// The work on job outputs queued by the decisions taken since the
    /// last call, in order: run it once those decisions are stored.
    pub fn take_storage_work(&mut self) -> Vec<StorageWork> {
        std::mem::take(&mut self.storage_work)
    }

    /// What output work found: a failed task commit fails its job; a job
    /// commit ends its job, succeeded or failed.
    pub fn storage_done(&mut self, outcomes: Vec<StorageOutcome>, now_ms: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        for outcome in outcomes {
            match outcome {
                StorageOutcome::TaskCommitFailed { job, message, .. } => {
                    let Some(j) = self.jobs.get_mut(&job) else { continue };
                    // A job already committing hears of it from its commit.
                    if let Some(sched) = j.sched.as_mut().filter(|_| !j.committing) {
                        sched.fail_job(message);
                        self.settle(job, now_ms, &mut effects);
                    }
                }
                StorageOutcome::JobCommitted { job, result } => {
                    let Some(j) = self.jobs.get_mut(&job).filter(|j| j.committing && !j.phase.is_terminal()) else {
                        continue;
                    };
                    j.committing = false;
                    match result {
                        Ok(()) => self.end_job(job, JobPhase::Succeeded, String::new(), now_ms, &mut effects),
                        Err(message) => self.end_job(job, JobPhase::Failed, message, now_ms, &mut effects),
                    }
                }
            }
        }
        effects
    }

    /// Checks a worker's plan for a spec before the job is created.
    pub fn check_plan(spec: &JobSpec, plan: &JobPlan) -> Result<(), Error> {
        plan.check(spec).map_err(|e| Error::Refused(e.to_string()))?;
        if plan.partitions as usize != plan.outputs.iter().map(|o| o.reducers as usize).sum::<usize>() {
            return Err(Error::BadRequest("plan: partitions do not add up".into()));
        }
        Ok(())
    }

    /// Adds an accepted job.
    pub fn add_job(&mut self, new: NewJob, now_ms: i64) -> Vec<Effect> {
        let NewJob { id, spec, plan, spec_json, plan_json, priority, owner } = new;
        let sched = Scheduler::new(plan.splits.len() as u32, plan.partitions, spec.max_attempts);
        let (maps, reduces) = (plan.splits.len(), plan.partitions as usize);
        let job = Job {
            id,
            spec,
            plan,
            spec_json: spec_json.into(),
            plan_json: plan_json.into(),
            priority,
            owner,
            sched: Some(sched),
            phase: JobPhase::Pending,
            error: String::new(),
            task_counters: [vec![None; maps], vec![None; reduces]],
            committed_counters: Counters::default(),
            failed_attempts: 0,
            failures: HashMap::new(),
            committing: false,
            released: false,
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

    /// Kills a job. Returns false if it had already ended.
    pub fn kill(&mut self, job_id: JobId, now_ms: i64) -> Result<(bool, Vec<Effect>), Error> {
        let job = self.jobs.get_mut(&job_id).ok_or(Error::NoSuchJob(job_id))?;
        // A job whose every task committed is being published: too late.
        let Some(sched) = job.sched.as_mut().filter(|_| !job.phase.is_terminal() && !job.committing) else {
            return Ok((false, Vec::new()));
        };
        let _ = sched.kill();
        let mut effects = Vec::new();
        self.settle(job_id, now_ms, &mut effects);
        Ok((true, effects))
    }

    /// Brings a job's stored state in line with its scheduler: queues its
    /// commit when every task has committed (it ends when the commit does,
    /// in [`Cluster::storage_done`]); ends it failed or killed otherwise.
    fn settle(&mut self, job_id: JobId, now_ms: i64, effects: &mut Vec<Effect>) {
        let Some(job) = self.jobs.get_mut(&job_id) else { return };
        let Some(sched) = job.sched.as_ref() else { return };
        if job.phase.is_terminal() || job.committing {
            return;
        }
        let (phase, error) = match sched.state() {
            JobState::Succeeded => {
                job.committing = true;
                let names: Vec<String> = job.plan.outputs.iter().map(|o| o.name.clone()).collect();
                let work = StorageWork::CommitJob { job: job_id, output: job.spec.output.clone(), names };
                self.storage_work.push(work);
                // Backups still running are of no use now.
                self.cancel_running(job_id, "the job is committing its output", now_ms, effects);
                return;
            }
            JobState::Failed { message, .. } => (JobPhase::Failed, message.clone()),
            JobState::Killed => (JobPhase::Killed, "killed".to_owned()),
            JobState::Mapping | JobState::Reducing => return,
        };
        self.end_job(job_id, phase, error, now_ms, effects);
    }

    /// Ends a job: records its state, cancels its running attempts, cleans
    /// up its output unless it succeeded.
    fn end_job(&mut self, job_id: JobId, phase: JobPhase, error: String, now_ms: i64, effects: &mut Vec<Effect>) {
        let Some(job) = self.jobs.get_mut(&job_id) else { return };
        job.phase = phase;
        job.error = error;
        job.finished_ms = now_ms;
        if job.started_ms == 0 {
            job.started_ms = now_ms;
        }
        if phase != JobPhase::Succeeded {
            let work = StorageWork::AbortJob { job: job_id, output: job.spec.output.clone() };
            self.storage_work.push(work);
        }
        tracing::info!(job = %job_id, state = phase.as_str(), "job ended");
        self.cancel_running(job_id, &format!("the job {}", phase.as_str()), now_ms, effects);
        if let Some(job) = self.jobs.get(&job_id) {
            effects.push(Effect::Job(job.update()));
        }
        self.release_ended_jobs(now_ms);
    }

    /// Cancels every running attempt of a job.
    fn cancel_running(&mut self, job_id: JobId, why: &str, now_ms: i64, effects: &mut Vec<Effect>) {
        let Some(job) = self.jobs.get_mut(&job_id) else { return };
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
                error: why.to_owned(),
                log: None,
                counters: None,
                output_digest: None,
                at_ms: now_ms,
            });
        }
    }

    /// Whether an ended job's intermediate data (map outputs on workers)
    /// may go: its retention has passed.
    fn past_retention(&self, job: &Job, now_ms: i64) -> bool {
        job.phase.is_terminal() && now_ms - job.finished_ms >= self.policy.retention_ms
    }

    /// Tells every worker to delete the intermediate data of the jobs that
    /// ended at least the retention ago and were not released yet, and
    /// deletes their map outputs shuffled through storage.
    pub(super) fn release_ended_jobs(&mut self, now_ms: i64) {
        let due: Vec<JobId> =
            self.jobs.values().filter(|j| !j.released && self.past_retention(j, now_ms)).map(|j| j.id).collect();
        for id in due {
            if let Some(job) = self.jobs.get_mut(&id) {
                job.released = true;
                if let Some(location) = job.plan.shuffle.clone() {
                    self.storage_work.push(StorageWork::DeleteShuffle { job: id, location });
                }
            }
            for w in self.workers.values_mut() {
                w.forget.push(id);
            }
        }
    }
}
