//! The in-process broker, used when no Redis is configured.
//!
//! Each topic keeps its latest events in a ring bounded by count and age.
//! A topic's epoch is created with the topic: a restart loses the history,
//! and the new epoch tells resuming clients so instead of silently reusing
//! offsets.
//!
//! A topic is forgotten once nobody here is subscribed, its history has
//! expired, and it has been idle for the history's age, so clients cycling
//! through topic names cannot grow the map without bound, while a client
//! that left a quiet topic a moment ago still resumes it exactly. A topic
//! that comes back starts a new epoch, which resuming clients see as
//! `recovered: false`, never as silently reused offsets.
//!
//! A graceful shutdown closes the broker and takes every topic's state
//! ([`MemoryBroker::close`]); the server keeps it in the database, and the
//! next start puts it back ([`MemoryBroker::restore`]) with the same epochs
//! and offsets, so clients resume across a restart. After a crash nothing
//! is restored (the saved state is consumed by the start that restores
//! it), so topics start new epochs and resuming clients are told
//! `recovered: false` rather than handed reused offsets.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::{self, BoxFuture};

use app::protocol::{Event, Payload, StreamPosition};

use super::{Announcement, Broker, BrokerError, Deliver, Recovery, TopicState};

/// Distinguishes brokers created in the same process (tests make several).
static INSTANCES: AtomicU64 = AtomicU64::new(0);

/// Limits on what each topic remembers.
#[derive(Clone, Copy, Debug)]
pub struct HistoryLimits {
    pub max_events: usize,
    pub max_age: Duration,
    /// Bytes of events (their JSON size) one topic keeps.
    pub max_bytes: usize,
    /// Bytes of events all topics together keep (in this process; with
    /// Redis, its own memory policy governs the total).
    pub max_total_bytes: usize,
    /// Topics this process keeps at once; creating one more is refused
    /// (in this process; with Redis, its own memory policy governs).
    pub max_topics: usize,
}

impl HistoryLimits {
    /// Bounded by count and age, with the default byte bounds.
    pub fn new(max_events: usize, max_age: Duration) -> Self {
        HistoryLimits {
            max_events,
            max_age,
            max_bytes: 4 << 20,
            max_total_bytes: 256 << 20,
            max_topics: 100_000,
        }
    }
}

struct Topic {
    epoch: String,
    offset: u64,
    /// Last publish, subscribe, unsubscribe or position read.
    touched: Instant,
    /// (publish time, JSON size, event), oldest first.
    events: VecDeque<(Instant, usize, Event)>,
    /// Which incarnation of the name this is, so the sweep queue can tell
    /// its own entry from one left by a topic of the same name that was
    /// dropped since.
    generation: u64,
    /// The sum of the kept events' sizes.
    bytes: usize,
}

impl Topic {
    /// Drops what is over the count, byte or age bound.
    fn prune(&mut self, limits: HistoryLimits, now: Instant) {
        while let Some((at, size, _)) = self.events.front() {
            let over = self.events.len() > limits.max_events
                || self.bytes > limits.max_bytes
                || now.duration_since(*at) > limits.max_age;
            if !over {
                break;
            }
            self.bytes -= size;
            self.events.pop_front();
        }
    }

    /// Drops the oldest event, if any.
    fn pop_oldest(&mut self) {
        if let Some((_, size, _)) = self.events.pop_front() {
            self.bytes -= size;
        }
    }

    fn push(&mut self, at: Instant, size: usize, event: Event) {
        self.bytes += size;
        self.events.push_back((at, size, event));
    }

    fn position(&self) -> StreamPosition {
        StreamPosition {
            offset: self.offset,
            epoch: self.epoch.clone(),
        }
    }
}

struct State {
    topics: HashMap<String, Topic>,
    /// The sum of every topic's `bytes`.
    bytes: usize,
    subscribed: HashSet<String>,
    /// Every topic's name (with its generation), in the order the sweep
    /// visits them: a few are looked at per operation, so forgetting idle
    /// topics never costs one operation a walk over the whole table.
    sweep: VecDeque<(String, u64)>,
    generations: u64,
    /// Set by [`MemoryBroker::close`]: publishing fails from then on, so
    /// no event can follow the state handed over.
    closed: bool,
}

/// Topics the sweep looks at per operation (publish, subscribe, position
/// read): a full cycle over 100,000 topics takes 25,000 operations, and no
/// operation waits on more than these few.
const SWEEP_STEP: usize = 4;

/// Topics looked at, at most, before refusing to create one more in a full
/// table: idle ones may be waiting for the sweep.
const SWEEP_WHEN_FULL: usize = 256;

/// Why a topic could not be created.
fn too_many_topics(max: usize) -> BrokerError {
    BrokerError::TooManyTopics(max)
}

impl State {
    /// Runs `f` on the topic `name` and carries the change in its bytes
    /// over to the total: the one place the total changes for an existing
    /// topic, so it cannot drift from the sum of the topics.
    fn update<R>(&mut self, name: &str, f: impl FnOnce(&mut Topic) -> R) -> Option<R> {
        let topic = self.topics.get_mut(name)?;
        let before = topic.bytes;
        let result = f(topic);
        self.bytes = self.bytes - before + topic.bytes;
        Some(result)
    }

    /// Looks at the next `n` topics in the sweep's order; drops each that
    /// nobody here subscribes to, whose history has expired, and that
    /// nobody has touched for the history's age.
    fn sweep_step(&mut self, limits: HistoryLimits, now: Instant, n: usize) {
        for _ in 0..n.min(self.sweep.len()) {
            let Some((name, generation)) = self.sweep.pop_front() else {
                break;
            };
            let subscribed = self.subscribed.contains(&name);
            let keep = self.update(&name, |topic| {
                if topic.generation != generation {
                    return None;
                }
                topic.prune(limits, now);
                Some(
                    subscribed
                        || !topic.events.is_empty()
                        || now.saturating_duration_since(topic.touched) <= limits.max_age,
                )
            });
            let Some(Some(keep)) = keep else {
                continue;
            };
            if keep {
                self.sweep.push_back((name, generation));
            } else {
                self.remove(&name);
            }
        }
    }

    /// One whole cycle of the sweep.
    #[cfg(test)]
    fn sweep(&mut self, limits: HistoryLimits, now: Instant) {
        let n = self.sweep.len();
        self.sweep_step(limits, now, n);
    }

    /// Counts an operation: the sweep moves a few topics on.
    fn tick(&mut self, limits: HistoryLimits, now: Instant) {
        self.sweep_step(limits, now, SWEEP_STEP);
    }

    /// Adds `topic` under `name`, unless the table is full of topics that
    /// are still in use.
    fn create(
        &mut self,
        name: &str,
        mut topic: Topic,
        limits: HistoryLimits,
        now: Instant,
    ) -> Result<&mut Topic, BrokerError> {
        if self.topics.len() >= limits.max_topics {
            self.sweep_step(limits, now, SWEEP_WHEN_FULL);
            if self.topics.len() >= limits.max_topics {
                return Err(too_many_topics(limits.max_topics));
            }
        }
        self.generations += 1;
        topic.generation = self.generations;
        self.sweep.push_back((name.to_owned(), topic.generation));
        self.remove(name);
        self.bytes += topic.bytes;
        Ok(self.topics.entry(name.to_owned()).or_insert(topic))
    }

    /// Removes the topic and its bytes.
    fn remove(&mut self, topic: &str) {
        if let Some(t) = self.topics.remove(topic) {
            self.bytes -= t.bytes;
        }
    }

    /// When every topic's history together is over its bound, drops the
    /// oldest events of all topics until it is under nine tenths of it, so
    /// the walk over topics runs once per tenth of the bound published,
    /// not on every publish. Resumers from before the dropped events are
    /// told `recovered: false`.
    fn shed(&mut self, limits: HistoryLimits) {
        if self.bytes <= limits.max_total_bytes {
            return;
        }
        let target = limits.max_total_bytes / 10 * 9;
        // Oldest first: a min-heap of each topic's oldest event.
        let mut heap: BinaryHeap<Reverse<(Instant, String)>> = self
            .topics
            .iter()
            .filter_map(|(name, t)| {
                let (at, _, _) = t.events.front()?;
                Some(Reverse((*at, name.clone())))
            })
            .collect();
        while self.bytes > target {
            let Some(Reverse((_, name))) = heap.pop() else {
                break;
            };
            let next = self.update(&name, |topic| {
                topic.pop_oldest();
                topic.events.front().map(|(at, _, _)| *at)
            });
            if let Some(Some(at)) = next {
                heap.push(Reverse((at, name)));
            }
        }
    }
}

/// The in-memory broker. Cheap to clone.
#[derive(Clone)]
pub struct MemoryBroker {
    // A std Mutex: it is never held across an `.await` (no method here
    // awaits while holding it), and it is uncontended enough that an async
    // mutex would only add cost.
    state: Arc<Mutex<State>>,
    deliver: Deliver,
    limits: HistoryLimits,
    node: String,
    epochs: Arc<AtomicU64>,
}

impl MemoryBroker {
    pub fn new(limits: HistoryLimits, deliver: Deliver) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        MemoryBroker {
            state: Arc::new(Mutex::new(State {
                topics: HashMap::new(),
                bytes: 0,
                subscribed: HashSet::new(),
                sweep: VecDeque::new(),
                generations: 0,
                closed: false,
            })),
            deliver,
            limits,
            node: format!(
                "{:x}{:x}",
                nanos ^ u128::from(std::process::id()),
                INSTANCES.fetch_add(1, Ordering::Relaxed)
            ),
            epochs: Arc::new(AtomicU64::new(0)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way that matters more than losing the server, so recover.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes the broker for publishing and returns every topic's state,
    /// atomically: an event is either in the state or was never published.
    /// Topics that never had an event are left out (nothing to resume).
    pub fn close(&self) -> Vec<TopicState> {
        let mut state = self.lock();
        state.closed = true;
        let now = Instant::now();
        let limits = self.limits;
        let mut topics: Vec<TopicState> = state
            .topics
            .iter_mut()
            .filter(|(_, t)| t.offset > 0)
            .map(|(name, t)| {
                // The total is not carried over: the broker is closed and
                // its state is being handed over, not kept.
                t.prune(limits, now);
                TopicState {
                    topic: name.clone(),
                    epoch: t.epoch.clone(),
                    offset: t.offset,
                    events: t.events.iter().map(|(_, _, e)| e.clone()).collect(),
                }
            })
            .collect();
        topics.sort_by(|a, b| a.topic.cmp(&b.topic));
        topics
    }

    /// Puts back topics saved by [`close`](Self::close) in an earlier run,
    /// before anything is published. Each event keeps its age (from its
    /// timestamp), so history expires when it would have; a state whose
    /// events do not run contiguously up to its offset keeps its epoch and
    /// offset but none of them, so it can only answer "gap" for the
    /// positions it cannot serve.
    pub fn restore(&self, saved: Vec<TopicState>) {
        let mut state = self.lock();
        let now = Instant::now();
        let wall = Utc::now();
        for t in saved {
            let contiguous = t
                .events
                .iter()
                .rev()
                .enumerate()
                .all(|(i, e)| e.offset + i as u64 == t.offset && e.epoch == t.epoch);
            let events = if contiguous { t.events } else { Vec::new() };
            let mut topic = Topic {
                epoch: t.epoch,
                offset: t.offset,
                touched: now,
                events: VecDeque::new(),
                bytes: 0,
                generation: 0,
            };
            for e in events {
                let age = (wall - e.ts).to_std().unwrap_or_default();
                let size = super::json_bytes(&e);
                topic.push(now.checked_sub(age).unwrap_or(now), size, e);
            }
            topic.prune(self.limits, now);
            state.remove(&t.topic);
            if let Err(e) = state.create(&t.topic, topic, self.limits, now) {
                tracing::warn!(topic = %t.topic, error = %e, "a saved topic was not restored")
            }
        }
        state.shed(self.limits);
    }

    fn new_topic(&self) -> Topic {
        let n = self.epochs.fetch_add(1, Ordering::Relaxed);
        Topic {
            epoch: format!("{}-{n}", self.node),
            offset: 0,
            touched: Instant::now(),
            events: VecDeque::new(),
            bytes: 0,
            generation: 0,
        }
    }
}

impl Broker for MemoryBroker {
    fn publish(&self, topic: &str, payload: Payload) -> BoxFuture<'_, Result<Event, BrokerError>> {
        let now = Instant::now();
        // Counted before the lock is taken; the envelope (topic, epoch,
        // offset, time) is added to it below.
        let payload_bytes = super::json_bytes(&payload);
        let event = {
            let mut state = self.lock();
            if state.closed {
                return Box::pin(future::ready(Err(BrokerError::Unavailable(
                    "the server is shutting down".into(),
                ))));
            }
            let deliver = state.subscribed.contains(topic);
            let limits = self.limits;
            if !state.topics.contains_key(topic) {
                let fresh = self.new_topic();
                if let Err(e) = state.create(topic, fresh, limits, now) {
                    return Box::pin(future::ready(Err(e)));
                }
            }
            let appended = state.update(topic, |entry| {
                entry.offset += 1;
                entry.touched = now;
                let event = Event {
                    topic: topic.to_owned(),
                    offset: entry.offset,
                    epoch: entry.epoch.clone(),
                    ts: Utc::now(),
                    payload,
                };
                let size = payload_bytes + topic.len() + event.epoch.len() + super::ENVELOPE_BYTES;
                entry.push(now, size, event.clone());
                entry.prune(limits, now);
                event
            });
            let Some(event) = appended else {
                unreachable!("the topic was just found or created");
            };
            state.shed(limits);
            // Delivered while the lock is held, so events of one topic reach
            // the hub in offset order even when published concurrently. The
            // callback only enqueues.
            if deliver {
                self.deliver.event(event.clone());
            }
            state.tick(limits, now);
            event
        };
        Box::pin(future::ready(Ok(event)))
    }

    fn subscribe(&self, topic: &str) -> BoxFuture<'_, Result<(), BrokerError>> {
        let mut state = self.lock();
        state.subscribed.insert(topic.to_owned());
        state.tick(self.limits, Instant::now());
        Box::pin(future::ready(Ok(())))
    }

    fn unsubscribe(&self, topic: &str) -> BoxFuture<'_, Result<(), BrokerError>> {
        let mut state = self.lock();
        state.subscribed.remove(topic);
        // The idle clock starts now: whoever just left may resume.
        if let Some(t) = state.topics.get_mut(topic) {
            t.touched = Instant::now();
        }
        Box::pin(future::ready(Ok(())))
    }

    fn forget(&self, topic: &str) -> BoxFuture<'_, Result<(), BrokerError>> {
        // The next publish or position creates the topic afresh, with a new
        // epoch: old positions then resolve to a gap, never to old events.
        self.lock().remove(topic);
        Box::pin(future::ready(Ok(())))
    }

    fn position(&self, topic: &str) -> BoxFuture<'_, Result<StreamPosition, BrokerError>> {
        let mut state = self.lock();
        let now = Instant::now();
        let pos = match state.topics.get_mut(topic) {
            Some(t) => {
                t.touched = now;
                t.position()
            }
            None => {
                let fresh = self.new_topic();
                match state.create(topic, fresh, self.limits, now) {
                    Ok(t) => t.position(),
                    Err(e) => return Box::pin(future::ready(Err(e))),
                }
            }
        };
        state.tick(self.limits, now);
        Box::pin(future::ready(Ok(pos)))
    }

    fn history(
        &self,
        topic: &str,
        since: &StreamPosition,
    ) -> BoxFuture<'_, Result<Recovery, BrokerError>> {
        let mut state = self.lock();
        let limits = self.limits;
        let recovery = state
            .update(topic, |t| {
                t.prune(limits, Instant::now());
                recover(t, since)
            })
            .unwrap_or(Recovery::Gap);
        Box::pin(future::ready(Ok(recovery)))
    }

    fn invalidate(&self, topic: &str) {
        // Publishing here fails only once closed at shutdown; a new epoch
        // is still the honest answer for whoever resumes.
        self.lock().remove(topic);
    }

    fn announce(&self, announcement: Announcement) -> BoxFuture<'_, Result<(), BrokerError>> {
        self.deliver.announcement(announcement);
        Box::pin(future::ready(Ok(())))
    }

    fn healthy(&self) -> bool {
        true
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(future::ready(()))
    }
}

fn recover(topic: &Topic, since: &StreamPosition) -> Recovery {
    if since.epoch != topic.epoch || since.offset > topic.offset {
        return Recovery::Gap;
    }
    if since.offset == topic.offset {
        return Recovery::Complete(Vec::new());
    }
    let oldest = topic
        .events
        .front()
        .map_or(topic.offset + 1, |(_, _, e)| e.offset);
    if since.offset + 1 < oldest {
        return Recovery::Gap;
    }
    Recovery::Complete(
        topic
            .events
            .iter()
            .filter(|(_, _, e)| e.offset > since.offset)
            .map(|(_, _, e)| e.clone())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(n: u32) -> Payload {
        Payload::Chat {
            from: "t".into(),
            text: n.to_string(),
        }
    }

    fn broker(max_events: usize) -> (MemoryBroker, Arc<Mutex<Vec<Event>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let b = MemoryBroker::new(
            HistoryLimits::new(max_events, Duration::from_secs(60)),
            Arc::new(move |e| sink.lock().unwrap().push(e)),
        );
        (b, seen)
    }

    fn big(n: u32) -> Payload {
        Payload::Chat {
            from: "t".into(),
            text: format!("{n}{}", "x".repeat(999)),
        }
    }

    fn kept(b: &MemoryBroker, topic: &str) -> Vec<u64> {
        b.lock().topics[topic]
            .events
            .iter()
            .map(|(_, _, e)| e.offset)
            .collect()
    }

    #[tokio::test]
    async fn history_is_bounded_in_bytes_per_topic_and_in_total() {
        let limits = HistoryLimits {
            max_bytes: 5_000,
            max_total_bytes: 8_000,
            ..HistoryLimits::new(100, Duration::from_secs(60))
        };
        let b = MemoryBroker::new(limits, Arc::new(|_| {}));
        // About 1,100 bytes each: a topic keeps four.
        for n in 0..10 {
            b.publish("a", big(n)).await.unwrap();
        }
        assert_eq!(kept(&b, "a"), vec![7, 8, 9, 10]);
        let start = StreamPosition {
            offset: 2,
            epoch: b.position("a").await.unwrap().epoch,
        };
        assert_eq!(b.history("a", &start).await.unwrap(), Recovery::Gap);
        // A second topic pushes the total over 8,000: the oldest events of
        // any topic go until it is under 7,200.
        for n in 0..4 {
            b.publish("b", big(n)).await.unwrap();
        }
        let total = b.lock().bytes;
        assert!(total <= 7_200, "{total}");
        assert_eq!(kept(&b, "b"), vec![1, 2, 3, 4]);
        assert_eq!(kept(&b, "a").len(), 2);
        assert_eq!(kept(&b, "a"), vec![9, 10]);
        // The accounting matches what is kept, and forgetting gives it back.
        let sum: usize = b.lock().topics.values().map(|t| t.bytes).sum();
        assert_eq!(sum, total);
        b.forget("b").await.unwrap();
        let state = b.lock();
        assert_eq!(state.bytes, state.topics["a"].bytes);
    }

    #[tokio::test]
    async fn offsets_grow_per_topic_and_only_subscribed_topics_are_delivered() {
        let (b, seen) = broker(10);
        b.subscribe("a").await.unwrap();
        assert_eq!(b.publish("a", chat(1)).await.unwrap().offset, 1);
        assert_eq!(b.publish("a", chat(2)).await.unwrap().offset, 2);
        assert_eq!(b.publish("b", chat(3)).await.unwrap().offset, 1);
        let seen: Vec<_> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|e| (e.topic.clone(), e.offset))
            .collect();
        assert_eq!(seen, vec![("a".to_owned(), 1), ("a".to_owned(), 2)]);
        b.unsubscribe("a").await.unwrap();
        b.publish("a", chat(4)).await.unwrap();
        assert_eq!(b.position("a").await.unwrap().offset, 3);
    }

    #[tokio::test]
    async fn a_closed_broker_hands_over_its_state_and_a_new_one_resumes_it() {
        let (b, _) = broker(3);
        for i in 0..5 {
            b.publish("t", chat(i)).await.unwrap();
        }
        b.position("quiet").await.unwrap();
        let epoch = b.position("t").await.unwrap().epoch;
        let saved = b.close();
        assert!(
            matches!(
                b.publish("t", chat(9)).await,
                Err(BrokerError::Unavailable(_))
            ),
            "nothing may follow the state handed over"
        );
        assert_eq!(
            saved.len(),
            1,
            "a topic without events has nothing to resume"
        );
        assert_eq!(
            (saved[0].offset, saved[0].epoch.clone()),
            (5, epoch.clone())
        );
        assert_eq!(
            saved[0].events.iter().map(|e| e.offset).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );

        let (next, seen) = broker(3);
        next.restore(saved);
        let since = StreamPosition {
            offset: 3,
            epoch: epoch.clone(),
        };
        match next.history("t", &since).await.unwrap() {
            Recovery::Complete(events) => {
                assert_eq!(
                    events.iter().map(|e| e.offset).collect::<Vec<_>>(),
                    vec![4, 5]
                )
            }
            Recovery::Gap => panic!("the restored history serves the resume"),
        }
        let too_old = StreamPosition {
            offset: 1,
            epoch: epoch.clone(),
        };
        assert_eq!(next.history("t", &too_old).await.unwrap(), Recovery::Gap);
        next.subscribe("t").await.unwrap();
        let event = next.publish("t", chat(6)).await.unwrap();
        assert_eq!((event.offset, event.epoch), (6, epoch));
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn restored_events_keep_their_age_and_broken_states_keep_no_events() {
        let (b, _) = broker(10);
        let old = Event {
            topic: "t".into(),
            offset: 1,
            epoch: "e".into(),
            ts: Utc::now() - chrono::Duration::seconds(120),
            payload: chat(1),
        };
        let fresh = Event {
            offset: 2,
            ts: Utc::now(),
            ..old.clone()
        };
        b.restore(vec![
            TopicState {
                topic: "t".into(),
                epoch: "e".into(),
                offset: 2,
                events: vec![old.clone(), fresh.clone()],
            },
            TopicState {
                topic: "holey".into(),
                epoch: "e".into(),
                offset: 9,
                events: vec![fresh.clone()],
            },
        ]);
        let at = |offset| StreamPosition {
            offset,
            epoch: "e".into(),
        };
        // The 2-minute-old event is past the 60 s history age.
        assert_eq!(b.history("t", &at(0)).await.unwrap(), Recovery::Gap);
        assert_eq!(
            b.history("t", &at(1)).await.unwrap(),
            Recovery::Complete(vec![fresh])
        );
        assert_eq!(b.history("holey", &at(8)).await.unwrap(), Recovery::Gap);
        assert_eq!(
            b.history("holey", &at(9)).await.unwrap(),
            Recovery::Complete(vec![])
        );
        assert_eq!(b.position("holey").await.unwrap(), at(9));
    }

    #[tokio::test]
    async fn history_returns_exactly_the_missed_events() {
        let (b, _) = broker(10);
        let start = b.position("t").await.unwrap();
        for i in 0..5 {
            b.publish("t", chat(i)).await.unwrap();
        }
        let since = StreamPosition {
            offset: 2,
            epoch: start.epoch.clone(),
        };
        match b.history("t", &since).await.unwrap() {
            Recovery::Complete(events) => {
                assert_eq!(
                    events.iter().map(|e| e.offset).collect::<Vec<_>>(),
                    vec![3, 4, 5]
                )
            }
            Recovery::Gap => panic!("expected recovery"),
        }
        let now = StreamPosition {
            offset: 5,
            epoch: start.epoch.clone(),
        };
        assert_eq!(
            b.history("t", &now).await.unwrap(),
            Recovery::Complete(vec![])
        );
    }

    #[tokio::test]
    async fn a_forgotten_topic_recovers_nothing_from_before() {
        let (b, _) = broker(10);
        let start = b.position("user:bob").await.unwrap();
        b.publish("user:bob", chat(1)).await.unwrap();
        b.forget("user:bob").await.unwrap();
        let fresh = b.position("user:bob").await.unwrap();
        assert_ne!(fresh.epoch, start.epoch);
        assert_eq!(fresh.offset, 0);
        assert_eq!(b.history("user:bob", &start).await.unwrap(), Recovery::Gap);
        let zero = StreamPosition {
            offset: 0,
            epoch: fresh.epoch,
        };
        assert_eq!(
            b.history("user:bob", &zero).await.unwrap(),
            Recovery::Complete(vec![])
        );
    }

    #[tokio::test]
    async fn the_topic_table_is_capped_and_swept_a_few_at_a_time() {
        let limits = HistoryLimits {
            max_topics: 3,
            ..HistoryLimits::new(10, Duration::from_secs(60))
        };
        let b = MemoryBroker::new(limits, Arc::new(|_| {}));
        for name in ["a", "b", "c"] {
            b.subscribe(name).await.unwrap();
            b.position(name).await.unwrap();
        }
        // Full of topics in use: a fourth is refused, by publish too.
        assert!(matches!(
            b.position("d").await,
            Err(BrokerError::TooManyTopics(3))
        ));
        assert!(matches!(
            b.publish("d", chat(1)).await,
            Err(BrokerError::TooManyTopics(3))
        ));
        // Existing topics still work.
        assert_eq!(b.publish("a", chat(1)).await.unwrap().offset, 1);
        // Once one is idle and old, the sweep makes room.
        b.unsubscribe("b").await.unwrap();
        let later = Instant::now() + Duration::from_secs(3600);
        b.lock().sweep(limits, later);
        assert!(b.position("d").await.is_ok());

        // The sweep looks at a few topics per operation, never the table.
        let many = MemoryBroker::new(
            HistoryLimits::new(10, Duration::from_secs(60)),
            Arc::new(|_| {}),
        );
        for i in 0..100 {
            many.position(&format!("t{i}")).await.unwrap();
        }
        let mut state = many.lock();
        state.sweep_step(many.limits, later, SWEEP_STEP);
        assert_eq!(state.topics.len(), 100 - SWEEP_STEP);
        state.sweep(many.limits, later);
        assert!(state.topics.is_empty());
        assert!(
            state.sweep.is_empty(),
            "no entry outlives its topic's sweep"
        );
    }

    #[tokio::test]
    async fn idle_topics_are_forgotten_and_come_back_in_a_new_epoch() {
        let (b, _) = broker(10);
        let later = || Instant::now() + Duration::from_secs(3600);
        // A client leaves a quiet topic; events arrive; it resumes exactly.
        b.subscribe("quiet").await.unwrap();
        let left_at = b.position("quiet").await.unwrap();
        b.unsubscribe("quiet").await.unwrap();
        b.lock().sweep(b.limits, Instant::now());
        b.publish("quiet", chat(1)).await.unwrap();
        assert!(
            matches!(b.history("quiet", &left_at).await.unwrap(), Recovery::Complete(v) if v.len() == 1)
        );

        // Cycling through names leaves nothing behind once they are idle.
        for i in 0..100 {
            let name = format!("t{i}");
            b.subscribe(&name).await.unwrap();
            b.position(&name).await.unwrap();
            b.unsubscribe(&name).await.unwrap();
        }
        b.subscribe("held").await.unwrap();
        let held = b.position("held").await.unwrap();
        b.lock().sweep(b.limits, later());
        let names: Vec<String> = b.lock().topics.keys().cloned().collect();
        assert_eq!(
            names,
            vec!["held".to_owned()],
            "only the subscribed topic stays"
        );
        assert_eq!(b.position("held").await.unwrap(), held);

        // "quiet" came back in a new epoch: the old position is a gap.
        let again = b.position("quiet").await.unwrap();
        assert_ne!(again.epoch, left_at.epoch);
        assert_eq!(b.history("quiet", &left_at).await.unwrap(), Recovery::Gap);
    }

    #[tokio::test]
    async fn gaps_are_reported_not_skipped() {
        let (b, _) = broker(3);
        let start = b.position("t").await.unwrap();
        for i in 0..10 {
            b.publish("t", chat(i)).await.unwrap();
        }
        let old = StreamPosition {
            offset: 2,
            epoch: start.epoch.clone(),
        };
        assert_eq!(b.history("t", &old).await.unwrap(), Recovery::Gap);
        // Offset 7 is the last one not kept: events 8, 9, 10 are all there.
        let edge = StreamPosition {
            offset: 7,
            epoch: start.epoch.clone(),
        };
        assert!(
            matches!(b.history("t", &edge).await.unwrap(), Recovery::Complete(e) if e.len() == 3)
        );
        let other_epoch = StreamPosition {
            offset: 9,
            epoch: "elsewhere".into(),
        };
        assert_eq!(b.history("t", &other_epoch).await.unwrap(), Recovery::Gap);
        let future = StreamPosition {
            offset: 99,
            epoch: start.epoch,
        };
        assert_eq!(b.history("t", &future).await.unwrap(), Recovery::Gap);
        assert_eq!(b.history("unknown", &edge).await.unwrap(), Recovery::Gap);
    }

    #[tokio::test]
    async fn history_is_bounded_by_age() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let b = MemoryBroker::new(
            HistoryLimits::new(100, Duration::from_millis(20)),
            Arc::new(move |e| sink.lock().unwrap().push(e)),
        );
        let start = b.position("t").await.unwrap();
        b.publish("t", chat(1)).await.unwrap();
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.history("t", &start).await.unwrap(), Recovery::Gap);
    }

    #[tokio::test]
    async fn each_broker_instance_has_its_own_epochs() {
        let (a, _) = broker(3);
        let (b, _) = broker(3);
        assert_ne!(
            a.position("t").await.unwrap().epoch,
            b.position("t").await.unwrap().epoch
        );
    }
}
