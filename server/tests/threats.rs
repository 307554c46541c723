//! Attacks from the hardening review, performed against the real binary:
//! each asserts the documented refusal, that the server's resident memory
//! stays under a stated bound, and that an ordinary client is still served
//! while the attack runs.

mod common;

use std::time::Duration;

use common::ws::{self, connect, recv, subscribe, typed};
use common::{client, Server};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// A chat message the seed endpoint accepts (under 64 KiB) that JSON
/// inflates six-fold: every character is a control character.
fn inflating_message() -> String {
    "\u{1}".repeat(60 * 1024)
}

/// An ordinary client's request completes within 2 s.
async fn still_served(server: &Server) {
    let health = tokio::time::timeout(
        Duration::from_secs(2),
        client().get(server.url("/healthz")).send(),
    )
    .await
    .expect("/healthz answered within 2 s during the attack")
    .unwrap();
    assert!(health.status().is_success());
}

/// Finding 1: fill the chat history with messages that inflate six-fold,
/// then resume from far back. One resume may send at most
/// `--recovery-max-bytes` (1 MiB by default): further back the answer is
/// `recovered: false`; each topic keeps at most `--history-max-bytes`
/// (4 MiB). Server memory stays under 150 MiB throughout.
#[tokio::test]
async fn resuming_from_far_back_cannot_amplify() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let base = server.ws_url("");
    let mut watcher = typed(&base).await;
    let start = subscribe(&mut watcher, 1, "chat", None).await["position"].clone();
    drop(watcher);

    // The attacker publishes 80 messages of 360 KiB of JSON each, two per
    // connection (a connection's outbound queue, 1 MiB, counts its own
    // echoes). Each departure is an event too: 120 in all.
    let text = inflating_message();
    for n in 0..40 {
        let attacker = connect(&server.ws_url(&format!("/ws/mallory{n}"))).await;
        let (mut tx, mut rx) = attacker.split();
        for _ in 0..2 {
            tx.send(Message::text(text.clone())).await.unwrap();
        }
        tx.close().await.unwrap();
        while let Some(Ok(m)) = rx.next().await {
            if let Message::Close(frame) = m {
                assert!(
                    frame.is_none_or(|f| u16::from(f.code) == 1000),
                    "attacker {n} cut"
                );
            }
        }
    }
    let mut probe = typed(&base).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let head = loop {
        let position = subscribe(&mut probe, 1, "chat", None).await["position"].clone();
        ws::send(
            &mut probe,
            json!({"type": "unsubscribe", "id": 2, "topic": "chat"}),
        )
        .await;
        recv(&mut probe).await;
        if position["offset"] == 120 {
            break position;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "publishes never landed: {position}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    still_served(&server).await;

    // From the start: far more than 1 MiB (and most of it no longer
    // kept). Refused with recovered: false, repeatedly, and nothing sent.
    for round in 0..20 {
        let mut resumer = typed(&base).await;
        let reply = subscribe(&mut resumer, 1, "chat", Some(start.clone())).await;
        assert_eq!(reply["recovered"], false, "round {round}: {reply}");
        ws::send(&mut resumer, json!({"type": "ping", "id": 9})).await;
        assert_eq!(recv(&mut resumer).await, json!({"type": "pong", "id": 9}));
    }
    // Five events back (three messages, two departures): 1.1 MiB of JSON,
    // over the limit.
    let back = |n: u64| {
        let mut since = head.clone();
        since["offset"] = json!(head["offset"].as_u64().unwrap() - n);
        since
    };
    let mut resumer = typed(&base).await;
    let reply = subscribe(&mut resumer, 1, "chat", Some(back(5))).await;
    assert_eq!(reply["recovered"], false, "{reply}");
    // Two events back (a message and a departure): 360 KiB, within it;
    // both arrive, in order.
    let mut resumer = typed(&base).await;
    let reply = subscribe(&mut resumer, 1, "chat", Some(back(2))).await;
    assert_eq!(reply["recovered"], true, "{reply}");
    let message = recv(&mut resumer).await;
    assert_eq!(message["offset"], 119);
    assert_eq!(
        message["payload"]["text"].as_str().unwrap().len(),
        text.len()
    );
    let departure = recv(&mut resumer).await;
    assert_eq!(departure["offset"], 120);
    assert_eq!(departure["payload"]["online"], false);
    // The resumes from the start were answered from the history's own
    // bound (it no longer holds those events); the one from five back was
    // refused for its size.
    assert_eq!(
        server.metric("pulseboard_recoveries_too_large_total").await,
        1
    );
    still_served(&server).await;

    let rss = server.rss_kib();
    assert!(rss < 150 * 1024, "resident memory {rss} KiB");
}
