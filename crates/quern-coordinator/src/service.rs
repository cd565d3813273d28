//! The gRPC face of the coordinator: converts protocol messages to domain
//! types at the door (a malformed request is refused with
//! INVALID_ARGUMENT, never a panic), calls the [`CoordinatorHandle`], and
//! converts its answer back.

use quern_core::{AttemptId, Counters, Failure, JobId, JobSpec, TaskId, TaskKind};
use quern_proto as pb;
use tonic::{Request, Response, Status};

use crate::cluster::{Assignment, Outcome, ReportedIndex};
use crate::handle::{CoordinatorHandle, JobView, PlanAnswer, Registration, WorkerView};

/// The Coordinator service.
pub(crate) struct CoordinatorService {
    pub(crate) handle: CoordinatorHandle,
}

/// Refuses a malformed request, and says so in the log: a buggy peer is
/// worth knowing about, but never worth crashing for.
fn bad(message: impl Into<String>) -> Status {
    let message = message.into();
    tracing::warn!("rejected a malformed request: {message}");
    Status::invalid_argument(message)
}

/// Decodes a request's attempt field, refusing a malformed one.
fn attempt_from(r: Option<&pb::AttemptRef>) -> Result<(JobId, AttemptId), Status> {
    pb::attempt_from_wire(r).map_err(|e| bad(e.to_string()))
}

pub(crate) fn attempt_to(job: JobId, a: AttemptId) -> pb::AttemptRef {
    pb::AttemptRef::from((job, a))
}

fn assignment_to(a: Assignment) -> pb::TaskAssignment {
    pb::TaskAssignment {
        attempt: Some(attempt_to(a.job, a.attempt)),
        inputs: a
            .inputs
            .into_iter()
            .map(|(map_index, loc, seg)| pb::MapOutputLocation {
                map_index,
                worker_id: loc.worker_id.to_string(),
                shuffle_address: loc.shuffle_address,
                path: loc.path,
                segment: Some(seg.into()),
            })
            .collect(),
    }
}

fn counts_to(p: quern_core::PhaseProgress) -> pb::PhaseCounts {
    pb::PhaseCounts { total: p.total, pending: p.pending, running: p.running, succeeded: p.succeeded, failed: p.failed }
}

fn job_status(job: JobView) -> pb::JobStatus {
    pb::JobStatus {
        job_id: job.id.0,
        app: job.app,
        output: job.output,
        state: job.state.as_str().to_owned(),
        phase: job.stage.to_owned(),
        error: job.error,
        priority: job.priority,
        maps: Some(counts_to(job.maps)),
        reduces: Some(counts_to(job.reduces)),
        counters_json: serde_json::to_string(&job.counters).unwrap_or_default(),
        submitted_at_ms: job.submitted_ms,
        started_at_ms: job.started_ms,
        finished_at_ms: job.finished_ms,
        input_bytes: job.input_bytes,
        running: job
            .running
            .into_iter()
            .map(|r| pb::RunningAttempt {
                attempt: Some(attempt_to(job.id, r.attempt)),
                worker_id: r.worker_id.to_string(),
                fraction: r.fraction,
                records: r.records,
                started_at_ms: r.started_ms,
            })
            .collect(),
    }
}

fn worker_status(w: WorkerView) -> pb::WorkerStatus {
    pb::WorkerStatus {
        worker_id: w.row.id.to_string(),
        host: w.row.host,
        shuffle_address: w.row.shuffle_address,
        slots: w.row.slots,
        running: w.running,
        apps: w.row.apps,
        version: w.row.version,
        state: w.health.to_string(),
        last_heartbeat_ms: w.row.last_heartbeat_ms,
        blacklisted_until_ms: w.blacklisted_until_ms,
        excluded_by_jobs: w.excluded_by_jobs.iter().map(|j| j.0).collect(),
    }
}

#[tonic::async_trait]
impl pb::coordinator_server::Coordinator for CoordinatorService {
    async fn register_worker(
        &self,
        request: Request<pb::RegisterWorkerRequest>,
    ) -> Result<Response<pb::RegisterWorkerResponse>, Status> {
        let r = request.into_inner();
        let registered = self
            .handle
            .register(Registration {
                worker_id: r.worker_id.into(),
                host: r.host,
                shuffle_address: r.shuffle_address,
                slots: r.slots,
                apps: r.apps,
                version: r.version,
                held_jobs: r.held_jobs.into_iter().map(JobId).collect(),
            })
            .await?;
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
        let mut progress = Vec::with_capacity(r.running.len());
        for p in r.running {
            let (job, attempt) = attempt_from(p.attempt.as_ref())?;
            progress.push((job, attempt, p.fraction, p.records));
        }
        let answer = self.handle.heartbeat(&r.worker_id, &progress).await?;
        Ok(Response::new(pb::HeartbeatResponse {
            reregister: answer.reregister,
            cancel: answer.cancel.into_iter().map(|(j, a)| attempt_to(j, a)).collect(),
            forget_jobs: answer.forget_jobs.iter().map(|j| j.0).collect(),
            plans: answer
                .plans
                .into_iter()
                .map(|p| pb::PlanRequest { ticket: p.ticket, spec_json: p.spec_json.to_string() })
                .collect(),
        }))
    }

    async fn report_plan(
        &self,
        request: Request<pb::ReportPlanRequest>,
    ) -> Result<Response<pb::ReportPlanResponse>, Status> {
        use pb::report_plan_request::Result as R;
        let r = request.into_inner();
        let answer = match r.result {
            Some(R::PlanJson(json)) => {
                PlanAnswer::Planned(serde_json::from_str(&json).map_err(|e| bad(format!("plan_json: {e}")))?)
            }
            Some(R::Refused(refused)) => PlanAnswer::Refused(refused.message),
            Some(R::Failed(message)) => PlanAnswer::Failed(message),
            None => return Err(bad("result is missing")),
        };
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
                pb::PollTaskResponse { tasks: assignments.into_iter().map(assignment_to).collect(), reregister: false }
            }
        }))
    }

    async fn report_attempt(
        &self,
        request: Request<pb::ReportAttemptRequest>,
    ) -> Result<Response<pb::ReportAttemptResponse>, Status> {
        let r = request.into_inner();
        let (job, attempt) = attempt_from(r.attempt.as_ref())?;
        let outcome = match r.outcome {
            Some(pb::report_attempt_request::Outcome::Succeeded(s)) => {
                let counters: Counters =
                    serde_json::from_str(&s.counters_json).map_err(|e| bad(format!("counters_json: {e}")))?;
                let map_output = if s.map_output_json.is_empty() {
                    None
                } else {
                    Some(
                        serde_json::from_str::<ReportedIndex>(&s.map_output_json)
                            .map_err(|e| bad(format!("map_output_json: {e}")))?,
                    )
                };
                Outcome::Succeeded { counters, map_output }
            }
            Some(pb::report_attempt_request::Outcome::Failed(f)) => {
                Outcome::Failed(Failure { message: f.message, retryable: f.retryable })
            }
            Some(pb::report_attempt_request::Outcome::FetchFailed(f)) => {
                let mut maps = vec![f.map_index];
                maps.extend(f.more_map_indexes);
                Outcome::FetchFailed { maps, message: f.message }
            }
            Some(pb::report_attempt_request::Outcome::Cancelled(_)) => Outcome::Cancelled,
            None => return Err(bad("outcome is missing")),
        };
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
        Ok(Response::new(pb::ListJobsResponse { jobs: jobs.into_iter().map(job_status).collect() }))
    }

    async fn get_job(&self, request: Request<pb::GetJobRequest>) -> Result<Response<pb::JobStatus>, Status> {
        let id = JobId(request.into_inner().job_id);
        Ok(Response::new(job_status(self.handle.job(id).await?)))
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
        Ok(Response::new(pb::ListWorkersResponse { workers: workers.into_iter().map(worker_status).collect() }))
    }

    async fn get_logs(&self, request: Request<pb::GetLogsRequest>) -> Result<Response<pb::GetLogsResponse>, Status> {
        let r = request.into_inner();
        let task = if r.task.is_empty() { None } else { Some(parse_task(&r.task)?) };
        let job = JobId(r.job_id);
        let rows = self.handle.logs(job, task).await?;
        Ok(Response::new(pb::GetLogsResponse {
            attempts: rows
                .into_iter()
                .map(|a| pb::AttemptLog {
                    attempt: Some(attempt_to(job, a.attempt)),
                    worker_id: a.worker_id.to_string(),
                    outcome: a.outcome.map_or("running", crate::state::AttemptEnd::as_str).to_owned(),
                    error: a.error,
                    log: a.log,
                    started_at_ms: a.started_at_ms,
                    finished_at_ms: a.finished_at_ms,
                })
                .collect(),
        }))
    }
}

/// Parses `m-00003` / `r-1` into a task id.
pub(crate) fn parse_task(s: &str) -> Result<TaskId, Status> {
    let (k, i) = s.split_once('-').ok_or_else(|| bad(format!("task {s:?}: expected m-N or r-N")))?;
    let kind = match k {
        "m" => TaskKind::Map,
        "r" => TaskKind::Reduce,
        _ => return Err(bad(format!("task {s:?}: expected m-N or r-N"))),
    };
    let index = i.parse().map_err(|_| bad(format!("task {s:?}: bad number")))?;
    Ok(TaskId { kind, index })
}
