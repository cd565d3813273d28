//! The in-process harness of the cluster tests: a coordinator and workers of
//! the `quern-testkit` binary on 127.0.0.1, the CLI pointed at them, and
//! helpers to read outputs. Each test binary uses part of it.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod http;
pub mod kube;

pub const BIN: &str = env!("CARGO_BIN_EXE_quern-testkit");
pub const TOKEN: &str = "test-token";

pub fn gutenberg() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/gutenberg")
}

/// A port on 127.0.0.1 where nothing listens, for as long as this value
/// lives: a socket bound to a port the OS chose, never listening, so
/// connections to it are refused and no other process can take the port.
pub struct ClosedPort(tokio::net::TcpSocket);

impl ClosedPort {
    pub fn new() -> ClosedPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket.bind("127.0.0.1:0".parse().expect("address")).expect("bind a closed port");
        ClosedPort(socket)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.0.local_addr().expect("the closed port's address"))
    }
}

/// A coordinator and workers, killed when dropped.
pub struct TestCluster {
    pub dir: tempfile::TempDir,
    /// The coordinator's port: 0 until it first listens (on a port the OS
    /// chose), then the port every restart listens on again, since workers
    /// and clients know it.
    pub port: u16,
    pub coordinator: Option<Child>,
    pub coordinator_args: Vec<String>,
    pub workers: Vec<Child>,
    /// Variables every process of the cluster (and the CLI) gets, like an
    /// S3 server's `AWS_*`.
    pub env: Vec<(String, String)>,
}

impl TestCluster {
    pub fn start(workers: usize, coordinator_args: &[&str]) -> TestCluster {
        TestCluster::start_with_env(workers, coordinator_args, Vec::new())
    }

    /// A cluster whose processes (and CLI) all get `env`.
    pub fn start_with_env(workers: usize, coordinator_args: &[&str], env: Vec<(String, String)>) -> TestCluster {
        let mut c = TestCluster {
            dir: tempfile::tempdir().expect("tempdir"),
            port: 0,
            coordinator: None,
            coordinator_args: coordinator_args.iter().map(|s| s.to_string()).collect(),
            workers: Vec::new(),
            env,
        };
        c.start_coordinator();
        for _ in 0..workers {
            c.add_worker(&[]);
        }
        c.wait_for_workers(workers);
        c
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn log(&self, name: &str) -> Stdio {
        Stdio::from(fs::OpenOptions::new().create(true).append(true).open(self.path(name)).expect("log file"))
    }

    /// Starts the coordinator and waits until it listens. The first one
    /// listens on a port the OS picks (`--listen 127.0.0.1:0`) and says
    /// which in its `--address-file`; a restart listens on that same port
    /// again, which is free since the old process is dead, unless another
    /// process took it meanwhile: then this fails as what it is, a failure
    /// of the test's infrastructure.
    pub fn start_coordinator(&mut self) {
        let address_file = self.path("coordinator.address");
        match fs::remove_file(&address_file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("removing {}: {e}", address_file.display()),
            _ => {}
        }
        let child = Command::new(BIN)
            .args(["coordinator", "--listen", &format!("127.0.0.1:{}", self.port), "--address-file"])
            .arg(&address_file)
            .arg("--data-dir")
            .arg(self.path("coordinator"))
            .args(["--worker-timeout", "2s", "--heartbeat", "200ms"])
            .args(&self.coordinator_args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("QUERN_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            .stdout(self.log("coordinator.log"))
            .stderr(self.log("coordinator.log"))
            .spawn()
            .expect("start the coordinator");
        self.coordinator = Some(child);
        let address = self.wait_for_address(&address_file);
        assert_eq!(address.ip(), std::net::Ipv4Addr::LOCALHOST, "{}: {address}", address_file.display());
        assert_ne!(address.port(), 0, "{}: {address}", address_file.display());
        if self.port == 0 {
            self.port = address.port();
        }
        assert_eq!(address.port(), self.port, "the restarted coordinator listens elsewhere");
    }

    /// Waits for the coordinator's `--address-file`, failing if it exits
    /// first.
    fn wait_for_address(&mut self, path: &Path) -> std::net::SocketAddr {
        let started = Instant::now();
        loop {
            match fs::read_to_string(path) {
                Ok(text) => {
                    return text
                        .strip_suffix('\n')
                        .and_then(|a| a.parse().ok())
                        .unwrap_or_else(|| panic!("{} holds {text:?}, not an address and a newline", path.display()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("reading {}: {e}", path.display()),
            }
            let exited = self.coordinator.as_mut().and_then(|c| c.try_wait().expect("try_wait"));
            if let Some(status) = exited {
                let log = fs::read_to_string(self.path("coordinator.log")).unwrap_or_default();
                if self.port != 0 && log.contains("Address already in use") {
                    panic!(
                        "test infrastructure failure: port {} was taken by another process while the coordinator \
                         was down, so it cannot restart on the address its workers and clients know\n{}",
                        self.port,
                        self.logs()
                    );
                }
                panic!("the coordinator exited ({status}) before listening\n{}", self.logs());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the coordinator did not listen in 30s\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn add_worker(&mut self, extra: &[&str]) -> usize {
        let dir = format!("worker-{}", self.workers.len());
        self.add_worker_in(&dir, extra)
    }

    /// Starts a worker on the work directory `dir` (under the test's
    /// directory), which may be one an earlier worker used.
    pub fn add_worker_in(&mut self, dir: &str, extra: &[&str]) -> usize {
        let work_dir = self.path(dir);
        self.spawn_worker(Command::new(BIN), work_dir, extra)
    }

    /// Starts a worker whose work directory is a tmpfs of `size` (like
    /// `64k`), mounted in a mount namespace of its own (`unshare`): a small
    /// disk that fills up, which nothing outside the worker sees and which
    /// goes away with it.
    pub fn add_worker_on_small_disk(&mut self, size: &str, extra: &[&str]) -> usize {
        let work_dir = self.path(&format!("worker-{}", self.workers.len()));
        fs::create_dir_all(&work_dir).expect("work dir");
        let mut cmd = Command::new("unshare");
        cmd.args(["--user", "--map-root-user", "--mount", "sh", "-c"])
            .arg(r#"mount -t tmpfs -o size="$1" tmpfs "$2" && shift 2 && exec "$@""#)
            .args(["sh", size])
            .arg(&work_dir)
            .arg(BIN);
        self.spawn_worker(cmd, work_dir, extra)
    }

    fn spawn_worker(&mut self, mut cmd: Command, work_dir: PathBuf, extra: &[&str]) -> usize {
        let n = self.workers.len();
        let child = cmd
            .args(["worker", "--slots", "2", "--work-dir"])
            .arg(work_dir)
            .args(if extra.is_empty() { &["--coordinator-timeout", "20s"][..] } else { extra })
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("QUERN_COORDINATOR", self.url())
            .env("QUERN_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            .stdout(self.log(&format!("worker-{n}.log")))
            .stderr(self.log(&format!("worker-{n}.log")))
            .spawn()
            .expect("start a worker");
        self.workers.push(child);
        n
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The CLI, pointed at this cluster.
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.env("QUERN_COORDINATOR", self.url()).env("QUERN_TOKEN", TOKEN).env_remove("RUST_LOG");
        cmd
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.cli().args(args).arg("--json").output().expect("run the CLI");
        assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("JSON")
    }

    /// Like `json`, but `None` while the coordinator cannot be reached (it
    /// is restarting).
    pub fn try_json(&self, args: &[&str]) -> Option<Value> {
        let out = self.cli().args(args).arg("--json").output().expect("run the CLI");
        out.status.success().then(|| serde_json::from_slice(&out.stdout).expect("JSON"))
    }

    pub fn wait_for_workers(&self, n: usize) {
        let started = Instant::now();
        loop {
            let out = self.cli().args(["workers", "--json"]).output().expect("run the CLI");
            if out.status.success() {
                let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
                let alive = v.as_array().map_or(0, |a| a.iter().filter(|w| w["state"] == "alive").count());
                if alive >= n {
                    return;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{n} workers never registered:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Submits `app` over `input` into `output`, with more arguments.
    pub fn submit_job(&self, app: &str, input: &Path, output: &Path, extra: &[&str]) -> u64 {
        let (input, output) = (input.to_str().expect("utf-8 path"), output.to_str().expect("utf-8 path"));
        let mut args = vec!["--app", app, "--input", input, "--output", output];
        args.extend_from_slice(extra);
        self.submit(&args)
    }

    pub fn submit(&self, args: &[&str]) -> u64 {
        let out = self.cli().arg("submit").args(args).output().expect("submit");
        assert!(out.status.success(), "submit failed: {}\n{}", String::from_utf8_lossy(&out.stderr), self.logs());
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("a job id")
    }

    pub fn wait_job(&self, id: u64, timeout: Duration) -> Value {
        let started = Instant::now();
        loop {
            let status = self.try_json(&["status", &id.to_string()]).unwrap_or_default();
            if matches!(status["state"].as_str(), Some("succeeded" | "failed" | "killed")) {
                return status;
            }
            assert!(started.elapsed() < timeout, "job {id} did not end: {status}\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn wait_until(&self, what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
        let started = Instant::now();
        while !done() {
            assert!(started.elapsed() < timeout, "timed out waiting for {what}\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Submits `lines` numbered lines to the `slow` app (15 ms a record,
    /// splits of 20 lines, 2 reducers) and waits until `maps` maps have
    /// committed: a job under way, to break things in.
    pub fn slow_job_under_way(&self, lines: usize, maps: u64) -> (u64, PathBuf) {
        let input = self.path("lines.txt");
        write_lines(&input, &numbered(lines));
        let out = self.path("out");
        let id = self.submit_job("slow", &input, &out, &["--param", "ms=15", "--split-size", "200", "--reducers", "2"]);
        self.wait_until("some maps to commit", Duration::from_secs(60), || {
            self.try_json(&["status", &id.to_string()])
                .is_some_and(|s| s["maps"]["succeeded"].as_u64().unwrap_or(0) >= maps)
        });
        (id, out)
    }

    pub fn attempts(&self, id: u64) -> Vec<Value> {
        self.json(&["logs", &id.to_string()]).as_array().cloned().unwrap_or_default()
    }

    pub fn logs(&self) -> String {
        let mut out = String::new();
        let mut names: Vec<_> =
            fs::read_dir(self.dir.path()).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        names.sort();
        for p in names.into_iter().filter(|p| p.extension().is_some_and(|e| e == "log")) {
            let text = fs::read_to_string(&p).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            out.push_str(&format!("--- {} ---\n", p.display()));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    pub fn kill9(child: &mut Child) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for w in &mut self.workers {
            TestCluster::kill9(w);
        }
        if let Some(c) = &mut self.coordinator {
            TestCluster::kill9(c);
        }
    }
}

/// Every part file of an output directory, by name.
pub fn parts(dir: &Path) -> Vec<(String, Vec<u8>)> {
    assert!(dir.join("_SUCCESS").exists(), "{} has no _SUCCESS", dir.display());
    let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .expect("output dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("part-"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), fs::read(e.path()).expect("read")))
        .collect();
    v.sort();
    v
}

/// `n` numbered lines, as the slow tests' input.
pub fn numbered(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("line {i:04}")).collect()
}

/// Writes `lines` to `path`, one per line.
pub fn write_lines(path: &Path, lines: &[String]) {
    fs::write(path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).expect("write input");
}

/// Every line of every part file of `out`, sorted.
pub fn sorted_lines(out: &Path) -> Vec<String> {
    let mut lines: Vec<String> = parts(out)
        .iter()
        .flat_map(|(_, b)| String::from_utf8_lossy(b).lines().map(String::from).collect::<Vec<_>>())
        .collect();
    lines.sort();
    lines
}

pub fn embedded(app: &str, input: &Path, output: &Path, extra: &[&str]) {
    let status = Command::new(BIN)
        .args(["run", "--app", app, "--quiet", "--input"])
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(extra)
        .status()
        .expect("embedded run");
    assert!(status.success());
}

pub fn attempt_numbers(attempts: &[Value]) -> Vec<u64> {
    attempts
        .iter()
        .map(|a| a["attempt"].as_str().and_then(|s| s.rsplit('#').next()).and_then(|n| n.parse().ok()).unwrap_or(0))
        .collect()
}

/// The engine counters of an embedded run of `app` (from `--stats-json`):
/// what a job's counters are when nothing fails.
pub fn embedded_counters(app: &str, input: &Path, extra: &[&str]) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let stats = dir.path().join("stats.json");
    embedded(app, input, &dir.path().join("out"), &[extra, &["--stats-json", stats.to_str().expect("utf-8")]].concat());
    let v: Value = serde_json::from_slice(&fs::read(&stats).expect("stats")).expect("JSON");
    v["counters"].clone()
}

/// Asserts that a cluster job's counters equal those of the failure-free
/// embedded run: committed work counted once, however often it ran.
pub fn assert_counters_match(status: &Value, expected: &Value) {
    let got = &status["counters"]["engine"];
    for name in [
        "input_bytes",
        "input_records",
        "map_output_records",
        "map_output_bytes",
        "reduce_input_groups",
        "reduce_input_records",
        "output_records",
        "output_bytes",
    ] {
        assert_eq!(got[name], expected[name], "counter {name}: cluster {got}, embedded {expected}");
    }
}

/// The `part-*` objects under `prefix` in `bucket` as (name below the
/// prefix, bytes), after checking that they and an empty `_SUCCESS` are all
/// there is: what a committed S3 output must be.
pub fn s3_parts(bucket: &quern_testkit::s3_server::Bucket<'_>, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let keys = bucket.keys(prefix);
    let names: Vec<String> = keys.iter().map(|k| k[prefix.len() + 1..].to_owned()).collect();
    assert!(names.contains(&"_SUCCESS".to_owned()), "no _SUCCESS under {prefix}: {names:?}");
    let others: Vec<&String> = names.iter().filter(|n| *n != "_SUCCESS" && !n.starts_with("part-")).collect();
    assert!(others.is_empty(), "more than the parts and _SUCCESS under {prefix}: {others:?}");
    assert_eq!(bucket.get(&format!("{prefix}/_SUCCESS")), b"");
    keys.iter().zip(names).filter(|(_, n)| n.starts_with("part-")).map(|(k, n)| (n, bucket.get(k))).collect()
}

/// Builds the workspace's `package` for `wasm32-wasip1` (release; into a
/// target directory of the tests' own, so that tests running at once wait
/// for one build) and returns its module.
pub fn wasm_module(package: &str) -> PathBuf {
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm-guests");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--locked", "--release", "--target", "wasm32-wasip1", "-p", package])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo");
    assert!(
        status.success(),
        "building {package} for wasm32-wasip1 failed (is the target installed? `rustup target add wasm32-wasip1`)"
    );
    let module = target_dir.join("wasm32-wasip1/release").join(format!("{package}.wasm"));
    assert!(module.is_file(), "{} was not built", module.display());
    module
}

/// Writes the WebAssembly module given as text (WAT) to `path`.
pub fn write_module(path: &Path, text: &str) {
    fs::write(path, wat::parse_str(text).expect("valid module text")).expect("write module");
}

/// Runs `command`, failing the test with its output unless it succeeds.
pub fn run_ok(what: &str, command: &mut Command) -> std::process::Output {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
