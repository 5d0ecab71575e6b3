//! Events: what happened to jobs, pipeline runs and datasets, for live
//! subscribers (the WebSocket) and for clients catching up after a
//! disconnect.
//!
//! Every event is numbered by the catalog and written there before it is
//! broadcast, by one writer task, so numbers increase in broadcast order
//! and a client that reconnects with the last number it saw can read the
//! rest from the catalog ([`Engine::events_after`]) and then follow the
//! broadcast without missing any. Subscribers that fall more than
//! [`CAPACITY`] events behind the broadcast are told so and catch up from
//! the catalog the same way.

use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::catalog::{CatalogStore, EventRecord};
use crate::identity::Principal;
use crate::{Engine, Result};

/// Events buffered per subscriber before it is told it lagged.
pub const CAPACITY: usize = 4096;

/// Most events written to the catalog in one transaction.
const BATCH: usize = 512;

/// The event types, as sent to clients.
pub mod kinds {
    /// A job was queued, started or ended.
    pub const JOB_STATUS: &str = "job_status";
    /// A run changed status (queued, running, retrying, canceling, canceled).
    pub const PIPELINE_STATUS: &str = "pipeline_status";
    /// A step of a run started, retried or ended.
    pub const PIPELINE_PROGRESS: &str = "pipeline_progress";
    /// A run succeeded.
    pub const PIPELINE_COMPLETED: &str = "pipeline_completed";
    /// A run failed.
    pub const PIPELINE_FAILED: &str = "pipeline_failed";
    /// A dataset got a new version.
    pub const DATASET_UPDATED: &str = "dataset_updated";
    /// Something an operator should look at.
    pub const SYSTEM_ALERT: &str = "system_alert";
    /// A profile job read more of its dataset (at most one a second per job).
    pub const PROFILE_PROGRESS: &str = "profile_progress";
}

/// An event before it has a number.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    /// One of [`kinds`].
    pub kind: &'static str,
    /// The pipeline it is about.
    pub pipeline_id: Option<String>,
    /// The run it is about.
    pub run_id: Option<String>,
    /// The dataset it is about.
    pub dataset: Option<String>,
    /// The job it is about.
    pub job_id: Option<String>,
    /// The body.
    pub data: Value,
}

/// Whether `principal` may see `event`: anyone who may read sees every
/// event, except that an API key limited to datasets sees only events about
/// those datasets and nothing about pipelines.
pub(crate) fn visible_to(event: &EventRecord, principal: &Principal) -> bool {
    let reads_everything = principal
        .authorize(
            crate::identity::Action::Read,
            crate::identity::Resource::Global,
        )
        .is_ok()
        && principal.dataset_limit().is_none();
    match (&event.pipeline_id, &event.dataset) {
        (None, Some(dataset)) => principal.can_see_dataset(dataset),
        _ => reads_everything,
    }
}

/// One event of a caller's feed.
#[derive(Debug, Clone)]
pub enum FeedEvent {
    /// An event the caller may see.
    Visible(Arc<EventRecord>),
    /// Only the number of an event the caller may not see: it moves the
    /// caller's position like any other.
    Hidden(i64),
}

impl FeedEvent {
    fn seen_by(event: Arc<EventRecord>, principal: &Principal) -> Self {
        if visible_to(&event, principal) {
            Self::Visible(event)
        } else {
            Self::Hidden(event.seq)
        }
    }

    /// The event's number.
    pub fn seq(&self) -> i64 {
        match self {
            Self::Visible(event) => event.seq,
            Self::Hidden(seq) => *seq,
        }
    }

    /// The event, if the caller may see it.
    pub fn visible(&self) -> Option<&Arc<EventRecord>> {
        match self {
            Self::Visible(event) => Some(event),
            Self::Hidden(_) => None,
        }
    }
}

/// A caller's live events, filtered by what it may see (see [`Engine::event_feed`]).
#[derive(Debug)]
pub struct EventFeed {
    principal: Principal,
    live: broadcast::Receiver<Arc<EventRecord>>,
    start: i64,
}

impl EventFeed {
    /// The number of the last event stored when the feed opened: the feed
    /// holds every event after it.
    pub fn start(&self) -> i64 {
        self.start
    }

    /// The next event; `Lagged` when the caller fell more than [`CAPACITY`] behind.
    pub async fn recv(&mut self) -> std::result::Result<FeedEvent, broadcast::error::RecvError> {
        let event = self.live.recv().await?;
        Ok(FeedEvent::seen_by(event, &self.principal))
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> std::result::Result<FeedEvent, broadcast::error::TryRecvError> {
        let event = self.live.try_recv()?;
        Ok(FeedEvent::seen_by(event, &self.principal))
    }
}

/// The channels an event belongs to: `pipeline:{id}`, `run:{id}`,
/// `dataset:{name}`, `jobs` (job events) and `system` (alerts).
pub fn channels_of(event: &EventRecord) -> Vec<String> {
    let mut channels = Vec::with_capacity(3);
    if let Some(id) = &event.pipeline_id {
        channels.push(format!("pipeline:{id}"));
    }
    if let Some(id) = &event.run_id {
        channels.push(format!("run:{id}"));
    }
    if let Some(name) = &event.dataset {
        channels.push(format!("dataset:{name}"));
    }
    if event.kind == kinds::JOB_STATUS {
        channels.push("jobs".into());
    }
    if event.kind == kinds::SYSTEM_ALERT {
        channels.push("system".into());
    }
    channels
}

enum Message {
    Event(NewEvent),
    Flush(oneshot::Sender<()>),
}

/// The engine's event fan-out: a queue into the writer task and the broadcast it feeds.
#[derive(Debug)]
pub(crate) struct EventBus {
    queue: mpsc::UnboundedSender<Message>,
    sender: broadcast::Sender<Arc<EventRecord>>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Event(e) => write!(f, "Event({})", e.kind),
            Self::Flush(_) => f.write_str("Flush"),
        }
    }
}

impl EventBus {
    /// Starts the writer task.
    pub(crate) fn start(catalog: Arc<dyn CatalogStore>) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        let sender = broadcast::channel(CAPACITY).0;
        tokio::spawn(write_events(catalog, receiver, sender.clone()));
        Self { queue, sender }
    }
}

/// Numbers, persists, then broadcasts events, in arrival order.
async fn write_events(
    catalog: Arc<dyn CatalogStore>,
    mut receiver: mpsc::UnboundedReceiver<Message>,
    sender: broadcast::Sender<Arc<EventRecord>>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut flushes = Vec::new();
    while let Some(first) = receiver.recv().await {
        let mut message = Some(first);
        while let Some(m) = message.take() {
            match m {
                Message::Event(e) => {
                    batch.push(EventRecord {
                        seq: 0,
                        kind: e.kind.to_owned(),
                        pipeline_id: e.pipeline_id,
                        run_id: e.run_id,
                        dataset: e.dataset,
                        job_id: e.job_id,
                        data: e.data,
                        at: Utc::now(),
                        wire: std::sync::OnceLock::new(),
                    });
                }
                Message::Flush(done) => flushes.push(done),
            }
            if batch.len() < BATCH {
                message = receiver.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            match catalog.append_events(&mut batch).await {
                Ok(()) => {
                    for event in batch.drain(..) {
                        // No subscribers is fine: nobody is watching.
                        let _ = sender.send(Arc::new(event));
                    }
                }
                Err(e) => {
                    // Unnumbered events cannot be sent: a client's cursor
                    // would not find them. The catalog failing is logged
                    // loudly elsewhere too.
                    tracing::error!(error = %e, events = batch.len(), "could not store events; they are dropped");
                    batch.clear();
                }
            }
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Why a subscription to a channel was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRefused {
    /// A stable code: `forbidden`, `invalid_channel`, or the lookup's own.
    pub code: &'static str,
    /// For people.
    pub message: String,
}

impl ChannelRefused {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl Engine {
    /// The channel as events name it (pipelines by id), if the caller may
    /// follow it; the refusal carries the code a WebSocket error shows.
    pub async fn resolve_channel(
        &self,
        principal: &Principal,
        channel: &str,
    ) -> std::result::Result<String, ChannelRefused> {
        let (kind, key) = channel.split_once(':').unwrap_or((channel, ""));
        let pipelines = || {
            self.authorize_pipelines(principal, crate::identity::Action::Read)
                .map_err(|e| ChannelRefused::new("forbidden", e.public_message()))
        };
        match (kind, key) {
            ("pipeline", key) if !key.is_empty() => {
                pipelines()?;
                let pipeline = self
                    .pipeline_record(key)
                    .await
                    .map_err(|e| ChannelRefused::new(e.code(), e.public_message()))?;
                Ok(format!("pipeline:{}", pipeline.id))
            }
            ("run", key) if !key.is_empty() => {
                pipelines()?;
                Ok(channel.to_owned())
            }
            ("dataset", key) if !key.is_empty() => {
                if principal.can_see_dataset(key) {
                    Ok(channel.to_owned())
                } else {
                    Err(ChannelRefused::new(
                        "forbidden",
                        format!("you may not read dataset `{key}`"),
                    ))
                }
            }
            // Jobs are filtered per event (a key limited to datasets sees its own).
            ("jobs", "") => {
                principal
                    .authorize(
                        crate::identity::Action::Read,
                        crate::identity::Resource::Global,
                    )
                    .map_err(|e| {
                        ChannelRefused::new("forbidden", crate::Error::from(e).public_message())
                    })?;
                Ok(channel.to_owned())
            }
            ("system", "") => {
                pipelines()?;
                Ok(channel.to_owned())
            }
            _ => Err(ChannelRefused::new(
                "invalid_channel",
                format!(
                    "unknown channel {channel:?}: use pipeline:<id or name>, run:<id>, dataset:<name>, jobs or system"
                ),
            )),
        }
    }

    /// Every event from now on, unfiltered, for the engine's own listeners
    /// (the scheduler's dataset triggers).
    pub(crate) fn subscribe_all(&self) -> broadcast::Receiver<Arc<EventRecord>> {
        self.inner.events.sender.subscribe()
    }

    /// `principal`'s feed of events from now on: what it may not see comes
    /// as [`FeedEvent::Hidden`], so numbers stay contiguous and a gap still
    /// means missed events.
    pub async fn event_feed(&self, principal: &Principal) -> Result<EventFeed> {
        // Subscribe before reading the position: nothing published after it is missed.
        let live = self.subscribe_all();
        let start = self.catalog().last_event_seq().await?;
        Ok(EventFeed {
            principal: principal.clone(),
            live,
            start,
        })
    }

    /// Stored events after `seq`, oldest first, at most `limit`, as
    /// `principal` may see them.
    pub async fn events_after(
        &self,
        principal: &Principal,
        seq: i64,
        limit: u32,
    ) -> Result<Vec<FeedEvent>> {
        let page = self.catalog().events_after(seq, limit).await?;
        Ok(page
            .into_iter()
            .map(|event| FeedEvent::seen_by(Arc::new(event), principal))
            .collect())
    }

    /// Queues an event; it is numbered, stored and broadcast in order.
    pub(crate) fn publish(&self, event: NewEvent) {
        // The writer lives as long as the engine: a send cannot fail before shutdown.
        let _ = self.inner.events.queue.send(Message::Event(event));
    }

    /// Waits until every event published so far is stored and broadcast.
    pub async fn flush_events(&self) {
        let (done, wait) = oneshot::channel();
        if self.inner.events.queue.send(Message::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }

    /// Tells subscribers a job changed.
    pub(crate) fn publish_job(&self, job: &crate::catalog::JobRecord) {
        self.publish(NewEvent {
            kind: kinds::JOB_STATUS,
            dataset: job.dataset().map(str::to_owned),
            job_id: Some(job.id.clone()),
            data: serde_json::json!({ "job": job }),
            ..NewEvent::default()
        });
    }

    /// Tells subscribers (and dataset triggers) a dataset has a new version.
    pub(crate) fn publish_dataset_updated(&self, name: &str, version: i64, cause: &str) {
        self.publish(NewEvent {
            kind: kinds::DATASET_UPDATED,
            dataset: Some(name.to_owned()),
            data: serde_json::json!({ "dataset": name, "version": version, "cause": cause }),
            ..NewEvent::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, pipeline: Option<&str>, dataset: Option<&str>) -> EventRecord {
        EventRecord {
            seq: 1,
            kind: kind.into(),
            pipeline_id: pipeline.map(Into::into),
            run_id: pipeline.map(|_| "r1".into()),
            dataset: dataset.map(Into::into),
            job_id: None,
            data: Value::Null,
            at: Utc::now(),
            wire: std::sync::OnceLock::new(),
        }
    }

    #[test]
    fn events_belong_to_the_channels_of_what_they_are_about() {
        let run = event(kinds::PIPELINE_PROGRESS, Some("p1"), None);
        assert_eq!(channels_of(&run), vec!["pipeline:p1", "run:r1"]);
        let job = event(kinds::JOB_STATUS, None, Some("sales"));
        assert_eq!(channels_of(&job), vec!["dataset:sales", "jobs"]);
        let alert = event(kinds::SYSTEM_ALERT, None, None);
        assert_eq!(channels_of(&alert), vec!["system"]);
    }
}
