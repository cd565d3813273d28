//! quern's data path on one machine, and the embedded runner.
//!
//! # Overview
//! - [`run_job`]: runs a [`quern_core::JobSpec`] with an app on this machine,
//!   with [`RunOptions`] (parallelism, scratch directory, cancellation,
//!   live [`JobProgress`]), returning a [`JobReport`] of counters and files.
//! - [`plan_job`]: a spec and its app to a `JobPlan` (inputs resolved,
//!   splits cut, and for a total order the cut points chosen from a bounded
//!   sample of the input's keys), as the runner and a cluster worker
//!   planning a submitted spec do it; [`PlanOutcome`] is a planning
//!   process's answer.
//! - The pieces, in data-path order: [`task`] (map and reduce attempts),
//!   [`collect`] (sort buffer, combine table, spills), [`run`] (the on-disk
//!   run format), [`merge`] (k-way merge, grouping), [`runner`] (slots
//!   pulling attempts from the scheduler), [`shuffle`] (map outputs through
//!   storage with `--shuffle`: upload, and a reduce's fetch of a segment).
//!   Inputs, outputs, and the shuffle's objects are `quern-storage`'s.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use quern_core::{App, AppError, JobSpec, MapContext, Record};
//!
//! struct Lines;
//! impl App for Lines {
//!     fn map(&self, r: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
//!         ctx.emit(r.data, b"");
//!         Ok(())
//!     }
//! }
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("in.txt"), "b\na\nb\n")?;
//! let input = dir.path().join("in.txt").display().to_string();
//! let output = dir.path().join("out").display().to_string();
//! let spec = JobSpec::new("lines", vec![input], output);
//! let report = quern_engine::run_job(&spec, Arc::new(Lines), &Default::default())?;
//! assert_eq!(std::fs::read_to_string(&report.files[0])?, "a\nb\nb\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Invariants
//! - Memory per map task is bounded by the spec's `sort_buffer`; per merge by
//!   the merge factor; nothing holds all of a key's values.
//! - A part file outside `OUTPUT/_temporary` is complete; `_SUCCESS` is
//!   written last and only when every task committed.
//! - This crate knows nothing of RPC, HTTP or Kubernetes.

pub mod aggregate;
pub mod attempt;
mod chain;
mod code;
pub mod collect;
mod digest;
mod error;
pub mod merge;
mod plan;
pub mod run;
pub mod runner;
mod sample;
pub mod shuffle;
pub mod task;

pub use chain::{ChainError, StepOutcome, run_chain};
pub use code::JobCode;
pub use digest::OutputDigest;
pub use error::{Error, TaskError};
pub use plan::{PlanOutcome, plan_job};
pub use runner::{DEFAULT_MERGE_FACTOR, JobProgress, JobReport, RunOptions, run_job};
