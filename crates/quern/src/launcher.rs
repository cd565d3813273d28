//! `quern coordinator --launcher …`: workers started on demand, as local
//! processes or as Kubernetes pods, and the limits they are started within.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use quern_coordinator::launch::{ProcessLauncher, ScalePolicy, WorkerLauncher};

use crate::cluster::parse_duration;

/// Where launched workers run.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LauncherKind {
    /// No workers are launched: they are started by hand (the default).
    None,
    /// `quern worker` processes on this machine.
    Local,
    /// Pods in the coordinator's namespace (in-cluster, or the kubeconfig's
    /// context), from --worker-template.
    Kubernetes,
}

/// The coordinator's launcher flags.
#[derive(Args)]
pub(crate) struct LauncherArgs {
    /// Launch workers when work is queued and remove them when idle.
    #[arg(long, value_enum, default_value = "none")]
    launcher: LauncherKind,
    /// Launched workers kept even when idle.
    #[arg(long, default_value_t = 0)]
    min_workers: u32,
    /// Launched workers at most (those added by hand included).
    #[arg(long, default_value_t = 4)]
    max_workers: u32,
    /// A launched worker idle this long (nothing running, no map output a
    /// running job needs) is removed, down to --min-workers.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// A launched worker that has not registered this long after its
    /// launch is removed; launches then back off (5 s, doubling, up to 5 min).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    worker_start_timeout: Duration,
    /// Attempts each launched worker runs at once.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    worker_slots: u32,
    /// An argument added to every launched worker's command line, like
    /// --worker-arg=--allow-exec (repeat for more).
    #[arg(long = "worker-arg", value_name = "ARG", allow_hyphen_values = true)]
    worker_args: Vec<String>,
    /// How launched workers reach this coordinator (default: the gRPC
    /// address bound, with 127.0.0.1 for an unspecified address).
    #[arg(long, value_name = "URL")]
    advertise_url: Option<String>,
    #[cfg(feature = "kubernetes")]
    #[command(flatten)]
    pods: crate::k8s::PodArgs,
}

impl LauncherArgs {
    /// The launcher these flags ask for, if any, and its limits.
    pub(crate) async fn launcher(
        &self,
        bound: SocketAddr,
        data_dir: &Path,
        token: &str,
    ) -> anyhow::Result<Option<(Arc<dyn WorkerLauncher>, ScalePolicy)>> {
        if self.min_workers > self.max_workers {
            anyhow::bail!(crate::cli::Refused(format!(
                "--min-workers {} is more than --max-workers {}",
                self.min_workers, self.max_workers
            )));
        }
        let mut policy =
            ScalePolicy::new(self.min_workers, self.max_workers, self.worker_slots, millis(self.idle_timeout));
        policy.start_timeout_ms = millis(self.worker_start_timeout);
        let coordinator = self.advertise_url.clone().unwrap_or_else(|| {
            let host = if bound.ip().is_unspecified() { "127.0.0.1".to_owned() } else { bound.ip().to_string() };
            format!("http://{host}:{}", bound.port())
        });
        let launcher: Arc<dyn WorkerLauncher> = match self.launcher {
            LauncherKind::None => return Ok(None),
            LauncherKind::Local => {
                let exe = std::env::current_exe().context("finding this program, to start workers with")?;
                let work: PathBuf = data_dir.join("workers");
                let mut args = vec![
                    "worker".to_owned(),
                    "--coordinator".to_owned(),
                    coordinator,
                    "--slots".to_owned(),
                    self.worker_slots.to_string(),
                    "--work-dir".to_owned(),
                    format!("{}/{{id}}", work.display()),
                ];
                args.extend(self.worker_args.iter().cloned());
                Arc::new(ProcessLauncher::new(exe, args, "local-worker").env("QUERN_TOKEN", token))
            }
            #[cfg(feature = "kubernetes")]
            LauncherKind::Kubernetes => self.pods.launcher(&coordinator, self.worker_slots, &self.worker_args).await?,
            #[cfg(not(feature = "kubernetes"))]
            LauncherKind::Kubernetes => {
                anyhow::bail!(crate::cli::Refused(crate::no_k8s::NO_KUBERNETES.to_owned()))
            }
        };
        Ok(Some((launcher, policy)))
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
