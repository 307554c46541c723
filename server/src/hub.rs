//! Local fan-out: which connection of this process wants which topic.
//!
//! The hub knows nothing of brokers or sockets. The broker calls
//! [`Hub::deliver`] for every event of a topic this process subscribed to;
//! the hub puts it in the bounded queue of every local subscriber. A queue
//! that is full marks its connection as a slow consumer (the session then
//! closes it) instead of blocking the publisher or growing without bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use app::protocol::{Event, ServerMessage};

use crate::metrics::Metrics;

/// One event on its way to local subscribers. Shared by all of them, so the
/// typed JSON is serialised once per event, not once per subscriber.
#[derive(Debug)]
pub struct Delivery {
    pub event: Event,
    json: OnceLock<Arc<str>>,
}

impl Delivery {
    pub fn new(event: Event) -> Self {
        Delivery {
            event,
            json: OnceLock::new(),
        }
    }

    /// The event as the typed endpoint sends it.
    pub fn json(&self) -> Arc<str> {
        self.json
            .get_or_init(|| ServerMessage::Event(self.event.clone()).to_json().into())
            .clone()
    }
}

/// A connection's membership card: how the hub reaches it.
#[derive(Clone, Debug)]
pub struct ConnHandle {
    pub id: u64,
    tx: mpsc::Sender<Arc<Delivery>>,
    /// Cancelled by the hub when the connection's queue overflows.
    pub slow: CancellationToken,
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
    metrics: Arc<Metrics>,
}

impl Hub {
    /// `queue` is each connection's outbound queue capacity, in events.
    pub fn new(queue: usize, metrics: Arc<Metrics>) -> Self {
        Hub {
            topics: Arc::new(Mutex::new(Topics::default())),
            next_id: Arc::new(AtomicU64::new(1)),
            queue: queue.max(1),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Topics> {
        self.topics.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new connection: its handle and the receiving end of its queue.
    pub fn register(&self) -> (ConnHandle, mpsc::Receiver<Arc<Delivery>>) {
        let (tx, rx) = mpsc::channel(self.queue);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        (
            ConnHandle {
                id,
                tx,
                slow: CancellationToken::new(),
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
        let delivery = Arc::new(Delivery::new(event));
        let t = self.lock();
        let Some(members) = t.members.get(&delivery.event.topic) else {
            return;
        };
        for conn in members.values() {
            match conn.tx.try_send(delivery.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    if !conn.slow.is_cancelled() {
                        self.metrics.slow_consumers.fetch_add(1, Ordering::Relaxed);
                        conn.slow.cancel();
                    }
                }
                // The session is ending; it removes itself shortly.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::protocol::Payload;

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
        let hub = Hub::new(8, Arc::new(Metrics::default()));
        let (a, mut ra) = hub.register();
        let (b, mut rb) = hub.register();
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
        let hub = Hub::new(8, Arc::new(Metrics::default()));
        let (a, _ra) = hub.register();
        let (b, _rb) = hub.register();
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
        let hub = Hub::new(2, metrics.clone());
        let (slow, _keep) = hub.register();
        let (fast, mut rf) = hub.register();
        hub.add(&slow, "t");
        hub.add(&fast, "t");
        for i in 0..3 {
            hub.deliver(event("t", i));
            // The fast one drains as it goes.
            assert!(rf.try_recv().is_ok());
        }
        assert!(slow.slow.is_cancelled());
        assert!(!fast.slow.is_cancelled());
        assert_eq!(metrics.slow_consumers.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn json_is_serialised_once_and_shared() {
        let d = Delivery::new(event("t", 3));
        let a = d.json();
        let b = d.json();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(a.contains("\"type\":\"event\""));
    }
}
