//! The launcher's loop: every second, the cluster's demand through the
//! [`Autoscaler`] into launches and removals on the platform; what the
//! platform reports back into the coordinator's decisions; an admin's
//! `quern workers add` and `remove` in between.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use quern_core::WorkerId;
use tokio::sync::{mpsc, oneshot};

use super::{Autoscaler, LaunchError, LaunchEvent, LaunchReason, ScalePlan, ScalePolicy, WorkerLauncher};
use crate::error::Error;
use crate::handle::{CoordinatorHandle, now_ms};

/// How often the loop looks at the demand.
const TICK: Duration = Duration::from_secs(1);

/// The handle's way to the launcher loop: an admin's requests.
#[derive(Clone)]
pub struct LaunchControl {
    requests: mpsc::Sender<Request>,
    describe: Arc<str>,
}

/// The loop's end of [`LaunchControl`].
pub struct LaunchRequests(mpsc::Receiver<Request>);

enum Request {
    Add { count: u32, reply: oneshot::Sender<Result<Vec<WorkerId>, Error>> },
    Remove { worker: WorkerId, reply: oneshot::Sender<Result<(), Error>> },
}

impl LaunchControl {
    /// A control and the requests it sends, for a launcher described as
    /// `describe`.
    pub fn new(describe: String) -> (LaunchControl, LaunchRequests) {
        let (tx, rx) = mpsc::channel(16);
        (LaunchControl { requests: tx, describe: describe.into() }, LaunchRequests(rx))
    }

    /// What the launcher launches on.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Launches `count` workers now (within `--max-workers`), kept until
    /// removed by hand; answers their ids.
    pub async fn add(&self, count: u32) -> Result<Vec<WorkerId>, Error> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Add { count, reply }).await?;
        answer.await.map_err(|_| stopped())?
    }

    /// Drains a launched worker and removes it (its running attempts may
    /// finish within the platform's grace period).
    pub async fn remove(&self, worker: WorkerId) -> Result<(), Error> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Remove { worker, reply }).await?;
        answer.await.map_err(|_| stopped())?
    }

    async fn send(&self, request: Request) -> Result<(), Error> {
        self.requests.send(request).await.map_err(|_| stopped())
    }
}

fn stopped() -> Error {
    Error::Unavailable("the worker launcher has stopped".to_owned())
}

fn launch_error(e: LaunchError) -> Error {
    match e {
        LaunchError::Refused(m) => Error::Refused(m),
        LaunchError::Unavailable(m) => Error::Unavailable(m),
    }
}

/// Runs the launcher until `shutdown`: adopts the workers it finds, follows
/// them, and launches and removes workers as the demand and the admins ask.
/// Launched workers are left running at shutdown (a restarted coordinator
/// adopts them).
pub async fn run_launcher(
    handle: CoordinatorHandle,
    launcher: Arc<dyn WorkerLauncher>,
    policy: ScalePolicy,
    requests: LaunchRequests,
    shutdown: impl Future<Output = ()>,
) {
    let mut requests = requests.0;
    let mut scaler = Autoscaler::new(policy);
    tracing::info!(
        launcher = %launcher.describe(),
        min = policy.min,
        max = policy.max,
        "launching workers on demand"
    );
    match launcher.existing().await {
        Ok(found) => {
            for id in found {
                tracing::info!(worker = %id, "adopting a worker launched before this start");
                scaler.adopt(id, now_ms());
            }
        }
        Err(e) => tracing::warn!("listing the workers launched before: {e}"),
    }
    let (events_tx, mut events) = mpsc::channel(256);
    let follower = {
        let launcher = launcher.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = launcher.follow(events_tx.clone()).await {
                    tracing::warn!("following the launched workers: {e}; again in 1 s");
                }
                if events_tx.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let mut reported: HashSet<(WorkerId, String)> = HashSet::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {
                let demand = match handle.launch_demand().await {
                    Ok(demand) => demand,
                    Err(e) => {
                        tracing::warn!("reading the demand for workers: {e}");
                        continue;
                    }
                };
                let plan = scaler.plan(&demand, now_ms());
                carry_out(&handle, launcher.as_ref(), &mut scaler, plan).await;
            }
            Some(event) = events.recv() => {
                on_event(&handle, &mut scaler, &mut reported, event).await;
            }
            Some(request) = requests.recv() => match request {
                Request::Add { count, reply } => {
                    let n = scaler.add_by_hand(count);
                    let mut ids = Vec::new();
                    let mut error = None;
                    for _ in 0..n {
                        match launcher.launch(LaunchReason::ByHand).await {
                            Ok(id) => {
                                tracing::info!(worker = %id, "launched a worker by hand");
                                scaler.launched_ok(id.clone(), LaunchReason::ByHand, now_ms());
                                ids.push(id);
                            }
                            Err(e) => {
                                scaler.launch_failed(now_ms());
                                error = Some(e);
                            }
                        }
                    }
                    let answer = match error {
                        Some(e) if ids.is_empty() => Err(launch_error(e)),
                        _ if n < count && ids.is_empty() => Err(Error::Refused(format!(
                            "already at --max-workers {}: no worker launched",
                            scaler.policy().max
                        ))),
                        _ => Ok(ids),
                    };
                    let _ = reply.send(answer);
                }
                Request::Remove { worker, reply } => {
                    let answer = if !scaler.launched().contains_key(&worker) {
                        Err(Error::Refused(format!(
                            "worker {worker} was not launched by this coordinator ({}): \
                             drain or deregister it instead",
                            launcher.describe()
                        )))
                    } else {
                        // No new work for it, whether or not it registered.
                        if let Err(e) = handle.drain_worker(worker.as_str()).await
                            && !matches!(e, Error::NoSuchWorker(_))
                        {
                            tracing::warn!(worker = %worker, "draining before removal: {e}");
                        }
                        scaler.retire(&worker);
                        launcher.remove(&worker).await.map_err(launch_error)
                    };
                    let _ = reply.send(answer);
                }
            },
        }
    }
    follower.abort();
}

async fn carry_out(
    handle: &CoordinatorHandle,
    launcher: &dyn WorkerLauncher,
    scaler: &mut Autoscaler,
    plan: ScalePlan,
) {
    for id in &plan.timed_out {
        tracing::warn!(worker = %id, "the launched worker did not register in time: removing it");
    }
    for id in plan.retire {
        if !plan.timed_out.contains(&id) {
            tracing::info!(worker = %id, "removing an idle launched worker");
            if let Err(e) = handle.drain_worker(id.as_str()).await {
                tracing::debug!(worker = %id, "draining before removal: {e}");
            }
        }
        if let Err(e) = launcher.remove(&id).await {
            tracing::warn!(worker = %id, "removing a launched worker: {e}");
        }
    }
    for for_job in plan.launch {
        let reason = LaunchReason::Demand(for_job);
        match launcher.launch(reason).await {
            Ok(id) => {
                tracing::info!(worker = %id, job = ?for_job.map(|j| j.0), "launched a worker for queued work");
                scaler.launched_ok(id, reason, now_ms());
            }
            Err(e) => {
                scaler.launch_failed(now_ms());
                tracing::warn!(
                    "launching a worker: {e}; next try after {} ms",
                    scaler.backoff_until_ms().map_or(0, |t| t - now_ms())
                );
                if let Some(job) = for_job {
                    let problem = format!("launching a worker for this job failed: {e}");
                    if let Err(e) = handle.note_job_event(job, "LaunchFailed", &problem).await {
                        tracing::warn!("recording a launch failure: {e}");
                    }
                }
            }
        }
    }
}

async fn on_event(
    handle: &CoordinatorHandle,
    scaler: &mut Autoscaler,
    reported: &mut HashSet<(WorkerId, String)>,
    event: LaunchEvent,
) {
    match event {
        LaunchEvent::Waiting { worker, reason, message } => {
            let Some(launched) = scaler.launched().get(&worker) else { return };
            if !reported.insert((worker.clone(), reason.clone())) {
                return;
            }
            tracing::warn!(worker = %worker, "launched worker waiting: {reason}: {message}");
            if let LaunchReason::Demand(Some(job)) = launched.reason {
                let text = format!("worker {worker}, launched for this job, cannot start: {reason}: {message}");
                if let Err(e) = handle.note_job_event(job, &reason, &text).await {
                    tracing::warn!("recording a launch problem: {e}");
                }
            }
        }
        LaunchEvent::Ended { worker, reason, message } => {
            reported.retain(|(w, _)| *w != worker);
            let Some(launched) = scaler.gone(&worker, now_ms()) else { return };
            let why = if message.is_empty() { reason.clone() } else { format!("{reason}: {message}") };
            if launched.retiring {
                tracing::info!(worker = %worker, "a removed worker ended ({why})");
            } else {
                tracing::warn!(worker = %worker, "a launched worker ended: {why}");
            }
            let for_job = match launched.reason {
                LaunchReason::Demand(job) => job,
                LaunchReason::ByHand => None,
            };
            if let Err(e) = handle.worker_ended(&worker, &why, for_job).await {
                tracing::warn!(worker = %worker, "recording a launched worker's end: {e}");
            }
        }
    }
}
