//! `quern run` stopped by SIGTERM or SIGHUP (a service manager, a closed
//! terminal) cancels like Ctrl-C: no output directory, no scratch left.

#![cfg(unix)]

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn cancelled_by(signal: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in.txt");
    fs::write(&input, "line\n".repeat(400)).expect("write");
    let out = tmp.path().join("out");
    let work = tmp.path().join("work");
    // Splits of 40 lines at 20 ms a line: an attempt ends (and the job can
    // stop) within a second of the signal.
    let mut child = Command::new(env!("CARGO_BIN_EXE_quern-testkit"))
        .args(["run", "--app", "slow", "--param", "ms=20", "--split-size", "200", "--parallelism", "2", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&out)
        .arg("--work-dir")
        .arg(&work)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    while !out.join("_temporary").exists() || entries(&work) == 0 {
        assert!(started.elapsed() < Duration::from_secs(20), "the job never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let sent = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().expect("kill");
    assert!(sent.success());
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130), "{signal}: not a clean cancellation: {status}");
    assert!(!out.exists(), "{signal}: a cancelled job leaves no output directory");
    assert_eq!(entries(&work), 0, "{signal}: the job's scratch directory was left in {}", work.display());
}

fn entries(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |d| d.count())
}

#[test]
fn sigterm_cancels_cleanly() {
    cancelled_by("TERM");
}

#[test]
fn sighup_cancels_cleanly() {
    cancelled_by("HUP");
}
