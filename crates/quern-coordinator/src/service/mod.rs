//! The gRPC face of the coordinator: converts protocol messages to domain
//! types at the door (a malformed request is refused with
//! INVALID_ARGUMENT, never a panic), calls the [`CoordinatorHandle`], and
//! converts its answer back. Every conversion is in `convert`.
//!
//! [`CallerCheck`] reads who calls from each request's token ([`Access`]);
//! worker RPCs then require the cluster token, and client RPCs apply the
//! caller's rights (a user sees and kills only their own jobs; another's
//! is NOT_FOUND, as on the REST API).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use quern_core::{JobId, JobSpec, WorkerId};
use quern_proto as pb;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::access::{Access, AuthError, Caller};
use crate::cluster::Outcome;
use crate::handle::{CoordinatorHandle, Event, JobView, PlanAnswer};
use crate::nudge::Nudges;

mod convert;

use convert::{attempt_from, bad, parse_task};

/// The Coordinator service.
pub(crate) struct CoordinatorService {
    pub(crate) handle: CoordinatorHandle,
    pub(crate) access: Arc<Access>,
    /// Becomes true when the server shuts down: streams end then (a
    /// graceful shutdown waits for every open one).
    pub(crate) stopping: watch::Receiver<bool>,
}

/// Bytes of a code file per chunk sent.
const CODE_CHUNK: usize = 256 << 10;

/// A code file's hash as a request gives it.
fn parse_code_hash(text: &str) -> Result<quern_core::CodeHash, Status> {
    text.parse().map_err(|e: quern_core::BadCodeHash| bad(e.to_string()))
}

/// A server stream of `T`s.
type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// How often a job's watcher reads its status even without a change (the
/// progress of running attempts changes without events), and at least
/// sends it (so a client can tell a quiet job from a dead connection).
const WATCH_REFRESH: Duration = Duration::from_secs(1);
const WATCH_KEEPALIVE: Duration = Duration::from_secs(5);

/// Whether `event` is about job `id`.
fn concerns(event: &Event, id: JobId) -> bool {
    match event {
        Event::Job { id: job, .. }
        | Event::Task { job, .. }
        | Event::AttemptStarted { job, .. }
        | Event::AttemptEnded { job, .. }
        | Event::JobEvent { job, .. } => *job == id,
        Event::Worker { .. } => false,
    }
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

    /// The caller, if an admin.
    async fn admin<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let caller = self.caller(request).await?;
        if !caller.is_admin() {
            return Err(Status::permission_denied("only admins add and remove workers"));
        }
        Ok(caller)
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
    type WatchWorkStream = Streamed<pb::WorkNudge>;
    type WatchJobStream = Streamed<pb::JobStatus>;
    type GetCodeStream = Streamed<pb::CodeChunk>;

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

    async fn watch_work(
        &self,
        request: Request<pb::WatchWorkRequest>,
    ) -> Result<Response<Self::WatchWorkStream>, Status> {
        worker(&request)?;
        let mut nudges = self.handle.nudges();
        let mut stopping = self.stopping.clone();
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            // The first nudge asks for everything: the worker may have
            // missed nudges while it was not watching.
            let mut seen: Option<Nudges> = None;
            loop {
                let now = *nudges.borrow_and_update();
                let nudge = match seen {
                    None => pb::WorkNudge { poll: true, heartbeat: true },
                    Some(before) => {
                        let moved = now.since(&before);
                        pb::WorkNudge { poll: moved.poll, heartbeat: moved.heartbeat }
                    }
                };
                seen = Some(now);
                if (nudge.poll || nudge.heartbeat) && tx.send(Ok(nudge)).await.is_err() {
                    return;
                }
                tokio::select! {
                    changed = nudges.changed() => if changed.is_err() { return },
                    _ = stopping.wait_for(|&s| s) => return,
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
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
        let mut status: pb::JobStatus = self.visible(&caller, id).await?.into();
        status.events = self.handle.job_events(id).await?.into_iter().map(Into::into).collect();
        Ok(Response::new(status))
    }

    async fn watch_job(&self, request: Request<pb::GetJobRequest>) -> Result<Response<Self::WatchJobStream>, Status> {
        let caller = self.caller(&request).await?;
        let id = JobId(request.into_inner().job_id);
        // Subscribed before the first read: no change after it is missed.
        let mut events = self.handle.events();
        let first: pb::JobStatus = self.visible(&caller, id).await?.into();
        let handle = self.handle.clone();
        let mut stopping = self.stopping.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut refresh = tokio::time::interval(WATCH_REFRESH);
            refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            refresh.reset();
            let mut last = first;
            let mut sent_at = tokio::time::Instant::now();
            if tx.send(Ok(last.clone())).await.is_err() {
                return;
            }
            loop {
                if matches!(last.state.as_str(), "succeeded" | "failed" | "killed") {
                    return;
                }
                tokio::select! {
                    event = events.recv() => match event {
                        Ok(event) if !concerns(&event, id) => continue,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    _ = refresh.tick() => {}
                    _ = stopping.wait_for(|&s| s) => return,
                    () = tx.closed() => return,
                }
                // Changes that came together make one message.
                while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = events.try_recv() {}
                let status: pb::JobStatus = match handle.job(id).await {
                    Ok(job) => job.into(),
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                };
                if status != last || sent_at.elapsed() >= WATCH_KEEPALIVE {
                    if tx.send(Ok(status.clone())).await.is_err() {
                        return;
                    }
                    sent_at = tokio::time::Instant::now();
                    last = status;
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn kill_job(&self, request: Request<pb::KillJobRequest>) -> Result<Response<pb::KillJobResponse>, Status> {
        let caller = self.caller(&request).await?;
        let id = self.visible(&caller, JobId(request.into_inner().job_id)).await?.id;
        Ok(Response::new(pb::KillJobResponse { killed: self.handle.kill(id).await? }))
    }

    async fn launch_workers(
        &self,
        request: Request<pb::LaunchWorkersRequest>,
    ) -> Result<Response<pb::LaunchWorkersResponse>, Status> {
        self.admin(&request).await?;
        let count = request.into_inner().count;
        if count == 0 || count > 1000 {
            return Err(Status::invalid_argument(format!("count {count}: launch 1 to 1000 workers")));
        }
        let ids = self.handle.launcher()?.add(count).await?;
        Ok(Response::new(pb::LaunchWorkersResponse { worker_ids: ids.iter().map(ToString::to_string).collect() }))
    }

    async fn remove_worker(
        &self,
        request: Request<pb::RemoveWorkerRequest>,
    ) -> Result<Response<pb::RemoveWorkerResponse>, Status> {
        self.admin(&request).await?;
        let id = request.into_inner().worker_id;
        if id.is_empty() {
            return Err(Status::invalid_argument("worker_id: empty"));
        }
        self.handle.launcher()?.remove(WorkerId::new(id)).await?;
        Ok(Response::new(pb::RemoveWorkerResponse {}))
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

    async fn missing_code(
        &self,
        request: Request<pb::MissingCodeRequest>,
    ) -> Result<Response<pb::MissingCodeResponse>, Status> {
        self.caller(&request).await?;
        let hashes = request.into_inner().sha256.iter().map(|h| parse_code_hash(h)).collect::<Result<Vec<_>, _>>()?;
        let missing = self.handle.code_store()?.missing(hashes).await?;
        Ok(Response::new(pb::MissingCodeResponse { sha256: missing.iter().map(ToString::to_string).collect() }))
    }

    async fn put_code(
        &self,
        request: Request<tonic::Streaming<pb::CodeChunk>>,
    ) -> Result<Response<pb::PutCodeResponse>, Status> {
        self.caller(&request).await?;
        let mut chunks = request.into_inner();
        let first = chunks.message().await?.ok_or_else(|| bad("an upload without a chunk"))?;
        let expected = parse_code_hash(&first.sha256)?;
        let rest = tokio_stream::StreamExt::map(chunks, |chunk| chunk.map(|c| c.data));
        let stream = tokio_stream::StreamExt::chain(tokio_stream::iter([Ok(first.data)]), rest);
        let size = self.handle.code_store()?.put(expected, Box::pin(stream)).await?;
        tracing::info!(sha256 = %expected, size, "code file stored");
        Ok(Response::new(pb::PutCodeResponse { sha256: expected.to_string(), size }))
    }

    async fn get_code(&self, request: Request<pb::GetCodeRequest>) -> Result<Response<Self::GetCodeStream>, Status> {
        self.caller(&request).await?;
        let hash = parse_code_hash(&request.into_inner().sha256)?;
        let store = self.handle.code_store()?.clone();
        let reader = tokio::task::spawn_blocking(move || store.open(hash))
            .await
            .map_err(|e| Status::unavailable(format!("reading the code file: {e}")))??
            .ok_or_else(|| Status::not_found(format!("no code file {hash:?}")))?;
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut reader = reader;
            loop {
                let mut data = vec![0u8; CODE_CHUNK];
                let read = match std::io::Read::read(&mut reader, &mut data) {
                    Ok(0) => return,
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(Status::unavailable(format!("reading the code file: {e}"))));
                        return;
                    }
                };
                data.truncate(read);
                if tx.blocking_send(Ok(pb::CodeChunk { sha256: String::new(), data })).is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn submit_chain(
        &self,
        request: Request<pb::SubmitChainRequest>,
    ) -> Result<Response<pb::SubmitJobResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let chain: quern_core::ChainSpec =
            serde_json::from_str(&r.chain_json).map_err(|e| bad(format!("chain_json: {e}")))?;
        let id = self.handle.submit_chain_as(chain, r.priority, caller.name()).await?;
        self.handle.advance_chains().await;
        Ok(Response::new(pb::SubmitJobResponse { job_id: id.0 }))
    }

    async fn get_chain(&self, request: Request<pb::GetChainRequest>) -> Result<Response<pb::ChainStatus>, Status> {
        let caller = self.caller(&request).await?;
        let id = JobId(request.into_inner().job_id);
        let chain = self.handle.chain_of(id).await?;
        if !caller.may_see(&chain.owner) {
            return Err(crate::Error::NoSuchJob(id).into());
        }
        Ok(Response::new(convert::chain_status(chain)))
    }

    async fn resume_chain(&self, request: Request<pb::GetChainRequest>) -> Result<Response<pb::ChainStatus>, Status> {
        let caller = self.caller(&request).await?;
        let id = JobId(request.into_inner().job_id);
        if !caller.may_see(&self.handle.chain_of(id).await?.owner) {
            return Err(crate::Error::NoSuchJob(id).into());
        }
        Ok(Response::new(convert::chain_status(self.handle.resume_chain(id).await?)))
    }
}
