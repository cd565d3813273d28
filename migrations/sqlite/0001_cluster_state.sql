-- The coordinator's durable state: jobs, their tasks and attempts, workers.
-- Everything the scheduler needs to resume after a restart is here; specs,
-- plans, counters and map-output locations are stored as the JSON the engine
-- defines.

CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    app             TEXT    NOT NULL,
    spec_json       TEXT    NOT NULL,
    plan_json       TEXT    NOT NULL,
    priority        INTEGER NOT NULL DEFAULT 0,
    state           TEXT    NOT NULL,               -- pending, running, succeeded, failed, killed
    error           TEXT    NOT NULL DEFAULT '',
    counters_json   TEXT    NOT NULL DEFAULT '{}',
    submitted_at_ms BIGINT  NOT NULL,
    started_at_ms   BIGINT  NOT NULL DEFAULT 0,
    finished_at_ms  BIGINT  NOT NULL DEFAULT 0
);

CREATE TABLE tasks (
    job_id          INTEGER NOT NULL REFERENCES jobs (id),
    kind            TEXT    NOT NULL,               -- map, reduce
    idx             INTEGER NOT NULL,
    started         INTEGER NOT NULL,               -- attempts started (numbers are never reused)
    failures        INTEGER NOT NULL,               -- attempts failed (counted against the limit)
    committed       INTEGER,                        -- the committed attempt
    failed          BOOLEAN NOT NULL,
    map_output_json TEXT,                           -- where a committed map's output is
    PRIMARY KEY (job_id, kind, idx)
);

CREATE TABLE attempts (
    job_id          INTEGER NOT NULL REFERENCES jobs (id),
    kind            TEXT    NOT NULL,
    idx             INTEGER NOT NULL,
    attempt         INTEGER NOT NULL,
    worker_id       TEXT    NOT NULL,
    started_at_ms   BIGINT  NOT NULL,
    finished_at_ms  BIGINT  NOT NULL DEFAULT 0,
    outcome         TEXT    NOT NULL DEFAULT 'running', -- running, succeeded, discarded, failed, lost, fetch_failed, cancelled
    error           TEXT    NOT NULL DEFAULT '',
    counters_json   TEXT,
    log             BLOB,
    PRIMARY KEY (job_id, kind, idx, attempt)
);

CREATE TABLE workers (
    id                TEXT   PRIMARY KEY,
    host              TEXT   NOT NULL,
    shuffle_address   TEXT   NOT NULL,
    slots             INTEGER NOT NULL,
    apps_json         TEXT   NOT NULL,
    version           TEXT   NOT NULL,
    state             TEXT   NOT NULL,              -- alive, lost
    registered_at_ms  BIGINT NOT NULL,
    last_heartbeat_ms BIGINT NOT NULL
);
