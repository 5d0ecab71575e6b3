//! Writes a file's byte ranges as data files of their own, each encoded on
//! its own core, and commits them all as one Delta version.
//!
//! Delta's writer (deltalake-core 1.1) sends every input partition of an
//! unpartitioned table through one Parquet writer, so encoding runs on one
//! core however many cores parse. An ingested file's partitions are
//! consecutive byte ranges: a writer per range encodes in parallel, and each
//! data file still holds consecutive rows, so its statistics prune as well as
//! a single writer's would. This path takes the plain cases only (a new
//! dataset, or an append that adds no columns to a table without constraints,
//! generated columns or column mapping); everything else goes through Delta's
//! write operation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::{CastOptions, can_cast_types};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::util::display::FormatOptions;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::schema::types::ColumnPath;
use datafusion::physical_plan::SendableRecordBatchStream;
use delta_kernel::table_properties::DataSkippingNumIndexedCols;
use deltalake_core::DeltaTable;
use deltalake_core::kernel::engine::arrow_conversion::{TryIntoArrow, TryIntoKernel};
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake_core::kernel::{Action, Add, StructType};
use deltalake_core::logstore::ObjectStoreRef;
use deltalake_core::operations::create::CreateBuilder;
use deltalake_core::operations::write::WriterStatsConfig;
use deltalake_core::operations::write::writer::{DeltaWriter, WriterConfig};
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::table::config::{DEFAULT_TARGET_FILE_SIZE, TablePropertiesExt};
use futures::StreamExt;
use object_store::ObjectStoreExt;
use tokio::task::JoinSet;

use crate::datasets::open_table;
use crate::datasets::portable::cast_batch;
use crate::datasets::write::{writer_properties, writer_properties_builder};
use crate::{Error, Result};

/// Field metadata keys that make Delta's writer check or compute values.
const CHECKED_FIELD_KEYS: [&str; 2] = ["delta.invariants", "delta.generationExpression"];

/// A write this module can take: the table's Arrow schema every batch is cast
/// to, and how its writers collect statistics and roll files.
pub(crate) struct SplitWrite {
    target: SchemaRef,
    stats: WriterStatsConfig,
    target_file_size: std::num::NonZeroU64,
    /// The Delta schema of a new table; `None` for an append.
    creates: Option<StructType>,
}

impl SplitWrite {
    /// The plan for writing `input` into `table` with `mode`, or `None` when
    /// the write needs Delta's write operation. `table` is loaded unless
    /// `mode` creates it.
    pub(crate) fn plan(
        table: &DeltaTable,
        input: &SchemaRef,
        mode: SaveMode,
        add_columns: bool,
    ) -> Result<Option<Self>> {
        match mode {
            SaveMode::ErrorIfExists => {
                let normalized = deltalake_core::kernel::schema::cast::normalize_for_delta(input);
                // A type Delta cannot store is Delta's write to refuse, in its words.
                let Ok(schema) = TryIntoKernel::<StructType>::try_into_kernel(normalized.as_ref())
                else {
                    return Ok(None);
                };
                let Ok(target) = TryIntoArrow::<Schema>::try_into_arrow(&schema) else {
                    return Ok(None);
                };
                // Delta's default: statistics for the first 32 columns.
                let stats =
                    WriterStatsConfig::new(DataSkippingNumIndexedCols::NumColumns(32), None);
                Ok(Self::castable(input, &target).then(|| Self {
                    target: Arc::new(target),
                    stats,
                    target_file_size: DEFAULT_TARGET_FILE_SIZE,
                    creates: Some(schema),
                }))
            }
            SaveMode::Append if !add_columns => {
                let snapshot = table.snapshot()?.snapshot();
                let config = snapshot.table_configuration();
                let metadata = snapshot.metadata();
                let plain = metadata.partition_columns().is_empty()
                    && !metadata.configuration().keys().any(|k| {
                        k.starts_with("delta.constraints.") || k == "delta.columnMapping.mode"
                    })
                    && !snapshot.schema().fields().any(|f| {
                        CHECKED_FIELD_KEYS
                            .iter()
                            .any(|key| f.metadata().contains_key(*key))
                    });
                let target = snapshot.arrow_schema();
                if !plain || !Self::castable(input, &target) {
                    return Ok(None);
                }
                Ok(Some(Self {
                    target,
                    stats: WriterStatsConfig::from_config(config),
                    target_file_size: snapshot.table_properties().target_file_size(),
                    creates: None,
                }))
            }
            _ => Ok(None),
        }
    }

    /// Whether `input`'s columns are the target's, in order, each castable.
    fn castable(input: &SchemaRef, target: &Schema) -> bool {
        input.fields().len() == target.fields().len()
            && input
                .fields()
                .iter()
                .zip(target.fields())
                .all(|(from, to)| {
                    from.name() == to.name() && can_cast_types(from.data_type(), to.data_type())
                })
    }

    /// Writes each stream through its own writer, concurrently, then commits
    /// every file as one version of the table at `location` (named `name` if
    /// new); `rows` counts the streams' rows. Nothing is committed if any
    /// stream fails, and the files written so far are removed.
    pub(crate) async fn write(
        self,
        table: DeltaTable,
        name: &str,
        streams: Vec<SendableRecordBatchStream>,
        (location, rows): (&str, &AtomicU64),
    ) -> Result<DeltaTable> {
        let store = table.log_store().object_store(None);
        let config = WriterConfig::new(
            self.target.clone(),
            Vec::new(),
            Some(writer_properties()),
            Some(self.target_file_size),
            None,
            self.stats.num_indexed_cols,
            self.stats.stats_columns.clone(),
        );
        let failed = Arc::new(AtomicBool::new(false));
        let mut writers = JoinSet::new();
        for (range, stream) in streams.into_iter().enumerate() {
            let writer = (store.clone(), config.clone());
            let target = self.target.clone();
            let failed = failed.clone();
            writers
                .spawn(async move { (range, write_range(writer, stream, target, failed).await) });
        }
        let mut written: Vec<(usize, Vec<Add>)> = Vec::new();
        let mut error: Option<Error> = None;
        while let Some(joined) = writers.join_next().await {
            let failure = match joined {
                Ok((range, Ok(adds))) => {
                    written.push((range, adds));
                    continue;
                }
                Ok((_, Err(e))) => e,
                Err(e) => Error::internal("a dataset writer", e),
            };
            failed.store(true, Ordering::Relaxed);
            // The cause, not a range that stopped because another failed.
            if error.as_ref().is_none_or(|e| matches!(e, Error::Canceled)) {
                error = Some(failure);
            }
        }
        // Files in input order: the log lists a file's ranges as they came.
        written.sort_by_key(|(range, _)| *range);
        let adds: Vec<Add> = written.into_iter().flat_map(|(_, adds)| adds).collect();
        if let Some(error) = error {
            for add in &adds {
                let path = deltalake_core::Path::from(add.path.as_str());
                // Best effort: an uncommitted file is invisible either way.
                let _ = store.delete(&path).await;
            }
            return Err(error);
        }
        let rows = rows.load(Ordering::Relaxed);
        let metrics = serde_json::json!({
            "num_added_files": adds.len(),
            "num_removed_files": 0,
            "num_partitions": 0,
            "num_added_rows": rows,
        });
        let properties =
            CommitProperties::default().with_metadata([("operationMetrics".to_owned(), metrics)]);
        let actions = adds.into_iter().map(Action::Add);
        match self.creates {
            Some(schema) => {
                let table = CreateBuilder::new()
                    .with_log_store(table.log_store())
                    .with_save_mode(SaveMode::ErrorIfExists)
                    .with_table_name(name)
                    .with_columns(schema.fields().cloned())
                    .with_actions(actions)
                    .with_commit_properties(properties)
                    .await?;
                Ok(table)
            }
            None => {
                let operation = DeltaOperation::Write {
                    mode: SaveMode::Append,
                    partition_by: None,
                    predicate: None,
                };
                let commit = CommitBuilder::from(properties)
                    .with_actions(actions.collect())
                    .build(Some(table.snapshot()?), table.log_store(), operation)
                    .await?;
                open_table(
                    location,
                    Some(crate::datasets::TimeTravel::Version(commit.version as i64)),
                )
                .await
            }
        }
    }
}

/// Drains one byte range's stream through a writer of its own, set up from
/// the range's first batch; on any failure, here or in another range
/// (`failed`), aborts the writer's uploads.
async fn write_range(
    (store, config): (ObjectStoreRef, WriterConfig),
    mut stream: SendableRecordBatchStream,
    target: SchemaRef,
    failed: Arc<AtomicBool>,
) -> Result<Vec<Add>> {
    let mut writer: Option<DeltaWriter> = None;
    let drained: Result<()> = async {
        while let Some(batch) = stream.next().await {
            if failed.load(Ordering::Relaxed) {
                return Err(Error::Canceled);
            }
            let batch = batch?;
            let writer = match &mut writer {
                Some(writer) => writer,
                None => writer.insert(
                    DeltaWriter::new(store.clone(), config.clone())
                        .with_writer_properties(properties_for(&batch)?),
                ),
            };
            writer.write(&conform_batch(batch, &target)?).await?;
        }
        Ok(())
    }
    .await;
    match (drained, writer) {
        (Ok(()), Some(writer)) => Ok(writer.close().await?),
        (Ok(()), None) => Ok(Vec::new()),
        (Err(e), writer) => {
            failed.store(true, Ordering::Relaxed);
            if let Some(writer) = writer {
                // The write has failed already; an upload left behind is invisible.
                let _ = writer.abort().await;
            }
            Err(e)
        }
    }
}

/// The writer properties for a range whose first batch is `batch`: a column
/// whose distinct values still grow with the rows (an id, a price, free
/// text) is written without a dictionary. Its dictionary would overflow the
/// page limit and fall back to plain encoding in every row group anyway,
/// after interning a megabyte of values each time; without it, a lookup also
/// reads no dictionary page of that column. Columns whose values repeat keep
/// their dictionaries.
fn properties_for(batch: &RecordBatch) -> Result<WriterProperties> {
    let mut properties = writer_properties_builder();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if keeps_growing(column)? {
            properties = properties
                .set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
        }
    }
    Ok(properties.build())
}

/// Fewest rows from which [`keeps_growing`] judges a column.
const DISTINCT_SAMPLE_ROWS: usize = 2048;

/// Whether `column`'s distinct values in its whole length are nearly twice
/// those of its first half, and more than an eighth of its rows: values
/// drawn from a small domain stop adding new ones, values that keep coming
/// (keys, measurements, text) do not.
fn keeps_growing(column: &ArrayRef) -> Result<bool> {
    let rows = column.len();
    if rows < DISTINCT_SAMPLE_ROWS || column.data_type().is_nested() {
        return Ok(false);
    }
    let mut hashes = vec![0_u64; rows];
    create_hashes([column], &RandomState::with_seed(0), &mut hashes)?;
    let mut seen: std::collections::HashSet<u64> = std::collections::HashSet::with_capacity(rows);
    let half = rows / 2;
    seen.extend(hashes[..half].iter().copied());
    let in_half = seen.len();
    seen.extend(hashes[half..].iter().copied());
    let in_all = seen.len();
    Ok(in_all * 8 > rows && in_all * 20 >= in_half * 38)
}

/// `batch` with the target's schema, each column cast where its type differs;
/// a value that does not fit fails the write rather than becoming null.
fn conform_batch(batch: RecordBatch, target: &SchemaRef) -> Result<RecordBatch> {
    let options = CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    };
    Ok(cast_batch(&batch, target, &options).map_err(datafusion::error::DataFusionError::from)?)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};

    use super::*;

    #[test]
    fn only_columns_whose_values_keep_coming_lose_their_dictionary() {
        let rows = 8192_i64;
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows));
        // Every order has four lines, in order: still new values throughout.
        let order_keys: ArrayRef = Arc::new(Int64Array::from_iter_values((0..rows).map(|i| i / 4)));
        let labels: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| format!("label-{}", i % 10)),
        ));
        // A 10,000-value domain in scrambled order: a half already holds most.
        let suppliers: ArrayRef = Arc::new(Int64Array::from_iter_values(
            (0..rows).map(|i| (i * 7919 + i * i * 104_729) % 10_000),
        ));
        let short: ArrayRef = Arc::new(Int64Array::from_iter_values(0..100));
        assert!(keeps_growing(&ids).unwrap());
        assert!(keeps_growing(&order_keys).unwrap());
        assert!(!keeps_growing(&labels).unwrap());
        assert!(!keeps_growing(&suppliers).unwrap());
        assert!(!keeps_growing(&short).unwrap(), "too few rows to judge");
    }
}
