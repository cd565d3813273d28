//! A fake kubelet: each pod created on the [`FakeApiServer`] runs as a
//! local process of the `quern-testkit` binary (the image's entrypoint),
//! from the pod's own spec, and its status is written back as a kubelet
//! would. It plays deaths on request: OOMKilled, eviction.
//!
//! What it does to make pods local processes, all of which a real node
//! gives each pod by itself:
//! - `$(VAR)` in arguments is expanded from the container's environment
//!   (as Kubernetes does), whose `fieldRef`s give the pod's name, namespace
//!   and uid, and `127.0.0.1` as its IP, and whose `secretKeyRef`s and
//!   `envFrom` read the server's Secrets;
//! - every pod shares this machine's network, so a listen address on
//!   `0.0.0.0` becomes `127.0.0.1:0` (any free port);
//! - a mount path in an argument becomes a directory of the pod's (an
//!   `emptyDir`) or of its claim's (a PersistentVolumeClaim, shared).
//!
//! An image whose name starts with `unpullable/` never starts: the pod
//! waits with `ErrImagePull`, as with a registry that refuses it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use super::{FakeApiServer, ObjectKey, Store};

/// How a pod is made to die.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Over its memory limit: killed, `OOMKilled`, exit code 137.
    OomKilled,
    /// Evicted by the node: killed, the pod `Failed` with reason `Evicted`.
    Evicted,
}

struct PodProcess {
    key: ObjectKey,
    child: Child,
    fate: Option<Fate>,
}

struct Kubelet {
    store: Arc<Store>,
    binary: PathBuf,
    dir: PathBuf,
    pods: Mutex<HashMap<String, PodProcess>>,
    started: Mutex<Vec<String>>,
}

/// The running fake kubelet.
pub struct FakeKubelet {
    inner: Arc<Kubelet>,
}

impl FakeKubelet {
    /// Runs the pods of `server` as processes of `binary`, with their files
    /// under `dir`.
    pub fn start(server: &FakeApiServer, binary: PathBuf, dir: PathBuf) -> FakeKubelet {
        std::fs::create_dir_all(&dir).expect("the kubelet's directory");
        let inner = Arc::new(Kubelet {
            store: server.store.clone(),
            binary,
            dir,
            pods: Mutex::new(HashMap::new()),
            started: Mutex::new(Vec::new()),
        });
        let mut changes = server.store.subscribe();
        let kubelet = inner.clone();
        server.runtime().spawn(async move {
            let mut check = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    change = changes.recv() => match change {
                        Ok(event) if event.key.resource == "pods" && event.kind == "ADDED" => {
                            kubelet.run(&event.key, &event.object);
                        }
                        Ok(event) if event.key.resource == "pods" && event.kind == "DELETED" => {
                            kubelet.stop(&event.key.name);
                        }
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => return,
                    },
                    _ = check.tick() => kubelet.reap(),
                }
            }
        });
        FakeKubelet { inner }
    }

    /// The pods whose process runs now.
    pub fn running(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.lock_pods().keys().cloned().collect();
        names.sort();
        names
    }

    /// Every pod started so far, in order.
    pub fn started(&self) -> Vec<String> {
        self.inner.started.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Kills a pod's process as `fate` has it; its status says so once the
    /// process is gone. Returns whether the pod ran.
    pub fn kill(&self, pod: &str, fate: Fate) -> bool {
        let mut pods = self.inner.lock_pods();
        let Some(p) = pods.get_mut(pod) else { return false };
        p.fate = Some(fate);
        let _ = p.child.kill();
        true
    }

    /// Where a pod's output goes.
    pub fn log_path(&self, pod: &str) -> PathBuf {
        self.inner.dir.join(format!("{pod}.log"))
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        for (_, mut p) in self.inner.lock_pods().drain() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

impl Kubelet {
    fn lock_pods(&self) -> std::sync::MutexGuard<'_, HashMap<String, PodProcess>> {
        self.pods.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_status(&self, key: &ObjectKey, status: Value) {
        self.store.update_with(key, |pod| pod["status"] = status);
    }

    fn run(&self, key: &ObjectKey, pod: &Value) {
        let containers = pod["spec"]["containers"].as_array().cloned().unwrap_or_default();
        let Some(container) = containers.first() else { return };
        let name = container["name"].as_str().unwrap_or("main").to_owned();
        let image = container["image"].as_str().unwrap_or_default();
        if image.starts_with("unpullable/") {
            self.set_status(
                key,
                json!({"phase": "Pending", "containerStatuses": [{"name": name, "ready": false, "restartCount": 0,
                    "image": image, "imageID": "",
                    "state": {"waiting": {"reason": "ErrImagePull",
                        "message": format!("failed to pull image \"{image}\": pull access denied")}}}]}),
            );
            return;
        }
        let env = self.environment(key, pod, container);
        let volumes = self.volume_dirs(key, pod, container);
        let args: Vec<String> = container["args"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(|arg| localise(&expand(arg, &env), &volumes)).collect())
            .unwrap_or_default();
        let log = std::fs::File::create(self.dir.join(format!("{}.log", key.name))).expect("a pod log");
        let err = log.try_clone().expect("a pod log");
        let child = Command::new(&self.binary)
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .envs(&env)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn();
        match child {
            Ok(child) => {
                self.started.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(key.name.clone());
                self.lock_pods().insert(key.name.clone(), PodProcess { key: key.clone(), child, fate: None });
                self.set_status(
                    key,
                    json!({"phase": "Running", "podIP": "127.0.0.1",
                        "conditions": [{"type": "Ready", "status": "True"}],
                        "containerStatuses": [{"name": name, "ready": true, "restartCount": 0, "image": image,
                            "imageID": "", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}),
                );
            }
            Err(e) => self.set_status(
                key,
                json!({"phase": "Failed", "reason": "StartError", "message": format!("starting the process: {e}")}),
            ),
        }
    }

    /// The container's environment, resolved as the kubelet resolves it.
    fn environment(&self, key: &ObjectKey, pod: &Value, container: &Value) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let secret = |name: &str| {
            self.store
                .get(&ObjectKey { resource: "secrets".into(), namespace: key.namespace.clone(), name: name.into() })
                .ok()
        };
        let decode = |v: &Value| {
            v.as_str()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        };
        for from in container["envFrom"].as_array().into_iter().flatten() {
            if let Some(s) = from["secretRef"]["name"].as_str().and_then(secret)
                && let Some(data) = s["data"].as_object()
            {
                for (k, v) in data {
                    if let Some(v) = decode(v) {
                        env.insert(k.clone(), v);
                    }
                }
            }
        }
        for var in container["env"].as_array().into_iter().flatten() {
            let Some(name) = var["name"].as_str() else { continue };
            let value = if let Some(v) = var["value"].as_str() {
                Some(v.to_owned())
            } else if let Some(path) = var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                match path {
                    "metadata.name" => Some(key.name.clone()),
                    "metadata.namespace" => Some(key.namespace.clone()),
                    "metadata.uid" => pod["metadata"]["uid"].as_str().map(str::to_owned),
                    "status.podIP" => Some("127.0.0.1".to_owned()),
                    _ => None,
                }
            } else if let Some(r) = var["valueFrom"]["secretKeyRef"].as_object() {
                let s = r.get("name").and_then(Value::as_str).and_then(secret);
                let k = r.get("key").and_then(Value::as_str).unwrap_or_default();
                s.and_then(|s| decode(&s["data"][k]))
            } else {
                None
            };
            if let Some(value) = value {
                env.insert(name.to_owned(), value);
            }
        }
        env
    }

    /// Each mount path of the container, and the directory it is here.
    fn volume_dirs(&self, key: &ObjectKey, pod: &Value, container: &Value) -> Vec<(String, PathBuf)> {
        let volumes: BTreeMap<&str, &Value> = pod["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["name"].as_str().map(|n| (n, v)))
            .collect();
        let mut dirs = Vec::new();
        for m in container["volumeMounts"].as_array().into_iter().flatten() {
            let (Some(name), Some(path)) = (m["name"].as_str(), m["mountPath"].as_str()) else { continue };
            let dir = match volumes.get(name).and_then(|v| v["persistentVolumeClaim"]["claimName"].as_str()) {
                Some(claim) => self.dir.join("claims").join(claim),
                None => self.dir.join("pods").join(&key.name).join(name),
            };
            std::fs::create_dir_all(&dir).expect("a volume directory");
            dirs.push((path.to_owned(), dir));
        }
        // Longest paths first, so that /data/files wins over /data.
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        dirs
    }

    /// Stops a deleted pod's process (SIGTERM: it drains, as in a pod).
    fn stop(&self, name: &str) {
        if let Some(p) = self.lock_pods().get(name)
            && let Ok(pid) = i32::try_from(p.child.id())
        {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        }
    }

    /// Writes the status of pods whose process ended.
    fn reap(&self) {
        let mut ended = Vec::new();
        {
            let mut pods = self.lock_pods();
            let names: Vec<String> = pods.keys().cloned().collect();
            for name in names {
                let Some(p) = pods.get_mut(&name) else { continue };
                if let Ok(Some(status)) = p.child.try_wait()
                    && let Some(p) = pods.remove(&name)
                {
                    ended.push((p.key, p.fate, status));
                }
            }
        }
        for (key, fate, status) in ended {
            let code = status.code().unwrap_or(137);
            let status = match fate {
                Some(Fate::OomKilled) => json!({"phase": "Failed", "containerStatuses": [{"name": "worker",
                    "ready": false, "restartCount": 0, "image": "", "imageID": "",
                    "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}),
                Some(Fate::Evicted) => json!({"phase": "Failed", "reason": "Evicted",
                    "message": "The node was low on resource: memory. Threshold quantity: 100Mi, available: 12Mi."}),
                None => json!({"phase": if code == 0 { "Succeeded" } else { "Failed" },
                    "containerStatuses": [{"name": "worker", "ready": false, "restartCount": 0, "image": "",
                    "imageID": "", "state": {"terminated": {"exitCode": code,
                        "reason": if code == 0 { "Completed" } else { "Error" }}}}]}),
            };
            self.set_status(&key, status);
        }
    }
}

/// `$(VAR)` replaced by the variable's value, as Kubernetes expands
/// container arguments (an unknown one is left as it is).
fn expand(arg: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = arg.to_owned();
    for (k, v) in env {
        out = out.replace(&format!("$({k})"), v);
    }
    out
}

/// An argument with this machine's stand-ins for a pod's own network and
/// volumes.
fn localise(arg: &str, volumes: &[(String, PathBuf)]) -> String {
    if let Some(port) = arg.strip_prefix("0.0.0.0:")
        && port.parse::<u16>().is_ok()
    {
        return "127.0.0.1:0".to_owned();
    }
    for (path, dir) in volumes {
        if arg == path {
            return dir.display().to_string();
        }
        if let Some(rest) = arg.strip_prefix(&format!("{path}/")) {
            return Path::new(dir).join(rest).display().to_string();
        }
    }
    arg.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_expanded_and_made_local() {
        let env = BTreeMap::from([("POD_IP".to_owned(), "127.0.0.1".to_owned())]);
        assert_eq!(expand("$(POD_IP)", &env), "127.0.0.1");
        assert_eq!(expand("$(OTHER)", &env), "$(OTHER)");
        let volumes =
            vec![("/data/files".to_owned(), PathBuf::from("/tmp/f")), ("/data".to_owned(), PathBuf::from("/tmp/d"))];
        assert_eq!(localise("0.0.0.0:7071", &volumes), "127.0.0.1:0");
        assert_eq!(localise("/data/files/x", &volumes), "/tmp/f/x");
        assert_eq!(localise("/data/books", &volumes), "/tmp/d/books");
        assert_eq!(localise("/database", &volumes), "/database");
    }
}
