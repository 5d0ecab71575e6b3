//! Liveness, readiness and metrics.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::WithDeadline;
use crate::error::ApiError;
use crate::{API_VERSION, AppState};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_deadline()
}

async fn health() -> impl IntoResponse {
    axum::Json(
        json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"), "api_version": API_VERSION}),
    )
}

async fn ready(State(state): State<AppState>) -> Response {
    let probes = state.engine.ready().await;
    let mut failed = Vec::new();
    for (probe, outcome) in &probes {
        if let Err(e) = outcome {
            tracing::warn!(probe, error = %e, "readiness probe failed");
            failed.push(*probe);
        }
    }
    if failed.is_empty() {
        let checks: serde_json::Map<String, serde_json::Value> = probes
            .iter()
            .map(|(probe, _)| ((*probe).to_owned(), json!("ok")))
            .collect();
        axum::Json(json!({"status": "ready", "checks": checks})).into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("unavailable: {}", failed.join(", ")),
        )
        .with_details(json!({ "failed": failed }))
        .into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => not_found().await.into_response(),
    }
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route")
        .with_hint("see /api/v1 routes in docs/http-api.md")
}
