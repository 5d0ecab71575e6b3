//! `/users`: accounts and their dataset grants (admins only; the engine checks).

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use basin_engine::auth::{GrantAccess, NewUser, Role, UserPatch};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::jobs::strip_prefix;
use super::{PageParams, envelope, page_meta};
use crate::AppState;
use crate::access::Caller;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Json, Query};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, delete))
        .routes(routes!(grants))
        .routes(routes!(put_grant, delete_grant))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Page size, 1 to 1000 (default 50).
    limit: Option<u32>,
    /// Rows to skip.
    offset: Option<u64>,
}

/// Users by username.
#[utoipa::path(get, path = "/users", tag = "users", params(ListParams),
    responses((status = 200, description = "a page of users", body = Object), (status = 403, description = "not an admin", body = ErrorEnvelope)))]
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
    let (users, total) = state.engine.list_users(&principal, page).await?;
    Ok(envelope(users, page_meta(&strip_prefix(&uri), page, total)))
}

/// A new user.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// Sign-in name: lowercase letters, digits and `_`, starting with a letter or `_`.
    username: String,
    /// Contact address.
    email: String,
    /// Initial password: 12 to 256 characters, not containing the username.
    password: String,
    /// `viewer`, `editor` or `admin`.
    role: String,
}

/// Creates a user.
#[utoipa::path(post, path = "/users", tag = "users", request_body = CreateBody,
    responses((status = 201, description = "the user", body = Object), (status = 400, description = "bad input or `weak_password`", body = ErrorEnvelope),
        (status = 403, description = "not an admin", body = ErrorEnvelope), (status = 409, description = "`user_exists`", body = ErrorEnvelope)))]
async fn create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Json(body): Json<CreateBody>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let user = state
        .engine
        .create_user(
            &principal,
            NewUser {
                username: body.username,
                email: body.email,
                password: body.password,
                role: Role::parse(&body.role)?,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, envelope(user, json!({}))))
}

/// One user.
#[utoipa::path(get, path = "/users/{username}", tag = "users", params(("username" = String, Path, description = "username")),
    responses((status = 200, description = "the user", body = Object), (status = 404, description = "`user_not_found`", body = ErrorEnvelope)))]
async fn show(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(username): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    Ok(envelope(
        state.engine.user(&principal, &username).await?,
        json!({}),
    ))
}

/// Changes to a user; absent fields stay.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    /// New address.
    email: Option<String>,
    /// New role.
    role: Option<String>,
    /// Disable (signs the user out everywhere; their keys stop working) or enable.
    disabled: Option<bool>,
    /// A new password (signs the user out everywhere).
    password: Option<String>,
}

/// Changes a user's address, role, disabled flag or password.
#[utoipa::path(patch, path = "/users/{username}", tag = "users", params(("username" = String, Path, description = "username")), request_body = PatchBody,
    responses((status = 200, description = "the user after the change", body = Object), (status = 404, description = "`user_not_found`", body = ErrorEnvelope),
        (status = 409, description = "`last_admin`: the last enabled admin cannot be demoted or disabled", body = ErrorEnvelope)))]
async fn update(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(username): Path<String>,
    Json(body): Json<PatchBody>,
) -> ApiResult<axum::Json<Value>> {
    let patch = UserPatch {
        email: body.email,
        role: body.role.as_deref().map(Role::parse).transpose()?,
        disabled: body.disabled,
        password: body.password,
    };
    Ok(envelope(
        state
            .engine
            .update_user(&principal, &username, patch)
            .await?,
        json!({}),
    ))
}

/// Deletes a user with their sessions, API keys and grants.
#[utoipa::path(delete, path = "/users/{username}", tag = "users", params(("username" = String, Path, description = "username")),
    responses((status = 204, description = "deleted"), (status = 404, description = "`user_not_found`", body = ErrorEnvelope),
        (status = 409, description = "`last_admin`", body = ErrorEnvelope)))]
async fn delete(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(username): Path<String>,
) -> ApiResult<StatusCode> {
    state.engine.delete_user(&principal, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's per-dataset grants.
#[utoipa::path(get, path = "/users/{username}/grants", tag = "users", params(("username" = String, Path, description = "username")),
    responses((status = 200, description = "grants", body = Object), (status = 404, description = "`user_not_found`", body = ErrorEnvelope)))]
async fn grants(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(username): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    Ok(envelope(
        state.engine.grants(&principal, &username).await?,
        json!({}),
    ))
}

/// What a grant allows.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    /// `read` or `write`.
    access: String,
}

/// Gives a user read or write access to one dataset, beyond their role.
#[utoipa::path(put, path = "/users/{username}/grants/{dataset}", tag = "users",
    params(("username" = String, Path, description = "username"), ("dataset" = String, Path, description = "dataset name")), request_body = GrantBody,
    responses((status = 200, description = "the grant", body = Object), (status = 404, description = "`user_not_found`", body = ErrorEnvelope)))]
async fn put_grant(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((username, dataset)): Path<(String, String)>,
    Json(body): Json<GrantBody>,
) -> ApiResult<axum::Json<Value>> {
    let access = GrantAccess::parse(&body.access)?;
    Ok(envelope(
        state
            .engine
            .put_grant(&principal, &username, &dataset, access)
            .await?,
        json!({}),
    ))
}

/// Removes a user's grant on one dataset.
#[utoipa::path(delete, path = "/users/{username}/grants/{dataset}", tag = "users",
    params(("username" = String, Path, description = "username"), ("dataset" = String, Path, description = "dataset name")),
    responses((status = 204, description = "removed"), (status = 404, description = "`user_not_found`", body = ErrorEnvelope)))]
async fn delete_grant(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((username, dataset)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .engine
        .delete_grant(&principal, &username, &dataset)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
