//! What the `quern` binary's black-box tests share.

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
