//! `quern run` writing `s3://` outputs, against a real S3 server (SeaweedFS
//! with SigV4, see `quern_testkit::s3_server`): the same bytes as a local
//! output, only the winners' files and `_SUCCESS` visible after a commit,
//! nothing at all after a failed or cancelled job, a prefix that has
//! objects or is being written refused, and a job through a proxy that
//! throttles, fails, loses answers and cuts bodies still giving the same
//! bytes.

mod support;

use std::fs;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use quern_testkit::fault_proxy::{FaultProxy, Faults, LoseAnswers};
use quern_testkit::s3_server::S3Server;
use support::{BIN, gutenberg, parts, s3_parts};

fn quern(server: &S3Server, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).envs(server.env()).env_remove("RUST_LOG");
    cmd
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn run_ok(server: &S3Server, args: &[&str]) {
    let out = quern(server, &[&["run", "--quiet"], args].concat()).output().expect("run quern-testkit");
    assert!(out.status.success(), "{args:?}: {}\n--- server log (end):\n{}", stderr_of(&out), tail(&server.log()));
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn books_dir() -> String {
    gutenberg().to_str().expect("utf-8").to_owned()
}

#[test]
fn wordcount_from_s3_to_s3_writes_the_bytes_of_the_local_run_and_nothing_else() {
    let server = S3Server::start();
    let bucket = server.bucket();
    bucket.put_dir("books", &gutenberg());
    let tmp = tempfile::tempdir().expect("tempdir");
    let local = tmp.path().join("local");
    let args = ["--app", "wordcount", "--reducers", "3", "--split-size", "300KiB"];
    run_ok(&server, &[&args[..], &["--input", &books_dir(), "--output", local.to_str().expect("utf-8")]].concat());
    let stats = tmp.path().join("stats.json");
    let output = bucket.url("counts/run-1");
    run_ok(
        &server,
        &[
            &args[..],
            &["--input", &bucket.url("books"), "--output", &output, "--stats-json"],
            &[stats.to_str().expect("utf-8")],
        ]
        .concat(),
    );
    let written = s3_parts(&bucket, "counts/run-1");
    assert_eq!(written, parts(&local), "S3 output differs from the local output");
    assert_eq!(written.len(), 3);
    assert!(bucket.keys("counts/run-1/_temporary").is_empty(), "nothing temporary is left after a commit");
    let stats: serde_json::Value = serde_json::from_slice(&fs::read(&stats).expect("stats")).expect("JSON");
    assert_eq!(stats["output"], output);
    assert_eq!(stats["files"][0], format!("{output}/part-r-00000"));
}

#[test]
fn a_map_only_grep_writes_its_part_files_to_s3() {
    let server = S3Server::start();
    let bucket = server.bucket();
    bucket.put_dir("books", &gutenberg());
    let tmp = tempfile::tempdir().expect("tempdir");
    let local = tmp.path().join("local");
    // The same (S3) input to a local and an S3 output: grep's keys name
    // the input file.
    let args = ["--app", "grep", "--param", "pattern=(?i)whale|monster", "--split-size", "256KiB"];
    run_ok(
        &server,
        &[&args[..], &["--input", &bucket.url("books"), "--output", local.to_str().expect("utf-8")]].concat(),
    );
    run_ok(&server, &[&args[..], &["--input", &bucket.url("books"), "--output", &bucket.url("grep")]].concat());
    let written = s3_parts(&bucket, "grep");
    assert!(written.iter().all(|(n, _)| n.starts_with("part-m-")), "{written:?}");
    assert!(!written.is_empty());
    assert_eq!(written, parts(&local));
}

#[test]
fn a_job_whose_task_fails_on_every_attempt_leaves_no_object_under_its_prefix() {
    let server = S3Server::start();
    let bucket = server.bucket();
    // Many small map-only splits write and commit their part files before
    // the last one, poisoned, fails every attempt.
    let mut text = "a clean line of words\n".repeat(2000);
    text.push_str("POISON\n");
    bucket.put("in/poisoned.txt", text);
    bucket.put("elsewhere/keep.txt", "not ours\n");
    let out = quern(
        &server,
        &[
            "run",
            "--app",
            "poison",
            "--reducers",
            "0",
            "--split-size",
            "2KiB",
            "--max-attempts",
            "2",
            "--parallelism",
            "2",
        ],
    )
    .args(["--input", &bucket.url("in"), "--output", &bucket.url("out")])
    .output()
    .expect("run");
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("poisoned record"), "{stderr}");
    assert_eq!(bucket.keys("out"), Vec::<String>::new(), "a failed job left objects");
    assert_eq!(bucket.keys("elsewhere"), ["elsewhere/keep.txt"]);
}

#[test]
fn a_job_cancelled_by_sigterm_leaves_nothing_visible() {
    let server = S3Server::start();
    let bucket = server.bucket();
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in.txt");
    fs::write(&input, (0..400).map(|i| format!("line {i:04}\n")).collect::<String>()).expect("write");
    // Map-only splits of 40 lines at 20 ms a line: committed maps' files
    // are in the store well before the job could end.
    let child = quern(&server, &["run", "--app", "slow", "--param", "ms=20", "--reducers", "0"])
        .args(["--split-size", "400", "--parallelism", "2", "--input", input.to_str().expect("utf-8")])
        .args(["--output", &bucket.url("out")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    while !bucket.keys("out").iter().any(|k| k.contains("/_temporary/") && k.contains("/committed/")) {
        assert!(started.elapsed() < Duration::from_secs(30), "no task committed: {:?}", bucket.keys("out"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let written = bucket.keys("out");
    assert!(written.iter().any(|k| k.contains("/part-m-")), "no part file was written yet: {written:?}");
    let sent = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(sent.success());
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(130), "{}", stderr_of(&out));
    assert_eq!(bucket.keys("out"), Vec::<String>::new(), "a cancelled job left objects");
}

#[test]
fn a_prefix_with_objects_under_it_is_refused_naming_the_url() {
    let server = S3Server::start();
    let bucket = server.bucket();
    bucket.put("in.txt", "a b c\n");
    bucket.put("out/old/part-r-00000", "old\n");
    for output in [bucket.url("out"), bucket.url("out/")] {
        let out = quern(&server, &["run", "--app", "wordcount", "--input", &bucket.url("in.txt"), "--output", &output])
            .output()
            .expect("run");
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(&bucket.url("out")) && stderr.contains("already exists"), "{stderr}");
    }
    assert_eq!(bucket.keys("out"), ["out/old/part-r-00000"], "a refused job touched the prefix");
    // The bucket itself is not a prefix.
    let out =
        quern(&server, &["run", "--app", "wordcount", "--input", &bucket.url("in.txt"), "--output", &bucket.url("")])
            .output()
            .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("needs a prefix"), "{}", stderr_of(&out));
}

#[test]
fn of_two_runs_started_at_once_on_one_prefix_exactly_one_succeeds() {
    let server = S3Server::start();
    let bucket = server.bucket();
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in.txt");
    fs::write(&input, (0..60).map(|i| format!("line {i:04}\n")).collect::<String>()).expect("write");
    for round in 0..3 {
        let output = bucket.url(&format!("race-{round}"));
        let start = || {
            quern(&server, &["run", "--quiet", "--app", "slow", "--param", "ms=10", "--input"])
                .arg(&input)
                .args(["--output", &output])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        };
        let (a, b) = (start(), start());
        let outs = [a.wait_with_output().expect("wait"), b.wait_with_output().expect("wait")];
        let won: Vec<&Output> = outs.iter().filter(|o| o.status.success()).collect();
        let lost: Vec<&Output> = outs.iter().filter(|o| !o.status.success()).collect();
        assert_eq!(won.len(), 1, "round {round}: {:?}", outs.iter().map(stderr_of).collect::<Vec<_>>());
        let refusal = stderr_of(lost[0]);
        assert_eq!(lost[0].status.code(), Some(2), "round {round}: {refusal}");
        assert!(refusal.contains(&output), "round {round}: {refusal}");
        assert!(
            refusal.contains("being written by another job") || refusal.contains("already exists"),
            "round {round}: {refusal}"
        );
        let written = s3_parts(&bucket, &format!("race-{round}"));
        assert_eq!(written.len(), 1);
        assert_eq!(written[0].1.iter().filter(|b| **b == b'\n').count(), 60, "the winner's output is whole");
    }
}

#[test]
fn wordcount_through_a_flaky_proxy_still_writes_the_same_bytes() {
    let server = S3Server::start();
    let bucket = server.bucket();
    bucket.put_dir("books", &gutenberg());
    let tmp = tempfile::tempdir().expect("tempdir");
    let local = tmp.path().join("local");
    // Small splits and ranged reads: many requests, so every kind of fault
    // is drawn.
    let args = ["--app", "wordcount", "--reducers", "3", "--split-size", "256KiB"];
    run_ok(&server, &[&args[..], &["--input", &books_dir(), "--output", local.to_str().expect("utf-8")]].concat());

    let faults = Faults {
        slow_down: 0.08,
        internal_error: 0.04,
        lost_answer: 0.05,
        cut_body: 0.05,
        seed: 20_240_601,
        ..Faults::default()
    };
    let proxy = FaultProxy::start(&server.endpoint(), faults);
    let out = quern(&server, &["run", "--quiet"])
        .args(args)
        .args(["--input", &bucket.url("books"), "--output", &bucket.url("flaky")])
        .env("AWS_ENDPOINT_URL", proxy.endpoint())
        .output()
        .expect("run");
    let counts = proxy.counts();
    assert!(out.status.success(), "{counts:?}\n{}", stderr_of(&out));
    assert_eq!(s3_parts(&bucket, "flaky"), parts(&local), "{counts:?}");
    assert!(bucket.keys("flaky/_temporary").is_empty());
    // The mechanism was exercised: every kind of fault happened.
    assert!(counts.slow_down > 0 && counts.internal_error > 0, "{counts:?}");
    assert!(counts.lost_answer > 0 && counts.cut_body > 0, "{counts:?}");
    assert!(counts.faults() * 10 >= counts.requests, "{counts:?}");
}

#[test]
fn lost_answers_to_the_claim_success_and_an_upload_completion_are_recognised_as_the_job_s_own() {
    let server = S3Server::start();
    let bucket = server.bucket();
    let tmp = tempfile::tempdir().expect("tempdir");
    // ~9.5 MiB sorted by one reducer: a part file of two uploaded parts.
    let mut books: Vec<_> = fs::read_dir(gutenberg()).expect("gutenberg").map(|e| e.expect("entry").path()).collect();
    books.sort();
    let mut big = Vec::new();
    for _ in 0..3 {
        for book in &books {
            big.extend(fs::read(book).expect("book"));
        }
    }
    let input = tmp.path().join("big.txt");
    fs::write(&input, &big).expect("write");
    let args = ["--app", "sort", "--reducers", "1", "--input", input.to_str().expect("utf-8")];
    let local = tmp.path().join("local");
    run_ok(&server, &[&args[..], &["--output", local.to_str().expect("utf-8")]].concat());

    // The server acts on the claim (1st conditional PUT), _SUCCESS (the 3rd:
    // the 2nd is the claim's retry) and the upload's completion, but their
    // answers never arrive; the client's retries find the work done.
    let lose = LoseAnswers { conditional_puts: &[0, 2], completions: &[0] };
    let proxy = FaultProxy::start(&server.endpoint(), Faults { lose, ..Faults::default() });
    let stats = tmp.path().join("stats.json");
    let out = quern(&server, &["run", "--quiet"])
        .args(args)
        .args(["--output", &bucket.url("sorted"), "--stats-json", stats.to_str().expect("utf-8")])
        .env("AWS_ENDPOINT_URL", proxy.endpoint())
        .output()
        .expect("run");
    let counts = proxy.counts();
    assert!(out.status.success(), "{counts:?}\n{}", stderr_of(&out));
    assert_eq!(counts.lost_answer, 3, "{counts:?}");
    let written = s3_parts(&bucket, "sorted");
    assert_eq!(written, parts(&local));
    assert!(written[0].1.len() > 8 << 20, "one object of more than one part");
    let stats: serde_json::Value = serde_json::from_slice(&fs::read(&stats).expect("stats")).expect("JSON");
    assert_eq!(stats["counters"]["failed_attempts"], 0, "a lost completion failed the attempt");
}

#[test]
fn of_two_claims_made_at_once_in_one_process_exactly_one_wins() {
    // What a coordinator does for two submissions at once: two threads,
    // one client.
    let server = S3Server::start();
    let bucket = server.bucket();
    let env = server.env();
    let storage = quern_storage::Storage::new(quern_storage::S3Options::from_env_vars(|name| {
        env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
    }));
    for round in 0..10 {
        let url = bucket.url(&format!("claim-{round}"));
        let barrier = std::sync::Barrier::new(2);
        let won: Vec<Result<(), String>> = std::thread::scope(|s| {
            let claim = || {
                barrier.wait();
                storage.setup_output(&url).map(drop).map_err(|e| e.to_string())
            };
            let (a, b) = (s.spawn(claim), s.spawn(claim));
            [a.join().expect("a"), b.join().expect("b")].into()
        });
        assert_eq!(won.iter().filter(|r| r.is_ok()).count(), 1, "round {round}: {won:?}");
    }
}
