//! One job in the coordinator: its scheduler, running attempts, map-output
//! locations, committed counters and the record of where its tasks failed.

use super::*;

/// An attempt running now: where, since when, and its last reported
/// progress (for hung attempts and stragglers).
#[derive(Debug, Clone)]
pub(super) struct RunningAttempt {
    pub(super) worker: WorkerId,
    pub(super) started_ms: i64,
    pub(super) last_progress_ms: i64,
    pub(super) records: u64,
    pub(super) fraction: f64,
    /// Taken back from the stored state (after a restart or a reload)
    /// and not yet seen in its worker's heartbeat: if the worker's next
    /// heartbeat does not list it, the worker never got it (or lost it).
    pub(super) adopted: bool,
}

/// A task's record, as the scheduler keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskRecordView {
    /// The task.
    pub task: TaskId,
    /// Its attempts, failures and commit.
    pub record: TaskRecord,
}

/// One job.
#[derive(Debug)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// Its spec.
    pub spec: JobSpec,
    /// Its plan.
    pub plan: JobPlan,
    pub(super) spec_json: std::sync::Arc<str>,
    pub(super) plan_json: std::sync::Arc<str>,
    /// Higher goes first.
    pub priority: i32,
    /// The user who submitted it (empty: the cluster token's holder).
    pub owner: String,
    /// Task bookkeeping (absent once the job has ended and was loaded from
    /// history).
    pub sched: Option<Scheduler>,
    /// Its state.
    pub phase: JobPhase,
    /// Why it failed.
    pub error: String,
    /// The counters of each task's committed attempt (maps, reduces): a
    /// job counts committed work only, once, however often it ran.
    pub(super) task_counters: [Vec<Option<Counters>>; 2],
    /// The sum of `task_counters` (for an ended job loaded from history: its
    /// stored counters).
    pub(super) committed_counters: Counters,
    /// Attempts that failed (counted against their task's limit).
    pub(super) failed_attempts: u64,
    /// For each worker, the tasks of this job that failed there, and when
    /// they last did: retries go elsewhere, and a worker where several
    /// tasks failed is excluded from the job.
    pub(super) failures: HashMap<WorkerId, HashMap<TaskId, i64>>,
    /// Every task committed and the job's commit is queued or running: the
    /// job ends when it does.
    pub(super) committing: bool,
    /// Ended, and the workers were told to delete its intermediate data.
    pub(super) released: bool,
    pub(super) map_outputs: Vec<Option<MapOutputLoc>>,
    pub(super) running: HashMap<AttemptId, RunningAttempt>,
    /// Durations of committed attempts, per phase (for speculation).
    pub(super) durations: [Vec<i64>; 2],
    /// The median of `durations`, with the count it was computed from:
    /// recomputed only when the count grew by 1 %, so idle polls stay cheap.
    pub(super) median: [(usize, i64); 2],
    /// Times (ms since the epoch; 0: not yet).
    pub submitted_ms: i64,
    /// First attempt started.
    pub started_ms: i64,
    /// Ended.
    pub finished_ms: i64,
}

impl Job {
    /// What the store keeps of the job's changes.
    pub(super) fn update(&self) -> JobUpdate {
        JobUpdate {
            id: self.id,
            state: self.phase,
            error: self.error.clone(),
            counters: self.counters(),
            started_at_ms: self.started_ms,
            finished_at_ms: self.finished_ms,
        }
    }

    pub(super) fn task_row(&self, task: TaskId) -> Option<StoredTask> {
        let record = self.sched.as_ref()?.record(task)?;
        let map_output = match task.kind {
            TaskKind::Map => self.map_outputs[task.index as usize].clone(),
            TaskKind::Reduce => None,
        };
        let counters = self.task_counters[task.kind as usize].get(task.index as usize).cloned().flatten();
        Some(StoredTask { task, record, map_output, counters })
    }

    /// Forgets a map's output and its counters: the map runs again.
    pub(super) fn forget_map_output(&mut self, map: u32) {
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
    pub(super) fn set_task_counters(&mut self, task: TaskId, counters: Option<Counters>) {
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
    pub(super) fn record_failure(&mut self, worker: &str, task: TaskId, now_ms: i64, policy: &Policy) -> bool {
        self.failed_attempts += 1;
        let before = self.excludes(worker, now_ms, policy);
        let tasks = self.failures.entry(WorkerId::from(worker)).or_default();
        tasks.retain(|_, at| now_ms - *at < policy.blacklist_expiry_ms);
        tasks.insert(task, now_ms);
        !before && self.excludes(worker, now_ms, policy)
    }

    /// Whether attempts of enough different tasks failed on `worker`
    /// lately to keep it away from this job.
    pub(super) fn excludes(&self, worker: &str, now_ms: i64, policy: &Policy) -> bool {
        self.failures.get(worker).is_some_and(|tasks| {
            let recent = tasks.values().filter(|&&at| now_ms - at < policy.blacklist_expiry_ms).count();
            recent >= policy.blacklist_task_failures.max(1) as usize
        })
    }

    /// Whether an attempt of `task` failed on `worker` lately.
    pub(super) fn failed_on(&self, worker: &str, task: TaskId, now_ms: i64, policy: &Policy) -> bool {
        self.failures
            .get(worker)
            .and_then(|tasks| tasks.get(&task))
            .is_some_and(|&at| now_ms - at < policy.blacklist_expiry_ms)
    }

    /// The work that commits `attempt`'s output files.
    pub(super) fn commit_task(&self, attempt: AttemptId) -> StorageWork {
        StorageWork::CommitTask { job: self.id, output: self.spec.output.clone(), attempt }
    }

    /// The work that deletes `attempt`'s output files.
    pub(super) fn abort_task(&self, attempt: AttemptId) -> StorageWork {
        StorageWork::AbortTask { job: self.id, output: self.spec.output.clone(), attempt }
    }

    /// The phase name: map, reduce, commit, done.
    pub fn stage(&self) -> &'static str {
        if self.committing {
            return "commit";
        }
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

    /// Every task's record (maps, then reduces), with its running attempts'
    /// last reported progress; `None` for a job loaded from history (its
    /// records are in the store).
    pub fn task_records(&self) -> Option<Vec<TaskRecordView>> {
        let sched = self.sched.as_ref()?;
        let tasks = (0..self.plan.splits.len() as u32)
            .map(|index| TaskId { kind: TaskKind::Map, index })
            .chain((0..self.plan.partitions).map(|index| TaskId { kind: TaskKind::Reduce, index }));
        Some(tasks.map(|task| TaskRecordView { task, record: sched.record(task).unwrap_or_default() }).collect())
    }

    /// The last reported progress of a running attempt: (fraction, records).
    pub fn attempt_progress(&self, attempt: AttemptId) -> Option<(f64, u64)> {
        self.running.get(&attempt).map(|r| (r.fraction, r.records))
    }

    /// The job's spec and plan as submitted and planned (JSON), shared.
    pub fn spec_and_plan(&self) -> (std::sync::Arc<str>, std::sync::Arc<str>) {
        (self.spec_json.clone(), self.plan_json.clone())
    }

    /// Input bytes of the job.
    pub fn input_bytes(&self) -> u64 {
        self.plan.splits.iter().map(quern_core::InputSplit::len).sum()
    }
}
