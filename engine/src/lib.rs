//! Basin's domain core.
//!
//! The [`Engine`] ties together the catalog store (SQLite today), the one
//! [`SessionFactory`](sql::contexts::SessionFactory) every query gets its context
//! from, datasets stored as Delta tables, ingest, ad-hoc SQL, connections to
//! sources (live queries and syncs), schema history and background jobs. It knows nothing of HTTP or gRPC: transports call its methods and map
//! its [`Error`] to their own status codes.
//!
//! On disk, under the data directory:
//! - `catalog.db`: the catalog (SQLite, WAL): datasets, jobs, users,
//!   sessions, API keys, the audit log, sealed secrets, connections, schema
//!   history and sync state;
//! - `secret.key`: the data key secrets are sealed with (unless configured);
//! - `datasets/<id>/`: one Delta table per dataset;
//! - `tmp/`: spooled uploads, removed after use and on start.

pub mod analytics;
pub mod datasets;
pub mod error;
pub mod identity;
pub mod ingest;
pub mod pipelines;
pub mod runtime;
pub mod sources;
pub mod sql;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use basin_catalog as catalog;
pub use error::{Error, Result};

use basin_connectors::http::UrlAllowlist;
use catalog::{CatalogStore, SqliteCatalog};
use identity::AuthSettings;
use identity::secrets::{DataKey, KeySource};
use identity::throttle::{LoginThrottle, RateLimits};
use runtime::executor::Executor;
use runtime::jobs::JobRegistry;
use sql::contexts::SessionFactory;

/// What the engine needs to start. The server builds it from its `Config`.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where the catalog and datasets live; created if missing.
    pub data_dir: PathBuf,
    /// Directories server-side imports may read from; empty refuses all.
    pub allowed_roots: Vec<PathBuf>,
    /// URL prefixes imports may download from; empty refuses all.
    pub allowed_urls: Vec<String>,
    /// Memory all running queries together may hold; unbounded when `None`.
    pub memory_limit: Option<usize>,
    /// Default deadline of a query.
    pub query_timeout: Duration,
    /// Largest decompressed input an ingest accepts.
    pub max_ingest_bytes: u64,
    /// Worker threads of the CPU runtime.
    pub cpu_threads: usize,
    /// Whether opening recovers from a previous process (fails its unfinished
    /// jobs, removes orphan tables and temporary files). Only the process that
    /// serves the directory may do this; one-shot CLI commands do not.
    pub recover: bool,
    /// Users, sessions, keys, rate limits.
    pub auth: AuthSettings,
    /// Where the data key that seals secrets comes from.
    pub secrets_key: KeySource,
    /// Most steps of one pipeline run at once, unless the pipeline says.
    pub pipeline_parallelism: usize,
    /// How long events are kept for clients catching up.
    pub event_retention: Duration,
    /// Bytes of query answers the result cache may hold; zero turns it off.
    pub result_cache_bytes: u64,
    /// Bytes of decoded dataset versions kept in memory; zero turns acceleration off.
    pub acceleration_bytes: u64,
}

impl EngineConfig {
    /// Defaults for a data directory: no import roots, no memory limit, 5 minute queries.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            data_dir: data_dir.into(),
            allowed_roots: Vec::new(),
            allowed_urls: Vec::new(),
            memory_limit: None,
            query_timeout: Duration::from_secs(300),
            max_ingest_bytes: 64 * 1024 * 1024 * 1024,
            cpu_threads: cores,
            recover: true,
            auth: AuthSettings::default(),
            secrets_key: KeySource::File,
            pipeline_parallelism: 4,
            event_retention: Duration::from_secs(7 * 24 * 3600),
            result_cache_bytes: DEFAULT_RESULT_CACHE_BYTES,
            acceleration_bytes: 0,
        }
    }
}

/// The result cache's budget unless configured: room for many dashboard
/// answers, little next to a query's working memory.
pub const DEFAULT_RESULT_CACHE_BYTES: u64 = 64 << 20;

/// Profiles that compute at once: each holds its sketches and row hashes in
/// memory and keeps the CPU runtime busy on its own.
const PROFILES_AT_ONCE: usize = 2;

/// The engine; cheap to clone (one shared inside).
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: EngineConfig,
    catalog: Arc<dyn CatalogStore>,
    sessions: SessionFactory,
    executor: Executor,
    jobs: JobRegistry,
    auth: AuthState,
    events: runtime::events::EventBus,
    url_allowlist: UrlAllowlist,
    data_key: std::sync::RwLock<DataKey>,
    audit_key: Vec<u8>,
    first_admin_password: std::sync::Mutex<Option<String>>,
    /// Held for the engine's life when it serves the directory.
    dir_lock: Option<std::fs::File>,
    /// The connector types offered.
    connectors: basin_connectors::Registry,
    /// Opened sources of connections.
    sources: sources::connections::SourceCache,
    /// The IO runtime, where database connections live.
    io: tokio::runtime::Handle,
    /// Stops background tasks (the scheduler) at shutdown.
    background: tokio_util::sync::CancellationToken,
    /// Query answers by the versions of the datasets they read; `None` when off.
    result_cache: Option<sql::results::ResultCache>,
    /// Time-series answers by dataset version.
    timeseries_cache: analytics::series::ResponseCache,
    /// After-write check runs in flight.
    after_write_runs: analytics::quality::AfterWriteRuns,
    /// Profiles computing at once; the rest queue.
    profile_slots: tokio::sync::Semaphore,
    /// Services told of every committed write.
    after_write: Vec<Arc<dyn datasets::write::AfterWrite>>,
}

/// Identity state that lives as long as the process.
#[derive(Debug)]
struct AuthState {
    throttle: LoginThrottle,
    limits: RateLimits,
    revocations: tokio::sync::watch::Sender<u64>,
    /// Held while a change could remove the last admin.
    admin_changes: tokio::sync::Mutex<()>,
    principals: identity::PrincipalCache,
}

impl Engine {
    /// Opens the engine on its data directory: creates the layout, migrates the
    /// catalog, fails jobs a previous process left unfinished and removes
    /// leftovers of interrupted writes.
    pub async fn open(mut config: EngineConfig) -> Result<Self> {
        tokio::fs::create_dir_all(config.data_dir.join("datasets")).await?;
        config.data_dir = tokio::fs::canonicalize(&config.data_dir).await?;
        // The serving process owns the directory: a second one would "recover"
        // (delete) the first one's temporary files and half-written tables.
        let dir_lock = if config.recover {
            Some(lock_data_dir(&config.data_dir)?)
        } else {
            None
        };
        let tmp = config.data_dir.join("tmp");
        if config.recover {
            crate::datasets::remove_dir_if_exists(&tmp).await?;
        }
        tokio::fs::create_dir_all(&tmp).await?;
        let mut roots = Vec::with_capacity(config.allowed_roots.len());
        for root in &config.allowed_roots {
            roots.push(tokio::fs::canonicalize(root).await.map_err(|e| {
                Error::InvalidInput(format!("import root {}: {e}", root.display()))
            })?);
        }
        config.allowed_roots = roots;

        let catalog: Arc<dyn CatalogStore> =
            Arc::new(SqliteCatalog::open(&config.data_dir.join("catalog.db")).await?);
        let recover = config.recover;
        if recover {
            let interrupted = catalog
                .fail_interrupted_jobs("interrupted by a server restart")
                .await?;
            if interrupted > 0 {
                tracing::warn!(
                    jobs = interrupted,
                    "marked jobs of a previous run as failed"
                );
            }
        }
        let target_partitions = config.cpu_threads.max(1);
        let executor = Executor::new(config.cpu_threads)?;
        let sessions = SessionFactory::new(
            catalog.clone(),
            sql::contexts::SessionLimits {
                memory_limit: config.memory_limit,
                target_partitions,
                acceleration_bytes: config.acceleration_bytes,
            },
            executor.handle().clone(),
        )?;
        let data_key = identity::secrets::load_data_key(
            &config.data_dir,
            &config.secrets_key,
            catalog.as_ref(),
        )
        .await?;
        let audit_key = load_or_create_audit_key(catalog.as_ref(), &data_key).await?;
        let auth = AuthState {
            throttle: LoginThrottle::new(
                config.auth.max_failed_logins,
                config.auth.lockout,
                config.auth.login_delay,
            ),
            limits: RateLimits::new(config.auth.rate_per_ip, config.auth.rate_per_principal),
            revocations: tokio::sync::watch::channel(0).0,
            admin_changes: tokio::sync::Mutex::new(()),
            principals: identity::PrincipalCache::default(),
        };
        if recover {
            pipelines::runs::fail_interrupted_runs(catalog.as_ref()).await?;
        }
        let events = runtime::events::EventBus::start(catalog.clone());
        let url_allowlist = UrlAllowlist::new(&config.allowed_urls)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let result_cache = sql::results::ResultCache::new(config.result_cache_bytes);
        let engine = Self {
            inner: Arc::new(Inner {
                config,
                catalog,
                sessions,
                executor,
                jobs: JobRegistry::default(),
                auth,
                events,
                url_allowlist,
                data_key: std::sync::RwLock::new(data_key),
                audit_key,
                first_admin_password: std::sync::Mutex::new(None),
                dir_lock,
                connectors: basin_connectors::Registry::default(),
                sources: sources::connections::SourceCache::default(),
                io: tokio::runtime::Handle::current(),
                background: tokio_util::sync::CancellationToken::new(),
                result_cache,
                timeseries_cache: analytics::series::ResponseCache::default(),
                after_write_runs: analytics::quality::AfterWriteRuns::default(),
                profile_slots: tokio::sync::Semaphore::new(PROFILES_AT_ONCE),
                after_write: vec![Arc::new(analytics::AnalyticsAfterWrite)],
            }),
        };
        if recover {
            engine.remove_orphan_tables().await?;
            let generated = engine.ensure_first_admin().await?;
            *engine
                .inner
                .first_admin_password
                .lock()
                .expect("admin password lock") = generated;
        }
        Ok(engine)
    }

    /// Removes dataset directories no catalog row points at: the leftovers of a
    /// process that died between writing a new table and recording it.
    async fn remove_orphan_tables(&self) -> Result<()> {
        let known: Vec<PathBuf> = self
            .catalog()
            .dataset_locations()
            .await?
            .iter()
            .filter_map(|l| datasets::location_path(l))
            .collect();
        let mut entries = tokio::fs::read_dir(self.data_dir().join("datasets")).await?;
        while let Some(entry) = entries.next_entry().await? {
            let path = entry.path();
            if !known.iter().any(|k| k == &path) {
                tracing::warn!(path = %path.display(), "removing table left by an interrupted write");
                datasets::remove_dir_if_exists(&path).await?;
            }
        }
        Ok(())
    }

    /// Checks that the catalog answers and the data directory is writable.
    pub async fn ready(&self) -> Vec<(&'static str, Result<()>)> {
        let catalog = self.catalog().ping().await.map_err(Error::from);
        let probe = self.tmp_dir().join(".ready");
        let storage = async {
            tokio::fs::write(&probe, b"ok").await?;
            tokio::fs::remove_file(&probe).await?;
            Ok(())
        }
        .await;
        vec![("catalog", catalog), ("storage", storage)]
    }

    /// Cancels running jobs and closes the catalog.
    pub async fn shutdown(&self) {
        self.inner.background.cancel();
        self.jobs().cancel_all();
        // Canceled jobs record their outcome before the catalog closes (bounded wait).
        self.jobs().wait_for_all(Duration::from_secs(5)).await;
        self.flush_events().await;
        self.catalog().close().await;
    }

    pub(crate) fn background_token(&self) -> tokio_util::sync::CancellationToken {
        self.inner.background.clone()
    }

    /// The configuration the engine runs with (paths resolved).
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The data directory (absolute).
    pub fn data_dir(&self) -> &Path {
        &self.inner.config.data_dir
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.data_dir().join("tmp")
    }

    /// The catalog store.
    pub fn catalog(&self) -> &Arc<dyn CatalogStore> {
        &self.inner.catalog
    }

    /// The session factory.
    pub fn sessions(&self) -> &SessionFactory {
        &self.inner.sessions
    }

    /// A query context for `principal`: the datasets it may read, and every
    /// connection as a catalog when it may read beyond datasets.
    pub async fn query_context(
        &self,
        principal: &identity::Principal,
    ) -> Result<datafusion::prelude::SessionContext> {
        let ctx = self.sessions().context(principal).await?;
        self.register_connections(principal, &ctx).await?;
        Ok(ctx)
    }

    /// The CPU runtime.
    pub fn executor(&self) -> &Executor {
        &self.inner.executor
    }

    pub(crate) fn result_cache(&self) -> Option<&sql::results::ResultCache> {
        self.inner.result_cache.as_ref()
    }

    pub(crate) fn inner_timeseries_cache(&self) -> &analytics::series::ResponseCache {
        &self.inner.timeseries_cache
    }

    pub(crate) fn after_write_runs(&self) -> &analytics::quality::AfterWriteRuns {
        &self.inner.after_write_runs
    }

    pub(crate) fn after_write_observers(&self) -> &[Arc<dyn datasets::write::AfterWrite>] {
        &self.inner.after_write
    }

    pub(crate) fn profile_slots(&self) -> &tokio::sync::Semaphore {
        &self.inner.profile_slots
    }

    pub(crate) fn jobs(&self) -> &JobRegistry {
        &self.inner.jobs
    }

    pub(crate) fn url_allowlist(&self) -> &UrlAllowlist {
        &self.inner.url_allowlist
    }

    /// The first admin's password when this start generated it; returned
    /// once, for the server to show once.
    pub fn take_first_admin_password(&self) -> Option<String> {
        self.inner
            .first_admin_password
            .lock()
            .expect("admin password lock")
            .take()
    }
}

/// The lock file that marks a data directory as served.
pub const LOCK_FILE: &str = "basin.lock";

/// `FromStr` and `Display` for an option enum by the names its serde form
/// gives its values (`append`, `quarantine`), so the command line and the
/// API accept and print the same words.
macro_rules! option_words {
    ($option:ty) => {
        impl std::str::FromStr for $option {
            type Err = $crate::Error;
            fn from_str(text: &str) -> $crate::Result<Self> {
                use serde::de::IntoDeserializer;
                <Self as serde::Deserialize>::deserialize(text.into_deserializer()).map_err(
                    |e: serde::de::value::Error| $crate::Error::InvalidInput(e.to_string()),
                )
            }
        }

        impl std::fmt::Display for $option {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match serde_json::to_value(self) {
                    Ok(serde_json::Value::String(word)) => f.write_str(&word),
                    _ => Err(std::fmt::Error),
                }
            }
        }
    };
}
pub(crate) use option_words;

/// Takes the data directory's exclusive lock (released by the OS when the
/// process ends, however it ends).
pub(crate) fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File> {
    let path = data_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::InvalidInput(format!(
            "another Basin process is serving {}: stop it first",
            data_dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// The key audit rows are MAC'd with: random, sealed in the catalog under the
/// data key, created on first start.
async fn load_or_create_audit_key(
    catalog: &dyn CatalogStore,
    data_key: &DataKey,
) -> Result<Vec<u8>> {
    let name = identity::audit::AUDIT_KEY_SECRET;
    if let Some(record) = catalog.secret(name).await? {
        if record.key_id != data_key.id() {
            return Err(Error::InvalidInput(format!(
                "the catalog's secrets were sealed under data key {} but the configured key is {}: start with the key they were sealed under",
                record.key_id,
                data_key.id()
            )));
        }
        return data_key.open(name, &record.sealed);
    }
    let key: [u8; 32] = rand::random();
    let now = chrono::Utc::now();
    catalog
        .put_secret(&catalog::SecretRecord {
            name: name.to_owned(),
            key_id: data_key.id().to_owned(),
            sealed: data_key.seal(name, &key)?,
            created_at: now,
            updated_at: now,
        })
        .await?;
    Ok(key.to_vec())
}
