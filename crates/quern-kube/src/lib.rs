//! quern on Kubernetes.
//!
//! - [`crd`]: the `MapReduceJob` custom resource (`quern.dev/v1alpha1`),
//!   its spec as a [`quern_core::JobSpec`], and its status.
//! - [`deploy`]: the manifests that deploy quern (`quern k8s render`).
//! - [`pods`]: [`PodLauncher`], the coordinator's worker launcher on
//!   Kubernetes: worker pods from a template, followed with a watch.
//! - [`operator`]: the `MapReduceJob` operator (`quern operator`), which
//!   runs each resource as a job on the coordinator ([`grpc`]) and writes
//!   its progress back, while it holds the Lease ([`lease`]).
//! - [`names`]: the labels, ports and object names they all share.
//!
//! This is the only crate that depends on kube-rs and k8s-openapi; the
//! coordinator knows nothing of Kubernetes.

pub mod crd;
pub mod deploy;
mod error;
pub mod grpc;
pub mod lease;
pub mod names;
pub mod operator;
pub mod pods;

pub use crd::{JobResourcePhase, MapReduceJob, MapReduceJobSpec, MapReduceJobStatus};
pub use deploy::{DeploySettings, Manifest, Resources, StorageLayout, WorkerSettings, crd_manifest, render, to_yaml};
pub use error::{RenderError, SetupError, SpecError};
pub use pods::{PodLauncher, PodOwner, PodSettings, PodState, connect, pod_state, read_template, template_image};
