//! The default partitioner: FNV-1a (32-bit) of the key bytes, masked to 31
//! bits, modulo the number of partitions.
//!
//! It is fixed and documented so output placement is predictable across
//! processes, machines and versions: key `k` of a job with `R` reducers always
//! lands in `part-r-{partition(k, R)}`.

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
