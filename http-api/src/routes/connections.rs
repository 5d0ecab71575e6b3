//! `/connector-types`, `/connections` and `/schemas`: sources, their checks,
//! discovery, syncs, field mappings and schema history and diffs.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use basin_connectors::CheckOutcome;
use basin_engine::catalog::{ConnectionRecord, JobRecord, SchemaHistoryRecord};
use basin_engine::datasets::history::SchemaSide;
use basin_engine::datasets::schema::{SchemaChange, diff};
use basin_engine::sources::connections::{
    ConnectionPatch, ConnectorType, DiscoveredStream, NewConnection,
};
use basin_engine::sources::sync::{FieldMapping, SyncRequest};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::WithDeadline;
use crate::access::Caller;
use crate::envelope::{TotalMeta, answers};
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Json, Path};
use crate::openapi::{DocumentedRoutes, Identifier};

answers! {
    /// The connector types.
    ConnectorTypeList(Vec<ConnectorType>);
    /// A connector type's configuration as JSON Schema 2020-12.
    ConnectorSpec(#[schema(value_type = Object)] Value);
    /// Every connection.
    ConnectionList(Vec<ConnectionRecord>, TotalMeta);
    /// A connection.
    ConnectionAnswer(ConnectionRecord);
    /// What a connection test found.
    TestAnswer(CheckOutcome);
    /// The streams a connection can read.
    StreamList(Vec<DiscoveredStream>, DiscoverMeta);
    /// A queued sync job.
    SyncJob(JobRecord);
    /// Every schema a stream has had, oldest first.
    StreamSchemaHistory(Vec<SchemaHistoryRecord>, TotalMeta);
    /// A stream's field mappings.
    MappingList(Vec<FieldMapping>);
    /// The changes between two schemas.
    SchemaDiff(Vec<SchemaChange>, DiffMeta);
}

/// `meta` of a discovery.
#[derive(Debug, Serialize, ToSchema)]
struct DiscoverMeta {
    /// Streams found.
    total: usize,
    /// Time the discovery took.
    elapsed_ms: u64,
}

/// `meta` of a schema diff.
#[derive(Debug, Serialize, ToSchema)]
struct DiffMeta {
    /// Whether any change may break readers or writers.
    breaking: bool,
}

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .documented(routes!(connector_types))
        .documented(routes!(connector_spec))
        .documented(routes!(list, create))
        .documented(routes!(test_unsaved))
        .documented(routes!(show, update, delete))
        .documented(routes!(test_saved))
        .documented(routes!(discover))
        .documented(routes!(sync))
        .documented(routes!(stream_history))
        .documented(routes!(get_mappings, put_mappings, delete_mappings))
        .documented(routes!(schema_diff))
        .with_deadline()
}

/// The connector types, for a frontend's "new connection" picker.
#[utoipa::path(get, path = "/connector-types", operation_id = "list_connector_types", tag = "connections",
    responses((status = 200, description = "types", body = ConnectorTypeList)))]
async fn connector_types(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<ConnectorTypeList> {
    Ok(ConnectorTypeList::new(
        state.engine.connector_types(&principal)?,
    ))
}

/// A connector type's configuration as JSON Schema 2020-12 (`x-secret`,
/// `x-order`, `x-group`, `oneOf`), enough to draw its form.
#[utoipa::path(get, path = "/connector-types/{type}/spec", operation_id = "get_connector_spec", tag = "connections",
    params(("type" = String, Path, description = "connector type")),
    responses((status = 200, description = "the JSON Schema", body = ConnectorSpec), (status = 404, description = "`connector_not_found`", body = ErrorEnvelope)))]
async fn connector_spec(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(kind): Path<String>,
) -> ApiResult<ConnectorSpec> {
    Ok(ConnectorSpec::new(
        state.engine.connector_spec(&principal, &kind)?,
    ))
}

/// Every connection (secret fields are never shown, only named in `secret_fields`).
#[utoipa::path(get, path = "/connections", operation_id = "list_connections", tag = "connections",
    responses((status = 200, description = "connections", body = ConnectionList)))]
async fn list(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<ConnectionList> {
    let connections = state.engine.list_connections(&principal).await?;
    let meta = TotalMeta::of(&connections);
    Ok(ConnectionList::new(connections, meta))
}

/// A connection to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateConnection {
    /// Unique name; its tables are queried as `<name>.<schema>.<table>`.
    #[schema(value_type = Identifier)]
    name: String,
    /// Connector type (`postgres`, `mysql`, `sqlite`, `files`, `http_api`).
    #[serde(rename = "type")]
    kind: String,
    /// Free text.
    #[serde(default)]
    description: String,
    /// The configuration the type's spec describes, secrets included (write-only).
    #[schema(value_type = Object)]
    config: Value,
}

/// Creates a connection. Its configuration's shape is checked; the source is
/// not contacted (use `/test`).
#[utoipa::path(post, path = "/connections", operation_id = "create_connection", tag = "connections", request_body = CreateConnection,
    responses((status = 201, description = "the connection", body = ConnectionAnswer), (status = 400, description = "`source_config_invalid` (details.field names the field) or `invalid_identifier`", body = ErrorEnvelope),
        (status = 404, description = "`connector_not_found`", body = ErrorEnvelope),
        (status = 409, description = "`connection_exists`", body = ErrorEnvelope)))]
async fn create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Json(body): Json<CreateConnection>,
) -> ApiResult<(StatusCode, ConnectionAnswer)> {
    let record = state
        .engine
        .create_connection(
            &principal,
            NewConnection {
                name: body.name,
                kind: body.kind,
                description: body.description,
                config: body.config,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, ConnectionAnswer::new(record)))
}

/// One connection.
#[utoipa::path(get, path = "/connections/{id}", operation_id = "get_connection", tag = "connections",
    params(("id" = String, Path, description = "connection id or name")),
    responses((status = 200, description = "the connection", body = ConnectionAnswer), (status = 404, description = "`connection_not_found`", body = ErrorEnvelope)))]
async fn show(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<ConnectionAnswer> {
    Ok(ConnectionAnswer::new(
        state.engine.connection(&principal, &id).await?,
    ))
}

/// Changes to a connection.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ConnectionChanges {
    /// New name.
    #[schema(value_type = Option<Identifier>)]
    name: Option<String>,
    /// New description.
    description: Option<String>,
    /// New configuration; secret fields left out keep their stored values, and
    /// a secret field set to `null` is removed.
    #[schema(value_type = Option<Object>)]
    config: Option<Value>,
}

/// Renames a connection or changes its configuration; open sources are reopened.
#[utoipa::path(patch, path = "/connections/{id}", operation_id = "update_connection", tag = "connections", request_body = ConnectionChanges,
    params(("id" = String, Path, description = "connection id or name")),
    responses((status = 200, description = "the connection", body = ConnectionAnswer), (status = 400, description = "bad configuration", body = ErrorEnvelope),
        (status = 404, description = "`connection_not_found`", body = ErrorEnvelope), (status = 409, description = "`connection_exists`", body = ErrorEnvelope)))]
async fn update(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    Json(body): Json<ConnectionChanges>,
) -> ApiResult<ConnectionAnswer> {
    let patch = ConnectionPatch {
        name: body.name,
        description: body.description,
        config: body.config,
    };
    Ok(ConnectionAnswer::new(
        state
            .engine
            .update_connection(&principal, &id, patch)
            .await?,
    ))
}

/// Deletes a connection with its secrets, sync state and field mappings
/// (datasets it synced stay).
#[utoipa::path(delete, path = "/connections/{id}", operation_id = "delete_connection", tag = "connections",
    params(("id" = String, Path, description = "connection id or name")),
    responses((status = 204, description = "deleted"), (status = 404, description = "`connection_not_found`", body = ErrorEnvelope)))]
async fn delete(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.engine.delete_connection(&principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An unsaved configuration to test.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TestConnection {
    /// Connector type.
    #[serde(rename = "type")]
    kind: String,
    /// The configuration, secrets included.
    #[schema(value_type = Object)]
    config: Value,
}

/// Tests an unsaved configuration: `{status, failure, field, message,
/// latency_ms}`, where `failure` is `config`, `auth`, `network`,
/// `permission`, `timeout` or `system`. A failed check is a 200 answer.
#[utoipa::path(post, path = "/connections/test", operation_id = "test_connection_config", tag = "connections", request_body = TestConnection,
    responses((status = 200, description = "the check's outcome", body = TestAnswer), (status = 404, description = "`connector_not_found`", body = ErrorEnvelope)))]
async fn test_unsaved(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Json(body): Json<TestConnection>,
) -> ApiResult<TestAnswer> {
    let outcome = state
        .engine
        .test_connection_config(&principal, &body.kind, &body.config)
        .await?;
    Ok(TestAnswer::new(outcome))
}

/// Tests a saved connection (a fresh connection, not a cached one).
#[utoipa::path(post, path = "/connections/{id}/test", operation_id = "test_connection", tag = "connections",
    params(("id" = String, Path, description = "connection id or name")),
    responses((status = 200, description = "the check's outcome", body = TestAnswer), (status = 404, description = "`connection_not_found`", body = ErrorEnvelope)))]
async fn test_saved(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<TestAnswer> {
    Ok(TestAnswer::new(
        state.engine.test_connection(&principal, &id).await?,
    ))
}

/// Lists the connection's streams with Arrow and source-native types,
/// nullability, primary key, cursor candidates and row estimates; records
/// each stream's schema in its history when it changed.
#[utoipa::path(post, path = "/connections/{id}/discover", operation_id = "discover_streams", tag = "connections",
    params(("id" = String, Path, description = "connection id or name")),
    responses((status = 200, description = "streams", body = StreamList), (status = 404, description = "`connection_not_found`", body = ErrorEnvelope),
        (status = 502, description = "`source_auth_failed`, `source_unreachable`, `source_permission_denied` or `source_error`", body = ErrorEnvelope),
        (status = 504, description = "`source_timeout`", body = ErrorEnvelope)))]
async fn discover(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<StreamList> {
    let started = std::time::Instant::now();
    let streams = state.engine.discover(&principal, &id).await?;
    let meta = DiscoverMeta {
        total: streams.len(),
        elapsed_ms: started.elapsed().as_millis() as u64,
    };
    Ok(StreamList::new(streams, meta))
}

/// Syncs streams into datasets as a background job (`202` with the job;
/// follow it at `/jobs/{id}` or on the events WebSocket).
#[utoipa::path(post, path = "/connections/{id}/sync", operation_id = "sync_connection", tag = "connections",
    params(("id" = String, Path, description = "connection id or name")),
    request_body = SyncRequest,
    responses((status = 202, description = "the queued job", body = SyncJob), (status = 400, description = "bad request", body = ErrorEnvelope),
        (status = 403, description = "no write access to a target dataset", body = ErrorEnvelope), (status = 404, description = "`connection_not_found`", body = ErrorEnvelope)))]
async fn sync(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    Json(body): Json<SyncRequest>,
) -> ApiResult<(StatusCode, SyncJob)> {
    let job = state.engine.sync(&principal, &id, body).await?;
    Ok((StatusCode::ACCEPTED, SyncJob::new(job)))
}

/// Every schema the stream has had (recorded by discovery and syncs), oldest first.
#[utoipa::path(get, path = "/connections/{id}/streams/{stream}/schema/history", operation_id = "get_stream_schema_history", tag = "connections",
    params(("id" = String, Path, description = "connection id or name"), ("stream" = String, Path, description = "stream name")),
    responses((status = 200, description = "history", body = StreamSchemaHistory), (status = 404, description = "`connection_not_found`", body = ErrorEnvelope)))]
async fn stream_history(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((id, stream)): Path<(String, String)>,
) -> ApiResult<StreamSchemaHistory> {
    let history = state
        .engine
        .stream_schema_history(&principal, &id, &stream)
        .await?;
    let meta = TotalMeta::of(&history);
    Ok(StreamSchemaHistory::new(history, meta))
}

/// A stream's field mappings.
#[utoipa::path(get, path = "/connections/{id}/streams/{stream}/mappings", operation_id = "get_field_mappings", tag = "connections",
    params(("id" = String, Path, description = "connection id or name"), ("stream" = String, Path, description = "stream name")),
    responses((status = 200, description = "mappings", body = MappingList), (status = 404, description = "`connection_not_found`", body = ErrorEnvelope)))]
async fn get_mappings(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((id, stream)): Path<(String, String)>,
) -> ApiResult<MappingList> {
    Ok(MappingList::new(
        state
            .engine
            .field_mappings(&principal, &id, &stream)
            .await?,
    ))
}

/// Field mappings to store.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MappingsBody {
    /// `[{source, target, type, drop}]`; unmapped fields pass through.
    mappings: Vec<FieldMapping>,
    /// The dataset the stream syncs into, to check the casts against.
    #[schema(value_type = Option<Identifier>)]
    dataset: Option<String>,
}

/// Stores a stream's field mappings after checking them against the stream's
/// schema (the source is contacted) and the dataset's; syncs apply them.
#[utoipa::path(put, path = "/connections/{id}/streams/{stream}/mappings", operation_id = "put_field_mappings", tag = "connections", request_body = MappingsBody,
    params(("id" = String, Path, description = "connection id or name"), ("stream" = String, Path, description = "stream name")),
    responses((status = 200, description = "the stored mappings", body = MappingList), (status = 400, description = "a mapping that does not fit", body = ErrorEnvelope)))]
async fn put_mappings(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((id, stream)): Path<(String, String)>,
    Json(body): Json<MappingsBody>,
) -> ApiResult<MappingList> {
    let stored = state
        .engine
        .put_field_mappings(
            &principal,
            &id,
            &stream,
            body.mappings,
            body.dataset.as_deref(),
        )
        .await?;
    Ok(MappingList::new(stored))
}

/// Removes a stream's field mappings.
#[utoipa::path(delete, path = "/connections/{id}/streams/{stream}/mappings", operation_id = "delete_field_mappings", tag = "connections",
    params(("id" = String, Path, description = "connection id or name"), ("stream" = String, Path, description = "stream name")),
    responses((status = 204, description = "removed"), (status = 404, description = "`connection_not_found`", body = ErrorEnvelope)))]
async fn delete_mappings(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((id, stream)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .engine
        .delete_field_mappings(&principal, &id, &stream)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Two schemas to compare.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DiffBody {
    /// Fields `[{name, type, nullable}]`, `{dataset, version}` or `{connection, stream}`.
    from: SchemaSide,
    /// The same shapes.
    to: SchemaSide,
    /// Declared renames, old name to new name.
    #[serde(default)]
    renames: BTreeMap<String, String>,
}

/// The changes from one schema to another (`added`, `removed`, `renamed`,
/// `type_widened`, `type_narrowed`, `type_changed`, `nullability_changed`),
/// each flagged breaking or not.
#[utoipa::path(post, path = "/schemas/diff", operation_id = "diff_schemas", tag = "connections", request_body = DiffBody,
    responses((status = 200, description = "changes", body = SchemaDiff), (status = 400, description = "a type that does not parse", body = ErrorEnvelope),
        (status = 404, description = "`dataset_not_found`, `connection_not_found` or `version_not_found`", body = ErrorEnvelope)))]
async fn schema_diff(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Json(body): Json<DiffBody>,
) -> ApiResult<SchemaDiff> {
    let from = state.engine.schema_side(&principal, body.from).await?;
    let to = state.engine.schema_side(&principal, body.to).await?;
    let changes = diff(&from, &to, &body.renames)?;
    let breaking = changes.iter().any(|c| c.breaking);
    Ok(SchemaDiff::new(changes, DiffMeta { breaking }))
}
