//! The app API: what a user implements ([`App`], [`Combiner`]) and what the
//! engine hands to it ([`Record`], [`MapContext`], [`Values`],
//! [`ReduceContext`]).
//!
//! Contexts are thin wrappers over sink traits ([`MapSink`], [`ReduceSink`])
//! that the engine implements, so user code never sees buffers, files or
//! threads, and the same app runs embedded or on a worker. Emitting never
//! fails from the app's point of view: a sink that hits an I/O error keeps it
//! and the engine fails the attempt once the call returns.

use std::sync::Arc;

use crate::counters::Counters;
use crate::error::AppError;
use crate::format::{InputFormat, OutputFormat, TextLines, TextOutput};
use crate::partition::{AppPartitioner, partition};
use crate::session::{AttemptInfo, CombineSession, MapSession, ReduceSession};

/// One input record, as an [`InputFormat`] produced it.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The input file's path, as the job named or found it.
    pub source: &'a str,
    /// Byte offset of the record in the (uncompressed) file.
    pub offset: u64,
    /// 1-based line number, when the format counts lines.
    pub line: Option<u64>,
    /// The record's bytes (a line without its terminator, a whole file, ...).
    pub data: &'a [u8],
}

/// A named output of an app (Hadoop's `MultipleOutputs`): its own reducer
/// function and reducer count, written to `OUTPUT/NAME/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputDecl {
    /// Directory name under the job output; empty for the single default
    /// output, which is written to the output directory itself.
    pub name: String,
    /// Reducer count when the job does not set one; `Some(0)` makes the
    /// output map-only.
    pub default_reducers: Option<u32>,
}

impl OutputDecl {
    /// The single, unnamed output every app has unless it declares others.
    pub fn default_output() -> Self {
        OutputDecl { name: String::new(), default_reducers: None }
    }

    /// A named output.
    pub fn named(name: impl Into<String>) -> Self {
        OutputDecl { name: name.into(), default_reducers: None }
    }

    /// Sets the reducer count used when the job does not choose one.
    pub fn with_default_reducers(mut self, reducers: u32) -> Self {
        self.default_reducers = Some(reducers);
        self
    }
}

/// A MapReduce application.
///
/// `map` is called once per input record; `reduce` once per distinct key of
/// each output, with a streaming iterator over that key's values. Keys are
/// sorted by byte order within each reducer's output.
///
/// Implementations must be `Send + Sync`: one instance serves every task of
/// a job, in parallel.
pub trait App: Send + Sync {
    /// Turns one record into zero or more key/value pairs.
    fn map(&self, record: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError>;

    /// Reduces all values of one key of `ctx.output()`. The default is the
    /// identity: every value is written out under its key.
    fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<(), AppError> {
        while let Some(v) = values.next() {
            ctx.emit(key, v);
        }
        Ok(())
    }

    /// The combiner, if the app has one: run on map output before it leaves
    /// the map task. The default is none.
    fn combiner(&self) -> Option<&dyn Combiner> {
        None
    }

    /// The partition of `key` among `partitions` for `output`, when the job
    /// partitions by hash ([`crate::Partitioner::Hash`]). The default is
    /// [`partition`] (FNV-1a), which keeps placement predictable. An app that
    /// overrides it because its meaning depends on it (a group's keys on one
    /// reducer) should also say [`AppPartitioner::Own`] in
    /// [`App::partitioner`], so that no job replaces it by total order.
    fn partition(&self, output: usize, key: &[u8], partitions: u32) -> u32 {
        let _ = output;
        partition(key, partitions)
    }

    /// How the app wants its keys partitioned: the partitioner a job gets
    /// when it does not choose one (`--partitioner`), or the app's own
    /// [`App::partition`] always. The default is
    /// `AppPartitioner::Preferred(Partitioner::Hash)`; the `sort` app prefers
    /// [`crate::Partitioner::TotalOrder`].
    fn partitioner(&self) -> AppPartitioner {
        AppPartitioner::default()
    }

    /// The app's outputs. The default is one unnamed output.
    fn outputs(&self) -> Vec<OutputDecl> {
        vec![OutputDecl::default_output()]
    }

    /// How input files become records. The default is [`TextLines`].
    fn input_format(&self) -> Arc<dyn InputFormat> {
        Arc::new(TextLines::default())
    }

    /// How `output`'s records are written. The default is [`TextOutput`].
    fn output_format(&self, output: usize) -> Arc<dyn OutputFormat> {
        let _ = output;
        Arc::new(TextOutput)
    }

    /// A session for one map attempt: when the app returns one, the engine
    /// calls its [`MapSession::map`] instead of [`App::map`] for each of the
    /// attempt's records, then its [`MapSession::finish`]. An error fails
    /// the attempt. The default is none.
    fn map_session<'s>(&'s self, attempt: &AttemptInfo<'s>) -> Result<Option<Box<dyn MapSession + 's>>, AppError> {
        let _ = attempt;
        Ok(None)
    }

    /// A session for one reduce attempt, used as [`App::map_session`]'s is:
    /// instead of [`App::reduce`] for each key group, then finished. The
    /// default is none.
    fn reduce_session<'s>(
        &'s self,
        attempt: &AttemptInfo<'s>,
    ) -> Result<Option<Box<dyn ReduceSession + 's>>, AppError> {
        let _ = attempt;
        Ok(None)
    }
}

/// A combiner: a local reduce of one key's values on the map side.
///
/// It may run zero, one or many times on any subset of a key's values (and on
/// its own output), so it must be associative and emit values of the same
/// shape it consumes. It cannot change the key.
pub trait Combiner: Send + Sync {
    /// Combines `values` of `key` for `output`, emitting the combined values.
    fn combine(
        &self,
        output: usize,
        key: &[u8],
        values: &mut Values<'_>,
        out: &mut CombineOutput<'_>,
    ) -> Result<(), AppError>;

    /// Whether combining `output`'s values is an [`Aggregation`] the engine
    /// can run itself: it then keeps one native number per key (no value
    /// bytes, each value parsed once, the result formatted once per spill)
    /// and never calls [`Combiner::combine`] for that output. The two must
    /// agree: `combine` stays the definition, and a combiner that says
    /// [`Aggregation::SumDecimal`] must emit exactly
    /// [`Aggregation::combine`]'s value. The default: none.
    fn aggregation(&self, output: usize) -> Option<Aggregation> {
        let _ = output;
        None
    }

    /// Whether the combiner runs over whole spills ([`Combiner::spill_session`],
    /// for one that is an external process, started per spill and not per
    /// key) instead of key by key: the engine then collects a map's pairs
    /// unsorted, and at each spill sorts them and feeds each reduced
    /// output's keys, in order, to a session of their own; it never calls
    /// [`Combiner::combine`]. The default: key by key.
    fn combines_spills(&self) -> bool {
        false
    }

    /// A session that combines one output's pairs of one spill, for a
    /// combiner that [`Combiner::combines_spills`]. The default refuses.
    fn spill_session<'s>(&'s self, attempt: &AttemptInfo<'s>) -> Result<Box<dyn CombineSession + 's>, AppError> {
        let _ = attempt;
        Err(AppError::permanent("this combiner combines key by key, not in spill sessions"))
    }
}

/// A combine the engine runs natively (see [`Combiner::aggregation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Aggregation {
    /// The values are decimal counts (as [`Values::sum_decimal`] reads
    /// them); the combined value is their sum, saturating, in decimal.
    SumDecimal,
}

impl Aggregation {
    /// Folds one value into `state` (which starts at 0).
    ///
    /// ```
    /// use quern_core::Aggregation;
    /// let mut total = 0;
    /// for v in [b"40".as_slice(), b"2"] {
    ///     Aggregation::SumDecimal.fold(&mut total, v).unwrap();
    /// }
    /// assert_eq!(Aggregation::SumDecimal.format(total, &mut Vec::new()), b"42");
    /// assert!(Aggregation::SumDecimal.fold(&mut total, b"x").is_err());
    /// ```
    #[inline]
    pub fn fold(self, state: &mut u64, value: &[u8]) -> Result<(), AppError> {
        match self {
            Aggregation::SumDecimal => {
                *state = state.saturating_add(decimal_count(value)?);
                Ok(())
            }
        }
    }

    /// Merges `other`, a state folded apart, into `state`.
    ///
    /// ```
    /// use quern_core::Aggregation;
    /// let (mut a, mut b) = (0, 0);
    /// Aggregation::SumDecimal.fold(&mut a, b"40").unwrap();
    /// Aggregation::SumDecimal.fold(&mut b, b"2").unwrap();
    /// Aggregation::SumDecimal.merge(&mut a, b);
    /// assert_eq!(Aggregation::SumDecimal.format(a, &mut Vec::new()), b"42");
    /// ```
    #[inline]
    pub fn merge(self, state: &mut u64, other: u64) {
        match self {
            Aggregation::SumDecimal => *state = state.saturating_add(other),
        }
    }

    /// The combined value of `state`, written into `buf` (cleared first).
    pub fn format(self, state: u64, buf: &mut Vec<u8>) -> &[u8] {
        buf.clear();
        match self {
            Aggregation::SumDecimal => buf.extend_from_slice(itoa::Buffer::new().format(state).as_bytes()),
        }
        buf
    }

    /// The combined value of `values`, as the engine computes it: what a
    /// combiner declaring this aggregation must emit.
    pub fn combine(self, values: &mut Values<'_>) -> Result<Vec<u8>, AppError> {
        let mut state = 0;
        while let Some(v) = values.next() {
            self.fold(&mut state, v)?;
        }
        Ok(self.format(state, &mut Vec::new()).to_vec())
    }
}

/// A decimal count, as [`Values::sum_decimal`] reads one (a single digit
/// without parsing).
#[inline]
fn decimal_count(v: &[u8]) -> Result<u64, AppError> {
    if let [d @ b'0'..=b'9'] = v {
        return Ok(u64::from(d - b'0'));
    }
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| AppError::permanent(format!("not a decimal count: {:?}", String::from_utf8_lossy(v))))
}

/// Where a [`Combiner`] writes its values.
pub struct CombineOutput<'a> {
    emit: &'a mut dyn FnMut(&[u8]),
}

impl<'a> CombineOutput<'a> {
    /// Wraps the engine's callback.
    pub fn new(emit: &'a mut dyn FnMut(&[u8])) -> Self {
        CombineOutput { emit }
    }

    /// Emits one combined value for the key being combined.
    pub fn emit(&mut self, value: &[u8]) {
        (self.emit)(value);
    }
}

/// What a map task does with emitted pairs; implemented by the engine.
pub trait MapSink {
    /// Accepts one pair for `output`.
    fn emit(&mut self, output: usize, key: &[u8], value: &[u8]);
}

/// The map side's view of the engine: emit pairs, count things.
pub struct MapContext<'a> {
    sink: &'a mut dyn MapSink,
    counters: &'a mut Counters,
}

impl<'a> MapContext<'a> {
    /// Wraps an engine sink and the attempt's counters.
    pub fn new(sink: &'a mut dyn MapSink, counters: &'a mut Counters) -> Self {
        MapContext { sink, counters }
    }

    /// Emits a pair to the first (usually the only) output.
    pub fn emit(&mut self, key: &[u8], value: &[u8]) {
        self.sink.emit(0, key, value);
    }

    /// Emits a pair to output number `output` (an index into
    /// [`App::outputs`]).
    pub fn emit_to(&mut self, output: usize, key: &[u8], value: &[u8]) {
        self.sink.emit(output, key, value);
    }

    /// Adds `n` to the user counter `name`.
    pub fn count(&mut self, name: &str, n: u64) {
        self.counters.add_app(name, n);
    }
}

/// What a reduce task does with its output pairs; implemented by the engine.
pub trait ReduceSink {
    /// Writes one output pair.
    fn emit(&mut self, key: &[u8], value: &[u8]);
}

/// The reduce side's view of the engine.
pub struct ReduceContext<'a> {
    output: usize,
    sink: &'a mut dyn ReduceSink,
    counters: &'a mut Counters,
}

impl<'a> ReduceContext<'a> {
    /// Wraps an engine sink for `output`.
    pub fn new(output: usize, sink: &'a mut dyn ReduceSink, counters: &'a mut Counters) -> Self {
        ReduceContext { output, sink, counters }
    }

    /// The output (index into [`App::outputs`]) being reduced.
    pub fn output(&self) -> usize {
        self.output
    }

    /// Writes one output pair.
    pub fn emit(&mut self, key: &[u8], value: &[u8]) {
        self.sink.emit(key, value);
    }

    /// Adds `n` to the user counter `name`.
    pub fn count(&mut self, name: &str, n: u64) {
        self.counters.add_app(name, n);
    }
}

/// A source of values for one key; implemented by the engine's merger.
pub trait ValueSource {
    /// The next value of the current key, or `None` when the key is done.
    fn next_value(&mut self) -> Option<&[u8]>;
}

/// The values of one key, streamed: a reducer never holds them all.
///
/// This is a *lending* iterator (each value borrows the iterator until the
/// next call), which is why it is not a `std::iter::Iterator`.
pub struct Values<'a> {
    source: &'a mut dyn ValueSource,
}

impl<'a> Values<'a> {
    /// Wraps a value source.
    pub fn new(source: &'a mut dyn ValueSource) -> Self {
        Values { source }
    }

    /// The next value, or `None` when all are consumed.
    #[allow(clippy::should_implement_trait)] // lending: cannot be Iterator
    pub fn next(&mut self) -> Option<&[u8]> {
        self.source.next_value()
    }

    /// Sums the remaining values, each a decimal integer (the usual shape of
    /// counts); a value that is not one is a permanent error.
    ///
    /// ```
    /// use quern_core::{SliceValues, Values};
    /// let values = [b"40".as_slice(), b"2".as_slice()];
    /// let mut src = SliceValues::new(&values);
    /// assert_eq!(Values::new(&mut src).sum_decimal().unwrap(), 42);
    /// ```
    pub fn sum_decimal(&mut self) -> Result<u64, AppError> {
        let mut total = 0u64;
        while let Some(v) = self.next() {
            total = total.saturating_add(decimal_count(v)?);
        }
        Ok(total)
    }
}

/// A [`ValueSource`] over a slice, for tests of apps and for the engine's
/// in-memory combining.
///
/// ```
/// use quern_core::{SliceValues, Values};
/// let values = [b"1".as_slice(), b"2".as_slice()];
/// let mut src = SliceValues::new(&values);
/// let mut values = Values::new(&mut src);
/// assert_eq!(values.next(), Some(b"1".as_slice()));
/// assert_eq!(values.next(), Some(b"2".as_slice()));
/// assert_eq!(values.next(), None);
/// ```
pub struct SliceValues<'s> {
    values: &'s [&'s [u8]],
    next: usize,
}

impl<'s> SliceValues<'s> {
    /// Values from a slice.
    pub fn new(values: &'s [&'s [u8]]) -> Self {
        SliceValues { values, next: 0 }
    }
}

impl ValueSource for SliceValues<'_> {
    fn next_value(&mut self) -> Option<&[u8]> {
        let v = self.values.get(self.next)?;
        self.next += 1;
        Some(v)
    }
}
