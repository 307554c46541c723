//! WebSocket endpoints.
//!
//! All of them use yawc rather than axum's built-in WebSocket, because yawc
//! implements permessage-deflate (RFC 7692) and enforces message and buffer
//! limits itself, closing with 1009 when a peer exceeds them.

pub mod autobahn;
pub mod board_access;
pub mod channel;
pub mod chat;
pub mod deflate;
pub mod echo;
pub mod live_sessions;
pub mod notify;
pub mod seats;
pub mod secure;
pub mod session;
pub mod stream;
pub mod typed;
pub mod upgrade;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures::SinkExt;
use tokio_util::sync::CancellationToken;
use yawc::close::CloseCode;

use app::protocol::close as codes;
use yawc::frame::Frame;
use yawc::Options;

use app::protocol::validate_topic;

use crate::auth::{AuthError, WsUser};
use crate::config::Config;
use crate::error::{ApiError, Path};
use crate::metrics::Metrics;
use crate::state::AppState;
use session::{Handler, SessionLimits};
use upgrade::{Accepted, WsUpgrade};

/// A connection's socket buffers at rest. yawc's default is 8 KiB each;
/// clients send commands of a few hundred bytes, a buffer grows for a
/// larger message and shrinks back after it, so a small resting size only
/// saves memory: about 14 KiB per idle connection.
const READ_BUFFER: usize = 512;
/// yawc writes only control frames and replies; events go through the
/// session's own link (`stream.rs`).
const WRITE_BUFFER: usize = 256;

/// Idle deflate states kept for reuse; about the number of messages
/// compressed at the same moment (worker threads), not of connections.
const DEFLATE_POOL: usize = 16;

/// The yawc options every endpoint starts from, built once at start-up:
/// our message limit (yawc's bounds are exclusive, hence the `+ 1`) for
/// single frames, for fragmented messages and for the inflated size of
/// compressed ones; UTF-8 validation of text frames; small resting
/// buffers; compression for peers that offer it, skipped for messages too
/// small to gain from it.
///
/// Compression is negotiated without context takeover in both directions
/// (RFC 7692 lets the server require it), with deflate state borrowed from
/// a pool for one message at a time. With context takeover every
/// connection keeps a compressor and a decompressor for its whole life,
/// about 370 KiB; every browser offers compression, so ten thousand open
/// tabs would pin gigabytes. Without it a message cannot refer back to
/// earlier ones, which costs little here: events are separate JSON
/// documents, and most are compressed on their own anyway.
pub fn options(config: &Config) -> Options {
    let limit = config.ws_max_message_bytes.max(1).saturating_add(1);
    Options::default()
        .with_limits(limit, limit)
        .with_utf8()
        .with_read_buffer_capacity(READ_BUFFER)
        .with_write_buffer_capacity(WRITE_BUFFER)
        .with_balanced_compression()
        .server_no_context_takeover()
        .client_no_context_takeover()
        .with_deflate_pool(yawc::DeflatePool::new(DEFLATE_POOL))
        .with_compression_threshold(128)
        .with_no_delay()
}

/// How long sending our close frame, and then waiting for the peer's, may
/// take each.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Closes a connection from our side: sends a close frame, then waits
/// briefly for the peer's, reading and discarding whatever it still sends.
///
/// Why wait: dropping a socket while data it received is still unread
/// makes the kernel answer with a reset, and a reset can destroy our close
/// frame in the peer's buffers before it is read, so a client that was,
/// say, flooding would see "connection reset" instead of 1008 and a
/// reason. Both waits are bounded, so a peer cannot hold us.
pub async fn close<S>(ws: &mut yawc::WebSocket<S>, code: CloseCode, reason: impl AsRef<[u8]>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let sent = tokio::time::timeout(CLOSE_WAIT, ws.send(Frame::close(code, reason))).await;
    if !matches!(sent, Ok(Ok(()))) {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        loop {
            match ws.next_frame().await {
                Ok(frame) if frame.opcode() == yawc::frame::OpCode::Close => return,
                Ok(_) => {}
                Err(_) => return,
            }
        }
    })
    .await;
}

/// Ends a connection whose last read failed. yawc queues its own close
/// frame for framing errors (1009 for an oversized message, 1002 for
/// protocol errors); invalid UTF-8 is detected a layer above that, so we
/// send its 1007 ourselves. Bounded, so a peer that stopped reading cannot
/// hold us.
pub async fn finish_after(
    ws: &mut yawc::WebSocket<impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>,
    error: &yawc::WebSocketError,
) {
    if matches!(error, yawc::WebSocketError::InvalidUTF8) {
        close(
            ws,
            code(codes::INVALID_DATA),
            "text message is not valid UTF-8",
        )
        .await;
        return;
    }
    finish(ws).await;
}

/// Flushes a close frame yawc queued and closes the socket.
pub async fn finish<S>(ws: &mut yawc::WebSocket<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures::Sink;
    // `poll_ready` is what writes yawc's queued ("obligated") frames; a
    // plain flush or close would not send the 1009 first.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        let _ = futures::future::poll_fn(|cx| std::pin::Pin::new(&mut *ws).poll_ready(cx)).await;
        let _ = ws.flush().await;
    })
    .await;
}

/// Counts open WebSocket connections against `--ws-max-connections`, and
/// signed-in ones per account against `--ws-max-connections-per-user`, so
/// one leaked token cannot take every slot. The per-account entry is also
/// how deleting an account reaches its live connections.
pub struct ConnectionGate {
    open: AtomicUsize,
    max: usize,
    metrics: Arc<Metrics>,
    per_user_max: usize,
    per_user: std::sync::Mutex<HashMap<i64, Seats>>,
    /// With Redis: the per-account count across every instance.
    cluster: std::sync::OnceLock<Arc<seats::ClusterSeats>>,
    /// Live connections per session, for ending a session's sockets.
    pub sessions: Arc<live_sessions::LiveSessions>,
}

/// An account's live connections on this instance: how many, and the
/// token they all watch, cancelled when the account is deleted.
struct Seats {
    open: usize,
    ended: CancellationToken,
}

/// One account's connection slot; dropping it frees the slot.
pub struct UserPermit {
    gate: Arc<ConnectionGate>,
    user_id: i64,
    /// Cancelled when the account is deleted; the session closes with 4003.
    pub ended: CancellationToken,
    /// The cluster-wide seat, when Redis is configured and answered.
    _cluster: Option<seats::ClusterSeat>,
}

impl UserPermit {
    /// Watches the connection's session too, so ending the session (or
    /// deleting the account) closes it.
    pub fn watch_session(&self, sid: &str) -> live_sessions::SessionWatch {
        self.gate.sessions.watch(self.user_id, sid, &self.ended)
    }
}

impl Drop for UserPermit {
    fn drop(&mut self) {
        let mut map = self.gate.per_user.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(seats) = map.get_mut(&self.user_id) {
            seats.open = seats.open.saturating_sub(1);
            if seats.open == 0 {
                map.remove(&self.user_id);
            }
        }
    }
}

/// One admitted connection; dropping it frees the slot.
pub struct Permit(Arc<ConnectionGate>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0
            .metrics
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnectionGate {
    pub fn new(max: usize, per_user_max: usize, metrics: Arc<Metrics>) -> Self {
        ConnectionGate {
            open: AtomicUsize::new(0),
            max,
            metrics,
            per_user_max,
            per_user: Default::default(),
            cluster: Default::default(),
            sessions: Default::default(),
        }
    }

    /// Counts accounts' connections across the cluster from now on.
    pub fn set_cluster(&self, seats: Arc<seats::ClusterSeats>) {
        let _ = self.cluster.set(seats);
    }

    /// [`try_acquire_user`](Self::try_acquire_user), and with Redis a seat
    /// in the account's count across every instance too.
    pub async fn acquire_user(self: &Arc<Self>, user_id: i64) -> Option<UserPermit> {
        let mut permit = self.try_acquire_user(user_id)?;
        if let Some(cluster) = self.cluster.get() {
            match cluster.take(user_id).await {
                seats::Taken::Seated(seat) => permit._cluster = Some(seat),
                seats::Taken::Unavailable => {}
                seats::Taken::Full => {
                    self.metrics
                        .connections_rejected
                        .fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        }
        Some(permit)
    }

    /// A slot for one more connection of `user_id`, or `None` when the
    /// account has its maximum open.
    pub fn try_acquire_user(self: &Arc<Self>, user_id: i64) -> Option<UserPermit> {
        let mut map = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        let seats = map.entry(user_id).or_insert_with(|| Seats {
            open: 0,
            ended: CancellationToken::new(),
        });
        if seats.open >= self.per_user_max {
            self.metrics
                .connections_rejected
                .fetch_add(1, Ordering::Relaxed);
            return None;
        }
        seats.open += 1;
        Some(UserPermit {
            gate: self.clone(),
            user_id,
            ended: seats.ended.clone(),
            _cluster: None,
        })
    }

    /// Ends every live connection of `user_id` on this instance (its
    /// account was deleted).
    pub fn end_user(&self, user_id: i64) {
        let mut map = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(seats) = map.remove(&user_id) {
            seats.ended.cancel();
        }
    }

    /// A permit, or `None` when the limit is reached.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let admitted = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        if admitted {
            self.metrics
                .connections_open
                .fetch_add(1, Ordering::Relaxed);
            self.metrics
                .connections_total
                .fetch_add(1, Ordering::Relaxed);
            Some(Permit(self.clone()))
        } else {
            self.metrics
                .connections_rejected
                .fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// A close code of the shared protocol, as yawc takes it.
pub(crate) fn code(c: u16) -> CloseCode {
    CloseCode::from(c)
}

/// Looks the connection's session up again once its seat and session
/// watch are registered. An account deleted (or a session ended) between
/// the token check and that registration would otherwise be missed: the
/// deletion's sweep of live connections ran before this one was there to
/// find. After the registration, whichever comes later sees the other.
/// `Some` is the close to send; a store that does not answer is not a
/// reason to close (the token was checked moments ago).
pub(crate) async fn recheck_session(
    store: &crate::store::TaskStore,
    user: &crate::auth::AuthUser,
) -> Option<(CloseCode, String)> {
    match store.sessions().user(&user.session.id, user.id).await {
        Ok(Some(_)) | Err(_) => None,
        Ok(None) => Some(match store.users().by_id(user.id).await {
            Ok(None) => (code(codes::ACCOUNT_DELETED), "account deleted".into()),
            _ => (code(codes::SESSION_ENDED), "session ended".into()),
        }),
    }
}

/// Completes the handshake, then either runs `body` with a connection
/// permit or, over the limit, closes with 1008 and a reason (a browser sees
/// the close reason; it cannot see the body of a refused handshake).
pub fn spawn_connection<F, Fut>(
    state: &AppState,
    upgrade: WsUpgrade,
    options: Options,
    body: F,
) -> Response
where
    F: FnOnce(Accepted) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let ticket = upgrade.ticket.clone();
    let (resp, socket) = match upgrade.accept(options) {
        Ok(pair) => pair,
        Err(e) => return e.into_response(),
    };
    let permit = state.gate.try_acquire();
    let session = async move {
        let _ticket = ticket;
        let Some(mut accepted) = socket.await else {
            return;
        };
        let Some(_permit) = permit else {
            close(
                &mut accepted.ws,
                code(codes::POLICY),
                "too many connections",
            )
            .await;
            return;
        };
        body(accepted).await;
    };
    state.sessions.spawn_on(session, &state.sessions_runtime);
    resp
}

/// Runs `handler` as a hub session on an accepted upgrade.
fn spawn_session<H: Handler>(state: &AppState, upgrade: WsUpgrade, handler: H) -> Response {
    let limits = SessionLimits {
        ping_interval: state.config.ping_interval(),
        rate_per_sec: f64::from(state.config.ws_rate_per_sec.max(1)),
        rate_burst: f64::from(state.config.ws_rate_burst.max(1)),
        max_subscriptions: state.config.ws_max_subscriptions,
        idle_timeout: (state.config.ws_idle_timeout_secs > 0)
            .then(|| std::time::Duration::from_secs(state.config.ws_idle_timeout_secs)),
    };
    let rt = state.rt.clone();
    let shutdown = state.shutdown.clone();
    spawn_connection(state, upgrade, state.ws_options.clone(), move |c| {
        session::run(
            Box::new(c.ws),
            c.link,
            c.compression,
            Box::new(handler),
            rt,
            limits,
            shutdown,
        )
    })
}

/// Checks a path segment used as a topic or client id before the upgrade,
/// so a bad one gets an HTTP 400 with a JSON body.
fn checked_segment(segment: &str) -> Result<(), ApiError> {
    validate_topic(segment).map_err(|e| ApiError::BadPath(e.to_string()))
}

/// `GET /ws/v1`. Anonymous connections may read public topics; a token on
/// the upgrade request signs the connection in from the start.
pub async fn typed_handler(
    State(state): State<AppState>,
    upgrade: WsUpgrade,
    WsUser(user): WsUser,
) -> Response {
    let heartbeat_ms = state
        .config
        .ping_interval()
        .map_or(0, |d| d.as_millis() as u64);
    let seat = match &user {
        Some(u) => match state.gate.acquire_user(u.id).await {
            Some(permit) => Some(permit),
            None => return over_user_limit(&state, upgrade),
        },
        None => None,
    };
    let handler = typed::Typed {
        heartbeat_ms,
        user,
        seat,
        watch: None,
        auth: state.auth.clone(),
        store: state.store.clone(),
        gate: state.gate.clone(),
        boards: Default::default(),
    };
    spawn_session(&state, upgrade, handler)
}

/// `GET /ws/secure/{topic}`: a token is required before the upgrade.
pub async fn secure_handler(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    upgrade: WsUpgrade,
    WsUser(user): WsUser,
) -> Response {
    if let Err(e) = checked_segment(&topic) {
        return e.into_response();
    }
    let Some(user) = user else {
        state
            .metrics
            .auth_rejections
            .fetch_add(1, Ordering::Relaxed);
        return ApiError::from(AuthError::Missing).into_response();
    };
    let topic = format!("secure:{topic}");
    if let Err(e) = checked_segment(&topic) {
        return e.into_response();
    }
    let Some(seat) = state.gate.acquire_user(user.id).await else {
        return over_user_limit(&state, upgrade);
    };
    let handler = secure::Secure {
        user,
        topic,
        seat,
        watch: None,
        store: state.store.clone(),
    };
    spawn_session(&state, upgrade, handler)
}

/// The close reason for an account over its connection limit.
pub const USER_LIMIT_REASON: &str = "too many connections for this account";

/// Completes the handshake only to close with 1008 and a reason, as for the
/// global limit: a browser can read a close reason, not a refused
/// handshake's body.
fn over_user_limit(state: &AppState, upgrade: WsUpgrade) -> Response {
    spawn_connection(
        state,
        upgrade,
        state.ws_options.clone(),
        |mut c| async move { close(&mut c.ws, code(codes::POLICY), USER_LIMIT_REASON).await },
    )
}

/// `GET /ws`: echo.
pub async fn echo_handler(State(state): State<AppState>, upgrade: WsUpgrade) -> Response {
    spawn_session(&state, upgrade, echo::Echo)
}

/// `GET /ws/{client_id}`.
pub async fn chat_handler(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    upgrade: WsUpgrade,
) -> Response {
    if let Err(e) = checked_segment(&client_id) {
        return e.into_response();
    }
    spawn_session(&state, upgrade, chat::Chat { client_id })
}

/// `GET /ws/redis/{channel}`: anonymous, like the seed's; channels are
/// public topics.
pub async fn channel_handler(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    upgrade: WsUpgrade,
) -> Response {
    match crate::channels::topic_of(&channel) {
        Ok(topic) => spawn_session(&state, upgrade, channel::Channel { topic }),
        Err(e) => e.into_response(),
    }
}

/// `GET /ws/notifications/{topic}`. Anonymous, so personal (`user:*`) and
/// secure (`secure:*`) topics are refused with 403: they are served only
/// where a token is checked (`/ws/v1`, `/ws/secure/{topic}`).
pub async fn notifications_handler(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    upgrade: WsUpgrade,
) -> Response {
    if let Err(e) = checked_segment(&topic) {
        return e.into_response();
    }
    // The typed endpoint's reading rules, for a caller without a token.
    if crate::topics::may_read(&topic, None).is_err() {
        state
            .metrics
            .auth_rejections
            .fetch_add(1, Ordering::Relaxed);
        let why = "personal and secure topics need a token: use /ws/v1 or /ws/secure/{topic}";
        return ApiError::Forbidden(why.into()).into_response();
    }
    // A board's topic is readable here only when the board is public.
    let tokenless = crate::boards::Subscriber::Tokenless;
    if let Err(refusal) = crate::boards::may_subscribe(&state.store, &topic, tokenless).await {
        return crate::boards::refused(refusal).into_response();
    }
    spawn_session(&state, upgrade, notify::Notifications::new(topic))
}
