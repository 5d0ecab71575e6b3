//! `/api-keys`: keys for scripts and services; the secret is shown once.

use axum::extract::State;
use axum::http::StatusCode;
use basin_engine::catalog::ApiKeyRecord;
use basin_engine::identity::{NewApiKey, Scope};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::WithDeadline;
use crate::access::Caller;
use crate::envelope::answers;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Json, Path, Query};
use crate::openapi::{DocumentedRoutes, Identifier};

answers! {
    /// API keys (never their secrets).
    ApiKeyList(Vec<ApiKeyRecord>);
    /// An API key (never its secret).
    ApiKeyAnswer(ApiKeyRecord);
    /// A new API key with its secret, shown this once.
    ApiKeyCreated(ApiKeyWithSecret);
}

/// A new key and its secret.
#[derive(Debug, Serialize, ToSchema)]
struct ApiKeyWithSecret {
    #[serde(flatten)]
    key: ApiKeyRecord,
    /// The secret to send as `Authorization: Bearer <secret>`; shown only now.
    secret: String,
}

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .documented(routes!(list, create))
        .documented(routes!(revoke))
        .with_deadline()
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Everyone's keys, not only the caller's (admins only).
    all: Option<bool>,
}

/// The caller's API keys (never their secrets), newest first.
#[utoipa::path(get, path = "/api-keys", operation_id = "list_api_keys", tag = "api-keys", params(ListParams),
    responses((status = 200, description = "keys", body = ApiKeyList), (status = 403, description = "`all=true` without the admin role", body = ErrorEnvelope)))]
async fn list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Query(params): Query<ListParams>,
) -> ApiResult<ApiKeyList> {
    let keys = state
        .engine
        .list_api_keys(&principal, params.all.unwrap_or(false))
        .await?;
    Ok(ApiKeyList::new(keys))
}

/// A key to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "dashboard", "scopes": ["read"]}))]
struct CreateApiKey {
    /// What it is for.
    name: String,
    /// Any of `read`, `write`, `admin`; none beyond the caller's role.
    #[schema(value_type = Vec<Scope>)]
    scopes: Vec<String>,
    /// Datasets it is limited to (absent: all).
    #[schema(value_type = Option<Vec<Identifier>>)]
    datasets: Option<Vec<String>>,
    /// When it stops working (RFC 3339; absent: never).
    expires_at: Option<DateTime<Utc>>,
}

/// Creates a key for the caller; `data.secret` is shown this once.
#[utoipa::path(post, path = "/api-keys", operation_id = "create_api_key", tag = "api-keys", request_body = CreateApiKey,
    responses((status = 201, description = "the key and its secret", body = ApiKeyCreated), (status = 400, description = "bad input", body = ErrorEnvelope),
        (status = 403, description = "a scope beyond the caller's role", body = ErrorEnvelope)))]
async fn create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Json(body): Json<CreateApiKey>,
) -> ApiResult<(StatusCode, ApiKeyCreated)> {
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
    Ok((
        StatusCode::CREATED,
        ApiKeyCreated::new(ApiKeyWithSecret { key, secret }),
    ))
}

/// Revokes a key: the caller's own, or any key for admins.
#[utoipa::path(delete, path = "/api-keys/{id}", operation_id = "revoke_api_key", tag = "api-keys", params(("id" = String, Path, description = "key id")),
    responses((status = 200, description = "the revoked key", body = ApiKeyAnswer), (status = 404, description = "`api_key_not_found`", body = ErrorEnvelope)))]
async fn revoke(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<ApiKeyAnswer> {
    Ok(ApiKeyAnswer::new(
        state.engine.revoke_api_key(&principal, &id).await?,
    ))
}
