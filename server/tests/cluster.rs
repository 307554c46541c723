//! Several instances on one Redis and one PostgreSQL act as one server:
//! events cross instances, clients resume on any instance, and Redis
//! failing (its subscriber links cut, or the server killed and restarted
//! empty) never becomes a silent gap or a duplicate.
//!
//! Each test starts its own `redis-server` on a free loopback port and
//! creates its own database on the PostgreSQL server that
//! `PULSEBOARD_TEST_POSTGRES` names (skipped when unset, failed under
//! `CI=true`).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::cluster::{instances, new_database, postgres_url, Redis};
use common::ws::{self, connect, recv, recv_text, subscribe, typed, typed_as};
use common::{authed_client, client, create_task, list_tasks, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

struct Cluster {
    redis: Redis,
    servers: Vec<Server>,
    _dirs: Vec<tempfile::TempDir>,
}

async fn cluster(n: usize, what: &str) -> Option<Cluster> {
    cluster_with(n, what, &[]).await
}

async fn cluster_with(n: usize, what: &str, extra: &[&str]) -> Option<Cluster> {
    let pg = postgres_url()?;
    let redis = Redis::start().await;
    let database = new_database(&pg, what).await;
    let dirs: Vec<_> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    let paths: Vec<_> = dirs.iter().map(|d| d.path()).collect();
    let servers = instances(n, &redis, &database, &paths, extra).await;
    Some(Cluster {
        redis,
        servers,
        _dirs: dirs,
    })
}

/// Waits until `/readyz` answers `status` (bounded: 20 s).
async fn wait_ready(server: &Server, status: StatusCode) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = client()
            .get(server.url("/readyz"))
            .send()
            .await
            .map(|r| r.status());
        if now.as_ref().is_ok_and(|s| *s == status) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz stayed {now:?}, expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn tasks_chat_and_channels_cross_instances() {
    let Some(c) = cluster(2, "cross").await else {
        return;
    };
    let (a, b) = (&c.servers[0], &c.servers[1]);

    // A task created on B reaches a subscriber on A; an edit on A (with
    // B's token: one secret for the cluster) follows with the next offset.
    let mut sub = typed(&a.ws_url("")).await;
    subscribe(&mut sub, 1, "tasks", None).await;
    let writer = authed_client(&b.signup("ann").await);
    let task = create_task(&writer, b, "made on B").await;
    let ev = recv(&mut sub).await;
    assert_eq!(ev["payload"]["kind"], "task_created");
    assert_eq!(ev["payload"]["task"], task);
    assert_eq!(ev["offset"], 1);
    let edited = writer
        .patch(a.url(&format!("/tasks/{}", task["id"])))
        .json(&json!({"status": "done"}))
        .send()
        .await
        .unwrap();
    assert_eq!(edited.status(), StatusCode::OK);
    let ev = recv(&mut sub).await;
    assert_eq!(
        (ev["payload"]["kind"].as_str(), ev["offset"].as_u64()),
        (Some("task_updated"), Some(2))
    );
    // Both instances list the same tasks (one database).
    let listed = list_tasks(a).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));

    // The seed's chat: alice on A and bob on B hear each other.
    let mut alice = connect(&a.ws_url("/ws/alice")).await;
    let mut bob = connect(&b.ws_url("/ws/bob")).await;
    ws::join_chat(&mut alice, "alice", &mut bob, "bob").await;

    // The seed's Redis channels: published on B, received on A.
    let mut news = connect(&a.ws_url("/ws/redis/news")).await;
    a.wait_for_metric("pulseboard_subscriptions", 3).await;
    let published = writer
        .post(b.url("/publish/news?message=from%20B"))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), StatusCode::OK);
    assert_eq!(recv_text(&mut news).await, "from B");
}

#[tokio::test]
async fn a_client_resumes_on_another_instance_with_nothing_lost_or_repeated() {
    let Some(c) = cluster(2, "resume").await else {
        return;
    };
    let (a, b) = (&c.servers[0], &c.servers[1]);
    let mut publisher = typed_as(&b.ws_url(""), &b.signup("pub").await).await;

    ws::resume_loses_nothing(&mut publisher, &a.ws_url(""), &b.ws_url("")).await;
}

/// What one subscriber received: offsets per epoch, in arrival order, and
/// how many `resync` pushes.
#[derive(Default, Debug)]
struct Received {
    per_epoch: BTreeMap<String, Vec<u64>>,
    /// Epochs in the order they were first seen.
    epochs: Vec<String>,
    resyncs: usize,
}

impl Received {
    fn take(&mut self, v: &Value) {
        match v["type"].as_str() {
            Some("event") => {
                let epoch = v["epoch"].as_str().unwrap().to_owned();
                if !self.per_epoch.contains_key(&epoch) {
                    self.epochs.push(epoch.clone());
                }
                self.per_epoch
                    .entry(epoch)
                    .or_default()
                    .push(v["offset"].as_u64().unwrap());
            }
            Some("resync") => self.resyncs += 1,
            _ => {}
        }
    }
}

/// Publishes `text` on `topic` through `server`'s REST API: the event's
/// (offset, epoch) when it was accepted, `None` when refused with 503.
async fn publish_rest(
    http: &reqwest::Client,
    server: &Server,
    topic: &str,
    text: &str,
) -> Option<(u64, String)> {
    let resp = http
        .post(server.url("/publish"))
        .json(&json!({"topic": topic,
                      "payload": {"kind": "chat", "from": "p", "text": text}}))
        .send()
        .await
        .unwrap();
    match resp.status() {
        StatusCode::CREATED => {
            let v: Value = resp.json().await.unwrap();
            Some((
                v["offset"].as_u64().unwrap(),
                v["epoch"].as_str().unwrap().to_owned(),
            ))
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            let v: Value = resp.json().await.unwrap();
            assert_eq!(v["error"], "unavailable", "{v}");
            None
        }
        other => panic!("publish: unexpected {other}"),
    }
}

/// Reads what `ws` receives until `done` says the expected events are in
/// (bounded: 20 s).
async fn collect_until(ws: &mut ws::Ws, got: &mut Received, done: impl Fn(&Received) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done(got) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still waiting; received so far: {got:?}"
        );
        let v = ws::within("an event", recv(ws)).await;
        got.take(&v);
    }
}

#[tokio::test]
async fn cut_links_lose_nothing_and_a_redis_restart_is_a_reported_gap() {
    let Some(mut c) = cluster(2, "faults").await else {
        return;
    };
    let writer = authed_client(&c.servers[1].signup("pub").await);
    let mut s = typed(&c.servers[0].ws_url("")).await;
    let first = subscribe(&mut s, 1, "feed", None).await;
    let epoch = first["position"]["epoch"].as_str().unwrap().to_owned();
    let mut got = Received::default();
    let mut accepted: Vec<(u64, String)> = Vec::new();

    // 1. Links cut (Redis keeps its data) in the middle of a stream of
    // publishes through B, first A's subscriber link alone (B goes on
    // publishing what A cannot hear), then every subscriber link:
    // whatever B accepted reaches the subscriber on A exactly once, in
    // order, live or recovered from the stream once A's link is back.
    for i in 0..30 {
        if i == 10 {
            c.redis.cut_busiest_subscriber().await;
        }
        if i == 20 {
            let killed = c.redis.command("CLIENT KILL TYPE pubsub").await;
            assert!(killed.is_some_and(|r| r.starts_with(':')), "CLIENT KILL");
        }
        if let Some(at) = publish_rest(&writer, &c.servers[1], "feed", &format!("a{i}")).await {
            accepted.push(at);
        }
    }
    for server in &c.servers {
        wait_ready(server, StatusCode::OK).await;
    }
    // One more once both are back, so the stream's end is known.
    let at = loop {
        if let Some(at) = publish_rest(&writer, &c.servers[1], "feed", "after-cut").await {
            break at;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    accepted.push(at);
    let top = accepted.last().unwrap().0;
    collect_until(&mut s, &mut got, |g| {
        g.per_epoch.get(&epoch).and_then(|v| v.last()) == Some(&top)
    })
    .await;
    assert!(
        accepted.iter().all(|(_, e)| *e == epoch),
        "same epoch: data kept"
    );
    assert_eq!(
        got.per_epoch[&epoch],
        (1..=top).collect::<Vec<_>>(),
        "every accepted event once, in order; {} accepted",
        accepted.len()
    );
    assert_eq!(got.resyncs, 0, "nothing was lost, so no reload");
    assert!(
        c.servers[0]
            .metric("pulseboard_broker_reconnects_total")
            .await
            >= 2,
        "A's link was cut twice and came back"
    );

    // 2. Redis killed and restarted empty: both instances report not
    // ready, then ready; writes are refused while it is down (the task is
    // not stored either); afterwards the topic is in a new epoch, the
    // subscriber is told to reload, and publishing carries on.
    c.redis.kill().await;
    for server in &c.servers {
        wait_ready(server, StatusCode::SERVICE_UNAVAILABLE).await;
    }
    let refused = writer
        .post(c.servers[1].url("/tasks"))
        .json(&json!({"title": "while redis is down"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        publish_rest(&writer, &c.servers[1], "feed", "down").await,
        None
    );
    c.redis.restart().await;
    for server in &c.servers {
        wait_ready(server, StatusCode::OK).await;
    }
    let tasks = list_tasks(&c.servers[0]).await;
    assert_eq!(tasks, json!([]), "a refused write stores nothing");
    let (offset, new_epoch) = publish_rest(&writer, &c.servers[1], "feed", "fresh")
        .await
        .expect("publishing works again");
    assert_ne!(new_epoch, epoch, "the lost stream is a new epoch");
    assert_eq!(offset, 1);
    collect_until(&mut s, &mut got, |g| {
        g.per_epoch.get(&new_epoch).is_some_and(|v| v.contains(&1))
    })
    .await;
    assert_eq!(got.per_epoch[&new_epoch], vec![1], "once");
    assert!(got.resyncs >= 1, "told to reload: {got:?}");
    assert_eq!(got.epochs, vec![epoch.clone(), new_epoch.clone()]);

    // A client resuming from before the restart, on either instance, is
    // told its events are gone.
    for server in &c.servers {
        let mut late = typed(&server.ws_url("")).await;
        let reply = subscribe(
            &mut late,
            9,
            "feed",
            Some(json!({"offset": top, "epoch": epoch})),
        )
        .await;
        assert_eq!(reply["recovered"], false, "{reply}");
        assert_eq!(reply["position"]["epoch"], new_epoch.as_str());
    }
}

#[tokio::test]
async fn ending_sessions_and_accounts_on_one_instance_closes_their_sockets_on_the_other() {
    let Some(c) = cluster(2, "delete").await else {
        return;
    };
    let (a, b) = (&c.servers[0], &c.servers[1]);

    // Signing out on A: the session's socket on B closes with 4004, the
    // token is refused on B; another session of the same account goes on.
    let leaving = a.signup("bob").await;
    let staying = a.signup("bob").await;
    let mut leaving_on_b = typed_as(&b.ws_url(""), &leaving).await;
    let mut staying_on_b = typed_as(&b.ws_url(""), &staying).await;
    subscribe(&mut leaving_on_b, 1, "board", None).await;
    let out = authed_client(&leaving)
        .post(a.url("/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        u16::from(ws::closed_with(&mut leaving_on_b, Duration::from_secs(5)).await),
        4004
    );
    let refused = authed_client(&leaving)
        .get(b.url("/users/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    subscribe(&mut staying_on_b, 2, "board", None).await;

    // A password change on A ends the other session's socket on B too.
    let changed = authed_client(&staying)
        .post(a.url("/auth/password"))
        .json(&json!({"current_password": common::PASSWORD, "new_password": "a new passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    assert_eq!(
        u16::from(ws::closed_with(&mut staying_on_b, Duration::from_secs(5)).await),
        4004
    );

    // Deleting an account on A closes its sockets on B with 4003.
    let token = a.signup("ann").await;
    let mut on_b = typed_as(&b.ws_url(""), &token).await;
    subscribe(&mut on_b, 1, "user:ann", None).await;
    let deleted = authed_client(&token)
        .delete(a.url("/users/me"))
        .json(&json!({"password": common::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        u16::from(ws::closed_with(&mut on_b, Duration::from_secs(5)).await),
        4003
    );
    // And the token is refused on B too (one database).
    let me = authed_client(&token)
        .get(b.url("/users/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_throttling_and_the_registration_quota_hold_across_instances() {
    let Some(c) = cluster_with(
        2,
        "throttle",
        &["--login-max-failures", "3", "--register-max-per-hour", "3"],
    )
    .await
    else {
        return;
    };
    let (a, b) = (&c.servers[0], &c.servers[1]);
    a.signup("ann").await;
    // Failures on A, then on B: three in all lock the name everywhere.
    for server in [a, a, b] {
        assert_eq!(
            server.login("ann", "wrong password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    for server in [b, a] {
        let refused = server.login("ann", "wrong password").await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=300).contains(&wait), "Retry-After {wait}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"], "too_many_attempts");
    }
    // Another name is not affected.
    b.signup("bob").await;
    // Registrations: ann and bob took two of the address's three.
    assert_eq!(
        a.register("cat", common::PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let over = b.register("dan", common::PASSWORD).await;
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_per_account_connection_limit_counts_every_instance() {
    let Some(c) = cluster_with(2, "seats", &["--ws-max-connections-per-user", "2"]).await else {
        return;
    };
    let (a, b) = (&c.servers[0], &c.servers[1]);
    let token = a.signup("ann").await;
    let mut first = typed_as(&a.ws_url(""), &token).await;
    let second = typed_as(&a.ws_url(""), &token).await;
    // The third, on the other instance, is one too many for the account.
    let mut third = signed_in_socket(b, &token).await;
    assert_eq!(
        u16::from(ws::closed_with(&mut third, Duration::from_secs(5)).await),
        1008
    );
    // A seat given back on A is free on B.
    drop(second);
    a.wait_for_metric("pulseboard_ws_connections", 1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut admitted = loop {
        let mut again = signed_in_socket(b, &token).await;
        ws::send(&mut again, json!({"type": "ping", "id": 7})).await;
        match ws::within("a reply or a close", recv_or_close(&mut again)).await {
            Some(reply) => {
                assert_eq!(reply, json!({"type": "pong", "id": 7}));
                break again;
            }
            None => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the seat given back on A never became free on B"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    subscribe(&mut admitted, 1, "tasks", None).await;
    subscribe(&mut first, 1, "tasks", None).await;
}

/// A topic's stream in Redis is bounded in bytes as well as in events:
/// the publish script trims the oldest entries, and a resume from before
/// them is a gap, not a partial replay.
#[tokio::test]
async fn a_topics_stream_in_redis_is_bounded_in_bytes() {
    let Some(c) = cluster_with(2, "bytes", &["--history-max-bytes", "5000"]).await else {
        return;
    };
    let writer = authed_client(&c.servers[0].signup("ann").await);
    let text = "x".repeat(1000);
    let mut first = None;
    for i in 0..10 {
        let at = publish_rest(&writer, &c.servers[i % 2], "feed", &text).await;
        first = first.or(at);
    }
    let xlen = c
        .redis
        .command("XLEN pulseboard:{feed}:stream")
        .await
        .unwrap();
    let bytes = c
        .redis
        .reply("HGET pulseboard:{feed}:meta bytes")
        .await
        .unwrap();
    let bytes: usize = bytes.lines().nth(1).unwrap().parse().unwrap();
    // Each entry is about 1,060 bytes: four fit in 5,000.
    assert_eq!(xlen, ":4", "stream length");
    assert!((4000..=5000).contains(&bytes), "{bytes} bytes counted");
    // Resuming from before the kept entries is a gap; from within, the rest.
    let (_, epoch) = first.unwrap();
    let mut resumer = typed(&c.servers[1].ws_url("")).await;
    let old = subscribe(
        &mut resumer,
        1,
        "feed",
        Some(json!({"offset": 1, "epoch": epoch})),
    )
    .await;
    assert_eq!(old["recovered"], false);
    let mut resumer = typed(&c.servers[0].ws_url("")).await;
    let recent = subscribe(
        &mut resumer,
        1,
        "feed",
        Some(json!({"offset": 7, "epoch": epoch})),
    )
    .await;
    assert_eq!(recent["recovered"], true);
    for offset in 8..=10 {
        assert_eq!(recv(&mut resumer).await["offset"], offset);
    }
}

/// Presence members expire one and a half heartbeat intervals after their
/// instance last renewed them: 3 s with the 2 s interval used here.
#[tokio::test]
async fn presence_lists_users_of_every_instance_and_forgets_a_crashed_one() {
    let Some(mut c) = cluster_with(2, "presence", &["--ws-ping-interval-secs", "2"]).await else {
        return;
    };
    let (ann, bob) = (
        c.servers[0].signup("ann").await,
        c.servers[0].signup("bob").await,
    );
    let room = c.servers[0].url("/presence/room");
    let listing = |token: &str| {
        let (client, url) = (authed_client(token), room.clone());
        async move {
            let reply = client.get(url).send().await.unwrap();
            assert_eq!(reply.status(), StatusCode::OK);
            reply.json::<Value>().await.unwrap()
        }
    };
    let users = |v: &Value| v["users"].clone();

    // ann on A, bob twice on B: A lists all three subscriptions.
    let mut ann_ws = typed_as(&c.servers[0].ws_url(""), &ann).await;
    subscribe(&mut ann_ws, 1, "room", None).await;
    let mut bob_ws = typed_as(&c.servers[1].ws_url(""), &bob).await;
    subscribe(&mut bob_ws, 1, "room", None).await;
    let mut bob_again = typed_as(&c.servers[1].ws_url(""), &bob).await;
    subscribe(&mut bob_again, 1, "room", None).await;
    let seen = eventually("both users listed", || async {
        let now = listing(&ann).await;
        (now["connections"] == 3).then_some(now)
    })
    .await;
    assert_eq!(users(&seen), json!(["ann", "bob"]));
    assert_eq!(seen["topic"], "room");

    // Leaving is seen at once, not at expiry.
    ws::send(
        &mut bob_again,
        json!({"type": "unsubscribe", "id": 2, "topic": "room"}),
    )
    .await;
    assert_eq!(recv(&mut bob_again).await["type"], "unsubscribed");
    eventually("bob's second subscription gone", || async {
        (listing(&ann).await["connections"] == 2).then_some(())
    })
    .await;

    // Anonymous callers and other people's personal topics are refused.
    let anonymous = client()
        .get(c.servers[0].url("/presence/room"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let personal = authed_client(&ann)
        .get(c.servers[0].url("/presence/user:bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(personal.status(), StatusCode::FORBIDDEN);
    let bad = authed_client(&ann)
        .get(c.servers[0].url("/presence/no%20spaces"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let why: Value = bad.json().await.unwrap();
    assert!(why["message"].as_str().unwrap().contains("topic"), "{why}");

    // B crashes: nobody tells Redis, and bob is gone once his member
    // expires (3 s), well within 10 s.
    c.servers.remove(1).kill().await;
    let after = eventually("bob dropped after B crashed", || async {
        let now = listing(&ann).await;
        (now["connections"] == 1).then_some(now)
    })
    .await;
    assert_eq!(users(&after), json!(["ann"]));
    drop((bob_ws, bob_again));
}

/// Polls `check` every 50 ms until it gives a value (bounded: 10 s).
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `/ws/v1` socket signed in at the upgrade, before anything is read.
async fn signed_in_socket(server: &Server, token: &str) -> ws::Ws {
    ws::connect_with(
        &server.ws_url("/ws/v1"),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
    .expect("the upgrade is answered")
    .0
}

/// The next non-heartbeat message, or `None` if the server closed instead.
async fn recv_or_close(ws: &mut ws::Ws) -> Option<Value> {
    use futures::StreamExt;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] != "heartbeat" && v["type"] != "hello" {
                    return Some(v);
                }
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

/// Boards across instances: a board made on one instance is one board on
/// the other (one store), its events reach its readers wherever they are
/// connected, and a member removed on one instance stops getting the
/// board's events on the other, while its remaining member there carries
/// on.
#[tokio::test]
async fn boards_and_their_access_cross_instances() {
    let Some(c) = cluster(2, "boards").await else {
        return;
    };
    let (a, b) = (&c.servers[0], &c.servers[1]);
    let owner = authed_client(&a.signup("owner").await);
    let stays = b.signup("stays").await;
    let goes = b.signup("goes").await;
    let resp = owner
        .post(a.url("/boards"))
        .json(&json!({"name": "Across"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let id = resp.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    for name in ["stays", "goes"] {
        let resp = owner
            .put(a.url(&format!("/boards/{id}/members/{name}")))
            .json(&json!({"role": "viewer"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let topic = format!("board:{id}");
    let mut staying = typed_as(&b.ws_url(""), &stays).await;
    let mut going = typed_as(&b.ws_url(""), &goes).await;
    for socket in [&mut staying, &mut going] {
        subscribe(socket, 1, &topic, None).await;
        subscribe(socket, 2, "tasks", None).await;
    }
    let post = |title: &str| {
        owner
            .post(a.url(&format!("/boards/{id}/tasks")))
            .json(&json!({ "title": title }))
            .send()
    };
    assert_eq!(post("first").await.unwrap().status(), StatusCode::CREATED);
    for socket in [&mut staying, &mut going] {
        let ev = recv(socket).await;
        assert_eq!(ev["topic"], topic.as_str(), "{ev}");
        assert_eq!(ev["payload"]["task"]["title"], "first");
    }

    let resp = owner
        .delete(a.url(&format!("/boards/{id}/members/goes")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    for socket in [&mut staying, &mut going] {
        assert_eq!(recv(socket).await["payload"]["kind"], "member_removed");
    }
    assert_eq!(post("second").await.unwrap().status(), StatusCode::CREATED);
    let shared = create_task(&owner, a, "marker on the shared board").await;
    let ev = recv(&mut staying).await;
    assert_eq!(ev["payload"]["task"]["title"], "second", "{ev}");
    let ev = recv(&mut going).await;
    assert_eq!(
        (ev["topic"].as_str(), &ev["payload"]["task"]["id"]),
        (Some("tasks"), &shared["id"]),
        "the removed member got nothing of the board after the removal: {ev}"
    );
    let resp = authed_client(&goes)
        .get(b.url(&format!("/boards/{id}/tasks")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}
