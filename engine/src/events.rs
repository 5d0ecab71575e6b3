//! Live events for subscribers (the WebSocket): job state changes today,
//! pipeline runs later. Delivery is best effort: a subscriber that falls more
//! than [`CAPACITY`] events behind is told how many it missed.

use serde::Serialize;
use tokio::sync::broadcast;

use crate::Engine;
use crate::catalog::JobRecord;

/// Events buffered per subscriber.
pub const CAPACITY: usize = 1024;

/// Something that happened.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A job was queued, started or ended.
    Job {
        /// The job as it is now.
        job: Box<JobRecord>,
    },
}

impl Event {
    /// Whether `principal` may see this event (an API key limited to
    /// datasets sees only events about those).
    pub fn visible_to(&self, principal: &crate::auth::Principal) -> bool {
        match self {
            Self::Job { job } => job.visible_to(principal),
        }
    }
}

/// The engine's event fan-out.
#[derive(Debug)]
pub(crate) struct EventBus {
    sender: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(CAPACITY).0,
        }
    }
}

impl Engine {
    /// Subscribes to events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.sender.subscribe()
    }

    pub(crate) fn publish(&self, event: Event) {
        // No subscribers is fine: nobody is watching.
        let _ = self.inner.events.sender.send(event);
    }
}
