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

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{MemTable, Session, TableProvider};
use datafusion::error::Result as DataFusionResult;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, MemoryReservation};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
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
    table: MemTable,
    bytes: usize,
    _reservation: MemoryReservation,
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
        Ok(Some(Accelerated {
            version,
            table: MemTable::try_new(schema, partitions)?,
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
        self.accelerated.table.schema()
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
        self.accelerated
            .table
            .scan(state, projection, filters, limit)
            .await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DataFusionResult<Vec<TableProviderFilterPushDown>> {
        self.accelerated.table.supports_filters_pushdown(filters)
    }
}
