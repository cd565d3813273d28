//! Every conversion between the protocol's messages and the coordinator's
//! domain types, in one place: `From` for answers, `TryFrom` (refusing a
//! malformed message with INVALID_ARGUMENT) for requests. Conversions of
//! `quern-core` ids are `quern_proto`'s.

use quern_core::{AppInfo, AttemptId, Counters, Failure, JobId, TaskId};
use quern_proto as pb;
use tonic::Status;

use crate::HeartbeatAnswer;
use crate::cluster::{Assignment, Outcome, ReportedIndex};
use crate::handle::{JobView, PlanAnswer, Registration, WorkerView};
use crate::store::StoredAttempt;

/// Refuses a malformed request, and says so in the log: a buggy peer is
/// worth knowing about, but never worth crashing for.
pub(super) fn bad(message: impl Into<String>) -> Status {
    let message = message.into();
    tracing::warn!("rejected a malformed request: {message}");
    Status::invalid_argument(message)
}

/// Decodes a request's attempt field, refusing a malformed one.
pub(super) fn attempt_from(r: Option<&pb::AttemptRef>) -> Result<(JobId, AttemptId), Status> {
    pb::attempt_from_wire(r).map_err(|e| bad(e.to_string()))
}

fn attempt_to(job: JobId, a: AttemptId) -> pb::AttemptRef {
    pb::AttemptRef::from((job, a))
}

impl From<pb::RegisterWorkerRequest> for Registration {
    fn from(r: pb::RegisterWorkerRequest) -> Registration {
        // A worker that describes its apps is believed; an older one that
        // names them only gets bare descriptions.
        let apps = if r.app_descriptions.is_empty() {
            r.apps.into_iter().map(AppInfo::named).collect()
        } else {
            r.app_descriptions.into_iter().map(AppInfo::from).collect()
        };
        Registration {
            worker_id: r.worker_id.into(),
            host: r.host,
            shuffle_address: r.shuffle_address,
            slots: r.slots,
            apps,
            version: r.version,
            held_jobs: r.held_jobs.into_iter().map(JobId).collect(),
        }
    }
}

impl From<HeartbeatAnswer> for pb::HeartbeatResponse {
    fn from(answer: HeartbeatAnswer) -> pb::HeartbeatResponse {
        pb::HeartbeatResponse {
            reregister: answer.reregister,
            cancel: answer.cancel.into_iter().map(|(j, a)| attempt_to(j, a)).collect(),
            forget_jobs: answer.forget_jobs.iter().map(|j| j.0).collect(),
            plans: answer
                .plans
                .into_iter()
                .map(|p| pb::PlanRequest { ticket: p.ticket, spec_json: p.spec_json.to_string() })
                .collect(),
        }
    }
}

/// A heartbeat's progress of running attempts: (job, attempt, fraction,
/// records).
pub(super) fn progress_from(running: Vec<pb::AttemptProgress>) -> Result<Vec<(JobId, AttemptId, f64, u64)>, Status> {
    running
        .into_iter()
        .map(|p| {
            let (job, attempt) = attempt_from(p.attempt.as_ref())?;
            Ok((job, attempt, p.fraction, p.records))
        })
        .collect()
}

impl TryFrom<Option<pb::report_plan_request::Result>> for PlanAnswer {
    type Error = Status;

    fn try_from(result: Option<pb::report_plan_request::Result>) -> Result<PlanAnswer, Status> {
        use pb::report_plan_request::Result as R;
        Ok(match result {
            Some(R::PlanJson(json)) => {
                PlanAnswer::Planned(serde_json::from_str(&json).map_err(|e| bad(format!("plan_json: {e}")))?)
            }
            Some(R::Refused(refused)) => PlanAnswer::Refused(refused.message),
            Some(R::Failed(message)) => PlanAnswer::Failed(message),
            None => return Err(bad("result is missing")),
        })
    }
}

impl TryFrom<Option<pb::report_attempt_request::Outcome>> for Outcome {
    type Error = Status;

    fn try_from(outcome: Option<pb::report_attempt_request::Outcome>) -> Result<Outcome, Status> {
        use pb::report_attempt_request::Outcome as O;
        Ok(match outcome {
            Some(O::Succeeded(s)) => {
                let counters: Counters =
                    serde_json::from_str(&s.counters_json).map_err(|e| bad(format!("counters_json: {e}")))?;
                let map_output = if s.map_output_json.is_empty() {
                    None
                } else {
                    Some(
                        serde_json::from_str::<ReportedIndex>(&s.map_output_json)
                            .map_err(|e| bad(format!("map_output_json: {e}")))?,
                    )
                };
                let output_digest = (!s.output_digest.is_empty()).then_some(s.output_digest);
                Outcome::Succeeded { counters, map_output, output_digest }
            }
            Some(O::Failed(f)) => Outcome::Failed(Failure { message: f.message, retryable: f.retryable }),
            Some(O::FetchFailed(f)) => {
                let mut maps = vec![f.map_index];
                maps.extend(f.more_map_indexes);
                Outcome::FetchFailed { maps, message: f.message }
            }
            Some(O::Cancelled(_)) => Outcome::Cancelled,
            None => return Err(bad("outcome is missing")),
        })
    }
}

impl From<Assignment> for pb::TaskAssignment {
    fn from(a: Assignment) -> pb::TaskAssignment {
        pb::TaskAssignment {
            attempt: Some(attempt_to(a.job, a.attempt)),
            inputs: a
                .inputs
                .into_iter()
                .map(|(map_index, loc, seg)| pb::MapOutputLocation {
                    map_index,
                    worker_id: loc.worker_id.to_string(),
                    shuffle_address: loc.shuffle_address,
                    path: loc.path,
                    segment: Some(seg.into()),
                })
                .collect(),
        }
    }
}

fn counts_to(p: quern_core::PhaseProgress) -> pb::PhaseCounts {
    pb::PhaseCounts { total: p.total, pending: p.pending, running: p.running, succeeded: p.succeeded, failed: p.failed }
}

impl From<JobView> for pb::JobStatus {
    fn from(job: JobView) -> pb::JobStatus {
        pb::JobStatus {
            job_id: job.id.0,
            app: job.app,
            output: job.output,
            state: job.state.as_str().to_owned(),
            phase: job.stage.to_owned(),
            error: job.error,
            priority: job.priority,
            maps: Some(counts_to(job.maps)),
            reduces: Some(counts_to(job.reduces)),
            // Counters are plain numbers and names: they always serialize.
            counters_json: serde_json::to_string(&job.counters).unwrap_or_default(),
            submitted_at_ms: job.submitted_ms,
            started_at_ms: job.started_ms,
            finished_at_ms: job.finished_ms,
            input_bytes: job.input_bytes,
            owner: job.owner,
            code: job.code.iter().map(|(name, hash)| (name.clone(), hash.to_string())).collect(),
            // GetJob adds them (from the store).
            events: Vec::new(),
            running: job
                .running
                .into_iter()
                .map(|r| pb::RunningAttempt {
                    attempt: Some(attempt_to(job.id, r.attempt)),
                    worker_id: r.worker_id.to_string(),
                    fraction: r.fraction,
                    records: r.records,
                    started_at_ms: r.started_ms,
                })
                .collect(),
        }
    }
}

impl From<WorkerView> for pb::WorkerStatus {
    fn from(w: WorkerView) -> pb::WorkerStatus {
        let apps = w.row.app_names();
        pb::WorkerStatus {
            worker_id: w.row.id.to_string(),
            host: w.row.host,
            shuffle_address: w.row.shuffle_address,
            slots: w.row.slots,
            running: w.running,
            apps,
            version: w.row.version,
            state: w.health.to_string(),
            last_heartbeat_ms: w.row.last_heartbeat_ms,
            blacklisted_until_ms: w.blacklisted_until_ms,
            excluded_by_jobs: w.excluded_by_jobs.iter().map(|j| j.0).collect(),
        }
    }
}

/// An attempt of job `job` with its log.
pub(super) fn attempt_log(job: JobId, a: StoredAttempt) -> pb::AttemptLog {
    pb::AttemptLog {
        attempt: Some(attempt_to(job, a.attempt)),
        worker_id: a.worker_id.to_string(),
        outcome: a.outcome.map_or("running", crate::state::AttemptEnd::as_str).to_owned(),
        error: a.error,
        log: a.log,
        started_at_ms: a.started_at_ms,
        finished_at_ms: a.finished_at_ms,
        output_digest: a.output_digest,
    }
}

/// Parses `m-00003` / `r-1` into a task id.
pub(super) fn parse_task(s: &str) -> Result<TaskId, Status> {
    s.parse().map_err(|e: quern_core::BadTaskName| bad(e.to_string()))
}

/// A stored chain as the wire shows it.
pub(crate) fn chain_status(chain: crate::store::StoredChain) -> pb::ChainStatus {
    pb::ChainStatus {
        chain_id: chain.id.0,
        state: chain.state.as_str().to_owned(),
        error: chain.error,
        step_jobs: chain.jobs.iter().map(|j| j.map_or(0, |j| j.0)).collect(),
        owner: chain.owner,
    }
}

impl From<crate::cluster::JobEvent> for pb::JobEvent {
    fn from(e: crate::cluster::JobEvent) -> pb::JobEvent {
        pb::JobEvent { at_ms: e.at_ms, reason: e.reason, message: e.message }
    }
}
