//! `/query`: ad-hoc SQL, streamed.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use basin_engine::sql::query::QueryRequest;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::access::Caller;
use crate::encode::{QueryResult, ResultFormat, stream_body};
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::Json;
use crate::openapi::{BinaryBody, DocumentedRoutes};

/// The longest deadline a query may ask for.
const MAX_TIMEOUT_MS: u64 = 86_400_000;

/// No request deadline: a query runs on its own (`query.timeout`, or the
/// `timeout_ms` it asks for).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().documented(routes!(query))
}

/// A query.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"sql": "SELECT 1 AS one"}))]
struct SqlQuery {
    /// One statement: a query, `EXPLAIN` or `SHOW`.
    #[schema(pattern = "\\S", example = "SELECT 1 AS one")]
    sql: String,
    /// At most this many rows.
    limit: Option<usize>,
    /// Deadline in milliseconds (default `query.timeout`), at most a day.
    #[schema(minimum = 1, maximum = 86_400_000)]
    timeout_ms: Option<u64>,
    /// Answer from the result cache when it holds this query's answer for the
    /// current versions of the datasets it reads (default `true`); `false`
    /// computes it afresh.
    cache: Option<bool>,
}

/// The header that says whether an answer came from the result cache.
const CACHE_HEADER: &str = "basin-cache";

/// Runs SQL over the datasets and streams the result in the format `Accept` asks for.
#[utoipa::path(post, path = "/query", operation_id = "query", tag = "query", request_body = SqlQuery,
    responses(
        (status = 200, description = "the result: JSON envelope, CSV, NDJSON or Arrow IPC stream",
            content((QueryResult = "application/json"), (String = "text/csv"), (String = "application/x-ndjson"),
                (BinaryBody = "application/vnd.apache.arrow.stream"))),
        (status = 400, description = "bad input", body = ErrorEnvelope),
        (status = 406, description = "unsupported Accept", body = ErrorEnvelope),
        (status = 504, description = "deadline passed", body = ErrorEnvelope)))]
async fn query(
    State(state): State<AppState>,
    Caller(principal): Caller,
    headers: HeaderMap,
    Json(body): Json<SqlQuery>,
) -> ApiResult<Response> {
    let format = ResultFormat::from_headers(&headers)?;
    if body.sql.trim().is_empty() {
        return Err(ApiError::invalid("sql must not be empty"));
    }
    if let Some(ms) = body.timeout_ms
        && !(1..=MAX_TIMEOUT_MS).contains(&ms)
    {
        return Err(ApiError::invalid(format!(
            "timeout_ms must be between 1 and {MAX_TIMEOUT_MS} (a day)"
        )));
    }
    let started = std::time::Instant::now();
    let output = state
        .engine
        .run_query(
            &principal,
            QueryRequest {
                sql: body.sql,
                limit: body.limit,
                timeout: body.timeout_ms.map(Duration::from_millis),
                bypass_cache: body.cache == Some(false),
                ..Default::default()
            },
        )
        .await?;
    let cache = json!(output.cache);
    let mut meta = serde_json::Map::new();
    meta.insert(
        "planning_ms".into(),
        json!(started.elapsed().as_millis() as u64),
    );
    meta.insert("cache".into(), cache.clone());
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (
                header::HeaderName::from_static(CACHE_HEADER),
                cache.as_str().unwrap_or_default().to_owned(),
            ),
        ],
        stream_body(output.stream, format, meta),
    )
        .into_response())
}
