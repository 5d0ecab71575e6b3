//! Who may call what: credentials in, [`Principal`] out, one rule per route,
//! and an audit entry for every state-changing request.
//!
//! Every `/api/v1` route has exactly one [`Rule`] in [`RULES`]; a route
//! without one is refused (fail closed), and a test checks that every route
//! of the OpenAPI document has a rule. The rule names the engine
//! [`Action`] the route needs; the check itself is the engine's
//! [`Principal::authorize`].

use std::net::SocketAddr;

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{ConnectInfo, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use basin_engine::identity::audit::{AuditEvent, Outcome};
use basin_engine::identity::{Action, ClientInfo, Credentials, Door, Principal, Resource};

use crate::AppState;
use crate::error::ApiError;
use crate::request_id;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "basin_session";

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Nothing (signing in).
    Nobody,
    /// Any authenticated caller; the handler's engine call checks the rest.
    Caller,
    /// An engine action, on the dataset in the path when there is one.
    Action(Action),
}

/// One route's rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) method: Method,
    /// The route template below `/api/v1`.
    pub(crate) path: &'static str,
    /// The audit action name (state-changing routes are audited).
    pub(crate) action: &'static str,
    pub(crate) need: Need,
}

const fn rule(method: Method, path: &'static str, action: &'static str, need: Need) -> Rule {
    Rule {
        method,
        path,
        action,
        need,
    }
}

const READ: Need = Need::Action(Action::Read);
const WRITE: Need = Need::Action(Action::Write);
const ADMIN: Need = Need::Action(Action::Admin);
const ACCOUNT: Need = Need::Action(Action::Account);

/// Every `/api/v1` route and what it needs.
pub(crate) const RULES: &[Rule] = &[
    rule(Method::GET, "/datasets", "dataset.list", READ),
    rule(Method::POST, "/datasets", "dataset.create", WRITE),
    rule(Method::GET, "/datasets/{name}", "dataset.show", READ),
    rule(Method::PATCH, "/datasets/{name}", "dataset.update", WRITE),
    rule(Method::DELETE, "/datasets/{name}", "dataset.delete", WRITE),
    rule(
        Method::POST,
        "/datasets/{name}/upload",
        "dataset.upload",
        WRITE,
    ),
    rule(
        Method::GET,
        "/datasets/{name}/preview",
        "dataset.preview",
        READ,
    ),
    rule(
        Method::GET,
        "/datasets/{name}/versions",
        "dataset.versions",
        READ,
    ),
    rule(
        Method::POST,
        "/datasets/{name}/restore",
        "dataset.restore",
        WRITE,
    ),
    rule(
        Method::GET,
        "/datasets/{name}/statistics",
        "dataset.statistics",
        READ,
    ),
    rule(
        Method::GET,
        "/datasets/{name}/schema/history",
        "dataset.schema_history",
        READ,
    ),
    rule(Method::POST, "/query", "query.run", READ),
    rule(Method::GET, "/jobs", "job.list", READ),
    rule(Method::GET, "/jobs/{id}", "job.show", READ),
    rule(Method::POST, "/jobs/{id}/cancel", "job.cancel", WRITE),
    rule(Method::GET, "/events", "events.subscribe", READ),
    rule(Method::POST, "/auth/login", "auth.login", Need::Nobody),
    rule(Method::POST, "/auth/logout", "auth.logout", Need::Caller),
    rule(Method::GET, "/auth/me", "auth.me", Need::Caller),
    rule(Method::GET, "/auth/sessions", "session.list", ACCOUNT),
    rule(
        Method::DELETE,
        "/auth/sessions/{id}",
        "session.revoke",
        ACCOUNT,
    ),
    rule(Method::POST, "/auth/password", "auth.password", ACCOUNT),
    rule(Method::GET, "/api-keys", "api_key.list", ACCOUNT),
    rule(Method::POST, "/api-keys", "api_key.create", ACCOUNT),
    rule(Method::DELETE, "/api-keys/{id}", "api_key.revoke", ACCOUNT),
    rule(Method::GET, "/users", "user.list", ADMIN),
    rule(Method::POST, "/users", "user.create", ADMIN),
    rule(Method::GET, "/users/{username}", "user.show", ADMIN),
    rule(Method::PATCH, "/users/{username}", "user.update", ADMIN),
    rule(Method::DELETE, "/users/{username}", "user.delete", ADMIN),
    rule(Method::GET, "/users/{username}/grants", "grant.list", ADMIN),
    rule(
        Method::PUT,
        "/users/{username}/grants/{dataset}",
        "grant.put",
        ADMIN,
    ),
    rule(
        Method::DELETE,
        "/users/{username}/grants/{dataset}",
        "grant.delete",
        ADMIN,
    ),
    rule(Method::GET, "/audit", "audit.list", ADMIN),
    rule(Method::GET, "/audit/verify", "audit.verify", ADMIN),
    rule(Method::GET, "/connector-types", "connector.list", READ),
    rule(
        Method::GET,
        "/connector-types/{type}/spec",
        "connector.spec",
        READ,
    ),
    rule(Method::GET, "/connections", "connection.list", READ),
    rule(Method::POST, "/connections", "connection.create", ADMIN),
    rule(Method::POST, "/connections/test", "connection.test", ADMIN),
    rule(Method::GET, "/connections/{id}", "connection.show", READ),
    rule(
        Method::PATCH,
        "/connections/{id}",
        "connection.update",
        ADMIN,
    ),
    rule(
        Method::DELETE,
        "/connections/{id}",
        "connection.delete",
        ADMIN,
    ),
    rule(
        Method::POST,
        "/connections/{id}/test",
        "connection.test",
        WRITE,
    ),
    rule(
        Method::POST,
        "/connections/{id}/discover",
        "connection.discover",
        WRITE,
    ),
    rule(
        Method::POST,
        "/connections/{id}/sync",
        "connection.sync",
        WRITE,
    ),
    rule(
        Method::GET,
        "/connections/{id}/streams/{stream}/schema/history",
        "connection.schema_history",
        READ,
    ),
    rule(
        Method::GET,
        "/connections/{id}/streams/{stream}/mappings",
        "connection.mappings",
        READ,
    ),
    rule(
        Method::PUT,
        "/connections/{id}/streams/{stream}/mappings",
        "connection.mappings_put",
        WRITE,
    ),
    rule(
        Method::DELETE,
        "/connections/{id}/streams/{stream}/mappings",
        "connection.mappings_delete",
        WRITE,
    ),
    rule(Method::POST, "/schemas/diff", "schema.diff", READ),
    rule(Method::GET, "/pipelines", "pipeline.list", READ),
    rule(Method::POST, "/pipelines", "pipeline.create", WRITE),
    rule(
        Method::POST,
        "/pipelines/validate",
        "pipeline.validate",
        READ,
    ),
    rule(Method::GET, "/pipelines/{id}", "pipeline.show", READ),
    rule(Method::PUT, "/pipelines/{id}", "pipeline.save", WRITE),
    rule(
        Method::POST,
        "/pipelines/{id}/archive",
        "pipeline.archive",
        WRITE,
    ),
    rule(
        Method::POST,
        "/pipelines/{id}/unarchive",
        "pipeline.unarchive",
        WRITE,
    ),
    rule(
        Method::GET,
        "/pipelines/{id}/versions",
        "pipeline.versions",
        READ,
    ),
    rule(
        Method::GET,
        "/pipelines/{id}/versions/{version}",
        "pipeline.version",
        READ,
    ),
    rule(
        Method::POST,
        "/pipelines/{id}/versions/{version}/activate",
        "pipeline.activate",
        WRITE,
    ),
    rule(Method::GET, "/pipelines/{id}/diff", "pipeline.diff", READ),
    rule(Method::POST, "/pipelines/{id}/plan", "pipeline.plan", READ),
    rule(Method::POST, "/pipelines/{id}/runs", "pipeline.run", WRITE),
    rule(Method::GET, "/pipelines/{id}/runs", "pipeline.runs", READ),
    rule(
        Method::POST,
        "/pipelines/{id}/instantiate",
        "pipeline.instantiate",
        WRITE,
    ),
    rule(
        Method::GET,
        "/pipelines/{id}/lineage",
        "pipeline.lineage",
        READ,
    ),
    rule(Method::GET, "/runs", "run.list", READ),
    rule(Method::GET, "/runs/{id}", "run.show", READ),
    rule(Method::POST, "/runs/{id}/cancel", "run.cancel", WRITE),
    rule(Method::POST, "/runs/{id}/retry", "run.retry", WRITE),
    rule(
        Method::GET,
        "/runs/{id}/openlineage",
        "run.openlineage",
        READ,
    ),
    rule(Method::GET, "/lineage", "lineage.show", READ),
    rule(Method::GET, "/ws", "ws.subscribe", READ),
    rule(
        Method::POST,
        "/datasets/{name}/profile",
        "dataset.profile",
        READ,
    ),
    rule(
        Method::GET,
        "/datasets/{name}/profile",
        "dataset.profile_show",
        READ,
    ),
    rule(Method::GET, "/datasets/{name}/checks", "check.list", READ),
    rule(
        Method::POST,
        "/datasets/{name}/checks",
        "check.create",
        WRITE,
    ),
    rule(
        Method::GET,
        "/datasets/{name}/checks/{check}",
        "check.show",
        READ,
    ),
    rule(
        Method::PUT,
        "/datasets/{name}/checks/{check}",
        "check.update",
        WRITE,
    ),
    rule(
        Method::DELETE,
        "/datasets/{name}/checks/{check}",
        "check.delete",
        WRITE,
    ),
    rule(
        Method::POST,
        "/datasets/{name}/check-runs",
        "check.run",
        READ,
    ),
    rule(
        Method::GET,
        "/datasets/{name}/check-results",
        "check.results",
        READ,
    ),
    rule(
        Method::GET,
        "/datasets/{name}/metrics",
        "dataset.metrics",
        READ,
    ),
    rule(
        Method::POST,
        "/analytics/timeseries",
        "analytics.timeseries",
        READ,
    ),
    rule(Method::GET, "/dashboard/stats", "dashboard.stats", READ),
];

pub(crate) fn find_rule(method: &Method, path: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.method == *method && r.path == path)
}

/// The methods a route template has rules for.
fn allowed_methods(path: &str) -> Vec<&'static str> {
    RULES
        .iter()
        .filter(|r| r.path == path)
        .map(|r| r.method.as_str())
        .collect()
}

/// `405` for a method the route does not have, naming those it has.
fn method_not_allowed(method: &Method, allowed: &[&str]) -> Response {
    let allow = allowed.join(", ");
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed here; use {allow}"),
    )
    .into_response();
    if let Ok(value) = axum::http::HeaderValue::from_str(&allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// Where the request came from.
pub(crate) fn client_info(request: &Request) -> ClientInfo {
    client_from(request.headers(), request.extensions())
}

fn client_from(headers: &HeaderMap, extensions: &axum::http::Extensions) -> ClientInfo {
    ClientInfo {
        door: Door::Rest,
        ip: extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect()),
        request_id: request_id::current(),
    }
}

/// The session token in the cookie, if any.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The credentials a request carries: the `Authorization` header, else the
/// session cookie. The second value says whether they came from the cookie.
pub(crate) fn credentials(headers: &HeaderMap) -> Result<(Option<Credentials>, bool), ApiError> {
    let header = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    if let Some(credentials) = Credentials::from_header(header)? {
        return Ok((Some(credentials), false));
    }
    Ok(match cookie_token(headers) {
        Some(token) => (Some(Credentials::Bearer(token)), true),
        None => (None, false),
    })
}

/// A cookie rides along on cross-site requests a page makes, so
/// state-changing requests authenticated by it must come from an origin the
/// server trusts (its own, or one in `http.cors_origins`).
fn cross_site_with_cookie(state: &AppState, method: &Method, headers: &HeaderMap) -> bool {
    let upgrade = headers.contains_key(header::UPGRADE);
    if (method == Method::GET || method == Method::HEAD) && !upgrade {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let same_origin = origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest == host);
    !same_origin && !state.config.cors_origins.iter().any(|o| o == origin)
}

/// Middleware on `/api/v1`: finds the route's rule, authenticates, checks the
/// rule, runs the handler and audits state-changing requests.
pub(crate) async fn guard(
    State(state): State<AppState>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    request: Request,
    next: Next,
) -> Response {
    let params = path_params(params);
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().trim_start_matches("/api/v1").to_owned());
    let Some(rule) = template
        .as_deref()
        .and_then(|path| find_rule(request.method(), path))
    else {
        let allowed = template.as_deref().map(allowed_methods).unwrap_or_default();
        if !allowed.is_empty() {
            return method_not_allowed(request.method(), &allowed);
        }
        // A route without a rule is a bug; refuse rather than guess.
        tracing::error!(path = %request.uri().path(), "route has no access rule");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this route has no access rule",
        )
        .into_response();
    };
    if rule.need == Need::Nobody {
        return next.run(request).await;
    }
    let client = client_info(&request);
    let dataset = dataset_param(rule, &params);
    let target = target_of(rule, &params);
    // Queries are POSTed but change nothing; sign-ins are audited by the engine.
    let audited =
        !matches!(*request.method(), Method::GET | Method::HEAD) && rule.action != "query.run";
    let outcome = authorize(
        &state,
        rule,
        request.method(),
        request.headers(),
        &client,
        dataset.as_deref(),
    )
    .await;
    let (principal, response) = match outcome {
        Ok(principal) => {
            let mut request = request;
            request.extensions_mut().insert(principal.clone());
            (Some(principal), next.run(request).await)
        }
        Err((principal, error)) => (principal, error.into_response()),
    };
    // Requests nobody could be identified for are counted in metrics, not
    // audited: an anonymous flood must not grow the append-only log.
    if audited
        && let Some(principal) = principal
        && response.status() != StatusCode::TOO_MANY_REQUESTS
    {
        let status = response.status();
        let outcome = if status.is_success() {
            Outcome::Success
        } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            Outcome::Denied
        } else {
            Outcome::Failure
        };
        state
            .engine
            .audit(AuditEvent {
                actor: principal.username,
                action: rule.action.to_owned(),
                target,
                outcome,
                request_id: client.request_id,
                source_ip: client.ip.map(|ip| ip.to_string()),
                details: serde_json::json!({ "door": Door::Rest.as_str(), "status": status.as_u16() }),
            })
            .await;
    }
    response
}

type Denied = (Option<Principal>, ApiError);

async fn authorize(
    state: &AppState,
    rule: &Rule,
    method: &Method,
    headers: &HeaderMap,
    client: &ClientInfo,
    dataset: Option<&str>,
) -> Result<Principal, Denied> {
    let (credentials, from_cookie) = credentials(headers).map_err(|e| (None, e))?;
    let principal = state
        .engine
        .authenticate(credentials.as_ref(), client)
        .await
        .map_err(|e| (None, ApiError::from(e)))?;
    if from_cookie && cross_site_with_cookie(state, method, headers) {
        return Err((
            Some(principal),
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "cross-site request with a session cookie",
            )
            .with_hint(
                "send the token in an Authorization header, or add the origin to http.cors_origins",
            ),
        ));
    }
    if let Need::Action(action) = rule.need {
        let resource = dataset.map_or(Resource::Global, Resource::Dataset);
        if let Err(e) = principal.authorize(action, resource) {
            return Err((Some(principal), e.into()));
        }
    }
    Ok(principal)
}

/// The matched route's path parameters, in order.
type PathParams = Vec<(String, String)>;

fn path_params(params: Result<RawPathParams, RawPathParamsRejection>) -> PathParams {
    params
        .map(|p| {
            p.iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The dataset a route acts on: `{name}` of dataset routes, `{dataset}` of grants.
fn dataset_param(rule: &Rule, params: &PathParams) -> Option<String> {
    if !rule.path.starts_with("/datasets/") {
        return None;
    }
    params
        .iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.clone())
}

/// What an audit entry names as the target: `kind:value` from the path.
fn target_of(rule: &Rule, params: &PathParams) -> String {
    let kind = rule.action.split('.').next().unwrap_or("api");
    match params.first() {
        // Path values are whatever the caller sent: keep audit rows small.
        Some((_, value)) => format!("{kind}:{}", value.chars().take(200).collect::<String>()),
        None => kind.to_owned(),
    }
}

/// Where the request came from, as an extractor.
#[derive(Debug, Clone)]
pub(crate) struct Client(pub ClientInfo);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_from(&parts.headers, &parts.extensions)))
    }
}

/// The caller, as the guard authenticated them; handlers take it as an argument.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "credentials required",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_exactly_one_rule_and_every_rule_a_route() {
        let (_, document) = crate::api_routes().split_for_parts();
        let mut routes = Vec::new();
        for (path, item) in &document.paths.paths {
            for (method, operation) in [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
            ] {
                if operation.is_some() {
                    routes.push((method, path.clone()));
                }
            }
        }
        for (method, path) in &routes {
            let rules = RULES
                .iter()
                .filter(|r| r.method == *method && r.path == path)
                .count();
            assert_eq!(rules, 1, "{method} {path} has {rules} rules");
        }
        for rule in RULES {
            assert!(
                routes
                    .iter()
                    .any(|(m, p)| *m == rule.method && p == rule.path),
                "rule {} {} has no route",
                rule.method,
                rule.path
            );
        }
    }
}
