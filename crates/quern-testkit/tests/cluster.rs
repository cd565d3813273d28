//! The cluster with real processes on 127.0.0.1, in the manner of the MIT
//! 6.5840 MapReduce lab: a coordinator and workers of the `quern-testkit`
//! binary, jobs submitted through the CLI, outputs compared with the
//! embedded run's, and workers and coordinators killed on purpose.

mod support;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

#[test]
fn wordcount_and_indexer_equal_the_embedded_run_with_one_attempt_per_task() {
    let c = TestCluster::start(3, &["--no-speculation"]);
    for app in ["wordcount", "indexer"] {
        let out = c.path(&format!("{app}-cluster"));
        let id = c.submit_job(app, &gutenberg(), &out, &["--reducers", "3", "--split-size", "200KiB"]);
        let status = c.wait_job(id, Duration::from_secs(120));
        assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());
        let local = c.path(&format!("{app}-embedded"));
        embedded(app, &gutenberg(), &local, &["--reducers", "3"]);
        assert_eq!(parts(&out), parts(&local), "{app}: cluster and embedded outputs differ");
        let attempts = c.attempts(id);
        assert!(attempts.len() >= 20, "{} attempts", attempts.len());
        assert!(attempt_numbers(&attempts).iter().all(|&n| n == 1), "a task ran twice without failures: {attempts:?}");
        assert!(attempts.iter().all(|a| a["outcome"] == "succeeded"));
    }
}

#[test]
fn a_total_order_sort_and_a_two_output_app_in_total_order_equal_the_embedded_run() {
    let c = TestCluster::start(2, &["--no-speculation"]);
    // Over 4 MiB, so the plan samples places: the worker that plans and
    // `quern run` must choose the same cut points.
    let input = c.path("lines.txt");
    let mut text = String::new();
    let mut x = 3u64;
    for i in 0..75_000u64 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let hot = if i % 10 == 0 { "hot".to_owned() } else { format!("{:010x}", x >> 24) };
        text.push_str(&format!("{hot} w{} {:048x}\n", (x >> 8) % 97, x >> 20));
    }
    fs::write(&input, &text).expect("write input");
    let flags = ["--reducers", "3", "--split-size", "512KiB"];

    let out = c.path("sort-cluster");
    let id = c.submit_job("sort", &input, &out, &flags);
    let status = c.wait_job(id, Duration::from_secs(180));
    assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());
    let local = c.path("sort-embedded");
    embedded("sort", &input, &local, &flags);
    let cluster_parts = parts(&out);
    assert_eq!(cluster_parts, parts(&local), "sort: cluster and embedded outputs differ");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    let all: Vec<u8> = cluster_parts.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    assert!(all == format!("{}\n", lines.join("\n")).into_bytes(), "the part files in order are the sorted input");
    assert!(cluster_parts.iter().all(|(_, b)| b.len() > 1 << 20), "every reducer has its share");

    // Every output of an app with two is sampled for its own cut points.
    // (A smaller input: this app's by_length combiner gathers values.)
    let input = c.path("few-lines.txt");
    fs::write(&input, text.lines().take(6_000).map(|l| format!("{l}\n")).collect::<String>()).expect("write input");
    let two = ["--reducers", "3", "--split-size", "64KiB", "--partitioner", "total-order"];
    let out = c.path("tokens-cluster");
    let id = c.submit_job("tokens-two-outputs", &input, &out, &two);
    let status = c.wait_job(id, Duration::from_secs(180));
    assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());
    let local = c.path("tokens-embedded");
    embedded("tokens-two-outputs", &input, &local, &two);
    assert!(out.join("_SUCCESS").exists() && local.join("_SUCCESS").exists());
    let named_parts = |dir: &std::path::Path| {
        let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
            .expect("output dir")
            .flatten()
            .map(|e| (e.file_name().to_string_lossy().into_owned(), fs::read(e.path()).expect("read")))
            .collect();
        v.sort();
        v
    };
    for output in ["counts", "by_length"] {
        let cluster_parts = named_parts(&out.join(output));
        assert_eq!(cluster_parts.len(), 3, "{output}: {cluster_parts:?}");
        assert_eq!(cluster_parts, named_parts(&local.join(output)), "{output}: cluster and embedded outputs differ");
        let keys: Vec<&[u8]> = cluster_parts
            .iter()
            .flat_map(|(_, b)| b.split(|&c| c == b'\n').filter(|l| !l.is_empty()))
            .map(|l| l.split(|&c| c == b'\t').next().unwrap_or(l))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{output}: the part files in order are not sorted");
    }
}

/// Whether two [start, end) intervals overlap.
fn overlap(a: &Value, b: &Value) -> bool {
    let (s1, e1) = (a["started_at_ms"].as_i64().unwrap_or(0), a["finished_at_ms"].as_i64().unwrap_or(0));
    let (s2, e2) = (b["started_at_ms"].as_i64().unwrap_or(0), b["finished_at_ms"].as_i64().unwrap_or(0));
    s1 < e2 && s2 < e1
}

#[test]
fn maps_and_reduces_run_in_parallel_on_different_workers() {
    let c = TestCluster::start(3, &["--no-speculation"]);
    let input = c.path("lines.txt");
    write_lines(&input, &numbered(60));
    let out = c.path("out");
    // 7 maps of 9 lines and 3 reduces of about 20 keys, at 20 ms a record or key.
    let id = c.submit_job("slow", &input, &out, &["--param", "ms=20", "--split-size", "90", "--reducers", "3"]);
    let status = c.wait_job(id, Duration::from_secs(120));
    assert_eq!(status["state"], "succeeded", "{status}");
    let attempts = c.attempts(id);
    for kind in ["m-", "r-"] {
        let of_kind: Vec<&Value> =
            attempts.iter().filter(|a| a["attempt"].as_str().is_some_and(|s| s.starts_with(kind))).collect();
        let workers: std::collections::BTreeSet<&str> = of_kind.iter().filter_map(|a| a["worker"].as_str()).collect();
        assert!(workers.len() >= 2, "{kind} tasks ran on {workers:?}");
        let parallel = of_kind
            .iter()
            .enumerate()
            .any(|(i, a)| of_kind[i + 1..].iter().any(|b| a["worker"] != b["worker"] && overlap(a, b)));
        assert!(parallel, "no two {kind} tasks overlapped on different workers: {of_kind:?}");
    }
    assert_eq!(sorted_lines(&out), numbered(60));
}

#[test]
fn workers_that_never_poll_on_their_own_run_a_whole_job_on_the_coordinator_s_nudges() {
    // Their poll timer is an hour: the attempts they start, they asked for
    // because the coordinator nudged them when the job came and when its
    // maps ended (besides asking again when a slot of theirs frees).
    let mut c = TestCluster::start(0, &["--no-speculation"]);
    c.add_worker(&["--poll-interval", "1h"]);
    c.add_worker(&["--poll-interval", "1h"]);
    c.wait_for_workers(2);
    for round in 0..2 {
        let out = c.path(&format!("out-{round}"));
        let id = c.submit_job("wordcount", &gutenberg(), &out, &["--reducers", "3"]);
        let status = c.wait_job(id, Duration::from_secs(60));
        assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());
        let local = c.path(&format!("embedded-{round}"));
        embedded("wordcount", &gutenberg(), &local, &["--reducers", "3"]);
        assert_eq!(parts(&out), parts(&local), "cluster and embedded outputs differ");
    }
}

#[test]
fn crashing_and_hanging_attempts_still_produce_the_right_output() {
    let c = TestCluster::start(3, &["--task-timeout", "3s"]);
    let out = c.path("out");
    let id = c.submit_job(
        "chaos",
        &gutenberg(),
        &out,
        &[
            "--param",
            "crash=0.3",
            "--param",
            "hang=0.15",
            "--max-attempts",
            "20",
            "--reducers",
            "3",
            "--split-size",
            "300KiB",
        ],
    );
    let status = c.wait_job(id, Duration::from_secs(240));
    assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());
    let local = c.path("embedded");
    embedded("wordcount", &gutenberg(), &local, &["--reducers", "3"]);
    assert_eq!(parts(&out), parts(&local));
    let attempts = c.attempts(id);
    let failed = attempts.iter().filter(|a| a["outcome"] != "succeeded").count();
    assert!(failed > 0, "chaos never struck: {attempts:?}");
}

#[test]
fn a_worker_killed_mid_job_is_replaced() {
    worker_killed_mid_job(&[]);
}

#[test]
fn a_worker_killed_mid_job_is_replaced_with_the_state_in_postgres() {
    let pg = quern_testkit::postgres::TestPostgres::start();
    worker_killed_mid_job(&["--state", &pg.url()]);
}

fn worker_killed_mid_job(state: &[&str]) {
    let mut c = TestCluster::start(3, &[&["--no-speculation"], state].concat());
    let (id, out) = c.slow_job_under_way(200, 3);
    // Live progress: the running attempts, as their workers report them.
    c.wait_until("progress from a running attempt", Duration::from_secs(30), || {
        c.json(&["status", &id.to_string()])["running"].as_array().is_some_and(|r| {
            r.iter().any(|a| a["records"].as_u64().unwrap_or(0) > 0 && a["fraction"].as_f64().unwrap_or(0.0) > 0.0)
        })
    });
    TestCluster::kill9(&mut c.workers[0]);
    let status = c.wait_job(id, Duration::from_secs(120));
    assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());
    assert_eq!(sorted_lines(&out), numbered(200));
    // The maps the lost worker had committed ran again: counted once.
    let expected =
        embedded_counters("slow", &c.path("lines.txt"), &["--param", "ms=0", "--split-size", "200", "--reducers", "2"]);
    assert_counters_match(&status, &expected);
    c.wait_until("the killed worker to be declared lost", Duration::from_secs(30), || {
        c.json(&["workers"]).as_array().is_some_and(|w| w.iter().filter(|w| w["state"] == "lost").count() == 1)
    });
}

#[test]
fn a_coordinator_killed_mid_job_resumes_after_restart() {
    coordinator_killed_mid_job(&[]);
}

#[test]
fn a_coordinator_killed_mid_job_resumes_after_restart_with_the_state_in_postgres() {
    let pg = quern_testkit::postgres::TestPostgres::start();
    coordinator_killed_mid_job(&["--state", &pg.url()]);
}

fn coordinator_killed_mid_job(state: &[&str]) {
    let mut c = TestCluster::start(2, &[&["--no-speculation"], state].concat());
    let (id, out) = c.slow_job_under_way(160, 2);
    if let Some(mut coordinator) = c.coordinator.take() {
        TestCluster::kill9(&mut coordinator);
    }
    std::thread::sleep(Duration::from_millis(500));
    c.start_coordinator();
    let status = c.wait_job(id, Duration::from_secs(120));
    assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());
    assert_eq!(sorted_lines(&out), numbered(160), "nothing lost, nothing twice");
    // Counters of the tasks committed before the restart are not lost.
    let expected =
        embedded_counters("slow", &c.path("lines.txt"), &["--param", "ms=0", "--split-size", "200", "--reducers", "2"]);
    assert_counters_match(&status, &expected);
}

#[test]
fn workers_exit_cleanly_when_the_coordinator_goes_away() {
    let mut c = TestCluster::start(0, &[]);
    c.add_worker(&["--coordinator-timeout", "2s"]);
    c.add_worker(&["--coordinator-timeout", "2s"]);
    c.wait_for_workers(2);
    if let Some(coordinator) = c.coordinator.as_mut() {
        let _ = Command::new("kill").args(["-TERM", &coordinator.id().to_string()]).status();
        let status = coordinator.wait().expect("wait");
        assert!(status.success(), "the coordinator shuts down cleanly on SIGTERM: {status}");
    }
    let started = Instant::now();
    for w in &mut c.workers {
        loop {
            if let Some(status) = w.try_wait().expect("try_wait") {
                assert!(status.success(), "worker exit status {status}");
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "a worker did not exit\n");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn two_jobs_run_at_once_and_a_killed_job_leaves_nothing() {
    let c = TestCluster::start(2, &["--no-speculation"]);
    let input = c.path("lines.txt");
    write_lines(&input, &numbered(100));
    let slow_out = c.path("slow-out");
    let slow = c.submit_job("slow", &input, &slow_out, &["--param", "ms=50", "--split-size", "100"]);
    let wc_out = c.path("wc-out");
    let wc = c.submit_job("wordcount", &gutenberg(), &wc_out, &["--priority", "5"]);
    let status = c.wait_job(wc, Duration::from_secs(120));
    assert_eq!(status["state"], "succeeded");
    assert_eq!(c.json(&["status", &slow.to_string()])["state"], "running", "the slow job shares the workers");
    let killed = c.cli().args(["kill", &slow.to_string()]).output().expect("kill");
    assert!(killed.status.success(), "{}", String::from_utf8_lossy(&killed.stderr));
    let status = c.wait_job(slow, Duration::from_secs(30));
    assert_eq!(status["state"], "killed");
    c.wait_until("the killed job's attempts to stop", Duration::from_secs(30), || {
        c.json(&["workers"]).as_array().is_some_and(|ws| ws.iter().all(|w| w["running"] == 0))
    });
    assert!(!slow_out.exists(), "a killed job's output is removed");
    let jobs = c.json(&["jobs"]);
    assert_eq!(jobs.as_array().map(Vec::len), Some(2), "history keeps both jobs: {jobs}");
}

#[test]
fn bad_submissions_and_missing_tokens_are_refused() {
    let c = TestCluster::start(1, &[]);
    let out = c.path("out");
    let refused = |args: &[&str], message: &str| {
        let o = c.cli().arg("submit").args(args).output().expect("submit");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    };
    let g = gutenberg();
    let g = g.to_str().expect("utf-8");
    refused(&["--app", "nope", "--input", g, "--output", out.to_str().expect("utf-8")], "unknown app 'nope'");
    refused(
        &["--app", "wordcount", "--input", "/nonexistent/x", "--output", out.to_str().expect("utf-8")],
        "no such file",
    );
    fs::create_dir_all(c.path("exists")).expect("mkdir");
    refused(
        &["--app", "wordcount", "--input", g, "--output", c.path("exists").to_str().expect("utf-8")],
        "already exists",
    );
    // What only planning finds, a worker finds, and the refusal is the same.
    let big = c.path("big.txt");
    fs::write(&big, "x\n".repeat(60_000)).expect("write");
    let (big, out_str) = (big.to_str().expect("utf-8"), out.to_str().expect("utf-8"));
    refused(&["--app", "wordcount", "--input", big, "--output", out_str, "--split-size", "1"], "at most 100000");
    refused(&["--app", "grep", "--input", big, "--output", out_str], "pattern");
    assert!(!out.exists(), "a refused submission leaves no output");
    assert_eq!(c.json(&["jobs"]).as_array().map(Vec::len), Some(0), "no job was created");

    let no_token =
        Command::new(BIN).args(["jobs", "--token", "wrong"]).env("QUERN_COORDINATOR", c.url()).output().expect("jobs");
    assert!(!no_token.status.success());
    assert!(
        String::from_utf8_lossy(&no_token.stderr).contains("wrong token: neither the cluster token nor a valid login")
    );
}

#[test]
fn a_straggler_gets_a_backup_attempt_and_the_first_to_finish_wins() {
    let c = TestCluster::start(3, &[]);
    let out = c.path("out");
    let marker = c.path("straggled");
    let started = Instant::now();
    let id = c.submit_job(
        "straggler",
        &gutenberg(),
        &out,
        &[
            "--param",
            &format!("marker={}", marker.display()),
            "--param",
            "ms=60000",
            "--split-size",
            "600KiB",
            "--reducers",
            "2",
        ],
    );
    let status = c.wait_job(id, Duration::from_secs(50));
    assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());
    assert!(started.elapsed() < Duration::from_secs(45), "the job waited for its straggler");
    assert!(marker.exists(), "an attempt straggled");
    let attempts = c.attempts(id);
    let backups: Vec<&Value> =
        attempts.iter().filter(|a| a["attempt"].as_str().is_some_and(|s| s.ends_with("#2"))).collect();
    assert_eq!(backups.len(), 1, "one backup attempt: {attempts:?}");
    let task = backups[0]["attempt"].as_str().and_then(|s| s.split('#').next()).expect("task");
    let original = attempts.iter().find(|a| a["attempt"] == format!("{task}#1")).expect("the original");
    assert_eq!(backups[0]["outcome"], "succeeded");
    assert_eq!(original["outcome"], "cancelled", "the straggler is cancelled: {original}");
    let local = c.path("embedded");
    embedded("wordcount", &gutenberg(), &local, &["--reducers", "2"]);
    assert_eq!(parts(&out), parts(&local));
}

#[test]
fn a_worker_stopped_with_sigterm_finishes_its_attempts_and_exits_cleanly() {
    let mut c = TestCluster::start(2, &["--no-speculation"]);
    let input = c.path("lines.txt");
    write_lines(&input, &numbered(120));
    let out = c.path("out");
    let id = c.submit_job("slow", &input, &out, &["--param", "ms=20", "--split-size", "120"]);
    c.wait_until("the job to start", Duration::from_secs(30), || {
        c.json(&["workers"]).as_array().is_some_and(|ws| ws.iter().all(|w| w["running"].as_u64().unwrap_or(0) > 0))
    });
    // Stop the worker that runs m-00000 (the first attempt handed out).
    let first =
        c.attempts(id).first().map(|a| a["worker"].as_str().unwrap_or_default().to_owned()).expect("an attempt");
    let workers = c.json(&["workers"]);
    let listed = workers.as_array().is_some_and(|ws| ws.iter().any(|w| w["id"] == first.as_str()));
    assert!(listed, "worker {first} is listed");
    let index = c
        .workers
        .iter()
        .position(|w| first.contains(&format!("-{}-", w.id())))
        .expect("the worker's id names its process");
    let _ = Command::new("kill").args(["-TERM", &c.workers[index].id().to_string()]).status();
    let status = c.workers[index].wait().expect("wait");
    assert!(status.success(), "a worker exits 0 after SIGTERM: {status}");
    let job = c.wait_job(id, Duration::from_secs(120));
    assert_eq!(job["state"], "succeeded", "{job}\n{}", c.logs());
    assert_eq!(sorted_lines(&out), numbered(120));
    // The stopped worker finished what it had; a reduce that later found
    // its map outputs gone made those maps run again (fetch_failed), which
    // is recovery, not failure.
    let attempts = c.attempts(id);
    assert!(
        attempts.iter().filter(|a| a["worker"] == first.as_str()).all(|a| a["outcome"] == "succeeded"),
        "the stopped worker's attempts finished: {attempts:?}"
    );
    assert!(attempts.iter().all(|a| a["outcome"] != "failed"), "{attempts:?}");
}

#[test]
fn a_task_out_of_attempts_fails_the_job_naming_task_worker_and_error() {
    let c = TestCluster::start(1, &["--no-speculation"]);
    let input = c.path("in.txt");
    fs::write(&input, "the quick brown fox\n").expect("write");
    let out = c.path("out");
    let id = c.submit_job("flaky", &input, &out, &["--param", "failures=100", "--max-attempts", "2"]);
    let status = c.wait_job(id, Duration::from_secs(60));
    assert_eq!(status["state"], "failed");
    let error = status["error"].as_str().unwrap_or_default();
    for part in ["task m-00000 failed 2 attempt(s)", "on worker 127.0.0.1-", "flaky failure on purpose", "in.txt"] {
        assert!(error.contains(part), "{part:?} missing from {error:?}");
    }
    assert!(!out.exists(), "a failed job leaves no output");
    let logs = c.cli().args(["logs", &id.to_string(), "--task", "m-00000"]).output().expect("logs");
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(text.contains("m-00000#2") && text.contains("failed"), "{text}");
}

/// A script of `examples/streaming`.
fn streaming_example(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/streaming").join(name).display().to_string()
}

#[test]
fn a_streaming_job_runs_only_on_workers_that_allow_exec_and_equals_the_native_wordcount() {
    let mut c = TestCluster::start(1, &["--no-speculation"]);
    let out = c.path("streamed");
    let (input, output) = (gutenberg().display().to_string(), out.display().to_string());
    let (mapper, reducer) = (streaming_example("mapper.py"), streaming_example("reducer.py"));
    let args = [
        "--input",
        &input,
        "--output",
        &output,
        "--reducers",
        "3",
        "--mapper",
        "python3 mapper.py",
        "--reducer",
        "python3 reducer.py",
        "--file",
        &mapper,
        "--file",
        &reducer,
    ];
    // The only worker runs no commands: the job is refused, saying why.
    let refused = c.cli().arg("submit").args(args).output().expect("submit");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(err.contains("unknown app 'streaming': no worker offers it") && err.contains("--allow-exec"), "{err}");
    assert!(!out.exists());

    c.add_worker(&["--allow-exec"]);
    c.add_worker(&["--allow-exec"]);
    c.wait_for_workers(3);
    let id = c.submit(&args);
    let status = c.wait_job(id, Duration::from_secs(120));
    assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());
    let native = c.path("native");
    embedded("wordcount", &gutenberg(), &native, &["--reducers", "3"]);
    assert_eq!(parts(&out), parts(&native), "the Python wordcount on a cluster and the native one differ");
    let workers = c.json(&["workers"]);
    let allowed: Vec<&Value> = workers
        .as_array()
        .expect("a list")
        .iter()
        .filter(|w| w["apps"].as_array().is_some_and(|apps| apps.iter().any(|a| a == "streaming")))
        .map(|w| &w["id"])
        .collect();
    assert_eq!(allowed.len(), 2, "{workers}");
    let attempts = c.attempts(id);
    assert!(attempts.iter().all(|a| allowed.contains(&&a["worker"])), "{attempts:?}");
}

/// Processes whose command line is exactly `words`.
fn processes_running(words: &[&str]) -> Vec<u32> {
    let wanted: Vec<u8> = words.iter().flat_map(|w| w.bytes().chain([0])).collect();
    fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
        .collect()
}

#[test]
fn a_hanging_streaming_mapper_is_timed_out_and_killed_with_its_attempt() {
    let mut c = TestCluster::start(0, &["--task-timeout", "2s"]);
    c.add_worker(&["--allow-exec"]);
    c.wait_for_workers(1);
    let input = c.path("in.txt");
    fs::write(&input, "one line\n").expect("write input");
    // A duration no other test sleeps, to find this test's processes.
    let seconds = (7000 + std::process::id() % 1000).to_string();
    let (input, out) = (input.display().to_string(), c.path("out").display().to_string());
    let mapper = format!("sleep {seconds}");
    let id = c.submit(&["--input", &input, "--output", &out, "--mapper", &mapper, "--max-attempts", "2"]);
    let status = c.wait_job(id, Duration::from_secs(60));
    assert_eq!(status["state"], "failed", "{status}");
    assert!(status.to_string().contains("no progress for 2s"), "{status}");
    let attempts = c.attempts(id);
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    // Each attempt was killed with the command it started.
    c.wait_until("the hung commands are gone", Duration::from_secs(10), || {
        processes_running(&["sleep", &seconds]).is_empty()
    });
}

#[test]
fn a_killed_worker_s_attempts_and_their_commands_end_with_it() {
    // A worker killed with -9 cannot kill its attempts' process groups
    // itself: each attempt sees its parent go, and ends its group.
    let mut c = TestCluster::start(0, &[]);
    c.add_worker(&["--allow-exec"]);
    c.wait_for_workers(1);
    let input = c.path("in.txt");
    fs::write(&input, "one line\n").expect("write input");
    // A duration no other test sleeps, to find this test's processes.
    let seconds = (8000 + std::process::id() % 1000).to_string();
    let (input, out) = (input.display().to_string(), c.path("out").display().to_string());
    let mapper = format!("sleep {seconds}");
    let id = c.submit(&["--input", &input, "--output", &out, "--mapper", &mapper]);
    c.wait_until("the mapper runs", Duration::from_secs(30), || !processes_running(&["sleep", &seconds]).is_empty());
    // The mapper's parent is the attempt process, `quern task`.
    let attempts: Vec<u32> = processes_running(&["sleep", &seconds]).iter().filter_map(|&pid| parent_of(pid)).collect();
    for &pid in &attempts {
        let command = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert_eq!(command.split(|&b| b == 0).nth(1), Some(&b"task"[..]), "{}", String::from_utf8_lossy(&command));
    }
    TestCluster::kill9(&mut c.workers[0]);
    c.wait_until("the killed worker's mapper is gone", Duration::from_secs(5), || {
        processes_running(&["sleep", &seconds]).is_empty()
    });
    c.wait_until("its attempt process is gone", Duration::from_secs(5), || {
        attempts.iter().all(|pid| fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z ")))
    });
    let _ = c.cli().args(["kill", &id.to_string()]).output();
}

/// A process's parent, from `/proc`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn wasm_jobs_run_on_every_worker_from_code_the_coordinator_stores_by_hash() {
    // No worker allows commands: modules run in the sandbox anywhere.
    let c = TestCluster::start(2, &["--no-speculation"]);
    let module = c.path("wc.wasm");
    fs::copy(wasm_module("wasm-wordcount"), &module).expect("copy the module");
    let hash = quern_core::CodeHash::of(&fs::read(&module).expect("read the module")).to_string();
    let (input, out) = (gutenberg().display().to_string(), c.path("wasm"));
    let wc = |step: &str| format!("{} {step}", module.display());
    let job = |out: &std::path::Path, mapper: &str| {
        let out = out.display().to_string();
        let (map, combine, reduce) = (wc(mapper), wc("combine"), wc("reduce"));
        let args = ["--input", &input, "--output", &out, "--reducers", "3", "--mapper", &map];
        c.submit(&[&args[..], &["--combiner", &combine, "--reducer", &reduce, "--max-attempts", "2"]].concat())
    };
    let id = job(&out, "map");
    // The workers never read the client's file: it may go once submitted.
    fs::remove_file(&module).expect("remove the module");
    let status = c.wait_job(id, Duration::from_secs(120));
    assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());
    assert_eq!(status["app"], "wasm", "{status}");
    assert_eq!(status["code"]["wc.wasm"], hash.as_str(), "the job records the module it ran: {status}");
    let native = c.path("native");
    embedded("wordcount", &gutenberg(), &native, &["--reducers", "3"]);
    assert!(parts(&out) == parts(&native), "the WebAssembly wordcount on a cluster differs from the native one");
    // Stored once, by hash, on the coordinator; fetched by hash by each
    // worker that ran an attempt.
    assert!(c.path("coordinator/files/code").join(&hash).is_file(), "the coordinator stores the module by hash");
    let workers: std::collections::BTreeSet<String> =
        c.attempts(id).iter().filter_map(|a| a["worker"].as_str().map(str::to_owned)).collect();
    assert_eq!(workers.len(), 2, "both workers ran attempts: {workers:?}");
    for w in 0..2 {
        assert!(c.path(&format!("worker-{w}/code")).join(&hash).is_file(), "worker {w} keeps the module by hash");
    }

    // A module that never ends fails its job at the CPU time limit, and the
    // same workers go on to run the next job.
    let spin = c.path("spin.wasm");
    write_module(&spin, r#"(module (func (export "_start") (loop $l (br $l))))"#);
    let (spin_out, spin_cmd) = (c.path("spin").display().to_string(), format!("{} map", spin.display()));
    let small = c.path("in.txt");
    fs::write(&small, "one line\n").expect("write input");
    let small = small.display().to_string();
    let args = ["--input", &small, "--output", &spin_out, "--mapper", &spin_cmd, "--wasm-cpu-time", "1s"];
    let spun = c.submit(&[&args[..], &["--max-attempts", "2"]].concat());
    let status = c.wait_job(spun, Duration::from_secs(60));
    assert_eq!(status["state"], "failed", "{status}");
    let error = status["error"].as_str().unwrap_or_default();
    assert!(error.contains("`spin.wasm map` was stopped at its CPU time limit of 1s (--wasm-cpu-time)"), "{error}");
    fs::copy(wasm_module("wasm-wordcount"), &module).expect("copy the module again");
    let again = c.path("again");
    let id = job(&again, "map");
    let status = c.wait_job(id, Duration::from_secs(120));
    assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());
    assert!(parts(&again) == parts(&native));
}

/// A job file of `steps` (JSON) from `input` into `output`, at `path`.
fn job_file(path: &std::path::Path, input: &std::path::Path, output: &std::path::Path, steps: &str) {
    let text = format!(
        r#"{{"inputs": [{:?}], "output": {:?}, "steps": {steps}}}"#,
        input.display().to_string(),
        output.display().to_string()
    );
    fs::write(path, text).expect("write the job file");
}

#[test]
fn a_chain_runs_step_by_step_on_a_cluster_and_resumes_from_its_failed_step() {
    let mut c = TestCluster::start(1, &["--no-speculation"]);
    c.add_worker(&["--allow-exec"]);
    c.wait_for_workers(2);

    // Wordcount, then the top 10: as the embedded chain gives it.
    let steps = r#"[{"app": "wordcount", "reducers": 2}, {"app": "top", "params": {"n": "10"}}]"#;
    let (top, local) = (c.path("top"), c.path("local-top"));
    job_file(&c.path("top.json"), &gutenberg(), &top, steps);
    let run = c.cli().args(["submit", "--wait", "--job"]).arg(c.path("top.json")).output().expect("submit");
    assert!(run.status.success(), "{}\n{}", String::from_utf8_lossy(&run.stderr), c.logs());
    job_file(&c.path("local.json"), &gutenberg(), &local, steps);
    let status = Command::new(BIN).args(["run", "--quiet", "--job"]).arg(c.path("local.json")).status().expect("run");
    assert!(status.success());
    assert_eq!(parts(&top), parts(&local));
    assert!(!c.path("top.steps").exists(), "the steps' outputs go once the chain succeeded");

    // A second step that fails until `ready` exists: the chain fails there,
    // keeping the first step's output, and resumes from the second.
    let ready = c.path("ready");
    let steps = format!(
        r#"[{{"app": "wordcount", "reducers": 2}},
           {{"app": "streaming", "params": {{"mapper": "sh -c 'test -e {} && cat'"}}, "max_attempts": 1}}]"#,
        ready.display()
    );
    let out = c.path("out");
    job_file(&c.path("failing.json"), &gutenberg(), &out, &steps);
    let failed = c.cli().args(["submit", "--wait", "--job"]).arg(c.path("failing.json")).output().expect("submit");
    let (stdout, stderr) = (String::from_utf8_lossy(&failed.stdout), String::from_utf8_lossy(&failed.stderr));
    assert!(!failed.status.success(), "{stderr}");
    let chain: u64 = stdout.trim().parse().expect("the chain's id");
    assert!(stderr.contains("step 2 of 2") && stderr.contains(&format!("quern resume {chain}")), "{stderr}");
    assert!(c.path("out.steps/step-1/_SUCCESS").exists(), "the first step's output is kept");
    let first_attempts = c.attempts(chain).len();

    fs::write(&ready, "").expect("make the second step work");
    let resumed = c.cli().args(["resume", "--wait", &chain.to_string()]).output().expect("resume");
    assert!(resumed.status.success(), "{}\n{}", String::from_utf8_lossy(&resumed.stderr), c.logs());
    assert!(String::from_utf8_lossy(&resumed.stdout).contains("resumed at step 2"));
    assert_eq!(c.attempts(chain).len(), first_attempts, "the first step did not run again");
    let native = c.path("native");
    embedded("wordcount", &gutenberg(), &native, &["--reducers", "2"]);
    assert_eq!(sorted_lines(&out), sorted_lines(&native), "`cat` after wordcount: the wordcount's pairs");
    assert!(!c.path("out.steps").exists());
    // A chain that succeeded does not resume.
    let again = c.cli().args(["resume", &chain.to_string()]).output().expect("resume");
    assert_eq!(again.status.code(), Some(2), "{}", String::from_utf8_lossy(&again.stderr));
}

#[test]
fn replay_reproduces_a_recorded_tasks_output_digest_and_shows_how_a_task_fails() {
    let c = TestCluster::start(2, &["--no-speculation"]);
    let out = c.path("out");
    let id = c.submit_job("wordcount", &gutenberg(), &out, &["--reducers", "2", "--split-size", "1MiB"]);
    let status = c.wait_job(id, Duration::from_secs(120));
    assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());
    let logs = c.json(&["logs", &id.to_string(), "--task", "m-00001"]);
    let recorded = logs
        .as_array()
        .and_then(|a| a.iter().find(|a| a["outcome"] == "succeeded"))
        .and_then(|a| a["output_digest"].as_str())
        .expect("a committed attempt with its digest")
        .to_owned();
    assert_eq!(recorded.len(), 32, "{logs}");
    for task in ["m-00001", "r-00001"] {
        let replayed = c.cli().args(["replay", &id.to_string(), task, "--json"]).output().expect("replay");
        let report: Value = serde_json::from_slice(&replayed.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&replayed.stderr)));
        assert!(replayed.status.success(), "{report}\n{}", String::from_utf8_lossy(&replayed.stderr));
        assert_eq!(report["same"], true, "{report}");
        assert_eq!(report["output_digest"], report["recorded_digest"], "{report}");
        let worker = report["recorded_worker"].as_str().unwrap_or_default();
        assert!(worker.contains("as here"), "the binary that ran it is this version: {report}");
    }
    assert_eq!(
        c.json(&["logs", &id.to_string(), "--task", "m-00001"]).to_string(),
        logs.to_string(),
        "a replay changes nothing on the cluster"
    );

    // Input that changed since: the replay says its output differs.
    let changing = c.path("changing.txt");
    fs::write(&changing, "one two two\n").expect("write");
    let small = c.submit_job("wordcount", &changing, &c.path("small"), &[]);
    assert_eq!(c.wait_job(small, Duration::from_secs(60))["state"], "succeeded");
    fs::write(&changing, "one two two!\n").expect("the same words, not the same bytes");
    let same = c.cli().args(["replay", &small.to_string(), "m-00000"]).output().expect("replay");
    assert!(same.status.success(), "the same pairs: {}", String::from_utf8_lossy(&same.stdout));
    fs::write(&changing, "one two three\n").expect("change the words");
    let differs = c.cli().args(["replay", &small.to_string(), "m-00000"]).output().expect("replay");
    let stdout = String::from_utf8_lossy(&differs.stdout);
    assert_eq!(differs.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("DIFFERENT"), "{stdout}");

    // A task that failed: the replay fails the same way, here.
    let input = c.path("in.txt");
    fs::write(&input, "the quick brown fox\n").expect("write");
    let failed = c.submit_job("flaky", &input, &c.path("flaky"), &["--param", "failures=100", "--max-attempts", "1"]);
    assert_eq!(c.wait_job(failed, Duration::from_secs(60))["state"], "failed");
    let replayed = c.cli().args(["replay", &failed.to_string(), "m-00000"]).output().expect("replay");
    let stdout = String::from_utf8_lossy(&replayed.stdout);
    assert_eq!(replayed.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("failed here") && stdout.contains("flaky failure on purpose"), "{stdout}");
}
