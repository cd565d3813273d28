//! The states the coordinator stores and shows, as typed enums: a job's
//! phase, how an attempt ended, whether a worker is alive. Each has one
//! stored name (`as_str`, `Display`); a stored name that is none of them is
//! corrupt state ([`Error::Corrupt`]), never a default.

use crate::error::Error;

/// Reads a stored name of `T`, refusing anything else as corrupt state.
fn parse<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, Error> {
    s.parse().map_err(|_| Error::Corrupt(format!("unknown {what} {s:?}")))
}

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumString, strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum JobPhase {
    /// Submitted; no attempt has started.
    Pending,
    /// Attempts have started.
    Running,
    /// Committed.
    Succeeded,
    /// Failed.
    Failed,
    /// Killed.
    Killed,
}

impl JobPhase {
    /// The stored (and shown) name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Result<JobPhase, Error> {
        parse(s, "job state")
    }

    /// Whether the job has ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobPhase::Succeeded | JobPhase::Failed | JobPhase::Killed)
    }
}

/// A chain's state (a multi-step job).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumString, strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum ChainPhase {
    /// A step's job is pending or running, or the next one is being
    /// submitted.
    Running,
    /// Its last step succeeded.
    Succeeded,
    /// A step failed or was killed; it may be resumed from that step.
    Failed,
}

impl ChainPhase {
    /// The stored (and shown) name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Result<ChainPhase, Error> {
        parse(s, "chain state")
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumString, strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum AttemptEnd {
    /// It succeeded and its output was committed.
    Succeeded,
    /// It succeeded, but another attempt had committed or it was given up.
    Discarded,
    /// It failed (counted against its task's limit).
    Failed,
    /// It failed after its task was decided: not counted.
    #[strum(serialize = "failed (stale)")]
    Stale,
    /// Its worker was lost or restarted.
    Lost,
    /// It could not read a map output: the map runs again.
    FetchFailed,
    /// It was stopped: its job ended, or another attempt won.
    Cancelled,
}

impl AttemptEnd {
    /// The stored (and shown) name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Result<AttemptEnd, Error> {
        parse(s, "attempt outcome")
    }
}

/// Whether a worker is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumString, strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum WorkerState {
    /// It heartbeats.
    Alive,
    /// It was silent past the worker timeout.
    Lost,
}

impl WorkerState {
    /// The stored (and shown) name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Result<WorkerState, Error> {
        parse(s, "worker state")
    }
}

/// What an admin decided about a worker, beside whether it is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumString, strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum WorkerAdmin {
    /// It gets work (the default).
    Enabled,
    /// It finishes the attempts it runs and gets no new ones.
    Draining,
    /// It was removed from the cluster: its attempts ran again elsewhere,
    /// and it may not register again until an admin enables it.
    Deregistered,
}

impl WorkerAdmin {
    /// The stored (and shown) name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Result<WorkerAdmin, Error> {
        parse(s, "worker admin state")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_round_trip_and_unknown_ones_are_corrupt() {
        for p in [JobPhase::Pending, JobPhase::Running, JobPhase::Succeeded, JobPhase::Failed, JobPhase::Killed] {
            assert_eq!(JobPhase::parse(p.as_str()).ok(), Some(p));
        }
        // The names stored before these types existed.
        let stored = ["succeeded", "discarded", "failed", "failed (stale)", "lost", "fetch_failed", "cancelled"];
        for name in stored {
            assert_eq!(AttemptEnd::parse(name).map(AttemptEnd::as_str).ok(), Some(name));
        }
        assert_eq!(WorkerState::parse("lost").ok(), Some(WorkerState::Lost));
        for a in [WorkerAdmin::Enabled, WorkerAdmin::Draining, WorkerAdmin::Deregistered] {
            assert_eq!(WorkerAdmin::parse(a.as_str()).ok(), Some(a));
        }
        assert!(WorkerAdmin::parse("paused").is_err());
        assert_eq!(JobPhase::Killed.to_string(), "killed");
        let err = AttemptEnd::parse("exploded").expect_err("unknown");
        assert!(err.to_string().contains("unknown attempt outcome \"exploded\""), "{err}");
    }
}

/// What a user of the REST API may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumString, strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum Role {
    /// Everything: every job, users and workers.
    Admin,
    /// Their own jobs.
    User,
}

impl Role {
    /// The stored (and shown) name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Result<Role, Error> {
        parse(s, "role")
    }
}
