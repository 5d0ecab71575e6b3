//! `/jobs`: background work.

use axum::extract::{OriginalUri, State};
use basin_engine::catalog::{JobFilter, JobRecord, JobStatus};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{PageParams, page_meta};
use crate::AppState;
use crate::WithDeadline;
use crate::access::Caller;
use crate::envelope::{PageMeta, answers};
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{Path, Query};
use crate::openapi::DocumentedRoutes;

answers! {
    /// A page of jobs.
    JobPage(Vec<JobRecord>, PageMeta);
    /// A job.
    JobAnswer(JobRecord);
}

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .documented(routes!(list))
        .documented(routes!(show))
        .documented(routes!(cancel))
        .with_deadline()
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// `queued`, `running`, `succeeded`, `failed` or `canceled`.
    #[param(value_type = Option<JobStatus>)]
    status: Option<String>,
    /// Job kind, e.g. `ingest`.
    kind: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Rows to skip.
    offset: Option<u64>,
}

/// Jobs, newest first.
#[utoipa::path(get, path = "/jobs", operation_id = "list_jobs", tag = "jobs", params(ListParams),
    responses((status = 200, description = "a page of jobs", body = JobPage), (status = 400, description = "bad input", body = ErrorEnvelope)))]
async fn list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<ListParams>,
) -> ApiResult<JobPage> {
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
    let (jobs, total) = state.engine.list_jobs(&principal, &filter, page).await?;
    Ok(JobPage::new(
        jobs,
        page_meta(&strip_prefix(&uri), page, total),
    ))
}

/// One job: status, progress, result or error.
#[utoipa::path(get, path = "/jobs/{id}", operation_id = "get_job", tag = "jobs", params(("id" = String, Path, description = "job id")),
    responses((status = 200, description = "the job", body = JobAnswer), (status = 404, description = "not found", body = ErrorEnvelope)))]
async fn show(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<JobAnswer> {
    Ok(JobAnswer::new(state.engine.job(&principal, &id).await?))
}

/// Cancels a queued or running job.
#[utoipa::path(post, path = "/jobs/{id}/cancel", operation_id = "cancel_job", tag = "jobs", params(("id" = String, Path, description = "job id")),
    responses((status = 200, description = "the job after the request", body = JobAnswer), (status = 404, description = "not found", body = ErrorEnvelope),
        (status = 409, description = "the job has ended", body = ErrorEnvelope)))]
async fn cancel(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<JobAnswer> {
    Ok(JobAnswer::new(
        state.engine.cancel_job(&principal, &id).await?,
    ))
}

/// Listing links are built relative to `/api/v1`.
pub(crate) fn strip_prefix(uri: &axum::http::Uri) -> axum::http::Uri {
    let text = uri.to_string();
    text.strip_prefix("/api/v1")
        .unwrap_or(&text)
        .parse()
        .unwrap_or_else(|_| uri.clone())
}
