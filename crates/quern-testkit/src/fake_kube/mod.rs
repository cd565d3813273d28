//! A fake Kubernetes API server on 127.0.0.1, for the kinds quern uses, and
//! a fake kubelet that runs each worker pod as a local process.
//!
//! No real API server can run on quern's development machines, so this is
//! the next best thing for running the real `quern coordinator --launcher
//! kubernetes` binary through whole jobs. It speaks the API's wire format
//! to kube-rs:
//! - discovery: `/version`, `/api`, `/apis`;
//! - namespaced create, get, list (with equality label selectors), replace
//!   (with `resourceVersion` preconditions: a stale one is a 409 Conflict),
//!   merge and apply patches, and delete, for any resource path;
//! - a status subresource, which changes `.status` only;
//! - watch streams from a `resourceVersion`, replayed from a log of every
//!   change;
//! - finalizers: an object that has them is marked for deletion, and goes
//!   when the last is removed.
//!
//! It does not check schemas, merge server-side apply field ownership, or
//! authenticate: what it leaves out is listed here, not faked. The
//! [`kubelet`] starts pods as processes and plays their deaths
//! (OOMKilled, eviction) on request.

pub mod kubelet;
mod store;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub use store::{ObjectKey, Store, WatchEvent};

/// A running fake API server.
pub struct FakeApiServer {
    /// Where it listens.
    pub address: SocketAddr,
    /// Its objects.
    pub store: Arc<Store>,
    runtime: tokio::runtime::Runtime,
}

impl FakeApiServer {
    /// Starts a server on a free port of 127.0.0.1, on a runtime of its own.
    pub fn start() -> FakeApiServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the fake API server");
        let store = Arc::new(Store::default());
        let listener =
            runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("a port for the fake API server");
        let address = listener.local_addr().expect("its address");
        let app = axum::Router::new().fallback(handle).with_state(store.clone());
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeApiServer { address, store, runtime }
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A kubeconfig pointing at this server (no credentials: it asks for
    /// none), with `namespace` as the context's default.
    pub fn kubeconfig(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             users:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    \
             user: fake\n    namespace: {namespace}\ncurrent-context: fake\n",
            self.url()
        )
    }

    /// The runtime the server runs on (for the kubelet's tasks).
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }
}

/// A request's path, as the API lays it out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ApiPath {
    /// `v1` for the core group, `group/version` otherwise.
    api_version: String,
    namespace: String,
    resource: String,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Option<ApiPath> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (api_version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => ((*version).to_owned(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return None,
    };
    match rest {
        ["namespaces", ns, resource, more @ ..] if more.len() <= 2 => Some(ApiPath {
            api_version,
            namespace: (*ns).to_owned(),
            resource: (*resource).to_owned(),
            name: more.first().map(|s| (*s).to_owned()),
            subresource: more.get(1).map(|s| (*s).to_owned()),
        }),
        _ => None,
    }
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

async fn handle(
    State(store): State<Arc<Store>>,
    method: Method,
    uri: Uri,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match uri.path() {
        "/version" => {
            return axum::Json(json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake"})).into_response();
        }
        "/api" => return axum::Json(json!({"kind": "APIVersions", "versions": ["v1"]})).into_response(),
        "/apis" => {
            return axum::Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})).into_response();
        }
        _ => {}
    }
    let Some(path) = parse_path(uri.path()) else {
        return status(StatusCode::NOT_FOUND, "NotFound", format!("no such path {}", uri.path()));
    };
    let body: Option<Value> = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => Some(v),
            Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", format!("the body is not JSON: {e}")),
        }
    };
    let key = |name: &str| ObjectKey {
        resource: path.resource.clone(),
        namespace: path.namespace.clone(),
        name: name.to_owned(),
    };
    let answer = match (&method, &path.name, body) {
        (&Method::GET, None, _) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            let from = query.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
            let timeout = query.get("timeoutSeconds").and_then(|v| v.parse().ok()).unwrap_or(290);
            let selector = query.get("labelSelector").cloned().unwrap_or_default();
            return watch(store, path, from, selector, Duration::from_secs(timeout));
        }
        (&Method::GET, None, _) => {
            let selector = query.get("labelSelector").cloned().unwrap_or_default();
            let (items, rv) = store.list(&path.resource, &path.namespace, &selector);
            Ok(json!({
                "kind": list_kind(&path.resource), "apiVersion": path.api_version,
                "metadata": {"resourceVersion": rv.to_string()}, "items": items,
            }))
        }
        (&Method::GET, Some(name), _) => store.get(&key(name)),
        (&Method::POST, None, Some(object)) => store.create(&path.resource, &path.namespace, &path.api_version, object),
        (&Method::PUT, Some(name), Some(object)) => store.replace(&key(name), object, path.subresource.as_deref()),
        (&Method::PATCH, Some(name), Some(patch)) => {
            let kind = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
            if kind.starts_with("application/json-patch") {
                Err(store::Refusal::unsupported("JSON patches (use merge or apply patches)"))
            } else {
                store.patch(&key(name), patch, path.subresource.as_deref(), &path.api_version)
            }
        }
        (&Method::DELETE, Some(name), _) => store.delete(&key(name)),
        _ => Err(store::Refusal::unsupported(&format!("{method} {}", uri.path()))),
    };
    match answer {
        Ok(value) => {
            let code = if method == Method::POST { StatusCode::CREATED } else { StatusCode::OK };
            (code, axum::Json(value)).into_response()
        }
        Err(refusal) => status(refusal.code, refusal.reason, refusal.message),
    }
}

fn list_kind(resource: &str) -> String {
    match resource {
        "pods" => "PodList".to_owned(),
        "leases" => "LeaseList".to_owned(),
        "secrets" => "SecretList".to_owned(),
        "mapreducejobs" => "MapReduceJobList".to_owned(),
        other => format!("{other}List"),
    }
}

/// A watch: the changes after `from`, then each new one, as lines of JSON,
/// until `timeout` (as the real server ends watches).
fn watch(store: Arc<Store>, path: ApiPath, from: u64, selector: String, timeout: Duration) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let mut changes = store.subscribe();
    let backlog = store.changes_since(from);
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + timeout;
        let wanted = |e: &WatchEvent| {
            e.key.resource == path.resource && e.key.namespace == path.namespace && store::selects(&selector, &e.object)
        };
        let mut last = from;
        for event in backlog {
            last = event.resource_version;
            if wanted(&event) && tx.send(Ok(event.line())).await.is_err() {
                return;
            }
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return,
                change = changes.recv() => match change {
                    Ok(event) if event.resource_version > last => {
                        last = event.resource_version;
                        if wanted(&event) && tx.send(Ok(event.line())).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    // Fell behind or closed: end the watch; the client
                    // watches again from what it saw.
                    Err(_) => return,
                },
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|e| status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_read_as_the_api_lays_them_out() {
        assert_eq!(
            parse_path("/api/v1/namespaces/quern/pods/w-1"),
            Some(ApiPath {
                api_version: "v1".into(),
                namespace: "quern".into(),
                resource: "pods".into(),
                name: Some("w-1".into()),
                subresource: None
            })
        );
        let status = parse_path("/apis/quern.dev/v1alpha1/namespaces/ns/mapreducejobs/wc/status").expect("parses");
        assert_eq!(status.api_version, "quern.dev/v1alpha1");
        assert_eq!(status.subresource.as_deref(), Some("status"));
        assert_eq!(parse_path("/api/v1/nodes"), None);
    }
}
