//! `/pipelines`, `/runs` and `/lineage`: SQL pipelines, their versions,
//! dry runs, runs, templates and lineage.

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use basin_engine::catalog::{PipelineVersionRecord, RunFilter, RunRecord, RunStatus};
use basin_engine::pipelines::PipelineSource;
use basin_engine::pipelines::manage::{
    Direction, LineageGraph, PipelineDetail, PipelineSummary, VersionDiff,
};
use basin_engine::pipelines::model::{PipelineDefinition, VisualDefinition};
use basin_engine::pipelines::runs::{PipelinePlan, PlanRequest, RunRequest};
use basin_engine::pipelines::validate::Validation;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{PageParams, page_meta};
use crate::AppState;
use crate::WithDeadline;
use crate::access::Caller;
use crate::envelope::{PageMeta, TotalMeta, answers};
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{Json, OptionalJson, Path, Query};
use crate::openapi::{DocumentedRoutes, Identifier};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .documented(routes!(list, create))
        .documented(routes!(validate))
        .documented(routes!(show, save))
        .documented(routes!(archive))
        .documented(routes!(unarchive))
        .documented(routes!(versions))
        .documented(routes!(version))
        .documented(routes!(activate))
        .documented(routes!(diff))
        .documented(routes!(plan))
        .documented(routes!(start_run, pipeline_runs))
        .documented(routes!(instantiate))
        .documented(routes!(pipeline_lineage))
        .documented(routes!(list_runs))
        .documented(routes!(show_run))
        .documented(routes!(cancel_run))
        .documented(routes!(retry_run))
        .documented(routes!(openlineage))
        .documented(routes!(lineage))
        .with_deadline()
}

answers! {
    /// A page of pipelines.
    PipelinePage(Vec<PipelineSummary>, PageMeta);
    /// A pipeline.
    PipelineAnswer(PipelineDetail);
    /// A pipeline in the form `format` asked for.
    PipelineShown(PipelineView);
    /// A saved pipeline, and whether the save made a new version.
    PipelineSaved(PipelineDetail, SaveMeta);
    /// A draft's validation.
    ValidationAnswer(Validation);
    /// A pipeline's versions, newest first.
    PipelineVersionList(Vec<PipelineVersionRecord>, TotalMeta);
    /// One pipeline version.
    PipelineVersionAnswer(PipelineVersionRecord);
    /// What changed between two versions.
    VersionDiffAnswer(VersionDiff);
    /// A dry run.
    PlanAnswer(PipelinePlan);
    /// A run.
    RunAnswer(RunRecord);
    /// A run and how far it got.
    RunShown(RunRecord, RunMeta);
    /// A page of runs.
    RunPage(Vec<RunRecord>, PageMeta);
    /// A part of the lineage graph.
    LineageAnswer(LineageGraph);
    /// A run as OpenLineage RunEvents.
    OpenLineageEvents(#[schema(value_type = Vec<Object>)] Vec<Value>);
}

/// A pipeline in one of its forms.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
enum PipelineView {
    /// `format=json`: the pipeline with its definition and what validation derived.
    Detail(Box<PipelineDetail>),
    /// `format=sql`: the definition as a `.sql` file.
    Sql(PipelineSqlFile),
    /// `format=visual`: nodes and edges.
    Visual(Box<VisualDefinition>),
}

/// A definition as a `.sql` file.
#[derive(Debug, Serialize, ToSchema)]
struct PipelineSqlFile {
    /// The file's text.
    sql: String,
}

/// `meta` of a save.
#[derive(Debug, Serialize, ToSchema)]
struct SaveMeta {
    /// Whether the save made a new version (false when nothing changed).
    created: bool,
}

/// `meta` of a run.
#[derive(Debug, Serialize, ToSchema)]
struct RunMeta {
    /// The share of steps that have ended, 0 to 1.
    progress: f64,
}

/// `?include_archived=&limit=&offset=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// List archived ones too.
    #[serde(default)]
    include_archived: bool,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Rows to skip.
    offset: Option<u64>,
}

/// Pipelines by name, with their next scheduled run and last run.
#[utoipa::path(get, path = "/pipelines", operation_id = "list_pipelines", tag = "pipelines", params(ListParams),
    responses((status = 200, description = "pipelines", body = PipelinePage), (status = 400, description = "bad input", body = ErrorEnvelope)))]
async fn list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<ListParams>,
) -> ApiResult<PipelinePage> {
    let page = PageParams {
        limit: params.limit,
        offset: params.offset,
    }
    .page()?;
    let (pipelines, total) = state
        .engine
        .list_pipelines(&principal, params.include_archived, page)
        .await?;
    Ok(PipelinePage::new(pipelines, page_meta(&uri, page, total)))
}

/// A pipeline to create: a name and exactly one of `definition`, `sql`, `visual`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreatePipeline {
    /// Unique name.
    #[schema(value_type = Identifier)]
    name: String,
    /// The JSON form.
    #[serde(default)]
    definition: Option<PipelineDefinition>,
    /// A `.sql` file's text.
    #[serde(default)]
    sql: Option<String>,
    /// The visual form (nodes and edges).
    #[serde(default)]
    visual: Option<VisualDefinition>,
}

/// Creates a pipeline; it is validated first and refused with every
/// diagnostic when it does not validate.
#[utoipa::path(post, path = "/pipelines", operation_id = "create_pipeline", tag = "pipelines", request_body = CreatePipeline,
    responses((status = 201, description = "the pipeline", body = PipelineAnswer),
        (status = 400, description = "`invalid_input`: not exactly one of `definition`, `sql`, `visual`", body = ErrorEnvelope),
        (status = 409, description = "`pipeline_exists`", body = ErrorEnvelope),
        (status = 422, description = "`pipeline_invalid`: details.diagnostics", body = ErrorEnvelope)))]
async fn create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Json(body): Json<CreatePipeline>,
) -> ApiResult<(StatusCode, PipelineAnswer)> {
    let source = PipelineSource {
        definition: body.definition,
        sql: body.sql,
        visual: body.visual,
    };
    let detail = state
        .engine
        .create_pipeline(&principal, &body.name, source)
        .await?;
    Ok((StatusCode::CREATED, PipelineAnswer::new(detail)))
}

/// A draft to validate.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ValidateBody {
    /// The JSON form.
    #[serde(default)]
    definition: Option<PipelineDefinition>,
    /// A `.sql` file's text.
    #[serde(default)]
    sql: Option<String>,
    /// The visual form.
    #[serde(default)]
    visual: Option<VisualDefinition>,
    /// Param values to validate with (defaults otherwise).
    #[serde(default)]
    params: serde_json::Map<String, Value>,
}

/// Validates a draft without saving it: graph, cycles, unknown tables,
/// every step planned (no data read); diagnostics carry step, line, column.
/// Always 200: `data.valid` says whether it passed.
#[utoipa::path(post, path = "/pipelines/validate", operation_id = "validate_pipeline", tag = "pipelines", request_body = ValidateBody,
    responses((status = 200, description = "the validation", body = ValidationAnswer),
        (status = 400, description = "`invalid_input`: not exactly one of `definition`, `sql`, `visual`", body = ErrorEnvelope)))]
async fn validate(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Json(body): Json<ValidateBody>,
) -> ApiResult<ValidationAnswer> {
    let source = PipelineSource {
        definition: body.definition,
        sql: body.sql,
        visual: body.visual,
    };
    let validation = state
        .engine
        .validate_source(&principal, source, &body.params)
        .await?;
    Ok(ValidationAnswer::new(validation))
}

/// `?format=json|sql|visual`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ShowParams {
    /// `json` (default), `sql` or `visual`.
    #[serde(default)]
    #[param(pattern = "^(json|sql|visual)$")]
    format: Option<String>,
}

/// A pipeline: its active definition (as JSON, or `?format=sql|visual`),
/// what validation derived, its next fire times and last run.
#[utoipa::path(get, path = "/pipelines/{id}", operation_id = "get_pipeline", tag = "pipelines",
    params(("id" = String, Path, description = "pipeline id or name"), ShowParams),
    responses((status = 200, description = "the pipeline", body = PipelineShown), (status = 400, description = "bad input", body = ErrorEnvelope),
        (status = 404, description = "`pipeline_not_found`", body = ErrorEnvelope)))]
async fn show(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    Query(params): Query<ShowParams>,
) -> ApiResult<PipelineShown> {
    let view = match params.format.as_deref() {
        None | Some("json") => PipelineView::Detail(Box::new(
            state.engine.pipeline_detail(&principal, &id).await?,
        )),
        Some("sql") => {
            let detail = state.engine.pipeline_detail(&principal, &id).await?;
            PipelineView::Sql(PipelineSqlFile {
                sql: detail.definition.to_sql_file(),
            })
        }
        Some("visual") => PipelineView::Visual(Box::new(
            state.engine.pipeline_visual(&principal, &id).await?,
        )),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "format {other:?} is not one of json, sql, visual"
            )));
        }
    };
    Ok(PipelineShown::new(view))
}

/// A new definition for a pipeline.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SaveBody {
    /// The JSON form.
    #[serde(default)]
    definition: Option<PipelineDefinition>,
    /// A `.sql` file's text.
    #[serde(default)]
    sql: Option<String>,
    /// The visual form.
    #[serde(default)]
    visual: Option<VisualDefinition>,
    /// The active version the caller read; 409 `conflict` when it moved.
    #[serde(default)]
    expected_version: Option<i64>,
}

/// Saves a new immutable version and activates it; an unchanged definition
/// keeps the active version (`meta.created` is false).
#[utoipa::path(put, path = "/pipelines/{id}", operation_id = "save_pipeline", tag = "pipelines", request_body = SaveBody,
    params(("id" = String, Path, description = "pipeline id or name")),
    responses((status = 200, description = "the pipeline", body = PipelineSaved),
        (status = 400, description = "`invalid_input`: not exactly one of `definition`, `sql`, `visual`", body = ErrorEnvelope),
        (status = 404, description = "`pipeline_not_found`", body = ErrorEnvelope),
        (status = 409, description = "`conflict`", body = ErrorEnvelope),
        (status = 422, description = "`pipeline_invalid`", body = ErrorEnvelope)))]
async fn save(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    Json(body): Json<SaveBody>,
) -> ApiResult<PipelineSaved> {
    let source = PipelineSource {
        definition: body.definition,
        sql: body.sql,
        visual: body.visual,
    };
    let (detail, created) = state
        .engine
        .save_pipeline(&principal, &id, source, body.expected_version)
        .await?;
    Ok(PipelineSaved::new(detail, SaveMeta { created }))
}

/// Archives a pipeline: it keeps its versions and runs but no longer runs.
#[utoipa::path(post, path = "/pipelines/{id}/archive", operation_id = "archive_pipeline", tag = "pipelines",
    params(("id" = String, Path, description = "pipeline id or name")),
    responses((status = 200, description = "the pipeline", body = PipelineAnswer), (status = 404, description = "`pipeline_not_found`", body = ErrorEnvelope)))]
async fn archive(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<PipelineAnswer> {
    let detail = state.engine.archive_pipeline(&principal, &id, true).await?;
    Ok(PipelineAnswer::new(detail))
}

/// Restores an archived pipeline.
#[utoipa::path(post, path = "/pipelines/{id}/unarchive", operation_id = "unarchive_pipeline", tag = "pipelines",
    params(("id" = String, Path, description = "pipeline id or name")),
    responses((status = 200, description = "the pipeline", body = PipelineAnswer), (status = 404, description = "`pipeline_not_found`", body = ErrorEnvelope)))]
async fn unarchive(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<PipelineAnswer> {
    let detail = state
        .engine
        .archive_pipeline(&principal, &id, false)
        .await?;
    Ok(PipelineAnswer::new(detail))
}

/// Every version, newest first.
#[utoipa::path(get, path = "/pipelines/{id}/versions", operation_id = "list_pipeline_versions", tag = "pipelines",
    params(("id" = String, Path, description = "pipeline id or name")),
    responses((status = 200, description = "versions", body = PipelineVersionList), (status = 404, description = "`pipeline_not_found`", body = ErrorEnvelope)))]
async fn versions(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<PipelineVersionList> {
    let versions = state.engine.pipeline_versions(&principal, &id).await?;
    let meta = TotalMeta::of(&versions);
    Ok(PipelineVersionList::new(versions, meta))
}

/// One version: its definition and what validation derived.
#[utoipa::path(get, path = "/pipelines/{id}/versions/{version}", operation_id = "get_pipeline_version", tag = "pipelines",
    params(("id" = String, Path, description = "pipeline id or name"), ("version" = i64, Path, description = "version number")),
    responses((status = 200, description = "the version", body = PipelineVersionAnswer), (status = 404, description = "`pipeline_not_found` or `version_not_found`", body = ErrorEnvelope)))]
async fn version(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((id, version)): Path<(String, i64)>,
) -> ApiResult<PipelineVersionAnswer> {
    let version = state
        .engine
        .pipeline_version(&principal, &id, version)
        .await?;
    Ok(PipelineVersionAnswer::new(version))
}

/// Makes a version the active one (roll back, or forward again).
#[utoipa::path(post, path = "/pipelines/{id}/versions/{version}/activate", operation_id = "activate_pipeline_version", tag = "pipelines",
    params(("id" = String, Path, description = "pipeline id or name"), ("version" = i64, Path, description = "version number")),
    responses((status = 200, description = "the pipeline", body = PipelineAnswer), (status = 404, description = "`pipeline_not_found` or `version_not_found`", body = ErrorEnvelope)))]
async fn activate(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((id, version)): Path<(String, i64)>,
) -> ApiResult<PipelineAnswer> {
    let detail = state
        .engine
        .activate_pipeline_version(&principal, &id, version)
        .await?;
    Ok(PipelineAnswer::new(detail))
}

/// `?from=&to=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DiffParams {
    /// The older version.
    from: i64,
    /// The newer version.
    to: i64,
}

/// What changed between two versions: steps added, removed and changed
/// (SQL, materialization, output schema) and whether it may break readers.
#[utoipa::path(get, path = "/pipelines/{id}/diff", operation_id = "diff_pipeline_versions", tag = "pipelines",
    params(("id" = String, Path, description = "pipeline id or name"), DiffParams),
    responses((status = 200, description = "the diff", body = VersionDiffAnswer), (status = 400, description = "bad input", body = ErrorEnvelope),
        (status = 404, description = "`pipeline_not_found` or `version_not_found`", body = ErrorEnvelope)))]
async fn diff(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    Query(params): Query<DiffParams>,
) -> ApiResult<VersionDiffAnswer> {
    let diff = state
        .engine
        .diff_pipeline_versions(&principal, &id, params.from, params.to)
        .await?;
    Ok(VersionDiffAnswer::new(diff))
}

/// A dry run: the steps that would run, their plans, sample rows from a
/// LIMITed run and each step's schema change against what exists now.
/// Nothing is written. Plans the active version, or a draft in the body.
#[utoipa::path(post, path = "/pipelines/{id}/plan", operation_id = "plan_pipeline", tag = "pipelines",
    params(("id" = String, Path, description = "pipeline id or name")),
    request_body(content = Option<PlanRequest>, description = "optional: params, rows per sample, a draft"),
    responses((status = 200, description = "the plan", body = PlanAnswer), (status = 400, description = "bad input", body = ErrorEnvelope),
        (status = 404, description = "`pipeline_not_found`", body = ErrorEnvelope),
        (status = 422, description = "`pipeline_invalid`: the draft does not parse", body = ErrorEnvelope)))]
async fn plan(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    OptionalJson(request): OptionalJson<PlanRequest>,
) -> ApiResult<PlanAnswer> {
    let plan = state.engine.plan_pipeline(&principal, &id, request).await?;
    Ok(PlanAnswer::new(plan))
}

/// What a run is started with.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
struct RunBody {
    /// Param values.
    #[serde(default)]
    params: serde_json::Map<String, Value>,
    /// A key that makes the request safe to repeat: the same key returns the same run.
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// Starts a run of the active version; 202 with the run (queued). A repeated
/// idempotency key answers 200 with the run it started.
#[utoipa::path(post, path = "/pipelines/{id}/runs", operation_id = "start_run", tag = "pipelines",
    request_body(content = Option<RunBody>, description = "optional: params, an idempotency key"),
    params(("id" = String, Path, description = "pipeline id or name")),
    responses((status = 202, description = "the run, queued", body = RunAnswer),
        (status = 200, description = "the run an earlier request with this idempotency key started", body = RunAnswer),
        (status = 400, description = "`invalid_input`: bad params", body = ErrorEnvelope),
        (status = 404, description = "`pipeline_not_found`", body = ErrorEnvelope),
        (status = 409, description = "`run_state`: archived pipeline or template", body = ErrorEnvelope)))]
async fn start_run(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<RunBody>,
) -> ApiResult<(StatusCode, RunAnswer)> {
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
    Ok((status, RunAnswer::new(run)))
}

/// `?status=&limit=&offset=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RunParams {
    /// Only runs in this status.
    #[serde(default)]
    #[param(value_type = Option<RunStatus>)]
    status: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Rows to skip.
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

    fn status(&self) -> Result<Option<RunStatus>, ApiError> {
        self.status
            .as_deref()
            .map(|s| {
                RunStatus::parse(s).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "status {s:?} is not one of queued, running, retrying, succeeded, failed, canceling, canceled"
                    ))
                })
            })
            .transpose()
    }
}

/// A pipeline's runs, newest first.
#[utoipa::path(get, path = "/pipelines/{id}/runs", operation_id = "list_pipeline_runs", tag = "pipelines",
    params(("id" = String, Path, description = "pipeline id or name"), RunParams),
    responses((status = 200, description = "runs", body = RunPage), (status = 400, description = "bad input", body = ErrorEnvelope),
        (status = 404, description = "`pipeline_not_found`", body = ErrorEnvelope)))]
async fn pipeline_runs(
    State(state): State<AppState>,
    Caller(principal): Caller,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    Query(params): Query<RunParams>,
) -> ApiResult<RunPage> {
    let page = params.page()?;
    let (runs, total) = state
        .engine
        .list_pipeline_runs(&principal, &id, params.status()?, page)
        .await?;
    Ok(RunPage::new(runs, page_meta(&uri, page, total)))
}

/// A template's params and the new pipeline's name.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "big_daily", "params": {"min_amount": 100}}))]
struct InstantiateBody {
    /// The new pipeline's name.
    #[schema(value_type = Identifier)]
    name: String,
    /// Values for the template's params (checked against their types).
    #[serde(default)]
    params: serde_json::Map<String, Value>,
}

/// Creates a pipeline from a template, its `{{ param }}` placeholders filled
/// with checked, typed values.
#[utoipa::path(post, path = "/pipelines/{id}/instantiate", operation_id = "instantiate_template", tag = "pipelines", request_body = InstantiateBody,
    params(("id" = String, Path, description = "template id or name", example = "daily_template")),
    responses((status = 201, description = "the new pipeline", body = PipelineAnswer),
        (status = 400, description = "`invalid_input`: bad params", body = ErrorEnvelope),
        (status = 404, description = "`pipeline_not_found`", body = ErrorEnvelope),
        (status = 409, description = "`pipeline_exists`, or `run_state`: not a template", body = ErrorEnvelope),
        (status = 422, description = "`pipeline_invalid`: the filled-in pipeline does not validate", body = ErrorEnvelope)))]
async fn instantiate(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    Json(body): Json<InstantiateBody>,
) -> ApiResult<(StatusCode, PipelineAnswer)> {
    let detail = state
        .engine
        .instantiate_template(&principal, &id, &body.name, &body.params)
        .await?;
    Ok((StatusCode::CREATED, PipelineAnswer::new(detail)))
}

/// A pipeline's own lineage: its steps, what they read and write, and
/// column-level lineage per step.
#[utoipa::path(get, path = "/pipelines/{id}/lineage", operation_id = "get_pipeline_lineage", tag = "pipelines",
    params(("id" = String, Path, description = "pipeline id or name")),
    responses((status = 200, description = "the graph", body = LineageAnswer), (status = 404, description = "`pipeline_not_found`", body = ErrorEnvelope)))]
async fn pipeline_lineage(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<LineageAnswer> {
    Ok(LineageAnswer::new(
        state.engine.pipeline_lineage(&principal, &id).await?,
    ))
}

/// Runs of every pipeline, newest first.
#[utoipa::path(get, path = "/runs", operation_id = "list_runs", tag = "runs", params(RunParams),
    responses((status = 200, description = "runs", body = RunPage), (status = 400, description = "bad input", body = ErrorEnvelope)))]
async fn list_runs(
    State(state): State<AppState>,
    Caller(principal): Caller,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<RunParams>,
) -> ApiResult<RunPage> {
    let page = params.page()?;
    let filter = RunFilter {
        pipeline_id: None,
        status: params.status()?,
    };
    let (runs, total) = state.engine.list_runs(&principal, &filter, page).await?;
    Ok(RunPage::new(runs, page_meta(&uri, page, total)))
}

/// A run: status, progress, each step's status, attempts, rows, durations,
/// errors (with line and column for SQL errors) and logs.
#[utoipa::path(get, path = "/runs/{id}", operation_id = "get_run", tag = "runs",
    params(("id" = String, Path, description = "run id")),
    responses((status = 200, description = "the run", body = RunShown), (status = 404, description = "`run_not_found`", body = ErrorEnvelope)))]
async fn show_run(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<RunShown> {
    let run = state.engine.run_record(&principal, &id).await?;
    let progress = run.progress();
    Ok(RunShown::new(run, RunMeta { progress }))
}

/// Cancels a run: running steps stop (their datasets keep their last
/// committed version) and the rest do not start.
#[utoipa::path(post, path = "/runs/{id}/cancel", operation_id = "cancel_run", tag = "runs",
    params(("id" = String, Path, description = "run id")),
    responses((status = 200, description = "the run", body = RunAnswer), (status = 404, description = "`run_not_found`", body = ErrorEnvelope),
        (status = 409, description = "`run_state`: already ended", body = ErrorEnvelope)))]
async fn cancel_run(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<RunAnswer> {
    Ok(RunAnswer::new(
        state.engine.cancel_run(&principal, &id).await?,
    ))
}

/// Retries a failed or canceled run from its failed steps: a new run of the
/// same version and params in which the steps that succeeded are `reused`.
#[utoipa::path(post, path = "/runs/{id}/retry", operation_id = "retry_run", tag = "runs",
    params(("id" = String, Path, description = "run id")),
    responses((status = 202, description = "the new run", body = RunAnswer), (status = 404, description = "`run_not_found`", body = ErrorEnvelope),
        (status = 409, description = "`run_state`: not failed or canceled", body = ErrorEnvelope)))]
async fn retry_run(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, RunAnswer)> {
    let run = state.engine.retry_run(&principal, &id).await?;
    Ok((StatusCode::ACCEPTED, RunAnswer::new(run)))
}

/// The run as OpenLineage run events (START and COMPLETE/FAIL/ABORT per
/// step, with inputs, outputs, schema and column lineage facets).
#[utoipa::path(get, path = "/runs/{id}/openlineage", operation_id = "get_run_openlineage", tag = "runs",
    params(("id" = String, Path, description = "run id")),
    responses((status = 200, description = "OpenLineage RunEvents", body = OpenLineageEvents), (status = 404, description = "`run_not_found`", body = ErrorEnvelope)))]
async fn openlineage(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<OpenLineageEvents> {
    Ok(OpenLineageEvents::new(
        state.engine.openlineage_events(&principal, &id).await?,
    ))
}

/// `?node=&direction=&depth=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct LineageParams {
    /// `dataset:<name>`, `view:<name>`, `table:<c.s.t>` or `step:<pipeline>/<step>`.
    #[serde(default)]
    node: Option<String>,
    /// `upstream`, `downstream` or `both` (default).
    #[serde(default)]
    direction: Option<Direction>,
    /// Edges to follow (default 10).
    #[serde(default)]
    depth: Option<usize>,
}

/// The table-level lineage graph of every live pipeline (sources → steps →
/// datasets, with column lineage on steps), or the part of it `depth`
/// edges `upstream` or `downstream` of `node`.
#[utoipa::path(get, path = "/lineage", operation_id = "get_lineage", tag = "pipelines", params(LineageParams),
    responses((status = 200, description = "the graph", body = LineageAnswer), (status = 400, description = "`invalid_input`: unknown node", body = ErrorEnvelope)))]
async fn lineage(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Query(params): Query<LineageParams>,
) -> ApiResult<LineageAnswer> {
    let graph = state
        .engine
        .lineage(
            &principal,
            params.node.as_deref(),
            params.direction.unwrap_or(Direction::Both),
            params.depth.unwrap_or(10),
        )
        .await?;
    Ok(LineageAnswer::new(graph))
}
