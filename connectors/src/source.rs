//! The connector protocol, after Airbyte's spec / check / discover / read, in Arrow.
//!
//! A [`Connector`] is a kind of source (PostgreSQL, files, an HTTP API). It
//! describes its configuration as JSON Schema ([`Connector::spec`]) and opens a
//! [`Source`] from a configuration. A source lists its streams with Arrow
//! schemas ([`Source::discover`]) and hands out a DataFusion `TableProvider`
//! per stream, which is how both live queries and reads push projection,
//! filters and limits down to where the data lives ([`read`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::DataType;
use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{SessionConfig, SessionContext};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// Why a source could not be used, in the terms a user acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The configuration is wrong: a missing field, an unknown database or table.
    Config,
    /// The source refused the credentials.
    Auth,
    /// The source could not be reached (refused, unresolvable, reset).
    Network,
    /// The credentials work but lack a privilege.
    Permission,
    /// The source did not answer within the configured time.
    Timeout,
    /// The source or Basin failed in a way the user cannot fix by editing the config.
    System,
}

impl FailureKind {
    /// The stored and shown spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Auth => "auth",
            Self::Network => "network",
            Self::Permission => "permission",
            Self::Timeout => "timeout",
            Self::System => "system",
        }
    }
}

/// A classified failure of a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SourceError {
    /// What kind of failure.
    pub kind: FailureKind,
    /// JSON pointer of the configuration field at fault (`/port`), when one is.
    pub field: Option<String>,
    /// What happened, for people.
    pub message: String,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{} ({field})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl Error {
    /// A configuration error at `field` (a JSON pointer).
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Source(SourceError {
            kind: FailureKind::Config,
            field: Some(field.into()),
            message: message.into(),
        })
    }

    /// A failure of `kind` not tied to one field.
    pub fn source(kind: FailureKind, message: impl Into<String>) -> Self {
        Self::Source(SourceError {
            kind,
            field: None,
            message: message.into(),
        })
    }

    /// How a user would classify this error.
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            Self::Source(e) => e.kind,
            Self::InvalidOption { .. } | Self::UnsupportedFormat(_) => FailureKind::Config,
            _ => FailureKind::System,
        }
    }
}

/// A configuration value that is secret: read from a string, never printed
/// (its `Debug` is `***`), so a logged source or plan cannot show it. Its
/// schema marks it `x-secret`, which is how a connector's secret fields are
/// known.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl schemars::JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "x-secret": true })
    }
}

impl Secret {
    /// The value, for the one place that sends it to the source.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// What a source needs from the server that opens it.
#[derive(Clone)]
pub struct SourceEnv {
    /// Directories local files may be read from; empty refuses all local paths.
    pub allowed_roots: Vec<PathBuf>,
    /// The runtime queries run with; file sources register their object stores in it.
    pub runtime: Arc<RuntimeEnv>,
    /// The IO runtime that owns database connections, whichever runtime asks for them.
    pub io: tokio::runtime::Handle,
}

impl fmt::Debug for SourceEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceEnv")
            .field("allowed_roots", &self.allowed_roots)
            .finish_non_exhaustive()
    }
}

/// One column of a stream: the Arrow type Basin reads it as, and the source's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// Arrow type, as Arrow spells it (`Int64`, `Decimal128(12, 2)`).
    #[serde(rename = "type")]
    pub data_type: String,
    /// The source's type name (`numeric(12,2)`, `varchar(40)`, `INTEGER`).
    pub native_type: String,
    /// Whether the column may hold nulls.
    pub nullable: bool,
    /// The source's comment on the column, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A table, view, file set or endpoint a source can read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StreamInfo {
    /// Name used in reads, syncs and SQL (`public.orders`, `orders`).
    pub name: String,
    /// Schema or database it lives in, when the source has such a level.
    pub namespace: Option<String>,
    /// Table (or file set, or endpoint) name.
    pub table: String,
    /// `table`, `view`, `files` or `endpoint`.
    pub kind: String,
    /// Columns in order.
    pub columns: Vec<ColumnInfo>,
    /// Primary key columns, when the source declares one.
    pub primary_key: Vec<String>,
    /// Columns an incremental sync may use as its cursor (timestamps, dates,
    /// integers), best first.
    pub cursor_candidates: Vec<String>,
    /// The source's own row estimate (statistics, not a count).
    pub row_estimate: Option<u64>,
    /// Columns Basin reads as text because it has no mapping for their type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl StreamInfo {
    /// The one stream of a source without namespaces (files, an endpoint),
    /// described by its Arrow schema; `native` names each column's source type.
    pub fn single(
        name: &str,
        kind: &str,
        schema: &arrow::datatypes::Schema,
        native: impl Fn(&DataType) -> String,
    ) -> Self {
        Self {
            name: name.to_owned(),
            namespace: None,
            table: name.to_owned(),
            kind: kind.to_owned(),
            columns: schema
                .fields()
                .iter()
                .map(|f| ColumnInfo {
                    name: f.name().clone(),
                    data_type: type_name(f.data_type()),
                    native_type: native(f.data_type()),
                    nullable: f.is_nullable(),
                    description: None,
                })
                .collect(),
            primary_key: Vec::new(),
            cursor_candidates: cursor_candidates(
                schema
                    .fields()
                    .iter()
                    .map(|f| (f.name().as_str(), f.data_type())),
            ),
            row_estimate: None,
            warnings: Vec::new(),
        }
    }
}

/// The error for a stream a single-stream source does not have.
pub(crate) fn not_this_stream(stream: &str, has: &str) -> Error {
    Error::config(
        "/stream",
        format!("stream `{stream}` not found: this source has `{has}`"),
    )
}

/// Whether a table provider refused a table for a column type it cannot
/// map (its error text is all there is to go on).
pub(crate) fn is_unsupported_type(message: &str) -> bool {
    let message = message.to_lowercase();
    message.contains("unsupported data type") || message.contains("unsupported postgresql type")
}

/// The verdict of a [`check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ConnectionTestStatus)]
pub enum CheckStatus {
    /// The source answered with the configuration as given.
    Succeeded,
    /// It did not; `failure` says why.
    Failed,
}

/// What [`check`] found.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = ConnectionTestOutcome)]
pub struct CheckOutcome {
    /// Whether the source answered.
    pub status: CheckStatus,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureKind>,
    /// JSON pointer of the field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Time from start to verdict.
    pub latency_ms: u64,
}

impl CheckOutcome {
    fn from_result(result: Result<()>, started: Instant) -> Self {
        let latency_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(()) => Self {
                status: CheckStatus::Succeeded,
                failure: None,
                field: None,
                message: None,
                latency_ms,
            },
            Err(err) => {
                let kind = err.failure_kind();
                let (field, message) = match err {
                    Error::Source(e) => (e.field, e.message),
                    Error::InvalidOption { option, message } => {
                        (Some(format!("/{option}")), message)
                    }
                    other => (None, other.to_string()),
                };
                Self {
                    status: CheckStatus::Failed,
                    failure: Some(kind),
                    field,
                    message: Some(message),
                    latency_ms,
                }
            }
        }
    }
}

/// A kind of source.
#[async_trait]
pub trait Connector: Send + Sync + fmt::Debug {
    /// The stable type name (`postgres`, `files`).
    fn kind(&self) -> &'static str;
    /// A human title.
    fn title(&self) -> &'static str;
    /// One sentence on what it reads.
    fn description(&self) -> &'static str;
    /// The configuration's JSON Schema (2020-12) with `x-secret`, `x-order`,
    /// `x-group`, so a frontend can draw the form; generated from the
    /// configuration type (see [`crate::spec`]).
    fn spec(&self) -> Value;
    /// JSON pointers of the fields whose values are secrets (stored sealed,
    /// never returned): those the spec marks `x-secret`.
    fn secret_fields(&self) -> Vec<String> {
        crate::spec::secret_pointers(&self.spec())
    }
    /// JSON pointers of the fields that say where the source is (host,
    /// URL, endpoint, the kind of credentials): when one changes, stored
    /// secrets are dropped rather than sent to the new place.
    fn destination_fields(&self) -> &'static [&'static str];
    /// Checks the configuration's shape without any IO.
    fn validate(&self, config: &Value) -> Result<()>;
    /// Opens a source: connects and proves the configuration works.
    async fn connect(&self, config: &Value, env: &SourceEnv) -> Result<Arc<dyn Source>>;
}

/// An opened source.
#[async_trait]
pub trait Source: Send + Sync + fmt::Debug {
    /// Checks what connecting alone does not prove (the configured tables exist
    /// and are readable).
    async fn check(&self) -> Result<()>;
    /// Lists the streams.
    async fn discover(&self) -> Result<Vec<StreamInfo>>;
    /// The stream as a table DataFusion can scan, pushing filters, projection
    /// and limits to the source where the source can take them.
    async fn table(&self, stream: &str) -> Result<Arc<dyn TableProvider>>;
    /// The source's own estimate of the stream's rows (statistics, not a
    /// count), for progress; `None` when it keeps none.
    async fn row_estimate(&self, _stream: &str) -> Option<u64> {
        None
    }
}

/// Validates, connects and checks `config`, classifying any failure; never
/// takes longer than `timeout`.
pub async fn check(
    connector: &dyn Connector,
    config: &Value,
    env: &SourceEnv,
    timeout: Duration,
) -> CheckOutcome {
    let started = Instant::now();
    let result = async {
        connector.validate(config)?;
        let source = with_timeout(timeout, connector.connect(config, env)).await?;
        with_timeout(timeout.saturating_sub(started.elapsed()), source.check()).await
    }
    .await;
    CheckOutcome::from_result(result, started)
}

/// Runs `work`, failing with a timeout error if it takes longer than `limit`.
pub async fn with_timeout<T>(limit: Duration, work: impl Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(Error::source(
            FailureKind::Timeout,
            format!("no answer within {} ms", limit.as_millis()),
        )),
    }
}

/// What to read of a stream.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Columns to read (all when empty).
    pub columns: Vec<String>,
    /// A SQL boolean expression over the stream's columns.
    pub filter: Option<String>,
    /// At most this many rows.
    pub limit: Option<usize>,
}

/// Reads a stream as Arrow batches through DataFusion, so the source's table
/// provider receives the projection, filter and limit; memory stays bounded
/// by the batch size.
pub async fn read(
    source: &dyn Source,
    stream: &str,
    options: &ReadOptions,
    runtime: Arc<RuntimeEnv>,
) -> Result<SendableRecordBatchStream> {
    let table = source.table(stream).await?;
    let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
    let mut frame = ctx.read_table(table)?;
    if !options.columns.is_empty() {
        let columns: Vec<&str> = options.columns.iter().map(String::as_str).collect();
        frame = frame.select_columns(&columns)?;
    }
    if let Some(filter) = &options.filter {
        let predicate = frame.parse_sql_expr(filter)?;
        frame = frame.filter(predicate)?;
    }
    if let Some(limit) = options.limit {
        frame = frame.limit(0, Some(limit))?;
    }
    Ok(frame.execute_stream().await?)
}

/// An Arrow type as schemas show it: Arrow's own spelling (`Int64`,
/// `Decimal128(12, 2)`), the same as dataset schemas, and parseable back.
pub fn type_name(data_type: &DataType) -> String {
    data_type.to_string()
}

/// Whether a column of this type makes a sensible incremental cursor.
pub fn is_cursor_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Timestamp(..)
            | DataType::Date32
            | DataType::Date64
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt32
            | DataType::UInt64
    )
}

/// Orders cursor candidates: timestamps first (the usual `updated_at`), then dates, then integers.
pub fn cursor_candidates<'a>(
    columns: impl Iterator<Item = (&'a str, &'a DataType)>,
) -> Vec<String> {
    let mut found: Vec<(u8, String)> = columns
        .filter(|(_, t)| is_cursor_type(t))
        .map(|(name, t)| {
            let rank = match t {
                DataType::Timestamp(..) => 0,
                DataType::Date32 | DataType::Date64 => 1,
                _ => 2,
            };
            (rank, name.to_owned())
        })
        .collect();
    found.sort_by_key(|(rank, _)| *rank);
    found.into_iter().map(|(_, name)| name).collect()
}

/// Reads a typed config, naming the field at fault as a JSON pointer.
pub fn parse_config<T: serde::de::DeserializeOwned>(config: &Value) -> Result<T> {
    serde_path_to_error::deserialize::<_, T>(config).map_err(|e| {
        let pointer = json_pointer(&e.path().to_string());
        Error::config(pointer, e.inner().to_string())
    })
}

/// `a.b[0]` (serde_path_to_error's path) as the JSON pointer `/a/b/0`.
fn json_pointer(path: &str) -> String {
    if path == "." || path.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    for part in path.split('.') {
        let mut rest = part;
        let name_end = rest.find('[').unwrap_or(rest.len());
        if name_end > 0 {
            out.push('/');
            out.push_str(&rest[..name_end]);
        }
        rest = &rest[name_end..];
        while let Some(close) = rest.find(']') {
            out.push('/');
            out.push_str(&rest[1..close]);
            rest = &rest[close + 1..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_json_pointers() {
        assert_eq!(json_pointer("port"), "/port");
        assert_eq!(json_pointer("auth.value"), "/auth/value");
        assert_eq!(json_pointer("tables[2]"), "/tables/2");
        assert_eq!(json_pointer("."), "");
    }

    #[test]
    fn config_errors_name_the_field() {
        #[derive(Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Config {
            host: String,
            port: u16,
        }
        let err =
            parse_config::<Config>(&serde_json::json!({"host": "h", "port": "x"})).unwrap_err();
        let Error::Source(e) = err else { panic!() };
        assert_eq!(e.kind, FailureKind::Config);
        assert_eq!(e.field.as_deref(), Some("/port"));
    }

    #[test]
    fn timestamps_lead_cursor_candidates() {
        let id = DataType::Int64;
        let at = DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None);
        let text = DataType::Utf8;
        let found = cursor_candidates([("id", &id), ("name", &text), ("at", &at)].into_iter());
        assert_eq!(found, ["at", "id"]);
    }
}
