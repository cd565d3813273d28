//! The coordinator's gRPC service in-process, on 127.0.0.1: the token is
//! required, malformed requests from a buggy worker are refused (and the
//! coordinator keeps serving), and state survives a restart.

use std::time::Duration;

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
    let config = CoordinatorConfig {
        state_url: state.to_owned(),
        token: "t0ken".into(),
        policy: Policy::with_timeouts(10_000, 60_000, false),
        heartbeat_interval: Duration::from_millis(200),
    };
    let coordinator = Coordinator::open(config).await.expect("open");
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

async fn client(
    url: &str,
    token: &str,
) -> pb::coordinator_client::CoordinatorClient<tonic::service::interceptor::InterceptedService<Channel, pb::TokenAttach>>
{
    let channel = Channel::from_shared(url.to_owned()).expect("url").connect().await.expect("connect");
    pb::coordinator_client::CoordinatorClient::with_interceptor(channel, pb::TokenAttach::new(token).expect("token"))
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
    let garbage = pb::SubmitJobRequest { spec_json: "{".into(), plan_json: "{}".into(), priority: 0 };
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
async fn a_submitted_plan_beyond_the_bounds_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = start(&format!("sqlite://{}", dir.path().join("q.db").display())).await;
    let mut c = client(&running.url, "t0ken").await;
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a b\n").expect("write");
    let out = dir.path().join("out");
    let spec = quern_core::JobSpec::new("wordcount", vec![input.display().to_string()], out.display().to_string());
    // A client that skipped the checks: 20,000 reducers in the plan.
    let plan = quern_core::JobPlan {
        splits: Vec::new(),
        outputs: vec![quern_core::PlannedOutput { name: String::new(), reducers: 20_000, first_partition: 0 }],
        partitions: 20_000,
    };
    let request = pb::SubmitJobRequest {
        spec_json: serde_json::to_string(&spec).expect("spec"),
        plan_json: serde_json::to_string(&plan).expect("plan"),
        priority: 0,
    };
    let err = c.submit_job(request).await.expect_err("refused");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("at most 10000 reducers"), "{}", err.message());
    assert!(!out.exists(), "a refused job creates no output");
    assert!(c.list_jobs(pb::ListJobsRequest {}).await.expect("jobs").into_inner().jobs.is_empty());
    running.stop().await;
}
