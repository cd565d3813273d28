//! The `MapReduceJob` operator: two `quern operator` replicas against a fake
//! API server (one leads, by the Lease) and a real coordinator with two
//! workers. An applied resource runs to `Succeeded` with its status filled
//! in; a bad one fails with the reason; deleting one kills its job.
//!
//! No real API server can run here: see `quern_testkit::fake_kube`.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::kube::*;
use support::*;

/// An operator process, stopped when dropped.
struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn operator(fake: &FakeCluster, c: &TestCluster, identity: &str) -> Operator {
    let child = Command::new(BIN)
        .args(["operator", "--coordinator", &c.url(), "--identity", identity])
        .env("KUBECONFIG", &fake.kubeconfig)
        .env("QUERN_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .stdout(c.log(&format!("{identity}.log")))
        .stderr(c.log(&format!("{identity}.log")))
        .stdin(Stdio::null())
        .spawn()
        .expect("start the operator");
    Operator(child)
}

fn apply(fake: &FakeCluster, name: &str, spec: Value) {
    fake.server
        .store
        .create(
            "mapreducejobs",
            NAMESPACE,
            "quern.dev/v1alpha1",
            json!({"kind": "MapReduceJob", "metadata": {"name": name}, "spec": spec}),
        )
        .expect("applied");
}

fn resource(fake: &FakeCluster, name: &str) -> Value {
    object(&fake.server, "mapreducejobs", name).unwrap_or(Value::Null)
}

#[test]
fn an_applied_mapreducejob_runs_to_succeeded_and_a_deleted_one_is_killed() {
    let fake = fake_cluster();
    let c = TestCluster::start(2, &[]);
    let _a = operator(&fake, &c, "operator-a");
    let _b = operator(&fake, &c, "operator-b");

    let out = c.path("out");
    apply(
        &fake,
        "wordcount",
        json!({"app": "wordcount", "inputs": [gutenberg().display().to_string()],
               "output": out.display().to_string(), "reducers": 2}),
    );
    c.wait_until("the MapReduceJob to succeed", Duration::from_secs(120), || {
        resource(&fake, "wordcount")["status"]["phase"] == "Succeeded"
    });
    let done = resource(&fake, "wordcount");
    let status = &done["status"];
    let id = status["jobId"].as_u64().expect("the job's id");
    assert_eq!(c.json(&["status", &id.to_string()])["state"], "succeeded");
    assert_eq!(status["progress"], "done");
    assert_eq!(status["output"], out.display().to_string().as_str());
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["maps"]["succeeded"], status["maps"]["total"]);
    assert_eq!(status["reduces"]["total"], 2);
    assert!(status["counters"].as_object().is_some_and(|c| !c.is_empty()), "{status}");
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    let condition = |t: &str| conditions.iter().find(|c| c["type"] == t).cloned().unwrap_or(Value::Null);
    assert_eq!(condition("Submitted")["status"], "True");
    assert_eq!(condition("Complete")["status"], "True");
    assert!(
        done["metadata"]["finalizers"].as_array().is_some_and(|f| f.iter().any(|f| f == "quern.dev/kill-job")),
        "{done}"
    );
    let expected = c.path("expected");
    embedded("wordcount", &gutenberg(), &expected, &["--reducers", "2"]);
    assert_eq!(parts(&out), parts(&expected));

    // One replica leads.
    let lease = object(&fake.server, "leases", "quern-operator").expect("the Lease");
    let holder = lease["spec"]["holderIdentity"].as_str().unwrap_or_default().to_owned();
    assert!(holder == "operator-a" || holder == "operator-b", "{lease}");
    let jobs = c.json(&["jobs"]);
    assert_eq!(jobs.as_array().map(Vec::len), Some(1), "submitted once, by one replica: {jobs}");

    // A spec quern cannot run fails with the reason, and submits nothing.
    let bad_out = c.path("bad-out").display().to_string();
    apply(&fake, "bad", json!({"app": "wordcount", "inputs": ["relative/path"], "output": bad_out, "reducers": 1}));
    c.wait_until("the bad MapReduceJob to fail", Duration::from_secs(60), || {
        resource(&fake, "bad")["status"]["phase"] == "Failed"
    });
    let message = resource(&fake, "bad")["status"]["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains("spec.inputs") && message.contains("absolute path"), "{message}");

    // Deleting a running one kills its job, then lets it go.
    let input = c.path("lines.txt");
    write_lines(&input, &numbered(400));
    apply(
        &fake,
        "slow",
        json!({"app": "slow", "params": {"ms": "20"}, "inputs": [input.display().to_string()],
               "output": c.path("slow-out").display().to_string(), "splitSize": 200, "reducers": 1}),
    );
    c.wait_until("the slow job to run", Duration::from_secs(60), || {
        resource(&fake, "slow")["status"]["phase"] == "Running"
    });
    let slow_id = resource(&fake, "slow")["status"]["jobId"].as_u64().expect("an id");
    fake.server
        .store
        .delete(&quern_testkit::fake_kube::ObjectKey {
            resource: "mapreducejobs".into(),
            namespace: NAMESPACE.into(),
            name: "slow".into(),
        })
        .expect("deleted");
    c.wait_until("the deleted resource to go", Duration::from_secs(60), || resource(&fake, "slow").is_null());
    assert_eq!(c.json(&["status", &slow_id.to_string()])["state"], "killed");
}
