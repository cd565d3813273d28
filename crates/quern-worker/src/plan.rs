//! Planning a submitted job for the coordinator: the spec goes to a child
//! process (`quern plan`, the same binary, which has the apps) on stdin, and
//! its one answer, a `PlanOutcome`, comes back on stdout. As for attempts,
//! user code (building the app, its input format) never runs in the worker
//! process.

use std::process::Stdio;
use std::time::Duration;

use quern_engine::PlanOutcome;
use quern_proto as pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::CoordinatorClient;
use crate::attempt::read_tail;
use crate::code::CodeCache;

/// How long a planning process may take (listing a large bucket is slow,
/// but not this slow).
const PLAN_TIMEOUT: Duration = Duration::from_secs(300);

/// Plans `spec_json` with `command` and says how it went; the job's code
/// files are fetched first (planning may map a sample through them), and
/// their directory given as `--code-dir`.
pub(crate) async fn plan(
    command: &[std::ffi::OsString],
    spec_json: &str,
    code: &CodeCache,
    client: &CoordinatorClient,
) -> PlanOutcome {
    let Some((program, args)) = command.split_first() else {
        return PlanOutcome::Failed("this worker has no plan command".into());
    };
    let mut code_dir = Vec::new();
    if let Ok(spec) = serde_json::from_str::<quern_core::JobSpec>(spec_json)
        && !spec.code.is_empty()
    {
        match code.ensure(&spec.code, client).await {
            Ok(dir) => code_dir = vec!["--code-dir".into(), dir.as_os_str().to_owned()],
            Err(e) => return PlanOutcome::Failed(e),
        }
    }
    let child = tokio::process::Command::new(program)
        .args(args)
        .args(code_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return PlanOutcome::Failed(format!("starting the planning process: {e}")),
    };
    let log = match child.stderr.take() {
        Some(stderr) => tokio::spawn(read_tail(stderr, 4096)),
        None => tokio::spawn(async { Vec::new() }),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(spec_json.as_bytes()).await;
        let _ = stdin.shutdown().await;
    }
    let mut out = Vec::new();
    let finished = tokio::time::timeout(PLAN_TIMEOUT, async {
        if let Some(mut stdout) = child.stdout.take() {
            let _ = stdout.read_to_end(&mut out).await;
        }
        child.wait().await
    })
    .await;
    let log = log.await.unwrap_or_default();
    let tail = String::from_utf8_lossy(&log[log.len().saturating_sub(400)..]).trim().to_owned();
    let with_tail = |how: String| if tail.is_empty() { how } else { format!("{how}: {tail}") };
    match finished {
        Err(_) => {
            let _ = child.kill().await;
            PlanOutcome::Failed(format!("planning took longer than {}s", PLAN_TIMEOUT.as_secs()))
        }
        Ok(Err(e)) => PlanOutcome::Failed(format!("waiting for the planning process: {e}")),
        Ok(Ok(status)) if !status.success() => {
            PlanOutcome::Failed(with_tail(format!("the planning process ended with {status}")))
        }
        Ok(Ok(_)) => serde_json::from_slice(&out)
            .unwrap_or_else(|e| PlanOutcome::Failed(with_tail(format!("the planning process's answer: {e}")))),
    }
}

/// The report of a planning outcome.
pub(crate) fn report(worker_id: &str, ticket: u64, outcome: PlanOutcome) -> pb::ReportPlanRequest {
    use pb::report_plan_request::Result as R;
    let result = match outcome {
        PlanOutcome::Planned(plan) => match serde_json::to_string(&plan) {
            Ok(json) => R::PlanJson(json),
            Err(e) => R::Failed(format!("encoding the plan: {e}")),
        },
        PlanOutcome::Refused(message) => R::Refused(pb::PlanRefused { message }),
        PlanOutcome::Failed(message) => R::Failed(message),
    };
    pb::ReportPlanRequest { worker_id: worker_id.to_owned(), ticket, result: Some(result) }
}
