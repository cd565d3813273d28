//! HTTP for the tests of the REST API and the dashboard: a coordinator
//! serving `--http`, plain HTTP/1.1 requests, multipart bodies.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::TestCluster;

/// A cluster whose coordinator (given `coordinator_args` too) also serves
/// the REST API; returns it, the API's address (`127.0.0.1:PORT`), and the
/// directory holding the address file (keep it alive with the cluster).
pub fn start_with_http(
    workers: usize,
    coordinator_args: &[&str],
    env: Vec<(String, String)>,
) -> (TestCluster, String, tempfile::TempDir) {
    let files = tempfile::tempdir().expect("tempdir");
    let address_file = files.path().join("http.address");
    let address_arg = address_file.to_str().expect("utf-8");
    let mut args = vec!["--http", "127.0.0.1:0", "--http-address-file", address_arg];
    args.extend_from_slice(coordinator_args);
    let c = TestCluster::start_with_env(workers, &args, env);
    let api = wait_for_file(&address_file);
    (c, api, files)
}

/// The first line of a file another process writes atomically, once it is
/// there.
pub fn wait_for_file(path: &std::path::Path) -> String {
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

/// One HTTP/1.1 request (`Connection: close`) with a body of
/// `content_type`; returns the status, the head and the body's bytes.
pub fn request(
    address: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, &[u8])>,
) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some((content_type, bytes)) = body {
        head.push_str(&format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n", bytes.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send");
    if let Some((_, bytes)) = body {
        stream.write_all(bytes).expect("send");
    }
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read");
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP answer");
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status");
    let mut body = answer[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = unchunk(&body);
    }
    (status, head, body)
}

/// The payload of a chunked body.
fn unchunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line = body.windows(2).position(|w| w == b"\r\n").expect("a chunk size");
        let size = usize::from_str_radix(std::str::from_utf8(&body[..line]).expect("hex").trim(), 16).expect("hex");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[line + 2..line + 2 + size]);
        body = &body[line + 2 + size + 2..];
    }
}

/// One JSON request; returns the status and the body as JSON.
pub fn http(address: &str, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
    let body = body.map(Value::to_string);
    let body = body.as_deref().map(|b| ("application/json", b.as_bytes()));
    let (status, _, bytes) = request(address, method, path, token, body);
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// `files` as multipart/form-data parts named `file`: (content type, body).
pub fn multipart(files: &[&std::path::Path]) -> (String, Vec<u8>) {
    let boundary = "----quern-rest-test";
    let mut body = Vec::new();
    for path in files {
        let name = path.file_name().and_then(|n| n.to_str()).expect("a file name");
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(&std::fs::read(path).expect("a book"));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Polls a job over REST until its state is one of `done`.
pub fn wait_for_state(api: &str, id: u64, c: &TestCluster, done: &[&str]) -> Value {
    let started = Instant::now();
    loop {
        let (_, job) = http(api, "GET", &format!("/api/v1/jobs/{id}"), Some(super::TOKEN), None);
        if job["state"].as_str().is_some_and(|s| done.contains(&s)) {
            return job;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{job}\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}
