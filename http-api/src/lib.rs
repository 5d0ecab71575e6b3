//! Basin's REST API: `/api/v1` over the engine, plus `/health`, `/ready` and `/metrics`.
//!
//! Every success is `{"data": …, "meta": {…}}`, every failure
//! `{"error": {"code", "message", "details", "hint", "request_id"}}` with a
//! stable code (see `docs/http-api.md`). Handlers only translate between HTTP
//! and [`basin_engine::Engine`]; there is no business logic here.
//!
//! Every `/api/v1` route has one access rule (`access.rs`): the guard
//! authenticates the caller (bearer token, API key, Basic, or the session
//! cookie), checks the rule with the engine's permission check, and records
//! state-changing requests in the audit log.

mod access;
mod body_shape;
mod encode;
mod envelope;
mod error;
mod extract;
mod openapi;
mod request_id;
mod routes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use basin_engine::Engine;
use metrics_exporter_prometheus::PrometheusHandle;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use access::{Caller, SESSION_COOKIE};
pub use encode::ResultFormat;
pub use error::{ApiError, ApiResult, http_status};

/// The API version served, in the `API-Version` header.
pub const API_VERSION: &str = "1";

/// The response header carrying [`API_VERSION`]; browsers may read it (CORS).
pub const API_VERSION_HEADER: &str = "api-version";

/// HTTP-level limits.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body, uploads included.
    pub body_limit: u64,
    /// Deadline for requests other than uploads and queries (which have their own).
    pub request_timeout: Duration,
    /// Deepest JSON nesting a request body may have.
    pub max_json_depth: usize,
    /// Origins browsers may call the API from (CORS, with credentials); empty allows none.
    pub cors_origins: Vec<String>,
    /// Mark the session cookie `Secure` (serve over HTTPS, or behind a TLS proxy).
    pub cookie_secure: bool,
    /// How often `/ws` sends a heartbeat.
    pub ws_heartbeat: Duration,
}

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub engine: Engine,
    /// Limits.
    pub config: Arc<ApiConfig>,
    /// Renders `/metrics`; `None` serves 404 there.
    pub metrics: Option<PrometheusHandle>,
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let body_limit = usize::try_from(state.config.body_limit).unwrap_or(usize::MAX);
    let (api, document) = api_routes().split_for_parts();
    // After routing, so the guard sees the matched route and its parameters.
    let api = api.route_layer(middleware::from_fn_with_state(state.clone(), access::guard));
    // The document never changes after startup: serialize it once.
    let document = openapi::finish(document);
    let body_shapes = std::sync::Arc::new(body_shape::BodyShapes::from_document(&document));
    let document = axum::body::Bytes::from(
        serde_json::to_vec(&document).expect("the OpenAPI document serializes"),
    );
    let api = api
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let body = document.clone();
                std::future::ready((
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                ))
            }),
        )
        .fallback(routes::ops::not_found);
    let router = Router::new()
        .nest("/api/v1", api)
        .merge(routes::ops::router())
        .fallback(routes::ops::not_found)
        .layer(middleware::from_fn(observe))
        .layer(middleware::from_fn(request_id::layer))
        .layer(axum::Extension(extract::JsonDepth(
            state.config.max_json_depth,
        )))
        .layer(axum::Extension(body_shapes))
        .layer(axum::Extension(RequestTimeout(
            state.config.request_timeout,
        )))
        .layer(DefaultBodyLimit::max(body_limit));
    let router = match cors(&state.config.cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.with_state(state)
}

/// The OpenAPI 3.1 document of `/api/v1`, as `GET /api/v1/openapi.json`
/// serves it.
pub fn openapi_document() -> serde_json::Value {
    openapi::finish(api_routes().split_for_parts().1)
}

/// Every `/api/v1` route, with its OpenAPI description.
fn api_routes() -> OpenApiRouter<AppState> {
    use openapi::DocumentedRoutes as _;
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge_documented(routes::datasets::router())
        .merge_documented(routes::query::router())
        .merge_documented(routes::jobs::router())
        .merge_documented(routes::events::router())
        .merge_documented(routes::auth::router())
        .merge_documented(routes::users::router())
        .merge_documented(routes::api_keys::router())
        .merge_documented(routes::audit::router())
        .merge_documented(routes::connections::router())
        .merge_documented(routes::pipelines::router())
        .merge_documented(routes::ws::router())
        .merge_documented(routes::analytics::router())
}

/// CORS for the configured origins, with credentials (the session cookie).
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::header;
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_credentials(true)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                axum::http::HeaderName::from_static(request_id::HEADER),
            ])
            .expose_headers([
                axum::http::HeaderName::from_static(request_id::HEADER),
                axum::http::HeaderName::from_static(API_VERSION_HEADER),
                header::RETRY_AFTER,
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// `http.request_timeout`, for the deadline layer.
#[derive(Debug, Clone, Copy)]
struct RequestTimeout(Duration);

/// The request deadline (`http.request_timeout`) as a layer on a router's
/// routes. Each resource router puts it on its routes, except those that
/// stream large bodies or download a source and run on deadlines of their own
/// (uploads, creating a dataset, queries).
pub(crate) trait WithDeadline {
    /// The router with the deadline on every route added so far.
    fn with_deadline(self) -> Self;
}

impl WithDeadline for OpenApiRouter<AppState> {
    fn with_deadline(self) -> Self {
        self.route_layer(middleware::from_fn(deadline))
    }
}

impl WithDeadline for Router<AppState> {
    fn with_deadline(self) -> Self {
        self.route_layer(middleware::from_fn(deadline))
    }
}

async fn deadline(
    axum::Extension(RequestTimeout(limit)): axum::Extension<RequestTimeout>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            format!("request took longer than {} ms", limit.as_millis()),
        )
        .into_response(),
    }
}

/// Request metrics by route template, plus the `API-Version` header.
async fn observe(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let in_flight = metrics::gauge!("basin_http_requests_in_flight");
    in_flight.increment(1.0);
    let mut response = next.run(request).await;
    in_flight.decrement(1.0);
    let status = response.status().as_u16().to_string();
    metrics::histogram!("basin_http_request_duration_seconds", "route" => route, "method" => method, "status" => status)
        .record(started.elapsed().as_secs_f64());
    response
        .headers_mut()
        .insert(API_VERSION_HEADER, HeaderValue::from_static(API_VERSION));
    response
}
