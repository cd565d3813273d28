//! The `MapReduceJob` operator (`quern operator`): each resource becomes a
//! job on the coordinator, and the job's progress its status.
//!
//! - A new resource gets the finalizer `quern.dev/kill-job`, then its job
//!   is submitted (over gRPC, as `quern submit` does) and its id written to
//!   the status. After a crash between the two, the job is found again by
//!   its output (the coordinator allows one job per output).
//! - While the job runs, the status follows it every 2 seconds: phase,
//!   progress, counters, output, conditions, observed generation.
//! - A deleted resource's job is killed, then the finalizer removed.
//! - Every write carries the `resourceVersion` the operator read: a write
//!   based on a stale read gets a 409 Conflict and is redone from a fresh
//!   one, so two replicas never overwrite each other. Only the replica
//!   holding the Lease runs the controller ([`crate::lease`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use quern_core::JobSpec;
use serde_json::json;

use crate::crd::{JobCondition, JobResourcePhase, MapReduceJob, MapReduceJobStatus, PhaseProgress};
use crate::lease::{Leadership, LeaseLock};

/// The finalizer that holds a deleted resource until its job is killed.
pub const FINALIZER: &str = "quern.dev/kill-job";

/// How often a running job's status is read again.
const FOLLOW: Duration = Duration::from_secs(2);

/// Why the coordinator did not do what the operator asked.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// It refused: a bad spec, an existing output, an unknown app.
    #[error("{0}")]
    Refused(String),
    /// No such job.
    #[error("no such job")]
    NotFound,
    /// It did not answer; a later try may work.
    #[error("{0}")]
    Unavailable(String),
}

/// A job as the coordinator reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobSnapshot {
    /// `pending`, `running`, `succeeded`, `failed` or `killed`.
    pub state: String,
    /// The map tasks.
    pub maps: PhaseProgress,
    /// The reduce tasks.
    pub reduces: PhaseProgress,
    /// Engine and app counters by name.
    pub counters: BTreeMap<String, u64>,
    /// Where its output goes.
    pub output: String,
    /// Why it failed.
    pub error: String,
}

/// What the operator needs of a coordinator.
#[async_trait]
pub trait JobService: Send + Sync + 'static {
    /// Submits a job; answers its id.
    async fn submit(&self, spec: &JobSpec, priority: i32) -> Result<u64, CoordinatorError>;
    /// A job now.
    async fn job(&self, id: u64) -> Result<JobSnapshot, CoordinatorError>;
    /// The newest job writing `output`, submitted at or after
    /// `submitted_after_ms`, if any.
    async fn find(&self, output: &str, submitted_after_ms: i64) -> Result<Option<u64>, CoordinatorError>;
    /// Kills a job (one that has ended is no error).
    async fn kill(&self, id: u64) -> Result<(), CoordinatorError>;
}

/// Why a reconciliation did not finish (it is tried again).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The API server refused or did not answer (a 409 is a stale read).
    #[error("the API server: {0}")]
    Kube(#[from] kube::Error),
    /// The coordinator did not answer.
    #[error("the coordinator: {0}")]
    Coordinator(#[from] CoordinatorError),
}

struct Context {
    client: kube::Client,
    jobs: Arc<dyn JobService>,
}

/// The status a resource should have for its job as `job` reports it.
pub fn status_for(
    job: &JobSnapshot,
    id: u64,
    generation: Option<i64>,
    previous: &MapReduceJobStatus,
    now: &str,
) -> MapReduceJobStatus {
    let phase = match job.state.as_str() {
        "succeeded" => JobResourcePhase::Succeeded,
        "failed" => JobResourcePhase::Failed,
        "killed" => JobResourcePhase::Killed,
        "running" => JobResourcePhase::Running,
        _ => JobResourcePhase::Pending,
    };
    let progress = match phase {
        JobResourcePhase::Succeeded => "done".to_owned(),
        _ if job.maps.succeeded < job.maps.total || job.reduces.total == 0 => {
            format!("maps {}/{}", job.maps.succeeded, job.maps.total)
        }
        _ => format!("reduces {}/{}", job.reduces.succeeded, job.reduces.total),
    };
    let mut conditions = previous.conditions.clone();
    set_condition(&mut conditions, "Submitted", "True", "Submitted", &format!("job {id}"), generation, now);
    match phase {
        JobResourcePhase::Succeeded => {
            set_condition(&mut conditions, "Complete", "True", "Succeeded", "the output is committed", generation, now)
        }
        JobResourcePhase::Failed => {
            set_condition(&mut conditions, "Failed", "True", "JobFailed", &job.error, generation, now)
        }
        JobResourcePhase::Killed => {
            set_condition(&mut conditions, "Failed", "True", "Killed", "the job was killed", generation, now)
        }
        _ => {}
    }
    MapReduceJobStatus {
        phase: Some(phase),
        job_id: Some(id),
        progress: Some(progress),
        maps: Some(job.maps),
        reduces: Some(job.reduces),
        counters: job.counters.clone(),
        output: (phase == JobResourcePhase::Succeeded).then(|| job.output.clone()),
        message: (!job.error.is_empty()).then(|| job.error.clone()),
        conditions,
        observed_generation: generation,
    }
}

/// Sets a condition, keeping its transition time while its status stays.
fn set_condition(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &str,
) {
    let next = JobCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_transition_time: now.to_owned(),
        observed_generation: generation,
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) if c.status == status => {
            c.reason = next.reason;
            c.message = next.message;
            c.observed_generation = generation;
        }
        Some(c) => *c = next,
        None => conditions.push(next),
    }
}

fn failed(
    previous: &MapReduceJobStatus,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &str,
) -> MapReduceJobStatus {
    let mut status = previous.clone();
    status.phase = Some(JobResourcePhase::Failed);
    status.message = Some(message.to_owned());
    status.observed_generation = generation;
    set_condition(&mut status.conditions, "Failed", "True", reason, message, generation, now);
    status
}

async fn patch_status(
    api: &Api<MapReduceJob>,
    job: &MapReduceJob,
    status: &MapReduceJobStatus,
) -> Result<(), kube::Error> {
    let patch = json!({
        "metadata": {"resourceVersion": job.resource_version()},
        "status": status,
    });
    api.patch_status(&job.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

async fn set_finalizers(
    api: &Api<MapReduceJob>,
    job: &MapReduceJob,
    finalizers: Vec<String>,
) -> Result<(), kube::Error> {
    let patch = json!({"metadata": {"resourceVersion": job.resource_version(), "finalizers": finalizers}});
    api.patch(&job.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// One pass over one resource.
async fn reconcile(job: Arc<MapReduceJob>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let namespace = job.namespace().unwrap_or_default();
    let api: Api<MapReduceJob> = Api::namespaced(ctx.client.clone(), &namespace);
    let now = Timestamp::now().to_string();
    let generation = job.meta().generation;
    let status = job.status.clone().unwrap_or_default();
    let final_phase = status.phase.is_some_and(JobResourcePhase::is_final);

    if job.meta().deletion_timestamp.is_some() {
        if let (Some(id), false) = (status.job_id, final_phase) {
            match ctx.jobs.kill(id).await {
                Ok(()) | Err(CoordinatorError::NotFound) => {
                    tracing::info!(resource = %job.name_any(), job = id, "killed")
                }
                Err(e) => return Err(e.into()),
            }
        }
        let rest: Vec<String> = job.finalizers().iter().filter(|f| *f != FINALIZER).cloned().collect();
        if rest.len() != job.finalizers().len() {
            set_finalizers(&api, &job, rest).await?;
        }
        return Ok(Action::await_change());
    }
    if !job.finalizers().iter().any(|f| f == FINALIZER) {
        let mut all = job.finalizers().to_vec();
        all.push(FINALIZER.to_owned());
        set_finalizers(&api, &job, all).await?;
        // The change comes back as an event.
        return Ok(Action::await_change());
    }
    if final_phase {
        return Ok(Action::await_change());
    }
    let id = match status.job_id {
        Some(id) => id,
        None => {
            let spec = match job.spec.to_job_spec() {
                Ok(spec) => spec,
                Err(e) => {
                    patch_status(&api, &job, &failed(&status, "InvalidSpec", &e.to_string(), generation, &now)).await?;
                    return Ok(Action::await_change());
                }
            };
            let created_ms = job.meta().creation_timestamp.as_ref().map_or(0, |t| t.0.as_millisecond());
            // A job submitted for this resource before a crash is adopted.
            let found = ctx.jobs.find(&spec.output, created_ms.saturating_sub(1_000)).await?;
            let id = match found {
                Some(id) => id,
                None => match ctx.jobs.submit(&spec, job.spec.priority).await {
                    Ok(id) => id,
                    Err(CoordinatorError::Refused(why)) => {
                        patch_status(&api, &job, &failed(&status, "SubmitRefused", &why, generation, &now)).await?;
                        return Ok(Action::await_change());
                    }
                    Err(e) => return Err(e.into()),
                },
            };
            tracing::info!(resource = %job.name_any(), job = id, "submitted");
            let mut next = status.clone();
            next.job_id = Some(id);
            next.phase = Some(JobResourcePhase::Pending);
            next.observed_generation = generation;
            set_condition(
                &mut next.conditions,
                "Submitted",
                "True",
                "Submitted",
                &format!("job {id}"),
                generation,
                &now,
            );
            patch_status(&api, &job, &next).await?;
            return Ok(Action::requeue(Duration::from_millis(500)));
        }
    };
    let snapshot = match ctx.jobs.job(id).await {
        Ok(s) => s,
        Err(CoordinatorError::NotFound) => {
            let why = format!("the coordinator has no job {id} (was its state store replaced?)");
            patch_status(&api, &job, &failed(&status, "JobMissing", &why, generation, &now)).await?;
            return Ok(Action::await_change());
        }
        Err(e) => return Err(e.into()),
    };
    let next = status_for(&snapshot, id, generation, &status, &now);
    if next != status {
        patch_status(&api, &job, &next).await?;
    }
    Ok(if next.phase.is_some_and(JobResourcePhase::is_final) {
        Action::await_change()
    } else {
        Action::requeue(FOLLOW)
    })
}

fn error_policy(job: Arc<MapReduceJob>, error: &ReconcileError, _ctx: Arc<Context>) -> Action {
    tracing::warn!(resource = %job.name_any(), "{error}; again in 1 s");
    Action::requeue(Duration::from_secs(1))
}

/// Runs the operator in `namespace` until `shutdown`: holds the Lease
/// `lease_name` (renewed every 5 s, held 15 s) and runs the controller
/// while it leads.
pub async fn run(
    client: kube::Client,
    namespace: &str,
    jobs: Arc<dyn JobService>,
    lease_name: &str,
    identity: &str,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let lock = LeaseLock::new(Api::namespaced(client.clone(), namespace), lease_name, identity, 15);
    let resources: Api<MapReduceJob> = Api::namespaced(client.clone(), namespace);
    let ctx = Arc::new(Context { client, jobs });
    let mut controller: Option<tokio::task::JoinHandle<()>> = None;
    let mut renew = tokio::time::interval(Duration::from_secs(5));
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = renew.tick() => {}
        }
        let leading = match lock.try_acquire_or_renew(Timestamp::now()).await {
            Ok(Leadership::Leading) => true,
            Ok(Leadership::Following { holder }) => {
                tracing::debug!(%holder, "following");
                false
            }
            Err(e) => {
                tracing::warn!("renewing the lease {lease_name}: {e}");
                false
            }
        };
        match (leading, controller.as_ref().is_some_and(|c| !c.is_finished())) {
            (true, false) => {
                tracing::info!(identity = %lock.identity(), "leading: reconciling MapReduceJobs in {namespace}");
                let ctx = ctx.clone();
                let resources = resources.clone();
                controller = Some(tokio::spawn(async move {
                    Controller::new(resources, watcher::Config::default())
                        .run(reconcile, error_policy, ctx)
                        .for_each(|_| std::future::ready(()))
                        .await;
                }));
            }
            (false, true) => {
                tracing::warn!("lost the lease: stopping the controller");
                if let Some(c) = controller.take() {
                    c.abort();
                }
            }
            _ => {}
        }
    }
    if let Some(c) = controller.take() {
        c.abort();
    }
}

/// [`run`] with a client for the cluster (in-cluster, or the kubeconfig),
/// in `namespace` or the client's default one.
pub async fn serve(
    namespace: Option<String>,
    jobs: Arc<dyn JobService>,
    lease_name: &str,
    identity: &str,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), crate::SetupError> {
    let client = kube::Client::try_default().await.map_err(|e| crate::SetupError::Connect(e.to_string()))?;
    let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_owned());
    run(client, &namespace, jobs, lease_name, identity, shutdown).await;
    Ok(())
}
