//! The catalog store: Basin's own metadata (datasets, jobs, users, sessions,
//! API keys, the audit log, sealed secrets, connections, schema history,
//! pipelines, runs, views and events), behind small repository traits so
//! that PostgreSQL can join SQLite as a backend.
//!
//! The records are plain data; the engine decides who may see or change
//! them. The SQLite implementation ([`SqliteCatalog`]) carries its schema
//! migrations (`migrations/`, each with a down migration) and applies them
//! when it opens.

mod analytics;
mod connections;
mod error;
mod identity;
mod pipelines;
pub mod schema;
mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use analytics::{
    AnalyticsStore, CheckRecord, CheckResultRecord, MetricFilter, MetricRecord, ProfileRecord,
};
pub use connections::{ConnectionRecord, ConnectionStore, SchemaHistoryRecord, SyncStateRecord};
pub use error::{Entity, Error, Result};
pub use identity::{
    ApiKeyRecord, AuditFilter, AuditRecord, AuditSeal, AuditStore, IdentityStore, NewAuditRecord,
    SecretRecord, SecretStore, SessionRecord, UserRecord,
};
pub use pipelines::{
    EventRecord, PipelineRecord, PipelineStore, PipelineVersionRecord, RunFilter, RunRecord,
    RunStatus, StepLog, StepRun, StepStatus,
};
pub use sqlite::SqliteCatalog;

/// A dataset's catalog row.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct DatasetRecord {
    /// Stable id; also names the storage directory, so renames move nothing.
    pub id: String,
    /// The current, unique (among live datasets) name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Labels for filtering.
    #[sqlx(json)]
    pub tags: Vec<String>,
    /// Who owns it, when known.
    pub owner: Option<String>,
    /// The Delta table's URL (internal: not shown to API callers).
    #[serde(skip_serializing)]
    pub location: String,
    /// The Delta version these cached figures describe.
    pub version: i64,
    /// Columns as `[{name, type, nullable}]`.
    #[schema(value_type = Vec<crate::schema::SchemaField>)]
    #[sqlx(rename = "schema_json", json)]
    pub schema: serde_json::Value,
    /// Live rows at `version`.
    pub row_count: i64,
    /// Bytes of live data files at `version`.
    pub size_bytes: i64,
    /// Live data files at `version`.
    pub file_count: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its data or metadata last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was soft-deleted.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Sort orders for dataset listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DatasetSort {
    /// By name, A to Z.
    #[default]
    NameAsc,
    /// By name, Z to A.
    NameDesc,
    /// Oldest first.
    CreatedAsc,
    /// Newest first.
    CreatedDesc,
    /// Least recently changed first.
    UpdatedAsc,
    /// Most recently changed first.
    UpdatedDesc,
}

impl DatasetSort {
    /// Parses `name`, `-name`, `created_at`, `-created_at`, `updated_at`, `-updated_at`.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "name" => Self::NameAsc,
            "-name" => Self::NameDesc,
            "created_at" => Self::CreatedAsc,
            "-created_at" => Self::CreatedDesc,
            "updated_at" => Self::UpdatedAsc,
            "-updated_at" => Self::UpdatedDesc,
            _ => return None,
        })
    }
}

/// A page of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Rows to return.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u64,
}

/// Filters for listing datasets.
#[derive(Debug, Clone, Default)]
pub struct DatasetFilter {
    /// Substring of the name.
    pub name_contains: Option<String>,
    /// Exact tag.
    pub tag: Option<String>,
    /// Include soft-deleted datasets.
    pub include_deleted: bool,
    /// Only these names (an API key limited to datasets lists only those).
    pub only: Option<Vec<String>>,
}

/// A job's status. Terminal states never change again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Accepted, not started.
    Queued,
    /// Running now.
    Running,
    /// Finished well.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Stopped by a user.
    Canceled,
}

impl TryFrom<String> for JobStatus {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::parse(&value)
            .ok_or_else(|| Error::corrupt("job status", format!("unknown status {value:?}")))
    }
}

impl JobStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            _ => return None,
        })
    }

    /// Whether the job is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Canceled)
    }
}

/// A background job's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct JobRecord {
    /// Job id (UUID v7, so ids sort by creation).
    pub id: String,
    /// What kind of work, e.g. `ingest`.
    pub kind: String,
    /// Where it is.
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
    /// 0 to 1.
    pub progress: f64,
    /// What it is doing, for people.
    pub message: String,
    /// How many times it started.
    pub attempts: i64,
    /// What it was asked to do.
    #[sqlx(json)]
    pub params: serde_json::Value,
    /// What it produced, when it succeeded.
    #[sqlx(json(nullable))]
    pub result: Option<serde_json::Value>,
    /// Why it failed.
    #[sqlx(json(nullable))]
    pub error: Option<serde_json::Value>,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl JobRecord {
    /// The dataset the job works on, when it has one.
    pub fn dataset(&self) -> Option<&str> {
        self.params.get("dataset").and_then(|d| d.as_str())
    }
}

/// Filters for listing jobs.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this status.
    pub status: Option<JobStatus>,
    /// Only this kind.
    pub kind: Option<String>,
}

/// The catalog repository. Each method is one small transaction.
#[async_trait]
pub trait CatalogStore:
    IdentityStore
    + AuditStore
    + SecretStore
    + ConnectionStore
    + PipelineStore
    + AnalyticsStore
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
{
    /// Checks the store answers.
    async fn ping(&self) -> Result<()>;
    /// Inserts a dataset; fails with `DatasetExists` when a live one has the name.
    async fn insert_dataset(&self, dataset: &DatasetRecord) -> Result<()>;
    /// Replaces a dataset's row (by id); fails with `DatasetExists` on a name clash.
    async fn update_dataset(&self, dataset: &DatasetRecord) -> Result<()>;
    /// The live dataset with this name.
    async fn dataset_by_name(&self, name: &str) -> Result<Option<DatasetRecord>>;
    /// Any dataset (live or soft-deleted) by id.
    async fn dataset_by_id(&self, id: &str) -> Result<Option<DatasetRecord>>;
    /// A page of datasets and the total matching the filter.
    async fn list_datasets(
        &self,
        filter: &DatasetFilter,
        sort: DatasetSort,
        page: Page,
    ) -> Result<(Vec<DatasetRecord>, u64)>;
    /// Names of all live datasets.
    async fn live_dataset_names(&self) -> Result<Vec<String>>;
    /// Storage locations of every dataset row, live or deleted.
    async fn dataset_locations(&self) -> Result<Vec<String>>;
    /// Removes a dataset's row for good.
    async fn purge_dataset(&self, id: &str) -> Result<()>;
    /// Inserts a job.
    async fn insert_job(&self, job: &JobRecord) -> Result<()>;
    /// Replaces a job's row (by id).
    async fn update_job(&self, job: &JobRecord) -> Result<()>;
    /// Records progress of a running job; ignored once the job has ended.
    async fn update_job_progress(
        &self,
        id: &str,
        progress: Option<f64>,
        message: &str,
    ) -> Result<()>;
    /// One job.
    async fn job(&self, id: &str) -> Result<Option<JobRecord>>;
    /// A page of jobs (newest first) and the total matching the filter.
    async fn list_jobs(&self, filter: &JobFilter, page: Page) -> Result<(Vec<JobRecord>, u64)>;
    /// Marks jobs left queued or running by a previous process as failed; returns how many.
    async fn fail_interrupted_jobs(&self, reason: &str) -> Result<u64>;
    /// Closes connections cleanly.
    async fn close(&self);
}
