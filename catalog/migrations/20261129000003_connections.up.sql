-- Named source connections. Secret fields are not here: they are sealed in
-- `secrets` under `connection:<id>`.
CREATE TABLE connections (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    config_json TEXT NOT NULL,
    secret_fields_json TEXT NOT NULL DEFAULT '[]',
    created_by TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Every schema a dataset or a connection stream has had, oldest first.
-- subject: `dataset:<dataset id>` or `stream:<connection id>:<stream>`.
CREATE TABLE schema_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    subject TEXT NOT NULL,
    version INTEGER,
    fingerprint TEXT NOT NULL,
    schema_json TEXT NOT NULL,
    changes_json TEXT NOT NULL DEFAULT '[]',
    cause TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX schema_history_subject ON schema_history (subject, seq);

-- What an incremental sync has read so far, per stream and target dataset.
CREATE TABLE sync_state (
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    stream TEXT NOT NULL,
    dataset TEXT NOT NULL,
    cursor_field TEXT,
    cursor_value TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (connection_id, stream, dataset)
);

-- Source field -> dataset column (with a cast) per connection stream.
CREATE TABLE field_mappings (
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    stream TEXT NOT NULL,
    mappings_json TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (connection_id, stream)
);
