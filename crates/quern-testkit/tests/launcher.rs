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

#[test]
fn admins_add_workers_by_hand_that_stay_idle_until_removed() {
    let c = TestCluster::start(0, &["--launcher", "local", "--max-workers", "3", "--idle-timeout", "1s"]);
    let out = c.cli().args(["workers", "add", "2"]).output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let added: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(added.len(), 2, "{added:?}");
    c.wait_for_workers(2);
    std::thread::sleep(Duration::from_secs(3));
    let mut alive = alive_workers(&c);
    alive.sort();
    assert_eq!(alive, added, "workers added by hand outlive --idle-timeout");

    let out = c.cli().args(["workers", "add", "5"]).output().expect("runs");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1, "only up to --max-workers 3");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-workers"));

    let out = c.cli().args(["workers", "remove", &added[0]]).output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    c.wait_until("the removed worker to go", Duration::from_secs(30), || !alive_workers(&c).contains(&added[0]));

    let out = c.cli().args(["workers", "remove", "no-such-worker"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not launched by this coordinator"));
}

#[test]
fn workers_add_without_a_launcher_says_how_to_get_one() {
    let c = TestCluster::start(0, &[]);
    let out = c.cli().args(["workers", "add", "1"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--launcher"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_launched_worker_killed_mid_job_is_lost_at_once_with_its_reason_in_the_jobs_events() {
    // The loss comes from the launcher's report (within 200 ms), before
    // the heartbeats' timeout (2 s here): the event says "Killed".
    let (c, api, _files) = support::http::start_with_http(
        0,
        &["--launcher", "local", "--max-workers", "2", "--worker-slots", "1"],
        vec![],
    );
    let (id, out) = c.slow_job_under_way(300, 2);
    let victim = c
        .try_json(&["status", &id.to_string()])
        .and_then(|s| s["running"].as_array().and_then(|r| r.first().cloned()))
        .and_then(|r| r["worker"].as_str().map(str::to_owned))
        .expect("an attempt runs");
    let status = std::process::Command::new("pkill")
        .args(["-9", "-f", "--", &format!("--id {victim}$")])
        .status()
        .expect("pkill");
    assert!(status.success(), "killed {victim}");
    let status = c.wait_job(id, Duration::from_secs(120));
    assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());
    assert_eq!(sorted_lines(&out), numbered(300), "nothing lost, nothing twice");
    let events = status["events"].as_array().cloned().unwrap_or_default();
    let lost = events.iter().find(|e| e["reason"] == "WorkerLost").unwrap_or_else(|| panic!("{events:?}"));
    let message = lost["message"].as_str().unwrap_or_default();
    assert!(message.contains(&victim) && message.contains("Killed"), "{message}");
    let plain = c.cli().args(["status", &id.to_string()]).output().expect("runs");
    assert!(String::from_utf8_lossy(&plain.stdout).contains("WorkerLost"));
    // The REST API (and so the dashboard's job page) has the same events.
    let (code, rest) = support::http::http(&api, "GET", &format!("/api/v1/jobs/{id}/events"), Some(TOKEN), None);
    assert_eq!(code, 200, "{rest}");
    let rest = rest.as_array().cloned().unwrap_or_default();
    assert_eq!(rest.len(), events.len(), "{rest:?} vs {events:?}");
    let lost = rest.iter().find(|e| e["reason"] == "WorkerLost").unwrap_or_else(|| panic!("{rest:?}"));
    assert_eq!(lost["message"].as_str(), Some(message));
    assert!(lost["at_ms"].as_i64().is_some_and(|at| at > 0), "{lost}");
    let (code, _) = support::http::http(&api, "GET", "/api/v1/jobs/999999/events", Some(TOKEN), None);
    assert_eq!(code, 404);
}
