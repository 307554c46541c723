//! `/ws` echo with a real WebSocket client.

mod common;

use common::{client, Server};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn echo_answers_like_the_seed_article() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url("/ws"))
        .await
        .unwrap();
    for text in ["hello", "", "ünïcødé ✓", &"x".repeat(10_000)] {
        ws.send(Message::text(text)).await.unwrap();
        let reply = ws.next().await.unwrap().unwrap();
        assert_eq!(reply, Message::text(format!("Message received: {text}")));
    }
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn binary_is_refused_with_1003_and_oversize_with_1009() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--ws-max-message-bytes", "1024"]).await;

    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url("/ws"))
        .await
        .unwrap();
    ws.send(Message::binary(vec![0u8, 159, 146, 150]))
        .await
        .unwrap();
    match ws.next().await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Unsupported),
        other => panic!("expected close 1003, got {other:?}"),
    }

    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url("/ws"))
        .await
        .unwrap();
    ws.send(Message::text("y".repeat(1024))).await.unwrap();
    assert!(
        matches!(ws.next().await, Some(Ok(Message::Text(_)))),
        "exactly the limit is fine"
    );
    ws.send(Message::text("y".repeat(1025))).await.unwrap();
    match ws.next().await {
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
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url("/ws"))
        .await
        .unwrap();
    ws.send(Message::text("ping")).await.unwrap();
    ws.next().await.unwrap().unwrap();
    let exit = tokio::spawn(server.terminate());
    match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await {
        Ok(Some(Ok(Message::Close(Some(frame))))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected close 1001, got {other:?}"),
    }
    assert!(exit.await.unwrap(), "clean exit");
}
