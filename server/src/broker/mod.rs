//! The broker: where every event is published and where history lives.
//!
//! All publishing goes through a [`Broker`] and comes back to this process
//! through the [`Deliver`] callback the broker was built with, even in the
//! single-process case. That one delivery path is why the in-memory and the
//! Redis implementation behave the same to the hub and the endpoints.
//!
//! Dispatch: `Arc<dyn Broker>` with boxed futures. Publishing costs one
//! allocation for the future, which is nothing beside serialising the event
//! and writing it to sockets, and it keeps the hub and every endpoint free of
//! a generic parameter.

pub mod memory;

use std::sync::Arc;

use futures::future::BoxFuture;

use app::protocol::{Event, Payload, StreamPosition};

/// Called by the broker for every event on a topic this process subscribed
/// to, in offset order per topic. It must not block: the hub's
/// implementation only queues the event for each local subscriber.
pub type Deliver = Arc<dyn Fn(Event) + Send + Sync>;

/// Why a broker operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The back end is unreachable or failed; the operation may succeed later.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}

/// What a broker can say about the events after a position.
#[derive(Clone, Debug, PartialEq)]
pub enum Recovery {
    /// Every event after the position, in order (possibly none).
    Complete(Vec<Event>),
    /// Some of the events after the position are no longer kept (too old,
    /// or the stream's epoch changed): the client must reload state.
    Gap,
}

/// What a topic's stream holds at a moment: its epoch, the offset of its
/// latest event, and the events still kept. The in-process broker hands
/// these over at a graceful shutdown and takes them back at the next start
/// (see `store::history`), so a restart does not cost clients their
/// resume.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicState {
    pub topic: String,
    pub epoch: String,
    pub offset: u64,
    /// Oldest first, contiguous, ending at `offset` (or empty).
    pub events: Vec<Event>,
}

/// Publish, subscribe, and recover history. See the module docs.
pub trait Broker: Send + Sync + 'static {
    /// Appends `payload` to `topic`'s stream and delivers it to every
    /// subscribed process. Returns the event with its offset.
    fn publish(&self, topic: &str, payload: Payload) -> BoxFuture<'_, Result<Event, BrokerError>>;

    /// Starts delivering `topic`'s events to this process. Idempotent.
    fn subscribe(&self, topic: &str) -> BoxFuture<'_, Result<(), BrokerError>>;

    /// Stops delivering `topic`'s events to this process.
    fn unsubscribe(&self, topic: &str) -> BoxFuture<'_, Result<(), BrokerError>>;

    /// The topic's current position: the offset of its latest event (0 when
    /// it has none) and its epoch.
    fn position(&self, topic: &str) -> BoxFuture<'_, Result<StreamPosition, BrokerError>>;

    /// The events after `since`, if they are all still kept.
    fn history(
        &self,
        topic: &str,
        since: &StreamPosition,
    ) -> BoxFuture<'_, Result<Recovery, BrokerError>>;

    /// Drops the topic's history and starts it over in a new epoch, so
    /// nothing published before can be recovered by anyone. Used when the
    /// owner of a personal topic is deleted: an account registered later
    /// under the same name must not read the old one's notifications.
    fn forget(&self, topic: &str) -> BoxFuture<'_, Result<(), BrokerError>>;

    /// Whether the back end is currently reachable (for `/readyz`).
    fn healthy(&self) -> bool;
}
