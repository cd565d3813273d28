//! quern: MapReduce for data engineers. Write `map` and `reduce` over bytes;
//! run the job embedded in one process today and on a cluster tomorrow,
//! without changing a line.
//!
//! This crate is what an app depends on. It re-exports the app API from
//! `quern-core`, the built-in apps, and [`cli::main`], which gives your own
//! binary the whole `quern` command line with your apps registered.
//!
//! # Example
//! A binary with one extra app (see `examples/jsonl-totals` for a complete
//! one, with its own input format and tests):
//! ```no_run
//! use std::sync::Arc;
//! use quern::{App, AppError, MapContext, Record};
//!
//! struct LineLengths;
//! impl App for LineLengths {
//!     fn map(&self, r: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
//!         ctx.emit(r.data.len().to_string().as_bytes(), b"");
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     let mut apps = quern::builtin_registry();
//!     apps.register("line-lengths", "every line's length", vec![], |_| Ok(Arc::new(LineLengths)));
//!     quern::cli::main(apps)
//! }
//! ```

pub mod cli;
mod cluster;
mod demo;
mod progress;

pub use quern_apps::{Grep, Indexer, Sort, WordCount, builtin_registry, corpus, for_each_word};
pub use quern_core::*;
pub use quern_engine::{JobProgress, JobReport, RunOptions, run_job};
pub use quern_storage::{Location, S3Options, Storage};
