//! Input and output formats (Hadoop's `InputFormat`/`OutputFormat`).
//!
//! An [`InputFormat`] turns one split of one file into [`Record`]s; the engine
//! opens, seeks and decompresses, and hands the format a [`SplitInput`] that
//! already knows the split's line rule: a line belongs to the split in which
//! it starts, so no line is lost or read twice at any split size. An
//! [`OutputFormat`] turns pairs into bytes.

use std::io::{self, BufRead, Write};
use std::ops::ControlFlow;

use crate::app::Record;
use crate::error::InputError;

/// Where an [`InputFormat`] hands each record it reads.
pub trait RecordSink {
    /// Takes one record; `Break` asks the format to stop reading (the engine
    /// has already kept the reason).
    fn record(&mut self, record: Record<'_>) -> ControlFlow<()>;
}

/// How input files become records.
pub trait InputFormat: Send + Sync {
    /// Whether a file may be cut into several splits. Compressed files are
    /// never split, whatever this says.
    fn splittable(&self) -> bool {
        true
    }

    /// Whether records should carry line numbers (costs a scan of the file
    /// up to each split's start).
    fn line_numbers(&self) -> bool {
        false
    }

    /// Reads the split, handing every record to `sink`.
    fn read(&self, input: &mut SplitInput<'_>, sink: &mut dyn RecordSink) -> Result<(), InputError>;
}

/// Whether a split begins at the start of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineStart {
    /// The split begins at a line start (offset 0, or just after `\n`).
    AtLineStart,
    /// The split begins inside a line, which belongs to the previous split.
    MidLine,
}

/// Appends the bytes up to and including the next `\n` (or to the end of
/// the stream) to `buf`, as [`BufRead::read_until`] does, finding the byte
/// with `memchr`'s vectorised search; returns the bytes read.
fn read_line_into(reader: &mut dyn BufRead, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut read = 0;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let (done, used) = match memchr::memchr(b'\n', available) {
            Some(at) => (true, at + 1),
            None => (available.is_empty(), available.len()),
        };
        buf.extend_from_slice(&available[..used]);
        reader.consume(used);
        read += used;
        if done {
            return Ok(read);
        }
    }
}

/// One split of one file, positioned at its start, as a format reads it.
pub struct SplitInput<'a> {
    reader: &'a mut dyn BufRead,
    path: &'a str,
    pos: u64,
    end: Option<u64>,
    skip_partial: bool,
    next_line: Option<u64>,
}

impl<'a> SplitInput<'a> {
    /// A split of `path` covering byte offsets `[start, end)` (`end = None`:
    /// to the end of the stream). `reader` must be positioned at `start`.
    /// `lines_before` is the number of line breaks in `[0, start)`, when
    /// known.
    pub fn new(
        reader: &'a mut dyn BufRead,
        path: &'a str,
        start: u64,
        end: Option<u64>,
        line_start: LineStart,
        lines_before: Option<u64>,
    ) -> Self {
        SplitInput {
            reader,
            path,
            pos: start,
            end,
            skip_partial: line_start == LineStart::MidLine,
            next_line: lines_before.map(|n| n + 1),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &str {
        self.path
    }

    /// Reads the next line of this split into `buf` (cleared first, without
    /// its `\n` or `\r\n`), returning its offset and line number, or `None`
    /// when the split has no more lines. A line that starts before the split's
    /// end is read to its end even past the split.
    pub fn next_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<(u64, Option<u64>)>> {
        self.read_line(buf, true)
    }

    /// Like [`SplitInput::next_line`], but takes off the `\n` only: a `\r`
    /// before it stays, so the line is its bytes exactly.
    pub fn next_raw_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<(u64, Option<u64>)>> {
        self.read_line(buf, false)
    }

    fn read_line(&mut self, buf: &mut Vec<u8>, strip_cr: bool) -> io::Result<Option<(u64, Option<u64>)>> {
        if self.skip_partial {
            self.skip_partial = false;
            buf.clear();
            let n = read_line_into(self.reader, buf)?;
            self.pos += n as u64;
            if buf.last() == Some(&b'\n') {
                self.next_line = self.next_line.map(|l| l + 1);
            }
        }
        if self.end.is_some_and(|end| self.pos >= end) {
            return Ok(None);
        }
        buf.clear();
        let n = read_line_into(self.reader, buf)?;
        if n == 0 {
            return Ok(None);
        }
        let offset = self.pos;
        self.pos += n as u64;
        let line = self.next_line;
        self.next_line = self.next_line.map(|l| l + 1);
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if strip_cr && buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        Ok(Some((offset, line)))
    }

    /// Reads everything from the split's start to the end of the stream.
    pub fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<u64> {
        let n = self.reader.read_to_end(buf)? as u64;
        self.pos += n;
        Ok(n)
    }

    /// Bytes consumed so far, as an offset in the file.
    pub fn position(&self) -> u64 {
        self.pos
    }
}

/// Text input: one record per line (without its terminator, `\n` or
/// `\r\n`), carrying the file name and byte offset, and the line number when
/// asked for.
#[derive(Debug, Default, Clone, Copy)]
pub struct TextLines {
    line_numbers: bool,
    keep_cr: bool,
}

impl TextLines {
    /// Text lines whose records carry 1-based line numbers.
    pub fn with_line_numbers() -> Self {
        TextLines { line_numbers: true, keep_cr: false }
    }

    /// Text lines exactly as they are: only the `\n` is taken off, and a
    /// `\r` before it stays part of the record (what `sort` needs to write
    /// the input's lines back byte for byte).
    pub fn keeping_cr() -> Self {
        TextLines { line_numbers: false, keep_cr: true }
    }
}

impl InputFormat for TextLines {
    fn line_numbers(&self) -> bool {
        self.line_numbers
    }

    fn read(&self, input: &mut SplitInput<'_>, sink: &mut dyn RecordSink) -> Result<(), InputError> {
        let mut buf = Vec::with_capacity(256);
        let strip_cr = !self.keep_cr;
        while let Some((offset, line)) = input.read_line(&mut buf, strip_cr)? {
            let record = Record { source: input.path(), offset, line, data: &buf };
            if sink.record(record).is_break() {
                break;
            }
        }
        Ok(())
    }
}

/// Whole-file input: one record per file, its entire contents, like
/// `Map(filename, contents)` in the paper's examples. Never split.
#[derive(Debug, Default, Clone, Copy)]
pub struct WholeFile;

impl InputFormat for WholeFile {
    fn splittable(&self) -> bool {
        false
    }

    fn read(&self, input: &mut SplitInput<'_>, sink: &mut dyn RecordSink) -> Result<(), InputError> {
        let mut buf = Vec::new();
        input.read_to_end(&mut buf)?;
        let _ = sink.record(Record { source: input.path(), offset: 0, line: None, data: &buf });
        Ok(())
    }
}

/// Writes one output pair at a time; `finish` flushes and reports errors.
pub trait RecordWriter: Send {
    /// Writes one pair.
    fn write(&mut self, key: &[u8], value: &[u8]) -> io::Result<()>;
    /// Flushes everything; the output is complete only if this succeeds.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// How output pairs become bytes.
pub trait OutputFormat: Send + Sync {
    /// A writer over `out`.
    fn writer(&self, out: Box<dyn Write + Send>) -> Box<dyn RecordWriter>;
}

/// Text output: `key<TAB>value<LF>`, or `key<LF>` when the value is empty.
#[derive(Debug, Default, Clone, Copy)]
pub struct TextOutput;

struct TextWriter {
    out: Box<dyn Write + Send>,
}

impl RecordWriter for TextWriter {
    fn write(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.out.write_all(key)?;
        if !value.is_empty() {
            self.out.write_all(b"\t")?;
            self.out.write_all(value)?;
        }
        self.out.write_all(b"\n")
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.out.flush()
    }
}

impl OutputFormat for TextOutput {
    fn writer(&self, out: Box<dyn Write + Send>) -> Box<dyn RecordWriter> {
        Box::new(TextWriter { out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `data` as `split_size` splits the way the engine does, returning
    /// every (offset, line number, text) record.
    fn read_all(data: &[u8], split_size: usize) -> Vec<(u64, Option<u64>, Vec<u8>)> {
        let mut out = Vec::new();
        let mut start = 0;
        while start < data.len() {
            let end = (start + split_size).min(data.len());
            let line_start =
                if start == 0 || data[start - 1] == b'\n' { LineStart::AtLineStart } else { LineStart::MidLine };
            let lines_before = data[..start].iter().filter(|&&b| b == b'\n').count() as u64;
            let mut reader = &data[start..];
            let mut input =
                SplitInput::new(&mut reader, "f", start as u64, Some(end as u64), line_start, Some(lines_before));
            let mut buf = Vec::new();
            while let Some((offset, line)) = input.next_line(&mut buf).expect("in-memory read") {
                out.push((offset, line, buf.clone()));
            }
            start = end;
        }
        out
    }

    fn reference(data: &[u8]) -> Vec<(u64, Option<u64>, Vec<u8>)> {
        let mut out = Vec::new();
        let mut offset = 0u64;
        for (i, line) in data.split_inclusive(|&b| b == b'\n').enumerate() {
            let mut text = line.strip_suffix(b"\n").unwrap_or(line).to_vec();
            if line.ends_with(b"\n") && text.last() == Some(&b'\r') {
                text.pop();
            }
            out.push((offset, Some(i as u64 + 1), text));
            offset += line.len() as u64;
        }
        out
    }

    #[test]
    fn crlf_and_missing_final_newline() {
        assert_eq!(
            read_all(b"a\r\nbb\n\nccc", 2),
            vec![
                (0, Some(1), b"a".to_vec()),
                (3, Some(2), b"bb".to_vec()),
                (6, Some(3), b"".to_vec()),
                (7, Some(4), b"ccc".to_vec())
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn every_line_read_exactly_once(
            data in proptest::collection::vec(proptest::sample::select(vec![b'a', b'b', b'\n', b'\r']), 0..200),
            split_size in 1usize..20,
        ) {
            proptest::prop_assert_eq!(read_all(&data, split_size), reference(&data));
        }
    }

    #[test]
    fn lines_kept_exactly_keep_their_carriage_returns() {
        struct All(Vec<Vec<u8>>);
        impl RecordSink for All {
            fn record(&mut self, r: Record<'_>) -> ControlFlow<()> {
                self.0.push(r.data.to_vec());
                ControlFlow::Continue(())
            }
        }
        let read = |format: TextLines| {
            let data = b"a\r\nb\r\r\n\r\nc\r";
            let mut reader = &data[..];
            let mut input = SplitInput::new(&mut reader, "f", 0, None, LineStart::AtLineStart, None);
            let mut all = All(Vec::new());
            format.read(&mut input, &mut all).expect("read");
            all.0
        };
        let exact: Vec<&[u8]> = vec![b"a\r", b"b\r\r", b"\r", b"c\r"];
        assert_eq!(read(TextLines::keeping_cr()), exact);
        let stripped: Vec<&[u8]> = vec![b"a", b"b\r", b"", b"c\r"];
        assert_eq!(read(TextLines::default()), stripped);
    }

    #[test]
    fn text_output_omits_tab_for_empty_value() {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().map_err(|_| io::Error::other("poisoned"))?.extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = TextOutput.writer(Box::new(Shared(buf.clone())));
        w.write(b"k", b"v").expect("write");
        w.write(b"line", b"").expect("write");
        w.finish().expect("finish");
        assert_eq!(&*buf.lock().expect("lock"), b"k\tv\nline\n");
    }
}
