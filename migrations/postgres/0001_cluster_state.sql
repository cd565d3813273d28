-- The coordinator's durable state in PostgreSQL: the same tables and columns
-- as migrations/sqlite (a test keeps them in step), with PostgreSQL's types.
-- Every integer is 64-bit, as the store binds and reads them.

CREATE TABLE jobs (
    id              BIGSERIAL PRIMARY KEY,
    app             TEXT    NOT NULL,
    spec_json       TEXT    NOT NULL,
    plan_json       TEXT    NOT NULL,
    priority        BIGINT  NOT NULL DEFAULT 0,
    state           TEXT    NOT NULL,               -- pending, running, succeeded, failed, killed
    error           TEXT    NOT NULL DEFAULT '',
    counters_json   TEXT    NOT NULL DEFAULT '{}',
    submitted_at_ms BIGINT  NOT NULL,
    started_at_ms   BIGINT  NOT NULL DEFAULT 0,
    finished_at_ms  BIGINT  NOT NULL DEFAULT 0
);

CREATE TABLE tasks (
    job_id          BIGINT  NOT NULL REFERENCES jobs (id),
    kind            TEXT    NOT NULL,               -- map, reduce
    idx             BIGINT  NOT NULL,
    started         BIGINT  NOT NULL,               -- attempts started (numbers are never reused)
    failures        BIGINT  NOT NULL,               -- attempts failed (counted against the limit)
    committed       BIGINT,                         -- the committed attempt
    failed          BOOLEAN NOT NULL,
    map_output_json TEXT,                           -- where a committed map's output is
    PRIMARY KEY (job_id, kind, idx)
);

CREATE TABLE attempts (
    job_id          BIGINT  NOT NULL REFERENCES jobs (id),
    kind            TEXT    NOT NULL,
    idx             BIGINT  NOT NULL,
    attempt         BIGINT  NOT NULL,
    worker_id       TEXT    NOT NULL,
    started_at_ms   BIGINT  NOT NULL,
    finished_at_ms  BIGINT  NOT NULL DEFAULT 0,
    outcome         TEXT    NOT NULL DEFAULT 'running', -- running, succeeded, discarded, failed, lost, fetch_failed, cancelled
    error           TEXT    NOT NULL DEFAULT '',
    counters_json   TEXT,
    log             BYTEA,
    PRIMARY KEY (job_id, kind, idx, attempt)
);

CREATE TABLE workers (
    id                TEXT   PRIMARY KEY,
    host              TEXT   NOT NULL,
    shuffle_address   TEXT   NOT NULL,
    slots             BIGINT NOT NULL,
    apps_json         TEXT   NOT NULL,
    version           TEXT   NOT NULL,
    state             TEXT   NOT NULL,              -- alive, lost
    registered_at_ms  BIGINT NOT NULL,
    last_heartbeat_ms BIGINT NOT NULL
);
