//! Input formats through the whole engine: whole-file records, and line
//! numbers that stay right across splits and inside compressed files.

use std::fs;
use std::io::Write;
use std::sync::Arc;

use quern_core::{App, AppError, InputFormat, JobSpec, MapContext, Record, TextLines, WholeFile};
use quern_engine::{RunOptions, run_job};

/// file name → byte length, one record per file.
struct FileSizes;

impl App for FileSizes {
    fn map(&self, r: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
        ctx.emit(r.source.rsplit('/').next().unwrap_or(r.source).as_bytes(), r.data.len().to_string().as_bytes());
        ctx.count("files", 1);
        Ok(())
    }
    fn input_format(&self) -> Arc<dyn InputFormat> {
        Arc::new(WholeFile)
    }
}

/// line number → line, for every line.
struct Numbered;

impl App for Numbered {
    fn map(&self, r: &Record<'_>, ctx: &mut MapContext<'_>) -> Result<(), AppError> {
        let line = r.line.ok_or_else(|| AppError::permanent("no line number"))?;
        ctx.emit(format!("{}:{line:06}", r.source.rsplit('/').next().unwrap_or(r.source)).as_bytes(), r.data);
        Ok(())
    }
    fn input_format(&self) -> Arc<dyn InputFormat> {
        Arc::new(TextLines::with_line_numbers())
    }
}

fn read_all(dir: &std::path::Path) -> String {
    let mut files: Vec<_> = fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("part-")))
        .collect();
    files.sort();
    files.iter().map(|f| fs::read_to_string(f).expect("read")).collect()
}

#[test]
fn whole_file_gives_one_record_per_file_even_with_tiny_splits() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in");
    fs::create_dir(&input).expect("mkdir");
    fs::write(input.join("a.txt"), "x".repeat(5000)).expect("write");
    fs::write(input.join("b.txt"), "line\n".repeat(300)).expect("write");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&[7u8; 12345]).expect("gzip");
    fs::write(input.join("c.bin.gz"), gz.finish().expect("gzip")).expect("write");
    let mut spec =
        JobSpec::new("sizes", vec![input.display().to_string()], tmp.path().join("out").display().to_string());
    spec.split_size = 100;
    let report = run_job(&spec, Arc::new(FileSizes), &RunOptions::default()).expect("job");
    assert_eq!(read_all(&tmp.path().join("out")), "a.txt\t5000\nb.txt\t1500\nc.bin.gz\t12345\n");
    assert_eq!(report.map_tasks, 3, "whole files are never split");
    assert_eq!(report.counters.app.get("files"), Some(&3));
}

#[test]
fn line_numbers_are_exact_across_splits_and_in_compressed_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let text: String = (1..=500).map(|i| format!("{}\n", "w".repeat(i % 37))).collect();
    fs::write(tmp.path().join("plain.txt"), &text).expect("write");
    fs::write(tmp.path().join("packed.txt.zst"), zstd::encode_all(text.as_bytes(), 1).expect("zstd")).expect("write");
    let inputs = vec![
        tmp.path().join("plain.txt").display().to_string(),
        tmp.path().join("packed.txt.zst").display().to_string(),
    ];
    let mut spec = JobSpec::new("numbered", inputs, tmp.path().join("out").display().to_string());
    spec.split_size = 97;
    run_job(&spec, Arc::new(Numbered), &RunOptions::default()).expect("job");
    let expected: String = ["packed.txt.zst", "plain.txt"]
        .iter()
        .flat_map(|f| (1..=500).map(move |i| format!("{f}:{i:06}\t{}\n", "w".repeat(i % 37))))
        .map(|l| l.replace("\t\n", "\n"))
        .collect();
    assert_eq!(read_all(&tmp.path().join("out")), expected);
}
