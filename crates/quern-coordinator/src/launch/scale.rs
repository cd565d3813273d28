//! When to launch workers and when to remove them: a pure state machine
//! over the cluster's [`Demand`], with no clock of its own (every call is
//! given the time), unit-tested decision by decision.

use std::collections::BTreeMap;

use quern_core::{JobId, WorkerId};

/// The launcher's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScalePolicy {
    /// Launched workers kept even when idle.
    pub min: u32,
    /// Launched workers at most (those added by hand included).
    pub max: u32,
    /// Attempts each launched worker runs at once.
    pub slots: u32,
    /// A launched worker idle this long (nothing running, no data a running
    /// job needs) is removed, down to `min`.
    pub idle_timeout_ms: i64,
    /// A launched worker not registered this long after its launch is
    /// removed and counts as a failed launch.
    pub start_timeout_ms: i64,
    /// The first wait after a failed launch; it doubles with each failure in
    /// a row, up to `max_backoff_ms`, and resets when a launched worker
    /// registers.
    pub backoff_ms: i64,
    /// The longest wait between failed launches.
    pub max_backoff_ms: i64,
}

impl ScalePolicy {
    /// Between `min` and `max` workers of `slots` each, removed after
    /// `idle_timeout_ms` idle; 5 minutes to start, backoff from 5 s to 5 min.
    pub fn new(min: u32, max: u32, slots: u32, idle_timeout_ms: i64) -> ScalePolicy {
        ScalePolicy {
            min,
            max,
            slots: slots.max(1),
            idle_timeout_ms,
            start_timeout_ms: 5 * 60 * 1000,
            backoff_ms: 5_000,
            max_backoff_ms: 5 * 60 * 1000,
        }
    }
}

/// What the cluster needs, as the coordinator sees it now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Demand {
    /// Tasks that could run now and wait for a slot, plus submissions that
    /// wait for a worker to plan them.
    pub queued: u32,
    /// The job with the most queued work, highest priority first (the job
    /// a worker launched now is labelled with).
    pub for_job: Option<JobId>,
    /// The registered workers.
    pub workers: Vec<WorkerLoad>,
}

/// One registered worker's load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerLoad {
    /// Its id.
    pub id: WorkerId,
    /// Its slots.
    pub slots: u32,
    /// Attempts it runs.
    pub running: u32,
    /// Whether it holds map outputs a job that has not ended may still read.
    pub holds_data: bool,
    /// Alive and not drained or deregistered: it may be given work.
    pub usable: bool,
}

/// Why a worker was launched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchReason {
    /// Queued work (the job with the most of it), or `min`.
    Demand(Option<JobId>),
    /// An admin's `quern workers add`: kept until removed by hand.
    ByHand,
}

/// A worker this coordinator launched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launched {
    /// When.
    pub at_ms: i64,
    /// Why.
    pub reason: LaunchReason,
    /// Whether it has registered.
    pub registered: bool,
    /// Idle since then (registered, nothing running, no data needed).
    pub idle_since_ms: Option<i64>,
    /// Being removed.
    pub retiring: bool,
}

/// What to do now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScalePlan {
    /// Workers to launch, each for this job (`None`: for `min`).
    pub launch: Vec<Option<JobId>>,
    /// Launched workers to remove: idle past the timeout, or not started in
    /// time (those are also in `timed_out`).
    pub retire: Vec<WorkerId>,
    /// Launched workers that did not register within the start timeout.
    pub timed_out: Vec<WorkerId>,
}

/// The launcher's bookkeeping: which workers it launched, and its backoff.
#[derive(Debug, Clone)]
pub struct Autoscaler {
    policy: ScalePolicy,
    launched: BTreeMap<WorkerId, Launched>,
    /// Launches under way (asked for, not yet named by the launcher).
    in_flight: u32,
    failures_in_a_row: u32,
    no_launch_before_ms: i64,
}

impl Autoscaler {
    /// Nothing launched yet.
    pub fn new(policy: ScalePolicy) -> Autoscaler {
        Autoscaler { policy, launched: BTreeMap::new(), in_flight: 0, failures_in_a_row: 0, no_launch_before_ms: 0 }
    }

    /// The policy.
    pub fn policy(&self) -> &ScalePolicy {
        &self.policy
    }

    /// The workers launched and not gone.
    pub fn launched(&self) -> &BTreeMap<WorkerId, Launched> {
        &self.launched
    }

    /// When the next launch may happen, if a failure holds launches back.
    pub fn backoff_until_ms(&self) -> Option<i64> {
        (self.failures_in_a_row > 0).then_some(self.no_launch_before_ms)
    }

    /// Takes workers found running at start (a restarted coordinator's
    /// pods) as launched by it, registered or not.
    pub fn adopt(&mut self, id: WorkerId, now_ms: i64) {
        self.launched.entry(id).or_insert(Launched {
            at_ms: now_ms,
            reason: LaunchReason::Demand(None),
            registered: false,
            idle_since_ms: None,
            retiring: false,
        });
    }

    /// What to do given `demand` at `now_ms`. Launches it returns are
    /// counted as under way until [`Autoscaler::launched_ok`] or
    /// [`Autoscaler::launch_failed`].
    pub fn plan(&mut self, demand: &Demand, now_ms: i64) -> ScalePlan {
        let p = self.policy;
        let mut plan = ScalePlan::default();
        let loads: BTreeMap<&WorkerId, &WorkerLoad> = demand.workers.iter().map(|w| (&w.id, w)).collect();
        for (id, l) in self.launched.iter_mut() {
            match loads.get(id) {
                Some(load) => {
                    if !l.registered {
                        l.registered = true;
                        // A launched worker came up: launches work again.
                        self.failures_in_a_row = 0;
                        self.no_launch_before_ms = 0;
                    }
                    let idle = load.running == 0 && !load.holds_data;
                    match (idle, l.idle_since_ms) {
                        (true, None) => l.idle_since_ms = Some(now_ms),
                        (false, _) => l.idle_since_ms = None,
                        (true, Some(_)) => {}
                    }
                }
                None if !l.registered && !l.retiring && now_ms - l.at_ms >= p.start_timeout_ms => {
                    plan.timed_out.push(id.clone());
                }
                None => {}
            }
        }
        for id in &plan.timed_out {
            self.retire(id);
            self.note_failure(now_ms);
        }
        plan.retire.extend(plan.timed_out.iter().cloned());

        // Capacity: the slots of usable workers, and of launched workers
        // still starting (they will have `slots` each).
        let starting =
            self.launched.iter().filter(|(_, l)| !l.registered && !l.retiring).count() as u32 + self.in_flight;
        let usable_slots: u32 = demand.workers.iter().filter(|w| w.usable).map(|w| w.slots).sum();
        let running: u32 = demand.workers.iter().filter(|w| w.usable).map(|w| w.running).sum();
        let capacity = usable_slots + starting * p.slots;
        let needed = running + demand.queued;
        let alive = self.alive_count();
        let mut want = 0;
        if needed > capacity {
            want = (needed - capacity).div_ceil(p.slots);
        }
        if alive < p.min {
            want = want.max(p.min - alive);
        }
        let room = p.max.saturating_sub(alive);
        let want = want.min(room);
        if want > 0 && now_ms >= self.no_launch_before_ms {
            let for_job = if demand.queued > 0 { demand.for_job } else { None };
            plan.launch = vec![for_job; want as usize];
            self.in_flight += want;
        }

        // Idle workers past the timeout go, down to `min`, while nothing is
        // queued, longest idle first.
        if demand.queued == 0 {
            let mut idle: Vec<(i64, WorkerId)> = self
                .launched
                .iter()
                .filter(|(_, l)| !l.retiring && l.reason != LaunchReason::ByHand)
                .filter_map(|(id, l)| l.idle_since_ms.map(|since| (since, id.clone())))
                .filter(|(since, _)| now_ms - since >= p.idle_timeout_ms)
                .collect();
            idle.sort();
            let mut alive = self.alive_count();
            for (_, id) in idle {
                if alive <= p.min {
                    break;
                }
                self.retire(&id);
                plan.retire.push(id);
                alive -= 1;
            }
        }
        plan
    }

    /// An admin asks for `n` more workers now (within `max`); returns how
    /// many to launch, which are counted as under way.
    pub fn add_by_hand(&mut self, n: u32) -> u32 {
        let n = n.min(self.policy.max.saturating_sub(self.alive_count()));
        self.in_flight += n;
        n
    }

    /// A launch asked for by `plan` or `add_by_hand` succeeded: the
    /// launcher named the worker.
    pub fn launched_ok(&mut self, id: WorkerId, reason: LaunchReason, now_ms: i64) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.launched
            .insert(id, Launched { at_ms: now_ms, reason, registered: false, idle_since_ms: None, retiring: false });
    }

    /// A launch failed (the launcher refused it): later launches wait.
    pub fn launch_failed(&mut self, now_ms: i64) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.note_failure(now_ms);
    }

    /// A launched worker is being removed (by plan or by hand).
    pub fn retire(&mut self, id: &WorkerId) {
        if let Some(l) = self.launched.get_mut(id) {
            l.retiring = true;
        }
    }

    /// A launched worker is gone (its pod or process ended). Returns
    /// whether it had launched at all: one that never registered and was
    /// not being removed is a failed launch, and later launches wait.
    pub fn gone(&mut self, id: &WorkerId, now_ms: i64) -> Option<Launched> {
        let l = self.launched.remove(id)?;
        if !l.registered && !l.retiring {
            self.note_failure(now_ms);
        }
        Some(l)
    }

    fn note_failure(&mut self, now_ms: i64) {
        let p = self.policy;
        let exponent = self.failures_in_a_row.min(16);
        let wait = p.backoff_ms.saturating_mul(1i64 << exponent).min(p.max_backoff_ms);
        self.failures_in_a_row += 1;
        self.no_launch_before_ms = now_ms + wait;
    }

    fn alive_count(&self) -> u32 {
        self.launched.values().filter(|l| !l.retiring).count() as u32 + self.in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ScalePolicy {
        ScalePolicy { start_timeout_ms: 60_000, ..ScalePolicy::new(0, 4, 2, 10_000) }
    }

    fn load(id: &str, running: u32) -> WorkerLoad {
        WorkerLoad { id: WorkerId::from(id), slots: 2, running, holds_data: false, usable: true }
    }

    fn job(n: u64) -> Option<JobId> {
        Some(JobId(n))
    }

    /// Launches what `plan` asked for, naming them w0, w1, ….
    fn launch_all(a: &mut Autoscaler, plan: &ScalePlan, now: i64, next: &mut u32) -> Vec<WorkerId> {
        plan.launch
            .iter()
            .map(|for_job| {
                let id = WorkerId::from(format!("w{next}").as_str());
                *next += 1;
                a.launched_ok(id.clone(), LaunchReason::Demand(*for_job), now);
                id
            })
            .collect()
    }

    #[test]
    fn queued_work_launches_enough_workers_for_it_within_max() {
        let mut a = Autoscaler::new(policy());
        let plan = a.plan(&Demand { queued: 3, for_job: job(7), workers: vec![] }, 0);
        assert_eq!(plan.launch, vec![job(7), job(7)], "3 tasks, 2 slots each");
        // Asked again before they register: they count as capacity.
        assert!(a.plan(&Demand { queued: 3, for_job: job(7), workers: vec![] }, 100).launch.is_empty());
        let plan = a.plan(&Demand { queued: 50, for_job: job(7), workers: vec![] }, 200);
        assert_eq!(plan.launch.len(), 2, "up to max 4 in all");
        assert!(a.plan(&Demand { queued: 500, for_job: job(7), workers: vec![] }, 300).launch.is_empty());
    }

    #[test]
    fn registered_workers_and_standalone_ones_count_as_capacity() {
        let mut a = Autoscaler::new(policy());
        let demand = Demand { queued: 1, for_job: job(1), workers: vec![load("standalone", 1)] };
        assert!(a.plan(&demand, 0).launch.is_empty(), "the standalone worker has a free slot");
        let demand = Demand { queued: 2, for_job: job(1), workers: vec![load("standalone", 2)] };
        assert_eq!(a.plan(&demand, 0).launch.len(), 1);
    }

    #[test]
    fn min_workers_are_launched_without_work_and_never_retired() {
        let mut a = Autoscaler::new(ScalePolicy { min: 1, ..policy() });
        let plan = a.plan(&Demand::default(), 0);
        assert_eq!(plan.launch, vec![None]);
        let mut next = 0;
        let ids = launch_all(&mut a, &plan, 0, &mut next);
        let demand = Demand { workers: vec![load(ids[0].as_str(), 0)], ..Demand::default() };
        for t in [1_000, 60_000, 600_000] {
            let plan = a.plan(&demand, t);
            assert!(plan.launch.is_empty() && plan.retire.is_empty(), "at {t}: {plan:?}");
        }
    }

    #[test]
    fn idle_workers_go_after_the_timeout_but_not_while_they_hold_data_or_work_waits() {
        let mut a = Autoscaler::new(policy());
        let plan = a.plan(&Demand { queued: 4, for_job: job(1), workers: vec![] }, 0);
        let mut next = 0;
        let ids = launch_all(&mut a, &plan, 0, &mut next);
        let busy = Demand { queued: 0, for_job: None, workers: vec![load("w0", 2), load("w1", 2)] };
        assert!(a.plan(&busy, 1_000).retire.is_empty());
        // w0 holds map outputs a reduce still needs; w1 is idle.
        let mut idle = Demand { queued: 0, for_job: None, workers: vec![load("w0", 0), load("w1", 0)] };
        idle.workers[0].holds_data = true;
        assert!(a.plan(&idle, 2_000).retire.is_empty(), "idle only from now");
        assert!(a.plan(&idle, 11_000).retire.is_empty(), "9 s idle < 10 s");
        // Queued work keeps everyone.
        let queued = Demand { queued: 1, ..idle.clone() };
        assert!(a.plan(&queued, 12_500).retire.is_empty());
        assert_eq!(a.plan(&idle, 12_500).retire, vec![ids[1].clone()]);
        // Retired once.
        assert!(a.plan(&idle, 13_000).retire.is_empty());
        a.gone(&ids[1], 14_000);
        idle.workers[0].holds_data = false;
        assert!(a.plan(&idle, 15_000).retire.is_empty(), "w0 is idle only from now");
        assert_eq!(a.plan(&idle, 25_000).retire, vec![ids[0].clone()]);
        assert!(a.launched().values().all(|l| l.retiring));
    }

    #[test]
    fn a_worker_that_never_starts_is_removed_and_launches_back_off_until_one_registers() {
        let mut a = Autoscaler::new(policy());
        let demand = Demand { queued: 2, for_job: job(3), workers: vec![] };
        let plan = a.plan(&demand, 0);
        let mut next = 0;
        let ids = launch_all(&mut a, &plan, 0, &mut next);
        assert_eq!(ids.len(), 1);
        let plan = a.plan(&demand, 60_000);
        assert_eq!(plan.timed_out, ids, "not registered within a minute");
        assert_eq!(plan.retire, ids);
        assert!(plan.launch.is_empty(), "the failure holds launches back");
        assert_eq!(a.backoff_until_ms(), Some(65_000));
        let plan = a.plan(&demand, 65_000);
        assert_eq!(plan.launch.len(), 1, "after 5 s");
        a.launch_failed(65_000);
        assert_eq!(a.backoff_until_ms(), Some(75_000), "the wait doubles");
        assert!(a.plan(&demand, 74_999).launch.is_empty());
        let plan = a.plan(&demand, 75_000);
        let ids = launch_all(&mut a, &plan, 75_000, &mut next);
        // It registers: the backoff is over.
        let demand = Demand { queued: 2, for_job: job(3), workers: vec![load(ids[0].as_str(), 2)] };
        a.plan(&demand, 76_000);
        assert_eq!(a.backoff_until_ms(), None);
    }

    #[test]
    fn a_pod_that_dies_before_registering_counts_as_a_failed_launch_and_one_retired_does_not() {
        let mut a = Autoscaler::new(policy());
        let plan = a.plan(&Demand { queued: 4, for_job: job(1), workers: vec![] }, 0);
        let mut next = 0;
        let ids = launch_all(&mut a, &plan, 0, &mut next);
        a.retire(&ids[0]);
        assert!(a.gone(&ids[0], 10).is_some());
        assert_eq!(a.backoff_until_ms(), None, "removed on purpose");
        assert!(a.gone(&ids[1], 20).is_some());
        assert_eq!(a.backoff_until_ms(), Some(5_020), "died before it registered");
        assert!(a.gone(&ids[1], 30).is_none(), "once");
    }

    #[test]
    fn workers_added_by_hand_stay_when_idle_and_respect_max() {
        let mut a = Autoscaler::new(policy());
        assert_eq!(a.add_by_hand(10), 4);
        for i in 0..4 {
            a.launched_ok(WorkerId::from(format!("h{i}").as_str()), LaunchReason::ByHand, 0);
        }
        assert_eq!(a.add_by_hand(1), 0, "at max");
        let idle = Demand { workers: (0..4).map(|i| load(&format!("h{i}"), 0)).collect(), ..Demand::default() };
        a.plan(&idle, 0);
        assert!(a.plan(&idle, 1_000_000).retire.is_empty());
    }
}
