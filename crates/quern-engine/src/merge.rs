//! Streaming k-way merge of sorted runs, grouping of equal keys, and
//! multi-pass merging when there are more runs than the merge factor.
//!
//! [`RunMerger`] keeps one cursor per run in a binary heap ordered by (key,
//! run number), so equal keys come out in run order and the merge is
//! deterministic. Memory is one buffered cursor per run, which
//! [`merge_to_factor`] bounds by first merging groups of runs into
//! intermediate run files, as Hadoop's `io.sort.factor` does.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;
use std::io;
use std::path::Path;

use quern_core::ValueSource;

use crate::collect::key_prefix;
use crate::run::{RecordCursor, RunIndex, RunWriter, Segment, SegmentReader};

/// A run to merge: one segment of one run file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunSegment {
    /// The file.
    pub path: std::path::PathBuf,
    /// The segment.
    pub segment: Segment,
}

/// A run in the merge heap. Its reader is boxed: the heap moves its
/// entries on every record, and a reader with its buffers and decoder is
/// hundreds of bytes.
struct HeapEntry {
    /// The first 8 bytes of the cursor's key, big-endian: most comparisons
    /// end here, without a call to compare slices.
    prefix: u64,
    run: usize,
    cursor: Box<SegmentReader>,
}

impl HeapEntry {
    fn new(run: usize, cursor: Box<SegmentReader>) -> Self {
        HeapEntry { prefix: key_prefix(cursor.key()), run, cursor }
    }

    /// Moves the cursor to its next record; `false` at its end.
    fn advance(&mut self) -> io::Result<bool> {
        let more = self.cursor.advance()?;
        self.prefix = key_prefix(self.cursor.key());
        Ok(more)
    }
}

impl PartialEq for HeapEntry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for HeapEntry {}
impl PartialOrd for HeapEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapEntry {
    // Reversed: BinaryHeap is a max-heap and we want the smallest key first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .prefix
            .cmp(&self.prefix)
            .then_with(|| other.cursor.key().cmp(self.cursor.key()))
            .then_with(|| other.run.cmp(&self.run))
    }
}

/// Merges sorted runs into one sorted stream. The current record is the
/// heap's top cursor's, read in place: that cursor moves on (and the heap
/// is reordered) at the next [`RecordCursor::advance`], so no record is
/// copied.
pub struct RunMerger {
    heap: BinaryHeap<HeapEntry>,
    /// Whether the top cursor holds the record last returned, to be moved
    /// past at the next advance.
    top_returned: bool,
}

impl RunMerger {
    /// Opens every run (empty ones are skipped).
    pub fn open(runs: &[RunSegment]) -> io::Result<RunMerger> {
        let mut heap = BinaryHeap::with_capacity(runs.len());
        for (run, r) in runs.iter().enumerate() {
            if r.segment.records == 0 {
                continue;
            }
            let mut cursor = SegmentReader::open(&r.path, r.segment)?;
            if cursor.advance()? {
                heap.push(HeapEntry::new(run, Box::new(cursor)));
            }
        }
        Ok(RunMerger { heap, top_returned: false })
    }
}

impl RecordCursor for RunMerger {
    fn advance(&mut self) -> io::Result<bool> {
        if std::mem::take(&mut self.top_returned)
            && let Some(mut top) = self.heap.peek_mut()
            && !top.advance()?
        {
            PeekMut::pop(top);
        }
        self.top_returned = !self.heap.is_empty();
        Ok(self.top_returned)
    }

    fn key(&self) -> &[u8] {
        self.heap.peek().map_or(&[], |top| top.cursor.key())
    }

    fn value(&self) -> &[u8] {
        self.heap.peek().map_or(&[], |top| top.cursor.value())
    }
}

/// Groups a sorted stream by key: [`KeyGroups::next_group`] moves to the next
/// distinct key, and the group itself is a [`ValueSource`] of that key's
/// values. Values the consumer leaves unread are skipped.
pub struct KeyGroups<C> {
    cursor: C,
    has_record: bool,
    consumed: bool,
    in_group: bool,
    key: Vec<u8>,
    error: Option<io::Error>,
    values_read: u64,
    records: u64,
}

impl<C: RecordCursor> KeyGroups<C> {
    /// Groups `cursor`'s records.
    pub fn new(mut cursor: C) -> io::Result<Self> {
        let has_record = cursor.advance()?;
        Ok(KeyGroups {
            records: u64::from(has_record),
            cursor,
            has_record,
            consumed: false,
            in_group: false,
            key: Vec::new(),
            error: None,
            values_read: 0,
        })
    }

    fn step(&mut self) {
        match self.cursor.advance() {
            Ok(more) => {
                self.has_record = more;
                self.records += u64::from(more);
            }
            Err(e) => {
                self.has_record = false;
                self.error = Some(e);
            }
        }
        self.consumed = false;
    }

    /// Moves to the next distinct key; `false` at the end of the stream.
    pub fn next_group(&mut self) -> io::Result<bool> {
        loop {
            if self.consumed {
                self.step();
            }
            if let Some(e) = self.error.take() {
                return Err(e);
            }
            if !self.has_record {
                return Ok(false);
            }
            if self.in_group && self.cursor.key() == self.key.as_slice() {
                self.consumed = true;
                continue;
            }
            self.key.clear();
            self.key.extend_from_slice(self.cursor.key());
            self.in_group = true;
            return Ok(true);
        }
    }

    /// The current group's key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// Takes the error a value read hit, if any (the reducer saw the values
    /// end early; the caller must fail the attempt).
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    /// Records the underlying stream has produced so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Values handed out so far, over all groups.
    pub fn values_read(&self) -> u64 {
        self.values_read
    }
}

impl<C: RecordCursor> ValueSource for KeyGroups<C> {
    fn next_value(&mut self) -> Option<&[u8]> {
        if self.consumed {
            self.step();
        }
        if !self.has_record || self.cursor.key() != self.key.as_slice() {
            return None;
        }
        self.consumed = true;
        self.values_read += 1;
        Some(self.cursor.value())
    }
}

/// Reduces the number of runs to at most `factor` by merging the smallest
/// runs into intermediate single-partition run files under `dir`, as many
/// passes as needed. Returns the remaining runs and the records written by
/// the intermediate passes.
pub fn merge_to_factor(mut runs: Vec<RunSegment>, factor: usize, dir: &Path) -> io::Result<(Vec<RunSegment>, u64)> {
    let factor = factor.max(2);
    runs.retain(|r| r.segment.records > 0);
    let mut written = 0u64;
    let mut pass = 0usize;
    while runs.len() > factor {
        // Merge the smallest runs first (Hadoop's rule): each byte is
        // rewritten as few times as possible. The first pass merges just
        // enough runs that every later pass is a full `factor`-way merge.
        runs.sort_by_key(|r| std::cmp::Reverse(r.segment.raw_len));
        let excess = runs.len() - factor;
        let take = if pass == 0 { (excess % (factor - 1)) + 1 } else { factor };
        let take = take.max(2).min(runs.len());
        let group = runs.split_off(runs.len() - take);
        let path = dir.join(format!("merge-{pass:04}.run"));
        let mut merger = RunMerger::open(&group)?;
        let mut writer = RunWriter::create(path, 1)?;
        while merger.advance()? {
            writer.write(0, merger.key(), merger.value())?;
        }
        let RunIndex { path, segments } = writer.finish()?;
        for r in &group {
            // Intermediate files are ours to delete; the originals are not.
            if r.path.starts_with(dir) && r.path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("merge-"))
            {
                let _ = std::fs::remove_file(&r.path);
            }
        }
        let segment = segments.first().copied().unwrap_or_default();
        written += segment.records;
        runs.push(RunSegment { path, segment });
        pass += 1;
    }
    Ok((runs, written))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use quern_core::Values;

    fn write_runs(dir: &Path, runs: &[Vec<(Vec<u8>, Vec<u8>)>]) -> Vec<RunSegment> {
        runs.iter()
            .enumerate()
            .map(|(i, records)| {
                let mut w = RunWriter::create(dir.join(format!("in-{i}.run")), 1).expect("create");
                for (k, v) in records {
                    w.write(0, k, v).expect("write");
                }
                let index = w.finish().expect("finish");
                RunSegment { path: index.path, segment: index.segments[0] }
            })
            .collect()
    }

    fn sorted_runs() -> impl Strategy<Value = Vec<Vec<(Vec<u8>, Vec<u8>)>>> {
        let record = (proptest::collection::vec(0u8..4, 0..3), proptest::collection::vec(any::<u8>(), 0..3));
        proptest::collection::vec(proptest::collection::vec(record, 0..20), 0..12).prop_map(|mut runs| {
            for r in &mut runs {
                r.sort_by(|a, b| a.0.cmp(&b.0));
            }
            runs
        })
    }

    proptest! {
        #[test]
        fn merge_equals_stable_sort_of_concatenation(runs in sorted_runs(), factor in 2usize..5) {
            let dir = tempfile::tempdir().expect("tempdir");
            let segments = write_runs(dir.path(), &runs);
            let mut expected: Vec<_> = runs.concat();
            expected.sort_by(|a, b| a.0.cmp(&b.0));

            let (segments, _) = merge_to_factor(segments, factor, dir.path()).expect("merge passes");
            prop_assert!(segments.len() <= factor);
            let mut merger = RunMerger::open(&segments).expect("open");
            let mut got = Vec::new();
            while merger.advance().expect("advance") {
                got.push((merger.key().to_vec(), merger.value().to_vec()));
            }
            // Keys in order, and the same multiset of records.
            let mut got_sorted = got.clone();
            got_sorted.sort();
            let mut expected_sorted = expected.clone();
            expected_sorted.sort();
            prop_assert_eq!(got_sorted, expected_sorted);
            prop_assert!(got.windows(2).all(|w| w[0].0 <= w[1].0));
        }

        #[test]
        fn groups_see_every_value_even_when_skipped(runs in sorted_runs(), read_first_only in any::<bool>()) {
            let dir = tempfile::tempdir().expect("tempdir");
            let segments = write_runs(dir.path(), &runs);
            let mut groups = KeyGroups::new(RunMerger::open(&segments).expect("open")).expect("groups");
            let mut got: Vec<(Vec<u8>, usize)> = Vec::new();
            while groups.next_group().expect("group") {
                let key = groups.key().to_vec();
                let mut values = Values::new(&mut groups);
                let mut n = 0;
                while values.next().is_some() {
                    n += 1;
                    if read_first_only { break; }
                }
                got.push((key, n));
            }
            let mut expected: Vec<(Vec<u8>, usize)> = Vec::new();
            let mut all: Vec<_> = runs.concat();
            all.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, _) in all {
                match expected.last_mut() {
                    Some((last, n)) if *last == k => { if !read_first_only { *n += 1 } }
                    _ => expected.push((k, 1)),
                }
            }
            prop_assert_eq!(got, expected);
        }
    }
}
