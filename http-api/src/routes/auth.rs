//! `/auth`: sign in and out, who am I, my sessions, my password.

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use basin_engine::auth::Via;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::envelope;
use crate::AppState;
use crate::access::{Caller, Client, SESSION_COOKIE};
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::Json;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        // Sign-in is open to anyone: it reads no more than a username and password need.
        .layer(DefaultBodyLimit::max(LOGIN_BODY_LIMIT))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(change_password))
}

/// Largest sign-in request body.
const LOGIN_BODY_LIMIT: usize = 16 * 1024;

/// A username and password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    /// The username.
    username: String,
    /// The password.
    password: String,
}

/// Signs in: a session token in the body and in an HttpOnly cookie.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginBody, security(()),
    responses((status = 200, description = "signed in: `data.token` (shown once), `data.expires_at`, `data.user`", body = Object),
        (status = 401, description = "wrong username or password", body = ErrorEnvelope),
        (status = 429, description = "too many failed logins: locked for `Retry-After` seconds", body = ErrorEnvelope)))]
async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    Json(body): Json<LoginBody>,
) -> ApiResult<Response> {
    let outcome = state
        .engine
        .login(&body.username, &body.password, &client)
        .await?;
    let max_age = (outcome.session.max_expires_at - outcome.session.created_at).num_seconds();
    let cookie = format!(
        "{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/api/v1; Max-Age={max_age}{}",
        outcome.token,
        if state.config.cookie_secure {
            "; Secure"
        } else {
            ""
        }
    );
    let mut response = envelope(
        json!({
            "token": outcome.token,
            "session_id": outcome.session.id,
            "expires_at": outcome.session.expires_at,
            "max_expires_at": outcome.session.max_expires_at,
            "user": outcome.user,
        }),
        json!({}),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Signs out: revokes the session the request came with, and clears the cookie.
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    responses((status = 204, description = "signed out"), (status = 401, description = "not signed in", body = ErrorEnvelope)))]
async fn logout(State(state): State<AppState>, Caller(principal): Caller) -> ApiResult<Response> {
    state.engine.logout(&principal).await?;
    let clear = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/api/v1; Max-Age=0");
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&clear) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// The caller: user, role, grants, and how they authenticated.
#[utoipa::path(get, path = "/auth/me", tag = "auth",
    responses((status = 200, description = "the caller", body = Object), (status = 401, description = "not signed in", body = ErrorEnvelope)))]
async fn me(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<axum::Json<Value>> {
    let user = state.engine.me(&principal).await?;
    let via = match &principal.via {
        Via::Session { id } => json!({"kind": "session", "session_id": id}),
        Via::ApiKey {
            id,
            scopes,
            datasets,
        } => json!({"kind": "api_key", "api_key_id": id, "scopes": scopes, "datasets": datasets}),
        Via::Password => json!({"kind": "password"}),
        Via::Anonymous | Via::Local => json!({"kind": "other"}),
    };
    Ok(envelope(
        json!({"user": user, "grants": &*principal.grants, "via": via}),
        json!({}),
    ))
}

/// The caller's live sessions (the current one has `current: true`).
#[utoipa::path(get, path = "/auth/sessions", tag = "auth",
    responses((status = 200, description = "live sessions, newest first", body = Object), (status = 401, description = "not signed in", body = ErrorEnvelope)))]
async fn sessions(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<axum::Json<Value>> {
    let current = match &principal.via {
        Via::Session { id } => Some(id.clone()),
        _ => None,
    };
    let sessions: Vec<Value> = state
        .engine
        .my_sessions(&principal)
        .await?
        .into_iter()
        .map(|s| {
            let is_current = current.as_deref() == Some(s.id.as_str());
            let mut value = serde_json::to_value(s).unwrap_or_default();
            value["current"] = json!(is_current);
            value
        })
        .collect();
    Ok(envelope(sessions, json!({})))
}

/// Revokes one of the caller's sessions; connections using it are closed.
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "auth", params(("id" = String, Path, description = "session id")),
    responses((status = 204, description = "revoked"), (status = 404, description = "no such live session of the caller", body = ErrorEnvelope)))]
async fn revoke_session(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.engine.revoke_my_session(&principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The current and the new password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    /// The current password.
    current_password: String,
    /// The new password: 12 to 256 characters, not containing the username.
    new_password: String,
}

/// Changes the caller's password and signs out their other sessions.
#[utoipa::path(post, path = "/auth/password", tag = "auth", request_body = PasswordBody,
    responses((status = 204, description = "changed"), (status = 400, description = "the new password breaks the policy (`weak_password`)", body = ErrorEnvelope),
        (status = 403, description = "the current password is wrong", body = ErrorEnvelope)))]
async fn change_password(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Json(body): Json<PasswordBody>,
) -> ApiResult<StatusCode> {
    state
        .engine
        .change_password(&principal, &body.current_password, &body.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
