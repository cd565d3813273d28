//! The map side's output collector: where emitted pairs go until they are a
//! sorted, partitioned run on disk.
//!
//! Without a combiner, pairs are serialised into a [`SortBuffer`] (one byte
//! arena plus a fixed-size entry per record, as Hadoop's `kvbuffer` and
//! `kvmeta`), sorted by (partition, key) when the buffer is full and spilled.
//! With a combiner, pairs go into a [`CombineTable`] first (Spark's map-side
//! combine): values of a key are combined eagerly as they arrive, and only
//! when the table fills is it sorted and spilled. A combiner that is a native
//! [`quern_core::Aggregation`] (for every reduced output) gets an
//! [`AggregateTable`] instead: one number per key, no value bytes. Either
//! way, each spill is
//! one [`RunWriter`] file with a segment per partition, and the memory used is
//! bounded by the job's `sort_buffer`.

use std::io;
use std::path::PathBuf;

use quern_core::{AppError, AttemptInfo, CombineOutput, Combiner, EngineCounters, SliceValues, ValueSource, Values};
// A fast, fixed (non-random) hasher: keys are hashed on every emit, and the
// table's order never shows (spills sort).
use foldhash::fast::FixedState;
use hashbrown::HashTable;
use std::hash::BuildHasher;

use crate::aggregate::AggregateTable;
use crate::run::{RunIndex, RunWriter};

/// Per-entry bookkeeping bytes charged against the buffer, besides the key and
/// value bytes themselves.
const ENTRY_OVERHEAD: usize = std::mem::size_of::<Entry>();
/// Per-key bookkeeping charged in the combine table (hash slot, boxes).
const TABLE_OVERHEAD: usize = 64;
/// How many pending values a key may gather in the combine table before they
/// are combined.
const COMBINE_EVERY: u32 = 64;

/// A record's place in the arena.
#[derive(Debug, Clone, Copy)]
struct Entry {
    partition: u32,
    key_start: u32,
    key_len: u32,
    value_len: u32,
    /// The first 8 key bytes, big-endian: most comparisons end here.
    prefix: u64,
}

pub(crate) fn key_prefix(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(b)
}

/// The global partition of an output's key (the plan's cut points, or the
/// app's partitioner), asked by the collector when it needs it.
pub type KeyPartition<'a> = dyn Fn(usize, &[u8]) -> Result<u32, AppError> + 'a;

/// Where spills go.
pub struct SpillTarget {
    /// Directory for spill files.
    pub dir: PathBuf,
    /// Partitions (over all outputs).
    pub partitions: usize,
    /// Spills written so far.
    pub runs: Vec<RunIndex>,
}

impl SpillTarget {
    pub(crate) fn next_writer(&self) -> io::Result<RunWriter> {
        RunWriter::create(self.dir.join(format!("spill-{:05}.run", self.runs.len())), self.partitions)
    }
}

/// Serialised pairs awaiting sort and spill.
pub struct SortBuffer {
    data: Vec<u8>,
    entries: Vec<Entry>,
    limit: usize,
}

impl SortBuffer {
    /// A buffer of `limit` bytes (arena plus entries).
    pub fn new(limit: usize) -> Self {
        SortBuffer { data: Vec::new(), entries: Vec::new(), limit }
    }

    /// Bytes in use.
    fn used(&self) -> usize {
        self.data.len() + self.entries.len() * ENTRY_OVERHEAD
    }

    /// Whether adding a pair of `len` bytes would overflow (an empty buffer
    /// takes any one pair, however large).
    fn would_overflow(&self, len: usize) -> bool {
        !self.entries.is_empty()
            && (self.used() + len + ENTRY_OVERHEAD > self.limit || self.data.len() + len > u32::MAX as usize)
    }

    fn push(&mut self, partition: u32, key: &[u8], value: &[u8]) {
        let key_start = self.data.len() as u32;
        self.data.extend_from_slice(key);
        self.data.extend_from_slice(value);
        self.entries.push(Entry {
            partition,
            key_start,
            key_len: key.len() as u32,
            value_len: value.len() as u32,
            prefix: key_prefix(key),
        });
    }

    fn key(&self, e: &Entry) -> &[u8] {
        &self.data[e.key_start as usize..(e.key_start + e.key_len) as usize]
    }

    fn value(&self, e: &Entry) -> &[u8] {
        let start = (e.key_start + e.key_len) as usize;
        &self.data[start..start + e.value_len as usize]
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sorts the entries by (partition, key), stably.
    fn sort(&mut self) {
        let data = &self.data;
        let key = |e: &Entry| &data[e.key_start as usize..(e.key_start + e.key_len) as usize];
        self.entries.sort_by(|a, b| {
            a.partition.cmp(&b.partition).then(a.prefix.cmp(&b.prefix)).then_with(|| key(a).cmp(key(b)))
        });
    }

    /// Empties the buffer.
    fn clear(&mut self) {
        self.data.clear();
        self.entries.clear();
    }

    /// Sorts, feeds each reduced output's keys with their values to a
    /// spill session of the combiner's, and spills what the sessions
    /// emitted (sorted again: a session may emit keys in any order); empties
    /// the buffer, whether or not the run could be written.
    fn spill_combined(
        &mut self,
        spills: &SpillCombiner<'_>,
        partition: &KeyPartition<'_>,
        target: &mut SpillTarget,
        counters: &mut EngineCounters,
    ) -> Result<(), CollectError> {
        self.sort();
        let result = self.combine_sorted(spills, partition);
        let inputs = self.entries.len() as u64;
        self.clear();
        let mut combined = result?;
        counters.combine_input_records += inputs;
        counters.combine_output_records += combined.entries.len() as u64;
        if combined.is_empty() { Ok(()) } else { combined.spill(target, counters) }
    }

    /// The sorted pairs through the combiner's spill sessions, one per
    /// reduced output that has pairs, into a buffer of their own.
    fn combine_sorted(
        &self,
        spills: &SpillCombiner<'_>,
        partition: &KeyPartition<'_>,
    ) -> Result<SortBuffer, CollectError> {
        let mut combined = SortBuffer::new(usize::MAX);
        let mut refused: Option<AppError> = None;
        let mut i = 0;
        while i < self.entries.len() {
            let output = spills.output_of(self.entries[i].partition)?;
            let mut session = spills.combiner.spill_session(&spills.attempt).map_err(CollectError::Combiner)?;
            let mut out = |key: &[u8], value: &[u8]| match partition(output, key) {
                _ if refused.is_some() => {}
                Ok(p) => combined.push(p, key, value),
                Err(e) => refused = Some(e),
            };
            while i < self.entries.len() && spills.output_of(self.entries[i].partition)? == output {
                let first = &self.entries[i];
                let group = self.entries[i..]
                    .iter()
                    .take_while(|e| e.partition == first.partition && self.key(e) == self.key(first))
                    .count();
                let values: Vec<&[u8]> = self.entries[i..i + group].iter().map(|e| self.value(e)).collect();
                session
                    .combine(self.key(first), &mut Values::new(&mut SliceValues::new(&values)), &mut out)
                    .map_err(CollectError::Combiner)?;
                i += group;
            }
            session.finish(&mut out).map_err(CollectError::Combiner)?;
            if let Some(e) = refused.take() {
                return Err(CollectError::Partitioner(e));
            }
            // A combiner emits at most what it was given, give or take:
            // one that emits far more is broken, and must not exhaust memory.
            if combined.used() > self.used().saturating_mul(2).max(1 << 20) {
                return Err(CollectError::Combiner(AppError::permanent(format!(
                    "the combiner emitted {} bytes for a spill of {}: a combiner must not emit more than it is given",
                    combined.used(),
                    self.used()
                ))));
            }
        }
        Ok(combined)
    }

    /// Sorts by (partition, key), stably, and writes one run; empties the
    /// buffer.
    fn spill(&mut self, target: &mut SpillTarget, counters: &mut EngineCounters) -> Result<(), CollectError> {
        self.sort();
        let mut writer = target.next_writer()?;
        for e in &self.entries {
            writer.write(e.partition as usize, self.key(e), self.value(e))?;
        }
        counters.spilled_records += self.entries.len() as u64;
        target.runs.push(writer.finish()?);
        counters.spills += 1;
        self.clear();
        Ok(())
    }
}

/// What a map's spills need to run a combiner that combines whole spills
/// ([`Combiner::combines_spills`]): the combiner, the attempt its sessions
/// are told about, and each global partition's output.
pub struct SpillCombiner<'a> {
    /// The combiner.
    pub combiner: &'a dyn Combiner,
    /// The map attempt.
    pub attempt: AttemptInfo<'a>,
    /// The output of each global partition, by partition.
    pub partition_outputs: Vec<usize>,
}

impl SpillCombiner<'_> {
    fn output_of(&self, partition: u32) -> Result<usize, CollectError> {
        self.partition_outputs.get(partition as usize).copied().ok_or_else(|| {
            CollectError::Partitioner(AppError::permanent(format!("partition {partition} belongs to no output")))
        })
    }
}

/// Errors of the collector: I/O on spills, or a failing combiner. The
/// message includes the cause, which is therefore not also a `source()`.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// Writing a spill failed.
    #[error("writing a spill: {0}")]
    Io(io::Error),
    /// The app's combiner returned an error.
    #[error("combiner: {0}")]
    Combiner(AppError),
    /// The app's partitioner gave an unusable partition.
    #[error("partitioner: {0}")]
    Partitioner(AppError),
}

impl From<io::Error> for CollectError {
    fn from(e: io::Error) -> Self {
        CollectError::Io(e)
    }
}

impl From<AppError> for CollectError {
    fn from(e: AppError) -> Self {
        CollectError::Combiner(e)
    }
}

/// Runs the combiner over `inputs` values from `values` and writes each
/// combined value with `write`, counting combine input and output records.
#[allow(clippy::too_many_arguments)]
fn combine_into(
    combiner: &dyn Combiner,
    output: usize,
    key: &[u8],
    values: &mut dyn ValueSource,
    inputs: u64,
    counters: &mut EngineCounters,
    write: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> Result<(), CollectError> {
    counters.combine_input_records += inputs;
    let mut io_error = None;
    let mut emitted = 0u64;
    let mut emit = |v: &[u8]| {
        if io_error.is_none() {
            emitted += 1;
            if let Err(e) = write(v) {
                io_error = Some(e);
            }
        }
    };
    combiner.combine(output, key, &mut Values::new(values), &mut CombineOutput::new(&mut emit))?;
    if let Some(e) = io_error {
        return Err(e.into());
    }
    counters.combine_output_records += emitted;
    Ok(())
}

/// One key's entry in the combine table: the key and its pending values,
/// length-prefixed, in one buffer, so a lookup touches one heap block and a
/// key costs one allocation however many values it gathers.
struct Slot {
    hash: u64,
    output: u32,
    partition: u32,
    key_len: u32,
    count: u32,
    /// Combine when `count` reaches this: [`COMBINE_EVERY`], or twice what
    /// the last combine left, so a combiner that does not shrink its values
    /// runs O(log n) times for n values, not once per value.
    combine_at: u32,
    buf: Vec<u8>,
}

impl Slot {
    fn key(&self) -> &[u8] {
        &self.buf[..self.key_len as usize]
    }

    fn values(&self) -> PackedValues<'_> {
        PackedValues { rest: &self.buf[self.key_len as usize..] }
    }
}

/// Appends a length-prefixed value to a packed buffer.
fn pack(buf: &mut Vec<u8>, value: &[u8]) {
    crate::run::put_varint(buf, value.len() as u64);
    buf.extend_from_slice(value);
}

/// The values of a packed buffer, as a [`ValueSource`].
struct PackedValues<'a> {
    rest: &'a [u8],
}

impl ValueSource for PackedValues<'_> {
    fn next_value(&mut self) -> Option<&[u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let mut len = 0usize;
        let mut i = 0;
        loop {
            let b = self.rest[i];
            len |= usize::from(b & 0x7f) << (7 * i);
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        let (value, rest) = self.rest[i..].split_at(len);
        self.rest = rest;
        Some(value)
    }
}

/// The eager map-side combine table.
pub struct CombineTable {
    table: HashTable<Slot>,
    hasher: FixedState,
    used: usize,
    limit: usize,
    /// Reused buffer for combiner output.
    scratch: Vec<u8>,
}

impl CombineTable {
    /// A table bounded by `limit` bytes.
    pub fn new(limit: usize) -> Self {
        CombineTable { table: HashTable::new(), hasher: FixedState::default(), used: 0, limit, scratch: Vec::new() }
    }

    fn insert(
        &mut self,
        combiner: &dyn Combiner,
        output: usize,
        key: &[u8],
        value: &[u8],
        partition: &dyn Fn() -> Result<u32, AppError>,
        counters: &mut EngineCounters,
    ) -> Result<(), CollectError> {
        let output = output as u32;
        let hash = self.hasher.hash_one((output, key));
        match self.table.find_mut(hash, |s| s.output == output && s.key() == key) {
            Some(slot) => {
                let before = slot.buf.capacity();
                pack(&mut slot.buf, value);
                slot.count += 1;
                if slot.count >= slot.combine_at {
                    let scratch = &mut self.scratch;
                    scratch.clear();
                    let mut combined = 0u32;
                    let (key, _) = slot.buf.split_at(slot.key_len as usize);
                    let mut values = slot.values();
                    combine_into(
                        combiner,
                        output as usize,
                        key,
                        &mut values,
                        u64::from(slot.count),
                        counters,
                        &mut |v| {
                            pack(scratch, v);
                            combined += 1;
                            Ok(())
                        },
                    )?;
                    slot.buf.truncate(slot.key_len as usize);
                    slot.buf.extend_from_slice(scratch);
                    slot.count = combined;
                    slot.combine_at = combined.saturating_mul(2).max(COMBINE_EVERY);
                }
                self.used = (self.used + slot.buf.capacity()).saturating_sub(before);
            }
            None => {
                let partition = partition().map_err(CollectError::Partitioner)?;
                let mut buf = Vec::with_capacity(key.len() + value.len() + 2);
                buf.extend_from_slice(key);
                pack(&mut buf, value);
                self.used += buf.capacity() + TABLE_OVERHEAD;
                let slot = Slot {
                    hash,
                    output,
                    partition,
                    key_len: key.len() as u32,
                    count: 1,
                    combine_at: COMBINE_EVERY,
                    buf,
                };
                self.table.insert_unique(hash, slot, |s| s.hash);
            }
        }
        Ok(())
    }

    fn is_full(&self) -> bool {
        self.used > self.limit
    }

    fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Sorts the table by (partition, key), combines each key's values and
    /// writes one run; empties the table.
    fn spill(
        &mut self,
        target: &mut SpillTarget,
        combiner: &dyn Combiner,
        counters: &mut EngineCounters,
    ) -> Result<(), CollectError> {
        let mut slots: Vec<Slot> = self.table.drain().collect();
        slots.sort_unstable_by(|a, b| a.partition.cmp(&b.partition).then_with(|| a.key().cmp(b.key())));
        let mut writer = target.next_writer()?;
        for slot in &slots {
            let p = slot.partition as usize;
            let mut values = slot.values();
            if slot.count == 1 {
                let value = values.next_value().expect("invariant: a slot holds at least one value");
                writer.write(p, slot.key(), value)?;
                counters.spilled_records += 1;
            } else {
                let mut written = 0;
                combine_into(
                    combiner,
                    slot.output as usize,
                    slot.key(),
                    &mut values,
                    u64::from(slot.count),
                    counters,
                    &mut |v| {
                        written += 1;
                        writer.write(p, slot.key(), v)
                    },
                )?;
                counters.spilled_records += written;
            }
        }
        target.runs.push(writer.finish()?);
        counters.spills += 1;
        self.used = 0;
        Ok(())
    }
}

/// Collects a map task's pairs into spills.
pub enum Collector<'a> {
    /// No combiner: serialise, sort, spill.
    Sorting(SortBuffer),
    /// A combiner: combine eagerly, spill when the table fills.
    Combining(CombineTable, &'a dyn Combiner),
    /// A combiner the engine runs natively: one state per key.
    Aggregating(AggregateTable),
    /// A combiner that combines whole spills: pairs are collected as
    /// without one, and each spill goes through its sessions.
    CombiningSpills(SortBuffer, SpillCombiner<'a>),
}

impl<'a> Collector<'a> {
    /// The collector for an app with or without a combiner, whose reduced
    /// outputs are `outputs`: a native aggregation when the combiner
    /// declares the same one for each of them.
    ///
    /// A combiner that [`Combiner::combines_spills`] needs its attempt: it
    /// is not run here (combiners are optional), but by
    /// [`Collector::for_map_attempt`]'s collector.
    pub fn new(combiner: Option<&'a dyn Combiner>, outputs: &[usize], limit: usize) -> Self {
        let Some(c) = combiner.filter(|c| !c.combines_spills()) else {
            return Collector::Sorting(SortBuffer::new(limit));
        };
        let mut declared = outputs.iter().map(|&o| c.aggregation(o));
        match declared.next() {
            Some(Some(first)) if declared.all(|a| a == Some(first)) => {
                Collector::Aggregating(AggregateTable::new(first, limit))
            }
            _ => Collector::Combining(CombineTable::new(limit), c),
        }
    }

    /// [`Collector::new`]'s collector, but one that also runs a combiner
    /// that combines whole spills, with `attempt` told to its sessions;
    /// `partition_outputs` is the output of each global partition.
    pub fn for_map_attempt(
        combiner: Option<&'a dyn Combiner>,
        outputs: &[usize],
        limit: usize,
        attempt: AttemptInfo<'a>,
        partition_outputs: Vec<usize>,
    ) -> Self {
        match combiner {
            Some(combiner) if combiner.combines_spills() => Collector::CombiningSpills(
                SortBuffer::new(limit),
                SpillCombiner { combiner, attempt, partition_outputs },
            ),
            _ => Collector::new(combiner, outputs, limit),
        }
    }

    /// Adds one pair, spilling first (or after) if the memory budget says so.
    ///
    /// `partition` gives an output's key's global partition; it is called
    /// only when needed (the tables ask once per distinct key).
    #[inline]
    pub fn collect(
        &mut self,
        output: usize,
        key: &[u8],
        value: &[u8],
        partition: &KeyPartition<'_>,
        target: &mut SpillTarget,
        counters: &mut EngineCounters,
    ) -> Result<(), CollectError> {
        // Inlined into the caller for the short paths (a spill is a call);
        // the generic table's, with its closures, stays a call.
        match self {
            Collector::Combining(table, c) => {
                Self::combine(table, *c, output, key, value, partition, target, counters)?
            }
            Collector::Aggregating(table) => {
                if table.is_full(key.len()) {
                    table.spill(target, counters, partition)?;
                }
                table.insert(output, key, value)?;
            }
            Collector::Sorting(buf) => {
                let p = partition(output, key).map_err(CollectError::Partitioner)?;
                if buf.would_overflow(key.len() + value.len()) {
                    buf.spill(target, counters)?;
                }
                buf.push(p, key, value);
            }
            Collector::CombiningSpills(buf, spills) => {
                let p = partition(output, key).map_err(CollectError::Partitioner)?;
                if buf.would_overflow(key.len() + value.len()) {
                    buf.spill_combined(spills, partition, target, counters)?;
                }
                buf.push(p, key, value);
            }
        }
        Ok(())
    }

    /// [`Collector::collect`] into a [`CombineTable`].
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn combine(
        table: &mut CombineTable,
        combiner: &dyn Combiner,
        output: usize,
        key: &[u8],
        value: &[u8],
        partition: &KeyPartition<'_>,
        target: &mut SpillTarget,
        counters: &mut EngineCounters,
    ) -> Result<(), CollectError> {
        table.insert(combiner, output, key, value, &|| partition(output, key), counters)?;
        if table.is_full() {
            table.spill(target, combiner, counters)?;
        }
        Ok(())
    }

    /// Spills whatever is still in memory (if anything); `partition` as
    /// for [`Collector::collect`].
    pub fn flush(
        &mut self,
        target: &mut SpillTarget,
        counters: &mut EngineCounters,
        partition: &KeyPartition<'_>,
    ) -> Result<(), CollectError> {
        match self {
            Collector::Sorting(buf) if !buf.is_empty() => buf.spill(target, counters),
            Collector::Combining(table, c) if !table.is_empty() => table.spill(target, *c, counters),
            Collector::Aggregating(table) if !table.is_empty() => table.spill(target, counters, partition),
            Collector::CombiningSpills(buf, spills) if !buf.is_empty() => {
                buf.spill_combined(spills, partition, target, counters)
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Emits every value back: a combiner that never shrinks a key's values.
    struct Identity(AtomicU32);

    impl Combiner for Identity {
        fn combine(
            &self,
            _: usize,
            _: &[u8],
            values: &mut Values<'_>,
            out: &mut CombineOutput<'_>,
        ) -> Result<(), AppError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            while let Some(v) = values.next() {
                out.emit(v);
            }
            Ok(())
        }
    }

    #[test]
    fn a_combiner_that_does_not_shrink_runs_a_logarithmic_number_of_times() {
        let identity = Identity(AtomicU32::new(0));
        let mut table = CombineTable::new(1 << 30);
        let mut counters = EngineCounters::default();
        for _ in 0..10_000 {
            table.insert(&identity, 0, b"key", b"v", &|| Ok(0), &mut counters).expect("insert");
        }
        let calls = identity.0.load(Ordering::Relaxed);
        // 64, 128, 256, … up to 10,000 values: 8 combines, not one per value.
        assert!((1..=10).contains(&calls), "{calls} combines for 10,000 values of one key");
        assert_eq!(counters.combine_output_records, counters.combine_input_records, "nothing was lost");
    }
}
