//! quern on Kubernetes.
//!
//! - [`crd`]: the `MapReduceJob` custom resource (`quern.dev/v1alpha1`),
//!   its spec as a [`quern_core::JobSpec`], and its status.
//! - [`deploy`]: the manifests that deploy quern (`quern k8s render`).
//! - [`names`]: the labels, ports and object names they all share.
//!
//! This is the only crate that depends on kube-rs and k8s-openapi; the
//! coordinator knows nothing of Kubernetes.

pub mod crd;
pub mod deploy;
mod error;
pub mod names;

pub use crd::{JobResourcePhase, MapReduceJob, MapReduceJobSpec, MapReduceJobStatus};
pub use deploy::{DeploySettings, Manifest, Resources, StorageLayout, WorkerSettings, crd_manifest, render, to_yaml};
pub use error::{RenderError, SpecError};
