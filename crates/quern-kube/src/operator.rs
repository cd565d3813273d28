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

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, Request, Response};
    use kube::client::Body;
    use std::sync::Mutex;

    /// A coordinator that records what it was asked.
    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<String>>,
        state: String,
    }

    #[async_trait]
    impl JobService for Recorder {
        async fn submit(&self, spec: &JobSpec, priority: i32) -> Result<u64, CoordinatorError> {
            self.calls.lock().expect("calls").push(format!("submit {} {priority}", spec.output));
            Ok(9)
        }
        async fn job(&self, id: u64) -> Result<JobSnapshot, CoordinatorError> {
            self.calls.lock().expect("calls").push(format!("job {id}"));
            Ok(JobSnapshot { state: self.state.clone(), ..Default::default() })
        }
        async fn find(&self, _output: &str, _after: i64) -> Result<Option<u64>, CoordinatorError> {
            Ok(None)
        }
        async fn kill(&self, id: u64) -> Result<(), CoordinatorError> {
            self.calls.lock().expect("calls").push(format!("kill {id}"));
            Ok(())
        }
    }

    fn resource(extra: serde_json::Value) -> MapReduceJob {
        let mut v = json!({
            "apiVersion": "quern.dev/v1alpha1", "kind": "MapReduceJob",
            "metadata": {"name": "wc", "namespace": "quern", "resourceVersion": "17", "generation": 1,
                         "finalizers": [FINALIZER]},
            "spec": {"app": "wordcount", "inputs": ["/data/books"], "output": "/data/out"}
        });
        if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in extra {
                if k == "metadata" {
                    for (mk, mx) in x.as_object().into_iter().flatten() {
                        v["metadata"][mk] = mx.clone();
                    }
                } else {
                    v.insert(k.clone(), x.clone());
                }
            }
        }
        serde_json::from_value(v).expect("a MapReduceJob")
    }

    async fn body(request: Request<Body>) -> serde_json::Value {
        serde_json::from_slice(&request.into_body().collect_bytes().await.expect("body")).expect("json")
    }

    #[tokio::test]
    async fn a_new_resource_is_submitted_and_its_status_patched_with_the_version_read() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let jobs = Arc::new(Recorder::default());
        let ctx = Arc::new(Context { client: kube::Client::new(service, "quern"), jobs: jobs.clone() });
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("a status patch");
            assert_eq!(request.method(), Method::PATCH);
            assert_eq!(request.uri().path(), "/apis/quern.dev/v1alpha1/namespaces/quern/mapreducejobs/wc/status");
            let kind = request.headers()["content-type"].to_str().expect("ascii").to_owned();
            assert_eq!(kind, "application/merge-patch+json");
            let patch = body(request).await;
            assert_eq!(patch["metadata"]["resourceVersion"], "17", "the precondition");
            assert_eq!(patch["status"]["jobId"], 9);
            assert_eq!(patch["status"]["phase"], "Pending");
            assert_eq!(patch["status"]["observedGeneration"], 1);
            let answer = serde_json::to_vec(&resource(json!({}))).expect("json");
            send.send_response(Response::builder().status(200).body(Body::from(answer)).expect("ok"));
        });
        reconcile(Arc::new(resource(json!({}))), ctx).await.expect("reconciled");
        server.await.expect("server");
        assert_eq!(*jobs.calls.lock().expect("calls"), ["submit /data/out 0"]);
    }

    #[tokio::test]
    async fn a_deleted_resource_has_its_job_killed_then_its_finalizer_removed() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let jobs = Arc::new(Recorder::default());
        let ctx = Arc::new(Context { client: kube::Client::new(service, "quern"), jobs: jobs.clone() });
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("a finalizer patch");
            assert_eq!(request.method(), Method::PATCH);
            assert_eq!(request.uri().path(), "/apis/quern.dev/v1alpha1/namespaces/quern/mapreducejobs/wc");
            let patch = body(request).await;
            assert_eq!(patch["metadata"]["resourceVersion"], "17");
            assert_eq!(patch["metadata"]["finalizers"], json!([]));
            let answer = serde_json::to_vec(&resource(json!({}))).expect("json");
            send.send_response(Response::builder().status(200).body(Body::from(answer)).expect("ok"));
        });
        let deleted = resource(json!({
            "metadata": {"deletionTimestamp": "2026-11-26T12:00:00Z"},
            "status": {"jobId": 9, "phase": "Running"}
        }));
        reconcile(Arc::new(deleted), ctx).await.expect("reconciled");
        server.await.expect("server");
        assert_eq!(*jobs.calls.lock().expect("calls"), ["kill 9"]);
    }

    #[test]
    fn status_follows_the_job_and_keeps_condition_times_while_they_hold() {
        let running = JobSnapshot {
            state: "running".into(),
            maps: PhaseProgress { total: 10, succeeded: 3, running: 2 },
            ..Default::default()
        };
        let first = status_for(&running, 4, Some(1), &MapReduceJobStatus::default(), "t1");
        assert_eq!(first.phase, Some(JobResourcePhase::Running));
        assert_eq!(first.progress.as_deref(), Some("maps 3/10"));
        let again = status_for(&running, 4, Some(1), &first, "t2");
        assert_eq!(again, first, "nothing changed, nothing to write");
        let done = JobSnapshot { state: "succeeded".into(), output: "/out".into(), ..running };
        let last = status_for(&done, 4, Some(1), &again, "t3");
        assert_eq!(last.output.as_deref(), Some("/out"));
        let submitted = last.conditions.iter().find(|c| c.type_ == "Submitted").expect("submitted");
        assert_eq!(submitted.last_transition_time, "t1");
        let complete = last.conditions.iter().find(|c| c.type_ == "Complete").expect("complete");
        assert_eq!((complete.status.as_str(), complete.last_transition_time.as_str()), ("True", "t3"));
    }
}
