//! Profiles, quality checks, metric history, time series and the dashboard.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::sync::Arc;

use basin_engine::analytics::checks::CheckDefinition;
use basin_engine::analytics::quality::{CheckRunReport, CheckView};
use basin_engine::analytics::timeseries::{TimeseriesRequest, TimeseriesResponse};
use basin_engine::analytics::{DashboardStats, DatasetProfile, MetricSeries, ProfileRequest};
use basin_engine::catalog::{CheckRecord, CheckResultRecord, JobRecord, MetricFilter};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::WithDeadline;
use crate::access::Caller;
use crate::encode::ResultFormat;
use crate::envelope::answers;
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{Json, OptionalJson, Path, Query};
use crate::openapi::{BinaryBody, DocumentedRoutes, Identifier};

answers! {
    /// A queued profile job.
    ProfileJob(JobRecord);
    /// A dataset's newest profile.
    ProfileAnswer(DatasetProfile);
    /// A dataset's checks, each with its newest result.
    CheckList(Vec<CheckView>);
    /// A check with its newest result.
    CheckAnswer(CheckView);
    /// A stored check.
    CheckSaved(CheckRecord);
    /// The results of a check run.
    CheckRunAnswer(CheckRunReport);
    /// Check results, newest first.
    CheckResultPage(Vec<CheckResultRecord>, ResultsMeta);
    /// A dataset's metrics, one series per metric name.
    MetricsAnswer(BTreeMap<String, MetricSeries>, MetricsMeta);
    /// Time-bucketed measures.
    TimeseriesAnswer(#[schema(value_type = TimeseriesResponse)] Arc<TimeseriesResponse>);
    /// The dashboard's numbers.
    DashboardAnswer(DashboardStats);
}

/// `meta` of a page of check results.
#[derive(Debug, Serialize, ToSchema)]
struct ResultsMeta {
    /// `before` for the next page, when there may be one.
    next_before: Option<i64>,
}

/// `meta` of a metric history.
#[derive(Debug, Serialize, ToSchema)]
struct MetricsMeta {
    /// The dataset.
    dataset: String,
}

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .documented(routes!(start_profile, latest_profile))
        .documented(routes!(list_checks, create_check))
        .documented(routes!(show_check, update_check, delete_check))
        .documented(routes!(run_checks))
        .documented(routes!(check_results))
        .documented(routes!(metrics))
        .documented(routes!(timeseries))
        .documented(routes!(dashboard))
        .with_deadline()
}

/// Starts a job that profiles the dataset's current version in one pass.
#[utoipa::path(post, path = "/datasets/{name}/profile", operation_id = "start_profile", tag = "analytics",
    params(("name" = Identifier, Path, description = "dataset name")),
    request_body(content = Option<ProfileRequest>, description = "optional: `columns`, `top_k`, `histogram_bins`"),
    responses((status = 202, description = "the profile job", body = ProfileJob),
        (status = 400, description = "`unknown_column` or `invalid_input`", body = ErrorEnvelope),
        (status = 404, description = "`dataset_not_found`", body = ErrorEnvelope)))]
async fn start_profile(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
    OptionalJson(request): OptionalJson<ProfileRequest>,
) -> ApiResult<(StatusCode, ProfileJob)> {
    let job = state
        .engine
        .start_profile(&principal, &name, request)
        .await?;
    Ok((StatusCode::ACCEPTED, ProfileJob::new(job)))
}

/// The dataset's newest profile.
#[utoipa::path(get, path = "/datasets/{name}/profile", operation_id = "get_profile", tag = "analytics",
    params(("name" = Identifier, Path, description = "dataset name")),
    responses((status = 200, description = "the profile", body = ProfileAnswer),
        (status = 404, description = "`dataset_not_found` or `profile_not_found`", body = ErrorEnvelope)))]
async fn latest_profile(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
) -> ApiResult<ProfileAnswer> {
    let profile = state.engine.latest_profile(&principal, &name).await?;
    Ok(ProfileAnswer::new(profile))
}

/// The dataset's checks, each with its newest result.
#[utoipa::path(get, path = "/datasets/{name}/checks", operation_id = "list_checks", tag = "analytics",
    params(("name" = Identifier, Path, description = "dataset name")),
    responses((status = 200, description = "checks", body = CheckList),
        (status = 404, description = "`dataset_not_found`", body = ErrorEnvelope)))]
async fn list_checks(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
) -> ApiResult<CheckList> {
    let checks = state.engine.list_checks(&principal, &name).await?;
    Ok(CheckList::new(checks))
}

/// Adds a check; it is validated against the dataset's schema first.
#[utoipa::path(post, path = "/datasets/{name}/checks", operation_id = "create_check", tag = "analytics",
    params(("name" = Identifier, Path, description = "dataset name")),
    request_body(content = CheckDefinition, description = "a check definition (see docs/analytics.md)"),
    responses((status = 201, description = "the check", body = CheckSaved),
        (status = 400, description = "`invalid_check` or `unknown_column`", body = ErrorEnvelope),
        (status = 409, description = "`check_exists`", body = ErrorEnvelope)))]
async fn create_check(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
    Json(definition): Json<Value>,
) -> ApiResult<(StatusCode, CheckSaved)> {
    let check = state
        .engine
        .create_check(&principal, &name, definition)
        .await?;
    Ok((StatusCode::CREATED, CheckSaved::new(check)))
}

/// One check with its newest result.
#[utoipa::path(get, path = "/datasets/{name}/checks/{check}", operation_id = "get_check", tag = "analytics",
    params(("name" = Identifier, Path, description = "dataset name"), ("check" = String, Path, description = "check name")),
    responses((status = 200, description = "the check", body = CheckAnswer),
        (status = 404, description = "`check_not_found`", body = ErrorEnvelope)))]
async fn show_check(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((name, check)): Path<(String, String)>,
) -> ApiResult<CheckAnswer> {
    let check = state.engine.check(&principal, &name, &check).await?;
    Ok(CheckAnswer::new(check))
}

/// Replaces a check's definition; its history stays.
#[utoipa::path(put, path = "/datasets/{name}/checks/{check}", operation_id = "update_check", tag = "analytics",
    params(("name" = Identifier, Path, description = "dataset name"), ("check" = String, Path, description = "check name")),
    request_body(content = CheckDefinition, description = "the new definition"),
    responses((status = 200, description = "the check", body = CheckSaved),
        (status = 400, description = "`invalid_check`", body = ErrorEnvelope),
        (status = 404, description = "`check_not_found`", body = ErrorEnvelope)))]
async fn update_check(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((name, check)): Path<(String, String)>,
    Json(definition): Json<Value>,
) -> ApiResult<CheckSaved> {
    let check = state
        .engine
        .update_check(&principal, &name, &check, definition)
        .await?;
    Ok(CheckSaved::new(check))
}

/// Removes a check; its results stay in the history.
#[utoipa::path(delete, path = "/datasets/{name}/checks/{check}", operation_id = "delete_check", tag = "analytics",
    params(("name" = Identifier, Path, description = "dataset name"), ("check" = String, Path, description = "check name")),
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
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CheckRunBody {
    /// Check names; all of the dataset's checks when absent.
    checks: Option<Vec<String>>,
}

/// Runs the dataset's checks now and answers with their results.
#[utoipa::path(post, path = "/datasets/{name}/check-runs", operation_id = "run_checks", tag = "analytics",
    params(("name" = Identifier, Path, description = "dataset name")),
    request_body(content = Option<CheckRunBody>, description = "optional: `checks`, the names to run"),
    responses((status = 200, description = "the run's results", body = CheckRunAnswer),
        (status = 404, description = "`dataset_not_found` or `check_not_found`", body = ErrorEnvelope)))]
async fn run_checks(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
    OptionalJson(body): OptionalJson<CheckRunBody>,
) -> ApiResult<CheckRunAnswer> {
    let report = state
        .engine
        .run_checks(&principal, &name, body.checks.as_deref())
        .await?;
    Ok(CheckRunAnswer::new(report))
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
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The dataset's check results, newest first.
#[utoipa::path(get, path = "/datasets/{name}/check-results", operation_id = "list_check_results", tag = "analytics",
    params(("name" = Identifier, Path, description = "dataset name"), ResultsParams),
    responses((status = 200, description = "results", body = CheckResultPage), (status = 400, description = "bad input", body = ErrorEnvelope),
        (status = 404, description = "`dataset_not_found` or `check_not_found`", body = ErrorEnvelope)))]
async fn check_results(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
    Query(params): Query<ResultsParams>,
) -> ApiResult<CheckResultPage> {
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
    Ok(CheckResultPage::new(
        results,
        ResultsMeta { next_before: next },
    ))
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
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
}

/// A dataset's metrics over time, one series per metric.
#[utoipa::path(get, path = "/datasets/{name}/metrics", operation_id = "get_dataset_metrics", tag = "analytics",
    params(("name" = Identifier, Path, description = "dataset name"), MetricParams),
    responses((status = 200, description = "series by metric name", body = MetricsAnswer),
        (status = 400, description = "`invalid_date_range`", body = ErrorEnvelope),
        (status = 404, description = "`dataset_not_found`", body = ErrorEnvelope)))]
async fn metrics(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
    Query(params): Query<MetricParams>,
) -> ApiResult<MetricsAnswer> {
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
    Ok(MetricsAnswer::new(series, MetricsMeta { dataset: name }))
}

/// Time-bucketed measures for charts: columnar JSON, or Arrow IPC (long
/// format) with `Accept: application/vnd.apache.arrow.stream`.
#[utoipa::path(post, path = "/analytics/timeseries", operation_id = "timeseries", tag = "analytics",
    request_body(content = TimeseriesRequest, description = "see docs/analytics.md"),
    responses((status = 200, description = "one array per series",
            content((TimeseriesAnswer = "application/json"), (BinaryBody = "application/vnd.apache.arrow.stream"))),
        (status = 400, description = "`unknown_column`, `invalid_time_column`, `invalid_measure`, `invalid_granularity`, `invalid_date_range`, `invalid_timezone`, `invalid_filter` or `too_many_points`", body = ErrorEnvelope),
        (status = 404, description = "`dataset_not_found`", body = ErrorEnvelope),
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
        ResultFormat::Json => Ok(TimeseriesAnswer::new(answer).into_response()),
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
#[utoipa::path(get, path = "/dashboard/stats", operation_id = "get_dashboard_stats", tag = "analytics",
    responses((status = 200, description = "the dashboard's numbers", body = DashboardAnswer)))]
async fn dashboard(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<DashboardAnswer> {
    let stats = state.engine.dashboard_stats(&principal).await?;
    Ok(DashboardAnswer::new(stats))
}
