//! The container image, built as the Dockerfile's host path builds it (a
//! static musl binary compiled on this machine, then `podman build
//! --build-arg QUERN_BINARY=host`), runs a cluster: a coordinator and two
//! workers as containers (`--network=host`) count the words of the books,
//! submitted from the host's CLI, and the output equals an embedded run's.
//! Prints the image's size.
//!
//! Ignored by default: it needs podman (Debian's, with runc) and a release
//! build for musl (about 15 minutes on 2 cores), more than CI's budget.
//! Run it with:
//!
//! ```sh
//! apt-get install podman runc musl-tools && rustup target add x86_64-unknown-linux-musl
//! cargo nextest run -p quern-testkit --test image --run-ignored only --no-capture
//! ```

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

const IMAGE: &str = "localhost/quern:image-test";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository")
}

/// podman as this machine needs it: runc, cgroupfs, no default ulimits.
struct Podman {
    conf: PathBuf,
}

impl Podman {
    fn new(dir: &Path) -> Podman {
        let conf = dir.join("containers.conf");
        std::fs::write(&conf, "[containers]\ndefault_ulimits = []\n").expect("containers.conf");
        Podman { conf }
    }

    fn command(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", &self.conf).args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"]);
        c
    }
}

/// Containers removed when the test ends, however it ends.
struct Containers<'a> {
    podman: &'a Podman,
    names: Vec<String>,
}

impl Drop for Containers<'_> {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = self.podman.command().args(["rm", "-f", name]).output();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("its address").port()
}

#[test]
#[ignore = "needs podman and a release build for musl (~15 min): run with --run-ignored only"]
fn the_image_runs_a_coordinator_and_two_workers_that_count_words() {
    let repo = repo();
    let binary = repo.join("target/x86_64-unknown-linux-musl/release/quern");
    run_ok(
        "building the static binary",
        Command::new(env!("CARGO")).current_dir(&repo).args([
            "build",
            "--release",
            "--locked",
            "-p",
            "quern",
            "--features",
            "kubernetes",
            "--target",
            "x86_64-unknown-linux-musl",
        ]),
    );
    assert!(binary.is_file(), "{}", binary.display());
    // The release profile keeps line tables (for profiling); the image
    // does not need them: 280 MiB of the binary's 293.
    run_ok("strip", Command::new("strip").arg("--strip-debug").arg(&binary));

    let dir = tempfile::tempdir().expect("tempdir");
    let podman = Podman::new(dir.path());
    run_ok(
        "podman build",
        podman.command().current_dir(&repo).args(["build", "--build-arg", "QUERN_BINARY=host", "-t", IMAGE, "."]),
    );
    let size =
        run_ok("podman image inspect", podman.command().args(["image", "inspect", IMAGE, "--format", "{{.Size}}"]));
    let bytes: u64 = String::from_utf8_lossy(&size.stdout).trim().parse().expect("a size");
    println!("image {IMAGE}: {:.1} MiB ({bytes} bytes)", bytes as f64 / (1 << 20) as f64);
    // `scratch` has no libc: this runs only if the binary is static.
    let help = run_ok("the image's entrypoint", podman.command().args(["run", "--rm", IMAGE, "--version"]));
    assert!(String::from_utf8_lossy(&help.stdout).contains(env!("CARGO_PKG_VERSION")));

    // A data directory the containers' user (65532) writes, with the books.
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("books")).expect("data");
    for entry in std::fs::read_dir(gutenberg()).expect("the books") {
        let path = entry.expect("a book").path();
        std::fs::copy(&path, data.join("books").join(path.file_name().expect("a name"))).expect("copy");
    }
    run_ok("chmod", Command::new("chmod").args(["-R", "a+rwX"]).arg(&data));

    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let volume = format!("{}:/data", data.display());
    let suffix = std::process::id();
    let mut containers = Containers { podman: &podman, names: Vec::new() };
    let mut start = |name: &str, args: &[&str]| {
        let name = format!("quern-image-test-{name}-{suffix}");
        run_ok(
            &format!("starting {name}"),
            podman
                .command()
                .args(["run", "-d", "--network=host", "--tmpfs", "/tmp", "-e", &format!("QUERN_TOKEN={TOKEN}")])
                .args(["-v", &volume, "--name", &name, IMAGE])
                .args(args),
        );
        containers.names.push(name);
    };
    start("coordinator", &["coordinator", "--listen", &format!("127.0.0.1:{port}"), "--data-dir", "/data/coordinator"]);
    for w in ["w1", "w2"] {
        start(w, &["worker", "--coordinator", &url, "--work-dir", &format!("/data/{w}"), "--slots", "2", "--id", w]);
    }

    let cli = || {
        let mut c = Command::new(BIN);
        c.env("QUERN_COORDINATOR", &url).env("QUERN_TOKEN", TOKEN);
        c
    };
    let started = Instant::now();
    loop {
        let out = cli().args(["workers", "--json"]).output().expect("the CLI");
        let alive = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().map(|a| a.iter().filter(|w| w["state"] == "alive").count()))
            .unwrap_or(0);
        if alive == 2 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the workers did not register");
        std::thread::sleep(Duration::from_millis(200));
    }
    run_ok(
        "submitting wordcount",
        cli()
            .args([
                "submit",
                "--app",
                "wordcount",
                "--input",
                "/data/books",
                "--output",
                "/data/out",
                "--reducers",
                "3",
            ])
            .arg("--wait"),
    );
    let expected = dir.path().join("expected");
    embedded("wordcount", &gutenberg(), &expected, &["--reducers", "3"]);
    assert_eq!(parts(&data.join("out")), parts(&expected), "the containers count what the embedded run counts");
}
