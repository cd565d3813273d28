//! The REST API served by a real coordinator process (`--http`), with real
//! workers: a wordcount submitted as JSON runs to the bytes of the
//! embedded run, and its tasks and counters read back.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::http::{http, multipart, request, start_with_http, wait_for_state};
use support::{BIN, TOKEN, TestCluster, embedded, gutenberg, parts};

#[test]
fn a_job_submitted_over_rest_runs_on_the_cluster() {
    let (c, api, _files) = start_with_http(2, &[], Vec::new());

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
    let (status, body) = http(&api, "GET", "/api/v1/jobs", Some(&token), None);
    assert_eq!(status, 401, "a token from before the change is refused: {body}");
    let removed = user(&["remove", "ann"], "");
    assert!(removed.status.success());
    let login = json!({"username": "ann", "password": "battery staple"});
    assert_eq!(http(&api, "POST", "/api/v1/auth/login", None, Some(&login)).0, 401, "a removed user cannot log in");
}

#[test]
fn uploaded_books_become_a_job_whose_output_downloads_and_a_deregistered_worker_leaves() {
    let (c, api, _files) = start_with_http(2, &[], Vec::new());

    // Two books, uploaded in one request; the embedded run over the same
    // two is the expected output.
    let books: Vec<std::path::PathBuf> = {
        let mut all: Vec<_> =
            std::fs::read_dir(gutenberg()).expect("books").map(|e| e.expect("entry").path()).collect();
        all.sort();
        all.into_iter().take(2).collect()
    };
    let local = c.path("local");
    let both = c.path("both");
    std::fs::create_dir_all(&both).expect("dir");
    for book in &books {
        std::fs::copy(book, both.join(book.file_name().expect("name"))).expect("copy");
    }
    embedded("wordcount", &both, &local, &["--reducers", "2"]);
    let (content_type, body) = multipart(&books.iter().map(|b| b.as_path()).collect::<Vec<_>>());
    let (status, _, uploaded) = request(&api, "POST", "/api/v1/uploads", Some(TOKEN), Some((&content_type, &body)));
    let uploaded: Value = serde_json::from_slice(&uploaded).expect("JSON");
    assert_eq!(status, 201, "{uploaded}");
    let inputs: Vec<&str> =
        uploaded["files"].as_array().expect("files").iter().filter_map(|f| f["location"].as_str()).collect();
    assert_eq!(inputs.len(), 2, "{uploaded}");

    let spec = json!({"app": "wordcount", "inputs": inputs, "output": "counts", "reducers": 2});
    let (status, job) = http(&api, "POST", "/api/v1/jobs", Some(TOKEN), Some(&spec));
    assert_eq!(status, 201, "{job}\n{}", c.logs());
    let id = job["id"].as_u64().expect("id");
    let job = wait_for_state(&api, id, &c, &["succeeded", "failed", "killed"]);
    assert_eq!(job["state"], "succeeded", "{job}\n{}", c.logs());

    let (status, listed) = http(&api, "GET", &format!("/api/v1/jobs/{id}/output"), Some(TOKEN), None);
    assert_eq!(status, 200, "{listed}");
    let mut downloaded = Vec::new();
    for file in listed["files"].as_array().expect("files") {
        let name = file["name"].as_str().expect("name");
        let (status, head, bytes) =
            request(&api, "GET", &format!("/api/v1/jobs/{id}/output/{name}"), Some(TOKEN), None);
        assert_eq!(status, 200, "{head}");
        assert!(head.contains(&format!("filename=\"{name}\"")), "{head}");
        assert_eq!(bytes.len() as u64, file["bytes"].as_u64().expect("bytes"));
        downloaded.push((name.to_owned(), bytes));
    }
    assert_eq!(downloaded, parts(&local), "the downloaded output differs from the embedded run");
    let (status, missing) = http(&api, "GET", &format!("/api/v1/jobs/{id}/output/_SUCCESS"), Some(TOKEN), None);
    assert_eq!(status, 404, "only listed files download: {missing}");

    // A deregistered worker is refused at its next contact and exits.
    let (_, workers) = http(&api, "GET", "/api/v1/workers", Some(TOKEN), None);
    let victim = workers[0]["id"].as_str().expect("id").to_owned();
    let (status, worker) = http(&api, "POST", &format!("/api/v1/workers/{victim}/deregister"), Some(TOKEN), None);
    assert_eq!((status, worker["state"].as_str()), (200, Some("deregistered")), "{worker}");
    let mut c = c;
    let started = Instant::now();
    let exited = loop {
        let statuses: Vec<_> = c.workers.iter_mut().filter_map(|w| w.try_wait().expect("wait")).collect();
        if let Some(status) = statuses.first() {
            break *status;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no worker exited\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!exited.success(), "a deregistered worker exits with an error");
    assert!(c.logs().contains("deregistered by an admin"), "{}", c.logs());
}

#[test]
fn quern_login_gives_the_cli_a_user_s_token_and_rights() {
    let mut c = TestCluster::start(1, &[]);
    let config = c.path("config");
    let data_dir = c.path("coordinator");
    let quern_in = |c: &TestCluster, args: &[&str], stdin: &str| {
        let mut child = c
            .cli()
            .args(args)
            .env_remove("QUERN_TOKEN")
            .env("XDG_CONFIG_HOME", &config)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("quern");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("stdin");
        child.wait_with_output().expect("quern")
    };
    macro_rules! quern {
        ($args:expr, $stdin:expr) => {
            quern_in(&c, $args, $stdin)
        };
    }
    let text = |out: &std::process::Output| {
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    let data = data_dir.to_str().expect("utf-8");
    let added =
        quern!(&["user", "add", "ann", "--role", "user", "--password-stdin", "--data-dir", data], "ann's secret\n");
    assert!(added.status.success(), "{}", text(&added));

    // Without a token or a login, a client command says what to do.
    let refused = quern!(&["jobs"], "");
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("run quern login"), "{}", text(&refused));
    let wrong = quern!(&["login", "--user", "ann", "--password-stdin"], "not it\n");
    assert_eq!(wrong.status.code(), Some(2), "{}", text(&wrong));
    assert!(text(&wrong).contains("wrong username or password"), "{}", text(&wrong));
    let login = quern!(&["login", "--user", "ann", "--password-stdin"], "ann's secret\n");
    assert!(login.status.success(), "{}", text(&login));
    let saved = config.join("quern/login.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&saved).expect("saved login").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the token is readable by its owner only");
    }

    // The cluster token's job is not ann's to see or kill; hers is.
    let input = c.path("in.txt");
    std::fs::write(&input, "a b a\n").expect("input");
    let theirs = c.submit_job("wordcount", &input, &c.path("theirs"), &[]);
    assert_eq!(c.wait_job(theirs, Duration::from_secs(60))["state"], "succeeded");
    let (input_arg, hers) = (input.to_str().expect("utf-8"), c.path("hers"));
    let hers = hers.to_str().expect("utf-8");
    let submitted = quern!(&["submit", "--app", "wordcount", "--input", input_arg, "--output", hers, "--wait"], "");
    assert!(submitted.status.success(), "{}\n{}", text(&submitted), c.logs());
    let listed = quern!(&["jobs", "--json"], "");
    let jobs: Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    let jobs = jobs.as_array().expect("jobs");
    assert_eq!(jobs.len(), 1, "ann sees her job only: {jobs:?}");
    assert_eq!((jobs[0]["owner"].as_str(), jobs[0]["state"].as_str()), (Some("ann"), Some("succeeded")));
    let kill = quern!(&["kill", &theirs.to_string()], "");
    assert_ne!(kill.status.code(), Some(0), "{}", text(&kill));
    assert!(text(&kill).contains(&format!("no job {theirs}")), "{}", text(&kill));
    let elsewhere = quern!(&["jobs", "--coordinator", "http://127.0.0.1:1"], "");
    assert_eq!(elsewhere.status.code(), Some(2), "{}", text(&elsewhere));
    assert!(text(&elsewhere).contains("you are logged in to"), "{}", text(&elsewhere));

    // A worker cannot run on a user's token.
    let token = serde_json::from_str::<Value>(&std::fs::read_to_string(&saved).expect("login")).expect("JSON")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let worker = c.add_worker(&["--token", &token]);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = c.workers[worker].try_wait().expect("wait") {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the worker kept running\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "{}", c.logs());
    assert!(c.logs().contains("worker calls take the cluster token"), "{}", c.logs());

    let logout = quern!(&["logout"], "");
    assert!(logout.status.success() && !saved.exists(), "{}", text(&logout));
    assert_eq!(quern!(&["jobs"], "").status.code(), Some(2));
}

#[test]
fn a_webassembly_module_uploaded_over_rest_runs_as_a_jobs_code() {
    let (c, api, _files) = start_with_http(1, &[], Vec::new());
    let module = std::fs::read(support::wasm_module("wasm-wordcount")).expect("the module");
    let (status, head, body) =
        request(&api, "POST", "/api/v1/code", Some(TOKEN), Some(("application/octet-stream", &module)));
    let stored: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(status, 201, "{head}\n{stored}");
    let hash = quern_core::CodeHash::of(&module).to_string();
    assert_eq!((stored["sha256"].as_str(), stored["size"].as_u64()), (Some(hash.as_str()), Some(module.len() as u64)));

    let output = c.path("out");
    let mut spec = json!({
        "app": "wasm",
        "params": {"mapper": "wc.wasm map", "combiner": "wc.wasm combine", "reducer": "wc.wasm reduce"},
        "code": {"wc.wasm": hash},
        "inputs": [gutenberg()],
        "output": output,
        "reducers": 2,
    });
    let (status, job) = http(&api, "POST", "/api/v1/jobs", Some(TOKEN), Some(&spec));
    assert_eq!(status, 201, "{job}\n{}", c.logs());
    assert_eq!(job["code"]["wc.wasm"], hash.as_str(), "{job}");
    let job = wait_for_state(&api, job["id"].as_u64().expect("id"), &c, &["succeeded", "failed", "killed"]);
    assert_eq!(job["state"], "succeeded", "{job}\n{}", c.logs());
    let local = c.path("local");
    embedded("wordcount", &gutenberg(), &local, &["--reducers", "2"]);
    assert!(parts(&output) == parts(&local), "the module's output differs from the native wordcount");

    // A job naming code that is not stored is refused, naming it.
    spec["code"] = json!({"wc.wasm": quern_core::CodeHash::of(b"never uploaded").to_string()});
    spec["output"] = json!(c.path("other"));
    let (status, refused) = http(&api, "POST", "/api/v1/jobs", Some(TOKEN), Some(&spec));
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["error"]["message"].as_str().is_some_and(|m| m.contains("wc.wasm") && m.contains("upload it")),
        "{refused}"
    );
}
