//! A throwaway PostgreSQL server for tests: Debian's `postgresql` binaries,
//! a fresh cluster in a temporary directory, listening on 127.0.0.1, stopped
//! and removed when dropped. Each test gets its own server (≈ 1.5 s to
//! start), so tests never share state and run in parallel.
//!
//! The port is chosen at random and the server started on it; if the port
//! is taken, PostgreSQL fails to bind and the next port is tried, so there
//! is no window between choosing a port and listening on it in which
//! another process could take it. As root, the server runs as the
//! `postgres` user (PostgreSQL refuses to run as root).
//!
//! A missing PostgreSQL is a test failure that says how to install it,
//! never a skip.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

/// A running test server.
#[derive(Debug)]
pub struct TestPostgres {
    bin: PathBuf,
    root: tempfile::TempDir,
    run_as_postgres: bool,
    port: u16,
}

/// The newest `/usr/lib/postgresql/*/bin`, or `$QUERN_PG_BIN`.
fn find_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("QUERN_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): `.ci/run` installs it, or \
             `apt-get install postgresql`; or set QUERN_PG_BIN to its bin directory"
        ),
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

impl TestPostgres {
    /// Starts a fresh server. Panics, saying why, if it cannot.
    pub fn start() -> TestPostgres {
        let bin = find_bin();
        let root = tempfile::Builder::new().prefix("quern-pg-").tempdir().expect("a temporary directory");
        let run_as_postgres = is_root();
        if run_as_postgres {
            let chown = Command::new("chown").arg("postgres:postgres").arg(root.path()).output();
            assert!(chown.is_ok_and(|o| o.status.success()), "chown postgres {}", root.path().display());
        }
        let mut pg = TestPostgres { bin, root, run_as_postgres, port: 0 };
        let data = pg.root.path().join("data");
        let out = pg.run("initdb", |c| {
            c.arg("-D").arg(&data).args(["-U", "quern", "-A", "trust", "-E", "UTF8", "--no-sync"]);
        });
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos()) ^ std::process::id();
        for attempt in 0..32u32 {
            let port = 20_000 + (seed.wrapping_add(attempt.wrapping_mul(7_919)) % 40_000) as u16;
            let log = pg.root.path().join("log");
            let options = format!(
                "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c max_connections=40",
                pg.root.path().display()
            );
            let out = pg.run("pg_ctl", |c| {
                c.arg("-D").arg(&data).arg("-l").arg(&log).args(["-w", "-t", "30", "start", "-o", &options]);
            });
            if out.status.success() {
                pg.port = port;
                return pg;
            }
            let server_log = std::fs::read_to_string(&log).unwrap_or_default();
            if !server_log.contains("could not bind") && !server_log.contains("Address already in use") {
                panic!("starting PostgreSQL failed: {}\n{server_log}", String::from_utf8_lossy(&out.stderr));
            }
        }
        panic!("no free port for PostgreSQL after 32 tries");
    }

    fn run(&self, tool: &str, args: impl FnOnce(&mut Command)) -> Output {
        let mut cmd = if self.run_as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
            c
        } else {
            Command::new(self.bin.join(tool))
        };
        args(&mut cmd);
        cmd.output().unwrap_or_else(|e| panic!("running {tool}: {e}"))
    }

    /// The URL of the server's `postgres` database.
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    /// The URL of database `name` on this server.
    pub fn database_url(&self, name: &str) -> String {
        format!("postgres://quern@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name`; returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        let out = self.run("psql", |c| {
            c.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "quern", "-d", "postgres", "-c"])
                .arg(format!("CREATE DATABASE \"{name}\""));
        });
        assert!(out.status.success(), "creating database {name}: {}", String::from_utf8_lossy(&out.stderr));
        self.database_url(name)
    }

    /// Where the server keeps its files (and its log, `log`).
    pub fn root(&self) -> &Path {
        self.root.path()
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if self.port != 0 {
            let data = self.root.path().join("data");
            let _ = self.run("pg_ctl", |c| {
                c.arg("-D").arg(&data).args(["-m", "immediate", "-w", "stop"]);
            });
        }
    }
}
