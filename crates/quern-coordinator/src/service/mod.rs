//! The gRPC face of the coordinator: converts protocol messages to domain
//! types at the door (a malformed request is refused with
//! INVALID_ARGUMENT, never a panic), calls the [`CoordinatorHandle`], and
//! converts its answer back. Every conversion is in `convert`.
//!
//! [`CallerCheck`] reads who calls from each request's token ([`Access`]);
//! worker RPCs then require the cluster token, and client RPCs apply the
//! caller's rights (a user sees and kills only their own jobs; another's
//! is NOT_FOUND, as on the REST API).

use std::sync::Arc;

use quern_core::{JobId, JobSpec};
use quern_proto as pb;
use tonic::{Request, Response, Status};

use crate::access::{Access, AuthError, Caller};
use crate::cluster::Outcome;
use crate::handle::{CoordinatorHandle, JobView, PlanAnswer};

mod convert;

use convert::{attempt_from, bad, parse_task};

/// The Coordinator service.
pub(crate) struct CoordinatorService {
    pub(crate) handle: CoordinatorHandle,
    pub(crate) access: Arc<Access>,
}

/// Who called, as [`CallerCheck`] found it: the caller, or why the token
/// was refused.
#[derive(Clone)]
struct Authenticated(Result<Caller, String>);

/// A server interceptor that records who calls in each request. It refuses
/// nothing itself: `Login` needs no token, and each RPC says whom it takes.
#[derive(Clone)]
pub(crate) struct CallerCheck(pub(crate) Arc<Access>);

impl tonic::service::Interceptor for CallerCheck {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let authorization = request.metadata().get("authorization").map(|v| v.as_bytes());
        let who = self.0.caller(authorization).map(|(caller, _)| caller).map_err(|e| match e {
            AuthError::Missing => "missing token (set --token or QUERN_TOKEN, or run quern login)".to_owned(),
            AuthError::Invalid | AuthError::Malformed => {
                "wrong token: neither the cluster token nor a valid login".to_owned()
            }
            other => other.to_string(),
        });
        request.extensions_mut().insert(Authenticated(who));
        Ok(request)
    }
}

/// The caller of `request` as its token says, or UNAUTHENTICATED.
fn token_caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    match request.extensions().get::<Authenticated>() {
        Some(Authenticated(Ok(caller))) => Ok(caller.clone()),
        Some(Authenticated(Err(why))) => Err(Status::unauthenticated(why.clone())),
        None => Err(Status::unauthenticated("missing token")),
    }
}

/// Refuses a worker RPC from anyone but the cluster token's holder.
fn worker<T>(request: &Request<T>) -> Result<(), Status> {
    match token_caller(request)? {
        Caller::ClusterToken => Ok(()),
        Caller::User { .. } => Err(Status::permission_denied("worker calls take the cluster token")),
    }
}

impl CoordinatorService {
    /// The caller of a client RPC, as the store has them now (a removed
    /// user's token is refused).
    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let caller = token_caller(request)?;
        self.access.current(&self.handle, caller).await.map_err(|e| match e {
            AuthError::State(e) => e.into(),
            other => Status::unauthenticated(other.to_string()),
        })
    }

    /// The job, if `caller` may see it: another user's job is as absent as
    /// one that does not exist.
    async fn visible(&self, caller: &Caller, id: JobId) -> Result<JobView, Status> {
        let job = self.handle.job(id).await?;
        if !caller.may_see(&job.owner) {
            return Err(crate::Error::NoSuchJob(id).into());
        }
        Ok(job)
    }
}

#[tonic::async_trait]
impl pb::coordinator_server::Coordinator for CoordinatorService {
    async fn register_worker(
        &self,
        request: Request<pb::RegisterWorkerRequest>,
    ) -> Result<Response<pb::RegisterWorkerResponse>, Status> {
        worker(&request)?;
        let registered = self.handle.register(request.into_inner().into()).await?;
        Ok(Response::new(pb::RegisterWorkerResponse {
            heartbeat_interval_ms: registered.heartbeat_interval_ms,
            forget_jobs: registered.forget_jobs.iter().map(|j| j.0).collect(),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        worker(&request)?;
        let r = request.into_inner();
        let progress = convert::progress_from(r.running)?;
        let answer = self.handle.heartbeat(&r.worker_id, &progress).await?;
        Ok(Response::new(answer.into()))
    }

    async fn report_plan(
        &self,
        request: Request<pb::ReportPlanRequest>,
    ) -> Result<Response<pb::ReportPlanResponse>, Status> {
        worker(&request)?;
        let r = request.into_inner();
        let answer = PlanAnswer::try_from(r.result)?;
        self.handle.report_plan(&r.worker_id, r.ticket, answer).await;
        Ok(Response::new(pb::ReportPlanResponse {}))
    }

    async fn get_job_plan(
        &self,
        request: Request<pb::GetJobPlanRequest>,
    ) -> Result<Response<pb::GetJobPlanResponse>, Status> {
        worker(&request)?;
        let (spec, plan) = self.handle.spec_and_plan(JobId(request.into_inner().job_id)).await?;
        Ok(Response::new(pb::GetJobPlanResponse { spec_json: spec.to_string(), plan_json: plan.to_string() }))
    }

    async fn poll_task(&self, request: Request<pb::PollTaskRequest>) -> Result<Response<pb::PollTaskResponse>, Status> {
        worker(&request)?;
        let r = request.into_inner();
        Ok(Response::new(match self.handle.poll(&r.worker_id, r.free_slots).await? {
            None => pb::PollTaskResponse { tasks: Vec::new(), reregister: true },
            Some(assignments) => {
                pb::PollTaskResponse { tasks: assignments.into_iter().map(Into::into).collect(), reregister: false }
            }
        }))
    }

    async fn report_attempt(
        &self,
        request: Request<pb::ReportAttemptRequest>,
    ) -> Result<Response<pb::ReportAttemptResponse>, Status> {
        worker(&request)?;
        let r = request.into_inner();
        let (job, attempt) = attempt_from(r.attempt.as_ref())?;
        let outcome = Outcome::try_from(r.outcome)?;
        let committed = self.handle.report(&r.worker_id, job, attempt, outcome, r.log).await?;
        Ok(Response::new(pb::ReportAttemptResponse { committed }))
    }

    async fn submit_job(
        &self,
        request: Request<pb::SubmitJobRequest>,
    ) -> Result<Response<pb::SubmitJobResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let spec: JobSpec = serde_json::from_str(&r.spec_json).map_err(|e| bad(format!("spec_json: {e}")))?;
        let job_id = self.handle.submit_as(spec, r.priority, caller.name()).await?;
        Ok(Response::new(pb::SubmitJobResponse { job_id: job_id.0 }))
    }

    async fn login(&self, request: Request<pb::LoginRequest>) -> Result<Response<pb::LoginResponse>, Status> {
        let r = request.into_inner();
        let signed = self.access.login(&self.handle, &r.username, &r.password).await.map_err(|e| match e {
            AuthError::LockedOut { .. } => Status::resource_exhausted(e.to_string()),
            AuthError::State(e) => e.into(),
            AuthError::Internal(_) => Status::internal(e.to_string()),
            _ => Status::unauthenticated(e.to_string()),
        })?;
        Ok(Response::new(pb::LoginResponse {
            token: signed.token,
            expires_at_ms: signed.expires_at_ms,
            role: signed.role.as_str().to_owned(),
        }))
    }

    async fn list_jobs(&self, request: Request<pb::ListJobsRequest>) -> Result<Response<pb::ListJobsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let mut jobs = self.handle.jobs().await?;
        jobs.retain(|j| caller.may_see(&j.owner));
        Ok(Response::new(pb::ListJobsResponse { jobs: jobs.into_iter().map(Into::into).collect() }))
    }

    async fn get_job(&self, request: Request<pb::GetJobRequest>) -> Result<Response<pb::JobStatus>, Status> {
        let caller = self.caller(&request).await?;
        let id = JobId(request.into_inner().job_id);
        Ok(Response::new(self.visible(&caller, id).await?.into()))
    }

    async fn kill_job(&self, request: Request<pb::KillJobRequest>) -> Result<Response<pb::KillJobResponse>, Status> {
        let caller = self.caller(&request).await?;
        let id = self.visible(&caller, JobId(request.into_inner().job_id)).await?.id;
        Ok(Response::new(pb::KillJobResponse { killed: self.handle.kill(id).await? }))
    }

    async fn list_workers(
        &self,
        request: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        self.caller(&request).await?;
        let workers = self.handle.workers().await?;
        Ok(Response::new(pb::ListWorkersResponse { workers: workers.into_iter().map(Into::into).collect() }))
    }

    async fn get_logs(&self, request: Request<pb::GetLogsRequest>) -> Result<Response<pb::GetLogsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let task = if r.task.is_empty() { None } else { Some(parse_task(&r.task)?) };
        let job = self.visible(&caller, JobId(r.job_id)).await?.id;
        let rows = self.handle.logs(job, task).await?;
        Ok(Response::new(pb::GetLogsResponse {
            attempts: rows.into_iter().map(|a| convert::attempt_log(job, a)).collect(),
        }))
    }
}
