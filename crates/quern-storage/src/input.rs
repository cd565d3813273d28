//! Finding input files and cutting them into splits.
//!
//! Inputs are [`Location`]s: local files, directories (walked recursively in
//! sorted order, skipping names that start with `.` or `_`, so a previous
//! job's `_SUCCESS` and `_temporary` are not read) and glob patterns; and the
//! same in S3: an object, a prefix read as a directory (every object under
//! `prefix/`, in the same order and with the same names skipped), or a glob
//! in the key. Every input is opened (a local file) or found (an object)
//! while planning, so a missing or unreadable input is reported before any
//! work starts. `.gz` and `.zst` files are decompressed as they are read and
//! never split; other files are cut into splits of at most `split_size`
//! bytes, and the line rule in [`quern_core::SplitInput`] keeps each line in
//! exactly one split: a split is opened as a reader from its start to the
//! end of the file (local or an object's ranged GETs alike), and the format
//! stops after the last line that starts inside it.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::ObjectStore;
use quern_core::{Compression, InputFile, InputSplit, LineStart, SpecError, check_map_tasks};

use crate::error::StorageError as Error;
use crate::location::Location;
use crate::s3::{CHUNKS, Chunks, ObjectInfo, ObjectReader, S3Stores};

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
pub(crate) fn resolve_inputs(s3: &S3Stores, inputs: &[String]) -> Result<Vec<InputFile>, Error> {
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    for input in inputs {
        match Location::parse(input)? {
            Location::Local(path) => {
                for p in resolve_local(input, &path)? {
                    let name = p.display().to_string();
                    if p.to_str().is_none() {
                        return Err(Error::Input {
                            path: name,
                            message: "the path is not valid UTF-8, which quern needs to describe a job; rename it"
                                .into(),
                        });
                    }
                    // Opening (not just stat-ing) catches unreadable files now.
                    let file =
                        File::open(&p).map_err(|e| Error::Input { path: name.clone(), message: e.to_string() })?;
                    let len =
                        file.metadata().map_err(|e| Error::Input { path: name.clone(), message: e.to_string() })?.len();
                    let key = Location::Local(p.canonicalize().unwrap_or_else(|_| p.clone()));
                    if seen.insert(key) {
                        let location = Location::Local(p.clone()).to_string();
                        files.push(InputFile { compression: Compression::of(&p), location, name, len });
                    }
                }
            }
            Location::S3 { bucket, key } => {
                for object in resolve_s3(s3, &bucket, &key)? {
                    let compression = Compression::of(Path::new(&object.key));
                    let location = Location::S3 { bucket: bucket.clone(), key: object.key };
                    if seen.insert(location.clone()) {
                        let name = location.to_string();
                        files.push(InputFile { compression, location: name.clone(), name, len: object.size });
                    }
                }
            }
        }
    }
    Ok(files)
}

/// The files of one local input: a file, a directory's files, or a glob's.
fn resolve_local(input: &str, path: &Path) -> Result<Vec<PathBuf>, Error> {
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
        let pattern = path.to_str().unwrap_or(input);
        let paths = glob::glob(pattern)
            .map_err(|e| Error::Input { path: input.to_owned(), message: format!("bad glob pattern: {e}") })?;
        for p in paths {
            let p =
                p.map_err(|e| Error::Input { path: e.path().display().to_string(), message: e.error().to_string() })?;
            if p.is_dir() {
                return Err(Error::Input {
                    path: p.display().to_string(),
                    message: "glob matched a directory; name its files".into(),
                });
            }
            found.push(p);
        }
        if found.is_empty() {
            return Err(Error::Input { path: input.to_owned(), message: "no file matches this pattern".into() });
        }
    } else {
        return Err(Error::Input { path: input.to_owned(), message: "no such file or directory".into() });
    }
    Ok(found)
}

/// The objects of one S3 input: the object `key`, else every object under
/// `key/` (names starting with `.` or `_` skipped at every level below it),
/// or the objects whose keys match a glob (`*` does not cross `/`). Sorted as
/// a directory walk is: component by component.
fn resolve_s3(s3: &S3Stores, bucket: &str, key: &str) -> Result<Vec<ObjectInfo>, Error> {
    let url = Location::S3 { bucket: bucket.to_owned(), key: key.to_owned() }.to_string();
    let mut found = if looks_like_glob(key) {
        let pattern = glob::Pattern::new(key)
            .map_err(|e| Error::BadLocation { location: url.clone(), message: format!("bad glob pattern: {e}") })?;
        // List below the pattern's last literal directory only.
        let literal = &key[..key.find(['*', '?', '[']).unwrap_or(key.len())];
        let dir = literal.rfind('/').map_or("", |i| &key[..i]);
        let options = glob::MatchOptions { require_literal_separator: true, ..glob::MatchOptions::new() };
        let mut found = s3.list(bucket, dir, &url)?;
        found.retain(|o| pattern.matches_with(&o.key, options));
        if found.is_empty() {
            return Err(Error::Input { path: url, message: "no object matches this pattern".into() });
        }
        found
    } else {
        if !key.is_empty()
            && let Some(object) = s3.head(bucket, key, &url)?
        {
            return Ok(vec![object]);
        }
        let mut found = s3.list(bucket, key, &url)?;
        found.retain(|o| {
            let below = if key.is_empty() {
                Some(o.key.as_str())
            } else {
                o.key.strip_prefix(key).and_then(|k| k.strip_prefix('/'))
            };
            below.is_some_and(|below| !below.split('/').any(|part| part.starts_with(['.', '_'])))
        });
        if found.is_empty() {
            return Err(Error::Input { path: url, message: "no such object or prefix".into() });
        }
        found
    };
    found.sort_by(|a, b| a.key.split('/').cmp(b.key.split('/')));
    Ok(found)
}

/// Cuts files into splits of at most `split_size` bytes (compressed files
/// and unsplittable formats: one split per file). Empty files have no split.
///
/// Refuses (before making any) more splits than a job may have map tasks
/// ([`quern_core::MAX_MAP_TASKS`]).
pub fn plan_splits(files: &[InputFile], split_size: u64, splittable: bool) -> Result<Vec<InputSplit>, SpecError> {
    let split_size = split_size.max(1);
    let count: u64 = files
        .iter()
        .filter(|f| f.len > 0)
        .map(|f| if !splittable || f.compression != Compression::None { 1 } else { f.len.div_ceil(split_size) })
        .fold(0, u64::saturating_add);
    check_map_tasks(count, split_size)?;
    let mut splits = Vec::with_capacity(count as usize);
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
    Ok(splits)
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

/// Where a split's bytes come from.
enum Source {
    Local(PathBuf),
    S3 { store: Arc<dyn ObjectStore>, key: String, len: u64, chunks: Chunks },
}

impl Source {
    /// The file's bytes from `start` to its end; `split_end` is where the
    /// split ends (past it, only its last line is read).
    fn reader_at(&self, start: u64, split_end: Option<u64>) -> io::Result<Box<dyn Read + Send>> {
        match self {
            Source::Local(path) => {
                let mut file = File::open(path)?;
                if start > 0 {
                    file.seek(SeekFrom::Start(start))?;
                }
                Ok(Box::new(file))
            }
            Source::S3 { store, key, len, chunks } => {
                Ok(Box::new(ObjectReader::new(Arc::clone(store), key, *len, start, split_end, *chunks)?))
            }
        }
    }
}

/// Opens `split` for reading; counts the line breaks before it when
/// `count_lines` is set.
///
/// A compressed file whose bytes cannot be decompressed (corrupt or
/// truncated) gives errors of kind [`io::ErrorKind::InvalidData`], which
/// [`quern_core::InputError::retryable`] treats as permanent: another attempt
/// would read the same bytes. Errors reading the file itself keep their kind.
pub(crate) fn open_split(s3: &S3Stores, split: &InputSplit, count_lines: bool) -> io::Result<OpenSplit> {
    let file = &split.file;
    let source = match Location::parse(&file.location)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?
    {
        Location::Local(path) => Source::Local(path),
        Location::S3 { bucket, key } => {
            let store = s3.store(&bucket, &file.location).map_err(|e| io::Error::other(e.to_string()))?;
            Source::S3 { store, key, len: file.len, chunks: CHUNKS }
        }
    };
    open_source(&source, split, count_lines)
}

/// Opens `split` of the file `source` reads.
fn open_source(source: &Source, split: &InputSplit, count_lines: bool) -> io::Result<OpenSplit> {
    const BUF: usize = 1 << 18;
    let file = &split.file;
    let reader: Box<dyn BufRead + Send> = match file.compression {
        Compression::Gzip => {
            let decoder = flate2::read::MultiGzDecoder::new(BufReader::new(FileReads(source.reader_at(0, None)?)));
            Box::new(BufReader::with_capacity(BUF, Decoded { inner: decoder, format: "gzip" }))
        }
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(FileReads(source.reader_at(0, None)?))
                .map_err(|e| decode_error(e, "zstd"))?;
            Box::new(BufReader::with_capacity(BUF, Decoded { inner: decoder, format: "zstd" }))
        }
        Compression::None => {
            let mut line_start = LineStart::AtLineStart;
            let mut lines_before = count_lines.then_some(0);
            if split.start == 0 {
                let reader = source.reader_at(0, split.end)?;
                return Ok(OpenSplit {
                    reader: Box::new(BufReader::with_capacity(BUF, reader)),
                    line_start,
                    lines_before,
                });
            }
            if let Some(n) = lines_before.as_mut() {
                *n = count_newlines(source.reader_at(0, Some(split.start))?.take(split.start))?;
            }
            // One byte before the split tells whether it starts a line.
            let mut reader = source.reader_at(split.start - 1, split.end)?;
            let mut prev = [0u8; 1];
            reader.read_exact(&mut prev)?;
            if prev[0] != b'\n' {
                line_start = LineStart::MidLine;
            }
            return Ok(OpenSplit { reader: Box::new(BufReader::with_capacity(BUF, reader)), line_start, lines_before });
        }
    };
    Ok(OpenSplit { reader, line_start: LineStart::AtLineStart, lines_before: count_lines.then_some(0) })
}

/// An error of the file under a decoder, marked so that [`Decoded`] can tell
/// it from the decoder's own errors (decoders pass their reader's errors on
/// unchanged).
#[derive(Debug)]
struct FileError(io::Error);

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for FileError {}

/// The compressed file under a decoder: marks its errors as the file's.
struct FileReads<R>(R);

impl<R: Read> Read for FileReads<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| match e.kind() {
            io::ErrorKind::Interrupted => e,
            kind => io::Error::new(kind, FileError(e)),
        })
    }
}

/// A decoder's output: the file's own errors come out as they were; any
/// other error is the decoder's, about the bytes, and comes out as
/// [`io::ErrorKind::InvalidData`].
struct Decoded<R> {
    inner: R,
    format: &'static str,
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| decode_error(e, self.format))
    }
}

fn decode_error(e: io::Error, format: &str) -> io::Error {
    if e.kind() == io::ErrorKind::Interrupted {
        return e;
    }
    if e.get_ref().is_some_and(|inner| inner.is::<FileError>()) {
        return match e.into_inner().map(|inner| inner.downcast::<FileError>()) {
            Some(Ok(file)) => file.0,
            // Not reached: the check above saw a FileError.
            Some(Err(other)) => io::Error::other(other),
            None => io::Error::other("read error"),
        };
    }
    let what = if e.kind() == io::ErrorKind::UnexpectedEof {
        format!("truncated {format} data: the file ends inside a compressed stream")
    } else {
        format!("corrupt {format} data: {e}")
    };
    io::Error::new(io::ErrorKind::InvalidData, what)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn split_of(path: &Path) -> InputSplit {
        let len = std::fs::metadata(path).expect("metadata").len();
        let file = InputFile {
            location: path.display().to_string(),
            name: path.display().to_string(),
            len,
            compression: Compression::of(path),
        };
        InputSplit { file, start: 0, end: None }
    }

    fn read_all(path: &Path) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        open_split(&S3Stores::default(), &split_of(path), false)?.reader.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn splits_are_counted_and_bounded_before_they_are_made() {
        let file = |name: &str, len| InputFile {
            location: name.into(),
            name: name.into(),
            len,
            compression: Compression::of(Path::new(name)),
        };
        let files = [file("a.txt", 250), file("b.gz", 1 << 30), file("empty.txt", 0)];
        let splits = plan_splits(&files, 100, true).expect("plan");
        let ranges: Vec<(String, u64, Option<u64>)> =
            splits.iter().map(|s| (s.file.name.clone(), s.start, s.end)).collect();
        assert_eq!(
            ranges,
            [
                ("a.txt".into(), 0, Some(100)),
                ("a.txt".into(), 100, Some(200)),
                ("a.txt".into(), 200, Some(250)),
                ("b.gz".into(), 0, None)
            ]
        );
        assert_eq!(
            plan_splits(&[file("big.txt", 1 << 40)], 90, true).map(|s| s.len()),
            Err(SpecError::TooManyMapTasks { tasks: (1u64 << 40).div_ceil(90), split_size: 90, max: 100_000 })
        );
        assert_eq!(plan_splits(&[file("big.txt", 1 << 40)], 90, false).map(|s| s.len()), Ok(1));
    }

    /// Every line of every split of `file` read from `source`, with its
    /// offset and line number, as a format sees them.
    fn lines_of_splits(
        source: &Source,
        file: &InputFile,
        split_size: u64,
        count_lines: bool,
    ) -> Vec<(u64, Option<u64>, Vec<u8>)> {
        let mut lines = Vec::new();
        for split in plan_splits(std::slice::from_ref(file), split_size, true).expect("plan") {
            let opened = open_source(source, &split, count_lines).expect("open");
            let mut reader = opened.reader;
            let mut input = quern_core::SplitInput::new(
                &mut reader,
                "f",
                split.start,
                split.end,
                opened.line_start,
                opened.lines_before,
            );
            let mut buf = Vec::new();
            while let Some((offset, line)) = input.next_line(&mut buf).expect("line") {
                lines.push((offset, line, buf.clone()));
            }
        }
        lines
    }

    #[test]
    fn an_object_read_in_small_ranged_gets_splits_into_the_same_lines_as_a_local_file() {
        use object_store::ObjectStoreExt;
        // Lines of many lengths, empty ones, a long one, no final newline.
        let mut text = Vec::new();
        for i in 0..80u32 {
            let len = (i * 7919) % 23;
            text.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, len as usize));
            text.push(b'\n');
        }
        text.extend(b"x".repeat(100));
        text.extend(b"\nlast line without a newline");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.txt");
        std::fs::write(&path, &text).expect("write");
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let key = "dir/in.txt";
        let put = {
            let store = Arc::clone(&store);
            let bytes = text.clone();
            async move { store.put(&object_store::path::Path::from(key), bytes.into()).await }
        };
        crate::runtime::block_on(put).expect("runtime").expect("put");
        let file = InputFile {
            location: path.display().to_string(),
            name: "in.txt".into(),
            len: text.len() as u64,
            compression: Compression::None,
        };
        for count_lines in [false, true] {
            let whole = lines_of_splits(&Source::Local(path.clone()), &file, u64::MAX, count_lines);
            assert_eq!(whole.len(), 82);
            for split_size in [1, 2, 3, 10, 64, 99, 100, 101, 4096] {
                let local = lines_of_splits(&Source::Local(path.clone()), &file, split_size, count_lines);
                assert_eq!(local, whole, "local, split size {split_size}");
                // Counting lines reads from the start for every split: not
                // in one-byte GETs.
                let chunks: &[(u64, u64)] =
                    if count_lines { &[(50, 64), (4096, 5)] } else { &[(1, 1), (3, 2), (7, 64)] };
                for &(inside, tail) in chunks {
                    let chunks = Chunks { inside, tail };
                    let s3 = Source::S3 { store: Arc::clone(&store), key: key.into(), len: file.len, chunks };
                    let lines = lines_of_splits(&s3, &file, split_size, count_lines);
                    assert_eq!(lines, whole, "split size {split_size}, chunks {inside}/{tail}, count {count_lines}");
                }
            }
        }
    }

    #[test]
    fn corrupt_and_truncated_compressed_files_are_invalid_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = b"a line of text to compress\n".repeat(500);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let zst = zstd::encode_all(&text[..], 3).expect("zstd");
        let flip = |b: &[u8]| {
            let mut b = b.to_vec();
            let mid = b.len() / 2;
            b[mid] ^= 0xff;
            b
        };
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("garbage.gz", b"not gzip at all".to_vec()),
            ("flipped.gz", flip(&gz)),
            ("truncated.gz", gz[..gz.len() / 2].to_vec()),
            ("garbage.zst", b"not zstd at all".to_vec()),
            ("truncated.zst", zst[..zst.len() / 2].to_vec()),
        ];
        for (name, bytes) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).expect("write");
            let e = read_all(&path).expect_err(name);
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{name}: {e}");
        }
        for (name, bytes) in [("good.gz", gz), ("good.zst", zst)] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).expect("write");
            assert_eq!(read_all(&path).expect(name), text);
        }
    }

    #[test]
    fn errors_of_the_file_under_a_decoder_keep_their_kind() {
        let e =
            decode_error(io::Error::new(io::ErrorKind::TimedOut, FileError(io::ErrorKind::TimedOut.into())), "gzip");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let e = decode_error(io::Error::new(io::ErrorKind::InvalidInput, "corrupt deflate stream"), "gzip");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("corrupt gzip data: corrupt deflate stream"), "{e}");
    }
}
