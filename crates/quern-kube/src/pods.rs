//! Worker pods: the coordinator's [`WorkerLauncher`] on Kubernetes.
//!
//! Each worker is a pod made from the template (`--worker-template`, the
//! `quern-worker-template` ConfigMap of the manifests): the launcher names
//! it, labels it with its worker id, the job whose work launched it and the
//! launcher's name, owns it by the coordinator's pod, gives its `worker`
//! container the image, resources and arguments, and the cluster token
//! from a Secret. Pods are followed with a watch: one that cannot start
//! (`ErrImagePull`, `Unschedulable`) or ends (`OOMKilled`, `Evicted`) is
//! reported with Kubernetes' own reason, and an ended pod is deleted once
//! reported (its reason is kept in the job's events).

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodSpec, SecretKeySelector,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use quern_coordinator::launch::{LaunchError, LaunchEvent, LaunchReason, WorkerLauncher};
use quern_core::WorkerId;
use tokio::sync::mpsc;

use crate::deploy::{Resources, WORK_DIR, resources};
use crate::error::SetupError;
use crate::names::*;

/// What every launched pod gets, beyond its template.
#[derive(Debug, Clone)]
pub struct PodSettings {
    /// Names pods `NAME-worker-…` and labels them `quern.dev/launcher=NAME`,
    /// so that two quern installations in a namespace keep apart.
    pub launcher_name: String,
    /// The image, if the template's `worker` container has none or it
    /// should change.
    pub image: Option<String>,
    /// The `worker` container's resources (replacing the template's).
    pub resources: Resources,
    /// Attempts each worker runs at once.
    pub slots: u32,
    /// How workers reach the coordinator (`http://quern-coordinator:7070`).
    pub coordinator_url: String,
    /// More arguments for `quern worker`.
    pub extra_args: Vec<String>,
    /// The Secret holding the cluster token (key `token`).
    pub token_secret: String,
    /// The coordinator's own pod, which owns the worker pods (they go when
    /// it goes), when it runs in the cluster.
    pub owner: Option<PodOwner>,
}

/// A pod that owns the worker pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodOwner {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
}

/// Launches worker pods in one namespace.
pub struct PodLauncher {
    pods: Api<Pod>,
    namespace: String,
    template: Pod,
    settings: PodSettings,
    /// Part of each pod's name: the launcher's start, so that a restarted
    /// coordinator never reuses a name.
    epoch: String,
    next: AtomicU64,
    /// Pods launched or adopted and not yet reported ended.
    known: Mutex<HashSet<String>>,
}

impl PodLauncher {
    /// A launcher creating pods in `namespace` through `client`.
    pub fn new(client: kube::Client, namespace: &str, template: Pod, settings: PodSettings) -> PodLauncher {
        let epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        PodLauncher {
            pods: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            template,
            settings,
            epoch: radix36(epoch),
            next: AtomicU64::new(1),
            known: Mutex::new(HashSet::new()),
        }
    }

    /// The label selector of this launcher's pods.
    pub fn selector(&self) -> String {
        format!("{LAUNCHER_LABEL}={}", self.settings.launcher_name)
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The pod for a new worker named `name`, launched for `reason`.
    pub fn pod_for(&self, name: &str, reason: LaunchReason) -> Pod {
        let s = &self.settings;
        let mut pod = self.template.clone();
        let meta = &mut pod.metadata;
        meta.name = Some(name.to_owned());
        meta.generate_name = None;
        meta.namespace = Some(self.namespace.clone());
        meta.resource_version = None;
        meta.uid = None;
        let labels = meta.labels.get_or_insert_with(BTreeMap::new);
        labels.insert(APP_LABEL.to_owned(), APP.to_owned());
        labels.insert(COMPONENT_LABEL.to_owned(), "worker".to_owned());
        labels.insert(MANAGED_BY_LABEL.to_owned(), COORDINATOR.to_owned());
        labels.insert(LAUNCHER_LABEL.to_owned(), s.launcher_name.clone());
        labels.insert(WORKER_LABEL.to_owned(), name.to_owned());
        let job = match reason {
            LaunchReason::Demand(Some(job)) => job.0.to_string(),
            LaunchReason::Demand(None) => "none".to_owned(),
            LaunchReason::ByHand => "by-hand".to_owned(),
        };
        labels.insert(JOB_LABEL.to_owned(), job);
        if let Some(owner) = &s.owner {
            meta.owner_references = Some(vec![OwnerReference {
                api_version: "v1".to_owned(),
                kind: "Pod".to_owned(),
                name: owner.name.clone(),
                uid: owner.uid.clone(),
                controller: Some(true),
                block_owner_deletion: Some(false),
            }]);
        }
        let spec = pod.spec.get_or_insert_with(PodSpec::default);
        spec.restart_policy = Some("Never".to_owned());
        let at = spec.containers.iter().position(|c| c.name == WORKER_CONTAINER);
        let at = match at {
            Some(at) => at,
            None => {
                spec.containers.insert(0, Container { name: WORKER_CONTAINER.to_owned(), ..Default::default() });
                0
            }
        };
        // A work directory: the template's mount at /work, or an emptyDir.
        let has_work_mount =
            spec.containers[at].volume_mounts.as_ref().is_some_and(|m| m.iter().any(|m| m.mount_path == WORK_DIR));
        if !has_work_mount {
            let volumes = spec.volumes.get_or_insert_with(Vec::new);
            volumes.push(Volume {
                name: "quern-work".to_owned(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            });
            spec.containers[at].volume_mounts.get_or_insert_with(Vec::new).push(VolumeMount {
                name: "quern-work".to_owned(),
                mount_path: WORK_DIR.to_owned(),
                ..Default::default()
            });
        }
        let container = &mut spec.containers[at];
        if let Some(image) = &s.image {
            container.image = Some(image.clone());
        }
        container.args = Some(
            [
                "worker",
                "--coordinator",
                &s.coordinator_url,
                "--id",
                name,
                "--slots",
                &s.slots.to_string(),
                "--work-dir",
                WORK_DIR,
                "--listen",
                &format!("0.0.0.0:{SHUFFLE_PORT}"),
                "--advertise",
                "$(POD_IP)",
            ]
            .into_iter()
            .map(str::to_owned)
            .chain(s.extra_args.iter().cloned())
            .collect(),
        );
        let env = container.env.get_or_insert_with(Vec::new);
        env.retain(|e| e.name != "POD_IP" && e.name != "QUERN_TOKEN");
        env.push(EnvVar {
            name: "POD_IP".to_owned(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector { field_path: "status.podIP".to_owned(), ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        });
        env.push(EnvVar {
            name: "QUERN_TOKEN".to_owned(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: s.token_secret.clone(),
                    key: TOKEN_KEY.to_owned(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        container.resources = Some(resources(&s.resources));
        pod
    }
}

/// What a pod's status says about its worker: nothing yet, waiting for
/// this reason, or ended for this reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodState {
    /// Scheduled and starting, or running.
    Fine,
    /// Not running, and Kubernetes says why (it may still retry).
    Waiting {
        /// `ErrImagePull`, `ImagePullBackOff`, `Unschedulable`, …
        reason: String,
        /// Kubernetes' message.
        message: String,
    },
    /// Ended.
    Ended {
        /// `OOMKilled`, `Evicted`, `Error`, `Completed`, …
        reason: String,
        /// Kubernetes' message, or the exit code.
        message: String,
    },
}

/// Reads a pod's status the way `kubectl get pods` does.
pub fn pod_state(pod: &Pod) -> PodState {
    let Some(status) = &pod.status else { return PodState::Fine };
    let worker = status
        .container_statuses
        .as_ref()
        .and_then(|all| all.iter().find(|c| c.name == WORKER_CONTAINER).or(all.first()));
    let terminated = worker.and_then(|c| c.state.as_ref()).and_then(|s| s.terminated.as_ref());
    match status.phase.as_deref() {
        Some("Failed") | Some("Succeeded") => {
            // The pod's reason (Evicted) before its container's (OOMKilled).
            let (reason, message) = match (&status.reason, terminated) {
                (Some(reason), _) => (reason.clone(), status.message.clone().unwrap_or_default()),
                (None, Some(t)) => (
                    t.reason.clone().unwrap_or_else(|| "Error".to_owned()),
                    t.message.clone().unwrap_or_else(|| format!("exit code {}", t.exit_code)),
                ),
                (None, None) => (status.phase.clone().unwrap_or_default(), status.message.clone().unwrap_or_default()),
            };
            return PodState::Ended { reason, message };
        }
        _ => {}
    }
    if let Some(t) = terminated {
        return PodState::Ended {
            reason: t.reason.clone().unwrap_or_else(|| "Error".to_owned()),
            message: t.message.clone().unwrap_or_else(|| format!("exit code {}", t.exit_code)),
        };
    }
    if let Some(waiting) = worker.and_then(|c| c.state.as_ref()).and_then(|s| s.waiting.as_ref())
        && let Some(reason) = waiting.reason.as_deref()
        && reason != "ContainerCreating"
        && reason != "PodInitializing"
    {
        return PodState::Waiting { reason: reason.to_owned(), message: waiting.message.clone().unwrap_or_default() };
    }
    let unschedulable = status.conditions.as_ref().and_then(|c| {
        c.iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
    });
    if let Some(c) = unschedulable {
        return PodState::Waiting {
            reason: "Unschedulable".to_owned(),
            message: c.message.clone().unwrap_or_default(),
        };
    }
    PodState::Fine
}

fn radix36(mut n: u64) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

fn api_error(action: &str, e: kube::Error) -> LaunchError {
    match &e {
        kube::Error::Api(status) if matches!(status.code, 400 | 403 | 404 | 422) => {
            LaunchError::Refused(format!("{action}: {e}"))
        }
        _ => LaunchError::Unavailable(format!("{action}: {e}")),
    }
}

#[async_trait]
impl WorkerLauncher for PodLauncher {
    fn describe(&self) -> String {
        format!("kubernetes pods in namespace {} ({})", self.namespace, self.selector())
    }

    async fn launch(&self, reason: LaunchReason) -> Result<WorkerId, LaunchError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}-worker-{}-{n}", self.settings.launcher_name, self.epoch);
        let pod = self.pod_for(&name, reason);
        self.known().insert(name.clone());
        match self.pods.create(&PostParams::default(), &pod).await {
            Ok(_) => Ok(WorkerId::new(name)),
            Err(e) => {
                self.known().remove(&name);
                Err(api_error(&format!("creating pod {name}"), e))
            }
        }
    }

    async fn remove(&self, worker: &WorkerId) -> Result<(), LaunchError> {
        match self.pods.delete(worker.as_str(), &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(api_error(&format!("deleting pod {worker}"), e)),
        }
    }

    async fn existing(&self) -> Result<Vec<WorkerId>, LaunchError> {
        let list = self
            .pods
            .list(&ListParams::default().labels(&self.selector()))
            .await
            .map_err(|e| api_error("listing worker pods", e))?;
        let mut found = Vec::new();
        for pod in list.items {
            let Some(name) = pod.metadata.name.clone() else { continue };
            if pod.metadata.deletion_timestamp.is_none() && !matches!(pod_state(&pod), PodState::Ended { .. }) {
                self.known().insert(name.clone());
                found.push(WorkerId::new(name));
            }
        }
        Ok(found)
    }

    async fn follow(&self, events: mpsc::Sender<LaunchEvent>) -> Result<(), LaunchError> {
        let config = watcher::Config::default().labels(&self.selector());
        let mut stream = std::pin::pin!(watcher(self.pods.clone(), config));
        let mut waiting: BTreeMap<String, String> = BTreeMap::new();
        let mut listed: HashSet<String> = HashSet::new();
        // The pods known when a (re)list began: those it does not list went
        // while the watch was down. (Pods launched during the list may not
        // be in it, and are not concluded gone.)
        let mut known_at_init: HashSet<String> = HashSet::new();
        while let Some(event) = stream.next().await {
            let event = event.map_err(|e| LaunchError::Unavailable(format!("watching worker pods: {e}")))?;
            let mut out = Vec::new();
            match event {
                watcher::Event::Init => {
                    listed.clear();
                    known_at_init = self.known().clone();
                }
                watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => {
                    let Some(name) = pod.metadata.name.clone() else { continue };
                    listed.insert(name.clone());
                    if !self.known().contains(&name) {
                        continue;
                    }
                    match pod_state(&pod) {
                        PodState::Fine => {
                            waiting.remove(&name);
                        }
                        PodState::Waiting { reason, message } => {
                            if waiting.get(&name) != Some(&reason) {
                                waiting.insert(name.clone(), reason.clone());
                                out.push(LaunchEvent::Waiting { worker: WorkerId::new(name), reason, message });
                            }
                        }
                        PodState::Ended { reason, message } => {
                            self.known().remove(&name);
                            waiting.remove(&name);
                            out.push(LaunchEvent::Ended { worker: WorkerId::new(name.clone()), reason, message });
                            // Reported; the reason is in the job's events.
                            if let Err(e) = self.remove(&WorkerId::new(name.clone())).await {
                                tracing::warn!(pod = %name, "deleting an ended worker pod: {e}");
                            }
                        }
                    }
                }
                watcher::Event::Delete(pod) => {
                    let Some(name) = pod.metadata.name.clone() else { continue };
                    listed.remove(&name);
                    waiting.remove(&name);
                    if self.known().remove(&name) {
                        let (reason, message) = match pod_state(&pod) {
                            PodState::Ended { reason, message } => (reason, message),
                            _ => ("Deleted".to_owned(), "the pod was deleted".to_owned()),
                        };
                        out.push(LaunchEvent::Ended { worker: WorkerId::new(name), reason, message });
                    }
                }
                watcher::Event::InitDone => {
                    // Pods that went while the watch was down.
                    let gone: Vec<String> = {
                        let known = self.known();
                        known_at_init.iter().filter(|n| !listed.contains(*n) && known.contains(*n)).cloned().collect()
                    };
                    for name in gone {
                        self.known().remove(&name);
                        out.push(LaunchEvent::Ended {
                            worker: WorkerId::new(name),
                            reason: "Deleted".to_owned(),
                            message: "the pod is gone".to_owned(),
                        });
                    }
                }
            }
            for event in out {
                if events.send(event).await.is_err() {
                    return Ok(());
                }
            }
        }
        Err(LaunchError::Unavailable("the watch of worker pods ended".to_owned()))
    }
}

/// Reads a worker pod template: a Pod manifest in YAML.
pub fn read_template(path: &std::path::Path) -> Result<Pod, SetupError> {
    let bad = |message: String| SetupError::Template { path: path.to_owned(), message };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    serde_saphyr::from_str(&text).map_err(|e| bad(format!("not a Pod manifest: {e}")))
}

/// The image of a template's `worker` container, if it names one.
pub fn template_image(template: &Pod) -> Option<String> {
    template.spec.as_ref()?.containers.iter().find(|c| c.name == WORKER_CONTAINER)?.image.clone()
}

/// A launcher connected to the cluster (in-cluster, or the kubeconfig:
/// `KUBECONFIG` or `~/.kube/config`), in `namespace` or the client's
/// default one.
pub async fn connect(
    namespace: Option<String>,
    template: Pod,
    settings: PodSettings,
) -> Result<PodLauncher, SetupError> {
    let client = kube::Client::try_default().await.map_err(|e| SetupError::Connect(e.to_string()))?;
    let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_owned());
    Ok(PodLauncher::new(client, &namespace, template, settings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, Request, Response};
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, PodCondition, PodStatus,
    };
    use kube::client::Body;
    use quern_core::JobId;

    fn settings() -> PodSettings {
        PodSettings {
            launcher_name: "quern".to_owned(),
            image: Some("localhost/quern:0.1.0".to_owned()),
            resources: Resources { cpu: "1".to_owned(), cpu_limit: Some("2".to_owned()), memory: "1Gi".to_owned() },
            slots: 3,
            coordinator_url: "http://quern-coordinator.quern.svc:7070".to_owned(),
            extra_args: vec!["--allow-exec".to_owned()],
            token_secret: "quern-token".to_owned(),
            owner: Some(PodOwner { name: "quern-coordinator-abc".to_owned(), uid: "uid-1".to_owned() }),
        }
    }

    /// A launcher whose API server is `handle`'s mock.
    fn mocked() -> (PodLauncher, tower_test::mock::Handle<Request<Body>, Response<Body>>) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "quern");
        let template: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"team": "data"}},
            "spec": {
                "nodeSelector": {"pool": "batch"},
                "containers": [{"name": "worker", "image": "old/image:1",
                                "env": [{"name": "QUERN_TOKEN", "value": "leaked"}]}]
            }
        }))
        .expect("template");
        (PodLauncher::new(client, "quern", template, settings()), handle)
    }

    fn json_response(status: u16, body: serde_json::Value) -> Response<Body> {
        Response::builder().status(status).body(Body::from(body.to_string().into_bytes())).expect("response")
    }

    #[tokio::test]
    async fn a_pod_is_the_template_plus_identity_arguments_token_and_resources() {
        let (launcher, _handle) = mocked();
        let pod = launcher.pod_for("quern-worker-x-1", LaunchReason::Demand(Some(JobId(42))));
        let labels = pod.metadata.labels.clone().expect("labels");
        assert_eq!(labels["team"], "data", "the template's labels stay");
        assert_eq!(labels[WORKER_LABEL], "quern-worker-x-1");
        assert_eq!(labels[JOB_LABEL], "42");
        assert_eq!(labels[LAUNCHER_LABEL], "quern");
        let owner = &pod.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Pod", "quern-coordinator-abc", "uid-1")
        );
        let spec = pod.spec.as_ref().expect("spec");
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.node_selector.as_ref().expect("kept")["pool"], "batch");
        let c = &spec.containers[0];
        assert_eq!(c.image.as_deref(), Some("localhost/quern:0.1.0"));
        let args = c.args.clone().expect("args");
        assert_eq!(args[0], "worker");
        let after = |flag: &str| args[args.iter().position(|a| a == flag).expect(flag) + 1].clone();
        assert_eq!(after("--id"), "quern-worker-x-1");
        assert_eq!(after("--slots"), "3");
        assert_eq!(after("--coordinator"), "http://quern-coordinator.quern.svc:7070");
        assert_eq!(after("--advertise"), "$(POD_IP)");
        assert_eq!(args.last().map(String::as_str), Some("--allow-exec"));
        let env = c.env.as_ref().expect("env");
        let token: Vec<_> = env.iter().filter(|e| e.name == "QUERN_TOKEN").collect();
        assert_eq!(token.len(), 1, "the template's literal token is replaced");
        assert!(token[0].value.is_none());
        let from = token[0].value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref()).expect("from the Secret");
        assert_eq!((from.name.as_str(), from.key.as_str()), ("quern-token", "token"));
        let r = c.resources.as_ref().expect("resources");
        assert_eq!(r.limits.as_ref().expect("limits")["memory"].0, "1Gi");
        assert_eq!(r.limits.as_ref().expect("limits")["cpu"].0, "2");
        assert_eq!(r.requests.as_ref().expect("requests")["cpu"].0, "1");
        assert!(c.volume_mounts.as_ref().expect("mounts").iter().any(|m| m.mount_path == WORK_DIR));
        let by_hand = launcher.pod_for("w", LaunchReason::ByHand);
        assert_eq!(by_hand.metadata.labels.expect("labels")[JOB_LABEL], "by-hand");
    }

    #[tokio::test]
    async fn launch_posts_the_pod_and_remove_deletes_it_even_when_already_gone() {
        let (launcher, mut handle) = mocked();
        let server = tokio::spawn(async move {
            let (request, respond) = handle.next_request().await.expect("a create");
            assert_eq!(request.method(), Method::POST);
            assert_eq!(request.uri().path(), "/api/v1/namespaces/quern/pods");
            let body = request.into_body().collect_bytes().await.expect("body");
            let pod: Pod = serde_json::from_slice(&body).expect("a pod");
            let name = pod.metadata.name.clone().expect("named by the launcher");
            assert!(name.starts_with("quern-worker-"), "{name}");
            assert_eq!(pod.metadata.labels.as_ref().expect("labels")[JOB_LABEL], "7");
            respond.send_response(json_response(201, serde_json::to_value(&pod).expect("json")));

            let (request, respond) = handle.next_request().await.expect("a delete");
            assert_eq!(request.method(), Method::DELETE);
            assert_eq!(request.uri().path(), format!("/api/v1/namespaces/quern/pods/{name}"));
            respond.send_response(json_response(200, serde_json::to_value(&pod).expect("json")));

            let (request, respond) = handle.next_request().await.expect("a second delete");
            assert_eq!(request.method(), Method::DELETE);
            respond.send_response(json_response(
                404,
                serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                   "reason": "NotFound", "code": 404, "message": "pods not found"}),
            ));

            let (request, respond) = handle.next_request().await.expect("a refused create");
            assert_eq!(request.method(), Method::POST);
            respond.send_response(json_response(
                403,
                serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                   "reason": "Forbidden", "code": 403,
                                   "message": "pods is forbidden: User cannot create resource"}),
            ));
            name
        });
        let id = launcher.launch(LaunchReason::Demand(Some(JobId(7)))).await.expect("launched");
        launcher.remove(&id).await.expect("deleted");
        launcher.remove(&id).await.expect("a pod already gone is no error");
        let refused = launcher.launch(LaunchReason::ByHand).await.expect_err("forbidden");
        assert!(matches!(refused, LaunchError::Refused(ref m) if m.contains("forbidden")), "{refused}");
        assert_eq!(server.await.expect("server").as_str(), id.as_str());
    }

    #[tokio::test]
    async fn existing_lists_this_launchers_pods_by_label_and_skips_ended_ones() {
        let (launcher, mut handle) = mocked();
        let server = tokio::spawn(async move {
            let (request, respond) = handle.next_request().await.expect("a list");
            assert_eq!(request.method(), Method::GET);
            let query = request.uri().query().unwrap_or_default().to_owned();
            assert!(query.contains("labelSelector=quern.dev%2Flauncher%3Dquern"), "{query}");
            respond.send_response(json_response(
                200,
                serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "5"},
                "items": [
                    {"metadata": {"name": "quern-worker-a-1"}, "status": {"phase": "Running"}},
                    {"metadata": {"name": "quern-worker-a-2"}, "status": {"phase": "Failed", "reason": "Evicted"}}
                ]}),
            ));
        });
        let found = launcher.existing().await.expect("listed");
        assert_eq!(found, vec![WorkerId::new("quern-worker-a-1")]);
        server.await.expect("server");
    }

    fn with_status(status: PodStatus) -> Pod {
        Pod { status: Some(status), ..Default::default() }
    }

    fn worker_status(state: ContainerState) -> Option<Vec<ContainerStatus>> {
        Some(vec![ContainerStatus { name: WORKER_CONTAINER.to_owned(), state: Some(state), ..Default::default() }])
    }

    #[test]
    fn pod_states_carry_kubernetes_own_reasons() {
        let oom = with_status(PodStatus {
            phase: Some("Failed".to_owned()),
            container_statuses: worker_status(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 137,
                    reason: Some("OOMKilled".to_owned()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(
            pod_state(&oom),
            PodState::Ended { reason: "OOMKilled".to_owned(), message: "exit code 137".to_owned() }
        );
        let evicted = with_status(PodStatus {
            phase: Some("Failed".to_owned()),
            reason: Some("Evicted".to_owned()),
            message: Some("The node was low on resource: memory.".to_owned()),
            ..Default::default()
        });
        assert_eq!(
            pod_state(&evicted),
            PodState::Ended {
                reason: "Evicted".to_owned(),
                message: "The node was low on resource: memory.".to_owned()
            }
        );
        let pull = with_status(PodStatus {
            phase: Some("Pending".to_owned()),
            container_statuses: worker_status(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("ErrImagePull".to_owned()),
                    message: Some("pull access denied for nope/quern".to_owned()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert!(matches!(pod_state(&pull), PodState::Waiting { ref reason, .. } if reason == "ErrImagePull"));
        let creating = with_status(PodStatus {
            phase: Some("Pending".to_owned()),
            container_statuses: worker_status(ContainerState {
                waiting: Some(ContainerStateWaiting { reason: Some("ContainerCreating".to_owned()), message: None }),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(pod_state(&creating), PodState::Fine);
        let unschedulable = with_status(PodStatus {
            phase: Some("Pending".to_owned()),
            conditions: Some(vec![PodCondition {
                type_: "PodScheduled".to_owned(),
                status: "False".to_owned(),
                reason: Some("Unschedulable".to_owned()),
                message: Some("0/3 nodes are available: 3 Insufficient memory.".to_owned()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert!(
            matches!(pod_state(&unschedulable), PodState::Waiting { ref reason, ref message } if reason == "Unschedulable" && message.contains("Insufficient memory"))
        );
        let running = with_status(PodStatus { phase: Some("Running".to_owned()), ..Default::default() });
        assert_eq!(pod_state(&running), PodState::Fine);
    }
}
