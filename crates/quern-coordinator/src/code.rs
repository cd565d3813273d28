//! The code files jobs ship (WebAssembly modules, streaming programs,
//! their support files), stored content-addressed: `ROOT/<sha256>`, under
//! a local directory or an `s3://` prefix. A file is stored once however
//! many jobs ship it, and is never changed: its name is its content's
//! hash, checked before it is stored.

use std::io::Read;
use std::path::PathBuf;

use quern_core::{CodeHash, CodeHasher};
use quern_storage::{Location, Storage};
use tokio::io::AsyncWriteExt;

use crate::error::Error;

/// Where code files are stored.
#[derive(Debug, Clone)]
pub struct CodeStore {
    storage: Storage,
    root: Location,
    /// Where an upload is written (and hashed) before it is stored.
    scratch: PathBuf,
    /// The most bytes one file may have.
    max_bytes: u64,
}

impl CodeStore {
    /// Files under `root` (a directory, or an `s3://` prefix reached
    /// through `storage`), received into `scratch`, each at most
    /// `max_bytes`.
    pub fn new(storage: Storage, root: &str, scratch: PathBuf, max_bytes: u64) -> Result<CodeStore, Error> {
        let root = Location::parse(root).map_err(|e| Error::BadRequest(format!("the code store: {e}")))?;
        Ok(CodeStore { storage, root, scratch, max_bytes })
    }

    fn location(&self, hash: CodeHash) -> String {
        self.root.join(&hash.to_string()).to_string()
    }

    /// Those of `hashes` that are not stored.
    pub async fn missing(&self, hashes: Vec<CodeHash>) -> Result<Vec<CodeHash>, Error> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut missing = Vec::new();
            for hash in hashes {
                let stored =
                    this.storage.size_of(&this.location(hash)).map_err(|e| Error::Unavailable(e.to_string()))?;
                if stored.is_none() {
                    missing.push(hash);
                }
            }
            Ok(missing)
        })
        .await
        .map_err(|e| Error::Unavailable(format!("looking up code files: {e}")))?
    }

    /// Stores the file whose bytes `chunks` yields, which must hash to
    /// `expected`; returns its size. Nothing is stored otherwise.
    pub async fn put<S, E>(&self, expected: CodeHash, mut chunks: S) -> Result<u64, Error>
    where
        S: tokio_stream::Stream<Item = Result<Vec<u8>, E>> + Unpin,
        E: std::fmt::Display,
    {
        use tokio_stream::StreamExt;
        tokio::fs::create_dir_all(&self.scratch)
            .await
            .map_err(|e| Error::Unavailable(format!("creating {}: {e}", self.scratch.display())))?;
        let scratch = tempfile::Builder::new()
            .prefix("code-")
            .tempfile_in(&self.scratch)
            .map_err(|e| Error::Unavailable(format!("a scratch file in {}: {e}", self.scratch.display())))?;
        let (file, path) = scratch.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut hasher = CodeHasher::default();
        let mut size = 0u64;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| Error::BadRequest(format!("receiving the code file: {e}")))?;
            size += chunk.len() as u64;
            if size > self.max_bytes {
                return Err(Error::BadRequest(format!("a code file may have at most {} bytes", self.max_bytes)));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(|e| Error::Unavailable(format!("receiving the code file: {e}")))?;
        }
        file.flush().await.map_err(|e| Error::Unavailable(format!("receiving the code file: {e}")))?;
        drop(file);
        let got = hasher.finish();
        if got != expected {
            return Err(Error::BadRequest(format!("the code file's bytes hash to {got}, not to {expected}")));
        }
        let (storage, location) = (self.storage.clone(), self.location(expected));
        tokio::task::spawn_blocking(move || storage.upload_file(&path, &location))
            .await
            .map_err(|e| Error::Unavailable(format!("storing the code file: {e}")))?
            .map_err(|e| Error::Unavailable(format!("storing the code file: {e}")))?;
        Ok(size)
    }

    /// The stored file `hash`, as a reader; `None` when it is not stored.
    pub fn open(&self, hash: CodeHash) -> Result<Option<Box<dyn Read + Send>>, Error> {
        let location = self.location(hash);
        let Some(size) = self.storage.size_of(&location).map_err(|e| Error::Unavailable(e.to_string()))? else {
            return Ok(None);
        };
        let reader = self.storage.read_range(&location, 0, size).map_err(|e| Error::Unavailable(e.to_string()))?;
        Ok(Some(reader))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&[u8]]) -> impl tokio_stream::Stream<Item = Result<Vec<u8>, String>> + Unpin {
        tokio_stream::iter(parts.iter().map(|p| Ok(p.to_vec())).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn a_file_is_stored_under_its_hash_only_when_its_bytes_have_that_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("code").display().to_string();
        let store = CodeStore::new(Storage::default(), &root, dir.path().join("scratch"), 1 << 20).expect("store");
        let hash = CodeHash::of(b"(module)");
        assert_eq!(store.missing(vec![hash]).await.expect("missing"), [hash]);

        let err = store.put(hash, chunks(&[b"(module", b" evil)"])).await.expect_err("wrong bytes");
        assert!(err.to_string().contains(&format!("not to {hash}")), "{err}");
        assert_eq!(store.missing(vec![hash]).await.expect("missing"), [hash], "nothing stored");

        assert_eq!(store.put(hash, chunks(&[b"(mod", b"ule)"])).await.expect("stored"), 8);
        assert!(store.missing(vec![hash]).await.expect("missing").is_empty());
        let mut bytes = Vec::new();
        store.open(hash).expect("open").expect("stored").read_to_end(&mut bytes).expect("read");
        assert_eq!(bytes, b"(module)");
        assert!(store.open(CodeHash::of(b"other")).expect("open").is_none());

        let small = CodeStore::new(Storage::default(), &root, dir.path().join("scratch"), 4).expect("store");
        let err = small.put(hash, chunks(&[b"(module)"])).await.expect_err("too big");
        assert!(err.to_string().contains("at most 4 bytes"), "{err}");
    }
}
