//! The engine's error type: one enum whose variants are the kinds of failure a
//! caller must tell apart. Transports map each variant to a status exactly once.

use std::fmt;

use datafusion::error::DataFusionError;
use serde::Serialize;

use basin_connectors::file::RejectedRow;
use basin_connectors::{FailureKind, SourceError};

pub use basin_analytics::AnalyticsProblem;
pub use basin_catalog::Entity;

/// A position in SQL text, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SqlLocation {
    /// Line, starting at 1.
    pub line: u64,
    /// Column, starting at 1.
    pub column: u64,
}

/// Rows refused during an ingest, summarised for the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MalformedRows {
    /// How many rows were refused.
    pub count: u64,
    /// The first refused rows, with line numbers and reasons.
    pub rows: Vec<RejectedRow>,
}

/// The stable code of "not found" for `entity`.
fn not_found_code(entity: Entity) -> &'static str {
    match entity {
        Entity::Dataset => "dataset_not_found",
        Entity::Job => "job_not_found",
        Entity::User => "user_not_found",
        Entity::ApiKey => "api_key_not_found",
        Entity::Session => "session_not_found",
        Entity::Connection => "connection_not_found",
        Entity::Connector => "connector_not_found",
        Entity::Pipeline => "pipeline_not_found",
        Entity::Run => "run_not_found",
        Entity::Check => "check_not_found",
    }
}

/// The stable code of "already exists" for `entity`.
fn exists_code(entity: Entity) -> &'static str {
    match entity {
        Entity::Dataset => "dataset_exists",
        Entity::Job => "job_exists",
        Entity::User => "user_exists",
        Entity::ApiKey => "api_key_exists",
        Entity::Session => "session_exists",
        Entity::Connection => "connection_exists",
        Entity::Connector => "connector_exists",
        Entity::Pipeline => "pipeline_exists",
        Entity::Run => "run_exists",
        Entity::Check => "check_exists",
    }
}

/// The kinds of failure a protocol tells apart: each door maps a kind to
/// its status once (HTTP status, gRPC code); codes and hints stay per variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed or names something invalid.
    InvalidInput,
    /// The request is well-formed but its content cannot be processed
    /// (malformed rows, a schema that does not fit, an invalid pipeline).
    Unprocessable,
    /// The input's format is not one Basin reads.
    UnsupportedFormat,
    /// No or wrong credentials.
    Unauthenticated,
    /// The caller may not do this.
    Forbidden,
    /// The thing does not exist (or the caller may not know it does).
    NotFound,
    /// The thing exists already.
    AlreadyExists,
    /// The thing is in a state that does not allow the request.
    FailedPrecondition,
    /// The thing changed since the caller read it.
    Conflict,
    /// A user canceled the operation.
    Canceled,
    /// The input is larger than allowed.
    TooLarge,
    /// A limit on resources or request rate was reached; retrying later may work.
    Exhausted,
    /// The operation ran past its deadline.
    Timeout,
    /// A source could not be reached or failed.
    SourceUnavailable,
    /// A source refused Basin's credentials or privileges.
    SourceRefused,
    /// A failure inside Basin; details are logged, not shown.
    Internal,
}

/// Everything the engine can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// No such thing exists (or the caller may not know it does).
    #[error("{} `{name}` not found", entity.label())]
    NotFound {
        /// What kind of thing.
        entity: Entity,
        /// The name or id asked for.
        name: String,
    },
    /// A thing of that kind and name exists already.
    #[error("{} `{name}` already exists", entity.label())]
    AlreadyExists {
        /// What kind of thing.
        entity: Entity,
        /// The name taken.
        name: String,
    },
    /// A name breaks the identifier rules.
    #[error(
        "invalid identifier {name:?}: use lowercase letters, digits and _, starting with a letter or _, at most 63 characters"
    )]
    InvalidIdentifier {
        /// The name as given.
        name: String,
    },
    /// The dataset has no such version (or none at that time).
    #[error("{0}")]
    VersionNotFound(String),
    /// The job has finished and cannot change state.
    #[error("job `{id}` is already {status}")]
    JobFinished {
        /// The job's id.
        id: String,
        /// Its final status.
        status: String,
    },
    /// A request parameter or body field is invalid.
    #[error("{0}")]
    InvalidInput(String),
    /// The input's format is unknown or unsupported.
    #[error("{0}")]
    UnsupportedFormat(String),
    /// Rows could not be parsed under the `fail` policy; nothing was written.
    #[error("{} malformed row(s); nothing was written", .0.count)]
    MalformedRows(MalformedRows),
    /// The file as a whole is unreadable as the format it claims.
    #[error("{0}")]
    MalformedInput(String),
    /// The new data's schema does not fit the dataset's.
    #[error("schema mismatch: {0}")]
    SchemaMismatch(String),
    /// A server-side path lies outside the configured import roots.
    #[error("path {0:?} is outside the allowed import roots")]
    PathNotAllowed(String),
    /// A server-side path (or a URL) to read from does not exist.
    #[error("source {0:?} does not exist")]
    PathNotFound(String),
    /// A remote source could not be fetched (unreachable, or it answered an error).
    #[error("source unavailable: {0}")]
    SourceUnavailable(String),
    /// The input is larger than the configured limit.
    #[error("input exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// SQL that does not parse or plan.
    #[error("{message}")]
    Sql {
        /// DataFusion's message.
        message: String,
        /// Where in the SQL text, when known.
        location: Option<SqlLocation>,
    },
    /// The query needed more memory than the pool allows.
    #[error("resources exhausted: {0}")]
    ResourcesExhausted(String),
    /// The operation ran past its deadline.
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// The operation was canceled by a user.
    #[error("canceled")]
    Canceled,
    /// The caller is not authenticated (no or wrong credentials).
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is authenticated but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Too many requests or failed logins; try again after `retry_after_secs`.
    #[error("{message}")]
    RateLimited {
        /// What was limited.
        message: String,
        /// Seconds until a retry may succeed (at least 1).
        retry_after_secs: u64,
    },
    /// The user has no grant on that dataset.
    #[error("`{username}` has no grant on `{dataset}`")]
    GrantNotFound {
        /// The user.
        username: String,
        /// The dataset.
        dataset: String,
    },
    /// A new password breaks the password policy.
    #[error("{0}")]
    WeakPassword(String),
    /// The change would leave no enabled admin.
    #[error("{0}")]
    LastAdmin(String),
    /// A source failed: its configuration, credentials, network, privileges or time.
    #[error("{0}")]
    Source(SourceError),
    /// The thing changed since the caller read it; read it again and retry.
    #[error("{0}")]
    Conflict(String),
    /// A sync's stream no longer matches its dataset and the policy refuses the change.
    #[error("{message}")]
    SchemaChanged {
        /// What happened.
        message: String,
        /// The changes, as the schema diff shows them.
        changes: serde_json::Value,
    },
    /// The pipeline definition does not validate; nothing was saved or run.
    #[error("{message}")]
    PipelineInvalid {
        /// A summary.
        message: String,
        /// Every diagnostic, with step, line and column.
        diagnostics: serde_json::Value,
    },
    /// The run is in a state that does not allow the request.
    #[error("{0}")]
    RunState(String),
    /// An analytics request (time series, check, profile) asks for something
    /// the data cannot give; `problem` says what.
    #[error("{message}")]
    Analytics {
        /// Which rule the request broke.
        problem: AnalyticsProblem,
        /// What was wrong, naming the field or column.
        message: String,
    },
    /// The dataset has not been profiled yet.
    #[error("dataset `{0}` has no profile yet; POST to its profile to compute one")]
    ProfileNotFound(String),
    /// A failure inside Basin or its storage; details are logged, not shown.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result with the engine's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The stable, documented code of this kind of error (`dataset_not_found`, `sql_error`, ...).
    ///
    /// Codes are part of Basin's contract: every transport shows the same code
    /// for the same failure, and a code never changes meaning.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { entity, .. } => not_found_code(*entity),
            Self::AlreadyExists { entity, .. } => exists_code(*entity),
            Self::InvalidIdentifier { .. } => "invalid_identifier",
            Self::VersionNotFound(_) => "version_not_found",
            Self::JobFinished { .. } => "job_finished",
            Self::InvalidInput(_) => "invalid_input",
            Self::UnsupportedFormat(_) => "unsupported_format",
            Self::MalformedRows(_) => "malformed_rows",
            Self::MalformedInput(_) => "malformed_input",
            Self::SchemaMismatch(_) => "schema_mismatch",
            Self::PathNotAllowed(_) => "path_not_allowed",
            Self::PathNotFound(_) => "source_not_found",
            Self::SourceUnavailable(_) => "source_unavailable",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::Sql { .. } => "sql_error",
            Self::ResourcesExhausted(_) => "resources_exhausted",
            Self::Timeout(_) => "timeout",
            Self::Canceled => "canceled",
            Self::Unauthenticated(_) => "unauthenticated",
            Self::Forbidden(_) => "forbidden",
            Self::RateLimited { .. } => "rate_limited",
            Self::GrantNotFound { .. } => "grant_not_found",
            Self::WeakPassword(_) => "weak_password",
            Self::LastAdmin(_) => "last_admin",
            Self::Source(e) => match e.kind {
                FailureKind::Config => "source_config_invalid",
                FailureKind::Auth => "source_auth_failed",
                FailureKind::Network => "source_unreachable",
                FailureKind::Permission => "source_permission_denied",
                FailureKind::Timeout => "source_timeout",
                FailureKind::System => "source_error",
            },
            Self::SchemaChanged { .. } => "schema_changed",
            Self::Conflict(_) => "conflict",
            Self::PipelineInvalid { .. } => "pipeline_invalid",
            Self::RunState(_) => "run_state",
            Self::Analytics { problem, .. } => problem.code(),
            Self::ProfileNotFound(_) => "profile_not_found",
            Self::Internal(_) => "internal",
        }
    }

    /// The kind of failure, which each protocol maps to its status.
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind as K;
        match self {
            Self::NotFound { .. }
            | Self::VersionNotFound(_)
            | Self::PathNotFound(_)
            | Self::GrantNotFound { .. }
            | Self::ProfileNotFound(_) => K::NotFound,
            Self::AlreadyExists { .. } => K::AlreadyExists,
            Self::InvalidIdentifier { .. }
            | Self::InvalidInput(_)
            | Self::Sql { .. }
            | Self::MalformedInput(_)
            | Self::WeakPassword(_)
            | Self::Analytics { .. } => K::InvalidInput,
            Self::MalformedRows(_) | Self::SchemaMismatch(_) | Self::PipelineInvalid { .. } => {
                K::Unprocessable
            }
            Self::UnsupportedFormat(_) => K::UnsupportedFormat,
            Self::PathNotAllowed(_) | Self::Forbidden(_) => K::Forbidden,
            Self::Unauthenticated(_) => K::Unauthenticated,
            Self::JobFinished { .. }
            | Self::LastAdmin(_)
            | Self::RunState(_)
            | Self::SchemaChanged { .. } => K::FailedPrecondition,
            Self::Conflict(_) => K::Conflict,
            Self::Canceled => K::Canceled,
            Self::PayloadTooLarge { .. } => K::TooLarge,
            Self::ResourcesExhausted(_) | Self::RateLimited { .. } => K::Exhausted,
            Self::Timeout(_) => K::Timeout,
            Self::SourceUnavailable(_) => K::SourceUnavailable,
            Self::Source(e) => match e.kind {
                FailureKind::Config => K::InvalidInput,
                FailureKind::Auth | FailureKind::Permission => K::SourceRefused,
                FailureKind::Network | FailureKind::System => K::SourceUnavailable,
                FailureKind::Timeout => K::Timeout,
            },
            Self::Internal(_) => K::Internal,
        }
    }

    /// No such `entity` called `name`.
    pub fn not_found(entity: Entity, name: impl Into<String>) -> Self {
        Self::NotFound {
            entity,
            name: name.into(),
        }
    }

    /// An `entity` called `name` exists already.
    pub fn already_exists(entity: Entity, name: impl Into<String>) -> Self {
        Self::AlreadyExists {
            entity,
            name: name.into(),
        }
    }

    /// The message a caller may see: internal details are replaced, the rest is as displayed.
    pub fn public_message(&self) -> String {
        match self {
            Self::Internal(_) => "internal error; see the server log".into(),
            other => other.to_string(),
        }
    }

    /// Structured details for callers (bad rows, SQL position), when the kind has any.
    pub fn details(&self) -> Option<serde_json::Value> {
        match self {
            Self::MalformedRows(rows) => serde_json::to_value(rows).ok(),
            Self::Sql {
                location: Some(location),
                ..
            } => serde_json::to_value(location).ok(),
            Self::RateLimited {
                retry_after_secs, ..
            } => Some(serde_json::json!({ "retry_after_secs": retry_after_secs })),
            Self::Source(e) => Some(serde_json::json!({
                "failure": e.kind,
                "field": e.field,
            })),
            Self::SchemaChanged { changes, .. } => Some(serde_json::json!({ "changes": changes })),
            Self::PipelineInvalid { diagnostics, .. } => {
                Some(serde_json::json!({ "diagnostics": diagnostics }))
            }
            _ => None,
        }
    }

    /// `{code, message, details}` with internals hidden, for job records and logs shown to users.
    pub fn to_public_json(&self) -> serde_json::Value {
        serde_json::json!({
            "code": self.code(),
            "message": self.public_message(),
            "details": self.details(),
        })
    }

    pub(crate) fn internal(context: &str, err: impl fmt::Display) -> Self {
        Self::Internal(format!("{context}: {err}"))
    }
}

impl From<DataFusionError> for Error {
    fn from(err: DataFusionError) -> Self {
        // Engine errors raised inside DataFusion callbacks come back wrapped.
        if let DataFusionError::External(inner) = err.find_root() {
            if let Some(own) = inner.downcast_ref::<Error>() {
                return own.clone();
            }
            if let Some(basin_connectors::Error::Source(source)) =
                inner.downcast_ref::<basin_connectors::Error>()
            {
                return Self::Source(source.clone());
            }
        }
        let location = sql_location(&err);
        match err.find_root() {
            DataFusionError::SQL(parse, _) => Self::Sql {
                message: parser_message(parse),
                location,
            },
            DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => Self::Sql {
                message: strip_prefixes(&err.find_root().to_string()),
                location,
            },
            DataFusionError::NotImplemented(msg) => Self::Sql {
                message: format!("not supported: {msg}"),
                location,
            },
            DataFusionError::ResourcesExhausted(msg) => Self::ResourcesExhausted(msg.clone()),
            DataFusionError::ParquetError(e) => {
                Self::MalformedInput(format!("invalid Parquet: {e}"))
            }
            DataFusionError::ArrowError(arrow_err, _) => match arrow_err.as_ref() {
                arrow::error::ArrowError::ParseError(msg)
                | arrow::error::ArrowError::CsvError(msg)
                | arrow::error::ArrowError::JsonError(msg)
                | arrow::error::ArrowError::CastError(msg)
                | arrow::error::ArrowError::IpcError(msg)
                | arrow::error::ArrowError::InvalidArgumentError(msg) => {
                    Self::MalformedInput(msg.clone())
                }
                arrow::error::ArrowError::DivideByZero => Self::Sql {
                    message: "division by zero".into(),
                    location,
                },
                other => Self::internal("arrow", other),
            },
            DataFusionError::Execution(msg)
                if msg.contains("Cast error") || msg.contains("cast") =>
            {
                Self::Sql {
                    message: msg.clone(),
                    location,
                }
            }
            other => Self::internal("datafusion", other),
        }
    }
}

impl From<basin_connectors::Error> for Error {
    fn from(err: basin_connectors::Error) -> Self {
        use basin_connectors::Error as C;
        match err {
            C::UnsupportedFormat(msg) => Self::UnsupportedFormat(msg),
            C::InvalidOption { option, message } => {
                Self::InvalidInput(format!("option `{option}`: {message}"))
            }
            C::TooLarge { limit } => Self::PayloadTooLarge { limit },
            C::Malformed(msg) => Self::MalformedInput(msg),
            C::Arrow(e) => Self::MalformedInput(e.to_string()),
            C::DataFusion(e) => e.into(),
            C::Io(e) => Self::internal("io", e),
            C::Source(e) => Self::Source(e),
        }
    }
}

impl From<deltalake_core::DeltaTableError> for Error {
    fn from(err: deltalake_core::DeltaTableError) -> Self {
        use deltalake_core::DeltaTableError as D;
        match err {
            D::SchemaMismatch { msg } => Self::SchemaMismatch(msg),
            D::InvalidVersion(v) => Self::VersionNotFound(format!("version {v} does not exist")),
            D::InvalidDateTimeString { source } => {
                Self::InvalidInput(format!("invalid timestamp: {source}"))
            }
            D::Arrow {
                source: arrow::error::ArrowError::SchemaError(msg),
            } => Self::SchemaMismatch(msg),
            D::Arrow { source } => Self::MalformedInput(source.to_string()),
            // Delta reports these only as text; the tests below pin real ones.
            D::Generic(msg) if msg.contains("Schema") || msg.contains("schema") => {
                Self::SchemaMismatch(msg)
            }
            // The rows themselves failed (a cast, a parse) while the write ran:
            // the caller's data, not Basin, is at fault.
            D::Generic(msg) if msg.contains("Cast error") || msg.contains("Parser error") => {
                Self::MalformedInput(msg.trim_start_matches("Arrow error: ").to_owned())
            }
            other => Self::internal("delta", other),
        }
    }
}

impl From<basin_analytics::Error> for Error {
    fn from(err: basin_analytics::Error) -> Self {
        use basin_analytics::Error as A;
        match err {
            A::Refused { problem, message } => Self::Analytics { problem, message },
            A::InvalidInput(message) => Self::InvalidInput(message),
            A::Internal(message) => Self::Internal(message),
        }
    }
}

impl From<basin_pipeline_model::Error> for Error {
    fn from(err: basin_pipeline_model::Error) -> Self {
        use basin_pipeline_model::Error as P;
        match err {
            P::InvalidInput(message) => Self::InvalidInput(message),
            P::Invalid {
                message,
                diagnostics,
            } => Self::PipelineInvalid {
                message,
                diagnostics: serde_json::to_value(&diagnostics).unwrap_or_default(),
            },
        }
    }
}

impl From<basin_auth::Error> for Error {
    fn from(err: basin_auth::Error) -> Self {
        use basin_auth::Error as A;
        match err {
            A::Unauthenticated(message) => Self::Unauthenticated(message),
            A::Forbidden(message) => Self::Forbidden(message),
            A::InvalidInput(message) => Self::InvalidInput(message),
            A::WeakPassword(message) => Self::WeakPassword(message),
            A::RateLimited {
                message,
                retry_after_secs,
            } => Self::RateLimited {
                message,
                retry_after_secs,
            },
            A::Internal(message) => Self::Internal(message),
        }
    }
}

impl From<basin_sql::InvalidName> for Error {
    fn from(err: basin_sql::InvalidName) -> Self {
        Self::InvalidIdentifier { name: err.name }
    }
}

impl From<basin_catalog::Error> for Error {
    fn from(err: basin_catalog::Error) -> Self {
        use basin_catalog::Error as C;
        match err {
            C::AlreadyExists { entity, name } => Self::AlreadyExists { entity, name },
            C::Conflict(message) => Self::Conflict(message),
            C::InvalidInput(message) => Self::InvalidInput(message),
            other @ (C::Corrupt { .. } | C::Migration(_) | C::Database(_)) => {
                Self::Internal(other.to_string())
            }
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Self::internal("io", err)
    }
}

/// DataFusion prefixes messages with their category ("Error during planning: ");
/// users see the message itself.
fn strip_prefixes(message: &str) -> String {
    const PREFIXES: [&str; 4] = [
        "Error during planning: ",
        "SQL error: ",
        "Schema error: ",
        "This feature is not implemented: ",
    ];
    let mut message = message.trim();
    for prefix in PREFIXES {
        message = message.strip_prefix(prefix).unwrap_or(message);
    }
    message.to_owned()
}

/// What the parser said, without its own position suffix (the location
/// carries it) and without the Rust spelling of its error type.
fn parser_message(err: &datafusion::sql::sqlparser::parser::ParserError) -> String {
    use datafusion::sql::sqlparser::parser::ParserError as P;
    match err {
        P::ParserError(message) | P::TokenizerError(message) => {
            let message = match message.rfind(" at Line: ") {
                Some(at) => &message[..at],
                None => message,
            };
            message.trim().to_owned()
        }
        P::RecursionLimitExceeded => "the statement nests too deeply".to_owned(),
    }
}

/// Finds where in the SQL an error points: DataFusion's diagnostic span when it
/// has one, else the parser's "Line: X, Column: Y".
fn sql_location(err: &DataFusionError) -> Option<SqlLocation> {
    if let Some(span) = err.diagnostic().and_then(|d| d.span) {
        return Some(SqlLocation {
            line: span.start.line,
            column: span.start.column,
        });
    }
    let text = err.to_string();
    let at = text.rfind("Line: ")?;
    let rest = &text[at + "Line: ".len()..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some(SqlLocation {
        line: line.trim().parse().ok()?,
        column: column.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_positions_are_extracted() {
        let err = DataFusionError::SQL(
            Box::new(
                datafusion::sql::sqlparser::parser::ParserError::ParserError(
                    "Expected: an expression, found: FROM at Line: 2, Column: 8".into(),
                ),
            ),
            None,
        );
        let Error::Sql { location, message } = Error::from(err) else {
            panic!("not sql")
        };
        assert_eq!(location, Some(SqlLocation { line: 2, column: 8 }));
        assert_eq!(message, "Expected: an expression, found: FROM");
    }

    /// DataFusion reports some failures only as text; these pin how real
    /// ones are classified, so an upgrade that rewords them fails here.
    #[tokio::test]
    async fn failures_datafusion_reports_as_text_keep_their_codes() {
        let ctx = datafusion::prelude::SessionContext::new();
        ctx.sql("CREATE TABLE t AS VALUES ('x')")
            .await
            .expect("plans")
            .collect()
            .await
            .expect("creates");
        let run = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                let frame = ctx.sql(sql).await?;
                frame.collect().await.map(|_| ())
            }
        };
        let cast = run("SELECT CAST(column1 AS INT) FROM t").await.unwrap_err();
        assert_eq!(Error::from(cast).code(), "malformed_input");
        let unknown = run("SELECT nope FROM t").await.unwrap_err();
        assert_eq!(Error::from(unknown).code(), "sql_error");
        let divide = run("SELECT 1 / 0").await.unwrap_err();
        assert_eq!(Error::from(divide).code(), "sql_error");
    }

    /// Delta reports some failures only as `Generic` text: these pin how
    /// real ones are classified, so an upgrade that rewords them fails here.
    /// (A cast that fails inside a Delta write is pinned by the `.slt` SQL
    /// writes: `malformed_input`.)
    #[tokio::test]
    async fn failures_delta_reports_as_text_keep_their_codes() {
        use std::sync::Arc;

        use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
        use deltalake_core::protocol::SaveMode;

        let dir = tempfile::tempdir().expect("tempdir");
        let url = url::Url::from_directory_path(dir.path()).expect("url");
        let table = deltalake_core::DeltaTableBuilder::from_url(url)
            .expect("builder")
            .build()
            .expect("table");
        let ints =
            RecordBatch::try_from_iter([("a", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef)])
                .expect("batch");
        let table = table
            .write(vec![ints])
            .with_save_mode(SaveMode::ErrorIfExists)
            .await
            .expect("created");
        let texts =
            RecordBatch::try_from_iter([("b", Arc::new(StringArray::from(vec!["x"])) as ArrayRef)])
                .expect("batch");
        let other_schema = table
            .write(vec![texts])
            .with_save_mode(SaveMode::Append)
            .await
            .expect_err("an append of other columns is refused");
        assert_eq!(Error::from(other_schema).code(), "schema_mismatch");
    }

    #[test]
    fn resource_errors_are_their_own_kind() {
        let err = DataFusionError::ResourcesExhausted("pool".into());
        assert!(matches!(Error::from(err), Error::ResourcesExhausted(_)));
    }
}
