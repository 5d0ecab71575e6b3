//! `/datasets`: create, ingest, browse, time-travel and restore datasets.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema};
use axum::extract::{FromRequest, Multipart, OriginalUri, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use basin_connectors::file::{CsvOptions, FormatKind, parse_data_type};
use basin_engine::catalog::{
    DatasetFilter, DatasetRecord, DatasetSort, JobRecord, SchemaHistoryRecord,
};
use basin_engine::datasets::write::WriteMode;
use basin_engine::datasets::{DatasetPatch, DatasetStatistics, TimeTravel, VersionInfo};
use basin_engine::identity::Principal;
use basin_engine::ingest::{
    BadRowPolicy, ImportFile, ImportSource, IngestOptions, IngestReport, TempFile,
};
use chrono::{DateTime, Utc};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::io::StreamReader;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::jobs::strip_prefix;
use super::{PageParams, page_meta};
use crate::AppState;
use crate::WithDeadline;
use crate::access::Caller;
use crate::encode::{PreviewResult, ResultFormat, stream_body};
use crate::envelope::{PageMeta, TotalMeta, answers};
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{Json, Path, Query};
use crate::openapi::{BinaryBody, DocumentedRoutes, Identifier, Tag};

answers! {
    /// A page of datasets.
    DatasetPage(Vec<DatasetRecord>, PageMeta);
    /// A dataset.
    DatasetAnswer(DatasetRecord);
    /// What an ingest did.
    IngestAnswer(IngestReport);
    /// A queued job.
    QueuedJob(JobRecord);
    /// A dataset's versions, newest first.
    VersionList(Vec<VersionInfo>, VersionsMeta);
    /// Every schema a dataset has had, oldest first.
    SchemaHistory(Vec<SchemaHistoryRecord>, TotalMeta);
    /// A dataset version's statistics.
    StatisticsAnswer(DatasetStatistics);
}

/// `meta` of a version listing.
#[derive(Debug, Serialize, ToSchema)]
struct VersionsMeta {
    /// Versions in `data`.
    count: usize,
}

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .documented(routes!(list))
        .documented(routes!(show, update, delete))
        .documented(routes!(preview))
        .documented(routes!(versions))
        .documented(routes!(schema_history))
        .documented(routes!(restore))
        .documented(routes!(statistics))
        .with_deadline()
        // Creating may download a source and uploads stream their bodies: both
        // run for as long as the ingest limits allow, not the request deadline.
        .documented(routes!(create))
        .documented(routes!(upload))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Substring of the name.
    name: Option<String>,
    /// Exact tag.
    tag: Option<String>,
    /// `name`, `created_at` or `updated_at`, prefixed with `-` for descending.
    #[param(pattern = "^-?(name|created_at|updated_at)$")]
    sort: Option<String>,
    /// Include soft-deleted datasets.
    include_deleted: Option<bool>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Rows to skip.
    offset: Option<u64>,
}

/// Datasets, filtered, sorted and paged.
#[utoipa::path(get, path = "/datasets", operation_id = "list_datasets", tag = "datasets", params(ListParams),
    responses((status = 200, description = "a page of datasets", body = DatasetPage), (status = 400, description = "bad input", body = ErrorEnvelope)))]
async fn list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<ListParams>,
) -> ApiResult<DatasetPage> {
    let sort: DatasetSort = params
        .sort
        .as_deref()
        .unwrap_or("name")
        .parse()
        .map_err(basin_engine::Error::from)?;
    let page = PageParams {
        limit: params.limit,
        offset: params.offset,
    }
    .page()?;
    let filter = DatasetFilter {
        name_contains: params.name,
        tag: params.tag,
        include_deleted: params.include_deleted.unwrap_or(false),
        only: None,
    };
    let (datasets, total) = state
        .engine
        .list_datasets(&principal, filter, sort, page)
        .await?;
    Ok(DatasetPage::new(
        datasets,
        page_meta(&strip_prefix(&uri), page, total),
    ))
}

/// One dataset: schema, row count, size, version, description, tags.
#[utoipa::path(get, path = "/datasets/{name}", operation_id = "get_dataset", tag = "datasets", params(("name" = Identifier, Path, description = "dataset name")),
    responses((status = 200, description = "the dataset", body = DatasetAnswer), (status = 400, description = "bad input", body = ErrorEnvelope), (status = 404, description = "not found", body = ErrorEnvelope)))]
async fn show(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
) -> ApiResult<DatasetAnswer> {
    Ok(DatasetAnswer::new(
        state.engine.dataset(&principal, &name).await?,
    ))
}

/// Renames, re-describes or re-tags a dataset.
#[utoipa::path(patch, path = "/datasets/{name}", operation_id = "update_dataset", tag = "datasets", params(("name" = Identifier, Path, description = "dataset name")), request_body = DatasetChanges,
    responses((status = 200, description = "the dataset after the change", body = DatasetAnswer), (status = 400, description = "bad input", body = ErrorEnvelope), (status = 404, description = "not found", body = ErrorEnvelope),
        (status = 409, description = "the new name is taken", body = ErrorEnvelope)))]
async fn update(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
    Json(patch): Json<DatasetChanges>,
) -> ApiResult<DatasetAnswer> {
    let patch = DatasetPatch {
        name: patch.name,
        description: patch.description,
        tags: patch.tags,
    };
    Ok(DatasetAnswer::new(
        state
            .engine
            .update_dataset(&principal, &name, patch)
            .await?,
    ))
}

/// Changes to a dataset's name and metadata; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DatasetChanges {
    /// New name.
    #[schema(value_type = Option<Identifier>)]
    name: Option<String>,
    /// New description.
    description: Option<String>,
    /// New tags, replacing the old.
    #[schema(value_type = Option<Vec<Tag>>)]
    tags: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeleteParams {
    /// Remove the files and the catalog row instead of hiding the dataset.
    purge: Option<bool>,
}

/// Soft-deletes a dataset, or purges it.
#[utoipa::path(delete, path = "/datasets/{name}", operation_id = "delete_dataset", tag = "datasets", params(("name" = Identifier, Path, description = "dataset name"), DeleteParams),
    responses((status = 204, description = "deleted"), (status = 400, description = "bad input", body = ErrorEnvelope), (status = 404, description = "not found", body = ErrorEnvelope)))]
async fn delete(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
    Query(params): Query<DeleteParams>,
) -> ApiResult<StatusCode> {
    state
        .engine
        .delete_dataset(&principal, &name, params.purge.unwrap_or(false))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A column of a supplied schema.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ColumnSpec {
    /// Column name.
    #[schema(min_length = 1)]
    name: String,
    /// `bigint`, `double`, `decimal(12,2)`, `text`, `boolean`, `date`, `timestamp`, `timestamptz`, or an Arrow type.
    #[serde(rename = "type")]
    #[schema(min_length = 1, example = "bigint")]
    data_type: String,
    /// Whether nulls are allowed (default true).
    #[serde(default = "yes")]
    nullable: bool,
}

fn yes() -> bool {
    true
}

/// Ingest options shared by the JSON create body and the upload query string.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct IngestParams {
    /// `csv`, `tsv`, `ndjson`, `json`, `parquet` or `arrow`; sniffed when absent.
    #[schema(value_type = Option<FormatKind>)]
    format: Option<String>,
    /// `create`, `append` or `overwrite`.
    mode: Option<WriteMode>,
    /// `fail` (default), `skip` or `quarantine`.
    on_error: Option<BadRowPolicy>,
    /// CSV delimiter, one ASCII character (or `\t`, `tab`); sniffed when absent.
    #[schema(pattern = "^([\\x00-\\x7f]|\\\\t|tab)$")]
    delimiter: Option<String>,
    /// Whether the CSV has a header line; sniffed when absent.
    header: Option<bool>,
    /// CSV quote character, one ASCII character. Named `quote_char` because
    /// generated clients put a parameter named `quote` in the place of the
    /// URL-quoting function they call (openapi-python-client does); `quote`
    /// still works.
    #[serde(rename = "quote_char", alias = "quote")]
    #[schema(pattern = "^([\\x00-\\x7f]|\\\\t|tab)$")]
    quote: Option<String>,
    /// Strings read as null: comma-separated in a query string, an array in JSON.
    #[schema(value_type = Option<Vec<String>>)]
    null_values: Option<NullValues>,
    /// Description of a new dataset.
    description: Option<String>,
    /// Run as a background job and answer 202 with it.
    #[serde(rename = "async")]
    run_async: Option<bool>,
    /// Columns to read with instead of inferring (JSON body only).
    #[schema(min_items = 1)]
    schema: Option<Vec<ColumnSpec>>,
    /// Tags of a new dataset (JSON body only).
    #[schema(value_type = Option<Vec<Tag>>)]
    tags: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum NullValues {
    List(Vec<String>),
    Joined(String),
}

impl IngestParams {
    fn into_options(
        self,
        default_mode: WriteMode,
        file_name: Option<String>,
    ) -> ApiResult<(IngestOptions, bool)> {
        let format = self
            .format
            .as_deref()
            .map(FormatKind::parse)
            .transpose()
            .map_err(|e| {
                ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_format",
                    e.to_string(),
                )
            })?;
        let schema = match self.schema {
            None => None,
            Some(columns) if columns.is_empty() => {
                return Err(ApiError::invalid("schema must list at least one column"));
            }
            Some(columns) => {
                let mut names = std::collections::HashSet::new();
                for column in &columns {
                    if column.name.is_empty() {
                        return Err(ApiError::invalid("schema column names must not be empty"));
                    }
                    if !names.insert(column.name.as_str()) {
                        return Err(ApiError::invalid(format!(
                            "schema names the column `{}` twice",
                            column.name
                        )));
                    }
                }
                let fields = columns
                    .into_iter()
                    .map(|c| {
                        parse_data_type(&c.data_type)
                            .map(|t| Field::new(c.name, t, c.nullable))
                            .map_err(|e| ApiError::invalid(e.to_string()))
                    })
                    .collect::<ApiResult<Vec<_>>>()?;
                Some(Arc::new(Schema::new(fields)))
            }
        };
        let null_values = match self.null_values {
            None => Vec::new(),
            Some(NullValues::List(list)) => list,
            Some(NullValues::Joined(text)) => text.split(',').map(str::to_owned).collect(),
        };
        let csv = CsvOptions {
            delimiter: self.delimiter,
            header: self.header,
            quote: self.quote,
            null_values,
        };
        // Before an async ingest is queued, not when its job runs.
        csv.validate().map_err(basin_engine::Error::from)?;
        let options = IngestOptions {
            mode: self.mode.unwrap_or(default_mode),
            format,
            file_name,
            csv,
            schema,
            on_error: self.on_error.unwrap_or_default(),
            description: self.description,
            tags: self.tags.unwrap_or_default(),
        };
        Ok((options, self.run_async.unwrap_or(false)))
    }
}

/// A dataset to create from a server-side file: its name, where the file
/// is, and the ingest options, at the top level or nested in `options`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateDataset {
    #[serde(flatten)]
    target: CreateDatasetTarget,
    #[serde(flatten)]
    params: IngestParams,
}

/// The fields of [`CreateDataset`] besides the ingest options.
#[derive(Debug, Deserialize, ToSchema)]
struct CreateDatasetTarget {
    /// The new dataset's name.
    #[schema(value_type = Identifier)]
    name: String,
    /// Absolute path (or `file://` URL) inside `ingest.allowed_roots`, or an
    /// `http(s)://` URL under an `ingest.allowed_urls` prefix.
    #[schema(
        pattern = "^(/|file:///|https?://)",
        example = "/srv/imports/orders.csv"
    )]
    source: String,
    /// The same options, nested.
    options: Option<IngestParams>,
}

impl utoipa::PartialSchema for CreateDataset {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::openapi::merged_object::<CreateDatasetTarget, IngestParams>(
            "A dataset to create from a server-side file: its name, where the file is, and the ingest options, at the top level or nested in `options`.",
            serde_json::json!({"name": "orders_copy", "source": "/srv/imports/orders.csv", "on_error": "skip"}),
        )
    }
}

impl utoipa::ToSchema for CreateDataset {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <CreateDatasetTarget as utoipa::ToSchema>::schemas(schemas);
        <IngestParams as utoipa::ToSchema>::schemas(schemas);
        schemas.push((
            "IngestParams".into(),
            <IngestParams as utoipa::PartialSchema>::schema(),
        ));
    }
}

/// Creates a dataset from a server-side file inside the allowed import roots,
/// or from a URL under an allowed prefix (downloaded first; inside the job when async).
#[utoipa::path(post, path = "/datasets", operation_id = "create_dataset", tag = "datasets", request_body = CreateDataset,
    responses((status = 201, description = "the ingest report", body = IngestAnswer),
        (status = 202, description = "the queued job (async)", body = QueuedJob), (status = 400, description = "bad input", body = ErrorEnvelope),
        (status = 403, description = "outside the allowed roots or URL prefixes", body = ErrorEnvelope), (status = 404, description = "not found", body = ErrorEnvelope),
        (status = 409, description = "the name is taken", body = ErrorEnvelope),
        (status = 422, description = "malformed rows or a schema mismatch", body = ErrorEnvelope),
        (status = 502, description = "the URL could not be fetched", body = ErrorEnvelope)))]
async fn create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Json(body): Json<CreateDataset>,
) -> ApiResult<Response> {
    let CreateDataset { target, params } = body;
    basin_sql::validate_name(&target.name)?;
    let params = merge_params(params, target.options);
    let source = state
        .engine
        .resolve_import(&principal, &target.name, &target.source)
        .await?;
    let (options, run_async) = params.into_options(WriteMode::Create, source.file_name())?;
    run_ingest(
        state,
        principal,
        target.name,
        IngestInput::Source(source),
        options,
        run_async,
    )
    .await
}

fn merge_params(flat: IngestParams, nested: Option<IngestParams>) -> IngestParams {
    let Some(n) = nested else { return flat };
    IngestParams {
        format: flat.format.or(n.format),
        mode: flat.mode.or(n.mode),
        on_error: flat.on_error.or(n.on_error),
        delimiter: flat.delimiter.or(n.delimiter),
        header: flat.header.or(n.header),
        quote: flat.quote.or(n.quote),
        null_values: flat.null_values.or(n.null_values),
        description: flat.description.or(n.description),
        run_async: flat.run_async.or(n.run_async),
        schema: flat.schema.or(n.schema),
        tags: flat.tags.or(n.tags),
    }
}

/// Ingests the raw body, or the first file of a multipart form, as a new version
/// (creating the dataset if needed).
#[utoipa::path(post, path = "/datasets/{name}/upload", operation_id = "upload_dataset", tag = "datasets",
    params(("name" = Identifier, Path, description = "dataset name"),
        ("format" = Option<FormatKind>, Query, description = "csv, tsv, ndjson, json, parquet or arrow; sniffed when absent"),
        ("mode" = Option<WriteMode>, Query, description = "append (default), overwrite or create"),
        ("on_error" = Option<BadRowPolicy>, Query, description = "fail (default), skip or quarantine"),
        ("delimiter" = Option<String>, Query, description = "CSV delimiter: one ASCII character, or `\\t` or `tab`", pattern = "^([\\x00-\\x7f]|\\\\t|tab)$"),
        ("header" = Option<bool>, Query, description = "whether the CSV has a header line"),
        ("quote_char" = Option<String>, Query, description = "CSV quote character: one ASCII character", pattern = "^([\\x00-\\x7f]|\\\\t|tab)$"),
        ("null_values" = Option<String>, Query, description = "comma-separated null markers"),
        ("description" = Option<String>, Query, description = "description of a new dataset"),
        ("async" = Option<bool>, Query, description = "run as a job and answer 202")),
    request_body(content = BinaryBody, content_type = "application/octet-stream",
        description = "the file (gzip or zstd compressed, or not); multipart/form-data also works",
        example = json!("order_id,amount\n3,42.5\n")),
    responses((status = 200, description = "appended or overwritten: the ingest report", body = IngestAnswer),
        (status = 201, description = "created: the ingest report", body = IngestAnswer),
        (status = 202, description = "the queued job (async)", body = QueuedJob), (status = 400, description = "bad input", body = ErrorEnvelope),
        (status = 409, description = "`dataset_exists`: `mode=create` and the name is taken", body = ErrorEnvelope),
        (status = 413, description = "body too large", body = ErrorEnvelope),
        (status = 415, description = "unsupported format", body = ErrorEnvelope),
        (status = 422, description = "malformed rows or a schema mismatch", body = ErrorEnvelope)))]
async fn upload(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
    Query(params): Query<IngestParams>,
    request: Request,
) -> ApiResult<Response> {
    basin_sql::validate_name(&name)?;
    if params.schema.is_some() || params.tags.is_some() {
        return Err(ApiError::invalid(
            "schema and tags are set through POST /datasets or PATCH",
        ));
    }
    let limit = Some(state.config.body_limit);
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let (temp, file_name) = if is_multipart {
        let mut form = Multipart::from_request(request, &state)
            .await
            .map_err(|e| ApiError::invalid(format!("invalid multipart body: {}", e.body_text())))?;
        let field = loop {
            match form.next_field().await {
                Ok(Some(field)) if field.file_name().is_some() => break field,
                Ok(Some(_)) => continue,
                Ok(None) => return Err(ApiError::invalid("the multipart form has no file field")),
                Err(e) => {
                    return Err(ApiError::invalid(format!(
                        "invalid multipart body: {}",
                        e.body_text()
                    )));
                }
            }
        };
        let file_name = field.file_name().map(str::to_owned);
        let reader = StreamReader::new(field.map_err(std::io::Error::other));
        (state.engine.spool_upload(reader, limit).await?.0, file_name)
    } else {
        let stream = request
            .into_body()
            .into_data_stream()
            .map_err(std::io::Error::other);
        (
            state
                .engine
                .spool_upload(StreamReader::new(stream), limit)
                .await?
                .0,
            None,
        )
    };
    let (options, run_async) = params.into_options(WriteMode::Append, file_name)?;
    run_ingest(
        state,
        principal,
        name,
        IngestInput::Upload(temp),
        options,
        run_async,
    )
    .await
}

enum IngestInput {
    Upload(TempFile),
    /// Fetched when the ingest runs (a download belongs inside the job).
    Source(ImportSource),
}

impl IngestInput {
    async fn into_file(self, engine: &basin_engine::Engine) -> basin_engine::Result<ImportFile> {
        match self {
            Self::Upload(file) => Ok(ImportFile::Temporary { file, name: None }),
            Self::Source(source) => engine.fetch_import(source).await,
        }
    }
}

async fn run_ingest(
    state: AppState,
    principal: Principal,
    name: String,
    input: IngestInput,
    options: IngestOptions,
    run_async: bool,
) -> ApiResult<Response> {
    if run_async {
        let engine = state.engine.clone();
        let params = json!({"dataset": name, "mode": options.mode, "on_error": options.on_error});
        let job = state
            .engine
            .submit_job("ingest", params, move |ctx| async move {
                let file = input.into_file(&engine).await?;
                let report = engine
                    .ingest_file(&principal, &name, file.path(), options, Some(ctx.progress))
                    .await?;
                Ok(serde_json::to_value(report).unwrap_or_default())
            })
            .await?;
        let location = format!("/api/v1/jobs/{}", job.id);
        return Ok((
            StatusCode::ACCEPTED,
            [(header::LOCATION, location)],
            QueuedJob::new(job),
        )
            .into_response());
    }
    let file = input.into_file(&state.engine).await?;
    let report = state
        .engine
        .ingest_file(&principal, &name, file.path(), options, None)
        .await?;
    let status = if report.version == 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, IngestAnswer::new(report)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PreviewParams {
    /// Rows, at most 10000 (default 100).
    #[param(maximum = 10000)]
    limit: Option<usize>,
    /// Rows to skip.
    offset: Option<usize>,
    /// Read this version.
    version: Option<i64>,
    /// Read the version current at this time (RFC 3339).
    as_of: Option<DateTime<Utc>>,
}

fn time_travel(
    version: Option<i64>,
    as_of: Option<DateTime<Utc>>,
) -> ApiResult<Option<TimeTravel>> {
    match (version, as_of) {
        (Some(_), Some(_)) => Err(ApiError::invalid("give version or as_of, not both")),
        (Some(v), None) => Ok(Some(TimeTravel::Version(v))),
        (None, Some(at)) => Ok(Some(TimeTravel::AsOf(at))),
        (None, None) => Ok(None),
    }
}

/// A page of rows, now or at a point in history; encoded like query results.
#[utoipa::path(get, path = "/datasets/{name}/preview", operation_id = "preview_dataset", tag = "datasets", params(("name" = Identifier, Path, description = "dataset name"), PreviewParams),
    responses((status = 200, description = "rows, in the format `Accept` asks for",
            content((PreviewResult = "application/json"), (String = "text/csv"), (String = "application/x-ndjson"),
                (BinaryBody = "application/vnd.apache.arrow.stream"))),
        (status = 406, description = "unsupported Accept", body = ErrorEnvelope), (status = 400, description = "bad input", body = ErrorEnvelope), (status = 404, description = "not found", body = ErrorEnvelope)))]
async fn preview(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(params): Query<PreviewParams>,
) -> ApiResult<Response> {
    let format = ResultFormat::from_headers(&headers)?;
    let at = time_travel(params.version, params.as_of)?;
    let limit = params.limit.unwrap_or(100);
    let offset = params.offset.unwrap_or(0);
    let preview = state
        .engine
        .preview(&principal, &name, limit, offset, at)
        .await?;
    let mut meta = serde_json::Map::new();
    meta.insert("version".into(), json!(preview.version));
    meta.insert(
        "page".into(),
        json!({"limit": limit, "offset": offset, "total": preview.total_rows}),
    );
    let batches = futures::stream::iter(preview.batches.into_iter().map(Ok));
    let stream = Box::pin(RecordBatchStreamAdapter::new(preview.schema, batches));
    Ok((
        [(header::CONTENT_TYPE, format.content_type())],
        stream_body(stream, format, meta),
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct VersionsParams {
    /// At most this many versions, newest first.
    limit: Option<usize>,
}

/// The dataset's history, newest first.
#[utoipa::path(get, path = "/datasets/{name}/versions", operation_id = "list_dataset_versions", tag = "datasets", params(("name" = Identifier, Path, description = "dataset name"), VersionsParams),
    responses((status = 200, description = "versions", body = VersionList), (status = 404, description = "not found", body = ErrorEnvelope)))]
async fn versions(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
    Query(params): Query<VersionsParams>,
) -> ApiResult<VersionList> {
    let versions = state
        .engine
        .versions(&principal, &name, params.limit)
        .await?;
    let count = versions.len();
    Ok(VersionList::new(versions, VersionsMeta { count }))
}

/// Every schema the dataset has had, oldest first: recorded on each write,
/// with the changes from the one before.
#[utoipa::path(get, path = "/datasets/{name}/schema/history", operation_id = "get_dataset_schema_history", tag = "datasets", params(("name" = Identifier, Path, description = "dataset name")),
    responses((status = 200, description = "history", body = SchemaHistory), (status = 404, description = "not found", body = ErrorEnvelope)))]
async fn schema_history(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
) -> ApiResult<SchemaHistory> {
    let history = state
        .engine
        .dataset_schema_history(&principal, &name)
        .await?;
    let meta = TotalMeta::of(&history);
    Ok(SchemaHistory::new(history, meta))
}

/// The point to restore: a version or a time.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RestoreBody {
    /// A version number.
    version: Option<i64>,
    /// The version current at this time (RFC 3339).
    as_of: Option<DateTime<Utc>>,
}

/// Makes an earlier version current again, as a new version.
#[utoipa::path(post, path = "/datasets/{name}/restore", operation_id = "restore_dataset", tag = "datasets", params(("name" = Identifier, Path, description = "dataset name")), request_body = RestoreBody,
    responses((status = 200, description = "the dataset after the restore", body = DatasetAnswer), (status = 400, description = "bad input", body = ErrorEnvelope), (status = 404, description = "not found", body = ErrorEnvelope)))]
async fn restore(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
    Json(body): Json<RestoreBody>,
) -> ApiResult<DatasetAnswer> {
    let to = time_travel(body.version, body.as_of)?
        .ok_or_else(|| ApiError::invalid("give the version or as_of to restore"))?;
    Ok(DatasetAnswer::new(
        state.engine.restore(&principal, &name, to).await?,
    ))
}

/// Row count and per-column nulls, min, max and approximate distinct values.
#[utoipa::path(get, path = "/datasets/{name}/statistics", operation_id = "get_dataset_statistics", tag = "datasets", params(("name" = Identifier, Path, description = "dataset name")),
    responses((status = 200, description = "statistics", body = StatisticsAnswer), (status = 404, description = "not found", body = ErrorEnvelope)))]
async fn statistics(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
) -> ApiResult<StatisticsAnswer> {
    Ok(StatisticsAnswer::new(
        state.engine.statistics(&principal, &name).await?,
    ))
}
