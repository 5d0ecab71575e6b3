-- Pipelines: a name and the version that is active. Definitions live in
-- immutable versions.
CREATE TABLE pipelines (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    active_version INTEGER NOT NULL,
    created_by TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT,
    -- The last cron fire time the scheduler handled (RFC 3339).
    schedule_cursor TEXT
);

-- Every saved definition, numbered from 1 per pipeline, never changed.
CREATE TABLE pipeline_versions (
    pipeline_id TEXT NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    hash TEXT NOT NULL,
    definition_json TEXT NOT NULL,
    -- What validation derived: per step dependencies, output schema, column lineage.
    outputs_json TEXT NOT NULL,
    created_by TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (pipeline_id, version)
);

-- Runs, with their steps' states as JSON (rewritten as steps move).
CREATE TABLE pipeline_runs (
    id TEXT PRIMARY KEY,
    pipeline_id TEXT NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    trigger TEXT NOT NULL,
    params_json TEXT NOT NULL,
    idempotency_key TEXT,
    retry_of TEXT,
    job_id TEXT,
    steps_json TEXT NOT NULL,
    error_json TEXT,
    created_by TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX pipeline_runs_idempotency
    ON pipeline_runs (pipeline_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX pipeline_runs_pipeline ON pipeline_runs (pipeline_id, created_at);
CREATE INDEX pipeline_runs_status ON pipeline_runs (status);

-- Stored views (the `view` materialization): queries plan them when they read them.
CREATE TABLE views (
    name TEXT PRIMARY KEY,
    sql TEXT NOT NULL,
    pipeline_id TEXT REFERENCES pipelines (id) ON DELETE CASCADE,
    updated_at TEXT NOT NULL
);

-- Every event published, so a client that reconnects with a cursor misses nothing.
-- AUTOINCREMENT: a seq is never given twice, even after old events are pruned,
-- and processes sharing the catalog (the server, a CLI command) never collide.
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    pipeline_id TEXT,
    run_id TEXT,
    dataset TEXT,
    job_id TEXT,
    payload_json TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX events_at ON events (at);
