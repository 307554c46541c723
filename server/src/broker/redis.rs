//! The Redis broker: several instances share topics, history and fan-out.
//!
//! Per topic, Redis holds a meta hash (epoch and latest offset) and a
//! stream of the events still kept. One Lua script increments the offset,
//! appends the event to the capped stream and PUBLISHes it, atomically, so
//! offsets are contiguous per topic whichever instance publishes, and every
//! subscriber receives events in offset order. When the meta hash is gone
//! (Redis restarted without persistence, or the topic was idle past the
//! meta's lifetime) the next publish or position read starts a new epoch,
//! so resuming clients are told `recovered: false` instead of being handed
//! reused offsets.
//!
//! Redis pub/sub is at most once: a message published while this process's
//! subscriber link is down is never delivered to it, and nothing says so.
//! The link task therefore reconnects with backoff, resubscribes every
//! wanted topic, and hands the hub each topic's head (see [`Sink::head`]);
//! sessions behind a head fetch what they missed from the stream. Heads
//! are also sent periodically, which catches a message lost without a
//! disconnect and keeps the meta hash of quiet subscribed topics alive.
//!
//! Crate: `redis` (redis-rs) with its tokio `ConnectionManager` for
//! commands and a dedicated pub/sub connection that we own, so that
//! reconnecting and resubscribing are under our control and observable
//! (`/readyz`, heads), rather than hidden inside the client.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use app::protocol::{Event, Payload, StreamPosition};

use super::memory::HistoryLimits;
use super::{Announcement, Broker, BrokerError, Deliver, Recovery};
use crate::metrics::Metrics;

/// Longest a single Redis call may take before it counts as failed: writes
/// must fail fast while Redis is unreachable, not queue behind it.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// How often every subscribed topic's head is checked and its meta hash's
/// lifetime renewed.
const CHECK_EVERY: Duration = Duration::from_secs(15);

/// How long a topic's epoch and offset outlive its last publish or check.
/// Longer than any history, so an idle topic's resumers get a clean answer
/// from the stream rather than a new epoch.
const META_TTL: Duration = Duration::from_secs(24 * 3600);

/// Reconnect backoff bounds for the subscriber link.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Channels subscribed per SUBSCRIBE command when resubscribing.
const RESUBSCRIBE_BATCH: usize = 500;

/// Concurrent head reads while checking topics.
const CHECK_CONCURRENCY: usize = 32;

/// Appends an event and publishes it. KEYS: meta hash, stream. ARGV:
/// channel, epoch to use if the topic has none, the stored event, most
/// events kept, history lifetime (ms), meta lifetime (ms), most bytes kept.
/// The meta hash counts the stream's bytes (reset when the stream expired);
/// the oldest entries are trimmed while the stream is over either bound,
/// one at a time (each publish trims what it added, so the loop is short).
/// Returns the event's offset and epoch.
const PUBLISH: &str = r"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[2]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0, 'bytes', 0)
elseif redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[1], 'bytes', 0)
end
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local bytes = redis.call('HINCRBY', KEYS[1], 'bytes', string.len(ARGV[3]))
redis.call('XADD', KEYS[2], offset .. '-1', 'd', ARGV[3])
local kept = redis.call('XLEN', KEYS[2])
local most, most_bytes = tonumber(ARGV[4]), tonumber(ARGV[7])
while kept > 0 and (kept > most or bytes > most_bytes) do
  local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
  local n = tonumber(string.match(first[1], '^(%d+)'))
  redis.call('XTRIM', KEYS[2], 'MINID', (n + 1) .. '-0')
  bytes = redis.call('HINCRBY', KEYS[1], 'bytes', -string.len(first[2][2]))
  kept = kept - 1
end
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PUBLISH', ARGV[1], offset .. ' ' .. epoch .. ' ' .. ARGV[3])
return {offset, epoch}
";

/// Reads a topic's position, creating it in a new epoch if it has none,
/// and renews the meta's lifetime. KEYS: meta hash, stream. ARGV: epoch to
/// use if the topic has none, meta lifetime (ms).
const POSITION: &str = r"
local m = redis.call('HMGET', KEYS[1], 'epoch', 'offset')
if not m[1] then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'offset', 0)
  m = {ARGV[1], '0'}
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {m[2], m[1]}
";

/// An event as kept in a stream entry and sent on a channel: what the
/// script does not add (offset and epoch come from the meta hash).
#[derive(Serialize, Deserialize)]
struct Stored {
    ts: DateTime<Utc>,
    payload: Payload,
}

/// Messages between instances on the control channel.
#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "kind", content = "body", rename_all = "snake_case")]
enum Control {
    /// A topic's epoch was reset: every instance re-checks its head.
    Head { topic: String },
    /// For every instance's sink.
    Announce(Announcement),
}

struct Inner {
    client: redis::Client,
    conn: ConnectionManager,
    sink: Deliver,
    limits: HistoryLimits,
    prefix: String,
    node: String,
    epochs: AtomicU64,
    publish: redis::Script,
    position: redis::Script,
    /// Topics this process wants delivered.
    wanted: Mutex<HashSet<String>>,
    /// Topics to reset to a new epoch once Redis answers (see
    /// [`Broker::invalidate`]).
    invalid: Mutex<HashSet<String>>,
    /// The subscriber link's command half, while connected.
    link: Mutex<Option<PubSubSink>>,
    /// Connected and resubscribed.
    up: AtomicBool,
    stop: CancellationToken,
    metrics: Arc<Metrics>,
}

/// The Redis broker. Cheap to clone.
#[derive(Clone)]
pub struct RedisBroker {
    inner: Arc<Inner>,
}

/// Why the broker could not be created.
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct RedisConfigError(#[from] redis::RedisError);

fn unavailable(e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Unavailable(e.to_string())
}

/// Runs a Redis call with [`CALL_TIMEOUT`].
async fn call<T>(
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, BrokerError> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(unavailable(e)),
        Err(_) => Err(unavailable("redis did not answer in time")),
    }
}

impl RedisBroker {
    /// Creates the broker and starts its subscriber link. Nothing is
    /// connected yet: an unreachable Redis makes the broker unhealthy (and
    /// `/readyz` 503), not the start fail, and it keeps trying.
    pub fn start(
        url: &str,
        prefix: &str,
        limits: HistoryLimits,
        sink: Deliver,
        metrics: Arc<Metrics>,
    ) -> Result<Self, RedisConfigError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(BACKOFF_MIN)
            .set_max_delay(BACKOFF_MAX);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let inner = Arc::new(Inner {
            client,
            conn,
            sink,
            limits,
            prefix: prefix.to_owned(),
            node: format!("{:x}", nanos ^ (u128::from(std::process::id()) << 64)),
            epochs: AtomicU64::new(0),
            publish: redis::Script::new(PUBLISH),
            position: redis::Script::new(POSITION),
            wanted: Mutex::default(),
            invalid: Mutex::default(),
            link: Mutex::default(),
            up: AtomicBool::new(false),
            stop: CancellationToken::new(),
            metrics,
        });
        tokio::spawn(link_task(inner.clone()));
        Ok(RedisBroker { inner })
    }
}

impl RedisBroker {
    /// The command connection, for other cluster-wide state (login limits).
    pub fn connection(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    /// Key names share the `{topic}` hash tag, so a topic's meta and
    /// stream land on one Redis Cluster shard.
    fn meta_key(&self, topic: &str) -> String {
        format!("{}:{{{topic}}}:meta", self.prefix)
    }

    fn stream_key(&self, topic: &str) -> String {
        format!("{}:{{{topic}}}:stream", self.prefix)
    }

    fn channel(&self, topic: &str) -> String {
        format!("{}:t:{topic}", self.prefix)
    }

    fn control_channel(&self) -> String {
        format!("{}:control", self.prefix)
    }

    fn new_epoch(&self) -> String {
        let n = self.epochs.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.node)
    }

    fn usable(&self) -> Result<(), BrokerError> {
        if self.stop.is_cancelled() {
            return Err(unavailable("the server is shutting down"));
        }
        if !self.up.load(Ordering::Acquire) {
            return Err(unavailable("the link to redis is down"));
        }
        Ok(())
    }

    async fn position(&self, topic: &str) -> Result<StreamPosition, BrokerError> {
        let mut conn = self.conn.clone();
        let (offset, epoch): (u64, String) = call(
            self.position
                .key(self.meta_key(topic))
                .key(self.stream_key(topic))
                .arg(self.new_epoch())
                .arg(META_TTL.as_millis() as u64)
                .invoke_async(&mut conn),
        )
        .await?;
        Ok(StreamPosition { offset, epoch })
    }

    /// Turns a channel message into an event of `topic`.
    fn decode(&self, topic: &str, bytes: &[u8]) -> Option<Event> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (offset, rest) = text.split_once(' ')?;
        let (epoch, json) = rest.split_once(' ')?;
        let stored: Stored = serde_json::from_str(json).ok()?;
        Some(Event {
            topic: topic.to_owned(),
            offset: offset.parse().ok()?,
            epoch: epoch.to_owned(),
            ts: stored.ts,
            payload: stored.payload,
        })
    }

    /// Resets every invalidated topic to a new epoch and tells every
    /// instance to re-check it.
    async fn reset_invalid(&self) {
        let topics: Vec<String> = lock(&self.invalid).iter().cloned().collect();
        for topic in topics {
            let mut conn = self.conn.clone();
            let reset = call(
                redis::pipe()
                    .atomic()
                    .del(self.meta_key(&topic))
                    .del(self.stream_key(&topic))
                    .publish(
                        self.control_channel(),
                        serde_json::to_string(&Control::Head {
                            topic: topic.clone(),
                        })
                        .unwrap_or_default(),
                    )
                    .query_async::<()>(&mut conn),
            )
            .await;
            match reset {
                Ok(()) => {
                    tracing::warn!(topic, "topic reset to a new epoch after a lost publish");
                    lock(&self.invalid).remove(&topic);
                }
                Err(e) => tracing::warn!(topic, error = %e, "resetting a topic failed; will retry"),
            }
        }
    }

    /// Hands the hub the head of each of `topics` that is still wanted.
    async fn check(&self, topics: Vec<String>) {
        futures::stream::iter(topics)
            .for_each_concurrent(CHECK_CONCURRENCY, |topic| async move {
                if !lock(&self.wanted).contains(&topic) {
                    return;
                }
                match self.position(&topic).await {
                    Ok(head) => self.sink.head(&topic, head),
                    Err(e) => tracing::debug!(topic, error = %e, "head check failed"),
                }
            })
            .await;
    }

    fn on_message(self: &Arc<Self>, msg: &redis::Msg) {
        let channel = msg.get_channel_name();
        if channel == self.control_channel() {
            match serde_json::from_slice::<Control>(msg.get_payload_bytes()) {
                Ok(Control::Head { topic }) => {
                    if lock(&self.wanted).contains(&topic) {
                        // Off the link task: the read must not hold up
                        // delivery of everything else.
                        let me = self.clone();
                        tokio::spawn(async move { me.check(vec![topic]).await });
                    }
                }
                Ok(Control::Announce(announcement)) => self.sink.announcement(announcement),
                Err(e) => tracing::warn!(error = %e, "unreadable control message"),
            }
            return;
        }
        let Some(topic) = channel.strip_prefix(&format!("{}:t:", self.prefix)) else {
            return;
        };
        match self.decode(topic, msg.get_payload_bytes()) {
            Some(event) => self.sink.event(event),
            // The hole it leaves is repaired (or reported) by the sessions
            // at the next event or head.
            None => tracing::warn!(topic, "unreadable event on redis channel"),
        }
    }
}

/// Keeps the subscriber link up: connects, subscribes the control channel
/// and every wanted topic, hands the hub every topic's head (what was
/// published while the link was down), then delivers messages until the
/// link breaks, and starts over with backoff.
async fn link_task(inner: Arc<Inner>) {
    let mut backoff = BACKOFF_MIN;
    let mut ever_up = false;
    loop {
        let connected = tokio::select! {
            _ = inner.stop.cancelled() => return,
            c = call(inner.client.get_async_pubsub()) => c,
        };
        let pubsub = match connected {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "redis link: connect failed");
                let wait = jitter(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                tokio::select! {
                    _ = inner.stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => continue,
                }
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        // New subscribes use this link from now on; the snapshot below
        // covers every topic wanted before.
        *lock(&inner.link) = Some(sink.clone());
        let mut topics: Vec<String> = lock(&inner.wanted).iter().cloned().collect();
        let mut channels = vec![inner.control_channel()];
        channels.extend(topics.iter().map(|t| inner.channel(t)));
        let mut subscribed = Ok(());
        for batch in channels.chunks(RESUBSCRIBE_BATCH) {
            subscribed = call(sink.subscribe(batch)).await;
            if subscribed.is_err() {
                break;
            }
        }
        // The command connection must be back too before we say we are:
        // the manager notices a dead connection only when it is used.
        let subscribed = match subscribed {
            Ok(()) => commands_up(&inner).await,
            Err(e) => Err(e),
        };
        if let Err(e) = subscribed {
            tracing::warn!(error = %e, "redis link: resubscribing failed");
            *lock(&inner.link) = None;
            tokio::time::sleep(jitter(backoff)).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
            continue;
        }
        backoff = BACKOFF_MIN;
        inner.up.store(true, Ordering::Release);
        if ever_up {
            inner
                .metrics
                .broker_reconnects
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                topics = topics.len(),
                "redis link restored; recovering topics"
            );
        } else {
            tracing::info!("redis link up");
        }
        ever_up = true;
        // Recover: reset what was invalidated, then every topic's head.
        let recovery = {
            let inner = inner.clone();
            let topics = std::mem::take(&mut topics);
            tokio::spawn(async move {
                inner.reset_invalid().await;
                inner.check(topics).await;
            })
        };
        let mut ticks = tokio::time::interval(CHECK_EVERY);
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = inner.stop.cancelled() => break,
                msg = stream.next() => match msg {
                    Some(msg) => inner.on_message(&msg),
                    None => break,
                },
                _ = ticks.tick() => {
                    let inner = inner.clone();
                    let topics: Vec<String> = lock(&inner.wanted).iter().cloned().collect();
                    tokio::spawn(async move {
                        inner.reset_invalid().await;
                        inner.check(topics).await;
                    });
                }
            }
        }
        recovery.abort();
        inner.up.store(false, Ordering::Release);
        *lock(&inner.link) = None;
        if inner.stop.is_cancelled() {
            return;
        }
        tracing::warn!("redis link lost; reconnecting");
    }
}

/// Waits until the command connection answers a PING, giving its manager
/// a few tries to replace a connection that died with the server.
async fn commands_up(inner: &Inner) -> Result<(), BrokerError> {
    let mut last = Ok(());
    for _ in 0..5 {
        let mut conn = inner.conn.clone();
        last = call(redis::cmd("PING").query_async::<()>(&mut conn)).await;
        if last.is_ok() {
            break;
        }
        tokio::time::sleep(BACKOFF_MIN).await;
    }
    last
}

/// A random wait in [d/2, d], so instances do not reconnect in lockstep.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or_default();
    let half = d / 2;
    half + half.mul_f64(f64::from(nanos % 1000) / 1000.0)
}

impl Broker for RedisBroker {
    fn publish(&self, topic: &str, payload: Payload) -> BoxFuture<'_, Result<Event, BrokerError>> {
        let inner = &self.inner;
        let topic = topic.to_owned();
        Box::pin(async move {
            inner.usable()?;
            let ts = Utc::now();
            let stored = Stored { ts, payload };
            let json = serde_json::to_string(&stored).map_err(unavailable)?;
            let mut conn = inner.conn.clone();
            let (offset, epoch): (u64, String) = call(
                inner
                    .publish
                    .key(inner.meta_key(&topic))
                    .key(inner.stream_key(&topic))
                    .arg(inner.channel(&topic))
                    .arg(inner.new_epoch())
                    .arg(json)
                    .arg(inner.limits.max_events.max(1))
                    .arg(inner.limits.max_age.as_millis() as u64)
                    .arg(META_TTL.as_millis() as u64)
                    .arg(inner.limits.max_bytes)
                    .invoke_async(&mut conn),
            )
            .await?;
            Ok(Event {
                topic,
                offset,
                epoch,
                ts,
                payload: stored.payload,
            })
        })
    }

    fn subscribe(&self, topic: &str) -> BoxFuture<'_, Result<(), BrokerError>> {
        let inner = &self.inner;
        let topic = topic.to_owned();
        Box::pin(async move {
            lock(&inner.wanted).insert(topic.clone());
            let link = lock(&inner.link).clone();
            let result = match link {
                Some(mut sink) if inner.up.load(Ordering::Acquire) => {
                    call(sink.subscribe(inner.channel(&topic))).await
                }
                _ => Err(unavailable("the link to redis is down")),
            };
            if result.is_err() {
                lock(&inner.wanted).remove(&topic);
            }
            result
        })
    }

    fn unsubscribe(&self, topic: &str) -> BoxFuture<'_, Result<(), BrokerError>> {
        let inner = &self.inner;
        let topic = topic.to_owned();
        Box::pin(async move {
            lock(&inner.wanted).remove(&topic);
            let link = lock(&inner.link).clone();
            match link {
                Some(mut sink) => call(sink.unsubscribe(inner.channel(&topic))).await,
                // Nothing is subscribed on a link that is down, and the
                // next one subscribes only wanted topics.
                None => Ok(()),
            }
        })
    }

    fn position(&self, topic: &str) -> BoxFuture<'_, Result<StreamPosition, BrokerError>> {
        let topic = topic.to_owned();
        Box::pin(async move {
            self.inner.usable()?;
            self.inner.position(&topic).await
        })
    }

    fn history(
        &self,
        topic: &str,
        since: &StreamPosition,
    ) -> BoxFuture<'_, Result<Recovery, BrokerError>> {
        let inner = &self.inner;
        let topic = topic.to_owned();
        let since = since.clone();
        Box::pin(async move {
            inner.usable()?;
            let mut conn = inner.conn.clone();
            let ((epoch, offset), entries): (
                (Option<String>, Option<u64>),
                redis::streams::StreamRangeReply,
            ) = call(
                redis::pipe()
                    .atomic()
                    .cmd("HMGET")
                    .arg(inner.meta_key(&topic))
                    .arg("epoch")
                    .arg("offset")
                    .xrange_count(
                        inner.stream_key(&topic),
                        format!("{}-0", since.offset.saturating_add(1)),
                        "+",
                        inner.limits.max_events.max(1),
                    )
                    .query_async(&mut conn),
            )
            .await?;
            let (Some(epoch), Some(offset)) = (epoch, offset) else {
                return Ok(Recovery::Gap);
            };
            Ok(recover(
                &topic,
                &since,
                &epoch,
                offset,
                entries,
                inner.limits,
            ))
        })
    }

    fn forget(&self, topic: &str) -> BoxFuture<'_, Result<(), BrokerError>> {
        let inner = &self.inner;
        let topic = topic.to_owned();
        Box::pin(async move {
            inner.usable()?;
            let mut conn = inner.conn.clone();
            call(
                redis::pipe()
                    .del(inner.meta_key(&topic))
                    .del(inner.stream_key(&topic))
                    .query_async::<()>(&mut conn),
            )
            .await
        })
    }

    fn invalidate(&self, topic: &str) {
        lock(&self.inner.invalid).insert(topic.to_owned());
        if self.inner.up.load(Ordering::Acquire) {
            let inner = self.inner.clone();
            tokio::spawn(async move { inner.reset_invalid().await });
        }
    }

    fn announce(&self, announcement: Announcement) -> BoxFuture<'_, Result<(), BrokerError>> {
        let inner = &self.inner;
        Box::pin(async move {
            inner.usable()?;
            let text =
                serde_json::to_string(&Control::Announce(announcement)).map_err(unavailable)?;
            let mut conn = inner.conn.clone();
            call(
                redis::cmd("PUBLISH")
                    .arg(inner.control_channel())
                    .arg(text)
                    .query_async::<()>(&mut conn),
            )
            .await
        })
    }

    fn healthy(&self) -> bool {
        self.inner.usable().is_ok()
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        self.inner.stop.cancel();
        Box::pin(std::future::ready(()))
    }
}

/// What a stream read says about the events after `since`: all of them,
/// in order, if the epoch matches and every one from `since + 1` up to the
/// topic's offset is still kept and younger than the history's age.
fn recover(
    topic: &str,
    since: &StreamPosition,
    epoch: &str,
    offset: u64,
    entries: redis::streams::StreamRangeReply,
    limits: HistoryLimits,
) -> Recovery {
    if since.epoch != epoch || since.offset > offset {
        return Recovery::Gap;
    }
    if since.offset == offset {
        return Recovery::Complete(Vec::new());
    }
    let oldest = Utc::now() - chrono::Duration::from_std(limits.max_age).unwrap_or_default();
    let mut events = Vec::with_capacity(entries.ids.len());
    for entry in entries.ids {
        let Some(n) = entry
            .id
            .split_once('-')
            .and_then(|(n, _)| n.parse::<u64>().ok())
        else {
            return Recovery::Gap;
        };
        let stored: Option<Stored> = match entry.map.get("d") {
            Some(redis::Value::BulkString(bytes)) => serde_json::from_slice(bytes).ok(),
            _ => None,
        };
        let Some(stored) = stored else {
            tracing::warn!(topic, offset = n, "unreadable event in a redis stream");
            return Recovery::Gap;
        };
        if stored.ts < oldest {
            continue;
        }
        events.push(Event {
            topic: topic.to_owned(),
            offset: n,
            epoch: epoch.to_owned(),
            ts: stored.ts,
            payload: stored.payload,
        });
    }
    let contiguous = events.len() as u64 == offset - since.offset
        && events
            .iter()
            .enumerate()
            .all(|(i, e)| e.offset == since.offset + 1 + i as u64);
    if contiguous {
        Recovery::Complete(events)
    } else {
        Recovery::Gap
    }
}
