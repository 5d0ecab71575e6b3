//! The one write path: every write of a dataset (ingest, SQL writes, syncs,
//! pipeline steps, Flight and stream writes) commits a frame here as one
//! atomic Delta version and then records it in the catalog.
//!
//! Nothing is visible until the commit: a failed or dropped write leaves the
//! dataset at its previous version, and a failed first write leaves no table
//! behind. After the catalog row is updated the write is announced: to event
//! subscribers as `dataset_updated`, and to the services that react to every
//! write (analytics records size metrics and runs after-write checks), which
//! subscribe as [`AfterWrite`] observers when the engine opens. The write path
//! knows only the trait, never the services behind it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use chrono::Utc;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::provider_as_source;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::{
    EnabledStatistics, WriterProperties, WriterPropertiesBuilder,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::{ExecutionPlanProperties, SendableRecordBatchStream};
use deltalake_core::operations::write::SchemaMode;
use deltalake_core::protocol::SaveMode;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::catalog::DatasetRecord;
use crate::datasets::split::SplitWrite;
use crate::datasets::{
    Snapshot, location_for, location_path, open_table, remove_dir_if_exists, snapshot_of,
};
use crate::error::Entity;
use crate::identity::{Action, Principal, Resource};
use crate::runtime::jobs::ProgressFn;
use crate::{Engine, Error, Result};

/// How a write relates to the dataset's existing data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// Create a new dataset; fails if the name is taken.
    Create,
    /// Add rows (creating the dataset if needed).
    #[default]
    Append,
    /// Replace all rows and the schema (creating the dataset if needed).
    Overwrite,
}

crate::option_words!(WriteMode);

/// What a stream write does when the dataset exists, and when it does not:
/// decided by the engine at the write, so no lookup by the caller can go
/// stale before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamWriteMode {
    /// When the dataset exists.
    pub if_exists: IfExists,
    /// When it does not.
    pub if_missing: IfMissing,
}

/// What a stream write does to an existing dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfExists {
    /// Refuse with `dataset_exists`.
    Fail,
    /// Add the rows.
    Append,
    /// Replace rows and schema.
    Replace,
}

/// What a stream write does when the dataset is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// Refuse with `dataset_not_found`.
    Fail,
    /// Create it.
    Create,
}

/// Where a write goes, and what a new dataset starts with.
pub(crate) struct WriteTarget<'a> {
    pub(crate) name: &'a str,
    pub(crate) existing: Option<DatasetRecord>,
    pub(crate) mode: WriteMode,
    pub(crate) description: Option<String>,
    pub(crate) tags: Vec<String>,
    /// Appends may add columns the dataset lacks (Delta schema evolution).
    pub(crate) add_columns: bool,
    /// Keep the input's row order in the written files. For file scans, whose
    /// partitions are consecutive byte ranges: each range gets writers and
    /// files of its own where [`SplitWrite`] can take the write, otherwise the
    /// ranges are written one after another. Either way the files' row-group
    /// and page statistics prune (an interleaved write spreads every page over
    /// distant key ranges).
    pub(crate) in_input_order: bool,
}

/// How much a write expects to read, for its progress fraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expected {
    /// Input bytes (an ingested file); `0` when unknown.
    Bytes(u64),
    /// Rows (a source's estimate).
    Rows(u64),
}

/// What a write of batches or SQL did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WriteOutcome {
    /// The dataset written.
    pub dataset: String,
    /// The version the write created.
    pub version: i64,
    /// Rows written.
    pub rows_written: u64,
}

/// A service that reacts to every committed write of a dataset, after its
/// catalog row is updated. Observers are awaited in turn before the write
/// returns, so what they record is there when the caller reads it; anything
/// slow they start in the background.
#[async_trait]
pub(crate) trait AfterWrite: Send + Sync + std::fmt::Debug {
    /// `record` is the dataset as just written; `cause` says how (`write`,
    /// `merge`, `restore`).
    async fn dataset_written(&self, engine: &Engine, record: &DatasetRecord, cause: &str);
}

impl Engine {
    /// Announces a committed write: the `dataset_updated` event, then every
    /// [`AfterWrite`] observer.
    pub(crate) async fn announce_write(&self, record: &DatasetRecord, cause: &str) {
        self.publish_dataset_updated(&record.name, record.version, cause);
        for observer in self.after_write_observers() {
            observer.dataset_written(self, record, cause).await;
        }
    }

    /// Writes `frame` into the target dataset as one new version and records it
    /// in the catalog. On failure a new dataset leaves nothing behind.
    pub(crate) async fn commit_frame(
        &self,
        target: WriteTarget<'_>,
        frame: DataFrame,
        expected: Expected,
        progress: Option<ProgressFn>,
    ) -> Result<(Snapshot, u64)> {
        let WriteTarget {
            name,
            existing,
            mode,
            description,
            tags,
            add_columns,
            in_input_order,
        } = target;
        let (id, location) = match &existing {
            Some(record) => (record.id.clone(), record.location.clone()),
            None => {
                let id = uuid::Uuid::now_v7().to_string();
                let location = location_for(self.data_dir(), &id)?;
                (id, location)
            }
        };
        let save_mode = match (mode, existing.is_some()) {
            (WriteMode::Overwrite, true) => SaveMode::Overwrite,
            (_, true) => SaveMode::Append,
            (_, false) => SaveMode::ErrorIfExists,
        };
        let is_new = existing.is_none();
        let record = CommitRecord {
            engine: self.clone(),
            id,
            name: name.to_owned(),
            location: location.clone(),
            existing,
            description,
            tags,
        };
        let written = self
            .write_frame(
                &location,
                frame,
                (save_mode, add_columns, in_input_order),
                (expected, progress),
                record,
            )
            .await;
        if written.is_err()
            && is_new
            && let Some(dir) = location_path(&location)
        {
            remove_dir_if_exists(&dir).await?;
        }
        written
    }

    /// Writes a stream of batches into a dataset as one new version: nothing is
    /// visible until the stream ends cleanly, and an error or a dropped stream
    /// leaves the dataset at its previous version.
    ///
    /// Appends match columns by name and cast to the dataset's types.
    /// Audited, with the door it came through.
    pub async fn write_stream(
        &self,
        principal: &Principal,
        name: &str,
        mode: StreamWriteMode,
        stream: SendableRecordBatchStream,
    ) -> Result<WriteOutcome> {
        let write = self.write_stream_once(principal, name, mode, stream);
        self.audited(
            principal,
            "dataset.ingest",
            &format!("dataset:{name}"),
            write,
        )
        .await
    }

    async fn write_stream_once(
        &self,
        principal: &Principal,
        name: &str,
        mode: StreamWriteMode,
        stream: SendableRecordBatchStream,
    ) -> Result<WriteOutcome> {
        principal.authorize(Action::Write, Resource::Dataset(name))?;
        basin_sql::validate_name(name)?;
        let existing = self.catalog().dataset_by_name(name).await?;
        let mode = match (&existing, mode.if_exists, mode.if_missing) {
            (Some(_), IfExists::Fail, _) => {
                return Err(Error::already_exists(Entity::Dataset, name.to_owned()));
            }
            (Some(_), IfExists::Append, _) => WriteMode::Append,
            (Some(_), IfExists::Replace, _) => WriteMode::Overwrite,
            (None, _, IfMissing::Fail) => {
                return Err(Error::not_found(Entity::Dataset, name.to_owned()));
            }
            (None, _, IfMissing::Create) => WriteMode::Create,
        };
        let ctx = self.sessions().file_context();
        let schema = stream.schema();
        let source = StreamingTable::try_new(
            schema.clone(),
            vec![Arc::new(OneShotPartition::new(schema, stream))],
        )?;
        let mut frame = ctx.read_table(Arc::new(source))?;
        if let (Some(record), WriteMode::Append) = (&existing, mode) {
            let table = open_table(&record.location, None).await?;
            let columns = crate::datasets::conform::ColumnMapping::ByName;
            frame = crate::datasets::conform::conform(
                frame,
                &snapshot_of(&table).await?.schema,
                columns,
            )?;
        }
        self.commit_write(name, existing, mode, frame).await
    }

    /// Commits `frame` to a dataset (a new one gets no description or tags).
    pub(crate) async fn commit_write(
        &self,
        name: &str,
        existing: Option<DatasetRecord>,
        mode: WriteMode,
        frame: DataFrame,
    ) -> Result<WriteOutcome> {
        let target = WriteTarget {
            name,
            existing,
            mode,
            description: None,
            tags: Vec::new(),
            add_columns: false,
            in_input_order: false,
        };
        let (snapshot, rows_written) = self
            .commit_frame(target, frame, Expected::Bytes(0), None)
            .await?;
        Ok(WriteOutcome {
            dataset: name.to_owned(),
            version: snapshot.version,
            rows_written,
        })
    }

    /// Streams a frame into the Delta table at `location` as one commit,
    /// counting rows, and records the commit in the catalog.
    async fn write_frame(
        &self,
        location: &str,
        frame: DataFrame,
        (mode, add_columns, in_input_order): (SaveMode, bool, bool),
        (expected, progress): (Expected, Option<ProgressFn>),
        record: CommitRecord,
    ) -> Result<(crate::datasets::Snapshot, u64)> {
        let location = location.to_owned();
        let rows = Arc::new(AtomicU64::new(0));
        let counted_rows = rows.clone();
        // The catalog is recorded on the caller's runtime, not the CPU one.
        let caller_runtime = tokio::runtime::Handle::current();
        // Boxed: the write's state is large, and `run` holds it until spawned.
        self.executor()
            .run(Box::pin(async move {
                let table = if mode == SaveMode::ErrorIfExists {
                    // A new dataset: there is no log to load yet.
                    let url = url::Url::parse(&location)
                        .map_err(|e| Error::internal("dataset location", e))?;
                    deltalake_core::DeltaTableBuilder::from_url(url)?.build()?
                } else {
                    open_table(&location, None).await?
                };
                let (state, _) = frame.clone().into_parts();
                let task_ctx = state.task_ctx();
                let counting = Counting {
                    rows: counted_rows,
                    expected,
                    progress,
                };
                let (schema, streams) = counted_streams(frame, counting, task_ctx).await?;
                let split = if in_input_order && streams.len() > 1 {
                    SplitWrite::plan(&table, &schema, mode, add_columns)?
                } else {
                    None
                };
                let table = match split {
                    Some(split) => {
                        split
                            .write(table, &record.name, streams, (&location, &rows))
                            .await?
                    }
                    None => {
                        let plan = streams_plan(schema, streams, in_input_order)?;
                        let session = Arc::new(state);
                        let mut write = table
                            .write(Vec::new())
                            .with_input_plan(plan)
                            .with_save_mode(mode)
                            .with_table_name(record.name.clone())
                            .with_writer_properties(writer_properties())
                            .with_session_state(session);
                        if mode == SaveMode::Overwrite {
                            write = write.with_schema_mode(SchemaMode::Overwrite);
                        } else if mode == SaveMode::Append && add_columns {
                            write = write.with_schema_mode(SchemaMode::Merge);
                        }
                        write.await?
                    }
                };
                // The version is committed. Recording it must finish even if
                // the caller goes away now, so it runs as its own task, spawned
                // with no await point after the commit that could abort it.
                let rows_written = rows.load(Ordering::Relaxed);
                let recorded = caller_runtime.spawn(record.record(table, rows_written));
                recorded
                    .await
                    .map_err(|e| Error::internal("recording a write", e))?
            }))
            .await
    }
}

/// What a committed write records in the catalog: the dataset row (new or
/// updated), its schema history, and the write's announcement.
struct CommitRecord {
    engine: Engine,
    id: String,
    name: String,
    location: String,
    existing: Option<DatasetRecord>,
    description: Option<String>,
    tags: Vec<String>,
}

impl CommitRecord {
    async fn record(
        self,
        table: deltalake_core::DeltaTable,
        rows_written: u64,
    ) -> Result<(crate::datasets::Snapshot, u64)> {
        let Self {
            engine,
            id,
            name,
            location,
            existing,
            description,
            tags,
        } = self;
        let snapshot = snapshot_of(&table).await?;
        let now = Utc::now();
        let mut record = match existing {
            Some(record) => record,
            None => DatasetRecord {
                id,
                name,
                description: description.unwrap_or_default(),
                tags,
                owner: None,
                location: location.clone(),
                version: 0,
                schema: serde_json::Value::Null,
                row_count: 0,
                size_bytes: 0,
                file_count: 0,
                created_at: now,
                updated_at: now,
                deleted_at: None,
            },
        };
        snapshot.apply_to(&mut record);
        record.updated_at = now;
        if snapshot.version == 0 {
            if let Err(e) = engine.catalog().insert_dataset(&record).await {
                if let Some(dir) = location_path(&location) {
                    remove_dir_if_exists(&dir).await?;
                }
                return Err(e.into());
            }
        } else {
            engine.catalog().update_dataset(&record).await?;
        }
        engine
            .record_dataset_schema(&record.id, snapshot.version, &snapshot.schema, "write")
            .await;
        engine.announce_write(&record, "write").await;
        metrics::counter!("basin_ingest_rows_total").increment(rows_written);
        Ok((snapshot, rows_written))
    }
}

/// Rows per Parquet row group. Delta's writer would take a million; smaller
/// groups prune in finer steps and the writer buffers less. Chosen while
/// Delta's scan read datasets, which evaluates every predicate while decoding
/// (late materialization) at a cost per row group: DataFusion 55 took 0.26 s
/// for the bench's 10M-row hourly series (a filter that keeps every row) at
/// 128 Ki rows, 0.21 s at 256 Ki, 0.18 s at 512 Ki and 0.19 s at a million
/// (0.15 s without the pushdown, which Basin's own scan now leaves off).
const ROW_GROUP_ROWS: usize = 512 * 1024;

/// How datasets are written: Snappy (fast to read), statistics per page (the
/// page index prunes), and row groups of [`ROW_GROUP_ROWS`].
pub(crate) fn writer_properties() -> WriterProperties {
    writer_properties_builder().build()
}

/// [`writer_properties`], for a writer to adjust per column.
pub(crate) fn writer_properties_builder() -> WriterPropertiesBuilder {
    WriterProperties::builder()
        .set_created_by(format!("basin {}", env!("CARGO_PKG_VERSION")))
        .set_compression(Compression::SNAPPY)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
}

/// How a write counts its rows and reports progress.
struct Counting {
    rows: Arc<AtomicU64>,
    expected: Expected,
    progress: Option<ProgressFn>,
}

/// The frame's partitions as streams that count rows (and report progress),
/// each in the order its partition produces them, with every column nullable.
async fn counted_streams(
    frame: DataFrame,
    counting: Counting,
    task_ctx: Arc<TaskContext>,
) -> Result<(SchemaRef, Vec<SendableRecordBatchStream>)> {
    let physical = frame.create_physical_plan().await?;
    // Datasets keep every column nullable: a later append with a null in a
    // column the first write happened to fill must not be refused.
    let schema = Arc::new(Schema::new_with_metadata(
        physical
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
        physical.schema().metadata().clone(),
    ));
    let partitions = physical.output_partitioning().partition_count();
    let mut inputs = Vec::with_capacity(partitions);
    for partition in 0..partitions {
        // Lazily: a file scan's partition opens its byte range when first polled.
        inputs.push(physical.execute(partition, task_ctx.clone())?);
    }
    let Counting {
        rows,
        expected,
        progress,
    } = counting;
    let bytes_per_row = Arc::new(AtomicU64::new(0));
    let mut streams: Vec<SendableRecordBatchStream> = Vec::with_capacity(inputs.len());
    for stream in inputs {
        let rows = rows.clone();
        let progress = progress.clone();
        let bytes_per_row = bytes_per_row.clone();
        let relaxed = schema.clone();
        let counted = stream.map(move |batch| Ok(batch?.with_schema(relaxed.clone())?));
        let counted = counted.inspect(move |batch: &Result<RecordBatch, DataFusionError>| {
            if let Ok(batch) = batch {
                let total = rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed)
                    + batch.num_rows() as u64;
                if let Some(progress) = &progress {
                    // In-memory size tracks file size closely enough for a progress bar.
                    if bytes_per_row.load(Ordering::Relaxed) == 0 && batch.num_rows() > 0 {
                        let per_row = batch.get_array_memory_size() / batch.num_rows();
                        bytes_per_row.store(per_row.max(1) as u64, Ordering::Relaxed);
                    }
                    let (fraction, message) = match expected {
                        Expected::Bytes(input) => {
                            let estimate = total * bytes_per_row.load(Ordering::Relaxed);
                            let fraction =
                                (input > 0).then(|| (estimate as f64 / input as f64).min(0.99));
                            (fraction, format!("{total} rows written"))
                        }
                        Expected::Rows(about) => (
                            (about > 0).then(|| (total as f64 / about as f64).min(0.99)),
                            format!("{total} of about {about} rows written"),
                        ),
                    };
                    progress(fraction, message);
                }
            }
        });
        streams.push(Box::pin(RecordBatchStreamAdapter::new(
            schema.clone(),
            counted,
        )));
    }
    Ok((schema, streams))
}

/// `streams` as a logical plan Delta's writer consumes partition by partition;
/// with `in_input_order`, as one partition reading the streams in turn.
fn streams_plan(
    schema: SchemaRef,
    mut streams: Vec<SendableRecordBatchStream>,
    in_input_order: bool,
) -> Result<datafusion::logical_expr::LogicalPlan> {
    if in_input_order && streams.len() > 1 {
        let chained = futures::stream::iter(streams).flatten();
        streams = vec![Box::pin(RecordBatchStreamAdapter::new(
            schema.clone(),
            chained,
        ))];
    }
    let partitions = streams
        .into_iter()
        .map(|stream| {
            Arc::new(OneShotPartition::new(schema.clone(), stream)) as Arc<dyn PartitionStream>
        })
        .collect();
    let table = StreamingTable::try_new(schema, partitions)?;
    let plan =
        LogicalPlanBuilder::scan("source", provider_as_source(Arc::new(table)), None)?.build()?;
    Ok(plan)
}

/// A partition whose stream can be taken once.
pub(crate) struct OneShotPartition {
    schema: SchemaRef,
    stream: std::sync::Mutex<Option<SendableRecordBatchStream>>,
}

impl OneShotPartition {
    pub(crate) fn new(schema: SchemaRef, stream: SendableRecordBatchStream) -> Self {
        Self {
            schema,
            stream: std::sync::Mutex::new(Some(stream)),
        }
    }
}

impl std::fmt::Debug for OneShotPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneShotPartition").finish_non_exhaustive()
    }
}

impl PartitionStream for OneShotPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self.stream.lock().map(|mut s| s.take()).unwrap_or(None);
        taken.unwrap_or_else(|| {
            let error = DataFusionError::Execution("ingest partition was already consumed".into());
            Box::pin(RecordBatchStreamAdapter::new(
                self.schema.clone(),
                futures::stream::once(async move { Err(error) }),
            ))
        })
    }
}
