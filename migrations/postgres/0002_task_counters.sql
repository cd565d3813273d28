-- A job's counters are the sum over its committed attempts (Hadoop's rule),
-- so each task keeps the counters of the attempt that committed it (as
-- migrations/sqlite/0002_task_counters.sql).
ALTER TABLE tasks ADD COLUMN counters_json TEXT;

UPDATE tasks SET counters_json = (
    SELECT a.counters_json FROM attempts a
    WHERE a.job_id = tasks.job_id AND a.kind = tasks.kind AND a.idx = tasks.idx AND a.attempt = tasks.committed
) WHERE committed IS NOT NULL;
