//! The CLI against a coordinator that is frozen, silent, gone or
//! restarting: every call ends within its deadline with a message naming
//! the coordinator, the call and the wait, and `submit --wait` rides out a
//! restart.

mod support;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// Runs `cmd` to its end, or kills it and fails once it has run `limit`.
/// Returns its output and how long it ran.
fn run_within(cmd: &mut Command, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start the CLI");
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return (child.wait_with_output().expect("output"), started.elapsed());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("{cmd:?} still running after {limit:?}; stderr:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts that `cmd` fails with exit code 1 within `limit` and that its
/// message contains every one of `parts`.
fn fails_within(cmd: &mut Command, limit: Duration, parts: &[&str]) {
    let (out, took) = run_within(cmd, limit);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{cmd:?} after {took:?}: {stderr}");
    for part in parts {
        assert!(stderr.contains(part), "{cmd:?}: {part:?} missing from {stderr:?}");
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill").args([sig, &pid.to_string()]).status().expect("run kill");
    assert!(status.success(), "kill {sig} {pid}");
}

/// A process stopped with SIGSTOP, continued when dropped (even when an
/// assertion failed), so no test leaves a stopped process behind.
struct Frozen(u32);

impl Frozen {
    fn new(pid: u32) -> Frozen {
        signal(pid, "-STOP");
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.0.to_string()]).status();
    }
}

/// A child process killed when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        TestCluster::kill9(&mut self.0);
    }
}

/// `submit` arguments for `app` from `input` into `output`.
fn submit_args(app: &str, input: &Path, output: &Path) -> Vec<String> {
    let (input, output) = (input.to_str().expect("utf-8 path"), output.to_str().expect("utf-8 path"));
    ["submit", "--app", app, "--input", input, "--output", output].map(String::from).to_vec()
}

fn wordcount(input: &Path, output: &Path) -> Vec<String> {
    submit_args("wordcount", input, output)
}

#[test]
fn a_frozen_coordinator_fails_calls_within_the_timeout_and_serves_them_once_continued() {
    // One worker, which plans the submitted jobs.
    let c = TestCluster::start(1, &[]);
    let input = c.path("in.txt");
    fs::write(&input, "the quick brown fox\n").expect("write");
    let id = c.submit_job("wordcount", &input, &c.path("out-0"), &[]).to_string();
    let pid = c.coordinator.as_ref().map(Child::id).expect("a coordinator");
    let limit = Duration::from_secs(8);
    {
        let _frozen = Frozen::new(pid);
        let url = c.url();
        fails_within(
            c.cli().args(["jobs", "--timeout", "2s"]),
            limit,
            &[&url, "did not answer `jobs` within 2s", "is it running and reachable?"],
        );
        fails_within(
            c.cli().args(["status", &id]).env("QUERN_TIMEOUT", "2s"),
            limit,
            &[&url, "did not answer `status` within 2s"],
        );
        // The request may sit in the frozen coordinator's socket and be
        // served once it runs again: the message says so.
        fails_within(
            c.cli().args(wordcount(&input, &c.path("out-1"))).args(["--timeout", "2s"]),
            limit,
            &[&url, "did not answer `submit` within 2s", "may still have been created", "quern jobs"],
        );
    }
    for args in [vec!["jobs".to_owned()], vec!["status".to_owned(), id], wordcount(&input, &c.path("out-2"))] {
        let (out, _) = run_within(c.cli().args(&args).args(["--timeout", "2s"]), limit);
        assert!(out.status.success(), "{args:?} once continued: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn a_listener_that_never_answers_and_a_closed_port_fail_calls_with_a_clear_message() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    // Accepts connections and holds them open without a byte of HTTP/2.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.extend(stream.ok());
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    fs::write(&input, "the quick brown fox\n").expect("write");
    let cli = |url: &str| {
        let mut cmd = Command::new(BIN);
        cmd.env("QUERN_COORDINATOR", url).env("QUERN_TOKEN", TOKEN).env("QUERN_TIMEOUT", "2s").env_remove("RUST_LOG");
        cmd
    };
    let limit = Duration::from_secs(8);
    fails_within(cli(&url).arg("jobs"), limit, &[&url, "did not answer `jobs` within 2s"]);
    fails_within(
        cli(&url).args(wordcount(&input, &dir.path().join("out"))),
        limit,
        &[&url, "did not answer `submit` within 2s"],
    );
    // Nothing listens at all: refused at once, and said so.
    let port = ClosedPort::new();
    let closed = port.url();
    fails_within(
        cli(&closed).arg("workers"),
        limit,
        &[&closed, "could not connect", "`workers`", "is it running and reachable?"],
    );
    fails_within(
        cli(&closed).args(wordcount(&input, &dir.path().join("out"))),
        limit,
        &[&closed, "could not connect", "No job was created."],
    );
}

/// Starts `submit --wait` of the slow app over `lines` numbered lines as a
/// child process, its stdout and stderr in files of the cluster's directory.
fn submit_and_wait(c: &TestCluster, lines: usize, extra: &[&str]) -> (Reaped, std::path::PathBuf) {
    let input = c.path("lines.txt");
    write_lines(&input, &numbered(lines));
    let out = c.path("out");
    let child = c
        .cli()
        .args(submit_args("slow", &input, &out))
        .args(["--param", "ms=15", "--split-size", "200", "--reducers", "2", "--wait"])
        .args(extra)
        .stdout(c.log("wait.out"))
        .stderr(c.log("wait.log"))
        .spawn()
        .expect("start submit --wait");
    (Reaped(child), out)
}

/// Waits for the `--wait` child to end, for at most `limit`.
fn wait_exit(c: &TestCluster, child: &mut Reaped, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            return status;
        }
        assert!(started.elapsed() < limit, "submit --wait still running after {limit:?}\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn maps_committed(c: &TestCluster, at_least: u64) -> bool {
    c.try_json(&["status", "1"]).is_some_and(|s| s["maps"]["succeeded"].as_u64().unwrap_or(0) >= at_least)
}

#[test]
fn submit_wait_rides_out_a_coordinator_restart_and_reports_the_real_end() {
    let mut c = TestCluster::start(2, &["--no-speculation"]);
    let (mut child, out) = submit_and_wait(&c, 160, &[]);
    c.wait_until("some maps to commit", Duration::from_secs(60), || maps_committed(&c, 2));
    if let Some(mut coordinator) = c.coordinator.take() {
        TestCluster::kill9(&mut coordinator);
    }
    std::thread::sleep(Duration::from_secs(1));
    c.start_coordinator();
    let status = wait_exit(&c, &mut child, Duration::from_secs(120));
    assert!(status.success(), "submit --wait: {status}\n{}", c.logs());
    let printed = fs::read_to_string(c.path("wait.out")).expect("stdout");
    assert!(printed.contains("job 1: succeeded"), "{printed}");
    let log = fs::read_to_string(c.path("wait.log")).expect("stderr");
    assert!(log.contains("retrying") && log.contains("answers again"), "{log}");
    assert_eq!(sorted_lines(&out), numbered(160), "nothing lost, nothing twice");
}

#[test]
fn submit_wait_gives_up_after_its_bound_when_the_coordinator_stays_away() {
    // One worker plans the job; 200 lines at 15 ms keep it running past the
    // coordinator's end.
    let mut c = TestCluster::start(1, &[]);
    let (mut child, _) = submit_and_wait(&c, 200, &["--wait-retry", "3s"]);
    c.wait_until("the job to be submitted", Duration::from_secs(30), || {
        fs::read_to_string(c.path("wait.out")).is_ok_and(|s| s.trim() == "1")
    });
    if let Some(mut coordinator) = c.coordinator.take() {
        TestCluster::kill9(&mut coordinator);
    }
    let killed = Instant::now();
    let status = wait_exit(&c, &mut child, Duration::from_secs(15));
    let took = killed.elapsed();
    let log = fs::read_to_string(c.path("wait.log")).expect("stderr");
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(took >= Duration::from_millis(2500), "gave up after {took:?}, before its bound: {log}");
    for part in ["retrying", &c.url(), "gave up following job 1 after 3s", "quern status 1"] {
        assert!(log.contains(part), "{part:?} missing from {log:?}");
    }
}
