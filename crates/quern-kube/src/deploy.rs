//! The manifests that deploy quern (`quern k8s render`): a namespace, the
//! coordinator's Deployment and Service, service accounts and the least
//! rights they need, the token's Secret, the worker pod template, the
//! `MapReduceJob` CRD, and a volume or S3 and PostgreSQL for storage.
//!
//! `deploy/` holds the same objects as a kustomize base and overlays;
//! `quern-kube`'s tests check that the two agree.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, Namespace, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SeccompProfile, Secret, SecretKeySelector, SecretVolumeSource, SecurityContext, Service, ServiceAccount,
    ServicePort, ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResourceExt;
use serde::Serialize;

use crate::crd::MapReduceJob;
use crate::error::RenderError;
use crate::names::*;

/// The user id quern's containers run as (no root, as distroless' `nonroot`).
pub const RUN_AS_USER: i64 = 65532;

/// What to deploy, and how.
#[derive(Debug, Clone)]
pub struct DeploySettings {
    /// The namespace everything goes into (created by the manifests).
    pub namespace: String,
    /// The quern image: coordinator and workers run the same one.
    pub image: String,
    /// Where state and files live.
    pub storage: StorageLayout,
    /// The coordinator's container resources.
    pub coordinator: Resources,
    /// The worker pods the coordinator launches.
    pub workers: WorkerSettings,
    /// The cluster token workers and admins present.
    pub token: String,
    /// The key that signs REST API logins (at least 32 bytes).
    pub signing_key: Vec<u8>,
}

/// Where the coordinator keeps its state and files, and what workers read
/// and write.
#[derive(Debug, Clone)]
pub enum StorageLayout {
    /// One node: a PersistentVolumeClaim holds the SQLite state and the
    /// file area, mounted by the coordinator and every worker at `/data`.
    Volume {
        /// Its size, as Kubernetes writes quantities (`20Gi`).
        size: String,
        /// Its StorageClass (default: the cluster's default class).
        class: Option<String>,
    },
    /// Shared: state in PostgreSQL, files in S3 (or any S3-compatible store).
    External {
        /// The file area: an `s3://bucket/prefix`.
        files: String,
        /// A Secret the operator of the cluster creates with the `AWS_*`
        /// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
        /// `AWS_REGION`, and `AWS_ENDPOINT_URL` for a store that is not
        /// AWS), given to the coordinator and every worker.
        s3_secret: String,
        /// A Secret with the PostgreSQL URL in its key `url`.
        state_secret: String,
    },
}

/// A container's CPU and memory. Memory's request is its limit too: a
/// worker over it is killed (OOMKilled), never slowly swapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    /// CPU requested (`500m`, `2`).
    pub cpu: String,
    /// CPU limit, if any (none: the node's idle CPU may be used).
    pub cpu_limit: Option<String>,
    /// Memory requested and allowed (`2Gi`).
    pub memory: String,
}

/// The worker pods the coordinator launches, and when.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Attempts each runs at once.
    pub slots: u32,
    /// Each pod's resources.
    pub resources: Resources,
    /// Pods kept even when idle.
    pub min: u32,
    /// Pods at most.
    pub max: u32,
    /// An idle pod beyond `min` is removed after this long.
    pub idle_timeout: Duration,
}

impl DeploySettings {
    /// The defaults for `image`, with a single-node volume; the token and
    /// signing key as given.
    pub fn new(image: impl Into<String>, token: impl Into<String>, signing_key: Vec<u8>) -> Self {
        DeploySettings {
            namespace: "quern".to_owned(),
            image: image.into(),
            storage: StorageLayout::Volume { size: "20Gi".to_owned(), class: None },
            coordinator: Resources { cpu: "500m".to_owned(), cpu_limit: None, memory: "512Mi".to_owned() },
            workers: WorkerSettings {
                slots: 2,
                resources: Resources { cpu: "2".to_owned(), cpu_limit: None, memory: "2Gi".to_owned() },
                min: 0,
                max: 4,
                idle_timeout: Duration::from_secs(300),
            },
            token: token.into(),
            signing_key,
        }
    }

    /// The coordinator's address as workers and in-cluster clients reach it.
    pub fn coordinator_url(&self) -> String {
        format!("http://{COORDINATOR}.{}.svc:{GRPC_PORT}", self.namespace)
    }

    fn check(&self) -> Result<(), RenderError> {
        let bad = |field: &'static str, message: String| Err(RenderError::Setting { field, message });
        if !is_dns_label(&self.namespace) {
            return bad(
                "--namespace",
                format!("{:?} is not a DNS label (lowercase letters, digits, `-`)", self.namespace),
            );
        }
        if self.image.is_empty() || self.image.chars().any(char::is_whitespace) {
            return bad("--image", format!("{:?} is not an image reference", self.image));
        }
        if self.token.trim().is_empty() {
            return bad("--token-file", "the token is empty".to_owned());
        }
        if self.signing_key.len() < 32 {
            return bad("--signing-key-file", "the signing key must be at least 32 bytes".to_owned());
        }
        if self.workers.min > self.workers.max {
            return bad(
                "--min-workers",
                format!("{} is more than --max-workers {}", self.workers.min, self.workers.max),
            );
        }
        if self.workers.slots == 0 {
            return bad("--worker-slots", "must be at least 1".to_owned());
        }
        for (field, value) in [
            ("--coordinator-cpu", &self.coordinator.cpu),
            ("--coordinator-memory", &self.coordinator.memory),
            ("--worker-cpu", &self.workers.resources.cpu),
            ("--worker-memory", &self.workers.resources.memory),
        ]
        .into_iter()
        .chain(self.workers.resources.cpu_limit.iter().map(|v| ("--worker-cpu-limit", v)))
        .chain(self.coordinator.cpu_limit.iter().map(|v| ("--coordinator-cpu-limit", v)))
        {
            if !is_quantity(value) {
                return bad(field, format!("{value:?} is not a Kubernetes quantity (like 500m, 2, 512Mi, 2Gi)"));
            }
        }
        match &self.storage {
            StorageLayout::Volume { size, .. } if !is_quantity(size) => {
                bad("--volume-size", format!("{size:?} is not a Kubernetes quantity (like 20Gi)"))
            }
            StorageLayout::External { files, .. } if !files.starts_with("s3://") => {
                bad("--files", format!("{files:?}: the file area of a shared deployment is an s3:// prefix"))
            }
            _ => Ok(()),
        }
    }
}

/// One object of the manifests, ready to print.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Its kind, for tests and file names.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// The object.
    pub value: serde_json::Value,
}

/// Every object of a deployment with these settings, in the order
/// `kubectl apply` should create them.
pub fn render(settings: &DeploySettings) -> Result<Vec<Manifest>, RenderError> {
    settings.check()?;
    let ns = settings.namespace.as_str();
    let mut out = Vec::new();
    push(&mut out, "Namespace", ns, &Namespace { metadata: meta(None, ns, "namespace"), ..Default::default() })?;
    out.push(crd_manifest()?);
    for (name, component) in [(COORDINATOR, "coordinator"), (OPERATOR, "operator"), (WORKER, "worker")] {
        let account = ServiceAccount {
            metadata: meta(Some(ns), name, component),
            // Workers never call the API server.
            automount_service_account_token: Some(name != WORKER),
            ..Default::default()
        };
        push(&mut out, "ServiceAccount", name, &account)?;
    }
    push(&mut out, "Role", COORDINATOR, &role(ns, COORDINATOR, "coordinator", COORDINATOR_RIGHTS))?;
    push(&mut out, "RoleBinding", COORDINATOR, &binding(ns, COORDINATOR, "coordinator"))?;
    push(&mut out, "Role", OPERATOR, &role(ns, OPERATOR, "operator", OPERATOR_RIGHTS))?;
    push(&mut out, "RoleBinding", OPERATOR, &binding(ns, OPERATOR, "operator"))?;
    push(&mut out, "Secret", TOKEN_SECRET, &token_secret(settings))?;
    if let StorageLayout::Volume { size, class } = &settings.storage {
        push(&mut out, "PersistentVolumeClaim", DATA_CLAIM, &data_claim(ns, size, class.as_deref()))?;
    }
    let template = worker_pod_template(settings);
    let template_yaml = to_yaml(&[Manifest {
        kind: "Pod".to_owned(),
        name: String::new(),
        value: serde_json::to_value(&template).map_err(RenderError::Json)?,
    }])?;
    let config = ConfigMap {
        metadata: meta(Some(ns), WORKER_TEMPLATE, "worker"),
        data: Some(BTreeMap::from([(WORKER_TEMPLATE_KEY.to_owned(), template_yaml)])),
        ..Default::default()
    };
    push(&mut out, "ConfigMap", WORKER_TEMPLATE, &config)?;
    push(&mut out, "Service", COORDINATOR, &coordinator_service(ns))?;
    push(&mut out, "Deployment", COORDINATOR, &coordinator_deployment(settings))?;
    push(&mut out, "Deployment", OPERATOR, &operator_deployment(settings))?;
    Ok(out)
}

/// The PersistentVolumeClaim of a single-node deployment.
pub const DATA_CLAIM: &str = "quern-data";
/// Where the data volume is mounted.
pub const DATA_DIR: &str = "/data";
/// Where a worker pod keeps its scratch (an `emptyDir`).
pub const WORK_DIR: &str = "/work";
/// Where the coordinator finds the worker pod template.
pub const TEMPLATE_DIR: &str = "/etc/quern";

/// One rule of a Role, and why it is there: the docs print these lists, so
/// what the manifests grant and what the documentation justifies are one.
#[derive(Debug, Clone, Copy)]
pub struct Right {
    /// The API group (`""` for the core group).
    pub group: &'static str,
    /// The resource.
    pub resource: &'static str,
    /// The verbs.
    pub verbs: &'static [&'static str],
    /// Only these objects (empty: any).
    pub names: &'static [&'static str],
    /// Why.
    pub why: &'static str,
}

/// The coordinator's rights: worker pods, nothing else.
pub const COORDINATOR_RIGHTS: &[Right] = &[Right {
    group: "",
    resource: "pods",
    verbs: &["create", "delete", "get", "list", "watch"],
    names: &[],
    why: "launch worker pods when work is queued (create), remove idle or removed ones and ended ones once \
          reported (delete), adopt its own after a restart (list), and follow them to report a pod that cannot \
          start or dies with Kubernetes' reason (get, watch)",
}];

/// The Lease the operator's replicas elect a leader with.
pub const OPERATOR_LEASE: &str = "quern-operator";

/// The operator's rights: its resources and its Lease.
pub const OPERATOR_RIGHTS: &[Right] = &[
    Right {
        group: "quern.dev",
        resource: "mapreducejobs",
        verbs: &["get", "list", "watch", "patch"],
        names: &[],
        why: "follow MapReduceJobs (get, list, watch) and add or remove its finalizer, which holds a deleted \
              one until its job is killed (patch)",
    },
    Right {
        group: "quern.dev",
        resource: "mapreducejobs/status",
        verbs: &["patch"],
        names: &[],
        why: "write a job's progress into its status, with the resourceVersion it read (patch)",
    },
    Right {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["create"],
        names: &[],
        why: "create the Lease the first time (create cannot be limited to a name)",
    },
    Right {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "update"],
        names: &[OPERATOR_LEASE],
        why: "read and renew the one Lease, so that one replica leads at a time (get, update)",
    },
];

fn role(ns: &str, name: &str, component: &str, rights: &[Right]) -> Role {
    Role {
        metadata: meta(Some(ns), name, component),
        rules: Some(
            rights
                .iter()
                .map(|r| PolicyRule {
                    api_groups: Some(vec![r.group.to_owned()]),
                    resources: Some(vec![r.resource.to_owned()]),
                    resource_names: (!r.names.is_empty()).then(|| r.names.iter().map(|n| (*n).to_owned()).collect()),
                    verbs: r.verbs.iter().map(|v| (*v).to_owned()).collect(),
                    ..Default::default()
                })
                .collect(),
        ),
    }
}

fn binding(ns: &str, name: &str, component: &str) -> RoleBinding {
    RoleBinding {
        metadata: meta(Some(ns), name, component),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "Role".to_owned(),
            name: name.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: name.to_owned(),
            namespace: Some(ns.to_owned()),
            ..Default::default()
        }]),
    }
}

fn token_secret(settings: &DeploySettings) -> Secret {
    Secret {
        metadata: meta(Some(&settings.namespace), TOKEN_SECRET, "coordinator"),
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([
            (TOKEN_KEY.to_owned(), ByteString(settings.token.trim().as_bytes().to_vec())),
            (SIGNING_KEY_KEY.to_owned(), ByteString(settings.signing_key.clone())),
        ])),
        ..Default::default()
    }
}

fn data_claim(ns: &str, size: &str, class: Option<&str>) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: meta(Some(ns), DATA_CLAIM, "coordinator"),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: class.map(str::to_owned),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), Quantity(size.to_owned()))])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn coordinator_service(ns: &str) -> Service {
    let port = |name: &str, port: u16| ServicePort {
        name: Some(name.to_owned()),
        port: i32::from(port),
        target_port: Some(IntOrString::String(name.to_owned())),
        protocol: Some("TCP".to_owned()),
        ..Default::default()
    };
    Service {
        metadata: meta(Some(ns), COORDINATOR, "coordinator"),
        spec: Some(ServiceSpec {
            selector: Some(selector("coordinator")),
            ports: Some(vec![port("grpc", GRPC_PORT), port("http", HTTP_PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The coordinator's Deployment: one replica (one coordinator per state),
/// replaced rather than rolled (`Recreate`), so two never hold the state.
fn coordinator_deployment(settings: &DeploySettings) -> Deployment {
    let ns = settings.namespace.as_str();
    let w = &settings.workers;
    let mut args: Vec<String> = [
        "coordinator",
        "--listen",
        &format!("0.0.0.0:{GRPC_PORT}"),
        "--http",
        &format!("0.0.0.0:{HTTP_PORT}"),
        "--data-dir",
        DATA_DIR,
        "--signing-key",
        "/etc/quern-secret/signing-key",
        "--launcher",
        "kubernetes",
        "--worker-template",
        &format!("{TEMPLATE_DIR}/{WORKER_TEMPLATE_KEY}"),
        "--worker-image",
        &settings.image,
        "--worker-slots",
        &w.slots.to_string(),
        "--worker-cpu",
        &w.resources.cpu,
        "--worker-memory",
        &w.resources.memory,
        "--min-workers",
        &w.min.to_string(),
        "--max-workers",
        &w.max.to_string(),
        "--idle-timeout",
        &humantime::format_duration(w.idle_timeout).to_string(),
        "--advertise-url",
        &settings.coordinator_url(),
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    if let Some(limit) = &w.resources.cpu_limit {
        args.extend(["--worker-cpu-limit".to_owned(), limit.clone()]);
    }
    let mut env = vec![
        secret_env("QUERN_TOKEN", TOKEN_SECRET, TOKEN_KEY),
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_UID", "metadata.uid"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
    ];
    let mut volumes = vec![
        Volume {
            name: "template".to_owned(),
            config_map: Some(ConfigMapVolumeSource { name: WORKER_TEMPLATE.to_owned(), ..Default::default() }),
            ..Default::default()
        },
        Volume {
            name: "secret".to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(TOKEN_SECRET.to_owned()),
                // Read by quern's user through the pod's fsGroup.
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        },
        empty_dir("tmp"),
    ];
    let mut mounts = vec![
        mount("template", TEMPLATE_DIR, true),
        mount("secret", "/etc/quern-secret", true),
        mount("tmp", "/tmp", false),
    ];
    let mut env_from = None;
    match &settings.storage {
        StorageLayout::Volume { .. } => {
            args.extend(["--files".to_owned(), format!("{DATA_DIR}/files")]);
            volumes.push(claim_volume());
            mounts.push(mount("data", DATA_DIR, false));
        }
        StorageLayout::External { files, s3_secret, state_secret } => {
            args.extend(["--files".to_owned(), files.clone()]);
            env.push(secret_env("QUERN_STATE", state_secret, "url"));
            env_from = Some(vec![k8s_openapi::api::core::v1::EnvFromSource {
                secret_ref: Some(k8s_openapi::api::core::v1::SecretEnvSource {
                    name: s3_secret.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }]);
            volumes.push(empty_dir("data"));
            mounts.push(mount("data", DATA_DIR, false));
        }
    }
    let probe = |initial: i32, period: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(HEALTH_PATH.to_owned()),
            port: IntOrString::String("http".to_owned()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(initial),
        period_seconds: Some(period),
        ..Default::default()
    };
    let container = Container {
        name: "coordinator".to_owned(),
        image: Some(settings.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        args: Some(args),
        env: Some(env),
        env_from,
        ports: Some(vec![container_port("grpc", GRPC_PORT), container_port("http", HTTP_PORT)]),
        readiness_probe: Some(probe(2, 5)),
        liveness_probe: Some(Probe { failure_threshold: Some(6), ..probe(10, 10) }),
        resources: Some(resources(&settings.coordinator)),
        security_context: Some(container_security()),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    Deployment {
        metadata: meta(Some(ns), COORDINATOR, "coordinator"),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            strategy: Some(DeploymentStrategy { type_: Some("Recreate".to_owned()), ..Default::default() }),
            selector: LabelSelector { match_labels: Some(selector("coordinator")), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels("coordinator")), ..Default::default() }),
                spec: Some(PodSpec {
                    service_account_name: Some(COORDINATOR.to_owned()),
                    security_context: Some(pod_security()),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The operator's Deployment: two replicas, one leading (the Lease), the
/// other ready to take over.
fn operator_deployment(settings: &DeploySettings) -> Deployment {
    let ns = settings.namespace.as_str();
    let container = Container {
        name: "operator".to_owned(),
        image: Some(settings.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        args: Some(
            ["operator", "--coordinator", &settings.coordinator_url(), "--lease", OPERATOR_LEASE]
                .into_iter()
                .map(str::to_owned)
                .collect(),
        ),
        env: Some(vec![
            secret_env("QUERN_TOKEN", TOKEN_SECRET, TOKEN_KEY),
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
        ]),
        resources: Some(resources(&Resources { cpu: "100m".to_owned(), cpu_limit: None, memory: "128Mi".to_owned() })),
        security_context: Some(container_security()),
        ..Default::default()
    };
    Deployment {
        metadata: meta(Some(ns), OPERATOR, "operator"),
        spec: Some(DeploymentSpec {
            replicas: Some(2),
            selector: LabelSelector { match_labels: Some(selector("operator")), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels("operator")), ..Default::default() }),
                spec: Some(PodSpec {
                    service_account_name: Some(OPERATOR.to_owned()),
                    security_context: Some(pod_security()),
                    containers: vec![container],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The worker pod template: what every worker pod has before the launcher
/// names it and gives it its arguments, resources and labels. Users may
/// edit it in its ConfigMap (node selectors, tolerations, more volumes).
pub fn worker_pod_template(settings: &DeploySettings) -> Pod {
    let mut volumes = vec![empty_dir("work"), empty_dir("tmp")];
    let mut mounts = vec![mount("work", WORK_DIR, false), mount("tmp", "/tmp", false)];
    let mut env_from = None;
    match &settings.storage {
        StorageLayout::Volume { .. } => {
            volumes.push(claim_volume());
            mounts.push(mount("data", DATA_DIR, false));
        }
        StorageLayout::External { s3_secret, .. } => {
            env_from = Some(vec![k8s_openapi::api::core::v1::EnvFromSource {
                secret_ref: Some(k8s_openapi::api::core::v1::SecretEnvSource {
                    name: s3_secret.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }]);
        }
    }
    Pod {
        metadata: ObjectMeta { labels: Some(labels("worker")), ..Default::default() },
        spec: Some(PodSpec {
            service_account_name: Some(WORKER.to_owned()),
            automount_service_account_token: Some(false),
            // A worker pod that dies is replaced by the launcher, which
            // reports why; restarting it in place would hide that.
            restart_policy: Some("Never".to_owned()),
            // The worker's own drain (10 s) and some.
            termination_grace_period_seconds: Some(30),
            security_context: Some(pod_security()),
            containers: vec![Container {
                name: WORKER_CONTAINER.to_owned(),
                image: Some(settings.image.clone()),
                image_pull_policy: Some("IfNotPresent".to_owned()),
                env_from,
                ports: Some(vec![container_port("shuffle", SHUFFLE_PORT)]),
                security_context: Some(container_security()),
                volume_mounts: Some(mounts),
                ..Default::default()
            }],
            volumes: Some(volumes),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The manifests as one YAML stream, `---` between objects.
pub fn to_yaml(manifests: &[Manifest]) -> Result<String, RenderError> {
    let mut out = String::new();
    for (i, manifest) in manifests.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_saphyr::to_string(&manifest.value).map_err(|e| RenderError::Yaml(e.to_string()))?);
    }
    Ok(out)
}

fn push<T: Serialize>(out: &mut Vec<Manifest>, kind: &str, name: &str, object: &T) -> Result<(), RenderError> {
    out.push(manifest(kind, name, object)?);
    Ok(())
}

/// The `MapReduceJob` CRD as a manifest (`quern k8s crd`).
pub fn crd_manifest() -> Result<Manifest, RenderError> {
    manifest("CustomResourceDefinition", "mapreducejobs.quern.dev", &MapReduceJob::crd())
}

fn manifest<T: Serialize>(kind: &str, name: &str, object: &T) -> Result<Manifest, RenderError> {
    let mut value = serde_json::to_value(object).map_err(RenderError::Json)?;
    // k8s-openapi's types serialise without their type meta; kubectl needs it.
    if let serde_json::Value::Object(map) = &mut value {
        let api_version = match kind {
            "Deployment" => "apps/v1",
            "Role" | "RoleBinding" => "rbac.authorization.k8s.io/v1",
            "CustomResourceDefinition" => "apiextensions.k8s.io/v1",
            _ => "v1",
        };
        let mut typed = serde_json::Map::new();
        typed.insert("apiVersion".to_owned(), api_version.into());
        typed.insert("kind".to_owned(), kind.into());
        for (k, v) in std::mem::take(map) {
            if k != "apiVersion" && k != "kind" {
                typed.insert(k, v);
            }
        }
        *map = typed;
    }
    integral_numbers(&mut value);
    Ok(Manifest { kind: kind.to_owned(), name: name.to_owned(), value })
}

/// Writes floats that are whole numbers as integers (schemars gives
/// `minimum: 0.0` for an unsigned field), as people and kubectl write them.
fn integral_numbers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) => {
            if let Some(f) = n.as_f64()
                && n.is_f64()
                && f.fract() == 0.0
                && f.abs() < 9.0e15
            {
                *n = serde_json::Number::from(f as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

fn labels(component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(APP_LABEL.to_owned(), APP.to_owned()), (COMPONENT_LABEL.to_owned(), component.to_owned())])
}

fn selector(component: &str) -> BTreeMap<String, String> {
    labels(component)
}

fn meta(ns: Option<&str>, name: &str, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: ns.map(str::to_owned),
        labels: Some(labels(component)),
        ..Default::default()
    }
}

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.to_owned(), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume { name: name.to_owned(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() }
}

fn claim_volume() -> Volume {
    Volume {
        name: "data".to_owned(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: DATA_CLAIM.to_owned(),
            read_only: Some(false),
        }),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

fn container_port(name: &str, port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: i32::from(port),
        protocol: Some("TCP".to_owned()),
        ..Default::default()
    }
}

/// Requests and limits; memory's request is its limit.
pub fn resources(r: &Resources) -> ResourceRequirements {
    let mut limits = BTreeMap::from([("memory".to_owned(), Quantity(r.memory.clone()))]);
    if let Some(cpu) = &r.cpu_limit {
        limits.insert("cpu".to_owned(), Quantity(cpu.clone()));
    }
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity(r.cpu.clone())),
            ("memory".to_owned(), Quantity(r.memory.clone())),
        ])),
        limits: Some(limits),
        ..Default::default()
    }
}

fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS_USER),
        run_as_group: Some(RUN_AS_USER),
        // Volumes are writable by quern's user.
        fs_group: Some(RUN_AS_USER),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".to_owned(), ..Default::default() }),
        ..Default::default()
    }
}

fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_owned()]), ..Default::default() }),
        ..Default::default()
    }
}

/// Whether `s` is an RFC 1123 label, as Kubernetes names namespaces.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is a Kubernetes quantity (`500m`, `2`, `1.5`, `512Mi`, `2Gi`, `1e3`).
pub fn is_quantity(s: &str) -> bool {
    let digits_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    let number_ok = !number.is_empty() && number.matches('.').count() <= 1 && number != ".";
    let suffix_ok =
        matches!(suffix, "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei")
            || (suffix.len() > 1
                && (suffix.starts_with('e') || suffix.starts_with('E'))
                && suffix[1..].bytes().all(|b| b.is_ascii_digit()));
    number_ok && suffix_ok
}
