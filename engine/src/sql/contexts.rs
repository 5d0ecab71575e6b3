//! The one [`SessionFactory`]: it owns the shared `RuntimeEnv` (memory pool,
//! object stores) and hands every query a fresh `SessionContext` in which each
//! live dataset is a table, as `name` and as `basin.public.name`. Each
//! context keeps a [`ReadLog`] of the datasets and views its plans resolved,
//! which the result cache keys answers by.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use deltalake_core::delta_datafusion::planner::DeltaPlanner;

use crate::catalog::{CatalogStore, DatasetRecord};
use crate::datasets::acceleration::{Acceleration, DatasetVersion};
use crate::datasets::open_table;
use crate::identity::Principal;
use basin_sql::{CATALOG_NAME, SCHEMA_NAME};

use crate::{Error, Result};

/// Creates query contexts that share one runtime environment.
#[derive(Debug, Clone)]
pub struct SessionFactory {
    runtime: Arc<RuntimeEnv>,
    catalog: Arc<dyn CatalogStore>,
    target_partitions: usize,
    providers: Arc<ProviderCache>,
    acceleration: Option<Acceleration>,
}

/// What bounds the queries of a [`SessionFactory`].
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// What all running queries (and accelerated datasets) may hold; unbounded when `None`.
    pub memory_limit: Option<usize>,
    /// Partitions a query's scans and joins are split into.
    pub target_partitions: usize,
    /// Bytes of decoded dataset versions kept in memory; zero turns acceleration off.
    pub acceleration_bytes: u64,
}

/// Most datasets whose opened tables are kept.
const CACHED_PROVIDERS: u64 = 256;

/// Opened Delta tables by dataset id and catalog version. Opening replays the
/// Delta log, which costs more than planning a short query; every Basin write
/// records a new version in the catalog, so an entry is reused only while the
/// version it was opened at is still current.
///
/// Eviction: at most [`CACHED_PROVIDERS`] datasets, picked by moka's TinyLFU
/// policy; a miss costs one log replay.
#[derive(Debug)]
struct ProviderCache {
    entries: moka::sync::Cache<String, CachedProvider>,
}

/// A dataset's table as opened at a catalog version.
type CachedProvider = (i64, Arc<dyn TableProvider>);

impl Default for ProviderCache {
    fn default() -> Self {
        Self {
            entries: moka::sync::Cache::new(CACHED_PROVIDERS),
        }
    }
}

impl ProviderCache {
    fn get(&self, id: &str, version: i64) -> Option<Arc<dyn TableProvider>> {
        self.entries
            .get(id)
            .filter(|(cached, _)| *cached == version)
            .map(|(_, provider)| provider)
    }

    fn put(&self, id: &str, version: i64, provider: Arc<dyn TableProvider>) {
        self.entries.insert(id.to_owned(), (version, provider));
    }
}

impl SessionFactory {
    /// Builds the shared runtime within `limits`; accelerated datasets load on `cpu`.
    pub fn new(
        catalog: Arc<dyn CatalogStore>,
        limits: SessionLimits,
        cpu: tokio::runtime::Handle,
    ) -> Result<Self> {
        let mut builder = RuntimeEnvBuilder::new();
        if let Some(limit) = limits.memory_limit {
            builder = builder.with_memory_limit(limit, 1.0);
        }
        let runtime = builder
            .build_arc()
            .map_err(|e| Error::internal("runtime env", e))?;
        let acceleration =
            Acceleration::new(limits.acceleration_bytes, runtime.memory_pool.clone(), cpu);
        Ok(Self {
            runtime,
            catalog,
            target_partitions: limits.target_partitions.max(1),
            providers: Arc::default(),
            acceleration,
        })
    }

    fn config(&self) -> SessionConfig {
        let mut config = SessionConfig::new();
        // Spans let plan errors (unknown column, table) point at line and column.
        config.options_mut().sql_parser.collect_spans = true;
        config
            .with_target_partitions(self.target_partitions)
            .with_information_schema(true)
            .with_default_catalog_and_schema(CATALOG_NAME, SCHEMA_NAME)
            .with_create_default_catalog_and_schema(false)
    }

    /// Every state gets the shared runtime and Delta's planner, which plans the
    /// extension nodes of Delta writes (an engine without it cannot commit).
    fn new_context(&self, config: SessionConfig) -> SessionContext {
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .with_runtime_env(self.runtime.clone())
            .with_query_planner(DeltaPlanner::new())
            .build();
        SessionContext::new_with_state(state)
    }

    /// A dataset's table at its catalog version: in memory when accelerated,
    /// otherwise its Delta table (opened once per version).
    pub(crate) async fn dataset_provider(
        &self,
        record: &DatasetRecord,
    ) -> Result<Arc<dyn TableProvider>> {
        let provider = match self.providers.get(&record.id, record.version) {
            Some(provider) => provider,
            None => {
                let table = open_table(&record.location, None).await?;
                let provider = crate::datasets::scan::table_provider(&table).await?;
                self.providers
                    .put(&record.id, record.version, provider.clone());
                provider
            }
        };
        if let Some(acceleration) = &self.acceleration {
            let version = DatasetVersion {
                id: &record.id,
                name: &record.name,
                version: record.version,
                size_bytes: record.size_bytes,
            };
            if let Some(accelerated) =
                acceleration.table(version, &provider, || self.file_context())
            {
                return Ok(accelerated);
            }
        }
        Ok(provider)
    }

    /// The runtime every context shares (memory pool, object stores).
    pub fn runtime(&self) -> Arc<RuntimeEnv> {
        self.runtime.clone()
    }

    /// A context without datasets, for scanning files during ingest.
    pub fn file_context(&self) -> SessionContext {
        self.new_context(SessionConfig::new().with_target_partitions(self.target_partitions))
    }

    /// A context in which every live dataset `principal` may read is a table;
    /// the others do not exist for its queries.
    pub async fn context(&self, principal: &Principal) -> Result<SessionContext> {
        self.context_at_depth(principal, 0, Arc::default()).await
    }

    /// A context for planning a stored view that is `depth` views deep.
    async fn context_at_depth(
        &self,
        principal: &Principal,
        depth: usize,
        reads: Arc<ReadLog>,
    ) -> Result<SessionContext> {
        let mut names = self.catalog.live_dataset_names().await?;
        names.retain(|name| principal.can_see_dataset(name));
        // Views read datasets, so a key limited to datasets sees none of them.
        let views = if principal.dataset_limit().is_none() {
            self.catalog.views().await?.into_iter().collect()
        } else {
            std::collections::HashMap::new()
        };
        let ctx = self.new_context(self.config());
        let catalog = MemoryCatalogProvider::new();
        catalog
            .register_schema(
                SCHEMA_NAME,
                Arc::new(DatasetSchema {
                    names,
                    views,
                    overlay: std::sync::RwLock::default(),
                    catalog: self.catalog.clone(),
                    factory: self.clone(),
                    principal: principal.clone(),
                    depth,
                    reads,
                }),
            )
            .map_err(|e| Error::internal("session", e))?;
        ctx.register_catalog(CATALOG_NAME, Arc::new(catalog));
        Ok(ctx)
    }
}

/// How deep stored views may nest; deeper is taken for a cycle between views.
const MAX_VIEW_DEPTH: usize = 16;

/// `basin.public`: resolves dataset names to Delta tables, and stored view
/// names to their plans, when a query names them. Tables registered on the
/// context (a pipeline's steps while it is validated or run) shadow both.
#[derive(Debug)]
struct DatasetSchema {
    names: Vec<String>,
    views: std::collections::HashMap<String, String>,
    overlay: std::sync::RwLock<std::collections::HashMap<String, Arc<dyn TableProvider>>>,
    catalog: Arc<dyn CatalogStore>,
    factory: SessionFactory,
    principal: Principal,
    depth: usize,
    /// Shared with the contexts of the views this one's plans read.
    reads: Arc<ReadLog>,
}

/// What the plans of one query context resolved in `basin.public`, views'
/// plans included: the facts an answer stays true for.
#[derive(Debug, Default)]
pub(crate) struct ReadLog {
    reads: Mutex<Reads>,
}

/// The datasets and views a query read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Reads {
    /// Dataset name → (id, catalog version) as resolved.
    pub(crate) datasets: BTreeMap<String, (String, i64)>,
    /// View name → its SQL as resolved.
    pub(crate) views: BTreeMap<String, String>,
    /// A view read something whose answer may change without a dataset
    /// version changing (a connection, `now()`, the information schema).
    pub(crate) unstable: bool,
}

impl ReadLog {
    fn update(&self, change: impl FnOnce(&mut Reads)) {
        if let Ok(mut reads) = self.reads.lock() {
            change(&mut reads);
        }
    }

    /// What has been resolved so far.
    pub(crate) fn snapshot(&self) -> Reads {
        self.reads
            .lock()
            .map(|reads| reads.clone())
            .unwrap_or_else(|_| Reads {
                unstable: true,
                ..Reads::default()
            })
    }
}

/// The read log of a context made by [`SessionFactory::context`].
pub(crate) fn reads_of(ctx: &SessionContext) -> Option<Reads> {
    let schema = ctx.catalog(CATALOG_NAME)?.schema(SCHEMA_NAME)?;
    let datasets = schema.downcast_ref::<DatasetSchema>()?;
    Some(datasets.reads.snapshot())
}

impl DatasetSchema {
    fn overlaid(&self, name: &str) -> Option<Arc<dyn TableProvider>> {
        self.overlay.read().ok()?.get(name).cloned()
    }

    /// Plans a stored view in a context of its own (so that it sees what its
    /// reader may see, and nothing the reader registered).
    async fn view(&self, name: &str, sql: &str) -> Result<Arc<dyn TableProvider>, DataFusionError> {
        if self.depth >= MAX_VIEW_DEPTH {
            return Err(DataFusionError::Plan(format!(
                "view `{name}` nests more than {MAX_VIEW_DEPTH} views deep: do views read each other in a cycle?"
            )));
        }
        let ctx = Box::pin(self.factory.context_at_depth(
            &self.principal,
            self.depth + 1,
            self.reads.clone(),
        ))
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let plan = ctx.state().create_logical_plan(sql).await?;
        self.reads.update(|reads| {
            reads.views.insert(name.to_owned(), sql.to_owned());
            if !crate::sql::results::answer_is_stable(&plan, reads) {
                reads.unstable = true;
            }
        });
        Ok(Arc::new(datafusion::catalog::view::ViewTable::new(
            plan,
            Some(sql.to_owned()),
        )))
    }
}

#[async_trait]
impl SchemaProvider for DatasetSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.names.clone();
        names.extend(self.views.keys().cloned());
        if let Ok(overlay) = self.overlay.read() {
            names.extend(overlay.keys().cloned());
        }
        names.sort();
        names.dedup();
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        if let Some(table) = self.overlaid(name) {
            return Ok(Some(table));
        }
        if !self.names.iter().any(|n| n == name) {
            return match self.views.get(name) {
                Some(sql) => self.view(name, sql).await.map(Some),
                None => Ok(None),
            };
        }
        let record = self
            .catalog
            .dataset_by_name(name)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let Some(record) = record else {
            return Ok(None);
        };
        self.reads.update(|reads| {
            reads
                .datasets
                .insert(name.to_owned(), (record.id.clone(), record.version));
        });
        self.factory
            .dataset_provider(&record)
            .await
            .map(Some)
            .map_err(|e| DataFusionError::External(Box::new(e)))
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let mut overlay = self
            .overlay
            .write()
            .map_err(|_| DataFusionError::Internal("session overlay lock".into()))?;
        Ok(overlay.insert(name, table))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
            || self.views.contains_key(name)
            || self.overlaid(name).is_some()
    }
}
