//! Cards' order within a column and their due dates, over real HTTP and
//! the typed WebSocket endpoint against the real server.

mod common;

use common::ws::{recv, subscribe, typed};
use common::{authed_client, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn create(w: &reqwest::Client, server: &Server, body: Value) -> Value {
    let resp = w
        .post(server.url("/tasks"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    resp.json().await.unwrap()
}

async fn patch(w: &reqwest::Client, server: &Server, id: i64, body: Value) -> (StatusCode, Value) {
    let resp = w
        .patch(server.url(&format!("/tasks/{id}")))
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

/// A column's task ids in the order the board shows them.
async fn column(server: &Server, status: &str) -> Vec<i64> {
    let list: Value = common::list_tasks(server).await;
    let mut tasks: Vec<(i64, i64)> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == status)
        .map(|t| (t["position"].as_i64().unwrap(), t["id"].as_i64().unwrap()))
        .collect();
    tasks.sort();
    tasks.into_iter().map(|(_, id)| id).collect()
}

fn id(task: &Value) -> i64 {
    task["id"].as_i64().unwrap()
}

#[tokio::test]
async fn cards_are_placed_within_and_across_columns() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let w = authed_client(&server.signup("ann").await);
    let a = create(&w, &server, json!({"title": "a"})).await;
    let b = create(&w, &server, json!({"title": "b"})).await;
    let c = create(&w, &server, json!({"title": "c"})).await;
    let d = create(&w, &server, json!({"title": "d", "status": "doing"})).await;
    assert_eq!(column(&server, "todo").await, vec![id(&a), id(&b), id(&c)]);

    // c to the top, then a after c: c a b.
    let (status, moved) = patch(&w, &server, id(&c), json!({"after": null})).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["version"], 2);
    assert_eq!(column(&server, "todo").await, vec![id(&c), id(&a), id(&b)]);
    patch(&w, &server, id(&a), json!({"after": id(&c)})).await;
    assert_eq!(column(&server, "todo").await, vec![id(&c), id(&a), id(&b)]);
    patch(&w, &server, id(&c), json!({"after": id(&b)})).await;
    assert_eq!(column(&server, "todo").await, vec![id(&a), id(&b), id(&c)]);

    // Into another column at a chosen place, or at its end by default.
    let (status, _) = patch(
        &w,
        &server,
        id(&b),
        json!({"status": "doing", "after": null}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(column(&server, "doing").await, vec![id(&b), id(&d)]);
    patch(&w, &server, id(&a), json!({"status": "doing"})).await;
    assert_eq!(column(&server, "doing").await, vec![id(&b), id(&d), id(&a)]);
    assert_eq!(column(&server, "todo").await, vec![id(&c)]);
    // A change that keeps the column keeps the place.
    patch(
        &w,
        &server,
        id(&b),
        json!({"title": "b2", "status": "doing"}),
    )
    .await;
    assert_eq!(column(&server, "doing").await, vec![id(&b), id(&d), id(&a)]);

    // Refusals name the field and change nothing.
    for (body, why) in [
        (json!({"after": id(&c)}), "not in the doing column"),
        (json!({"after": id(&b)}), "cannot follow itself"),
        (json!({"after": 999_999}), "not in the doing column"),
        (
            json!({"status": "todo", "after": id(&d)}),
            "not in the todo column",
        ),
        (json!({"after": "first"}), "after"),
    ] {
        let (status, err) = patch(&w, &server, id(&b), body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {err}");
        assert!(
            err["message"].as_str().unwrap().contains(why),
            "{body}: {err}"
        );
    }
    assert_eq!(column(&server, "doing").await, vec![id(&b), id(&d), id(&a)]);

    // A card on another board cannot be an anchor here.
    let resp = w
        .post(server.url("/boards"))
        .json(&json!({"name": "Other"}))
        .send()
        .await
        .unwrap();
    let board: Value = resp.json().await.unwrap();
    let elsewhere: Value = w
        .post(server.url(&format!("/boards/{}/tasks", board["id"])))
        .json(&json!({"title": "x", "status": "doing"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (status, err) = patch(&w, &server, id(&b), json!({"after": id(&elsewhere)})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
}

#[tokio::test]
async fn a_crowded_gap_renumbers_its_column_and_publishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let w = authed_client(&server.signup("ann").await);
    let first = create(&w, &server, json!({"title": "first"})).await;
    let last = create(&w, &server, json!({"title": "last"})).await;
    let mut ws = typed(&server.ws_url("")).await;
    subscribe(&mut ws, 1, "tasks", None).await;

    // Each new card goes directly after `first`: every placement halves
    // the same gap until none is left, and then the column is renumbered.
    let mut placed = Vec::new();
    let mut renumbered = 0;
    for n in 0..24 {
        let card = create(&w, &server, json!({"title": format!("n{n}")})).await;
        let (status, moved) = patch(&w, &server, id(&card), json!({"after": id(&first)})).await;
        assert_eq!(status, StatusCode::OK, "{moved}");
        placed.insert(0, id(&card));
        // The events, up to this card's placement: its creation, the
        // renumbering of the others if there was one, then the move.
        loop {
            let ev = recv(&mut ws).await;
            let task = &ev["payload"]["task"];
            if task["id"] == moved["id"] && task["version"] == moved["version"] {
                break;
            }
            if ev["payload"]["kind"] == "task_updated" {
                renumbered += 1;
            }
        }
        let mut expected = vec![id(&first)];
        expected.extend(&placed);
        expected.push(id(&last));
        assert_eq!(
            column(&server, "todo").await,
            expected,
            "after {n} placements"
        );
    }
    assert!(
        renumbered > 0,
        "24 placements into one gap renumber the column at least once"
    );
}

#[tokio::test]
async fn due_dates_are_set_cleared_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let w = authed_client(&server.signup("ann").await);
    let task = create(&w, &server, json!({"title": "t", "due": "2027-03-01"})).await;
    assert_eq!(task["due"], "2027-03-01");
    let (_, task) = patch(&w, &server, id(&task), json!({"title": "t2"})).await;
    assert_eq!(task["due"], "2027-03-01", "absent keeps it");
    let (_, task) = patch(&w, &server, id(&task), json!({"due": "2027-12-31"})).await;
    assert_eq!(task["due"], "2027-12-31");
    let (_, task) = patch(&w, &server, id(&task), json!({"due": null})).await;
    assert!(task.get("due").is_none(), "null clears it: {task}");

    for due in ["2027-02-30", "tomorrow", "1969-12-31", "27-01-01"] {
        let (status, err) = patch(&w, &server, id(&task), json!({"due": due})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{due}: {err}");
        assert!(!err["message"].as_str().unwrap().is_empty());
        let resp = w
            .post(server.url("/tasks"))
            .json(&json!({"title": "x", "due": due}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{due}");
    }
    let (status, err) = patch(&w, &server, id(&task), json!({"due": "1969-12-31"})).await;
    assert!(
        status == StatusCode::UNPROCESSABLE_ENTITY
            && err["message"].as_str().unwrap().contains("1970"),
        "{err}"
    );
}

#[tokio::test]
async fn labels_belong_to_a_board_and_its_writers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let ann = authed_client(&server.signup("ann").await);
    let bob = authed_client(&server.signup("bob").await);
    let board: Value = ann
        .post(server.url("/boards"))
        .json(&json!({"name": "Labelled"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let b = board["id"].as_i64().unwrap();
    let viewer = ann
        .put(server.url(&format!("/boards/{b}/members/bob")))
        .json(&json!({"role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(viewer.status(), StatusCode::CREATED);
    let mut ws = typed(&server.ws_url("")).await;
    subscribe(&mut ws, 1, "tasks", None).await;

    let labels = server.url(&format!("/boards/{b}/labels"));
    let resp = ann
        .post(&labels)
        .json(&json!({"name": " bug ", "color": "red"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let bug: Value = resp.json().await.unwrap();
    assert_eq!(
        (bug["name"].as_str(), bug["color"].as_str()),
        (Some("bug"), Some("red"))
    );
    // Refusals: a viewer, nobody, a duplicate name, a colour off the palette, a bad name.
    let cases = [
        (
            &bob,
            json!({"name": "x", "color": "red"}),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            &ann,
            json!({"name": "BUG", "color": "blue"}),
            StatusCode::CONFLICT,
            "label_exists",
        ),
        (
            &ann,
            json!({"name": "x", "color": "#ff0000"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            &ann,
            json!({"name": "  ", "color": "red"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            &ann,
            json!({"name": "y".repeat(31), "color": "red"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ];
    for (who, body, status, code) in cases {
        let resp = who.post(&labels).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), status, "{body}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"], code, "{body}: {err}");
    }
    let anonymous = common::client()
        .post(&labels)
        .json(&json!({"name": "z", "color": "red"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    // Readers see them, on the board too; outsiders do not.
    let listed: Value = bob.get(&labels).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let view: Value = bob
        .get(server.url(&format!("/boards/{b}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["labels"][0]["name"], "bug");
    let outsider = authed_client(&server.signup("dee").await);
    assert_eq!(
        outsider.get(&labels).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );

    // On cards: labels of the card's board only, at most ten, deduplicated.
    let shared_label: Value = ann
        .post(server.url("/boards/1/labels"))
        .json(&json!({"name": "shared", "color": "green"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ev = recv(&mut ws).await;
    assert_eq!(ev["payload"]["kind"], "label_set", "{ev}");
    assert_eq!(ev["payload"]["label"]["name"], "shared");
    let card: Value = ann
        .post(server.url(&format!("/boards/{b}/tasks")))
        .json(&json!({"title": "labelled", "labels": [id(&bug), id(&bug)]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(card["labels"], json!([id(&bug)]));
    let (status, err) = patch(
        &ann,
        &server,
        id(&card),
        json!({"labels": [id(&shared_label)]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let eleven: Vec<i64> = (0..11).collect();
    let (status, _) = patch(&ann, &server, id(&card), json!({"labels": eleven})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Renamed, then deleted: taken off the card.
    let one = server.url(&format!("/boards/{b}/labels/{}", id(&bug)));
    let renamed: Value = ann
        .patch(&one)
        .json(&json!({"name": "defect"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(renamed["name"], "defect");
    assert_eq!(
        bob.delete(&one).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        ann.delete(&one).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        ann.delete(&one).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let card: Value = ann
        .get(server.url(&format!("/tasks/{}", id(&card))))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(card.get("labels").is_none(), "{card}");

    // The bound of labels per board, attacked: the 51st is refused.
    for n in 0..app::protocol::LABELS_PER_BOARD_MAX {
        let resp = ann
            .post(&labels)
            .json(&json!({"name": format!("l{n}"), "color": "gray"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let resp = ann
        .post(&labels)
        .json(&json!({"name": "one more", "color": "gray"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"], "limit_reached");
}
