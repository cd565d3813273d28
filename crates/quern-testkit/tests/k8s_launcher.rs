//! The real `quern coordinator --launcher kubernetes` binary against a fake
//! API server, whose fake kubelet runs each worker pod as a local process
//! from the pod spec the coordinator created. Pods are killed as
//! Kubernetes kills them (OOMKilled, evicted) in the middle of jobs, which
//! still succeed with the right output; the reasons are in the jobs'
//! events, and the attempt logs stay readable after the pods are gone.
//!
//! No real API server can run here: see `quern_testkit::fake_kube` for what
//! the fake does and does not do.

mod support;

use std::time::Duration;

use quern_testkit::fake_kube::kubelet::Fate;
use serde_json::Value;
use support::kube::*;
use support::*;

fn start_coordinator(fake: &FakeCluster, workers: usize, extra: &[&str]) -> TestCluster {
    let mut args = vec![
        "--launcher",
        "kubernetes",
        "--worker-image",
        "localhost/quern:test",
        "--worker-cpu",
        "500m",
        "--worker-memory",
        "1Gi",
        "--worker-slots",
        "1",
    ];
    args.extend_from_slice(extra);
    TestCluster::start_with_env(workers, &args, vec![("KUBECONFIG".to_owned(), fake.kubeconfig.display().to_string())])
}

fn events(status: &Value) -> Vec<(String, String)> {
    status["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (e["reason"].as_str().unwrap_or_default().to_owned(), e["message"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

#[test]
fn jobs_on_worker_pods_survive_oomkilled_and_evicted_pods() {
    let fake = fake_cluster();
    let c = start_coordinator(&fake, 0, &["--max-workers", "3", "--idle-timeout", "60s"]);
    // About 20 maps of 0.8 s each: long enough to kill two pods mid-job.
    let input = c.path("lines.txt");
    write_lines(&input, &numbered(600));
    let out = c.path("out");
    let id = c.submit_job("slow", &input, &out, &["--param", "ms=30", "--split-size", "200", "--reducers", "2"]);

    // The pods as created: the launcher's labels, the token from the
    // Secret, the resources from the flags.
    c.wait_until("worker pods for the job", Duration::from_secs(60), || {
        created_pods(&fake.server).iter().any(|p| p["metadata"]["labels"]["quern.dev/job"] == id.to_string().as_str())
    });
    let pods = created_pods(&fake.server);
    assert!(!pods.is_empty() && pods.len() <= 3, "within --max-workers: {}", pods.len());
    let first = &pods[0];
    let name = first["metadata"]["name"].as_str().expect("a name").to_owned();
    assert_eq!(first["metadata"]["labels"]["quern.dev/worker"], name.as_str());
    assert_eq!(first["metadata"]["labels"]["app.kubernetes.io/component"], "worker");
    let container = &first["spec"]["containers"][0];
    assert_eq!(container["image"], "localhost/quern:test");
    assert_eq!(container["resources"]["limits"]["memory"], "1Gi");
    let token = container["env"].as_array().expect("env").iter().find(|e| e["name"] == "QUERN_TOKEN").expect("token");
    assert_eq!(token["valueFrom"]["secretKeyRef"]["name"], "quern-token");
    assert!(token.get("value").is_none(), "never the token itself");
    assert!(
        pods.iter().any(|p| p["metadata"]["labels"]["quern.dev/job"] == id.to_string().as_str()),
        "a pod launched for the job says so"
    );

    // Kill two pods that run attempts, as Kubernetes would.
    let running_on = |c: &TestCluster| -> Vec<String> {
        c.try_json(&["status", &id.to_string()])
            .and_then(|s| s["running"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|r| r["worker"].as_str().map(str::to_owned))
            .collect()
    };
    let mut killed = Vec::new();
    for fate in [Fate::OomKilled, Fate::Evicted] {
        c.wait_until("an attempt on a pod not yet killed", Duration::from_secs(60), || {
            running_on(&c).iter().any(|w| !killed.contains(w) && fake.kubelet.running().contains(w))
        });
        let victim = running_on(&c)
            .into_iter()
            .find(|w| !killed.contains(w) && fake.kubelet.running().contains(w))
            .expect("a victim");
        assert!(fake.kubelet.kill(&victim, fate), "{victim} ran");
        killed.push(victim);
    }

    let status = c.wait_job(id, Duration::from_secs(180));
    assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());
    assert_eq!(sorted_lines(&out), numbered(600), "nothing lost, nothing twice");

    let events = events(&status);
    for (victim, reason) in killed.iter().zip(["OOMKilled", "Evicted"]) {
        assert!(
            events.iter().any(|(r, m)| r == "WorkerLost" && m.contains(victim.as_str()) && m.contains(reason)),
            "{victim} {reason}: {events:?}"
        );
        // The pod is gone; what its attempts logged is not.
        c.wait_until("the ended pod to be deleted", Duration::from_secs(30), || pod(&fake.server, victim).is_none());
        let attempts = c.attempts(id);
        let there: Vec<&Value> = attempts.iter().filter(|a| a["worker"] == victim.as_str()).collect();
        assert!(!there.is_empty(), "{victim}'s attempts are kept");
        assert!(there.iter().any(|a| a["outcome"] == "lost"), "{there:?}");
    }
    let plain = c.cli().args(["status", &id.to_string()]).output().expect("runs");
    let text = String::from_utf8_lossy(&plain.stdout);
    assert!(text.contains("OOMKilled") && text.contains("Evicted"), "{text}");
}

#[test]
fn a_pod_whose_image_cannot_be_pulled_is_reported_on_its_job_and_removed() {
    let fake = fake_cluster();
    // One worker started by hand plans and runs the job; the pods launched
    // for its queued work never start.
    let c = TestCluster::start_with_env(
        1,
        &[
            "--launcher",
            "kubernetes",
            "--worker-image",
            "unpullable/quern:nope",
            "--max-workers",
            "2",
            "--worker-start-timeout",
            "3s",
        ],
        vec![("KUBECONFIG".to_owned(), fake.kubeconfig.display().to_string())],
    );
    let (id, _out) = c.slow_job_under_way(200, 1);
    c.wait_until("the job's events to name ErrImagePull", Duration::from_secs(60), || {
        c.try_json(&["status", &id.to_string()]).is_some_and(|s| events(&s).iter().any(|(r, _)| r == "ErrImagePull"))
    });
    let launched: Vec<String> =
        created_pods(&fake.server).iter().filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned)).collect();
    assert!(!launched.is_empty());
    c.wait_until("pods that never started to be removed", Duration::from_secs(30), || {
        pod(&fake.server, &launched[0]).is_none()
    });
    assert!(fake.kubelet.started().is_empty(), "no pod ever ran");
    let status = c.wait_job(id, Duration::from_secs(120));
    assert_eq!(status["state"], "succeeded", "the hand-started worker finished it");
}
