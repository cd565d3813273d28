//! A cluster (a coordinator and three workers, real processes) reading and
//! writing S3 (a real SeaweedFS with SigV4, see `quern_testkit::s3_server`):
//! the bytes of the local run, one large object cut into several maps; of
//! two submissions to one prefix exactly one is accepted; a killed job
//! leaves nothing visible; a store that fails a share of its requests and
//! drops connections does not fail the job; files uploaded over REST to
//! an S3 file area are a job's input, and its S3 output downloads.

mod support;

use std::time::Duration;

use quern_testkit::fault_proxy::{FaultProxy, Faults};
use quern_testkit::s3_server::S3Server;
use support::{TOKEN, TestCluster, embedded, gutenberg, http, numbered, parts, s3_parts};

fn cluster_on(endpoint: &str, server: &S3Server, workers: usize) -> TestCluster {
    let mut env: Vec<(String, String)> = server.env().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    for (k, v) in &mut env {
        if k == "AWS_ENDPOINT_URL" {
            *v = endpoint.to_owned();
        }
    }
    TestCluster::start_with_env(workers, &["--no-speculation"], env)
}

#[test]
fn wordcount_from_s3_to_s3_on_three_workers_writes_the_bytes_of_the_local_run() {
    let server = S3Server::start();
    let bucket = server.bucket();
    let books = bucket.put_dir("books", &gutenberg());
    let c = cluster_on(&server.endpoint(), &server, 3);
    let local = c.path("local");
    let args = ["--app", "wordcount", "--reducers", "3", "--split-size", "256KiB"];
    embedded("wordcount", &gutenberg(), &local, &args[2..]);
    let id = c.submit(&[&args[..], &["--input", &bucket.url("books"), "--output", &bucket.url("counts")]].concat());
    let status = c.wait_job(id, Duration::from_secs(120));
    assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());
    assert_eq!(s3_parts(&bucket, "counts"), parts(&local), "the cluster's S3 output differs from the local run");
    assert!(bucket.keys("counts/_temporary").is_empty(), "nothing temporary is left");
    // Large objects were cut: more maps than objects.
    let maps = status["maps"]["total"].as_u64().expect("maps");
    assert!(maps > books.len() as u64, "{maps} maps for {} objects", books.len());
    let workers: std::collections::HashSet<String> =
        c.attempts(id).iter().filter_map(|a| a["worker"].as_str().map(str::to_owned)).collect();
    assert!(workers.len() > 1, "the work was spread over the workers: {workers:?}");
}

#[test]
fn of_two_submissions_to_one_prefix_exactly_one_is_accepted() {
    let server = S3Server::start();
    let bucket = server.bucket();
    bucket.put("in.txt", numbered(50).join("\n") + "\n");
    let c = cluster_on(&server.endpoint(), &server, 1);
    for round in 0..3 {
        let output = bucket.url(&format!("race-{round}"));
        let submit = || {
            c.cli()
                .args(["submit", "--app", "slow", "--param", "ms=5", "--reducers", "1"])
                .args(["--input", &bucket.url("in.txt"), "--output", &output])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("submit")
        };
        let (a, b) = (submit(), submit());
        let outs = [a.wait_with_output().expect("wait"), b.wait_with_output().expect("wait")];
        let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
        let accepted: Vec<_> = outs.iter().filter(|o| o.status.success()).collect();
        let refused: Vec<_> = outs.iter().filter(|o| !o.status.success()).collect();
        assert_eq!(accepted.len(), 1, "round {round}: {:?}", outs.iter().map(stderr).collect::<Vec<_>>());
        let refusal = stderr(refused[0]);
        assert_eq!(refused[0].status.code(), Some(2), "round {round}: {refusal}");
        assert!(refusal.contains(&output), "round {round}: {refusal}");
        let id: u64 = String::from_utf8_lossy(&accepted[0].stdout).trim().parse().expect("a job id");
        let status = c.wait_job(id, Duration::from_secs(60));
        assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());
        let written = s3_parts(&bucket, &format!("race-{round}"));
        let lines: usize = written.iter().map(|(_, b)| b.iter().filter(|&&b| b == b'\n').count()).sum();
        assert_eq!(lines, 50, "the accepted job's output is whole");
    }
}

#[test]
fn a_killed_job_leaves_nothing_under_its_prefix() {
    let server = S3Server::start();
    let bucket = server.bucket();
    bucket.put("in.txt", numbered(400).join("\n") + "\n");
    let c = cluster_on(&server.endpoint(), &server, 2);
    // Map-only splits of 40 lines at 20 ms a line: committed maps' files
    // are in the store well before the job could end.
    let id = c.submit(&[
        "--app",
        "slow",
        "--param",
        "ms=20",
        "--reducers",
        "0",
        "--split-size",
        "400",
        "--input",
        &bucket.url("in.txt"),
        "--output",
        &bucket.url("out"),
    ]);
    c.wait_until("a task to commit", Duration::from_secs(60), || {
        bucket.keys("out").iter().any(|k| k.contains("/_temporary/") && k.contains("/committed/"))
    });
    let killed = c.cli().args(["kill", &id.to_string()]).output().expect("kill");
    assert!(killed.status.success(), "{}", String::from_utf8_lossy(&killed.stderr));
    assert_eq!(bucket.keys("out"), Vec::<String>::new(), "the kill returns once the output is gone");
    let status = c.wait_job(id, Duration::from_secs(10));
    assert_eq!(status["state"], "killed");
    // Attempts that were running when the job was killed stop without
    // leaving anything either.
    c.wait_until("the attempts to stop", Duration::from_secs(30), || {
        c.json(&["workers"]).as_array().is_some_and(|ws| ws.iter().all(|w| w["running"] == 0))
    });
    assert_eq!(bucket.keys("out"), Vec::<String>::new(), "a late attempt wrote into a killed job's prefix");
}

#[test]
fn a_cluster_job_survives_a_store_that_fails_a_share_of_its_requests() {
    let server = S3Server::start();
    let bucket = server.bucket();
    bucket.put_dir("books", &gutenberg());
    let faults = Faults {
        slow_down: 0.08,
        internal_error: 0.04,
        lost_answer: 0.05,
        cut_body: 0.05,
        seed: 20_261_126,
        ..Faults::default()
    };
    let proxy = FaultProxy::start(&server.endpoint(), faults);
    let c = cluster_on(&proxy.endpoint(), &server, 3);
    let local = c.path("local");
    let args = ["--app", "wordcount", "--reducers", "2", "--split-size", "256KiB"];
    embedded("wordcount", &gutenberg(), &local, &args[2..]);
    let id = c.submit(&[&args[..], &["--input", &bucket.url("books"), "--output", &bucket.url("flaky")]].concat());
    let status = c.wait_job(id, Duration::from_secs(180));
    let counts = proxy.counts();
    assert_eq!(status["state"], "succeeded", "{counts:?}\n{status}\n{}", c.logs());
    assert_eq!(s3_parts(&bucket, "flaky"), parts(&local), "{counts:?}");
    assert!(counts.faults() > 0 && counts.lost_answer > 0, "the faults happened: {counts:?}");
}

#[test]
fn uploads_to_an_s3_file_area_become_inputs_and_the_output_downloads_from_s3() {
    let server = S3Server::start();
    let bucket = server.bucket();
    let env = server.env().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    let area = bucket.url("area");
    let (c, api, _files) = http::start_with_http(2, &["--files", &area], env);

    let mut books: Vec<std::path::PathBuf> =
        std::fs::read_dir(gutenberg()).expect("books").map(|e| e.expect("entry").path()).collect();
    books.sort();
    books.truncate(2);
    let both = c.path("both");
    std::fs::create_dir_all(&both).expect("dir");
    for book in &books {
        std::fs::copy(book, both.join(book.file_name().expect("name"))).expect("copy");
    }
    let local = c.path("local");
    embedded("wordcount", &both, &local, &["--reducers", "2"]);

    let (content_type, body) = http::multipart(&books.iter().map(|b| b.as_path()).collect::<Vec<_>>());
    let (status, _, uploaded) =
        http::request(&api, "POST", "/api/v1/uploads", Some(TOKEN), Some((&content_type, &body)));
    let uploaded: serde_json::Value = serde_json::from_slice(&uploaded).expect("JSON");
    assert_eq!(status, 201, "{uploaded}\n{}", c.logs());
    let inputs: Vec<&str> =
        uploaded["files"].as_array().expect("files").iter().filter_map(|f| f["location"].as_str()).collect();
    assert!(inputs.iter().all(|l| l.starts_with(&format!("{area}/uploads/_cluster/"))), "{uploaded}");
    assert_eq!(bucket.keys("area/uploads").len(), 2, "the uploads are objects in the area");

    let spec = serde_json::json!({"app": "wordcount", "inputs": inputs, "output": "counts", "reducers": 2});
    let (status, job) = http::http(&api, "POST", "/api/v1/jobs", Some(TOKEN), Some(&spec));
    assert_eq!(status, 201, "{job}\n{}", c.logs());
    assert_eq!(job["output"].as_str(), Some(format!("{area}/outputs/counts").as_str()));
    let id = job["id"].as_u64().expect("id");
    let job = http::wait_for_state(&api, id, &c, &["succeeded", "failed", "killed"]);
    assert_eq!(job["state"], "succeeded", "{job}\n{}", c.logs());
    assert_eq!(s3_parts(&bucket, "area/outputs/counts"), parts(&local), "the S3 output differs from the local run");

    let (_, listed) = http::http(&api, "GET", &format!("/api/v1/jobs/{id}/output"), Some(TOKEN), None);
    let mut downloaded = Vec::new();
    for file in listed["files"].as_array().expect("files") {
        let name = file["name"].as_str().expect("name");
        let (status, head, bytes) =
            http::request(&api, "GET", &format!("/api/v1/jobs/{id}/output/{name}"), Some(TOKEN), None);
        assert_eq!(status, 200, "{head}");
        downloaded.push((name.to_owned(), bytes));
    }
    assert_eq!(downloaded, parts(&local), "the files downloaded from S3 differ from the local run");
}
