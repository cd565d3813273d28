//! The operator's [`JobService`]: the coordinator over gRPC, with the
//! cluster token, as `quern submit` reaches it.

use async_trait::async_trait;
use quern_core::JobSpec;
use quern_proto as pb;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::crd::PhaseProgress;
use crate::operator::{CoordinatorError, JobService, JobSnapshot};

type Client = pb::coordinator_client::CoordinatorClient<InterceptedService<Channel, pb::TokenAttach>>;

/// A coordinator reached over gRPC.
#[derive(Clone)]
pub struct GrpcJobService {
    client: Client,
}

impl GrpcJobService {
    /// A service for the coordinator at `url` (`http://host:port`), which
    /// connects lazily and reconnects by itself.
    pub fn new(url: &str, token: &str) -> Result<GrpcJobService, CoordinatorError> {
        let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
            .map_err(|e| CoordinatorError::Refused(format!("coordinator address {url}: {e}")))?
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(30));
        let token = pb::TokenAttach::new(token).map_err(|s| CoordinatorError::Refused(s.message().to_owned()))?;
        let client = pb::coordinator_client::CoordinatorClient::with_interceptor(endpoint.connect_lazy(), token)
            .max_decoding_message_size(pb::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(pb::MAX_MESSAGE_BYTES);
        Ok(GrpcJobService { client })
    }
}

fn error(s: tonic::Status) -> CoordinatorError {
    match s.code() {
        tonic::Code::NotFound => CoordinatorError::NotFound,
        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists => {
            CoordinatorError::Refused(s.message().to_owned())
        }
        _ => CoordinatorError::Unavailable(format!("{}: {}", s.code(), s.message())),
    }
}

fn progress(c: Option<pb::PhaseCounts>) -> PhaseProgress {
    let c = c.unwrap_or_default();
    PhaseProgress { total: c.total, succeeded: c.succeeded, running: c.running }
}

#[async_trait]
impl JobService for GrpcJobService {
    async fn submit(&self, spec: &JobSpec, priority: i32) -> Result<u64, CoordinatorError> {
        let spec_json = serde_json::to_string(spec).map_err(|e| CoordinatorError::Refused(e.to_string()))?;
        let request = pb::SubmitJobRequest { spec_json, priority };
        Ok(self.client.clone().submit_job(request).await.map_err(error)?.into_inner().job_id)
    }

    async fn job(&self, id: u64) -> Result<JobSnapshot, CoordinatorError> {
        let job = self.client.clone().get_job(pb::GetJobRequest { job_id: id }).await.map_err(error)?.into_inner();
        let mut counters = std::collections::BTreeMap::new();
        if let Ok(c) = serde_json::from_str::<quern_core::Counters>(&job.counters_json) {
            counters.extend(c.engine.iter().map(|(name, value)| (name.to_string(), value)));
            counters.extend(c.app);
        }
        Ok(JobSnapshot {
            state: job.state,
            maps: progress(job.maps),
            reduces: progress(job.reduces),
            counters,
            output: job.output,
            error: job.error,
        })
    }

    async fn find(&self, output: &str, submitted_after_ms: i64) -> Result<Option<u64>, CoordinatorError> {
        let jobs = self.client.clone().list_jobs(pb::ListJobsRequest {}).await.map_err(error)?.into_inner().jobs;
        Ok(jobs
            .iter()
            .filter(|j| j.output.trim_end_matches('/') == output.trim_end_matches('/'))
            .filter(|j| j.submitted_at_ms >= submitted_after_ms)
            .map(|j| j.job_id)
            .max())
    }

    async fn kill(&self, id: u64) -> Result<(), CoordinatorError> {
        self.client.clone().kill_job(pb::KillJobRequest { job_id: id }).await.map_err(error)?;
        Ok(())
    }
}
