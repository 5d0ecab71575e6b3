//! How queries read a dataset's files.
//!
//! Delta's own scan (deltalake-core 1.1) hands DataFusion no statistics
//! unless a query carries a predicate, so joins pick their build side blind,
//! and it always evaluates filters while decoding (late materialization),
//! which costs per row group even when a filter keeps every row. The tables
//! Basin writes are the simple case of Delta: Parquet files listed by the log,
//! no partitions, no deletion vectors, no column mapping. Those are scanned by
//! DataFusion's own Parquet reader over the snapshot's file list, with every
//! file's row count, null counts, minimum and maximum taken from the log and
//! the session's Parquet options (filters prune row groups and pages, and are
//! pushed into decoding only when the session asks). Any other table, such
//! as one another Delta writer made, keeps Delta's scan.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{Column, ColumnStatistics, ScalarValue, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{
    FileGroup, FileGroupPartitioner, FileScanConfigBuilder, ParquetSource,
};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::Expr;
use datafusion::physical_optimizer::pruning::PruningStatistics;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use deltalake_core::DeltaTable;
use deltalake_core::kernel::LogDataHandler;

use crate::Result;

/// Reader features that leave a table's files plain Parquet to read: the
/// rest (deletion vectors, column mapping, type widening, …) need Delta's scan.
const PLAIN_READER_FEATURES: [&str; 3] = ["timestampNtz", "v2Checkpoint", "vacuumProtocolCheck"];

/// The table queries read for `table` at its loaded version.
pub(crate) async fn table_provider(table: &DeltaTable) -> Result<Arc<dyn TableProvider>> {
    let delta = table.table_provider().await?;
    Ok(match ParquetDataset::try_new(table, delta.schema())? {
        Some(plain) => Arc::new(plain),
        None => delta,
    })
}

/// `provider` answering with plain `Utf8`/`Binary` columns instead of views,
/// decoded so from the files (a cast afterwards would copy every string);
/// `None` when it is not a file scan of this module (an accelerated table).
/// For reads that leave Basin whole, to clients that do not take views.
pub(crate) fn with_plain_strings(
    provider: &Arc<dyn TableProvider>,
) -> Option<Arc<dyn TableProvider>> {
    let dataset = (provider.as_ref() as &dyn std::any::Any).downcast_ref::<ParquetDataset>()?;
    let schema = crate::datasets::portable::portable_schema(&dataset.schema);
    let files = dataset
        .files
        .iter()
        .map(|file| match &file.statistics {
            Some(statistics) => file
                .clone()
                .with_statistics(Arc::new(retyped(statistics, &schema))),
            None => file.clone(),
        })
        .collect();
    Some(Arc::new(ParquetDataset {
        statistics: retyped(&dataset.statistics, &schema),
        schema,
        files,
        view_types: false,
    }))
}

/// `statistics` with each bound cast to its column's type in `schema`.
fn retyped(statistics: &Statistics, schema: &SchemaRef) -> Statistics {
    let mut statistics = statistics.clone();
    for (column, field) in statistics.column_statistics.iter_mut().zip(schema.fields()) {
        for bound in [&mut column.min_value, &mut column.max_value] {
            let cast = |value: ScalarValue| value.cast_to(field.data_type()).ok();
            *bound = match std::mem::replace(bound, Precision::Absent) {
                Precision::Exact(value) => cast(value).map_or(Precision::Absent, Precision::Exact),
                Precision::Inexact(value) => {
                    cast(value).map_or(Precision::Absent, Precision::Inexact)
                }
                Precision::Absent => Precision::Absent,
            };
        }
    }
    statistics
}

/// A dataset version whose files DataFusion's Parquet reader scans directly.
#[derive(Debug)]
struct ParquetDataset {
    schema: SchemaRef,
    files: Vec<PartitionedFile>,
    statistics: Statistics,
    /// Strings and binaries decode as views (`Utf8View`), as Delta's scan does.
    view_types: bool,
}

impl ParquetDataset {
    /// `None` when the table needs Delta's scan. `schema` is what Delta's
    /// scan would answer with, so both readers give the same types.
    fn try_new(table: &DeltaTable, schema: SchemaRef) -> Result<Option<Self>> {
        let Some(root) = local_root(table) else {
            return Ok(None);
        };
        let snapshot = table.snapshot()?.snapshot();
        let protocol = snapshot.protocol();
        let plain_features = protocol.reader_features().is_none_or(|features| {
            features
                .iter()
                .all(|feature| PLAIN_READER_FEATURES.contains(&feature.to_string().as_str()))
        });
        // Reader version 2 is column mapping without a feature list.
        if protocol.min_reader_version() == 2
            || !plain_features
            || !snapshot.metadata().partition_columns().is_empty()
        {
            return Ok(None);
        }
        let log = snapshot.try_log_data()?;
        let per_file = file_statistics(&log, &schema);
        let files: Vec<PartitionedFile> = log
            .iter()
            .zip(per_file)
            .map(|(file, statistics)| {
                let size = u64::try_from(file.size()).unwrap_or_default();
                PartitionedFile::new(format!("{root}/{}", file.path()), size)
                    .with_statistics(Arc::new(statistics))
            })
            .collect();
        let statistics = Statistics::try_merge_iter(
            files.iter().filter_map(|file| file.statistics.as_deref()),
            &schema,
        )?;
        Ok(Some(Self {
            schema,
            files,
            statistics,
            view_types: true,
        }))
    }
}

/// The table's directory as an object-store path of the local file system
/// (no leading `/`); `None` for any other store.
fn local_root(table: &DeltaTable) -> Option<String> {
    let url = table.table_url();
    if url.scheme() != "file" {
        return None;
    }
    let path = url.to_file_path().ok()?;
    Some(path.to_str()?.trim_matches('/').to_owned())
}

/// Each file's statistics from the log: rows, and per top-level column its
/// null count, minimum and maximum where the writer recorded them.
fn file_statistics(log: &LogDataHandler<'_>, schema: &SchemaRef) -> Vec<Statistics> {
    let files = log.num_files();
    // Per file, not `PruningStatistics::row_counts`: deltalake-core 1.1
    // answers that with `None` for a snapshot's files.
    let rows: Vec<Option<usize>> = log.iter().map(|file| file.num_records()).collect();
    let columns: Vec<_> = schema
        .fields()
        .iter()
        .map(|field| {
            let column = Column::new_unqualified(field.name());
            let stats = |values: Option<ArrayRef>| values.filter(|values| values.len() == files);
            (
                field.data_type(),
                stats(log.null_counts(&column)),
                stats(log.min_values(&column)),
                stats(log.max_values(&column)),
            )
        })
        .collect();
    (0..files)
        .map(|i| Statistics {
            num_rows: rows
                .get(i)
                .copied()
                .flatten()
                .map_or(Precision::Absent, Precision::Exact),
            total_byte_size: Precision::Absent,
            column_statistics: columns
                .iter()
                .map(|(data_type, nulls, min, max)| {
                    let mut stats = ColumnStatistics::new_unknown();
                    if let Some(nulls) = nulls
                        .as_ref()
                        .and_then(|n| value_at(n, i, &DataType::UInt64))
                        && let ScalarValue::UInt64(Some(n)) = nulls
                    {
                        stats.null_count = Precision::Exact(n as usize);
                    }
                    stats.min_value = bound(min.as_ref(), i, data_type);
                    stats.max_value = bound(max.as_ref(), i, data_type);
                    stats
                })
                .collect(),
        })
        .collect()
}

/// One file's recorded value as the column's type; `None` when missing.
fn value_at(values: &ArrayRef, index: usize, data_type: &DataType) -> Option<ScalarValue> {
    let value = ScalarValue::try_from_array(values, index).ok()?;
    if value.is_null() {
        return None;
    }
    value.cast_to(data_type).ok()
}

/// A minimum or maximum from the log. Delta truncates long strings and
/// rounds timestamps to milliseconds, so only integers and dates are exact;
/// the rest are bounds for pruning and estimates, never answers.
fn bound(values: Option<&ArrayRef>, index: usize, data_type: &DataType) -> Precision<ScalarValue> {
    match values.and_then(|values| value_at(values, index, data_type)) {
        None => Precision::Absent,
        Some(value) if data_type.is_integer() || matches!(data_type, DataType::Date32) => {
            Precision::Exact(value)
        }
        Some(value) => Precision::Inexact(value),
    }
}

#[async_trait]
impl TableProvider for ParquetDataset {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Filters are not taken here: the planner's filter pushdown hands them to
    /// the Parquet source, which prunes with them and decodes with them only
    /// when `datafusion.execution.parquet.pushdown_filters` is on.
    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        if self.files.is_empty() {
            let schema = datafusion::common::project_schema(&self.schema, projection)?;
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let target = state.config().target_partitions();
        let mut groups = FileGroup::new(self.files.clone()).split_files(target);
        if groups.len() < target {
            // Fewer files than partitions: split them into byte ranges (whole
            // row groups each), so even a bare scan reads on every core.
            let partitioner = FileGroupPartitioner::new()
                .with_target_partitions(target)
                .with_repartition_file_min_size(
                    state.config_options().optimizer.repartition_file_min_size,
                )
                .with_preserve_order_within_groups(false);
            groups = partitioner
                .repartition_file_groups(&groups)
                .unwrap_or(groups);
        }
        let groups: Vec<FileGroup> = groups
            .into_iter()
            .map(|group| {
                let statistics = Statistics::try_merge_iter(
                    group.iter().filter_map(|file| file.statistics.as_deref()),
                    &self.schema,
                )?;
                // A byte range holds part of its file's rows.
                let statistics = if group.iter().any(|file| file.range.is_some()) {
                    statistics.to_inexact()
                } else {
                    statistics
                };
                Ok(group.with_statistics(Arc::new(statistics)))
            })
            .collect::<datafusion::error::Result<_>>()?;
        let source = Arc::new(ParquetSource::new(self.schema.clone()));
        let config = FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), source)
            .with_file_groups(groups)
            .with_statistics(self.statistics.clone())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        let mut options = state.table_options().parquet.clone();
        options.global.schema_force_view_types = self.view_types;
        ParquetFormat::default()
            .with_options(options)
            .create_physical_plan(state, config)
            .await
    }

    fn statistics(&self) -> Option<Statistics> {
        Some(self.statistics.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};
    use deltalake_core::kernel::DataType as DeltaType;
    use deltalake_core::operations::create::CreateBuilder;
    use deltalake_core::{DeltaTableBuilder, TableProperty};

    /// A new, empty table in `dir` with an `id` and a `p` column.
    async fn created(
        dir: &std::path::Path,
        configure: impl FnOnce(CreateBuilder) -> CreateBuilder,
    ) -> DeltaTable {
        let url = url::Url::from_directory_path(dir).unwrap();
        let table = DeltaTableBuilder::from_url(url).unwrap().build().unwrap();
        let create = table
            .create()
            .with_column("id", DeltaType::LONG, true, None)
            .with_column("p", DeltaType::STRING, true, None);
        configure(create).await.unwrap()
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("p", DataType::Utf8View, true),
        ]))
    }

    #[tokio::test]
    async fn only_plain_tables_skip_delta_scan() {
        let dir = tempfile::tempdir().unwrap();
        let plain = created(&dir.path().join("plain"), |create| create).await;
        let provider: Arc<dyn TableProvider> =
            Arc::new(ParquetDataset::try_new(&plain, schema()).unwrap().unwrap());
        // Whole reads decode strings as the plain type they leave in.
        let whole = with_plain_strings(&provider).unwrap();
        assert_eq!(whole.schema().field(1).data_type(), &DataType::Utf8);

        let partitioned = created(&dir.path().join("partitioned"), |create| {
            create.with_partition_columns(["p"])
        })
        .await;
        assert!(
            ParquetDataset::try_new(&partitioned, schema())
                .unwrap()
                .is_none()
        );

        let deletion_vectors = created(&dir.path().join("dv"), |create| {
            create.with_configuration_property(TableProperty::EnableDeletionVectors, Some("true"))
        })
        .await;
        assert!(
            ParquetDataset::try_new(&deletion_vectors, schema())
                .unwrap()
                .is_none()
        );
    }
}
