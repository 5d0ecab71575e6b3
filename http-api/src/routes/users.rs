//! `/users`: accounts and their dataset grants (admins only; the engine checks).

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use basin_engine::catalog::UserRecord;
use basin_engine::identity::{DatasetGrant, GrantAccess, NewUser, Role, UserPatch};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::jobs::strip_prefix;
use super::{PageParams, page_meta};
use crate::AppState;
use crate::WithDeadline;
use crate::access::Caller;
use crate::envelope::{PageMeta, answers};
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Json, Path, Query};
use crate::openapi::{DocumentedRoutes, Email, Identifier, NewPassword};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .documented(routes!(list, create))
        .documented(routes!(show, update, delete))
        .documented(routes!(grants))
        .documented(routes!(put_grant, delete_grant))
        .with_deadline()
}

answers! {
    /// A page of users.
    UserPage(Vec<UserRecord>, PageMeta);
    /// A user.
    UserAnswer(UserRecord);
    /// A user's per-dataset grants.
    GrantList(Vec<DatasetGrant>);
    /// A grant.
    GrantAnswer(DatasetGrant);
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Rows to skip.
    offset: Option<u64>,
}

/// Users by username.
#[utoipa::path(get, path = "/users", operation_id = "list_users", tag = "users", params(ListParams),
    responses((status = 200, description = "a page of users", body = UserPage), (status = 403, description = "not an admin", body = ErrorEnvelope)))]
async fn list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<ListParams>,
) -> ApiResult<UserPage> {
    let page = PageParams {
        limit: params.limit,
        offset: params.offset,
    }
    .page()?;
    let (users, total) = state.engine.list_users(&principal, page).await?;
    Ok(UserPage::new(
        users,
        page_meta(&strip_prefix(&uri), page, total),
    ))
}

/// A new user.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "ann", "email": "ann@example.com", "password": "correct horse battery staple", "role": "viewer"}))]
struct CreateUser {
    /// Sign-in name: lowercase letters, digits and `_`, starting with a letter or `_`.
    #[schema(value_type = Identifier)]
    username: String,
    /// Contact address.
    #[schema(value_type = Email)]
    email: String,
    /// Initial password: 12 to 256 characters, not containing the username.
    #[schema(value_type = NewPassword)]
    password: String,
    /// `viewer`, `editor` or `admin`.
    #[schema(value_type = Role)]
    role: String,
}

/// Creates a user.
#[utoipa::path(post, path = "/users", operation_id = "create_user", tag = "users", request_body = CreateUser,
    responses((status = 201, description = "the user", body = UserAnswer), (status = 400, description = "bad input or `weak_password`", body = ErrorEnvelope),
        (status = 403, description = "not an admin", body = ErrorEnvelope), (status = 409, description = "`user_exists`", body = ErrorEnvelope)))]
async fn create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Json(body): Json<CreateUser>,
) -> ApiResult<(StatusCode, UserAnswer)> {
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
    Ok((StatusCode::CREATED, UserAnswer::new(user)))
}

/// One user.
#[utoipa::path(get, path = "/users/{username}", operation_id = "get_user", tag = "users", params(("username" = String, Path, description = "username")),
    responses((status = 200, description = "the user", body = UserAnswer), (status = 404, description = "`user_not_found`", body = ErrorEnvelope)))]
async fn show(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(username): Path<String>,
) -> ApiResult<UserAnswer> {
    Ok(UserAnswer::new(
        state.engine.user(&principal, &username).await?,
    ))
}

/// Changes to a user; absent fields stay.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UserChanges {
    /// New address.
    #[schema(value_type = Option<Email>)]
    email: Option<String>,
    /// New role.
    #[schema(value_type = Option<Role>)]
    role: Option<String>,
    /// Disable (signs the user out everywhere; their keys stop working) or enable.
    disabled: Option<bool>,
    /// A new password (signs the user out everywhere).
    #[schema(value_type = Option<NewPassword>)]
    password: Option<String>,
}

/// Changes a user's address, role, disabled flag or password.
#[utoipa::path(patch, path = "/users/{username}", operation_id = "update_user", tag = "users", params(("username" = String, Path, description = "username")), request_body = UserChanges,
    responses((status = 200, description = "the user after the change", body = UserAnswer), (status = 404, description = "`user_not_found`", body = ErrorEnvelope),
        (status = 409, description = "`last_admin`: the last enabled admin cannot be demoted or disabled", body = ErrorEnvelope)))]
async fn update(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(username): Path<String>,
    Json(body): Json<UserChanges>,
) -> ApiResult<UserAnswer> {
    let patch = UserPatch {
        email: body.email,
        role: body.role.as_deref().map(Role::parse).transpose()?,
        disabled: body.disabled,
        password: body.password,
    };
    Ok(UserAnswer::new(
        state
            .engine
            .update_user(&principal, &username, patch)
            .await?,
    ))
}

/// Deletes a user with their sessions, API keys and grants.
#[utoipa::path(delete, path = "/users/{username}", operation_id = "delete_user", tag = "users", params(("username" = String, Path, description = "username")),
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
#[utoipa::path(get, path = "/users/{username}/grants", operation_id = "list_grants", tag = "users", params(("username" = String, Path, description = "username")),
    responses((status = 200, description = "grants", body = GrantList), (status = 404, description = "`user_not_found`", body = ErrorEnvelope)))]
async fn grants(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(username): Path<String>,
) -> ApiResult<GrantList> {
    Ok(GrantList::new(
        state.engine.grants(&principal, &username).await?,
    ))
}

/// What a grant allows.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    /// `read` or `write`.
    #[schema(value_type = GrantAccess)]
    access: String,
}

/// Gives a user read or write access to one dataset, beyond their role.
#[utoipa::path(put, path = "/users/{username}/grants/{dataset}", operation_id = "put_grant", tag = "users",
    params(("username" = String, Path, description = "username"), ("dataset" = Identifier, Path, description = "dataset name")), request_body = GrantBody,
    responses((status = 200, description = "the grant", body = GrantAnswer), (status = 404, description = "`user_not_found`", body = ErrorEnvelope)))]
async fn put_grant(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path((username, dataset)): Path<(String, String)>,
    Json(body): Json<GrantBody>,
) -> ApiResult<GrantAnswer> {
    let access = GrantAccess::parse(&body.access)?;
    Ok(GrantAnswer::new(
        state
            .engine
            .put_grant(&principal, &username, &dataset, access)
            .await?,
    ))
}

/// Removes a user's grant on one dataset.
#[utoipa::path(delete, path = "/users/{username}/grants/{dataset}", operation_id = "delete_grant", tag = "users",
    params(("username" = String, Path, description = "username"), ("dataset" = Identifier, Path, description = "dataset name")),
    responses((status = 204, description = "removed"), (status = 404, description = "`user_not_found` or `grant_not_found`", body = ErrorEnvelope)))]
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
