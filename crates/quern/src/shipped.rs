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

/// The files a job ships so far, each under a name of its own.
#[derive(Debug, Default)]
pub(crate) struct Shipment {
    pub(crate) files: Vec<LocalCode>,
}

impl Shipment {
    /// Adds the file `flag` names at `given`; returns its name in an
    /// attempt's directory. The same file twice is shipped once; two files
    /// of one name are refused.
    pub(crate) fn ship(&mut self, flag: &str, given: &str) -> anyhow::Result<String> {
        let file = local_code(flag, given)?;
        let name = file.name.clone();
        match self.files.iter().find(|f| f.name == name) {
            Some(same) if same.path == file.path => {}
            Some(other) => anyhow::bail!(
                "{flag} {given} and {} would both be {name:?} in the attempt's directory",
                other.path.display()
            ),
            None => self.files.push(file),
        }
        Ok(name)
    }

    /// A streaming command as the job runs it: a `.wasm` program is
    /// shipped and named by its base name; another command is as written.
    /// Returns the command and whether it runs a module.
    pub(crate) fn command(&mut self, flag: &str, text: &str) -> anyhow::Result<(String, bool)> {
        let parsed = quern_streaming::CommandLine::parse(text).with_context(|| flag.to_owned())?;
        if !quern_streaming::is_wasm(&parsed) {
            return Ok((text.to_owned(), false));
        }
        let name = self.ship(flag, parsed.program())?;
        Ok((parsed.with_program(&name).as_str().to_owned(), true))
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

/// Reads a job file (`--job FILE`): a `ChainSpec` in JSON whose steps may
/// also name local `files` to ship, and whose streaming commands may run
/// `.wasm` programs given by path. Both become the step's code files; the
/// files of every step are returned once each.
pub(crate) fn read_job_file(path: &Path) -> anyhow::Result<(quern_core::ChainSpec, Vec<LocalCode>)> {
    let text = fs::read_to_string(path).with_context(|| format!("--job {}", path.display()))?;
    let refused = |e: String| crate::cli::Refused(format!("--job {}: {e}", path.display()));
    let mut value: serde_json::Value = serde_json::from_str(&text).map_err(|e| refused(e.to_string()))?;
    // `files` is the CLI's, not the spec's: taken out before the spec is read.
    let mut files = Vec::new();
    if let Some(steps) = value.get_mut("steps").and_then(serde_json::Value::as_array_mut) {
        files = steps.iter_mut().map(|s| s.as_object_mut().and_then(|o| o.remove("files"))).collect();
    }
    let mut chain: quern_core::ChainSpec = serde_json::from_value(value).map_err(|e| refused(e.to_string()))?;
    let mut all: Vec<LocalCode> = Vec::new();
    for (i, step) in chain.steps.iter_mut().enumerate() {
        let mut shipment = Shipment::default();
        if let Some(Some(given)) = files.get(i) {
            let given: Vec<String> =
                serde_json::from_value(given.clone()).map_err(|e| refused(format!("step {}: files: {e}", i + 1)))?;
            for file in given {
                shipment.ship(&format!("step {} file", i + 1), &file)?;
            }
        }
        for param in [quern_streaming::MAPPER, quern_streaming::COMBINER, quern_streaming::REDUCER] {
            if let Some(command) = step.params.get(param).cloned() {
                let (command, _) = shipment.command(&format!("step {} {param}", i + 1), &command)?;
                step.params.insert(param.to_owned(), command);
            }
        }
        step.code.extend(shipment.files.iter().map(|f| (f.name.clone(), f.hash)));
        all.extend(shipment.files);
    }
    all.sort_by_key(|f| f.hash);
    all.dedup_by_key(|f| f.hash);
    Ok((chain, all))
}
