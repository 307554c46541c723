//! The broker: where every event is published and where history lives.
//!
//! All publishing goes through a [`Broker`] and comes back to this process
//! through the [`Sink`] the broker was built with, even in the
//! single-process case. That one delivery path is why the in-memory and the
//! Redis implementation behave the same to the hub and the endpoints.
//!
//! Dispatch: `Arc<dyn Broker>` with boxed futures. Publishing costs one
//! allocation for the future, which is nothing beside serialising the event
//! and writing it to sockets, and it keeps the hub and every endpoint free of
//! a generic parameter.

pub mod memory;
pub mod redis;

use std::sync::Arc;

use futures::future::BoxFuture;

use app::protocol::{Event, Payload, StreamPosition};

/// Where a broker hands what it receives for this process. Neither method
/// may block: the hub's implementation only queues for each local
/// subscriber.
pub trait Sink: Send + Sync + 'static {
    /// An event of a topic this process subscribed to, in offset order per
    /// topic.
    fn event(&self, event: Event);

    /// Where a subscribed topic's stream stands, sent after the link to a
    /// networked back end was lost and restored (and periodically): events
    /// published meanwhile never arrived through [`event`](Self::event),
    /// so subscribers behind this position recover them from history, and
    /// subscribers in an older epoch are told to reload.
    fn head(&self, topic: &str, position: StreamPosition);

    /// An announcement from any instance, this one included.
    fn announcement(&self, _announcement: Announcement) {}
}

/// Something every instance must act on at once, sent through the broker
/// so that it reaches connections wherever they are.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Announcement {
    /// The account is gone: close its sockets (4003) on every instance.
    AccountDeleted { user_id: i64 },
    /// A session signed out: close its sockets (4004) everywhere.
    SessionEnded { session: String },
    /// The account's password changed: close the sockets of all its
    /// sessions but `except` (the one the change started) everywhere.
    SessionsEnded {
        user_id: i64,
        except: Option<String>,
    },
}

/// Closures take events and ignore heads (tests use them).
impl<F: Fn(Event) + Send + Sync + 'static> Sink for F {
    fn event(&self, event: Event) {
        self(event)
    }
    fn head(&self, _topic: &str, _position: StreamPosition) {}
}

/// The size of `value` as JSON, counted without building the text. History
/// and recoveries are bounded in these bytes: what a client would receive,
/// escapes included (a control character costs six).
pub fn json_bytes<T: serde::Serialize + ?Sized>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Serialising our own types to a writer that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// What an event's JSON adds to its payload, topic and epoch: the field
/// names, the offset and the timestamp (an upper bound).
pub const ENVELOPE_BYTES: usize = 96;

/// The sink a broker is built with.
pub type Deliver = Arc<dyn Sink>;

/// Why a broker operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The back end is unreachable or failed; the operation may succeed later.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// Creating one more topic would pass the topic limit; it may succeed
    /// once idle topics are forgotten.
    #[error("the server holds as many topics as it may ({0}); retry later")]
    TooManyTopics(usize),
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

    /// Marks `topic` as possibly missing an event: something was committed
    /// elsewhere (a task change in the store) but its publish failed. The
    /// topic starts a new epoch as soon as the back end can be reached, so
    /// every subscriber reloads instead of silently missing the change.
    fn invalidate(&self, topic: &str);

    /// Sends `announcement` to every instance's sink, this one's included.
    fn announce(&self, announcement: Announcement) -> BoxFuture<'_, Result<(), BrokerError>>;

    /// Whether the back end is currently reachable (for `/readyz`).
    fn healthy(&self) -> bool;

    /// Stops background work (a networked broker's link). Publishing fails
    /// from then on.
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}
