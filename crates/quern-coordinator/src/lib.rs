//! The coordinator: one process that owns every job's task state, hands
//! attempts to workers over gRPC, re-executes what fails or is lost, and keeps
//! it all durable in SQLite or PostgreSQL so a restart resumes running jobs.
//!
//! # Overview
//! - [`Coordinator::open`]: opens (or creates) the state database and
//!   restores running jobs; [`Coordinator::serve`]: serves the `Coordinator`
//!   gRPC service on a listener until a shutdown future resolves.
//! - [`CoordinatorHandle`] (from [`Coordinator::handle`]): the application
//!   layer, every operation on domain types (register, heartbeat, poll,
//!   report, submit, jobs, job, tasks, kill, workers, logs) and a stream of
//!   [`Event`]s, each published once stored; the gRPC service only
//!   converts messages to and from it, and a REST API calls it the same way.
//! - [`cluster`]: the decisions (placement, reports, lost workers, hung
//!   attempts, backups), over one `quern_core::Scheduler` per job; public so
//!   simulations can drive it.
//! - [`state`]: stored states as typed enums; [`store`]: the [`StateStore`]
//!   trait and its SQLite and PostgreSQL implementations.
//! - [`access`]: who calls (a user's signed token, or the cluster token)
//!   and what they may do, for gRPC and REST alike; users' passwords.
//! - [`nudge`]: the counts workers watch (`WatchWork`) to poll or
//!   heartbeat as soon as something may wait for them, not at their next
//!   tick.
//! - chains: multi-step jobs, each step an ordinary job that the
//!   coordinator submits when the step before succeeds
//!   ([`CoordinatorHandle::submit_chain_as`], `resume_chain`, `chain_of`).
//! - [`code`]: the code files jobs ship ([`CodeStore`]), stored by the
//!   SHA-256 of their bytes, which a job's spec names them by.
//! - [`storage_work`]: the commits and clean-ups of job outputs (local
//!   directories or S3 prefixes) that decisions queue, run once the
//!   decisions are stored, outside the lock.
//!
//! # Invariants
//! - A task is a description, not code: this crate never runs user code and
//!   does not depend on `quern-engine`.
//! - Exactly one attempt of a task commits: the scheduler decides, the commit
//!   decision is written to the store before the coordinator answers, and a
//!   late report from an attempt the coordinator gave up on is discarded.
//! - Every state change is durable before the RPC that caused it returns.
//! - Worker RPCs take the cluster token only; a user's token reaches the
//!   client RPCs, which show and kill only the user's own jobs (admins:
//!   every job).
//! - No storage I/O under the lock: decisions queue output work, which runs
//!   after they are stored, each job's in decision order.

pub mod access;
mod chains;
pub mod cluster;
pub mod code;
mod error;
mod handle;
pub mod launch;
pub mod nudge;
mod service;
pub mod state;
pub mod storage_work;
pub mod store;

use std::future::Future;
use std::time::Duration;

pub use cluster::Policy;
pub use code::CodeStore;
pub use error::Error;
pub use store::{StateStore, Store};

pub use handle::{
    AttemptView, CoordinatorHandle, Event, HeartbeatAnswer, JobView, PlanAnswer, Registered, Registration,
    RunningAttemptView, TaskStatus, TaskView, WorkerHealth, WorkerView,
};
use service::CoordinatorService;

/// How to run a coordinator.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// The state database: `sqlite://PATH` or `postgres://…`.
    pub state_url: String,
    /// The cluster token workers (and admins) present.
    pub token: String,
    /// The key that signs users' tokens (at least 32 bytes).
    pub signing_key: Vec<u8>,
    /// How long a login's token is valid.
    pub token_lifetime: Duration,
    /// Timeouts and speculation.
    pub policy: Policy,
    /// How often workers heartbeat.
    pub heartbeat_interval: Duration,
    /// Where job outputs are: how the coordinator reaches S3 to claim,
    /// commit and clean up `s3://` outputs (local outputs need nothing).
    pub storage: quern_storage::Storage,
    /// Where the code files jobs ship are stored; without, jobs that ship
    /// code are refused.
    pub code: Option<CodeStore>,
}

/// A coordinator, restored from its state and ready to serve.
pub struct Coordinator {
    handle: CoordinatorHandle,
    access: std::sync::Arc<access::Access>,
}

impl Coordinator {
    /// Opens the state database (taking its lock: see [`store::open`]) and
    /// restores every job that was running. Refuses an empty token before
    /// touching the state.
    pub async fn open(config: CoordinatorConfig) -> Result<Coordinator, Error> {
        let access = access::Access::new(&config.token, &config.signing_key, config.token_lifetime)?;
        let interval = config.heartbeat_interval.as_millis() as u32;
        let handle = CoordinatorHandle::open(&config.state_url, config.storage, config.policy, interval).await?;
        if let Some(code) = config.code {
            handle.set_code_store(code);
        }
        Ok(Coordinator { handle, access: std::sync::Arc::new(access) })
    }

    /// Who may call, and the tokens logins get: for another front end (a
    /// REST API) served beside the gRPC one.
    pub fn access(&self) -> std::sync::Arc<access::Access> {
        self.access.clone()
    }

    /// The application layer, for another front end (a REST API) served
    /// beside the gRPC one.
    pub fn handle(&self) -> CoordinatorHandle {
        self.handle.clone()
    }

    /// Serves on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let ticker = {
            let handle = self.handle.clone();
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(Duration::from_millis(250));
                loop {
                    interval.tick().await;
                    if let Err(e) = handle.tick().await {
                        tracing::error!("saving state: {e}");
                    }
                }
            })
        };
        // Chains move on when a job ends (and once now, for jobs that ended
        // while no coordinator ran).
        let chain_driver = {
            let handle = self.handle.clone();
            let mut events = handle.events();
            tokio::spawn(async move {
                handle.advance_chains().await;
                loop {
                    match events.recv().await {
                        Ok(Event::Job { state, .. }) if state.is_terminal() => handle.advance_chains().await,
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => handle.advance_chains().await,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
            })
        };
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let shutdown = async move {
            shutdown.await;
            // Open streams end, so that the graceful shutdown can finish.
            let _ = stop.send(true);
        };
        let service = quern_proto::coordinator_server::CoordinatorServer::new(CoordinatorService {
            handle: self.handle,
            access: self.access.clone(),
            stopping,
        })
        .max_decoding_message_size(quern_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(quern_proto::MAX_MESSAGE_BYTES);
        let service = tonic::service::interceptor::InterceptedService::new(service, service::CallerCheck(self.access));
        let result = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                // Every RPC is a small message: without TCP_NODELAY an answer
                // can wait for the caller's delayed ACK.
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                shutdown,
            )
            .await;
        ticker.abort();
        chain_driver.abort();
        // Wait for the ticker and the chain driver to be dropped: they hold
        // the store, and with it the state's lock, which a coordinator
        // opened next must be able to take.
        let _ = ticker.await;
        let _ = chain_driver.await;
        result.map_err(Error::from)
    }
}
