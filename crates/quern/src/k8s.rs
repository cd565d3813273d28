//! `quern k8s`: the manifests that deploy quern on Kubernetes, and the
//! `MapReduceJob` CRD.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use quern_kube::{DeploySettings, Resources, StorageLayout};

use crate::cli::Refused;

/// `quern k8s`'s commands.
#[derive(Subcommand)]
pub(crate) enum K8sCommand {
    /// Print the manifests that deploy quern (a YAML stream for `kubectl
    /// apply -f -`): namespace, coordinator Deployment and Service, service
    /// accounts with the least rights they need, the token's Secret, the
    /// worker pod template, the MapReduceJob CRD, and storage.
    Render(Box<RenderArgs>),
    /// Print the MapReduceJob CustomResourceDefinition.
    Crd,
}

/// Where a deployment keeps its state and files.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum StorageArg {
    /// One node: a PersistentVolumeClaim for SQLite and the file area,
    /// mounted by the coordinator and every worker.
    Volume,
    /// Shared: PostgreSQL for the state, S3 for files (Secrets you create).
    S3,
}

/// `quern k8s render`'s arguments.
#[derive(Args)]
pub(crate) struct RenderArgs {
    /// The namespace (the manifests create it).
    #[arg(long, default_value = "quern")]
    namespace: String,
    /// The quern image, for the coordinator and the worker pods. Pin a
    /// version (the default is this binary's) or a digest, never `latest`.
    #[arg(long, default_value = concat!("localhost/quern:", env!("CARGO_PKG_VERSION")))]
    image: String,
    /// Where state and files live.
    #[arg(long, value_enum, default_value = "volume")]
    storage: StorageArg,
    /// With --storage volume: the claim's size.
    #[arg(long, default_value = "20Gi")]
    volume_size: String,
    /// With --storage volume: its StorageClass (default: the cluster's).
    #[arg(long)]
    storage_class: Option<String>,
    /// With --storage s3: the file area, as s3://bucket/prefix.
    #[arg(long, required_if_eq("storage", "s3"))]
    files: Option<String>,
    /// With --storage s3: the Secret holding the AWS_* variables.
    #[arg(long, default_value = "quern-s3")]
    s3_secret: String,
    /// With --storage s3: the Secret holding the PostgreSQL URL (key `url`).
    #[arg(long, default_value = "quern-postgres")]
    state_secret: String,
    /// The coordinator's CPU request.
    #[arg(long, default_value = "500m")]
    coordinator_cpu: String,
    /// The coordinator's memory (request and limit).
    #[arg(long, default_value = "512Mi")]
    coordinator_memory: String,
    /// Each worker pod's CPU request.
    #[arg(long, default_value = "2")]
    worker_cpu: String,
    /// Each worker pod's CPU limit (default: none).
    #[arg(long)]
    worker_cpu_limit: Option<String>,
    /// Each worker pod's memory (request and limit: over it, a pod is OOMKilled).
    #[arg(long, default_value = "2Gi")]
    worker_memory: String,
    /// Attempts each worker pod runs at once.
    #[arg(long, default_value_t = 2)]
    worker_slots: u32,
    /// Worker pods kept even when idle.
    #[arg(long, default_value_t = 0)]
    min_workers: u32,
    /// Worker pods at most.
    #[arg(long, default_value_t = 4)]
    max_workers: u32,
    /// An idle worker pod beyond --min-workers goes after this long.
    #[arg(long, default_value = "5m", value_parser = crate::cluster::parse_duration)]
    idle_timeout: Duration,
    /// The cluster token, from this file (default: a new random one, in
    /// the Secret only: read it back with `kubectl get secret`).
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// The REST API's signing key, from this file (at least 32 bytes;
    /// default: a new random one).
    #[arg(long, value_name = "PATH")]
    signing_key_file: Option<PathBuf>,
}

/// Runs `quern k8s …`.
pub(crate) fn k8s(command: K8sCommand) -> anyhow::Result<()> {
    match command {
        K8sCommand::Crd => {
            let crd = quern_kube::crd_manifest().context("rendering the CRD")?;
            print!("{}", quern_kube::to_yaml(&[crd])?);
            Ok(())
        }
        K8sCommand::Render(args) => {
            let settings = args.settings()?;
            let manifests = quern_kube::render(&settings).map_err(|e| Refused(e.to_string()))?;
            print!("{}", quern_kube::to_yaml(&manifests)?);
            Ok(())
        }
    }
}

impl RenderArgs {
    fn settings(self) -> anyhow::Result<DeploySettings> {
        let token = match &self.token_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading the token {}", path.display()))?
                .trim()
                .to_owned(),
            None => hex(&quern_coordinator::access::new_signing_key()),
        };
        let signing_key = match &self.signing_key_file {
            Some(path) => std::fs::read(path).with_context(|| format!("reading the signing key {}", path.display()))?,
            None => quern_coordinator::access::new_signing_key(),
        };
        let mut settings = DeploySettings::new(self.image, token, signing_key);
        settings.namespace = self.namespace;
        settings.storage = match self.storage {
            StorageArg::Volume => StorageLayout::Volume { size: self.volume_size, class: self.storage_class },
            StorageArg::S3 => StorageLayout::External {
                // clap requires --files with --storage s3.
                files: self.files.unwrap_or_default(),
                s3_secret: self.s3_secret,
                state_secret: self.state_secret,
            },
        };
        settings.coordinator =
            Resources { cpu: self.coordinator_cpu, cpu_limit: None, memory: self.coordinator_memory };
        settings.workers.resources =
            Resources { cpu: self.worker_cpu, cpu_limit: self.worker_cpu_limit, memory: self.worker_memory };
        settings.workers.slots = self.worker_slots;
        settings.workers.min = self.min_workers;
        settings.workers.max = self.max_workers;
        settings.workers.idle_timeout = self.idle_timeout;
        Ok(settings)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `quern coordinator --launcher kubernetes`'s flags: the worker pods.
#[derive(Args)]
pub(crate) struct PodArgs {
    /// With --launcher kubernetes: the worker pod template, a Pod manifest
    /// in YAML (the manifests mount it from the quern-worker-template
    /// ConfigMap). Volumes, node selectors and tolerations come from it; the
    /// launcher sets the `worker` container's image, arguments, token and
    /// resources. Default: a `worker` container with an emptyDir at /work.
    #[arg(long, value_name = "PATH")]
    worker_template: Option<PathBuf>,
    /// With --launcher kubernetes: the worker pods' image (default: the
    /// template's).
    #[arg(long, value_name = "IMAGE")]
    worker_image: Option<String>,
    /// With --launcher kubernetes: each worker pod's CPU request.
    #[arg(long, default_value = "1")]
    worker_cpu: String,
    /// With --launcher kubernetes: each worker pod's CPU limit (default: none).
    #[arg(long)]
    worker_cpu_limit: Option<String>,
    /// With --launcher kubernetes: each worker pod's memory, request and
    /// limit (over it, Kubernetes kills the pod: OOMKilled).
    #[arg(long, default_value = "2Gi")]
    worker_memory: String,
    /// With --launcher kubernetes: the namespace of the worker pods
    /// (default: the coordinator pod's, else the kubeconfig context's).
    #[arg(long = "worker-namespace", env = "POD_NAMESPACE", value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// With --launcher kubernetes: the Secret whose key `token` is the
    /// cluster token, given to every worker pod.
    #[arg(long, default_value = quern_kube::names::TOKEN_SECRET)]
    token_secret: String,
    /// With --launcher kubernetes: names and labels this coordinator's
    /// pods (`NAME-worker-…`, `quern.dev/launcher=NAME`), so that two
    /// installations in one namespace keep apart.
    #[arg(long, default_value = "quern")]
    launcher_name: String,
}

impl PodArgs {
    /// The pod launcher these flags describe, connected to the cluster
    /// (in-cluster, or the kubeconfig: KUBECONFIG or ~/.kube/config).
    pub(crate) async fn launcher(
        &self,
        coordinator_url: &str,
        slots: u32,
        extra_args: &[String],
    ) -> anyhow::Result<std::sync::Arc<dyn quern_coordinator::launch::WorkerLauncher>> {
        let refuse = |m: String| anyhow::Error::new(Refused(m));
        for (flag, value) in [("--worker-cpu", &self.worker_cpu), ("--worker-memory", &self.worker_memory)]
            .into_iter()
            .chain(self.worker_cpu_limit.iter().map(|v| ("--worker-cpu-limit", v)))
        {
            if !quern_kube::deploy::is_quantity(value) {
                return Err(refuse(format!("{flag} {value:?}: not a Kubernetes quantity (like 500m, 2, 512Mi, 2Gi)")));
            }
        }
        if !quern_kube::deploy::is_dns_label(&self.launcher_name) || self.launcher_name.len() > 40 {
            return Err(refuse(format!(
                "--launcher-name {:?}: use up to 40 lowercase letters, digits and `-`",
                self.launcher_name
            )));
        }
        let template = match &self.worker_template {
            Some(path) => quern_kube::read_template(path).map_err(|e| refuse(e.to_string()))?,
            None => Default::default(),
        };
        if self.worker_image.is_none() && quern_kube::template_image(&template).is_none() {
            return Err(refuse(
                "--launcher kubernetes needs an image: --worker-image, or a `worker` container with one in \
                 --worker-template"
                    .to_owned(),
            ));
        }
        // The coordinator's own pod (the manifests give its name and uid)
        // owns the workers, so that they go with it.
        let owner = match (std::env::var("POD_NAME"), std::env::var("POD_UID")) {
            (Ok(name), Ok(uid)) if !name.is_empty() && !uid.is_empty() => Some(quern_kube::PodOwner { name, uid }),
            _ => None,
        };
        let settings = quern_kube::PodSettings {
            launcher_name: self.launcher_name.clone(),
            image: self.worker_image.clone(),
            resources: quern_kube::Resources {
                cpu: self.worker_cpu.clone(),
                cpu_limit: self.worker_cpu_limit.clone(),
                memory: self.worker_memory.clone(),
            },
            slots,
            coordinator_url: coordinator_url.to_owned(),
            extra_args: extra_args.to_vec(),
            token_secret: self.token_secret.clone(),
            owner,
        };
        let launcher = quern_kube::connect(self.namespace.clone(), template, settings).await?;
        Ok(std::sync::Arc::new(launcher))
    }
}

/// `quern operator`'s arguments.
#[derive(Args)]
pub(crate) struct OperatorArgs {
    /// The coordinator, as http://host:port.
    #[arg(long, env = "QUERN_COORDINATOR", default_value = "http://quern-coordinator:7070")]
    coordinator: String,
    /// The cluster token (the operator submits and kills jobs as an admin).
    #[arg(long, env = "QUERN_TOKEN", hide_env_values = true, value_parser = crate::cli::parse_token)]
    token: String,
    /// The namespace whose MapReduceJobs it runs (default: its pod's, else
    /// the kubeconfig context's).
    #[arg(long, env = "POD_NAMESPACE")]
    namespace: Option<String>,
    /// The Lease the replicas elect a leader with: one reconciles at a time.
    #[arg(long, default_value = quern_kube::deploy::OPERATOR_LEASE)]
    lease: String,
    /// This replica's name in the Lease (default: its pod's name, else the
    /// host name and process id).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
}

/// Runs `quern operator` until SIGINT or SIGTERM.
pub(crate) fn operator(args: OperatorArgs) -> anyhow::Result<()> {
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    crate::cluster::runtime()?.block_on(async move {
        // Connects lazily, on the runtime.
        let jobs = quern_kube::grpc::GrpcJobService::new(&args.coordinator, &args.token)
            .map_err(|e| anyhow::Error::new(Refused(e.to_string())))?;
        quern_kube::operator::serve(
            args.namespace.clone(),
            std::sync::Arc::new(jobs),
            &args.lease,
            &identity,
            crate::cluster::shutdown_signal(),
        )
        .await?;
        tracing::info!("operator stopped");
        Ok(())
    })
}
