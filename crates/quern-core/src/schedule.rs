//! The scheduler: one job's tasks and attempts as a state machine, with no
//! clock, no threads and no I/O, so the embedded runner and a cluster
//! coordinator drive the very same logic.
//!
//! ```text
//! task:   Pending ──next_attempt()──▶ Running{attempt} ──succeeded()──▶ Succeeded{attempt}
//!            ▲                      │
//!            └── failed(), retryable and attempts left
//!                                   │ otherwise
//!                                   ▼
//!                                 Failed ──▶ job Failed
//!
//! job:    Mapping ──all maps succeeded──▶ Reducing ──all reduces succeeded──▶ Succeeded
//!            │                               │
//!            └────── a task Failed, or kill() ┴──▶ Failed | Killed
//! ```
//!
//! The commit invariant lives here: [`Scheduler::succeeded`] answers
//! [`CommitDecision::Commit`] for exactly one attempt of each task, and
//! [`CommitDecision::Discard`] for any other (stale, duplicate, or after the
//! job ended), so a caller commits output only on `Commit`.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Map or reduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TaskKind {
    /// Reads one input split.
    Map,
    /// Merges and reduces one partition of one output.
    Reduce,
}

/// A task of a job: `m-00003`, `r-00001`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskId {
    /// Map or reduce.
    pub kind: TaskKind,
    /// Index among the job's tasks of that kind.
    pub index: u32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = match self.kind {
            TaskKind::Map => 'm',
            TaskKind::Reduce => 'r',
        };
        write!(f, "{k}-{:05}", self.index)
    }
}

/// A task name that is not `m-N` or `r-N`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task {0:?}: expected m-N or r-N (like m-00003)")]
pub struct BadTaskName(pub String);

impl std::str::FromStr for TaskId {
    type Err = BadTaskName;

    /// Parses what [`TaskId`]'s `Display` writes (`m-00003`), leading zeros
    /// optional (`r-1`).
    fn from_str(s: &str) -> Result<TaskId, BadTaskName> {
        let bad = || BadTaskName(s.to_owned());
        let (k, i) = s.split_once('-').ok_or_else(bad)?;
        let kind = match k {
            "m" => TaskKind::Map,
            "r" => TaskKind::Reduce,
            _ => return Err(bad()),
        };
        let index = i.parse().map_err(|_| bad())?;
        Ok(TaskId { kind, index })
    }
}

/// One attempt at a task: `m-00003#2` (attempts count from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AttemptId {
    /// The task.
    pub task: TaskId,
    /// Which attempt, from 1.
    pub attempt: u32,
}

impl fmt::Display for AttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.task, self.attempt)
    }
}

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    /// Waiting for a slot.
    Pending,
    /// At least one attempt is running (the earliest is named; backups may
    /// run beside it).
    Running {
        /// The earliest running attempt.
        attempt: u32,
    },
    /// An attempt succeeded and its output was committed.
    Succeeded {
        /// The committed attempt.
        attempt: u32,
    },
    /// Out of attempts, or failed for good.
    Failed,
}

/// Where a job is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    /// Map tasks are running.
    Mapping,
    /// All maps are done; reduce tasks are running.
    Reducing,
    /// Every task committed.
    Succeeded,
    /// A task failed for good.
    Failed {
        /// The task, if one task is to blame.
        task: Option<TaskId>,
        /// Why.
        message: String,
    },
    /// Stopped by the user.
    Killed,
}

impl JobState {
    /// Whether the job has ended.
    pub fn is_terminal(&self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed { .. } | JobState::Killed)
    }
}

/// What a slot should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Run this attempt.
    Run(AttemptId),
    /// Nothing to run now; ask again when an attempt ends.
    Wait,
    /// The job has ended.
    Done,
}

/// Whether a successful attempt's output may be committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitDecision {
    /// Commit it: this is the task's one committed attempt. Any other attempts
    /// of the task still running (backups) are superseded: cancel them.
    Commit {
        /// Attempts of the same task to cancel.
        superseded: Vec<AttemptId>,
    },
    /// Throw it away: stale, duplicate, or the job has ended.
    Discard,
}

impl CommitDecision {
    /// Whether to commit.
    pub fn is_commit(&self) -> bool {
        matches!(self, CommitDecision::Commit { .. })
    }
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong, for the user.
    pub message: String,
    /// Whether another attempt might succeed.
    pub retryable: bool,
}

/// What a failure led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// The task is pending again (or another attempt of it still runs).
    Retrying,
    /// The task is out of attempts (or the failure is permanent): the job
    /// failed.
    JobFailed,
    /// The attempt was not running (stale), or its task already committed;
    /// nothing changed.
    Ignored,
}

/// How an attempt ended, as whoever ran it saw it: what both drivers of a
/// [`Scheduler`] (the embedded runner and the coordinator) tell it, through
/// [`Scheduler::attempt_ended`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// It finished; its output awaits the commit decision.
    Succeeded,
    /// It failed.
    Failed(Failure),
    /// It ended through no fault of its own (its worker was lost, it was
    /// cancelled): not counted against its task.
    Lost,
    /// It could not read these maps' outputs (a fetch failed, or they are
    /// gone): not counted, and the maps run again.
    InputsLost(Vec<u32>),
}

/// What the scheduler made of an attempt that ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Commit its output; cancel these other attempts of the same task.
    Commit {
        /// Attempts of the same task to cancel.
        superseded: Vec<AttemptId>,
    },
    /// Throw its output away: stale, duplicate, or the job has ended.
    Discard,
    /// It failed: what that led to.
    Failed(FailureOutcome),
    /// It is forgotten without counting; these maps (whose outputs were
    /// committed) run again.
    Requeued {
        /// The maps sent back to run again.
        maps: Vec<u32>,
    },
}

impl Verdict {
    /// Whether the attempt counts as a failed attempt (in the job's
    /// counters and against its worker): a failure that was not ignored.
    pub fn counts_as_failure(&self) -> bool {
        matches!(self, Verdict::Failed(FailureOutcome::Retrying | FailureOutcome::JobFailed))
    }
}

/// Task counts of one phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseProgress {
    /// Tasks in the phase.
    pub total: u32,
    /// Waiting for a slot.
    pub pending: u32,
    /// Running now.
    pub running: u32,
    /// Committed.
    pub succeeded: u32,
    /// Failed for good.
    pub failed: u32,
}

/// What a scheduler needs to know of a task to resume after a restart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Attempts started so far (attempt numbers are never reused).
    pub started: u32,
    /// Attempts that failed (counted against the limit).
    pub failures: u32,
    /// The committed attempt, if any.
    pub committed: Option<u32>,
    /// Whether the task failed for good.
    pub failed: bool,
}

#[derive(Debug, Clone, Default)]
struct Task {
    /// Attempts started; the next attempt is `started + 1`.
    started: u32,
    /// Failed attempts, counted against the limit (lost ones are not).
    failures: u32,
    /// Attempts running now.
    running: Vec<u32>,
    /// The committed attempt.
    committed: Option<u32>,
    /// Waiting for a slot.
    pending: bool,
    /// Failed for good.
    failed: bool,
}

impl Task {
    fn new() -> Task {
        Task { pending: true, ..Task::default() }
    }

    fn state(&self) -> TaskState {
        if let Some(attempt) = self.committed {
            TaskState::Succeeded { attempt }
        } else if self.failed {
            TaskState::Failed
        } else if let Some(&attempt) = self.running.first() {
            TaskState::Running { attempt }
        } else {
            TaskState::Pending
        }
    }
}

/// One job's tasks and attempts.
#[derive(Debug, Clone)]
pub struct Scheduler {
    maps: Vec<Task>,
    reduces: Vec<Task>,
    /// Pending tasks of each kind, lowest index first: handing out an attempt
    /// costs O(log n), not a scan, so 100,000-task jobs schedule fast.
    queue: [BTreeSet<u32>; 2],
    /// Committed tasks of each kind, so a phase's end is found in O(1).
    committed: [usize; 2],
    max_attempts: u32,
    state: JobState,
}

fn slot(kind: TaskKind) -> usize {
    match kind {
        TaskKind::Map => 0,
        TaskKind::Reduce => 1,
    }
}

impl Scheduler {
    /// A job of `maps` map tasks and `reduces` reduce tasks, each allowed
    /// `max_attempts` failed attempts (at least 1).
    pub fn new(maps: u32, reduces: u32, max_attempts: u32) -> Self {
        let mut s = Scheduler {
            maps: (0..maps).map(|_| Task::new()).collect(),
            reduces: (0..reduces).map(|_| Task::new()).collect(),
            queue: [(0..maps).collect(), (0..reduces).collect()],
            committed: [0, 0],
            max_attempts: max_attempts.max(1),
            state: JobState::Mapping,
        };
        s.advance();
        s
    }

    /// Marks a task pending or not, keeping the queue in step.
    fn set_pending(&mut self, id: TaskId, pending: bool) {
        if let Some(t) = self.tasks_mut(id.kind).get_mut(id.index as usize) {
            t.pending = pending;
            if pending {
                self.queue[slot(id.kind)].insert(id.index);
            } else {
                self.queue[slot(id.kind)].remove(&id.index);
            }
        }
    }

    /// Whether any task of `kind` waits for a slot.
    pub fn has_pending(&self, kind: TaskKind) -> bool {
        !self.queue[slot(kind)].is_empty()
    }

    /// Rebuilds a scheduler from saved task records (after a coordinator
    /// restart): committed tasks stay committed; tasks that were running are
    /// pending again, their in-flight attempts forgotten (any report from
    /// them is then stale and discarded).
    pub fn restore(maps: &[TaskRecord], reduces: &[TaskRecord], max_attempts: u32) -> Self {
        let task = |r: &TaskRecord| Task {
            started: r.started,
            failures: r.failures,
            running: Vec::new(),
            committed: r.committed,
            pending: r.committed.is_none() && !r.failed,
            failed: r.failed,
        };
        let maps: Vec<Task> = maps.iter().map(task).collect();
        let reduces: Vec<Task> = reduces.iter().map(task).collect();
        let pending = |ts: &[Task]| ts.iter().enumerate().filter(|(_, t)| t.pending).map(|(i, _)| i as u32).collect();
        let committed = |ts: &[Task]| ts.iter().filter(|t| t.committed.is_some()).count();
        let mut s = Scheduler {
            queue: [pending(&maps), pending(&reduces)],
            committed: [committed(&maps), committed(&reduces)],
            maps,
            reduces,
            max_attempts: max_attempts.max(1),
            state: JobState::Mapping,
        };
        if let Some((kind, index)) = s.first_failed() {
            s.state = JobState::Failed {
                task: Some(TaskId { kind, index }),
                message: "failed before the coordinator restarted".into(),
            };
        }
        s.advance();
        s
    }

    fn first_failed(&self) -> Option<(TaskKind, u32)> {
        let find = |ts: &[Task]| ts.iter().position(|t| t.failed).map(|i| i as u32);
        find(&self.maps).map(|i| (TaskKind::Map, i)).or_else(|| find(&self.reduces).map(|i| (TaskKind::Reduce, i)))
    }

    /// What must be saved of `task` to restore it.
    pub fn record(&self, task: TaskId) -> Option<TaskRecord> {
        self.tasks(task.kind).get(task.index as usize).map(|t| TaskRecord {
            started: t.started,
            failures: t.failures,
            committed: t.committed,
            failed: t.failed,
        })
    }

    /// The job's state.
    pub fn state(&self) -> &JobState {
        &self.state
    }

    /// A task's state, if the task exists.
    pub fn task_state(&self, task: TaskId) -> Option<TaskState> {
        self.tasks(task.kind).get(task.index as usize).map(Task::state)
    }

    /// Attempts started so far for `task`.
    pub fn attempts(&self, task: TaskId) -> u32 {
        self.tasks(task.kind).get(task.index as usize).map_or(0, |t| t.started)
    }

    /// Every attempt running now.
    pub fn running_attempts(&self) -> Vec<AttemptId> {
        let mut out = Vec::new();
        for (kind, tasks) in [(TaskKind::Map, &self.maps), (TaskKind::Reduce, &self.reduces)] {
            for (i, t) in tasks.iter().enumerate() {
                for &attempt in &t.running {
                    out.push(AttemptId { task: TaskId { kind, index: i as u32 }, attempt });
                }
            }
        }
        out
    }

    /// Task counts of a phase.
    pub fn progress(&self, kind: TaskKind) -> PhaseProgress {
        let tasks = self.tasks(kind);
        let mut p = PhaseProgress { total: tasks.len() as u32, ..PhaseProgress::default() };
        for t in tasks {
            match t.state() {
                TaskState::Pending => p.pending += 1,
                TaskState::Running { .. } => p.running += 1,
                TaskState::Succeeded { .. } => p.succeeded += 1,
                TaskState::Failed => p.failed += 1,
            }
        }
        p
    }

    /// The phase whose tasks run now, if the job is running.
    pub fn phase(&self) -> Option<TaskKind> {
        match self.state {
            JobState::Mapping => Some(TaskKind::Map),
            JobState::Reducing => Some(TaskKind::Reduce),
            _ => None,
        }
    }

    /// The next attempt to run, if any. Reduces start only after every map
    /// has committed.
    pub fn next_attempt(&mut self) -> Next {
        self.next_attempt_where(|_| true)
    }

    /// The next attempt to run of a task that `allowed` accepts (lowest
    /// index first), if any: how a caller keeps a task's retry off the
    /// worker where it failed. Skipped tasks stay pending.
    pub fn next_attempt_where(&mut self, mut allowed: impl FnMut(TaskId) -> bool) -> Next {
        let Some(kind) = self.phase() else {
            return Next::Done;
        };
        let queue = &mut self.queue[slot(kind)];
        let Some(index) = queue.iter().copied().find(|&index| allowed(TaskId { kind, index })) else {
            return Next::Wait;
        };
        queue.remove(&index);
        let t = &mut self.tasks_mut(kind)[index as usize];
        t.pending = false;
        t.started += 1;
        t.running.push(t.started);
        Next::Run(AttemptId { task: TaskId { kind, index }, attempt: t.started })
    }

    /// Takes back an attempt that was running when the driver's state was
    /// last stored (a restarted coordinator, or one that reloaded its state
    /// after a failed write): the task runs it again instead of starting a
    /// new one, so the attempt's report is accepted. Returns false (and
    /// changes nothing) if the attempt cannot be running: its task
    /// committed or failed, the attempt was never started, or it runs
    /// already.
    pub fn adopt(&mut self, attempt: AttemptId) -> bool {
        let Some(t) = self.task_mut(attempt.task) else { return false };
        if t.committed.is_some() || t.failed || attempt.attempt == 0 || attempt.attempt > t.started {
            return false;
        }
        if t.running.contains(&attempt.attempt) {
            return false;
        }
        t.running.push(attempt.attempt);
        self.set_pending(attempt.task, false);
        true
    }

    /// Starts a backup (speculative) attempt of `task`, which must be running
    /// in the current phase with only one attempt. The first attempt to
    /// succeed commits; the other is superseded.
    pub fn backup_attempt(&mut self, task: TaskId) -> Option<AttemptId> {
        if self.phase() != Some(task.kind) {
            return None;
        }
        let t = self.task_mut(task)?;
        if t.committed.is_some() || t.failed || t.pending || t.running.len() != 1 {
            return None;
        }
        t.started += 1;
        t.running.push(t.started);
        Some(AttemptId { task, attempt: t.started })
    }

    /// Records how `attempt` ended and says what follows: the one place
    /// both drivers turn an attempt's end into scheduler changes.
    pub fn attempt_ended(&mut self, attempt: AttemptId, result: AttemptResult) -> Verdict {
        match result {
            AttemptResult::Succeeded => match self.succeeded(attempt) {
                CommitDecision::Commit { superseded } => Verdict::Commit { superseded },
                CommitDecision::Discard => Verdict::Discard,
            },
            AttemptResult::Failed(failure) => Verdict::Failed(self.failed(attempt, failure)),
            AttemptResult::Lost => {
                self.attempt_lost(attempt);
                Verdict::Requeued { maps: Vec::new() }
            }
            AttemptResult::InputsLost(maps) => {
                self.attempt_lost(attempt);
                Verdict::Requeued { maps: maps.into_iter().filter(|&m| self.map_output_lost(m)).collect() }
            }
        }
    }

    /// Records that `attempt` finished successfully; says whether to commit.
    pub fn succeeded(&mut self, attempt: AttemptId) -> CommitDecision {
        if self.state.is_terminal() {
            return CommitDecision::Discard;
        }
        let Some(task) = self.task_mut(attempt.task) else {
            return CommitDecision::Discard;
        };
        let Some(pos) = task.running.iter().position(|&a| a == attempt.attempt) else {
            return CommitDecision::Discard;
        };
        task.running.remove(pos);
        if task.committed.is_some() {
            return CommitDecision::Discard;
        }
        task.committed = Some(attempt.attempt);
        let superseded = task.running.drain(..).map(|a| AttemptId { task: attempt.task, attempt: a }).collect();
        self.committed[slot(attempt.task.kind)] += 1;
        self.set_pending(attempt.task, false);
        self.advance();
        CommitDecision::Commit { superseded }
    }

    /// Records that `attempt` failed; retries the task or fails the job.
    pub fn failed(&mut self, attempt: AttemptId, failure: Failure) -> FailureOutcome {
        if self.state.is_terminal() {
            return FailureOutcome::Ignored;
        }
        let max_attempts = self.max_attempts;
        let Some(task) = self.task_mut(attempt.task) else {
            return FailureOutcome::Ignored;
        };
        let Some(pos) = task.running.iter().position(|&a| a == attempt.attempt) else {
            return FailureOutcome::Ignored;
        };
        task.running.remove(pos);
        if task.committed.is_some() {
            return FailureOutcome::Ignored;
        }
        task.failures += 1;
        if failure.retryable && task.failures < max_attempts {
            // A backup still running carries on; otherwise queue a new one.
            let idle = task.running.is_empty();
            self.set_pending(attempt.task, idle);
            return FailureOutcome::Retrying;
        }
        task.failed = true;
        let tries = task.failures;
        self.set_pending(attempt.task, false);
        let why = if failure.retryable { format!("failed {tries} attempt(s)") } else { "failed".to_owned() };
        self.state = JobState::Failed {
            task: Some(attempt.task),
            message: format!("task {} {why}: {}", attempt.task, failure.message),
        };
        FailureOutcome::JobFailed
    }

    /// Records that `attempt` ended through no fault of its own (its worker
    /// was lost, or it was cancelled): it does not count against the limit.
    /// Returns whether the attempt was running.
    pub fn attempt_lost(&mut self, attempt: AttemptId) -> bool {
        let Some(task) = self.task_mut(attempt.task) else {
            return false;
        };
        let Some(pos) = task.running.iter().position(|&a| a == attempt.attempt) else {
            return false;
        };
        task.running.remove(pos);
        if task.committed.is_none() && !task.failed && task.running.is_empty() {
            self.set_pending(attempt.task, true);
        }
        true
    }

    /// Records that a committed map task's output can no longer be read (its
    /// worker was lost): the map runs again, and reduces wait for it.
    /// Returns whether the map was re-queued.
    pub fn map_output_lost(&mut self, map: u32) -> bool {
        if self.state.is_terminal() {
            return false;
        }
        let Some(task) = self.maps.get_mut(map as usize) else {
            return false;
        };
        if task.committed.take().is_none() {
            return false;
        }
        let idle = task.running.is_empty();
        self.committed[0] -= 1;
        self.set_pending(TaskId { kind: TaskKind::Map, index: map }, idle);
        self.state = JobState::Mapping;
        true
    }

    /// Fails the job for a reason outside any task (for example, the output
    /// could not be committed).
    pub fn fail_job(&mut self, message: String) {
        if !self.state.is_terminal() {
            self.state = JobState::Failed { task: None, message };
        }
    }

    /// Kills the job: no further attempts start, none commits. Returns the
    /// attempts that were running, to be cancelled.
    pub fn kill(&mut self) -> Vec<AttemptId> {
        if self.state.is_terminal() {
            return Vec::new();
        }
        self.state = JobState::Killed;
        self.running_attempts()
    }

    fn advance(&mut self) {
        if self.state == JobState::Mapping && self.committed[0] == self.maps.len() {
            self.state = JobState::Reducing;
        }
        if self.state == JobState::Reducing && self.committed[1] == self.reduces.len() {
            self.state = JobState::Succeeded;
        }
    }

    fn tasks(&self, kind: TaskKind) -> &[Task] {
        match kind {
            TaskKind::Map => &self.maps,
            TaskKind::Reduce => &self.reduces,
        }
    }

    fn tasks_mut(&mut self, kind: TaskKind) -> &mut Vec<Task> {
        match kind {
            TaskKind::Map => &mut self.maps,
            TaskKind::Reduce => &mut self.reduces,
        }
    }

    fn task_mut(&mut self, id: TaskId) -> Option<&mut Task> {
        self.tasks_mut(id.kind).get_mut(id.index as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &mut Scheduler) -> AttemptId {
        match s.next_attempt() {
            Next::Run(a) => a,
            other => panic!("expected an attempt, got {other:?}"),
        }
    }

    fn retryable(msg: &str) -> Failure {
        Failure { message: msg.to_owned(), retryable: true }
    }

    #[test]
    fn maps_then_reduces_then_succeeded() {
        let mut s = Scheduler::new(2, 1, 4);
        assert_eq!(s.state(), &JobState::Mapping);
        let m0 = run(&mut s);
        let m1 = run(&mut s);
        assert_eq!(s.next_attempt(), Next::Wait, "no reduce before every map commits");
        assert!(s.succeeded(m0).is_commit());
        assert_eq!(s.next_attempt(), Next::Wait);
        assert!(s.succeeded(m1).is_commit());
        assert_eq!(s.state(), &JobState::Reducing);
        let r0 = run(&mut s);
        assert_eq!(r0.to_string(), "r-00000#1");
        assert_eq!(s.progress(TaskKind::Reduce).running, 1);
        assert!(s.succeeded(r0).is_commit());
        assert_eq!(s.state(), &JobState::Succeeded);
        assert_eq!(s.next_attempt(), Next::Done);
    }

    #[test]
    fn empty_job_succeeds_at_once_and_map_only_skips_reducing() {
        assert_eq!(Scheduler::new(0, 0, 1).state(), &JobState::Succeeded);
        assert_eq!(Scheduler::new(0, 3, 1).state(), &JobState::Reducing);
        let mut s = Scheduler::new(1, 0, 1);
        let m = run(&mut s);
        s.succeeded(m);
        assert_eq!(s.state(), &JobState::Succeeded);
    }

    #[test]
    fn retryable_failure_retries_until_the_limit() {
        let mut s = Scheduler::new(1, 0, 3);
        for attempt in 1..=2 {
            let a = run(&mut s);
            assert_eq!(a.attempt, attempt);
            assert_eq!(s.failed(a, retryable("boom")), FailureOutcome::Retrying);
            assert_eq!(s.task_state(a.task), Some(TaskState::Pending));
        }
        let a = run(&mut s);
        assert_eq!(s.failed(a, retryable("boom")), FailureOutcome::JobFailed);
        assert_eq!(s.task_state(a.task), Some(TaskState::Failed));
        assert_eq!(
            s.state(),
            &JobState::Failed { task: Some(a.task), message: "task m-00000 failed 3 attempt(s): boom".into() }
        );
        assert_eq!(s.next_attempt(), Next::Done);
    }

    #[test]
    fn an_ended_attempt_s_verdict_counts_only_real_failures() {
        let mut s = Scheduler::new(2, 1, 4);
        let m0 = run(&mut s);
        let m1 = run(&mut s);
        let failed = s.attempt_ended(m0, AttemptResult::Failed(retryable("boom")));
        assert_eq!(failed, Verdict::Failed(FailureOutcome::Retrying));
        assert!(failed.counts_as_failure());
        let stale = s.attempt_ended(m0, AttemptResult::Failed(retryable("late")));
        assert!(!stale.counts_as_failure(), "a stale failure is not counted");
        assert_eq!(s.attempt_ended(m1, AttemptResult::Succeeded), Verdict::Commit { superseded: vec![] });
        let m0 = run(&mut s);
        assert_eq!(s.attempt_ended(m0, AttemptResult::Succeeded), Verdict::Commit { superseded: vec![] });
        let r0 = run(&mut s);
        assert_eq!(s.attempt_ended(r0, AttemptResult::InputsLost(vec![1])), Verdict::Requeued { maps: vec![1] });
        assert_eq!(s.state(), &JobState::Mapping, "the lost map runs again before the reduce");
        assert_eq!(s.attempts(r0.task), 1, "the reduce's attempt was not counted as failed");
        assert_eq!(s.record(r0.task).map(|r| r.failures), Some(0));
    }

    #[test]
    fn a_filter_skips_tasks_without_losing_them() {
        let mut s = Scheduler::new(3, 0, 4);
        let m0 = run(&mut s);
        assert_eq!(s.failed(m0, retryable("disk full")), FailureOutcome::Retrying);
        // The worker where m0 failed gets m1, not m0's retry.
        let next = s.next_attempt_where(|t| t != m0.task);
        assert_eq!(next, Next::Run(AttemptId { task: TaskId { kind: TaskKind::Map, index: 1 }, attempt: 1 }));
        let next = s.next_attempt_where(|t| t != m0.task);
        assert_eq!(next, Next::Run(AttemptId { task: TaskId { kind: TaskKind::Map, index: 2 }, attempt: 1 }));
        assert_eq!(s.next_attempt_where(|t| t != m0.task), Next::Wait, "only m0 is left, and it is not wanted");
        assert_eq!(s.progress(TaskKind::Map).pending, 1);
        assert_eq!(s.next_attempt(), Next::Run(AttemptId { task: m0.task, attempt: 2 }), "another worker takes it");
    }

    #[test]
    fn permanent_failure_fails_at_once() {
        let mut s = Scheduler::new(1, 0, 4);
        let a = run(&mut s);
        let f = Failure { message: "bad line".into(), retryable: false };
        assert_eq!(s.failed(a, f), FailureOutcome::JobFailed);
        assert_eq!(s.attempts(a.task), 1);
    }

    #[test]
    fn stale_and_duplicate_reports_are_discarded() {
        let mut s = Scheduler::new(2, 0, 4);
        let first = run(&mut s);
        assert_eq!(s.failed(first, retryable("lost")), FailureOutcome::Retrying);
        let second = run(&mut s);
        assert_eq!(second.task, first.task);
        // The first attempt reports success late: it must not commit.
        assert_eq!(s.succeeded(first), CommitDecision::Discard);
        assert_eq!(s.failed(first, retryable("late")), FailureOutcome::Ignored);
        assert!(s.succeeded(second).is_commit());
        assert_eq!(s.succeeded(second), CommitDecision::Discard, "exactly one commit per task");
        let unknown = AttemptId { task: TaskId { kind: TaskKind::Reduce, index: 9 }, attempt: 1 };
        assert_eq!(s.succeeded(unknown), CommitDecision::Discard);
    }

    #[test]
    fn kill_stops_everything() {
        let mut s = Scheduler::new(2, 1, 4);
        let a = run(&mut s);
        assert_eq!(s.kill(), vec![a], "running attempts are handed back to cancel");
        assert_eq!(s.state(), &JobState::Killed);
        assert_eq!(s.next_attempt(), Next::Done);
        assert_eq!(s.succeeded(a), CommitDecision::Discard);
        s.fail_job("too late".into());
        assert_eq!(s.state(), &JobState::Killed, "terminal states are final");
    }

    #[test]
    fn a_lost_attempt_does_not_count_against_the_limit() {
        let mut s = Scheduler::new(1, 0, 1);
        let a = run(&mut s);
        assert!(s.attempt_lost(a));
        assert_eq!(s.task_state(a.task), Some(TaskState::Pending));
        let b = run(&mut s);
        assert_eq!(b.attempt, 2, "attempt numbers are never reused");
        assert!(!s.attempt_lost(a), "a stale attempt is not running");
        assert_eq!(s.succeeded(a), CommitDecision::Discard, "a lost attempt's late success is discarded");
        assert!(s.succeeded(b).is_commit());
        assert_eq!(s.state(), &JobState::Succeeded);
    }

    #[test]
    fn backup_attempts_race_and_the_first_success_wins() {
        let mut s = Scheduler::new(1, 1, 4);
        let a = run(&mut s);
        assert_eq!(s.next_attempt(), Next::Wait);
        let b = s.backup_attempt(a.task).expect("backup");
        assert_eq!(b.attempt, 2);
        assert_eq!(s.backup_attempt(a.task), None, "one backup at a time");
        assert_eq!(s.succeeded(b), CommitDecision::Commit { superseded: vec![a] });
        assert_eq!(s.succeeded(a), CommitDecision::Discard);
        assert_eq!(s.failed(a, retryable("cancelled")), FailureOutcome::Ignored);
        assert_eq!(s.state(), &JobState::Reducing);
        // A failing backup leaves the original running, and costs a failure.
        let r = run(&mut s);
        let rb = s.backup_attempt(r.task).expect("backup");
        assert_eq!(s.failed(rb, retryable("slow disk")), FailureOutcome::Retrying);
        assert_eq!(s.task_state(r.task), Some(TaskState::Running { attempt: 1 }));
        assert_eq!(s.next_attempt(), Next::Wait, "the original still runs: nothing new to start");
        assert!(s.succeeded(r).is_commit());
    }

    #[test]
    fn a_lost_map_output_sends_the_job_back_to_mapping() {
        let mut s = Scheduler::new(2, 1, 4);
        let m0 = run(&mut s);
        let m1 = run(&mut s);
        s.succeeded(m0);
        s.succeeded(m1);
        let r = run(&mut s);
        assert!(s.map_output_lost(0));
        assert_eq!(s.state(), &JobState::Mapping);
        assert!(!s.map_output_lost(0), "already pending");
        // The reduce could not fetch it: its attempt is lost, not failed.
        assert!(s.attempt_lost(r));
        let again = run(&mut s);
        assert_eq!(again, AttemptId { task: m0.task, attempt: 2 });
        assert_eq!(s.next_attempt(), Next::Wait);
        assert!(s.succeeded(again).is_commit());
        assert_eq!(s.state(), &JobState::Reducing);
        let r2 = run(&mut s);
        assert_eq!(r2.attempt, 2);
        assert!(s.succeeded(r2).is_commit());
        assert_eq!(s.state(), &JobState::Succeeded);
    }

    #[test]
    fn restore_keeps_commits_and_reruns_what_was_in_flight() {
        let mut s = Scheduler::new(3, 1, 4);
        let m0 = run(&mut s);
        let m1 = run(&mut s);
        s.succeeded(m0);
        assert_eq!(s.failed(m1, retryable("x")), FailureOutcome::Retrying);
        let m1b = run(&mut s);
        let _m2 = run(&mut s);
        let records: Vec<TaskRecord> =
            (0..3).map(|i| s.record(TaskId { kind: TaskKind::Map, index: i }).expect("task")).collect();
        let reduces = vec![s.record(TaskId { kind: TaskKind::Reduce, index: 0 }).expect("task")];
        let mut restored = Scheduler::restore(&records, &reduces, 4);
        assert_eq!(restored.state(), &JobState::Mapping);
        assert_eq!(restored.task_state(m0.task), Some(TaskState::Succeeded { attempt: 1 }));
        assert_eq!(restored.succeeded(m1b), CommitDecision::Discard, "in-flight attempts are forgotten");
        let next = run(&mut restored);
        assert_eq!(next, AttemptId { task: m1.task, attempt: 3 }, "numbering continues, failures are kept");
        assert_eq!(restored.record(m1.task).map(|r| r.failures), Some(1));
        let failed = TaskRecord { started: 4, failures: 4, committed: None, failed: true };
        let dead = Scheduler::restore(&[failed], &[], 4);
        assert!(matches!(dead.state(), JobState::Failed { .. }));
    }

    #[test]
    fn an_adopted_attempt_runs_on_and_its_success_commits() {
        let mut s = Scheduler::new(2, 1, 4);
        let m0 = run(&mut s);
        let m1 = run(&mut s);
        s.succeeded(m0);
        let records: Vec<TaskRecord> =
            (0..2).map(|i| s.record(TaskId { kind: TaskKind::Map, index: i }).expect("task")).collect();
        let reduces = vec![s.record(TaskId { kind: TaskKind::Reduce, index: 0 }).expect("task")];
        let mut restored = Scheduler::restore(&records, &reduces, 4);
        assert!(!restored.adopt(m0), "a committed task's attempt cannot run");
        assert!(!restored.adopt(AttemptId { task: m1.task, attempt: 2 }), "never started");
        assert!(restored.adopt(m1));
        assert!(!restored.adopt(m1), "runs already");
        assert_eq!(restored.task_state(m1.task), Some(TaskState::Running { attempt: 1 }));
        assert!(!restored.has_pending(TaskKind::Map), "an adopted task is not handed out again");
        assert_eq!(restored.attempt_ended(m1, AttemptResult::Succeeded), Verdict::Commit { superseded: vec![] });
        assert_eq!(restored.state(), &JobState::Reducing);
    }
}
