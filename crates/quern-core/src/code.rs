//! Code a job ships (streaming programs and their support files,
//! WebAssembly modules), named by the SHA-256 of its bytes: a job records
//! exactly what it ran, a coordinator stores each file once however many
//! jobs ship it, and a worker that fetched it once keeps it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The SHA-256 of a code file's bytes; shown and parsed as 64 lowercase hex
/// digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CodeHash([u8; 32]);

/// Text that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0:?} is not a SHA-256 (64 hex digits)")]
pub struct BadCodeHash(pub String);

impl CodeHash {
    /// The hash of `bytes`.
    ///
    /// ```
    /// let h = quern_core::CodeHash::of(b"abc");
    /// assert_eq!(h.to_string(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    /// ```
    pub fn of(bytes: &[u8]) -> CodeHash {
        CodeHash(Sha256::digest(bytes).into())
    }
}

/// Hashes a file as it is read or written, chunk by chunk.
#[derive(Debug, Clone, Default)]
pub struct CodeHasher(Sha256);

impl CodeHasher {
    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The hash of everything added.
    pub fn finish(self) -> CodeHash {
        CodeHash(self.0.finalize().into())
    }
}

impl fmt::Display for CodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for CodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{self}")
    }
}

impl FromStr for CodeHash {
    type Err = BadCodeHash;

    fn from_str(s: &str) -> Result<CodeHash, BadCodeHash> {
        let bad = || BadCodeHash(s.to_owned());
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(bad());
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(CodeHash(bytes))
    }
}

impl Serialize for CodeHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CodeHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<CodeHash, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether `name` may name a shipped file in an attempt's directory: a
/// plain file name (no `/`, not `.` or `..`, not empty, no NUL).
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_reads_back_from_its_text_and_json() {
        let h = CodeHash::of(b"module bytes");
        assert_eq!(h.to_string().parse::<CodeHash>(), Ok(h));
        let json = serde_json::to_string(&h).expect("serialises");
        assert_eq!(json, format!("\"{h}\""));
        assert_eq!(serde_json::from_str::<CodeHash>(&json).expect("parses"), h);
        let mut hasher = CodeHasher::default();
        hasher.update(b"module ");
        hasher.update(b"bytes");
        assert_eq!(hasher.finish(), h);
    }

    #[test]
    fn text_that_is_not_64_lowercase_hex_digits_is_refused() {
        for bad in ["", "abc", &"g".repeat(64), &"A".repeat(64), &"0".repeat(63)] {
            assert!(bad.parse::<CodeHash>().is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<CodeHash>("\"xyz\"").is_err());
    }

    #[test]
    fn shipped_names_are_plain_file_names() {
        assert!(is_plain_file_name("wc.wasm"));
        for bad in ["", ".", "..", "a/b", "/etc/passwd"] {
            assert!(!is_plain_file_name(bad), "{bad:?}");
        }
    }
}
