//! Black-box tests of failure handling through the `quern-testkit` binary
//! (the quern CLI with apps that fail on purpose): retries, the attempt
//! limit, bad-record skipping, Ctrl-C, and named outputs.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;

fn testkit() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quern-testkit"));
    cmd.env_remove("RUST_LOG");
    cmd
}

fn word_counts(text: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    quern::for_each_word(text.as_bytes(), |w| *counts.entry(w.to_owned()).or_insert(0) += 1);
    counts
}

fn read_counts(out: &Path) -> BTreeMap<String, u64> {
    assert!(out.join("_SUCCESS").exists());
    let mut counts = BTreeMap::new();
    for e in fs::read_dir(out).expect("read dir") {
        let p = e.expect("entry").path();
        if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("part-")) {
            for line in fs::read_to_string(&p).expect("read").lines() {
                let (k, v) = line.split_once('\t').expect("key<TAB>value");
                counts.insert(k.to_owned(), v.parse().expect("count"));
            }
        }
    }
    counts
}

fn stats(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).expect("stats")).expect("json")
}

const TEXT: &str = "the quick brown fox\njumps over the lazy dog\nthe end\n";

#[test]
fn failed_attempts_are_retried_and_the_job_succeeds() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in.txt");
    fs::write(&input, TEXT).expect("write");
    let out = tmp.path().join("out");
    let stats_path = tmp.path().join("stats.json");
    testkit()
        .args(["run", "--app", "flaky", "--param", "failures=2", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&out)
        .arg("--stats-json")
        .arg(&stats_path)
        .assert()
        .success();
    assert_eq!(read_counts(&out), word_counts(TEXT));
    let s = stats(&stats_path);
    assert_eq!(s["counters"]["failed_attempts"], 2);
    assert_eq!(s["counters"]["input_records"], 3, "failed attempts' counters are not added");
}

#[test]
fn a_task_out_of_attempts_fails_the_job_naming_task_split_and_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in.txt");
    fs::write(&input, TEXT).expect("write");
    let out = tmp.path().join("out");
    testkit()
        .args(["run", "--app", "flaky", "--param", "failures=100", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&out)
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("task m-00000 failed 4 attempt(s)")
                .and(predicate::str::contains(format!("input {}", input.display())))
                .and(predicate::str::contains("panicked: flaky failure on purpose")),
        );
    assert!(!out.exists(), "a failed job leaves no output and no _SUCCESS");
}

#[test]
fn skip_bad_records_skips_and_counts_panicking_records() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in.txt");
    let good = "alpha beta\nbeta gamma\n";
    fs::write(&input, "alpha beta\nPOISON alpha\nbeta gamma\nmore POISON here\n").expect("write");
    let out = tmp.path().join("out");
    testkit()
        .args(["run", "--app", "poison", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&out)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("poisoned record").and(predicate::str::contains("in.txt at byte 11")));
    let stats_path = tmp.path().join("stats.json");
    testkit()
        .args(["run", "--app", "poison", "--skip-bad-records", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&out)
        .arg("--stats-json")
        .arg(&stats_path)
        .assert()
        .success();
    assert_eq!(read_counts(&out), word_counts(good), "nothing a skipped record emitted is kept");
    let s = stats(&stats_path);
    assert_eq!(s["counters"]["skipped_records"], 2);
    assert_eq!(s["counters"]["failed_attempts"], 0);
}

#[cfg(unix)]
#[test]
fn ctrl_c_cancels_cleanly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in.txt");
    fs::write(&input, "line\n".repeat(2000)).expect("write");
    let out = tmp.path().join("out");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_quern-testkit"))
        .args(["run", "--app", "slow", "--param", "ms=5", "--parallelism", "1", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    while !out.join("_temporary").exists() {
        assert!(started.elapsed() < Duration::from_secs(20), "the job never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let killed = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130));
    assert!(!out.exists(), "a cancelled job leaves no output and no _SUCCESS");
}

#[test]
fn named_outputs_get_their_own_directories_and_reducer_counts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in.txt");
    fs::write(&input, "a bb a ccc\nbb a\n").expect("write");
    let out = tmp.path().join("out");
    testkit()
        .args([
            "run",
            "--app",
            "tokens-two-outputs",
            "--output-reducers",
            "counts=3",
            "--output-reducers",
            "by_length=2",
            "--input",
        ])
        .arg(&input)
        .arg("--output")
        .arg(&out)
        .assert()
        .success();
    let names = |d: &str| {
        let mut v: Vec<String> = fs::read_dir(out.join(d))
            .expect("dir")
            .map(|e| e.expect("e").file_name().to_string_lossy().into())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("counts"), ["part-r-00000", "part-r-00001", "part-r-00002"]);
    assert_eq!(names("by_length"), ["part-r-00000", "part-r-00001"]);
    let all = |d: &str| {
        let mut lines: Vec<String> = names(d)
            .iter()
            .flat_map(|f| {
                fs::read_to_string(out.join(d).join(f)).expect("read").lines().map(String::from).collect::<Vec<_>>()
            })
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(all("counts"), ["a\t3", "bb\t2", "ccc\t1"]);
    assert_eq!(all("by_length"), ["1\ta,a,a", "2\tbb,bb", "3\tccc"]);
    testkit()
        .args(["run", "--app", "tokens-two-outputs", "--output-reducers", "nope=1", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(tmp.path().join("out2"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("the app has no output 'nope'"));
}
