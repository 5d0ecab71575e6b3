//! `/api-keys`: keys for scripts and services; the secret is shown once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use basin_engine::auth::{NewApiKey, Scope};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::envelope;
use crate::AppState;
use crate::access::Caller;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Json, Query};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Everyone's keys, not only the caller's (admins only).
    all: Option<bool>,
}

/// The caller's API keys (never their secrets), newest first.
#[utoipa::path(get, path = "/api-keys", tag = "api-keys", params(ListParams),
    responses((status = 200, description = "keys", body = Object), (status = 403, description = "`all=true` without the admin role", body = ErrorEnvelope)))]
async fn list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Query(params): Query<ListParams>,
) -> ApiResult<axum::Json<Value>> {
    let keys = state
        .engine
        .list_api_keys(&principal, params.all.unwrap_or(false))
        .await?;
    Ok(envelope(keys, json!({})))
}

/// A key to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// What it is for.
    name: String,
    /// Any of `read`, `write`, `admin`; none beyond the caller's role.
    scopes: Vec<String>,
    /// Datasets it is limited to (absent: all).
    datasets: Option<Vec<String>>,
    /// When it stops working (RFC 3339; absent: never).
    expires_at: Option<DateTime<Utc>>,
}

/// Creates a key for the caller; `data.secret` is shown this once.
#[utoipa::path(post, path = "/api-keys", tag = "api-keys", request_body = CreateBody,
    responses((status = 201, description = "the key and its secret", body = Object), (status = 400, description = "bad input", body = ErrorEnvelope),
        (status = 403, description = "a scope beyond the caller's role", body = ErrorEnvelope)))]
async fn create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Json(body): Json<CreateBody>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let scopes = body
        .scopes
        .iter()
        .map(|s| Scope::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let (secret, key) = state
        .engine
        .create_api_key(
            &principal,
            NewApiKey {
                name: body.name,
                scopes,
                datasets: body.datasets,
                expires_at: body.expires_at,
            },
        )
        .await?;
    let mut data = serde_json::to_value(key).unwrap_or_default();
    data["secret"] = json!(secret);
    Ok((StatusCode::CREATED, envelope(data, json!({}))))
}

/// Revokes a key: the caller's own, or any key for admins.
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "api-keys", params(("id" = String, Path, description = "key id")),
    responses((status = 200, description = "the revoked key", body = Object), (status = 404, description = "`api_key_not_found`", body = ErrorEnvelope)))]
async fn revoke(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    Ok(envelope(
        state.engine.revoke_api_key(&principal, &id).await?,
        json!({}),
    ))
}
