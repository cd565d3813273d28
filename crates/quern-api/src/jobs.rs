//! Jobs: list, submit, one job, kill, its tasks, counters, events and logs.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use quern_core::{JobId, JobSpec, TaskId, Tuning};

use crate::dto::{AttemptLog, Job, JobCounters, JobEvent, JobPage, JobQuery, Killed, NewJob, Task};
use crate::{ApiError, ApiState, Authorized};

const MAX_PAGE: usize = 1000;

/// Jobs, newest first, filtered and paged.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobQuery), security(("bearer" = [])),
    responses((status = 200, body = JobPage), (status = 400, body = crate::ErrorBody),
        (status = 401, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody)))]
pub(crate) async fn list(
    Authorized(caller, _): Authorized,
    State(s): State<ApiState>,
    query: Result<Query<JobQuery>, QueryRejection>,
) -> Result<Json<JobPage>, ApiError> {
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::unprocessable(format!("limit: {limit} is not between 1 and {MAX_PAGE}")));
    }
    let mut jobs: Vec<Job> = s.handle.jobs().await?.into_iter().map(Job::from).collect();
    jobs.retain(|j| {
        caller.may_see(&j.owner)
            && q.state.is_none_or(|state| j.state == state)
            && q.owner.as_ref().is_none_or(|owner| j.owner == *owner)
    });
    jobs.reverse();
    let total = jobs.len();
    let jobs = jobs.into_iter().skip(q.offset.unwrap_or(0)).take(limit).collect();
    Ok(Json(JobPage { jobs, total }))
}

/// Submits a job as its spec: a worker that has the app plans it; the
/// answer comes once the job exists (or the spec is refused, creating
/// nothing).
#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs", request_body = NewJob, security(("bearer" = [])),
    responses((status = 201, body = Job), (status = 400, body = crate::ErrorBody),
        (status = 401, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody),
        (status = 422, body = crate::ErrorBody), (status = 503, body = crate::ErrorBody)))]
pub(crate) async fn submit(
    Authorized(caller, _): Authorized,
    State(s): State<ApiState>,
    body: Result<Json<NewJob>, JsonRejection>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    let Json(new) = body?;
    let output = s.files.output_location(&new.output)?;
    let mut spec = JobSpec::new(new.app, new.inputs, output);
    spec.params = new.params;
    spec.reducers = new.reducers;
    spec.tune(Tuning { split_size: new.split_size, sort_buffer: new.sort_buffer, max_attempts: new.max_attempts });
    spec.skip_bad_records = new.skip_bad_records;
    spec.shuffle = new.shuffle;
    spec.partitioner = new.partitioner.map(Into::into);
    for (name, hash) in new.code {
        let hash =
            hash.parse().map_err(|e: quern_core::BadCodeHash| ApiError::unprocessable(format!("code.{name}: {e}")))?;
        spec.code.insert(name, hash);
    }
    spec.validate().map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let id = s.handle.submit_as(spec, new.priority, caller.name()).await?;
    Ok((StatusCode::CREATED, Json(s.handle.job(id).await?.into())))
}

fn job_id(path: Result<Path<u64>, PathRejection>) -> Result<JobId, ApiError> {
    Ok(JobId(path?.0))
}

/// The job, if the caller may see it: another user's job is as absent as a
/// job that does not exist.
pub(crate) async fn visible(
    s: &ApiState,
    caller: &crate::Caller,
    id: JobId,
) -> Result<quern_coordinator::JobView, ApiError> {
    let job = s.handle.job(id).await?;
    if !caller.may_see(&job.owner) {
        return Err(quern_coordinator::Error::NoSuchJob(id).into());
    }
    Ok(job)
}

/// One job.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = u64, Path, description = "The job's id")),
    security(("bearer" = [])),
    responses((status = 200, body = Job), (status = 401, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody)))]
pub(crate) async fn get(
    Authorized(caller, _): Authorized,
    State(s): State<ApiState>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(visible(&s, &caller, job_id(id)?).await?.into()))
}

/// Kills a job: its attempts stop and its output is removed before the
/// answer.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/kill", tag = "jobs",
    params(("id" = u64, Path, description = "The job's id")), security(("bearer" = [])),
    responses((status = 200, body = Killed), (status = 401, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody)))]
pub(crate) async fn kill(
    Authorized(caller, _): Authorized,
    State(s): State<ApiState>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Json<Killed>, ApiError> {
    let job = visible(&s, &caller, job_id(id)?).await?;
    Ok(Json(Killed { killed: s.handle.kill(job.id).await? }))
}

/// Every task of a job, maps then reduces, with its attempts.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/tasks", tag = "jobs",
    params(("id" = u64, Path, description = "The job's id")), security(("bearer" = [])),
    responses((status = 200, body = [Task]), (status = 401, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody)))]
pub(crate) async fn tasks(
    Authorized(caller, _): Authorized,
    State(s): State<ApiState>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Json<Vec<Task>>, ApiError> {
    let job = visible(&s, &caller, job_id(id)?).await?;
    Ok(Json(s.handle.tasks(job.id).await?.into_iter().map(Into::into).collect()))
}

/// A job's counters (of its committed attempts).
#[utoipa::path(get, path = "/api/v1/jobs/{id}/counters", tag = "jobs",
    params(("id" = u64, Path, description = "The job's id")), security(("bearer" = [])),
    responses((status = 200, body = JobCounters), (status = 401, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody)))]
pub(crate) async fn counters(
    Authorized(caller, _): Authorized,
    State(s): State<ApiState>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Json<JobCounters>, ApiError> {
    Ok(Json(visible(&s, &caller, job_id(id)?).await?.counters.into()))
}

/// What happened to a job that its state does not say, oldest first: a
/// worker lost with its attempts (with the platform's reason, such as
/// Kubernetes' `OOMKilled` or `Evicted`), a worker launched for it that
/// never started.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/events", tag = "jobs",
    params(("id" = u64, Path, description = "The job's id")), security(("bearer" = [])),
    responses((status = 200, body = Vec<JobEvent>), (status = 401, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody)))]
pub(crate) async fn events(
    Authorized(caller, _): Authorized,
    State(s): State<ApiState>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Json<Vec<JobEvent>>, ApiError> {
    let job = visible(&s, &caller, job_id(id)?).await?;
    Ok(Json(s.handle.job_events(job.id).await?.into_iter().map(Into::into).collect()))
}

/// The logs of a task's attempts.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/tasks/{task}/log", tag = "jobs",
    params(("id" = u64, Path, description = "The job's id"), ("task" = String, Path, description = "m-00003 or r-00001")),
    security(("bearer" = [])),
    responses((status = 200, body = [AttemptLog]), (status = 400, body = crate::ErrorBody),
        (status = 401, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody)))]
pub(crate) async fn log(
    Authorized(caller, _): Authorized,
    State(s): State<ApiState>,
    path: Result<Path<(u64, String)>, PathRejection>,
) -> Result<Json<Vec<AttemptLog>>, ApiError> {
    let Path((id, task)) = path?;
    let task: TaskId = task.parse().map_err(|e: quern_core::BadTaskName| ApiError::bad_request(e.to_string()))?;
    let job = visible(&s, &caller, JobId(id)).await?;
    let known = match task.kind {
        quern_core::TaskKind::Map => task.index < job.maps.total,
        quern_core::TaskKind::Reduce => task.index < job.reduces.total,
    };
    if !known {
        return Err(ApiError::not_found(format!("job {id} has no task {task}")));
    }
    let attempts = s.handle.logs(JobId(id), Some(task)).await?;
    Ok(Json(
        attempts
            .into_iter()
            .map(|a| AttemptLog {
                attempt: a.attempt.attempt,
                worker: a.worker_id.to_string(),
                outcome: a.outcome.map(|o| o.as_str().to_owned()),
                error: a.error,
                log: String::from_utf8_lossy(&a.log).into_owned(),
            })
            .collect(),
    ))
}
