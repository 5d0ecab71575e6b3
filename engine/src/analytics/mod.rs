//! Analytics over datasets, for quality dashboards and charts.
//!
//! - [`profile`]: one pass over a dataset version fills every sketch of every
//!   column at once ([`sketch`]: HyperLogLog, a mergeable uniform sample for
//!   quantiles and histograms, Misra–Gries top values, mergeable moments), in
//!   parallel over the scan's partitions, merged at the end.
//! - [`checks`]: data-quality checks stored per dataset, evaluated as SQL,
//!   kept as history, alerting on failure ([`quality`] runs them).
//! - Metric history: row count and size on every write, completeness and
//!   duplicates on every profile, freshness and pass rate on every check run.
//! - [`timeseries`]: Cube-like time-bucketed aggregations with gap filling,
//!   rolling windows, comparison ranges and LTTB downsampling
//!   ([`series`] runs and caches them).
//! - The dashboard's counts.

pub mod quality;
pub mod series;

pub use basin_analytics::{checks, profile, sketch, timeseries};

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use datafusion::physical_plan::ExecutionPlanProperties;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::catalog::{
    DatasetFilter, DatasetRecord, DatasetSort, JobFilter, MetricFilter, MetricRecord, Page,
    ProfileRecord,
};
use crate::datasets::write::AfterWrite;
use crate::datasets::{open_table, snapshot_of};
use crate::error::AnalyticsProblem;
use crate::identity::{Action, Principal, Resource};
use crate::runtime::events::{NewEvent, kinds};
use crate::runtime::jobs::JobContext;
use crate::{Engine, Error, Result};
use profile::{ProfileOptions, TableProfile, TableProfiler};

/// The least time between two `profile_progress` events of one job.
const PROGRESS_EVENT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// How many profiles of one dataset are kept.
const PROFILES_KEPT: u32 = 20;

/// What a profile request may choose; everything is optional.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileRequest {
    /// Profile only these columns (all when absent).
    pub columns: Option<Vec<String>>,
    /// How many frequent values to report per column (1–100, default 10).
    #[schema(minimum = 1, maximum = 100)]
    pub top_k: Option<usize>,
    /// Histogram bins per numeric or temporal column (1–200, default 20).
    #[schema(minimum = 1, maximum = 200)]
    pub histogram_bins: Option<usize>,
}

impl ProfileRequest {
    fn options(&self) -> Result<ProfileOptions> {
        let mut options = ProfileOptions::default();
        if let Some(k) = self.top_k {
            if !(1..=100).contains(&k) {
                return Err(Error::InvalidInput(
                    "`top_k` must be between 1 and 100".into(),
                ));
            }
            options.top_k = k;
        }
        if let Some(bins) = self.histogram_bins {
            if !(1..=200).contains(&bins) {
                return Err(Error::InvalidInput(
                    "`histogram_bins` must be between 1 and 200".into(),
                ));
            }
            options.histogram_bins = bins;
        }
        Ok(options)
    }
}

/// A stored profile with the dataset facts around it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DatasetProfile {
    /// The dataset.
    pub dataset: String,
    /// The version profiled.
    pub version: i64,
    /// Bytes of the version's data files.
    pub size_bytes: i64,
    /// When it was computed.
    pub created_at: DateTime<Utc>,
    /// How long it took.
    pub duration_ms: u64,
    /// The job that computed it.
    pub job_id: Option<String>,
    /// Rows, columns, duplicates, per-column statistics and alerts.
    #[serde(flatten)]
    pub profile: TableProfile,
}

/// A metric's points, as columns a chart can take.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct MetricSeries {
    /// When each point was measured.
    pub time: Vec<DateTime<Utc>>,
    /// The values (null when it could not be measured).
    pub value: Vec<Option<f64>>,
    /// The dataset version each was measured on.
    pub version: Vec<Option<i64>>,
}

/// The numbers a home dashboard shows.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DashboardStats {
    /// Live datasets the caller may see, with their rows and bytes.
    pub datasets: DatasetTotals,
    /// The most recently written datasets.
    pub recent_writes: Vec<RecentWrite>,
    /// Jobs by status (`queued`, `running`, ...).
    pub jobs: std::collections::BTreeMap<String, i64>,
    /// Pipeline runs by status.
    pub runs: std::collections::BTreeMap<String, i64>,
    /// Checks by the outcome of their newest evaluation.
    pub checks: std::collections::BTreeMap<String, i64>,
    /// Checks whose newest evaluation failed or errored.
    pub failing_checks: Vec<FailingCheck>,
}

/// Totals over the visible datasets.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct DatasetTotals {
    /// How many.
    pub count: u64,
    /// Their rows.
    pub rows: i64,
    /// Their bytes.
    pub size_bytes: i64,
}

/// A dataset and its last write.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecentWrite {
    /// The dataset.
    pub dataset: String,
    /// Its version after the write.
    pub version: i64,
    /// Its rows after the write.
    pub rows: i64,
    /// When.
    pub at: DateTime<Utc>,
}

/// A check that does not pass.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FailingCheck {
    /// The dataset.
    pub dataset: String,
    /// The check.
    pub check: String,
    /// `fail` or `error`.
    pub outcome: String,
    /// Its observed value.
    pub observed: Option<f64>,
    /// When it ran.
    pub at: DateTime<Utc>,
}

/// Recent writes shown on the dashboard.
const RECENT_WRITES: u32 = 10;

impl Engine {
    /// Starts a job that profiles the dataset's current version.
    pub async fn start_profile(
        &self,
        principal: &Principal,
        name: &str,
        request: ProfileRequest,
    ) -> Result<crate::catalog::JobRecord> {
        principal.authorize(Action::Read, Resource::Dataset(name))?;
        let record = self.dataset_record(name).await?;
        let options = request.options()?;
        if let Some(columns) = &request.columns {
            let shape = self.dataset_shape(principal, name, None).await?;
            check_columns(&shape.schema, columns, name)?;
            let distinct: std::collections::HashSet<&String> = columns.iter().collect();
            if columns.is_empty() || distinct.len() != columns.len() {
                return Err(Error::InvalidInput(
                    "`columns` must name each column once, and at least one".into(),
                ));
            }
        }
        let engine = self.clone();
        let name = name.to_owned();
        self.submit_job(
            "profile",
            serde_json::json!({ "dataset": name }),
            move |job| async move {
                let profile = engine
                    .profile_dataset(&record, request.columns.as_deref(), &options, Some(job))
                    .await?;
                Ok(serde_json::json!({
                    "dataset": profile.dataset,
                    "version": profile.version,
                    "rows": profile.profile.rows,
                    "columns": profile.profile.column_count,
                    "alerts": profile.profile.alerts.len(),
                    "duration_ms": profile.duration_ms,
                }))
            },
        )
        .await
    }

    /// The newest profile of a dataset.
    pub async fn latest_profile(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<DatasetProfile> {
        principal.authorize(Action::Read, Resource::Dataset(name))?;
        let record = self.dataset_record(name).await?;
        let stored = self
            .catalog()
            .latest_profile(&record.id)
            .await?
            .ok_or_else(|| Error::ProfileNotFound(name.to_owned()))?;
        stored_profile(&record.name, stored)
    }

    /// Profiles a dataset's current version in one parallel pass and stores the result.
    pub async fn profile_dataset(
        &self,
        record: &DatasetRecord,
        columns: Option<&[String]>,
        options: &ProfileOptions,
        job: Option<JobContext>,
    ) -> Result<DatasetProfile> {
        let started = Instant::now();
        let table = open_table(&record.location, None).await?;
        let snapshot = snapshot_of(&table).await?;
        let provider = crate::datasets::scan::table_provider(&table).await?;
        if let Some(columns) = columns {
            check_columns(&snapshot.schema, columns, &record.name)?;
        }
        // Queued behind the profiles already computing: each holds its sketches in memory.
        let _slot = self
            .profile_slots()
            .acquire()
            .await
            .map_err(|e| Error::internal("profile slots", e))?;
        let ctx = self.sessions().file_context();
        let whole_table = columns.is_none();
        let columns = columns.map(<[String]>::to_vec);
        let mut options = options.clone();
        if snapshot.row_count as u64 > options.max_rows_for_duplicates {
            // Known too big before reading: keep no row hashes at all.
            options.max_rows_for_duplicates = 0;
        }
        let total_rows = snapshot.row_count.max(1) as f64;
        let cancel = job.as_ref().map(|j| j.cancel.clone());
        let progress = job.as_ref().map(|j| {
            let (engine, report) = (self.clone(), j.progress.clone());
            let (dataset, job_id) = (record.name.clone(), j.id.clone());
            let last = std::sync::Mutex::new(Instant::now());
            Arc::new(move |seen: u64| {
                let fraction = (seen as f64 / total_rows).min(0.99);
                report(Some(fraction), format!("{seen} rows profiled"));
                let due = last.try_lock().is_ok_and(|mut at| {
                    let due = at.elapsed() >= PROGRESS_EVENT_INTERVAL;
                    if due {
                        *at = Instant::now();
                    }
                    due
                });
                if due {
                    engine.publish(NewEvent {
                        kind: kinds::PROFILE_PROGRESS,
                        dataset: Some(dataset.clone()),
                        job_id: Some(job_id.clone()),
                        data: serde_json::json!({
                            "dataset": dataset, "job_id": job_id,
                            "rows_profiled": seen, "progress": fraction,
                        }),
                        ..NewEvent::default()
                    });
                }
            }) as Arc<dyn Fn(u64) + Send + Sync>
        });
        let profile = self.executor().run(async move {
            let mut frame = ctx.read_table(provider)?;
            if let Some(columns) = &columns {
                let names: Vec<&str> = columns.iter().map(String::as_str).collect();
                frame = frame.select_columns(&names)?;
            }
            let plan = frame.create_physical_plan().await?;
            let schema = plan.schema();
            let partitions = plan.output_partitioning().partition_count();
            let task_ctx = ctx.task_ctx();
            let rows_seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let mut tasks = tokio::task::JoinSet::new();
            for partition in 0..partitions {
                let mut stream = plan.execute(partition, task_ctx.clone())?;
                let mut profiler = TableProfiler::new(schema.clone(), &options, partition);
                let (rows_seen, progress) = (rows_seen.clone(), progress.clone());
                tasks.spawn(async move {
                    while let Some(batch) = stream.next().await {
                        let batch = batch?;
                        profiler.update(&batch)?;
                        let seen = rows_seen.fetch_add(
                            batch.num_rows() as u64,
                            std::sync::atomic::Ordering::Relaxed,
                        ) + batch.num_rows() as u64;
                        if let Some(progress) = &progress {
                            progress(seen);
                        }
                    }
                    Ok::<_, Error>(profiler)
                });
            }
            let mut merged: Option<TableProfiler> = None;
            while let Some(done) = tasks.join_next().await {
                let profiler = done.map_err(|e| Error::internal("profile task", e))??;
                match &mut merged {
                    Some(m) => m.merge(profiler),
                    None => merged = Some(profiler),
                }
            }
            let merged = merged.unwrap_or_else(|| TableProfiler::new(schema.clone(), &options, 0));
            Ok::<_, Error>(merged.finish())
        });
        let profile = match cancel {
            Some(cancel) => tokio::select! {
                done = profile => done?,
                () = cancel.cancelled() => return Err(Error::Canceled),
            },
            None => profile.await?,
        };
        let created_at = Utc::now();
        let duration_ms = started.elapsed().as_millis() as u64;
        let result = DatasetProfile {
            dataset: record.name.clone(),
            version: snapshot.version,
            size_bytes: snapshot.size_bytes,
            created_at,
            duration_ms,
            job_id: job.as_ref().map(|j| j.id.clone()),
            profile,
        };
        let stored = ProfileRecord {
            id: uuid::Uuid::now_v7().to_string(),
            dataset_id: record.id.clone(),
            version: snapshot.version,
            job_id: result.job_id.clone(),
            profile: serde_json::to_value(&result)
                .map_err(|e| Error::internal("profile to JSON", e))?,
            created_at,
        };
        self.catalog()
            .insert_profile(&stored, PROFILES_KEPT)
            .await?;
        let cells: u64 = result
            .profile
            .columns
            .iter()
            .map(|c| c.count + c.nulls)
            .sum();
        let present: u64 = result.profile.columns.iter().map(|c| c.count).sum();
        let metric = |name: &str, value: Option<f64>| MetricRecord {
            dataset_id: record.id.clone(),
            name: name.to_owned(),
            value,
            version: Some(snapshot.version),
            recorded_at: created_at,
        };
        // A profile of some columns says nothing of the table's completeness or duplicates.
        if whole_table {
            self.catalog()
                .insert_metrics(&[
                    metric(
                        "completeness",
                        (cells > 0).then(|| present as f64 / cells as f64),
                    ),
                    metric(
                        "duplicate_rows",
                        result.profile.duplicate_rows.map(|d| d as f64),
                    ),
                ])
                .await?;
        }
        Ok(result)
    }

    /// Plans read-only `sql` and collects its batches, both on the CPU runtime.
    pub(crate) async fn collect_read_only(
        &self,
        ctx: &datafusion::prelude::SessionContext,
        sql: &str,
    ) -> Result<Vec<arrow::array::RecordBatch>> {
        let (ctx, sql) = (ctx.clone(), sql.to_owned());
        self.executor()
            .run(async move {
                let frame = crate::sql::query::plan_read_only(&ctx, &sql).await?;
                Ok(frame.collect().await?)
            })
            .await
    }

    /// A dataset's metric history, one series per metric name.
    pub async fn dataset_metrics(
        &self,
        principal: &Principal,
        name: &str,
        filter: &MetricFilter,
    ) -> Result<std::collections::BTreeMap<String, MetricSeries>> {
        principal.authorize(Action::Read, Resource::Dataset(name))?;
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from >= to
        {
            return Err(Error::Analytics {
                problem: AnalyticsProblem::InvalidDateRange,
                message: "`from` must be before `to`".into(),
            });
        }
        let record = self.dataset_record(name).await?;
        let mut series = std::collections::BTreeMap::<String, MetricSeries>::new();
        for point in self.catalog().metrics(&record.id, filter).await? {
            let entry = series.entry(point.name).or_default();
            entry.time.push(point.recorded_at);
            entry.value.push(point.value);
            entry.version.push(point.version);
        }
        Ok(series)
    }

    /// Datasets, rows, recent writes, jobs and runs by status, and failing checks.
    pub async fn dashboard_stats(&self, principal: &Principal) -> Result<DashboardStats> {
        principal.authorize(Action::Read, Resource::Global)?;
        let filter = DatasetFilter {
            only: principal.dataset_limit().map(<[String]>::to_vec),
            ..DatasetFilter::default()
        };
        let mut totals = DatasetTotals::default();
        let mut offset = 0;
        let mut all = Vec::new();
        loop {
            let (page, total) = self
                .catalog()
                .list_datasets(
                    &filter,
                    DatasetSort::UpdatedDesc,
                    Page {
                        limit: 1000,
                        offset,
                    },
                )
                .await?;
            totals.count = total;
            offset += page.len() as u64;
            let done = page.is_empty() || offset >= total;
            all.extend(page);
            if done {
                break;
            }
        }
        totals.rows = all.iter().map(|d| d.row_count).sum();
        totals.size_bytes = all.iter().map(|d| d.size_bytes).sum();
        let recent_writes = all
            .iter()
            .take(RECENT_WRITES as usize)
            .map(|d| RecentWrite {
                dataset: d.name.clone(),
                version: d.version,
                rows: d.row_count,
                at: d.updated_at,
            })
            .collect();
        let names: std::collections::HashMap<&str, &str> = all
            .iter()
            .map(|d| (d.id.as_str(), d.name.as_str()))
            .collect();
        let limited = principal.dataset_limit().is_some();
        let (jobs, runs) = if limited {
            // A key limited to datasets sees its datasets' jobs only: count those.
            let (visible, _) = self
                .catalog()
                .list_jobs(
                    &JobFilter::default(),
                    Page {
                        limit: 1000,
                        offset: 0,
                    },
                )
                .await?;
            let mut jobs = std::collections::BTreeMap::new();
            for job in visible
                .iter()
                .filter(|j| crate::runtime::jobs::job_visible_to(j, principal))
            {
                *jobs.entry(job.status.as_str().to_owned()).or_insert(0) += 1;
            }
            (jobs, std::collections::BTreeMap::new())
        } else {
            (
                self.catalog()
                    .job_status_counts()
                    .await?
                    .into_iter()
                    .collect(),
                self.catalog()
                    .run_status_counts()
                    .await?
                    .into_iter()
                    .collect(),
            )
        };
        let mut checks = std::collections::BTreeMap::new();
        let mut failing_checks = Vec::new();
        for result in self.catalog().latest_check_results(None).await? {
            let Some(dataset) = names.get(result.dataset_id.as_str()) else {
                continue;
            };
            *checks.entry(result.outcome.clone()).or_insert(0) += 1;
            if result.outcome == "fail" || result.outcome == "error" {
                failing_checks.push(FailingCheck {
                    dataset: (*dataset).to_owned(),
                    check: result.check_name,
                    outcome: result.outcome,
                    observed: result.observed,
                    at: result.started_at,
                });
            }
        }
        Ok(DashboardStats {
            datasets: totals,
            recent_writes,
            jobs,
            runs,
            checks,
            failing_checks,
        })
    }
}

fn check_columns(
    schema: &arrow::datatypes::Schema,
    columns: &[String],
    dataset: &str,
) -> Result<()> {
    match columns.iter().find(|c| schema.field_with_name(c).is_err()) {
        Some(column) => Err(Error::Analytics {
            problem: AnalyticsProblem::UnknownColumn,
            message: format!("column `{column}` is not in dataset `{dataset}`"),
        }),
        None => Ok(()),
    }
}

fn stored_profile(dataset: &str, stored: ProfileRecord) -> Result<DatasetProfile> {
    let mut profile: DatasetProfile = serde_json::from_value::<StoredProfile>(stored.profile)
        .map_err(|e| Error::internal("stored profile", e))?
        .into_profile(dataset);
    profile.job_id = stored.job_id;
    Ok(profile)
}

/// The stored JSON form of [`DatasetProfile`].
#[derive(Deserialize)]
struct StoredProfile {
    version: i64,
    size_bytes: i64,
    created_at: DateTime<Utc>,
    duration_ms: u64,
    #[serde(flatten)]
    profile: TableProfile,
}

impl StoredProfile {
    fn into_profile(self, dataset: &str) -> DatasetProfile {
        DatasetProfile {
            dataset: dataset.to_owned(),
            version: self.version,
            size_bytes: self.size_bytes,
            created_at: self.created_at,
            duration_ms: self.duration_ms,
            job_id: None,
            profile: self.profile,
        }
    }
}

/// What analytics does after every write: records the dataset's size as
/// metrics and runs its `run_after_write` checks in the background.
#[derive(Debug)]
pub(crate) struct AnalyticsAfterWrite;

#[async_trait::async_trait]
impl AfterWrite for AnalyticsAfterWrite {
    async fn dataset_written(&self, engine: &Engine, record: &DatasetRecord, _cause: &str) {
        let now = Utc::now();
        let metric = |name: &str, value: i64| MetricRecord {
            dataset_id: record.id.clone(),
            name: name.to_owned(),
            value: Some(value as f64),
            version: Some(record.version),
            recorded_at: now,
        };
        if let Err(e) = engine
            .catalog()
            .insert_metrics(&[
                metric("row_count", record.row_count),
                metric("size_bytes", record.size_bytes),
            ])
            .await
        {
            tracing::warn!(dataset = %record.name, error = %e, "could not record dataset metrics");
        }
        engine.spawn_after_write_checks(record.clone());
    }
}
