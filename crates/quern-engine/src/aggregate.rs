//! The map-side table of a native aggregation ([`Aggregation`]): one fixed
//! state per key instead of its values, for combiners that say what they
//! compute (wordcount's sum). A slot holds the key's full hash (compared
//! before any key byte), its state, and the key itself when it is short (16
//! bytes or less: a lookup then touches the slot alone, and compares 16
//! bytes without a call); longer keys live in one arena. Nothing is
//! allocated per record; only the slot array and the arena grow per key.
//!
//! The table is open-addressed (linear probing, at most 3/4 full), and
//! short keys are looked up in batches: a batch first loads each key's home
//! slot, loads that do not depend on one another and so are in flight
//! together, then does the lookups, which find those slots in the cache. On
//! a table larger than the cache (a map task's vocabulary) this hides most
//! of the memory latency that one lookup at a time waits for in full. A
//! key's partition is asked when the table is spilled, once per key.

use foldhash::fast::FixedState;
use quern_core::{Aggregation, AppError, EngineCounters};
use std::hash::BuildHasher;

use crate::collect::{CollectError, KeyPartition, SpillTarget};

/// Keys up to this long are stored in their slot.
const INLINE: usize = 16;

/// Short keys looked up together.
const BATCH: usize = 32;

/// Slots of a new table.
const FIRST_CAPACITY: usize = 1024;

/// A key's length in its slot when it lives in the arena.
const LONG: u32 = 0xff;

/// The most outputs a table tells apart (an output's index has 24 bits).
const OUTPUTS: usize = 1 << 24;

/// One key, in 32 bytes (two slots per cache line, none across two): its
/// hash (never 0: 0 marks an empty slot), compared before any key byte; its
/// bytes inline (zero-padded) when short, which is most keys of text, so
/// that finding a key touches its slot only; otherwise the arena offset and
/// length of its bytes; its output and inline length in `meta`.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(32))]
struct Slot {
    key: [u8; INLINE],
    state: u64,
    hash: u32,
    /// The output's index << 8 | the key's length, or [`LONG`].
    meta: u32,
}

impl Slot {
    /// Its key's bytes.
    fn key<'a>(&'a self, arena: &'a [u8]) -> &'a [u8] {
        let len = self.meta & 0xff;
        if len != LONG {
            &self.key[..len as usize]
        } else {
            let word = |at: usize| {
                u32::from_le_bytes([self.key[at], self.key[at + 1], self.key[at + 2], self.key[at + 3]]) as usize
            };
            &arena[word(0)..word(0) + word(4)]
        }
    }

    /// Its key's output.
    fn output(&self) -> usize {
        (self.meta >> 8) as usize
    }

    /// Whether its key is in the arena.
    fn is_long(&self) -> bool {
        self.meta & 0xff == LONG
    }
}

/// The error for an output past [`OUTPUTS`].
#[cold]
fn too_many_outputs(output: usize) -> CollectError {
    CollectError::Combiner(AppError::permanent(format!(
        "output #{output}: a native aggregation tells at most {OUTPUTS} outputs apart"
    )))
}

/// `key` (at most [`INLINE`] bytes) zero-padded to [`INLINE`] bytes, put
/// together in two registers from loads that may overlap, rather than
/// copied byte by byte or by a call to `memcpy`.
#[inline]
fn inline_key(key: &[u8]) -> [u8; INLINE] {
    let len = key.len();
    // The 8 or 4 bytes at `at`, as an integer.
    let u64_at = |at: usize| u64::from_le_bytes(key[at..at + 8].try_into().unwrap_or_default());
    let u32_at = |at: usize| u64::from(u32::from_le_bytes(key[at..at + 4].try_into().unwrap_or_default()));
    let (low, high) = match len {
        // The last 8 bytes end with bytes 8.., which a shift moves down.
        8..=INLINE => (u64_at(0), u64_at(len - 8).checked_shr(8 * (INLINE - len) as u32).unwrap_or(0)),
        4..=7 => (u32_at(0) | (u32_at(len - 4) >> (8 * (8 - len))) << 32, 0),
        _ => (key.iter().rev().fold(0, |word, &b| word << 8 | u64::from(b)), 0),
    };
    (u128::from(high) << 64 | u128::from(low)).to_le_bytes()
}

/// A slot's 32-bit hash of a 64-bit one: never 0, which marks an empty
/// slot.
#[inline]
fn fold_hash(full: u64) -> u32 {
    (full ^ (full >> 32)) as u32 | 1
}

/// Bytes a key costs besides its long bytes: its slot, and the spare
/// slots (a table between 3/8 and 3/4 full). A spill sorts the slots where
/// they are.
const SLOT_COST: usize = std::mem::size_of::<Slot>() * 8 / 3;

/// The aggregation table, bounded by the job's sort buffer.
pub struct AggregateTable {
    aggregation: Aggregation,
    /// A power of two of slots (or none yet).
    slots: Vec<Slot>,
    /// Keys in `slots`.
    len: usize,
    /// Short keys folded but not yet looked up, each with its own state.
    pending: Vec<Slot>,
    keys: Vec<u8>,
    hasher: FixedState,
    limit: usize,
    /// Values folded since the last spill.
    folded: u64,
    /// Reused for formatting a state.
    scratch: Vec<u8>,
}

impl AggregateTable {
    /// A table for `aggregation`, bounded by `limit` bytes.
    pub fn new(aggregation: Aggregation, limit: usize) -> Self {
        AggregateTable {
            aggregation,
            slots: Vec::new(),
            len: 0,
            pending: Vec::with_capacity(BATCH),
            keys: Vec::new(),
            hasher: FixedState::default(),
            limit,
            folded: 0,
            scratch: Vec::new(),
        }
    }

    /// Folds `value` into `key`'s state. A value the aggregation cannot
    /// read fails here, with the pair that carried it.
    #[inline]
    pub fn insert(&mut self, output: usize, key: &[u8], value: &[u8]) -> Result<(), CollectError> {
        let mut state = 0;
        self.aggregation.fold(&mut state, value).map_err(CollectError::Combiner)?;
        if output >= OUTPUTS {
            return Err(too_many_outputs(output));
        }
        self.folded += 1;
        let hash = fold_hash(self.hasher.hash_one((output as u32, key)));
        let meta = (output as u32) << 8;
        if key.len() > INLINE {
            self.look_up_pending();
            let mut slot = Slot { hash, state, key: [0; INLINE], meta: meta | LONG };
            slot.key[..4].copy_from_slice(&(self.keys.len() as u32).to_le_bytes());
            slot.key[4..8].copy_from_slice(&(key.len() as u32).to_le_bytes());
            self.keys.extend_from_slice(key);
            self.reserve(1);
            self.add(slot);
            return Ok(());
        }
        let meta = meta | key.len() as u32;
        self.pending.push(Slot { hash, state, key: inline_key(key), meta });
        if self.pending.len() == BATCH {
            self.look_up_pending();
        }
        Ok(())
    }

    /// Adds the pending keys to the table, loading their home slots first.
    fn look_up_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.reserve(self.pending.len());
        let mask = self.slots.len() - 1;
        let mut touched = 0u32;
        for p in &self.pending {
            touched ^= self.slots[p.hash as usize & mask].hash;
        }
        std::hint::black_box(touched);
        let pending = std::mem::take(&mut self.pending);
        for &p in &pending {
            self.add(p);
        }
        self.pending = pending;
        self.pending.clear();
    }

    /// Merges `new` into its key's slot, or gives it a slot; the caller
    /// made room for it ([`AggregateTable::reserve`]).
    fn add(&mut self, new: Slot) {
        let mask = self.slots.len() - 1;
        let mut i = new.hash as usize & mask;
        loop {
            let slot = &mut self.slots[i];
            if slot.hash == 0 {
                *slot = new;
                self.len += 1;
                return;
            }
            if slot.hash == new.hash
                && slot.meta == new.meta
                && (!new.is_long() && slot.key == new.key
                    || new.is_long() && slot.key(&self.keys) == new.key(&self.keys))
            {
                self.aggregation.merge(&mut slot.state, new.state);
                if new.is_long() {
                    // The new key's bytes went to the arena's end: take them back.
                    let len = new.key(&self.keys).len();
                    self.keys.truncate(self.keys.len() - len);
                }
                return;
            }
            i = (i + 1) & mask;
        }
    }

    /// Makes room for `more` keys, keeping the table at most 3/4 full.
    #[inline]
    fn reserve(&mut self, more: usize) {
        if (self.len + more) * 4 <= self.slots.len() * 3 {
            return;
        }
        let capacity = ((self.len + more) * 4 / 3 + 1).next_power_of_two().max(FIRST_CAPACITY);
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); capacity]);
        let mask = capacity - 1;
        for slot in old.into_iter().filter(|s| s.hash != 0) {
            let mut i = slot.hash as usize & mask;
            while self.slots[i].hash != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = slot;
        }
    }

    /// Whether the table is over its budget, or its arena could not take a
    /// key of `next` bytes more (offsets are 32-bit).
    pub fn is_full(&self, next: usize) -> bool {
        self.keys.len() + (self.len + self.pending.len()) * SLOT_COST > self.limit
            || self.keys.len() + next > u32::MAX as usize
    }

    /// Whether the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.folded == 0
    }

    /// Sorts the keys by (partition, key), asking `partition` for each
    /// key's, and writes one run of each key with its combined value;
    /// empties the table, whether or not the run could be written.
    pub fn spill(
        &mut self,
        target: &mut SpillTarget,
        counters: &mut EngineCounters,
        partition: &KeyPartition<'_>,
    ) -> Result<(), CollectError> {
        self.look_up_pending();
        let written = self.write_run(target, counters, partition);
        self.slots.fill(Slot::default());
        self.len = 0;
        self.keys.clear();
        self.folded = 0;
        written
    }

    /// [`AggregateTable::spill`] but for emptying the table, which this
    /// leaves out of order: the keys are moved to the front of the slot
    /// array, each slot's hash replaced by its key's partition, and sorted
    /// there, so that the run is written from slots read in order (reading
    /// them in key order through an index missed the cache once a key).
    fn write_run(
        &mut self,
        target: &mut SpillTarget,
        counters: &mut EngineCounters,
        partition: &KeyPartition<'_>,
    ) -> Result<(), CollectError> {
        let keys = &self.keys[..];
        let mut live = 0;
        for i in 0..self.slots.len() {
            let mut slot = self.slots[i];
            if slot.hash != 0 {
                slot.hash = partition(slot.output(), slot.key(keys)).map_err(CollectError::Partitioner)?;
                self.slots[live] = slot;
                live += 1;
            }
        }
        let sorted = &mut self.slots[..live];
        sorted.sort_unstable_by(|a, b| {
            a.hash.cmp(&b.hash).then_with(|| {
                if a.is_long() || b.is_long() {
                    a.key(keys).cmp(b.key(keys))
                } else {
                    // Zero-padded keys compare as big-endian integers, and
                    // equal ones only differ in trailing zeros: the shorter
                    // comes first.
                    u128::from_be_bytes(a.key)
                        .cmp(&u128::from_be_bytes(b.key))
                        .then((a.meta & 0xff).cmp(&(b.meta & 0xff)))
                }
            })
        });
        let mut writer = target.next_writer()?;
        for slot in &*sorted {
            let value = self.aggregation.format(slot.state, &mut self.scratch);
            writer.write(slot.hash as usize, slot.key(keys), value)?;
        }
        counters.combine_input_records += self.folded;
        counters.combine_output_records += live as u64;
        counters.spilled_records += live as u64;
        target.runs.push(writer.finish()?);
        counters.spills += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::RecordCursor;
    use std::collections::BTreeMap;

    /// A spilled record: (partition, key, value).
    type Spilled = (usize, Vec<u8>, Vec<u8>);

    /// Every record of the table's spills, per spill.
    fn spilled(target: &SpillTarget) -> Vec<Vec<Spilled>> {
        let mut runs = Vec::new();
        for run in &target.runs {
            let mut records = Vec::new();
            for p in 0..target.partitions {
                let Some(mut seg) = run.open_segment(p).expect("segment") else { continue };
                while seg.advance().expect("read") {
                    records.push((p, seg.key().to_vec(), seg.value().to_vec()));
                }
            }
            runs.push(records);
        }
        runs
    }

    fn target(dir: &std::path::Path) -> SpillTarget {
        SpillTarget { dir: dir.to_owned(), partitions: 3, runs: Vec::new() }
    }

    #[test]
    fn sums_short_and_long_keys_per_output_and_spills_them_sorted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut target = target(dir.path());
        let mut table = AggregateTable::new(Aggregation::SumDecimal, 1 << 20);
        let long = b"a key longer than sixteen bytes".as_slice();
        let pairs: [(usize, &[u8], &[u8]); 7] = [
            (0, b"b", b"1"),
            (0, long, b"2"),
            (0, b"b", b"40"),
            (1, b"b", b"7"),
            (0, b"", b"3"),
            (0, long, b"5"),
            (0, b"exactly16bytes!!", b"1"),
        ];
        for (output, key, value) in pairs {
            // Output 1 is partition 2; output 0 keys go by their first byte.
            table.insert(output, key, value).expect("insert");
        }
        let partition = |output: usize, key: &[u8]| -> Result<u32, AppError> {
            Ok(if output == 1 { 2 } else { u32::from(key.first().copied().unwrap_or(0) % 2) })
        };
        let mut counters = EngineCounters::default();
        table.spill(&mut target, &mut counters, &partition).expect("spill");
        assert!(table.is_empty());
        let got = spilled(&target);
        let expected = vec![
            (0, b"".to_vec(), b"3".to_vec()),
            (0, b"b".to_vec(), b"41".to_vec()),
            (1, long.to_vec(), b"7".to_vec()),
            (1, b"exactly16bytes!!".to_vec(), b"1".to_vec()),
            (2, b"b".to_vec(), b"7".to_vec()),
        ];
        assert_eq!(got, vec![expected]);
        assert_eq!((counters.combine_input_records, counters.combine_output_records), (7, 5));
    }

    #[test]
    fn a_value_that_is_not_a_count_fails_naming_it() {
        let mut table = AggregateTable::new(Aggregation::SumDecimal, 1 << 20);
        table.insert(0, b"k", b"1").expect("a count");
        let err = table.insert(0, b"k", b"one").expect_err("not a count");
        assert!(err.to_string().contains("not a decimal count: \"one\""), "{err}");
    }

    #[test]
    fn an_output_beyond_what_a_slot_holds_is_refused_naming_it() {
        let mut table = AggregateTable::new(Aggregation::SumDecimal, 1 << 20);
        table.insert(OUTPUTS - 1, b"k", b"1").expect("the last output a slot holds");
        let err = table.insert(OUTPUTS, b"k", b"1").expect_err("one too many");
        assert!(err.to_string().contains("output #16777216"), "{err}");
        assert_eq!(std::mem::size_of::<Slot>(), 32, "two slots per cache line");
    }

    #[test]
    fn a_failing_partitioner_fails_the_spill_and_leaves_the_table_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut target = target(dir.path());
        let mut table = AggregateTable::new(Aggregation::SumDecimal, 1 << 20);
        for key in [b"a".as_slice(), b"b", b"c"] {
            table.insert(0, key, b"1").expect("insert");
        }
        let refuse_b = |_: usize, key: &[u8]| -> Result<u32, AppError> {
            if key == b"b" { Err(AppError::permanent("no partition for b")) } else { Ok(0) }
        };
        let err = table.spill(&mut target, &mut EngineCounters::default(), &refuse_b).expect_err("b has none");
        assert!(err.to_string().contains("no partition for b"), "{err}");
        assert!(table.is_empty() && target.runs.is_empty());
        // The emptied table takes keys again.
        table.insert(0, b"d", b"2").expect("insert");
        table.spill(&mut target, &mut EngineCounters::default(), &|_, _| Ok(1)).expect("spill");
        assert_eq!(spilled(&target), vec![vec![(1, b"d".to_vec(), b"2".to_vec())]]);
    }

    #[test]
    fn an_inline_key_is_the_key_zero_padded_for_every_length() {
        let bytes: Vec<u8> = (1..=INLINE as u8).collect();
        for len in 0..=INLINE {
            let mut expected = [0u8; INLINE];
            expected[..len].copy_from_slice(&bytes[..len]);
            assert_eq!(inline_key(&bytes[..len]), expected, "{len} bytes");
        }
    }

    proptest::proptest! {
        /// Whatever the budget (so however often it spills), the spills
        /// hold each key's sum once per spill, and together the totals.
        #[test]
        fn spills_add_up_to_the_totals(
            pairs in proptest::collection::vec((proptest::collection::vec(0u8..4, 0..20), 0u64..1000), 1..200),
            limit in 0usize..4096,
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut target = target(dir.path());
            let mut table = AggregateTable::new(Aggregation::SumDecimal, limit);
            let mut counters = EngineCounters::default();
            let mut expected: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
            for (key, n) in &pairs {
                if table.is_full(key.len()) {
                    table.spill(&mut target, &mut counters, &|_, _| Ok(0)).expect("spill");
                }
                table.insert(0, key, n.to_string().as_bytes()).expect("insert");
                *expected.entry(key.clone()).or_default() += n;
            }
            table.spill(&mut target, &mut counters, &|_, _| Ok(0)).expect("spill");
            let mut totals: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
            for run in spilled(&target) {
                let keys: Vec<&Vec<u8>> = run.iter().map(|(_, k, _)| k).collect();
                proptest::prop_assert!(keys.windows(2).all(|w| w[0] < w[1]), "a spill is sorted, each key once");
                for (_, key, value) in run {
                    let n: u64 = std::str::from_utf8(&value).expect("utf-8").parse().expect("a count");
                    *totals.entry(key).or_default() += n;
                }
            }
            proptest::prop_assert_eq!(totals, expected);
        }
    }
}
