//! `/ws`: the WebSocket of live events with channels and a cursor.
//!
//! Authenticated at the upgrade like any request; closed with 4401 when
//! those credentials stop being valid. The client subscribes to channels
//! (`pipeline:{id or name}`, `run:{id}`, `dataset:{name}`, `jobs`,
//! `system`) and gets each event of those channels once, in sequence
//! order. Every event has a `seq`; a client that reconnects and
//! subscribes with `since` set to the last `seq` it saw receives what it
//! missed from the persisted log first. A client that reads slower than
//! events arrive gets `pipeline_progress` events of one run merged (each
//! carries every step's status, so the newest says it all) instead of an
//! ever-growing buffer. The protocol is documented in `docs/pipelines.md`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use axum::http::HeaderMap;
use axum::response::Response;
use basin_engine::Engine;
use basin_engine::catalog::EventRecord;
use basin_engine::identity::{Credentials, Principal};
use basin_engine::runtime::events::{EventFeed, FeedEvent, channels_of, kinds};
use futures::SinkExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::events::CLOSE_UNAUTHENTICATED;
use crate::AppState;
use crate::WithDeadline;
use crate::access::{Caller, credentials};
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Query, WebSocketUpgrade};
use crate::openapi::DocumentedRoutes;

/// How often a connection re-checks its credentials when nothing was revoked.
const RECHECK_EVERY: Duration = Duration::from_secs(30);
/// Most events read from the log per query when catching up.
const REPLAY_PAGE: u32 = 1000;
/// Most live events taken at once (and merged) before sending.
const BATCH: usize = 256;
/// Live events waiting for one client beyond which its progress events are
/// merged: it is reading slower than events arrive.
const MERGE_BEYOND: usize = 64;
/// Bytes read from the socket at a time.
const READ_BUFFER: usize = 4 * 1024;
/// Bytes a connection may have waiting to be written before sends fail.
const MAX_WRITE_BUFFER: usize = 1024 * 1024;
/// Largest message a client may send (subscriptions are small).
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// Most channels one connection may subscribe to.
const MAX_CHANNELS: usize = 256;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().documented(routes!(ws)).with_deadline()
}

/// `?channels=a,b&since=<seq>`: subscriptions to open with.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WsParams {
    #[serde(default)]
    channels: Option<String>,
    #[serde(default)]
    since: Option<i64>,
}

/// Upgrades to the event WebSocket. Messages are JSON text; see
/// `docs/pipelines.md` for the protocol: `subscribe`/`unsubscribe`/`ping`
/// from the client; `ready`, `subscribed`, `unsubscribed`, events (with
/// `seq`), `heartbeat`, `pong` and `error` from the server.
#[utoipa::path(get, path = "/ws", operation_id = "subscribe_ws", tag = "events",
    params(("channels" = Option<String>, Query, description = "comma-separated channels to subscribe to at once"),
        ("since" = Option<i64>, Query, description = "replay those channels' events after this seq first")),
    responses((status = 101, description = "switching to the WebSocket protocol"),
        (status = 426, description = "`upgrade_required`: not a WebSocket handshake", body = ErrorEnvelope),
        (status = 401, description = "not signed in", body = ErrorEnvelope)))]
async fn ws(
    State(state): State<AppState>,
    Caller(principal): Caller,
    headers: HeaderMap,
    Query(params): Query<WsParams>,
    WebSocketUpgrade(upgrade): WebSocketUpgrade,
) -> ApiResult<Response> {
    let (credentials, _) = credentials(&headers)?;
    let engine = state.engine.clone();
    let heartbeat = state.config.ws_heartbeat;
    let opened_at = chrono::Utc::now();
    // A small read buffer: most connections sit idle, and the default 128 KiB
    // per socket would dominate the server's memory.
    let upgrade = upgrade
        .read_buffer_size(READ_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(MAX_CLIENT_MESSAGE);
    Ok(upgrade.on_upgrade(move |socket| async move {
        let connection = Connection {
            engine,
            principal,
            credentials,
            opened_at,
            socket,
            channels: BTreeSet::new(),
            position: 0,
        };
        connection.serve(params, heartbeat).await;
    }))
}

/// A client message.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    Subscribe {
        channels: Vec<String>,
        #[serde(default)]
        since: Option<i64>,
    },
    Unsubscribe {
        channels: Vec<String>,
    },
    Ping,
}

struct Connection {
    engine: Engine,
    principal: Principal,
    credentials: Option<Credentials>,
    opened_at: chrono::DateTime<chrono::Utc>,
    socket: WebSocket,
    channels: BTreeSet<String>,
    /// The last event seq this connection has handled (sent or filtered out).
    position: i64,
}

/// Why the connection ends.
enum Closed {
    /// The socket went away.
    Gone,
    /// The credentials stopped being valid.
    Unauthenticated,
}

impl Connection {
    async fn serve(mut self, params: WsParams, heartbeat: Duration) {
        let mut live = match self.engine.event_feed(&self.principal).await {
            Ok(feed) => feed,
            Err(e) => {
                tracing::error!(error = %e, "websocket: cannot read the event log");
                let _ = self.socket.send(Message::Close(None)).await;
                return;
            }
        };
        let mut revocations = self.engine.revocations();
        self.position = live.start();
        let ready = json!({
            "type": "ready",
            "cursor": self.position,
            "heartbeat_ms": heartbeat.as_millis() as u64,
        });
        if self.send(&ready).await.is_err() {
            return;
        }
        if let Some(channels) = &params.channels {
            let channels = channels
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
            if self.subscribe(channels, params.since).await.is_err() {
                return;
            }
        }
        let mut beat = tokio::time::interval(heartbeat);
        beat.tick().await;
        let mut recheck = tokio::time::interval(RECHECK_EVERY);
        recheck.tick().await;
        let outcome = loop {
            let step: Result<bool, Closed> = tokio::select! {
                event = live.recv() => match event {
                    Ok(event) => self.deliver_live(event, &mut live).await.map(|()| false),
                    // Fell behind the broadcast: the next event's seq shows the gap, filled from the log.
                    Err(RecvError::Lagged(_)) => Ok(false),
                    Err(RecvError::Closed) => Err(Closed::Gone),
                },
                _ = beat.tick() => {
                    let message = json!({"type": "heartbeat", "cursor": self.position, "at": chrono::Utc::now()});
                    self.send(&message).await.map(|()| false)
                }
                changed = revocations.changed() => Ok(changed.is_ok()),
                _ = recheck.tick() => Ok(true),
                incoming = self.socket.recv() => match incoming {
                    Some(Ok(Message::Text(text))) => self.handle(text.as_str()).await.map(|()| false),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => Err(Closed::Gone),
                    // Pings are answered by the protocol layer.
                    Some(Ok(_)) => Ok(false),
                },
            };
            match step {
                Ok(true) => {
                    if !self
                        .engine
                        .still_valid(self.credentials.as_ref(), self.opened_at)
                        .await
                    {
                        break Closed::Unauthenticated;
                    }
                }
                Ok(false) => {}
                Err(closed) => break closed,
            }
        };
        if let Closed::Unauthenticated = outcome {
            let _ = self
                .socket
                .send(Message::Close(Some(CloseFrame {
                    code: CLOSE_UNAUTHENTICATED,
                    reason: Utf8Bytes::from_static("credentials revoked or expired"),
                })))
                .await;
        }
    }

    async fn send(&mut self, value: &Value) -> Result<(), Closed> {
        self.socket
            .send(Message::Text(Utf8Bytes::from(value.to_string())))
            .await
            .map_err(|_| Closed::Gone)
    }

    async fn error(&mut self, code: &str, message: String) -> Result<(), Closed> {
        self.send(&json!({"type": "error", "code": code, "message": message}))
            .await
    }

    async fn handle(&mut self, text: &str) -> Result<(), Closed> {
        match serde_json::from_str::<ClientMessage>(text) {
            Ok(ClientMessage::Subscribe { channels, since }) => self.subscribe(channels, since).await,
            Ok(ClientMessage::Unsubscribe { channels }) => {
                for channel in &channels {
                    // Pipelines are subscribed by id: a name is resolved the same way.
                    let resolved = self
                        .engine
                        .resolve_channel(&self.principal, channel)
                        .await
                        .unwrap_or_else(|_| channel.clone());
                    self.channels.remove(&resolved);
                    self.channels.remove(channel);
                }
                self.send(&json!({"type": "unsubscribed", "channels": channels}))
                    .await
            }
            Ok(ClientMessage::Ping) => {
                self.send(&json!({"type": "pong", "cursor": self.position}))
                    .await
            }
            Err(e) => {
                self.error(
                    "invalid_message",
                    format!(
                        "{e}; send {{\"op\": \"subscribe\", \"channels\": [...], \"since\": <seq>}}, {{\"op\": \"unsubscribe\", \"channels\": [...]}} or {{\"op\": \"ping\"}}"
                    ),
                )
                .await
            }
        }
    }
}

impl Connection {
    async fn subscribe(
        &mut self,
        requested: Vec<String>,
        since: Option<i64>,
    ) -> Result<(), Closed> {
        let mut added = Vec::new();
        for channel in requested {
            match self.engine.resolve_channel(&self.principal, &channel).await {
                Ok(resolved) => added.push(resolved),
                Err(refused) => return self.error(refused.code, refused.message).await,
            }
        }
        if self.channels.len() + added.len() > MAX_CHANNELS {
            return self
                .error(
                    "too_many_channels",
                    format!("a connection may subscribe to at most {MAX_CHANNELS} channels"),
                )
                .await;
        }
        let new: BTreeSet<String> = added
            .iter()
            .filter(|c| !self.channels.contains(*c))
            .cloned()
            .collect();
        self.send(&json!({"type": "subscribed", "channels": added, "cursor": self.position}))
            .await?;
        // Events up to the position were handled without these channels:
        // replay theirs from the log, then go on live with all channels.
        if let Some(since) = since.filter(|s| *s < self.position) {
            let mut after = since;
            while after < self.position {
                let page = match self
                    .engine
                    .events_after(&self.principal, after, REPLAY_PAGE)
                    .await
                {
                    Ok(page) => page,
                    Err(e) => return self.error(e.code(), e.public_message()).await,
                };
                let Some(last) = page.last() else { break };
                after = last.seq();
                let wanted: Vec<Arc<EventRecord>> = page
                    .into_iter()
                    .filter_map(|e| e.visible().cloned())
                    .filter(|e| e.seq <= self.position)
                    .filter(|e| channels_of(e).iter().any(|c| new.contains(c)))
                    .collect();
                self.send_batch(wanted, false).await?;
            }
        }
        self.channels.extend(new);
        Ok(())
    }

    /// Sends one live event, after filling any gap before it from the log
    /// and taking (and, when far behind, merging) whatever else is waiting.
    async fn deliver_live(&mut self, first: FeedEvent, live: &mut EventFeed) -> Result<(), Closed> {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match live.try_recv() {
                Ok(event) => batch.push(event),
                Err(TryRecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
        }
        let behind = batch.len() > MERGE_BEYOND;
        let mut pending: Vec<FeedEvent> = Vec::with_capacity(batch.len());
        for event in batch {
            let expected = pending.last().map_or(self.position, FeedEvent::seq) + 1;
            if event.seq() < expected {
                continue;
            }
            if event.seq() > expected {
                // A gap: this client lagged, or another process (a CLI
                // command) numbered events. Read it from the log, a page at
                // a time, so memory stays bounded however long the gap.
                self.flush(&mut pending, behind).await?;
                self.fill_gap(event.seq()).await?;
            }
            pending.push(event);
        }
        self.flush(&mut pending, behind).await
    }

    /// Sends the visible, subscribed events of `pending` and moves the position past them all.
    async fn flush(&mut self, pending: &mut Vec<FeedEvent>, merge: bool) -> Result<(), Closed> {
        let Some(last) = pending.last().map(FeedEvent::seq) else {
            return Ok(());
        };
        let wanted = pending
            .drain(..)
            .filter_map(|e| e.visible().cloned())
            .filter(|e| channels_of(e).iter().any(|c| self.channels.contains(c)))
            .collect();
        self.send_batch(wanted, merge).await?;
        self.position = self.position.max(last);
        Ok(())
    }

    /// Sends the stored events between the position and `until` (exclusive).
    async fn fill_gap(&mut self, until: i64) -> Result<(), Closed> {
        while self.position + 1 < until {
            let page = self
                .engine
                .events_after(&self.principal, self.position, REPLAY_PAGE)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "websocket: cannot read the event log");
                    Closed::Gone
                })?;
            let mut page: Vec<FeedEvent> = page.into_iter().filter(|e| e.seq() < until).collect();
            if page.is_empty() {
                // Nothing stored in between (pruned, or never stored).
                self.position = until - 1;
                break;
            }
            self.flush(&mut page, true).await?;
        }
        Ok(())
    }

    /// Sends events (the engine has kept back what the principal may not
    /// see); with `merge`, only a run's newest `pipeline_progress` of the
    /// batch is sent.
    async fn send_batch(
        &mut self,
        events: Vec<Arc<EventRecord>>,
        merge: bool,
    ) -> Result<(), Closed> {
        let mut newest_progress: std::collections::HashMap<&str, i64> = Default::default();
        for event in events.iter().filter(|_| merge) {
            if event.kind == kinds::PIPELINE_PROGRESS
                && let Some(run) = event.run_id.as_deref()
            {
                newest_progress.insert(run, event.seq);
            }
        }
        for event in &events {
            if merge
                && event.kind == kinds::PIPELINE_PROGRESS
                && let Some(run) = event.run_id.as_deref()
                && newest_progress.get(run) != Some(&event.seq)
            {
                continue;
            }
            // Serialized once, whichever connection sends it first.
            let text = event
                .wire
                .get_or_init(|| Arc::from(message_of(event).to_string()));
            // Queued, not flushed: the batch goes out in as few writes as it fits.
            self.socket
                .feed(Message::Text(Utf8Bytes::from(text.as_ref())))
                .await
                .map_err(|_| Closed::Gone)?;
        }
        self.socket.flush().await.map_err(|_| Closed::Gone)
    }
}

/// The JSON an event is sent as.
fn message_of(event: &EventRecord) -> Value {
    json!({
        "type": event.kind,
        "seq": event.seq,
        "at": event.at,
        "channels": channels_of(event),
        "data": event.data,
    })
}
