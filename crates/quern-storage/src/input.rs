//! Finding input files and cutting them into splits.
//!
//! Inputs are files, directories (walked recursively in sorted order,
//! skipping names that start with `.` or `_`, so a previous job's `_SUCCESS`
//! and `_temporary` are not read) and glob patterns. Every file is opened
//! once while planning, so a missing or unreadable input is reported before
//! any work starts. `.gz` and `.zst` files are decompressed as they are read
//! and never split; other files are cut into splits of at most `split_size`
//! bytes, and the line rule in [`quern_core::SplitInput`] keeps each line in
//! exactly one split.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use quern_core::{Compression, InputFile, InputSplit, LineStart};

use crate::error::StorageError as Error;

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with('.') || name.starts_with('_')
}

fn looks_like_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Resolves the job's inputs to files, in order: each input in the order
/// given, directory contents sorted. Fails on the first input that is
/// missing, unreadable or matches nothing.
pub fn resolve_inputs(inputs: &[String]) -> Result<Vec<InputFile>, Error> {
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    for input in inputs {
        let path = Path::new(input);
        let mut found = Vec::new();
        if path.is_dir() {
            let walk = walkdir::WalkDir::new(path)
                .follow_links(true)
                .sort_by_file_name()
                .into_iter()
                .filter_entry(|e| e.depth() == 0 || !is_hidden(e.file_name()));
            for entry in walk {
                let entry = entry.map_err(|e| Error::Input {
                    path: e.path().unwrap_or(path).display().to_string(),
                    message: e.io_error().map_or_else(|| e.to_string(), |io| io.to_string()),
                })?;
                if entry.file_type().is_file() {
                    found.push(entry.into_path());
                }
            }
        } else if path.exists() {
            found.push(path.to_path_buf());
        } else if looks_like_glob(input) {
            let paths = glob::glob(input)
                .map_err(|e| Error::Input { path: input.clone(), message: format!("bad glob pattern: {e}") })?;
            for p in paths {
                let p = p.map_err(|e| Error::Input {
                    path: e.path().display().to_string(),
                    message: e.error().to_string(),
                })?;
                if p.is_dir() {
                    return Err(Error::Input {
                        path: p.display().to_string(),
                        message: "glob matched a directory; name its files".into(),
                    });
                }
                found.push(p);
            }
            if found.is_empty() {
                return Err(Error::Input { path: input.clone(), message: "no file matches this pattern".into() });
            }
        } else {
            return Err(Error::Input { path: input.clone(), message: "no such file or directory".into() });
        }
        for p in found {
            let name = p.display().to_string();
            // Opening (not just stat-ing) catches unreadable files now.
            let file = File::open(&p).map_err(|e| Error::Input { path: name.clone(), message: e.to_string() })?;
            let len = file.metadata().map_err(|e| Error::Input { path: name.clone(), message: e.to_string() })?.len();
            let key = p.canonicalize().unwrap_or_else(|_| p.clone());
            if seen.insert(key) {
                files.push(InputFile { compression: Compression::of(&p), path: p, name, len });
            }
        }
    }
    Ok(files)
}

/// Cuts files into splits of at most `split_size` bytes (compressed files
/// and unsplittable formats: one split per file). Empty files have no split.
pub fn plan_splits(files: &[InputFile], split_size: u64, splittable: bool) -> Vec<InputSplit> {
    let mut splits = Vec::new();
    for file in files {
        if file.len == 0 {
            continue;
        }
        if !splittable || file.compression != Compression::None {
            splits.push(InputSplit { file: file.clone(), start: 0, end: None });
            continue;
        }
        let mut start = 0;
        while start < file.len {
            let end = (start + split_size).min(file.len);
            splits.push(InputSplit { file: file.clone(), start, end: Some(end) });
            start = end;
        }
    }
    splits
}

/// An opened split: a reader positioned at its start, and what the line rule
/// needs to know.
pub struct OpenSplit {
    /// The bytes from the split's start (decompressed if need be).
    pub reader: Box<dyn BufRead + Send>,
    /// Whether the split begins at a line start.
    pub line_start: LineStart,
    /// Line breaks before the split's start, when asked for.
    pub lines_before: Option<u64>,
}

/// Opens `split` for reading; counts the line breaks before it when
/// `count_lines` is set.
pub fn open_split(split: &InputSplit, count_lines: bool) -> io::Result<OpenSplit> {
    const BUF: usize = 1 << 18;
    let mut file = File::open(&split.file.path)?;
    let reader: Box<dyn BufRead + Send> = match split.file.compression {
        Compression::Gzip => {
            Box::new(BufReader::with_capacity(BUF, flate2::read::MultiGzDecoder::new(BufReader::new(file))))
        }
        Compression::Zstd => Box::new(BufReader::with_capacity(BUF, zstd::stream::read::Decoder::new(file)?)),
        Compression::None => {
            let mut line_start = LineStart::AtLineStart;
            let mut lines_before = count_lines.then_some(0);
            if split.start > 0 {
                if let Some(n) = lines_before.as_mut() {
                    *n = count_newlines((&mut file).take(split.start))?;
                }
                file.seek(SeekFrom::Start(split.start - 1))?;
                let mut prev = [0u8; 1];
                file.read_exact(&mut prev)?;
                if prev[0] != b'\n' {
                    line_start = LineStart::MidLine;
                }
            }
            return Ok(OpenSplit { reader: Box::new(BufReader::with_capacity(BUF, file)), line_start, lines_before });
        }
    };
    Ok(OpenSplit { reader, line_start: LineStart::AtLineStart, lines_before: count_lines.then_some(0) })
}

fn count_newlines(mut r: impl Read) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => n += memchr::memchr_iter(b'\n', &buf[..k]).count() as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
