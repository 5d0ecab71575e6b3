//! MySQL and MariaDB: tables and views read through datafusion-table-providers,
//! with filters, projections and limits pushed into the SQL it sends.
//!
//! Checks and discovery use mysql_async directly, so a failure is classified
//! by the server's error number.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion_table_providers::mysql::MySQLTableFactory;
use datafusion_table_providers::sql::db_connection_pool::mysqlpool::MySQLConnectionPool;
use futures::{StreamExt, TryStreamExt};
use mysql_async::prelude::Queryable;
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::postgres::not_found_or;
use crate::source::{
    ColumnInfo, Connector, FailureKind, Secret, Source, SourceEnv, StreamInfo, cursor_candidates,
    parse_config, type_name, with_timeout,
};
use crate::sql_names::split_stream;
use crate::{Error, Result};

/// The MySQL / MariaDB connector.
#[derive(Debug, Default)]
pub struct MySql;

/// How the connection is encrypted.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
enum SslMode {
    Disabled,
    // Encrypted, certificate not verified.
    #[default]
    Preferred,
    // Encrypted and verified.
    Required,
}

impl SslMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Preferred => "preferred",
            Self::Required => "required",
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "MySQL / MariaDB")]
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
    /// `preferred` encrypts without verifying the certificate; `required` verifies it.
    #[serde(default)]
    #[schemars(title = "TLS", extend("x-group" = "server"))]
    ssl_mode: SslMode,
    #[serde(default)]
    #[schemars(title = "Tables that must be readable", extend("x-group" = "streams"))]
    tables: Vec<String>,
    #[serde(default = "default_timeout")]
    #[schemars(title = "Timeout (s)", range(min = 1, max = 600), extend("x-group" = "advanced"))]
    connect_timeout_secs: u64,
}

fn default_port() -> u16 {
    3306
}

fn default_timeout() -> u64 {
    10
}

impl Config {
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs.max(1))
    }

    fn opts(&self) -> mysql_async::Opts {
        let ssl = match self.ssl_mode {
            SslMode::Disabled => None,
            SslMode::Preferred => Some(
                mysql_async::SslOpts::default()
                    .with_danger_accept_invalid_certs(true)
                    .with_danger_skip_domain_validation(true),
            ),
            SslMode::Required => Some(mysql_async::SslOpts::default()),
        };
        mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(self.password.as_ref().map(|p| p.expose().to_owned()))
            .db_name(Some(self.database.clone()))
            .ssl_opts(ssl)
            .into()
    }
}

#[async_trait]
impl Connector for MySql {
    fn kind(&self) -> &'static str {
        "mysql"
    }

    fn title(&self) -> &'static str {
        "MySQL / MariaDB"
    }

    fn description(&self) -> &'static str {
        "Tables and views of a MySQL or MariaDB database, queried live or synced."
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
        let opts = config.opts();
        let timeout = config.timeout();
        let ssl_mode = config.ssl_mode;
        let conn = env
            .io
            .spawn(async move {
                with_timeout(timeout, async {
                    mysql_async::Conn::new(opts)
                        .await
                        .map_err(|e| classify(e, ssl_mode))
                })
                .await
            })
            .await
            .map_err(|e| Error::source(FailureKind::System, e.to_string()))??;
        Ok(Arc::new(MySqlSource {
            config,
            conn: tokio::sync::Mutex::new(conn),
            io: env.io.clone(),
            pool: tokio::sync::OnceCell::new(),
        }))
    }
}

/// Sorts a driver error into what the user must fix.
fn classify(err: mysql_async::Error, ssl_mode: SslMode) -> Error {
    match &err {
        mysql_async::Error::Server(server) => {
            let message = server.message.clone();
            match server.code {
                1045 => Error::source(FailureKind::Auth, message),
                1044 | 1142 | 1143 | 1227 => Error::source(FailureKind::Permission, message),
                1049 => Error::config("/database", message),
                1146 => Error::source(FailureKind::Config, message),
                3024 | 1969 => Error::source(FailureKind::Timeout, message),
                _ => Error::source(FailureKind::System, message),
            }
        }
        mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer) => {
            Error::config(
                "/ssl_mode",
                format!(
                    "the server does not offer TLS; set ssl_mode to `disabled` to connect unencrypted (was `{}`)",
                    ssl_mode.as_str()
                ),
            )
        }
        mysql_async::Error::Driver(mysql_async::DriverError::UnknownAuthPlugin { .. }) => {
            Error::source(FailureKind::Auth, err.to_string())
        }
        mysql_async::Error::Io(io) => {
            let text = io.to_string();
            if text.contains("timed out") {
                Error::source(FailureKind::Timeout, text)
            } else if text.to_lowercase().contains("tls") || text.contains("ssl") {
                Error::config("/ssl_mode", text)
            } else {
                Error::source(FailureKind::Network, text)
            }
        }
        _ => Error::source(FailureKind::System, err.to_string()),
    }
}

/// An open MySQL source.
struct MySqlSource {
    config: Config,
    conn: tokio::sync::Mutex<mysql_async::Conn>,
    io: tokio::runtime::Handle,
    pool: tokio::sync::OnceCell<Arc<MySQLConnectionPool>>,
}

impl std::fmt::Debug for MySqlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlSource")
            .field("host", &self.config.host)
            .field("database", &self.config.database)
            .finish_non_exhaustive()
    }
}

type ColumnRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<u64>,
    String,
);

impl MySqlSource {
    async fn pool(&self) -> Result<Arc<MySQLConnectionPool>> {
        self.pool
            .get_or_try_init(|| async {
                let c = &self.config;
                let mut params: HashMap<String, SecretString> = [
                    ("host", c.host.clone()),
                    ("tcp_port", c.port.to_string()),
                    ("db", c.database.clone()),
                    ("user", c.user.clone()),
                    ("sslmode", c.ssl_mode.as_str().to_owned()),
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
                let timeout = c.timeout();
                let pool = self
                    .io
                    .spawn(async move {
                        with_timeout(timeout, async {
                            MySQLConnectionPool::new(params)
                                .await
                                .map_err(|e| Error::source(FailureKind::Network, e.to_string()))
                        })
                        .await
                    })
                    .await
                    .map_err(|e| Error::source(FailureKind::System, e.to_string()))??;
                Ok(Arc::new(pool))
            })
            .await
            .cloned()
    }
}

const DISCOVER_COLUMNS: &str = "
SELECT c.TABLE_NAME, t.TABLE_TYPE, c.COLUMN_NAME, c.COLUMN_TYPE, c.IS_NULLABLE,
       c.COLUMN_COMMENT, t.TABLE_ROWS, c.COLUMN_KEY
FROM information_schema.COLUMNS c
JOIN information_schema.TABLES t
  ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
WHERE c.TABLE_SCHEMA = DATABASE()
ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION";

const DISCOVER_PRIMARY_KEYS: &str = "
SELECT TABLE_NAME, COLUMN_NAME
FROM information_schema.KEY_COLUMN_USAGE
WHERE TABLE_SCHEMA = DATABASE() AND CONSTRAINT_NAME = 'PRIMARY'
ORDER BY TABLE_NAME, ORDINAL_POSITION";

const ROW_ESTIMATE: &str = "SELECT TABLE_ROWS FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?";

const TABLE_COLUMNS: &str = "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS \
     WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";

const TABLE_EXISTS: &str = "SELECT 1 FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?";

/// Column types the table provider maps; others are read as text and flagged.
fn is_mapped(native: &str) -> bool {
    let base = native
        .split(['(', ' '])
        .next()
        .unwrap_or_default()
        .to_lowercase();
    matches!(
        base.as_str(),
        "tinyint"
            | "smallint"
            | "mediumint"
            | "int"
            | "bigint"
            | "decimal"
            | "float"
            | "double"
            | "bit"
            | "date"
            | "time"
            | "datetime"
            | "timestamp"
            | "char"
            | "varchar"
            | "tinytext"
            | "text"
            | "mediumtext"
            | "longtext"
            | "binary"
            | "varbinary"
            | "tinyblob"
            | "blob"
            | "mediumblob"
            | "longblob"
            | "enum"
            | "set"
            | "json"
    )
}

#[async_trait]
impl Source for MySqlSource {
    async fn check(&self) -> Result<()> {
        let mut conn = self.conn.lock().await;
        for (i, table) in self.config.tables.iter().enumerate() {
            let name = split_stream(table).map_err(|e| Error::config(format!("/tables/{i}"), e))?;
            let sql = format!("SELECT 1 FROM {} LIMIT 0", name.quoted('`'));
            if let Err(err) = conn.query_drop(sql).await {
                return Err(match classify(err, self.config.ssl_mode) {
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
        let ssl_mode = self.config.ssl_mode;
        let (columns, keys) = {
            let mut conn = self.conn.lock().await;
            let columns: Vec<ColumnRow> = conn
                .query(DISCOVER_COLUMNS)
                .await
                .map_err(|e| classify(e, ssl_mode))?;
            let key_rows: Vec<(String, String)> = conn
                .query(DISCOVER_PRIMARY_KEYS)
                .await
                .map_err(|e| classify(e, ssl_mode))?;
            (columns, key_rows)
        };
        let mut primary_keys: HashMap<String, Vec<String>> = HashMap::new();
        for (table, column) in keys {
            primary_keys.entry(table).or_default().push(column);
        }
        let mut streams: Vec<(StreamInfo, Vec<ColumnRow>)> = Vec::new();
        for row in columns {
            if streams.last().is_none_or(|(s, _)| s.table != row.0) {
                let kind = if row.1.contains("VIEW") {
                    "view"
                } else {
                    "table"
                };
                streams.push((
                    StreamInfo {
                        name: row.0.clone(),
                        namespace: Some(self.config.database.clone()),
                        table: row.0.clone(),
                        kind: kind.into(),
                        columns: Vec::new(),
                        primary_key: primary_keys.get(&row.0).cloned().unwrap_or_default(),
                        cursor_candidates: Vec::new(),
                        row_estimate: row.6,
                        warnings: Vec::new(),
                    },
                    Vec::new(),
                ));
            }
            if let Some((_, rows)) = streams.last_mut() {
                rows.push(row);
            }
        }
        let pool = self.pool().await?;
        let factory = Arc::new(MySQLTableFactory::new(pool));
        futures::stream::iter(streams)
            .map(|(mut stream, rows)| {
                let factory = factory.clone();
                async move {
                    let schema = match factory
                        .table_provider(TableReference::bare(stream.table.as_str()))
                        .await
                    {
                        Ok(provider) => Some(provider.schema()),
                        Err(e) if crate::source::is_unsupported_type(&e.to_string()) => {
                            Some(crate::text_path::schema::<crate::mysql_text::MysqlText>(
                                rows.iter().map(|r| (&r.2, &r.3)),
                            ))
                        }
                        Err(e) => {
                            stream.warnings.push(format!("schema not readable: {e}"));
                            None
                        }
                    };
                    for row in rows {
                        let (_, _, column, native, nullable, comment, _, _) = row;
                        let data_type = schema
                            .as_ref()
                            .and_then(|s| s.field_with_name(&column).ok())
                            .map_or(arrow::datatypes::DataType::Utf8, |f| f.data_type().clone());
                        if !is_mapped(&native) {
                            stream.warnings.push(format!(
                                "column `{column}` of type {native} is read as text"
                            ));
                        }
                        stream.columns.push(ColumnInfo {
                            name: column,
                            data_type: type_name(&data_type),
                            native_type: native,
                            nullable: nullable == "YES",
                            description: (!comment.is_empty()).then_some(comment),
                        });
                    }
                    if let Some(schema) = &schema {
                        stream.cursor_candidates = cursor_candidates(
                            schema
                                .fields()
                                .iter()
                                .map(|f| (f.name().as_str(), f.data_type())),
                        );
                    }
                    Ok::<_, Error>(stream)
                }
            })
            .buffered(8)
            .try_collect()
            .await
    }

    async fn row_estimate(&self, stream: &str) -> Option<u64> {
        let name = split_stream(stream).ok()?;
        let mut conn = self.conn.lock().await;
        conn.exec_first::<Option<u64>, _, _>(ROW_ESTIMATE, (name.namespace, name.table))
            .await
            .ok()
            .flatten()
            .flatten()
    }

    async fn table(&self, stream: &str) -> Result<Arc<dyn TableProvider>> {
        let name = split_stream(stream).map_err(|e| Error::config("/stream", e))?;
        let reference = match &name.namespace {
            Some(db) => TableReference::partial(db.as_str(), name.table.as_str()),
            None => TableReference::bare(name.table.as_str()),
        };
        // The table provider quotes names without escaping backticks: refuse
        // them, and let only tables that exist (asked with bound parameters) through.
        if stream.contains('`') {
            return Err(Error::config(
                "/stream",
                "stream names cannot contain a backtick",
            ));
        }
        let exists: Option<u8> = {
            let mut conn = self.conn.lock().await;
            conn.exec_first(TABLE_EXISTS, (name.namespace.clone(), name.table.clone()))
                .await
                .map_err(|e| classify(e, self.config.ssl_mode))?
        };
        if exists.is_none() {
            return Err(Error::config(
                "/stream",
                format!("stream `{stream}` not found"),
            ));
        }
        let pool = self.pool().await?;
        match MySQLTableFactory::new(pool).table_provider(reference).await {
            Ok(table) => Ok(crate::counted::CountSafe::wrap(table)),
            // The text path reads what the provider refuses.
            Err(e) if crate::source::is_unsupported_type(&e.to_string()) => {
                let columns: Vec<(String, String)> = {
                    let mut conn = self.conn.lock().await;
                    conn.exec(TABLE_COLUMNS, (name.namespace.clone(), name.table.clone()))
                        .await
                        .map_err(|e| classify(e, self.config.ssl_mode))?
                };
                crate::text_path::table(
                    crate::mysql_text::MysqlText(self.config.opts()),
                    &name,
                    &columns,
                )
            }
            Err(e) => Err(not_found_or(stream, e.to_string())),
        }
    }
}
