//! The coordinator's own work on job outputs (commit and abort, of tasks and
//! of jobs) and on ended jobs' shuffled map outputs (deletion after the
//! retention), done outside its lock.
//!
//! A decision of the [`Cluster`](crate::cluster::Cluster) never touches
//! storage: it queues [`StorageWork`] beside the [`Effect`]s it stores. Once
//! the decision is stored, the work runs on blocking threads (an S3 commit is
//! a series of requests, a local one a series of renames), while the lock is
//! free for every other RPC; what the work found that matters to the
//! scheduler comes back as a [`StorageOutcome`], a decision of its own.
//!
//! Order is kept where it matters: one job's work runs in the order it was
//! decided (a task's commit before the job's commit, a job's commit or abort
//! after every task's); different jobs' work runs side by side.
//!
//! Why doing it after the decision is stored is safe: the stored decision is
//! what a restart believes, and every step here is idempotent. A coordinator
//! that dies before the work ran re-commits the committed tasks of a running
//! job when it restores, and commits again a job whose every task committed;
//! a job that ended failed or killed has nothing a reader can see (`_SUCCESS`
//! is never written), whatever abort did not finish.
//!
//! [`Effect`]: crate::cluster::Effect

use std::collections::HashMap;

use quern_core::{AttemptId, JobId};
use quern_storage::Storage;

/// Work on a job's output, in the order decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageWork {
    /// Makes the scheduler's chosen attempt's files the task's.
    CommitTask {
        /// The job.
        job: JobId,
        /// Its output location.
        output: String,
        /// The winning attempt.
        attempt: AttemptId,
    },
    /// Deletes an attempt's files (a loser, a failure, a cancelled one).
    AbortTask {
        /// The job.
        job: JobId,
        /// Its output location.
        output: String,
        /// The attempt.
        attempt: AttemptId,
    },
    /// Publishes the job's output, `_SUCCESS` last.
    CommitJob {
        /// The job.
        job: JobId,
        /// Its output location.
        output: String,
        /// Its named outputs (a local directory is made for each).
        names: Vec<String>,
    },
    /// Removes everything a failed or killed job wrote to its output.
    AbortJob {
        /// The job.
        job: JobId,
        /// Its output location.
        output: String,
    },
    /// Deletes an ended job's map outputs shuffled through storage (its
    /// retention has passed).
    DeleteShuffle {
        /// The job.
        job: JobId,
        /// The job's own shuffle prefix (`JobPlan::shuffle`).
        location: String,
    },
}

impl StorageWork {
    /// The job the work is for.
    pub fn job(&self) -> JobId {
        match self {
            StorageWork::CommitTask { job, .. }
            | StorageWork::AbortTask { job, .. }
            | StorageWork::CommitJob { job, .. }
            | StorageWork::AbortJob { job, .. }
            | StorageWork::DeleteShuffle { job, .. } => *job,
        }
    }
}

/// What storage work found that the scheduler must hear of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageOutcome {
    /// A task's commit failed: the job fails (its output cannot be complete).
    TaskCommitFailed {
        /// The job.
        job: JobId,
        /// The attempt whose commit failed.
        attempt: AttemptId,
        /// Why.
        message: String,
    },
    /// A job's commit ended: the job succeeded, or failed with the message.
    JobCommitted {
        /// The job.
        job: JobId,
        /// `Err(why)` if it failed.
        result: Result<(), String>,
    },
}

/// Runs one job's work, in order, and returns what the scheduler must hear.
/// After a failed task commit, the job's commit is not tried: it fails with
/// the same message. Blocking: call from a blocking thread.
pub fn run_in_order(storage: &Storage, work: Vec<StorageWork>) -> Vec<StorageOutcome> {
    let mut outcomes = Vec::new();
    let mut committers: HashMap<String, Result<quern_storage::OutputCommitter, String>> = HashMap::new();
    let mut failed: Option<String> = None;
    for item in work {
        if let StorageWork::DeleteShuffle { job, location } = &item {
            match storage.delete_prefix(location) {
                Ok(()) => tracing::info!(job = %job, shuffle = %location, "deleted the job's shuffled map outputs"),
                Err(e) => {
                    tracing::warn!(job = %job, shuffle = %location, "deleting the job's shuffled map outputs: {e}")
                }
            }
            continue;
        }
        let output = match &item {
            StorageWork::CommitTask { output, .. }
            | StorageWork::AbortTask { output, .. }
            | StorageWork::CommitJob { output, .. }
            | StorageWork::AbortJob { output, .. } => output.clone(),
            StorageWork::DeleteShuffle { .. } => continue,
        };
        let committer = committers
            .entry(output.clone())
            .or_insert_with(|| storage.open_output(&output).map_err(|e| e.to_string()))
            .as_ref();
        match (item, committer) {
            (StorageWork::CommitTask { job, attempt, .. }, committer) => {
                let result =
                    committer.map_err(String::clone).and_then(|c| c.commit_task(attempt).map_err(|e| e.to_string()));
                if let Err(e) = result {
                    let message = format!("committing {attempt}: {e}");
                    tracing::error!(job = %job, "{message}");
                    failed.get_or_insert_with(|| message.clone());
                    outcomes.push(StorageOutcome::TaskCommitFailed { job, attempt, message });
                }
            }
            (StorageWork::AbortTask { attempt, .. }, Ok(committer)) => committer.abort_task(attempt),
            (StorageWork::CommitJob { job, names, .. }, committer) => {
                let result = match &failed {
                    Some(message) => Err(message.clone()),
                    None => committer.map_err(String::clone).and_then(|c| {
                        c.commit_job(&names).map(drop).map_err(|e| format!("committing the output: {e}"))
                    }),
                };
                outcomes.push(StorageOutcome::JobCommitted { job, result });
            }
            (StorageWork::AbortJob { .. }, Ok(committer)) => committer.abort_job(),
            (StorageWork::AbortTask { job, .. } | StorageWork::AbortJob { job, .. }, Err(e)) => {
                tracing::warn!(job = %job, output = %output, "cleaning up the output: {e}");
            }
            (StorageWork::DeleteShuffle { .. }, _) => {}
        }
    }
    outcomes
}

/// Runs queued work: each job's in order on a blocking thread of its own,
/// jobs side by side. Returns every outcome.
pub async fn run_all(storage: &Storage, work: Vec<StorageWork>) -> Vec<StorageOutcome> {
    let mut by_job: HashMap<JobId, Vec<StorageWork>> = HashMap::new();
    for item in work {
        by_job.entry(item.job()).or_default().push(item);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for items in by_job.into_values() {
        let storage = storage.clone();
        tasks.spawn_blocking(move || run_in_order(&storage, items));
    }
    let mut outcomes = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(found) => outcomes.extend(found),
            Err(e) => tracing::error!("output work panicked: {e}"),
        }
    }
    outcomes
}
