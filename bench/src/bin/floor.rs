//! The floor: what a WebSocket fan-out server costs on axum and tokio when
//! it does nothing else. No storage, no protocol, no limits, no history: a
//! `tokio::sync::broadcast` channel per topic and one writer per socket.
//!
//! It serves the seed article's wire texts on the same paths as Pulseboard,
//! so the load generator drives both identically:
//! `POST /tasks` (`{"title"}`) → `New task created: {title}` on `tasks`,
//! `/ws/notifications/{topic}`, `/ws/{client_id}` (chat), `/ws` (echo).
//!
//! Run: `bench-floor 127.0.0.1:4000`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use futures::{SinkExt, StreamExt};
use tokio::sync::broadcast;

/// One broadcast channel per topic, created on first use.
#[derive(Clone, Default)]
struct Topics(Arc<Mutex<HashMap<String, broadcast::Sender<Utf8Bytes>>>>);

impl Topics {
    fn get(&self, topic: &str) -> broadcast::Sender<Utf8Bytes> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(topic.to_owned())
            .or_insert_with(|| broadcast::channel(1024).0)
            .clone()
    }
}

#[derive(serde::Deserialize)]
struct NewTask {
    title: String,
}

async fn create_task(State(topics): State<Topics>, Json(task): Json<NewTask>) -> &'static str {
    let _ = topics
        .get("tasks")
        .send(format!("New task created: {}", task.title).into());
    "{}"
}

/// tungstenite reads through a 128 KiB buffer per connection by default;
/// 4 KiB is plenty for the small messages clients send here.
fn small(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.read_buffer_size(4096)
}

/// Forwards a topic to one socket: waits for an event, then writes every
/// event already queued and flushes once.
async fn forward(mut ws: WebSocket, mut rx: broadcast::Receiver<Utf8Bytes>) {
    loop {
        let first = tokio::select! {
            msg = rx.recv() => msg,
            incoming = ws.next() => match incoming {
                Some(Ok(_)) => continue,
                _ => return,
            },
        };
        let Ok(first) = first else { return };
        if ws.feed(Message::Text(first)).await.is_err() {
            return;
        }
        while let Ok(next) = rx.try_recv() {
            if ws.feed(Message::Text(next)).await.is_err() {
                return;
            }
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
}

async fn notifications(
    ws: WebSocketUpgrade,
    State(topics): State<Topics>,
    Path(topic): Path<String>,
) -> Response {
    let rx = topics.get(&topic).subscribe();
    small(ws).on_upgrade(move |socket| forward(socket, rx))
}

async fn chat(
    ws: WebSocketUpgrade,
    State(topics): State<Topics>,
    Path(client_id): Path<String>,
) -> Response {
    let tx = topics.get("chat");
    small(ws).on_upgrade(move |socket| async move {
        let (sink, mut stream) = socket.split();
        let reader_tx = tx.clone();
        let id = client_id.clone();
        let reader = async move {
            while let Some(Ok(msg)) = stream.next().await {
                if let Message::Text(text) = msg {
                    let _ = reader_tx.send(format!("Client {id}: {}", text.as_str()).into());
                }
            }
        };
        let writer = forward_sink(sink, tx.subscribe());
        tokio::select! { () = reader => {}, () = writer => {} }
        let _ = tx.send(format!("Client {client_id} left the chat").into());
    })
}

/// [`forward`] for the write half of a split socket.
async fn forward_sink(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut rx: broadcast::Receiver<Utf8Bytes>,
) {
    while let Ok(first) = rx.recv().await {
        if sink.feed(Message::Text(first)).await.is_err() {
            return;
        }
        while let Ok(next) = rx.try_recv() {
            if sink.feed(Message::Text(next)).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}

async fn echo(ws: WebSocketUpgrade) -> Response {
    small(ws).on_upgrade(|mut socket| async move {
        while let Some(Ok(msg)) = socket.next().await {
            if let Message::Text(text) = msg {
                let reply = format!("Message received: {}", text.as_str());
                if socket.send(Message::Text(reply.into())).await.is_err() {
                    return;
                }
            }
        }
    })
}

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4000".into());
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/tasks", post(create_task))
        .route("/ws", get(echo))
        .route("/ws/notifications/{topic}", get(notifications))
        .route("/ws/{client_id}", get(chat))
        .with_state(Topics::default());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    eprintln!("floor listening on http://{addr}");
    // Small messages go out at once, as every server in the comparison does.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await.expect("serve");
}
