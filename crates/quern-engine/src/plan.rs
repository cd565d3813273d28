//! Planning a job: from a spec and its app to a [`JobPlan`] (inputs
//! resolved, splits cut, outputs numbered). The embedded runner plans this
//! way, and so does a cluster worker asked by the coordinator to plan a
//! submitted spec (the coordinator never runs user code: building the app
//! from its parameters, asking its input format whether files split and
//! sampling its keys for a total order are user code). [`PlanOutcome`] is what such a planning process answers.

use std::hash::{BuildHasher, RandomState};
use std::time::{SystemTime, UNIX_EPOCH};

use quern_core::{App, JobPlan, JobSpec, Partitioner};
use quern_storage::{Location, Storage, StorageError, plan_splits};

use crate::code::JobCode;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Plans `spec` for `app`: checks the spec, resolves every input (each must
/// exist and be readable) and cuts the splits. Does not look at the output,
/// whose owner (the runner, the coordinator) claims it.
///
/// A job partitioned in total order ([`JobPlan::partitioner`]) gets each
/// output's cut points here, from a bounded sample of its input's keys read
/// through the app's own input format and `map` (at most 4 MiB from 64
/// evenly spaced places, 100,000 keys): the plan carries them to every
/// attempt, so partitioning is the same in every process.
///
/// A spec with a `shuffle` location gets its job's own prefix under it
/// ([`JobPlan::shuffle`], a URL): `LOCATION/job-TIME-PID-RANDOM`, so that
/// jobs sharing one `--shuffle` never share a key. A shuffle location that
/// does not parse refuses the job. The sample is mapped in scratch
/// directories that hold the job's `code` files, as an attempt's does.
pub fn plan_job(spec: &JobSpec, app: &dyn App, storage: &Storage, code: JobCode<'_>) -> Result<JobPlan, Error> {
    spec.validate()?;
    let shuffle = spec.shuffle.as_deref().map(job_shuffle_prefix).transpose()?;
    let files = storage.resolve_inputs(&spec.inputs)?;
    let splits = plan_splits(&files, spec.split_size, app.input_format().splittable())?;
    let mut plan = JobPlan::new(spec, app, splits)?;
    plan.shuffle = shuffle;
    if plan.partitioner == Partitioner::TotalOrder {
        crate::sample::choose_cut_points(&mut plan, app, storage, code, crate::sample::Budget::DEFAULT);
        plan.check(spec)?;
    }
    Ok(plan)
}

/// A new job's shuffle prefix under `base`, as a URL.
fn job_shuffle_prefix(base: &str) -> Result<String, StorageError> {
    let location = Location::parse(base).map_err(|e| match e {
        StorageError::BadLocation { location, message } => {
            StorageError::BadLocation { location: format!("--shuffle {location}"), message }
        }
        e => e,
    })?;
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let random = RandomState::new().hash_one((millis, std::process::id())) as u32;
    let key = format!("job-{millis:x}-{:x}-{random:08x}", std::process::id());
    location.join(&key).to_url()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_gets_a_shuffle_prefix_of_its_own_as_a_url() {
        let a = job_shuffle_prefix("s3://bucket/shuffle/").expect("s3");
        let b = job_shuffle_prefix("s3://bucket/shuffle").expect("s3");
        assert!(a.starts_with("s3://bucket/shuffle/job-"), "{a}");
        assert_ne!(a, b, "two jobs, two prefixes");
        let local = job_shuffle_prefix("relative/dir").expect("local");
        let cwd = std::env::current_dir().expect("cwd").display().to_string();
        assert!(local.starts_with(&format!("file://{cwd}/relative/dir/job-")), "{local}");
        let e = job_shuffle_prefix("gs://bucket/x").expect_err("unsupported");
        assert!(e.is_refusal() && e.to_string().contains("--shuffle gs://bucket/x"), "{e}");
    }
}
