//! Workers launched on demand (`quern coordinator --launcher local`): the
//! same launcher loop and autoscaler as Kubernetes' pods, with `quern
//! worker` processes on this machine.

mod support;

use std::time::Duration;

use support::*;

fn alive_workers(c: &TestCluster) -> Vec<String> {
    c.try_json(&["workers"])
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter(|w| w["state"] == "alive")
        .filter_map(|w| w["id"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_local_launcher_starts_workers_for_queued_work_and_removes_them_when_idle() {
    let c = TestCluster::start(
        0,
        &["--launcher", "local", "--max-workers", "2", "--worker-slots", "2", "--idle-timeout", "3s"],
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(alive_workers(&c).is_empty(), "no work, no worker (--min-workers 0)");

    let out = c.path("out");
    let id = c.submit_job("wordcount", &gutenberg(), &out, &["--reducers", "3", "--split-size", "200000"]);
    let status = c.wait_job(id, Duration::from_secs(120));
    assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());
    let expected = c.path("expected");
    embedded("wordcount", &gutenberg(), &expected, &["--reducers", "3"]);
    assert_eq!(parts(&out), parts(&expected), "launched workers compute what the embedded run does");

    let ran: std::collections::BTreeSet<String> =
        c.attempts(id).iter().filter_map(|a| a["worker"].as_str().map(str::to_owned)).collect();
    assert!(!ran.is_empty() && ran.len() <= 2, "at most --max-workers: {ran:?}");
    assert!(ran.iter().all(|w| w.starts_with("local-worker-")), "{ran:?}");

    c.wait_until("the idle launched workers to be removed", Duration::from_secs(30), || alive_workers(&c).is_empty());
    let log = std::fs::read_to_string(c.path("coordinator.log")).unwrap_or_default();
    assert!(log.contains("removing an idle launched worker"), "{log}");
}

#[test]
fn a_launcher_with_min_workers_keeps_them_and_refuses_min_over_max() {
    let c = TestCluster::start(
        0,
        &["--launcher", "local", "--min-workers", "1", "--max-workers", "3", "--idle-timeout", "1s"],
    );
    c.wait_for_workers(1);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(alive_workers(&c).len(), 1, "the one --min-workers stays, idle past the timeout");

    let out = assert_cmd::Command::cargo_bin("quern-testkit")
        .expect("binary")
        .args([
            "coordinator",
            "--listen",
            "127.0.0.1:0",
            "--launcher",
            "local",
            "--min-workers",
            "3",
            "--max-workers",
            "2",
        ])
        .arg("--data-dir")
        .arg(c.path("other"))
        .env("QUERN_TOKEN", "a-token-for-this-test")
        .timeout(Duration::from_secs(30))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--min-workers 3 is more than --max-workers 2"));
}
