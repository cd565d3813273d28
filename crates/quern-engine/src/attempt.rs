//! One attempt as a self-contained request and outcome, both serde, so an
//! attempt can run in another process: a cluster worker starts a child per
//! attempt (so a crash in user code cannot take the worker down) and talks to
//! it in JSON.
//!
//! The embedded runner does not go through here; it calls [`MapTask`] and
//! [`ReduceTask`] directly, with the same task code.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};

use quern_core::{App, AttemptId, Counters, JobPlan, JobSpec, TaskId, TaskKind};
use quern_storage::Storage;
use serde::{Deserialize, Serialize};

use crate::code::JobCode;
use crate::digest::OutputDigest;
use crate::merge::RunSegment;
use crate::run::RunIndex;
use crate::task::{MapTask, ReduceTask, TaskEnv};

/// Everything an attempt needs, as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRequest {
    /// The job.
    pub spec: JobSpec,
    /// Its plan.
    pub plan: JobPlan,
    /// Which attempt of which task.
    pub attempt: AttemptId,
    /// Scratch directory of this attempt; a map's output stays here.
    pub work_dir: PathBuf,
    /// A reduce's input: its partition's segment of every map output, as
    /// local files.
    pub runs: Vec<RunSegment>,
    /// Maximum runs merged at once.
    pub merge_factor: usize,
    /// The directory holding the job's code files by hash (a worker's
    /// cache), when the job ships any.
    #[serde(default)]
    pub code_dir: Option<PathBuf>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttemptOutcome {
    /// It finished; its output awaits commit.
    Succeeded {
        /// Its counters.
        counters: Counters,
        /// A map's output index (`None`: no pair went to a reduced output).
        map_output: Option<RunIndex>,
        /// The digest of every file it wrote ([`OutputDigest`]), which a
        /// replay of the task must reproduce. (Older workers send none.)
        #[serde(default)]
        output_digest: Option<String>,
    },
    /// It failed.
    Failed {
        /// The task, its input and the error.
        message: String,
        /// Whether another attempt might succeed.
        retryable: bool,
    },
}

/// Live progress of one attempt.
#[derive(Debug, Default)]
pub struct AttemptProgress {
    /// Input bytes read (maps).
    pub bytes_read: AtomicU64,
    /// Records processed.
    pub records: AtomicU64,
}

/// What a task works on, for messages: a map's split, a reduce's output
/// partition.
pub fn describe_task(plan: &JobPlan, task: TaskId) -> String {
    match task.kind {
        TaskKind::Map => match plan.splits.get(task.index as usize) {
            Some(split) => format!("input {split}"),
            None => format!("map {}", task.index),
        },
        TaskKind::Reduce => {
            let (o, p) = plan.locate(task.index);
            let name = &plan.outputs[o].name;
            if name.is_empty() { format!("partition {p}") } else { format!("output {name} partition {p}") }
        }
    }
}

/// Runs one attempt with `app`, reading inputs through `storage`, updating
/// `progress`, until done or `cancel` is set. Output files go to the
/// attempt's private area of the job's output (`OUTPUT/_temporary/…`), for
/// the coordinator to commit.
pub fn run_attempt(
    request: &AttemptRequest,
    app: &dyn App,
    storage: &Storage,
    progress: &AttemptProgress,
    cancel: &AtomicBool,
) -> AttemptOutcome {
    let AttemptRequest { spec, plan, attempt, work_dir, runs, merge_factor, code_dir } = request;
    let digest = OutputDigest::default();
    let env = TaskEnv {
        app,
        plan,
        sort_buffer: spec.sort_buffer as usize,
        merge_factor: *merge_factor,
        skip_bad_records: spec.skip_bad_records,
        cancel,
        bytes_read: &progress.bytes_read,
        records_done: &progress.records,
        storage,
        code: JobCode { files: &spec.code, dir: code_dir.as_deref() },
        digest: Some(&digest),
    };
    let committer = match storage.open_output(&spec.output) {
        Ok(committer) => committer,
        Err(e) => return AttemptOutcome::Failed { message: e.to_string(), retryable: !e.is_refusal() },
    };
    let committer = &committer;
    let result = match attempt.task.kind {
        TaskKind::Map => match plan.splits.get(attempt.task.index as usize) {
            Some(split) => MapTask { attempt: *attempt, split, work_dir: work_dir.clone(), committer }
                .run(&env)
                .map(|out| (out.counters, out.index)),
            None => {
                return AttemptOutcome::Failed { message: format!("no map task {}", attempt.task), retryable: false };
            }
        },
        TaskKind::Reduce => {
            if attempt.task.index >= plan.partitions {
                return AttemptOutcome::Failed {
                    message: format!("no reduce task {}", attempt.task),
                    retryable: false,
                };
            }
            let (output, partition) = plan.locate(attempt.task.index);
            ReduceTask {
                attempt: *attempt,
                output,
                partition,
                runs: runs.clone(),
                work_dir: work_dir.clone(),
                committer,
            }
            .run(&env)
            .map(|counters| (counters, None))
        }
    };
    match result {
        Ok((counters, map_output)) => {
            AttemptOutcome::Succeeded { counters, map_output, output_digest: Some(digest.finish()) }
        }
        Err(e) => AttemptOutcome::Failed {
            message: format!("{}: {e}", describe_task(plan, attempt.task)),
            retryable: e.retryable(),
        },
    }
}
