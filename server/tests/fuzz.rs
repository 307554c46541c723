//! Fuzzing the real server's inputs with proptest: the typed protocol's
//! client messages on `/ws/v1` and the JSON and form bodies of the REST
//! endpoints. Inputs are half structure (the real message types, field
//! names and values near the limits) and half noise (any JSON, any text),
//! so both the parser and the handlers behind it are reached.
//!
//! Bounded: a fixed number of cases per run (`PROPTEST_CASES` overrides
//! it), each a handful of requests. The property is the product's rule for
//! bad input: a clear refusal, never a panic, a 5xx, a hang or a dropped
//! connection; the server's logs must show no panic afterwards.

mod common;

use common::ws::{self, send, typed_as, ws_reply};
use common::{authed_client, client, Server};
use futures::SinkExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};
use tokio_tungstenite::tungstenite::Message;

/// Cases per test unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 300;

fn runner() -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES);
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Field names the server knows, so generated objects often reach past
/// the parser; and a few it does not.
const KEYS: &[&str] = &[
    "type",
    "id",
    "topic",
    "since",
    "payload",
    "token",
    "offset",
    "epoch",
    "kind",
    "text",
    "from",
    "title",
    "description",
    "status",
    "assignee",
    "username",
    "password",
    "body",
    "level",
    "task",
    "version",
    "current_password",
    "new_password",
    "message",
    "extra",
];

/// Values that sit on the edges: message types, statuses, topic shapes,
/// numbers around the integer limits, long and odd strings.
fn edge_string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "subscribe",
            "unsubscribe",
            "publish",
            "ping",
            "auth",
            "chat",
            "notification",
            "task_created",
            "message",
            "todo",
            "doing",
            "done",
            "info",
            "tasks",
            "chat",
            "user:fuzz",
            "user:other",
            "secure:x",
            "",
            " ",
            "a:b:c",
            "\u{0}",
            "\u{202e}",
        ])
        .prop_map(str::to_owned),
        ".{0,48}",
        "[a-z:._-]{0,130}",
        Just("x".repeat(5000)),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![0i64, -1, 1, i64::MAX, i64::MIN, 1 << 53]).prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        edge_string().prop_map(Value::from),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned),
        1 => ".{0,12}",
    ]
}

/// Any JSON, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..7)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An object that is mostly a message of the given shape, with fields
/// dropped, swapped for noise or added.
fn near(template: Value) -> impl Strategy<Value = Value> {
    let fields: Vec<(String, Value)> = template
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let n = fields.len();
    (
        prop::collection::vec(0u8..4, n),
        prop::collection::vec(json_value(), n),
        prop::collection::vec((key(), json_value()), 0..3),
    )
        .prop_map(move |(choices, noise, extra)| {
            let mut out = Map::new();
            for (((k, v), choice), noise) in fields.iter().zip(choices).zip(noise) {
                match choice {
                    0 => {}                                  // dropped
                    1 => drop(out.insert(k.clone(), noise)), // wrong type or value
                    _ => drop(out.insert(k.clone(), v.clone())),
                }
            }
            for (k, v) in extra {
                out.insert(k, v);
            }
            Value::Object(out)
        })
}

/// One text frame for `/ws/v1`.
fn client_frame() -> impl Strategy<Value = String> {
    let messages = prop_oneof![
        near(json!({"type": "subscribe", "id": 1, "topic": "board"})),
        near(json!({"type": "subscribe", "id": 2, "topic": "feed",
                    "since": {"offset": 3, "epoch": "e"}})),
        near(json!({"type": "unsubscribe", "id": 3, "topic": "board"})),
        near(json!({"type": "publish", "id": 4, "topic": "feed",
                    "payload": {"kind": "chat", "from": "x", "text": "hi"}})),
        near(json!({"type": "publish", "id": 5, "topic": "user:fuzz",
                    "payload": {"kind": "notification", "title": "t", "body": "b", "level": "info"}})),
        near(json!({"type": "auth", "id": 6, "token": "e30.e30.e30"})),
        near(json!({"type": "ping", "id": 7})),
    ];
    prop_oneof![
        6 => messages.prop_map(|v| v.to_string()),
        2 => json_value().prop_map(|v| v.to_string()),
        1 => ".{0,64}",
        // Cut short: a prefix of a real message.
        1 => (near(json!({"type": "subscribe", "id": 1, "topic": "board"})), 0usize..40)
            .prop_map(|(v, n)| v.to_string().chars().take(n).collect()),
    ]
}

/// The id no generated message uses, for the probe after each case.
const PROBE: u64 = 4_242_424_242;

fn no_panic_in(server: &Server) {
    let logs = server.logs();
    assert!(!logs.contains("panicked"), "the server panicked:\n{logs}");
}

#[test]
fn the_typed_protocol_answers_any_client_message_without_failing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The rate limit is not what is under test here.
    let args = ["--ws-rate-per-sec", "100000", "--ws-rate-burst", "100000"];
    let server = rt.block_on(Server::start(dir.path(), &args));
    let token = rt.block_on(server.signup("fuzz"));
    let base = server.ws_url("");
    // The runner takes a `Fn`: the one connection is lent to each case.
    let conn = std::cell::RefCell::new(rt.block_on(typed_as(&base, &token)));

    let result = runner().run(&prop::collection::vec(client_frame(), 1..6), |frames| {
        let mut conn = conn.borrow_mut();
        rt.block_on(async {
            for frame in frames {
                ws::within("send", conn.send(Message::text(frame)))
                    .await
                    .unwrap();
            }
            // Still connected, still answering, in order.
            send(&mut conn, json!({"type": "ping", "id": PROBE})).await;
            let reply = ws_reply(&mut conn, PROBE).await;
            assert_eq!(reply["type"], "pong", "{reply}");
        });
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    no_panic_in(&server);
}

/// One REST request: method, path, whether to send the token, and body.
#[derive(Clone, Debug)]
enum Body {
    Json(Value),
    Text(String),
}

fn rest_case() -> impl Strategy<Value = (&'static str, &'static str, bool, Body)> {
    let endpoints = prop::sample::select(vec![
        ("POST", "/tasks", true),
        ("PATCH", "/tasks/{id}", true),
        ("PUT", "/tasks/{id}", true),
        ("POST", "/publish", true),
        ("POST", "/auth/password", true),
        ("DELETE", "/users/me", true),
        ("POST", "/auth/register", false),
        ("POST", "/tasks", false),
    ]);
    let body = prop_oneof![
        3 => near(json!({"title": "t", "description": "d", "status": "todo", "assignee": "fuzz"}))
            .prop_map(Body::Json),
        2 => near(json!({"topic": "feed", "payload": {"kind": "chat", "from": "x", "text": "y"}}))
            .prop_map(Body::Json),
        1 => near(json!({"current_password": "wrong one", "new_password": "a"}))
            .prop_map(Body::Json),
        1 => near(json!({"username": "fuzzer", "password": "short"})).prop_map(Body::Json),
        2 => json_value().prop_map(Body::Json),
        1 => ".{0,80}".prop_map(Body::Text),
    ];
    (endpoints, body).prop_map(|((method, path, authed), body)| (method, path, authed, body))
}

#[test]
fn rest_bodies_get_a_clear_answer_never_a_failure() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = rt.block_on(Server::start(dir.path(), &[]));
    let token = rt.block_on(server.signup("fuzz"));
    let task = rt.block_on(common::create_task(
        &authed_client(&token),
        &server,
        "target",
    ));
    let (authed, anonymous) = (authed_client(&token), client());

    let result = runner().run(&rest_case(), |(method, path, with_token, body)| {
        let url = server.url(&path.replace("{id}", &task["id"].to_string()));
        let c = if with_token { &authed } else { &anonymous };
        let req = c.request(method.parse().unwrap(), &url);
        let req = match &body {
            Body::Json(v) => req.json(v),
            Body::Text(t) => req
                .header("content-type", "application/json")
                .body(t.clone()),
        };
        let (status, answer) = rt.block_on(async {
            let resp = ws::within("request", req.send()).await.unwrap();
            let status = resp.status();
            (status, resp.text().await.unwrap_or_default())
        });
        prop_assert!(
            !status.is_server_error(),
            "{method} {path} {body:?}: {status} {answer}"
        );
        if status.is_client_error() {
            let parsed: Value = serde_json::from_str(&answer).unwrap_or(Value::Null);
            prop_assert!(
                parsed["error"].is_string() && parsed["message"].is_string(),
                "{method} {path} {body:?}: {status} without an error body: {answer}"
            );
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The account and its task are still there and the server serves.
    rt.block_on(async {
        let me = authed.get(server.url("/users/me")).send().await.unwrap();
        assert_eq!(me.status(), reqwest::StatusCode::OK);
    });
    no_panic_in(&server);
}
