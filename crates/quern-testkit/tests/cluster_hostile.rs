//! The cluster against peers that misbehave. Every server must stay up and
//! keep running jobs; the intruder must be refused.
//! - A second coordinator started on a state directory in use.
//! - Raw TCP connections that send a preface, garbage or half a request and
//!   go away without reading the reply, to the coordinator and to a worker's
//!   shuffle port.

mod support;

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK "literal header field without indexing, new name" (no Huffman).
fn header(block: &mut Vec<u8>, name: &str, value: &str) {
    assert!(name.len() < 127 && value.len() < 127);
    block.push(0);
    block.push(name.len() as u8);
    block.extend_from_slice(name.as_bytes());
    block.push(value.len() as u8);
    block.extend_from_slice(value.as_bytes());
}

/// The bytes of a whole gRPC call: preface, SETTINGS, HEADERS and one empty
/// message with END_STREAM.
fn grpc_call(path: &str, authority: &str) -> Vec<u8> {
    let mut block = Vec::new();
    header(&mut block, ":method", "POST");
    header(&mut block, ":scheme", "http");
    header(&mut block, ":path", path);
    header(&mut block, ":authority", authority);
    header(&mut block, "content-type", "application/grpc");
    header(&mut block, "te", "trailers");
    header(&mut block, "authorization", &format!("Bearer {TOKEN}"));
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(0x4, 0, 0, &[])); // SETTINGS
    bytes.extend(frame(0x1, 0x4, 1, &block)); // HEADERS, END_HEADERS
    bytes.extend(frame(0x0, 0x1, 1, &[0, 0, 0, 0, 0])); // DATA: an empty message, END_STREAM
    bytes
}

/// A connection, or `None` once the server is gone (the caller then finds
/// out which process died, and how).
fn connect(addr: SocketAddr) -> Option<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).expect("write timeout");
    Some(s)
}

/// Opens connections that misbehave in every way we know and drops them,
/// never reading a byte of what the server sends. Stops early if the server
/// stops accepting connections.
fn abuse(addr: SocketAddr, rpc_path: &str) {
    let _ = try_abuse(addr, rpc_path);
    // Let the server write into the dead connections.
    std::thread::sleep(Duration::from_millis(300));
}

fn try_abuse(addr: SocketAddr, rpc_path: &str) -> Option<()> {
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let call = grpc_call(rpc_path, &addr.to_string());
    let mut settings = PREFACE.to_vec();
    settings.extend(frame(0x4, 0, 0, &[]));
    for _ in 0..5 {
        // The preface alone, then close.
        let mut s = connect(addr)?;
        let _ = s.write_all(PREFACE);
        drop(s);

        // Garbage, then close.
        let mut s = connect(addr)?;
        let _ = s.write_all(&garbage);
        drop(s);

        // Preface and SETTINGS, half-closed; the server's SETTINGS arrive and
        // are never read, so the close below resets the connection.
        let mut s = connect(addr)?;
        let _ = s.write_all(&settings);
        let _ = s.shutdown(Shutdown::Write);
        std::thread::sleep(Duration::from_millis(50));
        drop(s);

        // A whole call, closed at once: the reply goes to a closed socket.
        let mut s = connect(addr)?;
        let _ = s.write_all(&call);
        drop(s);

        // A whole call, closed once the reply has started to arrive unread.
        let mut s = connect(addr)?;
        let _ = s.write_all(&call);
        std::thread::sleep(Duration::from_millis(50));
        drop(s);
    }
    Some(())
}

fn assert_alive(c: &mut TestCluster, what: &str) {
    let logs = c.logs();
    if let Some(coordinator) = c.coordinator.as_mut() {
        let status = coordinator.try_wait().expect("try_wait");
        assert!(status.is_none(), "after {what}, the coordinator exited with {status:?}\n{logs}");
    }
    for (i, w) in c.workers.iter_mut().enumerate() {
        let status = w.try_wait().expect("try_wait");
        assert!(status.is_none(), "after {what}, worker {i} exited with {status:?}\n{logs}");
    }
}

#[test]
fn connections_that_hang_up_without_reading_kill_no_server() {
    let mut c = TestCluster::start(2, &["--no-speculation"]);
    let workers = c.json(&["workers"]);
    let shuffle: SocketAddr = workers[0]["shuffle_address"]
        .as_str()
        .and_then(|a| a.strip_prefix("http://"))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no shuffle address in {workers}"));
    let coordinator: SocketAddr = format!("127.0.0.1:{}", c.port).parse().expect("address");

    abuse(shuffle, "/quern.v1.Shuffle/FetchSegment");
    assert_alive(&mut c, "hostile connections to a worker's shuffle port");
    abuse(coordinator, "/quern.v1.Coordinator/ListJobs");
    assert_alive(&mut c, "hostile connections to the coordinator");

    // Both still do their work: a job that shuffles between the workers.
    let out = c.path("out");
    let id = c.submit_job("wordcount", &gutenberg(), &out, &["--reducers", "3", "--split-size", "400KiB"]);
    let status = c.wait_job(id, Duration::from_secs(120));
    assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());
    let local = c.path("embedded");
    embedded("wordcount", &gutenberg(), &local, &["--reducers", "3"]);
    assert_eq!(parts(&out), parts(&local), "cluster and embedded outputs differ");
    assert_alive(&mut c, "the job");
}

/// Waits up to `timeout` for `child` to exit.
fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn a_second_coordinator_on_the_same_state_is_refused() {
    let mut c = TestCluster::start(1, &["--no-speculation"]);
    let mut second = Command::new(BIN)
        .args(["coordinator", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(c.path("coordinator"))
        .env("QUERN_TOKEN", TOKEN)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a second coordinator");
    let status = wait_exit(&mut second, Duration::from_secs(10));
    if status.is_none() {
        TestCluster::kill9(&mut second);
    }
    let mut stderr = String::new();
    if let Some(mut e) = second.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut stderr).expect("stderr");
    }
    let status = status.unwrap_or_else(|| panic!("the second coordinator kept running\n{stderr}"));
    assert!(!status.success(), "the second coordinator exited with {status}");
    assert!(stderr.contains("quern.db.lock"), "the refusal does not name the lock: {stderr}");
    let holder = c.coordinator.as_ref().map(|k| k.id()).expect("the first coordinator");
    assert!(stderr.contains(&format!("pid {holder}")), "the refusal does not name the holder ({holder}): {stderr}");

    // The first one carries on.
    assert_alive(&mut c, "a second coordinator");
    let input = c.path("lines.txt");
    write_lines(&input, &numbered(50));
    let out = c.path("out");
    let id = c.submit_job("wordcount", &input, &out, &["--reducers", "2", "--split-size", "90"]);
    let status = c.wait_job(id, Duration::from_secs(60));
    assert_eq!(status["state"], "succeeded", "{status}\n{}", c.logs());

    // Once it is gone, the state may be opened again (kill -9 leaves the lock
    // file behind, but no lock).
    if let Some(first) = c.coordinator.as_mut() {
        TestCluster::kill9(first);
    }
    c.start_coordinator();
    c.wait_for_workers(1);
    let jobs = c.json(&["jobs"]);
    assert_eq!(jobs.as_array().map(|j| j.len()), Some(1), "{jobs}");
}
