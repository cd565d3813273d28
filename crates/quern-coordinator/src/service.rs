//! The gRPC face of the coordinator: converts protocol messages to domain
//! types at the door (a malformed request is refused with
//! INVALID_ARGUMENT, never a panic), runs the [`Cluster`] operation under one
//! lock, writes its effects to the [`Store`], and answers.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use quern_core::{AttemptId, Counters, Failure, JobPlan, JobSpec, TaskId, TaskKind};
use quern_proto as pb;
use tokio::sync::Mutex;
use tonic::{Request, Response, Status};

use crate::cluster::{Assignment, Cluster, Effect, Job, NewJob, Outcome, ReportedIndex};
use crate::error::Error;
use crate::store::{Store, WorkerRow};

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// State shared by the service and the ticker.
pub(crate) struct Shared {
    pub(crate) cluster: Mutex<Cluster>,
    pub(crate) store: Store,
    pub(crate) heartbeat_interval_ms: u32,
}

impl Shared {
    /// Makes effects durable, in order.
    pub(crate) async fn persist(&self, effects: Vec<Effect>) -> Result<(), Error> {
        self.store.apply_all(effects).await
    }
}

/// The Coordinator service.
pub(crate) struct CoordinatorService {
    pub(crate) shared: Arc<Shared>,
}

/// Refuses a malformed request, and says so in the log: a buggy peer is
/// worth knowing about, but never worth crashing for.
fn bad(message: impl Into<String>) -> Status {
    let message = message.into();
    tracing::warn!("rejected a malformed request: {message}");
    Status::invalid_argument(message)
}

/// Decodes a request's attempt field, refusing a malformed one.
fn attempt_from(r: Option<&pb::AttemptRef>) -> Result<(u64, AttemptId), Status> {
    pb::attempt_from_wire(r).map_err(|e| bad(e.to_string()))
}

pub(crate) fn attempt_to(job: u64, a: AttemptId) -> pb::AttemptRef {
    pb::AttemptRef::from((job, a))
}

fn assignment_to(a: Assignment) -> pb::TaskAssignment {
    pb::TaskAssignment {
        attempt: Some(attempt_to(a.job, a.attempt)),
        spec_json: a.spec_json,
        plan_json: a.plan_json,
        inputs: a
            .inputs
            .into_iter()
            .map(|(map_index, loc, seg)| pb::MapOutputLocation {
                map_index,
                worker_id: loc.worker_id,
                shuffle_address: loc.shuffle_address,
                path: loc.path,
                segment: Some(seg.into()),
            })
            .collect(),
    }
}

fn job_status(job: &Job) -> pb::JobStatus {
    let counts = |kind| {
        let p = job.sched.as_ref().map(|s| s.progress(kind)).unwrap_or_default();
        pb::PhaseCounts {
            total: p.total,
            pending: p.pending,
            running: p.running,
            succeeded: p.succeeded,
            failed: p.failed,
        }
    };
    let (maps, reduces) = if job.sched.is_some() {
        (counts(TaskKind::Map), counts(TaskKind::Reduce))
    } else {
        let total_m = job.plan.splits.len() as u32;
        let total_r = job.plan.partitions;
        let done = job.phase == crate::cluster::JobPhase::Succeeded;
        let c = |t| pb::PhaseCounts { total: t, succeeded: if done { t } else { 0 }, ..Default::default() };
        (c(total_m), c(total_r))
    };
    pb::JobStatus {
        job_id: job.id,
        app: job.spec.app.clone(),
        output: job.spec.output.clone(),
        state: job.phase.as_str().to_owned(),
        phase: job.stage().to_owned(),
        error: job.error.clone(),
        priority: job.priority,
        maps: Some(maps),
        reduces: Some(reduces),
        counters_json: serde_json::to_string(&job.counters()).unwrap_or_default(),
        submitted_at_ms: job.submitted_ms,
        started_at_ms: job.started_ms,
        finished_at_ms: job.finished_ms,
        input_bytes: job.input_bytes(),
        running: job
            .running_attempts()
            .into_iter()
            .map(|(a, worker, fraction, records, started)| pb::RunningAttempt {
                attempt: Some(attempt_to(job.id, a)),
                worker_id: worker.to_owned(),
                fraction,
                records,
                started_at_ms: started,
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl pb::coordinator_server::Coordinator for CoordinatorService {
    async fn register_worker(
        &self,
        request: Request<pb::RegisterWorkerRequest>,
    ) -> Result<Response<pb::RegisterWorkerResponse>, Status> {
        let r = request.into_inner();
        if r.worker_id.is_empty() || r.slots == 0 || r.shuffle_address.is_empty() {
            return Err(bad("a worker needs an id, at least one slot and a shuffle address"));
        }
        let now = now_ms();
        let row = WorkerRow {
            id: r.worker_id,
            host: r.host,
            shuffle_address: r.shuffle_address,
            slots: r.slots,
            apps: r.apps,
            version: r.version,
            state: crate::state::WorkerState::Alive,
            registered_at_ms: now,
            last_heartbeat_ms: now,
        };
        tracing::info!(worker = %row.id, host = %row.host, slots = row.slots, "worker registered");
        let mut cluster = self.shared.cluster.lock().await;
        let effects = cluster.register(row, now);
        self.shared.persist(effects).await?;
        Ok(Response::new(pb::RegisterWorkerResponse {
            heartbeat_interval_ms: self.shared.heartbeat_interval_ms,
            forget_jobs: cluster.ended_jobs(&r.held_jobs),
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
        let mut cluster = self.shared.cluster.lock().await;
        let (reregister, cancels, forget) = cluster.heartbeat(&r.worker_id, &progress, now_ms());
        Ok(Response::new(pb::HeartbeatResponse {
            reregister,
            cancel: cancels.into_iter().map(|(j, a)| attempt_to(j, a)).collect(),
            forget_jobs: forget,
        }))
    }

    async fn poll_task(&self, request: Request<pb::PollTaskRequest>) -> Result<Response<pb::PollTaskResponse>, Status> {
        let r = request.into_inner();
        let mut cluster = self.shared.cluster.lock().await;
        if !cluster.workers().any(|w| w.row.id == r.worker_id && w.alive) {
            return Ok(Response::new(pb::PollTaskResponse { tasks: Vec::new(), reregister: true }));
        }
        let (assignments, effects) = cluster.poll(&r.worker_id, r.free_slots.min(64), now_ms())?;
        self.shared.persist(effects).await?;
        Ok(Response::new(pb::PollTaskResponse {
            tasks: assignments.into_iter().map(assignment_to).collect(),
            reregister: false,
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
        let mut log = r.log;
        if log.len() > 64 << 10 {
            log.drain(..log.len() - (64 << 10));
        }
        let mut cluster = self.shared.cluster.lock().await;
        let (committed, effects) = cluster.report(&r.worker_id, job, attempt, outcome, log, now_ms())?;
        self.shared.persist(effects).await?;
        Ok(Response::new(pb::ReportAttemptResponse { committed }))
    }

    async fn submit_job(
        &self,
        request: Request<pb::SubmitJobRequest>,
    ) -> Result<Response<pb::SubmitJobResponse>, Status> {
        let r = request.into_inner();
        let spec: JobSpec = serde_json::from_str(&r.spec_json).map_err(|e| bad(format!("spec_json: {e}")))?;
        let plan: JobPlan = serde_json::from_str(&r.plan_json).map_err(|e| bad(format!("plan_json: {e}")))?;
        // The client planned the job; its sizes are checked here again.
        plan.check(&spec).map_err(|e| Error::Refused(e.to_string()))?;
        let now = now_ms();
        let mut cluster = self.shared.cluster.lock().await;
        cluster.check_submission(&spec, &plan)?;
        let row = crate::store::JobRow {
            id: 0,
            app: spec.app.clone(),
            spec_json: r.spec_json.clone(),
            plan_json: r.plan_json.clone(),
            priority: r.priority,
            state: crate::state::JobPhase::Pending,
            error: String::new(),
            counters_json: "{}".into(),
            submitted_at_ms: now,
            started_at_ms: 0,
            finished_at_ms: 0,
        };
        let id = match self.shared.store.insert_job(&row).await {
            Ok(id) => id,
            Err(e) => {
                quern_storage::OutputCommitter::open(std::path::Path::new(&spec.output)).abort_job();
                return Err(e.into());
            }
        };
        tracing::info!(job = id, app = %spec.app, maps = plan.splits.len(), reduces = plan.partitions, "job submitted");
        let new = NewJob { id, spec, plan, spec_json: r.spec_json, plan_json: r.plan_json, priority: r.priority };
        let effects = cluster.add_job(new, now);
        self.shared.persist(effects).await?;
        Ok(Response::new(pb::SubmitJobResponse { job_id: id }))
    }

    async fn list_jobs(&self, _: Request<pb::ListJobsRequest>) -> Result<Response<pb::ListJobsResponse>, Status> {
        let cluster = self.shared.cluster.lock().await;
        Ok(Response::new(pb::ListJobsResponse { jobs: cluster.jobs().map(job_status).collect() }))
    }

    async fn get_job(&self, request: Request<pb::GetJobRequest>) -> Result<Response<pb::JobStatus>, Status> {
        let id = request.into_inner().job_id;
        let cluster = self.shared.cluster.lock().await;
        let job = cluster.job(id).ok_or(Error::NoSuchJob(id))?;
        Ok(Response::new(job_status(job)))
    }

    async fn kill_job(&self, request: Request<pb::KillJobRequest>) -> Result<Response<pb::KillJobResponse>, Status> {
        let id = request.into_inner().job_id;
        let mut cluster = self.shared.cluster.lock().await;
        let (killed, effects) = cluster.kill(id, now_ms())?;
        self.shared.persist(effects).await?;
        Ok(Response::new(pb::KillJobResponse { killed }))
    }

    async fn list_workers(
        &self,
        _: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        let cluster = self.shared.cluster.lock().await;
        let now = now_ms();
        let workers = cluster
            .workers()
            .map(|w| pb::WorkerStatus {
                worker_id: w.row.id.clone(),
                host: w.row.host.clone(),
                shuffle_address: w.row.shuffle_address.clone(),
                slots: w.row.slots,
                running: w.running.len() as u32,
                apps: w.row.apps.clone(),
                version: w.row.version.clone(),
                state: match (w.alive, w.blacklisted(now)) {
                    (false, _) => "lost".into(),
                    (true, true) => "blacklisted".into(),
                    (true, false) => "alive".into(),
                },
                last_heartbeat_ms: w.row.last_heartbeat_ms,
                blacklisted_until_ms: if w.blacklisted(now) { w.blacklisted_until_ms } else { 0 },
                excluded_by_jobs: cluster.excluding_jobs(&w.row.id, now),
            })
            .collect();
        Ok(Response::new(pb::ListWorkersResponse { workers }))
    }

    async fn get_logs(&self, request: Request<pb::GetLogsRequest>) -> Result<Response<pb::GetLogsResponse>, Status> {
        let r = request.into_inner();
        let task = if r.task.is_empty() { None } else { Some(parse_task(&r.task)?) };
        if self.shared.cluster.lock().await.job(r.job_id).is_none() {
            return Err(Error::NoSuchJob(r.job_id).into());
        }
        let rows = self.shared.store.attempts(r.job_id, task).await?;
        Ok(Response::new(pb::GetLogsResponse {
            attempts: rows
                .into_iter()
                .map(|a| pb::AttemptLog {
                    attempt: Some(attempt_to(r.job_id, a.attempt)),
                    worker_id: a.worker_id,
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
