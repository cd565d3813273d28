//! The output commit protocol on an object store, where there is no rename.
//!
//! ```text
//! setup        list PREFIX/ → must be empty (else refused: exists)
//!              PUT PREFIX/_temporary/_claim  If-None-Match: *  (body: a fresh token)
//!                            → lost the race: refused (claimed by another job)
//!              list PREFIX/ again → only the claim (else: DELETE the claim; refused:
//!                            exists; a retried PUT may land after another job
//!                            published and let its claim go)
//!              (the job's own area is PREFIX/_temporary/ID, ID a hash of the claim's token)
//! attempt      PREFIX/_temporary/ID/attempts/r-00001_2/part-r-00001   multipart upload, completed
//!                            when the attempt's writer ends, aborted if it does not; once
//!                            complete, deleted again if the claim is gone or another's
//! commit_task  PUT PREFIX/_temporary/ID/committed/r-00001_2         (empty: the winner's name)
//! commit_job   for each task, its committed attempt with the highest number:
//!                  COPY …/ID/attempts/r-00001_2/part-r-00001 → PREFIX/part-r-00001 (server side)
//!              DELETE every other key under PREFIX/_temporary/ but the claim
//!              PUT PREFIX/_SUCCESS  If-None-Match: *
//!              DELETE PREFIX/_temporary/_claim
//! abort_job    if the claim is ours and there is no _SUCCESS: DELETE every key under
//!              PREFIX/ but the claim, then the claim, then what appeared in ID since
//! ```
//!
//! **Why it is safe** (the full argument is in ARCHITECTURE.md, *Commit on
//! an object store*): the prefix is empty when claimed, and the conditional
//! `PUT` of the claim lets exactly one job hold it, so every key under it
//! was written by this job. Only a winner's files are ever copied to a final
//! name, and a copy is atomic (a reader sees the whole object or none).
//! `_SUCCESS` is written after every copy, so a reader that sees it sees
//! every part. Every step can be run again after a crash: copies and deletes
//! are idempotent, a task's record is a fixed empty object, and a
//! conditional `PUT` that finds its object there checks that it is its own
//! (the claim's token; `_SUCCESS` under a prefix this job holds can only be
//! this job's).

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use quern_core::AttemptId;

use crate::commit::{SUCCESS_MARKER, TEMPORARY};
use crate::error::StorageError as Error;
use crate::output::OutputFile;
use crate::retry::retrying;
use crate::runtime::block_on;

/// Requests a job commit or abort runs at once.
const CONCURRENCY: usize = 8;
const CLAIM: &str = "_claim";

/// The committer of one output prefix in one bucket.
#[derive(Debug, Clone)]
pub(crate) struct StoreCommitter {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    /// The claim's token, when this committer made the claim.
    token: Option<String>,
    /// The claim as read (or made) by this committer: its body, and the id
    /// derived from it that names the job's area under `_temporary/`.
    held: std::sync::OnceLock<Held>,
}

/// A claim as found: its body, and the job area's name derived from it.
#[derive(Debug, Clone)]
struct Held {
    token: bytes::Bytes,
    id: String,
}

impl Held {
    fn of(token: bytes::Bytes) -> Held {
        // FNV-1a: the same id in every process that reads the claim.
        let hash =
            token.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        Held { token, id: format!("{hash:016x}") }
    }
}

fn other(what: &str, url: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what} {url}: {e}"))
}

/// A key as an object path.
fn path(key: &str) -> io::Result<ObjectPath> {
    ObjectPath::parse(key).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("key {key}: {e}")))
}

/// Every object under `prefix/`, as keys.
pub(crate) async fn list(store: &Arc<dyn ObjectStore>, prefix: &ObjectPath) -> object_store::Result<Vec<String>> {
    retrying("listing", || async {
        store.list(Some(prefix)).map_ok(|meta| meta.location.to_string()).try_collect::<Vec<_>>().await
    })
    .await
}

/// Deletes `keys`, [`CONCURRENCY`] at a time (a missing key is no error).
pub(crate) async fn delete_all(store: &Arc<dyn ObjectStore>, keys: Vec<String>) -> object_store::Result<()> {
    futures_util::stream::iter(keys)
        .map(|key| async move {
            let path = ObjectPath::from(key);
            match retrying("deleting", || store.delete(&path)).await {
                Err(object_store::Error::NotFound { .. }) => Ok(()),
                other => other,
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .map(drop)
}

/// Creates `path` with `body` unless it exists (`If-None-Match: *`).
/// Returns whether the object there now is this call's: created now, or
/// found with the same bytes (an earlier try whose answer was lost did
/// create it).
async fn create(store: &Arc<dyn ObjectStore>, path: &ObjectPath, body: &[u8]) -> object_store::Result<bool> {
    retrying("a conditional put", || async {
        let payload = PutPayload::from(body.to_vec());
        match store.put_opts(path, payload, PutMode::Create.into()).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let there = store.get(path).await?.bytes().await?;
                Ok(there.as_ref() == body)
            }
            Err(e) => Err(e),
        }
    })
    .await
}

impl StoreCommitter {
    /// The committer of `url` (`s3://bucket/prefix`), whose prefix is `prefix`.
    pub(crate) fn open(store: Arc<dyn ObjectStore>, url: &str, prefix: &str) -> Result<StoreCommitter, Error> {
        if prefix.is_empty() {
            return Err(Error::OutputRefused {
                url: url.to_owned(),
                message: "an output needs a prefix below the bucket: write s3://BUCKET/PREFIX".into(),
            });
        }
        path(prefix).map_err(|e| Error::OutputRefused { url: url.to_owned(), message: e.to_string() })?;
        Ok(StoreCommitter {
            store,
            prefix: prefix.to_owned(),
            url: url.to_owned(),
            token: None,
            held: std::sync::OnceLock::new(),
        })
    }

    /// Claims the prefix for a new job: refuses one with objects under it
    /// (or claimed by another job), then creates the claim conditionally.
    pub(crate) fn setup(store: Arc<dyn ObjectStore>, url: &str, prefix: &str) -> Result<StoreCommitter, Error> {
        let mut committer = StoreCommitter::open(store, url, prefix)?;
        let token = format!(
            "quern output claim\npid {}\nrandom {:016x}\n",
            std::process::id(),
            RandomState::new().hash_one(std::time::SystemTime::now())
        );
        let store = Arc::clone(&committer.store);
        let (prefix_path, claim_key) = (ObjectPath::from(prefix), committer.key(&format!("{TEMPORARY}/{CLAIM}")));
        let body = token.clone().into_bytes();
        let claimed = block_on(async move {
            let first_keys = || {
                retrying("listing", || async {
                    let mut listing = store.list(Some(&prefix_path));
                    let mut keys = Vec::new();
                    // The first page is enough to tell.
                    while let Some(meta) = listing.next().await {
                        keys.push(meta?.location.to_string());
                        if keys.len() >= 1000 {
                            break;
                        }
                    }
                    Ok(keys)
                })
            };
            let first = first_keys().await?;
            if !first.is_empty() {
                return Ok(Some(first.contains(&claim_key)));
            }
            let claim = ObjectPath::from(claim_key.as_str());
            if !create(&store, &claim, &body).await? {
                return Ok(Some(true));
            }
            // The claim may have been made after the listing by a retry,
            // once another job that held the prefix meanwhile had finished
            // and let its claim go: that job's `_SUCCESS` (written before its
            // claim went) is there now. Look again.
            let after = first_keys().await?;
            if after.iter().any(|k| *k != claim_key) {
                retrying("deleting the claim", || store.delete(&claim)).await?;
                return Ok(Some(false));
            }
            Ok(None)
        });
        let url = committer.url.clone();
        match claimed.map_err(|e| Error::OutputFailed { url: url.clone(), message: e.to_string() })? {
            Ok(None) => {
                let _ = committer.held.set(Held::of(bytes::Bytes::from(token.clone())));
                committer.token = Some(token);
                Ok(committer)
            }
            Ok(Some(true)) => Err(Error::OutputClaimed { url }),
            Ok(Some(false)) => Err(Error::OutputExists { path: url }),
            Err(e) => Err(setup_error(&url, e)),
        }
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    fn key(&self, rest: &str) -> String {
        format!("{}/{rest}", self.prefix)
    }

    /// The job's own area: `PREFIX/_temporary/<claim id>`. A late attempt of
    /// an earlier job on the same prefix wrote under another id, so it can
    /// never be taken for this job's.
    fn job_key(held: &Held, prefix: &str, rest: &str) -> String {
        format!("{prefix}/{TEMPORARY}/{}/{rest}", held.id)
    }

    fn attempt_key(&self, held: &Held, attempt: AttemptId) -> String {
        StoreCommitter::job_key(held, &self.prefix, &format!("attempts/{}_{}", attempt.task, attempt.attempt))
    }

    /// The claim this committer works under, read once (`None`: there is
    /// none, the job ended or was never set up).
    fn held(&self) -> io::Result<Option<Held>> {
        let this = self.clone();
        block_on(async move { this.held_async().await })?
    }

    async fn held_async(&self) -> io::Result<Option<Held>> {
        if let Some(held) = self.held.get() {
            return Ok(Some(held.clone()));
        }
        let (store, claim) = (&self.store, self.claim_path());
        match retrying("reading the claim", || async { store.get(&claim).await?.bytes().await }).await {
            Ok(body) => Ok(Some(self.held.get_or_init(|| Held::of(body)).clone())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(other("reading the claim of", &self.url, e)),
        }
    }

    fn claim_path(&self) -> ObjectPath {
        ObjectPath::from(self.key(&format!("{TEMPORARY}/{CLAIM}")))
    }

    fn url_of(&self, key: &str) -> String {
        let bucket_url = self.url.strip_suffix(&self.prefix).unwrap_or(&self.url);
        format!("{bucket_url}{key}")
    }

    /// Whether the claim is there (and, when known, is this committer's).
    async fn holds_claim(store: &Arc<dyn ObjectStore>, claim: &ObjectPath, token: Option<&str>) -> io::Result<bool> {
        let read = retrying("reading the claim", || async { store.get(claim).await?.bytes().await }).await;
        match read {
            Ok(body) => Ok(token.is_none_or(|t| body.as_ref() == t.as_bytes())),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(io::Error::other(e.to_string())),
        }
    }

    pub(crate) fn create_file(&self, attempt: AttemptId, name: &str) -> io::Result<OutputFile> {
        // Like the local committer, refuse to write into an output area that
        // is gone (the job was killed or ended meanwhile); and a file that
        // is complete only after its job let the claim go deletes itself.
        let gone = || {
            let gone = format!("{}: the job's output area is gone (the job was killed or ended)", self.url);
            io::Error::new(io::ErrorKind::NotFound, gone)
        };
        // The claim as it is now (one read per file): still there, and
        // still the one this committer knew.
        let (store, claim) = (Arc::clone(&self.store), self.claim_path());
        let now = block_on(async move {
            retrying("reading the claim", || async { store.get(&claim).await?.bytes().await }).await
        })?;
        let held = match now {
            Ok(body) => self.held.get_or_init(|| Held::of(body.clone())).clone(),
            Err(object_store::Error::NotFound { .. }) => return Err(gone()),
            Err(e) => return Err(other("reading the claim of", &self.url, e)),
        };
        let key = format!("{}/{name}", self.attempt_key(&held, attempt));
        let object = path(&key)?;
        let url = self.url_of(&key);
        Ok(OutputFile::guarded_object(Arc::clone(&self.store), object, url, self.claim_path(), held.token))
    }

    pub(crate) fn commit_task(&self, attempt: AttemptId) -> io::Result<()> {
        let Some(held) = self.held()? else {
            return Err(other("committing", &format!("{attempt} of {}", self.url), "the output's claim is gone"));
        };
        let committed = format!("committed/{}_{}", attempt.task, attempt.attempt);
        let record = path(&StoreCommitter::job_key(&held, &self.prefix, &committed))?;
        let store = Arc::clone(&self.store);
        block_on(async move { retrying("committing a task", || store.put(&record, PutPayload::new())).await })?
            .map(drop)
            .map_err(|e| other("committing", &format!("{attempt} of {}", self.url), e))
    }

    pub(crate) fn abort_task(&self, attempt: AttemptId) {
        let held = match self.held() {
            Ok(Some(held)) => held,
            // No claim: the job's area is gone with it.
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(%attempt, url = %self.url, "deleting an attempt's files: {e}");
                return;
            }
        };
        let Ok(dir) = path(&self.attempt_key(&held, attempt)) else { return };
        let store = Arc::clone(&self.store);
        let result = block_on(async move {
            let keys = list(&store, &dir).await?;
            delete_all(&store, keys).await
        });
        if let Err(e) | Ok(Err(e)) = result.map(|r| r.map_err(|e| io::Error::other(e.to_string()))) {
            tracing::warn!(%attempt, url = %self.url, "deleting an attempt's files: {e}");
        }
    }

    /// See the module's docs for the steps and why they are safe.
    pub(crate) fn commit_job(&self) -> io::Result<Vec<String>> {
        let this = self.clone();
        let result = block_on(async move { this.commit_job_async().await })?;
        result.map_err(|e| other("committing", &self.url, e))
    }

    async fn commit_job_async(&self) -> Result<Vec<String>, String> {
        let store = &self.store;
        let claim = self.claim_path();
        let success = ObjectPath::from(self.key(SUCCESS_MARKER));
        let exists = |p: ObjectPath| async move {
            match retrying("looking for an object", || store.head(&p)).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(e.to_string()),
            }
        };
        if !StoreCommitter::holds_claim(store, &claim, self.token.as_deref()).await.map_err(|e| e.to_string())? {
            // Committed already (and the claim let go), or never ours.
            if exists(success.clone()).await? {
                return self.published().await;
            }
            return Err("the output's claim is gone: another process aborted the job".into());
        }
        let temporary = ObjectPath::from(self.key(TEMPORARY));
        let held = self.held_async().await.map_err(|e| e.to_string())?.ok_or("the output's claim is gone")?;
        let area = ObjectPath::from(format!("{}/{}", temporary, held.id));
        // Written last of all but the claim's removal: when it is there,
        // every copy was made.
        let success_written = exists(success.clone()).await?;
        if !success_written {
            let keys = list(store, &area).await.map_err(|e| e.to_string())?;
            // Each task's winner: its committed attempt with the highest
            // number (a map run again after its output was lost commits
            // again, later).
            let committed = format!("{area}/committed/");
            let mut winners: BTreeMap<&str, (u32, &str)> = BTreeMap::new();
            for record in keys.iter().filter_map(|k| k.strip_prefix(&committed)) {
                let Some((task, number)) = record.rsplit_once('_') else { continue };
                let Ok(number) = number.parse::<u32>() else { continue };
                if winners.get(task).is_none_or(|&(n, _)| number > n) {
                    winners.insert(task, (number, record));
                }
            }
            let attempts = format!("{area}/attempts/");
            let mut copies = Vec::new();
            for key in &keys {
                let Some((dir, name)) = key.strip_prefix(&attempts).and_then(|rest| rest.split_once('/')) else {
                    continue;
                };
                let Some((task, _)) = dir.rsplit_once('_') else { continue };
                if winners.get(task).is_some_and(|&(_, winner)| winner == dir) {
                    copies.push((ObjectPath::from(key.as_str()), ObjectPath::from(self.key(name))));
                }
            }
            futures_util::stream::iter(copies)
                .map(|(from, to)| async move {
                    retrying("copying", || store.copy(&from, &to)).await.map_err(|e| format!("copying {from}: {e}"))
                })
                .buffer_unordered(CONCURRENCY)
                .try_collect::<Vec<()>>()
                .await?;
        }
        // Everything temporary but the claim, listed again: an attempt that
        // ended since the first listing is swept too.
        let mut keys = list(store, &temporary).await.map_err(|e| e.to_string())?;
        keys.retain(|k| *k != claim.as_ref());
        delete_all(store, keys).await.map_err(|e| e.to_string())?;
        if !success_written {
            // Under a prefix this job holds, a _SUCCESS that is there
            // already is this job's (a retry whose answer was lost).
            create(store, &success, b"").await.map_err(|e| format!("writing {SUCCESS_MARKER}: {e}"))?;
        }
        // Published: letting the claim go may fail without harm (it is
        // under `_temporary`, which readers skip); a commit run again
        // deletes it.
        if let Err(e) = retrying("deleting the claim", || store.delete(&claim)).await {
            tracing::warn!(url = %self.url, "the output is committed, but its claim is left: {e}");
        }
        self.published().await
    }

    /// The job's published part files, as sorted URLs.
    async fn published(&self) -> Result<Vec<String>, String> {
        let keys = list(&self.store, &ObjectPath::from(self.prefix.as_str())).await.map_err(|e| e.to_string())?;
        let below = format!("{}/", self.prefix);
        let mut files: Vec<String> = keys
            .iter()
            .filter(|k| {
                k.strip_prefix(&below).is_some_and(|rel| {
                    !rel.starts_with(TEMPORARY) && rel.rsplit('/').next().is_some_and(|n| n.starts_with("part-"))
                })
            })
            .map(|k| self.url_of(k))
            .collect();
        files.sort();
        Ok(files)
    }

    pub(crate) fn abort_job(&self) {
        let this = self.clone();
        let result = block_on(async move {
            let store = &this.store;
            let claim = this.claim_path();
            if !StoreCommitter::holds_claim(store, &claim, this.token.as_deref()).await? {
                return Ok(());
            }
            let success = ObjectPath::from(this.key(SUCCESS_MARKER));
            if retrying("looking for _SUCCESS", || store.head(&success)).await.is_ok() {
                // Committed: nothing to take back.
                return Ok(());
            }
            let held = this.held_async().await?;
            let mut keys = list(store, &ObjectPath::from(this.prefix.as_str())).await.map_err(io::Error::other)?;
            keys.retain(|k| *k != claim.as_ref());
            delete_all(store, keys).await.map_err(io::Error::other)?;
            retrying("deleting the claim", || store.delete(&claim)).await.map_err(io::Error::other)?;
            // An attempt that completed a file after the sweep, while the
            // claim still stood: its file is in this job's own area, which
            // no later job writes to. Files completed after this delete
            // themselves (they find the claim gone).
            if let Some(held) = held {
                let area = ObjectPath::from(format!("{}/{TEMPORARY}/{}", this.prefix, held.id));
                let late = list(store, &area).await.map_err(io::Error::other)?;
                delete_all(store, late).await.map_err(io::Error::other)?;
            }
            Ok(())
        });
        if let Err(e) | Ok(Err(e)) = result {
            tracing::warn!(url = %self.url, "removing the output of an aborted job: {e}");
        }
    }
}

/// An error while claiming a prefix: a refusal when the store says the
/// bucket or the credentials are wrong, else the store is unavailable.
fn setup_error(url: &str, e: object_store::Error) -> Error {
    let url = url.to_owned();
    match e {
        object_store::Error::PermissionDenied { source, .. } | object_store::Error::Unauthenticated { source, .. } => {
            Error::OutputRefused {
                url,
                message: format!(
                    "access denied: check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the endpoint ({source})"
                ),
            }
        }
        e if e.to_string().contains("<Code>NoSuchBucket</Code>") => {
            Error::OutputRefused { url, message: "no such bucket".into() }
        }
        e => Error::OutputFailed { url, message: e.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use quern_core::{TaskId, TaskKind};
    use std::io::Write;

    fn attempt(kind: TaskKind, index: u32, attempt: u32) -> AttemptId {
        AttemptId { task: TaskId { kind, index }, attempt }
    }

    fn keys(store: &Arc<dyn ObjectStore>) -> Vec<String> {
        let store = Arc::clone(store);
        let mut keys =
            block_on(async move { list(&store, &ObjectPath::from("")).await }).expect("runtime").expect("list");
        keys.sort();
        keys
    }

    fn read(store: &Arc<dyn ObjectStore>, key: &str) -> String {
        let (store, p) = (Arc::clone(store), ObjectPath::from(key));
        let bytes = block_on(async move { store.get(&p).await?.bytes().await }).expect("runtime").expect("get");
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    fn put(store: &Arc<dyn ObjectStore>, key: &str, body: &str) {
        let (store, p, body) = (Arc::clone(store), ObjectPath::from(key), body.to_owned());
        block_on(async move { store.put(&p, body.into_bytes().into()).await }).expect("runtime").expect("put");
    }

    fn write(c: &StoreCommitter, a: AttemptId, name: &str, text: &str) {
        let (mut w, end) = c.create_file(a, name).expect("create").into_parts();
        w.write_all(text.as_bytes()).expect("write");
        w.flush().expect("flush");
        drop(w);
        end.finish().expect("finish");
    }

    fn setup(store: &Arc<dyn ObjectStore>) -> Result<StoreCommitter, Error> {
        StoreCommitter::setup(Arc::clone(store), "s3://b/out", "out")
    }

    #[test]
    fn only_winners_become_visible_and_success_comes_last_with_nothing_temporary_left() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let c = setup(&store).expect("setup");
        assert_eq!(keys(&store), ["out/_temporary/_claim"]);
        let (r0a, r0b, r1) =
            (attempt(TaskKind::Reduce, 0, 1), attempt(TaskKind::Reduce, 0, 2), attempt(TaskKind::Reduce, 1, 3));
        write(&c, r0a, "part-r-00000", "loser");
        write(&c, r0b, "part-r-00000", "winner 0");
        write(&c, r1, "named/part-r-00001", "winner 1");
        c.abort_task(r0a);
        c.commit_task(r0b).expect("commit");
        c.commit_task(r1).expect("commit");
        c.commit_task(r1).expect("committing again is harmless");
        assert!(keys(&store).iter().all(|k| k.starts_with("out/_temporary/")), "nothing final before the job commits");

        let files = c.commit_job().expect("commit job");
        assert_eq!(files, ["s3://b/out/named/part-r-00001", "s3://b/out/part-r-00000"]);
        assert_eq!(keys(&store), ["out/_SUCCESS", "out/named/part-r-00001", "out/part-r-00000"]);
        assert_eq!(read(&store, "out/part-r-00000"), "winner 0");
        assert_eq!(read(&store, "out/named/part-r-00001"), "winner 1");
        // Idempotent: a second commit (a restart) finds it done.
        assert_eq!(c.commit_job().expect("again"), files);
        assert_eq!(
            StoreCommitter::open(Arc::clone(&store), "s3://b/out", "out")
                .expect("open")
                .commit_job()
                .expect("reopened"),
            files
        );
        // A committed output is never taken back.
        c.abort_job();
        assert_eq!(keys(&store).len(), 3);
    }

    #[test]
    fn a_commit_interrupted_at_any_step_is_finished_by_committing_again() {
        // Each state a crash can leave, made by hand, then committed by a
        // committer opened afresh (as after a restart).
        for crash_after in ["task commits", "some copies", "all copies", "deletes", "success"] {
            let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            let c = setup(&store).expect("setup");
            let (r0, r1) = (attempt(TaskKind::Reduce, 0, 1), attempt(TaskKind::Reduce, 1, 1));
            write(&c, r0, "part-r-00000", "zero");
            write(&c, r1, "part-r-00001", "one");
            c.commit_task(r0).expect("commit");
            c.commit_task(r1).expect("commit");
            match crash_after {
                "some copies" => put(&store, "out/part-r-00000", "zero"),
                "all copies" => {
                    put(&store, "out/part-r-00000", "zero");
                    put(&store, "out/part-r-00001", "one");
                }
                "deletes" | "success" => {
                    put(&store, "out/part-r-00000", "zero");
                    put(&store, "out/part-r-00001", "one");
                    let temporary: Vec<String> = keys(&store)
                        .into_iter()
                        .filter(|k| k.contains("/_temporary/") && !k.ends_with(CLAIM))
                        .collect();
                    // Half the deletes happened.
                    let store2 = Arc::clone(&store);
                    let half = temporary[..temporary.len() / 2].to_vec();
                    block_on(async move { delete_all(&store2, half).await }).expect("runtime").expect("delete");
                    if crash_after == "success" {
                        put(&store, "out/_SUCCESS", "");
                    }
                }
                _ => {}
            }
            let reopened = StoreCommitter::open(Arc::clone(&store), "s3://b/out", "out").expect("open");
            let files = reopened.commit_job().expect(crash_after);
            assert_eq!(files, ["s3://b/out/part-r-00000", "s3://b/out/part-r-00001"], "{crash_after}");
            assert_eq!(keys(&store), ["out/_SUCCESS", "out/part-r-00000", "out/part-r-00001"], "{crash_after}");
            assert_eq!(read(&store, "out/part-r-00001"), "one", "{crash_after}");
        }
    }

    #[test]
    fn a_prefix_with_objects_or_a_claim_is_refused_and_only_one_of_two_claims_wins() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        put(&store, "out/data.txt", "x");
        assert!(matches!(setup(&store), Err(Error::OutputExists { .. })));
        put(&store, "other/_temporary/_claim", "someone");
        let claimed = StoreCommitter::setup(Arc::clone(&store), "s3://b/other", "other");
        assert!(matches!(claimed, Err(Error::OutputClaimed { .. })), "{claimed:?}");
        assert!(matches!(StoreCommitter::setup(Arc::clone(&store), "s3://b", ""), Err(Error::OutputRefused { .. })));

        // Racing claims on an empty prefix: exactly one wins.
        let winners: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| StoreCommitter::setup(Arc::clone(&store), "s3://b/race", "race").is_ok()))
                .collect();
            handles.into_iter().map(|h| h.join().expect("thread")).collect()
        });
        assert_eq!(winners.iter().filter(|w| **w).count(), 1, "{winners:?}");
    }

    /// A store on which another job publishes its output under `out/` and
    /// lets its claim go just before this job's claim lands: what a claim
    /// retried after a throttled first try can meet.
    #[derive(Debug)]
    struct PublishedMeanwhile(InMemory);

    impl std::fmt::Display for PublishedMeanwhile {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("published meanwhile")
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for PublishedMeanwhile {
        async fn put_opts(
            &self,
            location: &ObjectPath,
            payload: PutPayload,
            opts: object_store::PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            if location.as_ref() == "out/_temporary/_claim" {
                for key in ["out/part-r-00000", "out/_SUCCESS"] {
                    self.0.put(&ObjectPath::from(key), PutPayload::from_static(b"theirs")).await?;
                }
            }
            self.0.put_opts(location, payload, opts).await
        }
        async fn put_multipart_opts(
            &self,
            location: &ObjectPath,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.0.put_multipart_opts(location, opts).await
        }
        async fn get_opts(
            &self,
            location: &ObjectPath,
            options: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.0.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: futures_util::stream::BoxStream<'static, object_store::Result<ObjectPath>>,
        ) -> futures_util::stream::BoxStream<'static, object_store::Result<ObjectPath>> {
            self.0.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&ObjectPath>,
        ) -> futures_util::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
            self.0.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&ObjectPath>,
        ) -> object_store::Result<object_store::ListResult> {
            self.0.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &ObjectPath,
            to: &ObjectPath,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.0.copy_opts(from, to, options).await
        }
    }

    #[test]
    fn a_claim_that_lands_after_another_job_published_is_taken_back_and_refused() {
        let store: Arc<dyn ObjectStore> = Arc::new(PublishedMeanwhile(InMemory::new()));
        let claimed = setup(&store);
        assert!(matches!(claimed, Err(Error::OutputExists { .. })), "{claimed:?}");
        assert_eq!(keys(&store), ["out/_SUCCESS", "out/part-r-00000"], "the other job's output, untouched");
    }

    #[test]
    fn a_late_attempt_of_a_killed_job_leaves_nothing_even_under_a_prefix_claimed_again() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let old = setup(&store).expect("setup");
        let m3 = attempt(TaskKind::Map, 3, 1);
        // An attempt of the old job, still writing when the job is killed.
        let opened = StoreCommitter::open(Arc::clone(&store), "s3://b/out", "out").expect("open");
        let (mut late, late_end) = opened.create_file(m3, "part-m-00003").expect("create").into_parts();
        late.write_all(b"old job").expect("write");
        old.abort_job();
        assert_eq!(keys(&store), Vec::<String>::new());
        // A new job claims the prefix at once; its own attempt of the same
        // task and number writes its file.
        let new = setup(&store).expect("the prefix is free again");
        write(&new, m3, "part-m-00003", "new job");
        // The old attempt completes its file now: it finds the claim is not
        // its job's, deletes what it wrote and fails.
        late.flush().expect("flush");
        drop(late);
        let finished = late_end.finish();
        assert_eq!(finished.map_err(|e| e.kind()), Err(io::ErrorKind::NotFound));
        new.commit_task(m3).expect("commit");
        new.commit_job().expect("commit job");
        assert_eq!(keys(&store), ["out/_SUCCESS", "out/part-m-00003"]);
        assert_eq!(read(&store, "out/part-m-00003"), "new job", "the new job's bytes, never the late attempt's");
        // With no new job, a late file deletes itself and the prefix stays
        // empty.
        let gone = StoreCommitter::setup(Arc::clone(&store), "s3://b/gone", "gone").expect("setup");
        let (mut w, end) = gone.create_file(m3, "part-m-00003").expect("create").into_parts();
        gone.abort_job();
        w.write_all(b"late").expect("write");
        w.flush().expect("flush");
        drop(w);
        assert!(end.finish().is_err());
        assert!(keys(&store).iter().all(|k| !k.starts_with("gone/")), "{:?}", keys(&store));
    }

    #[test]
    fn a_conditional_put_that_finds_its_own_bytes_counts_as_its_own() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let s = Arc::clone(&store);
        let (first, again, other) = block_on(async move {
            let p = ObjectPath::from("k");
            (create(&s, &p, b"token").await, create(&s, &p, b"token").await, create(&s, &p, b"other").await)
        })
        .expect("runtime");
        assert!(first.expect("first"));
        assert!(again.expect("a retry after a lost answer"), "the same bytes are ours");
        assert!(!other.expect("other"), "other bytes are someone else's");
    }

    #[test]
    fn an_aborted_job_removes_everything_it_wrote_and_later_attempts_cannot_write() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        put(&store, "elsewhere/keep", "x");
        let c = setup(&store).expect("setup");
        let r0 = attempt(TaskKind::Reduce, 0, 1);
        write(&c, r0, "part-r-00000", "zero");
        c.commit_task(r0).expect("commit");
        // A job commit that copied and then failed leaves a final part.
        put(&store, "out/part-r-00000", "zero");
        c.abort_job();
        assert_eq!(keys(&store), ["elsewhere/keep"]);
        assert!(c.create_file(attempt(TaskKind::Reduce, 0, 2), "part-r-00000").is_err());
        // A committer that does not hold the claim takes nothing away.
        put(&store, "taken/_temporary/_claim", "another job");
        put(&store, "taken/_temporary/attempts/r-00000_1/part-r-00000", "theirs");
        let mut stranger = StoreCommitter::open(Arc::clone(&store), "s3://b/taken", "taken").expect("open");
        stranger.token = Some("mine".into());
        stranger.abort_job();
        assert_eq!(keys(&store).len(), 3);
    }
}
