//! `/pipelines`, `/runs` and `/lineage`: SQL pipelines, their versions,
//! dry runs, runs, templates and lineage.

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use basin_engine::catalog::{RunFilter, RunStatus};
use basin_engine::pipelines::PipelineSource;
use basin_engine::pipelines::model::PipelineDefinition;
use basin_engine::pipelines::runs::{PlanRequest, RunRequest};
use basin_engine::pipelines::store::Direction;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{PageParams, envelope, optional_body, page_meta};
use crate::AppState;
use crate::access::Caller;
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{Json, Query};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(validate))
        .routes(routes!(show, save))
        .routes(routes!(archive))
        .routes(routes!(unarchive))
        .routes(routes!(versions))
        .routes(routes!(version))
        .routes(routes!(activate))
        .routes(routes!(diff))
        .routes(routes!(plan))
        .routes(routes!(start_run, pipeline_runs))
        .routes(routes!(instantiate))
        .routes(routes!(pipeline_lineage))
        .routes(routes!(list_runs))
        .routes(routes!(show_run))
        .routes(routes!(cancel_run))
        .routes(routes!(retry_run))
        .routes(routes!(openlineage))
        .routes(routes!(lineage))
}

/// A JSON body that may be left out (then every field takes its default).
/// `?include_archived=&limit=&offset=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    #[serde(default)]
    include_archived: bool,
    limit: Option<u32>,
    offset: Option<u64>,
}

/// Pipelines by name, with their next scheduled run and last run.
#[utoipa::path(get, path = "/pipelines", tag = "pipelines",
    params(("include_archived" = Option<bool>, Query, description = "list archived ones too"),
        ("limit" = Option<u32>, Query, description = "page size"), ("offset" = Option<u64>, Query, description = "rows to skip")),
    responses((status = 200, description = "pipelines", body = Object)))]
async fn list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<ListParams>,
) -> ApiResult<axum::Json<Value>> {
    let page = PageParams {
        limit: params.limit,
        offset: params.offset,
    }
    .page()?;
    let (pipelines, total) = state
        .engine
        .list_pipelines(&principal, params.include_archived, page)
        .await?;
    Ok(envelope(pipelines, page_meta(&uri, page, total)))
}

/// A pipeline to create: a name and exactly one of `definition`, `sql`, `visual`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// Unique name.
    name: String,
    /// The JSON form.
    #[schema(value_type = Object)]
    #[serde(default)]
    definition: Option<PipelineDefinition>,
    /// A `.sql` file's text.
    #[serde(default)]
    sql: Option<String>,
    /// The visual form (nodes and edges).
    #[schema(value_type = Object)]
    #[serde(default)]
    visual: Option<basin_engine::pipelines::model::VisualDefinition>,
}

/// Creates a pipeline; it is validated first and refused with every
/// diagnostic when it does not validate.
#[utoipa::path(post, path = "/pipelines", tag = "pipelines", request_body = CreateBody,
    responses((status = 201, description = "the pipeline", body = Object),
        (status = 409, description = "`pipeline_exists`", body = ErrorEnvelope),
        (status = 422, description = "`pipeline_invalid`: details.diagnostics", body = ErrorEnvelope)))]
async fn create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Json(body): Json<CreateBody>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let source = PipelineSource {
        definition: body.definition,
        sql: body.sql,
        visual: body.visual,
    };
    let detail = state
        .engine
        .create_pipeline(&principal, &body.name, source)
        .await?;
    Ok((StatusCode::CREATED, envelope(detail, json!({}))))
}

/// A draft to validate.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ValidateBody {
    /// The JSON form.
    #[schema(value_type = Object)]
    #[serde(default)]
    definition: Option<PipelineDefinition>,
    /// A `.sql` file's text.
    #[serde(default)]
    sql: Option<String>,
    /// The visual form.
    #[schema(value_type = Object)]
    #[serde(default)]
    visual: Option<basin_engine::pipelines::model::VisualDefinition>,
    /// Param values to validate with (defaults otherwise).
    #[schema(value_type = Object)]
    #[serde(default)]
    params: serde_json::Map<String, Value>,
}

/// Validates a draft without saving it: graph, cycles, unknown tables,
/// every step planned (no data read); diagnostics carry step, line, column.
/// Always 200: `data.valid` says whether it passed.
#[utoipa::path(post, path = "/pipelines/validate", tag = "pipelines", request_body = ValidateBody,
    responses((status = 200, description = "the validation", body = Object)))]
async fn validate(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Json(body): Json<ValidateBody>,
) -> ApiResult<axum::Json<Value>> {
    let source = PipelineSource {
        definition: body.definition,
        sql: body.sql,
        visual: body.visual,
    };
    let validation = state
        .engine
        .validate_source(&principal, source, &body.params)
        .await?;
    Ok(envelope(validation, json!({})))
}

/// `?format=json|sql|visual`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowParams {
    #[serde(default)]
    format: Option<String>,
}

/// A pipeline: its active definition (as JSON, or `?format=sql|visual`),
/// what validation derived, its next fire times and last run.
#[utoipa::path(get, path = "/pipelines/{id}", tag = "pipelines",
    params(("id" = String, Path, description = "pipeline id or name"),
        ("format" = Option<String>, Query, description = "`json` (default), `sql` or `visual`")),
    responses((status = 200, description = "the pipeline", body = Object), (status = 404, description = "`pipeline_not_found`", body = ErrorEnvelope)))]
async fn show(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    Query(params): Query<ShowParams>,
) -> ApiResult<axum::Json<Value>> {
    match params.format.as_deref() {
        None | Some("json") => Ok(envelope(
            state.engine.pipeline_detail(&principal, &id).await?,
            json!({}),
        )),
        Some("sql") => {
            let detail = state.engine.pipeline_detail(&principal, &id).await?;
            Ok(envelope(
                json!({ "sql": detail.definition.to_sql_file() }),
                json!({}),
            ))
        }
        Some("visual") => Ok(envelope(
            state.engine.pipeline_visual(&principal, &id).await?,
            json!({}),
        )),
        Some(other) => Err(ApiError::invalid(format!(
            "format {other:?} is not one of json, sql, visual"
        ))),
    }
}

/// A new definition for a pipeline.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SaveBody {
    /// The JSON form.
    #[schema(value_type = Object)]
    #[serde(default)]
    definition: Option<PipelineDefinition>,
    /// A `.sql` file's text.
    #[serde(default)]
    sql: Option<String>,
    /// The visual form.
    #[schema(value_type = Object)]
    #[serde(default)]
    visual: Option<basin_engine::pipelines::model::VisualDefinition>,
    /// The active version the caller read; 409 `conflict` when it moved.
    #[serde(default)]
    expected_version: Option<i64>,
}

/// Saves a new immutable version and activates it; an unchanged definition
/// keeps the active version (`meta.created` is false).
#[utoipa::path(put, path = "/pipelines/{id}", tag = "pipelines", request_body = SaveBody,
    params(("id" = String, Path, description = "pipeline id or name")),
    responses((status = 200, description = "the pipeline", body = Object),
        (status = 409, description = "`conflict`", body = ErrorEnvelope),
        (status = 422, description = "`pipeline_invalid`", body = ErrorEnvelope)))]
async fn save(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    Json(body): Json<SaveBody>,
) -> ApiResult<axum::Json<Value>> {
    let source = PipelineSource {
        definition: body.definition,
        sql: body.sql,
        visual: body.visual,
    };
    let (detail, created) = state
        .engine
        .save_pipeline(&principal, &id, source, body.expected_version)
        .await?;
    Ok(envelope(detail, json!({ "created": created })))
}

/// Archives a pipeline: it keeps its versions and runs but no longer runs.
#[utoipa::path(post, path = "/pipelines/{id}/archive", tag = "pipelines",
    params(("id" = String, Path, description = "pipeline id or name")),
    responses((status = 200, description = "the pipeline", body = Object)))]
async fn archive(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let detail = state.engine.archive_pipeline(&principal, &id, true).await?;
    Ok(envelope(detail, json!({})))
}

/// Restores an archived pipeline.
#[utoipa::path(post, path = "/pipelines/{id}/unarchive", tag = "pipelines",
    params(("id" = String, Path, description = "pipeline id or name")),
    responses((status = 200, description = "the pipeline", body = Object)))]
async fn unarchive(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let detail = state
        .engine
        .archive_pipeline(&principal, &id, false)
        .await?;
    Ok(envelope(detail, json!({})))
}

/// Every version, newest first.
#[utoipa::path(get, path = "/pipelines/{id}/versions", tag = "pipelines",
    params(("id" = String, Path, description = "pipeline id or name")),
    responses((status = 200, description = "versions", body = Object)))]
async fn versions(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let versions = state.engine.pipeline_versions(&principal, &id).await?;
    let total = versions.len();
    Ok(envelope(versions, json!({ "total": total })))
}

/// One version: its definition and what validation derived.
#[utoipa::path(get, path = "/pipelines/{id}/versions/{version}", tag = "pipelines",
    params(("id" = String, Path, description = "pipeline id or name"), ("version" = i64, Path, description = "version number")),
    responses((status = 200, description = "the version", body = Object), (status = 404, description = "`version_not_found`", body = ErrorEnvelope)))]
async fn version(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((id, version)): Path<(String, i64)>,
) -> ApiResult<axum::Json<Value>> {
    let version = state
        .engine
        .pipeline_version(&principal, &id, version)
        .await?;
    Ok(envelope(version, json!({})))
}

/// Makes a version the active one (roll back, or forward again).
#[utoipa::path(post, path = "/pipelines/{id}/versions/{version}/activate", tag = "pipelines",
    params(("id" = String, Path, description = "pipeline id or name"), ("version" = i64, Path, description = "version number")),
    responses((status = 200, description = "the pipeline", body = Object)))]
async fn activate(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((id, version)): Path<(String, i64)>,
) -> ApiResult<axum::Json<Value>> {
    let detail = state
        .engine
        .activate_pipeline_version(&principal, &id, version)
        .await?;
    Ok(envelope(detail, json!({})))
}

/// `?from=&to=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiffParams {
    from: i64,
    to: i64,
}

/// What changed between two versions: steps added, removed and changed
/// (SQL, materialization, output schema) and whether it may break readers.
#[utoipa::path(get, path = "/pipelines/{id}/diff", tag = "pipelines",
    params(("id" = String, Path, description = "pipeline id or name"),
        ("from" = i64, Query, description = "older version"), ("to" = i64, Query, description = "newer version")),
    responses((status = 200, description = "the diff", body = Object)))]
async fn diff(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    Query(params): Query<DiffParams>,
) -> ApiResult<axum::Json<Value>> {
    let diff = state
        .engine
        .diff_pipeline_versions(&principal, &id, params.from, params.to)
        .await?;
    Ok(envelope(diff, json!({})))
}

/// A dry run: the steps that would run, their plans, sample rows from a
/// LIMITed run and each step's schema change against what exists now.
/// Nothing is written. Plans the active version, or a draft in the body.
#[utoipa::path(post, path = "/pipelines/{id}/plan", tag = "pipelines",
    params(("id" = String, Path, description = "pipeline id or name")),
    responses((status = 200, description = "the plan", body = Object)))]
async fn plan(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let request: PlanRequest = optional_body(&body)?;
    let plan = state.engine.plan_pipeline(&principal, &id, request).await?;
    Ok(envelope(plan, json!({})))
}

/// What a run is started with.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
struct RunBody {
    /// Param values.
    #[schema(value_type = Object)]
    #[serde(default)]
    params: serde_json::Map<String, Value>,
    /// A key that makes the request safe to repeat: the same key returns the same run.
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// Starts a run of the active version; 202 with the run (queued). A repeated
/// idempotency key answers 200 with the run it started.
#[utoipa::path(post, path = "/pipelines/{id}/runs", tag = "pipelines", request_body = RunBody,
    params(("id" = String, Path, description = "pipeline id or name")),
    responses((status = 202, description = "the run, queued", body = Object),
        (status = 200, description = "the run an earlier request with this idempotency key started", body = Object),
        (status = 400, description = "`invalid_input`: bad params", body = ErrorEnvelope),
        (status = 409, description = "`run_state`: archived pipeline or template", body = ErrorEnvelope)))]
async fn start_run(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let body: RunBody = optional_body(&body)?;
    let (run, created) = state
        .engine
        .start_run(
            &principal,
            &id,
            RunRequest {
                params: body.params,
                idempotency_key: body.idempotency_key,
            },
            "manual",
        )
        .await?;
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, envelope(run, json!({}))))
}

/// `?status=&limit=&offset=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunParams {
    #[serde(default)]
    status: Option<String>,
    limit: Option<u32>,
    offset: Option<u64>,
}

impl RunParams {
    fn page(&self) -> Result<basin_engine::catalog::Page, ApiError> {
        PageParams {
            limit: self.limit,
            offset: self.offset,
        }
        .page()
    }

    fn filter(&self, pipeline_id: Option<String>) -> Result<RunFilter, ApiError> {
        let status = self
            .status
            .as_deref()
            .map(|s| {
                RunStatus::parse(s).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "status {s:?} is not one of queued, running, retrying, succeeded, failed, canceling, canceled"
                    ))
                })
            })
            .transpose()?;
        Ok(RunFilter {
            pipeline_id,
            status,
        })
    }
}

/// A pipeline's runs, newest first.
#[utoipa::path(get, path = "/pipelines/{id}/runs", tag = "pipelines",
    params(("id" = String, Path, description = "pipeline id or name"),
        ("status" = Option<String>, Query, description = "only this status"),
        ("limit" = Option<u32>, Query, description = "page size"), ("offset" = Option<u64>, Query, description = "rows to skip")),
    responses((status = 200, description = "runs", body = Object)))]
async fn pipeline_runs(
    State(state): State<AppState>,
    Caller(principal): Caller,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    Query(params): Query<RunParams>,
) -> ApiResult<axum::Json<Value>> {
    let page = params.page()?;
    state
        .engine
        .authorize_pipelines(&principal, basin_engine::auth::Action::Read)?;
    let pipeline = state.engine.pipeline_record(&id).await?;
    let filter = params.filter(Some(pipeline.id))?;
    let (runs, total) = state.engine.list_runs(&principal, &filter, page).await?;
    Ok(envelope(runs, page_meta(&uri, page, total)))
}

/// A template's params and the new pipeline's name.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct InstantiateBody {
    /// The new pipeline's name.
    name: String,
    /// Values for the template's params (checked against their types).
    #[schema(value_type = Object)]
    #[serde(default)]
    params: serde_json::Map<String, Value>,
}

/// Creates a pipeline from a template, its `{{ param }}` placeholders filled
/// with checked, typed values.
#[utoipa::path(post, path = "/pipelines/{id}/instantiate", tag = "pipelines", request_body = InstantiateBody,
    params(("id" = String, Path, description = "template id or name")),
    responses((status = 201, description = "the new pipeline", body = Object),
        (status = 400, description = "`invalid_input`: not a template, or bad params", body = ErrorEnvelope)))]
async fn instantiate(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    Json(body): Json<InstantiateBody>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let detail = state
        .engine
        .instantiate_template(&principal, &id, &body.name, &body.params)
        .await?;
    Ok((StatusCode::CREATED, envelope(detail, json!({}))))
}

/// A pipeline's own lineage: its steps, what they read and write, and
/// column-level lineage per step.
#[utoipa::path(get, path = "/pipelines/{id}/lineage", tag = "pipelines",
    params(("id" = String, Path, description = "pipeline id or name")),
    responses((status = 200, description = "the graph", body = Object)))]
async fn pipeline_lineage(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let detail = state.engine.pipeline_detail(&principal, &id).await?;
    let graph = state
        .engine
        .lineage(&principal, None, Direction::Both, 0)
        .await?;
    let prefix = format!("step:{}/", detail.pipeline.name);
    let steps: Vec<&basin_engine::pipelines::store::LineageNode> = graph
        .nodes
        .iter()
        .filter(|n| n.id.starts_with(&prefix))
        .collect();
    let edges: Vec<_> = graph
        .edges
        .iter()
        .filter(|e| e.from.starts_with(&prefix) || e.to.starts_with(&prefix))
        .collect();
    let mut ids: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    for edge in &edges {
        ids.insert(&edge.from);
        ids.insert(&edge.to);
    }
    for step in &steps {
        ids.insert(&step.id);
    }
    let nodes: Vec<_> = graph
        .nodes
        .iter()
        .filter(|n| ids.contains(n.id.as_str()))
        .collect();
    Ok(envelope(
        json!({ "nodes": nodes, "edges": edges }),
        json!({}),
    ))
}

/// Runs of every pipeline, newest first.
#[utoipa::path(get, path = "/runs", tag = "runs",
    params(("status" = Option<String>, Query, description = "only this status"),
        ("limit" = Option<u32>, Query, description = "page size"), ("offset" = Option<u64>, Query, description = "rows to skip")),
    responses((status = 200, description = "runs", body = Object)))]
async fn list_runs(
    State(state): State<AppState>,
    Caller(principal): Caller,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<RunParams>,
) -> ApiResult<axum::Json<Value>> {
    let page = params.page()?;
    let filter = params.filter(None)?;
    let (runs, total) = state.engine.list_runs(&principal, &filter, page).await?;
    Ok(envelope(runs, page_meta(&uri, page, total)))
}

/// A run: status, progress, each step's status, attempts, rows, durations,
/// errors (with line and column for SQL errors) and logs.
#[utoipa::path(get, path = "/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "run id")),
    responses((status = 200, description = "the run", body = Object), (status = 404, description = "`run_not_found`", body = ErrorEnvelope)))]
async fn show_run(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let run = state.engine.run_record(&principal, &id).await?;
    let progress = run.progress();
    Ok(envelope(run, json!({ "progress": progress })))
}

/// Cancels a run: running steps stop (their datasets keep their last
/// committed version) and the rest do not start.
#[utoipa::path(post, path = "/runs/{id}/cancel", tag = "runs",
    params(("id" = String, Path, description = "run id")),
    responses((status = 200, description = "the run", body = Object), (status = 409, description = "`run_state`: already ended", body = ErrorEnvelope)))]
async fn cancel_run(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let run = state.engine.cancel_run(&principal, &id).await?;
    Ok(envelope(run, json!({})))
}

/// Retries a failed or canceled run from its failed steps: a new run of the
/// same version and params in which the steps that succeeded are `reused`.
#[utoipa::path(post, path = "/runs/{id}/retry", tag = "runs",
    params(("id" = String, Path, description = "run id")),
    responses((status = 202, description = "the new run", body = Object), (status = 409, description = "`run_state`: not failed or canceled", body = ErrorEnvelope)))]
async fn retry_run(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let run = state.engine.retry_run(&principal, &id).await?;
    Ok((StatusCode::ACCEPTED, envelope(run, json!({}))))
}

/// The run as OpenLineage run events (START and COMPLETE/FAIL/ABORT per
/// step, with inputs, outputs, schema and column lineage facets).
#[utoipa::path(get, path = "/runs/{id}/openlineage", tag = "runs",
    params(("id" = String, Path, description = "run id")),
    responses((status = 200, description = "OpenLineage RunEvents", body = Object)))]
async fn openlineage(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let events = state.engine.openlineage_events(&principal, &id).await?;
    Ok(envelope(events, json!({})))
}

/// `?node=&direction=&depth=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LineageParams {
    #[serde(default)]
    node: Option<String>,
    #[serde(default)]
    direction: Option<Direction>,
    #[serde(default)]
    depth: Option<usize>,
}

/// The table-level lineage graph of every live pipeline (sources → steps →
/// datasets, with column lineage on steps), or the part of it `depth`
/// edges `upstream` or `downstream` of `node`.
#[utoipa::path(get, path = "/lineage", tag = "pipelines",
    params(("node" = Option<String>, Query, description = "dataset:<name>, view:<name>, table:<c.s.t> or step:<pipeline>/<step>"),
        ("direction" = Option<String>, Query, description = "upstream, downstream or both (default)"),
        ("depth" = Option<usize>, Query, description = "edges to follow (default 10)")),
    responses((status = 200, description = "the graph", body = Object), (status = 400, description = "`invalid_input`: unknown node", body = ErrorEnvelope)))]
async fn lineage(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Query(params): Query<LineageParams>,
) -> ApiResult<axum::Json<Value>> {
    let graph = state
        .engine
        .lineage(
            &principal,
            params.node.as_deref(),
            params.direction.unwrap_or(Direction::Both),
            params.depth.unwrap_or(10),
        )
        .await?;
    Ok(envelope(graph, json!({})))
}
