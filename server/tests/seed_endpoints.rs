//! The seed article's chat and notification endpoints, byte for byte.

mod common;

use common::ws::{connect, recv_text};
use common::{authed_client, Server};
use futures::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn chat_broadcasts_and_announces_departures() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let mut alice = connect(&server.ws_url("/ws/alice")).await;
    let mut bob = connect(&server.ws_url("/ws/42")).await;
    // Each is subscribed once its own first message comes back.
    alice.send(Message::text("ready")).await.unwrap();
    assert_eq!(recv_text(&mut alice).await, "Client alice: ready");
    bob.send(Message::text("here")).await.unwrap();
    // Bob may or may not have joined in time to see Alice's "ready".
    let mut first = recv_text(&mut bob).await;
    if first == "Client alice: ready" {
        first = recv_text(&mut bob).await;
    }
    assert_eq!(first, "Client 42: here");
    assert_eq!(recv_text(&mut alice).await, "Client 42: here");
    alice.send(Message::text("hi")).await.unwrap();
    assert_eq!(recv_text(&mut alice).await, "Client alice: hi");
    assert_eq!(recv_text(&mut bob).await, "Client alice: hi");
    bob.send(Message::text("hello, alice")).await.unwrap();
    assert_eq!(recv_text(&mut alice).await, "Client 42: hello, alice");
    assert_eq!(recv_text(&mut bob).await, "Client 42: hello, alice");
    drop(bob);
    assert_eq!(recv_text(&mut alice).await, "Client 42 left the chat");
}

#[tokio::test]
async fn notifications_reach_the_tasks_topic_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let writer = authed_client(&server.signup("ann").await);
    let mut tasks = connect(&server.ws_url("/ws/notifications/tasks")).await;
    let mut other = connect(&server.ws_url("/ws/notifications/billing")).await;
    // Both subscriptions are in place once the server counts them.
    server.wait_for_metric("pulseboard_subscriptions", 2).await;
    writer
        .post(server.url("/tasks"))
        .json(&json!({"title": "Ship it"}))
        .send()
        .await
        .unwrap();
    assert_eq!(recv_text(&mut tasks).await, "New task created: Ship it");
    // Then an event on billing itself: if the task had leaked there, it
    // would arrive first.
    let resp = writer
        .post(server.url("/publish"))
        .json(&json!({"topic": "billing", "payload":
            {"kind": "notification", "title": "Invoice", "body": "paid", "level": "info"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::CREATED);
    assert_eq!(recv_text(&mut other).await, "Invoice: paid");
}

#[tokio::test]
async fn bad_path_segments_are_refused_before_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    for path in [
        "/ws/notifications/a%2Ab",
        "/ws/a%20b",
        "/ws/notifications/%5Ba-z%5D",
    ] {
        let err = tokio_tungstenite::connect_async(server.ws_url(path))
            .await
            .unwrap_err();
        match err {
            tokio_tungstenite::tungstenite::Error::Http(resp) => {
                assert_eq!(resp.status(), 400, "{path}");
            }
            other => panic!("{path}: {other:?}"),
        }
    }
}
