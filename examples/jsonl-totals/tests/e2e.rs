//! The example app through its own binary, as a user would run it.

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jsonl-totals"))
}

fn lines(dir: &Path) -> Vec<String> {
    let mut files: Vec<_> = fs::read_dir(dir).expect("dir").map(|e| e.expect("e").path()).collect();
    files.sort();
    let mut out: Vec<String> = files
        .iter()
        .flat_map(|f| fs::read_to_string(f).expect("read").lines().map(String::from).collect::<Vec<_>>())
        .collect();
    out.sort();
    out
}

#[test]
fn two_reports_from_one_pass() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let logs = tmp.path().join("logs");
    fs::create_dir(&logs).expect("mkdir");
    fs::write(
        logs.join("day1.jsonl"),
        "{\"user\":\"ada\",\"country\":\"uk\",\"bytes\":100}\n\n{\"user\":\"bob\",\"country\":\"fr\",\"bytes\":5}\n",
    )
    .expect("write");
    fs::write(
        logs.join("day2.jsonl"),
        "{\"user\":\"ada\",\"country\":\"uk\",\"bytes\":20}\n{\"user\":\"cy\",\"country\":\"uk\",\"bytes\":1}\n",
    )
    .expect("write");
    let out = tmp.path().join("out");
    bin()
        .args(["run", "--app", "jsonl-totals", "--output-reducers", "bytes_by_user=2", "--input"])
        .arg(&logs)
        .arg("--output")
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains("accesses"));
    assert!(out.join("_SUCCESS").exists());
    assert_eq!(lines(&out.join("bytes_by_user")), ["ada\t120", "bob\t5", "cy\t1"]);
    assert_eq!(lines(&out.join("users_by_country")), ["fr\t1", "uk\t2"]);
}

#[test]
fn a_malformed_line_is_named_and_nothing_is_committed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("bad.jsonl");
    fs::write(&log, "{\"user\":\"ada\",\"country\":\"uk\",\"bytes\":1}\n{\"user\": oops}\n").expect("write");
    let out = tmp.path().join("out");
    bin()
        .args(["run", "--app", "jsonl-totals", "--input"])
        .arg(&log)
        .arg("--output")
        .arg(&out)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("bad.jsonl").and(predicate::str::contains("line 2: not a JSON object")));
    assert!(!out.exists());
}
