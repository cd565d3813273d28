-- What an admin decided about each worker (enabled, draining, deregistered),
-- beside whether it is alive. A worker's apps_json holds, from now on, each
-- app's name, help and parameters as objects; rows written before hold bare
-- names, which the coordinator still reads.
ALTER TABLE workers ADD COLUMN admin TEXT NOT NULL DEFAULT 'enabled';
