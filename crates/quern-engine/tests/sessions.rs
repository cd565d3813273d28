//! Attempt sessions (`App::map_session`, `App::reduce_session`) in the
//! embedded runner: an in-mapper combiner that emits its counts at the end
//! of each split gives the same output as per-record counting, a reduce
//! session's top-N over a whole partition is emitted at its end, and a
//! session that fails fails its attempt, naming where, after being dropped
//! (never finished).

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use quern_core::{
    App, AppError, AttemptInfo, CombineOutput, CombineSession, Combiner, JobSpec, MapContext, MapSession, Record,
    ReduceContext, ReduceSession, Values,
};
use quern_engine::{RunOptions, run_job};

/// Space-separated words of a line.
fn words(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|b| *b == b' ').filter(|w| !w.is_empty())
}

/// Word counts, per record (`in_mapper: false`) or kept per split by a map
/// session and emitted at its finish; with `top: Some(n)`, the reduce is a
/// session that emits only the `n` most frequent words of its partition,
/// at its finish. Sessions opened, finished and dropped are counted.
#[derive(Default)]
struct Counts {
    in_mapper: bool,
    top: Option<usize>,
    /// A word whose map makes the session fail, and at which point.
    fail_on: Option<(&'static [u8], FailAt)>,
    /// Combine whole spills in sessions (summing), failing on this word.
    spill_combiner: Option<Option<&'static [u8]>>,
    spill_sessions: AtomicU64,
    opened: AtomicU64,
    finished: AtomicU64,
    dropped: Arc<AtomicU64>,
}

#[derive(Clone, Copy, PartialEq)]
enum FailAt {
    Map,
    Finish,
}

impl App for Counts {
    fn map(&self, record: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
        for word in words(record.data) {
            ctx.emit(word, b"1");
        }
        Ok(())
    }

    fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<(), AppError> {
        ctx.emit(key, values.sum_decimal()?.to_string().as_bytes());
        Ok(())
    }

    fn combiner(&self) -> Option<&dyn Combiner> {
        self.spill_combiner.map(|_| self as &dyn Combiner)
    }

    fn map_session<'s>(&'s self, attempt: &AttemptInfo<'s>) -> Result<Option<Box<dyn MapSession + 's>>, AppError> {
        if !self.in_mapper {
            return Ok(None);
        }
        assert!(attempt.split.is_some() && attempt.partition.is_none(), "a map attempt's info: {attempt:?}");
        assert!(attempt.work_dir.is_dir(), "the attempt's directory exists: {attempt:?}");
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(Some(Box::new(InMapper { app: self, counts: HashMap::new(), _drop: DropCount(Arc::clone(&self.dropped)) })))
    }

    fn reduce_session<'s>(
        &'s self,
        attempt: &AttemptInfo<'s>,
    ) -> Result<Option<Box<dyn ReduceSession + 's>>, AppError> {
        let Some(n) = self.top else { return Ok(None) };
        assert_eq!((attempt.output, attempt.split.is_none()), (Some(0), true), "a reduce attempt's info");
        Ok(Some(Box::new(Top { n, best: Vec::new() })))
    }
}

impl Combiner for Counts {
    fn combine(&self, _: usize, _: &[u8], _: &mut Values<'_>, _: &mut CombineOutput<'_>) -> Result<(), AppError> {
        panic!("a combiner of whole spills is never called key by key");
    }

    fn combines_spills(&self) -> bool {
        true
    }

    fn spill_session<'s>(&'s self, attempt: &AttemptInfo<'s>) -> Result<Box<dyn CombineSession + 's>, AppError> {
        assert!(attempt.split.is_some(), "a map attempt's spill: {attempt:?}");
        self.spill_sessions.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(SpillSum { refuse: self.spill_combiner.flatten(), last: None }))
    }
}

/// Sums each key's counts over a spill, emitting a key when the next
/// begins (and the last at the end), as an external process would.
struct SpillSum {
    refuse: Option<&'static [u8]>,
    last: Option<(Vec<u8>, u64)>,
}

impl CombineSession for SpillSum {
    fn combine(
        &mut self,
        key: &[u8],
        values: &mut Values<'_>,
        out: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), AppError> {
        if self.refuse == Some(key) {
            return Err(AppError::permanent("the combiner refuses this word"));
        }
        if let Some((last, n)) = self.last.take() {
            out(&last, n.to_string().as_bytes());
        }
        self.last = Some((key.to_vec(), values.sum_decimal()?));
        Ok(())
    }

    fn finish(self: Box<Self>, out: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), AppError> {
        if let Some((last, n)) = self.last {
            out(&last, n.to_string().as_bytes());
        }
        Ok(())
    }
}

/// Counts something when dropped.
struct DropCount(Arc<AtomicU64>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// The in-mapper combiner: one count per distinct word of the split.
struct InMapper<'a> {
    app: &'a Counts,
    counts: HashMap<Vec<u8>, u64>,
    _drop: DropCount,
}

impl MapSession for InMapper<'_> {
    fn map(&mut self, record: &Record<'_>, _: &mut MapContext<'_>) -> Result<(), AppError> {
        for word in words(record.data) {
            if self.app.fail_on == Some((word, FailAt::Map)) {
                return Err(AppError::permanent("this word is refused"));
            }
            *self.counts.entry(word.to_vec()).or_default() += 1;
        }
        Ok(())
    }

    fn finish(self: Box<Self>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
        self.app.finished.fetch_add(1, Ordering::Relaxed);
        if let Some((word, FailAt::Finish)) = self.app.fail_on
            && self.counts.contains_key(word)
        {
            return Err(AppError::permanent("cannot finish"));
        }
        for (word, n) in &self.counts {
            ctx.emit(word, n.to_string().as_bytes());
        }
        Ok(())
    }
}

/// The `n` most frequent words of a partition, most frequent first (ties by
/// word), emitted at the end.
struct Top {
    n: usize,
    best: Vec<(u64, Vec<u8>)>,
}

impl ReduceSession for Top {
    fn reduce(&mut self, key: &[u8], values: &mut Values<'_>, _: &mut ReduceContext<'_>) -> Result<(), AppError> {
        self.best.push((values.sum_decimal()?, key.to_vec()));
        self.best.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        self.best.truncate(self.n);
        Ok(())
    }

    fn finish(self: Box<Self>, ctx: &mut ReduceContext<'_>) -> Result<(), AppError> {
        for (n, word) in &self.best {
            ctx.emit(word, n.to_string().as_bytes());
        }
        Ok(())
    }
}

/// A job over 3,000 lines in 4 or 5 splits, with `reducers` reducers and
/// one attempt per task.
fn spec(dir: &Path, reducers: u32, output: &str) -> JobSpec {
    let input = dir.join("in.txt");
    if !input.exists() {
        let text: String = (0..3000).map(|i| format!("w{} w{} common\n", i % 97, i % 13)).collect();
        fs::write(&input, text).expect("write input");
    }
    let mut spec = JobSpec::new("counts", vec![input.display().to_string()], dir.join(output).display().to_string());
    spec.split_size = 12 << 10;
    spec.reducers = Some(reducers);
    spec.max_attempts = 1;
    spec
}

fn run(spec: &JobSpec, app: Arc<Counts>) -> Result<quern_engine::JobReport, quern_engine::Error> {
    run_job(spec, app, &RunOptions { parallelism: 2, ..RunOptions::default() })
}

/// The output's part files, concatenated in name order.
fn output(report: &quern_engine::JobReport) -> String {
    report.files.iter().map(|f| fs::read_to_string(f).expect("read part")).collect()
}

#[test]
fn an_in_mapper_combiner_emits_at_the_end_of_each_split_and_gives_the_same_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = run(&spec(dir.path(), 2, "plain"), Arc::new(Counts::default())).expect("plain job");
    let app = Arc::new(Counts { in_mapper: true, ..Counts::default() });
    let combined = run(&spec(dir.path(), 2, "combined"), Arc::clone(&app)).expect("in-mapper job");
    assert_eq!(output(&combined), output(&plain));
    assert!(output(&plain).contains("common\t3000\n"));
    let maps = u64::from(combined.map_tasks);
    assert!(maps >= 4, "several splits: {maps}");
    assert_eq!(app.opened.load(Ordering::Relaxed), maps, "one session per map attempt");
    assert_eq!(app.finished.load(Ordering::Relaxed), maps);
    assert_eq!(app.dropped.load(Ordering::Relaxed), maps);
    // Each split emitted each of its distinct words once, not each word.
    assert_eq!(plain.counters.engine.map_output_records, 9000);
    assert!(combined.counters.engine.map_output_records <= maps * (97 + 13 + 1));
}

#[test]
fn a_reduce_session_emits_its_partitions_top_words_at_its_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Arc::new(Counts { top: Some(3), ..Counts::default() });
    let report = run(&spec(dir.path(), 1, "top"), app).expect("top job");
    // `common` is on every line; w0..w9 are a `w{i % 13}` on 231 lines and
    // a `w{i % 97}` on 31 (w10..w12: 230 and 31); ties go by word.
    assert_eq!(output(&report), "common\t3000\nw0\t262\nw1\t262\n");
}

#[test]
fn a_session_that_fails_fails_its_attempt_naming_where_and_is_dropped_unfinished() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Arc::new(Counts { in_mapper: true, fail_on: Some((b"w5", FailAt::Map)), ..Counts::default() });
    let err = run(&spec(dir.path(), 1, "map-fails"), Arc::clone(&app)).expect_err("w5 is refused").to_string();
    assert!(err.contains("this word is refused") && err.contains("in.txt"), "{err}");
    assert!(app.opened.load(Ordering::Relaxed) >= 1);
    assert_eq!(app.dropped.load(Ordering::Relaxed), app.opened.load(Ordering::Relaxed), "every session dropped");
    assert!(!dir.path().join("map-fails").join("_SUCCESS").exists());

    let app = Arc::new(Counts { in_mapper: true, fail_on: Some((b"w5", FailAt::Finish)), ..Counts::default() });
    let err = run(&spec(dir.path(), 1, "finish-fails"), Arc::clone(&app)).expect_err("cannot finish").to_string();
    assert!(err.contains("cannot finish") && err.contains("at its end"), "{err}");
    assert_eq!(app.dropped.load(Ordering::Relaxed), app.opened.load(Ordering::Relaxed), "every session dropped");
}

#[test]
fn a_combiner_of_whole_spills_combines_each_spill_and_the_output_is_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = run(&spec(dir.path(), 2, "plain"), Arc::new(Counts::default())).expect("plain job");
    let app = Arc::new(Counts { spill_combiner: Some(None), ..Counts::default() });
    // A small buffer: several spills per map task.
    let small = JobSpec { sort_buffer: 8 << 10, ..spec(dir.path(), 2, "combined") };
    let combined = run(&small, Arc::clone(&app)).expect("combined job");
    assert_eq!(output(&combined), output(&plain));
    let c = &combined.counters.engine;
    assert!(c.spills > u64::from(combined.map_tasks), "several spills per map: {c:?}");
    assert!(app.spill_sessions.load(Ordering::Relaxed) >= c.spills, "a session per spill: {c:?}");
    assert_eq!(c.combine_input_records, 9000, "every pair went through a session: {c:?}");
    assert!(c.combine_output_records < c.combine_input_records / 2, "{c:?}");

    let app = Arc::new(Counts { spill_combiner: Some(Some(b"w7")), ..Counts::default() });
    let failing = JobSpec { sort_buffer: 8 << 10, ..spec(dir.path(), 2, "refused") };
    let err = run(&failing, app).expect_err("the combiner refuses w7").to_string();
    assert!(err.contains("combiner") && err.contains("refuses this word"), "{err}");
}
