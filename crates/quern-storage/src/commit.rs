//! The output commit protocol: [`OutputCommitter`], one API over two
//! implementations.
//!
//! **A local directory** (Hadoop's `FileOutputCommitter`, algorithm 1):
//!
//! ```text
//! OUTPUT/_temporary/attempts/m-00003_1/…   an attempt writes here
//!            │ commit_task (rename; only the scheduler's chosen attempt)
//!            ▼
//! OUTPUT/_temporary/committed/…            every committed task's files
//!            │ commit_job (rename each; then remove _temporary)
//!            ▼
//! OUTPUT/part-r-00000 …, then OUTPUT/_SUCCESS, written last
//! ```
//!
//! So a part file outside `_temporary` is always complete, `_SUCCESS` exists
//! only when every task committed, and an aborted job removes `_temporary`
//! and the output directory it created.
//!
//! **An object-store prefix** has no rename: see [`crate::store_commit`]
//! (attempt-private keys, task commits recorded as marker objects, a job
//! commit by server-side copy, conditional `PUT`s for the prefix's claim and
//! `_SUCCESS`).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use quern_core::AttemptId;

use crate::error::StorageError as Error;
use crate::location::Location;
use crate::output::OutputFile;
use crate::store_commit::StoreCommitter;

/// Name of the marker written when a job commits.
pub const SUCCESS_MARKER: &str = "_SUCCESS";
pub(crate) const TEMPORARY: &str = "_temporary";

/// Commits one job's output: a local directory or an object-store prefix.
///
/// Local outputs are set up with [`OutputCommitter::setup`] (or
/// [`crate::Storage::setup_output`]), outputs anywhere with
/// [`crate::Storage::setup_output`]; an output set up elsewhere (another
/// process, before a restart) is opened with [`OutputCommitter::open`] or
/// [`crate::Storage::open_output`]. Then: attempts write their files with
/// [`OutputCommitter::create_file`]; the scheduler's chosen attempt of each
/// task is committed with [`OutputCommitter::commit_task`], any other one
/// deleted with [`OutputCommitter::abort_task`]; when every task has
/// committed, [`OutputCommitter::commit_job`] publishes the output with
/// `_SUCCESS` last; a failed or killed job calls
/// [`OutputCommitter::abort_job`], which removes everything it wrote.
/// Committing a task or the job again (after a crash) is idempotent.
#[derive(Debug)]
pub struct OutputCommitter {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Local(LocalCommitter),
    Store(StoreCommitter),
}

impl OutputCommitter {
    /// Creates the local output directory `output` (refusing one that
    /// exists) and its `_temporary` area. An `s3://` URL is refused here:
    /// object-store outputs need [`crate::Storage::setup_output`].
    pub fn setup(output: &Path) -> Result<OutputCommitter, Error> {
        if let Some(text) = output.to_str()
            && let Ok(location @ Location::S3 { .. }) = Location::parse(text)
        {
            return Err(Error::OutputRefused {
                url: location.to_string(),
                message: "an object-store output needs S3 access; this caller writes local outputs only".into(),
            });
        }
        Ok(OutputCommitter { inner: Inner::Local(LocalCommitter::setup(output)?) })
    }

    /// The committer of a local output directory that
    /// [`OutputCommitter::setup`] already created (in another process, or
    /// before a restart).
    pub fn open(output: &Path) -> OutputCommitter {
        OutputCommitter { inner: Inner::Local(LocalCommitter { root: output.to_path_buf() }) }
    }

    pub(crate) fn from_store(store: StoreCommitter) -> OutputCommitter {
        OutputCommitter { inner: Inner::Store(store) }
    }

    /// The output's location, as a string that parses back to it.
    pub fn location(&self) -> String {
        match &self.inner {
            Inner::Local(local) => Location::Local(local.root.clone()).to_string(),
            Inner::Store(store) => store.url().to_owned(),
        }
    }

    /// The local output directory, if the output is local.
    pub fn local_root(&self) -> Option<&Path> {
        match &self.inner {
            Inner::Local(local) => Some(&local.root),
            Inner::Store(_) => None,
        }
    }

    /// Creates the file `name` (`part-r-00000`, or `NAME/part-r-00000` for a
    /// named output) of `attempt`, in the attempt's private area.
    ///
    /// Fails when the job's output area is gone (the job was killed or
    /// ended meanwhile) rather than re-creating a directory that nobody
    /// would clean up.
    pub fn create_file(&self, attempt: AttemptId, name: &str) -> io::Result<OutputFile> {
        match &self.inner {
            Inner::Local(local) => local.create_file(attempt, name),
            Inner::Store(store) => store.create_file(attempt, name),
        }
    }

    /// Commits `attempt`'s files. Call only for the attempt the scheduler
    /// chose; calling it again for the same attempt is harmless.
    pub fn commit_task(&self, attempt: AttemptId) -> io::Result<()> {
        match &self.inner {
            Inner::Local(local) => local.commit_task(attempt),
            Inner::Store(store) => store.commit_task(attempt),
        }
    }

    /// Deletes `attempt`'s files (best effort).
    pub fn abort_task(&self, attempt: AttemptId) {
        match &self.inner {
            Inner::Local(local) => local.abort_task(attempt),
            Inner::Store(store) => store.abort_task(attempt),
        }
    }

    /// Publishes every committed task's files, removes the temporary area
    /// and writes `_SUCCESS` last. Returns the published files' locations,
    /// sorted. `output_dirs` are the job's named outputs: a local directory
    /// is made for each, even an empty one (an object store has no
    /// directories).
    ///
    /// Idempotent: committing a job again (after a crash in the middle of a
    /// commit) finishes what is left.
    pub fn commit_job(&self, output_dirs: &[String]) -> io::Result<Vec<String>> {
        match &self.inner {
            Inner::Local(local) => local.commit_job(output_dirs),
            Inner::Store(store) => store.commit_job(),
        }
    }

    /// Removes everything the job wrote (best effort): its temporary area,
    /// and the output directory (or, in an object store, every object under
    /// the prefix it claimed, then the claim).
    pub fn abort_job(&self) {
        match &self.inner {
            Inner::Local(local) => local.abort_job(),
            Inner::Store(store) => store.abort_job(),
        }
    }
}

/// The local file system's committer.
#[derive(Debug)]
struct LocalCommitter {
    root: PathBuf,
}

impl LocalCommitter {
    fn setup(output: &Path) -> Result<LocalCommitter, Error> {
        if output.exists() {
            return Err(Error::OutputExists { path: output.display().to_string() });
        }
        let unusable = |path: &Path, cause| Error::OutputUnusable { path: path.display().to_string(), cause };
        if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| unusable(parent, e))?;
        }
        fs::create_dir(output).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => Error::OutputExists { path: output.display().to_string() },
            _ => unusable(output, e),
        })?;
        let committer = LocalCommitter { root: output.to_path_buf() };
        for dir in [committer.attempts_dir(), committer.committed_dir()] {
            fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        }
        Ok(committer)
    }

    fn attempts_dir(&self) -> PathBuf {
        self.root.join(TEMPORARY).join("attempts")
    }

    fn committed_dir(&self) -> PathBuf {
        self.root.join(TEMPORARY).join("committed")
    }

    /// Where `attempt` writes its output files.
    fn attempt_dir(&self, attempt: AttemptId) -> PathBuf {
        self.attempts_dir().join(format!("{}_{}", attempt.task, attempt.attempt))
    }

    /// Directories are made one level at a time below the job's
    /// `_temporary/attempts`, never above it: when the job was killed or
    /// failed meanwhile and its output area removed, the attempt fails
    /// instead of re-creating an output directory that nobody would clean up.
    fn create_file(&self, attempt: AttemptId, name: &str) -> io::Result<OutputFile> {
        let attempt_dir = self.attempt_dir(attempt);
        let path = attempt_dir.join(name);
        let mut dirs = vec![attempt_dir.clone()];
        if let Some(parent) = path.parent().filter(|p| *p != attempt_dir) {
            dirs.push(parent.to_path_buf());
        }
        for dir in dirs {
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let gone =
                        format!("{}: the job's output area is gone (the job was killed or ended)", dir.display());
                    return Err(io::Error::new(io::ErrorKind::NotFound, gone));
                }
                Err(e) => return Err(e),
            }
        }
        let file = File::create(&path)?;
        Ok(OutputFile::local(path.display().to_string(), file))
    }

    fn commit_task(&self, attempt: AttemptId) -> io::Result<()> {
        let from = self.attempt_dir(attempt);
        if from.exists() {
            move_tree(&from, &self.committed_dir())?;
            fs::remove_dir_all(&from)?;
        }
        Ok(())
    }

    fn abort_task(&self, attempt: AttemptId) {
        let _ = fs::remove_dir_all(self.attempt_dir(attempt));
    }

    fn commit_job(&self, output_dirs: &[String]) -> io::Result<Vec<String>> {
        let committed = self.committed_dir();
        if committed.exists() {
            move_tree(&committed, &self.root)?;
        }
        for name in output_dirs.iter().filter(|n| !n.is_empty()) {
            fs::create_dir_all(self.root.join(name))?;
        }
        match fs::remove_dir_all(self.root.join(TEMPORARY)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let marker = self.root.join(SUCCESS_MARKER);
        fs::write(&marker, b"")?;
        let mut files: Vec<PathBuf> = walkdir::WalkDir::new(&self.root)
            .min_depth(1)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file() && e.file_name().to_string_lossy().starts_with("part-"))
            .map(walkdir::DirEntry::into_path)
            .collect();
        files.sort();
        Ok(files.into_iter().map(|p| p.display().to_string()).collect())
    }

    /// An attempt still running may be creating a file as the tree goes; the
    /// removal is tried again then. Attempts never re-create a removed
    /// `_temporary` (they make their directory below it only), so once it
    /// is gone it stays gone.
    fn abort_job(&self) {
        let temporary = self.root.join(TEMPORARY);
        for _ in 0..5 {
            match fs::remove_dir_all(&temporary) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => continue,
                _ => break,
            }
        }
        let _ = fs::remove_dir(&self.root);
    }
}

/// Renames every file under `from` to the same relative path under `to`,
/// creating directories as needed; returns the new paths.
fn move_tree(from: &Path, to: &Path) -> io::Result<Vec<PathBuf>> {
    let mut moved = Vec::new();
    for entry in walkdir::WalkDir::new(from).min_depth(1).sort_by_file_name() {
        let entry = entry.map_err(io::Error::other)?;
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry.path().strip_prefix(from).map_err(io::Error::other)?;
        let dest = to.join(rel);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::rename(entry.path(), &dest)?;
        moved.push(dest);
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quern_core::{TaskId, TaskKind};
    use std::io::Write;

    fn attempt(index: u32, attempt: u32) -> AttemptId {
        AttemptId { task: TaskId { kind: TaskKind::Reduce, index }, attempt }
    }

    fn write(c: &OutputCommitter, a: AttemptId, name: &str, text: &str) {
        let (mut w, end) = c.create_file(a, name).expect("create").into_parts();
        w.write_all(text.as_bytes()).expect("write");
        w.flush().expect("flush");
        drop(w);
        end.finish().expect("finish");
    }

    #[test]
    fn only_committed_attempts_are_published_and_success_is_last() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let c = OutputCommitter::setup(&out).expect("setup");
        assert!(matches!(OutputCommitter::setup(&out), Err(Error::OutputExists { .. })));
        for a in [attempt(0, 1), attempt(0, 2), attempt(1, 1)] {
            write(&c, a, &format!("part-r-{:05}", a.task.index), &format!("{a}"));
        }
        c.abort_task(attempt(0, 1));
        c.commit_task(attempt(0, 2)).expect("commit");
        c.commit_task(attempt(1, 1)).expect("commit");
        assert!(!out.join(SUCCESS_MARKER).exists());
        assert!(!out.join("part-r-00000").exists(), "nothing is public before the job commits");
        let files = c.commit_job(&[]).expect("commit job");
        let expected: Vec<String> =
            ["part-r-00000", "part-r-00001"].iter().map(|n| out.join(n).display().to_string()).collect();
        assert_eq!(files, expected);
        assert_eq!(fs::read_to_string(out.join("part-r-00000")).expect("read"), "r-00000#2");
        assert!(out.join(SUCCESS_MARKER).exists());
        assert!(!out.join(TEMPORARY).exists());
    }

    #[test]
    fn abort_removes_the_output_it_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let c = OutputCommitter::setup(&out).expect("setup");
        write(&c, attempt(0, 1), "named/part-r-00000", "x");
        c.abort_job();
        assert!(!out.exists());
        let gone = c.create_file(attempt(0, 2), "part-r-00000").err().expect("the output area is gone");
        assert!(gone.to_string().contains("gone"), "{gone}");
    }

    #[test]
    fn an_s3_url_is_not_taken_for_a_local_path() {
        let e = OutputCommitter::setup(Path::new("s3://bucket/out")).expect_err("refused");
        assert!(e.is_refusal());
        assert!(e.to_string().contains("s3://bucket/out"), "{e}");
        assert!(!Path::new("s3:").exists());
    }
}
