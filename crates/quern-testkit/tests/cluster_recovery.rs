//! Faults the cluster must recover from, with real processes on 127.0.0.1:
//! a worker whose disk is full beside a healthy one, a worker that comes
//! back without the map outputs it wrote, a job killed while its attempts
//! are still writing, and a worker that was away when its jobs ended.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// The task of an attempt name like `m-00003#2`.
fn task_of(attempt: &Value) -> String {
    attempt["attempt"].as_str().and_then(|s| s.split('#').next()).unwrap_or_default().to_owned()
}

#[test]
fn a_worker_with_a_full_disk_is_avoided_and_the_jobs_succeed() {
    let mut c = TestCluster::start(1, &["--no-speculation"]);
    c.add_worker_on_small_disk("8k", &["--id", "sick", "--coordinator-timeout", "20s"]);
    c.wait_for_workers(2);
    let local = c.path("embedded");
    embedded("wordcount", &gutenberg(), &local, &["--reducers", "2"]);

    for round in 1..=2 {
        let out = c.path(&format!("out-{round}"));
        let id = c.submit_job("wordcount", &gutenberg(), &out, &["--reducers", "2", "--split-size", "200KiB"]);
        let status = c.wait_job(id, Duration::from_secs(120));
        assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());
        assert_eq!(parts(&out), parts(&local), "round {round}");

        let attempts = c.attempts(id);
        let on_sick: Vec<&Value> = attempts.iter().filter(|a| a["worker"] == "sick").collect();
        assert!(!on_sick.is_empty(), "the sick worker got no work in round {round}: {attempts:?}");
        let mut per_task: BTreeMap<String, usize> = BTreeMap::new();
        for a in &on_sick {
            assert_eq!(a["outcome"], "failed", "nothing succeeds on a full disk: {a}");
            // The reason is in the attempt's log, not only in its error.
            let log = a["log"].as_str().unwrap_or_default();
            assert!(log.contains("No space left on device"), "the log says why: {a}");
            *per_task.entry(task_of(a)).or_default() += 1;
        }
        assert!(per_task.values().all(|&n| n == 1), "a task's retry went back to the sick worker: {per_task:?}");
        // Three failed tasks exclude it from the job; one more may have
        // been running then.
        assert!(on_sick.len() <= 4, "the sick worker kept getting work: {on_sick:?}");
    }

    // Two jobs stopped using it: the whole cluster does, for a while.
    let workers = c.json(&["workers"]);
    let sick = workers.as_array().and_then(|ws| ws.iter().find(|w| w["id"] == "sick")).expect("the sick worker");
    assert_eq!(sick["state"], "blacklisted", "{workers}");
    assert!(sick["blacklisted_until_ms"].as_i64().unwrap_or(0) > 0, "{sick}");
    let text = c.cli().arg("workers").output().expect("workers");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.lines().any(|l| l.starts_with("sick") && l.contains("blacklisted") && l.contains("until")), "{text}");
}

#[test]
fn a_reduce_on_a_worker_that_lost_its_own_map_outputs_runs_those_maps_again() {
    let mut c = TestCluster::start(0, &["--no-speculation"]);
    c.add_worker(&["--id", "solo", "--coordinator-timeout", "20s"]);
    c.wait_for_workers(1);
    let input = c.path("lines.txt");
    write_lines(&input, &numbered(120));
    let out = c.path("out");
    // 6 maps, then 8 slow reduces: time to break the worker mid-reduce.
    let id = c.submit_job("slow", &input, &out, &["--param", "ms=25", "--split-size", "200", "--reducers", "8"]);
    c.wait_until("the reduce phase", Duration::from_secs(60), || {
        c.try_json(&["status", &id.to_string()])
            .is_some_and(|s| s["phase"] == "reduce" && s["reduces"]["running"].as_u64().unwrap_or(0) > 0)
    });
    TestCluster::kill9(&mut c.workers[0]);
    // Its attempt processes notice within 200 ms that it is gone, and end;
    // until then they may still write under the directory.
    let work_dir = c.path("worker-0");
    c.wait_until("the work directory is lost", Duration::from_secs(10), || match fs::remove_dir_all(&work_dir) {
        Ok(()) => true,
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    });
    // The same worker comes back with an empty work directory.
    c.add_worker(&["--id", "solo", "--coordinator-timeout", "20s"]);
    let status = c.wait_job(id, Duration::from_secs(120));
    assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());
    assert_eq!(sorted_lines(&out), numbered(120));
    let attempts = c.attempts(id);
    assert!(attempts.iter().any(|a| a["outcome"] == "fetch_failed"), "the lost outputs were noticed: {attempts:?}");
    assert!(attempts.iter().all(|a| a["outcome"] != "failed"), "losing map outputs is no task failure: {attempts:?}");
    let maps_rerun = attempts.iter().filter(|a| task_of(a).starts_with("m-") && a["outcome"] == "succeeded").count();
    assert!(maps_rerun >= 12, "every map ran again: {attempts:?}");
}

/// Sends `signal` to `pid`.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill").args([signal, &pid.to_string()]).status().expect("kill");
    assert!(status.success(), "kill {signal} {pid}");
}

/// The children of process `pid`.
fn children(pid: u32) -> Vec<u32> {
    let out = Command::new("pgrep").args(["-P", &pid.to_string()]).output().expect("pgrep");
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

#[test]
fn a_killed_job_leaves_no_output_even_when_its_attempts_write_after_the_kill() {
    let c = TestCluster::start(1, &["--no-speculation"]);
    let input = c.path("lines.txt");
    write_lines(&input, &numbered(40));
    let out = c.path("out");
    // Map-only: attempts write their part files into the output's
    // _temporary, each after a 300 ms record.
    let id = c.submit_job("slow", &input, &out, &["--param", "ms=300", "--split-size", "40", "--reducers", "0"]);
    let worker = c.workers[0].id();
    c.wait_until("two attempt processes", Duration::from_secs(30), || children(worker).len() >= 2);
    // Freeze the attempts before they write, and the worker so it cannot
    // stop them: they go on writing after the kill, as slow ones do.
    let attempts = children(worker);
    for &pid in &attempts {
        signal(pid, "-STOP");
    }
    signal(worker, "-STOP");
    let killed = c.cli().args(["kill", &id.to_string()]).output().expect("kill");
    assert!(killed.status.success(), "{}", String::from_utf8_lossy(&killed.stderr));
    assert!(!out.exists(), "the kill removed the output at once");
    for &pid in &attempts {
        signal(pid, "-CONT");
    }
    std::thread::sleep(Duration::from_millis(700));
    signal(worker, "-CONT");
    c.wait_until("the attempts to stop", Duration::from_secs(30), || {
        c.json(&["workers"]).as_array().is_some_and(|ws| ws.iter().all(|w| w["running"] == 0))
            && children(worker).is_empty()
    });
    assert!(!out.exists(), "a killed job's late attempts re-created its output: {:?}", fs::read_dir(&out).ok());
    // So the same output can be used again at once.
    let again = c.submit_job("slow", &input, &out, &["--param", "ms=0", "--reducers", "0"]);
    let status = c.wait_job(again, Duration::from_secs(60));
    assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());
    assert_eq!(sorted_lines(&out), numbered(40));
}

#[test]
fn a_worker_that_was_away_when_its_job_ended_deletes_the_job_s_data_when_it_returns() {
    let mut c = TestCluster::start(0, &["--no-speculation"]);
    c.add_worker(&["--id", "away", "--coordinator-timeout", "20s"]);
    c.add_worker(&[]);
    c.wait_for_workers(2);
    let (id, out) = c.slow_job_under_way(160, 3);
    let held = c.path("worker-0").join("jobs").join(id.to_string());
    c.wait_until("map outputs on the first worker", Duration::from_secs(30), || {
        fs::read_dir(&held).is_ok_and(|d| d.flatten().any(|e| e.path().join("map.out").exists()))
    });
    TestCluster::kill9(&mut c.workers[0]);
    let status = c.wait_job(id, Duration::from_secs(120));
    assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());
    assert_eq!(sorted_lines(&out), numbered(160));
    assert!(held.exists(), "the dead worker's data is still there");
    c.add_worker_in("worker-0", &["--id", "away", "--coordinator-timeout", "20s"]);
    c.wait_until("the returning worker to delete the ended job's data", Duration::from_secs(20), || !held.exists());
}

#[test]
fn an_ended_job_s_map_outputs_stay_for_the_retention_then_go() {
    let c = TestCluster::start(1, &["--no-speculation", "--retention", "3s"]);
    let input = c.path("in.txt");
    fs::write(&input, "a b a\nc a b\n").expect("write");
    let id = c.submit_job("wordcount", &input, &c.path("out"), &[]);
    let status = c.wait_job(id, Duration::from_secs(60));
    let ended = Instant::now();
    assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());
    let held = c.path("worker-0").join("jobs").join(id.to_string());
    assert!(held.exists(), "the map outputs are kept after the job ended");
    c.wait_until("the worker to delete the ended job's data", Duration::from_secs(20), || !held.exists());
    let kept = ended.elapsed();
    assert!(kept >= Duration::from_millis(2_500), "deleted after {kept:?}, before the 3s retention");
}
