//! `/auth`: sign in and out, who am I, my sessions, my password.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use basin_engine::catalog::{SessionRecord, UserRecord};
use basin_engine::identity::{DatasetGrant, Scope, Via};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::WithDeadline;
use crate::access::{Caller, Client, SESSION_COOKIE};
use crate::envelope::answers;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Json, Path};
use crate::openapi::{DocumentedRoutes, NewPassword};

answers! {
    /// A new session.
    LoginAnswer(SignedIn);
    /// The caller.
    MeAnswer(Me);
    /// The caller's live sessions, newest first.
    SessionList(Vec<SessionView>);
}

/// A new session and its token.
#[derive(Debug, Serialize, ToSchema)]
struct SignedIn {
    /// The session token, for `Authorization: Bearer <token>` (shown once).
    token: String,
    /// The session's id, to revoke it.
    session_id: String,
    /// It ends here unless used again (sliding).
    expires_at: DateTime<Utc>,
    /// It ends here whatever happens.
    max_expires_at: DateTime<Utc>,
    /// Who signed in.
    user: UserRecord,
}

/// Who the caller is and how they signed in.
#[derive(Debug, Serialize, ToSchema)]
struct Me {
    /// The caller's user.
    user: UserRecord,
    /// Their per-dataset grants.
    grants: Vec<DatasetGrant>,
    /// How this request was authenticated.
    via: CallerVia,
}

/// How a request was authenticated.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum CallerVia {
    /// A session token or the session cookie.
    Session {
        /// The session's id.
        session_id: String,
    },
    /// An API key.
    ApiKey {
        /// The key's id.
        api_key_id: String,
        /// Its scopes.
        scopes: Vec<Scope>,
        /// The datasets it is limited to, when limited.
        datasets: Option<Vec<String>>,
    },
    /// A username and password sent with the request (HTTP Basic).
    Password,
    /// Anything else (anonymous access, a local command).
    Other,
}

/// A session, marked when it is the one the request came with.
#[derive(Debug, Serialize, ToSchema)]
struct SessionView {
    #[serde(flatten)]
    session: SessionRecord,
    /// Whether the request came with this session.
    current: bool,
}

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .documented(routes!(login))
        // Sign-in is open to anyone: it reads no more than a username and password need.
        .layer(DefaultBodyLimit::max(LOGIN_BODY_LIMIT))
        .documented(routes!(logout))
        .documented(routes!(me))
        .documented(routes!(sessions))
        .documented(routes!(revoke_session))
        .documented(routes!(change_password))
        .with_deadline()
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
#[utoipa::path(post, path = "/auth/login", operation_id = "login", tag = "auth", request_body = LoginBody, security(()),
    responses((status = 200, description = "signed in: `data.token` (shown once), `data.expires_at`, `data.user`", body = LoginAnswer),
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
    let mut response = LoginAnswer::new(SignedIn {
        token: outcome.token,
        session_id: outcome.session.id,
        expires_at: outcome.session.expires_at,
        max_expires_at: outcome.session.max_expires_at,
        user: outcome.user,
    })
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
#[utoipa::path(post, path = "/auth/logout", operation_id = "logout", tag = "auth",
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
#[utoipa::path(get, path = "/auth/me", operation_id = "get_me", tag = "auth",
    responses((status = 200, description = "the caller", body = MeAnswer), (status = 401, description = "not signed in", body = ErrorEnvelope)))]
async fn me(State(state): State<AppState>, Caller(principal): Caller) -> ApiResult<MeAnswer> {
    let user = state.engine.me(&principal).await?;
    let via = match &principal.via {
        Via::Session { id } => CallerVia::Session {
            session_id: id.clone(),
        },
        Via::ApiKey {
            id,
            scopes,
            datasets,
        } => CallerVia::ApiKey {
            api_key_id: id.clone(),
            scopes: scopes.clone(),
            datasets: datasets.clone(),
        },
        Via::Password => CallerVia::Password,
        Via::Anonymous | Via::Local => CallerVia::Other,
    };
    Ok(MeAnswer::new(Me {
        user,
        grants: principal.grants.to_vec(),
        via,
    }))
}

/// The caller's live sessions (the current one has `current: true`).
#[utoipa::path(get, path = "/auth/sessions", operation_id = "list_my_sessions", tag = "auth",
    responses((status = 200, description = "live sessions, newest first", body = SessionList), (status = 401, description = "not signed in", body = ErrorEnvelope)))]
async fn sessions(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<SessionList> {
    let current = match &principal.via {
        Via::Session { id } => Some(id.clone()),
        _ => None,
    };
    let sessions = state
        .engine
        .my_sessions(&principal)
        .await?
        .into_iter()
        .map(|session| SessionView {
            current: current.as_deref() == Some(session.id.as_str()),
            session,
        })
        .collect();
    Ok(SessionList::new(sessions))
}

/// Revokes one of the caller's sessions; connections using it are closed.
#[utoipa::path(delete, path = "/auth/sessions/{id}", operation_id = "revoke_my_session", tag = "auth", params(("id" = String, Path, description = "session id")),
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
    #[schema(value_type = NewPassword)]
    new_password: String,
}

/// Changes the caller's password and signs out their other sessions.
#[utoipa::path(post, path = "/auth/password", operation_id = "change_my_password", tag = "auth", request_body = PasswordBody,
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
