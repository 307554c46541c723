//! One state machine per WebSocket connection, shared by every endpoint that
//! carries hub events (typed, chat, notifications).
//!
//! A session is a single task that `select!`s over: its halt signal (the
//! server shutting down, or the hub marking it a slow consumer), the next
//! client frame, the next queued events, the account and token watches,
//! and the heartbeat tick. Whatever ends first ends the
//! session, and the teardown (leaving every topic, the endpoint's farewell)
//! runs in one place. An endpoint only supplies a [`Handler`]: what to do
//! with a text message and how to render an event.
//!
//! Close codes (also in the README):
//!
//! | code | when |
//! |------|------|
//! | 1001 | the server is shutting down |
//! | 1003 | a binary message on a text-only endpoint |
//! | 1007 | a text message that is not UTF-8 (sent by yawc) |
//! | 1008 | inbound rate limit exceeded, heartbeat timeout, or connection limit reached |
//! | 1009 | a message larger than the limit (sent by yawc) |
//! | 1011 | an internal error (the broker failed) |
//! | 1013 | slow consumer: the send queue overflowed; reconnect and resume with `since` |
//! | 4001 | the connection's token expired and no fresh one was sent |
//! | 4003 | the connection's account was deleted |

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, SinkExt};
use rustc_hash::FxHashMap;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use yawc::close::CloseCode;
use yawc::frame::{Frame, OpCode};
use yawc::WebSocket;

use app::protocol::close as codes;
use app::protocol::{Event, Payload, StreamPosition};

use super::code;

use super::deflate;
use super::stream::{FrameGuard, Link};
use super::upgrade::EventCompression;
use crate::broker::{BrokerError, Recovery};
use crate::hub::{ConnHandle, Delivery, Halt, HaltReason, Wire};
use crate::metrics::LatencyBatch;
use crate::pubsub::{Realtime, Subscribed};

/// How long one write may take before the peer counts as stalled.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a handler wants after handling something.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Close(CloseCode, String),
}

/// Per-connection limits, from the configuration.
#[derive(Clone, Debug)]
pub struct SessionLimits {
    /// Ping interval; `None` turns heartbeats off. A peer silent for one
    /// and a half intervals is dropped.
    pub ping_interval: Option<Duration>,
    /// Sustained inbound messages per second.
    pub rate_per_sec: f64,
    /// Inbound burst allowance.
    pub rate_burst: f64,
    pub max_subscriptions: usize,
    /// How long a connection may hold a slot with no subscription and no
    /// message from the client; `None`: forever. Checked at heartbeats.
    pub idle_timeout: Option<Duration>,
}

/// What an endpoint does with its connection.
pub trait Handler: Send + 'static {
    /// Runs once after the handshake.
    fn on_open(&mut self, ctx: &mut Ctx) -> impl Future<Output = Flow> + Send;
    /// Handles one text message.
    fn on_text(&mut self, ctx: &mut Ctx, text: &str) -> impl Future<Output = Flow> + Send;
    /// The wire format of this endpoint's events (the key under which a
    /// delivery caches their rendering and compression).
    const WIRE: Wire;
    /// The text message to send for a live event, or `None` to skip it.
    fn render(&self, delivery: &Delivery) -> Option<Bytes>;
    /// An application-level heartbeat to send with every ping, if any.
    fn heartbeat(&self) -> Option<Frame> {
        None
    }
    /// What to send when events of `topic` were lost for good (history no
    /// longer holds them, or the stream restarted in a new epoch), if this
    /// wire format can say so: the typed protocol's `resync`. The seed's
    /// plain-text formats have no way to, and carry on.
    fn resync(&self, _topic: &str, _reason: &str) -> Option<Frame> {
        None
    }
    /// Runs once when the session ends, whatever the reason.
    fn on_close(&mut self, ctx: &mut Ctx) -> impl Future<Output = ()> + Send;
}

/// What a live event means to a subscription.
#[derive(Debug, PartialEq)]
enum Admit {
    /// The next event: send it.
    New,
    /// Already sent (as history, or covered by the subscribe position), or
    /// of a topic this connection left: skip it.
    Seen,
    /// Events between the last one sent (this position) and this one never
    /// arrived, or the stream moved to a new epoch: repair before sending.
    Gap(StreamPosition),
}

/// A subscription's delivery state.
struct Sub {
    /// Highest offset already sent (or covered by the subscribe reply).
    last: u64,
    epoch: String,
}

/// Something to write, in order.
enum Out {
    /// A frame for yawc to write (replies, pings, heartbeats).
    Frame(Frame),
    /// An event's text message, written straight to the link: `payload` is
    /// `plain_len` bytes of text, or their shared compressed form.
    Event {
        payload: Bytes,
        compressed: bool,
        plain_len: usize,
    },
}

/// What a handler can do: subscribe, publish, queue frames to send.
pub struct Ctx {
    pub rt: Realtime,
    pub conn: ConnHandle,
    /// Looked up for every event delivered, so with a fast hash; topic
    /// names come from the client, but at most `max_subscriptions` of them
    /// per connection, so crafted collisions cannot cost much.
    subs: FxHashMap<String, Sub>,
    out: Vec<Out>,
    max_subscriptions: usize,
    /// When the connection's token expires; the session closes with 4001
    /// then unless the handler moves it.
    deadline: Option<Instant>,
    /// Cancelled when the connection's account is deleted.
    account: Option<CancellationToken>,
    /// Cancelled when the connection's session ends, or with `account`
    /// (it is a child of it).
    session: Option<CancellationToken>,
    /// `deadline` or `account` changed since the session last looked.
    watch_changed: bool,
    /// The signed-in user, whose subscriptions count in presence.
    who: Option<String>,
}

/// Why a subscribe failed.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error("already subscribed to this topic")]
    Already,
    #[error("at most {0} subscriptions per connection")]
    TooMany(usize),
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl Ctx {
    /// Sets (or clears) when the session must end for want of a fresh token.
    pub fn set_deadline(&mut self, remaining: Option<Duration>) {
        self.deadline = remaining.map(|r| Instant::now() + r);
        self.watch_changed = true;
    }

    /// Ties the connection to an account and a signed-in session: it
    /// closes with 4003 if the account is deleted, with 4004 if the
    /// session ends (signed out, or the password changed).
    pub fn watch_session(&mut self, account: CancellationToken, session: CancellationToken) {
        self.account = Some(account);
        self.session = Some(session);
        self.watch_changed = true;
    }

    /// The connection is `user`'s from now on: its subscriptions, those
    /// already made included, count in the topics' presence.
    pub fn sign_in(&mut self, user: &str) {
        for topic in self.subs.keys() {
            self.rt.presence.join(topic, user, self.conn.id);
        }
        self.who = Some(user.to_owned());
    }

    /// Queues a frame; it is written after the handler returns.
    pub fn send(&mut self, frame: Frame) {
        self.out.push(Out::Frame(frame));
    }

    pub fn is_subscribed(&self, topic: &str) -> bool {
        self.subs.contains_key(topic)
    }

    /// Subscribes this connection. The caller sends the reply and then the
    /// missed events; live events at or below the position are dropped.
    pub async fn subscribe(
        &mut self,
        topic: &str,
        since: Option<&StreamPosition>,
    ) -> Result<Subscribed, SubscribeError> {
        if self.subs.contains_key(topic) {
            return Err(SubscribeError::Already);
        }
        if self.subs.len() >= self.max_subscriptions {
            return Err(SubscribeError::TooMany(self.max_subscriptions));
        }
        let sub = self.rt.subscribe(&self.conn, topic, since).await?;
        if let Some(who) = &self.who {
            self.rt.presence.join(topic, who, self.conn.id);
        }
        self.subs.insert(
            topic.to_owned(),
            Sub {
                last: sub.position.offset,
                epoch: sub.position.epoch.clone(),
            },
        );
        Ok(sub)
    }

    /// Returns false if the connection was not subscribed.
    pub async fn unsubscribe(&mut self, topic: &str) -> bool {
        if self.subs.remove(topic).is_none() {
            return false;
        }
        if self.who.is_some() {
            self.rt.presence.leave(topic, self.conn.id);
        }
        self.rt.unsubscribe(self.conn.id, topic).await;
        true
    }

    pub async fn publish(&self, topic: &str, payload: Payload) -> Result<Event, BrokerError> {
        self.rt.publish(topic, payload).await
    }

    /// Checks a live event against what this connection has been sent,
    /// and records it when it is the next one. Offsets are contiguous per
    /// topic and epoch, so anything else is either old or a hole: a broker
    /// that lost a message (Redis PUBLISH says nothing to a subscriber
    /// whose link was down) must never become a silent gap.
    fn admit(&mut self, event: &Event) -> Admit {
        let Some(sub) = self.subs.get_mut(&event.topic) else {
            return Admit::Seen;
        };
        if event.epoch == sub.epoch {
            if event.offset <= sub.last {
                return Admit::Seen;
            }
            if event.offset == sub.last + 1 {
                sub.last = event.offset;
                return Admit::New;
            }
        }
        Admit::Gap(StreamPosition {
            offset: sub.last,
            epoch: sub.epoch.clone(),
        })
    }

    /// Checks where a topic's stream stands (a head, see
    /// [`crate::broker::Sink::head`]) against what this connection has been
    /// sent: behind it, or in another epoch, is a gap to repair.
    fn admit_head(&self, head: &Event) -> Admit {
        match self.subs.get(&head.topic) {
            Some(sub) if head.epoch != sub.epoch || head.offset > sub.last => {
                Admit::Gap(StreamPosition {
                    offset: sub.last,
                    epoch: sub.epoch.clone(),
                })
            }
            _ => Admit::Seen,
        }
    }

    /// Continues a subscription from `at` after the events before it were
    /// declared lost.
    fn restart_at(&mut self, topic: &str, at: &StreamPosition) {
        if let Some(sub) = self.subs.get_mut(topic) {
            sub.epoch = at.epoch.clone();
            sub.last = at.offset;
        }
    }
}

/// Events being written in one go: their frames, and what is counted of
/// them.
struct Batch {
    now: chrono::DateTime<chrono::Utc>,
    latencies: LatencyBatch,
    bytes: usize,
}

impl Batch {
    fn new() -> Self {
        Batch {
            now: chrono::Utc::now(),
            latencies: LatencyBatch::default(),
            bytes: 0,
        }
    }

    /// Queues `delivery` as this endpoint renders it (if it does), in the
    /// shared compressed form when the connection takes that.
    fn queue<H: Handler>(
        &mut self,
        ctx: &mut Ctx,
        handler: &H,
        delivery: &Delivery,
        compression: EventCompression,
    ) {
        let Some(text) = handler.render(delivery) else {
            return;
        };
        let waited = (self.now - delivery.event.ts)
            .num_microseconds()
            .unwrap_or(0);
        self.latencies.observe(waited.max(0) as u64);
        let plain_len = text.len();
        self.bytes += plain_len;
        let compress =
            compression == EventCompression::Shared && plain_len >= deflate::COMPRESS_FROM;
        let payload = if compress {
            delivery.deflated(H::WIRE, &text, deflate::message)
        } else {
            text
        };
        ctx.out.push(Out::Event {
            payload,
            compressed: compress,
            plain_len,
        });
    }
}

/// Why a hole could not be filled, as the client is told.
const LOST_FROM_HISTORY: &str = "events were lost and are no longer in the topic's history";
const HISTORY_UNAVAILABLE: &str = "events were lost and the topic's history is unavailable";

/// Fills the hole before `live`: fetches the events after `since` (the
/// last one sent) from history and queues them in order, up to and
/// including `live` (for a head, up to and including its offset). When
/// history no longer has them, the client is told to reload (`resync`,
/// where the wire format has it) and the subscription carries on from
/// `live`. When the stream moved to a new epoch (its back end lost it),
/// the old epoch's tail is gone for good: the client is told to reload,
/// and then gets the new epoch from its start if history still has it, so
/// nothing the back end kept is skipped. Rare, so its per-event work (a
/// rendering per repaired event, for this connection alone) does not
/// matter.
///
/// `handler` is borrowed mutably only so that the future is `Send` (a
/// handler need not be `Sync`).
async fn repair<H: Handler>(
    ctx: &mut Ctx,
    handler: &mut H,
    live: &Delivery,
    mut since: StreamPosition,
    compression: EventCompression,
    batch: &mut Batch,
) {
    let event = &live.event;
    let told = since.epoch != event.epoch;
    if told {
        resync(ctx, handler, &event.topic, LOST_FROM_HISTORY);
        since = StreamPosition {
            offset: 0,
            epoch: event.epoch.clone(),
        };
        ctx.restart_at(&event.topic, &since);
    }
    let fetched = match ctx.rt.history(&event.topic, &since).await {
        Ok(Recovery::Complete(events)) => Ok(events),
        Ok(Recovery::Gap) => Err(LOST_FROM_HISTORY),
        Err(e) => {
            tracing::warn!(topic = %event.topic, error = %e, "history for a gap failed");
            Err(HISTORY_UNAVAILABLE)
        }
    };
    // History is used only if it runs without a hole from the last event
    // sent up to this one, in this one's epoch.
    let needed = event.offset.saturating_sub(since.offset) as usize;
    let fetched = fetched.and_then(|events| {
        let contiguous =
            events.len() >= needed
                && events.iter().take(needed).enumerate().all(|(i, e)| {
                    e.offset == since.offset + 1 + i as u64 && e.epoch == event.epoch
                });
        if contiguous {
            Ok(events)
        } else {
            Err(LOST_FROM_HISTORY)
        }
    });
    match fetched {
        Ok(events) => {
            ctx.rt.metrics.gaps_repaired.fetch_add(1, Ordering::Relaxed);
            for missed in events.into_iter().take(needed) {
                if missed.offset == event.offset && !live.head {
                    // The live delivery itself: its rendering is shared.
                    ctx.admit(event);
                    batch.queue(ctx, &*handler, live, compression);
                } else {
                    ctx.admit(&missed);
                    batch.queue(ctx, &*handler, &Delivery::new(missed), compression);
                }
            }
        }
        Err(reason) => {
            if !told {
                resync(ctx, handler, &event.topic, reason);
            }
            ctx.restart_at(
                &event.topic,
                &StreamPosition {
                    offset: event.offset,
                    epoch: event.epoch.clone(),
                },
            );
            if !live.head {
                batch.queue(ctx, &*handler, live, compression);
            }
        }
    }
}

/// Tells the client that events of `topic` were lost (where the wire
/// format can say so).
fn resync<H: Handler>(ctx: &mut Ctx, handler: &H, topic: &str, reason: &str) {
    ctx.rt.metrics.resyncs.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(topic, reason, "subscriber told to resync");
    if let Some(frame) = handler.resync(topic, reason) {
        ctx.send(frame);
    }
}

/// What woke a session, in the order they are looked at: its halt signal,
/// queued events (or, after a full batch, the client's frames first), the
/// account and token watches, the heartbeat.
enum Wake {
    Halted,
    /// The client sent more frames than its rate allows.
    Flood,
    Frame(Result<Frame, yawc::WebSocketError>),
    Events(Arc<Delivery>),
    AccountDeleted,
    SessionEnded,
    Expired,
    Tick,
}

/// Why the loop ended.
enum End {
    /// Close with this code and reason (best effort).
    Close(CloseCode, String),
    /// The peer is gone or unwritable; just drop the socket.
    Gone,
    /// The peer sent a close frame; yawc queued its echo.
    PeerClosed,
    /// The read failed: a frame was rejected, or the peer went away.
    Rejected(yawc::WebSocketError),
}

/// Most queued events written in one go. Bounds how long one session holds
/// its thread and how large its write buffer grows before the flush.
const MAX_BATCH: usize = 128;
/// Most bytes of events written in one go, for the same reasons.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Runs a session to its end. Every exit path leaves every topic.
///
/// Memory: this future is what an idle connection costs, so the handler's
/// calls and the teardown, which are rare but whose futures are large (a
/// token check holds a database query), are boxed: their state is
/// allocated while they run instead of reserved in every connection.
///
/// Hot path: when an event arrives the session takes every event already
/// queued behind it (up to [`MAX_BATCH`]), writes them all into the
/// socket's buffer and flushes once, so under load a system call carries
/// many events instead of one. Each wake-up polls its sources in a fixed
/// order, queued events before the socket's read side, and stops at the
/// first that is ready: a session woken for events does not first walk the
/// read path down to the kernel. Everything polled is cheap to poll again:
/// the halt and deadline futures are created once and stay registered, and
/// the write timeout is armed only when a write actually has to wait.
pub async fn run<T, H>(
    mut ws: Box<WebSocket<FrameGuard<T>>>,
    link: Link<T>,
    compression: EventCompression,
    // Boxed, as is the context below: an async fn keeps its arguments
    // and the locals they move into side by side for its whole life, and
    // this future lives as long as the connection, so every byte inline
    // here is a byte per connection (measured: the handler and context
    // inline cost an idle `/ws/v1` connection about 0.4 KiB more).
    mut handler: Box<H>,
    rt: Realtime,
    limits: SessionLimits,
    shutdown: CancellationToken,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send,
    H: Handler,
{
    let halt = Halt::child_of(&shutdown);
    let (conn, mut queue) = rt.hub.register(halt.clone());
    let metrics = rt.metrics.clone();
    let mut ctx = Box::new(Ctx {
        rt,
        conn,
        subs: FxHashMap::default(),
        out: Vec::new(),
        max_subscriptions: limits.max_subscriptions,
        deadline: None,
        account: None,
        session: None,
        watch_changed: false,
        who: None,
    });
    let mut rate = crate::rate::TokenBucket::new(limits.rate_per_sec, limits.rate_burst);
    // Frames of the client's already charged to `rate`.
    let mut charged = 0u64;
    let period = limits.ping_interval.unwrap_or(Duration::from_secs(3600));
    let pinging = limits.ping_interval.is_some();
    let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_seen = Instant::now();
    // The client's last message (pongs and pings do not count).
    let mut last_message = Instant::now();
    let halted = halt.halted();
    tokio::pin!(halted);
    // Only signed-in connections have a deadline: the timer is allocated
    // for them alone.
    let mut expiry: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut ended: Option<Pin<Box<WaitForCancellationFutureOwned>>> = None;

    let end = 'session: {
        let flow = Box::pin(handler.on_open(&mut ctx)).await;
        if let Some(end) = flush(&mut ws, &link, &mut ctx, &metrics).await {
            break 'session end;
        }
        if let Flow::Close(code, reason) = flow {
            break 'session End::Close(code, reason);
        }
        // After a full batch the queue may still hold events; then the
        // client's side goes first next time, so a busy topic can never
        // starve reading (and with it pongs, commands and closes).
        let mut read_first = false;
        loop {
            if std::mem::take(&mut ctx.watch_changed) {
                expiry = ctx
                    .deadline
                    .map(|at| Box::pin(tokio::time::sleep_until(at)));
                ended = ctx.session.clone().map(|t| Box::pin(t.cancelled_owned()));
            }
            let wake = std::future::poll_fn(|cx| {
                if halted.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::Halted);
                }
                if !read_first {
                    if let Poll::Ready(Some(first)) = queue.poll_recv(cx) {
                        return Poll::Ready(Wake::Events(first));
                    }
                }
                let frame = ws.poll_next_frame(cx);
                // Every frame read, of any kind (a continuation or a ping
                // never surfaces as a message), is charged to the inbound
                // rate limit as soon as it is read.
                let seen = link.frames_in();
                if seen > charged {
                    let fresh = seen - charged;
                    charged = seen;
                    if !rate.allow_n(fresh) {
                        return Poll::Ready(Wake::Flood);
                    }
                }
                if let Poll::Ready(frame) = frame {
                    return Poll::Ready(Wake::Frame(frame));
                }
                if read_first {
                    if let Poll::Ready(Some(first)) = queue.poll_recv(cx) {
                        return Poll::Ready(Wake::Events(first));
                    }
                }
                if let Some(ended) = ended.as_mut() {
                    if ended.as_mut().poll(cx).is_ready() {
                        let deleted = ctx.account.as_ref().is_some_and(|a| a.is_cancelled());
                        return Poll::Ready(if deleted {
                            Wake::AccountDeleted
                        } else {
                            Wake::SessionEnded
                        });
                    }
                }
                if let Some(expiry) = expiry.as_mut() {
                    if expiry.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Wake::Expired);
                    }
                }
                if pinging && ticker.poll_tick(cx).is_ready() {
                    return Poll::Ready(Wake::Tick);
                }
                Poll::Pending
            })
            .await;
            read_first = false;
            match wake {
                Wake::Halted => {
                    break 'session match halt.reason() {
                        HaltReason::Shutdown => {
                            End::Close(code(codes::GOING_AWAY), "server shutting down".into())
                        }
                        HaltReason::SlowConsumer => End::Close(
                            code(codes::TRY_AGAIN),
                            "slow consumer: send queue overflowed".into(),
                        ),
                    }
                }
                Wake::Flood => {
                    metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
                    break 'session End::Close(code(codes::POLICY), "rate limit exceeded".into());
                }
                Wake::Frame(first) => {
                    // Take every frame already received (up to a bound),
                    // then write all the replies with one flush: a client
                    // that pipelines commands gets them answered in one go.
                    let mut next = Some(first);
                    let mut taken = 0;
                    let mut flow = Flow::Continue;
                    let mut ended = None;
                    while let Some(frame) = next.take() {
                        taken += 1;
                        let frame = match frame {
                            Ok(frame) => frame,
                            Err(e) => {
                                ended = Some(End::Rejected(e));
                                break;
                            }
                        };
                        last_seen = Instant::now();
                        match frame.opcode() {
                            OpCode::Text => {
                                last_message = Instant::now();
                                metrics.messages_in.fetch_add(1, Ordering::Relaxed);
                                metrics
                                    .bytes_in
                                    .fetch_add(frame.payload().len() as u64, Ordering::Relaxed);
                                flow = Box::pin(handler.on_text(&mut ctx, frame.as_str())).await;
                                if matches!(flow, Flow::Close(..)) {
                                    break;
                                }
                            }
                            OpCode::Binary => {
                                ended = Some(End::Close(
                                    code(codes::UNSUPPORTED_DATA),
                                    "binary messages are not supported".into(),
                                ));
                                break;
                            }
                            OpCode::Close => {
                                ended = Some(End::PeerClosed);
                                break;
                            }
                            _ => {}
                        }
                        if taken < MAX_BATCH {
                            next = ws.next_frame().now_or_never();
                        }
                    }
                    if let Some(end) = flush(&mut ws, &link, &mut ctx, &metrics).await {
                        break 'session end;
                    }
                    if let Some(end) = ended {
                        break 'session end;
                    }
                    if let Flow::Close(code, reason) = flow {
                        break 'session End::Close(code, reason);
                    }
                }
                Wake::Events(first) => {
                    let mut batch = Batch::new();
                    let mut next = Some(first);
                    let (mut taken, mut released) = (0, 0);
                    while let Some(delivery) = next.take() {
                        taken += 1;
                        released += delivery.weight();
                        let admit = if delivery.head {
                            ctx.admit_head(&delivery.event)
                        } else {
                            ctx.admit(&delivery.event)
                        };
                        match admit {
                            Admit::New => batch.queue(&mut ctx, &*handler, &delivery, compression),
                            Admit::Seen => {}
                            // Boxed: rare, and its future holds a broker call.
                            Admit::Gap(since) => {
                                Box::pin(repair(
                                    &mut ctx,
                                    &mut *handler,
                                    &delivery,
                                    since,
                                    compression,
                                    &mut batch,
                                ))
                                .await
                            }
                        }
                        if taken < MAX_BATCH && batch.bytes < MAX_BATCH_BYTES {
                            next = queue.try_recv().ok();
                        } else {
                            read_first = true;
                        }
                    }
                    ctx.conn.queued.fetch_sub(released, Ordering::Relaxed);
                    metrics.record_latencies(&batch.latencies);
                    if let Some(end) = flush(&mut ws, &link, &mut ctx, &metrics).await {
                        break 'session end;
                    }
                }
                Wake::AccountDeleted => {
                    break 'session End::Close(
                        code(codes::ACCOUNT_DELETED),
                        "account deleted".into(),
                    );
                }
                Wake::SessionEnded => {
                    break 'session End::Close(code(codes::SESSION_ENDED), "session ended".into());
                }
                Wake::Expired => {
                    metrics.token_expiry_closes.fetch_add(1, Ordering::Relaxed);
                    break 'session End::Close(code(codes::TOKEN_EXPIRED), "token expired".into());
                }
                Wake::Tick => {
                    // Silent for one and a half intervals: the ping sent at
                    // the last tick went unanswered, so a dead peer is found
                    // within two intervals of its last word (30 s by
                    // default), while a live one's pong is in long before.
                    if last_seen.elapsed() > period * 3 / 2 {
                        metrics.heartbeat_timeouts.fetch_add(1, Ordering::Relaxed);
                        break 'session End::Close(code(codes::POLICY), "heartbeat timeout".into());
                    }
                    // Answering pings is not using the connection: one that
                    // neither listens to a topic nor says anything gives its
                    // slot back.
                    if let Some(idle) = limits.idle_timeout {
                        if ctx.subs.is_empty() && last_message.elapsed() > idle {
                            metrics.idle_closes.fetch_add(1, Ordering::Relaxed);
                            break 'session End::Close(
                                code(codes::POLICY),
                                format!(
                                    "idle: no subscription and no message for {} s",
                                    idle.as_secs()
                                ),
                            );
                        }
                    }
                    ctx.send(Frame::ping(Vec::new()));
                    if let Some(beat) = handler.heartbeat() {
                        ctx.send(beat);
                    }
                    if let Some(end) = flush(&mut ws, &link, &mut ctx, &metrics).await {
                        break 'session end;
                    }
                }
            }
        }
    };

    // Teardown: leave every topic first, so nothing more is queued for us.
    Box::pin(async {
        handler.on_close(&mut ctx).await;
        let topics: Vec<String> = ctx.subs.keys().cloned().collect();
        for topic in topics {
            ctx.unsubscribe(&topic).await;
        }
    })
    .await;
    drop(queue);
    match end {
        End::Close(code, reason) => super::close(&mut ws, code, reason).await,
        End::Rejected(e) => super::finish_after(&mut ws, &e).await,
        End::PeerClosed => super::finish(&mut ws).await,
        End::Gone => {}
    }
}

/// Writes what was queued, in order, with one flush. Frames go through
/// yawc; events go straight to the link, after yawc has handed over
/// whatever it holds (so nothing overtakes anything). Returns how the
/// session must end if the peer cannot take it within [`WRITE_TIMEOUT`].
async fn flush<T>(
    ws: &mut WebSocket<FrameGuard<T>>,
    link: &Link<T>,
    ctx: &mut Ctx,
    metrics: &Arc<crate::metrics::Metrics>,
) -> Option<End>
where
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    if ctx.out.is_empty() {
        return None;
    }
    let (mut messages, mut bytes) = (0, 0);
    for item in &ctx.out {
        match item {
            Out::Frame(frame) if matches!(frame.opcode(), OpCode::Text | OpCode::Binary) => {
                messages += 1;
                bytes += frame.payload().len() as u64;
            }
            Out::Frame(_) => {}
            Out::Event { plain_len, .. } => {
                messages += 1;
                bytes += *plain_len as u64;
            }
        }
    }
    metrics.messages_out.fetch_add(messages, Ordering::Relaxed);
    metrics.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    let items = ctx.out.drain(..);
    let write = async {
        let mut in_yawc = false;
        for item in items {
            match item {
                Out::Frame(frame) => {
                    ws.feed(frame).await.map_err(drop)?;
                    in_yawc = true;
                }
                Out::Event {
                    payload,
                    compressed,
                    ..
                } => {
                    if std::mem::take(&mut in_yawc) {
                        ws.flush().await.map_err(drop)?;
                    }
                    link.push_text(&payload, compressed);
                }
            }
        }
        if in_yawc {
            ws.flush().await.map_err(drop)
        } else {
            link.flush().await.map_err(drop)
        }
    };
    tokio::pin!(write);
    // Nearly every write completes at once (the socket has room); only one
    // that has to wait arms a timer.
    let result = match futures::poll!(write.as_mut()) {
        std::task::Poll::Ready(result) => result,
        // Boxed: a timer is rare here and large, and every connection would
        // carry its space otherwise.
        std::task::Poll::Pending => {
            match Box::pin(tokio::time::timeout(WRITE_TIMEOUT, write)).await {
                Ok(result) => result,
                Err(_) => return Some(End::Gone),
            }
        }
    };
    match result {
        Ok(()) => None,
        Err(()) => Some(End::Gone),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::memory::{HistoryLimits, MemoryBroker};
    use crate::broker::Sink;
    use crate::hub::Hub;
    use crate::metrics::Metrics;
    use std::collections::HashSet;
    use std::sync::Mutex;
    use tokio::io::DuplexStream;
    use yawc::{Options, Role};

    /// Subscribes to one topic; renders `message` events as
    /// `{offset}:{text}` and a resync as `resync {topic}`.
    struct Probe {
        topic: &'static str,
    }

    impl Handler for Probe {
        async fn on_open(&mut self, ctx: &mut Ctx) -> Flow {
            ctx.subscribe(self.topic, None).await.expect("subscribe");
            Flow::Continue
        }

        async fn on_text(&mut self, _ctx: &mut Ctx, _text: &str) -> Flow {
            Flow::Continue
        }

        const WIRE: Wire = Wire::Message;

        fn render(&self, delivery: &Delivery) -> Option<Bytes> {
            delivery.rendered(Self::WIRE, |e| match &e.payload {
                Payload::Message { text } => Some(format!("{}:{text}", e.offset)),
                _ => None,
            })
        }

        fn resync(&self, topic: &str, _reason: &str) -> Option<Frame> {
            Some(Frame::text(format!("resync {topic}")))
        }

        async fn on_close(&mut self, _ctx: &mut Ctx) {}
    }

    /// A memory broker whose deliveries of chosen offsets are lost on the
    /// way to the hub, as a Redis PUBLISH is while a link is down; history
    /// keeps them, as a Redis stream does.
    struct Lossy {
        rt: Realtime,
        lose: Arc<Mutex<HashSet<u64>>>,
    }

    fn lossy(max_events: usize) -> Lossy {
        let metrics = Arc::new(Metrics::default());
        let hub = Hub::new(64, 1 << 20, metrics.clone());
        let sink = hub.clone();
        let lose: Arc<Mutex<HashSet<u64>>> = Arc::default();
        let lost = lose.clone();
        let broker = MemoryBroker::new(
            HistoryLimits::new(max_events, Duration::from_secs(60)),
            Arc::new(move |e: Event| {
                if !lost.lock().unwrap().contains(&e.offset) {
                    sink.deliver(e);
                }
            }),
        );
        Lossy {
            rt: Realtime::new(hub, Arc::new(broker), metrics),
            lose,
        }
    }

    /// Runs a [`Probe`] session on an in-memory socket; returns the
    /// client's end once the subscription is in place.
    async fn probe(rt: &Realtime, topic: &'static str) -> WebSocket<DuplexStream> {
        let (server, client) = tokio::io::duplex(1 << 16);
        let (io, link) = FrameGuard::new(server);
        let ws = WebSocket::from_stream(io, Role::Server, Options::default()).unwrap();
        let limits = SessionLimits {
            ping_interval: None,
            rate_per_sec: 100.0,
            rate_burst: 100.0,
            max_subscriptions: 4,
            idle_timeout: None,
        };
        tokio::spawn(run(
            Box::new(ws),
            link,
            EventCompression::Off,
            Box::new(Probe { topic }),
            rt.clone(),
            limits,
            CancellationToken::new(),
        ));
        tokio::time::timeout(Duration::from_secs(5), async {
            while !rt.hub.has_members(topic) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("subscribed within 5 s");
        WebSocket::from_stream(client, Role::Client, Options::default()).unwrap()
    }

    async fn next_text(ws: &mut WebSocket<DuplexStream>) -> String {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next_frame())
            .await
            .expect("a frame within 5 s")
            .expect("a frame");
        frame.as_str().to_owned()
    }

    async fn publish(rt: &Realtime, topic: &str, text: &str) {
        rt.publish(
            topic,
            Payload::Message {
                text: text.to_owned(),
            },
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn lost_deliveries_are_filled_from_history_in_order() {
        let l = lossy(100);
        let mut client = probe(&l.rt, "t").await;
        l.lose.lock().unwrap().extend([2, 3]);
        for text in ["a", "b", "c", "d", "e"] {
            publish(&l.rt, "t", text).await;
        }
        for want in ["1:a", "2:b", "3:c", "4:d", "5:e"] {
            assert_eq!(next_text(&mut client).await, want);
        }
        assert_eq!(l.rt.metrics.gaps_repaired.load(Ordering::Relaxed), 1);
        assert_eq!(l.rt.metrics.resyncs.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_hole_history_cannot_fill_is_a_resync_then_live_events() {
        // History keeps two events: 2 and 3 are gone by the time 5 arrives.
        let l = lossy(2);
        let mut client = probe(&l.rt, "t").await;
        publish(&l.rt, "t", "a").await;
        assert_eq!(next_text(&mut client).await, "1:a");
        l.lose.lock().unwrap().extend([2, 3, 4]);
        for text in ["b", "c", "d", "e", "f"] {
            publish(&l.rt, "t", text).await;
        }
        assert_eq!(next_text(&mut client).await, "resync t");
        assert_eq!(next_text(&mut client).await, "5:e");
        assert_eq!(next_text(&mut client).await, "6:f");
        assert_eq!(l.rt.metrics.resyncs.load(Ordering::Relaxed), 1);
        assert_eq!(l.rt.metrics.gaps_repaired.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_new_epoch_is_a_resync_never_a_silent_restart() {
        let l = lossy(100);
        let mut client = probe(&l.rt, "t").await;
        publish(&l.rt, "t", "a").await;
        assert_eq!(next_text(&mut client).await, "1:a");
        // The stream starts over (history lost): offsets restart at 1.
        l.rt.forget("t").await.unwrap();
        publish(&l.rt, "t", "b").await;
        publish(&l.rt, "t", "c").await;
        assert_eq!(next_text(&mut client).await, "resync t");
        assert_eq!(next_text(&mut client).await, "1:b");
        assert_eq!(next_text(&mut client).await, "2:c");
        assert_eq!(l.rt.metrics.resyncs.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_head_ahead_of_the_last_event_sent_fills_the_tail_from_history() {
        // Events 2 and 3 were published while the link was down and no
        // later event comes: only the head says they exist.
        let l = lossy(100);
        let mut client = probe(&l.rt, "t").await;
        publish(&l.rt, "t", "a").await;
        assert_eq!(next_text(&mut client).await, "1:a");
        l.lose.lock().unwrap().extend([2, 3]);
        publish(&l.rt, "t", "b").await;
        publish(&l.rt, "t", "c").await;
        let head = l.rt.position("t").await.unwrap();
        l.rt.hub.head("t", head.clone());
        assert_eq!(next_text(&mut client).await, "2:b");
        assert_eq!(next_text(&mut client).await, "3:c");
        // A head it has reached changes nothing; the next event follows.
        l.rt.hub.head("t", head);
        publish(&l.rt, "t", "d").await;
        assert_eq!(next_text(&mut client).await, "4:d");
        assert_eq!(l.rt.metrics.gaps_repaired.load(Ordering::Relaxed), 1);
        assert_eq!(l.rt.metrics.resyncs.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_head_in_a_new_epoch_is_a_resync_then_the_new_epoch_from_its_start() {
        // The back end lost the stream and started over; the new epoch's
        // first event never arrived live, but its history has it.
        let l = lossy(100);
        let mut client = probe(&l.rt, "t").await;
        publish(&l.rt, "t", "a").await;
        assert_eq!(next_text(&mut client).await, "1:a");
        l.rt.forget("t").await.unwrap();
        l.lose.lock().unwrap().insert(1);
        publish(&l.rt, "t", "b").await;
        let head = l.rt.position("t").await.unwrap();
        l.rt.hub.head("t", head);
        assert_eq!(next_text(&mut client).await, "resync t");
        assert_eq!(next_text(&mut client).await, "1:b");
        l.lose.lock().unwrap().clear();
        publish(&l.rt, "t", "c").await;
        assert_eq!(next_text(&mut client).await, "2:c");
        assert_eq!(l.rt.metrics.resyncs.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn contiguous_deliveries_need_no_repair() {
        let l = lossy(100);
        let mut client = probe(&l.rt, "t").await;
        for text in ["a", "b", "c"] {
            publish(&l.rt, "t", text).await;
        }
        for want in ["1:a", "2:b", "3:c"] {
            assert_eq!(next_text(&mut client).await, want);
        }
        assert_eq!(l.rt.metrics.gaps_repaired.load(Ordering::Relaxed), 0);
        assert_eq!(l.rt.metrics.resyncs.load(Ordering::Relaxed), 0);
    }
}
