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
    /// An attempt is running.
    Running {
        /// The running attempt.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitDecision {
    /// Commit it: this is the task's one committed attempt.
    Commit,
    /// Throw it away: stale, duplicate, or the job has ended.
    Discard,
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
    /// The task is pending again and will be retried.
    Retrying,
    /// The task is out of attempts (or the failure is permanent): the job
    /// failed.
    JobFailed,
    /// The attempt was not the task's running one (stale); nothing changed.
    Ignored,
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

#[derive(Debug, Clone)]
struct Task {
    state: TaskState,
    attempts: u32,
}

/// One job's tasks and attempts.
#[derive(Debug, Clone)]
pub struct Scheduler {
    maps: Vec<Task>,
    reduces: Vec<Task>,
    max_attempts: u32,
    state: JobState,
}

impl Scheduler {
    /// A job of `maps` map tasks and `reduces` reduce tasks, each allowed
    /// `max_attempts` attempts (at least 1).
    pub fn new(maps: u32, reduces: u32, max_attempts: u32) -> Self {
        let task = Task { state: TaskState::Pending, attempts: 0 };
        let mut s = Scheduler {
            maps: vec![task.clone(); maps as usize],
            reduces: vec![task; reduces as usize],
            max_attempts: max_attempts.max(1),
            state: JobState::Mapping,
        };
        s.advance();
        s
    }

    /// The job's state.
    pub fn state(&self) -> &JobState {
        &self.state
    }

    /// A task's state, if the task exists.
    pub fn task_state(&self, task: TaskId) -> Option<TaskState> {
        self.tasks(task.kind).get(task.index as usize).map(|t| t.state)
    }

    /// Attempts started so far for `task`.
    pub fn attempts(&self, task: TaskId) -> u32 {
        self.tasks(task.kind).get(task.index as usize).map_or(0, |t| t.attempts)
    }

    /// Task counts of a phase.
    pub fn progress(&self, kind: TaskKind) -> PhaseProgress {
        let tasks = self.tasks(kind);
        let mut p = PhaseProgress { total: tasks.len() as u32, ..PhaseProgress::default() };
        for t in tasks {
            match t.state {
                TaskState::Pending => p.pending += 1,
                TaskState::Running { .. } => p.running += 1,
                TaskState::Succeeded { .. } => p.succeeded += 1,
                TaskState::Failed => p.failed += 1,
            }
        }
        p
    }

    /// The next attempt to run, if any. Reduces start only after every map
    /// has committed.
    pub fn next_attempt(&mut self) -> Next {
        let kind = match self.state {
            JobState::Mapping => TaskKind::Map,
            JobState::Reducing => TaskKind::Reduce,
            _ => return Next::Done,
        };
        let max_attempts = self.max_attempts;
        let tasks = self.tasks_mut(kind);
        match tasks.iter().position(|t| t.state == TaskState::Pending) {
            Some(index) => {
                let t = &mut tasks[index];
                t.attempts += 1;
                debug_assert!(t.attempts <= max_attempts, "invariant: no attempt past the limit");
                t.state = TaskState::Running { attempt: t.attempts };
                Next::Run(AttemptId { task: TaskId { kind, index: index as u32 }, attempt: t.attempts })
            }
            None => Next::Wait,
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
        if task.state != (TaskState::Running { attempt: attempt.attempt }) {
            return CommitDecision::Discard;
        }
        task.state = TaskState::Succeeded { attempt: attempt.attempt };
        self.advance();
        CommitDecision::Commit
    }

    /// Records that `attempt` failed; retries it or fails the job.
    pub fn failed(&mut self, attempt: AttemptId, failure: Failure) -> FailureOutcome {
        if self.state.is_terminal() {
            return FailureOutcome::Ignored;
        }
        let max_attempts = self.max_attempts;
        let Some(task) = self.task_mut(attempt.task) else {
            return FailureOutcome::Ignored;
        };
        if task.state != (TaskState::Running { attempt: attempt.attempt }) {
            return FailureOutcome::Ignored;
        }
        if failure.retryable && task.attempts < max_attempts {
            task.state = TaskState::Pending;
            return FailureOutcome::Retrying;
        }
        task.state = TaskState::Failed;
        let tries = task.attempts;
        let why = if failure.retryable { format!("failed {tries} attempt(s)") } else { "failed".to_owned() };
        self.state = JobState::Failed {
            task: Some(attempt.task),
            message: format!("task {} {why}: {}", attempt.task, failure.message),
        };
        FailureOutcome::JobFailed
    }

    /// Fails the job for a reason outside any task (for example, the output
    /// could not be committed).
    pub fn fail_job(&mut self, message: String) {
        if !self.state.is_terminal() {
            self.state = JobState::Failed { task: None, message };
        }
    }

    /// Kills the job: no further attempts start, none commits.
    pub fn kill(&mut self) {
        if !self.state.is_terminal() {
            self.state = JobState::Killed;
        }
    }

    fn advance(&mut self) {
        let all_done = |ts: &[Task]| ts.iter().all(|t| matches!(t.state, TaskState::Succeeded { .. }));
        if self.state == JobState::Mapping && all_done(&self.maps) {
            self.state = JobState::Reducing;
        }
        if self.state == JobState::Reducing && all_done(&self.reduces) {
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
        assert_eq!(s.succeeded(m0), CommitDecision::Commit);
        assert_eq!(s.next_attempt(), Next::Wait);
        assert_eq!(s.succeeded(m1), CommitDecision::Commit);
        assert_eq!(s.state(), &JobState::Reducing);
        let r0 = run(&mut s);
        assert_eq!(r0.to_string(), "r-00000#1");
        assert_eq!(s.progress(TaskKind::Reduce).running, 1);
        assert_eq!(s.succeeded(r0), CommitDecision::Commit);
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
        assert_eq!(s.succeeded(second), CommitDecision::Commit);
        assert_eq!(s.succeeded(second), CommitDecision::Discard, "exactly one commit per task");
        let unknown = AttemptId { task: TaskId { kind: TaskKind::Reduce, index: 9 }, attempt: 1 };
        assert_eq!(s.succeeded(unknown), CommitDecision::Discard);
    }

    #[test]
    fn kill_stops_everything() {
        let mut s = Scheduler::new(2, 1, 4);
        let a = run(&mut s);
        s.kill();
        assert_eq!(s.state(), &JobState::Killed);
        assert_eq!(s.next_attempt(), Next::Done);
        assert_eq!(s.succeeded(a), CommitDecision::Discard);
        s.fail_job("too late".into());
        assert_eq!(s.state(), &JobState::Killed, "terminal states are final");
    }
}
