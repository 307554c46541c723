//! Sessions against the real server: signing out, changing the password,
//! re-authentication for the steps a stolen token must not be enough for,
//! the maximum session length and the number of sessions per account.

mod common;

use std::time::Duration;

use common::ws::{self, closed_with, connect_with, subscribe, typed_as};
use common::{authed_client, client, Server, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn status_and_body(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn me(server: &Server, token: &str) -> (StatusCode, Value) {
    status_and_body(
        authed_client(token)
            .get(server.url("/users/me"))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn logout(server: &Server, token: &str) -> StatusCode {
    authed_client(token)
        .post(server.url("/auth/logout"))
        .send()
        .await
        .unwrap()
        .status()
}

async fn change_password(
    server: &Server,
    token: &str,
    current: &str,
    new: &str,
) -> (StatusCode, Value) {
    status_and_body(
        authed_client(token)
            .post(server.url("/auth/password"))
            .json(&json!({"current_password": current, "new_password": new}))
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// A `/ws/v1` connection and a `/ws/secure/{topic}` one, both on `token`.
async fn sockets(server: &Server, token: &str) -> (ws::Ws, ws::Ws) {
    let base = server.ws_url("");
    let mut typed = typed_as(&base, token).await;
    subscribe(&mut typed, 1, "board", None).await;
    let (secure, _) = connect_with(
        &server.ws_url("/ws/secure/room"),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
    .unwrap();
    (typed, secure)
}

async fn assert_closed_with(ws: &mut ws::Ws, code: u16, what: &str) {
    assert_eq!(
        u16::from(closed_with(ws, Duration::from_secs(5)).await),
        code,
        "{what}"
    );
}

#[tokio::test]
async fn signing_out_ends_that_session_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let laptop = server.signup("ann").await;
    let phone = server.signup("ann").await;
    let (mut typed, mut secure) = sockets(&server, &laptop).await;
    let (mut phone_typed, _phone_secure) = sockets(&server, &phone).await;

    assert_eq!(logout(&server, &laptop).await, StatusCode::NO_CONTENT);
    // Its sockets close with 4004, at once.
    assert_closed_with(&mut typed, 4004, "typed").await;
    assert_closed_with(&mut secure, 4004, "secure").await;
    // Its token is refused everywhere, with the reason.
    let (status, body) = me(&server, &laptop).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("session has ended"),
        "{body}"
    );
    let refreshed = authed_client(&laptop)
        .post(server.url("/auth/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(logout(&server, &laptop).await, StatusCode::UNAUTHORIZED);
    let (refused, _) = ws::refused_status(
        connect_with(
            &server.ws_url("/ws/v1"),
            &[("authorization", &format!("Bearer {laptop}"))],
        )
        .await,
    );
    assert_eq!(refused, 401);

    // The phone's session goes on, its socket included.
    assert_eq!(me(&server, &phone).await.0, StatusCode::OK);
    subscribe(&mut phone_typed, 2, "elsewhere", None).await;
}

#[tokio::test]
async fn a_password_change_needs_the_password_and_ends_every_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--login-max-failures", "3"]).await;
    let laptop = server.signup("ann").await;
    let stolen = server.signup("ann").await;
    let (mut typed, mut secure) = sockets(&server, &laptop).await;
    let (mut thief, _) = sockets(&server, &stolen).await;
    let new_password = "a much better passphrase";

    // A token alone is not enough; a bad new password is refused first.
    let (status, body) = change_password(&server, &laptop, "guess", new_password).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_credentials");
    let (status, body) = change_password(&server, &laptop, PASSWORD, "short").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let bad_body = authed_client(&laptop)
        .post(server.url("/auth/password"))
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_body.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        me(&server, &laptop).await.0,
        StatusCode::OK,
        "nothing changed"
    );

    let (status, body) = change_password(&server, &laptop, PASSWORD, new_password).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let fresh = body["access_token"].as_str().unwrap().to_owned();
    // Every earlier session ends, the one that asked included: a copy of
    // its token may be the reason for the change.
    assert_closed_with(&mut typed, 4004, "typed").await;
    assert_closed_with(&mut secure, 4004, "secure").await;
    assert_closed_with(&mut thief, 4004, "the other session").await;
    for old in [&laptop, &stolen] {
        assert_eq!(me(&server, old).await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(me(&server, &fresh).await.0, StatusCode::OK);
    let (mut live, _) = sockets(&server, &fresh).await;
    subscribe(&mut live, 2, "after", None).await;
    // The old password no longer signs in; the new one does.
    assert_eq!(
        server.login("ann", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.login("ann", new_password).await.status(),
        StatusCode::OK
    );

    // Guessing the current password through this endpoint is throttled
    // like guessing it at sign-in.
    let mut last = StatusCode::OK;
    for _ in 0..4 {
        last = change_password(&server, &fresh, "wrong guess", "another passphrase")
            .await
            .0;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn deleting_the_account_needs_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let token = server.signup("ann").await;
    let ann = authed_client(&token);
    let url = server.url("/users/me");

    let (status, body) = status_and_body(ann.delete(&url).send().await.unwrap()).await;
    assert!(status.is_client_error(), "no body: {status}");
    assert!(body["message"].is_string(), "{body}");
    let wrong = ann
        .delete(&url)
        .json(&json!({"password": "not the password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(me(&server, &token).await.0, StatusCode::OK, "still there");

    let right = ann
        .delete(&url)
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::NO_CONTENT);
    assert_eq!(me(&server, &token).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_session_ends_at_its_maximum_length_however_often_it_is_refreshed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--session-max-secs", "4"]).await;
    server.register("ann", PASSWORD).await;
    let login: Value = server.login("ann", PASSWORD).await.json().await.unwrap();
    assert!(login["expires_in"].as_u64().unwrap() <= 4, "{login}");
    let mut token = login["access_token"].as_str().unwrap().to_owned();
    let (mut typed, _) = sockets(&server, &token).await;

    // Refreshing keeps the session's end: the token never reaches past it.
    let mut refused = None;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let resp = authed_client(&token)
            .post(server.url("/auth/refresh"))
            .send()
            .await
            .unwrap();
        if resp.status() != StatusCode::OK {
            refused = Some(resp.status());
            break;
        }
        let body: Value = resp.json().await.unwrap();
        assert!(body["expires_in"].as_u64().unwrap() <= 4, "{body}");
        token = body["access_token"].as_str().unwrap().to_owned();
    }
    assert_eq!(
        refused,
        Some(StatusCode::UNAUTHORIZED),
        "refresh refused in the end"
    );
    // The connection on the first token closed when its token ran out.
    assert_closed_with(&mut typed, 4001, "typed").await;
    // Signing in again starts a new session.
    assert_eq!(server.login("ann", PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn signing_in_again_and_again_keeps_only_the_newest_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-sessions-per-user", "2"]).await;
    let first = server.signup("ann").await;
    let second = server.signup("ann").await;
    let third = server.signup("ann").await;
    assert_eq!(me(&server, &first).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&server, &second).await.0, StatusCode::OK);
    assert_eq!(me(&server, &third).await.0, StatusCode::OK);
    // Someone else's sign-ins are not counted against ann.
    server.signup("bob").await;
    assert_eq!(me(&server, &second).await.0, StatusCode::OK);
    // Without a token there is nothing to sign out.
    let anonymous = client()
        .post(server.url("/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}
