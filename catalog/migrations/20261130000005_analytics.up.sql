-- Profiles: the latest few per dataset are kept; each is the whole result as JSON.
CREATE TABLE dataset_profiles (
    id TEXT PRIMARY KEY,
    dataset_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    job_id TEXT,
    profile_json TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX dataset_profiles_by_dataset ON dataset_profiles (dataset_id, created_at);

-- Quality checks, one row per check, named uniquely within their dataset.
CREATE TABLE quality_checks (
    id TEXT PRIMARY KEY,
    dataset_id TEXT NOT NULL,
    name TEXT NOT NULL,
    definition_json TEXT NOT NULL,
    created_by TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (dataset_id, name)
);

-- Every evaluation of a check, kept as history.
CREATE TABLE check_results (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    check_id TEXT NOT NULL,
    check_name TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    dataset_version INTEGER,
    run_id TEXT NOT NULL,
    trigger TEXT NOT NULL,
    outcome TEXT NOT NULL,
    observed REAL,
    element_count INTEGER,
    unexpected_count INTEGER,
    unexpected_percent REAL,
    details_json TEXT,
    sample_json TEXT,
    error_json TEXT,
    started_at TEXT NOT NULL,
    duration_ms INTEGER NOT NULL
);
CREATE INDEX check_results_by_check ON check_results (check_id, seq);
CREATE INDEX check_results_by_dataset ON check_results (dataset_id, seq);

-- Dataset metrics over time (row count, completeness, freshness, check pass rate).
CREATE TABLE dataset_metrics (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    version INTEGER,
    recorded_at TEXT NOT NULL
);
CREATE INDEX dataset_metrics_by_name ON dataset_metrics (dataset_id, name, recorded_at);
