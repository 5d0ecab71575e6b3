-- Users sign in with a password (argon2id PHC string; never returned).
CREATE TABLE users (
    id                   TEXT PRIMARY KEY NOT NULL,
    username             TEXT NOT NULL UNIQUE,
    email                TEXT NOT NULL,
    password_hash        TEXT NOT NULL,
    role                 TEXT NOT NULL CHECK (role IN ('admin', 'editor', 'viewer')),
    disabled             INTEGER NOT NULL DEFAULT 0,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    password_changed_at  TEXT NOT NULL,
    last_login_at        TEXT
);

-- Login sessions. Only the SHA-256 of the token is stored.
CREATE TABLE sessions (
    id            TEXT PRIMARY KEY NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    max_expires_at TEXT NOT NULL,
    revoked_at    TEXT,
    source_ip     TEXT,
    user_agent    TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_id, created_at);

-- API keys. Only the SHA-256 of the secret is stored; `prefix` identifies a key to people.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    secret_hash   TEXT NOT NULL UNIQUE,
    scopes        TEXT NOT NULL,
    datasets      TEXT,
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    last_used_at  TEXT,
    revoked_at    TEXT
);
CREATE INDEX api_keys_by_user ON api_keys (user_id, created_at);

-- Extra access to one dataset for one user, beyond what the role gives.
CREATE TABLE dataset_grants (
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    dataset     TEXT NOT NULL,
    access      TEXT NOT NULL CHECK (access IN ('read', 'write')),
    created_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, dataset)
);

-- The audit log: append-only, each row's MAC covers its fields and the
-- previous row's MAC, so an edited, inserted or deleted row breaks the chain.
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    request_id  TEXT,
    source_ip   TEXT,
    details     TEXT NOT NULL DEFAULT '{}',
    prev_mac    TEXT NOT NULL,
    mac         TEXT NOT NULL
);
CREATE INDEX audit_by_at ON audit_log (at);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- Secrets (connector credentials, webhook secrets, the audit MAC key), each
-- sealed with AES-256-GCM under the data key; `key_id` names that key.
CREATE TABLE secrets (
    name        TEXT PRIMARY KEY NOT NULL,
    key_id      TEXT NOT NULL,
    sealed      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
