//! The task REST API over real HTTP against the real server.

mod common;

use common::{authed_client, client, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Creates a task with a client that sends a token (task writes need one).
async fn create(writer: &reqwest::Client, server: &Server, body: Value) -> reqwest::Response {
    writer
        .post(server.url("/tasks"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A client signed in as `ann`, signing her up first if needed.
async fn writer(server: &Server) -> reqwest::Client {
    authed_client(&server.signup("ann").await)
}

async fn error_of(resp: reqwest::Response) -> (StatusCode, String, String) {
    let status = resp.status();
    let body: Value = resp.json().await.expect("error bodies are JSON");
    let code = body["error"].as_str().expect("error code").to_owned();
    let message = body["message"].as_str().expect("error message").to_owned();
    assert!(!message.is_empty());
    (status, code, message)
}

#[tokio::test]
async fn create_list_get_patch_delete() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let w = writer(&server).await;

    // The seed article's body: id and created_at are ignored.
    let resp = create(
        &w,
        &server,
        json!({"id": 0, "title": "  Write the README  ", "description": "two commands", "created_at": "2020-01-01T00:00:00"}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["etag"], "\"1\"");
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let task: Value = resp.json().await.unwrap();
    assert_eq!(task["title"], "Write the README");
    assert_eq!(task["description"], "two commands");
    assert_eq!(task["status"], "todo");
    assert_eq!(task["version"], 1);
    let id = task["id"].as_i64().unwrap();
    assert!(id > 0);
    assert_eq!(location, format!("/tasks/{id}"));
    assert_ne!(task["created_at"], "2020-01-01T00:00:00");

    let second: Value = create(&w, &server, json!({"title": "Ship", "status": "doing"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["status"], "doing");
    assert_eq!(second["description"], "");

    let list: Vec<Value> = client()
        .get(server.url("/tasks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], id);
    assert_eq!(list[1]["id"], second["id"]);

    let resp = client()
        .get(server.url(&format!("/tasks/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["etag"], "\"1\"");
    let got: Value = resp.json().await.unwrap();
    assert_eq!(got, task);

    let resp = w
        .patch(server.url(&format!("/tasks/{id}")))
        .header("If-Match", "\"1\"")
        .json(&json!({"status": "done", "title": "README written"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["etag"], "\"2\"");
    let patched: Value = resp.json().await.unwrap();
    assert_eq!(patched["status"], "done");
    assert_eq!(patched["title"], "README written");
    assert_eq!(patched["description"], "two commands");
    assert_eq!(patched["version"], 2);
    assert_eq!(patched["created_at"], task["created_at"]);

    let resp = w
        .delete(server.url(&format!("/tasks/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = client()
        .get(server.url(&format!("/tasks/{id}")))
        .send()
        .await
        .unwrap();
    let (status, code, _) = error_of(resp).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "task_not_found")
    );
}

#[tokio::test]
async fn validation_errors_are_json_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-body-bytes", "20000"]).await;
    let c = writer(&server).await;

    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"title": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"title": "   \t "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"title": "x".repeat(201)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"title": "ok", "description": "d".repeat(10_001)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"title": "ok", "status": "blocked"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"title": 42}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"description": "no title"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!(["not", "an", "object"]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        let (s, c2, _) = error_of(create(&c, &server, body.clone()).await).await;
        assert_eq!((s, c2.as_str()), (status, code), "body {body}");
    }
    // Exactly at the limits is fine.
    let resp = create(
        &c,
        &server,
        json!({"title": "t".repeat(200), "description": "d".repeat(10_000)}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);

    let resp = c
        .post(server.url("/tasks"))
        .header("content-type", "application/json")
        .body("{\"title\": \"unterminated")
        .send()
        .await
        .unwrap();
    let (s, code, _) = error_of(resp).await;
    assert_eq!(
        (s, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_json")
    );

    let resp = c
        .post(server.url("/tasks"))
        .body("{\"title\":\"x\"}")
        .send()
        .await
        .unwrap();
    let (s, code, _) = error_of(resp).await;
    assert_eq!(
        (s, code.as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );

    let huge = json!({"title": "big", "description": "x".repeat(30_000)});
    let (s, code, _) = error_of(create(&c, &server, huge).await).await;
    assert_eq!(
        (s, code.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );

    for path in ["/tasks/abc", "/tasks/99999999999999999999999"] {
        let (s, code, _) = error_of(c.get(server.url(path)).send().await.unwrap()).await;
        assert_eq!(
            (s, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_path"),
            "{path}"
        );
    }
    let (s, code, _) = error_of(c.get(server.url("/tasks/424242")).send().await.unwrap()).await;
    assert_eq!(
        (s, code.as_str()),
        (StatusCode::NOT_FOUND, "task_not_found")
    );
    let resp = c
        .patch(server.url("/tasks/424242"))
        .json(&json!({"status": "done"}))
        .send()
        .await
        .unwrap();
    let (s, code, _) = error_of(resp).await;
    assert_eq!(
        (s, code.as_str()),
        (StatusCode::NOT_FOUND, "task_not_found")
    );
    let (s, code, _) = error_of(c.delete(server.url("/tasks/424242")).send().await.unwrap()).await;
    assert_eq!(
        (s, code.as_str()),
        (StatusCode::NOT_FOUND, "task_not_found")
    );

    // PATCH validates too, and refuses unknown fields.
    let task: Value = create(&c, &server, json!({"title": "patch me"}))
        .await
        .json()
        .await
        .unwrap();
    let url = server.url(&format!("/tasks/{}", task["id"]));
    for (body, status, code) in [
        (
            json!({"title": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"status": "later"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"colour": "red"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ] {
        let (s, c2, _) = error_of(c.patch(&url).json(&body).send().await.unwrap()).await;
        assert_eq!((s, c2.as_str()), (status, code), "patch {body}");
    }
    let resp = c
        .patch(&url)
        .header("If-Match", "\"v1\"")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (s, code, _) = error_of(resp).await;
    assert_eq!(
        (s, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_precondition")
    );

    // Nothing above was a 500, and the server is still serving.
    let resp = c.get(server.url("/tasks")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn if_match_with_an_old_version_is_refused_with_the_current_task() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let c = writer(&server).await;
    let task: Value = create(&c, &server, json!({"title": "shared card"}))
        .await
        .json()
        .await
        .unwrap();
    let url = server.url(&format!("/tasks/{}", task["id"]));

    // Alice edits version 1 first.
    let resp = c
        .patch(&url)
        .header("If-Match", "\"1\"")
        .json(&json!({"title": "Alice's"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // Bob still holds version 1: refused, and told what is there now.
    let resp = c
        .patch(&url)
        .header("If-Match", "\"1\"")
        .json(&json!({"title": "Bob's"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(resp.headers()["etag"], "\"2\"");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "version_mismatch");
    assert_eq!(body["current"]["title"], "Alice's");
    assert_eq!(body["current"]["version"], 2);

    let resp = c
        .delete(&url)
        .header("If-Match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PRECONDITION_FAILED);
    let now: Value = c.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(now["title"], "Alice's", "the refused edits changed nothing");

    // With the current version both succeed; `*` matches any version.
    let resp = c
        .patch(&url)
        .header("If-Match", "W/\"2\"")
        .json(&json!({"title": "Bob's"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = c.delete(&url).header("If-Match", "*").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn tasks_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let w = writer(&server).await;
    let task: Value = create(
        &w,
        &server,
        json!({"title": "durable", "description": "kept"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let patched: Value = w
        .patch(server.url(&format!("/tasks/{}", task["id"])))
        .json(&json!({"status": "doing"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The highest id, deleted before the restart: a store that took the next
    // id from what is left would give it out again.
    let gone: Value = create(&w, &server, json!({"title": "gone"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        w.delete(server.url(&format!("/tasks/{}", gone["id"])))
            .send()
            .await
            .unwrap()
            .status(),
        reqwest::StatusCode::NO_CONTENT
    );
    assert!(server.terminate().await, "clean exit on SIGTERM");
    assert!(
        dir.path().join("pulseboard.db").exists(),
        "default SQLite file in the data dir"
    );

    let server = Server::start(dir.path(), &[]).await;
    let w = writer(&server).await;
    let list: Vec<Value> = client()
        .get(server.url("/tasks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list, vec![patched]);
    // Ids keep growing after a restart, past the deleted one too.
    let next: Value = create(&w, &server, json!({"title": "after"}))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        next["id"].as_i64() > gone["id"].as_i64(),
        "{next} after {gone}"
    );
}

#[tokio::test]
async fn the_page_is_rendered_on_the_server_with_the_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let w = writer(&server).await;
    create(
        &w,
        &server,
        json!({"title": "Visible without JavaScript <b>"}),
    )
    .await;
    let resp = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("Visible without JavaScript &lt;b&gt;"),
        "escaped title in SSR HTML"
    );
    assert!(html.contains("data-testid=\"new-task-form\""));

    let resp = client()
        .get(server.url("/no/such/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let resp = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = client().get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

/// Switches in the environment take what people write: `1` opens writes
/// (it used to stop the server), `off` keeps them closed.
#[tokio::test]
async fn switches_in_the_environment_accept_one_and_off() {
    for (value, expected) in [
        ("1", StatusCode::CREATED),
        ("off", StatusCode::UNAUTHORIZED),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let server =
            Server::start_with_env(dir.path(), &[], &[("PULSEBOARD_OPEN_WRITES", value)]).await;
        let resp = create(&client(), &server, json!({"title": "from the environment"})).await;
        assert_eq!(resp.status(), expected, "PULSEBOARD_OPEN_WRITES={value}");
    }
}

/// The `next` link of a `GET /tasks` answer, if any.
fn next_link(resp: &reqwest::Response) -> Option<String> {
    let link = resp.headers().get("link")?.to_str().ok()?;
    let url = link.strip_prefix('<')?.split_once('>')?.0.to_owned();
    assert!(link.ends_with("rel=\"next\""), "{link}");
    Some(url)
}

#[tokio::test]
async fn task_lists_come_in_pages_followed_by_their_next_links() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--publish-rate-per-sec", "0"]).await;
    let writer = authed_client(&server.signup("pager").await);
    for n in 0..25 {
        common::create_task(&writer, &server, &format!("t{n}")).await;
    }
    let ids = |page: &Value| -> Vec<i64> {
        page.as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .collect()
    };

    // Without a query: every task (under the maximum page), oldest first,
    // as the seed answered.
    let all = client().get(server.url("/tasks")).send().await.unwrap();
    assert!(next_link(&all).is_none());
    let all: Vec<i64> = ids(&all.json().await.unwrap());
    assert_eq!(all, (1..=25).collect::<Vec<_>>());

    // Pages of 10, oldest first and newest first, following the links.
    for (order, expected) in [
        ("oldest", (1..=25).collect::<Vec<i64>>()),
        ("newest", (1..=25).rev().collect()),
    ] {
        let mut url = format!("/tasks?order={order}&limit=10");
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let resp = client().get(server.url(&url)).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let next = next_link(&resp);
            let page: Value = resp.json().await.unwrap();
            assert!(page.as_array().unwrap().len() <= 10);
            seen.extend(ids(&page));
            pages += 1;
            match next {
                Some(n) => url = n,
                None => break,
            }
        }
        assert_eq!(seen, expected, "{order}");
        assert_eq!(pages, 3, "{order}");
    }

    // Bad queries are refused with the reason.
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "order=sideways",
        "after=x",
        "page=2",
    ] {
        let resp = client()
            .get(server.url(&format!("/tasks?{bad}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "validation_failed", "{bad}: {body}");
    }
}
