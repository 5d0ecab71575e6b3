//! Files as a source: local disk, S3-compatible stores, Google Cloud Storage,
//! Azure Blob Storage and HTTP(S), in CSV, NDJSON, Parquet or Arrow IPC,
//! optionally gzip- or zstd-compressed, one file or a glob of them.
//!
//! Reads go through DataFusion's listing table, so Parquet gets projection,
//! row-group pruning and filter pushdown, and every format streams in
//! batches. Each source registers its object store in the shared runtime
//! under a scheme of its own (`basin-src-<uuid>://`), so two connections to
//! the same bucket with different credentials never share a client.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::FileFormat as DfFileFormat;
use datafusion::datasource::file_format::arrow::ArrowFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::TryStreamExt;
use object_store::ClientOptions;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::source::{
    Connector, FailureKind, Secret, Source, SourceEnv, StreamInfo, not_this_stream, parse_config,
    type_name,
};
use crate::{Error, Result};

/// The files connector.
#[derive(Debug, Default)]
pub struct Files;

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
enum Format {
    #[default]
    Auto,
    Csv,
    Ndjson,
    Parquet,
    Arrow,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
enum Compression {
    #[default]
    Auto,
    None,
    Gzip,
    Zstd,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CsvConfig {
    #[serde(default = "default_delimiter")]
    #[schemars(length(max = 2))]
    delimiter: String,
    #[serde(default = "default_true")]
    has_header: bool,
}

impl Default for CsvConfig {
    fn default() -> Self {
        Self {
            delimiter: default_delimiter(),
            has_header: true,
        }
    }
}

fn default_delimiter() -> String {
    ",".into()
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
struct S3Config {
    /// For S3-compatible servers (MinIO, R2, …).
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    access_key_id: Option<String>,
    #[serde(default)]
    secret_access_key: Option<Secret>,
    #[serde(default)]
    session_token: Option<Secret>,
    #[serde(default)]
    allow_http: bool,
    #[serde(default)]
    virtual_hosted_style: bool,
}

#[derive(Debug, Clone, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
struct GcsConfig {
    /// The service account's JSON key.
    #[serde(default)]
    service_account_key: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
struct AzureConfig {
    account: String,
    #[serde(default)]
    access_key: Option<Secret>,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    allow_http: bool,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Files")]
struct Config {
    /// file:///data/*.csv, s3://bucket/prefix/*.parquet, gs://…, az://container/…, https://host/file.csv. Globs select several files; local paths must be inside `ingest.allowed_roots`.
    #[schemars(title = "URL or path", extend("x-group" = "source"))]
    url: String,
    #[serde(default)]
    #[schemars(title = "Format", extend("x-group" = "source"))]
    format: Format,
    #[serde(default)]
    #[schemars(title = "Compression", extend("x-group" = "source"))]
    compression: Compression,
    /// Defaults to the file or directory name.
    #[serde(default)]
    #[schemars(title = "Stream name", extend("x-group" = "source"))]
    stream: Option<String>,
    #[serde(default)]
    #[schemars(title = "CSV", extend("x-group" = "format"))]
    csv: CsvConfig,
    #[serde(default)]
    #[schemars(title = "S3-compatible storage", extend("x-group" = "credentials"))]
    s3: Option<S3Config>,
    #[serde(default)]
    #[schemars(title = "Google Cloud Storage", extend("x-group" = "credentials"))]
    gcs: Option<GcsConfig>,
    #[serde(default)]
    #[schemars(title = "Azure Blob Storage", extend("x-group" = "credentials"))]
    azure: Option<AzureConfig>,
    #[serde(default = "default_timeout")]
    #[schemars(title = "Timeout (s)", range(min = 1, max = 3600), extend("x-group" = "advanced"))]
    timeout_secs: u64,
}

fn default_timeout() -> u64 {
    30
}

/// Where the files are, split the way the listing table wants it.
#[derive(Debug, Clone)]
struct Location {
    /// The URL as given, with its scheme (`s3`, `file`, ...).
    url: Url,
    /// The directory part before any glob, ending in `/` for collections.
    prefix: String,
    /// The glob after the prefix, if any.
    glob: Option<String>,
}

const GLOB_CHARS: [char; 3] = ['*', '?', '['];

fn parse_location(raw: &str) -> Result<Location> {
    let text = if raw.starts_with('/') {
        format!("file://{raw}")
    } else {
        raw.to_owned()
    };
    // Globs are not URL syntax: split them off before parsing.
    let (head, glob) = match text.find(GLOB_CHARS) {
        Some(at) => {
            let cut = text[..at].rfind('/').map_or(0, |i| i + 1);
            (text[..cut].to_owned(), Some(text[cut..].to_owned()))
        }
        None => (text.clone(), None),
    };
    let url = Url::parse(&head).map_err(|e| Error::config("/url", format!("{raw:?}: {e}")))?;
    if !matches!(
        url.scheme(),
        "file" | "s3" | "s3a" | "gs" | "az" | "abfs" | "abfss" | "http" | "https"
    ) {
        return Err(Error::config(
            "/url",
            format!(
                "scheme `{}` is not supported: use file, s3, gs, az, http or https",
                url.scheme()
            ),
        ));
    }
    let prefix = url.path().to_owned();
    Ok(Location { url, prefix, glob })
}

impl Config {
    fn location(&self) -> Result<Location> {
        parse_location(&self.url)
    }

    /// The file name (or glob) the format and compression are read from.
    fn last_segment(&self) -> String {
        self.url
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_lowercase()
    }

    fn compression(&self) -> FileCompressionType {
        match self.compression {
            Compression::Gzip => FileCompressionType::GZIP,
            Compression::Zstd => FileCompressionType::ZSTD,
            Compression::None => FileCompressionType::UNCOMPRESSED,
            Compression::Auto => {
                let name = self.last_segment();
                if name.ends_with(".gz") {
                    FileCompressionType::GZIP
                } else if name.ends_with(".zst") {
                    FileCompressionType::ZSTD
                } else {
                    FileCompressionType::UNCOMPRESSED
                }
            }
        }
    }

    fn format(&self) -> Result<Format> {
        if self.format != Format::Auto {
            return Ok(self.format);
        }
        let name = self.last_segment();
        let name = name
            .strip_suffix(".gz")
            .or_else(|| name.strip_suffix(".zst"))
            .unwrap_or(&name);
        let extension = name.rsplit('.').next().unwrap_or_default();
        Ok(match extension {
            "csv" | "tsv" | "txt" => Format::Csv,
            "json" | "ndjson" | "jsonl" => Format::Ndjson,
            "parquet" | "pq" => Format::Parquet,
            "arrow" | "ipc" | "feather" | "arrows" => Format::Arrow,
            _ => {
                return Err(Error::config(
                    "/format",
                    format!("cannot tell the format of {:?}: set `format`", self.url),
                ));
            }
        })
    }

    fn stream_name(&self) -> String {
        if let Some(name) = &self.stream {
            return name.clone();
        }
        let segment = self
            .url
            .trim_end_matches('/')
            .rsplit('/')
            .find(|s| !s.contains(GLOB_CHARS) && !s.is_empty())
            .unwrap_or("files");
        let stem = segment.split('.').next().unwrap_or(segment);
        let cleaned = crate::sql_names::identifier_from(stem);
        if cleaned.is_empty() {
            "files".into()
        } else {
            cleaned
        }
    }

    fn client_options(&self) -> ClientOptions {
        ClientOptions::new()
            .with_timeout(Duration::from_secs(self.timeout_secs.max(1)))
            .with_connect_timeout(Duration::from_secs(self.timeout_secs.clamp(1, 30)))
    }

    fn listing_options(&self) -> Result<ListingOptions> {
        let compression = self.compression();
        let format: Arc<dyn DfFileFormat> = match self.format()? {
            Format::Csv => {
                let delimiter = match self.csv.delimiter.as_bytes() {
                    [b] => *b,
                    _ if self.csv.delimiter == "\\t" => b'\t',
                    _ => {
                        return Err(Error::config(
                            "/csv/delimiter",
                            "the delimiter must be one byte",
                        ));
                    }
                };
                Arc::new(
                    CsvFormat::default()
                        .with_has_header(self.csv.has_header)
                        .with_delimiter(delimiter)
                        .with_file_compression_type(compression),
                )
            }
            Format::Ndjson => {
                Arc::new(JsonFormat::default().with_file_compression_type(compression))
            }
            Format::Parquet => Arc::new(ParquetFormat::default()),
            Format::Arrow => Arc::new(ArrowFormat),
            Format::Auto => unreachable!("format() resolves auto"),
        };
        // The glob (or the single file's name) selects files; no extension filter.
        Ok(ListingOptions::new(format).with_file_extension(""))
    }
}

#[async_trait]
impl Connector for Files {
    fn kind(&self) -> &'static str {
        "files"
    }

    fn title(&self) -> &'static str {
        "Files"
    }

    fn description(&self) -> &'static str {
        "CSV, NDJSON, Parquet or Arrow files on the server, in S3-compatible, GCS or Azure storage, or behind HTTP(S)."
    }

    fn spec(&self) -> Value {
        crate::spec::spec_of::<Config>()
    }

    fn destination_fields(&self) -> &'static [&'static str] {
        &[
            "/url",
            "/s3/endpoint",
            "/s3/access_key_id",
            "/azure/account",
            "/azure/endpoint",
        ]
    }

    fn validate(&self, config: &Value) -> Result<()> {
        let config: Config = parse_config(config)?;
        config.location()?;
        config.listing_options()?;
        Ok(())
    }

    async fn connect(&self, config: &Value, env: &SourceEnv) -> Result<Arc<dyn Source>> {
        let config: Config = parse_config(config)?;
        let location = config.location()?;
        let (table_url, registered) = register_store(&config, &location, env)?;
        let source = FilesSource {
            stream: config.stream_name(),
            options: config.listing_options()?,
            format: config.format()?,
            local_roots: (location.url.scheme() == "file").then(|| env.allowed_roots.clone()),
            table_url,
            runtime: env.runtime.clone(),
            registered,
            timeout: Duration::from_secs(config.timeout_secs.max(1)),
        };
        Ok(Arc::new(source))
    }
}

/// Builds the object store for `location` and registers it in the runtime;
/// returns the listing URL to scan and the registered store URL (removed
/// again when the source is dropped).
fn register_store(
    config: &Config,
    location: &Location,
    env: &SourceEnv,
) -> Result<(ListingTableUrl, Option<Url>)> {
    let url = &location.url;
    let glob = location
        .glob
        .as_deref()
        .map(glob::Pattern::new)
        .transpose()
        .map_err(|e| Error::config("/url", format!("bad glob: {e}")))?;
    if url.scheme() == "file" {
        let path = url
            .to_file_path()
            .map_err(|()| Error::config("/url", "not a local path"))?;
        let checked = check_local(&path, &env.allowed_roots)?;
        let mut dir_url = Url::from_file_path(&checked)
            .map_err(|()| Error::config("/url", "not a local path"))?;
        if location.prefix.ends_with('/') && !dir_url.path().ends_with('/') {
            dir_url.set_path(&format!("{}/", dir_url.path()));
        }
        let table_url = ListingTableUrl::try_new(dir_url, glob)?;
        return Ok((table_url, None));
    }
    let host = url
        .host_str()
        .ok_or_else(|| Error::config("/url", "the URL has no bucket or host"))?
        .to_owned();
    let options = config.client_options();
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => {
            let s3 = config.s3.clone().unwrap_or_default();
            // Client options first: `allow_http` is one of them.
            let mut builder = AmazonS3Builder::new()
                .with_client_options(options)
                .with_bucket_name(&host)
                .with_region(s3.region.as_deref().unwrap_or("us-east-1"))
                .with_allow_http(s3.allow_http)
                .with_virtual_hosted_style_request(s3.virtual_hosted_style);
            if let Some(endpoint) = &s3.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            if let Some(key) = &s3.access_key_id {
                builder = builder.with_access_key_id(key);
            }
            if let Some(secret) = &s3.secret_access_key {
                builder = builder.with_secret_access_key(secret.expose());
            }
            if let Some(token) = &s3.session_token {
                builder = builder.with_token(token.expose());
            }
            if s3.access_key_id.is_none() {
                builder = builder.with_skip_signature(true);
            }
            Arc::new(builder.build().map_err(store_error)?)
        }
        "gs" => {
            let gcs = config.gcs.clone().unwrap_or_default();
            let mut builder = GoogleCloudStorageBuilder::new()
                .with_bucket_name(&host)
                .with_client_options(options);
            // Without a key, requests go unsigned: never with the server's own credentials.
            builder = match &gcs.service_account_key {
                Some(key) => builder.with_service_account_key(key.expose()),
                None => builder.with_skip_signature(true),
            };
            Arc::new(builder.build().map_err(store_error)?)
        }
        "az" | "abfs" | "abfss" => {
            let azure = config
                .azure
                .clone()
                .ok_or_else(|| Error::config("/azure", "Azure URLs need `azure.account`"))?;
            let mut builder = MicrosoftAzureBuilder::new()
                .with_client_options(options)
                .with_account(&azure.account)
                .with_container_name(&host)
                .with_allow_http(azure.allow_http);
            builder = match &azure.access_key {
                Some(key) => builder.with_access_key(key.expose()),
                None => builder.with_skip_signature(true),
            };
            if let Some(endpoint) = &azure.endpoint {
                builder = builder.with_endpoint(endpoint.clone());
            }
            Arc::new(builder.build().map_err(store_error)?)
        }
        _ => {
            let base = format!("{}://{}", url.scheme(), url.authority());
            // The URL says `http` or `https`; an `http` URL is plain on purpose.
            let options = options.with_allow_http(url.scheme() == "http");
            Arc::new(
                HttpBuilder::new()
                    .with_url(base)
                    .with_client_options(options)
                    .build()
                    .map_err(store_error)?,
            )
        }
    };
    let scheme = format!("basin-src-{}", uuid::Uuid::new_v4().simple());
    let store_url = Url::parse(&format!("{scheme}://{host}"))
        .map_err(|e| Error::source(FailureKind::System, e.to_string()))?;
    env.runtime.register_object_store(&store_url, store);
    let mut scan_url = store_url.clone();
    scan_url.set_path(url.path());
    let table_url = ListingTableUrl::try_new(scan_url, glob)?;
    Ok((table_url, Some(store_url)))
}

/// A local path (the part before any glob) must lie inside the import roots.
fn check_local(path: &std::path::Path, roots: &[PathBuf]) -> Result<PathBuf> {
    let text = path.to_string_lossy();
    crate::sqlite::confined_path(&text, roots, "/url")
}

/// Sorts an object store error into what the user must fix.
pub(crate) fn store_error(err: object_store::Error) -> Error {
    match &err {
        object_store::Error::NotFound { path, .. } => {
            Error::config("/url", format!("{path} not found"))
        }
        // S3 answers bad keys with 403, which object_store calls a denial.
        object_store::Error::PermissionDenied { .. } if is_credential_error(&err.to_string()) => {
            Error::source(FailureKind::Auth, err.to_string())
        }
        object_store::Error::PermissionDenied { .. } => {
            Error::source(FailureKind::Permission, err.to_string())
        }
        object_store::Error::Unauthenticated { .. } => {
            Error::source(FailureKind::Auth, err.to_string())
        }
        object_store::Error::UnknownConfigurationKey { .. } => {
            Error::source(FailureKind::Config, err.to_string())
        }
        _ => classify_text(err.to_string()),
    }
}

/// Classifies a transport error by what its message says (object_store and
/// reqwest wrap the cause in text).
pub(crate) fn classify_text(text: String) -> Error {
    let lower = text.to_lowercase();
    let kind = if lower.contains("timed out") || lower.contains("timeout") {
        FailureKind::Timeout
    } else if is_credential_error(&text) {
        FailureKind::Auth
    } else if lower.contains("403") || lower.contains("forbidden") || lower.contains("accessdenied")
    {
        FailureKind::Permission
    } else if lower.contains("401")
        || lower.contains("invalidaccesskeyid")
        || lower.contains("signaturedoesnotmatch")
        || lower.contains("unauthorized")
    {
        FailureKind::Auth
    } else if lower.contains("nosuchbucket") || lower.contains("404") || lower.contains("not found")
    {
        return Error::config("/url", text);
    } else if lower.contains("connect") || lower.contains("dns") || lower.contains("refused") {
        FailureKind::Network
    } else {
        FailureKind::System
    };
    Error::source(kind, text)
}

/// Error codes stores use for credentials they do not accept.
fn is_credential_error(text: &str) -> bool {
    [
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AuthenticationFailed",
        "ExpiredToken",
        "InvalidToken",
        "invalid_grant",
    ]
    .iter()
    .any(|code| text.contains(code))
}

/// Open files.
struct FilesSource {
    stream: String,
    options: ListingOptions,
    format: Format,
    table_url: ListingTableUrl,
    /// For local files: the roots every matched file must resolve inside.
    local_roots: Option<Vec<PathBuf>>,
    runtime: Arc<RuntimeEnv>,
    registered: Option<Url>,
    timeout: Duration,
}

impl std::fmt::Debug for FilesSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilesSource")
            .field("stream", &self.stream)
            .field("url", &self.table_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Drop for FilesSource {
    fn drop(&mut self) {
        if let Some(url) = &self.registered {
            let _ = self.runtime.deregister_object_store(url);
        }
    }
}

impl FilesSource {
    fn context(&self) -> SessionContext {
        SessionContext::new_with_config_rt(SessionConfig::new(), self.runtime.clone())
    }

    async fn listing(&self) -> Result<Arc<ListingTable>> {
        self.check_local_files().await?;
        let ctx = self.context();
        let state = ctx.state();
        let schema = crate::source::with_timeout(self.timeout, async {
            self.options
                .infer_schema(&state, &self.table_url)
                .await
                .map_err(datafusion_error)
        })
        .await?;
        let config = ListingTableConfig::new(self.table_url.clone())
            .with_listing_options(self.options.clone())
            .with_schema(schema);
        Ok(Arc::new(ListingTable::try_new(config)?))
    }

    /// Local listings follow symlinks: every matched file must still
    /// resolve inside the import roots.
    async fn check_local_files(&self) -> Result<()> {
        let Some(roots) = &self.local_roots else {
            return Ok(());
        };
        for location in self.files().await? {
            let path = std::path::Path::new("/").join(location.as_ref());
            let resolved = std::fs::canonicalize(&path)
                .map_err(|e| Error::source(FailureKind::System, e.to_string()))?;
            if !roots.iter().any(|root| resolved.starts_with(root)) {
                return Err(Error::config(
                    "/url",
                    "a matched file resolves outside the allowed import roots",
                ));
            }
        }
        Ok(())
    }

    async fn files(&self) -> Result<Vec<object_store::path::Path>> {
        let ctx = self.context();
        let state = ctx.state();
        let store = state
            .runtime_env()
            .object_store(&self.table_url)
            .map_err(datafusion_error)?;
        let files: Vec<_> = crate::source::with_timeout(self.timeout, async {
            self.table_url
                .list_all_files(&state, store.as_ref(), "")
                .await
                .map_err(datafusion_error)?
                .try_collect()
                .await
                .map_err(datafusion_error)
        })
        .await?;
        Ok(files.into_iter().map(|meta| meta.location).collect())
    }

    async fn count_files(&self) -> Result<usize> {
        Ok(self.files().await?.len())
    }
}

/// DataFusion wraps the store's error; classify by the store's.
fn datafusion_error(err: datafusion::error::DataFusionError) -> Error {
    match err.find_root() {
        datafusion::error::DataFusionError::ObjectStore(store) => {
            store_error(clone_store_error(store))
        }
        other => classify_text(other.to_string()),
    }
}

fn clone_store_error(err: &object_store::Error) -> object_store::Error {
    match err {
        object_store::Error::NotFound { path, .. } => object_store::Error::NotFound {
            path: path.clone(),
            source: err.to_string().into(),
        },
        object_store::Error::PermissionDenied { path, .. } => {
            object_store::Error::PermissionDenied {
                path: path.clone(),
                source: err.to_string().into(),
            }
        }
        object_store::Error::Unauthenticated { path, .. } => object_store::Error::Unauthenticated {
            path: path.clone(),
            source: err.to_string().into(),
        },
        other => object_store::Error::Generic {
            store: "source",
            source: other.to_string().into(),
        },
    }
}

#[async_trait]
impl Source for FilesSource {
    async fn check(&self) -> Result<()> {
        if self.count_files().await? == 0 {
            return Err(Error::config("/url", "no files match"));
        }
        Ok(())
    }

    async fn discover(&self) -> Result<Vec<StreamInfo>> {
        let table = self.listing().await?;
        let native = |t: &arrow::datatypes::DataType| match self.format {
            Format::Csv => "text".to_owned(),
            Format::Ndjson => "json".to_owned(),
            _ => type_name(t),
        };
        Ok(vec![StreamInfo::single(
            &self.stream,
            "files",
            &table.schema(),
            native,
        )])
    }

    async fn table(&self, stream: &str) -> Result<Arc<dyn TableProvider>> {
        if stream != self.stream {
            return Err(not_this_stream(stream, &self.stream));
        }
        Ok(self.listing().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn globs_split_from_urls() {
        let loc = parse_location("s3://bucket/data/2024-*/part-*.parquet").unwrap();
        assert_eq!(loc.url.host_str(), Some("bucket"));
        assert_eq!(loc.prefix, "/data/");
        assert_eq!(loc.glob.as_deref(), Some("2024-*/part-*.parquet"));
        let plain = parse_location("/srv/in/file.csv.gz").unwrap();
        assert_eq!(plain.url.scheme(), "file");
        assert!(plain.glob.is_none());
        assert!(parse_location("ftp://x/y").is_err());
    }

    #[test]
    fn format_and_compression_come_from_the_name() {
        let config: Config = parse_config(&json!({"url": "s3://b/logs/*.ndjson.zst"})).unwrap();
        assert_eq!(config.format().unwrap(), Format::Ndjson);
        assert_eq!(config.compression(), FileCompressionType::ZSTD);
        assert_eq!(config.stream_name(), "logs");
        let unknown: Config = parse_config(&json!({"url": "s3://b/x.bin"})).unwrap();
        assert!(unknown.format().is_err());
    }
}
