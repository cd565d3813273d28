//! Leader election on a `coordination.k8s.io` Lease, as client-go's
//! `leaderelection` does it: the leader renews the lease every few
//! seconds; a candidate takes it only once it has expired; every write
//! carries the lease's `resourceVersion`, so of two replicas racing for it
//! exactly one wins (the other gets a 409 Conflict and stays a follower).

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

/// What a try to lead found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// This replica holds the lease (acquired or renewed now).
    Leading,
    /// Another replica holds it.
    Following {
        /// Who.
        holder: String,
    },
}

/// One replica's hold on a Lease.
pub struct LeaseLock {
    leases: Api<Lease>,
    name: String,
    identity: String,
    duration_secs: i32,
}

impl LeaseLock {
    /// A lock on the Lease `name` in `leases`' namespace, for the replica
    /// `identity` (its pod's name), held for `duration_secs` after each
    /// renewal.
    pub fn new(leases: Api<Lease>, name: &str, identity: &str, duration_secs: i32) -> LeaseLock {
        LeaseLock { leases, name: name.to_owned(), identity: identity.to_owned(), duration_secs }
    }

    /// This replica's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Acquires the lease if it is free or expired, renews it if held;
    /// says who leads. A lost race is following, not an error.
    pub async fn try_acquire_or_renew(&self, now: Timestamp) -> Result<Leadership, kube::Error> {
        let current = match self.leases.get_opt(&self.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(self.name.clone()), ..Default::default() },
                    spec: Some(self.spec(now, now, 0)),
                };
                return match self.leases.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(Leadership::Leading),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(self.follower_of_unknown()),
                    Err(e) => Err(e),
                };
            }
            Some(lease) => lease,
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let transitions = spec.lease_transitions.unwrap_or(0);
        let next = if holder == self.identity {
            let acquired = spec.acquire_time.map_or(now, |t| t.0);
            self.spec(now, acquired, transitions)
        } else {
            let renewed = spec.renew_time.or(spec.acquire_time).map(|t| t.0);
            let duration = i64::from(spec.lease_duration_seconds.unwrap_or(self.duration_secs));
            let expired = renewed.is_none_or(|r| r.as_second() + duration < now.as_second()) || holder.is_empty();
            if !expired {
                return Ok(Leadership::Following { holder });
            }
            self.spec(now, now, transitions + 1)
        };
        // Replace with the resourceVersion read: a concurrent write wins.
        let mut lease = current;
        lease.spec = Some(next);
        match self.leases.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(Leadership::Leading),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(self.follower_of_unknown()),
            Err(e) => Err(e),
        }
    }

    fn follower_of_unknown(&self) -> Leadership {
        Leadership::Following { holder: "another replica".to_owned() }
    }

    fn spec(&self, now: Timestamp, acquired: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration_secs),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, Request, Response};
    use kube::client::Body;

    fn lock() -> (LeaseLock, tower_test::mock::Handle<Request<Body>, Response<Body>>) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "quern");
        (LeaseLock::new(Api::namespaced(client, "quern"), "quern-operator", "operator-a", 15), handle)
    }

    fn respond(status: u16, body: serde_json::Value) -> Response<Body> {
        Response::builder().status(status).body(Body::from(body.to_string().into_bytes())).expect("response")
    }

    fn lease(holder: &str, renewed: &str, rv: &str) -> serde_json::Value {
        serde_json::json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "quern-operator", "namespace": "quern", "resourceVersion": rv},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renewed,
                     "acquireTime": renewed, "leaseTransitions": 3}})
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    #[tokio::test]
    async fn a_missing_lease_is_created_and_held() {
        let (lock, mut handle) = lock();
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("a get");
            assert_eq!(request.method(), Method::GET);
            assert_eq!(request.uri().path(), "/apis/coordination.k8s.io/v1/namespaces/quern/leases/quern-operator");
            send.send_response(respond(404, serde_json::json!({"kind": "Status", "code": 404, "reason": "NotFound"})));
            let (request, send) = handle.next_request().await.expect("a create");
            assert_eq!(request.method(), Method::POST);
            let body: serde_json::Value =
                serde_json::from_slice(&request.into_body().collect_bytes().await.expect("body")).expect("json");
            assert_eq!(body["spec"]["holderIdentity"], "operator-a");
            assert_eq!(body["spec"]["leaseDurationSeconds"], 15);
            send.send_response(respond(201, body));
        });
        let led = lock.try_acquire_or_renew(at("2026-11-26T12:00:00Z")).await.expect("answers");
        assert_eq!(led, Leadership::Leading);
        server.await.expect("server");
    }

    #[tokio::test]
    async fn the_holder_renews_with_the_version_it_read_and_a_conflict_means_following() {
        let (lock, mut handle) = lock();
        let server = tokio::spawn(async move {
            let (_, send) = handle.next_request().await.expect("a get");
            send.send_response(respond(200, lease("operator-a", "2026-11-26T12:00:00Z", "41")));
            let (request, send) = handle.next_request().await.expect("a replace");
            assert_eq!(request.method(), Method::PUT);
            let body: serde_json::Value =
                serde_json::from_slice(&request.into_body().collect_bytes().await.expect("body")).expect("json");
            assert_eq!(body["metadata"]["resourceVersion"], "41", "the precondition");
            assert_eq!(body["spec"]["renewTime"], "2026-11-26T12:00:05.000000Z", "MicroTime");
            assert_eq!(body["spec"]["leaseTransitions"], 3, "a renewal is no transition");
            send.send_response(respond(
                409,
                serde_json::json!({"kind": "Status", "code": 409, "reason": "Conflict", "message": "modified"}),
            ));
        });
        let led = lock.try_acquire_or_renew(at("2026-11-26T12:00:05Z")).await.expect("answers");
        assert!(matches!(led, Leadership::Following { .. }), "{led:?}");
        server.await.expect("server");
    }

    #[tokio::test]
    async fn another_holders_lease_is_taken_only_once_expired() {
        let (lock, mut handle) = lock();
        let server = tokio::spawn(async move {
            let (_, send) = handle.next_request().await.expect("a get");
            send.send_response(respond(200, lease("operator-b", "2026-11-26T12:00:00Z", "7")));
            // Fresh: no write. Then expired: a takeover.
            let (request, send) = handle.next_request().await.expect("a second get");
            assert_eq!(request.method(), Method::GET);
            send.send_response(respond(200, lease("operator-b", "2026-11-26T12:00:00Z", "7")));
            let (request, send) = handle.next_request().await.expect("a takeover");
            assert_eq!(request.method(), Method::PUT);
            let body: serde_json::Value =
                serde_json::from_slice(&request.into_body().collect_bytes().await.expect("body")).expect("json");
            assert_eq!(body["spec"]["holderIdentity"], "operator-a");
            assert_eq!(body["spec"]["leaseTransitions"], 4);
            assert_eq!(body["metadata"]["resourceVersion"], "7");
            send.send_response(respond(200, body));
        });
        let led = lock.try_acquire_or_renew(at("2026-11-26T12:00:10Z")).await.expect("answers");
        assert_eq!(led, Leadership::Following { holder: "operator-b".to_owned() });
        let led = lock.try_acquire_or_renew(at("2026-11-26T12:00:16Z")).await.expect("answers");
        assert_eq!(led, Leadership::Leading);
        server.await.expect("server");
    }
}
