//! Microbenchmarks of the engine's hot paths, on deterministic data shaped
//! like the shared benchmarks' (`../shared/bench`):
//!
//! - `combine_table`, `aggregate_table`: a map task's collector for
//!   wordcount-like pairs (`word`, `1`), with a combiner that the engine runs
//!   through the generic [`quern_engine::collect::CombineTable`], and with one
//!   that declares a native aggregation (the
//!   [`quern_engine::aggregate::AggregateTable`], wordcount's path). The
//!   words follow Zipf's law (exponent 1.0) over 200,000 made-up words, as
//!   `gen_corpus.py`'s do: about 124,000 distinct keys in 2^20 words.
//!   `collect` is the inserts alone; `spill` sorts the full table and writes
//!   its run.
//! - `sort_buffer`: a total-order sort's map side, 100-byte TeraSort-like
//!   lines (as `gen_sortdata.py` writes them) into a
//!   [`quern_engine::collect::SortBuffer`], with a buffer that holds them all
//!   (one spill) and one that spills four times.
//! - `merge`: the k-way [`quern_engine::merge::RunMerger`] over sorted run
//!   files of those lines (4, 16 and 64 runs), and a wordcount reduce's merge
//!   of 16 map outputs grouped by key and summed.
//!
//! `cargo bench -p quern-engine --bench hot_paths` runs them;
//! `-- --test` runs each once (a check, not a measurement).

use std::collections::{BTreeMap, HashSet};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use quern_core::{Aggregation, AppError, CombineOutput, Combiner, CutPoints, EngineCounters, Values};
use quern_engine::collect::{Collector, SortBuffer, SpillTarget};
use quern_engine::merge::{KeyGroups, RunMerger, RunSegment};
use quern_engine::run::{RecordCursor, RunWriter};

/// Words in one collector run: about a 6 MiB map split of text.
const WORDS: usize = 1 << 20;
/// Distinct words to draw from, and the Zipf exponent (`gen_corpus.py`'s).
const VOCABULARY: usize = 200_000;
const ZIPF_EXPONENT: f64 = 1.0;
/// Bytes of 100-byte lines for the sort buffer and the merge.
const SORT_BYTES: usize = 16 << 20;
/// The job's default `--sort-buffer`: large enough that `collect` never
/// spills on its own.
const TABLE_LIMIT: usize = 64 << 20;

/// A small deterministic generator (SplitMix64): the same data on every
/// machine, without a dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The vocabulary, most frequent first: word `i` is spelled from the
/// syllables of `i`, so words are distinct and frequent words are short
/// (1 to 4 syllables, 4.5 letters a word on average over the Zipf draw).
fn vocabulary() -> Vec<Vec<u8>> {
    const SYLLABLES: [&str; 30] = [
        "ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "ba", "de", "fu", "go", "hi", "ja", "qu", "xe", "yo",
        "wa", "pe", "an", "el", "in", "or", "um", "st", "th", "ch", "sh", "br",
    ];
    (0..VOCABULARY)
        .map(|mut i| {
            let mut w = Vec::new();
            loop {
                w.extend_from_slice(SYLLABLES[i % SYLLABLES.len()].as_bytes());
                i /= SYLLABLES.len();
                if i == 0 {
                    break w;
                }
                i -= 1;
            }
        })
        .collect()
}

/// `n` word ranks drawn from Zipf's law by inverting its CDF, as
/// `gen_corpus.py` does.
fn zipf_ranks(n: usize, seed: u64) -> Vec<usize> {
    let mut cdf: Vec<f64> = Vec::with_capacity(VOCABULARY);
    let mut total = 0.0;
    for r in 1..=VOCABULARY {
        total += 1.0 / (r as f64).powf(ZIPF_EXPONENT);
        cdf.push(total);
    }
    let mut rng = SplitMix(seed);
    (0..n)
        .map(|_| {
            let u = rng.unit() * total;
            cdf.partition_point(|&c| c <= u).min(VOCABULARY - 1)
        })
        .collect()
}

/// A map task's words, in order.
fn words(vocabulary: &[Vec<u8>]) -> Vec<&[u8]> {
    zipf_ranks(WORDS, 6584).into_iter().map(|r| vocabulary[r].as_slice()).collect()
}

/// `bytes` worth of 100-byte lines without their newline: a 10-character
/// key over `[A-Za-z0-9]`, a TAB and 88 characters over `[a-z0-9]`.
fn sort_lines(bytes: usize, seed: u64) -> Vec<Vec<u8>> {
    const KEY: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const VALUE: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = SplitMix(seed);
    (0..bytes / 100)
        .map(|_| {
            let mut line = Vec::with_capacity(99);
            line.extend((0..10).map(|_| KEY[rng.below(KEY.len())]));
            line.push(b'\t');
            line.extend((0..88).map(|_| VALUE[rng.below(VALUE.len())]));
            line
        })
        .collect()
}

/// Wordcount's combiner, run by the generic combine table (it declares no
/// native aggregation).
struct Sum;

impl Combiner for Sum {
    fn combine(
        &self,
        _: usize,
        _: &[u8],
        values: &mut Values<'_>,
        out: &mut CombineOutput<'_>,
    ) -> Result<(), AppError> {
        out.emit(values.sum_decimal()?.to_string().as_bytes());
        Ok(())
    }
}

/// The same sum, declared as the native aggregation wordcount's is.
struct NativeSum;

impl Combiner for NativeSum {
    fn combine(
        &self,
        output: usize,
        key: &[u8],
        values: &mut Values<'_>,
        out: &mut CombineOutput<'_>,
    ) -> Result<(), AppError> {
        Sum.combine(output, key, values, out)
    }

    fn aggregation(&self, _: usize) -> Option<Aggregation> {
        Some(Aggregation::SumDecimal)
    }
}

/// Where spills go: two partitions, in `dir`.
fn target(dir: &Path) -> SpillTarget {
    SpillTarget { dir: dir.to_owned(), partitions: 2, runs: Vec::new() }
}

/// Partitions by hash, over 2 reducers.
fn by_hash(_: usize, key: &[u8]) -> Result<u32, quern_core::AppError> {
    Ok(quern_core::partition(key, 2))
}

/// Collects each word with the value `1`, partitioned by hash as
/// wordcount's map output is.
fn collect_words(collector: &mut Collector<'_>, words: &[&[u8]], target: &mut SpillTarget) {
    let mut counters = EngineCounters::default();
    for &word in words {
        collector.collect(0, word, b"1", &by_hash, target, &mut counters).expect("collect");
    }
}

/// `collect` and `spill` of one combiner's table.
fn bench_table(c: &mut Criterion, name: &str, combiner: &dyn Combiner) {
    let vocabulary = vocabulary();
    let words = words(&vocabulary);
    let distinct = words.iter().collect::<HashSet<_>>().len() as u64;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group(name);
    group.sample_size(20).measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(words.len() as u64));
    group.bench_function(BenchmarkId::new("collect", format!("{}k_words", words.len() >> 10)), |b| {
        b.iter_batched(
            || (Collector::new(Some(combiner), &[0], TABLE_LIMIT), target(dir.path())),
            |(mut collector, mut target)| {
                collect_words(&mut collector, &words, &mut target);
                // Dropped outside the measurement.
                (collector, target)
            },
            BatchSize::LargeInput,
        );
    });
    group.throughput(Throughput::Elements(distinct));
    group.bench_function(BenchmarkId::new("spill", format!("{}k_keys", distinct >> 10)), |b| {
        b.iter_batched(
            || {
                let mut collector = Collector::new(Some(combiner), &[0], TABLE_LIMIT);
                let mut target = target(dir.path());
                collect_words(&mut collector, &words, &mut target);
                (collector, target)
            },
            |(mut collector, mut target)| {
                collector.flush(&mut target, &mut EngineCounters::default(), &by_hash).expect("flush");
                (collector, target)
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

fn combine_table(c: &mut Criterion) {
    bench_table(c, "combine_table", &Sum);
}

fn aggregate_table(c: &mut Criterion) {
    bench_table(c, "aggregate_table", &NativeSum);
}

/// A total-order sort's map side: every line a key with an empty value,
/// partitioned by cut points chosen from the lines, collected and spilled.
fn sort_buffer(c: &mut Criterion) {
    let lines = sort_lines(SORT_BYTES, 1);
    let sample: Vec<&[u8]> = lines.iter().step_by(97).map(Vec::as_slice).collect();
    let cuts = CutPoints::choose(&sample, 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("sort_buffer");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Bytes((lines.len() * 100) as u64));
    for spills in [1, 4] {
        // One spill: the buffer holds every line (the job's case with
        // `--sort-buffer 256MiB` over 64 MiB splits); four: a quarter of them.
        let limit = if spills == 1 { SORT_BYTES * 2 } else { SORT_BYTES / spills };
        group.bench_function(
            BenchmarkId::new("collect_and_spill", format!("{}MiB/{spills}_spills", SORT_BYTES >> 20)),
            |b| {
                b.iter(|| {
                    let mut collector = Collector::Sorting(SortBuffer::new(limit));
                    let mut target = target(dir.path());
                    let mut counters = EngineCounters::default();
                    let partition = |_: usize, key: &[u8]| Ok(cuts.partition(key));
                    for line in &lines {
                        collector.collect(0, line, b"", &partition, &mut target, &mut counters).expect("collect");
                    }
                    collector.flush(&mut target, &mut counters, &partition).expect("flush");
                    assert!(counters.spills >= spills as u64, "{} spills", counters.spills);
                    target.runs.len()
                });
            },
        );
    }
    group.finish();
}

/// Writes each run (sorted here) as a one-partition run file.
fn write_runs(dir: &Path, name: &str, runs: Vec<Vec<(Vec<u8>, Vec<u8>)>>) -> Vec<RunSegment> {
    runs.into_iter()
        .enumerate()
        .map(|(i, mut records)| {
            records.sort();
            let mut writer = RunWriter::create(dir.join(format!("{name}-{i:03}.run")), 1).expect("create");
            for (k, v) in &records {
                writer.write(0, k, v).expect("write");
            }
            let index = writer.finish().expect("finish");
            RunSegment { path: index.path, segment: index.segments[0] }
        })
        .collect()
}

/// The k-way merge of sorted lines, and a wordcount reduce's grouped merge.
fn merge(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = sort_lines(SORT_BYTES, 2);
    let mut group = c.benchmark_group("merge");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Bytes((lines.len() * 100) as u64));
    for k in [4, 16, 64] {
        let mut runs = vec![Vec::new(); k];
        for (i, line) in lines.iter().enumerate() {
            runs[i % k].push((line.clone(), Vec::new()));
        }
        let runs = write_runs(dir.path(), &format!("lines-{k}"), runs);
        group.bench_function(BenchmarkId::new("lines", format!("{}MiB/{k}_runs", SORT_BYTES >> 20)), |b| {
            b.iter(|| {
                let mut merger = RunMerger::open(&runs).expect("open");
                let mut bytes = 0;
                while merger.advance().expect("advance") {
                    bytes += black_box(merger.key()).len();
                }
                bytes
            });
        });
    }

    // 16 map outputs of wordcount: each map task's distinct words with their
    // counts; the reduce groups equal keys and sums them.
    let vocabulary = vocabulary();
    let words = words(&vocabulary);
    let maps = 16;
    let outputs: Vec<Vec<(Vec<u8>, Vec<u8>)>> = words
        .chunks(words.len() / maps)
        .map(|chunk| {
            let mut counts: BTreeMap<&[u8], u64> = BTreeMap::new();
            for &w in chunk {
                *counts.entry(w).or_default() += 1;
            }
            counts.into_iter().map(|(w, n)| (w.to_vec(), n.to_string().into_bytes())).collect()
        })
        .collect();
    let records: usize = outputs.iter().map(Vec::len).sum();
    let runs = write_runs(dir.path(), "counts", outputs);
    group.throughput(Throughput::Elements(records as u64));
    group.bench_function(
        BenchmarkId::new("wordcount_reduce", format!("{maps}_runs/{}k_records", records >> 10)),
        |b| {
            b.iter(|| {
                let mut groups = KeyGroups::new(RunMerger::open(&runs).expect("open")).expect("groups");
                let mut total = 0;
                while groups.next_group().expect("group") {
                    total += Values::new(&mut groups).sum_decimal().expect("counts");
                }
                total
            });
        },
    );
    group.finish();
}

criterion_group!(benches, combine_table, aggregate_table, sort_buffer, merge);
criterion_main!(benches);
