//! SQLite files on the server's disk, inside the allowed import roots, read
//! through datafusion-table-providers with filters and limits pushed into SQL.
//!
//! The file is only read: Basin does not change its journal mode or any other
//! setting.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion_table_providers::sql::db_connection_pool::sqlitepool::SqliteConnectionPool;
use datafusion_table_providers::sql::db_connection_pool::{JoinPushDown, Mode};
use datafusion_table_providers::sqlite::SqliteTableFactory;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::postgres::not_found_or;
use crate::source::{
    ColumnInfo, Connector, FailureKind, Source, SourceEnv, StreamInfo, cursor_candidates,
    parse_config, type_name,
};
use crate::sql_names::split_stream;
use crate::{Error, Result};

/// The SQLite connector.
#[derive(Debug, Default)]
pub struct Sqlite;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "SQLite")]
struct Config {
    /// Absolute path on the server, inside `ingest.allowed_roots`.
    #[schemars(title = "File path", extend("x-group" = "source"))]
    path: String,
    #[serde(default)]
    #[schemars(title = "Tables that must be readable", extend("x-group" = "streams"))]
    tables: Vec<String>,
}

/// Resolves `path` and refuses it unless it lies inside one of `roots`.
///
/// A path outside the roots is refused before the file system is asked
/// anything (`..` is resolved lexically first), so the answer never reveals
/// what exists outside them; symlinks are then resolved and checked again.
pub(crate) fn confined_path(path: &str, roots: &[PathBuf], field: &str) -> Result<PathBuf> {
    let given = Path::new(path);
    if !given.is_absolute() {
        return Err(Error::config(field, "the path must be absolute"));
    }
    let outside = || Error::config(field, "the path is outside the allowed import roots");
    let lexical = crate::file::lexically_normal(given);
    if !roots.iter().any(|root| lexical.starts_with(root)) {
        return Err(outside());
    }
    let resolved = std::fs::canonicalize(&lexical).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => Error::source(
            FailureKind::Permission,
            format!("{path}: permission denied"),
        ),
        _ => Error::config(field, format!("{path} does not exist")),
    })?;
    if !roots.iter().any(|root| resolved.starts_with(root)) {
        return Err(outside());
    }
    Ok(resolved)
}

#[async_trait]
impl Connector for Sqlite {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn title(&self) -> &'static str {
        "SQLite"
    }

    fn description(&self) -> &'static str {
        "Tables and views of a SQLite file on the server, inside the allowed import roots."
    }

    fn spec(&self) -> Value {
        crate::spec::spec_of::<Config>()
    }

    fn destination_fields(&self) -> &'static [&'static str] {
        &["/path"]
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
        let path = confined_path(&config.path, &env.allowed_roots, "/path")?;
        let probe = path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = rusqlite::Connection::open_with_flags(
                &probe,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .map_err(sqlite_error)?;
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
                .map_err(sqlite_error)
        })
        .await
        .map_err(|e| Error::source(FailureKind::System, e.to_string()))??;
        let text_path = path.to_string_lossy().into_owned();
        // A read-only URI: the pool must neither create nor change the file.
        let uri = format!(
            "file:{}?mode=ro",
            text_path.replace('?', "%3f").replace('#', "%23")
        );
        let pool = SqliteConnectionPool::new_with_schemas(
            &uri,
            Mode::File,
            JoinPushDown::AllowedFor(text_path.clone()),
            Vec::new(),
            Duration::from_secs(5),
            Arc::default(),
        )
        .await
        .map_err(|e| Error::source(FailureKind::System, e.to_string()))?;
        Ok(Arc::new(SqliteSource {
            tables: config.tables,
            path,
            pool: Arc::new(pool),
        }))
    }
}

fn sqlite_error(err: rusqlite::Error) -> Error {
    match err.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => {
            Error::config("/path", "the file is not a SQLite database")
        }
        Some(rusqlite::ErrorCode::PermissionDenied | rusqlite::ErrorCode::CannotOpen) => {
            Error::source(FailureKind::Permission, err.to_string())
        }
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            Error::source(FailureKind::Timeout, err.to_string())
        }
        _ if err.to_string().contains("no such table") => {
            Error::source(FailureKind::Config, err.to_string())
        }
        _ => Error::source(FailureKind::System, err.to_string()),
    }
}

/// An open SQLite file.
struct SqliteSource {
    tables: Vec<String>,
    path: PathBuf,
    pool: Arc<SqliteConnectionPool>,
}

impl std::fmt::Debug for SqliteSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSource")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// `(table, kind, [(column, declared type, nullable, pk position)])`.
type TableRows = Vec<(String, String, Vec<(String, String, bool, i64)>)>;

fn list_tables(path: &Path) -> Result<TableRows> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sqlite_error)?;
    let mut tables = conn
        .prepare(
            "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') \
             AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .map_err(sqlite_error)?;
    let names: Vec<(String, String)> = tables
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .map_err(sqlite_error)?
        .collect::<Result<_, _>>()
        .map_err(sqlite_error)?;
    let mut out = Vec::with_capacity(names.len());
    for (name, kind) in names {
        let mut info = conn
            .prepare("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1)")
            .map_err(sqlite_error)?;
        let columns = info
            .query_map([&name], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)? == 0,
                    row.get::<_, i64>(3)?,
                ))
            })
            .map_err(sqlite_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sqlite_error)?;
        out.push((name, kind, columns));
    }
    Ok(out)
}

#[async_trait]
impl Source for SqliteSource {
    async fn check(&self) -> Result<()> {
        let path = self.path.clone();
        let tables = self.tables.clone();
        tokio::task::spawn_blocking(move || {
            let conn = rusqlite::Connection::open_with_flags(
                &path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .map_err(sqlite_error)?;
            for (i, table) in tables.iter().enumerate() {
                let name =
                    split_stream(table).map_err(|e| Error::config(format!("/tables/{i}"), e))?;
                let sql = format!("SELECT 1 FROM {} LIMIT 0", name.quoted('"'));
                conn.prepare(&sql).map_err(|e| match sqlite_error(e) {
                    Error::Source(mut e) if e.kind == FailureKind::Config => {
                        e.field = Some(format!("/tables/{i}"));
                        Error::Source(e)
                    }
                    other => other,
                })?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::source(FailureKind::System, e.to_string()))?
    }

    async fn discover(&self) -> Result<Vec<StreamInfo>> {
        let path = self.path.clone();
        let tables = tokio::task::spawn_blocking(move || list_tables(&path))
            .await
            .map_err(|e| Error::source(FailureKind::System, e.to_string()))??;
        let mut streams = Vec::with_capacity(tables.len());
        for (table, kind, columns) in tables {
            let schema = self.table(&table).await.ok().map(|t| t.schema());
            let mut primary: Vec<(i64, String)> = columns
                .iter()
                .filter(|c| c.3 > 0)
                .map(|c| (c.3, c.0.clone()))
                .collect();
            primary.sort();
            let mut warnings = Vec::new();
            let infos = columns
                .into_iter()
                .map(|(name, declared, nullable, _)| {
                    let data_type = schema
                        .as_ref()
                        .and_then(|s| s.field_with_name(&name).ok())
                        .map(|f| f.data_type().clone());
                    if data_type.is_none() {
                        warnings.push(format!(
                            "column `{name}` of type {declared} is read as text"
                        ));
                    }
                    ColumnInfo {
                        name,
                        data_type: type_name(
                            &data_type.unwrap_or(arrow::datatypes::DataType::Utf8),
                        ),
                        native_type: declared,
                        nullable,
                        description: None,
                    }
                })
                .collect();
            streams.push(StreamInfo {
                name: table.clone(),
                namespace: None,
                table,
                kind: kind.clone(),
                columns: infos,
                primary_key: primary.into_iter().map(|(_, c)| c).collect(),
                cursor_candidates: schema
                    .as_ref()
                    .map(|s| {
                        cursor_candidates(
                            s.fields()
                                .iter()
                                .map(|f| (f.name().as_str(), f.data_type())),
                        )
                    })
                    .unwrap_or_default(),
                row_estimate: None,
                warnings,
            });
        }
        Ok(streams)
    }

    async fn table(&self, stream: &str) -> Result<Arc<dyn TableProvider>> {
        let name = split_stream(stream).map_err(|e| Error::config("/stream", e))?;
        // Only tables that exist (asked with a bound parameter) reach the
        // table provider, which builds SQL from the name.
        let path = self.path.clone();
        let table = name.table.clone();
        let exists = tokio::task::spawn_blocking(move || {
            let conn = rusqlite::Connection::open_with_flags(
                &path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .map_err(sqlite_error)?;
            conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?1",
                [&table],
                |row| row.get::<_, i64>(0),
            )
            .map_err(sqlite_error)
        })
        .await
        .map_err(|e| Error::source(FailureKind::System, e.to_string()))??;
        if exists == 0 {
            return Err(Error::config(
                "/stream",
                format!("stream `{stream}` not found"),
            ));
        }
        SqliteTableFactory::new(self.pool.clone())
            .table_provider(TableReference::bare(name.table.as_str()))
            .await
            .map(crate::counted::CountSafe::wrap)
            .map_err(|e| not_found_or(stream, e.to_string()))
    }
}
