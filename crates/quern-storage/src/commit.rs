//! The output commit protocol (Hadoop's `FileOutputCommitter`, algorithm 1).
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

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use quern_core::AttemptId;

use crate::error::StorageError as Error;

/// Name of the marker written when a job commits.
pub const SUCCESS_MARKER: &str = "_SUCCESS";
const TEMPORARY: &str = "_temporary";

/// Commits one job's output directory.
#[derive(Debug)]
pub struct OutputCommitter {
    root: PathBuf,
}

impl OutputCommitter {
    /// Creates the output directory (refusing one that exists) and its
    /// `_temporary` area.
    pub fn setup(output: &Path) -> Result<OutputCommitter, Error> {
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
        let committer = OutputCommitter { root: output.to_path_buf() };
        for dir in [committer.attempts_dir(), committer.committed_dir()] {
            fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        }
        Ok(committer)
    }

    /// The committer of an output directory that [`OutputCommitter::setup`]
    /// already created (in another process, or before a restart).
    pub fn open(output: &Path) -> OutputCommitter {
        OutputCommitter { root: output.to_path_buf() }
    }

    /// The output directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn attempts_dir(&self) -> PathBuf {
        self.root.join(TEMPORARY).join("attempts")
    }

    fn committed_dir(&self) -> PathBuf {
        self.root.join(TEMPORARY).join("committed")
    }

    /// Where `attempt` writes its output files.
    pub fn attempt_dir(&self, attempt: AttemptId) -> PathBuf {
        self.attempts_dir().join(format!("{}_{}", attempt.task, attempt.attempt))
    }

    /// Moves `attempt`'s files into the committed area. Call only for the
    /// attempt the scheduler chose.
    pub fn commit_task(&self, attempt: AttemptId) -> io::Result<()> {
        let from = self.attempt_dir(attempt);
        if from.exists() {
            move_tree(&from, &self.committed_dir())?;
            fs::remove_dir_all(&from)?;
        }
        Ok(())
    }

    /// Deletes `attempt`'s files.
    pub fn abort_task(&self, attempt: AttemptId) {
        let _ = fs::remove_dir_all(self.attempt_dir(attempt));
    }

    /// Publishes every committed file, makes sure each named output
    /// directory exists, removes `_temporary` and writes `_SUCCESS` last.
    /// Returns the published files, sorted.
    ///
    /// Idempotent: committing a job again (after a coordinator restart in the
    /// middle of a commit) finishes what is left.
    pub fn commit_job(&self, output_dirs: &[String]) -> io::Result<Vec<PathBuf>> {
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
        Ok(files)
    }

    /// Removes everything the job wrote: `_temporary`, and the output
    /// directory itself when nothing else is in it.
    ///
    /// An attempt still running may be creating a file as the tree goes; the
    /// removal is tried again then. Attempts never re-create a removed
    /// `_temporary` (they make their directory below it only), so once it
    /// is gone it stays gone.
    pub fn abort_job(&self) {
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

    fn attempt(index: u32, attempt: u32) -> AttemptId {
        AttemptId { task: TaskId { kind: TaskKind::Reduce, index }, attempt }
    }

    #[test]
    fn only_committed_attempts_are_published_and_success_is_last() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let c = OutputCommitter::setup(&out).expect("setup");
        assert!(matches!(OutputCommitter::setup(&out), Err(Error::OutputExists { .. })));
        for a in [attempt(0, 1), attempt(0, 2), attempt(1, 1)] {
            let d = c.attempt_dir(a);
            fs::create_dir_all(&d).expect("mkdir");
            fs::write(d.join(format!("part-r-{:05}", a.task.index)), format!("{a}")).expect("write");
        }
        c.abort_task(attempt(0, 1));
        c.commit_task(attempt(0, 2)).expect("commit");
        c.commit_task(attempt(1, 1)).expect("commit");
        assert!(!out.join(SUCCESS_MARKER).exists());
        assert!(!out.join("part-r-00000").exists(), "nothing is public before the job commits");
        let files = c.commit_job(&[]).expect("commit job");
        assert_eq!(files, vec![out.join("part-r-00000"), out.join("part-r-00001")]);
        assert_eq!(fs::read_to_string(out.join("part-r-00000")).expect("read"), "r-00000#2");
        assert!(out.join(SUCCESS_MARKER).exists());
        assert!(!out.join(TEMPORARY).exists());
    }

    #[test]
    fn abort_removes_the_output_it_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let c = OutputCommitter::setup(&out).expect("setup");
        fs::create_dir_all(c.attempt_dir(attempt(0, 1))).expect("mkdir");
        c.abort_job();
        assert!(!out.exists());
    }
}
