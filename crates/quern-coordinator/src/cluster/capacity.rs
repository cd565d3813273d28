//! What a worker launcher needs to know and tell: the work waiting for
//! slots and each worker's load ([`Cluster::demand`]), and the end of a
//! worker it launched, with the reason its platform gave
//! ([`Cluster::worker_ended`]).

use super::*;
use crate::launch::{Demand, WorkerLoad};

impl Cluster {
    /// The work waiting for a slot, and each registered worker's load.
    pub fn demand(&self) -> Demand {
        let mut queued = 0u32;
        // The job with the most queued work, highest priority first.
        let mut best: Option<(i32, u32, JobId)> = None;
        let mut holders: HashSet<&str> = HashSet::new();
        for job in self.jobs.values() {
            if job.phase.is_terminal() {
                continue;
            }
            let Some(sched) = job.sched.as_ref() else { continue };
            let kind = match sched.state() {
                JobState::Mapping => TaskKind::Map,
                JobState::Reducing => TaskKind::Reduce,
                _ => continue,
            };
            let waiting = sched.progress(kind).pending;
            queued += waiting;
            if waiting > 0 && best.is_none_or(|(p, w, _)| (job.priority, waiting) > (p, w)) {
                best = Some((job.priority, waiting, job.id));
            }
            if job.plan.shuffle.is_none() {
                holders.extend(job.map_outputs.iter().flatten().map(|l| l.worker_id.as_str()));
            }
        }
        // A submission waits for a worker that has its app to plan it.
        queued += self.plans.len() as u32;
        let workers = self
            .workers
            .values()
            .filter(|w| w.alive)
            .map(|w| WorkerLoad {
                id: w.row.id.clone(),
                slots: w.row.slots,
                running: w.running.len() as u32,
                holds_data: holders.contains(w.row.id.as_str()),
                usable: w.row.admin == WorkerAdmin::Enabled,
            })
            .collect();
        Demand { queued, for_job: best.map(|(_, _, id)| id), workers }
    }

    /// A worker the launcher started has ended (its pod or process is
    /// gone), for `why` (Kubernetes' reason and message: `OOMKilled`,
    /// `Evicted`, …). A registered worker is lost now, rather than after
    /// its heartbeats stop: its attempts run again elsewhere, and each job
    /// that had work on it records why. One that never registered is
    /// recorded on the job it was launched for.
    pub fn worker_ended(&mut self, id: &WorkerId, why: &str, for_job: Option<JobId>, now_ms: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        match self.workers.get(id.as_str()) {
            Some(w) if w.alive => self.lose_worker(id.as_str(), why, now_ms, &mut effects),
            Some(_) => {}
            None => {
                if let Some(job) = for_job.filter(|j| self.jobs.get(j).is_some_and(|j| !j.phase.is_terminal())) {
                    effects.push(Effect::JobEvent(JobEvent {
                        job,
                        at_ms: now_ms,
                        reason: "WorkerNotStarted".to_owned(),
                        message: format!("worker {id}, launched for this job, ended before it registered: {why}"),
                    }));
                }
            }
        }
        effects
    }

    /// Records an event on `job` (what a launcher saw: a pod waiting for
    /// an image or a node), if the job has not ended.
    pub fn note_job_event(&self, job: JobId, reason: &str, message: &str, now_ms: i64) -> Vec<Effect> {
        if self.jobs.get(&job).is_none_or(|j| j.phase.is_terminal()) {
            return Vec::new();
        }
        vec![Effect::JobEvent(JobEvent { job, at_ms: now_ms, reason: reason.to_owned(), message: message.to_owned() })]
    }
}
