//! The crate's errors.

/// A `MapReduceJob`'s spec that is not a job quern can run.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A field is wrong.
    #[error("{field}: {message}")]
    Field {
        /// The field, as the resource spells it (`spec.streaming.env`).
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

/// Manifests that cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A setting is out of range or malformed.
    #[error("{field}: {message}")]
    Setting {
        /// The flag that sets it.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// An object did not serialise (a bug).
    #[error("serialising a manifest: {0}")]
    Json(#[source] serde_json::Error),
    /// YAML output failed (a bug).
    #[error("writing YAML: {0}")]
    Yaml(String),
}

/// A pod launcher that cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The worker pod template cannot be read.
    #[error("--worker-template {}: {message}", path.display())]
    Template {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
    },
    /// No cluster to talk to.
    #[error("connecting to Kubernetes (in-cluster, or the kubeconfig: KUBECONFIG or ~/.kube/config): {0}")]
    Connect(String),
}
