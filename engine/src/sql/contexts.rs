//! The one [`SessionFactory`]: it owns the shared `RuntimeEnv` (memory pool,
//! object stores) and hands every query a fresh `SessionContext` in which each
//! live dataset is a table, as `name` and as `basin.public.name`.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use deltalake_core::delta_datafusion::planner::DeltaPlanner;

use crate::catalog::CatalogStore;
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
    /// Builds the shared runtime; `memory_limit` caps what all running queries may hold.
    pub fn new(
        catalog: Arc<dyn CatalogStore>,
        memory_limit: Option<usize>,
        target_partitions: usize,
    ) -> Result<Self> {
        let mut builder = RuntimeEnvBuilder::new();
        if let Some(limit) = memory_limit {
            builder = builder.with_memory_limit(limit, 1.0);
        }
        let runtime = builder
            .build_arc()
            .map_err(|e| Error::internal("runtime env", e))?;
        Ok(Self {
            runtime,
            catalog,
            target_partitions: target_partitions.max(1),
            providers: Arc::default(),
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
        self.context_at_depth(principal, 0).await
    }

    /// A context for planning a stored view that is `depth` views deep.
    async fn context_at_depth(
        &self,
        principal: &Principal,
        depth: usize,
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
                    providers: self.providers.clone(),
                    factory: self.clone(),
                    principal: principal.clone(),
                    depth,
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
    providers: Arc<ProviderCache>,
    factory: SessionFactory,
    principal: Principal,
    depth: usize,
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
        let ctx = Box::pin(
            self.factory
                .context_at_depth(&self.principal, self.depth + 1),
        )
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let plan = ctx.state().create_logical_plan(sql).await?;
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
        if let Some(provider) = self.providers.get(&record.id, record.version) {
            return Ok(Some(provider));
        }
        let table = open_table(&record.location, None)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let provider = table
            .table_provider()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        self.providers
            .put(&record.id, record.version, provider.clone());
        Ok(Some(provider))
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
