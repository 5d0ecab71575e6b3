//! Syncs: streams of a connection copied into datasets as a background job.
//!
//! Each stream is one atomic Delta commit: `overwrite` replaces, `append`
//! adds, `merge` upserts on a key with Delta MERGE. `incremental` reads only
//! rows whose cursor is past the largest value already synced (kept per
//! stream and dataset). Types Delta cannot store are cast on the way (see
//! [`crate::datasets::schema::storable_type`]), stored field mappings rename and cast
//! columns, and a schema-change policy says what happens when the stream's
//! columns no longer match the dataset's.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema};
use chrono::Utc;
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::{Expr, cast, col, lit};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::catalog::{ConnectionRecord, JobRecord, SyncStateRecord};
use crate::datasets::history::stream_subject;
use crate::datasets::schema::{
    ChangeKind, SchemaChange, diff, fields_of, parse_type, storable_type,
};
use crate::datasets::write::{Expected, WriteMode, WriteTarget};
use crate::datasets::{open_table, snapshot_of};
use crate::identity::{Action, Principal, Resource};
use crate::runtime::jobs::JobContext;
use crate::sources::connections::provider_fields;
use crate::{Engine, Error, Result};

/// Which rows a sync reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Every row, every time.
    #[default]
    FullRefresh,
    /// Rows whose cursor is past the last synced value.
    Incremental,
}

/// How read rows land in the dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncWrite {
    /// Add the rows.
    Append,
    /// Replace the dataset's rows (and schema).
    Overwrite,
    /// Update rows with the same primary key, insert the others.
    Merge,
}

/// What a sync does when the stream's columns differ from the dataset's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SchemaPolicy {
    /// Write the dataset's columns only: new columns are dropped, missing ones are null.
    Ignore,
    /// Refuse any change; nothing is written.
    Fail,
    /// Add new columns to the dataset; missing ones are null; type changes fail.
    #[default]
    AppendNewColumns,
    /// Follow the source: add and drop columns and change types (rewriting
    /// the dataset in the same commit when types change).
    SyncAll,
}

/// One stream to sync.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum SyncStream {
    /// Just the stream's name.
    Name(String),
    /// The stream with its own target and keys.
    Spec {
        /// The stream's name.
        stream: String,
        /// Target dataset (default `<connection>_<table>`).
        #[serde(default)]
        dataset: Option<String>,
        /// Overrides the request's cursor field.
        #[serde(default)]
        cursor_field: Option<String>,
        /// Overrides the request's primary key.
        #[serde(default)]
        primary_key: Option<Vec<String>>,
    },
}

/// `POST /connections/{id}/sync`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// Streams to sync.
    pub streams: Vec<SyncStream>,
    /// `full_refresh` (default) or `incremental`.
    #[serde(default)]
    pub mode: SyncMode,
    /// The cursor column of incremental syncs.
    #[serde(default)]
    pub cursor_field: Option<String>,
    /// `overwrite` (default for full refresh), `append` (default for
    /// incremental) or `merge`.
    #[serde(default)]
    pub write: Option<SyncWrite>,
    /// Key columns of merges (default: the stream's primary key).
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// What to do when columns changed.
    #[serde(default)]
    pub schema_change: SchemaPolicy,
}

/// One stream's plan, checked before the job starts.
#[derive(Debug, Clone, Serialize)]
struct StreamPlan {
    stream: String,
    dataset: String,
    mode: SyncMode,
    write: SyncWrite,
    cursor_field: Option<String>,
    primary_key: Vec<String>,
    policy: SchemaPolicy,
}

/// A field mapping: a source field written as a dataset column, optionally cast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldMapping {
    /// The stream's field.
    pub source: String,
    /// The dataset column (default: the same name).
    #[serde(default)]
    pub target: Option<String>,
    /// Arrow type to cast to (`Int64`, `decimal(12,2)`, `timestamptz`).
    #[serde(default, rename = "type")]
    pub data_type: Option<String>,
    /// Leave the field out.
    #[serde(default)]
    pub drop: bool,
}

impl FieldMapping {
    fn target(&self) -> &str {
        self.target.as_deref().unwrap_or(&self.source)
    }
}

/// Default dataset name of a stream: `<connection>_<table>`, made an identifier.
fn default_dataset(connection: &str, stream: &str) -> String {
    let table = stream.rsplit('.').next().unwrap_or(stream);
    let mut name = basin_connectors::sql_names::identifier_from(&format!("{connection}_{table}"));
    name.truncate(basin_sql::MAX_NAME_LEN);
    name
}

impl Engine {
    /// Starts a sync of `request.streams` as a background job.
    pub async fn sync(
        &self,
        principal: &Principal,
        id_or_name: &str,
        request: SyncRequest,
    ) -> Result<JobRecord> {
        self.authorize_connections(principal, Action::Write)?;
        let record = self.connection_record(id_or_name).await?;
        if request.streams.is_empty() {
            return Err(Error::InvalidInput(
                "`streams` must name at least one stream".into(),
            ));
        }
        let write = request.write.unwrap_or(match request.mode {
            SyncMode::FullRefresh => SyncWrite::Overwrite,
            SyncMode::Incremental => SyncWrite::Append,
        });
        if request.mode == SyncMode::Incremental && write == SyncWrite::Overwrite {
            return Err(Error::InvalidInput(
                "an incremental sync appends or merges: `write` cannot be `overwrite`".into(),
            ));
        }
        let mut plans = Vec::with_capacity(request.streams.len());
        for spec in &request.streams {
            let (stream, dataset, cursor, key) = match spec {
                SyncStream::Name(stream) => (stream.clone(), None, None, None),
                SyncStream::Spec {
                    stream,
                    dataset,
                    cursor_field,
                    primary_key,
                } => (
                    stream.clone(),
                    dataset.clone(),
                    cursor_field.clone(),
                    primary_key.clone(),
                ),
            };
            let dataset = dataset.unwrap_or_else(|| default_dataset(&record.name, &stream));
            basin_sql::validate_name(&dataset)?;
            principal.authorize(Action::Write, Resource::Dataset(&dataset))?;
            let cursor_field = cursor.or_else(|| request.cursor_field.clone());
            if request.mode == SyncMode::Incremental && cursor_field.is_none() {
                return Err(Error::InvalidInput(format!(
                    "stream `{stream}`: an incremental sync needs `cursor_field`"
                )));
            }
            let primary_key = key.unwrap_or_else(|| request.primary_key.clone());
            plans.push(StreamPlan {
                stream,
                dataset,
                mode: request.mode,
                write,
                cursor_field,
                primary_key,
                policy: request.schema_change,
            });
        }
        if let Some(dup) = plans
            .iter()
            .enumerate()
            .find(|(i, p)| plans[..*i].iter().any(|q| q.dataset == p.dataset))
        {
            return Err(Error::InvalidInput(format!(
                "two streams write dataset `{}`",
                dup.1.dataset
            )));
        }
        let mut params = json!({
            "connection": record.name,
            "streams": plans,
        });
        if let [only] = plans.as_slice() {
            params["dataset"] = Value::from(only.dataset.clone());
        }
        let engine = self.clone();
        self.submit_job("sync", params, move |ctx| async move {
            let mut results = Vec::with_capacity(plans.len());
            let total = plans.len();
            for (i, plan) in plans.into_iter().enumerate() {
                (ctx.progress)(
                    Some(i as f64 / total as f64),
                    format!("stream {} of {total}: {}", i + 1, plan.stream),
                );
                let done = engine.sync_stream(&record, &plan, &ctx).await;
                if let Err(e) = &done {
                    engine.forget_source_after(&record, e);
                }
                results.push(done?);
            }
            Ok(json!({ "streams": results }))
        })
        .await
    }

    async fn sync_stream(
        &self,
        record: &ConnectionRecord,
        plan: &StreamPlan,
        job: &JobContext,
    ) -> Result<Value> {
        let source = self.open_source(record).await?;
        let table = source.table(&plan.stream).await?;
        let source_fields = provider_fields(table.as_ref());
        let stream_changes = self
            .record_schema(
                &stream_subject(&record.id, &plan.stream),
                None,
                &source_fields,
                "sync",
            )
            .await?;
        let ctx = self.sessions().file_context();
        let mut frame = ctx.read_table(table)?;
        if let Some(stored) = self
            .catalog()
            .field_mappings(&record.id, &plan.stream)
            .await?
        {
            let mappings: Vec<FieldMapping> =
                serde_json::from_value(stored).map_err(|e| Error::internal("field mappings", e))?;
            frame = apply_mappings(frame, &mappings)?;
        }
        let existing = self.catalog().dataset_by_name(&plan.dataset).await?;
        // The cursor's position is the dataset's own largest value: it moves
        // in the same commit as the rows, so a failure between the two cannot
        // make the next run skip or repeat rows.
        let last = match (&plan.mode, &existing, &plan.cursor_field) {
            (SyncMode::Incremental, Some(dataset), Some(cursor)) => {
                let current = snapshot_of(&open_table(&dataset.location, None).await?)
                    .await?
                    .schema;
                if current.field_with_name(cursor).is_ok() {
                    self.max_as_text(&ctx, &dataset.location, cursor).await?
                } else {
                    None
                }
            }
            _ => None,
        };
        if let (Some(cursor), Some(last)) = (&plan.cursor_field, &last) {
            let field = frame
                .schema()
                .field_with_unqualified_name(cursor)
                .map_err(|_| {
                    Error::InvalidInput(format!(
                        "cursor field `{cursor}` is not a column of `{}`",
                        plan.stream
                    ))
                })?;
            let bound = cast(lit(last.clone()), field.data_type().clone());
            // A merge re-reads the rows at the last cursor value (harmless:
            // they match their keys), so rows that arrived later with that
            // same value are not lost; an append reads strictly past it, so
            // nothing is written twice.
            let past = if plan.write == SyncWrite::Merge {
                col(ident_col(cursor)).gt_eq(bound)
            } else {
                col(ident_col(cursor)).gt(bound)
            };
            frame = frame.filter(past)?;
        } else if let Some(cursor) = &plan.cursor_field
            && frame.schema().field_with_unqualified_name(cursor).is_err()
        {
            return Err(Error::InvalidInput(format!(
                "cursor field `{cursor}` is not a column of `{}`",
                plan.stream
            )));
        }
        frame = storable(frame)?;
        for key in &plan.primary_key {
            if frame.schema().field_with_unqualified_name(key).is_err() {
                return Err(Error::InvalidInput(format!(
                    "primary key column `{key}` is not a column of `{}`",
                    plan.stream
                )));
            }
        }

        let frame_fields = fields_of(frame.schema().as_arrow());
        let mut add_columns = false;
        let mut rewrite = false;
        let mut dataset_changes = Vec::new();
        if let (Some(dataset), true) = (&existing, plan.write != SyncWrite::Overwrite) {
            let current = snapshot_of(&open_table(&dataset.location, None).await?)
                .await?
                .schema;
            let current_fields = fields_of(&current);
            // Datasets keep every column nullable; nullability is not a change here.
            dataset_changes = diff(&current_fields, &frame_fields, &BTreeMap::new())?
                .into_iter()
                .filter(|c| c.kind != ChangeKind::NullabilityChanged)
                .collect();
            let types_changed = dataset_changes.iter().any(|c| {
                matches!(
                    c.kind,
                    ChangeKind::TypeWidened | ChangeKind::TypeNarrowed | ChangeKind::TypeChanged
                )
            });
            match plan.policy {
                SchemaPolicy::Fail if !dataset_changes.is_empty() => {
                    return Err(schema_changed(
                        &plan.stream,
                        &plan.dataset,
                        &dataset_changes,
                    ));
                }
                SchemaPolicy::Fail => {}
                SchemaPolicy::Ignore => frame = fit_columns(frame, &current, false)?,
                SchemaPolicy::AppendNewColumns if types_changed => {
                    return Err(schema_changed(
                        &plan.stream,
                        &plan.dataset,
                        &dataset_changes,
                    ));
                }
                SchemaPolicy::AppendNewColumns => {
                    frame = fit_columns(frame, &current, true)?;
                    add_columns = true;
                }
                SchemaPolicy::SyncAll if types_changed && plan.write == SyncWrite::Merge => {
                    return Err(schema_changed(
                        &plan.stream,
                        &plan.dataset,
                        &dataset_changes,
                    ));
                }
                SchemaPolicy::SyncAll if types_changed => rewrite = true,
                SchemaPolicy::SyncAll => {
                    frame = fit_columns(frame, &current, true)?;
                    add_columns = true;
                }
            }
        }

        let row_estimate = source.row_estimate(&plan.stream).await;
        let expected = row_estimate.map_or(Expected::Bytes(0), Expected::Rows);
        let progress = job.progress.clone();
        let (version, rows_written) = match (plan.write, existing) {
            (SyncWrite::Merge, Some(dataset)) => {
                let key = if plan.primary_key.is_empty() {
                    let key = self.stream_primary_key(record, &plan.stream).await?;
                    self.mapped_names(record, &plan.stream, key).await?
                } else {
                    plan.primary_key.clone()
                };
                self.merge_into(&dataset, frame, &key, plan.policy != SchemaPolicy::Ignore)
                    .await?
            }
            (SyncWrite::Append, Some(dataset)) if rewrite => {
                // The dataset's rows cast to the new types, plus the new rows,
                // replace the dataset in one commit.
                let old = self.dataset_frame(&ctx, &dataset.location).await?;
                // The stream's columns with their new types, then the columns
                // only the dataset has (null in the new rows).
                let mut fields: Vec<arrow::datatypes::FieldRef> =
                    frame.schema().fields().iter().cloned().collect();
                for field in old.schema().fields() {
                    if frame
                        .schema()
                        .field_with_unqualified_name(field.name())
                        .is_err()
                    {
                        fields.push(field.clone());
                    }
                }
                let target = Schema::new(fields);
                let old = fit_columns(old, &target, false)?;
                let new = fit_columns(frame, &target, false)?;
                let combined = old.union(new)?;
                let target = WriteTarget {
                    name: &plan.dataset,
                    existing: Some(dataset),
                    mode: WriteMode::Overwrite,
                    description: None,
                    tags: Vec::new(),
                    add_columns: false,
                    in_input_order: false,
                };
                let (snapshot, rows) = self
                    .commit_frame(target, combined, expected, Some(progress))
                    .await?;
                (snapshot.version, rows)
            }
            (write, existing) => {
                let mode = match (write, &existing) {
                    (SyncWrite::Overwrite, _) => WriteMode::Overwrite,
                    (_, Some(_)) => WriteMode::Append,
                    (_, None) => WriteMode::Create,
                };
                let target = WriteTarget {
                    name: &plan.dataset,
                    existing,
                    mode,
                    description: Some(format!("synced from {}.{}", record.name, plan.stream)),
                    tags: vec![format!("connection:{}", record.name)],
                    add_columns,
                    in_input_order: false,
                };
                let (snapshot, rows) = self
                    .commit_frame(target, frame, expected, Some(progress))
                    .await?;
                (snapshot.version, rows)
            }
        };

        let mut cursor_value = None;
        if let Some(cursor) = &plan.cursor_field
            && plan.mode == SyncMode::Incremental
        {
            let dataset = self.dataset_record(&plan.dataset).await?;
            cursor_value = self.max_as_text(&ctx, &dataset.location, cursor).await?;
            // A record for people and dashboards; runs read the dataset itself.
            self.catalog()
                .put_sync_state(&SyncStateRecord {
                    connection_id: record.id.clone(),
                    stream: plan.stream.clone(),
                    dataset: plan.dataset.clone(),
                    cursor_field: Some(cursor.clone()),
                    cursor_value: cursor_value.clone().map(Value::from),
                    updated_at: Utc::now(),
                })
                .await?;
        }
        Ok(json!({
            "stream": plan.stream,
            "dataset": plan.dataset,
            "mode": plan.mode,
            "write": plan.write,
            "rows_written": rows_written,
            "row_estimate": row_estimate,
            "version": version,
            "cursor_value": cursor_value,
            "stream_schema_changes": stream_changes,
            "dataset_schema_changes": dataset_changes,
        }))
    }

    async fn stream_primary_key(
        &self,
        record: &ConnectionRecord,
        stream: &str,
    ) -> Result<Vec<String>> {
        let source = self.open_source(record).await?;
        let found = source
            .discover()
            .await?
            .into_iter()
            .find(|s| s.name == stream)
            .map(|s| s.primary_key)
            .unwrap_or_default();
        if found.is_empty() {
            return Err(Error::InvalidInput(format!(
                "stream `{stream}` has no primary key: give `primary_key` to merge"
            )));
        }
        Ok(found)
    }

    /// Source field names as the dataset has them, through the stream's mappings.
    async fn mapped_names(
        &self,
        record: &ConnectionRecord,
        stream: &str,
        names: Vec<String>,
    ) -> Result<Vec<String>> {
        let Some(stored) = self.catalog().field_mappings(&record.id, stream).await? else {
            return Ok(names);
        };
        let mappings: Vec<FieldMapping> =
            serde_json::from_value(stored).map_err(|e| Error::internal("field mappings", e))?;
        names
            .into_iter()
            .map(|name| match mappings.iter().find(|m| m.source == name) {
                Some(m) if m.drop => Err(Error::InvalidInput(format!(
                    "key column `{name}` is dropped by the stream's field mappings"
                ))),
                Some(m) => Ok(m.target().to_owned()),
                None => Ok(name),
            })
            .collect()
    }

    async fn dataset_frame(&self, ctx: &SessionContext, location: &str) -> Result<DataFrame> {
        let table = open_table(location, None).await?;
        Ok(ctx.read_table(crate::datasets::scan::table_provider(&table).await?)?)
    }

    /// The largest value of `column` in a dataset, as text.
    pub(crate) async fn max_as_text(
        &self,
        ctx: &SessionContext,
        location: &str,
        column: &str,
    ) -> Result<Option<String>> {
        let frame = self.dataset_frame(ctx, location).await?;
        let max = datafusion::functions_aggregate::expr_fn::max(col(ident_col(column)));
        let batches = frame
            .aggregate(vec![], vec![cast(max, DataType::Utf8).alias("m")])?
            .collect()
            .await?;
        let value = batches
            .first()
            .filter(|b| b.num_rows() > 0)
            .map(|b| ScalarValue::try_from_array(b.column(0), 0))
            .transpose()?;
        Ok(match value {
            Some(ScalarValue::Utf8(Some(text))) => Some(text),
            _ => None,
        })
    }

    /// Upserts `frame` into a dataset on `key` with Delta MERGE, as one commit.
    pub(crate) async fn merge_into(
        &self,
        dataset: &crate::catalog::DatasetRecord,
        frame: DataFrame,
        key: &[String],
        add_columns: bool,
    ) -> Result<(i64, u64)> {
        let location = dataset.location.clone();
        let key = key.to_vec();
        let columns: Vec<String> = frame
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let (state, _) = frame.clone().into_parts();
        let (table, rows) = self
            .executor()
            .run(async move {
                let table = open_table(&location, None).await?;
                let quoted = |side: &str, c: &str| format!("{side}.{}", basin_sql::quote_ident(c));
                let predicate = key
                    .iter()
                    .map(|k| format!("{} = {}", quoted("target", k), quoted("source", k)))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                let (table, metrics) = table
                    .merge(frame, predicate)
                    .with_source_alias("source")
                    .with_target_alias("target")
                    .with_merge_schema(add_columns)
                    .with_session_state(Arc::new(state))
                    .when_matched_update(|update| {
                        columns.iter().fold(update, |u, c| {
                            u.update(basin_sql::quote_ident(c), quoted("source", c))
                        })
                    })?
                    .when_not_matched_insert(|insert| {
                        columns.iter().fold(insert, |i, c| {
                            i.set(basin_sql::quote_ident(c), quoted("source", c))
                        })
                    })?
                    .await?;
                let rows =
                    (metrics.num_target_rows_inserted + metrics.num_target_rows_updated) as u64;
                Ok::<_, Error>((table, rows))
            })
            .await?;
        let snapshot = snapshot_of(&table).await?;
        let mut record = dataset.clone();
        snapshot.apply_to(&mut record);
        record.updated_at = Utc::now();
        self.catalog().update_dataset(&record).await?;
        self.record_dataset_schema(&record.id, snapshot.version, &snapshot.schema, "merge")
            .await;
        self.announce_write(&record, "merge").await;
        Ok((snapshot.version, rows))
    }

    /// Stores a stream's field mappings after checking them against the
    /// stream's schema and, when it exists, the target dataset's.
    pub async fn put_field_mappings(
        &self,
        principal: &Principal,
        id_or_name: &str,
        stream: &str,
        mappings: Vec<FieldMapping>,
        dataset: Option<&str>,
    ) -> Result<Vec<FieldMapping>> {
        self.authorize_connections(principal, Action::Write)?;
        let record = self.connection_record(id_or_name).await?;
        let source = self.open_source(&record).await?;
        let table = source.table(stream).await?;
        let schema = table.schema();
        let mut targets = Vec::new();
        for (i, mapping) in mappings.iter().enumerate() {
            let field = schema.field_with_name(&mapping.source).map_err(|_| {
                Error::InvalidInput(format!(
                    "mapping {i}: `{}` is not a field of stream `{stream}`",
                    mapping.source
                ))
            })?;
            if mapping.drop {
                continue;
            }
            basin_sql::validate_name(mapping.target()).map_err(|_| {
                Error::InvalidInput(format!(
                    "mapping {i}: `{}` is not a valid column name",
                    mapping.target()
                ))
            })?;
            if targets.contains(&mapping.target()) {
                return Err(Error::InvalidInput(format!(
                    "mapping {i}: two fields map to `{}`",
                    mapping.target()
                )));
            }
            targets.push(mapping.target());
            let to = match &mapping.data_type {
                Some(t) => {
                    parse_type(t).map_err(|e| Error::InvalidInput(format!("mapping {i}: {e}")))?
                }
                None => storable_type(field.data_type()),
            };
            if !arrow::compute::can_cast_types(field.data_type(), &to) {
                return Err(Error::InvalidInput(format!(
                    "mapping {i}: `{}` of type {} cannot be cast to {to}",
                    mapping.source,
                    field.data_type()
                )));
            }
            if let Some(name) = dataset
                && let Some(existing) = self.catalog().dataset_by_name(name).await?
            {
                let current = snapshot_of(&open_table(&existing.location, None).await?)
                    .await?
                    .schema;
                if let Ok(column) = current.field_with_name(mapping.target())
                    && !arrow::compute::can_cast_types(&to, column.data_type())
                {
                    return Err(Error::InvalidInput(format!(
                        "mapping {i}: dataset `{name}` column `{}` is {}, which {to} cannot be cast to",
                        mapping.target(),
                        column.data_type()
                    )));
                }
            }
        }
        let value = serde_json::to_value(&mappings).map_err(|e| Error::internal("mappings", e))?;
        self.catalog()
            .put_field_mappings(&record.id, stream, Some(&value))
            .await?;
        Ok(mappings)
    }

    /// A stream's stored field mappings (empty when none).
    pub async fn field_mappings(
        &self,
        principal: &Principal,
        id_or_name: &str,
        stream: &str,
    ) -> Result<Vec<FieldMapping>> {
        self.authorize_connections(principal, Action::Read)?;
        let record = self.connection_record(id_or_name).await?;
        match self.catalog().field_mappings(&record.id, stream).await? {
            Some(value) => {
                serde_json::from_value(value).map_err(|e| Error::internal("mappings", e))
            }
            None => Ok(Vec::new()),
        }
    }

    /// Removes a stream's field mappings.
    pub async fn delete_field_mappings(
        &self,
        principal: &Principal,
        id_or_name: &str,
        stream: &str,
    ) -> Result<()> {
        self.authorize_connections(principal, Action::Write)?;
        let record = self.connection_record(id_or_name).await?;
        self.catalog()
            .put_field_mappings(&record.id, stream, None)
            .await
            .map_err(Error::from)
    }
}

fn schema_changed(stream: &str, dataset: &str, changes: &[SchemaChange]) -> Error {
    Error::SchemaChanged {
        message: format!(
            "stream `{stream}` no longer matches dataset `{dataset}` ({} change(s)); nothing was written",
            changes.len()
        ),
        changes: serde_json::to_value(changes).unwrap_or_default(),
    }
}

/// A column reference that keeps the name's case and punctuation.
fn ident_col(name: &str) -> datafusion::common::Column {
    datafusion::common::Column::from_name(name)
}

/// Casts every column whose type Delta cannot store.
pub(crate) fn storable(frame: DataFrame) -> Result<DataFrame> {
    let needs_cast = frame
        .schema()
        .fields()
        .iter()
        .any(|f| storable_type(f.data_type()) != *f.data_type());
    if !needs_cast {
        return Ok(frame);
    }
    let exprs: Vec<Expr> = frame
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let to = storable_type(f.data_type());
            let column = col(ident_col(f.name()));
            if to == *f.data_type() {
                column
            } else {
                cast(column, to).alias(f.name())
            }
        })
        .collect();
    Ok(frame.select(exprs)?)
}

/// Applies field mappings: renames, casts and drops; unmapped fields pass through.
fn apply_mappings(frame: DataFrame, mappings: &[FieldMapping]) -> Result<DataFrame> {
    let mut exprs = Vec::new();
    for field in frame.schema().fields() {
        let column = col(ident_col(field.name()));
        match mappings.iter().find(|m| m.source == *field.name()) {
            Some(m) if m.drop => {}
            Some(m) => {
                let expr = match &m.data_type {
                    Some(t) => cast(column, parse_type(t)?),
                    None => column,
                };
                exprs.push(expr.alias(m.target()));
            }
            None => exprs.push(column),
        }
    }
    Ok(frame.select(exprs)?)
}

/// Shapes `frame` to `target`'s columns: each target column from the frame
/// (cast to the target's type) or null when the frame lacks it; frame columns
/// the target lacks are kept at the end when `keep_new`, dropped otherwise.
fn fit_columns(frame: DataFrame, target: &Schema, keep_new: bool) -> Result<DataFrame> {
    let mut exprs = Vec::new();
    for field in target.fields() {
        let expr = match frame.schema().field_with_unqualified_name(field.name()) {
            Ok(have) if have.data_type() == field.data_type() => col(ident_col(field.name())),
            Ok(_) => cast(col(ident_col(field.name())), field.data_type().clone()),
            Err(_) => cast(lit(ScalarValue::Null), field.data_type().clone()),
        };
        exprs.push(expr.alias(field.name()));
    }
    if keep_new {
        for field in frame.schema().fields() {
            if target.field_with_name(field.name()).is_err() {
                exprs.push(col(ident_col(field.name())));
            }
        }
    }
    Ok(frame.select(exprs)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_datasets_are_identifiers() {
        assert_eq!(default_dataset("pg", "public.Orders"), "pg_orders");
        assert_eq!(default_dataset("api", "items-v2"), "api_items_v2");
    }

    #[test]
    fn stream_specs_take_two_shapes() {
        let request: SyncRequest = serde_json::from_value(json!({
            "streams": ["public.a", {"stream": "public.b", "dataset": "b"}],
            "mode": "incremental",
            "cursor_field": "updated_at"
        }))
        .unwrap();
        assert!(matches!(&request.streams[0], SyncStream::Name(n) if n == "public.a"));
        assert!(
            matches!(&request.streams[1], SyncStream::Spec { dataset: Some(d), .. } if d == "b")
        );
        assert_eq!(request.schema_change, SchemaPolicy::AppendNewColumns);
    }
}
