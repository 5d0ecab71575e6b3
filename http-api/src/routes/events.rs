//! `/events`: a WebSocket of live job changes (the older, simpler sibling of
//! `/ws`, which has channels and cursors), authenticated at the
//! upgrade like any request (header or session cookie) and closed when those
//! credentials stop being valid (signed out, revoked, disabled, expired).

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use axum::http::HeaderMap;
use axum::response::Response;
use basin_engine::Engine;
use basin_engine::identity::{Credentials, Principal};
use basin_engine::runtime::events::{FeedEvent, kinds};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::WithDeadline;
use crate::access::{Caller, credentials};
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::WebSocketUpgrade;
use crate::openapi::DocumentedRoutes;

/// How often a connection re-checks its credentials even when nothing was
/// revoked (sessions expire on their own).
const RECHECK_EVERY: Duration = Duration::from_secs(30);

/// The close code sent when the credentials stop being valid (4000-4999 are
/// for applications; this mirrors HTTP 401).
pub(crate) const CLOSE_UNAUTHENTICATED: u16 = 4401;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .documented(routes!(events))
        .with_deadline()
}

/// Upgrades to a WebSocket of JSON events: first `{"type": "ready"}`, then
/// `{"type": "job", "job": {…}}` as jobs change, and `{"type": "lagged",
/// "missed": n}` when the client fell behind. Closed with code 4401 when the
/// credentials it opened with are revoked or expire.
#[utoipa::path(get, path = "/events", operation_id = "subscribe_events", tag = "events",
    responses((status = 101, description = "switching to the WebSocket protocol"),
        (status = 426, description = "`upgrade_required`: not a WebSocket handshake", body = ErrorEnvelope),
        (status = 401, description = "not signed in", body = ErrorEnvelope)))]
async fn events(
    State(state): State<AppState>,
    Caller(principal): Caller,
    headers: HeaderMap,
    WebSocketUpgrade(upgrade): WebSocketUpgrade,
) -> ApiResult<Response> {
    let (credentials, _) = credentials(&headers)?;
    let engine = state.engine.clone();
    let opened_at = chrono::Utc::now();
    Ok(upgrade
        .on_upgrade(move |socket| stream_events(engine, principal, credentials, opened_at, socket)))
}

async fn stream_events(
    engine: Engine,
    principal: Principal,
    credentials: Option<Credentials>,
    opened_at: chrono::DateTime<chrono::Utc>,
    mut socket: WebSocket,
) {
    let mut events = match engine.event_feed(&principal).await {
        Ok(events) => events,
        Err(e) => {
            tracing::error!(error = %e, "job events: cannot read the event log");
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
    };
    let mut revocations = engine.revocations();
    let mut recheck = tokio::time::interval(RECHECK_EVERY);
    recheck.tick().await;
    if send_json(&mut socket, &json!({"type": "ready"}))
        .await
        .is_err()
    {
        return;
    }
    loop {
        let check_now = tokio::select! {
            event = events.recv() => {
                let message = match event {
                    Ok(FeedEvent::Visible(event)) if event.kind == kinds::JOB_STATUS => {
                        json!({"type": "job", "job": event.data.get("job")})
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(missed)) => json!({"type": "lagged", "missed": missed}),
                    Err(RecvError::Closed) => break,
                };
                if send_json(&mut socket, &message).await.is_err() {
                    return;
                }
                false
            }
            changed = revocations.changed() => changed.is_ok(),
            _ = recheck.tick() => true,
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                // Pings are answered by the protocol layer; other messages are ignored.
                Some(Ok(_)) => false,
            },
        };
        if check_now && !engine.still_valid(credentials.as_ref(), opened_at).await {
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code: CLOSE_UNAUTHENTICATED,
                    reason: Utf8Bytes::from_static("credentials revoked or expired"),
                })))
                .await;
            return;
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

async fn send_json(socket: &mut WebSocket, value: &serde_json::Value) -> Result<(), axum::Error> {
    socket
        .send(Message::Text(Utf8Bytes::from(value.to_string())))
        .await
}
