//! Where jobs read and write.
//!
//! # Overview
//! - [`Location`]: where data is, parsed from what a user typed: a local path
//!   or `file:///abs/path`, or `s3://bucket/prefix`; anything else is refused,
//!   naming it.
//! - [`Storage`]: the one interface to every location.
//!   [`Storage::resolve_inputs`] turns input paths, directories, globs and
//!   S3 objects, prefixes and key globs into files;
//!   [`Storage::open_split`] opens one split for reading (S3 objects in
//!   bounded ranged GETs; `.gz` and `.zst` decompressed as they stream).
//! - [`S3Options`]: credentials, region and endpoint for S3, from the
//!   standard `AWS_*` variables ([`S3Options::from_env_vars`]); requests are
//!   retried with backoff ([`S3_RETRY`]).
//! - [`plan_splits`]: files to [`quern_core::InputSplit`]s, the same for
//!   every location.
//! - [`Storage::setup_output`] and [`OutputCommitter`]: the output commit
//!   protocol, one API for a local directory (attempt directories, task
//!   commit by rename, `_SUCCESS` last) and an S3 prefix (a conditional
//!   claim, attempt-private keys written as streamed multipart uploads
//!   ([`OutputFile`]), task commits recorded as markers, a job commit by
//!   server-side copy, `_SUCCESS` last; see `store_commit`'s docs and
//!   ARCHITECTURE.md for why it is safe).
//! - [`Storage::upload_file`], [`Storage::read_range`] and
//!   [`Storage::delete_prefix`]: data a job keeps between its phases (map
//!   outputs shuffled through object storage, `--shuffle`): a local file
//!   uploaded as a streamed multipart upload, read back in bounded ranged
//!   GETs, and deleted with its job's prefix.
//!
//! # Invariants
//! - Everything a job touches outside its scratch space goes through this
//!   crate, so another storage is a change here only. A plan names its
//!   inputs by location string ([`quern_core::InputFile::location`]), which
//!   only this crate interprets.
//! - A split's lines are the same wherever its file is: every location is
//!   opened as a reader from the split's start, and
//!   [`quern_core::SplitInput`] applies the line rule.
//! - Checks that can refuse a job (unparsable location, missing input,
//!   missing S3 credentials, existing output) run before anything is created.
//! - No output file is ever held whole in memory: objects are streamed as
//!   multipart uploads of bounded parts.
//! - The engine is synchronous: S3's async client runs on one small tokio
//!   runtime owned by this crate, built when first used; callers just block.
//!   This crate reads no environment variables: callers pass [`S3Options`].

mod commit;
mod error;
mod input;
mod location;
mod output;
mod retry;
mod runtime;
mod s3;
mod storage;
mod store_commit;
mod transfer;

pub use commit::{OutputCommitter, SUCCESS_MARKER};
pub use error::StorageError;
pub use input::{OpenSplit, plan_splits};
pub use location::Location;
pub use output::{FileEnd, OutputFile};
pub use s3::{DEFAULT_REGION as S3_DEFAULT_REGION, RETRY as S3_RETRY, S3Options};
pub use storage::Storage;
