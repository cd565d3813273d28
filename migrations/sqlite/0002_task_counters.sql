-- A job's counters are the sum over its committed attempts (Hadoop's rule),
-- so each task keeps the counters of the attempt that committed it: a map
-- that runs again after its output was lost replaces its counters instead of
-- adding to them, and a restarted coordinator sums them again.
ALTER TABLE tasks ADD COLUMN counters_json TEXT;

-- Tasks committed before this column existed take their committed attempt's
-- counters, which the attempts table kept.
UPDATE tasks SET counters_json = (
    SELECT a.counters_json FROM attempts a
    WHERE a.job_id = tasks.job_id AND a.kind = tasks.kind AND a.idx = tasks.idx AND a.attempt = tasks.committed
) WHERE committed IS NOT NULL;
