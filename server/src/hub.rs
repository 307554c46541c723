//! Local fan-out: which connection of this process wants which topic.
//!
//! The hub knows nothing of brokers or sockets. The broker calls
//! [`Hub::deliver`] for every event of a topic this process subscribed to;
//! the hub puts it in the bounded queue of every local subscriber. A queue
//! that is full, in events or in bytes, halts its connection as a slow
//! consumer (the session then closes it) instead of blocking the publisher
//! or growing without bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use app::protocol::{Event, ServerMessage, StreamPosition};

use crate::broker::Sink;

use crate::metrics::Metrics;

/// The ways an event is written to a socket: one per wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// The typed protocol's `event` message (`/ws/v1`).
    Typed = 0,
    /// The seed's notification texts (`/ws/notifications/{topic}`).
    Notification = 1,
    /// The seed's chat texts (`/ws/{client_id}`).
    Chat = 2,
    /// `{user}: {text}` (`/ws/secure/{topic}`).
    Secure = 3,
    /// A channel's plain messages, exactly as published (`/ws/redis/{channel}`).
    Message = 4,
}

const WIRES: usize = 5;

/// One event on its way to local subscribers, shared by all of them. Each
/// wire format is rendered once, by the first subscriber that needs it,
/// and every other subscriber writes the same bytes: an event costs one
/// serialisation per format, not one per subscriber.
#[derive(Debug)]
pub struct Delivery {
    pub event: Event,
    /// Not an event but where the topic's stream stands (see
    /// [`Sink::head`]): only `topic`, `offset` and `epoch` of `event` mean
    /// anything, and it is never written to a socket.
    pub head: bool,
    rendered: [OnceLock<Option<Bytes>>; WIRES],
    deflated: [OnceLock<Bytes>; WIRES],
}

impl Delivery {
    pub fn new(event: Event) -> Self {
        Delivery {
            event,
            head: false,
            rendered: Default::default(),
            deflated: Default::default(),
        }
    }

    /// A head marker for `topic` at `position`.
    pub fn head(topic: &str, position: StreamPosition) -> Self {
        Delivery {
            head: true,
            ..Delivery::new(Event {
                topic: topic.to_owned(),
                offset: position.offset,
                epoch: position.epoch,
                ts: chrono::Utc::now(),
                payload: app::protocol::Payload::Message {
                    text: String::new(),
                },
            })
        }
    }

    /// `plain`, the event in `wire` format, compressed with `compress` by
    /// the first subscriber that needs it and shared with the others.
    pub fn deflated(
        &self,
        wire: Wire,
        plain: &[u8],
        compress: impl FnOnce(&[u8]) -> Bytes,
    ) -> Bytes {
        self.deflated[wire as usize]
            .get_or_init(|| compress(plain))
            .clone()
    }

    /// The event in `wire` format, rendering it with `render` if no
    /// subscriber has yet; `None` when that format skips this event.
    pub fn rendered(
        &self,
        wire: Wire,
        render: impl FnOnce(&Event) -> Option<String>,
    ) -> Option<Bytes> {
        self.rendered[wire as usize]
            .get_or_init(|| render(&self.event).map(Bytes::from))
            .clone()
    }

    /// What the event weighs in a queue: the size of its JSON.
    pub fn weight(&self) -> usize {
        self.typed().len()
    }

    /// The event as the typed endpoint sends it.
    pub fn typed(&self) -> Bytes {
        self.rendered(Wire::Typed, |e| {
            Some(ServerMessage::Event(e.clone()).to_json())
        })
        .unwrap_or_default()
    }
}

/// Why a session was halted from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HaltReason {
    /// The server is shutting down (the parent token was cancelled).
    Shutdown,
    /// Its queue overflowed.
    SlowConsumer,
}

/// How the rest of the server ends one session: a cancellation token that
/// only this session waits on (a child of the server's shutdown token, so
/// shutdown reaches it too) and the reason it was cancelled.
///
/// Why not wait on the shared shutdown token directly: a tokio `Notify`
/// takes its mutex on every poll while waiting, and a session polls its
/// stop signal once per event it sends, so thousands of sessions waiting
/// on one token would all contend on one lock. A child token is polled by
/// its session alone.
#[derive(Clone, Debug)]
pub struct Halt {
    token: CancellationToken,
    why: Arc<AtomicU8>,
}

impl Halt {
    /// A halt signal that also fires when `parent` is cancelled.
    pub fn child_of(parent: &CancellationToken) -> Halt {
        Halt {
            token: parent.child_token(),
            why: Arc::default(),
        }
    }

    /// Halts the session; the first reason given wins.
    pub fn halt(&self, why: HaltReason) {
        let _ = self
            .why
            .compare_exchange(0, why as u8 + 1, Ordering::AcqRel, Ordering::Acquire);
        self.token.cancel();
    }

    pub fn is_halted(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Why it was halted (meaningful once it is).
    pub fn reason(&self) -> HaltReason {
        match self.why.load(Ordering::Acquire) {
            x if x == HaltReason::SlowConsumer as u8 + 1 => HaltReason::SlowConsumer,
            _ => HaltReason::Shutdown,
        }
    }

    /// Completes when the session is halted. Pin it once and poll it
    /// repeatedly: it registers its waiter once.
    pub fn halted(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.token.clone().cancelled_owned()
    }
}

/// A connection's membership card: how the hub reaches it.
#[derive(Clone, Debug)]
pub struct ConnHandle {
    pub id: u64,
    tx: mpsc::Sender<Arc<Delivery>>,
    /// Halted by the hub when the connection's queue overflows.
    pub halt: Halt,
    /// Bytes of the events waiting in the queue (each counted as its JSON
    /// size); the session gives them back as it takes them.
    pub queued: Arc<AtomicUsize>,
}

#[derive(Default)]
struct Topics {
    members: HashMap<String, HashMap<u64, ConnHandle>>,
}

/// Cheap-to-clone handle on the local subscription table.
#[derive(Clone)]
pub struct Hub {
    // A std Mutex, never held across an `.await`: every method is
    // synchronous, and `deliver` must be callable from inside a broker.
    topics: Arc<Mutex<Topics>>,
    next_id: Arc<AtomicU64>,
    queue: usize,
    queue_bytes: usize,
    metrics: Arc<Metrics>,
}

impl Hub {
    /// `queue` and `queue_bytes` bound each connection's outbound queue,
    /// in events and in bytes.
    pub fn new(queue: usize, queue_bytes: usize, metrics: Arc<Metrics>) -> Self {
        Hub {
            topics: Arc::new(Mutex::new(Topics::default())),
            next_id: Arc::new(AtomicU64::new(1)),
            queue: queue.max(1),
            queue_bytes: queue_bytes.max(1),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Topics> {
        self.topics.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new connection, halted through `halt`: its handle and the
    /// receiving end of its queue.
    pub fn register(&self, halt: Halt) -> (ConnHandle, mpsc::Receiver<Arc<Delivery>>) {
        let (tx, rx) = mpsc::channel(self.queue);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        (
            ConnHandle {
                id,
                tx,
                halt,
                queued: Arc::default(),
            },
            rx,
        )
    }

    /// Adds `conn` to `topic`. Returns true if it is the topic's first local
    /// subscriber (the broker must then be subscribed).
    pub fn add(&self, conn: &ConnHandle, topic: &str) -> bool {
        let mut t = self.lock();
        let members = t.members.entry(topic.to_owned()).or_default();
        let first = members.is_empty();
        members.insert(conn.id, conn.clone());
        first
    }

    /// Removes `conn` from `topic`. Returns true if the topic has no local
    /// subscriber left.
    pub fn remove(&self, conn_id: u64, topic: &str) -> bool {
        let mut t = self.lock();
        let Some(members) = t.members.get_mut(topic) else {
            return false;
        };
        members.remove(&conn_id);
        if members.is_empty() {
            t.members.remove(topic);
            true
        } else {
            false
        }
    }

    /// Whether any local connection wants `topic`.
    pub fn has_members(&self, topic: &str) -> bool {
        self.lock()
            .members
            .get(topic)
            .is_some_and(|m| !m.is_empty())
    }

    /// (topics with local subscribers, subscriptions in all).
    pub fn counts(&self) -> (usize, usize) {
        let t = self.lock();
        (t.members.len(), t.members.values().map(HashMap::len).sum())
    }

    /// Queues `event` for every local subscriber of its topic. Never blocks.
    pub fn deliver(&self, event: Event) {
        self.enqueue(Arc::new(Delivery::new(event)));
    }

    /// Puts `delivery` in the queue of every local subscriber of its topic.
    fn enqueue(&self, delivery: Arc<Delivery>) {
        let t = self.lock();
        let Some(members) = t.members.get(&delivery.event.topic) else {
            return;
        };
        let weight = delivery.weight();
        for conn in members.values() {
            let queued = conn.queued.fetch_add(weight, Ordering::Relaxed) + weight;
            let sent = if queued > self.queue_bytes {
                Err(true)
            } else {
                match conn.tx.try_send(delivery.clone()) {
                    Ok(()) => Ok(()),
                    Err(mpsc::error::TrySendError::Full(_)) => Err(true),
                    // The session is ending; it removes itself shortly.
                    Err(mpsc::error::TrySendError::Closed(_)) => Err(false),
                }
            };
            if let Err(overflow) = sent {
                conn.queued.fetch_sub(weight, Ordering::Relaxed);
                if overflow && !conn.halt.is_halted() {
                    self.metrics.slow_consumers.fetch_add(1, Ordering::Relaxed);
                    conn.halt.halt(HaltReason::SlowConsumer);
                }
            }
        }
    }
}

/// The broker hands events and heads to the hub.
impl Sink for Hub {
    fn event(&self, event: Event) {
        self.deliver(event);
    }

    fn head(&self, topic: &str, position: StreamPosition) {
        self.enqueue(Arc::new(Delivery::head(topic, position)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::protocol::Payload;

    fn halt() -> Halt {
        Halt::child_of(&CancellationToken::new())
    }

    fn event(topic: &str, offset: u64) -> Event {
        Event {
            topic: topic.into(),
            offset,
            epoch: "e".into(),
            ts: chrono::Utc::now(),
            payload: Payload::Chat {
                from: "a".into(),
                text: "b".into(),
            },
        }
    }

    #[test]
    fn fan_out_reaches_every_member_of_the_topic_only() {
        let hub = Hub::new(8, 1 << 20, Arc::new(Metrics::default()));
        let (a, mut ra) = hub.register(halt());
        let (b, mut rb) = hub.register(halt());
        assert!(hub.add(&a, "t"));
        assert!(!hub.add(&b, "t"));
        assert!(hub.add(&b, "other"));
        hub.deliver(event("t", 1));
        hub.deliver(event("other", 1));
        assert_eq!(ra.try_recv().unwrap().event.topic, "t");
        assert!(ra.try_recv().is_err());
        assert_eq!(rb.try_recv().unwrap().event.topic, "t");
        assert_eq!(rb.try_recv().unwrap().event.topic, "other");
        assert_eq!(hub.counts(), (2, 3));
    }

    #[test]
    fn the_last_member_leaving_empties_the_topic() {
        let hub = Hub::new(8, 1 << 20, Arc::new(Metrics::default()));
        let (a, _ra) = hub.register(halt());
        let (b, _rb) = hub.register(halt());
        hub.add(&a, "t");
        hub.add(&b, "t");
        assert!(!hub.remove(a.id, "t"));
        assert!(hub.has_members("t"));
        assert!(hub.remove(b.id, "t"));
        assert!(!hub.has_members("t"));
        assert!(!hub.remove(b.id, "never"));
    }

    #[test]
    fn a_full_queue_marks_only_that_connection_slow() {
        let metrics = Arc::new(Metrics::default());
        let hub = Hub::new(2, 1 << 20, metrics.clone());
        let (slow, _keep) = hub.register(halt());
        let (fast, mut rf) = hub.register(halt());
        hub.add(&slow, "t");
        hub.add(&fast, "t");
        for i in 0..3 {
            hub.deliver(event("t", i));
            // The fast one drains as it goes.
            assert!(rf.try_recv().is_ok());
        }
        assert!(slow.halt.is_halted());
        assert_eq!(slow.halt.reason(), HaltReason::SlowConsumer);
        assert!(!fast.halt.is_halted());
        assert_eq!(metrics.slow_consumers.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_queue_over_its_bytes_halts_only_that_connection() {
        let metrics = Arc::new(Metrics::default());
        let weight = Delivery::new(event("t", 0)).weight();
        // Room for two events by bytes, though a hundred by count.
        let hub = Hub::new(100, 2 * weight, metrics.clone());
        let (slow, _keep) = hub.register(halt());
        let (fast, mut rf) = hub.register(halt());
        hub.add(&slow, "t");
        hub.add(&fast, "t");
        for i in 0..3 {
            hub.deliver(event("t", i));
            assert!(rf.try_recv().is_ok());
            // The session gives the bytes back as it takes the event.
            fast.queued.fetch_sub(weight, Ordering::Relaxed);
        }
        assert_eq!(slow.halt.reason(), HaltReason::SlowConsumer);
        assert!(slow.halt.is_halted());
        assert!(!fast.halt.is_halted());
        assert_eq!(
            slow.queued.load(Ordering::Relaxed),
            2 * weight,
            "the refused one is not counted"
        );
        assert_eq!(metrics.slow_consumers.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn each_wire_format_is_rendered_once_and_shared() {
        let d = Delivery::new(event("t", 3));
        let a = d.typed();
        let b = d.typed();
        assert_eq!(a.as_ptr(), b.as_ptr(), "the same bytes, not a copy");
        assert!(a.starts_with(b"{\"type\":\"event\""));
        let mut renders = 0;
        for _ in 0..3 {
            let text = d.rendered(Wire::Chat, |_| {
                renders += 1;
                Some("hello".into())
            });
            assert_eq!(text.as_deref(), Some(&b"hello"[..]));
        }
        assert_eq!(renders, 1);
        assert_eq!(d.rendered(Wire::Secure, |_| None), None);
    }

    #[test]
    fn shutdown_reaches_every_halt_and_a_slow_halt_says_so() {
        let shutdown = CancellationToken::new();
        let a = Halt::child_of(&shutdown);
        let b = Halt::child_of(&shutdown);
        b.halt(HaltReason::SlowConsumer);
        assert!(!a.is_halted());
        shutdown.cancel();
        assert!(a.is_halted());
        assert_eq!(a.reason(), HaltReason::Shutdown);
        assert_eq!(
            b.reason(),
            HaltReason::SlowConsumer,
            "the first reason wins"
        );
    }
}
