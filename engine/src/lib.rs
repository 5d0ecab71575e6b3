//! Basin's domain core.
//!
//! The [`Engine`] ties together the catalog store (SQLite today), the one
//! [`SessionFactory`](session::SessionFactory) every query gets its context
//! from, datasets stored as Delta tables, ingest, ad-hoc SQL and background
//! jobs. It knows nothing of HTTP or gRPC: transports call its methods and map
//! its [`Error`] to their own status codes.
//!
//! On disk, under the data directory:
//! - `catalog.db`: the catalog (SQLite, WAL);
//! - `datasets/<id>/`: one Delta table per dataset;
//! - `tmp/`: spooled uploads, removed after use and on start.

pub mod auth;
pub mod catalog;
pub mod datasets;
pub mod error;
pub mod executor;
pub mod ident;
pub mod ingest;
pub mod jobs;
pub mod query;
pub mod session;
pub mod statements;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use error::{Error, Result};

use auth::Authenticator;
use basin_connectors::http::UrlAllowlist;
use catalog::{CatalogStore, SqliteCatalog};
use executor::Executor;
use jobs::JobRegistry;
use session::SessionFactory;

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
    /// The access token every caller must present; read from (or generated
    /// into) `<data_dir>/access_token` when `None`.
    pub access_token: Option<String>,
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
            access_token: None,
        }
    }
}

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
    authenticator: Authenticator,
    url_allowlist: UrlAllowlist,
}

impl Engine {
    /// Opens the engine on its data directory: creates the layout, migrates the
    /// catalog, fails jobs a previous process left unfinished and removes
    /// leftovers of interrupted writes.
    pub async fn open(mut config: EngineConfig) -> Result<Self> {
        tokio::fs::create_dir_all(config.data_dir.join("datasets")).await?;
        config.data_dir = tokio::fs::canonicalize(&config.data_dir).await?;
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
        let sessions =
            SessionFactory::new(catalog.clone(), config.memory_limit, target_partitions)?;
        let executor = Executor::new(config.cpu_threads)?;
        let token = match &config.access_token {
            Some(token) => token.clone(),
            None => load_or_create_token(&config.data_dir.join(TOKEN_FILE)).await?,
        };
        let authenticator = Authenticator::new(token)?;
        let url_allowlist = UrlAllowlist::new(&config.allowed_urls)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let engine = Self {
            inner: Arc::new(Inner {
                config,
                catalog,
                sessions,
                executor,
                jobs: JobRegistry::default(),
                authenticator,
                url_allowlist,
            }),
        };
        if recover {
            engine.remove_orphan_tables().await?;
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
    pub async fn ready(&self) -> Result<()> {
        self.catalog().ping().await?;
        let probe = self.tmp_dir().join(".ready");
        tokio::fs::write(&probe, b"ok").await?;
        tokio::fs::remove_file(&probe).await?;
        Ok(())
    }

    /// Cancels running jobs and closes the catalog.
    pub async fn shutdown(&self) {
        self.jobs().cancel_all();
        // Canceled jobs record their outcome before the catalog closes (bounded wait).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !self.jobs().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.catalog().close().await;
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

    /// The CPU runtime.
    pub fn executor(&self) -> &Executor {
        &self.inner.executor
    }

    pub(crate) fn jobs(&self) -> &JobRegistry {
        &self.inner.jobs
    }

    pub(crate) fn url_allowlist(&self) -> &UrlAllowlist {
        &self.inner.url_allowlist
    }

    /// The one credential check every transport uses.
    pub fn authenticator(&self) -> &Authenticator {
        &self.inner.authenticator
    }
}

/// The file under the data directory holding the generated access token.
pub const TOKEN_FILE: &str = "access_token";

/// Reads the generated token, or creates it (readable by the owner only).
async fn load_or_create_token(path: &Path) -> Result<String> {
    match tokio::fs::read_to_string(path).await {
        Ok(token) => return Ok(token.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let token = Authenticator::generate_token();
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    match options.open(path).await {
        Ok(mut file) => {
            use tokio::io::AsyncWriteExt;
            file.write_all(token.as_bytes()).await?;
            file.sync_all().await?;
            tracing::debug!(path = %path.display(), "generated an access token");
            Ok(token)
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(tokio::fs::read_to_string(path).await?.trim().to_owned())
        }
        Err(e) => Err(e.into()),
    }
}
