//! The embedded runner: a whole job on this machine, driven by the shared
//! [`Scheduler`] with a pool of in-process slots (threads).
//!
//! Each slot asks the scheduler for the next attempt, runs it without holding
//! any lock, and reports back; a success is committed only when the scheduler
//! says [`quern_core::CommitDecision::Commit`]. This is the same loop a cluster worker
//! will run, with the scheduler behind RPC instead of a mutex.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use quern_core::{
    App, AttemptId, AttemptResult, Counters, Failure, FailureOutcome, JobSpec, JobState, Next, Scheduler, TaskKind,
    Verdict,
};
use quern_storage::{Location, OutputCommitter, Storage, StorageError};
use serde::Serialize;

use crate::attempt::describe_task;
use crate::code::JobCode;
use crate::error::{Error, TaskError};
use crate::merge::RunSegment;
use crate::plan::plan_job;
use crate::run::RunIndex;
use crate::shuffle::{FetchError, fetch_segment, is_shuffled};
use crate::task::{MapTask, ReduceTask, TaskEnv};

/// Default maximum number of runs merged at once (Hadoop's `io.sort.factor`).
pub const DEFAULT_MERGE_FACTOR: usize = 64;

/// How to run a job on this machine.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Attempts run at once (default: the number of cores).
    pub parallelism: usize,
    /// Where scratch data (spills, map outputs) goes; default: the system's
    /// temporary directory. A fresh subdirectory is made and removed.
    pub work_dir: Option<PathBuf>,
    /// Maximum runs merged at once.
    pub merge_factor: usize,
    /// Set to cancel the job; attempts stop at their next check.
    pub cancel: Arc<AtomicBool>,
    /// Live progress, for a progress bar or a status API.
    pub progress: Arc<JobProgress>,
    /// Where inputs are read and the output written (default: local files
    /// only; give it [`quern_storage::S3Options`] for `s3://` inputs and
    /// outputs).
    pub storage: Storage,
    /// The directory holding the job's code files
    /// ([`quern_core::JobSpec::code`]) by hash, when it ships any.
    pub code_dir: Option<PathBuf>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            parallelism: std::thread::available_parallelism().map_or(1, |n| n.get()),
            work_dir: None,
            merge_factor: DEFAULT_MERGE_FACTOR,
            cancel: Arc::default(),
            progress: Arc::default(),
            storage: Storage::default(),
            code_dir: None,
        }
    }
}

/// Live progress of a running job, readable from any thread.
#[derive(Debug, Default)]
pub struct JobProgress {
    /// Map tasks in the job (set once planned).
    pub map_tasks: AtomicU32,
    /// Map tasks committed.
    pub maps_done: AtomicU32,
    /// Reduce tasks in the job.
    pub reduce_tasks: AtomicU32,
    /// Reduce tasks committed.
    pub reduces_done: AtomicU32,
    /// Input bytes on disk.
    pub input_bytes: AtomicU64,
    /// Input bytes read so far (approximate; retries read again).
    pub bytes_read: AtomicU64,
    /// Records processed so far (approximate).
    pub records_done: AtomicU64,
    /// Attempts that failed.
    pub failed_attempts: AtomicU64,
    /// Set once planning is done and tasks may start.
    pub planned: AtomicBool,
}

/// What a finished job reports.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    /// The app.
    pub app: String,
    /// The output directory (or `s3://` URL).
    pub output: PathBuf,
    /// The output files (paths, or `s3://` URLs), sorted (without `_SUCCESS`).
    pub files: Vec<PathBuf>,
    /// Map tasks run.
    pub map_tasks: u32,
    /// Reduce tasks run.
    pub reduce_tasks: u32,
    /// Wall time from start to commit.
    pub elapsed: Duration,
    /// Built-in and app counters of the committed attempts.
    pub counters: Counters,
}

struct Shared {
    sched: Scheduler,
    /// What failed attempts add (`failed_attempts`).
    counters: Counters,
    /// Each task's committed attempt's counters: a map that runs again
    /// (its output was lost) replaces its own.
    map_counters: Vec<Counters>,
    reduce_counters: Vec<Counters>,
    map_outputs: Vec<Option<RunIndex>>,
}

/// Runs `spec` with `app` on this machine.
///
/// Checks everything that can be checked first (the spec, that the output
/// does not exist, that every input exists and is readable), then creates the
/// output (a local directory, or the claim of an `s3://` prefix), runs every
/// map and reduce task and commits. On failure or cancellation everything
/// the job wrote to its output is removed and no `_SUCCESS` exists.
///
/// With a shuffle through storage (`spec.shuffle`), maps upload their
/// outputs under the job's own prefix and reduces read them from there; the
/// prefix is deleted when the job ends, however it ends.
pub fn run_job(spec: &JobSpec, app: Arc<dyn App>, opts: &RunOptions) -> Result<JobReport, Error> {
    let started = Instant::now();
    spec.validate()?;
    let output = Location::parse(&spec.output)?;
    if let Some(path) = output.as_local()
        && path.exists()
    {
        return Err(StorageError::OutputExists { path: spec.output.clone() }.into());
    }
    let code = JobCode { files: &spec.code, dir: opts.code_dir.as_deref() };
    let plan = plan_job(spec, &*app, &opts.storage, code)?;
    let map_tasks = plan.splits.len() as u32;
    let reduce_tasks = plan.partitions;

    let work_base = opts.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&work_base).map_err(|e| Error::io("creating work directory", &work_base, e))?;
    let work = tempfile::Builder::new()
        .prefix("quern-job-")
        .tempdir_in(&work_base)
        .map_err(|e| Error::io("creating work directory in", &work_base, e))?;
    let committer = opts.storage.setup_output(&spec.output)?;

    let progress = &opts.progress;
    progress.map_tasks.store(map_tasks, Ordering::Relaxed);
    progress.reduce_tasks.store(reduce_tasks, Ordering::Relaxed);
    progress.input_bytes.store(plan.splits.iter().map(|s| s.len()).sum(), Ordering::Relaxed);
    progress.planned.store(true, Ordering::Release);
    tracing::info!(
        app = %spec.app,
        map_tasks,
        reduce_tasks,
        partitioner = %plan.partitioner,
        shuffle = plan.shuffle.as_deref(),
        "job planned"
    );

    let shared = Mutex::new(Shared {
        sched: Scheduler::new(map_tasks, reduce_tasks, spec.max_attempts),
        counters: Counters::default(),
        map_counters: vec![Counters::default(); map_tasks as usize],
        reduce_counters: vec![Counters::default(); reduce_tasks as usize],
        map_outputs: vec![None; map_tasks as usize],
    });
    let wake = Condvar::new();
    let env = TaskEnv {
        app: &*app,
        plan: &plan,
        sort_buffer: spec.sort_buffer as usize,
        merge_factor: opts.merge_factor,
        skip_bad_records: spec.skip_bad_records,
        cancel: &opts.cancel,
        bytes_read: &progress.bytes_read,
        records_done: &progress.records_done,
        storage: &opts.storage,
        code,
        digest: None,
    };
    let slot = Slot { env: &env, shared: &shared, wake: &wake, committer: &committer, work: work.path(), progress };
    std::thread::scope(|scope| {
        for i in 0..opts.parallelism.max(1) {
            let slot = &slot;
            let spawned =
                std::thread::Builder::new().name(format!("quern-slot-{i}")).spawn_scoped(scope, move || slot.run());
            if let Err(e) = spawned {
                lock(&shared).sched.fail_job(format!("starting a worker thread: {e}"));
                break;
            }
        }
    });

    if let Some(prefix) = &plan.shuffle {
        // Nothing reads the map outputs any more, whatever the outcome.
        if let Err(e) = opts.storage.delete_prefix(prefix) {
            tracing::warn!("deleting the job's map outputs: {e}");
        }
    }
    let Shared { sched, mut counters, map_counters, reduce_counters, .. } =
        shared.into_inner().unwrap_or_else(|p| p.into_inner());
    for task in map_counters.iter().chain(&reduce_counters) {
        counters.merge(task);
    }
    match sched.state() {
        JobState::Succeeded => {
            let names: Vec<String> = plan.outputs.iter().map(|o| o.name.clone()).collect();
            let files = committer.commit_job(&names).map_err(|e| {
                committer.abort_job();
                Error::Io { context: "committing output", path: committer.location(), cause: e }
            })?;
            let elapsed = started.elapsed();
            tracing::info!(elapsed_ms = elapsed.as_millis() as u64, "job succeeded");
            Ok(JobReport {
                app: spec.app.clone(),
                output: PathBuf::from(committer.location()),
                files: files.into_iter().map(PathBuf::from).collect(),
                map_tasks,
                reduce_tasks,
                elapsed,
                counters,
            })
        }
        JobState::Killed => {
            committer.abort_job();
            Err(Error::Cancelled)
        }
        JobState::Failed { message, .. } => {
            committer.abort_job();
            Err(Error::JobFailed { message: message.clone() })
        }
        JobState::Mapping | JobState::Reducing => {
            committer.abort_job();
            Err(Error::JobFailed { message: "every worker thread stopped before the job ended".into() })
        }
    }
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panic never happens while the lock is held (user code runs outside
    // it), so a poisoned lock still holds consistent state.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

enum AttemptOutput {
    Map(Option<RunIndex>, Counters),
    Reduce(Counters),
}

/// How an attempt ended, as the slot reports it.
enum Ended {
    /// It ran to its end, or failed.
    Ran(Result<AttemptOutput, TaskError>),
    /// A reduce could not read these maps' outputs (shuffled through
    /// storage, and gone): they run again.
    InputsLost { maps: Vec<u32>, message: String },
}

/// One in-process slot: pulls attempts from the scheduler and runs them.
struct Slot<'a> {
    env: &'a TaskEnv<'a>,
    shared: &'a Mutex<Shared>,
    wake: &'a Condvar,
    committer: &'a OutputCommitter,
    work: &'a Path,
    progress: &'a JobProgress,
}

impl Slot<'_> {
    fn run(&self) {
        while let Some((attempt, runs)) = self.next_attempt() {
            let work_dir = self.work.join(format!("{}_{}", attempt.task, attempt.attempt));
            let result = self.run_attempt(attempt, &work_dir, runs);
            self.report(attempt, &work_dir, result);
            self.wake.notify_all();
        }
        self.wake.notify_all();
    }

    /// The next attempt to run and, for a reduce, its partition's segment of
    /// every map output (with the map's index).
    fn next_attempt(&self) -> Option<(AttemptId, Vec<(u32, RunSegment)>)> {
        let mut g = lock(self.shared);
        loop {
            if self.env.cancel.load(Ordering::Relaxed) {
                // In-process attempts see the same flag and stop themselves.
                let _ = g.sched.kill();
            }
            match g.sched.next_attempt() {
                Next::Run(a) => {
                    let p = a.task.index as usize;
                    let runs = match a.task.kind {
                        TaskKind::Map => Vec::new(),
                        TaskKind::Reduce => g
                            .map_outputs
                            .iter()
                            .enumerate()
                            .filter_map(|(m, index)| Some((m as u32, index.as_ref()?)))
                            .map(|(m, index)| (m, RunSegment { path: index.path.clone(), segment: index.segments[p] }))
                            .collect(),
                    };
                    return Some((a, runs));
                }
                Next::Done => return None,
                Next::Wait => {
                    g = self.wake.wait_timeout(g, Duration::from_millis(100)).unwrap_or_else(|p| p.into_inner()).0;
                }
            }
        }
    }

    fn run_attempt(&self, attempt: AttemptId, work_dir: &Path, runs: Vec<(u32, RunSegment)>) -> Ended {
        let committer = self.committer;
        tracing::debug!(%attempt, "attempt started");
        match attempt.task.kind {
            TaskKind::Map => {
                let split = &self.env.plan.splits[attempt.task.index as usize];
                let task = MapTask { attempt, split, work_dir: work_dir.to_path_buf(), committer };
                Ended::Ran(task.run(self.env).map(|out| AttemptOutput::Map(out.index, out.counters)))
            }
            TaskKind::Reduce => {
                let runs = match self.fetch_shuffled(work_dir, runs) {
                    Ok(runs) => runs,
                    Err(ended) => return *ended,
                };
                let (output, partition) = self.env.plan.locate(attempt.task.index);
                let task = ReduceTask { attempt, output, partition, runs, work_dir: work_dir.to_path_buf(), committer };
                Ended::Ran(task.run(self.env).map(AttemptOutput::Reduce))
            }
        }
    }

    /// A reduce's inputs as local files: segments of map outputs shuffled
    /// through storage are fetched into the attempt's scratch directory
    /// (others are local already).
    fn fetch_shuffled(&self, work_dir: &Path, runs: Vec<(u32, RunSegment)>) -> Result<Vec<RunSegment>, Box<Ended>> {
        if runs.iter().any(|(_, r)| is_shuffled(&r.path)) {
            std::fs::create_dir_all(work_dir)
                .map_err(|e| Box::new(Ended::Ran(Err(TaskError::io("creating reduce scratch directory")(e)))))?;
        }
        let mut local = Vec::with_capacity(runs.len());
        for (map, run) in runs {
            if !is_shuffled(&run.path) || run.segment.records == 0 {
                local.push(run);
                continue;
            }
            if self.env.cancel.load(Ordering::Relaxed) {
                return Err(Box::new(Ended::Ran(Err(TaskError::Cancelled))));
            }
            let dest = work_dir.join(format!("input-m-{map:05}.run"));
            let location = run.path.display().to_string();
            match fetch_segment(self.env.storage, &location, run.segment, &dest) {
                Ok(()) => {
                    local.push(RunSegment { path: dest, segment: quern_core::Segment { offset: 0, ..run.segment } })
                }
                Err(FetchError::Lost(message)) => return Err(Box::new(Ended::InputsLost { maps: vec![map], message })),
                Err(e @ FetchError::Failed(_)) => {
                    return Err(Box::new(Ended::Ran(Err(TaskError::Io {
                        context: "fetching a map output".into(),
                        cause: std::io::Error::other(e.to_string()),
                    }))));
                }
            }
        }
        Ok(local)
    }

    fn report(&self, attempt: AttemptId, work_dir: &Path, ended: Ended) {
        let mut g = lock(self.shared);
        let result = match ended {
            Ended::Ran(result) => result,
            Ended::InputsLost { maps, message } => {
                let _ = std::fs::remove_dir_all(work_dir);
                tracing::warn!(%attempt, "map outputs lost, their maps run again: {message}");
                for &m in &maps {
                    if let Some(output) = g.map_outputs.get_mut(m as usize) {
                        *output = None;
                    }
                }
                self.committer.abort_task(attempt);
                if let Verdict::Requeued { maps } = g.sched.attempt_ended(attempt, AttemptResult::InputsLost(maps)) {
                    self.progress.maps_done.fetch_sub(maps.len() as u32, Ordering::Relaxed);
                }
                return;
            }
        };
        match result {
            Ok(output) => {
                if !matches!(g.sched.attempt_ended(attempt, AttemptResult::Succeeded), Verdict::Commit { .. }) {
                    self.committer.abort_task(attempt);
                    let _ = std::fs::remove_dir_all(work_dir);
                    return;
                }
                if let Err(e) = self.committer.commit_task(attempt) {
                    g.sched.fail_job(format!("committing {attempt}: {e}"));
                    return;
                }
                match output {
                    AttemptOutput::Map(index, counters) => {
                        g.map_counters[attempt.task.index as usize] = counters;
                        g.map_outputs[attempt.task.index as usize] = index;
                        self.progress.maps_done.fetch_add(1, Ordering::Relaxed);
                    }
                    AttemptOutput::Reduce(counters) => {
                        g.reduce_counters[attempt.task.index as usize] = counters;
                        // The reduce's scratch (merge passes) is no longer needed.
                        let _ = std::fs::remove_dir_all(work_dir);
                        self.progress.reduces_done.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tracing::debug!(%attempt, "attempt committed");
            }
            Err(e) => {
                self.committer.abort_task(attempt);
                let _ = std::fs::remove_dir_all(work_dir);
                if matches!(e, TaskError::Cancelled) {
                    let _ = g.sched.kill();
                    return;
                }
                let message = format!("{}: {e}", describe_task(self.env.plan, attempt.task));
                let failure = Failure { message: message.clone(), retryable: e.retryable() };
                let verdict = g.sched.attempt_ended(attempt, AttemptResult::Failed(failure));
                // Counted only when the scheduler counted it (not a stale one).
                if verdict.counts_as_failure() {
                    g.counters.engine.failed_attempts += 1;
                    self.progress.failed_attempts.fetch_add(1, Ordering::Relaxed);
                }
                match verdict {
                    Verdict::Failed(FailureOutcome::Retrying) => {
                        tracing::warn!(%attempt, "attempt failed, will retry: {message}")
                    }
                    Verdict::Failed(FailureOutcome::JobFailed) => {
                        tracing::error!(%attempt, "attempt failed, job fails: {message}")
                    }
                    _ => {}
                }
            }
        }
    }
}
