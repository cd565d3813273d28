//! Partitioners: which of an output's reducers gets a key.
//!
//! The default is a hash: FNV-1a (32-bit) of the key bytes, masked to 31
//! bits, modulo the number of partitions. It is fixed and documented so output
//! placement is predictable across processes, machines and versions: key `k`
//! of a job with `R` reducers always lands in `part-r-{partition(k, R)}`.
//! The other is total order ([`Partitioner::TotalOrder`], see
//! [`crate::CutPoints`]): ranges of keys, so the part files concatenated in
//! order are sorted.

use serde::{Deserialize, Serialize};

/// How a job splits each output's keys among its reducers
/// ([`crate::JobSpec::partitioner`], `--partitioner`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partitioner {
    /// [`crate::App::partition`]: by default the FNV-1a hash of the key
    /// ([`partition`]). Each part file is sorted; their concatenation is
    /// not.
    #[default]
    Hash,
    /// Ranges of keys, from cut points chosen when the job is planned from a
    /// sample of the input's keys: `part-r-00000`, `part-r-00001`, …
    /// concatenated in order are sorted.
    TotalOrder,
}

impl Partitioner {
    /// Its name on the command line: `hash` or `total-order`.
    pub fn name(self) -> &'static str {
        match self {
            Partitioner::Hash => "hash",
            Partitioner::TotalOrder => "total-order",
        }
    }
}

impl std::fmt::Display for Partitioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How an app wants its keys partitioned ([`crate::App::partitioner`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppPartitioner {
    /// The job's choice (`--partitioner`), or this one when the job makes
    /// none.
    Preferred(Partitioner),
    /// The app's own [`crate::App::partition`], whatever the job asks: a job
    /// that asks for total order is refused. For an app whose partitioning
    /// is part of its meaning (all keys of a group on one reducer).
    Own,
}

impl Default for AppPartitioner {
    fn default() -> Self {
        AppPartitioner::Preferred(Partitioner::Hash)
    }
}

/// FNV-1a, 32-bit, of `bytes` (offset basis 2166136261, prime 16777619).
///
/// ```
/// assert_eq!(quern_core::fnv1a_32(b""), 0x811c9dc5);
/// assert_eq!(quern_core::fnv1a_32(b"a"), 0xe40c292c);
/// ```
pub fn fnv1a_32(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The partition of `key` among `partitions` (which must be at least 1):
/// `(fnv1a_32(key) & 0x7fff_ffff) % partitions`.
///
/// ```
/// assert_eq!(quern_core::partition(b"whale", 1), 0);
/// assert!(quern_core::partition(b"whale", 7) < 7);
/// ```
pub fn partition(key: &[u8], partitions: u32) -> u32 {
    debug_assert!(partitions > 0, "invariant: at least one partition");
    (fnv1a_32(key) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // Published FNV-1a 32-bit test vectors.
        assert_eq!(fnv1a_32(b"foobar"), 0xbf9c_f968);
        assert_eq!(fnv1a_32(b"b"), 0xe70c_2de5);
    }

    proptest::proptest! {
        #[test]
        fn partition_is_in_range(key: Vec<u8>, n in 1u32..1000) {
            proptest::prop_assert!(partition(&key, n) < n);
        }
    }
}
