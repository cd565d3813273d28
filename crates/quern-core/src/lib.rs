//! quern's vocabulary: everything an app author and every runtime share.
//!
//! This crate holds the public app API ([`App`], [`MapContext`],
//! [`ReduceContext`], [`Values`]), the input and output format traits, the
//! serialisable [`JobSpec`], the default [`partition`]er, [`Counters`], and the
//! task [`Scheduler`] state machine that both the embedded runner and the
//! (future) cluster coordinator drive.
//!
//! # Overview
//! - [`App`]: map, reduce, optional [`Combiner`], optional partitioner, named
//!   outputs. Keys and values are bytes, ordered by byte comparison.
//! - [`MapSession`] / [`ReduceSession`]: app code that lives for a whole
//!   attempt ([`App::map_session`], [`App::reduce_session`]), told about it
//!   by [`AttemptInfo`], and finished after its last record or key group
//!   (an in-mapper combiner, a top-N, an external process fed the records).
//! - [`Partitioner`]: hash ([`partition`], the default) or total order
//!   ([`CutPoints`] chosen from a sample of the keys when a job is planned).
//! - [`AppRegistry`]: the apps a binary knows, each built from its [`Params`].
//! - [`InputFormat`] / [`OutputFormat`]: how records come in and go out.
//!   [`TextLines`], [`WholeFile`] and [`TextOutput`] are built in.
//! - [`JobSpec`]: a job, as data, so a coordinator can ship it unchanged.
//! - [`Scheduler`]: jobs → tasks → attempts, with retries and commit decisions.
//!
//! # Example
//! ```
//! use quern_core::{App, MapContext, ReduceContext, Record, Values, AppError};
//!
//! struct LineLengths;
//! impl App for LineLengths {
//!     fn map(&self, record: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
//!         ctx.emit(record.data.len().to_string().as_bytes(), b"1");
//!         Ok(())
//!     }
//!     fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<(), AppError> {
//!         let mut n = 0u64;
//!         while values.next().is_some() { n += 1; }
//!         ctx.emit(key, n.to_string().as_bytes());
//!         Ok(())
//!     }
//! }
//! ```
//!
//! # Invariants
//! - No file system, no threads, no async, no network: everything here is
//!   pure logic over `std::io` traits, so every runtime can share it.
//! - Keys compare as raw bytes; partitioning is a fixed, documented hash
//!   ([`partition`]), never a per-process random one, or a binary search
//!   over cut points the plan carries: a pure function of the plan.

mod app;
mod chain;
mod code;
mod counters;
mod error;
mod format;
mod ids;
mod params;
mod partition;
mod plan;
mod registry;
mod schedule;
mod session;
mod spec;
mod total_order;

pub use app::{
    Aggregation, App, CombineOutput, Combiner, MapContext, MapSink, OutputDecl, Record, ReduceContext, ReduceSink,
    SliceValues, ValueSource, Values,
};
pub use chain::{ChainSpec, MAX_STEPS, StepSpec};
pub use code::{BadCodeHash, CodeHash, CodeHasher, is_plain_file_name};
pub use counters::{Counters, EngineCounters};
pub use error::{AppError, InputError, SpecError};
pub use format::{
    InputFormat, LineStart, OutputFormat, RecordSink, RecordWriter, SplitInput, TextLines, TextOutput, WholeFile,
};
pub use ids::{JobId, WorkerId};
pub use params::{ParamSpec, Params};
pub use partition::{AppPartitioner, Partitioner, fnv1a_32, partition};
pub use plan::{Compression, InputFile, InputSplit, JobPlan, PlannedOutput, Segment, check_map_tasks};
pub use registry::{AppInfo, AppRegistry};
pub use schedule::{
    AttemptId, AttemptResult, BadTaskName, CommitDecision, Failure, FailureOutcome, JobState, Next, PhaseProgress,
    Scheduler, TaskId, TaskKind, TaskRecord, TaskState, Verdict,
};
pub use session::{AttemptInfo, CombineSession, MapSession, ReduceSession};
pub use spec::{
    DEFAULT_MAX_ATTEMPTS, DEFAULT_SORT_BUFFER, DEFAULT_SPLIT_SIZE, JobSpec, MAX_ATTEMPTS, MAX_MAP_TASKS, MAX_REDUCERS,
    Tuning,
};
pub use total_order::CutPoints;
