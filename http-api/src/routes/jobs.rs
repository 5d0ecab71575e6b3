//! `/jobs`: background work.

use axum::Router;
use axum::extract::{OriginalUri, Path, State};
use axum::routing::{get, post};
use basin_engine::catalog::{JobFilter, JobStatus};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{PageParams, envelope, page_meta};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/jobs", get(list))
        .route("/jobs/{id}", get(show))
        .route("/jobs/{id}/cancel", post(cancel))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    status: Option<String>,
    kind: Option<String>,
    limit: Option<u32>,
    offset: Option<u64>,
}

async fn list(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<ListParams>,
) -> ApiResult<axum::Json<Value>> {
    let status = params
        .status
        .as_deref()
        .map(|s| {
            JobStatus::parse(s).ok_or_else(|| {
                ApiError::invalid(format!(
                    "unknown status {s:?}: use queued, running, succeeded, failed or canceled"
                ))
            })
        })
        .transpose()?;
    let page = PageParams {
        limit: params.limit,
        offset: params.offset,
    }
    .page()?;
    let filter = JobFilter {
        status,
        kind: params.kind,
    };
    let (jobs, total) = state.engine.list_jobs(&filter, page).await?;
    Ok(envelope(jobs, page_meta(&strip_prefix(&uri), page, total)))
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    Ok(envelope(state.engine.job(&id).await?, json!({})))
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    Ok(envelope(state.engine.cancel_job(&id).await?, json!({})))
}

/// Listing links are built relative to `/api/v1`.
pub(crate) fn strip_prefix(uri: &axum::http::Uri) -> axum::http::Uri {
    let text = uri.to_string();
    text.strip_prefix("/api/v1")
        .unwrap_or(&text)
        .parse()
        .unwrap_or_else(|_| uri.clone())
}
