//! Runs: a pipeline version executed as a job. Steps start as soon as the
//! steps they read are done, up to a concurrency limit; each step's write
//! is one Delta commit; a failed attempt is retried with exponential
//! backoff and jitter; a step that fails for good marks the steps that
//! read it `upstream_failed` while independent branches go on. A step's
//! quality checks run after its write: a blocking one that fails fails the
//! step (its commit stays) without a retry. Every change is persisted on
//! the run's row and published as an event.

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

use super::model::{Incremental, Materialization, PipelineDefinition, Step, StepPolicy};
use super::validate::{PreparedStep, Validation, plan_step, prepare};
use super::{Diagnostic, PipelineSource};
use crate::analytics::checks::CheckDefinition;
use crate::analytics::quality::CheckTrigger;
use crate::auth::{Action, Principal};
use crate::catalog::{
    CatalogStore, Page, PipelineRecord, RunFilter, RunRecord, RunStatus, StepLog, StepRun,
    StepStatus,
};
use crate::conform::{ColumnMapping, conform};
use crate::error::Entity;
use crate::events::{NewEvent, kinds};
use crate::ingest::{OneShotPartition, WriteMode};
use crate::schema::{SchemaChange, SchemaField, diff, fields_of};
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
    pub visual: Option<super::model::VisualDefinition>,
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

impl Engine {
    /// Starts a run of the active version as a job; returns the run and
    /// whether it is new (an idempotency key seen before returns the old one).
    pub async fn start_run(
        &self,
        principal: &Principal,
        id_or_name: &str,
        request: RunRequest,
        trigger: &str,
    ) -> Result<(RunRecord, bool)> {
        self.authorize_pipelines(principal, Action::Write)?;
        let pipeline = self.pipeline_record(id_or_name).await?;
        if pipeline.archived_at.is_some() {
            return Err(Error::RunState(format!(
                "pipeline `{}` is archived: restore it to run it",
                pipeline.name
            )));
        }
        let version = self
            .version_record(&pipeline, pipeline.active_version)
            .await?;
        let definition: PipelineDefinition = serde_json::from_value(version.definition)
            .map_err(|e| Error::internal("stored pipeline definition", e))?;
        if definition.template {
            return Err(Error::RunState(format!(
                "pipeline `{}` is a template: instantiate it, then run the new pipeline",
                pipeline.name
            )));
        }
        let values = super::model::resolve_params(&definition.params, &request.params)?;
        let validation: Validation = serde_json::from_value(version.outputs)
            .map_err(|e| Error::internal("stored pipeline outputs", e))?;
        let now = Utc::now();
        let run = RunRecord {
            id: uuid::Uuid::now_v7().to_string(),
            pipeline_id: pipeline.id.clone(),
            version: version.version,
            status: RunStatus::Queued,
            trigger: trigger.to_owned(),
            params: serde_json::to_value(&values).unwrap_or_default(),
            idempotency_key: request.idempotency_key,
            retry_of: None,
            job_id: None,
            steps: validation
                .steps
                .iter()
                .map(|s| pending_step(&s.name, &s.materialization))
                .collect(),
            error: None,
            created_by: principal.user_id.clone(),
            created_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
        };
        if let Some(existing) = self.catalog().insert_run(&run).await? {
            return Ok((existing, false));
        }
        let run = self.launch(pipeline, definition, run).await?;
        Ok((run, true))
    }

    /// Queues the job that executes `run`.
    async fn launch(
        &self,
        pipeline: PipelineRecord,
        definition: PipelineDefinition,
        mut run: RunRecord,
    ) -> Result<RunRecord> {
        let pipeline_name = pipeline.name.clone();
        self.publish(run_event(
            kinds::PIPELINE_STATUS,
            &pipeline_name,
            &run,
            None,
        ));
        let engine = self.clone();
        let queued = run.clone();
        let submitted = self
            .submit_job(
                "pipeline_run",
                json!({ "pipeline": pipeline.name, "pipeline_id": pipeline.id, "run": run.id }),
                move |job| async move {
                    // The run owns its ending: canceling the job cancels the
                    // run, which records its steps as canceled itself.
                    let state = Arc::new(RunState {
                        engine: engine.clone(),
                        pipeline_name,
                        run: tokio::sync::Mutex::new(queued),
                    });
                    let task = tokio::spawn(execute(
                        engine,
                        state,
                        pipeline,
                        definition,
                        job.cancel.clone(),
                    ));
                    task.await.map_err(|e| Error::internal("pipeline run", e))?
                },
            )
            .await;
        let job = match submitted {
            Ok(job) => job,
            Err(e) => {
                // Never leave a run queued that nothing will execute.
                self.end_unexecuted(&run.id, RunStatus::Failed, &e).await?;
                return Err(e);
            }
        };
        // The executor may have moved on already: record the job id only.
        self.catalog().set_run_job(&run.id, &job.id).await?;
        run.job_id = Some(job.id);
        Ok(self.catalog().run(&run.id).await?.unwrap_or(run))
    }

    /// One run.
    pub async fn run_record(&self, principal: &Principal, id: &str) -> Result<RunRecord> {
        self.authorize_pipelines(principal, Action::Read)?;
        self.run_row(id).await
    }

    async fn run_row(&self, id: &str) -> Result<RunRecord> {
        self.catalog()
            .run(id)
            .await?
            .ok_or_else(|| Error::not_found(Entity::Run, id.to_owned()))
    }

    /// A page of runs, newest first, and the total.
    pub async fn list_runs(
        &self,
        principal: &Principal,
        filter: &RunFilter,
        page: Page,
    ) -> Result<(Vec<RunRecord>, u64)> {
        self.authorize_pipelines(principal, Action::Read)?;
        self.catalog().list_runs(filter, page).await
    }

    /// A page of one pipeline's runs (by id or name), newest first, and the
    /// total; `status` narrows them.
    pub async fn list_pipeline_runs(
        &self,
        principal: &Principal,
        pipeline: &str,
        status: Option<RunStatus>,
        page: Page,
    ) -> Result<(Vec<RunRecord>, u64)> {
        self.authorize_pipelines(principal, Action::Read)?;
        let pipeline = self.pipeline_record(pipeline).await?;
        let filter = RunFilter {
            pipeline_id: Some(pipeline.id),
            status,
        };
        self.catalog().list_runs(&filter, page).await
    }

    /// Cancels a run that has not ended; returns it as it is after the request.
    pub async fn cancel_run(&self, principal: &Principal, id: &str) -> Result<RunRecord> {
        self.authorize_pipelines(principal, Action::Write)?;
        let run = self.run_row(id).await?;
        if run.status.is_terminal() {
            return Err(Error::RunState(format!(
                "run `{id}` is already {}",
                run.status.as_str()
            )));
        }
        let orphaned = match &run.job_id {
            Some(job) => matches!(
                self.cancel_job_record(job).await,
                Err(Error::JobFinished { .. }
                    | Error::NotFound {
                        entity: Entity::Job,
                        ..
                    })
            ),
            None => true,
        };
        if orphaned {
            // No job will end this run: end it here.
            self.end_unexecuted(id, RunStatus::Canceled, &Error::Canceled)
                .await?;
        }
        match self.wait_run(id, Duration::from_secs(5)).await {
            Err(Error::Timeout(_)) => self.run_row(id).await,
            other => other,
        }
    }

    /// Ends a run no executor is working on (its job could not start, or ended).
    async fn end_unexecuted(&self, id: &str, status: RunStatus, error: &Error) -> Result<()> {
        let Some(mut run) = self.catalog().run(id).await? else {
            return Ok(());
        };
        if run.status.is_terminal() {
            return Ok(());
        }
        let now = Utc::now();
        for step in &mut run.steps {
            if !step.status.is_terminal() {
                step.status = StepStatus::Canceled;
                step.finished_at = Some(now);
            }
        }
        run.status = status;
        run.error = (status == RunStatus::Failed).then(|| error.to_public_json());
        run.finished_at = Some(now);
        run.updated_at = now;
        self.catalog().update_run(&run).await?;
        let pipeline = self.pipeline_record(&run.pipeline_id).await?;
        let kind = if status == RunStatus::Failed {
            kinds::PIPELINE_FAILED
        } else {
            kinds::PIPELINE_STATUS
        };
        self.publish(run_event(kind, &pipeline.name, &run, None));
        Ok(())
    }

    /// Starts a new run of the same version and params that redoes only the
    /// steps the given run did not finish; the ones it finished are `reused`.
    pub async fn retry_run(&self, principal: &Principal, id: &str) -> Result<RunRecord> {
        self.authorize_pipelines(principal, Action::Write)?;
        let old = self.run_row(id).await?;
        if !matches!(old.status, RunStatus::Failed | RunStatus::Canceled) {
            return Err(Error::RunState(format!(
                "run `{id}` is {}: only failed or canceled runs are retried",
                old.status.as_str()
            )));
        }
        let pipeline = self.pipeline_record(&old.pipeline_id).await?;
        if pipeline.archived_at.is_some() {
            return Err(Error::RunState(format!(
                "pipeline `{}` is archived: restore it to run it",
                pipeline.name
            )));
        }
        let version = self.version_record(&pipeline, old.version).await?;
        let definition: PipelineDefinition = serde_json::from_value(version.definition)
            .map_err(|e| Error::internal("stored pipeline definition", e))?;
        let now = Utc::now();
        let run = RunRecord {
            id: uuid::Uuid::now_v7().to_string(),
            pipeline_id: old.pipeline_id.clone(),
            version: old.version,
            status: RunStatus::Queued,
            trigger: format!("retry:{}", old.id),
            params: old.params.clone(),
            idempotency_key: None,
            retry_of: Some(old.id.clone()),
            job_id: None,
            steps: old
                .steps
                .iter()
                .map(|s| {
                    let mut step = pending_step(&s.name, &s.materialization);
                    if s.status.is_done() {
                        step.status = StepStatus::Reused;
                        step.dataset_version = s.dataset_version;
                    }
                    step
                })
                .collect(),
            error: None,
            created_by: principal.user_id.clone(),
            created_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
        };
        self.catalog().insert_run(&run).await?;
        self.launch(pipeline, definition, run).await
    }

    /// Waits until a run ends (polling the catalog), for the CLI and tests.
    pub async fn wait_run(&self, id: &str, timeout: Duration) -> Result<RunRecord> {
        let deadline = Instant::now() + timeout;
        loop {
            let run = self
                .catalog()
                .run(id)
                .await?
                .ok_or_else(|| Error::not_found(Entity::Run, id.to_owned()))?;
            if run.status.is_terminal() {
                return Ok(run);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(timeout.as_millis() as u64));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A dry run: what each step would do, its plans, a sample of its rows
    /// and its schema change against what the active version produces. No
    /// dataset is written.
    pub async fn plan_pipeline(
        &self,
        principal: &Principal,
        id_or_name: &str,
        request: PlanRequest,
    ) -> Result<PipelinePlan> {
        self.authorize_pipelines(principal, Action::Read)?;
        let detail = self.pipeline_detail(principal, id_or_name).await?;
        let definition = match (&request.definition, &request.sql, &request.visual) {
            (None, None, None) => detail.definition.clone(),
            _ => {
                PipelineSource {
                    definition: request.definition.clone(),
                    sql: request.sql.clone(),
                    visual: request.visual.clone(),
                }
                .parse()?
                .definition
            }
        };
        self.plan_with(
            principal,
            Some(&detail),
            &detail.pipeline.name,
            definition,
            &request.params,
            request.sample_rows.unwrap_or(10),
        )
        .await
    }

    /// A dry run of `definition` as pipeline `name` (compared with that
    /// pipeline's active version when it exists).
    pub async fn plan_definition(
        &self,
        principal: &Principal,
        name: &str,
        definition: PipelineDefinition,
        params: &serde_json::Map<String, Value>,
        sample_rows: u32,
    ) -> Result<PipelinePlan> {
        self.authorize_pipelines(principal, Action::Read)?;
        let detail = match self.pipeline_detail(principal, name).await {
            Ok(detail) => Some(detail),
            Err(Error::NotFound {
                entity: Entity::Pipeline,
                ..
            }) => None,
            Err(e) => return Err(e),
        };
        self.plan_with(
            principal,
            detail.as_ref(),
            name,
            definition,
            params,
            sample_rows,
        )
        .await
    }

    async fn plan_with(
        &self,
        principal: &Principal,
        detail: Option<&super::store::PipelineDetail>,
        name: &str,
        definition: PipelineDefinition,
        params: &serde_json::Map<String, Value>,
        sample_rows: u32,
    ) -> Result<PipelinePlan> {
        let started = Instant::now();
        let mut values = super::model::placeholder_values_for_validation(&definition.params);
        if !definition.template {
            values.extend(super::model::resolve_params(&definition.params, params)?);
        }
        let validation = self
            .validate_pipeline(principal, &definition, params)
            .await?;
        let mut plan = PipelinePlan {
            pipeline: name.to_owned(),
            active_version: detail.map(|d| d.pipeline.active_version),
            valid: validation.valid,
            diagnostics: validation.diagnostics.clone(),
            levels: validation.levels.clone(),
            steps: Vec::new(),
            elapsed_ms: 0,
        };
        if !validation.valid {
            plan.elapsed_ms = started.elapsed().as_millis() as u64;
            return Ok(plan);
        }
        let sample_rows = sample_rows.min(MAX_SAMPLE_ROWS) as usize;
        let mut diagnostics = Vec::new();
        let (prepared, _) = prepare(&definition, &values, &mut diagnostics);
        let ctx = self.query_context(principal).await?;
        for name in &validation.order {
            let Some(p) = prepared.iter().find(|p| &p.step.name == name) else {
                continue;
            };
            let existing = self.catalog().dataset_by_name(name).await?;
            let before: Option<Vec<SchemaField>> =
                match (&existing, p.step.materialization.writes_dataset()) {
                    (Some(record), true) => serde_json::from_value(record.schema.clone()).ok(),
                    _ => detail
                        .and_then(|d| d.validation.step(name))
                        .and_then(|s| s.schema.clone()),
                };
            let action = match (&p.step.materialization, existing.is_some()) {
                (Materialization::Table, true) => "replace",
                (Materialization::Table | Materialization::Incremental(_), false) => "create",
                (Materialization::Incremental(Incremental::Append { .. }), true) => "append",
                (Materialization::Incremental(Incremental::Merge { .. }), true) => "merge",
                (Materialization::View, _) => "view",
                (Materialization::Ephemeral, _) => "inline",
            };
            let (ctx2, sql) = (ctx.clone(), p.sql.clone());
            let deadline = self.config().query_timeout;
            let sampled = self.executor().run(async move {
                let logical = plan_step(&ctx2, &sql).await?;
                let state = ctx2.state();
                let optimized = state.optimize(&logical)?;
                let physical = state.create_physical_plan(&optimized).await?;
                let explain = Explain {
                    logical: optimized.display_indent().to_string(),
                    physical: displayable(physical.as_ref()).indent(false).to_string(),
                };
                let frame = DataFrame::new(state, logical.clone());
                let batches = frame.limit(0, Some(sample_rows))?.collect().await?;
                let sample = basin_analytics::rows_as_json(&batches)?;
                let fields = fields_of(logical.schema().as_arrow());
                Ok::<_, Error>((fields, explain, sample, logical))
            });
            let (fields, explain, sample, logical) = tokio::time::timeout(deadline, sampled)
                .await
                .map_err(|_| Error::Timeout(deadline.as_millis() as u64))??;
            // Later steps read this one's rows computed in place.
            ctx.register_table(
                name.as_str(),
                Arc::new(ViewTable::new(logical, None)) as Arc<dyn TableProvider>,
            )?;
            let schema_changes = match &before {
                Some(before) => diff(before, &fields, &Default::default())?,
                None => Vec::new(),
            };
            plan.steps.push(StepPlan {
                name: name.clone(),
                action: action.to_owned(),
                depends_on: p.depends_on.clone(),
                breaking: schema_changes.iter().any(|c| c.breaking),
                schema: fields,
                schema_changes,
                explain,
                sample,
            });
        }
        plan.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(plan)
    }

    /// A run as OpenLineage run events: a START and a COMPLETE or FAIL per
    /// step that ran, with input and output datasets and column lineage.
    pub async fn openlineage_events(&self, principal: &Principal, id: &str) -> Result<Vec<Value>> {
        let run = self.run_record(principal, id).await?;
        let pipeline = self.pipeline_record(&run.pipeline_id).await?;
        let version = self.version_record(&pipeline, run.version).await?;
        let validation: Validation = serde_json::from_value(version.outputs)
            .map_err(|e| Error::internal("stored pipeline outputs", e))?;
        let mut events = Vec::new();
        for step in &run.steps {
            let (Some(started), Some(output)) = (step.started_at, validation.step(&step.name))
            else {
                continue;
            };
            let run_id = step_run_uuid(&run.id, &step.name);
            let job =
                json!({ "namespace": "basin", "name": format!("{}.{}", pipeline.name, step.name) });
            let inputs: Vec<Value> = output
                .depends_on
                .iter()
                .chain(&output.sources)
                .map(|t| json!({ "namespace": "basin", "name": t }))
                .collect();
            let mut fields = serde_json::Map::new();
            for column in &output.columns {
                fields.insert(
                    column.column.clone(),
                    json!({ "inputFields": column.sources.iter().map(|s| json!({
                        "namespace": "basin", "name": s.table, "field": s.column,
                    })).collect::<Vec<_>>() }),
                );
            }
            let schema_fields: Vec<Value> = output
                .schema
                .iter()
                .flatten()
                .map(|f| json!({ "name": f.name, "type": f.data_type }))
                .collect();
            let facet =
                |name: &str| format!("https://openlineage.io/spec/facets/1-0-1/{name}.json");
            let outputs = vec![json!({
                "namespace": "basin",
                "name": step.name,
                "facets": {
                    "schema": { "_producer": PRODUCER, "_schemaURL": facet("SchemaDatasetFacet"), "fields": schema_fields },
                    "columnLineage": { "_producer": PRODUCER, "_schemaURL": facet("ColumnLineageDatasetFacet"), "fields": fields },
                },
            })];
            let event = |kind: &str, at: chrono::DateTime<Utc>| {
                json!({
                    "eventType": kind,
                    "eventTime": at.to_rfc3339(),
                    "producer": PRODUCER,
                    "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
                    "run": { "runId": run_id, "facets": { "parent": {
                        "_producer": PRODUCER,
                        "_schemaURL": facet("ParentRunFacet"),
                        "run": { "runId": run.id },
                        "job": { "namespace": "basin", "name": pipeline.name },
                    } } },
                    "job": job,
                    "inputs": inputs,
                    "outputs": outputs,
                })
            };
            events.push(event("START", started));
            match (step.status, step.finished_at) {
                (StepStatus::Succeeded, Some(at)) => events.push(event("COMPLETE", at)),
                (StepStatus::Failed, Some(at)) => events.push(event("FAIL", at)),
                (StepStatus::Canceled, Some(at)) => events.push(event("ABORT", at)),
                _ => {}
            }
        }
        Ok(events)
    }
}

/// Who OpenLineage events say produced them.
const PRODUCER: &str = "https://example.invalid/basin";

/// A stable UUID for one step of one run (OpenLineage wants a UUID per job run).
fn step_run_uuid(run: &str, step: &str) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(format!("{run}/{step}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
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

/// Runs the steps of `state`'s run.
async fn execute(
    engine: Engine,
    state: Arc<RunState>,
    pipeline: PipelineRecord,
    definition: PipelineDefinition,
    cancel: CancellationToken,
) -> Result<Value> {
    let run = state.snapshot().await;
    let values: std::collections::BTreeMap<String, Value> =
        serde_json::from_value(run.params.clone()).unwrap_or_default();
    let mut diagnostics = Vec::new();
    let (steps, dag) = prepare(&definition, &values, &mut diagnostics);
    if dag.is_none() || !diagnostics.is_empty() {
        let error = json!({ "code": "pipeline_invalid", "message": "the pipeline does not validate with these params", "diagnostics": diagnostics });
        state
            .change(kinds::PIPELINE_FAILED, None, |run| {
                run.status = RunStatus::Failed;
                run.error = Some(error.clone());
                run.started_at = Some(Utc::now());
                run.finished_at = Some(Utc::now());
            })
            .await;
        return Err(Error::PipelineInvalid {
            message: "the pipeline does not validate with these params".into(),
            diagnostics: error["diagnostics"].clone(),
        });
    }
    let max_parallel = definition
        .max_parallel
        .map(|n| n as usize)
        .unwrap_or(engine.config().pipeline_parallelism)
        .max(1);
    // Steps in dependency order: inlined steps are planned upstream first,
    // and ready steps start in a stable order.
    let mut steps = steps;
    if let Some(dag) = &dag {
        let rank: HashMap<&str, usize> = dag
            .order()
            .iter()
            .enumerate()
            .map(|(i, name)| (name.as_str(), i))
            .collect();
        steps.sort_by_key(|s| {
            rank.get(s.step.name.as_str())
                .copied()
                .unwrap_or(usize::MAX)
        });
    }
    let plan = Arc::new(RunPlan {
        pipeline,
        steps,
        defaults: definition.defaults,
        max_parallel,
    });
    state
        .change(kinds::PIPELINE_STATUS, None, |run| {
            run.status = RunStatus::Running;
            run.started_at = Some(Utc::now());
        })
        .await;
    let mut tasks: JoinSet<(String, Result<Attempt, Value>)> = JoinSet::new();
    let mut task_steps: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut running: BTreeSet<String> = BTreeSet::new();
    let mut canceled = false;
    loop {
        let snapshot = state.snapshot().await;
        let mut status_of: HashMap<String, StepStatus> = snapshot
            .steps
            .iter()
            .map(|s| (s.name.clone(), s.status))
            .collect();
        // Steps whose upstream failed will never run; in dependency order, so
        // that the mark travels down the whole branch in one pass.
        for step in &plan.steps {
            if status_of.get(step.step.name.as_str()) != Some(&StepStatus::Pending) {
                continue;
            }
            let blocked = step.depends_on.iter().find(|d| {
                matches!(
                    status_of.get(d.as_str()),
                    Some(StepStatus::Failed | StepStatus::UpstreamFailed)
                )
            });
            if let Some(blocked) = blocked.cloned() {
                status_of.insert(step.step.name.clone(), StepStatus::UpstreamFailed);
                let message = format!("not run: upstream step `{blocked}` failed");
                state
                    .change_step(&step.step.name, |s| {
                        s.status = StepStatus::UpstreamFailed;
                        s.finished_at = Some(Utc::now());
                        log(s, "warn", message);
                    })
                    .await;
            }
        }
        let snapshot = state.snapshot().await;
        let status_of: HashMap<&str, StepStatus> = snapshot
            .steps
            .iter()
            .map(|s| (s.name.as_str(), s.status))
            .collect();
        for step in plan.steps.iter().filter(|_| !canceled) {
            if running.len() >= plan.max_parallel {
                break;
            }
            let name = step.step.name.clone();
            let ready = status_of.get(name.as_str()) == Some(&StepStatus::Pending)
                && step
                    .depends_on
                    .iter()
                    .all(|d| status_of.get(d.as_str()).is_some_and(|s| s.is_done()));
            if !ready || running.contains(&name) {
                continue;
            }
            running.insert(name.clone());
            let (engine, state, plan, cancel) =
                (engine.clone(), state.clone(), plan.clone(), cancel.clone());
            let step_name = name.clone();
            let task = tasks.spawn(async move {
                let outcome = run_step(&engine, &state, &plan, &name, &cancel).await;
                (name, outcome)
            });
            task_steps.insert(task.id(), step_name);
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = tasks.join_next() => {
                let Some(joined) = joined else { break };
                let (name, outcome) = match joined {
                    Ok(done) => done,
                    // A step task that panicked fails its step, not the run's bookkeeping.
                    Err(e) => {
                        tracing::error!(error = %e, "pipeline step task failed");
                        let name = task_steps.get(&e.id()).cloned().unwrap_or_default();
                        (name, Err(json!({ "code": "internal", "message": "internal error; see the server log" })))
                    }
                };
                running.remove(&name);
                let finished = Utc::now();
                state.change_step(&name, |s| {
                    s.finished_at = Some(finished);
                    s.duration_ms = s.started_at.map(|at| (finished - at).num_milliseconds().max(0) as u64);
                    match outcome {
                        Ok(attempt) => {
                            s.rows_read = attempt.rows_read;
                            s.rows_written = attempt.rows_written;
                            s.dataset_version = attempt.version;
                            match attempt.check_failure {
                                None => {
                                    s.status = StepStatus::Succeeded;
                                    s.error = None;
                                    log(s, "info", format!("succeeded: {} rows read, {} written", attempt.rows_read, attempt.rows_written));
                                }
                                Some(error) => {
                                    s.status = StepStatus::Failed;
                                    s.error = Some(error);
                                    let kept = attempt.version.map_or_else(String::new, |v| format!(" as version {v}"));
                                    log(s, "error", format!(
                                        "failed its checks: {} rows read, {} written; the write stays committed{kept}, and steps that read it do not run",
                                        attempt.rows_read, attempt.rows_written,
                                    ));
                                }
                            }
                        }
                        Err(error) => {
                            s.status = if cancel.is_cancelled() { StepStatus::Canceled } else { StepStatus::Failed };
                            s.error = Some(error);
                        }
                    }
                }).await;
            }
            () = cancel.cancelled(), if !canceled => {
                canceled = true;
                state.change(kinds::PIPELINE_STATUS, None, |run| run.status = RunStatus::Canceling).await;
            }
        }
    }
    // Whatever is still pending did not start.
    let canceled = canceled || cancel.is_cancelled();
    let finished = Utc::now();
    let final_kind = {
        let run = state.snapshot().await;
        let failed = run.steps.iter().any(|s| s.status == StepStatus::Failed);
        if canceled {
            kinds::PIPELINE_STATUS
        } else if failed {
            kinds::PIPELINE_FAILED
        } else {
            kinds::PIPELINE_COMPLETED
        }
    };
    state
        .change(final_kind, None, |run| {
            for step in &mut run.steps {
                if !step.status.is_terminal() {
                    step.status = StepStatus::Canceled;
                    step.finished_at = Some(finished);
                }
            }
            run.finished_at = Some(finished);
            let failed: Vec<&str> = run
                .steps
                .iter()
                .filter(|s| s.status == StepStatus::Failed)
                .map(|s| s.name.as_str())
                .collect();
            run.status = if canceled {
                RunStatus::Canceled
            } else if failed.is_empty() {
                RunStatus::Succeeded
            } else {
                run.error = Some(json!({
                    "code": "step_failed",
                    "message": format!("step(s) failed: {}", failed.join(", ")),
                    "steps": failed,
                }));
                RunStatus::Failed
            };
        })
        .await;
    let run = state.snapshot().await;
    match run.status {
        RunStatus::Succeeded => Ok(json!({ "run": run.id, "status": run.status })),
        RunStatus::Canceled => Err(Error::Canceled),
        _ => Err(Error::RunState(format!(
            "run `{}` failed: {}",
            run.id,
            run.error
                .as_ref()
                .and_then(|e| e["message"].as_str())
                .unwrap_or("a step failed")
        ))),
    }
}

/// Runs one step with its retries; the error is the last attempt's, as the run shows it.
async fn run_step(
    engine: &Engine,
    state: &RunState,
    plan: &RunPlan,
    name: &str,
    cancel: &CancellationToken,
) -> Result<Attempt, Value> {
    let Some(prepared) = plan.step(name) else {
        return Err(json!({ "code": "internal", "message": "step missing from the run plan" }));
    };
    let policy = prepared.step.policy.or(plan.defaults);
    let retries = policy.retries.unwrap_or(0);
    let timeout = policy
        .timeout_secs
        .map_or(engine.config().query_timeout, Duration::from_secs);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        state
            .change_step(name, |s| {
                s.status = StepStatus::Running;
                s.attempts = attempt;
                s.started_at.get_or_insert_with(Utc::now);
                log(s, "info", format!("attempt {attempt} started"));
            })
            .await;
        let outcome = tokio::select! {
            () = cancel.cancelled() => Err(Error::Canceled),
            done = tokio::time::timeout(timeout, attempt_step(engine, plan, prepared)) => {
                done.unwrap_or(Err(Error::Timeout(timeout.as_millis() as u64)))
            }
        };
        let error = match outcome {
            Ok(done) => return Ok(check_written(engine, state, plan, prepared, done, cancel).await),
            Err(Error::Canceled) => {
                return Err(json!({ "code": "canceled", "message": "canceled" }));
            }
            Err(error) => error,
        };
        if matches!(error, Error::Internal(_)) {
            tracing::error!(step = name, error = %error, "pipeline step failed");
        }
        let shown = step_error(&prepared.step, &error);
        if attempt > retries {
            let message = format!("attempt {attempt} failed: {}", error.public_message());
            state.change_step(name, |s| log(s, "error", message)).await;
            return Err(shown);
        }
        let wait = backoff(policy.backoff_ms.unwrap_or(DEFAULT_BACKOFF_MS), attempt);
        let message = format!(
            "attempt {attempt} failed: {}; retrying in {} ms",
            error.public_message(),
            wait.as_millis()
        );
        state
            .change_step(name, |s| {
                s.status = StepStatus::Retrying;
                s.error = Some(shown);
                log(s, "warn", message);
            })
            .await;
        tokio::select! {
            () = cancel.cancelled() => {
                return Err(json!({ "code": "canceled", "message": "canceled while waiting to retry" }));
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Evaluates the checks of a step whose write just succeeded. A blocking
/// check that fails (or cannot be evaluated) fails the step; its commit
/// stays, and the step is not retried: retries are for failed writes, and
/// writing the same rows again would fail the same checks.
async fn check_written(
    engine: &Engine,
    state: &RunState,
    plan: &RunPlan,
    prepared: &PreparedStep,
    mut attempt: Attempt,
    cancel: &CancellationToken,
) -> Attempt {
    let step = &prepared.step;
    if step.checks.is_empty() || !step.materialization.writes_dataset() {
        return attempt;
    }
    let count = step.checks.len();
    state
        .change_step(&step.name, |s| {
            log(
                s,
                "info",
                format!("write committed; evaluating {count} check(s)"),
            );
        })
        .await;
    let labeled: Vec<(String, CheckDefinition)> = step
        .checks
        .iter()
        .map(|c| {
            let label = format!(
                "pipeline:{}:{}:{}",
                plan.pipeline.id, step.name, c.check.name
            );
            (label, c.check.clone())
        })
        .collect();
    // Boxed: the evaluation's future holds query state, too big for the stack.
    let evaluation = Box::pin(async {
        let record = engine.dataset_record(&step.name).await?;
        engine
            .evaluate_checks(&record, labeled, CheckTrigger::Pipeline)
            .await
    });
    let report = tokio::select! {
        () = cancel.cancelled() => {
            state
                .change_step(&step.name, |s| {
                    log(s, "warn", "checks not evaluated: the run was canceled".to_owned());
                })
                .await;
            return attempt;
        }
        report = evaluation => report,
    };
    // When the evaluation as a whole fails, every check counts as an error,
    // so that blocking ones still fail the step.
    let evaluated: Vec<(String, String, Option<f64>, Option<Value>)> = match report {
        Ok(report) => report
            .results
            .into_iter()
            .map(|r| (r.check_name, r.outcome, r.observed, r.error))
            .collect(),
        Err(error) => {
            let shown = error.to_public_json();
            step.checks
                .iter()
                .map(|c| {
                    let name = c.check.name.clone();
                    (name, "error".to_owned(), None, Some(shown.clone()))
                })
                .collect()
        }
    };
    let mut lines = Vec::with_capacity(evaluated.len());
    let mut summaries = Vec::with_capacity(evaluated.len());
    let mut failures = Vec::new();
    for (name, outcome, observed, error) in evaluated {
        let blocking = step
            .checks
            .iter()
            .find(|c| c.check.name == name)
            .is_none_or(|c| c.blocking);
        let verb = match outcome.as_str() {
            "pass" => "passed",
            "warn" => "warned",
            "fail" => "failed",
            _ => "could not be evaluated",
        };
        let observed_text = observed.map_or_else(String::new, |o| format!(" (observed {o})"));
        let reason = error
            .as_ref()
            .and_then(|e| e["message"].as_str())
            .map_or_else(String::new, |m| format!(": {m}"));
        let description = format!("check `{name}` {verb}{observed_text}{reason}");
        let (level, note) = match (outcome.as_str(), blocking) {
            ("pass", _) => ("info", ""),
            ("fail" | "error", true) => ("error", "; blocking"),
            ("fail" | "error", false) => ("warn", "; not blocking, so the step goes on"),
            _ => ("warn", ""),
        };
        lines.push((level, format!("{description}{note}")));
        if level == "error" {
            failures.push(description);
        }
        let mut summary = json!({
            "name": name,
            "blocking": blocking,
            "outcome": outcome,
            "observed": observed,
        });
        if let Some(error) = error {
            summary["error"] = error;
        }
        summaries.push(summary);
    }
    if !failures.is_empty() {
        attempt.check_failure = Some(json!({
            "code": "check_failed",
            "message": failures.join("; "),
        }));
    }
    state
        .change_step(&step.name, |s| {
            for (level, message) in lines {
                log(s, level, message);
            }
            s.checks = summaries;
        })
        .await;
    attempt
}

/// One attempt: plan the step in a fresh context (so it sees what its
/// upstream steps just committed), then write its rows as one commit.
async fn attempt_step(engine: &Engine, plan: &RunPlan, prepared: &PreparedStep) -> Result<Attempt> {
    let ctx = engine.query_context(&Principal::local()).await?;
    let inlined: Vec<(String, String)> = plan
        .inlined_ancestors(&prepared.step.name)
        .into_iter()
        .map(|s| (s.step.name.clone(), s.sql.clone()))
        .collect();
    let name = prepared.step.name.as_str();
    let logical = {
        let (ctx, sql) = (ctx.clone(), prepared.sql.clone());
        engine
            .executor()
            .run(async move {
                // Inlined upstream steps first, in dependency order.
                for (upstream, upstream_sql) in inlined {
                    let logical = plan_step(&ctx, &upstream_sql).await?;
                    let view: Arc<dyn TableProvider> = Arc::new(ViewTable::new(logical, None));
                    ctx.register_table(upstream.as_str(), view)?;
                }
                plan_step(&ctx, &sql).await
            })
            .await?
    };
    let frame = DataFrame::new(ctx.state(), logical);
    let existing = engine.catalog().dataset_by_name(name).await?;
    match &prepared.step.materialization {
        Materialization::Ephemeral => Ok(Attempt::default()),
        Materialization::View => {
            if existing.is_some() {
                return Err(Error::already_exists(
                    Entity::Dataset,
                    format!(
                        "{name}` is a dataset: a view step cannot take its name; rename the step or delete the dataset `{name}"
                    ),
                ));
            }
            engine
                .catalog()
                .put_view(name, &prepared.sql, &plan.pipeline.id)
                .await?;
            Ok(Attempt::default())
        }
        Materialization::Table => {
            write(engine, &ctx, name, existing, WriteMode::Overwrite, frame).await
        }
        Materialization::Incremental(_) if existing.is_none() => {
            write(engine, &ctx, name, None, WriteMode::Overwrite, frame).await
        }
        Materialization::Incremental(Incremental::Append { cursor }) => {
            let Some(record) = existing else {
                return Err(Error::internal("incremental step", "dataset vanished"));
            };
            let table = crate::datasets::open_table(&record.location, None).await?;
            let target = crate::datasets::snapshot_of(&table).await?.schema;
            let last = engine.max_as_text(&ctx, &record.location, cursor).await?;
            let mut frame = frame;
            if let Some(last) = last {
                let field = frame
                    .schema()
                    .field_with_unqualified_name(cursor)
                    .map_err(|_| {
                        Error::InvalidInput(format!(
                            "cursor `{cursor}` is not a column of step `{name}`"
                        ))
                    })?;
                let bound = cast(lit(last), field.data_type().clone());
                frame =
                    frame.filter(col(datafusion::common::Column::from_name(cursor)).gt(bound))?;
            }
            let frame = conform(frame, &target, ColumnMapping::ByName)?;
            write(engine, &ctx, name, Some(record), WriteMode::Append, frame).await
        }
        Materialization::Incremental(Incremental::Merge { unique_key }) => {
            let Some(record) = existing else {
                return Err(Error::internal("incremental step", "dataset vanished"));
            };
            let (frame, physical) = {
                let (ctx, frame) = (ctx.clone(), crate::sync::storable(frame)?);
                engine
                    .executor()
                    .run(async move { frame_over(&ctx, frame).await })
                    .await?
            };
            let (version, rows_written) =
                engine.merge_into(&record, frame, unique_key, false).await?;
            Ok(Attempt {
                rows_read: rows_read(&physical),
                rows_written,
                version: Some(version),
                check_failure: None,
            })
        }
    }
}

/// Commits a frame to a dataset, counting what its plan read.
async fn write(
    engine: &Engine,
    ctx: &SessionContext,
    name: &str,
    existing: Option<crate::catalog::DatasetRecord>,
    mode: WriteMode,
    frame: DataFrame,
) -> Result<Attempt> {
    let (frame, physical) = {
        let ctx = ctx.clone();
        engine
            .executor()
            .run(async move { frame_over(&ctx, frame).await })
            .await?
    };
    let outcome = engine.commit_write(name, existing, mode, frame).await?;
    Ok(Attempt {
        rows_read: rows_read(&physical),
        rows_written: outcome.rows_written,
        version: Some(outcome.version),
        check_failure: None,
    })
}

#[cfg(test)]
mod tests {
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
