//! The worker: registers with the coordinator, heartbeats, pulls attempts
//! when it has free slots, runs each in a child process, reports how it
//! ended, and serves its map outputs to reduce attempts on other workers.
//! It also plans submitted jobs the coordinator hands it (in a child
//! process too: planning builds the app, which is user code).
//!
//! # Overview
//! - [`run`]: the worker, until a shutdown future resolves (then it stops
//!   pulling, lets running attempts finish for [`WorkerConfig::drain_timeout`],
//!   cancels the rest and reports them) or the coordinator has been
//!   unreachable for [`WorkerConfig::coordinator_timeout`].
//! - [`attempt_process_main`]: the child side: what `quern task` runs.
//!
//! # Invariants
//! - User code never runs in the worker process: a crash ends one attempt.
//! - Map outputs stay on this worker until the coordinator says their job
//!   ended; the shuffle service serves files under the work directory only.

mod attempt;
mod code;

pub use code::CodeCache;
mod jobs;
mod plan;
pub mod protocol;
mod shuffle;

use std::collections::HashMap;
use std::ffi::OsString;
use std::future::Future;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quern_core::{App, AttemptId, JobId, JobSpec, TaskKind};
use quern_engine::attempt::{AttemptOutcome, AttemptProgress, AttemptRequest, run_attempt};
use quern_proto as pb;
use quern_storage::Storage;
use tokio::sync::{mpsc, watch};
use tonic::transport::{Channel, Endpoint};

use attempt::{AttemptContext, ProgressMap, Report};

/// How to run a worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The coordinator, as `http://host:port`.
    pub coordinator: String,
    /// The cluster token.
    pub token: String,
    /// Attempts run at once.
    pub slots: u32,
    /// Scratch space: map outputs, fetched segments, attempt logs.
    pub work_dir: PathBuf,
    /// Where the shuffle service listens (port 0: any).
    pub listen: SocketAddr,
    /// The host name other workers reach this one by (default: the listen
    /// address, or the machine's host name when listening on all
    /// interfaces).
    pub advertise_host: Option<String>,
    /// This worker's id (default: host, process id and start time).
    pub worker_id: Option<String>,
    /// The apps this worker can run, with their help and parameters.
    pub apps: Vec<quern_core::AppInfo>,
    /// The build version, reported at registration.
    pub version: String,
    /// Give up (and exit) when the coordinator has been unreachable this long.
    pub coordinator_timeout: Duration,
    /// On shutdown, how long running attempts may take to finish.
    pub drain_timeout: Duration,
    /// With a free slot, how often to poll when no nudge came (the
    /// fallback while the coordinator's nudge stream is down).
    pub poll_interval: Duration,
    /// How to start an attempt process (program and arguments); it gets an
    /// `AttemptRequest` on stdin and must follow [`protocol`].
    pub task_command: Vec<OsString>,
    /// How to start a planning process (program and arguments); it gets a
    /// `JobSpec` on stdin and writes a `quern_engine::PlanOutcome` on stdout.
    pub plan_command: Vec<OsString>,
    /// Where a reduce reads map outputs shuffled through storage (the
    /// job's `--shuffle`): the process's S3 configuration.
    pub storage: Storage,
}

/// Why a worker stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Setting up failed.
    #[error("{context}: {cause}")]
    Setup {
        /// What.
        context: String,
        /// Why (part of the message, not a `source()`, so it prints once).
        cause: std::io::Error,
    },
    /// The coordinator address is unusable.
    #[error("coordinator address {0}: {1}")]
    Address(String, String),
    /// The coordinator refused this worker.
    #[error("the coordinator refused this worker: {0}")]
    Refused(String),
    /// The coordinator was unreachable for longer than the timeout.
    #[error("the coordinator has been unreachable for {0:?}; exiting")]
    CoordinatorGone(Duration),
}

/// Client channels to other workers' shuffle services, one per address.
#[derive(Clone, Default)]
pub(crate) struct Channels {
    map: Arc<Mutex<HashMap<String, Channel>>>,
}

impl Channels {
    pub(crate) fn get(&self, address: &str) -> Result<Channel, String> {
        let mut map = self.map.lock().map_err(|_| "channel cache poisoned".to_owned())?;
        if let Some(c) = map.get(address) {
            return Ok(c.clone());
        }
        let channel = Endpoint::from_shared(address.to_owned())
            .map_err(|e| format!("bad shuffle address {address}: {e}"))?
            .connect_timeout(Duration::from_secs(3))
            .connect_lazy();
        map.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }
}

type CoordinatorClient = pb::coordinator_client::CoordinatorClient<
    tonic::service::interceptor::InterceptedService<Channel, pb::TokenAttach>,
>;

fn attempt_to(job: JobId, a: AttemptId) -> pb::AttemptRef {
    pb::AttemptRef::from((job, a))
}

struct Running {
    cancel: watch::Sender<bool>,
}

/// Runs a worker until `shutdown` resolves (a clean drain) or the
/// coordinator is gone for longer than the timeout (an error).
pub async fn run(config: WorkerConfig, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let setup = |context: &str| {
        let context = context.to_owned();
        move |cause| Error::Setup { context, cause }
    };
    std::fs::create_dir_all(&config.work_dir).map_err(setup("creating the work directory"))?;
    let root = std::fs::canonicalize(&config.work_dir).map_err(setup("resolving the work directory"))?;
    let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(setup("binding the shuffle port"))?;
    let local = listener.local_addr().map_err(setup("reading the shuffle address"))?;
    let host = config.advertise_host.clone().unwrap_or_else(|| {
        if local.ip().is_unspecified() {
            gethostname::gethostname().to_string_lossy().into_owned()
        } else {
            local.ip().to_string()
        }
    });
    let shuffle_address = format!("http://{host}:{}", local.port());
    tracing::info!(listen = %local, advertised = %shuffle_address, "shuffle service listening");
    let worker_id = config.worker_id.clone().unwrap_or_else(|| {
        let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        format!("{host}-{}-{started}", std::process::id())
    });

    let shuffle = pb::shuffle_server::ShuffleServer::with_interceptor(
        shuffle::ShuffleService { root: root.clone() },
        pb::TokenCheck::new(&config.token).map_err(|e| Error::Refused(e.to_string()))?,
    );
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(shuffle)
            // Segments and their acknowledgements are small messages: without
            // TCP_NODELAY each waits for the peer's delayed ACK.
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))),
    );

    let token = pb::TokenAttach::new(&config.token).map_err(|s| Error::Refused(s.message().to_owned()))?;
    let channel = Endpoint::from_shared(config.coordinator.clone())
        .map_err(|e| Error::Address(config.coordinator.clone(), e.to_string()))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(30))
        .connect_lazy();
    let mut client = pb::coordinator_client::CoordinatorClient::with_interceptor(channel, token.clone())
        .max_decoding_message_size(pb::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(pb::MAX_MESSAGE_BYTES);
    let registration = pb::RegisterWorkerRequest {
        worker_id: worker_id.clone(),
        host: host.clone(),
        shuffle_address: shuffle_address.clone(),
        slots: config.slots,
        apps: config.apps.iter().map(|a| a.name.clone()).collect(),
        version: config.version.clone(),
        held_jobs: Vec::new(),
        app_descriptions: config.apps.iter().map(pb::AppDescription::from).collect(),
    };
    let mut last_contact = Instant::now();
    let interval = register(&mut client, &registration, &root, &mut last_contact, config.coordinator_timeout).await?;
    tracing::info!(worker = %worker_id, shuffle = %shuffle_address, slots = config.slots, "worker registered");

    let code = code::CodeCache::new(root.join("code"));
    let ctx = Arc::new(AttemptContext {
        worker_id: worker_id.clone(),
        work_dir: root.clone(),
        task_command: config.task_command.clone(),
        token: token.clone(),
        progress: ProgressMap::default(),
        channels: Channels::default(),
        coordinator: client.clone(),
        jobs: jobs::JobCache::new(code.clone()),
        storage: config.storage.clone(),
    });
    let mut running: HashMap<(JobId, AttemptId), Running> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::channel::<((JobId, AttemptId), Report, Vec<u8>)>(64);
    let mut heartbeat = tokio::time::interval(interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Nudges ask for work as soon as it may exist; the timer is the
    // fallback for a worker whose nudge stream is down.
    let (nudge_tx, mut nudges) = mpsc::channel::<pb::WorkNudge>(8);
    let watcher = tokio::spawn(watch_work(client.clone(), worker_id.clone(), nudge_tx));
    let mut poll = tokio::time::interval(config.poll_interval.max(Duration::from_millis(10)));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let mut drain_deadline: Option<Instant> = None;
    let mut forgotten: Vec<JobId> = Vec::new();

    let result = loop {
        if let Some(deadline) = drain_deadline {
            if running.is_empty() {
                break Ok(());
            }
            if Instant::now() > deadline {
                for r in running.values() {
                    let _ = r.cancel.send(true);
                }
            }
        }
        tokio::select! {
            _ = &mut shutdown, if drain_deadline.is_none() => {
                tracing::info!(running = running.len(), "shutting down: finishing running attempts");
                drain_deadline = Some(Instant::now() + config.drain_timeout);
            }
            _ = heartbeat.tick() => {
                let snapshot: Vec<pb::AttemptProgress> = {
                    let progress = ctx.progress.lock().map(|p| p.clone()).unwrap_or_default();
                    running.keys().map(|&(job, a)| {
                        let (fraction, records) = progress.get(&(job, a)).copied().unwrap_or((0.0, 0));
                        pb::AttemptProgress { attempt: Some(attempt_to(job, a)), fraction, records }
                    }).collect()
                };
                let request = pb::HeartbeatRequest { worker_id: worker_id.clone(), running: snapshot };
                match client.heartbeat(request).await {
                    Ok(resp) => {
                        last_contact = Instant::now();
                        let resp = resp.into_inner();
                        if resp.reregister {
                            tracing::warn!("the coordinator does not know this worker: registering again");
                            for r in running.values() {
                                let _ = r.cancel.send(true);
                            }
                            register(&mut client, &registration, &root, &mut last_contact, config.coordinator_timeout).await?;
                        }
                        for c in &resp.cancel {
                            if let Some((key, r)) = c.decode().ok().and_then(|k| running.get(&k).map(|r| (k, r))) {
                                tracing::info!(job = %key.0, attempt = %key.1, "cancelling at the coordinator's request");
                                let _ = r.cancel.send(true);
                            }
                        }
                        for request in resp.plans {
                            tracing::info!(ticket = request.ticket, "planning a submitted job");
                            let command = config.plan_command.clone();
                            let mut client = client.clone();
                            let worker_id = worker_id.clone();
                            let code = code.clone();
                            tokio::spawn(async move {
                                let outcome = plan::plan(&command, &request.spec_json, &code, &client).await;
                                let report = plan::report(&worker_id, request.ticket, outcome);
                                // A lost answer is no harm: the submission
                                // waiting for it times out and creates nothing.
                                if let Err(status) = client.report_plan(report).await {
                                    tracing::warn!(ticket = request.ticket, "reporting a plan: {}", status.message());
                                }
                            });
                        }
                        forgotten.extend(resp.forget_jobs.into_iter().map(JobId));
                        forgotten.retain(|job| {
                            if running.keys().any(|(j, _)| j == job) {
                                return true;
                            }
                            let _ = std::fs::remove_dir_all(root.join("jobs").join(job.to_string()));
                            ctx.jobs.forget(*job);
                            false
                        });
                    }
                    Err(status) => {
                        if last_contact.elapsed() > config.coordinator_timeout {
                            break Err(Error::CoordinatorGone(config.coordinator_timeout));
                        }
                        tracing::warn!("heartbeat failed: {}", status.message());
                    }
                }
            }
            _ = poll.tick(), if drain_deadline.is_none() && (running.len() as u32) < config.slots => {
                let free = config.slots - running.len() as u32;
                match client.poll_task(pb::PollTaskRequest { worker_id: worker_id.clone(), free_slots: free }).await {
                    Ok(resp) => {
                        last_contact = Instant::now();
                        let resp = resp.into_inner();
                        if resp.reregister {
                            register(&mut client, &registration, &root, &mut last_contact, config.coordinator_timeout).await?;
                        }
                        for task in resp.tasks {
                            let key = match pb::attempt_from_wire(task.attempt.as_ref()) {
                                Ok(key) => key,
                                Err(e) => {
                                    tracing::error!("the coordinator sent a task with a bad attempt ({e}); ignoring it");
                                    continue;
                                }
                            };
                            tracing::info!(job = %key.0, attempt = %key.1, "attempt started");
                            let (cancel_tx, cancel_rx) = watch::channel(false);
                            running.insert(key, Running { cancel: cancel_tx });
                            let ctx = ctx.clone();
                            let done = done_tx.clone();
                            tokio::spawn(async move {
                                let (report, log) = attempt::run(ctx, key.0, key.1, task, cancel_rx).await;
                                let _ = done.send((key, report, log)).await;
                            });
                        }
                    }
                    Err(status) => {
                        if last_contact.elapsed() > config.coordinator_timeout {
                            break Err(Error::CoordinatorGone(config.coordinator_timeout));
                        }
                        tracing::debug!("poll failed: {}", status.message());
                    }
                }
            }
            Some(nudge) = nudges.recv() => {
                if nudge.poll {
                    poll.reset_immediately();
                }
                if nudge.heartbeat {
                    heartbeat.reset_immediately();
                }
            }
            Some((key, report, log)) = done_rx.recv() => {
                running.remove(&key);
                if let Ok(mut p) = ctx.progress.lock() {
                    p.remove(&key);
                }
                let keep_output = matches!(&report, Report::Outcome(AttemptOutcome::Succeeded { map_output: Some(_), .. }));
                let committed = send_report(&mut client, &worker_id, key, report, log, &mut last_contact, config.coordinator_timeout).await?;
                if !(committed && keep_output) {
                    let dir = root.join("jobs").join(key.0.to_string()).join(format!("{}_{}", key.1.task, key.1.attempt));
                    let _ = tokio::fs::remove_dir_all(dir).await;
                }
                // A slot just freed: ask for work now, not at the next tick.
                poll.reset_immediately();
            }
        }
    };
    for r in running.values() {
        let _ = r.cancel.send(true);
    }
    server.abort();
    watcher.abort();
    result
}

/// Follows the coordinator's nudges (`WatchWork`) while the worker runs,
/// passing each to the worker's loop; a broken stream is opened again,
/// after a pause that grows to 5 s while it keeps failing.
async fn watch_work(mut client: CoordinatorClient, worker_id: String, nudges: mpsc::Sender<pb::WorkNudge>) {
    let first_pause = Duration::from_millis(100);
    let mut pause = first_pause;
    loop {
        match client.watch_work(pb::WatchWorkRequest { worker_id: worker_id.clone() }).await {
            Ok(stream) => {
                pause = first_pause;
                let mut stream = stream.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(nudge)) => {
                            if nudges.send(nudge).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(status) => {
                            tracing::debug!("the nudge stream broke: {}", status.message());
                            break;
                        }
                    }
                }
            }
            Err(status) => tracing::debug!("watching for nudges: {}", status.message()),
        }
        if nudges.is_closed() {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// The jobs whose data is in `root/jobs` (left from before a restart, or
/// from attempts of this run).
fn held_jobs(root: &Path) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(root.join("jobs")) else { return Vec::new() };
    let mut jobs: Vec<u64> = entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    jobs.sort_unstable();
    jobs
}

/// Registers (again), telling the coordinator which jobs' data this worker
/// holds, and deletes the data of those that ended meanwhile (a worker
/// that was down when its jobs ended was never told to).
async fn register(
    client: &mut CoordinatorClient,
    registration: &pb::RegisterWorkerRequest,
    root: &Path,
    last_contact: &mut Instant,
    timeout: Duration,
) -> Result<Duration, Error> {
    let mut backoff = Duration::from_millis(100);
    let registration = pb::RegisterWorkerRequest { held_jobs: held_jobs(root), ..registration.clone() };
    loop {
        match client.register_worker(registration.clone()).await {
            Ok(resp) => {
                *last_contact = Instant::now();
                let resp = resp.into_inner();
                for job in &resp.forget_jobs {
                    let dir = root.join("jobs").join(job.to_string());
                    match tokio::fs::remove_dir_all(&dir).await {
                        Ok(()) => {
                            tracing::info!(job, "removed the data of a job that ended while this worker was away")
                        }
                        Err(e) => tracing::warn!(job, "removing {}: {e}", dir.display()),
                    }
                }
                let ms = resp.heartbeat_interval_ms.max(100);
                return Ok(Duration::from_millis(u64::from(ms)));
            }
            // A bad token, a malformed registration, or a worker an admin
            // deregistered: retrying cannot help.
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::Unauthenticated
                        | tonic::Code::PermissionDenied
                        | tonic::Code::InvalidArgument
                        | tonic::Code::FailedPrecondition
                ) =>
            {
                return Err(Error::Refused(s.message().to_owned()));
            }
            Err(s) => {
                if last_contact.elapsed() > timeout {
                    return Err(Error::CoordinatorGone(timeout));
                }
                tracing::warn!("cannot reach the coordinator ({}); retrying in {backoff:?}", s.message());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Reports an attempt's end, retrying while the coordinator is away.
/// Returns whether the coordinator committed it.
async fn send_report(
    client: &mut CoordinatorClient,
    worker_id: &str,
    key: (JobId, AttemptId),
    report: Report,
    log: Vec<u8>,
    last_contact: &mut Instant,
    timeout: Duration,
) -> Result<bool, Error> {
    use pb::report_attempt_request::Outcome as O;
    let outcome = match report {
        Report::Outcome(AttemptOutcome::Succeeded { counters, map_output, output_digest }) => {
            O::Succeeded(pb::AttemptSucceeded {
                counters_json: serde_json::to_string(&counters).unwrap_or_default(),
                map_output_json: map_output.and_then(|m| serde_json::to_string(&m).ok()).unwrap_or_default(),
                output_digest: output_digest.unwrap_or_default(),
            })
        }
        Report::Outcome(AttemptOutcome::Failed { message, retryable }) => {
            O::Failed(pb::AttemptFailed { message, retryable })
        }
        Report::FetchFailed { maps, message } => O::FetchFailed(pb::FetchFailed {
            map_index: maps.first().copied().unwrap_or_default(),
            message,
            more_map_indexes: maps.get(1..).unwrap_or_default().to_vec(),
        }),
        Report::Cancelled => O::Cancelled(true),
    };
    let how = match &outcome {
        O::Succeeded(_) => "succeeded",
        O::Failed(_) => "failed",
        O::FetchFailed(_) => "fetch failed",
        O::Cancelled(_) => "cancelled",
    };
    tracing::info!(job = %key.0, attempt = %key.1, "attempt {how}");
    let request = pb::ReportAttemptRequest {
        worker_id: worker_id.to_owned(),
        attempt: Some(attempt_to(key.0, key.1)),
        outcome: Some(outcome),
        log,
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        match client.report_attempt(request.clone()).await {
            Ok(resp) => {
                *last_contact = Instant::now();
                return Ok(resp.into_inner().committed);
            }
            Err(s) if s.code() == tonic::Code::InvalidArgument => {
                tracing::error!("the coordinator rejected a report: {}", s.message());
                return Ok(false);
            }
            Err(s) => {
                if last_contact.elapsed() > timeout {
                    return Err(Error::CoordinatorGone(timeout));
                }
                tracing::warn!("reporting failed ({}); retrying", s.message());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// The attempt process: reads an [`AttemptRequest`] on stdin, builds the
/// app with `build`, runs the attempt, writes progress lines while it runs
/// and the outcome line last (see [`protocol`]). Inputs are read through
/// `storage` (the process's S3 configuration). Returns the exit code.
pub fn attempt_process_main(
    storage: &Storage,
    build: impl Fn(&JobSpec) -> Result<Arc<dyn App>, String>,
) -> std::process::ExitCode {
    let started = Instant::now();
    end_when_orphaned();
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("quern task: reading the request: {e}");
        return std::process::ExitCode::from(2);
    }
    let request: AttemptRequest = match serde_json::from_slice(&input) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("quern task: the request is not an attempt: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let outcome = match build(&request.spec) {
        Err(message) => AttemptOutcome::Failed { message, retryable: false },
        Ok(app) => {
            let progress = Arc::new(AttemptProgress::default());
            let total = match request.attempt.task.kind {
                TaskKind::Map => {
                    request.plan.splits.get(request.attempt.task.index as usize).map_or(1, |s| s.len().max(1))
                }
                TaskKind::Reduce => request.runs.iter().map(|r| r.segment.records).sum::<u64>().max(1),
            };
            // The reporter wakes every 200 ms, or at once when `stop` is
            // dropped: an attempt never waits for its reporter to finish a nap.
            let (stop, stopped) = std::sync::mpsc::channel::<()>();
            let reporter = {
                let progress = progress.clone();
                let kind = request.attempt.task.kind;
                std::thread::spawn(move || {
                    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                        stopped.recv_timeout(Duration::from_millis(200))
                    {
                        let records = progress.records.load(Ordering::Relaxed);
                        let done = match kind {
                            TaskKind::Map => progress.bytes_read.load(Ordering::Relaxed),
                            TaskKind::Reduce => records,
                        };
                        let line = protocol::progress_line((done as f64 / total as f64).min(1.0), records);
                        let mut out = std::io::stdout().lock();
                        let _ = writeln!(out, "{line}");
                        let _ = out.flush();
                    }
                })
            };
            let cancel = AtomicBool::new(false);
            let outcome = run_attempt(&request, &*app, storage, &progress, &cancel);
            drop(stop);
            let _ = reporter.join();
            outcome
        }
    };
    // For the attempt's log: why it failed, and where the time went. A log
    // that cannot be written is no reason to lose the outcome.
    let mut log = std::io::stderr().lock();
    if let AttemptOutcome::Failed { message, retryable } = &outcome {
        let how = if *retryable { "failed" } else { "failed (permanently)" };
        let _ = writeln!(log, "quern task: {} {how}: {message}", request.attempt);
    }
    let cpu = cpu_seconds().map_or_else(String::new, |c| format!(", {c:.2} s on CPU"));
    let _ = writeln!(log, "quern task: {} ended after {:.2} s{cpu}", request.attempt, started.elapsed().as_secs_f64());
    drop(log);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", protocol::outcome_line(&outcome));
    let _ = out.flush();
    std::process::ExitCode::SUCCESS
}

/// How often an attempt process looks whether its worker is still there.
const ORPHAN_CHECK: Duration = Duration::from_millis(200);

/// Ends this attempt process, and what it started, once the worker that
/// started it is gone (its parent changes: it was killed, or crashed). Such
/// a worker cannot kill its attempts' groups itself, and an orphaned
/// attempt would go on using CPU and disk for a task that runs again
/// elsewhere. The worker starts each attempt as the leader of a process
/// group of its own, with the streaming commands it starts in it: the whole
/// group is killed. (A process that leads no group of its own, run by hand,
/// ends alone.)
fn end_when_orphaned() {
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(ORPHAN_CHECK);
            if std::os::unix::process::parent_id() != parent {
                break;
            }
        }
        // Its log went with the worker, most likely: a failed write is no
        // reason not to stop (eprintln! would panic on it).
        let _ = writeln!(
            std::io::stderr(),
            "quern task: the worker that started this attempt (pid {parent}) is gone: stopping"
        );
        if nix::unistd::getpgrp() == nix::unistd::Pid::this() {
            // Kills this process too.
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
        }
        std::process::exit(3);
    });
}

/// This process's user plus system CPU time, where `/proc` tells it.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start at ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
