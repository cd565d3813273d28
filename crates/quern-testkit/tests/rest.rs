//! The REST API served by a real coordinator process (`--http`), with real
//! workers: a wordcount submitted as JSON runs to the bytes of the
//! embedded run, and its tasks and counters read back.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{BIN, TOKEN, TestCluster, embedded, gutenberg, parts};

/// One HTTP/1.1 request (`Connection: close`); returns the status and the
/// body as JSON.
fn http(address: &str, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if !body.is_empty() {
        request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn wait_for_file(path: &std::path::Path) -> String {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Some(address) = text.strip_suffix('\n')
        {
            return address.to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no {}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_job_submitted_over_rest_runs_on_the_cluster() {
    let files = tempfile::tempdir().expect("tempdir");
    let address_file = files.path().join("http.address");
    let address_arg = address_file.to_str().expect("utf-8");
    let c = TestCluster::start(2, &["--http", "127.0.0.1:0", "--http-address-file", address_arg]);
    let api = wait_for_file(&address_file);

    let (status, health) = http(&api, "GET", "/api/v1/health", None, None);
    assert_eq!((status, health["status"].as_str(), health["workers"].as_u64()), (200, Some("ok"), Some(2)));
    let (status, _) = http(&api, "GET", "/api/v1/jobs", Some("wrong"), None);
    assert_eq!(status, 401);

    let local = c.path("local");
    embedded("wordcount", &gutenberg(), &local, &["--reducers", "2", "--split-size", "512KiB"]);
    let output = c.path("out");
    let spec = json!({
        "app": "wordcount",
        "inputs": [gutenberg()],
        "output": output,
        "reducers": 2,
        "split_size": 512 * 1024,
    });
    let (status, job) = http(&api, "POST", "/api/v1/jobs", Some(TOKEN), Some(&spec));
    assert_eq!(status, 201, "{job}\n{}", c.logs());
    let id = job["id"].as_u64().expect("id");
    let started = Instant::now();
    let job = loop {
        let (_, job) = http(&api, "GET", &format!("/api/v1/jobs/{id}"), Some(TOKEN), None);
        if matches!(job["state"].as_str(), Some("succeeded" | "failed" | "killed")) {
            break job;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{job}\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(job["state"], "succeeded", "{job}\n{}", c.logs());
    assert_eq!(parts(&output), parts(&local), "the REST job's output differs from the embedded run");

    let (_, tasks) = http(&api, "GET", &format!("/api/v1/jobs/{id}/tasks"), Some(TOKEN), None);
    let tasks = tasks.as_array().expect("tasks");
    assert_eq!(tasks.len() as u64, job["maps"]["total"].as_u64().expect("maps") + 2);
    assert!(tasks.iter().all(|t| t["state"] == "succeeded" && t["attempts"][0]["worker"].is_string()), "{tasks:?}");
    let (_, counters) = http(&api, "GET", &format!("/api/v1/jobs/{id}/counters"), Some(TOKEN), None);
    assert!(counters["engine"]["input_records"].as_u64().is_some_and(|n| n > 0), "{counters}");
    // A second job into the same output is refused, naming it.
    let (status, refused) = http(&api, "POST", "/api/v1/jobs", Some(TOKEN), Some(&spec));
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("refused")), "{refused}");

    // Users are added on the coordinator's host while it runs, and log in.
    let data_dir = c.path("coordinator");
    let user = |args: &[&str], stdin: &str| {
        let mut child = std::process::Command::new(BIN)
            .arg("user")
            .args(args)
            .arg("--data-dir")
            .arg(&data_dir)
            .env_remove("QUERN_STATE")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("quern user");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("password");
        child.wait_with_output().expect("quern user")
    };
    let added = user(&["add", "ann", "--role", "user", "--password-stdin"], "correct horse\n");
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let again = user(&["add", "ann", "--role", "admin", "--password-stdin"], "correct horse\n");
    assert_eq!(again.status.code(), Some(2), "a second ann is refused");
    let short = user(&["add", "bob", "--role", "user", "--password-stdin"], "short\n");
    assert_eq!(short.status.code(), Some(2), "{}", String::from_utf8_lossy(&short.stderr));
    let listed = user(&["list"], "");
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "ann\tuser\n");
    let login = json!({"username": "ann", "password": "correct horse"});
    let (status, token) = http(&api, "POST", "/api/v1/auth/login", None, Some(&login));
    assert_eq!(status, 200, "{token}");
    let token = token["token"].as_str().expect("token").to_owned();
    let (_, jobs) = http(&api, "GET", "/api/v1/jobs", Some(&token), None);
    assert_eq!(jobs["total"], 0, "ann sees none of the cluster token's jobs");
    let changed = user(&["passwd", "ann", "--password-stdin"], "battery staple\n");
    assert!(changed.status.success(), "{}", String::from_utf8_lossy(&changed.stderr));
    assert_eq!(http(&api, "POST", "/api/v1/auth/login", None, Some(&login)).0, 401, "the old password is gone");
    let removed = user(&["remove", "ann"], "");
    assert!(removed.status.success());
    let login = json!({"username": "ann", "password": "battery staple"});
    assert_eq!(http(&api, "POST", "/api/v1/auth/login", None, Some(&login)).0, 401, "a removed user cannot log in");
}
