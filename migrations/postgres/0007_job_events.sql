-- What happened to a job that its tasks do not show: a worker lost (with
-- the platform's reason, such as Kubernetes' OOMKilled or Evicted), a
-- worker launched for it that cannot start (ErrImagePull, Unschedulable).
-- Kept with the job, after the worker or its pod is gone.
CREATE TABLE job_events (
    id BIGSERIAL PRIMARY KEY,
    job_id BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX job_events_by_job ON job_events (job_id, id);
