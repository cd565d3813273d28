//! Sorted runs on disk: the format of spills, of merge passes and of a map
//! task's final output.
//!
//! A run file holds one *segment* per partition, back to back. A segment is an
//! LZ4 frame (64 KiB blocks, content checksum) of records, each encoded as
//! `varint(key len) varint(value len) key value`; an empty partition has an
//! empty segment and no frame. The [`RunIndex`] (kept in memory for spills,
//! written beside the file as JSON for map outputs) says where each segment
//! is. Readers stream a segment with bounded memory, whatever its size.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use lz4_flex::frame::{BlockSize, FrameDecoder, FrameEncoder, FrameInfo};
use serde::{Deserialize, Serialize};

pub use quern_core::Segment;

/// A run file and its per-partition segments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunIndex {
    /// The file.
    pub path: PathBuf,
    /// One segment per partition, in partition order.
    pub segments: Vec<Segment>,
}

impl RunIndex {
    /// Writes the index as JSON to `path`.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let json = serde_json::to_vec(self).map_err(io::Error::other)?;
        std::fs::write(path, json)
    }

    /// Reads an index written by [`RunIndex::save`].
    pub fn load(path: &Path) -> io::Result<RunIndex> {
        let bytes = std::fs::read(path)?;
        serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// The reader of partition `p`'s segment, or `None` if it is empty.
    pub fn open_segment(&self, p: usize) -> io::Result<Option<SegmentReader>> {
        match self.segments.get(p) {
            Some(seg) if seg.records > 0 => SegmentReader::open(&self.path, *seg).map(Some),
            _ => Ok(None),
        }
    }
}

fn frame_info() -> FrameInfo {
    FrameInfo::new().block_size(BlockSize::Max64KB).content_checksum(true)
}

/// Appends a LEB128 varint.
pub fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Reads a LEB128 varint; `Ok(None)` at a clean end of stream.
/// The varint at the start of `buf` and its length in bytes, if all of it
/// is in `buf` and it fits in a `u64` (a longer one is left to
/// [`read_varint`], which reports it).
#[inline]
fn varint_in(buf: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in buf.iter().take(10).enumerate() {
        v |= u64::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn read_varint(r: &mut impl BufRead) -> io::Result<Option<u64>> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = {
            let buf = r.fill_buf()?;
            match buf.first() {
                Some(&b) => b,
                None if shift == 0 => return Ok(None),
                None => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated varint"));
                }
            }
        };
        r.consume(1);
        if shift > 63 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "varint too long"));
        }
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(Some(v));
        }
        shift += 7;
    }
}

/// Counts bytes written through it.
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The segment being written: its partition, its compressor, its tally.
type OpenSegment = (usize, FrameEncoder<Counting<BufWriter<File>>>, Segment);

/// Writes a run file: partitions in increasing order, records in key order
/// within each (the caller's promise).
pub struct RunWriter {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    pos: u64,
    segments: Vec<Segment>,
    partitions: usize,
    current: Option<OpenSegment>,
    scratch: Vec<u8>,
}

impl RunWriter {
    /// Creates `path` for a run of `partitions` partitions.
    pub fn create(path: PathBuf, partitions: usize) -> io::Result<RunWriter> {
        let file = File::create(&path)?;
        Ok(RunWriter {
            path,
            out: Some(BufWriter::with_capacity(1 << 16, file)),
            pos: 0,
            segments: Vec::with_capacity(partitions),
            partitions,
            current: None,
            scratch: Vec::with_capacity(64),
        })
    }

    /// Appends one record to partition `p` (which must not be before the
    /// last partition written).
    pub fn write(&mut self, p: usize, key: &[u8], value: &[u8]) -> io::Result<()> {
        if self.current.as_ref().is_none_or(|(cur, _, _)| *cur != p) {
            self.finish_segment()?;
            debug_assert!(p >= self.segments.len(), "invariant: partitions are written in order");
            while self.segments.len() < p {
                self.segments.push(Segment { offset: self.pos, ..Segment::default() });
            }
            let out = self.out.take().expect("invariant: writer is present between segments");
            let enc = FrameEncoder::with_frame_info(frame_info(), Counting { inner: out, written: 0 });
            self.current = Some((p, enc, Segment { offset: self.pos, ..Segment::default() }));
        }
        let (_, enc, seg) = self.current.as_mut().expect("invariant: segment opened above");
        self.scratch.clear();
        put_varint(&mut self.scratch, key.len() as u64);
        put_varint(&mut self.scratch, value.len() as u64);
        enc.write_all(&self.scratch)?;
        enc.write_all(key)?;
        enc.write_all(value)?;
        seg.records += 1;
        seg.raw_len += (self.scratch.len() + key.len() + value.len()) as u64;
        Ok(())
    }

    fn finish_segment(&mut self) -> io::Result<()> {
        if let Some((_, enc, mut seg)) = self.current.take() {
            let counting = enc.finish().map_err(io::Error::other)?;
            seg.len = counting.written;
            self.pos += counting.written;
            self.out = Some(counting.inner);
            self.segments.push(seg);
        }
        Ok(())
    }

    /// Finishes the file (fsync is left to the commit) and returns its index.
    pub fn finish(mut self) -> io::Result<RunIndex> {
        self.finish_segment()?;
        while self.segments.len() < self.partitions {
            self.segments.push(Segment { offset: self.pos, ..Segment::default() });
        }
        let mut out = self.out.take().expect("invariant: writer is present after the last segment");
        out.flush()?;
        Ok(RunIndex { path: self.path, segments: self.segments })
    }
}

/// A cursor over sorted records: [`RecordCursor::advance`] moves to the next
/// record, whose key and value stay valid until the next call.
pub trait RecordCursor {
    /// Moves to the next record; `false` when there is none.
    fn advance(&mut self) -> io::Result<bool>;
    /// The current record's key.
    fn key(&self) -> &[u8];
    /// The current record's value.
    fn value(&self) -> &[u8];
}

/// Streams one segment of a run file.
pub struct SegmentReader {
    input: BufReader<FrameDecoder<io::Take<BufReader<File>>>>,
    key: Vec<u8>,
    value: Vec<u8>,
    remaining: u64,
    raw_remaining: u64,
}

impl SegmentReader {
    /// Opens `seg` of the file at `path`.
    pub fn open(path: &Path, seg: Segment) -> io::Result<SegmentReader> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(seg.offset))?;
        let raw = BufReader::with_capacity(1 << 15, file).take(seg.len);
        Ok(SegmentReader {
            input: BufReader::with_capacity(1 << 15, FrameDecoder::new(raw)),
            key: Vec::new(),
            value: Vec::new(),
            remaining: seg.records,
            raw_remaining: seg.raw_len,
        })
    }
}

impl RecordCursor for SegmentReader {
    fn advance(&mut self) -> io::Result<bool> {
        if self.remaining == 0 {
            return Ok(false);
        }
        let corrupt = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("corrupt run segment: {what}"));
        if self.advance_in_buffer(&corrupt)? {
            return self.after_record();
        }
        let klen = read_varint(&mut self.input)?.ok_or_else(|| corrupt("ends early"))?;
        let vlen = read_varint(&mut self.input)?.ok_or_else(|| corrupt("ends inside a record"))?;
        let klen = usize::try_from(klen).map_err(|_| corrupt("key length"))?;
        let vlen = usize::try_from(vlen).map_err(|_| corrupt("value length"))?;
        // Lengths are checked against the index before allocating, so a
        // corrupt length cannot ask for gigabytes.
        let body = (klen as u64).saturating_add(vlen as u64);
        if body > self.raw_remaining {
            return Err(corrupt("record longer than the segment"));
        }
        self.raw_remaining -= body;
        self.key.resize(klen, 0);
        self.input.read_exact(&mut self.key)?;
        self.value.resize(vlen, 0);
        self.input.read_exact(&mut self.value)?;
        self.after_record()
    }

    fn key(&self) -> &[u8] {
        &self.key
    }

    fn value(&self) -> &[u8] {
        &self.value
    }
}

impl SegmentReader {
    /// Reads the next record straight from the decoder's buffer if all of
    /// it is there (most records: they are small and the buffer is 32 KiB);
    /// `false`, having read nothing, if not.
    #[inline]
    fn advance_in_buffer(&mut self, corrupt: &impl Fn(&str) -> io::Error) -> io::Result<bool> {
        let buf = self.input.fill_buf()?;
        let Some((klen, used)) = varint_in(buf) else { return Ok(false) };
        let Some((vlen, more)) = varint_in(&buf[used..]) else { return Ok(false) };
        let header = used + more;
        let body = klen.saturating_add(vlen);
        if body > self.raw_remaining {
            return Err(corrupt("record longer than the segment"));
        }
        // At most the segment's length, which is in memory as `buf` or more.
        let (klen, vlen) = (klen as usize, vlen as usize);
        if buf.len() - header < klen + vlen {
            return Ok(false);
        }
        self.raw_remaining -= body;
        self.key.clear();
        self.key.extend_from_slice(&buf[header..header + klen]);
        self.value.clear();
        self.value.extend_from_slice(&buf[header + klen..header + klen + vlen]);
        self.input.consume(header + klen + vlen);
        Ok(true)
    }

    /// Counts the record read; after the last, checks that the segment ends.
    fn after_record(&mut self) -> io::Result<bool> {
        let corrupt = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("corrupt run segment: {what}"));
        self.remaining -= 1;
        if self.remaining == 0 {
            // Reading to the end makes the decoder check the frame checksum.
            let mut rest = Vec::new();
            self.input.read_to_end(&mut rest)?;
            if !rest.is_empty() {
                return Err(corrupt("trailing bytes"));
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_empty_partitions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = RunWriter::create(dir.path().join("r"), 4).expect("create");
        w.write(1, b"a", b"1").expect("write");
        w.write(1, b"b", b"").expect("write");
        w.write(3, b"", b"zz").expect("write");
        let index = w.finish().expect("finish");
        assert_eq!(index.segments.len(), 4);
        assert_eq!(index.segments.iter().map(|s| s.records).collect::<Vec<_>>(), vec![0, 2, 0, 1]);
        assert!(index.open_segment(0).expect("open").is_none());
        let mut r = index.open_segment(1).expect("open").expect("non-empty");
        let mut got = Vec::new();
        while r.advance().expect("advance") {
            got.push((r.key().to_vec(), r.value().to_vec()));
        }
        assert_eq!(got, vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), vec![])]);
        let mut r = index.open_segment(3).expect("open").expect("non-empty");
        assert!(r.advance().expect("advance"));
        assert_eq!((r.key(), r.value()), (&b""[..], &b"zz"[..]));
        assert!(!r.advance().expect("advance"));
    }

    #[test]
    fn an_index_that_disagrees_with_its_segment_is_an_error_naming_the_disagreement() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = RunWriter::create(dir.path().join("r"), 1).expect("create");
        for i in 0..100u32 {
            w.write(0, format!("key{i:04}").as_bytes(), b"value").expect("write");
        }
        let index = w.finish().expect("finish");
        let seg = index.segments[0];
        let read_all = |seg: Segment| -> io::Result<u64> {
            let mut r = SegmentReader::open(&index.path, seg)?;
            let mut n = 0;
            while r.advance()? {
                n += 1;
            }
            Ok(n)
        };
        assert_eq!(read_all(seg).expect("as written"), 100);
        let cases = [
            (Segment { raw_len: 50, ..seg }, "record longer than the segment"),
            (Segment { records: seg.records + 1, ..seg }, "ends early"),
            (Segment { records: seg.records - 1, ..seg }, "trailing bytes"),
        ];
        for (seg, expected) in cases {
            let err = read_all(seg).expect_err(expected);
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[test]
    fn corruption_is_detected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r");
        let mut w = RunWriter::create(path.clone(), 1).expect("create");
        for i in 0..1000u32 {
            w.write(0, format!("key{i:06}").as_bytes(), b"value").expect("write");
        }
        let index = w.finish().expect("finish");
        let mut bytes = std::fs::read(&path).expect("read");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&path, bytes).expect("write");
        let mut r = index.open_segment(0).expect("open").expect("non-empty");
        let result = (|| -> io::Result<()> {
            while r.advance()? {}
            Ok(())
        })();
        assert!(result.is_err(), "a flipped byte must not go unnoticed");
    }
}
