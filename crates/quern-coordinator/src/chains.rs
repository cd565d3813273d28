//! Chains of jobs (multi-step jobs) on a cluster: each step is an ordinary
//! job, submitted by the coordinator when the step before it has
//! succeeded, reading that step's output.
//!
//! A chain is stored ([`StoredChain`]) with the job of each step submitted
//! so far. The coordinator moves chains on ([`CoordinatorHandle::advance_chains`])
//! whenever a job ends, after a submission or a resume, and when it starts
//! serving, so that a job that ended while nothing listened still moves its
//! chain. A chain whose step failed keeps the earlier steps' outputs
//! (`OUTPUT.steps/step-N`) and can be resumed from that step
//! ([`CoordinatorHandle::resume_chain`]); when its last step succeeds,
//! `OUTPUT.steps` is removed.

use quern_core::{ChainSpec, JobId};

use crate::error::Error;
use crate::handle::CoordinatorHandle;
use crate::state::{ChainPhase, JobPhase};
use crate::store::StoredChain;

impl CoordinatorHandle {
    /// Submits `chain` for `owner`: its first step's job now (its id is the
    /// chain's), each next step's when the one before succeeds.
    pub async fn submit_chain_as(&self, chain: ChainSpec, priority: i32, owner: &str) -> Result<JobId, Error> {
        chain.validate().map_err(|e| Error::Refused(e.to_string()))?;
        let spec_json = serde_json::to_string(&chain).map_err(|e| Error::BadRequest(format!("chain: {e}")))?;
        let _moving = self.chain_lock().lock().await;
        let first = self.submit_as(chain.step_job(0), priority, owner).await?;
        let mut jobs = vec![None; chain.steps.len()];
        jobs[0] = Some(first);
        let stored = StoredChain {
            id: first,
            owner: owner.to_owned(),
            priority,
            spec_json,
            jobs,
            state: ChainPhase::Running,
            error: String::new(),
        };
        self.store().put_chain(&stored).await?;
        tracing::info!(chain = %first, steps = chain.steps.len(), "chain submitted");
        Ok(first)
    }

    /// The chain that job `job` is a step of.
    pub async fn chain_of(&self, job: JobId) -> Result<StoredChain, Error> {
        let chains = self.store().chains().await?;
        chains.into_iter().find(|c| c.jobs.contains(&Some(job))).ok_or(Error::NoSuchJob(job))
    }

    /// Resumes the failed chain that job `job` is a step of, from its
    /// failed step (the earlier steps' outputs are kept); returns it.
    pub async fn resume_chain(&self, job: JobId) -> Result<StoredChain, Error> {
        let resumed = {
            let _moving = self.chain_lock().lock().await;
            let mut chain = self.chain_of(job).await?;
            if chain.state != ChainPhase::Failed {
                return Err(Error::Refused(format!(
                    "chain {} has {}: only a failed chain resumes",
                    chain.id,
                    if chain.state == ChainPhase::Running { "not ended" } else { "succeeded" }
                )));
            }
            let spec = spec_of(&chain)?;
            let step = chain.jobs.iter().rposition(Option::is_some).unwrap_or(0);
            // The failed job's output is removed by queued output work.
            self.storage_settled().await;
            let id = self.submit_as(spec.step_job(step), chain.priority, &chain.owner).await?;
            tracing::info!(chain = %chain.id, step = step + 1, job = %id, "chain resumed");
            chain.jobs[step] = Some(id);
            chain.state = ChainPhase::Running;
            chain.error.clear();
            self.store().put_chain(&chain).await?;
            chain
        };
        self.advance_chains().await;
        Ok(resumed)
    }

    /// Moves every running chain whose current step's job has ended: the
    /// next step is submitted, or the chain succeeds (and its steps'
    /// outputs are removed) or fails. Errors are logged: the next call
    /// tries again.
    pub async fn advance_chains(&self) {
        let _moving = self.chain_lock().lock().await;
        let chains = match self.store().chains().await {
            Ok(chains) => chains,
            Err(e) => {
                tracing::warn!("loading chains: {e}");
                return;
            }
        };
        for chain in chains.into_iter().filter(|c| c.state == ChainPhase::Running) {
            if let Err(e) = self.advance(chain).await {
                tracing::warn!("moving a chain on: {e}");
            }
        }
    }

    async fn advance(&self, mut chain: StoredChain) -> Result<(), Error> {
        let spec = spec_of(&chain)?;
        let Some(step) = chain.jobs.iter().rposition(Option::is_some) else { return Ok(()) };
        let Some(current) = chain.jobs[step] else { return Ok(()) };
        let job = self.job(current).await?;
        match job.state {
            JobPhase::Succeeded if step + 1 < chain.jobs.len() => {
                match self.submit_as(spec.step_job(step + 1), chain.priority, &chain.owner).await {
                    Ok(next) => {
                        tracing::info!(chain = %chain.id, step = step + 2, job = %next, "chain step submitted");
                        chain.jobs[step + 1] = Some(next);
                    }
                    Err(Error::Unavailable(e)) => return Err(Error::Unavailable(e)),
                    Err(e) => {
                        chain.state = ChainPhase::Failed;
                        chain.error = format!("step {} of {} could not be submitted: {e}", step + 2, chain.jobs.len());
                    }
                }
            }
            JobPhase::Succeeded => {
                chain.state = ChainPhase::Succeeded;
                if chain.jobs.len() > 1 {
                    let (storage, steps) = (self.storage().clone(), spec.steps_dir());
                    let removed = tokio::task::spawn_blocking(move || storage.delete_prefix(&steps)).await;
                    if let Ok(Err(e)) = removed {
                        tracing::warn!(chain = %chain.id, "removing the steps' outputs: {e}");
                    }
                }
                tracing::info!(chain = %chain.id, "chain succeeded");
            }
            JobPhase::Failed | JobPhase::Killed => {
                chain.state = ChainPhase::Failed;
                chain.error = format!(
                    "step {} of {} (job {current}, {}) {}: {}",
                    step + 1,
                    chain.jobs.len(),
                    spec.steps[step].app,
                    job.state.as_str(),
                    job.error
                );
                tracing::info!(chain = %chain.id, "chain failed: {}", chain.error);
            }
            JobPhase::Pending | JobPhase::Running => return Ok(()),
        }
        self.store().put_chain(&chain).await
    }
}

/// The chain's spec, as stored.
fn spec_of(chain: &StoredChain) -> Result<ChainSpec, Error> {
    serde_json::from_str(&chain.spec_json).map_err(|e| Error::Corrupt(format!("chain {}'s spec: {e}", chain.id)))
}
