//! The shuffle through storage (`JobSpec::shuffle`) in the embedded runner,
//! on a local directory standing for a shared file system (the same code as
//! S3 above `quern-storage`; the S3 runs are in `quern-testkit`'s tests):
//! the same output as a run that keeps map outputs local, nothing left
//! under the shuffle location afterwards, and a map output deleted before
//! a reduce read it makes that map run again.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use quern_core::{App, AppError, JobSpec, MapContext, Record, ReduceContext, Values};
use quern_engine::{RunOptions, run_job};

/// Word counts; counts its map calls, and, when `delete_map_0` is given,
/// deletes map 0's uploaded outputs under that directory in the first
/// reduce call it makes (once).
struct Words {
    map_calls: AtomicU64,
    delete_map_0: Option<PathBuf>,
    deleted: AtomicBool,
}

impl Words {
    fn new(delete_map_0: Option<PathBuf>) -> Words {
        Words { map_calls: AtomicU64::new(0), delete_map_0, deleted: AtomicBool::new(false) }
    }
}

impl App for Words {
    fn map(&self, r: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
        self.map_calls.fetch_add(1, Ordering::Relaxed);
        for word in r.data.split(|b| *b == b' ').filter(|w| !w.is_empty()) {
            ctx.emit(word, b"1");
        }
        Ok(())
    }

    fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<(), AppError> {
        if let Some(dir) = &self.delete_map_0
            && !self.deleted.swap(true, Ordering::Relaxed)
        {
            let gone = files_under(dir).into_iter().filter(|f| file_name(f).starts_with("m-00000-"));
            let gone: Vec<PathBuf> = gone.collect();
            assert_eq!(gone.len(), 1, "map 0's output was uploaded once");
            for f in gone {
                fs::remove_file(&f).map_err(|e| AppError::permanent(format!("{}: {e}", f.display())))?;
            }
        }
        let total = values.sum_decimal()?;
        ctx.emit(key, total.to_string().as_bytes());
        Ok(())
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() { files.extend(files_under(&path)) } else { files.push(path) }
    }
    files
}

fn parts(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut parts: Vec<_> = files_under(dir)
        .into_iter()
        .filter(|p| file_name(p).starts_with("part-"))
        .map(|p| (file_name(&p), fs::read(&p).expect("read part")))
        .collect();
    parts.sort();
    parts
}

const LINES: u64 = 3000;

/// A job over `LINES` lines in about 4 splits, 2 reducers.
fn setup(dir: &Path) -> JobSpec {
    let input = dir.join("in.txt");
    let text: String = (0..LINES).map(|i| format!("w{} w{} common\n", i % 97, i % 13)).collect();
    fs::write(&input, text).expect("write input");
    let mut spec = JobSpec::new("words", vec![input.display().to_string()], String::new());
    spec.split_size = 12 << 10;
    spec.reducers = Some(2);
    spec
}

fn run(spec: &JobSpec, output: PathBuf, app: Arc<Words>) -> quern_engine::JobReport {
    let spec = JobSpec { output: output.display().to_string(), ..spec.clone() };
    let opts = RunOptions { parallelism: 1, ..RunOptions::default() };
    run_job(&spec, app, &opts).unwrap_or_else(|e| panic!("job failed: {e}"))
}

#[test]
fn a_shuffle_through_a_shared_directory_gives_the_same_output_and_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = setup(dir.path());
    let local = run(&spec, dir.path().join("local"), Arc::new(Words::new(None)));
    assert!(local.map_tasks >= 3, "several maps: {}", local.map_tasks);
    let shuffle = dir.path().join("shuffle");
    let shuffled_spec = JobSpec { shuffle: Some(shuffle.display().to_string()), ..spec };
    let shuffled = run(&shuffled_spec, dir.path().join("shuffled"), Arc::new(Words::new(None)));
    assert_eq!(parts(&dir.path().join("shuffled")), parts(&dir.path().join("local")));
    assert_eq!(shuffled.counters, local.counters);
    assert_eq!(files_under(&shuffle), Vec::<PathBuf>::new(), "the job's map outputs are deleted when it ends");
}

#[test]
fn a_map_output_deleted_before_a_reduce_read_it_makes_the_map_run_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = setup(dir.path());
    run(&spec, dir.path().join("local"), Arc::new(Words::new(None)));
    let shuffle = dir.path().join("shuffle");
    let spec = JobSpec { shuffle: Some(format!("file://{}", shuffle.display())), ..spec };
    // One slot: every map, then reduce 0 (which deletes map 0's output in
    // its first call, after it read it), then reduce 1, which finds it gone.
    let app = Arc::new(Words::new(Some(shuffle.clone())));
    let report = run(&spec, dir.path().join("shuffled"), Arc::clone(&app));
    assert!(app.deleted.load(Ordering::Relaxed));
    assert_eq!(parts(&dir.path().join("shuffled")), parts(&dir.path().join("local")));
    let map_calls = app.map_calls.load(Ordering::Relaxed);
    assert!(map_calls > LINES, "map 0 ran again: {map_calls} map calls for {LINES} lines");
    // Counters count each task's committed attempt once; a lost input is
    // not a failure.
    assert_eq!(report.counters.engine.input_records, LINES);
    assert_eq!(report.counters.engine.failed_attempts, 0);
    assert_eq!(files_under(&shuffle), Vec::<PathBuf>::new());
}
