//! The code files of the jobs this worker runs, fetched from the
//! coordinator by hash (`GetCode`) the first time a job needs them, checked
//! against their hash, and kept in `WORK_DIR/code/<sha256>` for every later
//! job that ships the same bytes.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use quern_core::{CodeHash, CodeHasher};
use quern_proto as pb;
use tokio::io::AsyncWriteExt;

use crate::CoordinatorClient;

/// The directory of code files, by hash.
#[derive(Debug, Clone)]
pub struct CodeCache {
    dir: PathBuf,
}

impl CodeCache {
    /// Code files kept in `dir`.
    pub fn new(dir: PathBuf) -> CodeCache {
        CodeCache { dir }
    }

    /// The directory, once every file of `code` is in it: those missing
    /// are fetched with `client`. An error says which file could not be had.
    pub async fn ensure(&self, code: &BTreeMap<String, CodeHash>, client: &CoordinatorClient) -> Result<&Path, String> {
        for (name, hash) in code {
            let held = self.dir.join(hash.to_string());
            if tokio::fs::try_exists(&held).await.unwrap_or(false) {
                continue;
            }
            self.fetch(*hash, &held, client)
                .await
                .map_err(|e| format!("fetching the job's code file {name} ({hash:?}): {e}"))?;
        }
        Ok(&self.dir)
    }

    /// Fetches `hash` into `held`: written beside it, checked, made
    /// executable (a shipped program may be run directly), and renamed
    /// into place, so that `held` is whole or absent.
    async fn fetch(&self, hash: CodeHash, held: &Path, client: &CoordinatorClient) -> Result<(), String> {
        tokio::fs::create_dir_all(&self.dir).await.map_err(|e| format!("creating {}: {e}", self.dir.display()))?;
        // Two jobs shipping the same file may fetch it at once: each into a
        // file of its own, the last rename wins (same bytes).
        static FETCHES: AtomicU64 = AtomicU64::new(0);
        let n = FETCHES.fetch_add(1, Ordering::Relaxed);
        let partial = self.dir.join(format!(".{hash}.{}-{n}.partial", std::process::id()));
        let result = async {
            let request = pb::GetCodeRequest { sha256: hash.to_string() };
            let mut chunks = client.clone().get_code(request).await.map_err(|s| s.message().to_owned())?.into_inner();
            let mut file =
                tokio::fs::File::create(&partial).await.map_err(|e| format!("creating {}: {e}", partial.display()))?;
            let mut hasher = CodeHasher::default();
            while let Some(chunk) = chunks.message().await.map_err(|s| s.message().to_owned())? {
                hasher.update(&chunk.data);
                file.write_all(&chunk.data).await.map_err(|e| format!("writing {}: {e}", partial.display()))?;
            }
            file.sync_all().await.map_err(|e| format!("writing {}: {e}", partial.display()))?;
            let got = hasher.finish();
            if got != hash {
                return Err(format!("the coordinator sent bytes that hash to {got}"));
            }
            tokio::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))
                .await
                .map_err(|e| format!("making {} executable: {e}", partial.display()))?;
            tokio::fs::rename(&partial, held).await.map_err(|e| format!("renaming into {}: {e}", held.display()))
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
        }
        result
    }
}
