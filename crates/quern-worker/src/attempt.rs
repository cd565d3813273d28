//! One attempt on this worker: fetch a reduce's inputs, start the child
//! process (`<exe> task`), feed it the request, follow its progress, and turn
//! whatever happens (an outcome, a crash, a kill) into a report.
//!
//! The child is the same binary as the worker, so it has the same apps; a
//! panic, abort or `exit` in user code ends the child, not the worker.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use quern_core::{AttemptId, JobId};
use quern_engine::attempt::{AttemptOutcome, AttemptRequest};
use quern_engine::merge::RunSegment;
use quern_engine::run::Segment;
use quern_proto as pb;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

/// Live progress of this worker's attempts, for heartbeats.
pub(crate) type ProgressMap = Arc<Mutex<HashMap<(JobId, AttemptId), (f64, u64)>>>;

/// What the worker reports when an attempt ends.
#[derive(Debug)]
pub(crate) enum Report {
    Outcome(AttemptOutcome),
    /// These maps' outputs could not be read (fetched, or found locally).
    FetchFailed {
        maps: Vec<u32>,
        message: String,
    },
    Cancelled,
}

/// Everything an attempt needs from its worker.
pub(crate) struct AttemptContext {
    pub(crate) worker_id: String,
    pub(crate) work_dir: PathBuf,
    pub(crate) task_command: Vec<std::ffi::OsString>,
    pub(crate) token: quern_proto::TokenAttach,
    pub(crate) progress: ProgressMap,
    pub(crate) channels: crate::Channels,
    /// The coordinator, for the jobs' specs and plans.
    pub(crate) coordinator: crate::CoordinatorClient,
    /// The specs and plans fetched so far.
    pub(crate) jobs: crate::jobs::JobCache,
    /// Where map outputs shuffled through storage are read.
    pub(crate) storage: quern_storage::Storage,
}

/// How much of an attempt's stderr is kept: its last 64 KiB.
const LOG_TAIL: usize = 64 << 10;

/// Reads a child's stderr to its end, keeping the last `max` bytes. The log
/// lives in the worker's memory, not in the work directory, so an attempt
/// that dies because that disk is full still says why.
pub(crate) async fn read_tail(mut stderr: impl tokio::io::AsyncRead + Unpin, max: usize) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 16 << 10];
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * max {
                    kept.drain(..kept.len() - max);
                }
            }
        }
    }
    if kept.len() > max {
        kept.drain(..kept.len() - max);
    }
    kept
}

/// The attempt's log once its process has ended (a descendant that kept
/// the pipe open does not hold the report back for long).
async fn collect_log(log: tokio::task::JoinHandle<Vec<u8>>) -> Vec<u8> {
    match tokio::time::timeout(std::time::Duration::from_secs(2), log).await {
        Ok(Ok(log)) => log,
        _ => b"(the attempt's log could not be read to its end)".to_vec(),
    }
}

/// Whether a map output location names an upload (a URL), not a file on
/// the worker that wrote it.
fn shuffled(input: &pb::MapOutputLocation) -> bool {
    quern_engine::shuffle::is_shuffled(std::path::Path::new(&input.path))
}

/// Of a reduce's inputs that this worker wrote (and kept: not uploaded),
/// the maps whose output is gone or shorter than the segment it should
/// hold (the work directory was lost or wiped), with the first problem.
async fn missing_local_outputs(worker_id: &str, inputs: &[pb::MapOutputLocation]) -> (Vec<u32>, Option<String>) {
    let mut missing = Vec::new();
    let mut first = None;
    for input in inputs.iter().filter(|i| i.worker_id == worker_id && !shuffled(i)) {
        let end = input.segment.map_or(0, |s| s.offset + s.len);
        let problem = match tokio::fs::metadata(&input.path).await {
            Ok(m) if m.len() >= end => continue,
            Ok(m) => format!("{} holds {} bytes, the segment ends at {end}", input.path, m.len()),
            Err(e) => format!("{}: {e}", input.path),
        };
        missing.push(input.map_index);
        first.get_or_insert(problem);
    }
    (missing, first)
}

/// Runs one attempt to its end; returns the report and the attempt's stderr.
pub(crate) async fn run(
    ctx: Arc<AttemptContext>,
    job: JobId,
    attempt: AttemptId,
    assignment: pb::TaskAssignment,
    mut cancel: watch::Receiver<bool>,
) -> (Report, Vec<u8>) {
    let dir = ctx.work_dir.join("jobs").join(job.to_string()).join(format!("{}_{}", attempt.task, attempt.attempt));
    let bad = |message: String| (Report::Outcome(AttemptOutcome::Failed { message, retryable: false }), Vec::new());
    let files = match ctx.jobs.get(job, &ctx.coordinator).await {
        Ok(files) => files,
        Err(e) => {
            let failed = AttemptOutcome::Failed { message: e.message, retryable: e.retryable };
            return (Report::Outcome(failed), Vec::new());
        }
    };
    if let Err(e) = tokio::fs::create_dir_all(&dir).await {
        let failed = AttemptOutcome::Failed { message: format!("creating {}: {e}", dir.display()), retryable: true };
        return (Report::Outcome(failed), Vec::new());
    }

    // A reduce's inputs: local map outputs are read in place; others are
    // fetched from the worker that has them, or, uploaded (`--shuffle`),
    // read from storage. A local output that is gone is a lost map output,
    // exactly like a failed fetch: the maps run again.
    let (missing, problem) = missing_local_outputs(&ctx.worker_id, &assignment.inputs).await;
    if !missing.is_empty() {
        let message = format!("map outputs gone from this worker: {}", problem.unwrap_or_default());
        return (Report::FetchFailed { maps: missing, message }, Vec::new());
    }
    let mut runs = Vec::with_capacity(assignment.inputs.len());
    for input in &assignment.inputs {
        let Some(seg) = input.segment else {
            return bad("an input without a segment".into());
        };
        let segment = Segment::from(seg);
        if shuffled(input) {
            if segment.records == 0 {
                continue;
            }
            let dest = dir.join(format!("input-m-{:05}.run", input.map_index));
            let (storage, location, to) = (ctx.storage.clone(), input.path.clone(), dest.clone());
            let fetch = tokio::task::spawn_blocking(move || {
                quern_engine::shuffle::fetch_segment(&storage, &location, segment, &to)
            });
            let fetched = tokio::select! {
                r = fetch => r,
                _ = cancel.changed() => return (Report::Cancelled, Vec::new()),
            };
            match fetched {
                Ok(Ok(())) => runs.push(RunSegment { path: dest, segment: Segment { offset: 0, ..segment } }),
                Ok(Err(quern_engine::shuffle::FetchError::Lost(message))) => {
                    return (Report::FetchFailed { maps: vec![input.map_index], message }, Vec::new());
                }
                Ok(Err(e)) => {
                    let failed =
                        AttemptOutcome::Failed { message: format!("fetching a map output: {e}"), retryable: true };
                    return (Report::Outcome(failed), Vec::new());
                }
                Err(e) => {
                    let failed =
                        AttemptOutcome::Failed { message: format!("fetching a map output: {e}"), retryable: true };
                    return (Report::Outcome(failed), Vec::new());
                }
            }
            continue;
        }
        if input.worker_id == ctx.worker_id {
            runs.push(RunSegment { path: PathBuf::from(&input.path), segment });
            continue;
        }
        let dest = dir.join(format!("input-m-{:05}.run", input.map_index));
        let channel = match ctx.channels.get(&input.shuffle_address) {
            Ok(c) => c,
            Err(message) => return (Report::FetchFailed { maps: vec![input.map_index], message }, Vec::new()),
        };
        let fetched = tokio::select! {
            r = crate::shuffle::fetch(channel, &ctx.token, &input.path, seg, &dest) => r,
            _ = cancel.changed() => return (Report::Cancelled, Vec::new()),
        };
        if let Err(message) = fetched {
            let message = format!("from {} ({}): {message}", input.worker_id, input.shuffle_address);
            return (Report::FetchFailed { maps: vec![input.map_index], message }, Vec::new());
        }
        runs.push(RunSegment { path: dest, segment: Segment { offset: 0, ..segment } });
    }

    let request = AttemptRequest {
        spec: files.spec.clone(),
        plan: files.plan.clone(),
        attempt,
        work_dir: dir.clone(),
        runs,
        merge_factor: quern_engine::DEFAULT_MERGE_FACTOR,
        code_dir: files.code_dir.clone(),
    };
    let request = match serde_json::to_vec(&request) {
        Ok(r) => r,
        Err(e) => return bad(format!("encoding the attempt: {e}")),
    };
    let Some((program, args)) = ctx.task_command.split_first() else {
        return bad("no task command".into());
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A group of its own: what it starts (streaming commands) is
        // killed with it.
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let failed =
                AttemptOutcome::Failed { message: format!("starting the attempt process: {e}"), retryable: true };
            return (Report::Outcome(failed), Vec::new());
        }
    };
    let log = match child.stderr.take() {
        Some(stderr) => tokio::spawn(read_tail(stderr, LOG_TAIL)),
        None => tokio::spawn(async { Vec::new() }),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A child that dies before reading is reported below, from its exit.
        let _ = stdin.write_all(&request).await;
        let _ = stdin.shutdown().await;
    }
    let mut outcome: Option<AttemptOutcome> = None;
    if let Some(stdout) = child.stdout.take() {
        let mut lines = BufReader::new(stdout).lines();
        loop {
            tokio::select! {
                line = lines.next_line() => match line {
                    Ok(Some(line)) => {
                        if let Some(update) = crate::protocol::parse_line(&line) {
                            match update {
                                crate::protocol::Line::Progress { fraction, records } => {
                                    if let Ok(mut p) = ctx.progress.lock() {
                                        p.insert((job, attempt), (fraction, records));
                                    }
                                }
                                crate::protocol::Line::Outcome(o) => outcome = Some(o),
                            }
                        }
                    }
                    _ => break,
                },
                _ = cancel.changed() => {
                    kill_group(&mut child).await;
                    return (Report::Cancelled, collect_log(log).await);
                }
            }
        }
    }
    let status = tokio::select! {
        s = child.wait() => s,
        _ = cancel.changed() => {
            kill_group(&mut child).await;
            return (Report::Cancelled, collect_log(log).await);
        }
    };
    let log = collect_log(log).await;
    let outcome = match (outcome, status) {
        (Some(o), Ok(s)) if s.success() => o,
        (_, status) => {
            let how = match status {
                Ok(s) => format!("the attempt process ended with {s}"),
                Err(e) => format!("waiting for the attempt process: {e}"),
            };
            let last = String::from_utf8_lossy(&log[log.len().saturating_sub(400)..]).trim().to_owned();
            let message = if last.is_empty() { how } else { format!("{how}: {last}") };
            AttemptOutcome::Failed { message, retryable: true }
        }
    };
    (Report::Outcome(outcome), log)
}

/// Kills the attempt process, still running (so its id still names its
/// group), and every process of its group: what it started (a streaming
/// command) must not outlive it.
async fn kill_group(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        // The group may be gone already (ESRCH): nothing left to kill.
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    let _ = child.kill().await;
}
