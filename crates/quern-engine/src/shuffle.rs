//! Map outputs shuffled through storage (`--shuffle`): a map attempt
//! uploads its run file under its job's shuffle prefix
//! ([`quern_core::JobPlan::shuffle`]) and names that URL in its index; a
//! reduce fetches its partition's segment of it into a local file with
//! [`fetch_segment`] before merging, as it would fetch one from another
//! worker. The embedded runner and a cluster worker share this code.
//!
//! Keys: `PREFIX/m-00003-a1.run` (map 3, attempt 1), one per attempt, so a
//! map that runs again never overwrites what a reduce may be reading; the
//! whole prefix is deleted when the job ends.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use quern_core::{AttemptId, Segment};
use quern_storage::{Location, Storage, StorageError};

/// Bytes copied per read while fetching (the store reads in ranged GETs of
/// at most 8 MiB underneath).
const COPY_BUFFER: usize = 1 << 16;

/// Whether a run file's path (a map output's [`crate::run::RunIndex::path`])
/// names an uploaded map output (a URL: `s3://…`, `file://…`) rather than a
/// file on the machine that wrote it.
pub fn is_shuffled(path: &Path) -> bool {
    path.to_str().is_some_and(Location::is_url)
}

/// Where `attempt` of a map uploads its output under the job's shuffle
/// `prefix`.
pub fn map_output_url(prefix: &str, attempt: AttemptId) -> String {
    format!("{prefix}/{}-a{}.run", attempt.task, attempt.attempt)
}

/// Why a segment could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The map output is gone (deleted, never completed) or not what its
    /// index says (shorter): the map must run again. Reported like a failed
    /// fetch from a worker.
    #[error("{0}")]
    Lost(String),
    /// Reading it failed otherwise (the store unreachable after its
    /// retries, the local disk): another attempt of the reduce may succeed.
    #[error("{0}")]
    Failed(String),
}

/// Fetches `segment` of the uploaded map output at `location` into the
/// local file `dest` (created or truncated), streaming: at most one ranged
/// GET's bytes are held in memory. The file then holds the segment alone,
/// from offset 0.
pub fn fetch_segment(storage: &Storage, location: &str, segment: Segment, dest: &Path) -> Result<(), FetchError> {
    let mut reader = storage.read_range(location, segment.offset, segment.len).map_err(|e| match e {
        e @ StorageError::Missing { .. } => FetchError::Lost(e.to_string()),
        e => FetchError::Failed(e.to_string()),
    })?;
    let local = |e: io::Error| FetchError::Failed(format!("writing {}: {e}", dest.display()));
    let mut out = BufWriter::with_capacity(COPY_BUFFER, File::create(dest).map_err(local)?);
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut got = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let message = format!("reading {location}: {e}");
                return Err(match e.kind() {
                    io::ErrorKind::NotFound | io::ErrorKind::UnexpectedEof => FetchError::Lost(message),
                    _ => FetchError::Failed(message),
                });
            }
        };
        out.write_all(&buf[..n]).map_err(local)?;
        got += n as u64;
    }
    out.flush().map_err(local)?;
    if got != segment.len {
        return Err(FetchError::Lost(format!(
            "{location}: the segment at byte {} should have {} bytes, found {got}",
            segment.offset, segment.len
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quern_core::{TaskId, TaskKind};

    fn segment(offset: u64, len: u64) -> Segment {
        Segment { offset, len, records: 1, raw_len: len }
    }

    #[test]
    fn a_segment_is_fetched_and_a_missing_or_short_object_is_a_lost_map_output() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::default();
        let prefix = Location::Local(dir.path().join("shuffle")).to_url().expect("url");
        let attempt = AttemptId { task: TaskId { kind: TaskKind::Map, index: 3 }, attempt: 2 };
        let url = map_output_url(&prefix, attempt);
        assert!(url.ends_with("/shuffle/m-00003-a2.run"), "{url}");
        assert!(is_shuffled(Path::new(&url)));
        assert!(!is_shuffled(&dir.path().join("map.out")));

        let local = dir.path().join("map.out");
        std::fs::write(&local, b"0123456789").expect("write");
        storage.upload_file(&local, &url).expect("upload");
        let dest = dir.path().join("fetched.run");
        fetch_segment(&storage, &url, segment(3, 4), &dest).expect("fetch");
        assert_eq!(std::fs::read(&dest).expect("read"), b"3456");

        match fetch_segment(&storage, &url, segment(8, 4), &dest) {
            Err(FetchError::Lost(message)) => assert!(message.contains(&url), "{message}"),
            other => panic!("a short object is a lost map output: {other:?}"),
        }
        storage.delete_prefix(&prefix).expect("delete");
        match fetch_segment(&storage, &url, segment(3, 4), &dest) {
            Err(FetchError::Lost(message)) => assert!(message.contains(&url), "{message}"),
            other => panic!("a missing object is a lost map output: {other:?}"),
        }
        // A destination that cannot be written is the reduce's own failure.
        storage.upload_file(&local, &url).expect("upload");
        match fetch_segment(&storage, &url, segment(3, 4), &dir.path().join("no/such/dir/x")) {
            Err(FetchError::Failed(message)) => assert!(message.contains("no/such/dir"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}
