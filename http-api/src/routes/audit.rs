//! `/audit`: the hash-chained audit log (admins only).

use axum::extract::{OriginalUri, State};
use basin_engine::catalog::AuditFilter;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::jobs::strip_prefix;
use super::{PageParams, envelope, page_meta};
use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::Query;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(verify))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Exact actor (username).
    actor: Option<String>,
    /// Exact action (`dataset.create`), or a prefix ending in `.` (`dataset.`).
    action: Option<String>,
    /// `success`, `failure` or `denied`.
    outcome: Option<String>,
    /// Exact target (`dataset:orders`).
    target: Option<String>,
    /// At or after this time (RFC 3339).
    since: Option<String>,
    /// Before this time (RFC 3339).
    until: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    limit: Option<u32>,
    /// Rows to skip.
    offset: Option<u64>,
}

/// Audit entries, newest first.
#[utoipa::path(get, path = "/audit", tag = "audit", params(ListParams),
    responses((status = 200, description = "a page of entries", body = Object), (status = 403, description = "not an admin", body = ErrorEnvelope)))]
async fn list(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<ListParams>,
) -> ApiResult<axum::Json<Value>> {
    let page = PageParams {
        limit: params.limit,
        offset: params.offset,
    }
    .page()?;
    let filter = AuditFilter {
        actor: params.actor,
        action: params.action,
        outcome: params.outcome,
        target: params.target,
        since: params.since,
        until: params.until,
    };
    let (entries, total) = state.engine.audit_log(&filter, page).await?;
    Ok(envelope(
        entries,
        page_meta(&strip_prefix(&uri), page, total),
    ))
}

/// Recomputes the chain: `valid`, `rows_checked`, and the first edited, inserted or deleted row.
#[utoipa::path(get, path = "/audit/verify", tag = "audit",
    responses((status = 200, description = "the verdict", body = Object), (status = 403, description = "not an admin", body = ErrorEnvelope)))]
async fn verify(State(state): State<AppState>) -> ApiResult<axum::Json<Value>> {
    Ok(envelope(state.engine.verify_audit().await?, json!({})))
}
