//! The specs and plans of the jobs this worker runs attempts of: an
//! assignment names its job only, so each is fetched from the coordinator
//! once (`GetJobPlan`), parsed once, shared by the job's attempts, and
//! dropped when the job's data goes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use quern_core::{JobId, JobPlan, JobSpec};
use quern_proto as pb;
use tokio::sync::OnceCell;

use crate::CoordinatorClient;
use crate::code::CodeCache;

/// A job's spec and plan, and where its code files are.
#[derive(Debug)]
pub(crate) struct JobFiles {
    pub(crate) spec: JobSpec,
    pub(crate) plan: JobPlan,
    /// The directory holding the job's code files by hash, when it ships
    /// any (they are all there).
    pub(crate) code_dir: Option<std::path::PathBuf>,
}

/// Why a job's spec and plan could not be had.
#[derive(Debug)]
pub(crate) struct Unavailable {
    pub(crate) message: String,
    /// Another try may work (the coordinator could not be reached), as
    /// opposed to a spec or plan that does not parse.
    pub(crate) retryable: bool,
}

/// The jobs fetched so far. Attempts of one job that start together wait
/// for one fetch.
pub(crate) struct JobCache {
    jobs: Mutex<HashMap<JobId, Arc<OnceCell<Arc<JobFiles>>>>>,
    code: CodeCache,
}

impl JobCache {
    /// No job yet; code files are kept in `code`.
    pub(crate) fn new(code: CodeCache) -> JobCache {
        JobCache { jobs: Mutex::default(), code }
    }

    /// The spec and plan of `job`, fetched with `client` the first time.
    /// A failed fetch is tried again by the next attempt that asks.
    pub(crate) async fn get(&self, job: JobId, client: &CoordinatorClient) -> Result<Arc<JobFiles>, Unavailable> {
        let cell = self.jobs.lock().unwrap_or_else(PoisonError::into_inner).entry(job).or_default().clone();
        cell.get_or_try_init(|| async {
            let request = pb::GetJobPlanRequest { job_id: job.0 };
            let answer = client.clone().get_job_plan(request).await.map_err(|s| Unavailable {
                message: format!("fetching job {job}'s plan from the coordinator: {}", s.message()),
                retryable: true,
            })?;
            let answer = answer.into_inner();
            let bad = |what: &str, e: serde_json::Error| Unavailable {
                message: format!("the coordinator sent a bad {what} for job {job}: {e}"),
                retryable: false,
            };
            let spec: JobSpec = serde_json::from_str(&answer.spec_json).map_err(|e| bad("spec", e))?;
            let plan = serde_json::from_str(&answer.plan_json).map_err(|e| bad("plan", e))?;
            let code_dir = if spec.code.is_empty() {
                None
            } else {
                let dir = self
                    .code
                    .ensure(&spec.code, client)
                    .await
                    .map_err(|message| Unavailable { message, retryable: true })?;
                Some(dir.to_path_buf())
            };
            Ok(Arc::new(JobFiles { spec, plan, code_dir }))
        })
        .await
        .cloned()
    }

    /// Drops an ended job's spec and plan.
    pub(crate) fn forget(&self, job: JobId) {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner).remove(&job);
    }
}
