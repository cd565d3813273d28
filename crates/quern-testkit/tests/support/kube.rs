//! A fake Kubernetes cluster for the tests of the launcher and the
//! operator: the fake API server (holding the token's Secret), its kubelet,
//! and a kubeconfig pointing at it.

use std::path::PathBuf;

use base64::Engine;
use quern_testkit::fake_kube::kubelet::FakeKubelet;
use quern_testkit::fake_kube::{FakeApiServer, ObjectKey};
use serde_json::{Value, json};

use super::{BIN, TOKEN};

pub const NAMESPACE: &str = "quern";

pub struct FakeCluster {
    pub server: FakeApiServer,
    pub kubelet: FakeKubelet,
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

/// A fake API server holding the token's Secret, its kubelet, and a
/// kubeconfig pointing at it.
pub fn fake_cluster() -> FakeCluster {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = FakeApiServer::start();
    let token = base64::engine::general_purpose::STANDARD.encode(TOKEN);
    server
        .store
        .create(
            "secrets",
            NAMESPACE,
            "v1",
            json!({"kind": "Secret", "metadata": {"name": "quern-token"}, "data": {"token": token}}),
        )
        .expect("the token's Secret");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig(NAMESPACE)).expect("kubeconfig");
    let kubelet = FakeKubelet::start(&server, PathBuf::from(BIN), dir.path().join("kubelet"));
    FakeCluster { server, kubelet, kubeconfig, _dir: dir }
}

pub fn pod(server: &FakeApiServer, name: &str) -> Option<Value> {
    server.store.get(&ObjectKey { resource: "pods".into(), namespace: NAMESPACE.into(), name: name.into() }).ok()
}

/// Every pod the coordinator created, as it created it.
pub fn created_pods(server: &FakeApiServer) -> Vec<Value> {
    server
        .store
        .changes_since(0)
        .into_iter()
        .filter(|e| e.key.resource == "pods" && e.kind == "ADDED")
        .map(|e| e.object)
        .collect()
}

/// An object of the fake server, if it exists.
pub fn object(server: &FakeApiServer, resource: &str, name: &str) -> Option<Value> {
    server.store.get(&ObjectKey { resource: resource.into(), namespace: NAMESPACE.into(), name: name.into() }).ok()
}
