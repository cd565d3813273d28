//! The shuffle through S3 (`--shuffle s3://…`), against a real S3 server
//! (SeaweedFS with SigV4, see `quern_testkit::s3_server`): wordcount from S3
//! to S3 gives the bytes of the local run, embedded and on a cluster of a
//! coordinator and three workers; an embedded job leaves nothing under the
//! shuffle prefix; a flaky store (throttling, errors, lost answers, cut
//! bodies) changes nothing; and `Storage`'s upload, ranged read and prefix
//! deletion on the real server.

mod support;

use std::fs;
use std::io::Read;
use std::process::{Command, Output};
use std::time::Duration;

use quern::{S3Options, Storage};
use quern_testkit::fault_proxy::{FaultProxy, Faults};
use quern_testkit::s3_server::S3Server;
use support::{BIN, TestCluster, gutenberg, parts, s3_parts};

fn quern(server: &S3Server, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).envs(server.env()).env_remove("RUST_LOG");
    cmd
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn run_ok(server: &S3Server, args: &[&str]) -> Output {
    let out = quern(server, &[&["run", "--quiet"], args].concat()).output().expect("run quern-testkit");
    assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
    out
}

const ARGS: [&str; 6] = ["--app", "wordcount", "--reducers", "3", "--split-size", "256KiB"];

/// Wordcount over the books on local files, into `dir/local`.
fn local_run(server: &S3Server, dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let local = dir.join("local");
    let books = gutenberg().to_str().expect("utf-8").to_owned();
    run_ok(server, &[&ARGS[..], &["--input", &books, "--output", local.to_str().expect("utf-8")]].concat());
    parts(&local)
}

/// Whether every key is an uploaded map output of one job under `prefix`.
fn map_output_keys(keys: &[String], prefix: &str) -> bool {
    let re = |k: &str| {
        let Some(rest) = k.strip_prefix(&format!("{prefix}/job-")) else { return false };
        let Some((_, name)) = rest.split_once('/') else { return false };
        name.starts_with("m-") && name.ends_with(".run") && name.contains("-a")
    };
    !keys.is_empty() && keys.iter().all(|k| re(k))
}

#[test]
fn wordcount_from_s3_to_s3_with_an_s3_shuffle_gives_the_local_bytes_and_leaves_no_shuffle_object() {
    let server = S3Server::start();
    let bucket = server.bucket();
    bucket.put_dir("books", &gutenberg());
    bucket.put("shuffle/other-job/keep.run", "another job's\n");
    let tmp = tempfile::tempdir().expect("tempdir");
    let local = local_run(&server, tmp.path());

    let out = quern(&server, &["run"])
        .args(ARGS)
        .args(["--input", &bucket.url("books"), "--output", &bucket.url("counts")])
        .args(["--shuffle", &bucket.url("shuffle")])
        .env("RUST_LOG", "warn,quern_engine::task=debug")
        .output()
        .expect("run");
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(s3_parts(&bucket, "counts"), local, "S3 shuffle output differs from the local run");
    // Every map uploaded its output under the job's own prefix...
    let uploads = stderr.lines().filter(|l| l.contains("map output uploaded")).count();
    assert!(uploads >= 4, "{uploads} uploads:\n{stderr}");
    assert!(stderr.contains(&bucket.url("shuffle/job-")), "{stderr}");
    // ...which is gone once the job ended; another job's objects are not.
    assert_eq!(bucket.keys("shuffle"), ["shuffle/other-job/keep.run"]);
    assert_eq!(bucket.keys("counts/_temporary"), Vec::<String>::new());
}

#[test]
fn wordcount_from_s3_to_s3_with_an_s3_shuffle_on_a_cluster_of_three_workers_gives_the_local_bytes() {
    let server = S3Server::start();
    let bucket = server.bucket();
    bucket.put_dir("books", &gutenberg());
    bucket.put("shuffle/other-job/keep.run", "another job's");
    let env = server.env().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    // The ended job's shuffle data is kept a moment, then deleted.
    let cluster = TestCluster::start_with_env(3, &["--retention", "5s"], env);
    let local = local_run(&server, cluster.dir.path());
    let id = cluster.submit(
        &[
            &ARGS[..],
            &["--input", &bucket.url("books"), "--output", &bucket.url("counts")],
            &["--shuffle", &bucket.url("shuffle")],
        ]
        .concat(),
    );
    let status = cluster.wait_job(id, Duration::from_secs(120));
    assert_eq!(status["state"], "succeeded", "{status}\n{}", cluster.logs());
    assert_eq!(s3_parts(&bucket, "counts"), local, "cluster S3 shuffle output differs from the local run");
    let logs = cluster.logs();
    assert!(!logs.contains("map outputs gone") && !logs.contains("FetchFailed"), "{logs}");
    // The maps' outputs went through S3, where they stay for the retention,
    let keys: Vec<String> = bucket.keys("shuffle").into_iter().filter(|k| !k.contains("other-job")).collect();
    assert!(map_output_keys(&keys, "shuffle"), "{keys:?}");
    // and then the coordinator deletes the job's prefix, and only that.
    cluster.wait_until("the shuffle prefix to be deleted", Duration::from_secs(30), || {
        bucket.keys("shuffle") == ["shuffle/other-job/keep.run"]
    });
}

#[test]
fn wordcount_with_an_s3_shuffle_through_a_flaky_proxy_still_gives_the_same_bytes() {
    let server = S3Server::start();
    let bucket = server.bucket();
    bucket.put_dir("books", &gutenberg());
    let tmp = tempfile::tempdir().expect("tempdir");
    let local = local_run(&server, tmp.path());

    let faults = Faults {
        slow_down: 0.08,
        internal_error: 0.04,
        lost_answer: 0.05,
        cut_body: 0.05,
        seed: 20_251_126,
        ..Faults::default()
    };
    let proxy = FaultProxy::start(&server.endpoint(), faults);
    let out = quern(&server, &["run", "--quiet"])
        .args(ARGS)
        .args(["--input", &bucket.url("books"), "--output", &bucket.url("flaky")])
        .args(["--shuffle", &bucket.url("shuffle")])
        .env("AWS_ENDPOINT_URL", proxy.endpoint())
        .output()
        .expect("run");
    let counts = proxy.counts();
    assert!(out.status.success(), "{counts:?}\n{}", stderr_of(&out));
    assert_eq!(s3_parts(&bucket, "flaky"), local, "{counts:?}");
    assert_eq!(bucket.keys("shuffle"), Vec::<String>::new(), "{counts:?}");
    assert!(counts.slow_down > 0 && counts.internal_error > 0, "{counts:?}");
    assert!(counts.lost_answer > 0 && counts.cut_body > 0, "{counts:?}");
}

fn storage(server: &S3Server) -> Storage {
    let env = server.env();
    Storage::new(S3Options::from_env_vars(|name| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())))
}

#[test]
fn storage_uploads_reads_ranges_and_deletes_a_prefix_on_a_real_server() {
    let server = S3Server::start();
    let bucket = server.bucket();
    let storage = storage(&server);
    let tmp = tempfile::tempdir().expect("tempdir");
    // Two multipart parts and a bit: more than one ranged GET too.
    let bytes: Vec<u8> = (0..(16 << 20) + 4321).map(|i: u32| (i % 253) as u8).collect();
    let local = tmp.path().join("map.out");
    fs::write(&local, &bytes).expect("write");
    let url = bucket.url("shuffle/job-1/m-00000-a1.run");
    assert_eq!(storage.upload_file(&local, &url).expect("upload"), bytes.len() as u64);
    storage.upload_file(&local, &bucket.url("shuffle/job-1/m-00001-a1.run")).expect("upload");
    storage.upload_file(&local, &bucket.url("shuffle/job-11/m-00000-a1.run")).expect("upload");
    assert_eq!(bucket.get("shuffle/job-1/m-00000-a1.run"), bytes);

    let read = |offset: u64, len: u64| {
        let mut out = Vec::new();
        storage.read_range(&url, offset, len).expect("open").read_to_end(&mut out).expect("read");
        out
    };
    assert_eq!(read(0, bytes.len() as u64), bytes);
    let (at, len) = ((8 << 20) - 100, 200_000usize);
    assert_eq!(read(at, len as u64), &bytes[at as usize..at as usize + len]);

    storage.delete_prefix(&bucket.url("shuffle/job-1")).expect("delete");
    assert_eq!(bucket.keys("shuffle"), ["shuffle/job-11/m-00000-a1.run"]);
    let e = storage.read_range(&url, 0, 10).err().expect("gone");
    assert!(e.to_string().contains(&url) && e.to_string().contains("no such object"), "{e}");
    storage.delete_prefix(&bucket.url("shuffle/job-1")).expect("nothing to delete is no error");
}
