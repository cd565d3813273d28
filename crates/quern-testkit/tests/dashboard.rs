//! The dashboard end to end, in headless Chromium driven by Playwright
//! (`e2e/dashboard.mjs`; Debian's `chromium` and npm's `playwright-core`,
//! which `.ci/run` installs): against a coordinator process and two
//! workers, an admin logs in, uploads two books and submits a wordcount,
//! watches the task grid reach "succeeded" without reloading, opens a
//! task's log, downloads an output file (compared here with the embedded
//! run's), sees the workers, and kills a second job. Every page, in the
//! light and the dark scheme, is checked by axe-core against WCAG 2.1 A and
//! AA (a serious or critical problem fails the test), and a screenshot of
//! each is kept under the target directory's `tmp/dashboard-e2e/`.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::http::start_with_http;
use support::{BIN, embedded, gutenberg};

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e")
}

/// Chromium and the script's two packages, or how to get them.
fn browser() -> PathBuf {
    let chromium = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        chromium.is_file(),
        "the dashboard test needs Chromium at {} (Debian: apt-get install chromium; or set CHROMIUM): `.ci/run` \
         installs it",
        chromium.display()
    );
    let installed = ["playwright-core", "axe-core"]
        .iter()
        .all(|p| e2e_dir().join("node_modules").join(p).join("package.json").is_file());
    assert!(
        installed,
        "the dashboard test needs playwright-core and axe-core: run `npm ci` in {} (`.ci/run` does)",
        e2e_dir().display()
    );
    chromium
}

#[test]
fn an_admin_uploads_submits_watches_downloads_and_kills_in_a_real_browser() {
    let chromium = browser();
    let (c, api, files) = start_with_http(2, &[], Vec::new());

    // The first admin, added on the coordinator's host.
    let password = "a long admin password";
    let mut add = Command::new(BIN)
        .args(["user", "add", "admin", "--role", "admin", "--password-stdin", "--data-dir"])
        .arg(c.path("coordinator"))
        .env_remove("QUERN_STATE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("quern user add");
    add.stdin.take().expect("stdin").write_all(format!("{password}\n").as_bytes()).expect("password");
    let added = add.wait_with_output().expect("quern user add");
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));

    let mut books: Vec<PathBuf> =
        std::fs::read_dir(gutenberg()).expect("books").map(|e| e.expect("entry").path()).collect();
    books.sort();
    books.truncate(2);
    let books_arg = books.iter().map(|b| b.to_str().expect("utf-8")).collect::<Vec<_>>().join(":");
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-e2e");
    let _ = std::fs::remove_dir_all(&shots);
    let download = files.path().join("downloaded/part-r-00000");

    let out = Command::new("node")
        .arg("dashboard.mjs")
        .current_dir(e2e_dir())
        .env("QUERN_URL", format!("http://{api}"))
        .env("QUERN_USER", "admin")
        .env("QUERN_PASSWORD", password)
        .env("QUERN_BOOKS", &books_arg)
        .env("QUERN_SCREENSHOTS", &shots)
        .env("QUERN_DOWNLOAD", &download)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("node (Debian: apt-get install nodejs)");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the dashboard e2e failed:\n{report}\nscreenshots in {}\n{}",
        shots.display(),
        c.logs()
    );
    println!("{report}\nscreenshots in {}", shots.display());

    // The file the browser downloaded is the embedded run's over the same
    // books, with as many reducers as the job had.
    let jobs = c.json(&["jobs"]);
    let wordcount = jobs
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["app"] == "wordcount"))
        .unwrap_or_else(|| panic!("no wordcount job: {jobs}"));
    assert_eq!(wordcount["state"], "succeeded", "{wordcount}");
    assert_eq!(wordcount["owner"], "admin", "{wordcount}");
    let reducers = wordcount["reduces"]["total"].as_u64().expect("reducers").to_string();
    let both = c.path("books");
    std::fs::create_dir_all(&both).expect("dir");
    for book in &books {
        std::fs::copy(book, both.join(book.file_name().expect("name"))).expect("copy");
    }
    let local = c.path("local");
    embedded("wordcount", &both, &local, &["--reducers", &reducers]);
    let expected = std::fs::read(local.join("part-r-00000")).expect("embedded output");
    assert_eq!(std::fs::read(&download).expect("downloaded"), expected, "the downloaded file differs");
    let slow = jobs.as_array().and_then(|jobs| jobs.iter().find(|j| j["app"] == "slow")).expect("the slow job");
    assert_eq!(slow["state"], "killed", "{slow}");
    for shot in ["01-login.png", "02-jobs.png", "03-submit.png", "04-job.png", "05-task-log.png", "06-workers.png"] {
        assert!(shots.join(shot).is_file(), "no screenshot {shot} in {}", shots.display());
    }
}
