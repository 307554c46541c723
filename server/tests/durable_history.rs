//! The embedded server keeps its topics' history across a graceful restart
//! (a deploy, SIGTERM), so a client resumes with nothing lost; a crash is
//! never mistaken for one.

mod common;

use common::ws::{recv, subscribe, typed, Ws};
use common::{client, Server};
use serde_json::{json, Value};

async fn create(server: &Server, title: &str) {
    let resp = client()
        .post(server.url("/tasks"))
        .json(&json!({ "title": title }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::CREATED);
}

/// The next event, which must be the task `title` at `offset` in `epoch`.
async fn expect_event(ws: &mut Ws, offset: u64, epoch: &str, title: &str) {
    let e: Value = recv(ws).await;
    assert_eq!(e["type"], "event", "{e}");
    assert_eq!(
        (e["offset"].as_u64(), e["epoch"].as_str()),
        (Some(offset), Some(epoch)),
        "{e}"
    );
    assert_eq!(e["payload"]["task"]["title"], title, "{e}");
}

#[tokio::test]
async fn a_client_resumes_across_a_graceful_restart_and_not_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--open-writes"];
    let server = Server::start(dir.path(), &args).await;
    let mut ws = typed(&server.ws_url("")).await;
    let reply = subscribe(&mut ws, 1, "tasks", None).await;
    let epoch = reply["position"]["epoch"].as_str().unwrap().to_owned();
    let base = reply["position"]["offset"].as_u64().unwrap();
    for title in ["one", "two", "three"] {
        create(&server, title).await;
    }
    // The client got the first event, then lost its connection.
    expect_event(&mut ws, base + 1, &epoch, "one").await;
    drop(ws);
    let (clean, logs) = server.stop().await;
    assert!(clean, "graceful exit; log:\n{logs}");

    let server = Server::start(dir.path(), &args).await;
    let mut ws = typed(&server.ws_url("")).await;
    let since = json!({"offset": base + 1, "epoch": epoch});
    let reply = subscribe(&mut ws, 1, "tasks", Some(since)).await;
    assert_eq!(reply["recovered"], true, "{reply}");
    assert_eq!(
        reply["position"],
        json!({"offset": base + 3, "epoch": epoch})
    );
    expect_event(&mut ws, base + 2, &epoch, "two").await;
    expect_event(&mut ws, base + 3, &epoch, "three").await;
    // The stream goes on where it was.
    create(&server, "four").await;
    expect_event(&mut ws, base + 4, &epoch, "four").await;
    drop(ws);

    // A crash saves nothing, and the state restored above was consumed by
    // that start: resuming now must say so, never reuse offsets.
    server.kill().await;
    let server = Server::start(dir.path(), &args).await;
    let mut ws = typed(&server.ws_url("")).await;
    let since = json!({"offset": base + 4, "epoch": epoch});
    let reply = subscribe(&mut ws, 1, "tasks", Some(since)).await;
    assert_eq!(reply["recovered"], false, "{reply}");
    assert_ne!(reply["position"]["epoch"], epoch.as_str());
    // The tasks themselves are in the database whatever happened.
    let tasks: Vec<Value> = client()
        .get(server.url("/tasks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tasks.len(), 4);
}
