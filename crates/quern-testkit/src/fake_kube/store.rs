//! The fake API server's objects: one map, one resourceVersion counter, and
//! a log of every change for watches to replay.

use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// Where an object lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Its resource (`pods`, `leases`, `mapreducejobs`).
    pub resource: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// One change, as a watch sends it.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    /// The object's key.
    pub key: ObjectKey,
    /// The object after the change (before it, for a deletion).
    pub object: Value,
    /// The change's resourceVersion.
    pub resource_version: u64,
}

impl WatchEvent {
    /// The change as a line of a watch stream.
    pub fn line(&self) -> Bytes {
        let mut line = json!({"type": self.kind, "object": self.object}).to_string();
        line.push('\n');
        Bytes::from(line)
    }
}

/// Why a request was refused, as a Kubernetes `Status`.
#[derive(Debug)]
pub struct Refusal {
    pub(super) code: StatusCode,
    pub(super) reason: &'static str,
    pub(super) message: String,
}

impl Refusal {
    fn not_found(key: &ObjectKey) -> Refusal {
        Refusal {
            code: StatusCode::NOT_FOUND,
            reason: "NotFound",
            message: format!("{} \"{}\" not found", key.resource, key.name),
        }
    }

    fn conflict(message: String) -> Refusal {
        Refusal { code: StatusCode::CONFLICT, reason: "Conflict", message }
    }

    pub(super) fn unsupported(what: &str) -> Refusal {
        Refusal {
            code: StatusCode::METHOD_NOT_ALLOWED,
            reason: "MethodNotAllowed",
            message: format!("the fake API server does not support {what}"),
        }
    }

    fn invalid(message: String) -> Refusal {
        Refusal { code: StatusCode::UNPROCESSABLE_ENTITY, reason: "Invalid", message }
    }
}

#[derive(Default)]
struct Objects {
    objects: BTreeMap<ObjectKey, Value>,
    version: u64,
    log: Vec<WatchEvent>,
    next_uid: u64,
}

/// Every object, and the changes so far.
pub struct Store {
    inner: Mutex<Objects>,
    changes: broadcast::Sender<WatchEvent>,
}

impl Default for Store {
    fn default() -> Store {
        Store { inner: Mutex::new(Objects::default()), changes: broadcast::channel(4096).0 }
    }
}

/// Whether `object`'s labels match `selector` (`k=v,k2=v2`; empty: all).
pub fn selects(selector: &str, object: &Value) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v) = term.split_once("==").or_else(|| term.split_once('=')).unwrap_or((term, ""));
        object["metadata"]["labels"][k].as_str() == Some(v)
    })
}

fn now() -> String {
    // RFC 3339 in UTC, to the second, as the API writes timestamps.
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// RFC 7386 merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Value::Object(t) = target {
                for (k, v) in fields {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

impl Store {
    fn lock(&self) -> std::sync::MutexGuard<'_, Objects> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<WatchEvent> {
        self.changes.subscribe()
    }

    /// The changes after `version`, in order.
    pub fn changes_since(&self, version: u64) -> Vec<WatchEvent> {
        self.lock().log.iter().filter(|e| e.resource_version > version).cloned().collect()
    }

    fn record(&self, o: &mut Objects, kind: &'static str, key: &ObjectKey, object: Value) {
        let event = WatchEvent { kind, key: key.clone(), object, resource_version: o.version };
        o.log.push(event.clone());
        let _ = self.changes.send(event);
    }

    /// The objects of a resource in a namespace that `selector` selects, and
    /// the store's resourceVersion.
    pub fn list(&self, resource: &str, namespace: &str, selector: &str) -> (Vec<Value>, u64) {
        let o = self.lock();
        let items = o
            .objects
            .iter()
            .filter(|(k, v)| k.resource == resource && k.namespace == namespace && selects(selector, v))
            .map(|(_, v)| v.clone())
            .collect();
        (items, o.version)
    }

    /// One object.
    pub fn get(&self, key: &ObjectKey) -> Result<Value, Refusal> {
        self.lock().objects.get(key).cloned().ok_or_else(|| Refusal::not_found(key))
    }

    /// Creates an object; one that exists is a conflict.
    pub fn create(
        &self,
        resource: &str,
        namespace: &str,
        api_version: &str,
        mut object: Value,
    ) -> Result<Value, Refusal> {
        let Some(name) = object["metadata"]["name"].as_str().map(str::to_owned) else {
            return Err(Refusal::invalid("metadata.name: required (the fake server does not generate names)".into()));
        };
        let key = ObjectKey { resource: resource.to_owned(), namespace: namespace.to_owned(), name: name.clone() };
        let mut o = self.lock();
        if o.objects.contains_key(&key) {
            return Err(Refusal {
                code: StatusCode::CONFLICT,
                reason: "AlreadyExists",
                message: format!("{resource} \"{name}\" already exists"),
            });
        }
        o.version += 1;
        o.next_uid += 1;
        let meta = &mut object["metadata"];
        meta["namespace"] = json!(namespace);
        meta["uid"] = json!(format!("uid-{}", o.next_uid));
        meta["resourceVersion"] = json!(o.version.to_string());
        meta["creationTimestamp"] = json!(now());
        meta["generation"] = json!(1);
        object["apiVersion"] = json!(api_version);
        o.objects.insert(key.clone(), object.clone());
        self.record(&mut o, "ADDED", &key, object.clone());
        Ok(object)
    }

    /// Replaces an object (or its status), if the resourceVersion it
    /// carries is current.
    pub fn replace(&self, key: &ObjectKey, object: Value, subresource: Option<&str>) -> Result<Value, Refusal> {
        let mut o = self.lock();
        let current = o.objects.get(key).cloned().ok_or_else(|| Refusal::not_found(key))?;
        if let Some(given) = object["metadata"]["resourceVersion"].as_str()
            && given != current["metadata"]["resourceVersion"].as_str().unwrap_or_default()
        {
            return Err(Refusal::conflict(format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your \
                 changes to the latest version and try again",
                key.resource, key.name
            )));
        }
        let mut next = current.clone();
        match subresource {
            Some("status") => next["status"] = object["status"].clone(),
            Some(other) => return Err(Refusal::unsupported(&format!("the {other} subresource"))),
            None => {
                let status = current["status"].clone();
                // The client's metadata (labels, finalizers), the server's
                // identity and version; the status stays.
                let mut meta = object["metadata"].clone();
                for field in ["uid", "creationTimestamp", "generation", "namespace", "deletionTimestamp"] {
                    meta[field] = current["metadata"][field].clone();
                }
                next = object;
                next["metadata"] = meta;
                next["status"] = status;
            }
        }
        self.store_change(&mut o, key, &current, next)
    }

    /// Merges a patch into an object (or its status). A `resourceVersion`
    /// in the patch is a precondition, as the real server treats it.
    pub fn patch(
        &self,
        key: &ObjectKey,
        patch: Value,
        subresource: Option<&str>,
        api_version: &str,
    ) -> Result<Value, Refusal> {
        let mut o = self.lock();
        let current = o.objects.get(key).cloned().ok_or_else(|| Refusal::not_found(key))?;
        if let Some(given) = patch["metadata"]["resourceVersion"].as_str()
            && given != current["metadata"]["resourceVersion"].as_str().unwrap_or_default()
        {
            return Err(Refusal::conflict(format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified",
                key.resource, key.name
            )));
        }
        let mut next = current.clone();
        match subresource {
            Some("status") => merge(&mut next["status"], &patch["status"]),
            Some(other) => return Err(Refusal::unsupported(&format!("the {other} subresource"))),
            None => {
                let mut patch = patch;
                if let Value::Object(fields) = &mut patch {
                    // Status changes go through the status subresource.
                    fields.remove("status");
                    fields.remove("apiVersion");
                    fields.remove("kind");
                }
                merge(&mut next, &patch);
            }
        }
        next["apiVersion"] = json!(api_version);
        self.store_change(&mut o, key, &current, next)
    }

    fn store_change(
        &self,
        o: &mut Objects,
        key: &ObjectKey,
        current: &Value,
        mut next: Value,
    ) -> Result<Value, Refusal> {
        o.version += 1;
        if next.get("spec") != current.get("spec") {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            next["metadata"]["generation"] = json!(generation);
        }
        next["metadata"]["resourceVersion"] = json!(o.version.to_string());
        // An object marked for deletion goes when its last finalizer does.
        let finalizers_left = next["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        if next["metadata"]["deletionTimestamp"].is_string() && !finalizers_left {
            o.objects.remove(key);
            self.record(o, "DELETED", key, next.clone());
            return Ok(next);
        }
        o.objects.insert(key.clone(), next.clone());
        self.record(o, "MODIFIED", key, next.clone());
        Ok(next)
    }

    /// Deletes an object, or marks it for deletion while it has finalizers.
    pub fn delete(&self, key: &ObjectKey) -> Result<Value, Refusal> {
        let mut o = self.lock();
        let mut current = o.objects.get(key).cloned().ok_or_else(|| Refusal::not_found(key))?;
        o.version += 1;
        current["metadata"]["resourceVersion"] = json!(o.version.to_string());
        if current["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty()) {
            if !current["metadata"]["deletionTimestamp"].is_string() {
                current["metadata"]["deletionTimestamp"] = json!(now());
            }
            o.objects.insert(key.clone(), current.clone());
            self.record(&mut o, "MODIFIED", key, current.clone());
            return Ok(current);
        }
        o.objects.remove(key);
        self.record(&mut o, "DELETED", key, current.clone());
        Ok(current)
    }

    /// Changes an object in place, as a controller of the cluster would
    /// (the kubelet writing a pod's status): no precondition.
    pub fn update_with(&self, key: &ObjectKey, change: impl FnOnce(&mut Value)) -> Option<Value> {
        let mut o = self.lock();
        let current = o.objects.get(key).cloned()?;
        let mut next = current.clone();
        change(&mut next);
        self.store_change(&mut o, key, &current, next).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectKey {
        ObjectKey { resource: "leases".into(), namespace: "q".into(), name: name.into() }
    }

    #[test]
    fn a_stale_resource_version_is_a_conflict_and_a_current_one_is_not() {
        let store = Store::default();
        let created = store
            .create(
                "leases",
                "q",
                "coordination.k8s.io/v1",
                json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}}),
            )
            .expect("created");
        let rv = created["metadata"]["resourceVersion"].as_str().expect("rv").to_owned();
        let mut next = created.clone();
        next["spec"]["holderIdentity"] = json!("b");
        let replaced = store.replace(&key("l"), next.clone(), None).expect("current version");
        assert_eq!(replaced["spec"]["holderIdentity"], "b");
        assert_eq!(replaced["metadata"]["generation"], 2);
        next["metadata"]["resourceVersion"] = json!(rv);
        let refused = store.replace(&key("l"), next, None).expect_err("stale");
        assert_eq!(refused.code, StatusCode::CONFLICT);
    }

    #[test]
    fn finalizers_hold_a_deletion_until_removed_and_watches_see_every_step() {
        let store = Store::default();
        store
            .create("leases", "q", "v1", json!({"metadata": {"name": "l", "finalizers": ["x"], "labels": {"a": "1"}}}))
            .expect("created");
        store.delete(&key("l")).expect("marked");
        assert!(store.get(&key("l")).expect("still there")["metadata"]["deletionTimestamp"].is_string());
        store.patch(&key("l"), json!({"metadata": {"finalizers": null}}), None, "v1").expect("patched");
        assert!(store.get(&key("l")).is_err(), "gone with its last finalizer");
        let kinds: Vec<&str> = store.changes_since(0).iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"]);
        assert!(selects("a=1", &store.changes_since(0)[0].object));
        assert!(!selects("a=2", &store.changes_since(0)[0].object));
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_783), (2026, 11, 26));
    }
}
