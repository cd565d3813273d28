//! Which attempt goes to which worker: priority, fair share and age; a
//! failed task's retry away from where it failed; the per-job and
//! cluster-wide blacklists; backup attempts for stragglers.

use super::*;

impl Cluster {
    /// Hands a worker up to `free` attempts: highest priority first, then the
    /// job with the fewest running attempts (fair share), then the oldest.
    /// When nothing is pending, a straggler may get a backup attempt.
    pub fn poll(&mut self, worker_id: &str, free: u32, now_ms: i64) -> Result<(Vec<Assignment>, Vec<Effect>), Error> {
        let Some(worker) = self.workers.get(worker_id).filter(|w| w.alive) else {
            return Err(Error::BadRequest(format!("unknown worker {worker_id}: register first")));
        };
        // A draining worker finishes what it runs and gets nothing new.
        if worker.row.admin != WorkerAdmin::Enabled {
            return Ok((Vec::new(), Vec::new()));
        }
        let apps = worker.row.app_names();
        let mut out = Vec::new();
        let mut effects = Vec::new();
        for _ in 0..free {
            let mut candidates: Vec<(i32, usize, JobId)> = self
                .jobs
                .values()
                .filter(|j| !j.phase.is_terminal() && apps.contains(&j.spec.app))
                .map(|j| (-j.priority, j.running.len(), j.id))
                .collect();
            candidates.sort();
            let mut assigned = None;
            for &(_, _, id) in &candidates {
                let Some(avoid) = self.placement(id, worker_id, now_ms) else { continue };
                let job = self.jobs.get_mut(&id).expect("invariant: candidate jobs exist");
                let Some(sched) = job.sched.as_mut() else { continue };
                if let Next::Run(attempt) = sched.next_attempt_where(|t| !avoid.contains(&t)) {
                    assigned = Some((id, attempt));
                    break;
                }
            }
            if assigned.is_none() && self.policy.speculation {
                assigned = candidates.iter().find_map(|&(_, _, id)| {
                    self.placement(id, worker_id, now_ms)?;
                    self.backup_for(id, worker_id, now_ms)
                });
            }
            let Some((id, attempt)) = assigned else { break };
            out.push(self.start_attempt(id, attempt, worker_id, now_ms, &mut effects));
        }
        Ok((out, effects))
    }

    /// Where `worker_id` stands with job `id`: `None` if the job excludes it
    /// (attempts of several of its tasks failed there, or the whole cluster
    /// excludes it) while a healthy worker can run the job; otherwise the
    /// tasks it should not get, because they failed there and a healthy
    /// worker where they did not fail exists. Where no other worker can
    /// help, the worker is used anyway: a blacklist slows a job down, it
    /// never stalls one.
    pub(super) fn placement(&self, id: JobId, worker_id: &str, now_ms: i64) -> Option<HashSet<TaskId>> {
        let job = self.jobs.get(&id)?;
        let policy = &self.policy;
        let shunned = |w: &Worker| w.blacklisted(now_ms) || job.excludes(&w.row.id, now_ms, policy);
        let failed_here = job.failures.get(worker_id);
        let me = self.workers.get(worker_id)?;
        if !shunned(me) && failed_here.is_none_or(HashMap::is_empty) {
            return Some(HashSet::new());
        }
        let healthy: Vec<&str> = self
            .workers
            .values()
            .filter(|w| {
                w.alive
                    && w.row.id != worker_id
                    && w.row.admin == WorkerAdmin::Enabled
                    && w.row.offers(&job.spec.app)
                    && !shunned(w)
            })
            .map(|w| w.row.id.as_str())
            .collect();
        if healthy.is_empty() {
            return Some(HashSet::new());
        }
        if shunned(me) {
            return None;
        }
        let avoid = failed_here
            .into_iter()
            .flat_map(HashMap::keys)
            .copied()
            .filter(|&t| job.failed_on(worker_id, t, now_ms, policy))
            .filter(|&t| healthy.iter().any(|w| !job.failed_on(w, t, now_ms, policy)))
            .collect();
        Some(avoid)
    }

    /// Records that an attempt of `task` of job `job_id` failed on
    /// `worker_id`; excludes the worker from the job, and from the cluster,
    /// when it keeps failing.
    pub(super) fn note_failure(&mut self, job_id: JobId, worker_id: &str, task: TaskId, now_ms: i64) {
        let policy = self.policy;
        let Some(job) = self.jobs.get_mut(&job_id) else { return };
        if !job.record_failure(worker_id, task, now_ms, &policy) {
            return;
        }
        tracing::warn!(
            job = %job_id,
            worker = %worker_id,
            "attempts of {} different tasks failed on this worker: the job stops using it",
            policy.blacklist_task_failures
        );
        let Some(worker) = self.workers.get_mut(worker_id) else { return };
        worker.excluded_by.retain(|_, at| now_ms - *at < policy.blacklist_expiry_ms);
        worker.excluded_by.insert(job_id, now_ms);
        if worker.excluded_by.len() >= policy.blacklist_jobs.max(1) as usize && !worker.blacklisted(now_ms) {
            worker.blacklisted_until_ms = now_ms + policy.blacklist_expiry_ms;
            let jobs: Vec<JobId> = worker.excluded_by.keys().copied().collect();
            tracing::warn!(
                worker = %worker_id,
                ?jobs,
                "excluded by {} jobs: no job uses this worker for {} s (unless no other can)",
                jobs.len(),
                policy.blacklist_expiry_ms / 1000
            );
        }
    }

    /// Jobs that exclude `worker_id` now (it failed attempts of several of
    /// their tasks), by id.
    pub fn excluding_jobs(&self, worker_id: &str, now_ms: i64) -> Vec<JobId> {
        self.jobs
            .values()
            .filter(|j| !j.phase.is_terminal() && j.excludes(worker_id, now_ms, &self.policy))
            .map(|j| j.id)
            .collect()
    }

    /// A backup attempt of a straggler of job `id` for `worker_id`, if one
    /// is due: the job's current phase has nothing pending, and an attempt
    /// on another worker has run more than twice the phase's median (and
    /// at least 2 s).
    pub(super) fn backup_for(&mut self, id: JobId, worker_id: &str, now_ms: i64) -> Option<(JobId, AttemptId)> {
        let job = self.jobs.get_mut(&id)?;
        let sched = job.sched.as_mut()?;
        let phase = sched.phase()?;
        if sched.has_pending(phase) {
            return None;
        }
        let durations = &job.durations[phase as usize];
        if durations.is_empty() {
            return None;
        }
        let (counted, median) = &mut job.median[phase as usize];
        if *counted == 0 || durations.len() > *counted + *counted / 100 {
            let mut copy = durations.clone();
            let mid = copy.len() / 2;
            *median = *copy.select_nth_unstable(mid).1;
            *counted = durations.len();
        }
        let threshold = (*median * 2).max(2_000);
        let mut stragglers: Vec<(&AttemptId, &RunningAttempt)> = job
            .running
            .iter()
            .filter(|(a, r)| a.task.kind == phase && r.worker != worker_id && now_ms - r.started_ms > threshold)
            .collect();
        stragglers.sort_by_key(|(a, r)| (r.started_ms, a.task));
        for (a, _) in stragglers {
            if let Some(backup) = sched.backup_attempt(a.task) {
                tracing::info!(job = %id, attempt = %backup, "backup attempt for a straggler");
                return Some((id, backup));
            }
        }
        None
    }

    pub(super) fn start_attempt(
        &mut self,
        id: JobId,
        attempt: AttemptId,
        worker_id: &str,
        now_ms: i64,
        effects: &mut Vec<Effect>,
    ) -> Assignment {
        let job = self.jobs.get_mut(&id).expect("invariant: the job exists");
        job.running.insert(
            attempt,
            RunningAttempt {
                worker: worker_id.into(),
                started_ms: now_ms,
                last_progress_ms: now_ms,
                records: 0,
                fraction: 0.0,
                adopted: false,
            },
        );
        if job.phase == JobPhase::Pending {
            job.phase = JobPhase::Running;
            job.started_ms = now_ms;
            effects.push(Effect::Job(job.update()));
        }
        if let Some(row) = job.task_row(attempt.task) {
            effects.push(Effect::Task(id, row));
        }
        effects.push(Effect::AttemptStarted { job: id, attempt, worker: worker_id.into(), at_ms: now_ms });
        let inputs = match attempt.task.kind {
            TaskKind::Map => Vec::new(),
            TaskKind::Reduce => job
                .map_outputs
                .iter()
                .enumerate()
                .filter_map(|(m, loc)| {
                    let loc = loc.as_ref()?;
                    let seg = *loc.segments.get(attempt.task.index as usize)?;
                    (seg.records > 0).then(|| (m as u32, loc.clone(), seg))
                })
                .collect(),
        };
        let assignment = Assignment { job: id, attempt, inputs };
        if let Some(w) = self.workers.get_mut(worker_id) {
            w.running.insert((id, attempt));
        }
        assignment
    }
}
