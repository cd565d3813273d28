//! The code files a job ships (`--file`, and `.wasm` programs): hashed
//! here, named by that hash in the spec (`JobSpec::code`), then copied
//! into the embedded run's directory of code files, or uploaded to the
//! coordinator, which stores them by hash.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use quern_core::{CodeHash, CodeHasher};

/// A file a job ships, on this machine.
#[derive(Debug, Clone)]
pub(crate) struct LocalCode {
    /// Its name in an attempt's directory.
    pub(crate) name: String,
    /// Where it is here.
    pub(crate) path: PathBuf,
    /// The SHA-256 of its bytes, when the spec was made.
    pub(crate) hash: CodeHash,
}

/// Bytes read at once while hashing, and sent in one chunk.
const CHUNK: usize = 1 << 20;

/// The hash of the file at `path`, read in chunks.
pub(crate) fn hash_file(path: &Path) -> io::Result<CodeHash> {
    let mut file = File::open(path)?;
    let mut hasher = CodeHasher::default();
    let mut buf = vec![0u8; CHUNK];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(hasher.finish()),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The file `flag` names at `given`, made absolute, with its name and hash.
pub(crate) fn local_code(flag: &str, given: &str) -> anyhow::Result<LocalCode> {
    let path = fs::canonicalize(given).with_context(|| format!("{flag} {given}"))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let hash = hash_file(&path).with_context(|| format!("{flag} {given}: reading {}", path.display()))?;
    Ok(LocalCode { name, path, hash })
}

/// Copies each file into `dir/<sha256>`, executable, checking that it
/// still has the hash the spec records.
pub(crate) fn put_in_dir(files: &[LocalCode], dir: &Path) -> anyhow::Result<()> {
    for file in files {
        let held = dir.join(file.hash.to_string());
        fs::copy(&file.path, &held)
            .with_context(|| format!("copying {} into {}", file.path.display(), dir.display()))?;
        let now = hash_file(&held).with_context(|| format!("reading {}", held.display()))?;
        if now != file.hash {
            anyhow::bail!("{} changed while the job was being prepared; run it again", file.path.display());
        }
        fs::set_permissions(&held, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", held.display()))?;
    }
    Ok(())
}

/// The file's bytes in chunks for an upload, the first naming its hash;
/// an error if it no longer has that hash.
pub(crate) fn upload_chunks(file: &LocalCode) -> anyhow::Result<Vec<quern_proto::CodeChunk>> {
    let bytes = fs::read(&file.path).with_context(|| format!("reading {}", file.path.display()))?;
    if CodeHash::of(&bytes) != file.hash {
        anyhow::bail!("{} changed while the job was being prepared; submit it again", file.path.display());
    }
    let mut chunks: Vec<quern_proto::CodeChunk> =
        bytes.chunks(CHUNK).map(|c| quern_proto::CodeChunk { sha256: String::new(), data: c.to_vec() }).collect();
    match chunks.first_mut() {
        Some(first) => first.sha256 = file.hash.to_string(),
        None => chunks.push(quern_proto::CodeChunk { sha256: file.hash.to_string(), data: Vec::new() }),
    }
    Ok(chunks)
}
