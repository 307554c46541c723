//! The browser's live connection to `/ws/v1` (hydrate only).
//!
//! One socket per page. It subscribes to the board's topic (`tasks` for
//! the shared board, `board:<id>` for the others) from the last
//! position the page knows (the server-rendered snapshot's at first, then
//! the last event seen), so a reconnect replays exactly what was missed.
//! Every message goes to the board's reducer; nothing else changes state.
//! When the server reports that the gap could not be recovered (a resume
//! answered `recovered: false`, or a `resync`), the task list is reloaded
//! over REST. Reconnects back off exponentially with
//! jitter, and a connection that hears nothing (not even the heartbeat) for
//! two heartbeat intervals is treated as dead.
//!
//! When someone is signed in, the connection sends `auth` with the token
//! first and, once the server answers `authed`, subscribes to the user's
//! personal topic, whose notifications become toasts. The token is sent
//! in-band rather than as a subprotocol so it never appears in handshake
//! headers. A connection belongs to one user: when the page signs in or out
//! it is replaced by a new one (the server refuses another user's token on
//! an authenticated connection anyway), while a refreshed token of the same
//! user is just sent as another `auth`, which moves the server's expiry
//! deadline. A close with 4001 (the token ran out regardless) or 4003 (the
//! account was deleted) signs out.

use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures::future::{select, Either};
use futures::{SinkExt, StreamExt};
use gloo_net::websocket::{futures::WebSocket, Message, WebSocketError};
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use send_wrapper::SendWrapper;

use crate::auth::{Auth, Session};
use crate::board::{Action, Board, Connection};
use crate::components::Dispatch;
use crate::protocol::{
    board_topic, user_topic, ClientMessage, ErrorCode, Payload, ServerMessage, StreamPosition,
    CLOSE_ACCOUNT_DELETED, CLOSE_SESSION_ENDED, CLOSE_TOKEN_EXPIRED,
};

/// Silence allowed before the server's `hello` names its heartbeat.
const DEFAULT_SILENCE_MS: u32 = 75_000;
const MAX_BACKOFF_MS: u32 = 15_000;

/// Tells the connection that the page's session changed; the connection
/// compares it with the one it holds and decides what to do.
pub struct SessionChanged;

/// The receiving end of [`follow_session`], handed to [`connect`].
pub type Changes = SendWrapper<UnboundedReceiver<SessionChanged>>;

/// Creates an effect that reports every change of the sign-in state. Call
/// it in a component body (not inside another effect, which would dispose
/// it on its next run).
pub fn follow_session(auth: Auth) -> Changes {
    let (tx, rx) = unbounded::<SessionChanged>();
    let tx: SendWrapper<UnboundedSender<SessionChanged>> = SendWrapper::new(tx);
    Effect::new(move |_| {
        auth.session();
        let _ = tx.unbounded_send(SessionChanged);
    });
    SendWrapper::new(rx)
}

fn endpoint() -> Option<String> {
    let location = window().location();
    let scheme = if location.protocol().ok()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    Some(format!("{scheme}://{}/ws/v1", location.host().ok()?))
}

fn backoff_ms(failures: u32) -> u32 {
    let base = 500u32
        .saturating_mul(1 << failures.min(5))
        .min(MAX_BACKOFF_MS);
    // Jitter spreads a server restart's reconnect storm.
    base + (js_sys::Math::random() * f64::from(base) * 0.3) as u32
}

/// Everything a connection needs from the page.
#[derive(Clone, Copy)]
pub struct Page {
    pub board: RwSignal<Board>,
    /// The board whose topic this page follows.
    pub board_id: i64,
    pub dispatch: Dispatch,
    /// Reloads the task list after an unrecoverable gap.
    pub reload: Callback<()>,
    /// Reads the board (name, role, members) again, without its tasks.
    pub refresh_board: Callback<()>,
    pub auth: Auth,
    /// Signs out with the reason to show.
    pub expired: Callback<String>,
}

/// How one connection ended.
enum End {
    /// It failed or was closed; `live` says whether it had got as far as a
    /// confirmed subscription.
    Dropped { live: bool },
    /// The page signed in or out: reconnect at once as the new user.
    SessionChanged,
    /// The server closed it because the token ran out (4001) or the
    /// account was deleted (4003): the session is over, with this reason.
    SignedOut(&'static str),
    /// The page that owned the connection is gone: stop for good.
    PageGone,
    /// The board's topic was refused (the reader may not read it, or no
    /// longer): wait for the session to change before trying again.
    Refused,
}

/// Starts the connection loop; it runs as long as the page.
pub fn connect(page: Page, initial: Option<StreamPosition>, mut changes: Changes) {
    leptos::task::spawn_local(async move {
        let Some(url) = endpoint() else { return };
        let topic = board_topic(page.board_id);
        let mut since = initial;
        let mut failures = 0u32;
        loop {
            page.dispatch
                .run(Action::Connection(Connection::Connecting));
            let end = session(&url, &topic, since.clone(), page, &mut changes).await;
            page.dispatch.run(Action::Connection(Connection::Offline));
            since = position_of(page.board, &topic);
            match end {
                End::PageGone => return,
                End::Refused => {
                    if changes.next().await.is_none() {
                        return;
                    }
                    failures = 0;
                }
                End::SessionChanged => failures = 0,
                End::SignedOut(reason) => {
                    failures = 0;
                    page.expired.run(reason.into());
                }
                End::Dropped { live } => {
                    failures = if live { 0 } else { failures.saturating_add(1) };
                    TimeoutFuture::new(backoff_ms(failures)).await;
                }
            }
        }
    });
}

/// What the connection's loop waits for.
enum Input {
    Frame(Option<Result<Message, WebSocketError>>),
    Changed,
    Quiet,
}

/// Hands out command ids, and remembers the ones whose replies matter.
#[derive(Default)]
struct Ids {
    next: u64,
    tasks: u64,
    auth: Vec<u64>,
}

impl Ids {
    fn next(&mut self) -> u64 {
        self.next += 1;
        self.next
    }
}

/// The position to resume a topic from, if the board has seen it.
fn position_of(board: RwSignal<Board>, topic: &str) -> Option<StreamPosition> {
    board.with_untracked(|b| {
        b.positions
            .get(topic)
            .map(|(offset, epoch)| StreamPosition {
                offset: *offset,
                epoch: epoch.clone(),
            })
    })
}

/// One connection, until it fails or the page's session changes.
async fn session(
    url: &str,
    topic: &str,
    since: Option<StreamPosition>,
    page: Page,
    changes: &mut Changes,
) -> End {
    let dropped = End::Dropped { live: false };
    let Ok(ws) = WebSocket::open(url) else {
        return dropped;
    };
    let (mut tx, mut rx) = ws.split();
    // The user this connection acts for, fixed for its lifetime.
    let signed_in: Option<Session> = page.auth.session_untracked();
    let mut sent_token = signed_in.as_ref().map(|s| s.token.clone());
    let mut personal_subscribed = false;
    let mut ids = Ids::default();
    let resuming = since.is_some();

    let mut out = Vec::new();
    if let Some(s) = &signed_in {
        let id = ids.next();
        ids.auth.push(id);
        out.push(ClientMessage::Auth {
            id,
            token: s.token.clone(),
        });
    }
    ids.tasks = ids.next();
    out.push(ClientMessage::Subscribe {
        id: ids.tasks,
        topic: topic.to_owned(),
        since,
    });
    for msg in out {
        if !send(&mut tx, &msg).await {
            return dropped;
        }
    }

    let mut live = false;
    let mut silence_ms = DEFAULT_SILENCE_MS;
    loop {
        let next = {
            let frame = rx.next();
            let changed = changes.next();
            let quiet = TimeoutFuture::new(silence_ms);
            match select(select(frame, changed), quiet).await {
                Either::Left((Either::Left((frame, _)), _)) => Input::Frame(frame),
                Either::Left((Either::Right((Some(SessionChanged), _)), _)) => Input::Changed,
                Either::Left((Either::Right((None, _)), _)) => return End::PageGone,
                Either::Right(_) => Input::Quiet,
            }
        };
        let text = match next {
            Input::Frame(Some(Ok(Message::Text(text)))) => text,
            Input::Frame(Some(Ok(Message::Bytes(_)))) => continue,
            Input::Frame(Some(Err(WebSocketError::ConnectionClose(e))))
                if e.code == CLOSE_TOKEN_EXPIRED =>
            {
                return End::SignedOut("Your session expired; please sign in again.");
            }
            Input::Frame(Some(Err(WebSocketError::ConnectionClose(e))))
                if e.code == CLOSE_ACCOUNT_DELETED =>
            {
                return End::SignedOut("Your account was deleted; you are signed out.");
            }
            Input::Frame(Some(Err(WebSocketError::ConnectionClose(e))))
                if e.code == CLOSE_SESSION_ENDED =>
            {
                return End::SignedOut(
                    "You were signed out (the session ended, or the password was changed).",
                );
            }
            // Closed, failed, or silent for too long.
            Input::Frame(_) | Input::Quiet => return End::Dropped { live },
            Input::Changed => {
                let now = page.auth.session_untracked();
                let same_user =
                    now.as_ref().map(|s| &s.username) == signed_in.as_ref().map(|s| &s.username);
                if !same_user {
                    return End::SessionChanged;
                }
                // Same user, new token (a refresh): extend this connection.
                let token = now.map(|s| s.token);
                if token.is_some() && token != sent_token {
                    let id = ids.next();
                    ids.auth.push(id);
                    let msg = ClientMessage::Auth {
                        id,
                        token: token.clone().unwrap_or_default(),
                    };
                    if !send(&mut tx, &msg).await {
                        return End::Dropped { live };
                    }
                    sent_token = token;
                }
                continue;
            }
        };
        let Ok(msg) = serde_json::from_str::<ServerMessage>(&text) else {
            continue;
        };
        match &msg {
            ServerMessage::Hello { heartbeat_ms, .. } if *heartbeat_ms > 0 => {
                silence_ms =
                    u32::try_from(heartbeat_ms.saturating_mul(2) + 5_000).unwrap_or(u32::MAX);
            }
            ServerMessage::Subscribed { id, recovered, .. } if *id == ids.tasks => {
                live = true;
                page.dispatch.run(Action::Connection(Connection::Live));
                // A subscription from nowhere (a board loaded over REST,
                // whose answer carries no stream position) starts after
                // the list was read: a change in between would be in
                // neither, so the list is read again, now that every later
                // change arrives here.
                if !resuming || !recovered {
                    page.reload.run(());
                }
            }
            // Task events were lost for good (history no longer held
            // them): the list is reloaded, as for a failed resume.
            ServerMessage::Resync { topic: t, .. } if t == topic => {
                page.reload.run(());
            }
            // The board is gone: load the page again, which says so.
            ServerMessage::Event(event)
                if event.topic == topic
                    && matches!(event.payload, Payload::BoardDeleted { .. }) =>
            {
                page.reload.run(());
            }
            // The board itself changed (renamed, shared, members, labels): read it
            // again, without its tasks; a reader who lost access gets the
            // whole page loaded again, which says why.
            ServerMessage::Event(event)
                if event.topic == topic
                    && matches!(
                        event.payload,
                        Payload::BoardUpdated { .. }
                            | Payload::MemberSet { .. }
                            | Payload::MemberRemoved { .. }
                            | Payload::LabelSet { .. }
                            | Payload::LabelRemoved { .. }
                    ) =>
            {
                page.refresh_board.run(());
            }
            ServerMessage::Error { id: Some(id), .. } if *id == ids.tasks => {
                page.dispatch.run(Action::Server(msg.clone()));
                return End::Refused;
            }
            ServerMessage::Authed { user, .. } if !personal_subscribed => {
                // Resume the personal topic too, so a notification sent
                // while reconnecting is not lost.
                let topic = user_topic(user);
                let since = position_of(page.board, &topic);
                let msg = ClientMessage::Subscribe {
                    id: ids.next(),
                    topic,
                    since,
                };
                if !send(&mut tx, &msg).await {
                    return End::Dropped { live };
                }
                personal_subscribed = true;
            }
            ServerMessage::Error {
                id: Some(id), code, ..
            } if ids.auth.contains(id)
                && matches!(code, ErrorCode::Unauthorized | ErrorCode::Forbidden) =>
            {
                // The token was refused (account gone, server secret
                // changed): the session is over. Signing out changes the
                // session, which replaces this connection.
                page.expired
                    .run("Your session has ended; please sign in again.".into());
                continue;
            }
            _ => {}
        }
        page.dispatch.run(Action::Server(msg));
    }
}

/// Sends one command; false when the socket is gone.
async fn send<S>(tx: &mut S, msg: &ClientMessage) -> bool
where
    S: futures::Sink<Message> + Unpin,
{
    match serde_json::to_string(msg) {
        Ok(text) => tx.send(Message::Text(text)).await.is_ok(),
        Err(_) => false,
    }
}
