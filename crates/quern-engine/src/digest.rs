//! What an attempt wrote, as one digest: the XXH3-128 of each file it
//! wrote (its part files, and a map's output file, taken while it is local,
//! before a shuffle through storage uploads it), combined in name order.
//! A cluster records the digest of each committed attempt; `quern replay`
//! runs the task again and compares.
//!
//! The digest is over bytes, so it holds as long as the code, the input,
//! the plan and the engine's file format are the same: the engine writes
//! deterministically (spills are cut where memory runs out, which depends
//! on the records only).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use twox_hash::XxHash3_128;

/// The digests of an attempt's files, as they are written.
#[derive(Debug, Clone, Default)]
pub struct OutputDigest {
    files: Arc<Mutex<Vec<(String, u128)>>>,
}

impl OutputDigest {
    /// A writer that passes everything to `inner` and adds the digest of
    /// what it wrote, under `name`, when it is dropped.
    pub fn writer<W: Write>(&self, name: &str, inner: W) -> DigestWriter<W> {
        DigestWriter { inner, hasher: XxHash3_128::new(), name: name.to_owned(), files: Arc::clone(&self.files) }
    }

    /// Adds the digest of the file at `path`, read whole, under `name`.
    pub fn add_file(&self, name: &str, path: &Path) -> io::Result<()> {
        let mut file = File::open(path)?;
        let mut hasher = XxHash3_128::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match file.read(&mut buf)? {
                0 => break,
                n => hasher.write(&buf[..n]),
            }
        }
        self.add(name, hasher.finish_128());
        Ok(())
    }

    fn add(&self, name: &str, digest: u128) {
        self.files.lock().unwrap_or_else(PoisonError::into_inner).push((name.to_owned(), digest));
    }

    /// The digest of every file added so far: 32 hex digits.
    pub fn finish(&self) -> String {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner).clone();
        files.sort();
        let mut hasher = XxHash3_128::new();
        for (name, digest) in files {
            hasher.write(name.as_bytes());
            hasher.write(&[0]);
            hasher.write(&digest.to_le_bytes());
        }
        format!("{:032x}", hasher.finish_128())
    }
}

/// A writer whose bytes are digested; see [`OutputDigest::writer`].
pub struct DigestWriter<W: Write> {
    inner: W,
    hasher: XxHash3_128,
    name: String,
    files: Arc<Mutex<Vec<(String, u128)>>>,
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.write(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> Drop for DigestWriter<W> {
    fn drop(&mut self) {
        let digest = self.hasher.finish_128();
        self.files.lock().unwrap_or_else(PoisonError::into_inner).push((std::mem::take(&mut self.name), digest));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_of_every_files_bytes_whatever_the_order_they_were_written_in() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("map.out");
        std::fs::write(&path, b"run bytes").expect("write");
        let digest = |order: &[&str]| {
            let d = OutputDigest::default();
            for name in order {
                match *name {
                    "map.out" => d.add_file("map.out", &path).expect("file"),
                    other => {
                        let mut w = d.writer(other, Vec::new());
                        w.write_all(other.as_bytes()).expect("write");
                    }
                }
            }
            d.finish()
        };
        let a = digest(&["part-m-00000", "map.out", "other/part-m-00000"]);
        assert_eq!(a.len(), 32);
        assert_eq!(a, digest(&["other/part-m-00000", "part-m-00000", "map.out"]));
        assert_ne!(a, digest(&["part-m-00000", "map.out"]), "a file fewer");
        std::fs::write(&path, b"run bytez").expect("write");
        assert_ne!(a, digest(&["part-m-00000", "map.out", "other/part-m-00000"]), "a byte changed");
    }
}
