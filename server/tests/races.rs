//! Races from the hardening review, run against the real binary: each
//! starts the competing requests together, many times over, and checks the
//! outcome that must hold whichever wins.

mod common;

use std::time::Duration;

use common::ws::{self, connect_with, recv, subscribe, typed};
use common::{authed_client, Server, PASSWORD};
use serde_json::{json, Value};

/// Concurrent writes to one task reach subscribers in version order, every
/// one of them: eight writers, ten writes each, no `If-Match`.
#[tokio::test]
async fn concurrent_writes_to_one_task_are_published_in_version_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let mut watcher = typed(&server.ws_url("")).await;
    subscribe(&mut watcher, 1, "tasks", None).await;
    let owner = authed_client(&server.signup("owner").await);
    let task = common::create_task(&owner, &server, "contended").await;
    let url = server.url(&format!("/tasks/{}", task["id"]));

    let mut writers = tokio::task::JoinSet::new();
    for w in 0..16 {
        let client = authed_client(&server.signup(&format!("writer{w}")).await);
        let url = url.clone();
        writers.spawn(async move {
            for n in 0..20 {
                let resp = client
                    .patch(&url)
                    .json(&json!({"description": format!("{w}/{n}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }

    let mut versions = Vec::new();
    while versions.len() < 321 {
        let ev = recv(&mut watcher).await;
        if ev["type"] == "event" && ev["payload"]["task"]["id"] == task["id"] {
            versions.push(ev["payload"]["task"]["version"].as_i64().unwrap());
        }
    }
    let expected: Vec<i64> = (1..=321).collect();
    assert_eq!(versions, expected, "every version once, in order");
}

/// An account deleted while a task is being assigned to it never stays
/// on the task: whichever finishes first, the task ends up without it.
/// Each round spreads thirty assignments over the deletion's run, so some
/// land between any check and any write.
#[tokio::test]
async fn an_assignee_deleted_during_the_write_never_stays_assigned() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--register-max-per-hour",
        "1000",
        "--publish-rate-per-sec",
        "0",
    ];
    let server = Server::start(dir.path(), &args).await;
    let alice = authed_client(&server.signup("alice").await);
    let mut tasks = Vec::new();
    for n in 0..30 {
        let task = common::create_task(&alice, &server, &format!("hot potato {n}")).await;
        tasks.push(server.url(&format!("/tasks/{}", task["id"])));
    }
    for round in 0..15 {
        let name = format!("bob{round}");
        let bob = authed_client(&server.signup(&name).await);
        let deleting = tokio::spawn(
            bob.delete(server.url("/users/me"))
                .json(&json!({"password": PASSWORD}))
                .send(),
        );
        let mut assigning = tokio::task::JoinSet::new();
        for url in &tasks {
            let request = alice.patch(url).json(&json!({"assignee": name})).send();
            assigning.spawn(request);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(deleting.await.unwrap().unwrap().status(), 204);
        while let Some(assigned) = assigning.join_next().await {
            let status = assigned.unwrap().unwrap().status().as_u16();
            assert!(status == 200 || status == 422, "round {round}: {status}");
        }
        for url in &tasks {
            let now: Value = alice.get(url).send().await.unwrap().json().await.unwrap();
            assert_ne!(now["assignee"], name.as_str(), "round {round}: {now}");
        }
    }
}

/// A connection that signs in while its account is being deleted is
/// refused or closed, never left open. Each round spreads twenty sign-ins
/// over the deletion's run.
#[tokio::test]
async fn signing_in_while_the_account_is_deleted_leaves_no_socket_open() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--register-max-per-hour", "1000"]).await;
    for round in 0..15 {
        let token = server.signup(&format!("carol{round}")).await;
        let deleting = tokio::spawn(
            authed_client(&token)
                .delete(server.url("/users/me"))
                .json(&json!({"password": PASSWORD}))
                .send(),
        );
        let mut connecting = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let url = server.ws_url("/ws/v1");
            let header = format!("Bearer {token}");
            connecting.spawn(async move {
                let headers = [("authorization", header.as_str())];
                connect_with(&url, &headers).await
            });
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(deleting.await.unwrap().unwrap().status(), 204);
        while let Some(connected) = connecting.join_next().await {
            match connected.unwrap() {
                // Refused before the upgrade: the account was already gone.
                Err(_) => {}
                Ok((mut conn, _)) => {
                    let code = ws::closed_with(&mut conn, Duration::from_secs(5)).await;
                    assert!(
                        [4003, 4004].contains(&u16::from(code)),
                        "round {round}: closed with {code:?}"
                    );
                }
            }
        }
    }
}
