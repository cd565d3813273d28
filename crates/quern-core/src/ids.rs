//! The ids a cluster gives jobs and workers, as their own types so that a
//! job id is never taken for a count or a worker id for a host name.

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A job's id in a cluster: given by the coordinator's store, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A worker's id: chosen by the worker (`--id`, or host, process id and
/// start time) and kept across its restarts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkerId(String);

impl WorkerId {
    /// A worker id.
    pub fn new(id: impl Into<String>) -> WorkerId {
        WorkerId(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// A worker id reads as its text wherever text is wanted (lookups, messages).
impl std::ops::Deref for WorkerId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

// Maps keyed by worker id can be searched with a `&str`: the id orders and
// hashes as its text.
impl Borrow<str> for WorkerId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for WorkerId {
    fn from(id: &str) -> WorkerId {
        WorkerId(id.to_owned())
    }
}

impl From<String> for WorkerId {
    fn from(id: String) -> WorkerId {
        WorkerId(id)
    }
}

impl PartialEq<str> for WorkerId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for WorkerId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}
