//! The seed article's chat and notification endpoints, byte for byte.

mod common;

use common::ws::{connect, join_chat, recv_text};
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
    join_chat(&mut alice, "alice", &mut bob, "42").await;
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

/// `POST /publish/{channel}` with `query` and an optional body.
async fn publish_to(
    client: &reqwest::Client,
    server: &Server,
    path_and_query: &str,
    body: Option<(&str, &str)>,
) -> (reqwest::StatusCode, serde_json::Value) {
    let mut req = client.post(server.url(path_and_query));
    if let Some((content_type, body)) = body {
        req = req
            .header("content-type", content_type)
            .body(body.to_owned());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.expect("a JSON answer"))
}

#[tokio::test]
async fn redis_channels_deliver_each_message_exactly_as_published() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let writer = authed_client(&server.signup("ann").await);
    let mut news = connect(&server.ws_url("/ws/redis/news")).await;
    let mut other = connect(&server.ws_url("/ws/redis/sport")).await;
    let mut typed = common::ws::typed(&server.ws_url("")).await;
    common::ws::subscribe(&mut typed, 1, "channel:news", None).await;
    server.wait_for_metric("pulseboard_subscriptions", 3).await;

    // The seed's way (query parameter), then a form and JSON; the texts
    // carry what a re-encoding would change: spaces, '+', quotes, control
    // characters, non-ASCII.
    let sent = [
        "hello world",
        "a+b=c & \"quoted\"",
        "tab\tand\u{1}control",
        "café ✓",
    ];
    let query = format!("/publish/news?{}", message_field(sent[0]));
    assert_eq!(
        publish_to(&writer, &server, &query, None).await,
        (reqwest::StatusCode::OK, json!({"message": "Published"}))
    );
    let form = message_field(sent[1]);
    let (status, _) = publish_to(
        &writer,
        &server,
        "/publish/news",
        Some(("application/x-www-form-urlencoded", &form)),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    for text in &sent[2..] {
        let body = json!({ "message": text }).to_string();
        let (status, _) = publish_to(
            &writer,
            &server,
            "/publish/news",
            Some(("application/json", &body)),
        )
        .await;
        assert_eq!(status, reqwest::StatusCode::OK);
    }
    for (offset, text) in sent.iter().enumerate() {
        assert_eq!(recv_text(&mut news).await, *text);
        let event = common::ws::recv(&mut typed).await;
        assert_eq!(event["type"], "event", "{event}");
        assert_eq!(event["topic"], "channel:news");
        assert_eq!(event["offset"], offset as u64 + 1, "contiguous offsets");
        assert_eq!(event["payload"], json!({"kind": "message", "text": text}));
    }

    // A message on sport itself: had anything for news leaked there, it
    // would arrive first.
    let (status, _) = publish_to(&writer, &server, "/publish/sport?message=goal", None).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(recv_text(&mut other).await, "goal");
}

#[tokio::test]
async fn redis_channel_writes_follow_the_task_write_rule() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let anonymous = common::client();
    let (status, body) = publish_to(&anonymous, &server, "/publish/news?message=hi", None).await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthorized");
    let forged = authed_client("e30.e30.c2lnbmF0dXJl");
    let (status, _) = publish_to(&forged, &server, "/publish/news?message=hi", None).await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);
    server.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--open-writes"]).await;
    let mut news = connect(&server.ws_url("/ws/redis/news")).await;
    server.wait_for_metric("pulseboard_subscriptions", 1).await;
    let (status, _) = publish_to(&anonymous, &server, "/publish/news?message=open", None).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(recv_text(&mut news).await, "open");
    // Open writes still check a token that is sent.
    let (status, _) = publish_to(&forged, &server, "/publish/news?message=x", None).await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn redis_channel_publishes_with_bad_input_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--ws-max-message-bytes", "1024"]).await;
    let writer = authed_client(&server.signup("ann").await);
    let mut news = connect(&server.ws_url("/ws/redis/news")).await;
    server.wait_for_metric("pulseboard_subscriptions", 1).await;
    let too_long = format!("/publish/news?message={}", "x".repeat(1025));
    // (path and query, content type and body, status, error code)
    type Case<'a> = (String, Option<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("/publish/news".into(), None, 422, "validation_failed"),
        (
            "/publish/news?text=hi".into(),
            None,
            422,
            "validation_failed",
        ),
        (
            "/publish/news?message=a".into(),
            Some(("application/json", r#"{"message":"b"}"#)),
            422,
            "validation_failed",
        ),
        (
            "/publish/news".into(),
            Some(("application/json", "{")),
            400,
            "invalid_json",
        ),
        (
            "/publish/news".into(),
            Some(("application/json", r#"{"message":5}"#)),
            422,
            "invalid_body",
        ),
        (
            "/publish/news".into(),
            Some(("text/plain", "hi")),
            422,
            "validation_failed",
        ),
        (too_long, None, 422, "validation_failed"),
        (
            "/publish/a%20b?message=hi".into(),
            None,
            400,
            "invalid_path",
        ),
    ];
    for (path, body, status, code) in cases {
        let (got, answer) = publish_to(&writer, &server, &path, body).await;
        assert_eq!(got.as_u16(), status, "{path} {body:?}: {answer}");
        assert_eq!(answer["error"], code, "{path} {body:?}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Nothing of the above was published: the first frame is the next
    // good message, and a message of exactly the limit passes.
    let exact = "y".repeat(1024);
    let (status, _) = publish_to(
        &writer,
        &server,
        &format!("/publish/news?message={exact}"),
        None,
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(recv_text(&mut news).await, exact);
    // A bad channel name is refused before the upgrade.
    match tokio_tungstenite::connect_async(server.ws_url("/ws/redis/a%2Ab")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 400),
        other => panic!("expected 400, got {other:?}"),
    }
}

/// `message=<text>`, form-encoded.
fn message_field(text: &str) -> String {
    serde_urlencoded::to_string([("message", text)]).unwrap()
}
