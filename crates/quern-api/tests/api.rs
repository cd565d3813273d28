//! The REST API over a real coordinator (its application layer on an
//! in-memory SQLite store), called without a socket: tokens, jobs from
//! submission to counters and logs, errors as JSON naming what is wrong,
//! the event stream and the OpenAPI document.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use quern_api::{Access, FileArea, router};
use quern_coordinator::access::hash_password;
use quern_coordinator::cluster::Outcome;
use quern_coordinator::state::Role;
use quern_coordinator::store::StoredUser;
use quern_coordinator::{CoordinatorHandle, PlanAnswer, Policy, Registration};
use quern_core::{
    AppInfo, Compression, Counters, CutPoints, InputFile, InputSplit, JobId, JobPlan, JobSpec, ParamSpec, Partitioner,
    PlannedOutput,
};
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "s3cret";
const KEY: &[u8] = b"a test signing key of 32 bytes..";

struct Api {
    handle: CoordinatorHandle,
    router: Router,
    dir: tempfile::TempDir,
}

impl Api {
    async fn start() -> Api {
        let store = quern_coordinator::store::open("sqlite::memory:").await.expect("store");
        let policy = Policy::with_timeouts(60_000, 60_000, false);
        let handle = CoordinatorHandle::with_store(store, quern_storage::Storage::default(), policy, 200)
            .await
            .expect("coordinator");
        let registration = Registration {
            worker_id: "w1".into(),
            host: "h".into(),
            shuffle_address: "http://127.0.0.1:1".into(),
            slots: 2,
            apps: vec![AppInfo {
                name: "wordcount".into(),
                about: "counts words".into(),
                params: vec![ParamSpec::optional("min", "the least count shown")],
            }],
            version: "t".into(),
            held_jobs: vec![],
        };
        handle.register(registration).await.expect("register");
        let access = Access::new(TOKEN, KEY, Duration::from_secs(1800)).expect("token");
        let dir = tempfile::tempdir().expect("tempdir");
        let files = FileArea::new(&dir.path().join("files").display().to_string(), dir.path().join("scratch"), 1000)
            .expect("file area");
        let router = router(handle.clone(), std::sync::Arc::new(access), files);
        Api { handle, router, dir }
    }

    /// Uploads `files` (name, bytes) as multipart/form-data parts named
    /// `part`.
    async fn upload(&self, token: Option<&str>, part: &str, files: &[(&str, &[u8])]) -> (StatusCode, Value) {
        let boundary = "quern-test-boundary";
        let mut body = Vec::new();
        for (name, bytes) in files {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{part}\"; filename=\"{name}\"\r\n\
                     Content-Type: text/plain\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let mut request = Request::post("/api/v1/uploads")
            .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"));
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response =
            self.router.clone().oneshot(request.body(Body::from(body)).expect("request")).await.expect("answer");
        let status = response.status();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn call(&self, method: &str, uri: &str, token: Option<&str>, body: Option<&str>) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned()))).expect("request");
        let response = self.router.clone().oneshot(request).await.expect("answer");
        let status = response.status();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("a JSON answer") };
        (status, value)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call("GET", uri, Some(TOKEN), None).await
    }

    async fn add_user(&self, name: &str, role: Role, password: &str) {
        let hash = hash_password(password).expect("hash");
        let user = StoredUser { name: name.into(), role, password_hash: hash, created_at_ms: 0 };
        self.handle.put_user(&user).await.expect("user");
    }

    async fn login(&self, name: &str, password: &str) -> (StatusCode, Value) {
        let body = json!({"username": name, "password": password}).to_string();
        self.call("POST", "/api/v1/auth/login", None, Some(&body)).await
    }

    /// Submits `body` over HTTP while playing worker w1, which plans it
    /// with `maps` one-byte splits and one reducer, partitioned as the spec
    /// asks (hash when it does not say).
    async fn submit(&self, body: Value, maps: u64) -> (StatusCode, Value) {
        self.submit_as(TOKEN, body, maps).await
    }

    async fn submit_as(&self, token: &str, body: Value, maps: u64) -> (StatusCode, Value) {
        let submission = {
            let (router, body, token) = (self.router.clone(), body.to_string(), token.to_owned());
            tokio::spawn(async move {
                let request = Request::post("/api/v1/jobs")
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body))
                    .expect("request");
                router.oneshot(request).await.expect("answer")
            })
        };
        let file = InputFile { location: "in".into(), name: "in".into(), len: maps, compression: Compression::None };
        let plan = JobPlan {
            splits: (0..maps).map(|i| InputSplit { file: file.clone(), start: i, end: Some(i + 1) }).collect(),
            outputs: vec![PlannedOutput { name: String::new(), reducers: 1, first_partition: 0, cut_points: None }],
            partitions: 1,
            shuffle: None,
            partitioner: Default::default(),
        };
        let mut plan = Some(plan);
        while !submission.is_finished() {
            for request in self.handle.heartbeat("w1", &[]).await.expect("heartbeat").plans {
                if let Some(mut plan) = plan.take() {
                    let spec: JobSpec = serde_json::from_str(&request.spec_json).expect("the spec to plan");
                    plan.partitioner = spec.partitioner.unwrap_or_default();
                    if plan.partitioner == Partitioner::TotalOrder {
                        plan.outputs[0].cut_points = Some(CutPoints::default());
                    }
                    self.handle.report_plan("w1", request.ticket, PlanAnswer::Planned(plan)).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let response = submission.await.expect("join");
        let status = response.status();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        (status, serde_json::from_slice(&bytes).expect("JSON"))
    }

    fn spec(&self, output: &str) -> Value {
        json!({"app": "wordcount", "inputs": ["in"], "output": self.dir.path().join(output), "reducers": 1})
    }
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn tokens_are_required_except_for_health() {
    let api = Api::start().await;
    let (status, health) = api.call("GET", "/api/v1/health", None, None).await;
    assert_eq!((status, health["status"].as_str(), health["workers"].as_u64()), (StatusCode::OK, Some("ok"), Some(1)));
    for uri in ["/api/v1/version", "/api/v1/jobs", "/api/v1/workers", "/api/v1/apps", "/api/v1/events"] {
        let (status, body) = api.call("GET", uri, None, None).await;
        assert_eq!((status, error_code(&body)), (StatusCode::UNAUTHORIZED, "unauthorized"), "{uri}: {body}");
        let (status, _) = api.call("GET", uri, Some("wrong"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let (status, body) = api.call("POST", "/api/v1/jobs/1/kill", Some("wrong"), None).await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (status, version) = api.get("/api/v1/version").await;
    assert_eq!((status, version["api"].as_str()), (StatusCode::OK, Some("v1")));
    let (status, apps) = api.get("/api/v1/apps").await;
    let wordcount = json!({"name": "wordcount", "about": "counts words", "workers": 1,
        "params": [{"name": "min", "help": "the least count shown", "required": false}]});
    assert_eq!((status, apps), (StatusCode::OK, json!([wordcount])));
    let (status, body) = api.get("/api/v1/nothing-here").await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test]
async fn a_job_is_submitted_followed_and_killed_over_http() {
    let api = Api::start().await;
    let (status, job) = api.submit(api.spec("out"), 2).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let id = job["id"].as_u64().expect("id");
    assert_eq!(
        (job["app"].as_str(), job["state"].as_str(), job["phase"].as_str()),
        (Some("wordcount"), Some("pending"), Some("map"))
    );
    assert_eq!(job["maps"]["total"], 2);
    assert_eq!(job["reduces"]["pending"], 1);
    assert_eq!(job["partitioner"], "hash", "the app's choice when the spec makes none");

    // A worker runs the first map, which logs and succeeds.
    let assigned = api.handle.poll("w1", 1).await.expect("poll").expect("registered");
    let m0 = assigned[0].attempt;
    let (status, tasks) = api.get(&format!("/api/v1/jobs/{id}/tasks")).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = tasks.as_array().expect("tasks").iter().filter_map(|t| t["task"].as_str()).collect();
    assert_eq!(names, ["m-00000", "m-00001", "r-00000"]);
    assert_eq!(tasks[0]["state"], "running");
    assert_eq!(
        (tasks[0]["attempts"][0]["worker"].as_str(), &tasks[0]["attempts"][0]["outcome"]),
        (Some("w1"), &Value::Null)
    );
    let mut counters = Counters::default();
    counters.engine.input_records = 3;
    counters.add_app("words", 7);
    let index = quern_coordinator::cluster::ReportedIndex {
        path: "/w1/m0.run".into(),
        segments: vec![quern_core::Segment { offset: 0, len: 1, records: 1, raw_len: 1 }],
    };
    let done = Outcome::Succeeded { counters, map_output: Some(index), output_digest: None };
    assert!(api.handle.report("w1", JobId(id), m0, done, b"map says hi\n".to_vec()).await.expect("report"));

    let (status, job) = api.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(
        (status, job["state"].as_str(), job["maps"]["succeeded"].as_u64()),
        (StatusCode::OK, Some("running"), Some(1))
    );
    let (_, counters) = api.get(&format!("/api/v1/jobs/{id}/counters")).await;
    assert_eq!((counters["engine"]["input_records"].as_u64(), counters["app"]["words"].as_u64()), (Some(3), Some(7)));
    let (status, log) = api.get(&format!("/api/v1/jobs/{id}/tasks/m-00000/log")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((log[0]["log"].as_str(), log[0]["outcome"].as_str()), (Some("map says hi\n"), Some("succeeded")));
    let (status, body) = api.get(&format!("/api/v1/jobs/{id}/tasks/x-1/log")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("x-1")), "{body}");
    let (status, _) = api.get(&format!("/api/v1/jobs/{id}/tasks/m-00009/log")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Listing: filtered by state, paged, newest first.
    let (_, second) = api.submit(api.spec("out2"), 1).await;
    let (_, page) = api.get("/api/v1/jobs?limit=1").await;
    assert_eq!((page["total"].as_u64(), page["jobs"][0]["id"].clone()), (Some(2), second["id"].clone()));
    let (_, running) = api.get("/api/v1/jobs?state=running").await;
    assert_eq!(
        running["jobs"].as_array().map(|j| j.iter().map(|j| j["id"].clone()).collect::<Vec<_>>()),
        Some(vec![json!(id)])
    );

    let (status, killed) = api.call("POST", &format!("/api/v1/jobs/{id}/kill"), Some(TOKEN), None).await;
    assert_eq!((status, killed["killed"].as_bool()), (StatusCode::OK, Some(true)));
    let (_, job) = api.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(job["state"], "killed");
    assert!(!api.dir.path().join("out").exists(), "the kill removed the output");
    let (_, again) = api.call("POST", &format!("/api/v1/jobs/{id}/kill"), Some(TOKEN), None).await;
    assert_eq!(again["killed"], false, "already ended");
    let (status, body) = api.get("/api/v1/jobs/999").await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test]
async fn bad_requests_get_json_errors_naming_what_is_wrong() {
    let api = Api::start().await;
    let post = |body: &'static str| api.call("POST", "/api/v1/jobs", Some(TOKEN), Some(body));
    let (status, body) = post("{not json").await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "bad_request"), "{body}");
    let (status, body) = post(r#"{"app":"wordcount","inputs":["in"],"output":"o","colour":"blue"}"#).await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"), "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("colour")), "{body}");
    let (status, body) = post(r#"{"app":"wordcount","inputs":["in"]}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("output")), "{body}");
    let (status, body) = post(r#"{"app":"wordcount","inputs":["in"],"output":"o","reducers":-1}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = post(r#"{"app":"wordcount","inputs":["in"],"output":"o","split_size":0}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("--split-size")), "{body}");
    let (status, body) = post(r#"{"app":"nope","inputs":["in"],"output":"o"}"#).await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "refused"), "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("unknown app 'nope'")), "{body}");
    let (status, body) = api.get("/api/v1/jobs?limit=0").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = api.get("/api/v1/jobs?state=asleep").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = api.get("/api/v1/jobs?sort=id").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = api.get("/api/v1/jobs/abc").await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "bad_request"), "{body}");
    let (status, body) = post(r#"{"app":"wordcount","inputs":["in"],"output":"o","partitioner":"range"}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("partitioner")), "{body}");
}

#[tokio::test]
async fn a_job_asks_for_total_order_and_shows_how_it_is_partitioned() {
    let api = Api::start().await;
    let mut spec = api.spec("sorted");
    spec["partitioner"] = json!("total_order");
    let (status, job) = api.submit(spec, 1).await;
    assert_eq!((status, job["partitioner"].as_str()), (StatusCode::CREATED, Some("total_order")), "{job}");
    let id = job["id"].as_u64().expect("id");
    let (_, job) = api.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(job["partitioner"], "total_order");
    let mut spec = api.spec("hashed");
    spec["partitioner"] = json!("hash");
    let (status, job) = api.submit(spec, 1).await;
    assert_eq!((status, job["partitioner"].as_str()), (StatusCode::CREATED, Some("hash")), "{job}");

    let (_, doc) = api.get("/api/v1/openapi.json").await;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["Partitioner"]["enum"], json!(["hash", "total_order"]), "{}", schemas["Partitioner"]);
    for schema in ["Job", "NewJob"] {
        assert!(schemas[schema]["properties"]["partitioner"].is_object(), "{schema}: {}", schemas[schema]);
    }
}

#[tokio::test]
async fn the_event_stream_sends_each_stored_change() {
    let api = Api::start().await;
    let request = Request::get("/api/v1/events")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .expect("request");
    let response = api.router.clone().oneshot(request).await.expect("answer");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = response.into_body();
    let (_, job) = api.submit(api.spec("out"), 1).await;
    let mut text = String::new();
    while !text.contains("\n\n") {
        let frame =
            tokio::time::timeout(Duration::from_secs(5), body.frame()).await.expect("an event").expect("a frame");
        text.push_str(&String::from_utf8_lossy(&frame.expect("bytes").into_data().unwrap_or_default()));
    }
    let first = text.split("\n\n").next().unwrap_or_default();
    assert!(first.contains("event: job"), "{first}");
    let data = first.lines().find_map(|l| l.strip_prefix("data: ")).expect("data");
    assert_eq!(
        serde_json::from_str::<Value>(data).expect("JSON"),
        json!({"type": "job", "job": job["id"], "state": "pending"})
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_endpoint() {
    let api = Api::start().await;
    let (status, doc) = api.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", doc["openapi"]);
    let paths: Vec<&str> = doc["paths"].as_object().expect("paths").keys().map(String::as_str).collect();
    for path in [
        "/api/v1/health",
        "/api/v1/version",
        "/api/v1/apps",
        "/api/v1/jobs",
        "/api/v1/jobs/{id}",
        "/api/v1/jobs/{id}/kill",
        "/api/v1/jobs/{id}/tasks",
        "/api/v1/jobs/{id}/counters",
        "/api/v1/jobs/{id}/events",
        "/api/v1/jobs/{id}/tasks/{task}/log",
        "/api/v1/workers",
        "/api/v1/workers/{id}/drain",
        "/api/v1/workers/{id}/enable",
        "/api/v1/workers/{id}/deregister",
        "/api/v1/uploads",
        "/api/v1/code",
        "/api/v1/jobs/{id}/output",
        "/api/v1/jobs/{id}/output/{name}",
        "/api/v1/users",
        "/api/v1/users/{name}",
        "/api/v1/users/{name}/password",
        "/api/v1/events",
        "/api/v1/openapi.json",
    ] {
        assert!(paths.contains(&path), "{path} is not described: {paths:?}");
    }
    assert!(
        doc["components"]["schemas"]["Job"]["properties"]["state"].is_object(),
        "{}",
        doc["components"]["schemas"]["Job"]
    );
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
}

#[tokio::test]
async fn users_log_in_and_see_and_kill_only_their_own_jobs() {
    let api = Api::start().await;
    api.add_user("ann", Role::User, "ann's password").await;
    api.add_user("bob", Role::User, "bob's password").await;
    api.add_user("root", Role::Admin, "root's password").await;

    let (status, body) = api.login("ann", "wrong").await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNAUTHORIZED, "unauthorized"), "{body}");
    let (status, _) = api.login("nobody", "whatever").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, login) = api.login("ann", "ann's password").await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let ann = login["token"].as_str().expect("a token").to_owned();
    let expires = login["expires_at"].as_u64().expect("expires_at");
    let (status, me) = api.call("GET", "/api/v1/auth/validate", Some(&ann), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (me["username"].as_str(), me["role"].as_str(), me["expires_at"].as_u64()),
        (Some("ann"), Some("user"), Some(expires))
    );
    let bob = api.login("bob", "bob's password").await.1["token"].as_str().expect("token").to_owned();
    let root = api.login("root", "root's password").await.1["token"].as_str().expect("token").to_owned();
    let (_, me) = api.call("GET", "/api/v1/auth/validate", Some(&root), None).await;
    assert_eq!(me["role"], "admin");

    let (status, job) = api.submit_as(&ann, api.spec("anns"), 1).await;
    assert_eq!((status, job["owner"].as_str()), (StatusCode::CREATED, Some("ann")), "{job}");
    let id = job["id"].as_u64().expect("id");
    let (_, mine) = api.call("GET", "/api/v1/jobs", Some(&ann), None).await;
    assert_eq!(mine["total"], 1);
    let (_, theirs) = api.call("GET", "/api/v1/jobs", Some(&bob), None).await;
    assert_eq!(theirs["total"], 0, "bob sees none of ann's jobs");
    for (method, uri) in [
        ("GET", format!("/api/v1/jobs/{id}")),
        ("GET", format!("/api/v1/jobs/{id}/tasks")),
        ("GET", format!("/api/v1/jobs/{id}/counters")),
        ("GET", format!("/api/v1/jobs/{id}/tasks/m-00000/log")),
        ("GET", format!("/api/v1/events?job={id}")),
        ("POST", format!("/api/v1/jobs/{id}/kill")),
    ] {
        let (status, body) = api.call(method, &uri, Some(&bob), None).await;
        assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, "not_found"), "{method} {uri}: {body}");
    }
    let (status, _) = api.call("GET", "/api/v1/events", Some(&bob), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only admins follow every job");
    let (_, all) = api.call("GET", "/api/v1/jobs", Some(&root), None).await;
    assert_eq!(all["total"], 1, "an admin sees every job");
    let (_, anns) = api.call("GET", "/api/v1/jobs?owner=ann", Some(&root), None).await;
    assert_eq!(anns["total"], 1);
    let (_, bobs) = api.call("GET", "/api/v1/jobs?owner=bob", Some(&root), None).await;
    assert_eq!(bobs["total"], 0, "filtered by owner");
    let (status, killed) = api.call("POST", &format!("/api/v1/jobs/{id}/kill"), Some(&ann), None).await;
    assert_eq!((status, killed["killed"].as_bool()), (StatusCode::OK, Some(true)));

    // Forged and expired tokens.
    let claims = json!({"sub": "root", "role": "admin", "iat": 1, "exp": 4_000_000_000u64});
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"another key, not the server's!!!"),
    )
    .expect("forge");
    let (status, body) = api.call("GET", "/api/v1/jobs", Some(&forged), None).await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let old = json!({"sub": "ann", "role": "user", "pwd": "", "iat": 1, "exp": 2});
    let expired =
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &old, &jsonwebtoken::EncodingKey::from_secret(KEY))
            .expect("sign");
    let (status, body) = api.call("GET", "/api/v1/jobs", Some(&expired), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("expired")), "{body}");

    // Five failures in a row lock a name out for a while, even for the
    // right password.
    for _ in 0..5 {
        assert_eq!(api.login("bob", "guess").await.0, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = api.login("bob", "bob's password").await;
    assert_eq!((status, error_code(&body)), (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"), "{body}");
    assert_eq!(api.login("ann", "ann's password").await.0, StatusCode::OK, "other names are not locked out");
}

#[tokio::test]
async fn admins_drain_enable_and_deregister_workers_and_users_may_not() {
    let api = Api::start().await;
    api.add_user("ann", Role::User, "ann's password").await;
    let (_, login) = api.login("ann", "ann's password").await;
    let ann = login["token"].as_str().expect("token");
    let (status, body) = api.call("POST", "/api/v1/workers/w1/drain", Some(ann), None).await;
    assert_eq!((status, error_code(&body)), (StatusCode::FORBIDDEN, "forbidden"), "{body}");
    let (status, worker) = api.call("POST", "/api/v1/workers/w1/drain", Some(TOKEN), None).await;
    assert_eq!((status, worker["state"].as_str()), (StatusCode::OK, Some("draining")), "{worker}");
    let (_, workers) = api.get("/api/v1/workers").await;
    assert_eq!(workers[0]["state"], "draining", "the list agrees: {workers}");
    let (status, worker) = api.call("POST", "/api/v1/workers/w1/enable", Some(TOKEN), None).await;
    assert_eq!((status, worker["state"].as_str()), (StatusCode::OK, Some("alive")), "{worker}");
    let (status, worker) = api.call("POST", "/api/v1/workers/w1/deregister", Some(TOKEN), None).await;
    assert_eq!((status, worker["state"].as_str()), (StatusCode::OK, Some("deregistered")), "{worker}");
    let (status, health) = api.call("GET", "/api/v1/health", None, None).await;
    assert_eq!((status, health["workers"].as_u64()), (StatusCode::OK, Some(0)), "a deregistered worker is not alive");
    let (status, body) = api.call("POST", "/api/v1/workers/nobody/drain", Some(TOKEN), None).await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, "not_found"), "{body}");
}

#[tokio::test]
async fn uploads_are_stored_whole_under_the_callers_name_or_refused() {
    let api = Api::start().await;
    let (status, body) = api.upload(None, "file", &[("a.txt", b"x")]).await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNAUTHORIZED, "unauthorized"), "{body}");

    api.add_user("ann", Role::User, "ann's password").await;
    let (_, login) = api.login("ann", "ann's password").await;
    let ann = login["token"].as_str().expect("token");
    let (status, uploaded) =
        api.upload(Some(ann), "file", &[("books/a.txt", b"one two\n"), ("b.txt", b"three\n")]).await;
    assert_eq!(status, StatusCode::CREATED, "{uploaded}");
    let files = uploaded["files"].as_array().expect("files");
    assert_eq!(files.len(), 2);
    for (file, (name, bytes)) in files.iter().zip([("a.txt", &b"one two\n"[..]), ("b.txt", b"three\n")]) {
        assert_eq!((file["name"].as_str(), file["bytes"].as_u64()), (Some(name), Some(bytes.len() as u64)));
        let location = file["location"].as_str().expect("location");
        assert!(location.contains("/files/uploads/ann/"), "under the user's name: {location}");
        assert_eq!(std::fs::read(location).expect("stored"), bytes);
    }

    // Over the limit (1,000 bytes in this area): 413, and nothing kept.
    let big = vec![b'x'; 1500];
    let (status, body) = api.upload(Some(TOKEN), "file", &[("big.txt", &big)]).await;
    assert_eq!((status, error_code(&body)), (StatusCode::PAYLOAD_TOO_LARGE, "too_large"), "{body}");
    let (status, body) = api.upload(Some(TOKEN), "file", &[("small.txt", b"ok"), ("big.txt", &big)]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(!api.dir.path().join("files/uploads/_cluster").exists(), "a refused upload keeps no file");
    let scratch: Vec<_> = std::fs::read_dir(api.dir.path().join("scratch")).expect("scratch").collect();
    assert!(scratch.is_empty(), "no scratch file is left: {scratch:?}");

    let (status, body) = api.upload(Some(TOKEN), "data", &[("a.txt", b"x")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("\"data\"")), "names the part: {body}");
    let (status, body) = api.upload(Some(TOKEN), "file", &[("_SUCCESS", b"x")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = api.upload(Some(TOKEN), "file", &[("a.txt", b"x"), ("a.txt", b"y")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = api.call("POST", "/api/v1/uploads", Some(TOKEN), Some("{}")).await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"), "{body}");
}

#[tokio::test]
async fn a_relative_output_goes_under_the_file_area_and_only_a_succeeded_output_is_listed() {
    let api = Api::start().await;
    let spec = json!({"app": "wordcount", "inputs": ["in"], "output": "counts"});
    let (status, job) = api.submit(spec, 1).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let expected = api.dir.path().join("files/outputs/counts");
    assert_eq!(job["output"].as_str(), Some(expected.to_str().expect("utf-8")));
    let id = job["id"].as_u64().expect("id");
    let (status, body) = api.get(&format!("/api/v1/jobs/{id}/output")).await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "conflict"), "{body}");
    let (status, body) = api.get(&format!("/api/v1/jobs/{id}/output/part-r-00000")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let bad = json!({"app": "wordcount", "inputs": ["in"], "output": "../escape"});
    let (status, body) = api.call("POST", "/api/v1/jobs", Some(TOKEN), Some(&bad.to_string())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.starts_with("output:")), "{body}");
}

#[tokio::test]
async fn admins_manage_users_over_http_and_a_removed_user_s_token_stops_working() {
    let api = Api::start().await;
    api.add_user("root", Role::Admin, "root's password").await;
    let (_, login) = api.login("root", "root's password").await;
    let root = login["token"].as_str().expect("token").to_owned();
    let add =
        |name: &str, password: &str, role: &str| json!({"name": name, "password": password, "role": role}).to_string();

    let (status, user) =
        api.call("POST", "/api/v1/users", Some(&root), Some(&add("ann", "ann's password", "user"))).await;
    assert_eq!(
        (status, user["name"].as_str(), user["role"].as_str()),
        (StatusCode::CREATED, Some("ann"), Some("user"))
    );
    assert!(user.get("password_hash").is_none() && user.get("password").is_none(), "{user}");
    let (status, body) = api.call("POST", "/api/v1/users", Some(&root), Some(&add("ann", "another one", "user"))).await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "conflict"), "{body}");
    let (status, body) = api.call("POST", "/api/v1/users", Some(&root), Some(&add("bob", "short", "user"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.starts_with("password:")), "{body}");
    let (status, body) = api.call("POST", "/api/v1/users", Some(&root), Some(&add("b b", "long enough", "user"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = api.call("POST", "/api/v1/users", Some(&root), Some(&add("bob", "long enough", "boss"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "an unknown role: {body}");

    let (_, login) = api.login("ann", "ann's password").await;
    let ann = login["token"].as_str().expect("token").to_owned();
    let (status, body) = api.call("GET", "/api/v1/users", Some(&ann), None).await;
    assert_eq!((status, error_code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, body) =
        api.call("POST", "/api/v1/users", Some(&ann), Some(&add("eve", "eve's password", "admin"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Ann changes her own password, and not root's; the change ends every
    // session she had (this one too), and root's stays.
    let new = json!({"password": "ann's new password"}).to_string();
    let (status, _) = api.call("POST", "/api/v1/users/root/password", Some(&ann), Some(&new)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, login) = api.login("ann", "ann's password").await;
    let ann_elsewhere = login["token"].as_str().expect("token").to_owned();
    let (status, _) = api.call("POST", "/api/v1/users/ann/password", Some(&ann), Some(&new)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for old in [&ann, &ann_elsewhere] {
        let (status, body) = api.call("GET", "/api/v1/jobs", Some(old), None).await;
        assert_eq!(
            (status, body["error"]["message"].as_str()),
            (
                StatusCode::UNAUTHORIZED,
                Some("the password of ann was changed after this token was issued: log in again")
            )
        );
    }
    assert_eq!(api.call("GET", "/api/v1/jobs", Some(&root), None).await.0, StatusCode::OK);
    assert_eq!(api.login("ann", "ann's password").await.0, StatusCode::UNAUTHORIZED);
    let (status, login) = api.login("ann", "ann's new password").await;
    assert_eq!(status, StatusCode::OK);
    let ann = login["token"].as_str().expect("token").to_owned();
    assert_eq!(api.call("GET", "/api/v1/jobs", Some(&ann), None).await.0, StatusCode::OK);
    // An admin's change of her password ends her sessions too.
    let newer = json!({"password": "ann's third password"}).to_string();
    let (status, _) = api.call("POST", "/api/v1/users/ann/password", Some(&root), Some(&newer)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(api.call("GET", "/api/v1/jobs", Some(&ann), None).await.0, StatusCode::UNAUTHORIZED);
    let (_, login) = api.login("ann", "ann's third password").await;
    let ann = login["token"].as_str().expect("token").to_owned();

    let (status, users) = api.call("GET", "/api/v1/users", Some(&root), None).await;
    let names: Vec<&str> = users.as_array().expect("users").iter().filter_map(|u| u["name"].as_str()).collect();
    assert_eq!((status, names), (StatusCode::OK, vec!["ann", "root"]));
    let (status, body) = api.call("DELETE", "/api/v1/users/root", Some(&root), None).await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "conflict"), "the last admin stays: {body}");
    let (status, _) = api.call("DELETE", "/api/v1/users/ann", Some(&root), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = api.call("GET", "/api/v1/jobs", Some(&ann), None).await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("user ann no longer exists"))
    );
    let (status, _) = api.call("DELETE", "/api/v1/users/ann", Some(&root), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
