//! Workers as local processes: `quern coordinator --launcher local` starts
//! `quern worker` children on this machine as work arrives. The second
//! [`WorkerLauncher`] beside Kubernetes' pods: one machine scaled by the
//! same autoscaler, and the launcher loop tested without a cluster.

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use quern_core::WorkerId;
use tokio::process::Child;
use tokio::sync::mpsc;

use super::{LaunchError, LaunchEvent, LaunchReason, WorkerLauncher};

/// Starts each worker as `program ARGS… --id ID`, where `{id}` in an
/// argument is replaced by the worker's id (a work directory of its own).
pub struct ProcessLauncher {
    program: OsString,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    prefix: String,
    next: AtomicU32,
    children: Mutex<HashMap<WorkerId, Child>>,
    /// Wakes the follower when a child is added.
    added: tokio::sync::Notify,
}

impl ProcessLauncher {
    /// Workers named `PREFIX-1`, `PREFIX-2`, …, started as `program args…`.
    pub fn new(program: impl Into<OsString>, args: Vec<String>, prefix: impl Into<String>) -> ProcessLauncher {
        ProcessLauncher {
            program: program.into(),
            args,
            envs: Vec::new(),
            prefix: prefix.into(),
            next: AtomicU32::new(1),
            children: Mutex::new(HashMap::new()),
            added: tokio::sync::Notify::new(),
        }
    }

    /// Sets an environment variable for every worker it starts (the
    /// cluster token, kept off the command line).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> ProcessLauncher {
        self.envs.push((key.into(), value.into()));
        self
    }

    fn children(&self) -> std::sync::MutexGuard<'_, HashMap<WorkerId, Child>> {
        self.children.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl WorkerLauncher for ProcessLauncher {
    fn describe(&self) -> String {
        format!("local processes ({})", std::path::Path::new(&self.program).display())
    }

    async fn launch(&self, _reason: LaunchReason) -> Result<WorkerId, LaunchError> {
        let id = WorkerId::new(format!("{}-{}", self.prefix, self.next.fetch_add(1, Ordering::Relaxed)));
        let args = self.args.iter().map(|a| a.replace("{id}", id.as_str()));
        let child = tokio::process::Command::new(&self.program)
            .args(args)
            .arg("--id")
            .arg(id.as_str())
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                LaunchError::Refused(format!("starting {}: {e}", std::path::Path::new(&self.program).display()))
            })?;
        self.children().insert(id.clone(), child);
        self.added.notify_one();
        Ok(id)
    }

    async fn remove(&self, worker: &WorkerId) -> Result<(), LaunchError> {
        let pid = self.children().get(worker).and_then(Child::id);
        if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
            // SIGTERM: the worker drains, as a pod's container would.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        }
        Ok(())
    }

    async fn existing(&self) -> Result<Vec<WorkerId>, LaunchError> {
        Ok(self.children().keys().cloned().collect())
    }

    async fn follow(&self, events: mpsc::Sender<LaunchEvent>) -> Result<(), LaunchError> {
        loop {
            let mut done = Vec::new();
            {
                let mut children = self.children();
                for (id, child) in children.iter_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        done.push((id.clone(), status));
                    }
                }
                for (id, _) in &done {
                    children.remove(id);
                }
            }
            for (worker, status) in done {
                let (reason, message) = match status.code() {
                    Some(0) => ("Completed".to_owned(), "exited 0".to_owned()),
                    Some(code) => ("Error".to_owned(), format!("exited {code}")),
                    None => ("Killed".to_owned(), format!("{status}")),
                };
                if events.send(LaunchEvent::Ended { worker, reason, message }).await.is_err() {
                    return Ok(());
                }
            }
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
                () = self.added.notified() => {}
            }
        }
    }
}
