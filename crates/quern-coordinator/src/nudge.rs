//! Nudges: how workers learn at once that something waits for them.
//!
//! Workers pull: they poll for attempts and heartbeat for the rest (specs
//! to plan, attempts to cancel, ended jobs to forget). Pulling on a timer
//! makes every step of a small job wait for the next tick, so the
//! coordinator also counts the changes that may have created something to
//! pull, and workers watch the counts (`WatchWork`) and pull as soon as one
//! moves. A nudge carries no work, only "ask now": a lost or coalesced
//! nudge costs a tick of latency, never an attempt, and a worker that
//! cannot watch still works at the pace of its timers.

use crate::cluster::Effect;
use crate::state::JobPhase;

/// How many times each kind of nudge was given since the coordinator
/// started. A watcher compares them with what it saw last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Nudges {
    /// A task may be waiting: workers with a free slot poll.
    pub poll: u64,
    /// A heartbeat answer may carry something: workers heartbeat.
    pub heartbeat: u64,
}

impl Nudges {
    /// Which kinds moved from `before` to `self`.
    pub fn since(&self, before: &Nudges) -> Nudge {
        Nudge { poll: self.poll != before.poll, heartbeat: self.heartbeat != before.heartbeat }
    }

    /// Counts `nudge` in; false if it is empty (nothing to tell).
    pub(crate) fn add(&mut self, nudge: Nudge) -> bool {
        self.poll += u64::from(nudge.poll);
        self.heartbeat += u64::from(nudge.heartbeat);
        nudge.poll || nudge.heartbeat
    }
}

/// What to tell workers to ask for now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Nudge {
    /// Poll for attempts.
    pub poll: bool,
    /// Heartbeat.
    pub heartbeat: bool,
}

impl Nudge {
    /// Poll now.
    pub(crate) const POLL: Nudge = Nudge { poll: true, heartbeat: false };
    /// Heartbeat now.
    pub(crate) const HEARTBEAT: Nudge = Nudge { poll: false, heartbeat: true };

    /// Both this and `other`.
    pub(crate) fn and(self, other: Nudge) -> Nudge {
        Nudge { poll: self.poll || other.poll, heartbeat: self.heartbeat || other.heartbeat }
    }

    /// What a decision's effects may have left for workers to pull. An
    /// attempt's start changes nothing for other workers (it came from a
    /// poll); its end may free a retry, the reduces behind a map, or the
    /// commit that ends the job; a job that ends leaves attempts to cancel
    /// and data to forget; a worker that comes, goes or is enabled moves
    /// attempts and plans.
    pub(crate) fn after(effects: &[Effect]) -> Nudge {
        effects.iter().fold(Nudge::default(), |nudge, effect| {
            nudge.and(match effect {
                Effect::AttemptEnded { .. } => Nudge::POLL,
                Effect::Job(update) if update.state.is_terminal() => Nudge::HEARTBEAT,
                Effect::Job(update) if update.state == JobPhase::Pending => Nudge::POLL,
                Effect::Worker(_) => Nudge::POLL.and(Nudge::HEARTBEAT),
                Effect::Job(_) | Effect::Task(..) | Effect::AttemptStarted { .. } | Effect::JobEvent(_) => {
                    Nudge::default()
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_move_only_for_what_was_nudged() {
        let mut counts = Nudges::default();
        let before = counts;
        assert!(!counts.add(Nudge::default()));
        assert_eq!(counts.since(&before), Nudge::default());
        assert!(counts.add(Nudge::POLL));
        assert_eq!(counts.since(&before), Nudge::POLL);
        assert!(counts.add(Nudge::HEARTBEAT.and(Nudge::POLL)));
        assert_eq!(counts, Nudges { poll: 2, heartbeat: 1 });
    }
}
