//! Submitted specs waiting to be planned. The coordinator never runs user
//! code, and building an app from its parameters and asking its input format
//! whether files split is user code: a worker that has the app plans the
//! spec (in a child process) and reports the plan. A spec is handed to one
//! worker at a time, in a heartbeat answer; if that worker is lost, it goes
//! to another. Nothing here is stored: a submission waits for its plan in
//! the call that submitted it, and a coordinator restart ends that call.

use std::sync::Arc;

use super::*;

/// A spec waiting for its plan.
#[derive(Debug)]
pub(super) struct PendingPlan {
    app: String,
    spec_json: Arc<str>,
    /// The worker planning it now.
    handed_to: Option<WorkerId>,
}

impl Cluster {
    /// Queues `spec` for planning; returns its ticket.
    pub fn request_plan(&mut self, spec: &JobSpec, spec_json: String) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let pending = PendingPlan { app: spec.app.clone(), spec_json: spec_json.into(), handed_to: None };
        self.plans.insert(ticket, pending);
        ticket
    }

    /// Ends a planning request (planned, refused, given up); false if it was
    /// not pending.
    pub fn plan_done(&mut self, ticket: u64) -> bool {
        self.plans.remove(&ticket).is_some()
    }

    /// The specs `worker_id` is to plan now: those of its apps that no
    /// worker is planning.
    pub(super) fn plans_for(&mut self, worker_id: &str) -> Vec<PlanRequest> {
        let Some(worker) = self.workers.get(worker_id).filter(|w| w.alive && w.row.admin == WorkerAdmin::Enabled)
        else {
            return Vec::new();
        };
        let mut handed = Vec::new();
        for (&ticket, pending) in &mut self.plans {
            if pending.handed_to.is_none() && worker.row.offers(&pending.app) {
                pending.handed_to = Some(worker_id.into());
                handed.push(PlanRequest { ticket, spec_json: pending.spec_json.clone() });
            }
        }
        handed
    }

    /// A worker was lost or restarted: the specs it was planning go to
    /// another.
    pub(super) fn replan_from(&mut self, worker_id: &str) {
        for pending in self.plans.values_mut() {
            if pending.handed_to.as_deref() == Some(worker_id) {
                pending.handed_to = None;
            }
        }
    }
}
