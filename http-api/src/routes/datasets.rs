//! `/datasets`: create, ingest, browse, time-travel and restore datasets.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema};
use axum::Router;
use axum::extract::{FromRequest, Multipart, OriginalUri, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use basin_connectors::file::{CsvOptions, FormatKind, parse_data_type};
use basin_engine::catalog::{DatasetFilter, DatasetSort};
use basin_engine::datasets::{DatasetPatch, TimeTravel};
use basin_engine::ingest::{BadRowPolicy, IngestOptions, TempFile, WriteMode};
use chrono::{DateTime, Utc};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::TryStreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::io::StreamReader;

use super::jobs::strip_prefix;
use super::{PageParams, envelope, page_meta};
use crate::AppState;
use crate::encode::{ResultFormat, stream_body};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/datasets", get(list).post(create))
        .route("/datasets/{name}", get(show).patch(update).delete(delete))
        .route("/datasets/{name}/upload", post(upload))
        .route("/datasets/{name}/preview", get(preview))
        .route("/datasets/{name}/versions", get(versions))
        .route("/datasets/{name}/restore", post(restore))
        .route("/datasets/{name}/statistics", get(statistics))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    name: Option<String>,
    tag: Option<String>,
    sort: Option<String>,
    include_deleted: Option<bool>,
    limit: Option<u32>,
    offset: Option<u64>,
}

async fn list(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<ListParams>,
) -> ApiResult<axum::Json<Value>> {
    let sort: DatasetSort = params.sort.as_deref().unwrap_or("name").parse()?;
    let page = PageParams {
        limit: params.limit,
        offset: params.offset,
    }
    .page()?;
    let filter = DatasetFilter {
        name_contains: params.name,
        tag: params.tag,
        include_deleted: params.include_deleted.unwrap_or(false),
    };
    let (datasets, total) = state.engine.list_datasets(&filter, sort, page).await?;
    Ok(envelope(
        datasets,
        page_meta(&strip_prefix(&uri), page, total),
    ))
}

async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    Ok(envelope(state.engine.dataset(&name).await?, json!({})))
}

async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(patch): Json<DatasetPatch>,
) -> ApiResult<axum::Json<Value>> {
    Ok(envelope(
        state.engine.update_dataset(&name, patch).await?,
        json!({}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteParams {
    purge: Option<bool>,
}

async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<DeleteParams>,
) -> ApiResult<StatusCode> {
    state
        .engine
        .delete_dataset(&name, params.purge.unwrap_or(false))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A column of a supplied schema.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnSpec {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
    #[serde(default = "yes")]
    nullable: bool,
}

fn yes() -> bool {
    true
}

/// Ingest options shared by the JSON create body and the upload query string.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestParams {
    format: Option<String>,
    mode: Option<WriteMode>,
    on_error: Option<BadRowPolicy>,
    delimiter: Option<String>,
    header: Option<bool>,
    quote: Option<String>,
    /// Comma-separated in a query string, an array in JSON.
    null_values: Option<NullValues>,
    description: Option<String>,
    #[serde(rename = "async")]
    run_async: Option<bool>,
    /// JSON body only.
    schema: Option<Vec<ColumnSpec>>,
    /// JSON body only.
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
        let options = IngestOptions {
            mode: self.mode.unwrap_or(default_mode),
            format,
            file_name,
            csv: CsvOptions {
                delimiter: self.delimiter,
                header: self.header,
                quote: self.quote,
                null_values,
            },
            schema,
            on_error: self.on_error.unwrap_or_default(),
            description: self.description,
            tags: self.tags.unwrap_or_default(),
        };
        Ok((options, self.run_async.unwrap_or(false)))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    source: String,
    #[serde(flatten)]
    params: IngestParams,
    options: Option<IngestParams>,
}

/// `POST /datasets`: creates a dataset from a server-side file inside the allowed roots.
async fn create(
    State(state): State<AppState>,
    Json(body): Json<CreateBody>,
) -> ApiResult<Response> {
    basin_engine::ident::validate_name(&body.name)?;
    let params = merge_params(body.params, body.options);
    let path = state.engine.resolve_import_path(&body.source).await?;
    let file_name = path.file_name().and_then(|n| n.to_str()).map(str::to_owned);
    let (options, run_async) = params.into_options(WriteMode::Create, file_name)?;
    run_ingest(
        state,
        body.name,
        IngestInput::Path(path),
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

/// `POST /datasets/{name}/upload`: the raw body, or the first file of a multipart form.
async fn upload(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<IngestParams>,
    request: Request,
) -> ApiResult<Response> {
    basin_engine::ident::validate_name(&name)?;
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
    run_ingest(state, name, IngestInput::Upload(temp), options, run_async).await
}

enum IngestInput {
    Upload(TempFile),
    Path(std::path::PathBuf),
}

impl IngestInput {
    fn path(&self) -> &std::path::Path {
        match self {
            Self::Upload(temp) => temp.path(),
            Self::Path(path) => path,
        }
    }
}

async fn run_ingest(
    state: AppState,
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
                let report = engine
                    .ingest_file(&name, input.path(), options, Some(ctx.progress))
                    .await?;
                Ok(serde_json::to_value(report).unwrap_or_default())
            })
            .await?;
        let location = format!("/api/v1/jobs/{}", job.id);
        return Ok((
            StatusCode::ACCEPTED,
            [(header::LOCATION, location)],
            envelope(job, json!({})),
        )
            .into_response());
    }
    let report = state
        .engine
        .ingest_file(&name, input.path(), options, None)
        .await?;
    let status = if report.version == 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, envelope(report, json!({}))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewParams {
    limit: Option<usize>,
    offset: Option<usize>,
    version: Option<i64>,
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

async fn preview(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(params): Query<PreviewParams>,
) -> ApiResult<Response> {
    let format = ResultFormat::from_headers(&headers)?;
    let at = time_travel(params.version, params.as_of)?;
    let limit = params.limit.unwrap_or(100);
    let offset = params.offset.unwrap_or(0);
    let preview = state.engine.preview(&name, limit, offset, at).await?;
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionsParams {
    limit: Option<usize>,
}

async fn versions(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<VersionsParams>,
) -> ApiResult<axum::Json<Value>> {
    let versions = state.engine.versions(&name, params.limit).await?;
    let count = versions.len();
    Ok(envelope(versions, json!({"count": count})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreBody {
    version: Option<i64>,
    as_of: Option<DateTime<Utc>>,
}

async fn restore(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<RestoreBody>,
) -> ApiResult<axum::Json<Value>> {
    let to = time_travel(body.version, body.as_of)?
        .ok_or_else(|| ApiError::invalid("give the version or as_of to restore"))?;
    Ok(envelope(state.engine.restore(&name, to).await?, json!({})))
}

async fn statistics(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    Ok(envelope(state.engine.statistics(&name).await?, json!({})))
}
