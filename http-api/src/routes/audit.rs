//! `/audit`: the hash-chained audit log (admins only).

use axum::extract::{OriginalUri, State};
use basin_engine::catalog::{AuditFilter, AuditRecord};
use basin_engine::identity::audit::{AuditVerification, Outcome};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::jobs::strip_prefix;
use super::{PageParams, page_meta};
use crate::AppState;
use crate::WithDeadline;
use crate::envelope::{PageMeta, answers};
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::Query;
use crate::openapi::DocumentedRoutes;

answers! {
    /// A page of audit entries.
    AuditPage(Vec<AuditRecord>, PageMeta);
    /// The chain's verdict.
    AuditVerdict(AuditVerification);
}

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .documented(routes!(list))
        .documented(routes!(verify))
        .with_deadline()
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
    #[param(value_type = Option<Outcome>)]
    outcome: Option<String>,
    /// Exact target (`dataset:orders`).
    target: Option<String>,
    /// At or after this time (RFC 3339).
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    since: Option<String>,
    /// Before this time (RFC 3339).
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    until: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Rows to skip.
    offset: Option<u64>,
}

/// Audit entries, newest first.
#[utoipa::path(get, path = "/audit", operation_id = "list_audit_entries", tag = "audit", params(ListParams),
    responses((status = 200, description = "a page of entries", body = AuditPage), (status = 403, description = "not an admin", body = ErrorEnvelope)))]
async fn list(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<ListParams>,
) -> ApiResult<AuditPage> {
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
    Ok(AuditPage::new(
        entries,
        page_meta(&strip_prefix(&uri), page, total),
    ))
}

/// Recomputes the chain: `valid`, `rows_checked`, and the first edited, inserted or deleted row.
#[utoipa::path(get, path = "/audit/verify", operation_id = "verify_audit_log", tag = "audit",
    responses((status = 200, description = "the verdict", body = AuditVerdict), (status = 403, description = "not an admin", body = ErrorEnvelope)))]
async fn verify(State(state): State<AppState>) -> ApiResult<AuditVerdict> {
    Ok(AuditVerdict::new(state.engine.verify_audit().await?))
}
