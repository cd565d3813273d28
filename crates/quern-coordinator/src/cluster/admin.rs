//! What an admin decides about a worker: drain it (it finishes what it
//! runs and gets nothing new), deregister it (it leaves the cluster now:
//! its attempts and the map outputs it held are made again elsewhere, and
//! it may not register again), or enable it again (which also lifts a
//! blacklist).

use super::*;

impl Cluster {
    /// Refuses the registration of a worker an admin deregistered.
    pub fn check_registration(&self, worker_id: &str) -> Result<(), Error> {
        match self.workers.get(worker_id) {
            Some(w) if w.row.admin == WorkerAdmin::Deregistered => Err(Error::Refused(format!(
                "worker {worker_id} was deregistered by an admin: enable it again \
                 (POST /api/v1/workers/{worker_id}/enable) or start it with another --id"
            ))),
            _ => Ok(()),
        }
    }

    /// Drains a worker: no new attempts or plans go to it.
    pub fn drain(&mut self, worker_id: &str) -> Result<Vec<Effect>, Error> {
        let worker = self.known_worker(worker_id)?;
        if worker.row.admin == WorkerAdmin::Deregistered {
            return Err(Error::Refused(format!("worker {worker_id} is deregistered: enable it first")));
        }
        worker.row.admin = WorkerAdmin::Draining;
        let row = worker.row.clone();
        tracing::info!(worker = %worker_id, running = worker.running.len(), "worker draining");
        // The specs it was to plan go to another worker.
        self.replan_from(worker_id);
        Ok(vec![Effect::Worker(row)])
    }

    /// Enables a drained or deregistered worker again, and lifts its
    /// blacklist. A deregistered worker gets work once it registers again.
    pub fn enable(&mut self, worker_id: &str) -> Result<Vec<Effect>, Error> {
        let worker = self.known_worker(worker_id)?;
        worker.row.admin = WorkerAdmin::Enabled;
        worker.blacklisted_until_ms = 0;
        worker.excluded_by.clear();
        tracing::info!(worker = %worker_id, "worker enabled");
        Ok(vec![Effect::Worker(worker.row.clone())])
    }

    /// Removes a worker from the cluster now: it is lost for every job (its
    /// attempts run again elsewhere), and told to register again at its
    /// next contact, which it is refused.
    pub fn deregister(&mut self, worker_id: &str, now_ms: i64) -> Result<Vec<Effect>, Error> {
        let worker = self.known_worker(worker_id)?;
        worker.row.admin = WorkerAdmin::Deregistered;
        let mut effects = Vec::new();
        if worker.alive {
            self.lose_worker(worker_id, "deregistered by an admin", now_ms, &mut effects);
        } else {
            effects.push(Effect::Worker(worker.row.clone()));
        }
        Ok(effects)
    }

    fn known_worker(&mut self, worker_id: &str) -> Result<&mut Worker, Error> {
        self.workers.get_mut(worker_id).ok_or_else(|| Error::NoSuchWorker(worker_id.to_owned()))
    }
}
