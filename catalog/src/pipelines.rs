//! Pipeline, version, run, view and event rows.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Page;
use crate::{Error, Result};

/// A pipeline's row: its name and which version is active.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct PipelineRecord {
    /// Stable id (UUID v7).
    pub id: String,
    /// Unique name.
    pub name: String,
    /// The version runs use.
    pub active_version: i64,
    /// Who created it.
    pub created_by: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed (a new version, an activation, archiving).
    pub updated_at: DateTime<Utc>,
    /// When it was archived: it no longer runs, by schedule or by hand.
    pub archived_at: Option<DateTime<Utc>>,
    /// The last cron fire time the scheduler handled.
    #[serde(skip_serializing)]
    pub schedule_cursor: Option<DateTime<Utc>>,
}

/// One immutable version of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct PipelineVersionRecord {
    /// The pipeline.
    pub pipeline_id: String,
    /// 1, 2, … per pipeline.
    pub version: i64,
    /// SHA-256 of the definition: equal content, equal hash.
    pub hash: String,
    /// The definition as saved.
    #[sqlx(rename = "definition_json", json)]
    pub definition: serde_json::Value,
    /// What validation derived from it (dependencies, output schemas, lineage).
    #[sqlx(rename = "outputs_json", json)]
    pub outputs: serde_json::Value,
    /// Who saved it.
    pub created_by: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A run's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct RunRecord {
    /// Run id (UUID v7).
    pub id: String,
    /// The pipeline.
    pub pipeline_id: String,
    /// The pipeline version it runs.
    pub version: i64,
    /// Where it is.
    #[sqlx(try_from = "String")]
    pub status: RunStatus,
    /// What started it: `manual`, `schedule`, `dataset:<name>`, `retry:<run id>`.
    pub trigger: String,
    /// The params it runs with (after defaults).
    #[sqlx(rename = "params_json", json)]
    pub params: serde_json::Value,
    /// The caller's key: a second request with it returns this run.
    pub idempotency_key: Option<String>,
    /// The run this one retries.
    pub retry_of: Option<String>,
    /// The job that executes it.
    pub job_id: Option<String>,
    /// Each step's state, in execution order.
    #[sqlx(rename = "steps_json", json)]
    pub steps: Vec<StepRun>,
    /// Why it failed, when it did.
    #[sqlx(rename = "error_json", json(nullable))]
    pub error: Option<serde_json::Value>,
    /// Who started it.
    pub created_by: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl RunRecord {
    /// Steps that have ended, over all steps (0 to 1).
    pub fn progress(&self) -> f64 {
        if self.steps.is_empty() {
            return if self.status.is_terminal() { 1.0 } else { 0.0 };
        }
        let done = self.steps.iter().filter(|s| s.status.is_terminal()).count();
        done as f64 / self.steps.len() as f64
    }
}

/// A run's status. Terminal states never change again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Accepted, not started.
    Queued,
    /// Steps are running.
    Running,
    /// A step failed and waits to try again.
    Retrying,
    /// Every step succeeded (or was reused from the run it retries).
    Succeeded,
    /// A step failed for good.
    Failed,
    /// Cancel was asked; running steps are stopping.
    Canceling,
    /// Stopped by a user.
    Canceled,
}

impl TryFrom<String> for RunStatus {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::parse(&value)
            .ok_or_else(|| Error::corrupt("run status", format!("unknown status {value:?}")))
    }
}

impl RunStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceling => "canceling",
            Self::Canceled => "canceled",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "retrying" => Self::Retrying,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "canceling" => Self::Canceling,
            "canceled" => Self::Canceled,
            _ => return None,
        })
    }

    /// Whether the run is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Canceled)
    }
}

/// One step's state within a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepRun {
    /// The step.
    pub name: String,
    /// `table`, `view`, `incremental` or `ephemeral`.
    pub materialization: String,
    /// Where it is.
    pub status: StepStatus,
    /// Attempts started.
    pub attempts: u32,
    /// Rows the step's scans returned (last attempt); a filter pushed into a
    /// scan counts only the rows that match it.
    pub rows_read: u64,
    /// Rows written to its dataset (last attempt).
    pub rows_written: u64,
    /// The dataset version its write created.
    pub dataset_version: Option<i64>,
    /// When its first attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Wall time from start to end, in milliseconds.
    pub duration_ms: Option<u64>,
    /// Why it failed (last attempt): `{code, message, line?, column?}`.
    pub error: Option<serde_json::Value>,
    /// What happened, for people.
    pub logs: Vec<StepLog>,
    /// What the step's quality checks found after its write, one
    /// `{name, blocking, outcome, observed, error?}` each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<serde_json::Value>,
}

/// A line of a step's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepLog {
    /// When.
    pub at: DateTime<Utc>,
    /// `info`, `warn` or `error`.
    pub level: String,
    /// What.
    pub message: String,
}

/// A step's status within a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Waits for its upstream steps.
    Pending,
    /// Running now.
    Running,
    /// Failed; waits to try again.
    Retrying,
    /// Done.
    Succeeded,
    /// Failed for good.
    Failed,
    /// Not run because a step it reads failed.
    UpstreamFailed,
    /// Not run: the run it retries had already done it.
    Reused,
    /// Not run because the run was canceled.
    Canceled,
}

impl StepStatus {
    /// Whether the step is over.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Pending | Self::Running | Self::Retrying)
    }

    /// Whether what it produced is there for downstream steps.
    pub fn is_done(self) -> bool {
        matches!(self, Self::Succeeded | Self::Reused)
    }
}

/// Filters for listing runs.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only this pipeline's.
    pub pipeline_id: Option<String>,
    /// Only this status.
    pub status: Option<RunStatus>,
}

/// A persisted event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct EventRecord {
    /// Position in the whole stream; a client's cursor.
    pub seq: i64,
    /// `pipeline_status`, `pipeline_progress`, `pipeline_completed`, `pipeline_failed`,
    /// `job_status`, `dataset_updated`, `system_alert`.
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: String,
    /// The pipeline it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<String>,
    /// The run it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The dataset it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// The job it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The event's body.
    #[sqlx(rename = "payload_json", json)]
    pub data: serde_json::Value,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The event as a transport sends it, made once and shared by every
    /// subscriber (a thousand sockets need not serialize it a thousand times).
    #[serde(skip)]
    #[sqlx(skip)]
    pub wire: std::sync::OnceLock<std::sync::Arc<str>>,
}

/// Pipeline rows and what hangs off them.
#[async_trait]
pub trait PipelineStore: Send + Sync {
    /// Inserts a pipeline with its first version, in one transaction.
    async fn insert_pipeline(
        &self,
        pipeline: &PipelineRecord,
        version: &PipelineVersionRecord,
    ) -> Result<()>;
    /// Adds a version and makes it active, if the active version is still
    /// `expected_active` (`Conflict` otherwise).
    async fn add_pipeline_version(
        &self,
        version: &PipelineVersionRecord,
        expected_active: i64,
    ) -> Result<()>;
    /// Makes `version` the active one.
    async fn activate_pipeline_version(&self, pipeline_id: &str, version: i64) -> Result<()>;
    /// Archives (with a time) or restores (with `None`) a pipeline.
    async fn set_pipeline_archived(
        &self,
        pipeline_id: &str,
        archived_at: Option<DateTime<Utc>>,
    ) -> Result<()>;
    /// Records the last cron fire time the scheduler handled.
    async fn set_schedule_cursor(&self, pipeline_id: &str, cursor: DateTime<Utc>) -> Result<()>;
    /// By id or name.
    async fn pipeline(&self, id_or_name: &str) -> Result<Option<PipelineRecord>>;
    /// A page of pipelines by name, and the total.
    async fn list_pipelines(
        &self,
        include_archived: bool,
        page: Page,
    ) -> Result<(Vec<PipelineRecord>, u64)>;
    /// Every pipeline that is not archived.
    async fn live_pipelines(&self) -> Result<Vec<PipelineRecord>>;
    /// One version.
    async fn pipeline_version(
        &self,
        pipeline_id: &str,
        version: i64,
    ) -> Result<Option<PipelineVersionRecord>>;
    /// Every version, newest first.
    async fn pipeline_versions(&self, pipeline_id: &str) -> Result<Vec<PipelineVersionRecord>>;
    /// Inserts a run; when its idempotency key is taken, returns the run that took it.
    async fn insert_run(&self, run: &RunRecord) -> Result<Option<RunRecord>>;
    /// Replaces a run's row (by id); a run without a job id keeps the stored one.
    async fn update_run(&self, run: &RunRecord) -> Result<()>;
    /// Records the job that executes a run.
    async fn set_run_job(&self, run_id: &str, job_id: &str) -> Result<()>;
    /// One run.
    async fn run(&self, id: &str) -> Result<Option<RunRecord>>;
    /// A page of runs (newest first) and the total.
    async fn list_runs(&self, filter: &RunFilter, page: Page) -> Result<(Vec<RunRecord>, u64)>;
    /// Runs that have not ended.
    async fn unfinished_runs(&self) -> Result<Vec<RunRecord>>;
    /// Stores (or replaces) a view.
    async fn put_view(&self, name: &str, sql: &str, pipeline_id: &str) -> Result<()>;
    /// Every stored view: name and SQL.
    async fn views(&self) -> Result<Vec<(String, String)>>;
    /// Appends events in one transaction, numbering them: each gets the next
    /// `seq`, never reused (not even after old events are pruned).
    async fn append_events(&self, events: &mut [EventRecord]) -> Result<()>;
    /// Events after `seq`, oldest first, at most `limit`.
    async fn events_after(&self, seq: i64, limit: u32) -> Result<Vec<EventRecord>>;
    /// The largest `seq` ever given (0 when none), pruned events included.
    async fn last_event_seq(&self) -> Result<i64>;
    /// Deletes events older than `before`; returns how many.
    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64>;
}
