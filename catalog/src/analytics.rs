//! Profile, quality check, check result and metric rows.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Result;

/// A stored profile of one dataset version.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct ProfileRecord {
    /// Unique id.
    pub id: String,
    /// The profiled dataset.
    #[serde(skip_serializing)]
    pub dataset_id: String,
    /// The dataset version that was profiled.
    pub version: i64,
    /// The job that computed it, when it ran as one.
    pub job_id: Option<String>,
    /// The profile itself.
    #[sqlx(rename = "profile_json", json)]
    pub profile: serde_json::Value,
    /// When it was computed.
    pub created_at: DateTime<Utc>,
}

/// A quality check attached to a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct CheckRecord {
    /// Unique id.
    pub id: String,
    /// The dataset it checks.
    #[serde(skip_serializing)]
    pub dataset_id: String,
    /// Unique within the dataset.
    pub name: String,
    /// The check's definition as the user gave it.
    #[sqlx(rename = "definition_json", json)]
    pub definition: serde_json::Value,
    /// Who created it.
    pub created_by: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// One evaluation of one check.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct CheckResultRecord {
    /// Position in the history; assigned by the store.
    pub seq: i64,
    /// The check's id.
    pub check_id: String,
    /// The check's name when it ran.
    pub check_name: String,
    /// The dataset.
    #[serde(skip_serializing)]
    pub dataset_id: String,
    /// The dataset version the check saw.
    pub dataset_version: Option<i64>,
    /// Groups the results of one run of a dataset's checks.
    pub run_id: String,
    /// What started it: `manual`, `after_write` or `pipeline`.
    pub trigger: String,
    /// `pass`, `warn`, `fail` or `error`.
    pub outcome: String,
    /// The check's observed value.
    pub observed: Option<f64>,
    /// Rows (or values) the check looked at.
    pub element_count: Option<i64>,
    /// Rows that broke the expectation.
    pub unexpected_count: Option<i64>,
    /// `unexpected_count` as a percentage of `element_count`.
    pub unexpected_percent: Option<f64>,
    /// Type-specific details (mismatches, p-value, bins).
    #[sqlx(rename = "details_json", json(nullable))]
    pub details: Option<serde_json::Value>,
    /// Some failing rows.
    #[sqlx(rename = "sample_json", json(nullable))]
    pub sample: Option<serde_json::Value>,
    /// Why the check could not be evaluated.
    #[sqlx(rename = "error_json", json(nullable))]
    pub error: Option<serde_json::Value>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How long it took.
    pub duration_ms: i64,
}

/// One point of a dataset metric's history.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct MetricRecord {
    /// The dataset.
    #[serde(skip_serializing)]
    pub dataset_id: String,
    /// `row_count`, `size_bytes`, `completeness`, `duplicate_rows`, `freshness_seconds`, `check_pass_rate`.
    pub name: String,
    /// The value; absent when it could not be measured.
    pub value: Option<f64>,
    /// The dataset version it was measured on.
    pub version: Option<i64>,
    /// When it was measured.
    pub recorded_at: DateTime<Utc>,
}

/// Which metric points to read.
#[derive(Debug, Clone, Default)]
pub struct MetricFilter {
    /// Only this metric.
    pub name: Option<String>,
    /// Measured at or after.
    pub from: Option<DateTime<Utc>>,
    /// Measured before.
    pub to: Option<DateTime<Utc>>,
    /// At most this many points (the newest).
    pub limit: u32,
}

/// Storage of profiles, checks, their results and metrics.
#[async_trait]
pub trait AnalyticsStore: Send + Sync {
    /// Stores a profile and keeps only the newest `keep` of its dataset.
    async fn insert_profile(&self, profile: &ProfileRecord, keep: u32) -> Result<()>;
    /// The newest profile of a dataset.
    async fn latest_profile(&self, dataset_id: &str) -> Result<Option<ProfileRecord>>;
    /// Adds a check; its name must be new within the dataset.
    async fn insert_check(&self, check: &CheckRecord) -> Result<()>;
    /// Replaces a check's name and definition.
    async fn update_check(&self, check: &CheckRecord) -> Result<()>;
    /// Removes a check (its results stay in the history).
    async fn delete_check(&self, id: &str) -> Result<bool>;
    /// A dataset's checks, by name.
    async fn checks_of(&self, dataset_id: &str) -> Result<Vec<CheckRecord>>;
    /// Appends results; fills in their `seq`.
    async fn insert_check_results(&self, results: &mut [CheckResultRecord]) -> Result<()>;
    /// A dataset's check results, newest first, optionally of one check, before a `seq`.
    async fn check_results(
        &self,
        dataset_id: &str,
        check_id: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<CheckResultRecord>>;
    /// The newest result of every existing check (of one dataset, or of all).
    async fn latest_check_results(
        &self,
        dataset_id: Option<&str>,
    ) -> Result<Vec<CheckResultRecord>>;
    /// Appends metric points.
    async fn insert_metrics(&self, metrics: &[MetricRecord]) -> Result<()>;
    /// A dataset's metric points, oldest first.
    async fn metrics(&self, dataset_id: &str, filter: &MetricFilter) -> Result<Vec<MetricRecord>>;
    /// Jobs counted by status.
    async fn job_status_counts(&self) -> Result<Vec<(String, i64)>>;
    /// Pipeline runs counted by status.
    async fn run_status_counts(&self) -> Result<Vec<(String, i64)>>;
}
