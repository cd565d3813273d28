//! A job's shipped code files ([`quern_core::JobSpec::code`]), put into
//! each attempt's working directory from a directory that holds them by
//! hash: the embedded runner's (filled by `quern run`) or a worker's cache
//! (filled from the coordinator).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use quern_core::CodeHash;

use crate::error::TaskError;

/// The code files of a job, and where their bytes are: `dir/<sha256>`.
#[derive(Debug, Clone, Copy)]
pub struct JobCode<'a> {
    /// The files, by the name they get in an attempt's directory.
    pub files: &'a BTreeMap<String, CodeHash>,
    /// The directory holding each file under its SHA-256; `None` when the
    /// job ships none.
    pub dir: Option<&'a Path>,
}

impl JobCode<'_> {
    /// No code files.
    pub fn none() -> JobCode<'static> {
        static NONE: BTreeMap<String, CodeHash> = BTreeMap::new();
        JobCode { files: &NONE, dir: None }
    }

    /// Puts every file into `work_dir` under its name: a hard link to the
    /// file held by hash, or a copy where that cannot be linked.
    pub fn put_into(&self, work_dir: &Path) -> Result<(), TaskError> {
        for (name, hash) in self.files {
            let failed = |cause: io::Error| TaskError::Io {
                context: format!("putting the job's code file {name} ({hash:?}) into the attempt's directory"),
                cause,
            };
            let Some(dir) = self.dir else {
                return Err(failed(io::Error::new(io::ErrorKind::NotFound, "no directory of code files was given")));
            };
            let (held, placed) = (dir.join(hash.to_string()), work_dir.join(name));
            if placed.exists() {
                continue;
            }
            if fs::hard_link(&held, &placed).is_err() {
                fs::copy(&held, &placed)
                    .map_err(|e| failed(io::Error::new(e.kind(), format!("{}: {e}", held.display()))))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_put_under_their_names_and_a_missing_one_is_named() {
        let (held, work) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
        let hash = CodeHash::of(b"print('hi')\n");
        fs::write(held.path().join(hash.to_string()), b"print('hi')\n").expect("write");
        let files = BTreeMap::from([("hi.py".to_owned(), hash)]);
        JobCode { files: &files, dir: Some(held.path()) }.put_into(work.path()).expect("put");
        assert_eq!(fs::read(work.path().join("hi.py")).expect("read"), b"print('hi')\n");

        let missing = BTreeMap::from([("gone.wasm".to_owned(), CodeHash::of(b"gone"))]);
        let err = JobCode { files: &missing, dir: Some(held.path()) }.put_into(work.path()).expect_err("missing");
        assert!(err.to_string().starts_with("putting the job's code file gone.wasm (sha256:"), "{err}");
        assert!(err.retryable());
    }
}
