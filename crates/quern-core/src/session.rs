//! Attempt sessions: app code that lives for one whole attempt instead of
//! one call (Hadoop's `Mapper.setup`/`cleanup`, and its `run` over every
//! record of a split).
//!
//! An app that returns a [`MapSession`] from [`crate::App::map_session`]
//! gets each record of the attempt's split in order, then one
//! [`MapSession::finish`] after the last, where it may still emit: an
//! in-mapper combiner keeps its counts until then, and a streaming process
//! or a WebAssembly module is fed the records and drained at the end. A
//! [`ReduceSession`] is the same over a reduce attempt's key groups (a
//! top-N over the whole partition emits at its finish). A session may
//! borrow from the app and from its [`AttemptInfo`].
//!
//! A session is opened on the attempt's thread and used there only; it is
//! dropped unfinished when the attempt fails or is cancelled, so what it
//! holds (a child process, a file) must be released by its `Drop`.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::app::{MapContext, Record, ReduceContext, Values};
use crate::error::AppError;
use crate::plan::InputSplit;
use crate::schedule::AttemptId;

/// What a session is told about the attempt it serves.
#[derive(Debug, Clone, Copy)]
pub struct AttemptInfo<'a> {
    /// The attempt (`m-00003#2`): its task's kind and index, and which try.
    pub attempt: AttemptId,
    /// A map attempt's split.
    pub split: Option<&'a InputSplit>,
    /// A reduce attempt's output (an index into [`crate::App::outputs`]).
    pub output: Option<usize>,
    /// A reduce attempt's partition within its output.
    pub partition: Option<u32>,
    /// The attempt's own scratch directory: it exists, nothing else writes
    /// there, and it is removed after the attempt.
    pub work_dir: &'a Path,
    /// Set when the attempt is cancelled (the job was, or another attempt
    /// won): a session that waits (for a process) checks it now and then,
    /// and gives up with an error.
    pub cancel: &'a AtomicBool,
}

/// A map attempt's app code, over every record of its split.
pub trait MapSession {
    /// Maps one record, as [`crate::App::map`] does.
    fn map(&mut self, record: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError>;

    /// Called once after the split's last record (not when the attempt
    /// failed before it); may emit.
    fn finish(self: Box<Self>, ctx: &mut MapContext<'_>) -> Result<(), AppError>;
}

/// A reduce attempt's app code, over every key group of its partition, in
/// key order.
pub trait ReduceSession {
    /// Reduces one key's values, as [`crate::App::reduce`] does.
    fn reduce(&mut self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<(), AppError>;

    /// Called once after the last group (not when the attempt failed before
    /// it); may emit.
    fn finish(self: Box<Self>, ctx: &mut ReduceContext<'_>) -> Result<(), AppError>;
}

/// A combiner's code over one reduced output's pairs of one map spill
/// ([`crate::Combiner::spill_session`]): every key's values in key order,
/// then [`CombineSession::finish`]. What it emits (through `out`, as key
/// and value: an external process writes both) goes to the partition its
/// key belongs to, and is sorted again before it is spilled.
pub trait CombineSession {
    /// Combines one key's values.
    fn combine(
        &mut self,
        key: &[u8],
        values: &mut Values<'_>,
        out: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), AppError>;

    /// Called once after the last key; may emit.
    fn finish(self: Box<Self>, out: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), AppError>;
}
