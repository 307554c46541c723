//! The browser's live connection to `/ws/v1` (hydrate only).
//!
//! One socket per page. It subscribes to the `tasks` topic from the last
//! position the page knows (the server-rendered snapshot's at first, then
//! the last event seen), so a reconnect replays exactly what was missed.
//! Every message goes to the board's reducer; nothing else changes state.
//! When the server reports that the gap could not be recovered, the task
//! list is reloaded over REST. Reconnects back off exponentially with
//! jitter, and a connection that hears nothing (not even the heartbeat) for
//! two heartbeat intervals is treated as dead.

use futures::future::{select, Either};
use futures::{SinkExt, StreamExt};
use gloo_net::websocket::{futures::WebSocket, Message};
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;

use crate::board::{Action, Board, Connection};
use crate::components::Dispatch;
use crate::protocol::{ClientMessage, ServerMessage, StreamPosition};

const TASKS: &str = "tasks";
/// Silence allowed before the server's `hello` names its heartbeat.
const DEFAULT_SILENCE_MS: u32 = 75_000;
const MAX_BACKOFF_MS: u32 = 15_000;

fn endpoint() -> Option<String> {
    let location = window().location();
    let scheme = if location.protocol().ok()? == "https:" { "wss" } else { "ws" };
    Some(format!("{scheme}://{}/ws/v1", location.host().ok()?))
}

fn backoff_ms(failures: u32) -> u32 {
    let base = 500u32.saturating_mul(1 << failures.min(5)).min(MAX_BACKOFF_MS);
    // Jitter spreads a server restart's reconnect storm.
    base + (js_sys::Math::random() * f64::from(base) * 0.3) as u32
}

/// Starts the connection loop; it runs as long as the page.
pub fn connect(
    board: RwSignal<Board>,
    dispatch: Dispatch,
    initial: Option<StreamPosition>,
    reload: Callback<()>,
) {
    leptos::task::spawn_local(async move {
        let Some(url) = endpoint() else { return };
        let mut since = initial;
        let mut failures = 0u32;
        loop {
            dispatch.run(Action::Connection(Connection::Connecting));
            let was_live = session(&url, since.clone(), dispatch, reload).await;
            dispatch.run(Action::Connection(Connection::Offline));
            failures = if was_live { 0 } else { failures.saturating_add(1) };
            since = board.with_untracked(|b| {
                b.positions
                    .get(TASKS)
                    .map(|(offset, epoch)| StreamPosition { offset: *offset, epoch: epoch.clone() })
            });
            TimeoutFuture::new(backoff_ms(failures)).await;
        }
    });
}

/// One connection, until it fails. Returns whether it got as far as a
/// confirmed subscription.
async fn session(
    url: &str,
    since: Option<StreamPosition>,
    dispatch: Dispatch,
    reload: Callback<()>,
) -> bool {
    let Ok(ws) = WebSocket::open(url) else { return false };
    let (mut tx, mut rx) = ws.split();
    let resuming = since.is_some();
    let subscribe = ClientMessage::Subscribe { id: 1, topic: TASKS.into(), since };
    let Ok(text) = serde_json::to_string(&subscribe) else { return false };
    if tx.send(Message::Text(text)).await.is_err() {
        return false;
    }
    let mut live = false;
    let mut silence_ms = DEFAULT_SILENCE_MS;
    loop {
        let next = rx.next();
        let quiet = TimeoutFuture::new(silence_ms);
        let text = match select(next, quiet).await {
            Either::Left((Some(Ok(Message::Text(text))), _)) => text,
            Either::Left((Some(Ok(Message::Bytes(_))), _)) => continue,
            // Closed, failed, or silent for too long.
            _ => return live,
        };
        let Ok(msg) = serde_json::from_str::<ServerMessage>(&text) else { continue };
        match &msg {
            ServerMessage::Hello { heartbeat_ms, .. } if *heartbeat_ms > 0 => {
                silence_ms = u32::try_from(heartbeat_ms.saturating_mul(2) + 5_000).unwrap_or(u32::MAX);
            }
            ServerMessage::Subscribed { recovered, .. } => {
                live = true;
                dispatch.run(Action::Connection(Connection::Live));
                if resuming && !recovered {
                    reload.run(());
                }
            }
            _ => {}
        }
        dispatch.run(Action::Server(msg));
    }
}
