//! `/connector-types`, `/connections` and `/schemas`: sources, their checks,
//! discovery, syncs, field mappings and schema history and diffs.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use basin_engine::auth::Action;
use basin_engine::connections::{ConnectionPatch, NewConnection};
use basin_engine::schema::{SchemaSide, diff};
use basin_engine::sync::{FieldMapping, SyncRequest};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::envelope;
use crate::AppState;
use crate::access::Caller;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::Json;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(connector_types))
        .routes(routes!(connector_spec))
        .routes(routes!(list, create))
        .routes(routes!(test_unsaved))
        .routes(routes!(show, update, delete))
        .routes(routes!(test_saved))
        .routes(routes!(discover))
        .routes(routes!(sync))
        .routes(routes!(stream_history))
        .routes(routes!(get_mappings, put_mappings, delete_mappings))
        .routes(routes!(schema_diff))
}

/// The connector types, for a frontend's "new connection" picker.
#[utoipa::path(get, path = "/connector-types", tag = "connections",
    responses((status = 200, description = "types", body = Object)))]
async fn connector_types(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<axum::Json<Value>> {
    state
        .engine
        .authorize_connections(&principal, Action::Read)?;
    Ok(envelope(state.engine.connector_types(), json!({})))
}

/// A connector type's configuration as JSON Schema 2020-12 (`x-secret`,
/// `x-order`, `x-group`, `oneOf`), enough to draw its form.
#[utoipa::path(get, path = "/connector-types/{type}/spec", tag = "connections",
    params(("type" = String, Path, description = "connector type")),
    responses((status = 200, description = "the JSON Schema", body = Object), (status = 404, description = "`connector_not_found`", body = ErrorEnvelope)))]
async fn connector_spec(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(kind): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    state
        .engine
        .authorize_connections(&principal, Action::Read)?;
    Ok(envelope(state.engine.connector_spec(&kind)?, json!({})))
}

/// Every connection (secret fields are never shown, only named in `secret_fields`).
#[utoipa::path(get, path = "/connections", tag = "connections",
    responses((status = 200, description = "connections", body = Object)))]
async fn list(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<axum::Json<Value>> {
    state
        .engine
        .authorize_connections(&principal, Action::Read)?;
    let connections = state.engine.list_connections().await?;
    let total = connections.len();
    Ok(envelope(connections, json!({ "total": total })))
}

/// A connection to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// Unique name; its tables are queried as `<name>.<schema>.<table>`.
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
#[utoipa::path(post, path = "/connections", tag = "connections", request_body = CreateBody,
    responses((status = 201, description = "the connection", body = Object), (status = 400, description = "`source_config_invalid` (details.field names the field) or `invalid_identifier`", body = ErrorEnvelope),
        (status = 409, description = "`connection_exists`", body = ErrorEnvelope)))]
async fn create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Json(body): Json<CreateBody>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    state
        .engine
        .authorize_connections(&principal, Action::Admin)?;
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
    Ok((StatusCode::CREATED, envelope(record, json!({}))))
}

/// One connection.
#[utoipa::path(get, path = "/connections/{id}", tag = "connections",
    params(("id" = String, Path, description = "connection id or name")),
    responses((status = 200, description = "the connection", body = Object), (status = 404, description = "`connection_not_found`", body = ErrorEnvelope)))]
async fn show(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    state
        .engine
        .authorize_connections(&principal, Action::Read)?;
    Ok(envelope(state.engine.connection(&id).await?, json!({})))
}

/// Changes to a connection.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    /// New name.
    name: Option<String>,
    /// New description.
    description: Option<String>,
    /// New configuration; secret fields left out keep their stored values, and
    /// a secret field set to `null` is removed.
    #[schema(value_type = Option<Object>)]
    config: Option<Value>,
}

/// Renames a connection or changes its configuration; open sources are reopened.
#[utoipa::path(patch, path = "/connections/{id}", tag = "connections", request_body = PatchBody,
    params(("id" = String, Path, description = "connection id or name")),
    responses((status = 200, description = "the connection", body = Object), (status = 400, description = "bad configuration", body = ErrorEnvelope),
        (status = 404, description = "`connection_not_found`", body = ErrorEnvelope), (status = 409, description = "`connection_exists`", body = ErrorEnvelope)))]
async fn update(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    Json(body): Json<PatchBody>,
) -> ApiResult<axum::Json<Value>> {
    state
        .engine
        .authorize_connections(&principal, Action::Admin)?;
    let patch = ConnectionPatch {
        name: body.name,
        description: body.description,
        config: body.config,
    };
    Ok(envelope(
        state.engine.update_connection(&id, patch).await?,
        json!({}),
    ))
}

/// Deletes a connection with its secrets, sync state and field mappings
/// (datasets it synced stay).
#[utoipa::path(delete, path = "/connections/{id}", tag = "connections",
    params(("id" = String, Path, description = "connection id or name")),
    responses((status = 204, description = "deleted"), (status = 404, description = "`connection_not_found`", body = ErrorEnvelope)))]
async fn delete(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .engine
        .authorize_connections(&principal, Action::Admin)?;
    state.engine.delete_connection(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An unsaved configuration to test.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TestBody {
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
#[utoipa::path(post, path = "/connections/test", tag = "connections", request_body = TestBody,
    responses((status = 200, description = "the check's outcome", body = Object), (status = 404, description = "`connector_not_found`", body = ErrorEnvelope)))]
async fn test_unsaved(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Json(body): Json<TestBody>,
) -> ApiResult<axum::Json<Value>> {
    state
        .engine
        .authorize_connections(&principal, Action::Admin)?;
    let outcome = state
        .engine
        .test_connection_config(&body.kind, &body.config)
        .await?;
    Ok(envelope(outcome, json!({})))
}

/// Tests a saved connection (a fresh connection, not a cached one).
#[utoipa::path(post, path = "/connections/{id}/test", tag = "connections",
    params(("id" = String, Path, description = "connection id or name")),
    responses((status = 200, description = "the check's outcome", body = Object), (status = 404, description = "`connection_not_found`", body = ErrorEnvelope)))]
async fn test_saved(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    state
        .engine
        .authorize_connections(&principal, Action::Write)?;
    Ok(envelope(
        state.engine.test_connection(&id).await?,
        json!({}),
    ))
}

/// Lists the connection's streams with Arrow and source-native types,
/// nullability, primary key, cursor candidates and row estimates; records
/// each stream's schema in its history when it changed.
#[utoipa::path(post, path = "/connections/{id}/discover", tag = "connections",
    params(("id" = String, Path, description = "connection id or name")),
    responses((status = 200, description = "streams", body = Object), (status = 404, description = "`connection_not_found`", body = ErrorEnvelope),
        (status = 502, description = "`source_auth_failed`, `source_unreachable`, `source_permission_denied` or `source_error`", body = ErrorEnvelope),
        (status = 504, description = "`source_timeout`", body = ErrorEnvelope)))]
async fn discover(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    state
        .engine
        .authorize_connections(&principal, Action::Write)?;
    let started = std::time::Instant::now();
    let streams = state.engine.discover(&id).await?;
    let total = streams.len();
    Ok(envelope(
        streams,
        json!({ "total": total, "elapsed_ms": started.elapsed().as_millis() as u64 }),
    ))
}

/// Syncs streams into datasets as a background job (`202` with the job;
/// follow it at `/jobs/{id}` or on the events WebSocket).
#[utoipa::path(post, path = "/connections/{id}/sync", tag = "connections",
    params(("id" = String, Path, description = "connection id or name")),
    request_body(content = Object, description = "`{streams, mode: full_refresh|incremental, cursor_field, write: append|overwrite|merge, primary_key, schema_change: ignore|fail|append_new_columns|sync_all}`"),
    responses((status = 202, description = "the queued job", body = Object), (status = 400, description = "bad request", body = ErrorEnvelope),
        (status = 403, description = "no write access to a target dataset", body = ErrorEnvelope), (status = 404, description = "`connection_not_found`", body = ErrorEnvelope)))]
async fn sync(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    Json(body): Json<SyncRequest>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    state
        .engine
        .authorize_connections(&principal, Action::Write)?;
    let job = state.engine.sync(&principal, &id, body).await?;
    Ok((StatusCode::ACCEPTED, envelope(job, json!({}))))
}

/// Every schema the stream has had (recorded by discovery and syncs), oldest first.
#[utoipa::path(get, path = "/connections/{id}/streams/{stream}/schema/history", tag = "connections",
    params(("id" = String, Path, description = "connection id or name"), ("stream" = String, Path, description = "stream name")),
    responses((status = 200, description = "history", body = Object), (status = 404, description = "`connection_not_found`", body = ErrorEnvelope)))]
async fn stream_history(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((id, stream)): Path<(String, String)>,
) -> ApiResult<axum::Json<Value>> {
    state
        .engine
        .authorize_connections(&principal, Action::Read)?;
    let history = state.engine.stream_schema_history(&id, &stream).await?;
    let total = history.len();
    Ok(envelope(history, json!({ "total": total })))
}

/// A stream's field mappings.
#[utoipa::path(get, path = "/connections/{id}/streams/{stream}/mappings", tag = "connections",
    params(("id" = String, Path, description = "connection id or name"), ("stream" = String, Path, description = "stream name")),
    responses((status = 200, description = "mappings", body = Object), (status = 404, description = "`connection_not_found`", body = ErrorEnvelope)))]
async fn get_mappings(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((id, stream)): Path<(String, String)>,
) -> ApiResult<axum::Json<Value>> {
    state
        .engine
        .authorize_connections(&principal, Action::Read)?;
    Ok(envelope(
        state.engine.field_mappings(&id, &stream).await?,
        json!({}),
    ))
}

/// Field mappings to store.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MappingsBody {
    /// `[{source, target, type, drop}]`; unmapped fields pass through.
    #[schema(value_type = Vec<Object>)]
    mappings: Vec<FieldMapping>,
    /// The dataset the stream syncs into, to check the casts against.
    dataset: Option<String>,
}

/// Stores a stream's field mappings after checking them against the stream's
/// schema (the source is contacted) and the dataset's; syncs apply them.
#[utoipa::path(put, path = "/connections/{id}/streams/{stream}/mappings", tag = "connections", request_body = MappingsBody,
    params(("id" = String, Path, description = "connection id or name"), ("stream" = String, Path, description = "stream name")),
    responses((status = 200, description = "the stored mappings", body = Object), (status = 400, description = "a mapping that does not fit", body = ErrorEnvelope)))]
async fn put_mappings(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((id, stream)): Path<(String, String)>,
    Json(body): Json<MappingsBody>,
) -> ApiResult<axum::Json<Value>> {
    state
        .engine
        .authorize_connections(&principal, Action::Write)?;
    let stored = state
        .engine
        .put_field_mappings(&id, &stream, body.mappings, body.dataset.as_deref())
        .await?;
    Ok(envelope(stored, json!({})))
}

/// Removes a stream's field mappings.
#[utoipa::path(delete, path = "/connections/{id}/streams/{stream}/mappings", tag = "connections",
    params(("id" = String, Path, description = "connection id or name"), ("stream" = String, Path, description = "stream name")),
    responses((status = 204, description = "removed"), (status = 404, description = "`connection_not_found`", body = ErrorEnvelope)))]
async fn delete_mappings(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((id, stream)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .engine
        .authorize_connections(&principal, Action::Write)?;
    state.engine.delete_field_mappings(&id, &stream).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Two schemas to compare.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DiffBody {
    /// Fields `[{name, type, nullable}]`, `{dataset, version}` or `{connection, stream}`.
    #[schema(value_type = Object)]
    from: SchemaSide,
    /// The same shapes.
    #[schema(value_type = Object)]
    to: SchemaSide,
    /// Declared renames, old name to new name.
    #[serde(default)]
    renames: BTreeMap<String, String>,
}

/// The changes from one schema to another (`added`, `removed`, `renamed`,
/// `type_widened`, `type_narrowed`, `type_changed`, `nullability_changed`),
/// each flagged breaking or not.
#[utoipa::path(post, path = "/schemas/diff", tag = "connections", request_body = DiffBody,
    responses((status = 200, description = "changes", body = Object), (status = 400, description = "a type that does not parse", body = ErrorEnvelope)))]
async fn schema_diff(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Json(body): Json<DiffBody>,
) -> ApiResult<axum::Json<Value>> {
    let from = state.engine.schema_side(&principal, body.from).await?;
    let to = state.engine.schema_side(&principal, body.to).await?;
    let changes = diff(&from, &to, &body.renames)?;
    let breaking = changes.iter().any(|c| c.breaking);
    Ok(envelope(changes, json!({ "breaking": breaking })))
}
