//! Sampling a job's input for a total-order partitioner, as TeraSort's
//! sampler and Hadoop's `InputSampler` do, when the job is planned.
//!
//! A bounded sample is read from [`Budget::places`] places evenly spaced over
//! the whole input (the splits' files end to end): each place is a byte range
//! of [`Budget::bytes`]`/places` at most, opened like a split
//! ([`Storage::open_split`], so the line rule finds its first record and an
//! object is read with small ranged GETs), and its records go through the
//! app's own `map`, so the keys are the ones the job will partition,
//! whatever the app. A file that cannot be read from the middle (compressed,
//! an input format that does not split, or one that numbers lines, which
//! would cost a scan from the file's start) is read from its start instead,
//! for as many bytes as the places that fall in it. An input no bigger than
//! the budget is read whole. Each place keeps at most its share of
//! [`Budget::keys`] keys and [`Budget::key_bytes`] key bytes, in proportion
//! to its bytes, so memory stays bounded whatever `map` emits.
//!
//! The keys of each output partitioned in total order are sorted and
//! [`CutPoints::choose`] picks its cut points, which go in the plan. Nothing
//! is random: the same input and app give the same plan.
//!
//! A record whose `map` fails or panics while sampling is left out, and a
//! place that cannot be read is skipped with a warning: the job's map tasks
//! meet the same record or file and deal with it (retries, skipping,
//! failing the job naming the split), so sampling does not decide it twice.

use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use quern_core::{
    App, AttemptId, AttemptInfo, Compression, Counters, CutPoints, InputFile, InputFormat, InputSplit, JobPlan,
    MapContext, MapSession, MapSink, Record, RecordSink, SplitInput, TaskId, TaskKind,
};
use quern_storage::Storage;

use crate::code::JobCode;

/// How much of the input a sample reads and keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Places read, evenly spaced over the input.
    pub places: u64,
    /// Input bytes read, over all places (a record crossing a place's end is
    /// read whole).
    pub bytes: u64,
    /// Keys kept, over all places and outputs.
    pub keys: usize,
    /// Bytes of keys kept, over all places and outputs.
    pub key_bytes: usize,
}

impl Budget {
    /// What a plan samples: 64 places of 64 KiB (4 MiB in all), at most
    /// 100,000 keys and 16 MiB of keys.
    pub const DEFAULT: Budget = Budget { places: 64, bytes: 4 << 20, keys: 100_000, key_bytes: 16 << 20 };
}

/// Places read at once: a place is small, so an object store's latency, not
/// its bandwidth, is what reading them one by one would cost.
const READERS: usize = 4;

/// One range of one file to read for the sample.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Piece {
    /// What to open: a range of a file (its records are those that start in
    /// it), or a whole file read from its start.
    split: InputSplit,
    /// For a file read from its start without a range (compressed, or a
    /// format that does not split): stop after the record that reaches this
    /// offset in its (uncompressed) bytes.
    until: Option<u64>,
    /// Input bytes this piece stands for (what its key budget is in
    /// proportion to).
    bytes: u64,
}

/// Keys of one output, end to end.
#[derive(Debug, Default)]
struct Keys {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Keys {
    fn push(&mut self, key: &[u8]) {
        self.bytes.extend_from_slice(key);
        self.ends.push(self.bytes.len());
    }

    fn truncate(&mut self, len: usize) {
        self.ends.truncate(len);
        self.bytes.truncate(self.ends.last().copied().unwrap_or(0));
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(s, &e)| &self.bytes[s..e])
    }
}

/// What a sample found: each output's keys (empty for an output that is not
/// sampled), the records read and those left out.
#[derive(Debug, Default)]
struct Sample {
    keys: Vec<Keys>,
    records: u64,
    skipped: u64,
}

/// Replaces the (empty) cut points of every output of `plan` partitioned in
/// total order by points chosen from a sample of its keys, read within
/// `budget` (see the module's documentation).
pub(crate) fn choose_cut_points(
    plan: &mut JobPlan,
    app: &dyn App,
    storage: &Storage,
    code: JobCode<'_>,
    budget: Budget,
) {
    let wanted: Vec<bool> = plan.outputs.iter().map(|o| o.cut_points.is_some() && o.reducers > 1).collect();
    if !wanted.contains(&true) {
        return;
    }
    let format = app.input_format();
    let pieces = lay_out(plan, format.line_numbers(), budget);
    let sample = read_pieces(&pieces, app, Source { format: &*format, storage, code }, &wanted, budget);
    for (o, keys) in plan.outputs.iter_mut().zip(&sample.keys) {
        if o.cut_points.is_none() || o.reducers <= 1 {
            continue;
        }
        let mut sorted: Vec<&[u8]> = keys.iter().collect();
        sorted.sort_unstable();
        let cuts = CutPoints::choose(&sorted, o.reducers);
        tracing::debug!(output = o.name, keys = sorted.len(), cut_points = cuts.len(), "total order sampled");
        o.cut_points = Some(cuts);
    }
    tracing::debug!(places = pieces.len(), records = sample.records, skipped = sample.skipped, "input sampled");
}

/// Where to read: the pieces of the input that `budget.places` evenly spaced
/// places fall on (see the module's documentation).
fn lay_out(plan: &JobPlan, line_numbers: bool, budget: Budget) -> Vec<Piece> {
    struct File<'a> {
        file: &'a InputFile,
        /// Whether a range in the middle may be read.
        from_middle: bool,
        /// Whether it may be read up to a byte offset (plain bytes, split).
        ranged: bool,
        /// Where it starts in the input, end to end.
        at: u64,
        /// Bytes of places that fall in it, when it is read from its start.
        from_start: u64,
    }
    let mut files: Vec<File<'_>> = Vec::new();
    let mut total = 0u64;
    for split in &plan.splits {
        if files.last().is_some_and(|f| f.file == &split.file) {
            continue;
        }
        let ranged = split.end.is_some() && split.file.compression == Compression::None;
        files.push(File { file: &split.file, from_middle: ranged && !line_numbers, ranged, at: total, from_start: 0 });
        total += split.file.len;
    }
    let places = budget.places.max(1);
    let per_place = (budget.bytes / places).max(1);
    let bound = |i: u64| (u128::from(total) * u128::from(i) / u128::from(places)) as u64;
    let mut pieces = Vec::new();
    for i in 0..places {
        let start = bound(i);
        let end = bound(i + 1).min(start + per_place);
        let first = files.partition_point(|f| f.at + f.file.len <= start);
        for f in files[first..].iter_mut().take_while(|f| f.at < end) {
            let (a, b) = (start.max(f.at) - f.at, end.min(f.at + f.file.len) - f.at);
            if a >= b {
                continue;
            }
            if f.from_middle {
                let split = InputSplit { file: f.file.clone(), start: a, end: Some(b) };
                pieces.push(Piece { split, until: None, bytes: b - a });
            } else {
                f.from_start += b - a;
            }
        }
    }
    for f in files.iter().filter(|f| f.from_start > 0) {
        let len = f.from_start.min(f.file.len);
        let (end, until) =
            if f.ranged { (Some(len), None) } else { (None, (f.from_start < f.file.len).then_some(f.from_start)) };
        pieces.push(Piece { split: InputSplit { file: f.file.clone(), start: 0, end }, until, bytes: f.from_start });
    }
    pieces
}

/// Reads `pieces` (a few at once), keeping the keys of the `wanted` outputs.
/// Where a sample's records come from: the app's input format over
/// storage, mapped in directories that hold the job's code files.
#[derive(Clone, Copy)]
struct Source<'a> {
    format: &'a dyn InputFormat,
    storage: &'a Storage,
    code: JobCode<'a>,
}

fn read_pieces(pieces: &[Piece], app: &dyn App, source: Source<'_>, wanted: &[bool], budget: Budget) -> Sample {
    let sampled = pieces.iter().map(|p| u128::from(p.bytes)).sum::<u128>().max(1);
    let share = |total: usize, bytes: u64| (total as u128 * u128::from(bytes)).div_ceil(sampled) as usize;
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::with_capacity(pieces.len()));
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(piece) = pieces.get(i) else { break };
            let limits = (share(budget.keys, piece.bytes), share(budget.key_bytes, piece.bytes));
            let sample = read_piece(piece, i, app, source, wanted, limits);
            done.lock().unwrap_or_else(|p| p.into_inner()).push((i, sample));
        }
    };
    std::thread::scope(|scope| {
        for n in 0..READERS.min(pieces.len()) {
            // Named so that the CLI keeps panics of user code here quiet,
            // as in a task's slots.
            let spawned = std::thread::Builder::new().name(format!("quern-sample-{n}")).spawn_scoped(scope, work);
            if spawned.is_err() {
                break;
            }
        }
    });
    work(); // Whatever no thread took, if none could start.
    let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
    done.sort_by_key(|(i, _)| *i);
    let mut all = Sample { keys: wanted.iter().map(|_| Keys::default()).collect(), ..Sample::default() };
    for (_, sample) in done {
        for (into, keys) in all.keys.iter_mut().zip(&sample.keys) {
            for k in keys.iter() {
                into.push(k);
            }
        }
        all.records += sample.records;
        all.skipped += sample.skipped;
    }
    all
}

/// Reads one piece (the `index`th), keeping at most `limits` (keys, key
/// bytes). An app that maps in sessions (a streaming command) maps the
/// piece in one, as attempt 0 of map `index`, in a scratch directory of
/// its own.
fn read_piece(
    piece: &Piece,
    index: usize,
    app: &dyn App,
    Source { format, storage, code }: Source<'_>,
    wanted: &[bool],
    limits: (usize, usize),
) -> Sample {
    let sink = KeySink {
        wanted,
        keys: wanted.iter().map(|_| Keys::default()).collect(),
        count: 0,
        bytes: 0,
        max_keys: limits.0,
        max_bytes: limits.1,
        full: false,
    };
    let scratch = tempfile::tempdir();
    let cancel = AtomicBool::new(false);
    let session = match &scratch {
        Ok(dir) => {
            if let Err(e) = code.put_into(dir.path()) {
                tracing::warn!("sampling {} for total order: {e}", piece.split);
                return Sample { keys: sink.keys, records: 0, skipped: 0 };
            }
            let info = AttemptInfo {
                attempt: AttemptId { task: TaskId { kind: TaskKind::Map, index: index as u32 }, attempt: 0 },
                split: Some(&piece.split),
                output: None,
                partition: None,
                work_dir: dir.path(),
                cancel: &cancel,
            };
            match catch_unwind(AssertUnwindSafe(|| app.map_session(&info))) {
                Ok(Ok(session)) => session,
                Ok(Err(e)) => {
                    tracing::warn!("sampling {} for total order: opening the map session: {e}", piece.split);
                    return Sample { keys: sink.keys, records: 0, skipped: 0 };
                }
                Err(_) => {
                    tracing::warn!("sampling {} for total order: opening the map session panicked", piece.split);
                    return Sample { keys: sink.keys, records: 0, skipped: 0 };
                }
            }
        }
        Err(e) => {
            tracing::warn!("sampling {} for total order: no scratch directory: {e}", piece.split);
            None
        }
    };
    let mut sampler =
        Sampler { app, session, sink, until: piece.until, records: 0, skipped: 0, counters: Counters::default() };
    // Pieces of line-numbered formats start at 0, where counting is free.
    let read = storage
        .open_split(&piece.split, format.line_numbers() && piece.split.start == 0)
        .map_err(Into::into)
        .and_then(|opened| {
            let mut reader = opened.reader;
            let split = &piece.split;
            let mut input = SplitInput::new(
                &mut reader,
                &split.file.name,
                split.start,
                split.end,
                opened.line_start,
                opened.lines_before,
            );
            format.read(&mut input, &mut sampler)
        });
    if let Err(e) = read {
        tracing::warn!("sampling {} for total order: {e}; going on without the rest of it", piece.split);
    }
    if let Some(session) = sampler.session.take() {
        let (sink, counters) = (&mut sampler.sink, &mut sampler.counters);
        match catch_unwind(AssertUnwindSafe(|| session.finish(&mut MapContext::new(sink, counters)))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("sampling {} for total order: the map session: {e}", piece.split),
            Err(_) => tracing::warn!("sampling {} for total order: the map session panicked", piece.split),
        }
    }
    Sample { keys: sampler.sink.keys, records: sampler.records, skipped: sampler.skipped }
}

/// Keeps the keys `map` emits to the wanted outputs, within limits.
struct KeySink<'a> {
    wanted: &'a [bool],
    keys: Vec<Keys>,
    count: usize,
    bytes: usize,
    max_keys: usize,
    max_bytes: usize,
    /// A key did not fit: the piece is done.
    full: bool,
}

impl MapSink for KeySink<'_> {
    fn emit(&mut self, output: usize, key: &[u8], _value: &[u8]) {
        if !self.wanted.get(output).copied().unwrap_or(false) || self.full {
            return;
        }
        if self.count >= self.max_keys || self.bytes + key.len() > self.max_bytes {
            self.full = true;
            return;
        }
        self.keys[output].push(key);
        self.count += 1;
        self.bytes += key.len();
    }
}

/// Calls `map` on each record of a piece, until the piece or its budget
/// ends; or hands the record to the app's map session, which emits when it
/// will (so a record it fails on ends the piece, with what it emitted).
struct Sampler<'a, 'k> {
    app: &'a dyn App,
    session: Option<Box<dyn MapSession + 'a>>,
    sink: KeySink<'k>,
    until: Option<u64>,
    records: u64,
    skipped: u64,
    counters: Counters,
}

impl RecordSink for Sampler<'_, '_> {
    fn record(&mut self, record: Record<'_>) -> ControlFlow<()> {
        if let Some(session) = self.session.as_mut() {
            let (sink, counters) = (&mut self.sink, &mut self.counters);
            let mapped = catch_unwind(AssertUnwindSafe(|| session.map(&record, &mut MapContext::new(sink, counters))));
            self.records += 1;
            let end = record.offset + record.data.len() as u64;
            return if !matches!(mapped, Ok(Ok(()))) {
                self.session = None;
                self.skipped += 1;
                ControlFlow::Break(())
            } else if self.sink.full || self.until.is_some_and(|until| end >= until) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            };
        }
        let before: Vec<usize> = self.sink.keys.iter().map(|k| k.ends.len()).collect();
        let (count, bytes) = (self.sink.count, self.sink.bytes);
        let mapped = catch_unwind(AssertUnwindSafe(|| {
            self.app.map(&record, &mut MapContext::new(&mut self.sink, &mut self.counters))
        }));
        self.records += 1;
        if !matches!(mapped, Ok(Ok(()))) {
            // Leave out what a failed call emitted, as a skipped record would.
            for (keys, &len) in self.sink.keys.iter_mut().zip(&before) {
                keys.truncate(len);
            }
            (self.sink.count, self.sink.bytes) = (count, bytes);
            self.skipped += 1;
        }
        let end = record.offset + record.data.len() as u64;
        if self.sink.full || self.until.is_some_and(|until| end >= until) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;

    use quern_core::{AppError, AppPartitioner, JobSpec, Partitioner, TextLines};

    use super::*;

    /// The sample of `pieces` of local files, through `app`, with no code
    /// files.
    fn local_sample(pieces: &[Piece], app: &Lines, budget: Budget) -> Sample {
        let source = Source { format: &*app.input_format(), storage: &Storage::default(), code: JobCode::none() };
        read_pieces(pieces, app, source, &[true], budget)
    }

    /// Lines as keys, in total order; optionally numbering lines, and
    /// panicking on lines that start with `!`.
    struct Lines {
        numbered: bool,
    }

    impl App for Lines {
        fn map(&self, r: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
            assert!(!r.data.starts_with(b"!"), "a bad record");
            assert_eq!(r.line.is_some(), self.numbered, "line numbers as the format says");
            ctx.emit(r.data, b"");
            Ok(())
        }
        fn partitioner(&self) -> AppPartitioner {
            AppPartitioner::Preferred(Partitioner::TotalOrder)
        }
        fn input_format(&self) -> std::sync::Arc<dyn InputFormat> {
            if self.numbered {
                std::sync::Arc::new(TextLines::with_line_numbers())
            } else {
                std::sync::Arc::new(TextLines::default())
            }
        }
    }

    fn file(path: &Path) -> InputFile {
        InputFile {
            location: path.display().to_string(),
            name: path.display().to_string(),
            len: std::fs::metadata(path).expect("stat").len(),
            compression: Compression::of(path),
        }
    }

    /// A plan of `reducers` in total order over `paths` cut in `split_size`
    /// splits.
    fn plan(paths: &[&Path], split_size: u64, reducers: u32) -> (JobSpec, JobPlan) {
        let files: Vec<InputFile> = paths.iter().map(|p| file(p)).collect();
        let splits = quern_storage::plan_splits(&files, split_size, true).expect("splits");
        let mut spec = JobSpec::new("lines", vec!["in".into()], "out");
        spec.reducers = Some(reducers);
        let plan = JobPlan::new(&spec, &Lines { numbered: false }, splits).expect("plan");
        (spec, plan)
    }

    /// Numbered lines `0000000`, `0000001`, … in a shuffled order.
    fn write_numbers(path: &Path, n: u64) {
        let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
        for i in 0..n {
            writeln!(f, "{:07}", (i * 7_919) % n).expect("write");
        }
        f.flush().expect("flush");
    }

    #[test]
    fn places_are_evenly_spaced_and_bounded_and_a_small_input_is_read_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
        write_numbers(&a, 30_000); // 240,000 bytes
        write_numbers(&b, 10_000); // 80,000 bytes
        let (_, plan) = plan(&[&a, &b], 50_000, 2);
        let budget = Budget { places: 8, bytes: 8_000, keys: 1_000, key_bytes: 1 << 20 };
        let pieces = lay_out(&plan, false, budget);
        let ranges: Vec<(String, u64, Option<u64>)> = pieces
            .iter()
            .map(|p| (p.split.file.name.rsplit('/').next().unwrap_or("").to_owned(), p.split.start, p.split.end))
            .collect();
        let at = |name: &str, start: u64| (name.to_owned(), start, Some(start + 1_000));
        assert_eq!(
            ranges,
            [
                at("a.txt", 0),
                at("a.txt", 40_000),
                at("a.txt", 80_000),
                at("a.txt", 120_000),
                at("a.txt", 160_000),
                at("a.txt", 200_000),
                at("b.txt", 0),
                at("b.txt", 40_000)
            ],
            "one place every 40,000 bytes of 320,000, 1,000 bytes each"
        );

        let whole = lay_out(&plan, false, Budget { bytes: 1 << 20, ..budget });
        let covered: Vec<(u64, Option<u64>)> = whole.iter().map(|p| (p.split.start, p.split.end)).collect();
        assert_eq!(
            covered,
            [0, 40_000, 80_000, 120_000, 160_000, 200_000, 0, 40_000]
                .iter()
                .zip([40_000, 80_000, 120_000, 160_000, 200_000, 240_000, 40_000, 80_000])
                .map(|(&s, e)| (s, Some(e)))
                .collect::<Vec<_>>(),
            "within the budget, the places cover everything, end to end"
        );
    }

    #[test]
    fn compressed_and_line_numbered_files_are_read_from_their_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("plain.txt");
        write_numbers(&plain, 10_000);
        let gz = dir.path().join("z.txt.gz");
        let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).expect("create"), Default::default());
        enc.write_all(&std::fs::read(&plain).expect("read")).expect("compress");
        enc.finish().expect("finish");
        let (_, plan) = plan(&[&gz, &plain], 10_000, 2);
        let budget = Budget { places: 10, bytes: 1_000, keys: 1_000, key_bytes: 1 << 20 };
        let gz_len = file(&gz).len;
        let pieces = lay_out(&plan, false, budget);
        let gz_piece = pieces.iter().find(|p| p.split.file.compression == Compression::Gzip).expect("gz read");
        assert_eq!(gz_piece.split.end, None);
        assert!(gz_piece.until.is_some_and(|u| u > 0 && u < gz_len), "{gz_piece:?}");

        let numbered = lay_out(&plan, true, budget);
        assert!(numbered.iter().all(|p| p.split.start == 0), "{numbered:?}");
        assert_eq!(numbered.len(), 2, "one piece per file: {numbered:?}");
        let plain_piece = numbered.iter().find(|p| p.split.file.compression == Compression::None).expect("plain");
        assert!(plain_piece.split.end.is_some_and(|e| e < 80_000), "a prefix: {plain_piece:?}");
    }

    #[test]
    fn a_sample_splits_the_keys_evenly_the_same_way_every_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("numbers.txt");
        write_numbers(&input, 100_000); // 800,000 bytes, keys uniform in order
        let (spec, mut planned) = plan(&[&input], 100_000, 4);
        let budget = Budget { places: 16, bytes: 64_000, keys: 4_000, key_bytes: 1 << 20 };
        choose_cut_points(&mut planned, &Lines { numbered: false }, &Storage::default(), JobCode::none(), budget);
        assert_eq!(planned.check(&spec), Ok(()));
        let cuts = planned.outputs[0].cut_points.clone().expect("total order");
        assert_eq!(cuts.len(), 3, "{cuts:?}");
        let mut sizes = [0u64; 4];
        for i in 0..100_000u64 {
            sizes[cuts.partition(format!("{i:07}").as_bytes()) as usize] += 1;
        }
        assert!(sizes.iter().all(|&n| (20_000..=30_000).contains(&n)), "{sizes:?} from {cuts:?}");

        let (_, mut again) = plan(&[&input], 100_000, 4);
        choose_cut_points(&mut again, &Lines { numbered: false }, &Storage::default(), JobCode::none(), budget);
        assert_eq!(again, planned, "sampling is deterministic");
    }

    #[test]
    fn bad_records_are_left_out_line_numbers_are_given_and_keys_are_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("lines.txt");
        let mut text = String::new();
        for i in 0..2_000 {
            text.push_str(if i % 10 == 0 { "!bad\n" } else { "good\n" });
            text.push_str(&format!("{i:05}\n"));
        }
        std::fs::write(&input, text).expect("write");
        let (_, plan) = plan(&[&input], 1_000, 3);
        for numbered in [false, true] {
            let app = Lines { numbered };
            let budget = Budget { places: 4, bytes: 1 << 20, keys: 1_000, key_bytes: 1 << 20 };
            let pieces = lay_out(&plan, numbered, budget);
            let sample = local_sample(&pieces, &app, budget);
            let keys: Vec<&[u8]> = sample.keys[0].iter().collect();
            assert!(keys.len() <= 1_000 + pieces.len(), "{} keys", keys.len());
            assert!(keys.len() >= 900, "{} keys", keys.len());
            assert!(keys.iter().all(|k| !k.starts_with(b"!")), "a failed map's keys are left out");
            assert!(sample.skipped > 0, "bad records were met");
        }
        // Key bytes are bounded too.
        let app = Lines { numbered: false };
        let budget = Budget { places: 4, bytes: 1 << 20, keys: 100_000, key_bytes: 1_000 };
        let pieces = lay_out(&plan, false, budget);
        let sample = local_sample(&pieces, &app, budget);
        let kept = sample.keys[0].bytes.len();
        assert!((900..=1_000 + pieces.len()).contains(&kept), "{kept} key bytes");
    }
}
