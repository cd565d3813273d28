//! One worker as the coordinator sees it.

use super::*;

/// One worker.
#[derive(Debug, Clone)]
pub struct Worker {
    /// What it registered with.
    pub row: StoredWorker,
    /// Attempts it runs now.
    pub running: HashSet<(JobId, AttemptId)>,
    /// Attempts to tell it to stop, at its next heartbeat.
    pub(super) cancels: Vec<(JobId, AttemptId)>,
    /// Ended jobs whose data it may delete.
    pub(super) forget: Vec<JobId>,
    /// Whether it is alive (not lost).
    pub alive: bool,
    /// Jobs that excluded it, and when: enough of them exclude it from
    /// the cluster.
    pub(super) excluded_by: BTreeMap<JobId, i64>,
    /// Excluded from every job until then (ms since the epoch; 0: never).
    pub blacklisted_until_ms: i64,
}

impl Worker {
    pub(super) fn new(row: StoredWorker, alive: bool) -> Worker {
        Worker {
            row,
            running: HashSet::new(),
            cancels: Vec::new(),
            forget: Vec::new(),
            alive,
            excluded_by: BTreeMap::new(),
            blacklisted_until_ms: 0,
        }
    }

    /// Whether it is excluded from every job now.
    pub fn blacklisted(&self, now_ms: i64) -> bool {
        self.blacklisted_until_ms > now_ms
    }
}
