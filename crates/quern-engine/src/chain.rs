//! Runs a chain of jobs ([`ChainSpec`]) on this machine, step after step,
//! each through [`run_job`], and resumes a failed one from its failed step.
//!
//! The steps before the last write into `OUTPUT.steps/step-N`, beside the
//! chain's output, with the chain itself recorded as
//! `OUTPUT.steps/_chain.json`. They stay there until the last step has
//! committed, so that a chain that failed can be resumed: steps whose
//! output is complete (`_SUCCESS`) are not run again, provided the chain is
//! the one recorded. Then `OUTPUT.steps` is removed.

use std::sync::Arc;

use quern_core::{AppRegistry, ChainSpec};
use quern_storage::{Location, StorageError};

use crate::error::Error;
use crate::runner::{JobReport, RunOptions, run_job};

/// The record of the chain, in its steps directory.
const RECORD: &str = "_chain.json";

/// How one step of a chain went.
#[derive(Debug)]
pub enum StepOutcome {
    /// It ran now.
    Ran(Box<JobReport>),
    /// Its output was complete from an earlier run of the chain.
    Kept {
        /// That output.
        output: String,
    },
}

/// Why a chain did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The chain cannot start (a bad spec, a leftover or missing record).
    #[error(transparent)]
    Refused(Error),
    /// A step failed; the steps before it kept their outputs.
    #[error("step {step} of {steps} ({app}) failed: {cause}{}", resume_hint(*.step))]
    Step {
        /// The step, from 1.
        step: usize,
        /// How many steps the chain has.
        steps: usize,
        /// Its app.
        app: String,
        /// Why (part of the message, not a `source()`).
        cause: Error,
    },
}

fn resume_hint(step: usize) -> &'static str {
    if step > 1 {
        "; the earlier steps' outputs are kept: run it again with --resume to start from this step"
    } else {
        ""
    }
}

impl ChainError {
    /// Whether the chain was refused before any step ran.
    pub fn is_refusal(&self) -> bool {
        match self {
            ChainError::Refused(_) => true,
            ChainError::Step { step: 1, cause, .. } => cause.is_refusal(),
            ChainError::Step { .. } => false,
        }
    }
}

/// Runs `chain`'s steps in order with apps from `apps`; with `resume`,
/// continues the earlier, failed run of the same chain from its first step
/// without a complete output. Returns each step's outcome.
pub fn run_chain(
    chain: &ChainSpec,
    apps: &AppRegistry,
    opts: &RunOptions,
    resume: bool,
) -> Result<Vec<StepOutcome>, ChainError> {
    chain.validate().map_err(|e| ChainError::Refused(e.into()))?;
    let storage = &opts.storage;
    let steps_dir = chain.steps_dir();
    let record = Location::parse(&steps_dir).map_err(|e| ChainError::Refused(e.into()))?.join(RECORD).to_string();
    let recorded = read_record(opts, &record).map_err(ChainError::Refused)?;
    let this =
        serde_json::to_string_pretty(chain).map_err(|e| ChainError::Refused(io_error("encoding", &record, e)))?;
    match (&recorded, resume) {
        (Some(_), false) => {
            return Err(ChainError::Refused(Error::JobFailed {
                message: format!(
                    "{steps_dir} holds the steps of an earlier run of a chain with this output: resume it with \
                     --resume, or remove {steps_dir}"
                ),
            }));
        }
        (None, true) => {
            return Err(ChainError::Refused(Error::JobFailed {
                message: format!("there is no earlier run of this chain to resume: {record} does not exist"),
            }));
        }
        (Some(earlier), true) if *earlier != this => {
            return Err(ChainError::Refused(Error::JobFailed {
                message: format!("{record} records another chain: the job file changed since the chain ran"),
            }));
        }
        _ => {}
    }
    if recorded.is_none() && chain.steps.len() > 1 {
        write_record(opts, &steps_dir, &record, &this).map_err(ChainError::Refused)?;
    }
    let mut outcomes = Vec::with_capacity(chain.steps.len());
    for (i, step) in chain.steps.iter().enumerate() {
        let job = chain.step_job(i);
        let failed =
            |cause: Error| ChainError::Step { step: i + 1, steps: chain.steps.len(), app: step.app.clone(), cause };
        let done = Location::parse(&job.output).map_err(|e| failed(e.into()))?.join("_SUCCESS").to_string();
        if resume && i + 1 < chain.steps.len() && storage.size_of(&done).map_err(|e| failed(e.into()))?.is_some() {
            tracing::info!(step = i + 1, output = job.output, "step kept from the earlier run");
            outcomes.push(StepOutcome::Kept { output: job.output });
            continue;
        }
        tracing::info!(step = i + 1, app = step.app, output = job.output, "step started");
        let app = apps.build(&job.app, &job.params).map_err(|e| failed(e.into()))?;
        let report = run_job(&job, Arc::clone(&app), opts).map_err(failed)?;
        outcomes.push(StepOutcome::Ran(Box::new(report)));
    }
    if chain.steps.len() > 1 {
        storage.delete_prefix(&steps_dir).map_err(|e| ChainError::Refused(e.into()))?;
    }
    Ok(outcomes)
}

fn io_error(context: &'static str, path: &str, cause: impl std::fmt::Display) -> Error {
    Error::Io { context, path: path.to_owned(), cause: std::io::Error::other(cause.to_string()) }
}

/// The chain recorded at `record`, if there is one.
fn read_record(opts: &RunOptions, record: &str) -> Result<Option<String>, Error> {
    let Some(size) = opts.storage.size_of(record)? else { return Ok(None) };
    let reader = match opts.storage.read_range(record, 0, size) {
        Ok(reader) => reader,
        Err(StorageError::Missing { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut { reader }, &mut text).map_err(|e| io_error("reading", record, e))?;
    Ok(Some(text))
}

/// Records the chain at `record`, in `steps_dir`.
fn write_record(opts: &RunOptions, steps_dir: &str, record: &str, text: &str) -> Result<(), Error> {
    let location = Location::parse(steps_dir)?;
    if let Some(dir) = location.as_local() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    }
    let scratch = tempfile::NamedTempFile::new().map_err(|e| io_error("a scratch file for", record, e))?;
    std::fs::write(scratch.path(), text).map_err(|e| Error::io("writing", scratch.path(), e))?;
    opts.storage.upload_file(scratch.path(), record)?;
    Ok(())
}
