//! Multi-step jobs (mrjob's steps, Hadoop's JobControl): a chain of jobs in
//! which each step reads the output of the step before it.
//!
//! A [`ChainSpec`] is what a job file holds: the first step's inputs, the
//! last step's output, and the steps, each a job without inputs or output
//! ([`StepSpec`]). Step `i`'s output is [`ChainSpec::step_output`]: the
//! chain's output for the last step, and `OUTPUT.steps/step-N` before it,
//! kept until the chain succeeds, so that a failed chain can be resumed
//! from its failed step without running the earlier ones again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::code::CodeHash;
use crate::error::SpecError;
use crate::partition::Partitioner;
use crate::spec::{JobSpec, Tuning};

/// The most steps in one chain.
pub const MAX_STEPS: usize = 100;

/// One step of a chain: a job spec without inputs and output. Fields left
/// out take a job's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// The registered app's name.
    pub app: String,
    /// The app's parameters.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Reducers of every output not in `output_reducers` (`None`: the
    /// app's default; 0: map-only).
    #[serde(default)]
    pub reducers: Option<u32>,
    /// Reducers per named output.
    #[serde(default)]
    pub output_reducers: BTreeMap<String, u32>,
    /// Maximum bytes of one input split.
    #[serde(default)]
    pub split_size: Option<u64>,
    /// Bytes of one map task's sort buffer.
    #[serde(default)]
    pub sort_buffer: Option<u64>,
    /// Attempts per task before the step fails.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Skip (and count) records whose map call panics.
    #[serde(default)]
    pub skip_bad_records: bool,
    /// How keys are split among each output's reducers.
    #[serde(default)]
    pub partitioner: Option<Partitioner>,
    /// Code files put into each attempt's directory, by name and SHA-256.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub code: BTreeMap<String, CodeHash>,
}

impl StepSpec {
    /// A step running `app` with its defaults.
    pub fn new(app: impl Into<String>) -> StepSpec {
        StepSpec {
            app: app.into(),
            params: BTreeMap::new(),
            reducers: None,
            output_reducers: BTreeMap::new(),
            split_size: None,
            sort_buffer: None,
            max_attempts: None,
            skip_bad_records: false,
            partitioner: None,
            code: BTreeMap::new(),
        }
    }
}

/// A chain of steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSpec {
    /// The first step's inputs: files, directories, globs, URLs.
    pub inputs: Vec<String>,
    /// The last step's output; must not exist yet.
    pub output: String,
    /// Where map outputs go between phases, for every step (see
    /// [`JobSpec::shuffle`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shuffle: Option<String>,
    /// The steps, in order.
    pub steps: Vec<StepSpec>,
}

impl ChainSpec {
    /// Where the steps before the last write their outputs:
    /// `OUTPUT.steps`, beside the chain's output.
    pub fn steps_dir(&self) -> String {
        format!("{}.steps", self.output.trim_end_matches('/'))
    }

    /// The output of step `i` (from 0): the chain's output for the last
    /// step, `OUTPUT.steps/step-N` (N from 1) for the others.
    pub fn step_output(&self, i: usize) -> String {
        if i + 1 >= self.steps.len() { self.output.clone() } else { format!("{}/step-{}", self.steps_dir(), i + 1) }
    }

    /// Step `i` as a job: the chain's inputs for the first, the previous
    /// step's output for the others.
    pub fn step_job(&self, i: usize) -> JobSpec {
        let step = &self.steps[i];
        let inputs = if i == 0 { self.inputs.clone() } else { vec![self.step_output(i - 1)] };
        let mut spec = JobSpec::new(step.app.clone(), inputs, self.step_output(i));
        spec.params = step.params.clone();
        spec.reducers = step.reducers;
        spec.output_reducers = step.output_reducers.clone();
        spec.tune(Tuning {
            split_size: step.split_size,
            sort_buffer: step.sort_buffer,
            max_attempts: step.max_attempts,
        });
        spec.skip_bad_records = step.skip_bad_records;
        spec.shuffle = self.shuffle.clone();
        spec.partitioner = step.partitioner;
        spec.code = step.code.clone();
        spec
    }

    /// Checks the chain and each step as a job; an error names the step.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.steps.is_empty() {
            return Err(SpecError::BadField { field: "steps", message: "a chain needs at least one step".into() });
        }
        if self.steps.len() > MAX_STEPS {
            return Err(SpecError::BadField {
                field: "steps",
                message: format!("at most {MAX_STEPS} steps (got {})", self.steps.len()),
            });
        }
        for i in 0..self.steps.len() {
            self.step_job(i).validate().map_err(|e| SpecError::Step { step: i + 1, cause: Box::new(e) })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::DEFAULT_SPLIT_SIZE;

    fn chain() -> ChainSpec {
        serde_json::from_str(
            r#"{"inputs": ["books/"], "output": "/tmp/top/",
                "steps": [{"app": "wordcount", "reducers": 2}, {"app": "top", "params": {"n": "10"}, "reducers": 1}]}"#,
        )
        .expect("a chain")
    }

    #[test]
    fn each_step_reads_the_output_of_the_step_before() {
        let c = chain();
        c.validate().expect("valid");
        let (first, last) = (c.step_job(0), c.step_job(1));
        assert_eq!(
            (first.inputs.as_slice(), first.output.as_str()),
            (&["books/".to_owned()][..], "/tmp/top.steps/step-1")
        );
        assert_eq!(
            (last.inputs.as_slice(), last.output.as_str()),
            (&["/tmp/top.steps/step-1".to_owned()][..], "/tmp/top/")
        );
        assert_eq!((first.app.as_str(), first.reducers, first.split_size), ("wordcount", Some(2), DEFAULT_SPLIT_SIZE));
        assert_eq!(last.params["n"], "10");
    }

    #[test]
    fn a_bad_step_is_named_and_unknown_fields_are_refused() {
        let mut c = chain();
        c.steps[1].max_attempts = Some(0);
        let err = c.validate().expect_err("no attempts");
        assert!(err.to_string().starts_with("step 2: --max-attempts"), "{err}");
        c.steps.clear();
        assert!(c.validate().is_err());
        let typo = r#"{"inputs": ["a"], "output": "b", "steps": [{"app": "wordcount", "reducer": 2}]}"#;
        let err = serde_json::from_str::<ChainSpec>(typo).expect_err("unknown field");
        assert!(err.to_string().contains("unknown field `reducer`"), "{err}");
    }
}
