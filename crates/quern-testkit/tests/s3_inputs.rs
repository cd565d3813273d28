//! `quern run` over `s3://` inputs, against a real S3 server (SeaweedFS with
//! SigV4 authentication, see `quern_testkit::s3_server`): the same job over
//! the same bytes gives the same output as over local files, however the
//! objects are split, compressed, listed or globbed; bad URLs, missing
//! objects and wrong credentials are refused, naming the URL.

mod support;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use quern_testkit::s3_server::S3Server;
use serde_json::Value;
use support::{BIN, ClosedPort, gutenberg, parts};

/// `quern-testkit run` of wordcount pointed at `server`; `extra` ends the
/// arguments.
fn run(server: &S3Server, input: &str, output: &Path, extra: &[&str]) -> Output {
    run_app(server, "wordcount", input, output, extra)
}

fn run_app(server: &S3Server, app: &str, input: &str, output: &Path, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args(["run", "--app", app, "--quiet", "--input", input, "--output"])
        .arg(output)
        .args(extra)
        .envs(server.env())
        .output()
        .expect("run quern-testkit")
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs the job and returns its `--stats-json`.
fn run_ok(server: &S3Server, input: &str, output: &Path, extra: &[&str]) -> Value {
    let stats = output.with_extension("stats.json");
    let stats_arg = stats.to_str().expect("utf-8");
    let out = run(server, input, output, &[extra, &["--stats-json", stats_arg]].concat());
    assert!(out.status.success(), "{input}: {}\n--- server log:\n{}", stderr_of(&out), server.log());
    serde_json::from_slice(&fs::read(&stats).expect("stats")).expect("stats JSON")
}

fn refused(server: &S3Server, input: &str, output: &Path) -> String {
    let out = run(server, input, output, &[]);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{input}: {stderr}");
    assert!(stderr.contains(input), "{input} is not named: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!output.exists(), "a refused job left {}", output.display());
    stderr
}

#[test]
fn wordcount_over_books_in_s3_equals_the_run_over_the_local_files() {
    let server = S3Server::start();
    let bucket = server.bucket();
    let keys = bucket.put_dir("books", &gutenberg());
    assert_eq!(keys.len(), 8, "{keys:?}");
    // Skipped like a local directory's `_SUCCESS` and dot files, at every
    // level; a deeper "directory" is read.
    bucket.put("books/_SUCCESS", "never counted\n");
    bucket.put("books/.hidden", "never counted\n");
    bucket.put("books/_temporary/attempt/part", "never counted\n");
    bucket.put("books/more/extra.txt", "counted once\n");
    bucket.put("elsewhere.txt", "not under the prefix\n");
    let tmp = tempfile::tempdir().expect("tempdir");
    let local_in = tmp.path().join("books");
    fs::create_dir(&local_in).expect("mkdir");
    for entry in fs::read_dir(gutenberg()).expect("gutenberg") {
        let path = entry.expect("entry").path();
        fs::copy(&path, local_in.join(path.file_name().expect("name"))).expect("copy");
    }
    fs::create_dir(local_in.join("more")).expect("mkdir");
    fs::write(local_in.join("more/extra.txt"), "counted once\n").expect("write");

    let args = ["--reducers", "3", "--split-size", "200KiB"];
    let local = run_ok(&server, local_in.to_str().expect("utf-8"), &tmp.path().join("local"), &args);
    for input in [bucket.url("books"), bucket.url("books/")] {
        let out = tmp.path().join(format!("s3-{}", input.len()));
        let s3 = run_ok(&server, &input, &out, &args);
        assert_eq!(parts(&out), parts(&tmp.path().join("local")), "{input}");
        assert_eq!(s3["map_tasks"], local["map_tasks"], "{input}");
        assert_eq!(s3["counters"], local["counters"], "{input}");
    }

    // A glob in the key: `*` stays within one level, like a path's.
    let local_glob = tmp.path().join("local-glob");
    let glob = format!("{}/*.txt", local_in.display());
    run_ok(&server, &glob, &local_glob, &args);
    let s3_glob = tmp.path().join("s3-glob");
    run_ok(&server, &bucket.url("books/*.txt"), &s3_glob, &args);
    assert_eq!(parts(&s3_glob), parts(&local_glob), "the glob read other objects than the local one");
    assert_ne!(parts(&s3_glob), parts(&tmp.path().join("local")), "more/extra.txt is not in the glob");
}

#[test]
fn an_object_bigger_than_the_split_size_becomes_several_map_tasks_with_the_same_output() {
    let server = S3Server::start();
    let bucket = server.bucket();
    let tmp = tempfile::tempdir().expect("tempdir");
    // ~9.5 MiB: a split of 9 MiB is read in more than one ranged GET (8 MiB
    // at most), and split ends fall inside lines.
    let mut big = Vec::new();
    let mut books: Vec<_> = fs::read_dir(gutenberg()).expect("gutenberg").map(|e| e.expect("entry").path()).collect();
    books.sort();
    for _ in 0..3 {
        for book in &books {
            big.extend(fs::read(book).expect("book"));
        }
    }
    let local_in = tmp.path().join("big.txt");
    fs::write(&local_in, &big).expect("write");
    bucket.put("big.txt", big.clone());

    for (split_size, size) in [("9MiB", 9u64 << 20), ("1000003", 1_000_003)] {
        let args = ["--reducers", "2", "--split-size", split_size];
        let local_out = tmp.path().join(format!("local-{split_size}"));
        let local = run_ok(&server, local_in.to_str().expect("utf-8"), &local_out, &args);
        let s3_out = tmp.path().join(format!("s3-{split_size}"));
        let s3 = run_ok(&server, &bucket.url("big.txt"), &s3_out, &args);
        let expected = (big.len() as u64).div_ceil(size);
        assert!(expected >= 2, "{split_size}");
        assert_eq!(s3["map_tasks"], expected, "{split_size}");
        assert_eq!(s3["counters"]["input_bytes"], big.len() as u64, "every byte counted once");
        assert_eq!(s3["counters"], local["counters"], "{split_size}");
        assert_eq!(parts(&s3_out), parts(&local_out), "{split_size}");
    }
}

#[test]
fn a_total_order_sort_samples_objects_as_it_samples_files() {
    let server = S3Server::start();
    let bucket = server.bucket();
    let tmp = tempfile::tempdir().expect("tempdir");
    // The books three times (~9.5 MiB: the plan samples places, each a
    // small ranged GET) and one book gzipped (sampled from its start).
    let mut books: Vec<_> = fs::read_dir(gutenberg()).expect("gutenberg").map(|e| e.expect("entry").path()).collect();
    books.sort();
    let mut big = Vec::new();
    for _ in 0..3 {
        for book in &books {
            big.extend(fs::read(book).expect("book"));
        }
    }
    let small = fs::read(&books[0]).expect("book");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&small).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let local_in = tmp.path().join("in");
    fs::create_dir(&local_in).expect("mkdir");
    fs::write(local_in.join("big.txt"), &big).expect("write");
    fs::write(local_in.join("small.txt.gz"), &gz).expect("write");
    bucket.put("in/big.txt", big.clone());
    bucket.put("in/small.txt.gz", gz);

    let args = ["--reducers", "3", "--split-size", "2MiB"];
    let local_out = tmp.path().join("local");
    let out = run_app(&server, "sort", local_in.to_str().expect("utf-8"), &local_out, &args);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let s3_out = tmp.path().join("s3");
    let out = run_app(&server, "sort", &bucket.url("in/"), &s3_out, &args);
    assert!(out.status.success(), "{}\n--- server log:\n{}", stderr_of(&out), server.log());
    let s3_parts = parts(&s3_out);
    assert_eq!(s3_parts, parts(&local_out), "the same cut points from objects as from files");

    let mut lines: Vec<&[u8]> = [&big[..], &small[..]]
        .iter()
        .flat_map(|data| data.split_inclusive(|&b| b == b'\n').map(|l| l.strip_suffix(b"\n").unwrap_or(l)))
        .collect();
    lines.sort();
    let expected: Vec<u8> = lines.iter().flat_map(|l| l.iter().chain(b"\n")).copied().collect();
    let got: Vec<u8> = s3_parts.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    assert!(got == expected, "the part files in order are the input's lines, sorted");
    for (name, part) in &s3_parts {
        assert!(part.len() * 3 <= got.len() * 2, "{name} has {} of {} bytes", part.len(), got.len());
    }
}

#[test]
fn a_gz_object_is_decompressed_whole_and_the_endpoint_flag_overrides_the_environment() {
    let server = S3Server::start();
    let bucket = server.bucket();
    let tmp = tempfile::tempdir().expect("tempdir");
    let book = gutenberg().join("pg-grimm.txt");
    let text = fs::read(&book).expect("book");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&text).expect("gzip");
    bucket.put("grimm.txt.gz", gz.finish().expect("gzip"));

    let local_out = tmp.path().join("local");
    run_ok(&server, book.to_str().expect("utf-8"), &local_out, &[]);
    let s3_out = tmp.path().join("s3");
    let nowhere = ClosedPort::new();
    let out = Command::new(BIN)
        .args(["run", "--app", "wordcount", "--quiet", "--split-size", "64KiB", "--input"])
        .arg(bucket.url("grimm.txt.gz"))
        .arg("--output")
        .arg(&s3_out)
        .args(["--s3-endpoint", &server.endpoint()])
        .envs(server.env())
        // Nothing listens there: only the flag's endpoint works.
        .env("AWS_ENDPOINT_URL", nowhere.url())
        .args(["--stats-json", tmp.path().join("gz.json").to_str().expect("utf-8")])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stats: Value = serde_json::from_slice(&fs::read(tmp.path().join("gz.json")).expect("stats")).expect("JSON");
    assert_eq!(stats["map_tasks"], 1, "a compressed object is never split");
    assert_eq!(parts(&s3_out), parts(&local_out));
}

#[test]
fn missing_objects_and_bad_urls_are_refused_naming_the_url() {
    let server = S3Server::start();
    let bucket = server.bucket();
    bucket.put("logs/a.txt", "a b c\n");
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("out");

    assert!(refused(&server, &bucket.url("logs/missing.txt"), &out).contains("no such object or prefix"));
    assert!(refused(&server, &bucket.url("nothing"), &out).contains("no such object or prefix"));
    assert!(refused(&server, &bucket.url("logs/*.csv"), &out).contains("no object matches this pattern"));
    assert!(refused(&server, "s3://no-such-bucket/a.txt", &out).contains("no such bucket"));
    assert!(refused(&server, "s3:///a.txt", &out).contains("no bucket"));
    assert!(refused(&server, "s3://", &out).contains("no bucket"));
    assert!(refused(&server, "gs://bucket/a.txt", &out).contains("unsupported scheme 'gs'"));
    assert!(refused(&server, "file://relative/a.txt", &out).contains("absolute"));
    // A local file that is missing is refused the same way.
    let missing = tmp.path().join("missing.txt");
    assert!(refused(&server, missing.to_str().expect("utf-8"), &out).contains("no such file or directory"));
    // A good input beside a bad one: nothing runs.
    let input = bucket.url("logs/a.txt");
    let both = Command::new(BIN)
        .args(["run", "--app", "wordcount", "--input", &input, "s3://x/missing", "--output"])
        .arg(&out)
        .envs(server.env())
        .output()
        .expect("run");
    assert_eq!(both.status.code(), Some(2), "{}", stderr_of(&both));
    assert!(!out.exists());
}

#[test]
fn wrong_or_missing_credentials_fail_clearly_naming_the_url() {
    let server = S3Server::start();
    let bucket = server.bucket();
    bucket.put("a.txt", "a b c\n");
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("out");
    let input = bucket.url("a.txt");
    for (variable, value, expected) in [
        ("AWS_SECRET_ACCESS_KEY", "not-the-secret", "access denied"),
        ("AWS_ACCESS_KEY_ID", "nobody", "access denied"),
        ("AWS_SECRET_ACCESS_KEY", "", "AWS_SECRET_ACCESS_KEY is not"),
    ] {
        let result = Command::new(BIN)
            .args(["run", "--app", "wordcount", "--input", &input, "--output"])
            .arg(&out)
            .envs(server.env())
            .env(variable, value)
            .output()
            .expect("run");
        let stderr = stderr_of(&result);
        assert_eq!(result.status.code(), Some(2), "{variable}={value}: {stderr}");
        assert!(stderr.contains(&input), "{variable}={value}: the URL is not named: {stderr}");
        assert!(stderr.contains(expected), "{variable}={value}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!out.exists());
    }
    // With the right ones, the same job runs.
    let stats = run_ok(&server, &input, &out, &[]);
    assert_eq!(stats["counters"]["output_records"], 3);
}
