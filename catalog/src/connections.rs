//! Connection, schema history, sync state and field mapping rows.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::SecretRecord;
use crate::Result;

/// A named source connection. Secret fields are sealed elsewhere.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct ConnectionRecord {
    /// Stable id (UUID v7).
    pub id: String,
    /// Unique name; also the SQL catalog its tables appear in.
    pub name: String,
    /// Connector type (`postgres`, `files`, ...).
    pub kind: String,
    /// Free text.
    pub description: String,
    /// The configuration without its secret fields.
    #[sqlx(rename = "config_json", json)]
    pub config: serde_json::Value,
    /// JSON pointers of the secret fields that have a stored value.
    #[sqlx(rename = "secret_fields_json", json)]
    pub secret_fields: Vec<String>,
    /// Who created it.
    pub created_by: Option<String>,
    /// Bumped on every change; opened sources are reused only at the same version.
    pub version: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// One recorded schema of a dataset or a connection stream.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct SchemaHistoryRecord {
    /// Position in the whole history.
    pub seq: i64,
    /// `dataset:<id>` or `stream:<connection id>:<stream>`.
    #[serde(skip_serializing)]
    pub subject: String,
    /// The dataset version it was recorded at (datasets only).
    pub version: Option<i64>,
    /// Hash of the schema; equal schemas have equal fingerprints.
    pub fingerprint: String,
    /// The schema's fields.
    #[schema(value_type = Vec<crate::schema::SchemaField>)]
    #[sqlx(rename = "schema_json", json)]
    pub schema: serde_json::Value,
    /// Changes from the previous record.
    #[schema(value_type = Vec<crate::schema::SchemaChange>)]
    #[sqlx(rename = "changes_json", json)]
    pub changes: serde_json::Value,
    /// What recorded it: `ingest`, `write`, `sync`, `discover`.
    pub cause: String,
    /// When.
    pub recorded_at: DateTime<Utc>,
}

/// Where an incremental sync of a stream into a dataset stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct SyncStateRecord {
    /// The connection.
    pub connection_id: String,
    /// The stream read.
    pub stream: String,
    /// The dataset written.
    pub dataset: String,
    /// The cursor column.
    pub cursor_field: Option<String>,
    /// The largest cursor value written, as JSON.
    #[sqlx(json(nullable))]
    pub cursor_value: Option<serde_json::Value>,
    /// When it last moved.
    pub updated_at: DateTime<Utc>,
}

/// Connection rows and what hangs off them.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Inserts a connection with its sealed secret fields, in one
    /// transaction; `ConnectionExists` on a name clash.
    async fn insert_connection(&self, c: &ConnectionRecord, secret: &SecretRecord) -> Result<()>;
    /// Replaces a connection's row (and, when given, its sealed secret) in one
    /// transaction, if the stored row is still at `expected_version`;
    /// `ConnectionExists` on a name clash, `Conflict` when it changed meanwhile.
    async fn update_connection(
        &self,
        c: &ConnectionRecord,
        secret: Option<&SecretRecord>,
        expected_version: i64,
    ) -> Result<()>;
    /// By id or name.
    async fn connection(&self, id_or_name: &str) -> Result<Option<ConnectionRecord>>;
    /// All connections by name.
    async fn list_connections(&self) -> Result<Vec<ConnectionRecord>>;
    /// Deletes a connection, its sealed secret, sync state and mappings.
    async fn delete_connection(&self, id: &str, secret_name: &str) -> Result<bool>;
    /// Appends a schema to a subject's history.
    async fn append_schema(&self, record: &SchemaHistoryRecord) -> Result<()>;
    /// A subject's history, oldest first.
    async fn schema_history(&self, subject: &str) -> Result<Vec<SchemaHistoryRecord>>;
    /// The subject's latest schema.
    async fn latest_schema(&self, subject: &str) -> Result<Option<SchemaHistoryRecord>>;
    /// Sync state of a stream into a dataset.
    async fn sync_state(
        &self,
        connection_id: &str,
        stream: &str,
        dataset: &str,
    ) -> Result<Option<SyncStateRecord>>;
    /// Records sync state.
    async fn put_sync_state(&self, state: &SyncStateRecord) -> Result<()>;
    /// Field mappings of a stream, as stored JSON.
    async fn field_mappings(
        &self,
        connection_id: &str,
        stream: &str,
    ) -> Result<Option<serde_json::Value>>;
    /// Stores (or with `None`, removes) a stream's field mappings.
    async fn put_field_mappings(
        &self,
        connection_id: &str,
        stream: &str,
        mappings: Option<&serde_json::Value>,
    ) -> Result<()>;
}
