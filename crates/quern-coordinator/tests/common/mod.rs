//! What the coordinator's tests share: playing the worker that plans a
//! submitted spec; waiting for a job to end.

use quern_coordinator::{CoordinatorHandle, Error, JobView, PlanAnswer};
use quern_core::{JobId, JobPlan, JobSpec};

/// Submits `spec` and answers its planning request as `worker` would, with
/// `plan`; returns what the submission returned.
pub async fn submit_planned(
    handle: &CoordinatorHandle,
    worker: &str,
    spec: JobSpec,
    plan: JobPlan,
) -> Result<JobId, Error> {
    let submission = tokio::spawn({
        let handle = handle.clone();
        async move { handle.submit(spec, 0).await }
    });
    let mut plan = Some(plan);
    while !submission.is_finished() {
        let answer = handle.heartbeat(worker, &[]).await?;
        for request in answer.plans {
            if let Some(plan) = plan.take() {
                handle.report_plan(worker, request.ticket, PlanAnswer::Planned(plan)).await;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    submission.await.map_err(|e| Error::BadRequest(format!("the submission panicked: {e}")))?
}

/// Waits (up to 10 s) until job `id` has ended (its output commit runs
/// after the decision that all its tasks committed), and returns it.
pub async fn ended(handle: &CoordinatorHandle, id: JobId) -> JobView {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let job = handle.job(id).await.expect("job");
        if job.state.is_terminal() {
            return job;
        }
        assert!(tokio::time::Instant::now() < deadline, "job {id} did not end: {job:?}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
