//! quern: MapReduce for data engineers. Write `map` and `reduce` over bytes;
//! run the job embedded in one process today and on a cluster tomorrow,
//! without changing a line.
//!
//! This crate is what an app depends on: the app API, the built-in apps, the
//! embedded run, and [`cli::main`], which gives your own binary the whole
//! `quern` command line with your apps registered. Depend on it without its
//! default `coordinator` feature:
//!
//! ```toml
//! [dependencies]
//! quern = { version = "0.1", default-features = false }
//! ```
//!
//! Your binary then runs jobs embedded (`run`), works in a cluster
//! (`worker`, and `task`, the child process a worker runs each attempt in,
//! which is why your apps must be in the worker's binary) and talks to one
//! (`submit`, `jobs`, `status`, …), without compiling the coordinator's
//! state stores (sqlx with SQLite and PostgreSQL). The coordinator runs no
//! app code: run it from the `quern` binary (`cargo install quern`, whose
//! default features include it), or enable `coordinator` here to have it in
//! your binary too.
//!
//! # Overview
//!
//! Writing an app:
//! - [`App`]: `map` over [`Record`]s, `reduce` over a key and its streaming
//!   [`Values`], with [`MapContext`] and [`ReduceContext`] to emit pairs and
//!   count; optionally a [`Combiner`] (emitting through [`CombineOutput`];
//!   one that is a sum of counts says so with an [`Aggregation`], which
//!   the engine then runs natively), a partitioner (the default is
//!   [`partition`], a hash; an app may prefer total order or insist on its
//!   own: [`AppPartitioner`], [`Partitioner`]) and named outputs
//!   ([`OutputDecl`]).
//! - Formats: [`InputFormat`] (reads a [`SplitInput`] into a
//!   [`RecordSink`]) and [`OutputFormat`] (a [`RecordWriter`] per part
//!   file); built in: [`TextLines`], [`WholeFile`], [`TextOutput`].
//! - Errors: [`AppError`] (from user code; retryable unless permanent),
//!   [`InputError`] (from an input format), [`SpecError`] (a bad job or
//!   parameter).
//! - [`Counters`] (with the engine's own, [`EngineCounters`]): what a job
//!   counted, in its report.
//!
//! Registering apps:
//! - [`AppRegistry`]: the apps a binary knows ([`AppInfo`]), each built from
//!   its [`Params`] as declared by its [`ParamSpec`]s.
//! - [`builtin_registry`]: the built-in apps [`WordCount`], [`Indexer`],
//!   [`Grep`], [`Top`] and [`Sort`], and [`StreamingApp`] (`streaming`: a
//!   mapper and reducer as commands in any language, or WebAssembly
//!   modules in a sandbox, `wasm`); [`for_each_word`] is the word rule,
//!   [`corpus`] the demo corpus generator.
//!
//! Running jobs:
//! - [`cli::main`]: the whole command line, with your registry.
//! - [`run_job`]: a [`JobSpec`] run embedded, with [`RunOptions`]
//!   (parallelism, scratch directory, cancellation, live [`JobProgress`], the
//!   [`Storage`] inputs are read through, configured by [`S3Options`]),
//!   returning a [`JobReport`] or a [`JobError`].
//! - [`run_chain`]: a multi-step job, a [`ChainSpec`] of [`StepSpec`]s in
//!   which each step reads the one before's output, step by step, resumable
//!   from a failed step ([`StepOutcome`], [`ChainError`]).
//!
//! Testing an app without running a job: [`MapContext::new`] over a
//! [`MapSink`], [`ReduceContext::new`] over a [`ReduceSink`], [`Values::new`]
//! over a [`ValueSource`] such as [`SliceValues`], and [`SplitInput::new`]
//! (with a [`LineStart`]) to feed an input format.
//!
//! The scheduler, plans, task and attempt types, the coordinator and worker
//! are quern's own and not part of this API.
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
//!
//! # Features
//! - `coordinator` (default): the `coordinator` command in [`cli::main`], and
//!   with it sqlx (bundled SQLite, PostgreSQL). Without it, `coordinator`
//!   exits 2 saying how to get one. The `quern` binary requires it.

pub mod cli;
mod cluster;
mod demo;
#[cfg(feature = "kubernetes")]
mod k8s;
#[cfg(feature = "coordinator")]
mod launcher;
mod login;
#[cfg(not(feature = "kubernetes"))]
mod no_k8s;
mod progress;
mod replay;
mod shipped;
#[cfg(feature = "coordinator")]
mod users;

pub use quern_apps::{Grep, Indexer, Sort, Top, WordCount, corpus, for_each_word};
pub use quern_streaming::{CommandLine, StreamingApp};

/// The apps every quern binary knows: [`WordCount`], [`Indexer`], [`Grep`],
/// [`Top`], [`Sort`], and `streaming` ([`StreamingApp`]: the mapper and
/// reducer are commands, as in Hadoop streaming; with the `wasm` feature
/// also `wasm`, the same with WebAssembly modules). Add your own to it.
pub fn builtin_registry() -> AppRegistry {
    let mut apps = quern_apps::builtin_registry();
    quern_streaming::register(&mut apps);
    apps
}
pub use quern_core::{
    Aggregation, App, AppError, AppInfo, AppPartitioner, AppRegistry, AttemptId, AttemptInfo, ChainSpec, CombineOutput,
    CombineSession, Combiner, Counters, EngineCounters, InputError, InputFormat, InputSplit, JobSpec, LineStart,
    MapContext, MapSession, MapSink, OutputDecl, OutputFormat, ParamSpec, Params, Partitioner, Record, RecordSink,
    RecordWriter, ReduceContext, ReduceSession, ReduceSink, SliceValues, SpecError, SplitInput, StepSpec, TextLines,
    TextOutput, ValueSource, Values, WholeFile, partition,
};
/// Why a job run by [`run_job`] did not succeed (refused before it started,
/// failed, or cancelled).
pub use quern_engine::Error as JobError;
pub use quern_engine::{ChainError, JobProgress, JobReport, RunOptions, StepOutcome, run_chain, run_job};
pub use quern_storage::{S3Options, Storage};
