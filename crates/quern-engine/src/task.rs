//! One attempt of a map or reduce task, start to finish.
//!
//! A [`MapTask`] reads its split through the app's input format, calls `map`
//! per record, collects pairs (see [`crate::collect`]) and merges its spills
//! into one map output: a run file with a segment per partition and a JSON
//! index beside it. Pairs for map-only outputs go straight to `part-m-NNNNN`
//! files in the attempt's private area of the job's output (a local
//! directory, or objects streamed as multipart uploads). With a shuffle
//! through storage (the plan's `shuffle`), the map output is uploaded and
//! its index names the URL (see [`crate::shuffle`]). A [`ReduceTask`] merges its
//! partition's segment of every map output, groups keys and calls `reduce`,
//! writing `part-r-NNNNN`. Neither knows about threads or retries: that is
//! the runner's business.

use std::fs;
use std::io;
use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use quern_core::{
    App, AttemptId, AttemptInfo, CombineOutput, Combiner, Counters, EngineCounters, MapContext, MapSession, MapSink,
    Record, RecordSink, RecordWriter, ReduceContext, ReduceSession, ReduceSink, SplitInput, Values,
};

use crate::code::JobCode;
use crate::collect::{CollectError, Collector, SpillTarget};
use crate::digest::OutputDigest;
use crate::error::{TaskError, panic_message};
use quern_core::{InputSplit, JobPlan};
use quern_storage::{FileEnd, OutputCommitter, Storage};

use crate::merge::{KeyGroups, RunMerger, RunSegment, merge_to_factor};
use crate::run::{RecordCursor, RunIndex, RunWriter};

/// What every attempt of a job shares.
pub struct TaskEnv<'a> {
    /// The app.
    pub app: &'a dyn App,
    /// The job's plan.
    pub plan: &'a JobPlan,
    /// Map-side memory budget per task, in bytes.
    pub sort_buffer: usize,
    /// Maximum runs merged at once.
    pub merge_factor: usize,
    /// Skip records whose map call panics.
    pub skip_bad_records: bool,
    /// Set when the job is cancelled.
    pub cancel: &'a AtomicBool,
    /// Input bytes read so far (for progress).
    pub bytes_read: &'a AtomicU64,
    /// Records processed so far: map input records, reduce input values
    /// (for progress, and so a hung attempt can be told from a slow one).
    pub records_done: &'a AtomicU64,
    /// Where the inputs are read from.
    pub storage: &'a Storage,
    /// The job's code files, put into each attempt's directory first.
    pub code: JobCode<'a>,
    /// Where the digests of the output files go, when they are kept (a
    /// cluster's attempts: the coordinator records them).
    pub digest: Option<&'a OutputDigest>,
}

/// How many records between updates of `records_done`.
const RECORDS_EVERY: u64 = 16;

/// How many records between checks of the cancel flag and progress updates.
const CHECK_EVERY: u64 = 1024;

/// A map attempt's result: its output (if any pair went to a reduced output)
/// and its counters.
pub struct MapOutput {
    /// The map output's index, with the run file path.
    pub index: Option<RunIndex>,
    /// The attempt's counters.
    pub counters: Counters,
}

/// One attempt of one map task.
pub struct MapTask<'a> {
    /// The attempt.
    pub attempt: AttemptId,
    /// Its split.
    pub split: &'a InputSplit,
    /// Scratch directory for spills and the map output (created here).
    pub work_dir: PathBuf,
    /// The job's output, where map-only output files are written (in the
    /// attempt's private area; committed by the runner).
    pub committer: &'a OutputCommitter,
}

/// Writers of map-only outputs, created when first used.
struct DirectOutputs<'a> {
    env: &'a TaskEnv<'a>,
    output: &'a OutputCommitter,
    attempt: AttemptId,
    writers: Vec<Option<PartWriter>>,
}

impl DirectOutputs<'_> {
    fn write(&mut self, output: usize, key: &[u8], value: &[u8]) -> io::Result<()> {
        if self.writers[output].is_none() {
            let name = part_name(&self.env.plan.outputs[output].name, 'm', self.attempt.task.index);
            let env = self.env;
            self.writers[output] = Some(PartWriter::create(env, output, self.output, self.attempt, &name)?);
        }
        let w = self.writers[output].as_mut().expect("invariant: writer created above");
        w.writer.write(key, value)
    }

    fn finish(self) -> io::Result<()> {
        for w in self.writers.into_iter().flatten() {
            w.finish()?;
        }
        Ok(())
    }
}

/// `NAME/part-X-NNNNN` (or `part-X-NNNNN` for the unnamed output).
fn part_name(name: &str, kind: char, index: u32) -> String {
    if name.is_empty() { format!("part-{kind}-{index:05}") } else { format!("{name}/part-{kind}-{index:05}") }
}

/// One output file being written through the app's output format. Dropped
/// without [`PartWriter::finish`], the file is abandoned (an object's
/// upload is aborted).
struct PartWriter {
    writer: Box<dyn RecordWriter>,
    end: FileEnd,
    name: String,
}

impl PartWriter {
    /// Creates the part file `name` in the attempt's private area of the
    /// job's output (which fails when the output area is gone: the job was
    /// killed or ended).
    fn create(
        env: &TaskEnv<'_>,
        output: usize,
        committer: &OutputCommitter,
        attempt: AttemptId,
        name: &str,
    ) -> io::Result<PartWriter> {
        let file = committer.create_file(attempt, name)?;
        let location = file.name().to_owned();
        let (out, end) = file.into_parts();
        // Digested under its name in the output, the same in every attempt.
        let out = match env.digest {
            Some(digest) => Box::new(digest.writer(name, out)),
            None => out,
        };
        Ok(PartWriter { writer: env.app.output_format(output).writer(out), end, name: location })
    }

    /// Flushes the format and completes the file.
    fn finish(self) -> io::Result<()> {
        self.writer.finish()?;
        self.end.finish()
    }
}

/// Where `map` puts its pairs: the collector for reduced outputs, direct
/// writers for map-only ones. Errors are kept and reported after the call.
struct PairSink<'a, 'c> {
    env: &'a TaskEnv<'a>,
    collector: Collector<'c>,
    spills: SpillTarget,
    direct: DirectOutputs<'a>,
    counters: EngineCounters,
    error: Option<TaskError>,
}

impl MapSink for PairSink<'_, '_> {
    fn emit(&mut self, output: usize, key: &[u8], value: &[u8]) {
        if self.error.is_some() {
            return;
        }
        let plan = self.env.plan;
        let Some(out) = plan.outputs.get(output) else {
            self.error = Some(TaskError::App {
                context: "map".into(),
                cause: quern_core::AppError::permanent(format!(
                    "emitted to output #{output}, but the app declares {} output(s)",
                    plan.outputs.len()
                )),
            });
            return;
        };
        self.counters.map_output_records += 1;
        self.counters.map_output_bytes += (key.len() + value.len()) as u64;
        let result = if out.reducers == 0 {
            self.counters.output_records += 1;
            self.counters.output_bytes += (key.len() + value.len()) as u64;
            self.direct.write(output, key, value).map_err(TaskError::io("writing map-only output"))
        } else {
            let env = self.env;
            self.collector
                .collect(output, key, value, &|o, k| partition_of(env, o, k), &mut self.spills, &mut self.counters)
                .map_err(collect_error)
        };
        if let Err(e) = result {
            self.error = Some(e);
        }
    }
}

/// The global partition of an output's key. Total order: the plan's cut
/// points; hash: the app's partitioner.
fn partition_of(env: &TaskEnv<'_>, output: usize, key: &[u8]) -> Result<u32, quern_core::AppError> {
    let Some(out) = env.plan.outputs.get(output) else {
        return Err(quern_core::AppError::permanent(format!("no output #{output}")));
    };
    if let Some(p) = out.cut_partition(key) {
        return Ok(out.first_partition + p);
    }
    // Asked when a table spills, outside any record's map call: a panic
    // here is the partitioner's failure, not a record's.
    let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| env.app.partition(output, key, out.reducers)))
        .map_err(|_| quern_core::AppError::permanent("the partitioner panicked"))?;
    if p < out.reducers {
        Ok(out.first_partition + p)
    } else {
        Err(quern_core::AppError::permanent(format!("returned partition {p} for {} reducers", out.reducers)))
    }
}

fn collect_error(e: CollectError) -> TaskError {
    match e {
        CollectError::Io(cause) => TaskError::Io { context: "writing a spill".into(), cause },
        CollectError::Combiner(cause) => TaskError::App { context: "combine".into(), cause },
        CollectError::Partitioner(cause) => TaskError::App { context: "partition".into(), cause },
    }
}

/// Pairs of one record, held back until its map call returns (only when
/// skipping bad records, so a panicking call emits nothing).
#[derive(Default)]
struct Staged {
    pairs: Vec<(usize, usize, usize)>,
    bytes: Vec<u8>,
}

impl MapSink for Staged {
    fn emit(&mut self, output: usize, key: &[u8], value: &[u8]) {
        self.bytes.extend_from_slice(key);
        self.bytes.extend_from_slice(value);
        self.pairs.push((output, key.len(), value.len()));
    }
}

impl Staged {
    fn drain_into(&mut self, sink: &mut dyn MapSink) {
        let mut at = 0;
        for &(output, klen, vlen) in &self.pairs {
            sink.emit(output, &self.bytes[at..at + klen], &self.bytes[at + klen..at + klen + vlen]);
            at += klen + vlen;
        }
        self.pairs.clear();
        self.bytes.clear();
    }
}

/// Calls `map` for each record, applying the skip policy.
struct MapCaller<'a, 'b, 'c> {
    sink: &'b mut PairSink<'a, 'c>,
    /// The app's session for this attempt, if it opened one: it maps the
    /// records instead of `App::map`.
    session: Option<Box<dyn MapSession + 'a>>,
    staged: Option<Staged>,
    user: Counters,
    records: u64,
    last_offset: u64,
    progress_mark: u64,
}

impl RecordSink for MapCaller<'_, '_, '_> {
    fn record(&mut self, record: Record<'_>) -> ControlFlow<()> {
        let env = self.sink.env;
        self.records += 1;
        self.sink.counters.input_records += 1;
        self.last_offset = record.offset + record.data.len() as u64;
        if self.records.is_multiple_of(RECORDS_EVERY) {
            env.records_done.fetch_add(RECORDS_EVERY, Ordering::Relaxed);
        }
        if self.records.is_multiple_of(CHECK_EVERY) {
            if env.cancel.load(Ordering::Relaxed) {
                self.sink.error = Some(TaskError::Cancelled);
                return ControlFlow::Break(());
            }
            let delta = self.last_offset.saturating_sub(self.progress_mark);
            env.bytes_read.fetch_add(delta, Ordering::Relaxed);
            self.progress_mark += delta;
        }
        let where_ = || match record.line {
            Some(line) => format!("map of {}:{line}", record.source),
            None => format!("map of {} at byte {}", record.source, record.offset),
        };
        let result = match self.staged.as_mut() {
            Some(staged) => {
                let mut user = Counters::default();
                let session = &mut self.session;
                let r = catch_unwind(AssertUnwindSafe(|| {
                    map_one(env.app, session, &record, &mut MapContext::new(staged, &mut user))
                }));
                match r {
                    Ok(result) => {
                        staged.drain_into(self.sink);
                        self.user.merge(&user);
                        result
                    }
                    Err(payload) => {
                        staged.pairs.clear();
                        staged.bytes.clear();
                        self.sink.counters.skipped_records += 1;
                        tracing::warn!("skipping record: {} panicked: {}", where_(), panic_message(&*payload));
                        Ok(())
                    }
                }
            }
            None => {
                let r = catch_unwind(AssertUnwindSafe(|| {
                    map_one(env.app, &mut self.session, &record, &mut MapContext::new(self.sink, &mut self.user))
                }));
                match r {
                    Ok(result) => result,
                    Err(payload) => {
                        self.sink.error =
                            Some(TaskError::Panic { context: where_(), message: panic_message(&*payload) });
                        return ControlFlow::Break(());
                    }
                }
            }
        };
        if let Err(cause) = result {
            self.sink.error = Some(TaskError::App { context: where_(), cause });
        }
        if self.sink.error.is_some() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    }
}

/// Maps one record through the attempt's session, or the app's `map`.
fn map_one(
    app: &dyn App,
    session: &mut Option<Box<dyn MapSession + '_>>,
    record: &Record<'_>,
    ctx: &mut MapContext<'_>,
) -> Result<(), quern_core::AppError> {
    match session {
        Some(session) => session.map(record, ctx),
        None => app.map(record, ctx),
    }
}

/// Calls app code outside a record (a session's start or finish): an error
/// or a panic fails the attempt, with `context`.
fn call_app<T>(
    context: impl Fn() -> String,
    f: impl FnOnce() -> Result<T, quern_core::AppError>,
) -> Result<T, TaskError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(cause)) => Err(TaskError::App { context: context(), cause }),
        Err(payload) => Err(TaskError::Panic { context: context(), message: panic_message(&*payload) }),
    }
}

impl MapTask<'_> {
    /// Runs the attempt.
    pub fn run(&self, env: &TaskEnv<'_>) -> Result<MapOutput, TaskError> {
        fs::create_dir_all(&self.work_dir).map_err(TaskError::io("creating map scratch directory"))?;
        env.code.put_into(&self.work_dir)?;
        let split_name = self.split.to_string();
        let combiner = env.app.combiner();
        let reduced: Vec<usize> = (0..env.plan.outputs.len()).filter(|&o| env.plan.outputs[o].reducers > 0).collect();
        let info = AttemptInfo {
            attempt: self.attempt,
            split: Some(self.split),
            output: None,
            partition: None,
            work_dir: &self.work_dir,
            cancel: env.cancel,
        };
        let partition_outputs = (0..env.plan.partitions).map(|p| env.plan.output_of_partition(p)).collect();
        let mut sink = PairSink {
            env,
            collector: Collector::for_map_attempt(combiner, &reduced, env.sort_buffer, info, partition_outputs),
            spills: SpillTarget {
                dir: self.work_dir.clone(),
                partitions: env.plan.partitions as usize,
                runs: Vec::new(),
            },
            direct: DirectOutputs {
                env,
                output: self.committer,
                attempt: self.attempt,
                writers: (0..env.plan.outputs.len()).map(|_| None).collect(),
            },
            counters: EngineCounters::default(),
            error: None,
        };

        let session = call_app(|| format!("opening the map session of {split_name}"), || env.app.map_session(&info))?;
        let format = env.app.input_format();
        let opened = env
            .storage
            .open_split(self.split, format.line_numbers())
            .map_err(|e| TaskError::Input { split: split_name.clone(), cause: e.into() })?;
        let mut reader = opened.reader;
        let mut input = SplitInput::new(
            &mut reader,
            &self.split.file.name,
            self.split.start,
            self.split.end,
            opened.line_start,
            opened.lines_before,
        );
        let mut caller = MapCaller {
            sink: &mut sink,
            session,
            staged: env.skip_bad_records.then(Staged::default),
            user: Counters::default(),
            records: 0,
            last_offset: self.split.start,
            progress_mark: self.split.start,
        };
        let read = format.read(&mut input, &mut caller);
        let progress_mark = caller.progress_mark;
        let session = caller.session.take();
        let mut counters = std::mem::take(&mut caller.user);
        let end = input.position();
        env.bytes_read.fetch_add(end.saturating_sub(progress_mark), Ordering::Relaxed);
        if let Some(e) = sink.error.take() {
            return Err(e);
        }
        read.map_err(|cause| TaskError::Input { split: split_name.clone(), cause })?;
        if let Some(session) = session {
            call_app(
                || format!("map session of {split_name}, at its end"),
                || session.finish(&mut MapContext::new(&mut sink, &mut counters)),
            )?;
            if let Some(e) = sink.error.take() {
                return Err(e);
            }
        }
        // A line crossing the split's end is read whole but counted by the
        // split it belongs to; the next split's skipped prefix is not.
        let counted_end = self.split.end.map_or(end, |e| end.min(e));
        sink.counters.input_bytes += counted_end.saturating_sub(self.split.start);

        let PairSink { mut collector, mut spills, direct, counters: engine, .. } = sink;
        counters.engine = engine;
        collector.flush(&mut spills, &mut counters.engine, &|o, k| partition_of(env, o, k)).map_err(collect_error)?;
        direct.finish().map_err(TaskError::io("finishing map-only output"))?;
        let mut index = self.merge_spills(env, combiner, spills.runs, &mut counters)?;
        if let (Some(digest), Some(index)) = (env.digest, &index) {
            // While the file is here: a shuffle through storage moves it.
            digest.add_file("map-output", &index.path).map_err(TaskError::io("digesting the map output"))?;
        }
        if let (Some(index), Some(prefix)) = (index.as_mut(), env.plan.shuffle.as_deref()) {
            // Shuffled through storage: the index names the uploaded copy,
            // and the local file is no longer needed.
            let url = crate::shuffle::map_output_url(prefix, self.attempt);
            let bytes = env
                .storage
                .upload_file(&index.path, &url)
                .map_err(|e| TaskError::Io { context: "shuffle".into(), cause: io::Error::other(e.to_string()) })?;
            tracing::debug!(url, bytes, "map output uploaded");
            let _ = fs::remove_file(&index.path);
            index.path = PathBuf::from(url);
        }
        if let Some(index) = &index {
            index.save(&self.work_dir.join("map.idx")).map_err(TaskError::io("writing map output index"))?;
        }
        Ok(MapOutput { index, counters })
    }

    /// Merges the spills into one map output, partition by partition.
    fn merge_spills(
        &self,
        env: &TaskEnv<'_>,
        combiner: Option<&dyn Combiner>,
        mut runs: Vec<RunIndex>,
        counters: &mut Counters,
    ) -> Result<Option<RunIndex>, TaskError> {
        // A combiner of whole spills combined each spill already; merging
        // them again needs none (a combiner is optional).
        let combiner = combiner.filter(|c| !c.combines_spills());
        let final_path = self.work_dir.join("map.out");
        match runs.len() {
            0 => return Ok(None),
            1 => {
                let mut only = runs.remove(0);
                fs::rename(&only.path, &final_path).map_err(TaskError::io("renaming the map output"))?;
                only.path = final_path;
                return Ok(Some(only));
            }
            _ => {}
        }
        let mut writer = RunWriter::create(final_path, env.plan.partitions as usize)
            .map_err(TaskError::io("creating the map output"))?;
        let merge_dir = self.work_dir.join("merge");
        for p in 0..env.plan.partitions as usize {
            let segments: Vec<RunSegment> =
                runs.iter().map(|r| RunSegment { path: r.path.clone(), segment: r.segments[p] }).collect();
            fs::create_dir_all(&merge_dir).map_err(TaskError::io("creating the merge directory"))?;
            let (segments, rewritten) =
                merge_to_factor(segments, env.merge_factor, &merge_dir).map_err(TaskError::io("merging spills"))?;
            counters.engine.spilled_records += rewritten;
            let merger = RunMerger::open(&segments).map_err(TaskError::io("opening spills"))?;
            let output = env.plan.output_of_partition(p as u32);
            let written = match combiner {
                Some(c) => combine_stream(c, output, merger, &mut writer, p, counters, env.cancel)?,
                None => copy_stream(merger, &mut writer, p, env.cancel)?,
            };
            counters.engine.spilled_records += written;
            let _ = fs::remove_dir_all(&merge_dir);
        }
        let index = writer.finish().map_err(TaskError::io("finishing the map output"))?;
        for r in runs {
            let _ = fs::remove_file(r.path);
        }
        Ok(Some(index))
    }
}

fn copy_stream(mut merger: RunMerger, writer: &mut RunWriter, p: usize, cancel: &AtomicBool) -> Result<u64, TaskError> {
    let mut n = 0u64;
    while merger.advance().map_err(TaskError::io("reading spills"))? {
        writer.write(p, merger.key(), merger.value()).map_err(TaskError::io("writing the map output"))?;
        n += 1;
        if n.is_multiple_of(CHECK_EVERY) && cancel.load(Ordering::Relaxed) {
            return Err(TaskError::Cancelled);
        }
    }
    Ok(n)
}

fn combine_stream(
    combiner: &dyn Combiner,
    output: usize,
    merger: RunMerger,
    writer: &mut RunWriter,
    p: usize,
    counters: &mut Counters,
    cancel: &AtomicBool,
) -> Result<u64, TaskError> {
    let mut groups = KeyGroups::new(merger).map_err(TaskError::io("reading spills"))?;
    let mut written = 0u64;
    let mut key = Vec::new();
    while groups.next_group().map_err(TaskError::io("reading spills"))? {
        if cancel.load(Ordering::Relaxed) {
            return Err(TaskError::Cancelled);
        }
        key.clear();
        key.extend_from_slice(groups.key());
        let before = groups.values_read();
        let mut io_error = None;
        let mut emit = |v: &[u8]| {
            if io_error.is_none() {
                written += 1;
                counters.engine.combine_output_records += 1;
                if let Err(e) = writer.write(p, &key, v) {
                    io_error = Some(e);
                }
            }
        };
        combiner
            .combine(output, &key, &mut Values::new(&mut groups), &mut CombineOutput::new(&mut emit))
            .map_err(|cause| TaskError::App { context: "combine".into(), cause })?;
        if let Some(e) = io_error.or_else(|| groups.take_error()) {
            return Err(TaskError::Io { context: "merging spills".into(), cause: e });
        }
        counters.engine.combine_input_records += groups.values_read() - before;
    }
    Ok(written)
}

/// One attempt of one reduce task: partition `partition` of output `output`.
pub struct ReduceTask<'a> {
    /// The attempt.
    pub attempt: AttemptId,
    /// The output (index into the plan's outputs).
    pub output: usize,
    /// The partition within that output.
    pub partition: u32,
    /// This partition's segment of every map output that has one, wherever
    /// it is (a local map output, or a copy fetched from another worker).
    pub runs: Vec<RunSegment>,
    /// Scratch directory for merge passes.
    pub work_dir: PathBuf,
    /// The job's output, where the part file is written (in the attempt's
    /// private area; committed by the runner).
    pub committer: &'a OutputCommitter,
}

struct WriterSink {
    writer: Box<dyn RecordWriter>,
    counters: EngineCounters,
    error: Option<io::Error>,
}

impl ReduceSink for WriterSink {
    fn emit(&mut self, key: &[u8], value: &[u8]) {
        if self.error.is_none() {
            self.counters.output_records += 1;
            self.counters.output_bytes += (key.len() + value.len()) as u64;
            if let Err(e) = self.writer.write(key, value) {
                self.error = Some(e);
            }
        }
    }
}

impl ReduceTask<'_> {
    /// Runs the attempt.
    pub fn run(&self, env: &TaskEnv<'_>) -> Result<Counters, TaskError> {
        let out = &env.plan.outputs[self.output];
        let runs = self.runs.clone();
        fs::create_dir_all(&self.work_dir).map_err(TaskError::io("creating reduce scratch directory"))?;
        env.code.put_into(&self.work_dir)?;
        let (runs, _) =
            merge_to_factor(runs, env.merge_factor, &self.work_dir).map_err(TaskError::io("merging map outputs"))?;
        let merger = RunMerger::open(&runs).map_err(TaskError::io("opening map outputs"))?;
        let mut groups = KeyGroups::new(merger).map_err(TaskError::io("reading map outputs"))?;
        let name = part_name(&out.name, 'r', self.partition);
        let part = PartWriter::create(env, self.output, self.committer, self.attempt, &name)
            .map_err(TaskError::io("creating output file"))?;
        let PartWriter { writer, end, name: path } = part;
        let mut sink = WriterSink { writer, counters: EngineCounters::default(), error: None };
        let mut counters = Counters::default();
        let info = AttemptInfo {
            attempt: self.attempt,
            split: None,
            output: Some(self.output),
            partition: Some(self.partition),
            work_dir: &self.work_dir,
            cancel: env.cancel,
        };
        let mut session: Option<Box<dyn ReduceSession + '_>> =
            call_app(|| format!("opening the reduce session of {path}"), || env.app.reduce_session(&info))?;
        let mut key = Vec::new();
        while groups.next_group().map_err(TaskError::io("reading map outputs"))? {
            if env.cancel.load(Ordering::Relaxed) {
                return Err(TaskError::Cancelled);
            }
            counters.engine.reduce_input_groups += 1;
            key.clear();
            key.extend_from_slice(groups.key());
            let context = || format!("reduce of key {:?}", String::from_utf8_lossy(&key));
            let result = catch_unwind(AssertUnwindSafe(|| {
                let mut ctx = ReduceContext::new(self.output, &mut sink, &mut counters);
                let values = &mut Values::new(&mut groups);
                match session.as_mut() {
                    Some(session) => session.reduce(&key, values, &mut ctx),
                    None => env.app.reduce(&key, values, &mut ctx),
                }
            }));
            match result {
                Ok(Ok(())) => {}
                Ok(Err(cause)) => {
                    return Err(TaskError::App { context: context(), cause });
                }
                Err(payload) => {
                    return Err(TaskError::Panic { context: context(), message: panic_message(&*payload) });
                }
            }
            if let Some(e) = groups.take_error() {
                return Err(TaskError::Io { context: "reading map outputs".into(), cause: e });
            }
            env.records_done.store(groups.records(), Ordering::Relaxed);
            if let Some(e) = sink.error.take() {
                return Err(TaskError::Io { context: format!("writing {path}"), cause: e });
            }
        }
        counters.engine.reduce_input_records = groups.records();
        if let Some(session) = session {
            call_app(
                || format!("reduce session of {path}, at its end"),
                || session.finish(&mut ReduceContext::new(self.output, &mut sink, &mut counters)),
            )?;
            if let Some(e) = sink.error.take() {
                return Err(TaskError::Io { context: format!("writing {path}"), cause: e });
            }
        }
        let WriterSink { writer, counters: written, .. } = sink;
        PartWriter { writer, end, name: path.clone() }
            .finish()
            .map_err(|e| TaskError::Io { context: format!("writing {path}"), cause: e })?;
        counters.engine.add(&written);
        Ok(counters)
    }
}
