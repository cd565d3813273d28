-- Users of the REST API and dashboard: a name, a role (admin or user) and
-- an argon2 hash of the password (PHC string); and each job's owner (the
-- user who submitted it; empty for jobs submitted with the cluster token).
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
