-- Chains of jobs (multi-step jobs): the chain's spec, the job of each step
-- submitted so far (a JSON array of job ids, null for steps not submitted),
-- and where it is (running, succeeded, failed). A chain's id is the id of
-- its first step's first job.
CREATE TABLE chains (
    id BIGINT PRIMARY KEY,
    owner TEXT NOT NULL,
    priority INTEGER NOT NULL,
    spec_json TEXT NOT NULL,
    jobs_json TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT NOT NULL
);
