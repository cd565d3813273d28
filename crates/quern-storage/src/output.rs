//! Output files as they are written: an [`OutputFile`] is a [`Write`] for
//! the app's output format plus a [`FileEnd`] that makes the file whole.
//!
//! A local file is a buffered [`std::fs::File`]. An object is streamed as an
//! S3 multipart upload ([`ObjectWriter`]): bytes are buffered up to one part
//! ([`PART_SIZE`]), each full part is handed to `object_store`'s
//! [`WriteMultipart`], which uploads at most [`PARTS_IN_FLIGHT`] at once (a
//! writer waits for one to finish before it buffers more), so a writer holds
//! at most `(PARTS_IN_FLIGHT + 1) * PART_SIZE` bytes whatever the file's size.
//! A file smaller than one part is sent in one `PUT` when it ends. Every
//! request is retried by `object_store` ([`crate::S3_RETRY`]); a part is
//! re-sent from memory. The upload is completed only by [`FileEnd::finish`];
//! a writer dropped without it (a failed or cancelled attempt) aborts its
//! upload, so no part of it ever becomes an object.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

use crate::runtime::block_on;

/// Bytes per uploaded part (S3 wants at least 5 MiB but for the last).
pub(crate) const PART_SIZE: usize = 8 << 20;
/// Parts uploaded at once by one writer.
pub(crate) const PARTS_IN_FLIGHT: usize = 2;

/// One output file of an attempt, being written.
pub struct OutputFile {
    name: String,
    kind: FileKind,
}

enum FileKind {
    Local(BufWriter<File>),
    Object(Arc<Mutex<ObjectWriter>>),
}

/// What completes an [`OutputFile`] once its writer is flushed: nothing for
/// a local file; for an object, completing its upload. Dropped unfinished,
/// the file is abandoned (an upload is aborted).
pub struct FileEnd {
    object: Option<Arc<Mutex<ObjectWriter>>>,
}

impl OutputFile {
    pub(crate) fn local(name: String, file: File) -> OutputFile {
        OutputFile { name, kind: FileKind::Local(BufWriter::with_capacity(1 << 16, file)) }
    }

    pub(crate) fn object(store: Arc<dyn ObjectStore>, path: ObjectPath, url: String) -> OutputFile {
        let writer = ObjectWriter::new(store, path, url.clone());
        OutputFile { name: url, kind: FileKind::Object(Arc::new(Mutex::new(writer))) }
    }

    /// An object that deletes itself once complete if `claim` no longer
    /// holds `token` (its job was killed or ended while it was written).
    pub(crate) fn guarded_object(
        store: Arc<dyn ObjectStore>,
        path: ObjectPath,
        url: String,
        claim: ObjectPath,
        token: Bytes,
    ) -> OutputFile {
        let writer = ObjectWriter::new(store, path, url.clone()).guarded_by(claim, token);
        OutputFile { name: url, kind: FileKind::Object(Arc::new(Mutex::new(writer))) }
    }

    /// The file's location (a path, or an `s3://` URL), for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The writer to hand to the output format, and what completes the file
    /// after the format has flushed it.
    pub fn into_parts(self) -> (Box<dyn Write + Send>, FileEnd) {
        match self.kind {
            FileKind::Local(file) => (Box::new(file), FileEnd { object: None }),
            FileKind::Object(object) => {
                let shared = SharedWriter(Arc::clone(&object));
                (Box::new(BufWriter::with_capacity(1 << 16, shared)), FileEnd { object: Some(object) })
            }
        }
    }
}

impl FileEnd {
    /// Makes the file whole: completes an object's upload (or sends a small
    /// object in one `PUT`). Call after the writer was flushed and dropped.
    pub fn finish(self) -> io::Result<()> {
        match self.object {
            None => Ok(()),
            Some(object) => lock(&object).complete(),
        }
    }
}

fn lock(writer: &Mutex<ObjectWriter>) -> MutexGuard<'_, ObjectWriter> {
    writer.lock().unwrap_or_else(|p| p.into_inner())
}

/// The [`Write`] half of an object's [`OutputFile`].
struct SharedWriter(Arc<Mutex<ObjectWriter>>);

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        lock(&self.0).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where an [`ObjectWriter`] is.
#[derive(Debug)]
enum State {
    Open,
    Complete,
    Failed(String),
}

/// One object written as a multipart upload (see the module's docs).
pub(crate) struct ObjectWriter {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    url: String,
    /// The output's claim and its body when the file was created: once
    /// complete, an object whose job no longer holds the claim (killed or
    /// ended meanwhile) deletes itself.
    guard: Option<(ObjectPath, Bytes)>,
    buffer: Vec<u8>,
    upload: Option<WriteMultipart>,
    written: u64,
    state: State,
    part_size: usize,
}

impl ObjectWriter {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, path: ObjectPath, url: String) -> ObjectWriter {
        ObjectWriter::with_part_size(store, path, url, PART_SIZE)
    }

    pub(crate) fn with_part_size(
        store: Arc<dyn ObjectStore>,
        path: ObjectPath,
        url: String,
        part_size: usize,
    ) -> ObjectWriter {
        ObjectWriter {
            store,
            path,
            url,
            guard: None,
            buffer: Vec::new(),
            upload: None,
            written: 0,
            state: State::Open,
            part_size,
        }
    }

    /// Makes the completed object delete itself unless `claim` still holds
    /// `token` (see [`ObjectWriter::complete`]).
    pub(crate) fn guarded_by(mut self, claim: ObjectPath, token: Bytes) -> ObjectWriter {
        self.guard = Some((claim, token));
        self
    }

    /// After the object is complete: whether its job still holds the claim.
    /// If not (the job was killed or ended while this attempt wrote, and its
    /// output may have been swept already, or even claimed by a new job),
    /// the object is deleted, so that nothing of a dead job's attempt stays.
    fn check_guard(&mut self) -> io::Result<()> {
        let Some((claim, token)) = self.guard.clone() else { return Ok(()) };
        let (store, path) = (Arc::clone(&self.store), self.path.clone());
        let held = block_on(async move {
            let body = crate::retry::retrying("reading the claim", || async { store.get(&claim).await?.bytes().await });
            let held = match body.await {
                Ok(body) => Ok(body == token),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(e),
            };
            if let Ok(false) = held {
                match crate::retry::retrying("deleting", || store.delete(&path)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            held
        });
        match held {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => {
                let gone = format!("{}: the job's output area is gone (the job was killed or ended)", self.url);
                self.state = State::Failed(gone.clone());
                Err(io::Error::new(io::ErrorKind::NotFound, gone))
            }
            Ok(Err(e)) => Err(self.error("checking the output's claim after writing", e)),
            Err(e) => Err(self.error("checking the output's claim after writing", e)),
        }
    }

    fn error(&mut self, what: &str, e: impl std::fmt::Display) -> io::Error {
        let message = format!("{what} {}: {e}", self.url);
        self.state = State::Failed(message.clone());
        io::Error::other(message)
    }

    fn check_open(&self) -> io::Result<()> {
        match &self.state {
            State::Open => Ok(()),
            State::Complete => Err(io::Error::other(format!("{}: written to after it was completed", self.url))),
            State::Failed(message) => Err(io::Error::other(message.clone())),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check_open()?;
        let n = buf.len().min(self.part_size - self.buffer.len());
        self.buffer.extend_from_slice(&buf[..n]);
        self.written += n as u64;
        if self.buffer.len() == self.part_size {
            self.send_part()?;
        }
        Ok(n)
    }

    /// Hands the full buffer to the upload (started now if need be), after
    /// waiting until fewer than [`PARTS_IN_FLIGHT`] parts are in flight.
    fn send_part(&mut self) -> io::Result<()> {
        let part = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(self.part_size)));
        let upload = match self.upload.take() {
            Some(upload) => upload,
            None => {
                let (store, path) = (Arc::clone(&self.store), self.path.clone());
                match block_on(async move { store.put_multipart(&path).await }) {
                    Ok(Ok(upload)) => WriteMultipart::new_with_chunk_size(upload, self.part_size),
                    Ok(Err(e)) => return Err(self.error("starting the upload of", e)),
                    Err(e) => return Err(self.error("starting the upload of", e)),
                }
            }
        };
        let sent = block_on(async move {
            let mut upload = upload;
            match upload.wait_for_capacity(PARTS_IN_FLIGHT).await {
                Ok(()) => {
                    // Spawns the part's request on this (the storage) runtime.
                    upload.put(part);
                    Ok(upload)
                }
                Err(e) => {
                    let _ = upload.abort().await;
                    Err(e)
                }
            }
        });
        match sent {
            Ok(Ok(upload)) => {
                self.upload = Some(upload);
                Ok(())
            }
            Ok(Err(e)) => Err(self.error("uploading a part of", e)),
            Err(e) => Err(self.error("uploading a part of", e)),
        }
    }

    /// Completes the object: the last part and the upload's completion, or
    /// one `PUT` when no part was sent. If the answer is an error but the
    /// object is there with every byte written, the completion went through
    /// and only its answer was lost (the key is this attempt's alone, so no
    /// one else wrote it).
    fn complete(&mut self) -> io::Result<()> {
        self.check_open()?;
        let last = Bytes::from(std::mem::take(&mut self.buffer));
        let (store, path) = (Arc::clone(&self.store), self.path.clone());
        let result = match self.upload.take() {
            None => block_on(async move { store.put(&path, last.into()).await.map(drop) }),
            Some(mut upload) => block_on(async move {
                if !last.is_empty() {
                    upload.put(last);
                }
                upload.finish().await.map(drop)
            }),
        };
        let result = match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                let (store, path) = (Arc::clone(&self.store), self.path.clone());
                let there = block_on(async move { store.head(&path).await });
                match there {
                    Ok(Ok(meta)) if meta.size == self.written => {
                        tracing::debug!(url = %self.url, "the upload completed though its answer was lost: {e}");
                        Ok(())
                    }
                    _ => Err(self.error("completing", e)),
                }
            }
            Err(e) => Err(self.error("completing", e)),
        };
        if result.is_ok() {
            self.state = State::Complete;
            self.check_guard()?;
        }
        result
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            // Never completed: abort, so that its parts are freed and no
            // object appears. Best effort (a crash leaves it to the bucket's
            // lifecycle rule for incomplete uploads).
            let _ = block_on(async move { upload.abort().await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn get(store: &Arc<dyn ObjectStore>, key: &str) -> Option<Vec<u8>> {
        let (store, path) = (Arc::clone(store), ObjectPath::from(key));
        block_on(async move {
            match store.get(&path).await {
                Ok(r) => Some(r.bytes().await.expect("body").to_vec()),
                Err(_) => None,
            }
        })
        .expect("runtime")
    }

    fn writer(store: &Arc<dyn ObjectStore>, key: &str, part: usize) -> ObjectWriter {
        ObjectWriter::with_part_size(Arc::clone(store), ObjectPath::from(key), format!("mem://{key}"), part)
    }

    #[test]
    fn small_and_multipart_objects_appear_only_when_completed_with_every_byte() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let mut small = writer(&store, "small", 1 << 10);
        small.write(b"hello").expect("write");
        assert_eq!(get(&store, "small"), None);
        small.complete().expect("complete");
        assert_eq!(get(&store, "small").as_deref(), Some(&b"hello"[..]));

        // Many parts of 1 KiB (InMemory has no minimum part size).
        let data: Vec<u8> = (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut big = writer(&store, "big", 1 << 10);
        let mut rest = &data[..];
        while !rest.is_empty() {
            let n = big.write(&rest[..rest.len().min(777)]).expect("write");
            rest = &rest[n..];
        }
        assert_eq!(get(&store, "big"), None, "not visible before completion");
        big.complete().expect("complete");
        assert_eq!(get(&store, "big"), Some(data));
        assert!(big.write(b"more").is_err(), "a completed object takes no more bytes");
    }

    #[test]
    fn a_writer_dropped_unfinished_leaves_no_object() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let file = OutputFile::object(Arc::clone(&store), ObjectPath::from("k"), "mem://k".into());
        let (mut w, end) = file.into_parts();
        w.write_all(&vec![7u8; 3 * PART_SIZE / 2]).expect("write");
        w.flush().expect("flush");
        drop(w);
        drop(end);
        assert_eq!(get(&store, "k"), None);
    }
}
