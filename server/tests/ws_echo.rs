//! `/ws` echo with a real WebSocket client. Every wait has a deadline.

mod common;

use common::ws::{connect, within};
use common::{client, Server};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// The next message, whatever it is.
async fn next(
    ws: &mut common::ws::Ws,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    within("the next message", ws.next()).await
}

#[tokio::test]
async fn echo_answers_like_the_seed_article() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let mut ws = connect(&server.ws_url("/ws")).await;
    for text in ["hello", "", "ünïcødé ✓", &"x".repeat(10_000)] {
        within("send", ws.send(Message::text(text))).await.unwrap();
        let reply = next(&mut ws).await.unwrap().unwrap();
        assert_eq!(reply, Message::text(format!("Message received: {text}")));
    }
    within("close", ws.close(None)).await.unwrap();
}

#[tokio::test]
async fn pipelined_messages_are_each_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let mut ws = connect(&server.ws_url("/ws")).await;
    for i in 0..50 {
        within("feed", ws.feed(Message::text(format!("m{i}"))))
            .await
            .unwrap();
    }
    within("flush", ws.flush()).await.unwrap();
    for i in 0..50 {
        let reply = next(&mut ws).await.unwrap().unwrap();
        assert_eq!(reply, Message::text(format!("Message received: m{i}")));
    }
}

#[tokio::test]
async fn binary_is_refused_with_1003_and_oversize_with_1009() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--ws-max-message-bytes", "1024"]).await;

    let mut ws = connect(&server.ws_url("/ws")).await;
    within("send", ws.send(Message::binary(vec![0u8, 159, 146, 150])))
        .await
        .unwrap();
    match next(&mut ws).await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Unsupported),
        other => panic!("expected close 1003, got {other:?}"),
    }

    let mut ws = connect(&server.ws_url("/ws")).await;
    within("send", ws.send(Message::text("y".repeat(1024))))
        .await
        .unwrap();
    assert!(
        matches!(next(&mut ws).await, Some(Ok(Message::Text(_)))),
        "exactly the limit is fine"
    );
    within("send", ws.send(Message::text("y".repeat(1025))))
        .await
        .unwrap();
    match next(&mut ws).await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected close 1009, got {other:?}"),
    }
}

#[tokio::test]
async fn plain_get_is_told_to_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let resp = client().get(server.url("/ws")).send().await.unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::UPGRADE_REQUIRED);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "upgrade_required");
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1001() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let mut ws = connect(&server.ws_url("/ws")).await;
    within("send", ws.send(Message::text("ping")))
        .await
        .unwrap();
    next(&mut ws).await.unwrap().unwrap();
    let exit = tokio::spawn(server.stop());
    let got = next(&mut ws).await;
    // The server's own account of its shutdown, for any failure below.
    let (clean, logs) = within("exit", exit).await.unwrap();
    match got {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(frame.code, CloseCode::Away, "server log:\n{logs}")
        }
        other => panic!(
            "expected close 1001, got {other:?}; exited cleanly: {clean}; server log:\n{logs}"
        ),
    }
    assert!(clean, "clean exit; server log:\n{logs}");
}
