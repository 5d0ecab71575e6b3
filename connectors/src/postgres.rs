//! PostgreSQL: tables and views read through datafusion-table-providers, with
//! filters, projections and limits pushed into the SQL it sends.
//!
//! Checks and discovery talk to the server with tokio-postgres directly: one
//! catalog query lists every column of every table, and the server's SQLSTATE
//! codes say whether a failure is the password's, a privilege's or the
//! configuration's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion_table_providers::UnsupportedTypeAction;
use datafusion_table_providers::postgres::PostgresTableFactory;
use datafusion_table_providers::sql::db_connection_pool::postgrespool::PostgresConnectionPool;
use futures::{StreamExt, TryStreamExt};
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::error::SqlState;

use crate::source::{
    ColumnInfo, Connector, FailureKind, Secret, Source, SourceEnv, StreamInfo, cursor_candidates,
    parse_config, type_name,
};
use crate::sql_names::split_stream;
use crate::{Error, Result};

/// The PostgreSQL connector.
#[derive(Debug, Default)]
pub struct Postgres;

/// How the connection is encrypted.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
}

impl SslMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "PostgreSQL")]
struct Config {
    #[schemars(title = "Host", extend("x-group" = "server"))]
    host: String,
    #[serde(default = "default_port")]
    #[schemars(title = "Port", range(min = 1), extend("x-group" = "server"))]
    port: u16,
    #[schemars(title = "Database", extend("x-group" = "server"))]
    database: String,
    #[schemars(title = "User", extend("x-group" = "credentials"))]
    user: String,
    #[serde(default)]
    #[schemars(title = "Password", extend("x-group" = "credentials"))]
    password: Option<Secret>,
    #[serde(default)]
    #[schemars(title = "TLS", extend("x-group" = "server"))]
    ssl_mode: SslMode,
    /// All but the system schemas when empty.
    #[serde(default)]
    #[schemars(title = "Schemas to list", extend("x-group" = "streams"))]
    schemas: Vec<String>,
    /// `schema.table`; a check fails when one is missing or not readable.
    #[serde(default)]
    #[schemars(title = "Tables that must be readable", extend("x-group" = "streams"))]
    tables: Vec<String>,
    #[serde(default = "default_timeout")]
    #[schemars(title = "Timeout (s)", range(min = 1, max = 600), extend("x-group" = "advanced"))]
    connect_timeout_secs: u64,
}

fn default_port() -> u16 {
    5432
}

fn default_timeout() -> u64 {
    10
}

impl Config {
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs.max(1))
    }

    fn client_config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .dbname(&self.database)
            .user(&self.user)
            .application_name("basin")
            .connect_timeout(self.timeout());
        if let Some(password) = &self.password {
            config.password(password.expose());
        }
        config
    }
}

#[async_trait]
impl Connector for Postgres {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn title(&self) -> &'static str {
        "PostgreSQL"
    }

    fn description(&self) -> &'static str {
        "Tables and views of a PostgreSQL database, queried live or synced."
    }

    fn spec(&self) -> Value {
        crate::spec::spec_of::<Config>()
    }

    fn destination_fields(&self) -> &'static [&'static str] {
        &["/host", "/port", "/user"]
    }

    fn validate(&self, config: &Value) -> Result<()> {
        let config: Config = parse_config(config)?;
        for (i, table) in config.tables.iter().enumerate() {
            split_stream(table).map_err(|e| Error::config(format!("/tables/{i}"), e))?;
        }
        Ok(())
    }

    async fn connect(&self, config: &Value, env: &SourceEnv) -> Result<Arc<dyn Source>> {
        let config: Config = parse_config(config)?;
        // The client's connection task lives on the IO runtime, whichever
        // runtime asked for it.
        let client = {
            let config = config.clone();
            env.io
                .spawn(async move { open_client(&config).await })
                .await
                .map_err(|e| Error::source(FailureKind::System, e.to_string()))??
        };
        Ok(Arc::new(PostgresSource {
            config,
            client: Arc::new(client),
            io: env.io.clone(),
            pool: tokio::sync::OnceCell::new(),
        }))
    }
}

async fn open_client(config: &Config) -> Result<tokio_postgres::Client> {
    let mut client_config = config.client_config();
    let connecting = async {
        match config.ssl_mode {
            SslMode::Disable => connect(&client_config, tokio_postgres::NoTls).await,
            mode => {
                let tls = native_tls::TlsConnector::builder()
                    // `require` and `prefer` encrypt without verifying, as libpq does.
                    .danger_accept_invalid_certs(true)
                    .danger_accept_invalid_hostnames(true)
                    .build()
                    .map_err(|e| Error::source(FailureKind::System, e.to_string()))?;
                client_config.ssl_mode(if mode == SslMode::Require {
                    tokio_postgres::config::SslMode::Require
                } else {
                    tokio_postgres::config::SslMode::Prefer
                });
                connect(
                    &client_config,
                    postgres_native_tls::MakeTlsConnector::new(tls),
                )
                .await
            }
        }
    };
    crate::source::with_timeout(config.timeout(), connecting).await
}

/// Connects and drives the connection on the current runtime.
async fn connect<T>(config: &tokio_postgres::Config, tls: T) -> Result<tokio_postgres::Client>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let (client, connection) = config.connect(tls).await.map_err(classify)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection ended");
        }
    });
    Ok(client)
}

/// Sorts a driver error into what the user must fix.
fn classify(err: tokio_postgres::Error) -> Error {
    if let Some(db) = err.as_db_error() {
        let code = db.code();
        let message = db.message().to_owned();
        let kind = if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            FailureKind::Auth
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            FailureKind::Permission
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            return Error::config("/database", message);
        } else if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::INVALID_SCHEMA_NAME {
            FailureKind::Config
        } else if *code == SqlState::QUERY_CANCELED {
            FailureKind::Timeout
        } else {
            FailureKind::System
        };
        return Error::source(kind, message);
    }
    let text = err.to_string();
    let io = std::error::Error::source(&err).and_then(|s| s.downcast_ref::<std::io::Error>());
    if let Some(io) = io {
        return match io.kind() {
            std::io::ErrorKind::TimedOut => Error::source(FailureKind::Timeout, text),
            _ => Error::source(FailureKind::Network, format!("{text}: {io}")),
        };
    }
    if text.contains("timeout") || text.contains("timed out") {
        Error::source(FailureKind::Timeout, text)
    } else if text.contains("error connecting") || text.contains("connection") {
        Error::source(FailureKind::Network, text)
    } else {
        Error::source(FailureKind::System, text)
    }
}

/// An open PostgreSQL source.
struct PostgresSource {
    config: Config,
    client: Arc<tokio_postgres::Client>,
    io: tokio::runtime::Handle,
    /// Created on the first table request: checks and discovery do not need it.
    pool: tokio::sync::OnceCell<Arc<PostgresConnectionPool>>,
}

impl std::fmt::Debug for PostgresSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSource")
            .field("host", &self.config.host)
            .field("database", &self.config.database)
            .finish_non_exhaustive()
    }
}

impl PostgresSource {
    async fn pool(&self) -> Result<Arc<PostgresConnectionPool>> {
        self.pool
            .get_or_try_init(|| async {
                let c = &self.config;
                let mut params: HashMap<String, SecretString> = [
                    ("host", c.host.clone()),
                    ("port", c.port.to_string()),
                    ("db", c.database.clone()),
                    ("user", c.user.clone()),
                    ("sslmode", c.ssl_mode.as_str().to_owned()),
                    ("application_name", "basin".to_owned()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), SecretString::from(v)))
                .collect();
                if let Some(password) = &c.password {
                    params.insert(
                        "pass".into(),
                        SecretString::from(password.expose().to_owned()),
                    );
                }
                let io = self.io.clone();
                let timeout = c.timeout();
                let pool = self
                    .io
                    .spawn(async move {
                        crate::source::with_timeout(timeout, async {
                            PostgresConnectionPool::new(params)
                                .await
                                .map_err(|e| Error::source(FailureKind::Network, e.to_string()))
                        })
                        .await
                    })
                    .await
                    .map_err(|e| Error::source(FailureKind::System, e.to_string()))??;
                Ok(Arc::new(
                    pool.with_unsupported_type_action(UnsupportedTypeAction::String)
                        .with_io_runtime(io),
                ))
            })
            .await
            .cloned()
    }

    async fn columns(&self) -> Result<Vec<CatalogColumn>> {
        let schemas: Option<Vec<String>> =
            (!self.config.schemas.is_empty()).then(|| self.config.schemas.clone());
        let rows = self
            .client
            .query(DISCOVER_COLUMNS, &[&schemas])
            .await
            .map_err(classify)?;
        rows.iter()
            .map(|row| {
                Ok(CatalogColumn {
                    schema: row.try_get(0).map_err(classify)?,
                    table: row.try_get(1).map_err(classify)?,
                    relkind: row.try_get(2).map_err(classify)?,
                    column: row.try_get(3).map_err(classify)?,
                    native_type: row.try_get(4).map_err(classify)?,
                    nullable: row.try_get(5).map_err(classify)?,
                    description: row.try_get(6).map_err(classify)?,
                    estimate: row.try_get(7).map_err(classify)?,
                    type_kind: row.try_get(8).map_err(classify)?,
                    is_array: row.try_get(9).map_err(classify)?,
                })
            })
            .collect()
    }

    async fn primary_keys(&self) -> Result<HashMap<(String, String), Vec<String>>> {
        let rows = self
            .client
            .query(DISCOVER_PRIMARY_KEYS, &[])
            .await
            .map_err(classify)?;
        let mut keys: HashMap<(String, String), Vec<String>> = HashMap::new();
        for row in rows {
            let schema: String = row.try_get(0).map_err(classify)?;
            let table: String = row.try_get(1).map_err(classify)?;
            let column: String = row.try_get(2).map_err(classify)?;
            keys.entry((schema, table)).or_default().push(column);
        }
        Ok(keys)
    }
}

struct CatalogColumn {
    schema: String,
    table: String,
    relkind: String,
    column: String,
    native_type: String,
    nullable: bool,
    description: Option<String>,
    estimate: f64,
    type_kind: String,
    is_array: bool,
}

/// Every column of every table, view, materialized view and foreign table in
/// one round trip, in table order.
const DISCOVER_COLUMNS: &str = "
SELECT n.nspname::text, c.relname::text, c.relkind::text, a.attname::text,
       format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       col_description(c.oid, a.attnum), c.reltuples::float8,
       t.typtype::text, t.typcategory = 'A'
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
  AND ($1::text[] IS NULL OR n.nspname = ANY($1))
ORDER BY n.nspname, c.relname, a.attnum";

const DISCOVER_PRIMARY_KEYS: &str = "
SELECT n.nspname::text, c.relname::text, a.attname::text
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)
WHERE i.indisprimary
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY n.nspname, c.relname, array_position(i.indkey::int2[], a.attnum)";

const ROW_ESTIMATE: &str = "
SELECT c.reltuples::float8 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = COALESCE($1::text, current_schema()) AND c.relname = $2::text";

const TABLE_COLUMNS: &str = "
SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = COALESCE($1::text, current_schema()) AND c.relname = $2::text
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum";

const TABLE_EXISTS: &str = "
SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = COALESCE($1::text, current_schema()) AND c.relname = $2::text
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f')";

/// Native types the table provider maps to a proper Arrow type; any other
/// column is read as text and flagged.
fn is_mapped(column: &CatalogColumn) -> bool {
    if column.type_kind == "e" || column.is_array {
        return true;
    }
    let base = column
        .native_type
        .split('(')
        .next()
        .unwrap_or_default()
        .trim()
        .trim_end_matches("[]");
    matches!(
        base,
        "smallint"
            | "integer"
            | "bigint"
            | "numeric"
            | "real"
            | "double precision"
            | "boolean"
            | "text"
            | "character varying"
            | "character"
            | "\"char\""
            | "name"
            | "uuid"
            | "bytea"
            | "date"
            | "time without time zone"
            | "timestamp without time zone"
            | "timestamp with time zone"
            | "interval"
            | "json"
            | "jsonb"
            | "xml"
            | "inet"
            | "cidr"
            | "macaddr"
            | "money"
            | "oid"
    )
}

#[async_trait]
impl Source for PostgresSource {
    async fn check(&self) -> Result<()> {
        for (i, table) in self.config.tables.iter().enumerate() {
            let name = split_stream(table).map_err(|e| Error::config(format!("/tables/{i}"), e))?;
            let sql = format!("SELECT 1 FROM {} LIMIT 0", name.quoted('"'));
            if let Err(err) = self.client.execute(sql.as_str(), &[]).await {
                return Err(match classify(err) {
                    Error::Source(mut e) if e.kind == FailureKind::Config => {
                        e.field = Some(format!("/tables/{i}"));
                        Error::Source(e)
                    }
                    other => other,
                });
            }
        }
        Ok(())
    }

    async fn discover(&self) -> Result<Vec<StreamInfo>> {
        let (columns, keys) = tokio::try_join!(self.columns(), self.primary_keys())?;
        let mut streams: Vec<(StreamInfo, Vec<CatalogColumn>)> = Vec::new();
        for column in columns {
            let same = streams.last().is_some_and(|(s, _)| {
                s.namespace.as_deref() == Some(column.schema.as_str()) && s.table == column.table
            });
            if !same {
                let kind = match column.relkind.as_str() {
                    "v" | "m" => "view",
                    _ => "table",
                };
                let estimate = (column.estimate >= 0.0).then_some(column.estimate as u64);
                streams.push((
                    StreamInfo {
                        name: format!("{}.{}", column.schema, column.table),
                        namespace: Some(column.schema.clone()),
                        table: column.table.clone(),
                        kind: kind.into(),
                        columns: Vec::new(),
                        primary_key: keys
                            .get(&(column.schema.clone(), column.table.clone()))
                            .cloned()
                            .unwrap_or_default(),
                        cursor_candidates: Vec::new(),
                        row_estimate: estimate,
                        warnings: Vec::new(),
                    },
                    Vec::new(),
                ));
            }
            if let Some((_, cols)) = streams.last_mut() {
                cols.push(column);
            }
        }
        // The Arrow types are the table provider's own, so discovery shows
        // exactly what reads return; tables are resolved a few at a time.
        let pool = self.pool().await?;
        let factory = Arc::new(PostgresTableFactory::new(pool));
        let resolved: Vec<StreamInfo> = futures::stream::iter(streams)
            .map(|(mut stream, cols)| {
                let factory = factory.clone();
                async move {
                    let reference = TableReference::partial(
                        stream.namespace.clone().unwrap_or_default(),
                        stream.table.clone(),
                    );
                    let schema = match factory.table_provider(reference).await {
                        Ok(provider) => Some(provider.schema()),
                        // The text path reads what the provider refuses.
                        Err(e) if crate::source::is_unsupported_type(&e.to_string()) => {
                            Some(crate::text_path::schema::<crate::pg_text::PostgresText>(
                                cols.iter().map(|c| (&c.column, &c.native_type)),
                            ))
                        }
                        Err(e) => {
                            stream.warnings.push(format!("schema not readable: {e}"));
                            None
                        }
                    };
                    for col in cols {
                        let field = schema
                            .as_ref()
                            .and_then(|s| s.field_with_name(&col.column).ok().cloned());
                        let data_type = field
                            .as_ref()
                            .map_or(arrow::datatypes::DataType::Utf8, |f| f.data_type().clone());
                        if !is_mapped(&col) {
                            stream.warnings.push(format!(
                                "column `{}` of type {} is read as text",
                                col.column, col.native_type
                            ));
                        }
                        stream.columns.push(ColumnInfo {
                            name: col.column,
                            data_type: type_name(&data_type),
                            native_type: col.native_type,
                            nullable: col.nullable,
                            description: col.description,
                        });
                    }
                    let types: Vec<(String, arrow::datatypes::DataType)> = schema
                        .iter()
                        .flat_map(|s| s.fields().iter())
                        .map(|f| (f.name().clone(), f.data_type().clone()))
                        .collect();
                    stream.cursor_candidates =
                        cursor_candidates(types.iter().map(|(n, t)| (n.as_str(), t)));
                    Ok::<_, Error>(stream)
                }
            })
            .buffered(8)
            .try_collect()
            .await?;
        Ok(resolved)
    }

    async fn row_estimate(&self, stream: &str) -> Option<u64> {
        let name = split_stream(stream).ok()?;
        let row = self
            .client
            .query_opt(ROW_ESTIMATE, &[&name.namespace, &name.table])
            .await
            .ok()??;
        let estimate: f64 = row.try_get(0).ok()?;
        (estimate >= 0.0).then_some(estimate as u64)
    }

    async fn table(&self, stream: &str) -> Result<Arc<dyn TableProvider>> {
        let name = split_stream(stream).map_err(|e| Error::config("/stream", e))?;
        let reference = match &name.namespace {
            Some(schema) => TableReference::partial(schema.as_str(), name.table.as_str()),
            None => TableReference::bare(name.table.as_str()),
        };
        // The table provider pastes names into SQL unquoted on some paths:
        // only a table that exists (asked with bound parameters) gets there.
        let exists = self
            .client
            .query_opt(TABLE_EXISTS, &[&name.namespace, &name.table])
            .await
            .map_err(classify)?;
        if exists.is_none() {
            return Err(Error::config(
                "/stream",
                format!("stream `{stream}` not found"),
            ));
        }
        let pool = self.pool().await?;
        match PostgresTableFactory::new(pool)
            .table_provider(reference)
            .await
        {
            Ok(table) => Ok(crate::counted::CountSafe::wrap(table)),
            Err(e) if crate::source::is_unsupported_type(&e.to_string()) => {
                let columns: Vec<(String, String)> = self
                    .client
                    .query(TABLE_COLUMNS, &[&name.namespace, &name.table])
                    .await
                    .map_err(classify)?
                    .iter()
                    .map(|row| (row.get(0), row.get(1)))
                    .collect();
                crate::text_path::table(
                    crate::pg_text::PostgresText(self.client.clone()),
                    &name,
                    &columns,
                )
            }
            Err(e) => Err(not_found_or(stream, e.to_string())),
        }
    }
}

/// A table that cannot be opened is usually a missing one.
pub(crate) fn not_found_or(stream: &str, message: String) -> Error {
    let lower = message.to_lowercase();
    if lower.contains("does not exist")
        || lower.contains("doesn't exist")
        || lower.contains("not found")
        || lower.contains("no such table")
    {
        Error::config("/stream", format!("stream `{stream}` not found: {message}"))
    } else if lower.contains("permission denied") || lower.contains("command denied") {
        Error::source(FailureKind::Permission, message)
    } else {
        Error::source(FailureKind::System, message)
    }
}
