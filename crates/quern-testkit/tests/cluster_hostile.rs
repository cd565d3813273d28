//! The cluster against peers that misbehave. Every server must stay up and
//! keep running jobs; the intruder must be refused.
//! - A second coordinator started on a state directory in use.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

fn assert_alive(c: &mut TestCluster, what: &str) {
    let logs = c.logs();
    if let Some(coordinator) = c.coordinator.as_mut() {
        let status = coordinator.try_wait().expect("try_wait");
        assert!(status.is_none(), "after {what}, the coordinator exited with {status:?}\n{logs}");
    }
    for (i, w) in c.workers.iter_mut().enumerate() {
        let status = w.try_wait().expect("try_wait");
        assert!(status.is_none(), "after {what}, worker {i} exited with {status:?}\n{logs}");
    }
}

/// Waits up to `timeout` for `child` to exit.
fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn a_second_coordinator_on_the_same_state_is_refused() {
    let mut c = TestCluster::start(1, &["--no-speculation"]);
    let mut second = Command::new(BIN)
        .args(["coordinator", "--listen", &format!("127.0.0.1:{}", free_port()), "--data-dir"])
        .arg(c.path("coordinator"))
        .env("QUERN_TOKEN", TOKEN)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a second coordinator");
    let status = wait_exit(&mut second, Duration::from_secs(10));
    if status.is_none() {
        TestCluster::kill9(&mut second);
    }
    let mut stderr = String::new();
    if let Some(mut e) = second.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut stderr).expect("stderr");
    }
    let status = status.unwrap_or_else(|| panic!("the second coordinator kept running\n{stderr}"));
    assert!(!status.success(), "the second coordinator exited with {status}");
    assert!(stderr.contains("quern.db.lock"), "the refusal does not name the lock: {stderr}");
    let holder = c.coordinator.as_ref().map(|k| k.id()).expect("the first coordinator");
    assert!(stderr.contains(&format!("pid {holder}")), "the refusal does not name the holder ({holder}): {stderr}");

    // The first one carries on.
    assert_alive(&mut c, "a second coordinator");
    let input = c.path("lines.txt");
    write_lines(&input, &numbered(50));
    let out = c.path("out");
    let id = c.submit_job("wordcount", &input, &out, &["--reducers", "2", "--split-size", "90"]);
    let status = c.wait_job(id, Duration::from_secs(60));
    assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());

    // Once it is gone, the state may be opened again (kill -9 leaves the lock
    // file behind, but no lock).
    if let Some(first) = c.coordinator.as_mut() {
        TestCluster::kill9(first);
    }
    c.start_coordinator();
    c.wait_for_workers(1);
    let jobs = c.json(&["jobs"]);
    assert_eq!(jobs.as_array().map(|j| j.len()), Some(1), "{jobs}");
}
