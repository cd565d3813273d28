//! Black-box tests of what the `quern` binary refuses before any work starts
//! (exit code 2, nothing created) and of how it reports errors:
//! - an error's cause is printed once;
//! - corrupt compressed input fails at once instead of being retried;
//! - a job too large to plan is refused, the bound named;
//! - an empty cluster token is refused, by servers and clients;
//! - a path that is not UTF-8 is refused, and named;
//! - an unwritable `--stats-json` is refused before the job runs;
//! - `--merge-factor` and `--parallelism` outside their ranges are refused;
//! - a `--shuffle` that is not a location is refused, naming it.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;

fn quern() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quern"));
    cmd.env_remove("RUST_LOG").env_remove("QUERN_TOKEN").env_remove("QUERN_COORDINATOR");
    // A server that wrongly starts must fail the test, not hang it.
    cmd.timeout(Duration::from_secs(20));
    cmd
}

/// `quern run --app wordcount --input INPUT --output OUTPUT EXTRA…`.
fn wordcount<S: AsRef<std::ffi::OsStr>>(input: &Path, output: &Path, extra: &[S]) -> Command {
    let mut cmd = quern();
    cmd.args(["run", "--app", "wordcount", "--input"]).arg(input).arg("--output").arg(output).args(extra);
    cmd
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A coordinator address where nothing listens, for as long as the value
/// lives: a socket bound to a port the OS chose, never listening. The
/// commands given it are refused before they connect; one that did connect
/// would be refused at once, never reach another program.
struct Nowhere(tokio::net::TcpSocket);

impl Nowhere {
    fn new() -> Nowhere {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket.bind("127.0.0.1:0".parse().expect("address")).expect("bind");
        Nowhere(socket)
    }

    fn url(&self) -> String {
        format!("http://{}", self.0.local_addr().expect("address"))
    }
}

/// `dir/a\xffb`: a file name that is not UTF-8.
fn non_utf8(dir: &Path) -> PathBuf {
    let mut bytes = dir.as_os_str().to_owned().into_vec();
    bytes.extend_from_slice(b"/a\xffb");
    PathBuf::from(OsString::from_vec(bytes))
}

#[test]
fn an_empty_cluster_token_is_refused_by_servers_and_clients() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("coord");
    let work = tmp.path().join("work");
    let nowhere = Nowhere::new();
    let commands: Vec<Vec<OsString>> = vec![
        vec!["coordinator".into(), "--listen".into(), "127.0.0.1:0".into(), "--data-dir".into(), data.clone().into()],
        vec!["worker".into(), "--work-dir".into(), work.clone().into(), "--coordinator".into(), nowhere.url().into()],
        vec!["jobs".into(), "--coordinator".into(), nowhere.url().into()],
        vec![
            "submit".into(),
            "--app".into(),
            "wordcount".into(),
            "--input".into(),
            tmp.path().into(),
            "--output".into(),
            tmp.path().join("out").into(),
        ],
    ];
    for args in &commands {
        for (flag, env) in [(true, None), (false, Some("")), (true, Some("change-me")), (false, Some("  "))] {
            let mut cmd = quern();
            cmd.args(args);
            if flag {
                cmd.args(["--token", ""]);
            }
            if let Some(v) = env {
                cmd.env("QUERN_TOKEN", v);
            }
            let out = cmd.output().expect("run");
            let stderr = stderr_of(&out);
            assert_eq!(out.status.code(), Some(2), "{args:?} (flag {flag}, env {env:?}): {stderr}");
            assert!(stderr.contains("the cluster token must not be empty"), "{args:?}: {stderr}");
        }
    }
    assert!(!data.exists() && !work.exists() && !tmp.path().join("out").exists(), "a refused command creates nothing");
}

#[test]
fn paths_that_are_not_utf8_are_refused_and_named() {
    let nowhere = Nowhere::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let good_in = tmp.path().join("in.txt");
    fs::write(&good_in, "a b c\n").expect("write");
    let bad = non_utf8(tmp.path());
    fs::write(&bad, "a b c\n").expect("a file with a non-UTF-8 name");
    let shown = format!("{}", bad.display()); // lossy, with U+FFFD
    assert!(shown.contains('\u{fffd}'));
    let out = tmp.path().join("out");
    for command in ["run", "submit"] {
        for (input, output, which) in [(&bad, &out, "--input"), (&good_in, &bad.with_extension("out"), "--output")] {
            let mut cmd = quern();
            cmd.args([command, "--app", "wordcount", "--input"]).arg(input).arg("--output").arg(output);
            if command == "submit" {
                cmd.args(["--token", "t", "--coordinator", &nowhere.url()]);
            }
            let result = cmd.output().expect("run");
            let stderr = stderr_of(&result);
            assert_eq!(result.status.code(), Some(2), "{command} {which}: {stderr}");
            let named = format!("{}", output.display());
            let named = if which == "--input" { &shown } else { &named };
            assert!(stderr.contains(named.as_str()), "{command} {which}: the path is not named: {stderr}");
            assert!(stderr.contains("not valid UTF-8"), "{command} {which}: no reason given: {stderr}");
            assert!(stderr.contains(which), "{command} {which}: the option is not named: {stderr}");
        }
    }
    assert!(!out.exists());
    assert!(!bad.with_extension("out").exists());
}

#[test]
fn an_unwritable_stats_file_is_refused_before_the_job_runs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in.txt");
    fs::write(&input, "a b c\n").expect("write");
    let out = tmp.path().join("out");
    let missing = tmp.path().join("nonexistent-dir").join("x.json");
    wordcount(&input, &out, &[OsStr::new("--stats-json"), missing.as_os_str()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--stats-json").and(predicate::str::contains("x.json")));
    assert!(!out.exists(), "the job ran although its stats could not be written");

    // A job that fails leaves no (empty) stats file behind.
    let stats = tmp.path().join("stats.json");
    let broken = tmp.path().join("broken.gz");
    fs::write(&broken, "not gzip at all").expect("write");
    wordcount(&broken, &out, &[OsStr::new("--stats-json"), stats.as_os_str()]).assert().code(1);
    assert!(!stats.exists(), "a failed job left a stats file");
    assert!(!out.exists());

    // A job that succeeds writes it.
    wordcount(&input, &out, &[OsStr::new("--quiet"), OsStr::new("--stats-json"), stats.as_os_str()]).assert().success();
    let json: serde_json::Value = serde_json::from_slice(&fs::read(&stats).expect("stats")).expect("JSON");
    assert_eq!(json["counters"]["input_records"], 1);
}

#[test]
fn jobs_too_large_to_plan_are_refused_with_the_bound_named() {
    let nowhere = Nowhere::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in.txt");
    fs::write(&input, "x\n".repeat(60_000)).expect("write"); // 120,000 bytes
    let out = tmp.path().join("out");
    let cases: &[(&[&str], &[&str])] = &[
        (&["--split-size", "1"], &["120000 map tasks", "at most 100000", "raise --split-size", "1 byte"]),
        (&["--reducers", "20000"], &["--reducers", "at most 10000"]),
        (&["--max-attempts", "0"], &["--max-attempts", "1 to 100"]),
        (&["--max-attempts", "101"], &["--max-attempts", "1 to 100"]),
    ];
    for (extra, messages) in cases {
        // A submitted job is planned on the cluster (the bound on map tasks
        // is checked there: `cluster::bad_submissions_and_missing_tokens_are_refused`);
        // what the spec alone says is refused by the client at once.
        let commands: &[&str] = if extra[0] == "--split-size" { &["run"] } else { &["run", "submit"] };
        for &command in commands {
            let mut cmd = quern();
            cmd.args([command, "--app", "wordcount", "--input"]).arg(&input).arg("--output").arg(&out).args(*extra);
            if command == "submit" {
                cmd.args(["--token", "t", "--coordinator", &nowhere.url()]);
            }
            let result = cmd.output().expect("run");
            let stderr = stderr_of(&result);
            assert_eq!(result.status.code(), Some(2), "{command} {extra:?}: {stderr}");
            for m in *messages {
                assert!(stderr.contains(m), "{command} {extra:?}: {m:?} not in: {stderr}");
            }
            assert!(!out.exists(), "{command} {extra:?}: a refused job created its output");
        }
    }
    // Small splits stay allowed while the job stays small.
    wordcount(&input, &out, &["--quiet", "--split-size", "90"]).assert().success();
}

#[test]
fn the_cause_of_an_error_is_printed_once() {
    let nowhere = Nowhere::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in.txt");
    fs::write(&input, "a b c\n").expect("write");
    let file = tmp.path().join("file");
    fs::write(&file, "a regular file").expect("write");
    // An output under a regular file: its parent cannot be created.
    for (output, cause) in [(file.join("out"), "File exists"), (file.join("sub").join("out"), "Not a directory")] {
        let result = wordcount(&input, &output, &[] as &[&str]).output().expect("run");
        let stderr = stderr_of(&result);
        assert_eq!(result.status.code(), Some(2), "an output that cannot be made is refused: {stderr}");
        assert_eq!(stderr.matches(cause).count(), 1, "{stderr}");
        assert_eq!(stderr.matches("(os error").count(), 1, "{stderr}");
        assert!(stderr.contains(&format!("{}", output.parent().expect("parent").display())), "{stderr}");
    }
    // A worker whose work directory cannot be made.
    let result = quern()
        .args(["worker", "--token", "t", "--coordinator", &nowhere.url(), "--work-dir"])
        .arg(file.join("work"))
        .output()
        .expect("worker");
    let stderr = stderr_of(&result);
    assert!(!result.status.success());
    assert_eq!(stderr.matches("(os error").count(), 1, "{stderr}");
    assert!(stderr.contains("creating the work directory"), "{stderr}");
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

#[test]
fn corrupt_compressed_input_fails_at_once_without_retries() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = "the quick brown fox jumps over the lazy dog\n".repeat(2000);
    let good = gzip(text.as_bytes());
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    // (A flipped byte inside a zstd frame may go unnoticed: frames carry no
    // checksum by default.)
    let zst = zstd::encode_all(text.as_bytes(), 3).expect("zstd");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not-gzip.gz", b"this is not gzip".to_vec()),
        ("flipped.gz", flipped),
        ("truncated.gz", good[..good.len() / 2].to_vec()),
        ("not-zstd.zst", b"this is not zstd".to_vec()),
        ("truncated.zst", zst[..zst.len() / 2].to_vec()),
    ];
    for (name, bytes) in cases {
        let path = tmp.path().join(name);
        fs::write(&path, bytes).expect("write");
        let out = tmp.path().join(format!("out-{name}"));
        let result = wordcount(&path, &out, &[] as &[&str]).output().expect("run");
        let stderr = stderr_of(&result);
        assert_eq!(result.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains("task m-00000 failed: "), "{name}: not a permanent failure: {stderr}");
        assert!(!stderr.contains("attempt(s)"), "{name}: retried: {stderr}");
        assert!(stderr.contains(name), "{name}: the file is not named: {stderr}");
        let error = stderr.lines().find(|l| l.starts_with("quern: error:")).unwrap_or_default();
        assert_eq!(error.matches(name).count(), 1, "{name}: the split is named once: {error}");
        assert!(!out.exists(), "{name}: a failed job leaves no output");
    }
}

#[test]
fn merge_factor_and_parallelism_out_of_range_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in.txt");
    fs::write(&input, "a b\n").expect("write");
    for (flag, value, range) in [("--merge-factor", "1", "2..=1024"), ("--parallelism", "0", "1..=1024")] {
        let out = tmp.path().join("out");
        let result = wordcount(&input, &out, &[flag, value]).output().expect("run");
        let stderr = stderr_of(&result);
        assert_eq!(result.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag) && stderr.contains(range), "{flag} {value}: {stderr}");
        assert!(!out.exists(), "{flag}: nothing is created");
    }
}

#[test]
fn a_shuffle_location_that_is_not_one_is_refused_naming_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in.txt");
    fs::write(&input, "a b\n").expect("write");
    for (value, why) in [("gs://bucket/shuffle", "unsupported scheme"), ("s3:///shuffle", "no bucket"), ("", "empty")] {
        let out = tmp.path().join("out");
        let result = wordcount(&input, &out, &["--shuffle", value]).output().expect("run");
        let stderr = stderr_of(&result);
        assert_eq!(result.status.code(), Some(2), "--shuffle {value:?}: {stderr}");
        assert!(stderr.contains("--shuffle") && stderr.contains(value) && stderr.contains(why), "{value:?}: {stderr}");
        assert!(!out.exists(), "--shuffle {value:?}: nothing is created");
    }
    // A local directory (a file system the job's processes share) is a
    // shuffle location like any other, and is left empty.
    let shuffle = tmp.path().join("shuffle");
    wordcount(&input, &tmp.path().join("out"), &["--shuffle", shuffle.to_str().expect("utf-8"), "--quiet"])
        .assert()
        .success();
    assert_eq!(fs::read_dir(&shuffle).map(|d| d.count()).unwrap_or(0), 0, "the job's prefix is deleted");
    assert_eq!(fs::read_to_string(tmp.path().join("out/part-r-00000")).expect("output"), "a\t1\nb\t1\n");
}
