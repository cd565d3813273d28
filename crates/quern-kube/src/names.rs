//! The names quern's objects share: labels, ports, service accounts, the
//! token's Secret. The launcher, the operator and the manifests use these
//! and nothing else, so what the manifests grant is what the code asks for.

/// `app.kubernetes.io/name` of every object quern creates.
pub const APP_LABEL: &str = "app.kubernetes.io/name";
/// Its value.
pub const APP: &str = "quern";
/// `app.kubernetes.io/component`: `coordinator`, `worker` or `operator`.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// `app.kubernetes.io/managed-by` of the pods the launcher creates.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Which launcher created a worker pod: its coordinator's name, so that two
/// quern installations in one namespace never touch each other's pods.
pub const LAUNCHER_LABEL: &str = "quern.dev/launcher";
/// A worker pod's worker id (the id it registers with).
pub const WORKER_LABEL: &str = "quern.dev/worker";
/// The job whose queued work launched a worker pod ("none" for one added by
/// hand).
pub const JOB_LABEL: &str = "quern.dev/job";

/// The coordinator's Deployment, Service and ServiceAccount.
pub const COORDINATOR: &str = "quern-coordinator";
/// The operator's Deployment and ServiceAccount.
pub const OPERATOR: &str = "quern-operator";
/// The worker pods' ServiceAccount (no rights, no token mounted).
pub const WORKER: &str = "quern-worker";
/// The Secret holding the cluster token (key [`TOKEN_KEY`]) and the REST
/// API's signing key (key [`SIGNING_KEY_KEY`]).
pub const TOKEN_SECRET: &str = "quern-token";
/// The token's key in [`TOKEN_SECRET`].
pub const TOKEN_KEY: &str = "token";
/// The signing key's key in [`TOKEN_SECRET`].
pub const SIGNING_KEY_KEY: &str = "signing-key";
/// The ConfigMap holding the worker pod template.
pub const WORKER_TEMPLATE: &str = "quern-worker-template";
/// The template's key in [`WORKER_TEMPLATE`].
pub const WORKER_TEMPLATE_KEY: &str = "worker-pod.yaml";
/// The container of a worker pod that runs `quern worker`.
pub const WORKER_CONTAINER: &str = "worker";

/// The coordinator's gRPC port (workers, the CLI, the operator).
pub const GRPC_PORT: u16 = 7070;
/// The coordinator's HTTP port (REST API, dashboard, health).
pub const HTTP_PORT: u16 = 8080;
/// A worker's shuffle service port.
pub const SHUFFLE_PORT: u16 = 7071;
/// The health endpoint the probes ask.
pub const HEALTH_PATH: &str = "/api/v1/health";
