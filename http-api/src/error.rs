//! The error envelope and the one mapping from engine errors to HTTP statuses.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use basin_engine::Error as EngineError;
use basin_engine::error::{Entity, ErrorKind};
use serde::Serialize;
use utoipa::ToSchema;

use crate::request_id;

/// An error as the REST API reports it (boxed: it travels in every handler's `Result`).
#[derive(Debug)]
pub struct ApiError(Box<ErrorBody>);

#[derive(Debug)]
struct ErrorBody {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Option<serde_json::Value>,
    hint: Option<String>,
    retry_after_secs: Option<u64>,
}

/// Result of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with a status, a stable code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self(Box::new(ErrorBody {
            status,
            code,
            message: message.into(),
            details: None,
            hint: None,
            retry_after_secs: None,
        }))
    }

    /// A 400 `invalid_input`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    /// Adds a hint for the caller.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.0.hint = Some(hint.into());
        self
    }

    /// Adds structured details for the caller.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.0.details = Some(details);
        self
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.0.code
    }
}

/// The HTTP status of each kind of engine error. Exhaustive on purpose: a
/// new kind does not compile until it has a status.
pub fn http_status(error: &EngineError) -> StatusCode {
    match error.kind() {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::UnsupportedFormat => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::AlreadyExists
        | ErrorKind::FailedPrecondition
        | ErrorKind::Conflict
        | ErrorKind::Canceled => StatusCode::CONFLICT,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Exhausted => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::SourceUnavailable | ErrorKind::SourceRefused => StatusCode::BAD_GATEWAY,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn hint_of(error: &EngineError) -> Option<&'static str> {
    match error {
        EngineError::MalformedRows(_) => Some(
            "fix the rows listed in details, or ingest with on_error=skip or on_error=quarantine",
        ),
        EngineError::PathNotAllowed(_) => Some(
            "add the directory to ingest.allowed_roots, or the URL prefix to ingest.allowed_urls",
        ),
        EngineError::AlreadyExists {
            entity: Entity::Dataset,
            ..
        } => Some("use the upload endpoint with mode=append or mode=overwrite"),
        EngineError::SchemaMismatch(_) => Some("ingest with mode=overwrite to replace the schema"),
        EngineError::Unauthenticated(_) => Some(
            "sign in with POST /api/v1/auth/login and send Authorization: Bearer <token>, or use an API key",
        ),
        EngineError::RateLimited { .. } => Some("wait Retry-After seconds, then try again"),
        EngineError::Source(_) => Some(
            "the source refused or failed; POST /api/v1/connections/{id}/test classifies the failure",
        ),
        EngineError::SchemaChanged { .. } => Some(
            "choose another `schema_change` policy, or sync with write=overwrite to replace the schema",
        ),
        EngineError::PipelineInvalid { .. } => Some(
            "details.diagnostics lists each problem with its step, line and column; POST /api/v1/pipelines/validate checks a draft without saving",
        ),
        EngineError::ProfileNotFound(_) => {
            Some("POST /api/v1/datasets/{name}/profile starts a profile job")
        }
        _ => None,
    }
}

/// The pure crates' errors reach the doors as the engine's.
macro_rules! through_engine_error {
    ($($error:ty),*) => {
        $(impl From<$error> for ApiError {
            fn from(error: $error) -> Self {
                EngineError::from(error).into()
            }
        })*
    };
}

through_engine_error!(
    basin_auth::Error,
    basin_sql::InvalidName,
    basin_analytics::Error
);

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        let status = http_status(&error);
        if status.is_server_error() {
            tracing::error!(error = %error, code = error.code(), "request failed");
        }
        let retry_after_secs = match &error {
            EngineError::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        };
        Self(Box::new(ErrorBody {
            status,
            code: error.code(),
            message: error.public_message(),
            details: error.details(),
            hint: hint_of(&error).map(str::to_owned),
            retry_after_secs,
        }))
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorEnvelope {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// Stable code, e.g. `dataset_not_found` (see docs/http-api.md).
    #[schema(value_type = String)]
    code: &'static str,
    /// For people; concise, lower case.
    message: String,
    /// Structured details: bad rows, SQL position.
    #[schema(value_type = Option<Object>)]
    details: Option<serde_json::Value>,
    /// What to do about it.
    hint: Option<String>,
    /// The request's id, as in the `x-request-id` header and the server log.
    request_id: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let ErrorBody {
            status,
            code,
            message,
            details,
            hint,
            retry_after_secs,
        } = *self.0;
        metrics::counter!("basin_http_errors_total", "code" => code).increment(1);
        let body = ErrorEnvelope {
            error: ErrorDetail {
                code,
                message,
                details,
                hint,
                request_id: request_id::current(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(seconds) = retry_after_secs {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"basin\""),
            );
        }
        response
    }
}
