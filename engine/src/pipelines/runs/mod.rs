//! Runs: a pipeline version executed as a job. Steps start as soon as the
//! steps they read are done, up to a concurrency limit; each step's write
//! is one Delta commit; a failed attempt is retried with exponential
//! backoff and jitter; a step that fails for good marks the steps that
//! read it `upstream_failed` while independent branches go on. A step's
//! quality checks run after its write: a blocking one that fails fails the
//! step (its commit stays) without a retry. Every change is persisted on
//! the run's row and published as an event.

mod dry_run;
mod execute;
mod lifecycle;
mod openlineage;

use execute::*;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use datafusion::catalog::TableProvider;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::view::ViewTable;
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::{cast, col, lit};
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::{ExecutionPlan, displayable, execute_stream_partitioned};
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::validate::{PreparedStep, Validation, plan_step, prepare};
use super::{Diagnostic, PipelineSource};
use crate::analytics::checks::CheckDefinition;
use crate::analytics::quality::CheckTrigger;
use crate::catalog::{
    CatalogStore, Page, PipelineRecord, RunFilter, RunRecord, RunStatus, StepLog, StepRun,
    StepStatus,
};
use crate::datasets::conform::{ColumnMapping, conform};
use crate::datasets::schema::{SchemaChange, SchemaField, diff, fields_of};
use crate::datasets::write::{OneShotPartition, WriteMode};
use crate::error::Entity;
use crate::identity::{Action, Principal};
use crate::pipelines::model::{Incremental, Materialization, PipelineDefinition, Step, StepPolicy};
use crate::runtime::events::{NewEvent, kinds};
use crate::{Engine, Error, Result};

/// Longest wait between two attempts of a step.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Backoff before the first retry when the step does not say.
const DEFAULT_BACKOFF_MS: u64 = 1000;
/// Most sample rows a plan returns per step.
const MAX_SAMPLE_ROWS: u32 = 1000;
/// Log lines kept per step.
const MAX_STEP_LOGS: usize = 100;

/// What a run is asked with.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Param values; the rest take their defaults.
    #[serde(default)]
    pub params: serde_json::Map<String, Value>,
    /// A second request with the same key returns the first run instead of starting another.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// What a dry run is asked with: params, rows per sample, and optionally a
/// draft to plan instead of the active version.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// Param values.
    #[serde(default)]
    pub params: serde_json::Map<String, Value>,
    /// Rows to sample per step (default 10; more than 1000 are read as 1000).
    #[serde(default)]
    pub sample_rows: Option<u32>,
    /// A draft in the JSON form.
    #[serde(default)]
    pub definition: Option<PipelineDefinition>,
    /// A draft as a `.sql` file.
    #[serde(default)]
    pub sql: Option<String>,
    /// A draft in the visual form.
    #[serde(default)]
    pub visual: Option<crate::pipelines::model::VisualDefinition>,
}

/// A dry run's answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PipelinePlan {
    /// The pipeline.
    pub pipeline: String,
    /// The active version the plan compares against (none for a new pipeline).
    pub active_version: Option<i64>,
    /// Whether the planned definition validates.
    pub valid: bool,
    /// What validation found.
    pub diagnostics: Vec<Diagnostic>,
    /// Steps grouped by what can run in parallel.
    pub levels: Vec<Vec<String>>,
    /// Each step that would run, in order.
    pub steps: Vec<StepPlan>,
    /// Wall time of the dry run.
    pub elapsed_ms: u64,
}

/// What a step would do.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StepPlan {
    /// The step.
    pub name: String,
    /// `create`, `replace`, `append`, `merge`, `view` or `inline`.
    pub action: String,
    /// Steps it waits for.
    pub depends_on: Vec<String>,
    /// Its output columns.
    pub schema: Vec<SchemaField>,
    /// Changes against what the active version produces now.
    pub schema_changes: Vec<SchemaChange>,
    /// Whether any change may break readers.
    pub breaking: bool,
    /// The optimized logical plan and the physical plan.
    pub explain: Explain,
    /// The first rows it would produce.
    pub sample: Vec<Value>,
}

/// A step's plans, as text.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Explain {
    /// Optimized logical plan.
    pub logical: String,
    /// Physical plan.
    pub physical: String,
}

/// Marks runs a dead process left unfinished as failed (their datasets are
/// at their last committed versions: each commit is atomic).
pub(crate) async fn fail_interrupted_runs(catalog: &dyn CatalogStore) -> Result<()> {
    let now = Utc::now();
    for mut run in catalog.unfinished_runs().await? {
        for step in &mut run.steps {
            match step.status {
                StepStatus::Running | StepStatus::Retrying => {
                    step.status = StepStatus::Failed;
                    step.finished_at = Some(now);
                    step.error = Some(json!({
                        "code": "interrupted",
                        "message": "interrupted by a server restart",
                    }));
                }
                StepStatus::Pending => step.status = StepStatus::Canceled,
                _ => {}
            }
        }
        run.status = RunStatus::Failed;
        run.error = Some(json!({
            "code": "interrupted",
            "message": "interrupted by a server restart; datasets are at their last committed versions",
        }));
        run.finished_at = Some(now);
        run.updated_at = now;
        catalog.update_run(&run).await?;
        tracing::warn!(run = %run.id, "marked a run of a previous process as failed");
    }
    Ok(())
}

/// What a run executes: the definition rendered with its params.
struct RunPlan {
    pipeline: PipelineRecord,
    steps: Vec<PreparedStep>,
    defaults: StepPolicy,
    max_parallel: usize,
}

impl RunPlan {
    fn step(&self, name: &str) -> Option<&PreparedStep> {
        self.steps.iter().find(|s| s.step.name == name)
    }

    /// Ephemeral and view steps `name` reads, directly or through others, upstream first.
    fn inlined_ancestors(&self, name: &str) -> Vec<&PreparedStep> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&str> = vec![name];
        while let Some(at) = stack.pop() {
            if let Some(step) = self.step(at) {
                for dep in &step.depends_on {
                    if seen.insert(dep.clone()) {
                        stack.push(dep);
                    }
                }
            }
        }
        self.steps
            .iter()
            .filter(|s| seen.contains(&s.step.name))
            .filter(|s| {
                matches!(
                    s.step.materialization,
                    Materialization::Ephemeral | Materialization::View
                )
            })
            .collect()
    }
}

/// A run's row, shared by its steps; every change is persisted and
/// published under the lock, so the stored row never goes back in time.
struct RunState {
    engine: Engine,
    pipeline_name: String,
    run: tokio::sync::Mutex<RunRecord>,
}

impl RunState {
    async fn change(&self, kind: &'static str, step: Option<&str>, f: impl FnOnce(&mut RunRecord)) {
        let mut run = self.run.lock().await;
        f(&mut run);
        run.updated_at = Utc::now();
        if let Err(e) = self.engine.catalog().update_run(&run).await {
            tracing::error!(run = %run.id, error = %e, "could not record run state");
        }
        self.engine
            .publish(run_event(kind, &self.pipeline_name, &run, step));
    }

    async fn change_step(&self, name: &str, f: impl FnOnce(&mut StepRun)) {
        self.change(kinds::PIPELINE_PROGRESS, Some(name), |run| {
            if let Some(step) = run.steps.iter_mut().find(|s| s.name == name) {
                f(step);
                if step.logs.len() > MAX_STEP_LOGS {
                    let excess = step.logs.len() - MAX_STEP_LOGS;
                    step.logs.drain(..excess);
                }
            }
            run.status = if run.steps.iter().any(|s| s.status == StepStatus::Retrying) {
                RunStatus::Retrying
            } else if run.status == RunStatus::Retrying {
                RunStatus::Running
            } else {
                run.status
            };
        })
        .await;
    }

    async fn snapshot(&self) -> RunRecord {
        self.run.lock().await.clone()
    }
}

/// The event for a run's current state.
fn run_event(kind: &'static str, pipeline: &str, run: &RunRecord, step: Option<&str>) -> NewEvent {
    let mut data = json!({
        "run_id": run.id,
        "pipeline_id": run.pipeline_id,
        "pipeline": pipeline,
        "version": run.version,
        "status": run.status,
        "progress": run.progress(),
        "trigger": run.trigger,
        "steps": run.steps.iter().map(|s| json!({"name": s.name, "status": s.status})).collect::<Vec<_>>(),
    });
    if let Some(step) = step.and_then(|name| run.steps.iter().find(|s| s.name == name)) {
        data["step"] = json!({
            "name": step.name,
            "status": step.status,
            "attempts": step.attempts,
            "rows_read": step.rows_read,
            "rows_written": step.rows_written,
            "duration_ms": step.duration_ms,
            "error": step.error,
        });
    }
    if matches!(kind, kinds::PIPELINE_FAILED | kinds::PIPELINE_COMPLETED) {
        data["error"] = run.error.clone().unwrap_or(Value::Null);
        data["duration_ms"] = json!(
            run.started_at
                .zip(run.finished_at)
                .map(|(a, b)| (b - a).num_milliseconds())
        );
        data["failed_steps"] = json!(
            run.steps
                .iter()
                .filter(|s| s.status == StepStatus::Failed)
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
        );
    }
    NewEvent {
        kind,
        pipeline_id: Some(run.pipeline_id.clone()),
        run_id: Some(run.id.clone()),
        data,
        ..NewEvent::default()
    }
}

fn log(step: &mut StepRun, level: &str, message: String) {
    step.logs.push(StepLog {
        at: Utc::now(),
        level: level.to_owned(),
        message,
    });
}

/// What one attempt of a step did, and whether its checks then failed it.
#[derive(Debug, Default)]
struct Attempt {
    rows_read: u64,
    rows_written: u64,
    version: Option<i64>,
    /// The step's error when a blocking check failed after the write succeeded.
    check_failure: Option<Value>,
}

/// A failed attempt's error as the run shows it, with the SQL position
/// mapped to the step's file when it came from one.
fn step_error(step: &Step, error: &Error) -> Value {
    let mut value = json!({ "code": error.code(), "message": error.public_message() });
    if let Error::Sql {
        location: Some(location),
        ..
    } = error
    {
        let at = Diagnostic::error(None, "", "").at(step, location.line, location.column);
        value["line"] = json!(at.line);
        value["column"] = json!(at.column);
    }
    value
}

/// Exponential backoff with jitter: half the doubled delay, plus a random part of the other half.
fn backoff(base_ms: u64, attempt: u32) -> Duration {
    let doubled = base_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
    let capped = doubled.min(MAX_BACKOFF.as_millis() as u64);
    let half = capped / 2;
    Duration::from_millis(half + rand::random_range(0..=half))
}

/// Rows the plan's leaves produced: what the step read.
fn rows_read(plan: &Arc<dyn ExecutionPlan>) -> u64 {
    if plan.children().is_empty() {
        return plan
            .metrics()
            .and_then(|m| m.output_rows())
            .unwrap_or_default() as u64;
    }
    plan.children().into_iter().map(rows_read).sum()
}

/// A frame over a physical plan's partitions, so the caller keeps the plan
/// (and its metrics) while Basin's writers consume the frame.
async fn frame_over(
    ctx: &SessionContext,
    frame: DataFrame,
) -> Result<(DataFrame, Arc<dyn ExecutionPlan>)> {
    let physical = frame.create_physical_plan().await?;
    let schema = physical.schema();
    let streams = execute_stream_partitioned(physical.clone(), ctx.task_ctx())?;
    let partitions: Vec<Arc<dyn PartitionStream>> = streams
        .into_iter()
        .map(|s| Arc::new(OneShotPartition::new(schema.clone(), s)) as Arc<dyn PartitionStream>)
        .collect();
    let table = StreamingTable::try_new(schema, partitions)?;
    Ok((ctx.read_table(Arc::new(table))?, physical))
}

fn pending_step(name: &str, materialization: &str) -> StepRun {
    StepRun {
        name: name.to_owned(),
        materialization: materialization.to_owned(),
        status: StepStatus::Pending,
        attempts: 0,
        rows_read: 0,
        rows_written: 0,
        dataset_version: None,
        started_at: None,
        finished_at: None,
        duration_ms: None,
        error: None,
        logs: Vec::new(),
        checks: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::openlineage::step_run_uuid;
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for attempt in 1..=4 {
            let full = 100u64 << (attempt - 1);
            let wait = backoff(100, attempt).as_millis() as u64;
            assert!(
                wait >= full / 2 && wait <= full,
                "attempt {attempt}: {wait}"
            );
        }
        assert!(backoff(1000, 30) <= MAX_BACKOFF);
    }

    #[test]
    fn step_run_ids_are_stable_uuids() {
        let a = step_run_uuid("run", "step");
        assert_eq!(a, step_run_uuid("run", "step"));
        assert_ne!(a, step_run_uuid("run", "other"));
        assert!(uuid::Uuid::parse_str(&a).is_ok());
    }
}
