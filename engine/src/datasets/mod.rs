//! Datasets: one Delta table each, under `<data_dir>/datasets/<id>/`.
//!
//! The Delta log is the truth for data and versions; the catalog row caches
//! the figures listings need and holds what Delta does not (description, tags).
//!
//! Around the table: [`acceleration`] keeps hot versions in memory, [`write`] is the one path every write takes (ingest,
//! SQL, syncs, pipelines, Flight) and [`split`] parallelizes for large files, [`conform`] fits incoming columns to a
//! dataset's, [`schema`] and [`history`] model, diff and record schemas, and
//! [`portable`] turns scan types into those every client reads.

pub mod acceleration;
pub mod conform;
pub mod history;
pub mod portable;
pub(crate) mod scan;
pub mod schema;
pub(crate) mod split;
pub mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;
use deltalake_core::{DeltaTable, DeltaTableBuilder};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::catalog::{DatasetFilter, DatasetRecord, DatasetSort, Page};
use crate::error::Entity;
use crate::identity::{Action, Principal, Resource};
use crate::{Engine, Error, Result};

/// A point in a dataset's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeTravel {
    /// A Delta version number.
    Version(i64),
    /// The version current at this instant.
    AsOf(DateTime<Utc>),
}

/// One entry of a dataset's history.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct VersionInfo {
    /// Delta version number.
    pub version: i64,
    /// Commit time.
    pub timestamp: Option<DateTime<Utc>>,
    /// `WRITE`, `RESTORE`, `CREATE TABLE`, ...
    pub operation: Option<String>,
    /// The operation's parameters (mode, ...).
    pub parameters: serde_json::Value,
    /// The operation's metrics (rows and files added, ...).
    pub metrics: serde_json::Value,
}

/// Changes a `PATCH` may make.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetPatch {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New tags (replacing the old).
    pub tags: Option<Vec<String>>,
}

/// Statistics of one column.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ColumnStatistics {
    /// Column name.
    pub name: String,
    /// Arrow type.
    pub data_type: String,
    /// Null values.
    pub null_count: i64,
    /// Smallest value, as text.
    pub min: Option<String>,
    /// Largest value, as text.
    pub max: Option<String>,
    /// Approximate distinct values (HyperLogLog).
    pub distinct_approx: Option<i64>,
}

/// Statistics of a dataset version.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DatasetStatistics {
    /// The version described.
    pub version: i64,
    /// Rows.
    pub row_count: i64,
    /// Per column.
    pub columns: Vec<ColumnStatistics>,
}

/// A page of rows from a dataset.
#[derive(Debug, Clone)]
pub struct Preview {
    /// The version read.
    pub version: i64,
    /// Columns.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// Rows in the whole version.
    pub total_rows: i64,
}

/// The longest preview page.
pub const MAX_PREVIEW_ROWS: usize = 10_000;

pub(crate) fn location_for(data_dir: &Path, id: &str) -> Result<String> {
    let dir = data_dir.join("datasets").join(id);
    Url::from_directory_path(&dir)
        .map(String::from)
        .map_err(|()| Error::Internal(format!("data directory is not absolute: {}", dir.display())))
}

pub(crate) fn location_path(location: &str) -> Option<PathBuf> {
    Url::parse(location).ok()?.to_file_path().ok()
}

/// Opens a dataset's Delta table, at its latest version or a point in history.
pub(crate) async fn open_table(location: &str, at: Option<TimeTravel>) -> Result<DeltaTable> {
    let url = Url::parse(location).map_err(|e| Error::internal("dataset location", e))?;
    let mut table = DeltaTableBuilder::from_url(url)?.build()?;
    match at {
        None => table.load().await?,
        Some(TimeTravel::Version(v)) => {
            let latest = table.get_latest_version().await? as i64;
            if !(0..=latest).contains(&v) {
                return Err(Error::VersionNotFound(format!(
                    "version {v} does not exist (latest is {latest})"
                )));
            }
            table.load_version(v as _).await?
        }
        Some(TimeTravel::AsOf(at)) => {
            // Resolved from the same commit timestamps `/versions` shows, so a time
            // copied from there always finds its version.
            table.load().await?;
            let latest = table.version().unwrap_or_default() as i64;
            let commits: Vec<_> = table.history(None).try_collect().await?;
            let version = commits
                .iter()
                .enumerate()
                .find(|(_, c)| c.timestamp.is_some_and(|ms| ms <= at.timestamp_millis()))
                .map(|(i, _)| latest - i as i64)
                .ok_or_else(|| {
                    Error::VersionNotFound(format!("no version existed at {}", at.to_rfc3339()))
                })?;
            table.load_version(version as _).await?
        }
    }
    Ok(table)
}

/// Checks dataset tags: each 1 to 64 characters.
pub(crate) fn validate_tags(tags: &[String]) -> Result<()> {
    match tags.iter().find(|t| t.is_empty() || t.chars().count() > 64) {
        Some(bad) => Err(Error::InvalidInput(format!(
            "tag {bad:?} must be 1 to 64 characters"
        ))),
        None => Ok(()),
    }
}

/// Columns as the API shows them: `[{name, type, nullable}]`.
pub fn schema_json(schema: &Schema) -> serde_json::Value {
    serde_json::Value::Array(
        schema
            .fields()
            .iter()
            .map(|f| {
                serde_json::json!({
                    "name": f.name(),
                    "type": f.data_type().to_string(),
                    "nullable": f.is_nullable(),
                })
            })
            .collect(),
    )
}

/// Figures of a table's current snapshot.
pub(crate) struct Snapshot {
    pub(crate) version: i64,
    pub(crate) schema: SchemaRef,
    pub(crate) row_count: i64,
    pub(crate) size_bytes: i64,
    pub(crate) file_count: i64,
}

pub(crate) async fn snapshot_of(table: &DeltaTable) -> Result<Snapshot> {
    let state = table.snapshot()?;
    let (mut rows, mut bytes, mut files) = (0_i64, 0_i64, 0_i64);
    for file in state.log_data().iter() {
        rows += file.num_records().unwrap_or(0) as i64;
        bytes += file.size();
        files += 1;
    }
    let provider = table.table_provider().await?;
    Ok(Snapshot {
        version: state.version() as i64,
        // Dataset schemas read as Delta stores them (`Utf8`), not as the
        // scan happens to decode them (`Utf8View`).
        schema: crate::datasets::portable::portable_schema(&provider.schema()),
        row_count: rows,
        size_bytes: bytes,
        file_count: files,
    })
}

impl Snapshot {
    pub(crate) fn apply_to(&self, record: &mut DatasetRecord) {
        record.version = self.version;
        record.schema = schema_json(&self.schema);
        record.row_count = self.row_count;
        record.size_bytes = self.size_bytes;
        record.file_count = self.file_count;
    }
}

impl Engine {
    /// The live dataset with this name, if the caller may read it.
    pub async fn dataset(&self, principal: &Principal, name: &str) -> Result<DatasetRecord> {
        principal.authorize(Action::Read, Resource::Dataset(name))?;
        self.dataset_record(name).await
    }

    /// The live dataset with this name, for the engine's own use.
    pub(crate) async fn dataset_record(&self, name: &str) -> Result<DatasetRecord> {
        basin_sql::validate_name(name)?;
        self.catalog()
            .dataset_by_name(name)
            .await?
            .ok_or_else(|| Error::not_found(Entity::Dataset, name.to_owned()))
    }

    /// A page of the datasets the caller may see, and their total count
    /// (an API key limited to datasets sees only those).
    pub async fn list_datasets(
        &self,
        principal: &Principal,
        filter: DatasetFilter,
        sort: DatasetSort,
        page: Page,
    ) -> Result<(Vec<DatasetRecord>, u64)> {
        principal.authorize(Action::Read, Resource::Global)?;
        let filter = DatasetFilter {
            only: principal.dataset_limit().map(<[String]>::to_vec),
            ..filter
        };
        self.catalog()
            .list_datasets(&filter, sort, page)
            .await
            .map_err(Error::from)
    }

    /// The names of the live datasets the caller may read, those containing
    /// `contains` (all when it is empty), in name order.
    pub async fn readable_dataset_names(
        &self,
        principal: &Principal,
        contains: &str,
    ) -> Result<Vec<String>> {
        let mut names = self.catalog().live_dataset_names().await?;
        names.retain(|name| name.contains(contains) && principal.can_see_dataset(name));
        Ok(names)
    }

    /// Renames, re-describes or re-tags a dataset.
    ///
    /// A rename writes the new name too: a grant or key limit must cover both.
    pub async fn update_dataset(
        &self,
        principal: &Principal,
        name: &str,
        patch: DatasetPatch,
    ) -> Result<DatasetRecord> {
        principal.authorize(Action::Write, Resource::Dataset(name))?;
        if let Some(new_name) = &patch.name {
            principal.authorize(Action::Write, Resource::Dataset(new_name))?;
        }
        let mut record = self.dataset_record(name).await?;
        if let Some(new_name) = patch.name {
            basin_sql::validate_name(&new_name)?;
            record.name = new_name;
        }
        if let Some(description) = patch.description {
            record.description = description;
        }
        if let Some(tags) = patch.tags {
            validate_tags(&tags)?;
            record.tags = tags;
        }
        record.updated_at = Utc::now();
        self.catalog().update_dataset(&record).await?;
        Ok(record)
    }

    /// Soft-deletes a dataset (hidden, files kept), or with `purge` removes its files and row.
    pub async fn delete_dataset(
        &self,
        principal: &Principal,
        name: &str,
        purge: bool,
    ) -> Result<()> {
        principal.authorize(Action::Write, Resource::Dataset(name))?;
        let mut record = self.dataset_record(name).await?;
        if purge {
            self.catalog().purge_dataset(&record.id).await?;
            if let Some(path) = location_path(&record.location) {
                remove_dir_if_exists(&path).await?;
            }
        } else {
            let now = Utc::now();
            record.deleted_at = Some(now);
            record.updated_at = now;
            self.catalog().update_dataset(&record).await?;
        }
        Ok(())
    }

    /// A page of a dataset's rows, at its latest version or a point in history.
    pub async fn preview(
        &self,
        principal: &Principal,
        name: &str,
        limit: usize,
        offset: usize,
        at: Option<TimeTravel>,
    ) -> Result<Preview> {
        if limit > MAX_PREVIEW_ROWS {
            return Err(Error::InvalidInput(format!(
                "limit must be at most {MAX_PREVIEW_ROWS}"
            )));
        }
        let record = self.dataset(principal, name).await?;
        let table = open_table(&record.location, at).await?;
        let snapshot = snapshot_of(&table).await?;
        let provider = scan::table_provider(&table).await?;
        let ctx = self.sessions().file_context();
        self.executor()
            .run(async move {
                let frame = ctx.read_table(provider)?.limit(offset, Some(limit))?;
                let schema = frame.schema().inner().clone();
                let batches = frame.collect().await?;
                Ok(Preview {
                    version: snapshot.version,
                    schema,
                    batches,
                    total_rows: snapshot.row_count,
                })
            })
            .await
    }

    /// The dataset's history, newest first.
    pub async fn versions(
        &self,
        principal: &Principal,
        name: &str,
        limit: Option<usize>,
    ) -> Result<Vec<VersionInfo>> {
        let record = self.dataset(principal, name).await?;
        let table = open_table(&record.location, None).await?;
        let latest = table.version().unwrap_or_default() as i64;
        let commits: Vec<_> = table.history(limit).try_collect().await?;
        Ok(commits
            .into_iter()
            .enumerate()
            .map(|(i, commit)| VersionInfo {
                version: latest - i as i64,
                timestamp: commit.timestamp.and_then(DateTime::from_timestamp_millis),
                operation: commit.operation,
                parameters: serde_json::to_value(commit.operation_parameters.unwrap_or_default())
                    .unwrap_or_default(),
                metrics: commit
                    .info
                    .get("operationMetrics")
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect())
    }

    /// Makes an earlier version current again, as a new version.
    pub async fn restore(
        &self,
        principal: &Principal,
        name: &str,
        to: TimeTravel,
    ) -> Result<DatasetRecord> {
        principal.authorize(Action::Write, Resource::Dataset(name))?;
        let mut record = self.dataset_record(name).await?;
        let table = open_table(&record.location, None).await?;
        let latest = table.version().unwrap_or_default() as i64;
        let target = match to {
            TimeTravel::Version(v) if (0..=latest).contains(&v) => v,
            TimeTravel::Version(v) => {
                return Err(Error::VersionNotFound(format!(
                    "version {v} does not exist"
                )));
            }
            TimeTravel::AsOf(_) => open_table(&record.location, Some(to))
                .await?
                .version()
                .unwrap_or_default() as i64,
        };
        // The current version is current already: nothing to write.
        if target == latest {
            return Ok(record);
        }
        let (table, _metrics) = table.restore().with_version_to_restore(target as _).await?;
        snapshot_of(&table).await?.apply_to(&mut record);
        record.updated_at = Utc::now();
        self.catalog().update_dataset(&record).await?;
        self.announce_write(&record, "restore").await;
        Ok(record)
    }

    /// Row count, and per column nulls, min, max and approximate distinct values.
    pub async fn statistics(&self, principal: &Principal, name: &str) -> Result<DatasetStatistics> {
        let record = self.dataset(principal, name).await?;
        let table = open_table(&record.location, None).await?;
        let snapshot = snapshot_of(&table).await?;
        let provider = scan::table_provider(&table).await?;
        let ctx = self.sessions().file_context();
        self.executor()
            .run(async move { column_statistics(ctx, provider, snapshot).await })
            .await
    }
}

async fn column_statistics(
    ctx: SessionContext,
    provider: Arc<dyn datafusion::catalog::TableProvider>,
    snapshot: Snapshot,
) -> Result<DatasetStatistics> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;

    ctx.register_table("t", provider)?;
    let fields = snapshot.schema.fields().clone();
    let mut select = vec!["count(*) AS row_count".to_owned()];
    for (i, field) in fields.iter().enumerate() {
        let col = basin_sql::quote_ident(field.name());
        let dt = field.data_type();
        select.push(format!("count({col}) AS c{i}"));
        let ordered = dt.is_primitive()
            || dt.is_temporal()
            || matches!(
                dt,
                arrow::datatypes::DataType::Utf8
                    | arrow::datatypes::DataType::LargeUtf8
                    | arrow::datatypes::DataType::Utf8View
                    | arrow::datatypes::DataType::Boolean
                    | arrow::datatypes::DataType::Decimal128(..)
            );
        if ordered {
            select.push(format!("CAST(min({col}) AS VARCHAR) AS min{i}"));
            select.push(format!("CAST(max({col}) AS VARCHAR) AS max{i}"));
            // approx_distinct has no float or decimal kernels; their text form counts the same.
            let distinct_of =
                if dt.is_floating() || matches!(dt, arrow::datatypes::DataType::Decimal128(..)) {
                    format!("CAST({col} AS VARCHAR)")
                } else {
                    col.clone()
                };
            select.push(format!("approx_distinct({distinct_of}) AS d{i}"));
        }
    }
    let batches = ctx
        .sql(&format!("SELECT {} FROM t", select.join(", ")))
        .await?
        .collect()
        .await?;
    let batch = batches
        .first()
        .ok_or_else(|| Error::Internal("statistics: no result".into()))?;
    let int = |name: &str| -> Option<i64> {
        let col = batch.column_by_name(name)?;
        let col = arrow::compute::cast(col, &arrow::datatypes::DataType::Int64).ok()?;
        let col = col.as_primitive::<Int64Type>();
        (!col.is_null(0)).then(|| col.value(0))
    };
    let text = |name: &str| -> Option<String> {
        let col = batch.column_by_name(name)?;
        let col = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8).ok()?;
        let col = col.as_string_opt::<i32>()?;
        (!col.is_null(0)).then(|| col.value(0).to_owned())
    };
    let row_count = int("row_count").unwrap_or(0);
    let columns = fields
        .iter()
        .enumerate()
        .map(|(i, field)| ColumnStatistics {
            name: field.name().clone(),
            data_type: field.data_type().to_string(),
            null_count: row_count - int(&format!("c{i}")).unwrap_or(0),
            min: text(&format!("min{i}")),
            max: text(&format!("max{i}")),
            distinct_approx: int(&format!("d{i}")),
        })
        .collect();
    Ok(DatasetStatistics {
        version: snapshot.version,
        row_count,
        columns,
    })
}

pub(crate) async fn remove_dir_if_exists(path: &Path) -> Result<()> {
    match tokio::fs::remove_dir_all(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}
