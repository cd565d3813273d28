//! The coordinator's gRPC service in-process, on 127.0.0.1: the token is
//! required, malformed requests from a buggy worker are refused (and the
//! coordinator keeps serving), and state survives a restart; and its
//! application layer (`CoordinatorHandle`) driven without a network.

mod common;

use std::time::Duration;

use prost::Message;

use quern_coordinator::state::Role;
use quern_coordinator::{Coordinator, CoordinatorConfig, Policy};
use quern_proto as pb;
use tonic::transport::Channel;

struct Running {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = self.task.await;
    }
}

async fn start(state: &str) -> Running {
    start_with_users(state, &[]).await
}

/// A coordinator whose store holds `users` (name, role, password).
async fn start_with_users(state: &str, users: &[(&str, Role, &str)]) -> Running {
    let config = CoordinatorConfig {
        state_url: state.to_owned(),
        token: "t0ken".into(),
        policy: Policy::with_timeouts(10_000, 60_000, false),
        heartbeat_interval: Duration::from_millis(200),
        storage: quern_storage::Storage::default(),
        code: None,
        signing_key: b"a test signing key of 32 bytes..".to_vec(),
        token_lifetime: Duration::from_secs(60),
    };
    let coordinator = Coordinator::open(config).await.expect("open");
    for &(name, role, password) in users {
        let hash = quern_coordinator::access::hash_password(password).expect("hash");
        let user =
            quern_coordinator::store::StoredUser { name: name.into(), role, password_hash: hash, created_at_ms: 0 };
        coordinator.handle().put_user(&user).await.expect("user");
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        coordinator
            .serve(listener, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
    });
    Running { url, stop: Some(tx), task }
}

async fn client(url: &str, token: &str) -> Client {
    let channel = Channel::from_shared(url.to_owned()).expect("url").connect().await.expect("connect");
    pb::coordinator_client::CoordinatorClient::with_interceptor(channel, pb::TokenAttach::new(token).expect("token"))
        .max_decoding_message_size(pb::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(pb::MAX_MESSAGE_BYTES)
}

type Client = pb::coordinator_client::CoordinatorClient<
    tonic::service::interceptor::InterceptedService<Channel, pb::TokenAttach>,
>;

/// Submits `spec` in a task of its own and, playing worker w1, heartbeats
/// until the coordinator asks w1 to plan that very spec; returns the
/// waiting submission and the planning request's ticket.
async fn submit_and_wait_for_plan_request(
    c: &Client,
    spec: &quern_core::JobSpec,
) -> (tokio::task::JoinHandle<Result<tonic::Response<pb::SubmitJobResponse>, tonic::Status>>, u64) {
    let request = pb::SubmitJobRequest { spec_json: serde_json::to_string(spec).expect("spec"), priority: 0 };
    let submission = tokio::spawn({
        let mut c = c.clone();
        async move { c.submit_job(request).await }
    });
    let mut c = c.clone();
    loop {
        let beat = pb::HeartbeatRequest { worker_id: "w1".into(), running: vec![] };
        if let Some(plan) = c.heartbeat(beat).await.expect("heartbeat").into_inner().plans.first() {
            let asked: quern_core::JobSpec = serde_json::from_str(&plan.spec_json).expect("the spec to plan");
            assert_eq!(&asked, spec);
            return (submission, plan.ticket);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn worker(id: &str) -> pb::RegisterWorkerRequest {
    pb::RegisterWorkerRequest {
        worker_id: id.into(),
        host: "127.0.0.1".into(),
        shuffle_address: "http://127.0.0.1:1".into(),
        slots: 2,
        apps: vec!["wordcount".into()],
        version: "test".into(),
        held_jobs: Vec::new(),
        // Names only, as workers before app descriptions send them.
        app_descriptions: Vec::new(),
    }
}

#[tokio::test]
async fn refuses_wrong_tokens_and_malformed_requests_and_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = start(&format!("sqlite://{}", dir.path().join("q.db").display())).await;

    let mut wrong = client(&running.url, "nope").await;
    let err = wrong.list_jobs(pb::ListJobsRequest {}).await.expect_err("refused");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    let mut c = client(&running.url, "t0ken").await;
    let err = c.register_worker(pb::RegisterWorkerRequest { slots: 0, ..worker("w") }).await.expect_err("no slots");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    c.register_worker(worker("w1")).await.expect("register");

    let bad_kind = pb::ReportAttemptRequest {
        worker_id: "w1".into(),
        attempt: Some(pb::AttemptRef { job_id: 1, kind: 0, index: 0, attempt: 1 }),
        outcome: Some(pb::report_attempt_request::Outcome::Cancelled(true)),
        log: Vec::new(),
    };
    assert_eq!(c.report_attempt(bad_kind).await.expect_err("bad kind").code(), tonic::Code::InvalidArgument);
    let no_outcome = pb::ReportAttemptRequest {
        worker_id: "w1".into(),
        attempt: Some(pb::AttemptRef { job_id: 1, kind: pb::TaskKind::Map as i32, index: 0, attempt: 1 }),
        outcome: None,
        log: Vec::new(),
    };
    assert_eq!(c.report_attempt(no_outcome).await.expect_err("no outcome").code(), tonic::Code::InvalidArgument);
    let no_job = pb::ReportAttemptRequest {
        worker_id: "w1".into(),
        attempt: Some(pb::AttemptRef { job_id: 99, kind: pb::TaskKind::Map as i32, index: 0, attempt: 1 }),
        outcome: Some(pb::report_attempt_request::Outcome::Cancelled(true)),
        log: Vec::new(),
    };
    assert_eq!(c.report_attempt(no_job).await.expect_err("no job").code(), tonic::Code::InvalidArgument);
    let garbage = pb::SubmitJobRequest { spec_json: "{".into(), priority: 0 };
    assert_eq!(c.submit_job(garbage).await.expect_err("garbage").code(), tonic::Code::InvalidArgument);
    let poll = c.poll_task(pb::PollTaskRequest { worker_id: "stranger".into(), free_slots: 1 }).await.expect("poll");
    assert!(poll.into_inner().reregister, "an unknown worker is asked to register");

    // Still serving, and the registered worker is there.
    let workers = c.list_workers(pb::ListWorkersRequest {}).await.expect("workers").into_inner().workers;
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].state, "alive");
    running.stop().await;

    // After a restart the worker is remembered.
    let running = start(&format!("sqlite://{}", dir.path().join("q.db").display())).await;
    let mut c = client(&running.url, "t0ken").await;
    let workers = c.list_workers(pb::ListWorkersRequest {}).await.expect("workers").into_inner().workers;
    assert_eq!(workers.iter().map(|w| w.worker_id.as_str()).collect::<Vec<_>>(), ["w1"]);
    running.stop().await;
}

#[tokio::test]
async fn a_spec_is_planned_by_a_worker_over_grpc_and_a_plan_beyond_the_bounds_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = start(&format!("sqlite://{}", dir.path().join("q.db").display())).await;
    let mut c = client(&running.url, "t0ken").await;
    let registration = pb::RegisterWorkerRequest {
        worker_id: "w1".into(),
        host: "h".into(),
        shuffle_address: "http://127.0.0.1:1".into(),
        slots: 1,
        apps: vec!["wordcount".into()],
        version: "t".into(),
        held_jobs: vec![],
        app_descriptions: vec![],
    };
    c.register_worker(registration).await.expect("register");
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a b\n").expect("write");
    let out = dir.path().join("out");
    let spec = quern_core::JobSpec::new("wordcount", vec![input.display().to_string()], out.display().to_string());
    // The client sends the spec alone and waits while a worker plans it.
    let (submission, ticket) = submit_and_wait_for_plan_request(&c, &spec).await;
    // A worker whose plan is beyond the bounds: 20,000 reducers.
    let plan = quern_core::JobPlan {
        splits: Vec::new(),
        outputs: vec![quern_core::PlannedOutput {
            name: String::new(),
            reducers: 20_000,
            first_partition: 0,
            cut_points: None,
        }],
        partitions: 20_000,
        shuffle: None,
        partitioner: Default::default(),
    };
    let result = pb::report_plan_request::Result::PlanJson(serde_json::to_string(&plan).expect("plan"));
    c.report_plan(pb::ReportPlanRequest { worker_id: "w1".into(), ticket, result: Some(result) })
        .await
        .expect("report the plan");
    let err = submission.await.expect("join").expect_err("refused");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("at most 10000 reducers"), "{}", err.message());
    assert!(!out.exists(), "a refused job creates no output");
    assert!(c.list_jobs(pb::ListJobsRequest {}).await.expect("jobs").into_inner().jobs.is_empty());

    // A worker that finds the spec cannot run: the same refusal, no job.
    let (submission, ticket) = submit_and_wait_for_plan_request(&c, &spec).await;
    let refused = pb::PlanRefused { message: "input /nowhere: no such file".into() };
    let result = pb::report_plan_request::Result::Refused(refused);
    c.report_plan(pb::ReportPlanRequest { worker_id: "w1".into(), ticket, result: Some(result) })
        .await
        .expect("report");
    let err = submission.await.expect("join").expect_err("refused");
    assert_eq!((err.code(), err.message()), (tonic::Code::FailedPrecondition, "input /nowhere: no such file"));
    assert!(!out.exists() && c.list_jobs(pb::ListJobsRequest {}).await.expect("jobs").into_inner().jobs.is_empty());

    // A plan of 60,000 splits is megabytes: it goes up once, in ReportPlan,
    // and comes down once per worker, in GetJobPlan; assignments name the
    // job only.
    let (submission, ticket) = submit_and_wait_for_plan_request(&c, &spec).await;
    let file = quern_core::InputFile {
        location: format!("{}/{}", dir.path().display(), "a-long-directory-name/".repeat(4)),
        name: "in.txt".into(),
        len: 60_000,
        compression: quern_core::Compression::None,
    };
    let big = quern_core::JobPlan {
        splits: (0..60_000)
            .map(|i| quern_core::InputSplit { file: file.clone(), start: i, end: Some(i + 1) })
            .collect(),
        outputs: vec![quern_core::PlannedOutput {
            name: String::new(),
            reducers: 1,
            first_partition: 0,
            cut_points: None,
        }],
        partitions: 1,
        shuffle: None,
        partitioner: Default::default(),
    };
    let big_json = serde_json::to_string(&big).expect("plan");
    assert!(big_json.len() > 4 << 20, "{} bytes: not past tonic's default limit", big_json.len());
    let result = pb::report_plan_request::Result::PlanJson(big_json);
    c.report_plan(pb::ReportPlanRequest { worker_id: "w1".into(), ticket, result: Some(result) })
        .await
        .expect("report a big plan");
    let id = submission.await.expect("join").expect("a big plan is accepted").into_inner().job_id;
    let polled = c.poll_task(pb::PollTaskRequest { worker_id: "w1".into(), free_slots: 1 }).await.expect("poll");
    let polled = polled.into_inner();
    assert_eq!(polled.tasks.len(), 1);
    assert!(polled.tasks[0].encoded_len() < 100, "an assignment names its job, not its plan");
    let fetched = c.get_job_plan(pb::GetJobPlanRequest { job_id: id }).await.expect("the plan").into_inner();
    assert_eq!(serde_json::from_str::<quern_core::JobPlan>(&fetched.plan_json).expect("plan"), big);
    assert_eq!(serde_json::from_str::<quern_core::JobSpec>(&fetched.spec_json).expect("spec"), spec);
    let missing = c.get_job_plan(pb::GetJobPlanRequest { job_id: 999 }).await.expect_err("no such job");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    running.stop().await;
}

/// The application layer without any network: what a REST API (or a test)
/// drives. A worker registers, a job is submitted, its attempts are handed
/// out and reported, and the job's view follows, down to its counters.
#[tokio::test]
async fn the_handle_runs_a_job_without_grpc() {
    use quern_coordinator::{Registration, WorkerHealth};
    use quern_core::{Counters, InputFile, InputSplit, JobId, JobPlan, JobSpec, PlannedOutput};

    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a b\n").expect("write");
    let config = CoordinatorConfig {
        state_url: "sqlite::memory:".into(),
        token: "t0ken".into(),
        policy: Policy::with_timeouts(10_000, 60_000, false),
        heartbeat_interval: Duration::from_millis(200),
        storage: quern_storage::Storage::default(),
        code: None,
        signing_key: b"a test signing key of 32 bytes..".to_vec(),
        token_lifetime: Duration::from_secs(60),
    };
    let handle = Coordinator::open(config).await.expect("open").handle();
    let mut events = handle.events();
    let registered = handle
        .register(Registration {
            worker_id: "w1".into(),
            host: "h".into(),
            shuffle_address: "http://127.0.0.1:1".into(),
            slots: 2,
            apps: vec![quern_core::AppInfo::named("wordcount")],
            version: "t".into(),
            held_jobs: vec![JobId(7)],
        })
        .await
        .expect("register");
    assert_eq!(registered.forget_jobs, vec![JobId(7)], "an unknown job's data may go");

    let out = dir.path().join("out");
    let spec = JobSpec::new("wordcount", vec![input.display().to_string()], out.display().to_string());
    let file = InputFile {
        location: input.display().to_string(),
        name: "in.txt".into(),
        len: 4,
        compression: quern_core::Compression::None,
    };
    let plan = JobPlan {
        splits: vec![InputSplit { file, start: 0, end: Some(4) }],
        outputs: vec![PlannedOutput { name: String::new(), reducers: 0, first_partition: 0, cut_points: None }],
        partitions: 0,
        shuffle: None,
        partitioner: Default::default(),
    };
    let id = common::submit_planned(&handle, "w1", spec, plan).await.expect("submit");
    assert_eq!(handle.job(id).await.expect("job").state.as_str(), "pending");

    let assignments = handle.poll("w1", 2).await.expect("poll").expect("registered");
    assert_eq!(assignments.len(), 1, "one map, no reduce");
    let tasks = handle.tasks(id).await.expect("tasks");
    assert_eq!(tasks.len(), 1);
    assert_eq!((tasks[0].state, tasks[0].attempts.len()), (quern_coordinator::TaskStatus::Running, 1));
    assert_eq!((tasks[0].attempts[0].worker_id.as_str(), tasks[0].attempts[0].outcome), ("w1", None));
    let mut counters = Counters::default();
    counters.engine.input_records = 1;
    let outcome = quern_coordinator::cluster::Outcome::Succeeded { counters, map_output: None, output_digest: None };
    let committed = handle.report("w1", id, assignments[0].attempt, outcome, b"log".to_vec()).await.expect("report");
    assert!(committed);
    let job = common::ended(&handle, id).await;
    assert_eq!((job.state.as_str(), job.counters.engine.input_records), ("succeeded", 1));
    assert!(out.join("_SUCCESS").exists());
    let tasks = handle.tasks(id).await.expect("tasks");
    let attempt = &tasks[0].attempts[0];
    assert_eq!((tasks[0].state, tasks[0].committed), (quern_coordinator::TaskStatus::Succeeded, Some(1)));
    assert_eq!(
        (attempt.outcome, attempt.fraction, attempt.finished_ms >= attempt.started_ms),
        (Some(quern_coordinator::state::AttemptEnd::Succeeded), 1.0, true)
    );
    assert!(matches!(handle.tasks(JobId(99)).await, Err(quern_coordinator::Error::NoSuchJob(_))));
    let logs = handle.logs(id, None).await.expect("logs");
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].log, b"log");
    let workers = handle.workers().await.expect("workers");
    assert_eq!(
        workers.iter().map(|w| (w.row.id.as_str(), w.health)).collect::<Vec<_>>(),
        [("w1", WorkerHealth::Alive)]
    );
    assert!(handle.poll("nobody", 1).await.expect("poll").is_none(), "an unknown worker must register");
    assert!(matches!(handle.job(JobId(99)).await, Err(quern_coordinator::Error::NoSuchJob(JobId(99)))));

    // Every change was published, in order, once stored.
    use quern_coordinator::Event;
    use quern_coordinator::state::{AttemptEnd, JobPhase, WorkerState};
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    let attempt = assignments[0].attempt;
    let wanted = [
        Event::Worker { id: "w1".into(), state: WorkerState::Alive },
        Event::Job { id, state: JobPhase::Pending },
        Event::Job { id, state: JobPhase::Running },
        Event::AttemptStarted { job: id, attempt, worker_id: "w1".into() },
        Event::AttemptEnded { job: id, attempt, end: AttemptEnd::Succeeded },
        Event::Job { id, state: JobPhase::Succeeded },
    ];
    let mut rest = seen.iter();
    for w in &wanted {
        assert!(rest.any(|e| e == w), "{w:?} missing or out of order in {seen:?}");
    }
}

#[tokio::test]
async fn a_user_s_token_reaches_client_calls_for_their_own_jobs_only_and_never_worker_calls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let users = [("ann", Role::User, "ann's password"), ("root", Role::Admin, "root's password")];
    let running = start_with_users(&format!("sqlite://{}", dir.path().join("q.db").display()), &users).await;
    let mut anonymous = pb::coordinator_client::CoordinatorClient::connect(running.url.clone()).await.expect("connect");
    let wrong = pb::LoginRequest { username: "ann".into(), password: "guess".into() };
    let err = anonymous.login(wrong).await.expect_err("wrong password");
    assert_eq!((err.code(), err.message()), (tonic::Code::Unauthenticated, "wrong username or password"));
    let login = |name: &str, password: &str| pb::LoginRequest { username: name.into(), password: password.into() };
    let ann = anonymous.login(login("ann", "ann's password")).await.expect("login").into_inner();
    assert_eq!(ann.role, "user");
    let root = anonymous.login(login("root", "root's password")).await.expect("login").into_inner();
    assert_eq!(root.role, "admin");

    // The cluster token's holder registers a worker and submits a job.
    let mut cluster = client(&running.url, "t0ken").await;
    cluster.register_worker(worker("w1")).await.expect("register");
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a b\n").expect("write");
    let out = dir.path().join("out");
    let spec = quern_core::JobSpec::new("wordcount", vec![input.display().to_string()], out.display().to_string());
    let (submission, ticket) = submit_and_wait_for_plan_request(&cluster, &spec).await;
    let plan = quern_core::JobPlan {
        splits: Vec::new(),
        outputs: vec![quern_core::PlannedOutput {
            name: String::new(),
            reducers: 1,
            first_partition: 0,
            cut_points: None,
        }],
        partitions: 1,
        shuffle: None,
        partitioner: Default::default(),
    };
    let result = pb::report_plan_request::Result::PlanJson(serde_json::to_string(&plan).expect("plan"));
    cluster
        .report_plan(pb::ReportPlanRequest { worker_id: "w1".into(), ticket, result: Some(result) })
        .await
        .expect("plan");
    let job_id = submission.await.expect("join").expect("submitted").into_inner().job_id;

    // Ann sees none of it, and cannot act as a worker.
    let mut as_ann = client(&running.url, &ann.token).await;
    assert!(as_ann.list_jobs(pb::ListJobsRequest {}).await.expect("jobs").into_inner().jobs.is_empty());
    let err = as_ann.get_job(pb::GetJobRequest { job_id }).await.expect_err("not hers");
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    let err = as_ann.kill_job(pb::KillJobRequest { job_id }).await.expect_err("not hers");
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    let err = as_ann.get_logs(pb::GetLogsRequest { job_id, task: String::new() }).await.expect_err("not hers");
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    let err = as_ann.register_worker(worker("w2")).await.expect_err("not a worker");
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    let beat = pb::HeartbeatRequest { worker_id: "w1".into(), running: vec![] };
    assert_eq!(as_ann.heartbeat(beat).await.expect_err("not a worker").code(), tonic::Code::PermissionDenied);

    // An admin sees and kills it; its owner is the cluster token's ("").
    let mut as_root = client(&running.url, &root.token).await;
    let jobs = as_root.list_jobs(pb::ListJobsRequest {}).await.expect("jobs").into_inner().jobs;
    assert_eq!(jobs.iter().map(|j| (j.job_id, j.owner.as_str())).collect::<Vec<_>>(), [(job_id, "")]);
    assert!(as_root.kill_job(pb::KillJobRequest { job_id }).await.expect("kill").into_inner().killed);

    // A forged token is refused, as a wrong cluster token is.
    let mut forged = client(&running.url, &format!("{}x", ann.token)).await;
    let err = forged.list_jobs(pb::ListJobsRequest {}).await.expect_err("forged");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    running.stop().await;
}

/// The next message of a stream, failing the test after 10 s: nudges and
/// job changes come at once, never at a worker's or client's next tick.
async fn next<T>(stream: &mut tonic::Streaming<T>) -> Option<T> {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a message within 10 s")
        .expect("the stream works")
}

#[tokio::test]
async fn a_watching_worker_is_nudged_for_plans_and_tasks_and_a_job_s_watch_ends_with_its_final_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = start(&format!("sqlite://{}", dir.path().join("q.db").display())).await;
    let mut c = client(&running.url, "t0ken").await;
    c.register_worker(worker("w1")).await.expect("register");
    let mut nudges = c.watch_work(pb::WatchWorkRequest { worker_id: "w1".into() }).await.expect("watch").into_inner();
    // The first nudge asks for everything: nudges given before were missed.
    assert_eq!(next(&mut nudges).await, Some(pb::WorkNudge { poll: true, heartbeat: true }));

    // A submission waits for a plan, which a heartbeat hands out: the
    // worker is nudged to heartbeat.
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a b\n").expect("write");
    let out = dir.path().join("out");
    let spec = quern_core::JobSpec::new("wordcount", vec![input.display().to_string()], out.display().to_string());
    let request = pb::SubmitJobRequest { spec_json: serde_json::to_string(&spec).expect("spec"), priority: 0 };
    let submission = tokio::spawn({
        let mut c = c.clone();
        async move { c.submit_job(request).await }
    });
    let nudge = next(&mut nudges).await.expect("a nudge");
    assert!(nudge.heartbeat, "{nudge:?}");
    let beat = c.heartbeat(pb::HeartbeatRequest { worker_id: "w1".into(), running: vec![] }).await.expect("beat");
    let ticket = beat.into_inner().plans.first().expect("the spec to plan").ticket;
    let file = quern_core::InputFile {
        location: input.display().to_string(),
        name: "in.txt".into(),
        len: 4,
        compression: quern_core::Compression::None,
    };
    let plan = quern_core::JobPlan {
        splits: vec![quern_core::InputSplit { file, start: 0, end: Some(4) }],
        outputs: vec![quern_core::PlannedOutput {
            name: String::new(),
            reducers: 0,
            first_partition: 0,
            cut_points: None,
        }],
        partitions: 0,
        shuffle: None,
        partitioner: Default::default(),
    };
    let result = pb::report_plan_request::Result::PlanJson(serde_json::to_string(&plan).expect("plan"));
    c.report_plan(pb::ReportPlanRequest { worker_id: "w1".into(), ticket, result: Some(result) })
        .await
        .expect("report the plan");
    let id = submission.await.expect("join").expect("submitted").into_inner().job_id;
    // The job's task waits: the worker is nudged to poll.
    let nudge = next(&mut nudges).await.expect("a nudge");
    assert!(nudge.poll, "{nudge:?}");

    let mut watch = c.watch_job(pb::GetJobRequest { job_id: id }).await.expect("watch the job").into_inner();
    let first = next(&mut watch).await.expect("the status now");
    assert_eq!((first.job_id, first.state.as_str()), (id, "pending"));
    let tasks = c.poll_task(pb::PollTaskRequest { worker_id: "w1".into(), free_slots: 2 }).await.expect("poll");
    let attempt = tasks.into_inner().tasks.first().and_then(|t| t.attempt).expect("the map");
    let succeeded = pb::AttemptSucceeded {
        counters_json: serde_json::to_string(&quern_core::Counters::default()).expect("counters"),
        map_output_json: String::new(),
        output_digest: String::new(),
    };
    let report = pb::ReportAttemptRequest {
        worker_id: "w1".into(),
        attempt: Some(attempt),
        outcome: Some(pb::report_attempt_request::Outcome::Succeeded(succeeded)),
        log: Vec::new(),
    };
    assert!(c.report_attempt(report).await.expect("report").into_inner().committed);

    // The watch follows the job to its end, then ends.
    let mut states = vec![first.state];
    while let Some(status) = next(&mut watch).await {
        if states.last() != Some(&status.state) {
            states.push(status.state);
        }
    }
    assert_eq!(states.last().map(String::as_str), Some("succeeded"), "{states:?}");
    assert!(out.join("_SUCCESS").exists());
    // An ended job leaves something for heartbeats (its data to forget).
    loop {
        let nudge = next(&mut nudges).await.expect("a nudge");
        if nudge.heartbeat {
            break;
        }
    }
    // Another worker's call is refused a watch it has no right to.
    let mut user = client(&running.url, "not the token").await;
    let refused = user.watch_work(pb::WatchWorkRequest { worker_id: "w1".into() }).await.expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let refused = user.watch_job(pb::GetJobRequest { job_id: id }).await.expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let missing = c.watch_job(pb::GetJobRequest { job_id: id + 1 }).await.expect_err("no such job");
    assert_eq!(missing.code(), tonic::Code::NotFound);

    // A graceful stop ends the open streams instead of waiting for them.
    tokio::time::timeout(Duration::from_secs(10), running.stop()).await.expect("the server stops with streams open");
    assert_eq!(nudges.message().await.ok().flatten(), None, "the nudge stream ended");
}
