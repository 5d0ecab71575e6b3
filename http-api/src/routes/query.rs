//! `/query`: ad-hoc SQL, streamed.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use basin_engine::query::QueryRequest;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::encode::{ResultFormat, stream_body};
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/query", post(query))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    sql: String,
    limit: Option<usize>,
    timeout_ms: Option<u64>,
}

async fn query(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<QueryBody>,
) -> ApiResult<Response> {
    let format = ResultFormat::from_headers(&headers)?;
    if body.sql.trim().is_empty() {
        return Err(ApiError::invalid("sql must not be empty"));
    }
    if body.timeout_ms == Some(0) {
        return Err(ApiError::invalid("timeout_ms must be positive"));
    }
    let started = std::time::Instant::now();
    let stream = state
        .engine
        .query(QueryRequest {
            sql: body.sql,
            limit: body.limit,
            timeout: body.timeout_ms.map(Duration::from_millis),
        })
        .await?;
    let mut meta = serde_json::Map::new();
    meta.insert(
        "planning_ms".into(),
        json!(started.elapsed().as_millis() as u64),
    );
    Ok((
        [(header::CONTENT_TYPE, format.content_type())],
        stream_body(stream, format, meta),
    )
        .into_response())
}
