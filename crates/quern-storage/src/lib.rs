//! Where jobs read and write.
//!
//! # Overview
//! - [`resolve_inputs`] and [`plan_splits`]: input paths, directories and
//!   globs to files, and files to [`quern_core::InputSplit`]s; [`open_split`]
//!   opens one for reading (decompressing `.gz` and `.zst`).
//! - [`OutputCommitter`]: the output commit protocol (attempt directories,
//!   task commit by rename, `_SUCCESS` last).
//!
//! # Invariants
//! - Everything a job touches outside its scratch space goes through this
//!   crate, so another storage (object stores) is a change here only.
//! - Checks that can refuse a job (missing input, existing output) run
//!   before anything is created.

mod commit;
mod error;
mod input;

pub use commit::{OutputCommitter, SUCCESS_MARKER};
pub use error::StorageError;
pub use input::{OpenSplit, open_split, plan_splits, resolve_inputs};
