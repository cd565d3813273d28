//! Workers started on demand: a [`WorkerLauncher`] starts and removes
//! workers on some platform (Kubernetes pods in `quern-kube`, local
//! processes in [`ProcessLauncher`]); the [`Autoscaler`] decides when,
//! from the cluster's [`Demand`]; [`run_launcher`] drives both and tells
//! the coordinator what the platform reports. Launched workers register
//! over the same gRPC as any other: the coordinator's decisions do not
//! know how a worker came to be.

use async_trait::async_trait;
use quern_core::WorkerId;
use tokio::sync::mpsc;

mod driver;
mod process;
mod scale;

pub use driver::{LaunchControl, run_launcher};
pub use process::ProcessLauncher;
pub use scale::{Autoscaler, Demand, LaunchReason, Launched, ScalePlan, ScalePolicy, WorkerLoad};

/// What the platform reports about a launched worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchEvent {
    /// It is not running yet, for this reason (Kubernetes' own:
    /// `ErrImagePull`, `ImagePullBackOff`, `Unschedulable`, …). Sent when
    /// the reason changes.
    Waiting {
        /// The worker.
        worker: WorkerId,
        /// The platform's reason.
        reason: String,
        /// Its message.
        message: String,
    },
    /// It ended: its pod or process is gone or finished (`OOMKilled`,
    /// `Evicted`, `Error`, `Deleted`, …).
    Ended {
        /// The worker.
        worker: WorkerId,
        /// The platform's reason.
        reason: String,
        /// Its message.
        message: String,
    },
}

/// Why the platform refused a launch or a removal.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The request is wrong and will stay wrong (a bad template, no rights).
    #[error("{0}")]
    Refused(String),
    /// The platform did not answer; a later try may work.
    #[error("{0}")]
    Unavailable(String),
}

/// Starts and removes workers on a platform.
#[async_trait]
pub trait WorkerLauncher: Send + Sync + 'static {
    /// What it launches on, for logs (`kubernetes namespace quern`).
    fn describe(&self) -> String;

    /// Starts one worker, for `reason` (labels it with the job); answers
    /// the id the worker will register with.
    async fn launch(&self, reason: LaunchReason) -> Result<WorkerId, LaunchError>;

    /// Stops a worker it launched; one already gone is no error.
    async fn remove(&self, worker: &WorkerId) -> Result<(), LaunchError>;

    /// The workers it launched that exist now (after a coordinator's
    /// restart, to adopt them).
    async fn existing(&self) -> Result<Vec<WorkerId>, LaunchError>;

    /// Follows the launched workers, sending what happens to them, until
    /// the stream breaks (then it is called again) or `events` closes.
    async fn follow(&self, events: mpsc::Sender<LaunchEvent>) -> Result<(), LaunchError>;
}
