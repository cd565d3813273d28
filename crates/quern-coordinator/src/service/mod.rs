//! The gRPC face of the coordinator: converts protocol messages to domain
//! types at the door (a malformed request is refused with
//! INVALID_ARGUMENT, never a panic), calls the [`CoordinatorHandle`], and
//! converts its answer back. Every conversion is in `convert`.

use quern_core::{JobId, JobSpec};
use quern_proto as pb;
use tonic::{Request, Response, Status};

use crate::cluster::Outcome;
use crate::handle::{CoordinatorHandle, PlanAnswer};

mod convert;

use convert::{attempt_from, bad, parse_task};

/// The Coordinator service.
pub(crate) struct CoordinatorService {
    pub(crate) handle: CoordinatorHandle,
}

#[tonic::async_trait]
impl pb::coordinator_server::Coordinator for CoordinatorService {
    async fn register_worker(
        &self,
        request: Request<pb::RegisterWorkerRequest>,
    ) -> Result<Response<pb::RegisterWorkerResponse>, Status> {
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
        let r = request.into_inner();
        let progress = convert::progress_from(r.running)?;
        let answer = self.handle.heartbeat(&r.worker_id, &progress).await?;
        Ok(Response::new(answer.into()))
    }

    async fn report_plan(
        &self,
        request: Request<pb::ReportPlanRequest>,
    ) -> Result<Response<pb::ReportPlanResponse>, Status> {
        let r = request.into_inner();
        let answer = PlanAnswer::try_from(r.result)?;
        self.handle.report_plan(&r.worker_id, r.ticket, answer).await;
        Ok(Response::new(pb::ReportPlanResponse {}))
    }

    async fn get_job_plan(
        &self,
        request: Request<pb::GetJobPlanRequest>,
    ) -> Result<Response<pb::GetJobPlanResponse>, Status> {
        let (spec, plan) = self.handle.spec_and_plan(JobId(request.into_inner().job_id)).await?;
        Ok(Response::new(pb::GetJobPlanResponse { spec_json: spec.to_string(), plan_json: plan.to_string() }))
    }

    async fn poll_task(&self, request: Request<pb::PollTaskRequest>) -> Result<Response<pb::PollTaskResponse>, Status> {
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
        let r = request.into_inner();
        let spec: JobSpec = serde_json::from_str(&r.spec_json).map_err(|e| bad(format!("spec_json: {e}")))?;
        let job_id = self.handle.submit(spec, r.priority).await?;
        Ok(Response::new(pb::SubmitJobResponse { job_id: job_id.0 }))
    }

    async fn list_jobs(&self, _: Request<pb::ListJobsRequest>) -> Result<Response<pb::ListJobsResponse>, Status> {
        let jobs = self.handle.jobs().await?;
        Ok(Response::new(pb::ListJobsResponse { jobs: jobs.into_iter().map(Into::into).collect() }))
    }

    async fn get_job(&self, request: Request<pb::GetJobRequest>) -> Result<Response<pb::JobStatus>, Status> {
        let id = JobId(request.into_inner().job_id);
        Ok(Response::new(self.handle.job(id).await?.into()))
    }

    async fn kill_job(&self, request: Request<pb::KillJobRequest>) -> Result<Response<pb::KillJobResponse>, Status> {
        let id = JobId(request.into_inner().job_id);
        Ok(Response::new(pb::KillJobResponse { killed: self.handle.kill(id).await? }))
    }

    async fn list_workers(
        &self,
        _: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        let workers = self.handle.workers().await?;
        Ok(Response::new(pb::ListWorkersResponse { workers: workers.into_iter().map(Into::into).collect() }))
    }

    async fn get_logs(&self, request: Request<pb::GetLogsRequest>) -> Result<Response<pb::GetLogsResponse>, Status> {
        let r = request.into_inner();
        let task = if r.task.is_empty() { None } else { Some(parse_task(&r.task)?) };
        let job = JobId(r.job_id);
        let rows = self.handle.logs(job, task).await?;
        Ok(Response::new(pb::GetLogsResponse {
            attempts: rows.into_iter().map(|a| convert::attempt_log(job, a)).collect(),
        }))
    }
}
