-- Datasets: one row per Delta table. The Delta log is the source of truth for
-- versions and data; the columns below cache what listing pages need.
CREATE TABLE datasets (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    tags         TEXT NOT NULL DEFAULT '[]',
    owner        TEXT,
    location     TEXT NOT NULL,
    version      INTEGER NOT NULL DEFAULT 0,
    schema_json  TEXT NOT NULL DEFAULT '[]',
    row_count    INTEGER NOT NULL DEFAULT 0,
    size_bytes   INTEGER NOT NULL DEFAULT 0,
    file_count   INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    deleted_at   TEXT
);
-- Names are unique among live datasets; a soft-deleted name can be reused.
CREATE UNIQUE INDEX datasets_live_name ON datasets (name) WHERE deleted_at IS NULL;

-- Background jobs. Rows are never deleted by the runner: they are the history.
CREATE TABLE jobs (
    id           TEXT PRIMARY KEY NOT NULL,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,
    progress     REAL NOT NULL DEFAULT 0,
    message      TEXT NOT NULL DEFAULT '',
    attempts     INTEGER NOT NULL DEFAULT 0,
    params       TEXT NOT NULL DEFAULT '{}',
    result       TEXT,
    error        TEXT,
    created_at   TEXT NOT NULL,
    started_at   TEXT,
    finished_at  TEXT,
    updated_at   TEXT NOT NULL
);
CREATE INDEX jobs_by_status ON jobs (status, created_at);
CREATE INDEX jobs_by_created ON jobs (created_at);
