//! The map-side table of a native aggregation ([`Aggregation`]): one fixed
//! state per key instead of its values, for combiners that say what they
//! compute (wordcount's sum). A slot holds the key's full hash (compared
//! before any key byte), its state, and the key itself when it is short (16
//! bytes or less: a lookup then touches the slot alone, and compares 16
//! bytes without a call); longer keys live in one arena. Nothing is
//! allocated per record; only the slot array and the arena grow per key.

use foldhash::fast::FixedState;
use hashbrown::HashTable;
use quern_core::{Aggregation, AppError, EngineCounters};
use std::hash::BuildHasher;

use crate::collect::{CollectError, SpillTarget, key_prefix};

/// Keys up to this long are stored in their slot.
const INLINE: usize = 16;

/// One key: its full hash, compared before any key byte; its bytes inline
/// (zero-padded) when short, which is most keys of text, so that finding a
/// key touches its slot only; otherwise the arena offset of its bytes.
#[derive(Debug, Clone, Copy)]
struct Slot {
    hash: u64,
    state: u64,
    key: [u8; INLINE],
    key_len: u32,
    output: u32,
    partition: u32,
}

impl Slot {
    /// Its key's bytes.
    fn key<'a>(&'a self, arena: &'a [u8]) -> &'a [u8] {
        let len = self.key_len as usize;
        if len <= INLINE {
            &self.key[..len]
        } else {
            let start = u32::from_le_bytes([self.key[0], self.key[1], self.key[2], self.key[3]]) as usize;
            &arena[start..start + len]
        }
    }
}

/// Bytes a key costs besides its long bytes: its slot, and the table's
/// control byte and spare capacity.
const SLOT_COST: usize = std::mem::size_of::<Slot>() * 2;

/// The aggregation table, bounded by the job's sort buffer.
pub struct AggregateTable {
    aggregation: Aggregation,
    table: HashTable<Slot>,
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
            table: HashTable::new(),
            keys: Vec::new(),
            hasher: FixedState::default(),
            limit,
            folded: 0,
            scratch: Vec::new(),
        }
    }

    /// Folds `value` into `key`'s state; `partition` is asked once per new
    /// key.
    #[inline]
    pub fn insert(
        &mut self,
        output: usize,
        key: &[u8],
        value: &[u8],
        partition: &dyn Fn() -> Result<u32, AppError>,
    ) -> Result<(), CollectError> {
        let output = output as u32;
        let hash = self.hasher.hash_one((output, key));
        let len = key.len() as u32;
        self.folded += 1;
        if key.len() > INLINE {
            return self.insert_long(hash, output, key, value, partition);
        }
        let mut inline = [0u8; INLINE];
        inline[..key.len()].copy_from_slice(key);
        let found =
            self.table.find_mut(hash, |s| s.hash == hash && s.key == inline && s.key_len == len && s.output == output);
        match found {
            Some(slot) => self.aggregation.fold(&mut slot.state, value).map_err(CollectError::Combiner),
            None => {
                let mut state = 0;
                self.aggregation.fold(&mut state, value).map_err(CollectError::Combiner)?;
                let partition = partition().map_err(CollectError::Partitioner)?;
                let slot = Slot { hash, state, key: inline, key_len: len, output, partition };
                self.table.insert_unique(hash, slot, |s| s.hash);
                Ok(())
            }
        }
    }

    /// [`AggregateTable::insert`] of a key too long to keep in a slot.
    fn insert_long(
        &mut self,
        hash: u64,
        output: u32,
        key: &[u8],
        value: &[u8],
        partition: &dyn Fn() -> Result<u32, AppError>,
    ) -> Result<(), CollectError> {
        let len = key.len() as u32;
        let keys = &self.keys;
        let found = self
            .table
            .find_mut(hash, |s| s.hash == hash && s.key_len == len && s.output == output && s.key(keys) == key);
        match found {
            Some(slot) => self.aggregation.fold(&mut slot.state, value).map_err(CollectError::Combiner)?,
            None => {
                let mut state = 0;
                self.aggregation.fold(&mut state, value).map_err(CollectError::Combiner)?;
                let partition = partition().map_err(CollectError::Partitioner)?;
                let mut inline = [0u8; INLINE];
                inline[..4].copy_from_slice(&(self.keys.len() as u32).to_le_bytes());
                self.keys.extend_from_slice(key);
                let slot = Slot { hash, state, key: inline, key_len: len, output, partition };
                self.table.insert_unique(hash, slot, |s| s.hash);
            }
        }
        Ok(())
    }

    /// Whether the table is over its budget, or its arena could not take a
    /// key of `next` bytes more (offsets are 32-bit).
    pub fn is_full(&self, next: usize) -> bool {
        self.keys.len() + self.table.len() * SLOT_COST > self.limit || self.keys.len() + next > u32::MAX as usize
    }

    /// Whether the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.folded == 0
    }

    /// Sorts the keys by (partition, key) and writes one run of each key
    /// with its combined value; empties the table.
    pub fn spill(&mut self, target: &mut SpillTarget, counters: &mut EngineCounters) -> Result<(), CollectError> {
        let mut slots: Vec<Slot> = self.table.drain().collect();
        let keys = &self.keys[..];
        slots.sort_unstable_by(|a, b| {
            let key = |s| Slot::key(s, keys);
            a.partition
                .cmp(&b.partition)
                .then_with(|| key_prefix(key(a)).cmp(&key_prefix(key(b))))
                .then_with(|| key(a).cmp(key(b)))
        });
        let mut writer = target.next_writer()?;
        for slot in &slots {
            let value = self.aggregation.format(slot.state, &mut self.scratch);
            writer.write(slot.partition as usize, slot.key(keys), value)?;
        }
        counters.combine_input_records += self.folded;
        counters.combine_output_records += slots.len() as u64;
        counters.spilled_records += slots.len() as u64;
        target.runs.push(writer.finish()?);
        counters.spills += 1;
        self.keys.clear();
        self.folded = 0;
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
            let p = if output == 1 { 2 } else { u32::from(key.first().copied().unwrap_or(0) % 2) };
            table.insert(output, key, value, &|| Ok(p)).expect("insert");
        }
        let mut counters = EngineCounters::default();
        table.spill(&mut target, &mut counters).expect("spill");
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
        table.insert(0, b"k", b"1", &|| Ok(0)).expect("a count");
        let err = table.insert(0, b"k", b"one", &|| Ok(0)).expect_err("not a count");
        assert!(err.to_string().contains("not a decimal count: \"one\""), "{err}");
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
                    table.spill(&mut target, &mut counters).expect("spill");
                }
                table.insert(0, key, n.to_string().as_bytes(), &|| Ok(0)).expect("insert");
                *expected.entry(key.clone()).or_default() += n;
            }
            table.spill(&mut target, &mut counters).expect("spill");
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
