//! Running quality checks: CRUD over the stored definitions, evaluation
//! through DataFusion, history, metrics and `system_alert` events.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;
use serde::Serialize;

use super::checks::{self, CheckDefinition, CheckSpec, Measurement, Outcome};
use super::sketch::UniformSample;
use crate::catalog::{CheckRecord, CheckResultRecord, DatasetRecord, MetricRecord};
use crate::datasets::{TimeTravel, open_table, snapshot_of};
use crate::error::Entity;
use crate::identity::{Action, ClientInfo, Door, Principal, Resource, Role, Scope, Via};
use crate::runtime::events::{NewEvent, kinds};
use crate::{Engine, Error, Result};
use basin_sql::quote_ident;

/// Failing rows kept with a result.
const SAMPLE_ROWS: usize = 10;
/// Values of a column a drift check compares (a uniform sample beyond this).
const DRIFT_SAMPLE: usize = 32_768;

/// What started a check run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckTrigger {
    /// A user asked.
    Manual,
    /// A write to the dataset, for checks with `run_after_write`.
    AfterWrite,
    /// A pipeline step the checks are attached to.
    Pipeline,
}

impl CheckTrigger {
    fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::AfterWrite => "after_write",
            Self::Pipeline => "pipeline",
        }
    }
}

/// A stored check with its newest result.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CheckView {
    /// The stored check.
    #[serde(flatten)]
    pub check: CheckRecord,
    /// Its newest evaluation, if any.
    pub last_result: Option<CheckResultRecord>,
}

/// The results of one run of a dataset's checks.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CheckRunReport {
    /// Groups these results in the history.
    pub run_id: String,
    /// The dataset.
    pub dataset: String,
    /// The version the checks saw.
    pub version: i64,
    /// What started the run.
    pub trigger: CheckTrigger,
    /// Results counted by outcome.
    pub summary: BTreeMap<String, usize>,
    /// One result per check.
    pub results: Vec<CheckResultRecord>,
}

impl CheckRunReport {
    /// Whether any check failed or could not be evaluated.
    pub fn has_failures(&self) -> bool {
        self.results
            .iter()
            .any(|r| r.outcome == "fail" || r.outcome == "error")
    }
}

fn parse_definition(definition: serde_json::Value) -> Result<CheckDefinition> {
    let invalid = |message: String| Error::Analytics {
        problem: crate::error::AnalyticsProblem::InvalidCheck,
        message,
    };
    // serde would take a variant's index for its name (`"type": 0`).
    if let Some(kind) = definition.get("type")
        && !kind.is_string()
    {
        return Err(invalid(format!(
            "invalid check: `type` must be a check's name, got {kind}"
        )));
    }
    serde_json::from_value(definition).map_err(|e| invalid(format!("invalid check: {e}")))
}

impl Engine {
    async fn check_record(&self, record: &DatasetRecord, name: &str) -> Result<CheckRecord> {
        self.catalog()
            .checks_of(&record.id)
            .await?
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| Error::not_found(Entity::Check, name.to_owned()))
    }

    /// Validates a definition against the dataset (and the datasets it names).
    async fn validated(
        &self,
        principal: &Principal,
        record: &DatasetRecord,
        definition: serde_json::Value,
    ) -> Result<(CheckDefinition, serde_json::Value)> {
        let check = parse_definition(definition)?;
        let shape = self.dataset_shape(principal, &record.name, None).await?;
        checks::validate(&check, &shape.schema)?;
        if let CheckSpec::Referential { dataset, .. } = &check.spec {
            self.dataset(principal, dataset).await?;
        }
        if let CheckSpec::DistributionDrift {
            reference_version, ..
        } = &check.spec
        {
            self.dataset_shape(
                principal,
                &record.name,
                Some(TimeTravel::Version(*reference_version)),
            )
            .await?;
        }
        // Planning the check's SQL as its author proves it reads only what the
        // author may read; as the check principal, that it reads only its datasets.
        let reference = match &check.spec {
            CheckSpec::Referential { dataset, .. } => Some(quote_ident(dataset)),
            _ => None,
        };
        let queries = checks::compile(
            &check,
            &quote_ident(&record.name),
            reference.as_deref(),
            &shape.schema,
            SAMPLE_ROWS,
        )?;
        if let Some(sql) = queries.counts_sql {
            // A key that may write but not read has its SQL checked as the check principal only.
            let author_reads = principal.authorize(Action::Read, Resource::Global).is_ok();
            let planners = [
                author_reads.then(|| principal.clone()),
                Some(check_principal(&record.name, &check)),
            ];
            for planner in planners.into_iter().flatten() {
                let ctx = self.query_context(&planner).await?;
                let sql = sql.clone();
                self.executor()
                    .run(async move {
                        crate::sql::query::plan_read_only(&ctx, &sql).await?;
                        Ok(())
                    })
                    .await?;
            }
        }
        let normalized =
            serde_json::to_value(&check).map_err(|e| Error::internal("check to JSON", e))?;
        Ok((check, normalized))
    }

    /// A dataset's checks, each with its newest result.
    pub async fn list_checks(
        &self,
        principal: &Principal,
        dataset: &str,
    ) -> Result<Vec<CheckView>> {
        let record = self.dataset(principal, dataset).await?;
        let mut latest: BTreeMap<String, CheckResultRecord> = self
            .catalog()
            .latest_check_results(Some(&record.id))
            .await?
            .into_iter()
            .map(|r| (r.check_id.clone(), r))
            .collect();
        Ok(self
            .catalog()
            .checks_of(&record.id)
            .await?
            .into_iter()
            .map(|check| CheckView {
                last_result: latest.remove(&check.id),
                check,
            })
            .collect())
    }

    /// One check with its newest result.
    pub async fn check(
        &self,
        principal: &Principal,
        dataset: &str,
        name: &str,
    ) -> Result<CheckView> {
        self.list_checks(principal, dataset)
            .await?
            .into_iter()
            .find(|c| c.check.name == name)
            .ok_or_else(|| Error::not_found(Entity::Check, name.to_owned()))
    }

    /// Adds a check to a dataset after validating it against the dataset's schema.
    pub async fn create_check(
        &self,
        principal: &Principal,
        dataset: &str,
        definition: serde_json::Value,
    ) -> Result<CheckRecord> {
        principal.authorize(Action::Write, Resource::Dataset(dataset))?;
        let record = self.dataset_record(dataset).await?;
        let (check, definition) = self.validated(principal, &record, definition).await?;
        let now = Utc::now();
        let stored = CheckRecord {
            id: uuid::Uuid::now_v7().to_string(),
            dataset_id: record.id,
            name: check.name,
            definition,
            created_by: Some(principal.username.clone()),
            created_at: now,
            updated_at: now,
        };
        self.catalog().insert_check(&stored).await?;
        Ok(stored)
    }

    /// Replaces a check's definition (its name may change; its history stays).
    pub async fn update_check(
        &self,
        principal: &Principal,
        dataset: &str,
        name: &str,
        definition: serde_json::Value,
    ) -> Result<CheckRecord> {
        principal.authorize(Action::Write, Resource::Dataset(dataset))?;
        let record = self.dataset_record(dataset).await?;
        let mut stored = self.check_record(&record, name).await?;
        let (check, definition) = self.validated(principal, &record, definition).await?;
        stored.name = check.name;
        stored.definition = definition;
        stored.updated_at = Utc::now();
        self.catalog().update_check(&stored).await?;
        Ok(stored)
    }

    /// Removes a check; its past results stay in the history.
    pub async fn delete_check(
        &self,
        principal: &Principal,
        dataset: &str,
        name: &str,
    ) -> Result<()> {
        principal.authorize(Action::Write, Resource::Dataset(dataset))?;
        let record = self.dataset_record(dataset).await?;
        let stored = self.check_record(&record, name).await?;
        self.catalog().delete_check(&stored.id).await?;
        Ok(())
    }

    /// A dataset's check results, newest first (of one check when `check` is given).
    pub async fn check_history(
        &self,
        principal: &Principal,
        dataset: &str,
        check: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<CheckResultRecord>> {
        let record = self.dataset(principal, dataset).await?;
        let check_id = match check {
            Some(name) => Some(self.check_record(&record, name).await?.id),
            None => None,
        };
        self.catalog()
            .check_results(
                &record.id,
                check_id.as_deref(),
                before,
                limit.clamp(1, 1000),
            )
            .await
            .map_err(Error::from)
    }

    /// Runs a dataset's stored checks (all, or those named) now.
    pub async fn run_checks(
        &self,
        principal: &Principal,
        dataset: &str,
        names: Option<&[String]>,
    ) -> Result<CheckRunReport> {
        let record = self.dataset(principal, dataset).await?;
        let mut stored = self.catalog().checks_of(&record.id).await?;
        if let Some(names) = names {
            for name in names {
                if !stored.iter().any(|c| &c.name == name) {
                    return Err(Error::not_found(Entity::Check, name.clone()));
                }
            }
            stored.retain(|c| names.contains(&c.name));
        }
        let checks = stored
            .into_iter()
            .map(|c| Ok((c.id.clone(), parse_definition(c.definition)?)))
            .collect::<Result<Vec<_>>>()?;
        self.evaluate_checks(&record, checks, CheckTrigger::Manual)
            .await
    }

    /// Runs the `run_after_write` checks of a dataset that was just written, in
    /// the background: one run per dataset at a time, and writes that land
    /// during a run are checked by one more run after it.
    pub(crate) fn spawn_after_write_checks(&self, record: DatasetRecord) {
        if !self.after_write_runs().begin(&record.id) {
            return;
        }
        let engine = self.clone();
        tokio::spawn(async move {
            let mut record = record;
            loop {
                engine.after_write_checks(&record).await;
                if !engine.after_write_runs().finish(&record.id) {
                    break;
                }
                match engine.dataset_record(&record.name).await {
                    Ok(latest) if latest.id == record.id => record = latest,
                    _ => {
                        engine.after_write_runs().abandon(&record.id);
                        break;
                    }
                }
            }
        });
    }

    async fn after_write_checks(&self, record: &DatasetRecord) {
        let checks = match self.catalog().checks_of(&record.id).await {
            Ok(checks) => checks,
            Err(e) => {
                tracing::warn!(dataset = %record.name, error = %e, "could not read checks");
                return;
            }
        };
        let due: Vec<_> = checks
            .into_iter()
            .filter_map(|c| {
                let definition = parse_definition(c.definition).ok()?;
                definition.run_after_write.then_some((c.id, definition))
            })
            .collect();
        if due.is_empty() {
            return;
        }
        if let Err(e) = self
            .evaluate_checks(record, due, CheckTrigger::AfterWrite)
            .await
        {
            tracing::warn!(dataset = %record.name, error = %e, "checks after write failed");
        }
    }

    /// Evaluates checks on a dataset's current version, stores the results and
    /// metrics, and raises a `system_alert` for each failure.
    ///
    /// `checks` pairs a stored check's id (or a pipeline step's own label) with its definition.
    pub async fn evaluate_checks(
        &self,
        record: &DatasetRecord,
        checks: Vec<(String, CheckDefinition)>,
        trigger: CheckTrigger,
    ) -> Result<CheckRunReport> {
        let table = open_table(&record.location, None).await?;
        let snapshot = snapshot_of(&table).await?;
        let run_id = uuid::Uuid::now_v7().to_string();
        let mut results = Vec::with_capacity(checks.len());
        let mut freshness = Vec::new();
        for (check_id, check) in checks {
            let started_at = Utc::now();
            let started = Instant::now();
            let measured = tokio::time::timeout(self.config().query_timeout, async {
                let ctx = self
                    .query_context(&check_principal(&record.name, &check))
                    .await?;
                self.measure(&ctx, record, &snapshot.schema, &check).await
            })
            .await
            .unwrap_or_else(|_| {
                Err(Error::Timeout(
                    self.config().query_timeout.as_millis() as u64
                ))
            });
            let (outcome, measurement, sample, error) = match measured {
                Ok((measurement, sample)) => (
                    checks::evaluate(&check, &measurement),
                    Some(measurement),
                    sample,
                    None,
                ),
                Err(e) => (Outcome::Error, None, None, Some(e.to_public_json())),
            };
            if let (CheckSpec::Freshness { .. }, Some(age)) =
                (&check.spec, measurement.as_ref().and_then(|m| m.observed))
            {
                freshness.push(age);
            }
            let outcome = serde_json::to_value(outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "error".into());
            results.push(CheckResultRecord {
                seq: 0,
                check_id,
                check_name: check.name.clone(),
                dataset_id: record.id.clone(),
                dataset_version: Some(snapshot.version),
                run_id: run_id.clone(),
                trigger: trigger.as_str().into(),
                outcome,
                observed: measurement.as_ref().and_then(|m| m.observed),
                element_count: measurement
                    .as_ref()
                    .and_then(|m| m.element_count)
                    .map(|n| n as i64),
                unexpected_count: measurement
                    .as_ref()
                    .and_then(|m| m.unexpected_count)
                    .map(|n| n as i64),
                unexpected_percent: measurement.as_ref().and_then(checks::unexpected_percent),
                details: measurement.map(|m| m.details).filter(|d| !d.is_null()),
                sample,
                error,
                started_at,
                duration_ms: started.elapsed().as_millis() as i64,
            });
        }
        self.catalog().insert_check_results(&mut results).await?;
        self.record_check_metrics(record, snapshot.version, &results, &freshness)
            .await;
        for result in results
            .iter()
            .filter(|r| r.outcome == "fail" || r.outcome == "error")
        {
            self.publish(NewEvent {
                kind: kinds::SYSTEM_ALERT,
                dataset: Some(record.name.clone()),
                data: serde_json::json!({
                    "source": "check",
                    "dataset": record.name,
                    "check": result.check_name,
                    "outcome": result.outcome,
                    "observed": result.observed,
                    "version": result.dataset_version,
                    "trigger": result.trigger,
                    "message": format!(
                        "check `{}` on `{}`: {}",
                        result.check_name, record.name, result.outcome
                    ),
                }),
                ..NewEvent::default()
            });
        }
        let mut summary = BTreeMap::new();
        for result in &results {
            *summary.entry(result.outcome.clone()).or_insert(0) += 1;
        }
        Ok(CheckRunReport {
            run_id,
            dataset: record.name.clone(),
            version: snapshot.version,
            trigger,
            summary,
            results,
        })
    }

    async fn record_check_metrics(
        &self,
        record: &DatasetRecord,
        version: i64,
        results: &[CheckResultRecord],
        freshness: &[f64],
    ) {
        if results.is_empty() {
            return;
        }
        let now = Utc::now();
        let passing = results
            .iter()
            .filter(|r| r.outcome == "pass" || r.outcome == "warn")
            .count();
        let mut metrics = vec![MetricRecord {
            dataset_id: record.id.clone(),
            name: "check_pass_rate".into(),
            value: Some(passing as f64 / results.len() as f64),
            version: Some(version),
            recorded_at: now,
        }];
        // The stalest answer of the freshness checks is the dataset's age.
        if let Some(age) = freshness.iter().copied().reduce(f64::max) {
            metrics.push(MetricRecord {
                dataset_id: record.id.clone(),
                name: "freshness_seconds".into(),
                value: Some(age),
                version: Some(version),
                recorded_at: now,
            });
        }
        if let Err(e) = self.catalog().insert_metrics(&metrics).await {
            tracing::warn!(dataset = %record.name, error = %e, "could not record check metrics");
        }
    }

    /// Measures one check: its numbers and, for row-level checks, some failing rows.
    async fn measure(
        &self,
        ctx: &SessionContext,
        record: &DatasetRecord,
        schema: &arrow::datatypes::SchemaRef,
        check: &CheckDefinition,
    ) -> Result<(Measurement, Option<serde_json::Value>)> {
        let table = quote_ident(&record.name);
        let reference = match &check.spec {
            CheckSpec::Referential { dataset, .. } => Some(quote_ident(dataset)),
            _ => None,
        };
        let queries = checks::compile(check, &table, reference.as_deref(), schema, SAMPLE_ROWS)?;
        match &check.spec {
            CheckSpec::Schema { .. } => Ok((checks::measure_schema(check, schema), None)),
            CheckSpec::DistributionDrift {
                column,
                reference_version,
                ..
            } => {
                let current = self.column_sample(record, None, column).await?;
                let reference = self
                    .column_sample(
                        record,
                        Some(TimeTravel::Version(*reference_version)),
                        column,
                    )
                    .await?;
                Ok((checks::measure_drift(check, &reference, &current), None))
            }
            _ => {
                let Some(counts_sql) = queries.counts_sql else {
                    return Err(Error::internal("check", "no query for a SQL check"));
                };
                let counts = self.collect_read_only(ctx, &counts_sql).await?;
                let measurement = match &check.spec {
                    CheckSpec::RowCount { .. } => {
                        checks::measure_row_count(first_u64(&counts, "row_count")?.unwrap_or(0))
                    }
                    CheckSpec::Freshness { .. } => {
                        checks::measure_freshness(first_instant(&counts, "max_value")?, Utc::now())
                    }
                    _ => checks::measure_counts(
                        check,
                        first_u64(&counts, "element_count")?.unwrap_or(0),
                        first_u64(&counts, "unexpected_count")?.unwrap_or(0),
                    ),
                };
                let mut measurement = measurement;
                let failing = measurement.unexpected_count.unwrap_or(0) > 0;
                let sample = match queries.sample_sql {
                    Some(sql) if failing => {
                        let rows = match self.collect_read_only(ctx, &sql).await {
                            Ok(batches) => {
                                basin_analytics::rows_as_json(&batches).map_err(Error::from)
                            }
                            Err(e) => Err(e),
                        };
                        match rows {
                            Ok(rows) => Some(serde_json::Value::Array(rows)),
                            // The counts stand; only the illustration is missing.
                            Err(e) => {
                                if let Some(details) = measurement.details.as_object_mut() {
                                    details.insert("sample_error".into(), e.to_public_json());
                                }
                                None
                            }
                        }
                    }
                    _ => None,
                };
                Ok((measurement, sample))
            }
        }
    }

    /// A uniform sample of a numeric column's non-null values at a version.
    async fn column_sample(
        &self,
        record: &DatasetRecord,
        at: Option<TimeTravel>,
        column: &str,
    ) -> Result<Vec<f64>> {
        let table = open_table(&record.location, at).await?;
        let provider = crate::datasets::scan::table_provider(&table).await?;
        let ctx = self.sessions().file_context();
        let column = column.to_owned();
        self.executor()
            .run(async move {
                let frame = ctx.read_table(provider)?.select(vec![
                    datafusion::prelude::cast(
                        datafusion::prelude::col(quote_ident(&column)),
                        DataType::Float64,
                    )
                    .alias("v"),
                ])?;
                let mut stream = frame.execute_stream().await?;
                let mut sample = UniformSample::new(DRIFT_SAMPLE, 0x5eed);
                let mut values = Vec::new();
                use futures::StreamExt;
                while let Some(batch) = stream.next().await {
                    let batch = batch?;
                    let array = batch.column(0).as_primitive::<Float64Type>();
                    values.clear();
                    values.extend(array.iter().flatten().filter(|v| v.is_finite()));
                    sample.insert_slice(&values);
                }
                Ok::<_, Error>(sample.into_values())
            })
            .await
    }
}

/// Who checks run as, whoever started them: a reader of the checked dataset
/// (and of the one a `referential` check names) and of nothing else, so a
/// check's SQL never reads more than its own data, however it is triggered.
fn check_principal(dataset: &str, check: &CheckDefinition) -> Principal {
    let mut datasets = vec![dataset.to_owned()];
    if let CheckSpec::Referential { dataset, .. } = &check.spec {
        datasets.push(dataset.clone());
    }
    Principal {
        user_id: None,
        username: "checks".into(),
        role: Role::Viewer,
        via: Via::ApiKey {
            id: "checks".into(),
            scopes: vec![Scope::Read],
            datasets: Some(datasets),
        },
        grants: Arc::from(Vec::new()),
        client: ClientInfo::through(Door::Scheduler),
    }
}

/// After-write check runs in flight, by dataset id; `true` when another
/// write landed since the run began.
#[derive(Debug, Default)]
pub struct AfterWriteRuns {
    running: std::sync::Mutex<std::collections::HashMap<String, bool>>,
}

impl AfterWriteRuns {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, bool>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the caller should start a run (else the running one goes again).
    fn begin(&self, dataset_id: &str) -> bool {
        let mut running = self.lock();
        match running.get_mut(dataset_id) {
            Some(again) => {
                *again = true;
                false
            }
            None => {
                running.insert(dataset_id.to_owned(), false);
                true
            }
        }
    }

    /// Ends a run; whether another is due.
    fn finish(&self, dataset_id: &str) -> bool {
        let mut running = self.lock();
        if running.get(dataset_id) == Some(&true) {
            running.insert(dataset_id.to_owned(), false);
            true
        } else {
            running.remove(dataset_id);
            false
        }
    }

    fn abandon(&self, dataset_id: &str) {
        self.lock().remove(dataset_id);
    }
}

fn first_value(batches: &[RecordBatch], column: &str) -> Result<Option<Arc<dyn Array>>> {
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let array = batch
        .column_by_name(column)
        .ok_or_else(|| Error::internal("check query", format!("no column `{column}`")))?;
    Ok(Some(array.slice(0, 1)))
}

fn first_u64(batches: &[RecordBatch], column: &str) -> Result<Option<u64>> {
    let Some(array) = first_value(batches, column)? else {
        return Ok(None);
    };
    let array = arrow::compute::cast(&array, &DataType::Int64)
        .map_err(|e| Error::internal("check count", e))?;
    let array = array.as_primitive::<Int64Type>();
    Ok((!array.is_null(0)).then(|| array.value(0).max(0) as u64))
}

fn first_instant(batches: &[RecordBatch], column: &str) -> Result<Option<DateTime<Utc>>> {
    let Some(array) = first_value(batches, column)? else {
        return Ok(None);
    };
    let array = arrow::compute::cast(
        &array,
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    )
    .map_err(|e| Error::internal("check freshness", e))?;
    let array = array.as_primitive::<TimestampMicrosecondType>();
    Ok((!array.is_null(0))
        .then(|| DateTime::from_timestamp_micros(array.value(0)))
        .flatten())
}
