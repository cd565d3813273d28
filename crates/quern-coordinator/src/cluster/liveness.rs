//! Workers coming and going: registration (and the data a returning worker
//! may delete), heartbeats, and the periodic check for lost workers and
//! hung attempts.

use super::*;

impl Cluster {
    /// A worker (re)registers. Attempts it was thought to run are lost: a
    /// registering worker has none.
    pub fn register(&mut self, row: StoredWorker, now_ms: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.replan_from(&row.id);
        if let Some(old) = self.workers.get(&row.id) {
            let running: Vec<(JobId, AttemptId)> = old.running.iter().copied().collect();
            for (job, attempt) in running {
                self.lose_attempt(job, attempt, AttemptEnd::Lost, "the worker restarted", now_ms, &mut effects);
            }
        }
        let id = row.id.clone();
        let mut row = row;
        row.state = WorkerState::Alive;
        row.last_heartbeat_ms = now_ms;
        let mut worker = Worker::new(row, true);
        if let Some(old) = self.workers.get(&id) {
            // A restart clears neither a worker's record of failures nor
            // an admin's drain.
            worker.excluded_by = old.excluded_by.clone();
            worker.blacklisted_until_ms = old.blacklisted_until_ms;
            worker.row.admin = old.row.admin;
        }
        effects.push(Effect::Worker(worker.row.clone()));
        self.workers.insert(id, worker);
        effects
    }

    /// A heartbeat: progress of the worker's attempts. Returns the answer
    /// (register again, attempts to cancel, jobs to forget) and the
    /// effects: attempts taken back from the stored state that the worker
    /// does not run are lost.
    pub fn heartbeat(
        &mut self,
        worker_id: &str,
        progress: &[(JobId, AttemptId, f64, u64)],
        now_ms: i64,
    ) -> (HeartbeatAnswer, Vec<Effect>) {
        let Some(worker) = self.workers.get_mut(worker_id).filter(|w| w.alive) else {
            let answer =
                HeartbeatAnswer { reregister: true, cancel: Vec::new(), forget_jobs: Vec::new(), plans: Vec::new() };
            return (answer, Vec::new());
        };
        worker.row.last_heartbeat_ms = now_ms;
        let mut cancels = std::mem::take(&mut worker.cancels);
        let forget = std::mem::take(&mut worker.forget);
        for &(job, attempt, fraction, records) in progress {
            let known =
                self.jobs.get_mut(&job).and_then(|j| j.running.get_mut(&attempt)).filter(|r| r.worker == worker_id);
            match known {
                Some(r) => {
                    r.adopted = false;
                    if records != r.records || fraction > r.fraction {
                        r.last_progress_ms = now_ms;
                    }
                    r.records = records;
                    r.fraction = fraction;
                }
                // An attempt the coordinator does not know of (it restarted,
                // or gave up on the attempt): stop it.
                None => cancels.push((job, attempt)),
            }
        }
        cancels.sort_by_key(|(j, a)| (*j, a.task, a.attempt));
        cancels.dedup();
        // Attempts taken back after a restart that the worker does not
        // list: it never got them (the answer to its poll was lost), or
        // lost them. Every other running attempt it lists from its start.
        let missing: Vec<(JobId, AttemptId)> = self.workers[worker_id]
            .running
            .iter()
            .copied()
            .filter(|&(job, attempt)| {
                self.jobs.get(&job).and_then(|j| j.running.get(&attempt)).is_some_and(|r| r.adopted)
                    && !progress.iter().any(|&(j, a, _, _)| j == job && a == attempt)
            })
            .collect();
        let mut effects = Vec::new();
        for (job, attempt) in missing {
            if let Some(w) = self.workers.get_mut(worker_id) {
                w.running.remove(&(job, attempt));
            }
            self.lose_attempt(job, attempt, AttemptEnd::Lost, "its worker does not run it", now_ms, &mut effects);
            self.settle(job, now_ms, &mut effects);
        }
        let plans = self.plans_for(worker_id);
        (HeartbeatAnswer { reregister: false, cancel: cancels, forget_jobs: forget, plans }, effects)
    }

    /// Of the jobs a (re)starting worker still holds data of, the ones it
    /// may delete: unknown, or ended at least the retention ago.
    pub fn ended_jobs(&self, held: &[JobId], now_ms: i64) -> Vec<JobId> {
        held.iter().copied().filter(|id| self.jobs.get(id).is_none_or(|j| self.past_retention(j, now_ms))).collect()
    }

    /// Periodic checks: lost workers, hung attempts, ended jobs whose
    /// retention passed.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.release_ended_jobs(now_ms);
        let lost: Vec<WorkerId> = self
            .workers
            .values()
            .filter(|w| w.alive && now_ms - w.row.last_heartbeat_ms > self.policy.worker_timeout_ms)
            .map(|w| w.row.id.clone())
            .collect();
        for id in lost {
            self.lose_worker(&id, "no heartbeat", now_ms, &mut effects);
        }
        let mut hung = Vec::new();
        for job in self.jobs.values() {
            for (a, r) in &job.running {
                if now_ms - r.last_progress_ms > self.policy.task_timeout_ms {
                    hung.push((job.id, *a, r.worker.clone()));
                }
            }
        }
        for (job_id, attempt, worker) in hung {
            let secs = self.policy.task_timeout_ms as f64 / 1000.0;
            tracing::warn!(job = %job_id, %attempt, worker = %worker, "no progress for {secs}s: failing the attempt");
            if let Some(w) = self.workers.get_mut(&worker) {
                w.cancels.push((job_id, attempt));
                w.running.remove(&(job_id, attempt));
            }
            let Some(job) = self.jobs.get_mut(&job_id) else { continue };
            job.running.remove(&attempt);
            let mut counted = false;
            if let Some(sched) = job.sched.as_mut() {
                let failure = Failure { message: format!("no progress for {secs}s (hung?)"), retryable: true };
                counted = sched.attempt_ended(attempt, AttemptResult::Failed(failure)).counts_as_failure();
                if let Some(row) = job.task_row(attempt.task) {
                    effects.push(Effect::Task(job_id, row));
                }
            }
            if counted {
                self.note_failure(job_id, &worker, attempt.task, now_ms);
            }
            effects.push(Effect::AttemptEnded {
                job: job_id,
                attempt,
                outcome: AttemptEnd::Failed,
                error: format!("no progress for {secs}s"),
                log: None,
                counters: None,
                output_digest: None,
                at_ms: now_ms,
            });
            self.settle(job_id, now_ms, &mut effects);
        }
        effects
    }

    /// Declares a worker lost: its attempts run again elsewhere, and the map
    /// outputs it held are made again where a reduce still needs them.
    pub(super) fn lose_worker(&mut self, id: &str, why: &str, now_ms: i64, effects: &mut Vec<Effect>) {
        let Some(worker) = self.workers.get_mut(id) else { return };
        tracing::warn!(worker = %id, "worker lost: {why}");
        worker.alive = false;
        worker.row.state = WorkerState::Lost;
        self.replan_from(id);
        let Some(worker) = self.workers.get_mut(id) else { return };
        worker.cancels.clear();
        let running: Vec<(JobId, AttemptId)> = worker.running.drain().collect();
        effects.push(Effect::Worker(worker.row.clone()));
        // What each job lost with it, for the job's events.
        let mut lost: BTreeMap<JobId, Vec<String>> = BTreeMap::new();
        for (job, attempt) in running {
            lost.entry(job).or_default().push(format!("attempt {attempt}"));
            let why = format!("its worker was lost ({why})");
            self.lose_attempt(job, attempt, AttemptEnd::Lost, &why, now_ms, effects);
        }
        let job_ids: Vec<JobId> = self.jobs.keys().copied().collect();
        for job_id in job_ids {
            let job = self.jobs.get_mut(&job_id).expect("invariant: listed above");
            let Some(sched) = job.sched.as_mut() else { continue };
            if job.phase.is_terminal() {
                continue;
            }
            // Map outputs shuffled through storage outlive their worker.
            if job.plan.shuffle.is_some() {
                continue;
            }
            let reduces_left = sched.progress(TaskKind::Reduce);
            if reduces_left.total > 0 && reduces_left.succeeded == reduces_left.total {
                continue;
            }
            let held: Vec<u32> = (0..job.map_outputs.len() as u32)
                .filter(|&m| job.map_outputs[m as usize].as_ref().is_some_and(|l| l.worker_id == id))
                .collect();
            let requeued: Vec<u32> = held.into_iter().filter(|&m| sched.map_output_lost(m)).collect();
            if !requeued.is_empty() {
                lost.entry(job_id).or_default().push(format!("the output of {} map(s)", requeued.len()));
            }
            for m in requeued {
                job.forget_map_output(m);
                if let Some(row) = job.task_row(TaskId { kind: TaskKind::Map, index: m }) {
                    effects.push(Effect::Task(job_id, row));
                }
            }
            self.settle(job_id, now_ms, effects);
        }
        for (job, what) in lost {
            effects.push(Effect::JobEvent(JobEvent {
                job,
                at_ms: now_ms,
                reason: "WorkerLost".to_owned(),
                message: format!("worker {id} was lost ({why}): {} run again", what.join(", ")),
            }));
        }
    }

    pub(super) fn lose_attempt(
        &mut self,
        job_id: JobId,
        attempt: AttemptId,
        outcome: AttemptEnd,
        why: &str,
        now_ms: i64,
        effects: &mut Vec<Effect>,
    ) {
        let Some(job) = self.jobs.get_mut(&job_id) else { return };
        job.running.remove(&attempt);
        if let Some(sched) = job.sched.as_mut() {
            sched.attempt_ended(attempt, AttemptResult::Lost);
            if let Some(row) = job.task_row(attempt.task) {
                effects.push(Effect::Task(job_id, row));
            }
        }
        if !job.phase.is_terminal() {
            self.storage_work.push(job.abort_task(attempt));
        }
        effects.push(Effect::AttemptEnded {
            job: job_id,
            attempt,
            outcome,
            error: why.to_owned(),
            log: None,
            counters: None,
            output_digest: None,
            at_ms: now_ms,
        });
    }
}
