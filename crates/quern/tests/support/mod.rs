//! What the `quern` binary's black-box tests share.

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// The `quern` binary, without the caller's log filter.
pub fn quern() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quern"));
    cmd.env_remove("RUST_LOG");
    cmd
}

/// The eight Gutenberg books of `../shared/data/gutenberg`.
#[allow(dead_code)] // Not every test file reads them.
pub fn gutenberg() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/gutenberg");
    assert!(dir.is_dir(), "the Gutenberg books are expected at {} (../shared beside the clone)", dir.display());
    dir
}

/// Part files, by name, with their bytes.
#[allow(dead_code)] // Not every test file reads outputs.
pub type Parts = Vec<(String, Vec<u8>)>;

/// The part files of `out`, sorted by name; `out` must have its `_SUCCESS`.
#[allow(dead_code)] // Not every test file reads outputs.
pub fn parts(out: &Path) -> Parts {
    assert!(out.join("_SUCCESS").exists(), "{} has no _SUCCESS", out.display());
    let mut parts: Parts = fs::read_dir(out)
        .expect("read output")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("part-")))
        .map(|p| (p.file_name().expect("name").to_string_lossy().into_owned(), fs::read(&p).expect("read part")))
        .collect();
    parts.sort();
    parts
}
