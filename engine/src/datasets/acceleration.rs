//! Dataset acceleration: the decoded Arrow batches of hot dataset versions,
//! kept in memory so that queries over them skip Parquet decoding.
//!
//! Automatic by use: a dataset version read [`READS_BEFORE_LOADING`] times
//! (by planning a query over it) is loaded in the background on the CPU
//! runtime, and from then on its queries scan memory. An entry belongs to one
//! catalog version: a write records a new version, and the next query plans
//! over the Delta table again (the stale entry is dropped at once), so an
//! accelerated answer is never older than an unaccelerated one would be.
//!
//! Zone maps: each batch's minimum, maximum and null count per column are
//! taken while loading, so a filtered scan skips the batches its filters rule
//! out (DataFusion's `PruningPredicate`, as row-group statistics prune a
//! file); a point lookup reads a batch or two, not the whole table.
//!
//! Memory: the whole budget (`query.acceleration`) is a moka cache weighing
//! each entry by its batches' Arrow memory (TinyLFU admission, LRU eviction),
//! and each entry also holds a reservation in the query memory pool, so that
//! with `query.memory_limit` set queries and accelerated tables share one
//! bound. A version larger than the budget, or than the pool can grant, is not
//! kept. `EXPLAIN` shows an accelerated scan as a memory scan
//! (`DataSourceExec: partitions=…, partition_sizes=[…]`) where a Delta scan
//! would read Parquet files; `/metrics` counts `basin_acceleration_hits_total`,
//! `basin_acceleration_misses_total`, `basin_acceleration_loads_total` and
//! gauges `basin_acceleration_bytes`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, UInt64Array};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result as DataFusionResult;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, MemoryReservation};
use datafusion::functions_aggregate::min_max::{MaxAccumulator, MinAccumulator};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Accumulator, Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

/// Reads of one version before it is loaded: the first read may be the only one.
pub const READS_BEFORE_LOADING: u32 = 2;

/// Datasets whose reads are counted toward loading.
const COUNTED_DATASETS: u64 = 4096;

/// Accelerated dataset versions; cheap to clone (shared inside).
#[derive(Debug, Clone)]
pub struct Acceleration {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// By dataset id.
    tables: moka::sync::Cache<String, Arc<Accelerated>>,
    /// Dataset id → (catalog version, reads of it).
    reads: moka::sync::Cache<String, (i64, u32)>,
    /// Dataset ids being loaded.
    loading: Mutex<HashSet<String>>,
    budget: u64,
    pool: Arc<dyn MemoryPool>,
    cpu: tokio::runtime::Handle,
}

/// One dataset version in memory, and what it holds of the memory pool.
#[derive(Debug)]
struct Accelerated {
    version: i64,
    schema: SchemaRef,
    partitions: Vec<Vec<RecordBatch>>,
    zones: ZoneMaps,
    bytes: usize,
    _reservation: MemoryReservation,
}

/// Per column, one minimum, maximum and null count per batch (batches in
/// partition order); `None` for a column whose type has no minimum.
#[derive(Debug)]
struct ZoneMaps {
    schema: SchemaRef,
    mins: Vec<Option<ArrayRef>>,
    maxs: Vec<Option<ArrayRef>>,
    nulls: Vec<ArrayRef>,
    rows: ArrayRef,
}

impl ZoneMaps {
    fn of(schema: &SchemaRef, partitions: &[Vec<RecordBatch>]) -> DataFusionResult<Self> {
        let batches: Vec<&RecordBatch> = partitions.iter().flatten().collect();
        let columns = schema.fields().len();
        let (mut mins, mut maxs, mut nulls) = (Vec::new(), Vec::new(), Vec::new());
        for (index, field) in schema.fields().iter().enumerate() {
            let mut low = Vec::with_capacity(batches.len());
            let mut high = Vec::with_capacity(batches.len());
            let mut ordered = true;
            for batch in &batches {
                let column = batch.column(index);
                match (
                    extreme(MinAccumulator::try_new(field.data_type()), column),
                    extreme(MaxAccumulator::try_new(field.data_type()), column),
                ) {
                    (Some(min), Some(max)) => {
                        low.push(min);
                        high.push(max);
                    }
                    _ => {
                        ordered = false;
                        break;
                    }
                }
            }
            let as_array = |values: Vec<ScalarValue>| {
                (ordered && !values.is_empty())
                    .then(|| ScalarValue::iter_to_array(values).ok())
                    .flatten()
            };
            mins.push(as_array(low));
            maxs.push(as_array(high));
            nulls.push(Arc::new(UInt64Array::from_iter_values(
                batches.iter().map(|b| b.column(index).null_count() as u64),
            )) as ArrayRef);
        }
        debug_assert_eq!(nulls.len(), columns);
        Ok(Self {
            schema: schema.clone(),
            mins,
            maxs,
            nulls,
            rows: Arc::new(UInt64Array::from_iter_values(
                batches.iter().map(|b| b.num_rows() as u64),
            )),
        })
    }

    /// Which batches `filters` may match; `None` when they rule out none.
    fn kept(&self, state: &dyn Session, filters: &[Expr]) -> Option<Vec<bool>> {
        let predicate = conjunction(filters.iter().cloned())?;
        let schema = DFSchema::try_from(self.schema.as_ref().clone()).ok()?;
        let physical = state.create_physical_expr(predicate, &schema).ok()?;
        // `None` for a filter the zone maps cannot judge: every batch is kept.
        let pruning = PruningPredicateBuilder::new()
            .with_file_schema(self.schema.clone())
            .build(physical)?;
        pruning.prune(self).ok()
    }

    fn column(&self, column: &Column) -> Option<usize> {
        self.schema.index_of(&column.name).ok()
    }
}

/// A batch's minimum or maximum of one column; `None` when its type has none.
fn extreme<A: Accumulator>(
    accumulator: DataFusionResult<A>,
    column: &ArrayRef,
) -> Option<ScalarValue> {
    let mut accumulator = accumulator.ok()?;
    accumulator
        .update_batch(std::slice::from_ref(column))
        .ok()?;
    accumulator.evaluate().ok()
}

impl PruningStatistics for ZoneMaps {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.mins.get(self.column(column)?)?.clone()
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.maxs.get(self.column(column)?)?.clone()
    }

    fn num_containers(&self) -> usize {
        self.rows.len()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        self.nulls.get(self.column(column)?).cloned()
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        Some(self.rows.clone())
    }

    // The trait's signature: a set of literals, looked up, never mutated.
    #[allow(clippy::mutable_key_type)]
    fn contained(&self, _column: &Column, _values: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}

/// A dataset version as its queries read it: from memory.
#[derive(Debug)]
struct AcceleratedTable {
    accelerated: Arc<Accelerated>,
}

/// A dataset version to look up or load.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DatasetVersion<'a> {
    pub(crate) id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) version: i64,
    /// Bytes of its Parquet files: a lower bound of its decoded size.
    pub(crate) size_bytes: i64,
}

impl Acceleration {
    /// Acceleration within `budget` bytes, loading on `cpu`; zero turns it off.
    pub fn new(
        budget: u64,
        pool: Arc<dyn MemoryPool>,
        cpu: tokio::runtime::Handle,
    ) -> Option<Self> {
        (budget > 0).then(|| Self {
            inner: Arc::new(Inner {
                tables: moka::sync::Cache::builder()
                    .max_capacity(budget)
                    .weigher(|_, table: &Arc<Accelerated>| {
                        u32::try_from(table.bytes).unwrap_or(u32::MAX)
                    })
                    .build(),
                reads: moka::sync::Cache::new(COUNTED_DATASETS),
                loading: Mutex::default(),
                budget,
                pool,
                cpu,
            }),
        })
    }

    /// The in-memory table of `dataset` when it is accelerated; otherwise
    /// counts the read, and starts loading `delta` (the version's Delta
    /// provider, read in a context from `loader`) once the version is hot.
    pub(crate) fn table(
        &self,
        dataset: DatasetVersion<'_>,
        delta: &Arc<dyn TableProvider>,
        loader: impl FnOnce() -> SessionContext,
    ) -> Option<Arc<dyn TableProvider>> {
        let inner = &self.inner;
        match inner.tables.get(dataset.id) {
            Some(accelerated) if accelerated.version == dataset.version => {
                metrics::counter!("basin_acceleration_hits_total").increment(1);
                return Some(Arc::new(AcceleratedTable { accelerated }));
            }
            Some(_) => {
                // A newer version exists: the old one will never be read again.
                inner.tables.invalidate(dataset.id);
                self.publish_bytes();
            }
            None => {}
        }
        metrics::counter!("basin_acceleration_misses_total").increment(1);
        let reads = match inner.reads.get(dataset.id) {
            Some((version, reads)) if version == dataset.version => reads + 1,
            _ => 1,
        };
        inner
            .reads
            .insert(dataset.id.to_owned(), (dataset.version, reads));
        let fits = u64::try_from(dataset.size_bytes).is_ok_and(|size| size <= inner.budget);
        if reads >= READS_BEFORE_LOADING && fits && self.start_loading(dataset.id) {
            let this = self.clone();
            let (id, name, version) = (
                dataset.id.to_owned(),
                dataset.name.to_owned(),
                dataset.version,
            );
            let delta = Arc::clone(delta);
            let ctx = loader();
            inner.cpu.spawn(async move {
                match this.load(&name, version, delta, ctx).await {
                    Ok(Some(accelerated)) => {
                        metrics::counter!("basin_acceleration_loads_total").increment(1);
                        tracing::debug!(dataset = %name, version, bytes = accelerated.bytes, "dataset accelerated");
                        this.inner.tables.insert(id.clone(), Arc::new(accelerated));
                        this.publish_bytes();
                    }
                    Ok(None) => {
                        tracing::debug!(dataset = %name, version, "dataset too large to accelerate");
                    }
                    Err(e) => {
                        tracing::warn!(dataset = %name, version, error = %e, "accelerating a dataset failed");
                    }
                }
                this.finish_loading(&id);
            });
        }
        None
    }

    /// Marks `id` as loading; false when it already is.
    fn start_loading(&self, id: &str) -> bool {
        self.inner
            .loading
            .lock()
            .map(|mut loading| loading.insert(id.to_owned()))
            .unwrap_or(false)
    }

    fn finish_loading(&self, id: &str) {
        if let Ok(mut loading) = self.inner.loading.lock() {
            loading.remove(id);
        }
    }

    /// Decodes a whole version into memory; `None` when it does not fit.
    async fn load(
        &self,
        name: &str,
        version: i64,
        delta: Arc<dyn TableProvider>,
        ctx: SessionContext,
    ) -> DataFusionResult<Option<Accelerated>> {
        // The physical plan's schema is the batches' (view types included).
        let plan = ctx.read_table(delta)?.create_physical_plan().await?;
        let schema: SchemaRef = plan.schema();
        let partitions =
            datafusion::physical_plan::collect_partitioned(plan, ctx.task_ctx()).await?;
        let bytes: usize = partitions
            .iter()
            .flatten()
            .map(|batch| batch.get_array_memory_size())
            .sum();
        let too_large = u64::try_from(bytes).map_or(true, |b| b > self.inner.budget);
        if too_large || bytes > u32::MAX as usize {
            return Ok(None);
        }
        let reservation =
            MemoryConsumer::new(format!("acceleration of {name}")).register(&self.inner.pool);
        if reservation.try_grow(bytes).is_err() {
            return Ok(None);
        }
        let zones = ZoneMaps::of(&schema, &partitions)?;
        Ok(Some(Accelerated {
            version,
            schema,
            partitions,
            zones,
            bytes,
            _reservation: reservation,
        }))
    }

    fn publish_bytes(&self) {
        self.inner.tables.run_pending_tasks();
        metrics::gauge!("basin_acceleration_bytes").set(self.inner.tables.weighted_size() as f64);
    }
}

#[async_trait]
impl TableProvider for AcceleratedTable {
    fn schema(&self) -> SchemaRef {
        self.accelerated.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DataFusionResult<Arc<dyn ExecutionPlan>> {
        let accelerated = &self.accelerated;
        let partitions = match accelerated.zones.kept(state, filters) {
            Some(kept) => {
                let mut kept = kept.into_iter();
                accelerated
                    .partitions
                    .iter()
                    .map(|batches| {
                        batches
                            .iter()
                            .filter(|_| kept.next().unwrap_or(true))
                            .cloned()
                            .collect()
                    })
                    .collect()
            }
            None => accelerated.partitions.clone(),
        };
        let source = MemorySourceConfig::try_new(
            &partitions,
            accelerated.schema.clone(),
            projection.cloned(),
        )?
        .with_limit(limit);
        Ok(DataSourceExec::from_data_source(source))
    }

    /// Filters only skip batches: the rows of a kept batch are filtered above the scan.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DataFusionResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }
}
