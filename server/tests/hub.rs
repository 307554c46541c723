//! The typed endpoint `/ws/v1` against the real server: fan-out, resume,
//! history limits, typed errors.

mod common;

use common::ws::{self, recv, send, subscribe, typed, typed_as};
use common::{authed_client, client, Server};
use serde_json::{json, Value};

fn base(server: &Server) -> String {
    server.ws_url("")
}

#[tokio::test]
async fn fan_out_to_100_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let mut subs = Vec::new();
    for i in 0..100 {
        let mut s = typed(&base(&server)).await;
        subscribe(&mut s, i, "room", None).await;
        subs.push(s);
    }
    // Publishing needs a token; the chat's `from` is the signed-in user.
    let mut publisher = typed_as(&base(&server), &server.signup("tester").await).await;
    let reply = ws::publish_chat(&mut publisher, 7, "room", "hello all").await;
    assert_eq!(reply["type"], "published");
    assert_eq!(reply["offset"], 1);
    for s in &mut subs {
        let ev = recv(s).await;
        assert_eq!(ev["type"], "event");
        assert_eq!(ev["topic"], "room");
        assert_eq!(ev["offset"], 1);
        assert_eq!(
            ev["payload"],
            json!({"kind": "chat", "from": "tester", "text": "hello all"})
        );
    }
    let metrics = client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("pulseboard_subscriptions 100"),
        "{metrics}"
    );
    assert!(metrics.contains("pulseboard_ws_connections 101"));
}

#[tokio::test]
async fn rest_task_changes_are_typed_events_on_the_tasks_topic() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let mut s = typed(&base(&server)).await;
    subscribe(&mut s, 1, "tasks", None).await;
    let writer = authed_client(&server.signup("ann").await);
    let task = common::create_task(&writer, &server, "evented").await;
    let ev = recv(&mut s).await;
    assert_eq!(ev["payload"]["kind"], "task_created");
    assert_eq!(ev["payload"]["task"], task);
    let url = server.url(&format!("/tasks/{}", task["id"]));
    writer
        .patch(&url)
        .json(&json!({"status": "done"}))
        .send()
        .await
        .unwrap();
    let ev = recv(&mut s).await;
    assert_eq!(ev["payload"]["kind"], "task_updated");
    assert_eq!(ev["payload"]["task"]["status"], "done");
    writer.delete(&url).send().await.unwrap();
    let ev = recv(&mut s).await;
    assert_eq!(
        ev["payload"],
        json!({"kind": "task_deleted", "id": task["id"], "version": 2})
    );
    assert_eq!(ev["offset"], 3);
}

#[tokio::test]
async fn resume_after_reconnect_loses_nothing_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let mut publisher = typed_as(&base(&server), &server.signup("tester").await).await;

    ws::resume_loses_nothing(&mut publisher, &base(&server), &base(&server)).await;
}

#[tokio::test]
async fn resume_past_the_history_window_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--history-size", "3"]).await;
    let mut publisher = typed_as(&base(&server), &server.signup("tester").await).await;
    let mut s = typed(&base(&server)).await;
    let first = subscribe(&mut s, 1, "feed", None).await;
    drop(s);
    for i in 0..10 {
        ws::publish_chat(&mut publisher, i, "feed", "x").await;
    }
    let mut s = typed(&base(&server)).await;
    let reply = subscribe(&mut s, 2, "feed", Some(first["position"].clone())).await;
    assert_eq!(reply["recovered"], false);
    assert_eq!(reply["position"]["offset"], 10);
    // The subscription is healthy: live events flow.
    ws::publish_chat(&mut publisher, 99, "feed", "after").await;
    let ev = recv(&mut s).await;
    assert_eq!(ev["offset"], 11);

    // An epoch from another life of the stream is a gap too.
    let mut s2 = typed(&base(&server)).await;
    let reply = subscribe(
        &mut s2,
        3,
        "feed",
        Some(json!({"offset": 5, "epoch": "old"})),
    )
    .await;
    assert_eq!(reply["recovered"], false);
}

#[tokio::test]
async fn bad_messages_get_typed_errors_and_the_connection_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    // Signed in, so the publishes below are refused for what they publish,
    // not for want of a token.
    let mut s = typed_as(&base(&server), &server.signup("tester").await).await;

    let cases: Vec<(String, &str, Value)> = vec![
        ("{not json".into(), "bad_request", Value::Null),
        (json!({"type": "teleport", "id": 4}).to_string(), "bad_request", json!(4)),
        (json!({"type": "subscribe", "id": 5}).to_string(), "bad_request", json!(5)),
        (json!({"type": "ping", "id": 1e300}).to_string(), "bad_request", Value::Null),
        (json!({"type": "subscribe", "id": 6, "topic": "a*"}).to_string(), "invalid_topic", json!(6)),
        (json!({"type": "subscribe", "id": 7, "topic": "x".repeat(300)}).to_string(), "invalid_topic", json!(7)),
        (json!({"type": "subscribe", "id": 8, "topic": "new\nline"}).to_string(), "invalid_topic", json!(8)),
        (json!({"type": "unsubscribe", "id": 9, "topic": "never"}).to_string(), "not_subscribed", json!(9)),
        (
            json!({"type": "publish", "id": 10, "topic": "tasks", "payload": {"kind": "chat", "from": "a", "text": "b"}}).to_string(),
            "publish_forbidden",
            json!(10),
        ),
        (
            json!({"type": "publish", "id": 11, "topic": "room", "payload": {"kind": "task_deleted", "id": 1, "version": 1}}).to_string(),
            "publish_forbidden",
            json!(11),
        ),
    ];
    for (frame, code, id) in cases {
        s.send(tokio_tungstenite::tungstenite::Message::text(frame.clone()))
            .await
            .unwrap();
        let err = recv(&mut s).await;
        assert_eq!(err["type"], "error", "{frame}");
        assert_eq!(err["code"], code, "{frame}");
        assert_eq!(err.get("id").cloned().unwrap_or(Value::Null), id, "{frame}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    subscribe(&mut s, 20, "room", None).await;
    send(
        &mut s,
        json!({"type": "subscribe", "id": 21, "topic": "room"}),
    )
    .await;
    assert_eq!(recv(&mut s).await["code"], "already_subscribed");
    send(
        &mut s,
        json!({"type": "unsubscribe", "id": 22, "topic": "room"}),
    )
    .await;
    assert_eq!(
        recv(&mut s).await,
        json!({"type": "unsubscribed", "id": 22, "topic": "room"})
    );
    send(&mut s, json!({"type": "ping", "id": 23})).await;
    assert_eq!(recv(&mut s).await, json!({"type": "pong", "id": 23}));
}

#[tokio::test]
async fn subscriptions_per_connection_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--ws-max-subscriptions", "2"]).await;
    let mut s = typed(&base(&server)).await;
    subscribe(&mut s, 1, "a", None).await;
    subscribe(&mut s, 2, "b", None).await;
    send(&mut s, json!({"type": "subscribe", "id": 3, "topic": "c"})).await;
    assert_eq!(recv(&mut s).await["code"], "too_many_subscriptions");
}

use futures::SinkExt;
