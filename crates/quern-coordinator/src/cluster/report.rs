//! What a worker's report of an attempt's end means: commit, discard, retry
//! or re-run lost map outputs.

use super::*;

/// How a failed attempt is recorded: counted, or stale.
fn failure_end(verdict: &Verdict) -> AttemptEnd {
    if verdict.counts_as_failure() { AttemptEnd::Failed } else { AttemptEnd::Stale }
}

impl Cluster {
    /// A worker reports how an attempt ended. Returns whether its output was
    /// committed.
    pub fn report(
        &mut self,
        worker_id: &str,
        job_id: JobId,
        attempt: AttemptId,
        outcome: Outcome,
        log: Vec<u8>,
        now_ms: i64,
    ) -> Result<(bool, Vec<Effect>), Error> {
        let mut effects = Vec::new();
        if let Some(w) = self.workers.get_mut(worker_id) {
            w.running.remove(&(job_id, attempt));
        }
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return Err(Error::BadRequest(format!("no job {job_id}")));
        };
        let ran = job.running.remove(&attempt);
        // A map of a job with reducers that reports success without its
        // output index would have the reduces skip its records: a broken
        // worker, whose attempt failed.
        let outcome = match outcome {
            Outcome::Succeeded { map_output: None, .. }
                if attempt.task.kind == TaskKind::Map && job.plan.partitions > 0 =>
            {
                let message = "the attempt reported success without its map output index".to_owned();
                Outcome::Failed(Failure { message, retryable: true })
            }
            other => other,
        };
        // Once a job has ended, its output area is gone (or published) and
        // a late attempt cannot re-create it: nothing to delete, and an
        // attempt directory of the same name may belong to a newer job
        // writing to the same output.
        let live = !job.phase.is_terminal();
        // Whether the attempt's files go (every end but a commit).
        let mut abort = true;
        let Some(sched) = job.sched.as_mut() else {
            // The job ended (and was reloaded from history): nothing to do.
            return Ok((false, effects));
        };
        let log = Some(log);
        let mut committed = false;
        let mut failed_here = false;
        match outcome {
            Outcome::Succeeded { counters, map_output, output_digest } => {
                let attempt_counters = Some(counters.clone());
                match sched.attempt_ended(attempt, AttemptResult::Succeeded) {
                    Verdict::Commit { superseded } => {
                        committed = true;
                        abort = false;
                        self.storage_work.push(job.commit_task(attempt));
                        job.set_task_counters(attempt.task, Some(counters));
                        if let Some(r) = &ran {
                            job.durations[attempt.task.kind as usize].push(now_ms - r.started_ms);
                        }
                        if attempt.task.kind == TaskKind::Map {
                            let shuffle_address =
                                self.workers.get(worker_id).map(|w| w.row.shuffle_address.clone()).unwrap_or_default();
                            job.map_outputs[attempt.task.index as usize] = map_output.map(|idx| MapOutputLoc {
                                worker_id: worker_id.into(),
                                shuffle_address,
                                path: idx.path.display().to_string(),
                                segments: idx.segments,
                            });
                        }
                        for other in superseded {
                            if let Some(r) = job.running.remove(&other) {
                                if let Some(w) = self.workers.get_mut(&r.worker) {
                                    w.cancels.push((job_id, other));
                                    w.running.remove(&(job_id, other));
                                }
                                effects.push(Effect::AttemptEnded {
                                    job: job_id,
                                    attempt: other,
                                    outcome: AttemptEnd::Cancelled,
                                    error: format!("superseded by {attempt}"),
                                    log: None,
                                    counters: None,
                                    output_digest: None,
                                    at_ms: now_ms,
                                });
                            }
                        }
                        if let Some(row) = job.task_row(attempt.task) {
                            effects.push(Effect::Task(job_id, row));
                        }
                        effects.push(Effect::AttemptEnded {
                            job: job_id,
                            attempt,
                            outcome: AttemptEnd::Succeeded,
                            error: String::new(),
                            log,
                            counters: attempt_counters.clone(),
                            output_digest: output_digest.clone(),
                            at_ms: now_ms,
                        });
                    }
                    _ => {
                        effects.push(Effect::AttemptEnded {
                            job: job_id,
                            attempt,
                            outcome: AttemptEnd::Discarded,
                            error: "another attempt committed, or the attempt was given up".into(),
                            log,
                            counters: attempt_counters.clone(),
                            output_digest: output_digest.clone(),
                            at_ms: now_ms,
                        });
                    }
                }
            }
            Outcome::Failed(mut failure) => {
                let error = failure.message.clone();
                // Name the worker, so a job that fails says where.
                failure.message = format!("{} (on worker {worker_id})", failure.message);
                let verdict = sched.attempt_ended(attempt, AttemptResult::Failed(failure));
                failed_here = verdict.counts_as_failure();
                match verdict {
                    Verdict::Failed(FailureOutcome::Retrying) => {
                        tracing::warn!(job = %job_id, %attempt, "attempt failed, will retry: {error}")
                    }
                    Verdict::Failed(FailureOutcome::JobFailed) => {
                        tracing::error!(job = %job_id, %attempt, "attempt failed, job fails: {error}")
                    }
                    _ => {}
                }
                if let Some(row) = job.task_row(attempt.task) {
                    effects.push(Effect::Task(job_id, row));
                }
                effects.push(Effect::AttemptEnded {
                    job: job_id,
                    attempt,
                    outcome: failure_end(&verdict),
                    error,
                    log,
                    counters: None,
                    output_digest: None,
                    at_ms: now_ms,
                });
            }
            Outcome::FetchFailed { maps, message } => {
                tracing::warn!(job = %job_id, %attempt, ?maps, "map outputs lost, the maps run again: {message}");
                let lost = match sched.attempt_ended(attempt, AttemptResult::InputsLost(maps.clone())) {
                    Verdict::Requeued { maps } => maps,
                    _ => Vec::new(),
                };
                for m in lost {
                    job.forget_map_output(m);
                    if let Some(row) = job.task_row(TaskId { kind: TaskKind::Map, index: m }) {
                        effects.push(Effect::Task(job_id, row));
                    }
                }
                let names: Vec<String> = maps.iter().map(|m| format!("m-{m:05}")).collect();
                effects.push(Effect::AttemptEnded {
                    job: job_id,
                    attempt,
                    outcome: AttemptEnd::FetchFailed,
                    error: format!("{}: {message}", names.join(", ")),
                    log,
                    counters: None,
                    output_digest: None,
                    at_ms: now_ms,
                });
            }
            Outcome::Cancelled => {
                sched.attempt_ended(attempt, AttemptResult::Lost);
                effects.push(Effect::AttemptEnded {
                    job: job_id,
                    attempt,
                    outcome: AttemptEnd::Cancelled,
                    error: String::new(),
                    log,
                    counters: None,
                    output_digest: None,
                    at_ms: now_ms,
                });
            }
        }
        if abort && live {
            self.storage_work.push(job.abort_task(attempt));
        }
        if failed_here {
            self.note_failure(job_id, worker_id, attempt.task, now_ms);
        }
        self.settle(job_id, now_ms, &mut effects);
        Ok((committed, effects))
    }
}
