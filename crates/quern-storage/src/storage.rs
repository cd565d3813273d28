//! [`Storage`]: the one door through which jobs find and read their inputs,
//! wherever they are.

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use quern_core::{InputFile, InputSplit};

use crate::commit::OutputCommitter;
use crate::error::StorageError;
use crate::input::{self, OpenSplit};
use crate::location::Location;
use crate::s3::{S3Options, S3Stores};
use crate::store_commit::StoreCommitter;
use crate::transfer;

/// Access to every kind of [`Location`](crate::Location): the local file
/// system, and S3 as [`S3Options`] configure it. Cheap to clone (clones share
/// their S3 clients, one per bucket, built when first used).
///
/// `Storage::default()` has no S3 credentials: local inputs work, and an
/// `s3://` input is refused, saying which variables to set.
#[derive(Debug, Clone, Default)]
pub struct Storage {
    s3: Arc<S3Stores>,
}

impl Storage {
    /// Storage reaching S3 with `s3`.
    pub fn new(s3: S3Options) -> Storage {
        Storage { s3: Arc::new(S3Stores::new(s3)) }
    }

    /// How S3 is reached.
    pub fn s3_options(&self) -> &S3Options {
        self.s3.options()
    }

    /// Resolves a job's inputs (paths, directories, globs, `file://` and
    /// `s3://` URLs) to files, in order: each input in the order given, a
    /// directory's (or prefix's) files sorted, duplicates dropped. Fails on
    /// the first input that is unparsable, missing, unreadable or matches
    /// nothing, naming it.
    pub fn resolve_inputs(&self, inputs: &[String]) -> Result<Vec<InputFile>, StorageError> {
        input::resolve_inputs(&self.s3, inputs)
    }

    /// Opens `split` for reading, positioned at its start (see
    /// [`OpenSplit`]); counts the line breaks before it when `count_lines`
    /// is set. An S3 object is read in ranged GETs of at most 8 MiB, never
    /// whole; a `.gz` or `.zst` file is decompressed as it streams.
    ///
    /// A compressed file whose bytes cannot be decompressed (corrupt or
    /// truncated) gives errors of kind [`io::ErrorKind::InvalidData`], which
    /// [`quern_core::InputError::retryable`] treats as permanent: another
    /// attempt would read the same bytes. Errors reading the file itself keep
    /// their kind.
    pub fn open_split(&self, split: &InputSplit, count_lines: bool) -> io::Result<OpenSplit> {
        input::open_split(&self.s3, split, count_lines)
    }

    /// Sets up a new job's output: a local directory (created; refused if
    /// it exists) or an `s3://bucket/prefix` (refused if any object is under
    /// the prefix; then claimed with a conditional `PUT` of
    /// `PREFIX/_temporary/_claim`, so that of two jobs given the same prefix
    /// exactly one proceeds and the other is refused,
    /// [`StorageError::OutputClaimed`]).
    pub fn setup_output(&self, output: &str) -> Result<OutputCommitter, StorageError> {
        match Location::parse(output)? {
            Location::Local(path) => OutputCommitter::setup(&path),
            Location::S3 { bucket, key } => {
                let url = Location::S3 { bucket: bucket.clone(), key: key.clone() }.to_string();
                let store = self.s3.store(&bucket, &url).map_err(as_output_error)?;
                StoreCommitter::setup(store, &url, &key).map(OutputCommitter::from_store)
            }
        }
    }

    /// The committer of an output that [`Storage::setup_output`] set up
    /// already (in another process, or before a restart).
    pub fn open_output(&self, output: &str) -> Result<OutputCommitter, StorageError> {
        match Location::parse(output)? {
            Location::Local(path) => Ok(OutputCommitter::open(&path)),
            Location::S3 { bucket, key } => {
                let url = Location::S3 { bucket: bucket.clone(), key: key.clone() }.to_string();
                let store = self.s3.store(&bucket, &url).map_err(as_output_error)?;
                StoreCommitter::open(store, &url, &key).map(OutputCommitter::from_store)
            }
        }
    }
}

impl Storage {
    /// Uploads the local file `local` to `location` (an `s3://` object, or
    /// a path or `file://` URL on a file system the job's processes share);
    /// returns its size. An object is streamed as a multipart upload of
    /// 8 MiB parts (never held whole in memory), retried from the start if
    /// it fails after `object_store`'s own retries (the key should be the
    /// caller's alone); a local copy appears under its name whole or not at
    /// all.
    pub fn upload_file(&self, local: &Path, location: &str) -> Result<u64, StorageError> {
        transfer::upload_file(&self.s3, local, location)
    }

    /// `len` bytes of the object or file at `location` from byte `offset`,
    /// as a reader. An object is read in ranged GETs of at most 8 MiB (the
    /// first one now, so that a missing object is found here), each retried.
    ///
    /// A missing object or file is [`StorageError::Missing`]; one deleted
    /// while it is read gives an error of kind [`io::ErrorKind::NotFound`].
    /// A file shorter than the range ends early (the caller knows the length
    /// it expects).
    pub fn read_range(&self, location: &str, offset: u64, len: u64) -> Result<Box<dyn Read + Send>, StorageError> {
        transfer::read_range(&self.s3, location, offset, len)
    }

    /// The size of the object or file at `location`, or `None` when there
    /// is none (a HEAD, or the file's metadata).
    pub fn size_of(&self, location: &str) -> Result<Option<u64>, StorageError> {
        transfer::size_of(&self.s3, location)
    }

    /// Deletes everything under `location`: every object under an `s3://`
    /// prefix (never a whole bucket: refused), or a local directory with
    /// its contents. Nothing there is no error.
    pub fn delete_prefix(&self, location: &str) -> Result<(), StorageError> {
        transfer::delete_prefix(&self.s3, location)
    }
}

/// A client that cannot be built for an output is the output's refusal.
fn as_output_error(e: StorageError) -> StorageError {
    match e {
        StorageError::S3Config { url, message } => StorageError::OutputRefused { url, message },
        e => e,
    }
}
