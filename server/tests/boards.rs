//! Boards and their members against the real server: every role rule on
//! every REST route and on the board's topic, for private and public
//! boards; events reaching only the board's readers; inviting, re-roling,
//! leaving and removing members; the shared board keeping the seed's API;
//! and the bounds on boards per owner.

mod common;

use common::ws::{self, recv, subscribe, typed, typed_as};
use common::{authed_client, client, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The callers of the role table, in order of power.
const ROLES: [&str; 5] = ["anonymous", "outsider", "viewer", "member", "owner"];

struct Board {
    id: i64,
    /// A client per entry of [`ROLES`].
    callers: Vec<reqwest::Client>,
    /// Tokens, for WebSocket sign-in.
    tokens: Vec<Option<String>>,
}

async fn call(
    c: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = c.request(method, url);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A board of `visibility` owned by `<prefix>owner`, with a viewer and a
/// member, plus an outsider and an anonymous caller.
async fn board(server: &Server, prefix: &str, visibility: &str) -> Board {
    let mut callers = vec![client()];
    let mut names = vec![None];
    let mut tokens = vec![None];
    for role in &ROLES[1..] {
        let name = format!("{prefix}{role}");
        let token = server.signup(&name).await;
        callers.push(authed_client(&token));
        names.push(Some(name));
        tokens.push(Some(token));
    }
    let owner = &callers[4];
    let (status, created) = call(
        owner,
        Method::POST,
        &server.url("/boards"),
        Some(json!({"name": format!("{prefix} board"), "visibility": visibility})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["role"], "owner");
    assert_eq!(created["visibility"], visibility);
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["topic"], format!("board:{id}"));
    for (i, role) in [(2, "viewer"), (3, "member")] {
        let name = names[i].as_deref().unwrap();
        let (status, body) = set_role(server, owner, id, name, role).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["role"], role);
    }
    Board {
        id,
        callers,
        tokens,
    }
}

/// `PUT /boards/{id}/members/{name}` with `role`, as `caller`.
async fn set_role(
    server: &Server,
    caller: &reqwest::Client,
    board: i64,
    name: &str,
    role: &str,
) -> (StatusCode, Value) {
    let url = server.url(&format!("/boards/{board}/members/{name}"));
    call(caller, Method::PUT, &url, Some(json!({ "role": role }))).await
}

/// A task on the board, made by its owner.
async fn task_on(server: &Server, b: &Board, title: &str) -> i64 {
    let (status, task) = call(
        &b.callers[4],
        Method::POST,
        &server.url(&format!("/boards/{}/tasks", b.id)),
        Some(json!({"title": title})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    assert_eq!(task["board_id"], b.id);
    task["id"].as_i64().unwrap()
}

/// Runs one route for the first `N` callers and checks each status against
/// `expected` (one per entry of [`ROLES`]; four to leave the owner out).
/// `fresh` makes what the route acts on anew for each caller (a task to
/// delete, say) and gives the URL. A refusal must be a JSON error with the
/// code its status implies.
async fn check_route<const N: usize, F, Fut>(
    server: &Server,
    b: &Board,
    what: &str,
    method: Method,
    body: Option<Value>,
    expected: [u16; N],
    fresh: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    for (i, want) in expected.iter().enumerate() {
        let url = server.url(&fresh().await);
        let (status, resp) = call(&b.callers[i], method.clone(), &url, body.clone()).await;
        assert_eq!(status.as_u16(), *want, "{what} as {}: {resp}", ROLES[i]);
        if !status.is_success() {
            let code = resp["error"].as_str().unwrap_or_default();
            assert!(
                !code.is_empty(),
                "{what} as {}: a JSON error body",
                ROLES[i]
            );
            if *want == 401 {
                assert_eq!(code, "unauthorized");
            }
            if *want == 403 {
                assert_eq!(code, "forbidden");
            }
        }
    }
}

/// The whole role table for one board.
async fn role_table(server: &Server, b: &Board, public: bool) {
    let id = b.id;
    // Reads: a private board is members-only; a public one is anyone's.
    let read: [u16; 5] = if public {
        [200, 200, 200, 200, 200]
    } else {
        [401, 403, 200, 200, 200]
    };
    let fixed = |path: String| {
        move || {
            let path = path.clone();
            async move { path }
        }
    };
    for path in [
        format!("/boards/{id}"),
        format!("/boards/{id}/members"),
        format!("/boards/{id}/tasks"),
    ] {
        check_route(
            server,
            b,
            &format!("GET {path}"),
            Method::GET,
            None,
            read,
            fixed(path.clone()),
        )
        .await;
    }
    // Who is looking at the board: its readers (and a token is needed).
    let presence: [u16; 5] = if public {
        [401, 200, 200, 200, 200]
    } else {
        [401, 403, 200, 200, 200]
    };
    check_route(
        server,
        b,
        "GET /presence/board:{id}",
        Method::GET,
        None,
        presence,
        fixed(format!("/presence/board:{id}")),
    )
    .await;
    let task = task_on(server, b, "readable").await;
    let path = format!("/tasks/{task}");
    check_route(
        server,
        b,
        "GET /tasks/{id}",
        Method::GET,
        None,
        read,
        fixed(path.clone()),
    )
    .await;

    // Task writes: members and the owner, whoever may read.
    let (anon, outsider) = (401, 403);
    let path = format!("/boards/{id}/tasks");
    check_route(
        server,
        b,
        "POST /boards/{id}/tasks",
        Method::POST,
        Some(json!({"title": "new"})),
        [anon, outsider, 403, 201, 201],
        fixed(path),
    )
    .await;
    let path = format!("/tasks/{task}");
    check_route(
        server,
        b,
        "PATCH /tasks/{id}",
        Method::PATCH,
        Some(json!({"status": "doing"})),
        [anon, outsider, 403, 200, 200],
        fixed(path),
    )
    .await;
    check_route(
        server,
        b,
        "DELETE /tasks/{id}",
        Method::DELETE,
        None,
        [anon, outsider, 403, 204, 204],
        || async { format!("/tasks/{}", task_on(server, b, "doomed").await) },
    )
    .await;

    // Managing: the owner only.
    check_route(
        server,
        b,
        "PATCH /boards/{id}",
        Method::PATCH,
        Some(json!({"name": "renamed"})),
        [401, 403, 403, 403, 200],
        fixed(format!("/boards/{id}")),
    )
    .await;
    let extra = format!("x{id}extra");
    let extra_token = server.signup(&extra).await;
    check_route(
        server,
        b,
        "PUT /boards/{id}/members/{name}",
        Method::PUT,
        Some(json!({"role": "viewer"})),
        [401, 403, 403, 403, 201],
        fixed(format!("/boards/{id}/members/{extra}")),
    )
    .await;
    // Removing someone else: the owner only (the extra account is put
    // back before each try).
    let owner = &b.callers[4];
    check_route(
        server,
        b,
        "DELETE /boards/{id}/members/{name}",
        Method::DELETE,
        None,
        [401, 403, 403, 403, 204],
        || async {
            let (status, _) = set_role(server, owner, id, &extra, "viewer").await;
            assert!(status.is_success());
            format!("/boards/{id}/members/{extra}")
        },
    )
    .await;
    // ... but anyone may leave.
    let url = server.url(&format!("/boards/{id}/members/{extra}"));
    set_role(server, owner, id, &extra, "viewer").await;
    let (status, _) = call(&authed_client(&extra_token), Method::DELETE, &url, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "a member leaves");
    // The owner's own deletion is checked below: it ends the board.
    check_route(
        server,
        b,
        "DELETE /boards/{id}",
        Method::DELETE,
        None,
        [401, 403, 403, 403],
        fixed(format!("/boards/{id}")),
    )
    .await;
    // Finally the owner deletes the board, and it is gone for everyone.
    let url = server.url(&format!("/boards/{id}"));
    let (status, _) = call(owner, Method::DELETE, &url, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(owner, Method::GET, &url, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "board_not_found");
    let (status, _) = call(
        owner,
        Method::GET,
        &server.url(&format!("/tasks/{task}")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "its tasks went with it");
}

/// What subscribing to the board's topic on `/ws/v1` gives each caller:
/// `subscribed`, or the error code.
async fn subscriptions(server: &Server, b: &Board) -> Vec<String> {
    let mut outcomes = Vec::new();
    for token in &b.tokens {
        let mut socket = match token {
            Some(token) => typed_as(&server.ws_url(""), token).await,
            None => typed(&server.ws_url("")).await,
        };
        ws::send(
            &mut socket,
            json!({"type": "subscribe", "id": 1, "topic": format!("board:{}", b.id)}),
        )
        .await;
        let reply = recv(&mut socket).await;
        outcomes.push(match reply["type"].as_str() {
            Some("subscribed") => "subscribed".to_owned(),
            _ => reply["code"].as_str().unwrap_or("?").to_owned(),
        });
    }
    outcomes
}

#[tokio::test]
async fn every_role_rule_on_a_private_board() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let b = board(&server, "p", "private").await;
    assert_eq!(
        subscriptions(&server, &b).await,
        [
            "unauthorized",
            "forbidden",
            "subscribed",
            "subscribed",
            "subscribed"
        ]
    );
    let (status, body) = ws::refused_status(
        tokio_tungstenite::connect_async(
            server.ws_url(&format!("/ws/notifications/board:{}", b.id)),
        )
        .await,
    );
    assert_eq!(
        status, 403,
        "the seed's anonymous endpoint refuses a private board: {body}"
    );
    role_table(&server, &b, false).await;
}

#[tokio::test]
async fn every_role_rule_on_a_public_board() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let b = board(&server, "q", "public").await;
    assert_eq!(
        subscriptions(&server, &b).await,
        ["subscribed"; 5],
        "a public board's topic is anyone's to read"
    );
    let (mut seed, _) = tokio_tungstenite::connect_async(
        server.ws_url(&format!("/ws/notifications/board:{}", b.id)),
    )
    .await
    .expect("the seed's endpoint serves a public board");
    // The seed's client is subscribed (the sockets of the role check
    // above are gone) before the task is made.
    server.wait_for_metric("pulseboard_subscriptions", 1).await;
    task_on(&server, &b, "heard by the seed's client").await;
    assert_eq!(
        ws::recv_text(&mut seed).await,
        "New task created: heard by the seed's client"
    );
    role_table(&server, &b, true).await;
}

/// A board's events reach its readers and nobody else: not the shared
/// board's `tasks` topic, not another board's readers. Board changes come
/// as `board_updated` and, last, `board_deleted`.
#[tokio::test]
async fn events_reach_only_the_boards_readers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let a = board(&server, "a", "private").await;
    let other = board(&server, "o", "private").await;
    let viewer = a.tokens[2].as_deref().unwrap();
    let mut on_a = typed_as(&server.ws_url(""), viewer).await;
    subscribe(&mut on_a, 1, &format!("board:{}", a.id), None).await;
    subscribe(&mut on_a, 2, "tasks", None).await;
    let other_viewer = other.tokens[2].as_deref().unwrap();
    let mut on_other = typed_as(&server.ws_url(""), other_viewer).await;
    subscribe(&mut on_other, 1, &format!("board:{}", other.id), None).await;
    subscribe(&mut on_other, 2, "tasks", None).await;

    let on_board = task_on(&server, &a, "on board a").await;
    let shared = common::create_task(&a.callers[3], &server, "on the shared board").await;
    let ev = recv(&mut on_a).await;
    assert_eq!(ev["topic"], format!("board:{}", a.id), "{ev}");
    assert_eq!(ev["payload"]["task"]["id"], on_board);
    let ev = recv(&mut on_a).await;
    assert_eq!(ev["topic"], "tasks", "{ev}");
    assert_eq!(ev["payload"]["task"]["id"], shared["id"]);
    assert_eq!(shared["board_id"], 1, "/tasks is the shared board");
    let ev = recv(&mut on_other).await;
    assert_eq!(
        (ev["topic"].as_str(), &ev["payload"]["task"]["id"]),
        (Some("tasks"), &shared["id"]),
        "board a's task never reached board o's reader: {ev}"
    );

    let url = server.url(&format!("/boards/{}", a.id));
    let (status, _) = call(
        &a.callers[4],
        Method::PATCH,
        &url,
        Some(json!({"name": "Lift-off", "visibility": "public"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let ev = recv(&mut on_a).await;
    assert_eq!(ev["payload"]["kind"], "board_updated", "{ev}");
    assert_eq!(ev["payload"]["board"]["name"], "Lift-off");
    assert_eq!(ev["payload"]["board"]["visibility"], "public");
    let (status, _) = call(&a.callers[4], Method::DELETE, &url, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let ev = recv(&mut on_a).await;
    assert_eq!(ev["payload"], json!({"kind": "board_deleted", "id": a.id}));

    // Clients cannot publish on a board's topic, even its owner.
    let owner = other.tokens[4].as_deref().unwrap();
    let mut publisher = typed_as(&server.ws_url(""), owner).await;
    let reply = ws::publish_chat(&mut publisher, 9, &format!("board:{}", other.id), "spoof").await;
    assert_eq!(reply["code"], "publish_forbidden", "{reply}");
    let (status, _) = call(
        &other.callers[4],
        Method::POST,
        &server.url("/publish"),
        Some(json!({"topic": format!("board:{}", other.id), "payload": {"kind": "message", "text": "x"}})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Inviting, changing a role, the invitee hearing about it, and the
/// refusals: unknown accounts, a second owner, the owner leaving or being
/// removed, a viewer or an outsider as assignee.
#[tokio::test]
async fn members_are_invited_changed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let b = board(&server, "m", "private").await;
    let owner = &b.callers[4];
    let id = b.id;
    let newcomer = server.signup("newcomer").await;
    let mut inbox = typed_as(&server.ws_url(""), &newcomer).await;
    subscribe(&mut inbox, 1, "user:newcomer", None).await;

    let url = |name: &str| server.url(&format!("/boards/{id}/members/{name}"));
    let (status, member) = set_role(&server, owner, id, "newcomer", "viewer").await;
    assert_eq!(
        (status, member["role"].as_str()),
        (StatusCode::CREATED, Some("viewer"))
    );
    let ev = recv(&mut inbox).await;
    assert_eq!(ev["payload"]["title"], "Added to a board", "{ev}");
    assert_eq!(
        ev["payload"]["body"],
        "mowner added you to “m board” as a viewer"
    );
    let (status, member) = set_role(&server, owner, id, "newcomer", "member").await;
    assert_eq!(
        (status, member["role"].as_str()),
        (StatusCode::OK, Some("member"))
    );
    let ev = recv(&mut inbox).await;
    assert_eq!(ev["payload"]["title"], "Your role changed", "{ev}");

    // The board, as the newcomer sees it, lists everyone.
    let (status, view) = call(
        &authed_client(&newcomer),
        Method::GET,
        &server.url(&format!("/boards/{id}")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["role"], "member");
    let members: Vec<(String, String)> = view["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["username"].as_str().unwrap().into(),
                m["role"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        members,
        [
            ("mowner".to_owned(), "owner".to_owned()),
            ("mmember".into(), "member".into()),
            ("newcomer".into(), "member".into()),
            ("mviewer".into(), "viewer".into()),
        ]
    );
    let (_, listed) = call(
        &authed_client(&newcomer),
        Method::GET,
        &server.url("/boards"),
        None,
    )
    .await;
    let listed: Vec<(i64, Option<&str>)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["id"].as_i64().unwrap(), b["role"].as_str()))
        .collect();
    assert_eq!(listed, [(1, Some("member")), (id, Some("member"))]);
    let (_, listed) = call(&client(), Method::GET, &server.url("/boards"), None).await;
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "anonymous: the shared board only"
    );
    assert_eq!(listed[0]["role"], "viewer");

    for (body, name, want, code) in [
        (
            json!({"role": "member"}),
            "nobody",
            422,
            "validation_failed",
        ),
        (
            json!({"role": "owner"}),
            "newcomer",
            422,
            "validation_failed",
        ),
        (
            json!({"role": "viewer"}),
            "mowner",
            422,
            "validation_failed",
        ),
        (json!({"role": "admin"}), "newcomer", 422, "invalid_body"),
        (
            json!({"role": "member", "extra": 1}),
            "newcomer",
            422,
            "invalid_body",
        ),
        (
            json!({"role": "member"}),
            "Bad%20Name",
            422,
            "validation_failed",
        ),
    ] {
        let (status, resp) = call(owner, Method::PUT, &url(name), Some(body.clone())).await;
        assert_eq!(
            (status.as_u16(), resp["error"].as_str()),
            (want, Some(code)),
            "{body} for {name}: {resp}"
        );
    }
    let (status, resp) = call(owner, Method::DELETE, &url("mowner"), None).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the owner cannot leave: {resp}"
    );
    let (status, resp) = call(owner, Method::DELETE, &url("outsider"), None).await;
    assert_eq!(
        (status, resp["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("member_not_found"))
    );
    let (status, resp) = call(&b.callers[3], Method::DELETE, &url("mowner"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{resp}");

    // Assignees: members and the owner, not viewers or outsiders.
    let tasks = server.url(&format!("/boards/{id}/tasks"));
    for (assignee, want) in [
        ("newcomer", 201),
        ("mowner", 201),
        ("mviewer", 422),
        ("poutsider", 422),
        ("nobody", 422),
    ] {
        let (status, resp) = call(
            owner,
            Method::POST,
            &tasks,
            Some(json!({"title": "t", "assignee": assignee})),
        )
        .await;
        assert_eq!(status.as_u16(), want, "assigning {assignee}: {resp}");
    }

    // Removed, the newcomer can no longer read the board or its tasks.
    let (status, _) = call(owner, Method::DELETE, &url("newcomer"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&authed_client(&newcomer), Method::GET, &tasks, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// The shared board keeps the API of before boards: `/tasks` and
/// `/boards/1/tasks` are one list, the `tasks` topic carries it, nobody
/// can rename or delete it, and `board:1` is not a second name for it.
#[tokio::test]
async fn the_shared_board_keeps_the_seed_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let ann = authed_client(&server.signup("ann").await);
    let (status, via_board) = call(
        &ann,
        Method::POST,
        &server.url("/boards/1/tasks"),
        Some(json!({"title": "via the board"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let via_tasks = common::create_task(&ann, &server, "via /tasks").await;
    let list = common::list_tasks(&server).await;
    let ids: Vec<&Value> = list.as_array().unwrap().iter().map(|t| &t["id"]).collect();
    assert_eq!(ids, [&via_board["id"], &via_tasks["id"]]);
    let (_, same) = call(&client(), Method::GET, &server.url("/boards/1/tasks"), None).await;
    assert_eq!(same, list);
    let (status, view) = call(&client(), Method::GET, &server.url("/boards/1"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            view["visibility"].as_str(),
            view["topic"].as_str(),
            view["role"].as_str()
        ),
        (Some("open"), Some("tasks"), Some("viewer"))
    );
    for method in [Method::PATCH, Method::DELETE] {
        let body = (method == Method::PATCH).then(|| json!({"name": "mine"}));
        let (status, resp) = call(&ann, method.clone(), &server.url("/boards/1"), body).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{method} the shared board: {resp}"
        );
    }
    let (status, _) = set_role(&server, &ann, 1, "ann", "viewer").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let mut socket = typed(&server.ws_url("")).await;
    ws::send(
        &mut socket,
        json!({"type": "subscribe", "id": 1, "topic": "board:1"}),
    )
    .await;
    let reply = recv(&mut socket).await;
    assert_eq!(reply["code"], "invalid_topic", "{reply}");
    for topic in ["board:0", "board:01", "board:x", "board:999999"] {
        ws::send(
            &mut socket,
            json!({"type": "subscribe", "id": 2, "topic": topic}),
        )
        .await;
        let reply = recv(&mut socket).await;
        assert_ne!(reply["type"], "subscribed", "{topic}: {reply}");
    }
    let (status, resp) = call(
        &ann,
        Method::POST,
        &server.url("/boards"),
        Some(json!({"name": "x", "visibility": "open"})),
    )
    .await;
    assert_eq!(
        (status, resp["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );
    for name in ["", "   ", &"n".repeat(81)] {
        let (status, _) = call(
            &ann,
            Method::POST,
            &server.url("/boards"),
            Some(json!({"name": name})),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name:?}");
    }
    let (status, _) = call(
        &client(),
        Method::POST,
        &server.url("/boards"),
        Some(json!({"name": "anon"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, resp) = call(&ann, Method::GET, &server.url("/boards/abc"), None).await;
    assert_eq!(
        (status, resp["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_path"))
    );
}

/// One account owns at most 100 boards; the 101st is a 409 and other
/// accounts are unaffected. Deleting the account deletes its boards, and
/// their readers hear `board_deleted`.
#[tokio::test]
async fn boards_per_owner_are_bounded_and_go_with_the_account() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let token = server.signup("hoarder").await;
    let hoarder = authed_client(&token);
    let mut first = None;
    for i in 0..100 {
        let (status, b) = call(
            &hoarder,
            Method::POST,
            &server.url("/boards"),
            Some(json!({"name": format!("b{i}")})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "board {i}");
        first.get_or_insert(b["id"].as_i64().unwrap());
    }
    let (status, resp) = call(
        &hoarder,
        Method::POST,
        &server.url("/boards"),
        Some(json!({"name": "one more"})),
    )
    .await;
    assert_eq!(
        (status, resp["error"].as_str()),
        (StatusCode::CONFLICT, Some("limit_reached")),
        "{resp}"
    );
    let other_token = server.signup("other").await;
    let other = authed_client(&other_token);
    let (status, _) = call(
        &other,
        Method::POST,
        &server.url("/boards"),
        Some(json!({"name": "fine"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, listed) = call(&hoarder, Method::GET, &server.url("/boards"), None).await;
    assert_eq!(listed.as_array().unwrap().len(), 101);

    let first = first.unwrap();
    let (status, _) = set_role(&server, &hoarder, first, "other", "viewer").await;
    assert_eq!(status, StatusCode::CREATED);
    let mut watcher = typed_as(&server.ws_url(""), &other_token).await;
    subscribe(&mut watcher, 1, &format!("board:{first}"), None).await;
    let (status, _) = call(
        &hoarder,
        Method::DELETE,
        &server.url("/users/me"),
        Some(json!({"password": common::PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    loop {
        let ev = recv(&mut watcher).await;
        if ev["type"] == "event" {
            assert_eq!(
                ev["payload"],
                json!({"kind": "board_deleted", "id": first}),
                "{ev}"
            );
            break;
        }
    }
    let (status, _) = call(
        &other,
        Method::GET,
        &server.url(&format!("/boards/{first}")),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the account's boards went with it"
    );
}

/// A subscription outlives the check made when it began, so losing access
/// ends it: a removed member gets the removal and nothing after; a
/// non-member reading a public board loses it when it goes private (on
/// `/ws/v1` and on the seed's endpoint) while members keep reading; and
/// subscribing again is checked afresh.
#[tokio::test]
async fn losing_access_ends_live_subscriptions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let b = board(&server, "r", "public").await;
    let topic = format!("board:{}", b.id);
    let mut as_member = typed_as(&server.ws_url(""), b.tokens[3].as_deref().unwrap()).await;
    let mut as_outsider = typed_as(&server.ws_url(""), b.tokens[1].as_deref().unwrap()).await;
    let mut as_viewer = typed_as(&server.ws_url(""), b.tokens[2].as_deref().unwrap()).await;
    for socket in [&mut as_member, &mut as_outsider, &mut as_viewer] {
        subscribe(socket, 1, &topic, None).await;
        subscribe(socket, 2, "tasks", None).await;
    }
    let (mut seed, _) =
        tokio_tungstenite::connect_async(server.ws_url(&format!("/ws/notifications/{topic}")))
            .await
            .unwrap();
    // Three sockets with two subscriptions each, and the seed's client:
    // all in place before anything is published.
    server.wait_for_metric("pulseboard_subscriptions", 7).await;

    let owner = &b.callers[4];
    let board_url = server.url(&format!("/boards/{}", b.id));
    let (status, _) = call(
        owner,
        Method::PATCH,
        &board_url,
        Some(json!({"visibility": "private"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for socket in [&mut as_member, &mut as_outsider, &mut as_viewer] {
        let ev = recv(socket).await;
        assert_eq!(
            ev["payload"]["kind"], "board_updated",
            "everyone hears why: {ev}"
        );
    }
    assert_eq!(ws::recv_text(&mut seed).await, "Board updated: r board");
    let (status, _) = call(
        owner,
        Method::DELETE,
        &server.url(&format!("/boards/{}/members/rviewer", b.id)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let ev = recv(&mut as_viewer).await;
    assert_eq!(
        ev["payload"],
        json!({"kind": "member_removed", "username": "rviewer", "visibility": "private"})
    );
    assert_eq!(
        recv(&mut as_member).await["payload"]["kind"],
        "member_removed"
    );

    // Now a task on the board, then one on the shared board: the member
    // gets both; the outsider, the removed viewer and the seed's client
    // only the shared one (which proves nothing of the board's came first).
    let secret = task_on(&server, &b, "members only").await;
    let shared = common::create_task(owner, &server, "for everyone").await;
    let ev = recv(&mut as_member).await;
    assert_eq!(ev["payload"]["task"]["id"], secret);
    assert_eq!(
        recv(&mut as_member).await["payload"]["task"]["id"],
        shared["id"]
    );
    for socket in [&mut as_outsider, &mut as_viewer] {
        let ev = recv(socket).await;
        assert_eq!(
            (ev["topic"].as_str(), &ev["payload"]["task"]["id"]),
            (Some("tasks"), &shared["id"]),
            "nothing of the board after losing it: {ev}"
        );
    }
    // The seed's client got none of the tasks above (it only reads the
    // board, so it has nothing else to receive): the member has had them
    // both, and the seed's session was handed each at the same moment.
    let nothing = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        ws::recv_text(&mut seed),
    )
    .await;
    assert!(
        nothing.is_err(),
        "the seed's client of a board gone private hears nothing more: {nothing:?}"
    );

    // Subscribing again is checked afresh: refused now.
    ws::send(
        &mut as_viewer,
        json!({"type": "unsubscribe", "id": 3, "topic": topic}),
    )
    .await;
    let reply = loop {
        let msg = recv(&mut as_viewer).await;
        if msg["type"] != "event" {
            break msg;
        }
        assert_eq!(
            msg["topic"], "tasks",
            "only the shared board's events: {msg}"
        );
    };
    assert_eq!(reply["type"], "unsubscribed");
    ws::send(
        &mut as_viewer,
        json!({"type": "subscribe", "id": 4, "topic": topic}),
    )
    .await;
    assert_eq!(recv(&mut as_viewer).await["code"], "forbidden");
}
