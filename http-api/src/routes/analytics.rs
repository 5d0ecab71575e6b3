//! Profiles, quality checks, metric history, time series and the dashboard.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use basin_engine::analytics::ProfileRequest;
use basin_engine::analytics::timeseries::TimeseriesRequest;
use basin_engine::catalog::MetricFilter;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{envelope, optional_body};
use crate::AppState;
use crate::access::Caller;
use crate::encode::ResultFormat;
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{Json, Query};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_profile, latest_profile))
        .routes(routes!(list_checks, create_check))
        .routes(routes!(show_check, update_check, delete_check))
        .routes(routes!(run_checks))
        .routes(routes!(check_results))
        .routes(routes!(metrics))
        .routes(routes!(timeseries))
        .routes(routes!(dashboard))
}

/// Starts a job that profiles the dataset's current version in one pass.
#[utoipa::path(post, path = "/datasets/{name}/profile", tag = "analytics",
    params(("name" = String, Path, description = "dataset name")),
    request_body(content = Object, description = "optional: `columns`, `top_k`, `histogram_bins`"),
    responses((status = 202, description = "the profile job", body = Object),
        (status = 400, description = "`unknown_column` or `invalid_input`", body = ErrorEnvelope),
        (status = 404, description = "`dataset_not_found`", body = ErrorEnvelope)))]
async fn start_profile(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let request: ProfileRequest = optional_body(&body)?;
    let job = state
        .engine
        .start_profile(&principal, &name, request)
        .await?;
    Ok((StatusCode::ACCEPTED, envelope(job, json!({}))))
}

/// The dataset's newest profile.
#[utoipa::path(get, path = "/datasets/{name}/profile", tag = "analytics",
    params(("name" = String, Path, description = "dataset name")),
    responses((status = 200, description = "the profile", body = Object),
        (status = 404, description = "`dataset_not_found` or `profile_not_found`", body = ErrorEnvelope)))]
async fn latest_profile(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let profile = state.engine.latest_profile(&principal, &name).await?;
    Ok(envelope(profile, json!({})))
}

/// The dataset's checks, each with its newest result.
#[utoipa::path(get, path = "/datasets/{name}/checks", tag = "analytics",
    params(("name" = String, Path, description = "dataset name")),
    responses((status = 200, description = "checks", body = Object),
        (status = 404, description = "`dataset_not_found`", body = ErrorEnvelope)))]
async fn list_checks(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let checks = state.engine.list_checks(&principal, &name).await?;
    Ok(envelope(checks, json!({})))
}

/// Adds a check; it is validated against the dataset's schema first.
#[utoipa::path(post, path = "/datasets/{name}/checks", tag = "analytics",
    params(("name" = String, Path, description = "dataset name")),
    request_body(content = Object, description = "a check definition (see docs/analytics.md)"),
    responses((status = 201, description = "the check", body = Object),
        (status = 400, description = "`invalid_check` or `unknown_column`", body = ErrorEnvelope),
        (status = 409, description = "`check_exists`", body = ErrorEnvelope)))]
async fn create_check(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
    Json(definition): Json<Value>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let check = state
        .engine
        .create_check(&principal, &name, definition)
        .await?;
    Ok((StatusCode::CREATED, envelope(check, json!({}))))
}

/// One check with its newest result.
#[utoipa::path(get, path = "/datasets/{name}/checks/{check}", tag = "analytics",
    params(("name" = String, Path, description = "dataset name"), ("check" = String, Path, description = "check name")),
    responses((status = 200, description = "the check", body = Object),
        (status = 404, description = "`check_not_found`", body = ErrorEnvelope)))]
async fn show_check(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((name, check)): Path<(String, String)>,
) -> ApiResult<axum::Json<Value>> {
    let check = state.engine.check(&principal, &name, &check).await?;
    Ok(envelope(check, json!({})))
}

/// Replaces a check's definition; its history stays.
#[utoipa::path(put, path = "/datasets/{name}/checks/{check}", tag = "analytics",
    params(("name" = String, Path, description = "dataset name"), ("check" = String, Path, description = "check name")),
    request_body(content = Object, description = "the new definition"),
    responses((status = 200, description = "the check", body = Object),
        (status = 400, description = "`invalid_check`", body = ErrorEnvelope),
        (status = 404, description = "`check_not_found`", body = ErrorEnvelope)))]
async fn update_check(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((name, check)): Path<(String, String)>,
    Json(definition): Json<Value>,
) -> ApiResult<axum::Json<Value>> {
    let check = state
        .engine
        .update_check(&principal, &name, &check, definition)
        .await?;
    Ok(envelope(check, json!({})))
}

/// Removes a check; its results stay in the history.
#[utoipa::path(delete, path = "/datasets/{name}/checks/{check}", tag = "analytics",
    params(("name" = String, Path, description = "dataset name"), ("check" = String, Path, description = "check name")),
    responses((status = 204, description = "removed"),
        (status = 404, description = "`check_not_found`", body = ErrorEnvelope)))]
async fn delete_check(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((name, check)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.engine.delete_check(&principal, &name, &check).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which checks to run.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunBody {
    /// Check names; all of the dataset's checks when absent.
    checks: Option<Vec<String>>,
}

/// Runs the dataset's checks now and answers with their results.
#[utoipa::path(post, path = "/datasets/{name}/check-runs", tag = "analytics",
    params(("name" = String, Path, description = "dataset name")),
    request_body(content = Object, description = "optional: `checks`, the names to run"),
    responses((status = 200, description = "the run's results", body = Object),
        (status = 404, description = "`dataset_not_found` or `check_not_found`", body = ErrorEnvelope)))]
async fn run_checks(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let body: RunBody = optional_body(&body)?;
    let report = state
        .engine
        .run_checks(&principal, &name, body.checks.as_deref())
        .await?;
    Ok(envelope(report, json!({})))
}

/// `?check=&before=&limit=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ResultsParams {
    /// Only this check's results.
    check: Option<String>,
    /// Results older than this `seq` (the previous page's last).
    before: Option<i64>,
    /// Page size, 1 to 1000 (default 50).
    limit: Option<u32>,
}

/// The dataset's check results, newest first.
#[utoipa::path(get, path = "/datasets/{name}/check-results", tag = "analytics",
    params(("name" = String, Path, description = "dataset name"), ResultsParams),
    responses((status = 200, description = "results", body = Object),
        (status = 404, description = "`dataset_not_found` or `check_not_found`", body = ErrorEnvelope)))]
async fn check_results(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
    Query(params): Query<ResultsParams>,
) -> ApiResult<axum::Json<Value>> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 1000"));
    }
    let results = state
        .engine
        .check_history(
            &principal,
            &name,
            params.check.as_deref(),
            params.before,
            limit,
        )
        .await?;
    let next = (results.len() == limit as usize)
        .then(|| results.last().map(|r| r.seq))
        .flatten();
    Ok(envelope(results, json!({ "next_before": next })))
}

/// `?name=&from=&to=&limit=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct MetricParams {
    /// One metric: `row_count`, `size_bytes`, `completeness`, `duplicate_rows`, `freshness_seconds` or `check_pass_rate`.
    name: Option<String>,
    /// RFC 3339; points measured at or after.
    from: Option<DateTime<Utc>>,
    /// RFC 3339; points measured before.
    to: Option<DateTime<Utc>>,
    /// The newest this many points per request, 1 to 10000 (default 1000).
    limit: Option<u32>,
}

/// A dataset's metrics over time, one series per metric.
#[utoipa::path(get, path = "/datasets/{name}/metrics", tag = "analytics",
    params(("name" = String, Path, description = "dataset name"), MetricParams),
    responses((status = 200, description = "series by metric name", body = Object),
        (status = 400, description = "`invalid_date_range`", body = ErrorEnvelope),
        (status = 404, description = "`dataset_not_found`", body = ErrorEnvelope)))]
async fn metrics(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
    Query(params): Query<MetricParams>,
) -> ApiResult<axum::Json<Value>> {
    let limit = params.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 10000"));
    }
    let filter = MetricFilter {
        name: params.name,
        from: params.from,
        to: params.to,
        limit,
    };
    let series = state
        .engine
        .dataset_metrics(&principal, &name, &filter)
        .await?;
    Ok(envelope(series, json!({ "dataset": name })))
}

/// Time-bucketed measures for charts: columnar JSON, or Arrow IPC (long
/// format) with `Accept: application/vnd.apache.arrow.stream`.
#[utoipa::path(post, path = "/analytics/timeseries", tag = "analytics",
    request_body(content = Object, description = "see docs/analytics.md"),
    responses((status = 200, description = "one array per series", body = Object),
        (status = 400, description = "`unknown_column`, `invalid_time_column`, `invalid_measure`, `invalid_granularity`, `invalid_date_range`, `invalid_timezone`, `invalid_filter` or `too_many_points`", body = ErrorEnvelope),
        (status = 406, description = "`not_acceptable`", body = ErrorEnvelope)))]
async fn timeseries(
    State(state): State<AppState>,
    Caller(principal): Caller,
    headers: HeaderMap,
    Json(request): Json<TimeseriesRequest>,
) -> ApiResult<Response> {
    let format = ResultFormat::from_headers(&headers)?;
    let answer = state.engine.timeseries(&principal, request).await?;
    match format {
        ResultFormat::Json => Ok(envelope(&*answer, json!({})).into_response()),
        ResultFormat::Arrow => {
            let batch = answer.to_record_batch()?;
            let mut writer = arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema())
                .map_err(internal)?;
            writer.write(&batch).map_err(internal)?;
            writer.finish().map_err(internal)?;
            let bytes = writer.into_inner().map_err(internal)?;
            Ok((
                [(header::CONTENT_TYPE, ResultFormat::Arrow.content_type())],
                bytes,
            )
                .into_response())
        }
        ResultFormat::Csv | ResultFormat::Ndjson => Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            "time series come as application/json or application/vnd.apache.arrow.stream",
        )),
    }
}

fn internal(e: arrow::error::ArrowError) -> ApiError {
    basin_engine::Error::Internal(format!("arrow ipc: {e}")).into()
}

/// Datasets, rows, recent writes, jobs and runs by status, failing checks.
#[utoipa::path(get, path = "/dashboard/stats", tag = "analytics",
    responses((status = 200, description = "the dashboard's numbers", body = Object)))]
async fn dashboard(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<axum::Json<Value>> {
    let stats = state.engine.dashboard_stats(&principal).await?;
    Ok(envelope(stats, json!({})))
}
