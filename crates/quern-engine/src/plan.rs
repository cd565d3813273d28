//! Planning a job: from a spec and its app to a [`JobPlan`] (inputs
//! resolved, splits cut, outputs numbered). The embedded runner plans this
//! way, and so does a cluster worker asked by the coordinator to plan a
//! submitted spec (the coordinator never runs user code: building the app
//! from its parameters and asking its input format whether files split are
//! user code). [`PlanOutcome`] is what such a planning process answers.

use quern_core::{App, JobPlan, JobSpec};
use quern_storage::{Storage, plan_splits};
use serde::{Deserialize, Serialize};

use crate::Error;

/// Plans `spec` for `app`: checks the spec, resolves every input (each must
/// exist and be readable) and cuts the splits. Does not look at the output,
/// whose owner (the runner, the coordinator) claims it.
pub fn plan_job(spec: &JobSpec, app: &dyn App, storage: &Storage) -> Result<JobPlan, Error> {
    spec.validate()?;
    let files = storage.resolve_inputs(&spec.inputs)?;
    let splits = plan_splits(&files, spec.split_size, app.input_format().splittable())?;
    Ok(JobPlan::new(spec, app, splits)?)
}

/// How planning a submitted spec ended, as a planning process reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlanOutcome {
    /// The plan.
    Planned(JobPlan),
    /// The spec cannot run (unknown app or parameter, missing input, bad
    /// value): the submission is refused.
    Refused(String),
    /// Planning failed for another reason (an unreachable store): the
    /// submission fails, and may be tried again.
    Failed(String),
}

impl PlanOutcome {
    /// The outcome of planning with `result`, whose errors are classified as
    /// refusals or failures.
    pub fn of(result: Result<JobPlan, Error>) -> PlanOutcome {
        match result {
            Ok(plan) => PlanOutcome::Planned(plan),
            Err(e) if e.is_refusal() => PlanOutcome::Refused(e.to_string()),
            Err(e) => PlanOutcome::Failed(e.to_string()),
        }
    }
}
