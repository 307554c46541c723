//! Accounts and tokens against the real server, from an attacker's side as
//! much as a user's: forged and stale tokens, guessing passwords, deleted
//! accounts, other people's topics, secrets in logs, cross-origin calls.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::ws::{
    self, closed_with, connect_with, recv, recv_until, refused_status, send, subscribe, typed,
    typed_as,
};
use common::{authed_client, client, Server, PASSWORD};
use futures::SinkExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// The signing secret the servers of these tests run with, so the tests
/// can forge tokens exactly as an attacker who guessed it (or did not)
/// would.
const SECRET: &str = "pulseboard-test-secret-0123456789abcdef";

async fn start(dir: &std::path::Path, extra: &[&str]) -> Server {
    let mut args = vec!["--jwt-secret", SECRET];
    args.extend_from_slice(extra);
    Server::start(dir, &args).await
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hmac_sha256(secret: &[u8], data: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hmac_sha512(secret: &[u8], data: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha512>::new_from_slice(secret).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// A token with any header and claims, HMAC-SHA256-signed with `secret`
/// whatever the header claims.
fn forge(header: Value, claims: Value, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = b64(&hmac_sha256(secret, input.as_bytes()));
    format!("{input}.{sig}")
}

fn hs256() -> Value {
    json!({"alg": "HS256", "typ": "JWT"})
}

/// The claims of a token, unverified.
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three segments");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Claims as the server issues them, for account `sub` in session `sid`,
/// valid ten minutes.
fn claims_for(sub: &str, sid: &str) -> Value {
    json!({"sub": sub, "name": "ann", "sid": sid, "auth_time": now(), "iat": now(), "exp": now() + 600})
}

async fn json_of(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A REST 401: the status, the challenge and the error code.
async fn assert_unauthorized(resp: reqwest::Response, what: &str) -> Value {
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
    assert_eq!(
        resp.headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some("Bearer"),
        "{what}"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized", "{what}: {body}");
    body
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn create_task(c: &reqwest::Client, server: &Server, body: Value) -> reqwest::Response {
    c.post(server.url("/tasks"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn metrics(server: &Server) -> String {
    client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of a counter in the metrics text.
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name} in metrics"))
        .trim()
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------- accounts

#[tokio::test]
async fn register_login_me_and_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;

    let resp = server.register("ann", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["location"], "/users/me");
    let account: Value = resp.json().await.unwrap();
    assert_eq!(account["username"], "ann");
    assert!(account["created_at"]
        .as_str()
        .unwrap()
        .parse::<chrono::DateTime<chrono::Utc>>()
        .is_ok());
    assert!(
        account.get("password").is_none() && account.get("password_hash").is_none(),
        "{account}"
    );

    let resp = server.login("ann", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().unwrap().to_owned();
    let claims = claims_of(&token);
    assert_eq!(claims["name"], "ann");
    assert!(claims["sub"].is_string(), "{claims}");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );

    let resp = authed_client(&token)
        .get(server.url("/users/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap(), account);

    // A refresh mints a new token that works on its own.
    let resp = authed_client(&token)
        .post(server.url("/auth/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let refreshed: Value = resp.json().await.unwrap();
    assert_eq!(refreshed["token_type"], "bearer");
    let fresh = refreshed["access_token"].as_str().unwrap();
    assert_eq!(claims_of(fresh)["sub"], claims["sub"]);
    let resp = authed_client(fresh)
        .get(server.url("/users/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // Without a token neither answers.
    assert_unauthorized(
        client().get(server.url("/users/me")).send().await.unwrap(),
        "me",
    )
    .await;
    assert_unauthorized(
        client()
            .post(server.url("/auth/refresh"))
            .send()
            .await
            .unwrap(),
        "refresh",
    )
    .await;

    // The grant type, when given, must be the password grant; the body a form.
    let form = [
        ("grant_type", "password"),
        ("username", "ann"),
        ("password", PASSWORD),
    ];
    let resp = client()
        .post(server.url("/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let form = [
        ("grant_type", "client_credentials"),
        ("username", "ann"),
        ("password", PASSWORD),
    ];
    let (status, body) = json_of(
        client()
            .post(server.url("/token"))
            .form(&form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );
    let resp = client()
        .post(server.url("/token"))
        .json(&json!({"username": "ann", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn register_refuses_each_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let long_name = "a".repeat(33);
    let long_password = "p".repeat(129);
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"username": "ab", "password": PASSWORD}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"username": long_name, "password": PASSWORD}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"username": "", "password": PASSWORD}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"username": "Ann", "password": PASSWORD}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"username": "1ann", "password": PASSWORD}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"username": "_ann", "password": PASSWORD}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"username": "ann smith", "password": PASSWORD}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"username": "ann:bob", "password": PASSWORD}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"username": "änn", "password": PASSWORD}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"username": "ann", "password": "1234567"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"username": "ann", "password": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"username": "ann", "password": long_password}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"username": "ann"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"username": "ann", "password": PASSWORD, "admin": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"username": 5, "password": PASSWORD}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        let resp = client()
            .post(server.url("/auth/register"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let (s, b) = json_of(resp).await;
        assert_eq!((s, b["error"].as_str()), (status, Some(code)), "{body}");
    }
    let resp = client()
        .post(server.url("/auth/register"))
        .form(&[("username", "ann"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let (s, b) = json_of(resp).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type")
        )
    );

    // Nothing above created an account; the limits themselves are fine.
    for (name, password) in [
        ("ann", "12345678".to_owned()),
        (&*format!("b{}", "x".repeat(31)), "p".repeat(128)),
        ("c1._-z", "pässwörd".to_owned()),
    ] {
        assert_eq!(
            server.register(name, &password).await.status(),
            StatusCode::CREATED,
            "{name}"
        );
        assert_eq!(
            server.login(name, &password).await.status(),
            StatusCode::OK,
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_taken_username_is_409_and_keeps_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    assert_eq!(
        server.register("ann", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let (status, body) = json_of(server.register("ann", "another password").await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("username_taken"))
    );
    assert_eq!(
        server.login("ann", "another password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.login("ann", PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_401() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    server.register("ann", PASSWORD).await;
    let mut bodies = Vec::new();
    for (name, password) in [
        ("ann", "wrong password"),
        ("nobody", PASSWORD),
        ("Not A Name", PASSWORD),
    ] {
        let resp = server.login(name, password).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_credentials");
        bodies.push(body);
    }
    assert_eq!(
        bodies[0], bodies[1],
        "a wrong password and an unknown user look alike"
    );
    assert_eq!(bodies[0], bodies[2]);
    assert_eq!(
        counter(&metrics(&server).await, "pulseboard_login_failures_total"),
        3,
        "three failed logins counted as three"
    );
}

/// An unknown username is checked against a decoy hash, so its answer takes
/// as long as a wrong password's: the response time does not tell which
/// usernames exist. Interleaved, so a machine that slows down mid-test
/// slows both alike; medians of seven, within 50% of each other.
#[tokio::test]
async fn unknown_users_take_as_long_as_wrong_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--login-max-failures", "1000"]).await;
    server.register("ann", PASSWORD).await;
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..7 {
        let t = std::time::Instant::now();
        let resp = server.login("ann", "not the password").await;
        wrong.push(t.elapsed());
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let t = std::time::Instant::now();
        let resp = server
            .login(&format!("nobody{i}"), "not the password")
            .await;
        unknown.push(t.elapsed());
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    wrong.sort();
    unknown.sort();
    let (w, u) = (wrong[3].as_secs_f64(), unknown[3].as_secs_f64());
    println!("median login: wrong password {w:.4} s, unknown user {u:.4} s");
    assert!(
        u >= w / 1.5 && u <= w * 1.5,
        "wrong password {wrong:?}, unknown user {unknown:?}"
    );
}

#[tokio::test]
async fn repeated_failures_lock_the_username_with_429() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--login-max-failures", "3"]).await;
    server.register("ann", PASSWORD).await;
    server.register("bob", PASSWORD).await;
    for i in 0..3 {
        assert_eq!(
            server.login("ann", &format!("guess {i}")).await.status(),
            StatusCode::UNAUTHORIZED,
            "guess {i}"
        );
    }
    for password in ["guess 3", PASSWORD] {
        let resp = server.login("ann", password).await;
        assert_eq!(
            resp.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "even the right password waits"
        );
        let retry: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=300).contains(&retry), "Retry-After {retry}");
        assert_eq!(
            resp.json::<Value>().await.unwrap()["error"],
            "too_many_attempts"
        );
    }
    // Another username is not throttled, right or wrong.
    assert_eq!(server.login("bob", PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(
        server.login("bob", "a wrong one").await.status(),
        StatusCode::UNAUTHORIZED
    );

    // One address spraying usernames: 4 x 3 failures from it, then refused
    // for a username it has not tried (4 so far: ann 3, bob 1).
    for i in 0..8 {
        assert_eq!(
            server.login(&format!("spray{i}"), "x").await.status(),
            StatusCode::UNAUTHORIZED,
            "spray {i}"
        );
    }
    assert_eq!(
        server.login("fresh", "x").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn concurrent_guesses_do_not_outrun_the_throttle() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--login-max-failures", "3"]).await;
    server.register("ann", PASSWORD).await;
    // Twenty guesses at once: only three may be checked against the hash.
    let guesses = (0..20).map(|i| {
        let url = server.url("/token");
        async move {
            let form = [
                ("username", "ann".to_owned()),
                ("password", format!("guess {i}")),
            ];
            client()
                .post(url)
                .form(&form)
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let statuses = futures::future::join_all(guesses).await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((checked, refused), (3, 17), "{statuses:?}");
}

// ------------------------------------------------------------------ tokens

#[tokio::test]
async fn forged_stale_and_malformed_tokens_are_refused_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]).await;
    let real = server.signup("ann").await;
    let bob = server.signup("bob").await;
    let sub = claims_of(&real)["sub"].as_str().unwrap().to_owned();
    let bob_sub = claims_of(&bob)["sub"].as_str().unwrap().to_owned();
    let sid = claims_of(&real)["sid"].as_str().unwrap().to_owned();
    let bob_sid = claims_of(&bob)["sid"].as_str().unwrap().to_owned();
    let [header, _, sig]: [&str; 3] = real.split('.').collect::<Vec<_>>().try_into().unwrap();

    // The forge is right: with the server's secret and sound claims it passes.
    let genuine = forge(hs256(), claims_for(&sub, &sid), SECRET.as_bytes());
    let resp = authed_client(&genuine)
        .get(server.url("/users/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let mut bad: Vec<(String, String)> = Vec::new();
    // Payload swapped for another account's, signature kept.
    let bobs = b64(claims_for(&bob_sub, &bob_sid).to_string().as_bytes());
    bad.push(("tampered payload".into(), format!("{header}.{bobs}.{sig}")));
    // One signature character changed (not the last, whose low bits are padding).
    let mut flipped: Vec<char> = sig.chars().collect();
    flipped[10] = if flipped[10] == 'A' { 'B' } else { 'A' };
    bad.push((
        "tampered signature".into(),
        format!(
            "{header}.{}.{}",
            real.split('.').nth(1).unwrap(),
            flipped.iter().collect::<String>()
        ),
    ));
    bad.push((
        "signature removed".into(),
        format!("{header}.{}.", real.split('.').nth(1).unwrap()),
    ));
    for alg in ["none", "None", "NONE"] {
        let h = b64(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes());
        let p = b64(claims_for(&sub, &sid).to_string().as_bytes());
        bad.push((format!("alg {alg}, empty signature"), format!("{h}.{p}.")));
        bad.push((format!("alg {alg}, two segments"), format!("{h}.{p}")));
    }
    bad.push((
        "another secret".into(),
        forge(
            hs256(),
            claims_for(&sub, &sid),
            b"another-secret-another-secret-xx",
        ),
    ));
    bad.push((
        "RS256 header".into(),
        forge(
            json!({"alg": "RS256", "typ": "JWT"}),
            claims_for(&sub, &sid),
            SECRET.as_bytes(),
        ),
    ));
    let hs512 = {
        let input = format!(
            "{}.{}",
            b64(json!({"alg": "HS512", "typ": "JWT"}).to_string().as_bytes()),
            b64(claims_for(&sub, &sid).to_string().as_bytes())
        );
        format!(
            "{input}.{}",
            b64(&hmac_sha512(SECRET.as_bytes(), input.as_bytes()))
        )
    };
    bad.push(("HS512 with our secret".into(), hs512));
    let expired = json!({"sub": sub, "name": "ann", "iat": now() - 120, "exp": now() - 60});
    bad.push(("expired".into(), forge(hs256(), expired, SECRET.as_bytes())));
    let no_exp = json!({"sub": sub, "name": "ann", "iat": now()});
    bad.push(("no exp".into(), forge(hs256(), no_exp, SECRET.as_bytes())));
    for exp in [now() + 600, now() - 600] {
        let string_exp = json!({"sub": sub, "name": "ann", "iat": now(), "exp": exp.to_string()});
        bad.push((
            format!("string exp {exp}"),
            forge(hs256(), string_exp, SECRET.as_bytes()),
        ));
    }
    let future_nbf =
        json!({"sub": sub, "name": "ann", "iat": now(), "exp": now() + 600, "nbf": now() + 300});
    bad.push((
        "nbf in the future".into(),
        forge(hs256(), future_nbf, SECRET.as_bytes()),
    ));
    bad.push((
        "no such account".into(),
        forge(hs256(), claims_for("999999", &sid), SECRET.as_bytes()),
    ));
    bad.push((
        "non-numeric sub".into(),
        forge(hs256(), claims_for("ann", &sid), SECRET.as_bytes()),
    ));
    // Signed right, but naming no session, or another account's.
    let no_sid = json!({"sub": sub, "name": "ann", "iat": now(), "exp": now() + 600});
    bad.push((
        "no session".into(),
        forge(hs256(), no_sid, SECRET.as_bytes()),
    ));
    bad.push((
        "another account's session".into(),
        forge(hs256(), claims_for(&sub, &bob_sid), SECRET.as_bytes()),
    ));
    let no_sub = json!({"name": "ann", "iat": now(), "exp": now() + 600});
    bad.push(("no sub".into(), forge(hs256(), no_sub, SECRET.as_bytes())));
    bad.push(("garbage".into(), "not-a-token".into()));

    // A task to try editing and deleting with each bad token.
    let task: Value = create_task(&authed_client(&real), &server, json!({"title": "kept"}))
        .await
        .json()
        .await
        .unwrap();
    let task_url = server.url(&format!("/tasks/{}", task["id"]));
    let before = server.metric("pulseboard_auth_rejections_total").await;

    let mut anon = typed(&server.ws_url("")).await;
    for (i, (what, token)) in bad.iter().enumerate() {
        let body = assert_unauthorized(
            authed_client(token)
                .get(server.url("/users/me"))
                .send()
                .await
                .unwrap(),
            what,
        )
        .await;
        if what == "expired" {
            assert!(
                body["message"].as_str().unwrap().contains("expired"),
                "{body}"
            );
        }
        assert_unauthorized(
            create_task(&authed_client(token), &server, json!({"title": "x"})).await,
            what,
        )
        .await;
        assert_unauthorized(
            authed_client(token)
                .post(server.url("/auth/refresh"))
                .send()
                .await
                .unwrap(),
            what,
        )
        .await;
        assert_unauthorized(
            authed_client(token)
                .delete(server.url("/users/me"))
                .send()
                .await
                .unwrap(),
            what,
        )
        .await;
        assert_unauthorized(
            authed_client(token)
                .patch(&task_url)
                .json(&json!({"title": "changed"}))
                .send()
                .await
                .unwrap(),
            what,
        )
        .await;
        assert_unauthorized(
            authed_client(token).delete(&task_url).send().await.unwrap(),
            what,
        )
        .await;
        assert_unauthorized(
            authed_client(token)
                .post(server.url("/publish"))
                .json(&json!({"topic": "room", "payload":
                    {"kind": "chat", "from": "x", "text": "forged"}}))
                .send()
                .await
                .unwrap(),
            what,
        )
        .await;
        let auth = bearer(token);
        let (status, body) = refused_status(
            connect_with(&server.ws_url("/ws/v1"), &[("authorization", &auth)]).await,
        );
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("unauthorized")),
            "/ws/v1: {what}"
        );
        let url = server.ws_url(&format!("/ws/secure/room?token={token}"));
        let (status, _) = refused_status(connect_with(&url, &[]).await);
        assert_eq!(status, 401, "/ws/secure: {what}");
        // In-band: refused, and the connection stays anonymous and usable.
        let id = i as u64 + 1;
        send(&mut anon, json!({"type": "auth", "id": id, "token": token})).await;
        let reply = ws::ws_reply(&mut anon, id).await;
        assert_eq!(
            (reply["type"].as_str(), reply["code"].as_str()),
            (Some("error"), Some("unauthorized")),
            "auth: {what}"
        );
    }
    send(
        &mut anon,
        json!({"type": "subscribe", "id": 100, "topic": "user:ann"}),
    )
    .await;
    assert_eq!(
        recv(&mut anon).await["code"],
        "unauthorized",
        "still anonymous"
    );
    send(&mut anon, json!({"type": "ping", "id": 101})).await;
    assert_eq!(recv(&mut anon).await, json!({"type": "pong", "id": 101}));
    // Each bad token was refused on ten routes, then one forbidden topic.
    assert_eq!(
        server.metric("pulseboard_auth_rejections_total").await - before,
        bad.len() as u64 * 10 + 1
    );
    // Nothing a bad token tried happened: the account and the task are
    // as they were.
    let me = authed_client(&real)
        .get(server.url("/users/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let kept: Value = client()
        .get(&task_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(kept, task);
}

#[tokio::test]
async fn a_deleted_accounts_tokens_stop_working_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]).await;
    let token = server.signup("ann").await;
    let bob = authed_client(&server.signup("bob").await);
    let ann = authed_client(&token);
    let task: Value = create_task(
        &bob,
        &server,
        json!({"title": "for ann", "assignee": "ann"}),
    )
    .await
    .json()
    .await
    .unwrap();

    // Live connections of the account.
    let mut typed_conn = typed_as(&server.ws_url(""), &token).await;
    let old_sub = subscribe(&mut typed_conn, 1, "user:ann", None).await;
    assert_eq!(
        old_sub["position"]["offset"], 1,
        "bob's assignment is in ann's history"
    );
    let (mut secure_conn, _) = connect_with(
        &server.ws_url("/ws/secure/room"),
        &[("authorization", &bearer(&token))],
    )
    .await
    .unwrap();

    let resp = ann
        .delete(server.url("/users/me"))
        .json(&json!({"password": common::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    // Its live connections are closed, not left running until expiry.
    assert_eq!(
        u16::from(closed_with(&mut typed_conn, Duration::from_secs(3)).await),
        4003
    );
    assert_eq!(
        u16::from(closed_with(&mut secure_conn, Duration::from_secs(3)).await),
        4003
    );

    let body =
        assert_unauthorized(ann.get(server.url("/users/me")).send().await.unwrap(), "me").await;
    assert_eq!(body["message"], "the token's account no longer exists");
    assert_unauthorized(
        create_task(&ann, &server, json!({"title": "ghost"})).await,
        "create",
    )
    .await;
    let url = server.url(&format!("/tasks/{}", task["id"]));
    assert_unauthorized(
        ann.patch(&url)
            .json(&json!({"status": "done"}))
            .send()
            .await
            .unwrap(),
        "patch",
    )
    .await;
    assert_unauthorized(ann.delete(&url).send().await.unwrap(), "delete").await;
    assert_unauthorized(
        ann.post(server.url("/auth/refresh")).send().await.unwrap(),
        "refresh",
    )
    .await;
    assert_unauthorized(
        ann.delete(server.url("/users/me")).send().await.unwrap(),
        "delete again",
    )
    .await;
    let (status, _) = refused_status(
        connect_with(
            &server.ws_url("/ws/secure/room"),
            &[("authorization", &bearer(&token))],
        )
        .await,
    );
    assert_eq!(status, 401, "/ws/secure");
    let (status, _) = refused_status(
        connect_with(
            &server.ws_url("/ws/v1"),
            &[("authorization", &bearer(&token))],
        )
        .await,
    );
    assert_eq!(status, 401, "/ws/v1");
    let mut anon = typed(&server.ws_url("")).await;
    send(&mut anon, json!({"type": "auth", "id": 1, "token": token})).await;
    assert_eq!(recv(&mut anon).await["code"], "unauthorized");

    // The account's tasks lost their assignee.
    let now: Value = client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(now["assignee"], Value::Null);

    // A new account of the same name is someone else: the old token stays dead.
    assert_eq!(
        server.register("ann", "a new password").await.status(),
        StatusCode::CREATED
    );
    assert_unauthorized(
        ann.get(server.url("/users/me")).send().await.unwrap(),
        "old token, new account",
    )
    .await;

    // Nor can the new ann read the old one's notifications from history.
    let login: Value = server
        .login("ann", "a new password")
        .await
        .json()
        .await
        .unwrap();
    let new_token = login["access_token"].as_str().unwrap().to_owned();
    let mut new_conn = typed_as(&server.ws_url(""), &new_token).await;
    let since = json!({"offset": 0, "epoch": old_sub["position"]["epoch"]});
    let sub = subscribe(&mut new_conn, 1, "user:ann", Some(since)).await;
    assert_eq!(sub["type"], "subscribed");
    assert_eq!(
        sub["recovered"], false,
        "the old history is gone, and said to be"
    );
    assert_eq!(sub["position"]["offset"], 0);
    assert_ne!(sub["position"]["epoch"], old_sub["position"]["epoch"]);
    send(&mut new_conn, json!({"type": "ping", "id": 2})).await;
    assert_eq!(
        recv(&mut new_conn).await["type"],
        "pong",
        "no old event came before the pong"
    );
}

// -------------------------------------------------------------- task writes

#[tokio::test]
async fn task_writes_need_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let ann = authed_client(&server.signup("ann").await);
    let resp = create_task(&ann, &server, json!({"title": "mine"})).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let task: Value = resp.json().await.unwrap();
    assert_eq!(
        (task["created_by"].as_str(), &task["assignee"]),
        (Some("ann"), &Value::Null)
    );
    let url = server.url(&format!("/tasks/{}", task["id"]));

    assert_unauthorized(
        create_task(&client(), &server, json!({"title": "anon"})).await,
        "anonymous",
    )
    .await;
    // Refused before the body is looked at.
    assert_unauthorized(
        create_task(&client(), &server, json!({"title": ""})).await,
        "anonymous, bad body",
    )
    .await;
    for value in [
        "Bearer garbage",
        "Bearer",
        "Basic YW5uOnB3",
        "bearer  ",
        "Token abc",
    ] {
        let resp = client()
            .post(server.url("/tasks"))
            .header("authorization", value)
            .json(&json!({"title": "x"}))
            .send()
            .await
            .unwrap();
        assert_unauthorized(resp, value).await;
    }
    assert_unauthorized(
        client()
            .patch(&url)
            .json(&json!({"status": "done"}))
            .send()
            .await
            .unwrap(),
        "patch",
    )
    .await;
    assert_unauthorized(client().delete(&url).send().await.unwrap(), "delete").await;
    // Reading stays public, and nothing above changed anything.
    let list: Vec<Value> = client()
        .get(server.url("/tasks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list, vec![task]);

    assert_eq!(
        ann.patch(&url)
            .json(&json!({"status": "done"}))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        ann.delete(&url).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn open_writes_allow_anonymous_writes_but_still_check_sent_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--open-writes"]).await;
    let resp = create_task(&client(), &server, json!({"title": "anon"})).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let task: Value = resp.json().await.unwrap();
    assert_eq!(task["created_by"], Value::Null);
    let url = server.url(&format!("/tasks/{}", task["id"]));

    let expired = forge(
        hs256(),
        json!({"sub": "1", "name": "ann", "iat": now() - 120, "exp": now() - 60}),
        SECRET.as_bytes(),
    );
    for token in ["garbage", &expired] {
        let c = authed_client(token);
        assert_unauthorized(create_task(&c, &server, json!({"title": "x"})).await, token).await;
        assert_unauthorized(
            c.patch(&url)
                .json(&json!({"title": "y"}))
                .send()
                .await
                .unwrap(),
            token,
        )
        .await;
        assert_unauthorized(c.delete(&url).send().await.unwrap(), token).await;
    }
    let ann = authed_client(&server.signup("ann").await);
    let mine: Value = create_task(&ann, &server, json!({"title": "signed"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["created_by"], "ann");

    // Anonymous writers cannot name accounts: whether "ann" or "nobody",
    // the answer is the same 401, so it tells them nothing.
    for name in ["ann", "nobody"] {
        let body = assert_unauthorized(
            client()
                .patch(&url)
                .json(&json!({"assignee": name}))
                .send()
                .await
                .unwrap(),
            name,
        )
        .await;
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("sign in to assign"),
            "{body}"
        );
        assert_unauthorized(
            create_task(&client(), &server, json!({"title": "t", "assignee": name})).await,
            name,
        )
        .await;
    }
    assert_eq!(
        client()
            .patch(&url)
            .json(&json!({"status": "doing"}))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        client().delete(&url).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn an_assignee_must_be_an_account() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let ann = authed_client(&server.signup("ann").await);
    server.signup("bob").await;
    for (assignee, status, code) in [
        (
            json!("nobody"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!(""),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!("Bob"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (json!(42), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
    ] {
        let (s, b) =
            json_of(create_task(&ann, &server, json!({"title": "t", "assignee": assignee})).await)
                .await;
        assert_eq!((s, b["error"].as_str()), (status, Some(code)), "{assignee}");
    }
    let resp = create_task(&ann, &server, json!({"title": "t", "assignee": "bob"})).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let task: Value = resp.json().await.unwrap();
    assert_eq!(task["assignee"], "bob");
    let url = server.url(&format!("/tasks/{}", task["id"]));
    let (s, b) = json_of(
        ann.patch(&url)
            .json(&json!({"assignee": "ghost"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed"))
    );
    let (s, b) = json_of(
        ann.patch(&url)
            .json(&json!({"assignee": null}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, &b["assignee"]), (StatusCode::OK, &Value::Null));
    let (s, b) = json_of(
        ann.patch(&url)
            .json(&json!({"assignee": "ann"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, b["assignee"].as_str()), (StatusCode::OK, Some("ann")));
}

// ------------------------------------------------------ typed WebSocket

#[tokio::test]
async fn personal_notifications_reach_only_their_user() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let base = server.ws_url("");
    let ann_token = server.signup("ann").await;
    let bob_token = server.signup("bob").await;
    let ann = authed_client(&ann_token);

    let mut bob = typed_as(&base, &bob_token).await;
    subscribe(&mut bob, 1, "user:bob", None).await;

    let task: Value = create_task(&ann, &server, json!({"title": "Ship", "assignee": "bob"}))
        .await
        .json()
        .await
        .unwrap();
    let ev = recv(&mut bob).await;
    assert_eq!(
        (ev["type"].as_str(), ev["topic"].as_str()),
        (Some("event"), Some("user:bob")),
        "{ev}"
    );
    assert_eq!(ev["payload"]["kind"], "notification");
    assert_eq!(ev["payload"]["title"], "Task assigned to you");
    assert_eq!(ev["payload"]["level"], "info");
    assert!(
        ev["payload"]["body"].as_str().unwrap().contains("ann"),
        "{ev}"
    );

    // Bob's own change tells him nothing; Ann's next one does, and it is
    // the very next event on his topic (the offset proves nothing came in
    // between).
    let first_offset = ev["offset"].as_u64().unwrap();
    let url = server.url(&format!("/tasks/{}", task["id"]));
    let bob_rest = authed_client(&bob_token);
    assert_eq!(
        bob_rest
            .patch(&url)
            .json(&json!({"title": "Ship it"}))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        ann.patch(&url)
            .json(&json!({"status": "done"}))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let ev = recv(&mut bob).await;
    assert_eq!(ev["payload"]["title"], "Your task changed", "{ev}");
    assert_eq!(ev["offset"], first_offset + 1, "{ev}");

    // Ann may not read Bob's topic; nor may an anonymous client.
    let mut ann_ws = typed_as(&base, &ann_token).await;
    send(
        &mut ann_ws,
        json!({"type": "subscribe", "id": 5, "topic": "user:bob"}),
    )
    .await;
    let err = recv(&mut ann_ws).await;
    assert_eq!(
        (
            err["type"].as_str(),
            err["code"].as_str(),
            err["id"].as_u64()
        ),
        (Some("error"), Some("forbidden"), Some(5))
    );
    let mut anon = typed(&base).await;
    for (id, topic) in [(6, "user:bob"), (7, "secure:ops")] {
        send(
            &mut anon,
            json!({"type": "subscribe", "id": id, "topic": topic}),
        )
        .await;
        let err = recv(&mut anon).await;
        assert_eq!(
            (err["code"].as_str(), err["id"].as_u64()),
            (Some("unauthorized"), Some(id)),
            "{topic}"
        );
    }
    for ws in [&mut ann_ws, &mut anon] {
        send(ws, json!({"type": "ping", "id": 9})).await;
        assert_eq!(recv(ws).await, json!({"type": "pong", "id": 9}));
    }

    // Neither can they reach it through the plain notifications endpoint.
    for topic in ["user:bob", "secure:ops"] {
        let (status, _) = refused_status(
            connect_with(&server.ws_url(&format!("/ws/notifications/{topic}")), &[]).await,
        );
        assert_eq!(status, 403, "/ws/notifications/{topic}");
        let (status, _) = refused_status(
            connect_with(
                &server.ws_url(&format!("/ws/notifications/{topic}")),
                &[("authorization", &bearer(&ann_token))],
            )
            .await,
        );
        assert_eq!(status, 403, "/ws/notifications/{topic} with a token");
    }
}

#[tokio::test]
async fn publishing_needs_a_token_and_names_the_real_sender() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let base = server.ws_url("");
    let mut anon = typed(&base).await;
    subscribe(&mut anon, 1, "room", None).await;
    let chat = json!({"kind": "chat", "from": "mallory", "text": "hi"});
    send(
        &mut anon,
        json!({"type": "publish", "id": 2, "topic": "room", "payload": chat}),
    )
    .await;
    let err = recv(&mut anon).await;
    assert_eq!(
        (
            err["type"].as_str(),
            err["code"].as_str(),
            err["id"].as_u64()
        ),
        (Some("error"), Some("unauthorized"), Some(2))
    );
    send(&mut anon, json!({"type": "ping", "id": 3})).await;
    assert_eq!(recv(&mut anon).await, json!({"type": "pong", "id": 3}));

    let token = server.signup("ann").await;
    let mut ann = typed_as(&base, &token).await;
    for topic in ["tasks", "chat", "user:ann", "user:bob"] {
        send(
            &mut ann,
            json!({"type": "publish", "id": 4, "topic": topic, "payload": chat}),
        )
        .await;
        assert_eq!(recv(&mut ann).await["code"], "publish_forbidden", "{topic}");
    }
    send(
        &mut ann,
        json!({"type": "publish", "id": 5, "topic": "room", "payload": chat}),
    )
    .await;
    assert_eq!(recv(&mut ann).await["type"], "published");
    let ev = recv(&mut anon).await;
    assert_eq!(
        ev["payload"],
        json!({"kind": "chat", "from": "ann", "text": "hi"}),
        "the sender cannot be spoofed"
    );

    // The same rules over HTTP.
    let body = json!({"topic": "room", "payload": chat});
    assert_unauthorized(
        client()
            .post(server.url("/publish"))
            .json(&body)
            .send()
            .await
            .unwrap(),
        "publish",
    )
    .await;
    let ann_rest = authed_client(&token);
    let private = json!({"topic": "user:bob", "payload": chat});
    let resp = ann_rest
        .post(server.url("/publish"))
        .json(&private)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = ann_rest
        .post(server.url("/publish"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(recv(&mut anon).await["payload"]["from"], "ann");
}

#[tokio::test]
async fn in_band_auth_signs_in_once_per_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let ann = server.signup("ann").await;
    let bob = server.signup("bob").await;

    // With a token on the upgrade, hello names the user and the expiry.
    let (mut ws, _) = connect_with(
        &server.ws_url("/ws/v1"),
        &[("authorization", &bearer(&ann))],
    )
    .await
    .unwrap();
    let hello = recv(&mut ws).await;
    assert_eq!(hello["user"], "ann");
    let exp: chrono::DateTime<chrono::Utc> = hello["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(exp.timestamp(), claims_of(&ann)["exp"].as_i64().unwrap());
    // Without one it names nobody.
    let (mut anon, _) = connect_with(&server.ws_url("/ws/v1"), &[]).await.unwrap();
    let hello = recv(&mut anon).await;
    assert!(
        hello.get("user").is_none() && hello.get("expires_at").is_none(),
        "{hello}"
    );

    send(&mut anon, json!({"type": "auth", "id": 1, "token": bob})).await;
    let authed = recv(&mut anon).await;
    assert_eq!(
        (
            authed["type"].as_str(),
            authed["user"].as_str(),
            authed["id"].as_u64()
        ),
        (Some("authed"), Some("bob"), Some(1))
    );
    subscribe(&mut anon, 2, "user:bob", None).await;
    // Another user's token cannot take the connection over.
    send(&mut anon, json!({"type": "auth", "id": 3, "token": ann})).await;
    assert_eq!(recv(&mut anon).await["code"], "forbidden");
    send(
        &mut anon,
        json!({"type": "subscribe", "id": 4, "topic": "user:ann"}),
    )
    .await;
    assert_eq!(recv(&mut anon).await["code"], "forbidden", "still bob");
    send(
        &mut anon,
        json!({"type": "auth", "id": 5, "token": "garbage"}),
    )
    .await;
    assert_eq!(recv(&mut anon).await["code"], "unauthorized");
    // A fresh token of the same user is fine.
    let fresh: Value = authed_client(&bob)
        .post(server.url("/auth/refresh"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    send(
        &mut anon,
        json!({"type": "auth", "id": 6, "token": fresh["access_token"]}),
    )
    .await;
    assert_eq!(recv(&mut anon).await["type"], "authed");
    send(&mut anon, json!({"type": "ping", "id": 7})).await;
    assert_eq!(recv(&mut anon).await, json!({"type": "pong", "id": 7}));

    // A token on the upgrade takes the subprotocol and the query too.
    let (mut q, _) = connect_with(&server.ws_url(&format!("/ws/v1?token={ann}")), &[])
        .await
        .unwrap();
    assert_eq!(recv(&mut q).await["user"], "ann");
    let (mut p, resp) = connect_with(
        &server.ws_url("/ws/v1"),
        &[("sec-websocket-protocol", &format!("bearer, {bob}"))],
    )
    .await
    .unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "bearer");
    assert_eq!(recv(&mut p).await["user"], "bob");
}

#[tokio::test]
async fn an_expired_token_closes_typed_connections_with_4001_unless_refreshed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--token-ttl-secs", "2"]).await;
    let base = server.ws_url("");
    let first = server.signup("ann").await;
    let exp = claims_of(&first)["exp"].as_i64().unwrap();
    let mut stale = typed_as(&base, &first).await;
    let mut kept = typed_as(&base, &first).await;
    subscribe(&mut kept, 1, "user:ann", None).await;

    // A token that outlives the first one (exp has one-second granularity).
    let refreshed = loop {
        assert!(
            now_f64() < exp as f64 - 0.2,
            "no later token before the first expired"
        );
        let resp = authed_client(&first)
            .post(server.url("/auth/refresh"))
            .send()
            .await
            .unwrap();
        let token = resp.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        if claims_of(&token)["exp"].as_i64().unwrap() > exp {
            break token;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    send(
        &mut kept,
        json!({"type": "auth", "id": 2, "token": refreshed}),
    )
    .await;
    let authed = recv(&mut kept).await;
    assert_eq!(
        (authed["type"].as_str(), authed["user"].as_str()),
        (Some("authed"), Some("ann")),
        "{authed}"
    );
    assert!(
        now_f64() < exp as f64,
        "refreshed before the first token expired"
    );

    // The first connection is closed at `exp` (no leeway for live sessions).
    let code = closed_with(&mut stale, Duration::from_secs(5)).await;
    let at = now_f64();
    assert_eq!(u16::from(code), 4001);
    assert!(
        at >= exp as f64 - 0.5 && at < exp as f64 + 2.0,
        "closed at {at}, token expired at {exp}"
    );

    // The refreshed one is alive past the first expiry...
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(&mut kept, json!({"type": "ping", "id": 3})).await;
    assert_eq!(recv(&mut kept).await, json!({"type": "pong", "id": 3}));
    // ...and closed in turn when its own token expires.
    assert_eq!(
        u16::from(closed_with(&mut kept, Duration::from_secs(4)).await),
        4001
    );
    assert!(now_f64() >= claims_of(&refreshed)["exp"].as_i64().unwrap() as f64 - 0.5);
    assert_eq!(
        counter(
            &metrics(&server).await,
            "pulseboard_ws_token_expired_closes_total"
        ),
        2
    );
}

// --------------------------------------------------------- /ws/secure

#[tokio::test]
async fn secure_topics_take_tokens_by_header_query_or_subprotocol() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let ann = server.signup("ann").await;
    let bob = server.signup("bob").await;
    let cy = server.signup("cy.2").await;
    let url = server.ws_url("/ws/secure/room");

    let (mut a, resp) = connect_with(&url, &[("authorization", &bearer(&ann))])
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    let (mut b, resp) = connect_with(&format!("{url}?token={bob}"), &[])
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    let (mut c, resp) = connect_with(
        &url,
        &[("sec-websocket-protocol", &format!("bearer, {cy}"))],
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(
        resp.headers()["sec-websocket-protocol"],
        "bearer",
        "the subprotocol is selected"
    );

    // Each is subscribed once its own message comes back.
    for (ws, name) in [(&mut a, "ann"), (&mut b, "bob"), (&mut c, "cy.2")] {
        ws.send(Message::text(format!("ready {name}")))
            .await
            .unwrap();
        ws::recv_until(ws, &format!("{name}: ready {name}")).await;
    }
    a.send(Message::text("hello, all")).await.unwrap();
    for ws in [&mut a, &mut b, &mut c] {
        recv_until(ws, "ann: hello, all").await;
    }
    c.send(Message::text("hi ann")).await.unwrap();
    recv_until(&mut a, "cy.2: hi ann").await;

    // A signed-in typed client follows the same topic.
    let mut t = typed_as(&server.ws_url(""), &bob).await;
    subscribe(&mut t, 1, "secure:room", None).await;
    b.send(Message::text("typed too")).await.unwrap();
    let ev = recv(&mut t).await;
    assert_eq!(
        ev["payload"],
        json!({"kind": "chat", "from": "bob", "text": "typed too"})
    );
}

#[tokio::test]
async fn secure_topics_refuse_before_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &["--allowed-origins", "https://board.example.com"],
    )
    .await;
    let token = server.signup("ann").await;
    let url = server.ws_url("/ws/secure/room");
    let expired = forge(
        hs256(),
        json!({"sub": "1", "name": "ann", "iat": now() - 120, "exp": now() - 60}),
        SECRET.as_bytes(),
    );

    /// What is wrong, where to connect, and the request headers.
    type Case<'a> = (&'a str, String, Vec<(&'a str, String)>);
    let cases: Vec<Case> = vec![
        ("no token", url.clone(), vec![]),
        (
            "garbage header",
            url.clone(),
            vec![("authorization", "Bearer garbage".into())],
        ),
        (
            "basic auth",
            url.clone(),
            vec![("authorization", "Basic YW5uOnB3".into())],
        ),
        ("garbage query", format!("{url}?token=garbage"), vec![]),
        ("empty query", format!("{url}?token="), vec![]),
        (
            "garbage subprotocol",
            url.clone(),
            vec![("sec-websocket-protocol", "bearer, garbage".into())],
        ),
        (
            "bare bearer subprotocol",
            url.clone(),
            vec![("sec-websocket-protocol", "bearer".into())],
        ),
        (
            "expired",
            url.clone(),
            vec![("authorization", bearer(&expired))],
        ),
        // A bad header is not rescued by a good query.
        (
            "garbage header, good query",
            format!("{url}?token={token}"),
            vec![("authorization", "Bearer garbage".into())],
        ),
    ];
    for (what, target, headers) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = refused_status(connect_with(&target, &headers).await);
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("unauthorized")),
            "{what}"
        );
    }
    // A valid token from a foreign page is still a cross-site hijack.
    let auth = bearer(&token);
    for origin in ["https://evil.test", "null"] {
        let (status, body) = refused_status(
            connect_with(&url, &[("authorization", &auth), ("origin", origin)]).await,
        );
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("origin_not_allowed")),
            "{origin}"
        );
    }
    let (mut ok, _) = connect_with(
        &url,
        &[
            ("authorization", &auth),
            ("origin", "https://board.example.com"),
        ],
    )
    .await
    .unwrap();
    ok.send(Message::text("hi")).await.unwrap();
    recv_until(&mut ok, "ann: hi").await;
}

#[tokio::test]
async fn an_expired_token_closes_secure_connections_with_4001() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--token-ttl-secs", "2"]).await;
    let token = server.signup("ann").await;
    let exp = claims_of(&token)["exp"].as_i64().unwrap();
    let (mut ws, _) = connect_with(
        &server.ws_url("/ws/secure/room"),
        &[("authorization", &bearer(&token))],
    )
    .await
    .unwrap();
    ws.send(Message::text("before")).await.unwrap();
    recv_until(&mut ws, "ann: before").await;
    assert_eq!(
        u16::from(closed_with(&mut ws, Duration::from_secs(5)).await),
        4001
    );
    let at = now_f64();
    assert!(
        at >= exp as f64 - 0.5 && at < exp as f64 + 2.0,
        "closed at {at}, token expired at {exp}"
    );
}

// ---------------------------------------------------- secrets, CORS

#[tokio::test]
async fn secrets_stay_out_of_logs_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--log", "trace"]).await;
    let password = "Pw-7f3a1c-LOGMARKER-password";
    let bogus = "tok-9b2e4d-LOGMARKER-token";
    let wrong = "Wrong-4c1d-LOGMARKER-password";
    assert_eq!(
        server.register("ann", password).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        server.login("ann", wrong).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let resp = server.login("ann", password).await;
    let token = resp.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        authed_client(&token)
            .get(server.url("/users/me"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let (mut s, _) = connect_with(
        &server.ws_url(&format!("/ws/secure/room?token={token}")),
        &[],
    )
    .await
    .unwrap();
    s.send(Message::text("hello")).await.unwrap();
    recv_until(&mut s, "ann: hello").await;
    let (mut t, _) = connect_with(&server.ws_url(&format!("/ws/v1?token={token}")), &[])
        .await
        .unwrap();
    assert_eq!(recv(&mut t).await["user"], "ann");
    for path in ["/ws/secure/room", "/ws/v1"] {
        let (status, _) = refused_status(
            connect_with(&server.ws_url(&format!("{path}?token={bogus}")), &[]).await,
        );
        assert_eq!(status, 401);
    }
    let (status, _) = refused_status(
        connect_with(
            &server.ws_url("/ws/v1"),
            &[("authorization", &bearer(bogus))],
        )
        .await,
    );
    assert_eq!(status, 401);
    send(&mut t, json!({"type": "auth", "id": 1, "token": bogus})).await;
    assert_eq!(recv(&mut t).await["code"], "unauthorized");
    drop((s, t));

    // Everything the server logs, to the last line of its shutdown.
    let metrics = metrics(&server).await;
    let (exited, logs) = server.stop().await;
    assert!(exited);
    // The checks below mean something only if these requests were logged.
    assert!(
        logs.contains("/ws/secure/room") && logs.contains("/users/me"),
        "requests are logged:\n{logs}"
    );
    assert!(logs.contains("login failed"));
    assert!(logs.contains("shutting down"), "read to the end:\n{logs}");
    let signature = token.rsplit('.').next().unwrap();
    for (what, secret) in [
        ("password", password),
        ("wrong password", wrong),
        ("token", token.as_str()),
        ("token signature", signature),
        ("bogus token", bogus),
        ("marker", "LOGMARKER"),
        ("signing secret", SECRET),
    ] {
        assert!(!logs.contains(secret), "the {what} is in the logs");
        assert!(!metrics.contains(secret), "the {what} is in the metrics");
    }
}

#[tokio::test]
async fn cors_answers_only_configured_origins() {
    async fn preflight(server: &Server, origin: &str) -> reqwest::Response {
        client()
            .request(reqwest::Method::OPTIONS, server.url("/tasks"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
            .await
            .unwrap()
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--cors-origins", "https://app.example.com"]).await;
    let resp = preflight(&server, "https://app.example.com").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let allowed = resp.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");
    assert!(
        resp.headers()
            .get("access-control-allow-credentials")
            .is_none(),
        "no cookies"
    );
    for origin in [
        "https://evil.test",
        "https://app.example.com.evil.test",
        "null",
        "http://app.example.com",
    ] {
        let resp = preflight(&server, origin).await;
        assert!(
            resp.headers().get("access-control-allow-origin").is_none(),
            "{origin}"
        );
        let resp = client()
            .get(server.url("/tasks"))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert!(
            resp.headers().get("access-control-allow-origin").is_none(),
            "GET from {origin}"
        );
    }
    let resp = client()
        .get(server.url("/tasks"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    for origin in ["https://app.example.com", "https://evil.test"] {
        let resp = preflight(&server, origin).await;
        let cors: Vec<_> = resp
            .headers()
            .keys()
            .filter(|k| k.as_str().starts_with("access-control-"))
            .collect();
        assert!(
            cors.is_empty(),
            "no CORS headers at all without --cors-origins: {cors:?}"
        );
    }
}

// ------------------------------------------------------ per-account limit

#[tokio::test]
async fn one_account_cannot_take_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--ws-max-connections-per-user", "2"]).await;
    let ann = server.signup("ann").await;
    let bob = server.signup("bob").await;
    let base = server.ws_url("");
    let mut first = typed_as(&base, &ann).await;
    let (mut second, _) = connect_with(
        &server.ws_url("/ws/secure/room"),
        &[("authorization", &bearer(&ann))],
    )
    .await
    .unwrap();

    // The third of ann's, by upgrade: handshake, then 1008 with the reason.
    let (mut third, _) = connect_with(
        &server.ws_url("/ws/v1"),
        &[("authorization", &bearer(&ann))],
    )
    .await
    .unwrap();
    assert_eq!(
        u16::from(closed_with(&mut third, Duration::from_secs(3)).await),
        1008
    );

    // The third of ann's, by signing in on an anonymous connection.
    let mut anon = typed(&base).await;
    send(&mut anon, json!({"type": "auth", "id": 1, "token": ann})).await;
    assert_eq!(
        u16::from(closed_with(&mut anon, Duration::from_secs(3)).await),
        1008
    );

    // Others are not affected, and ann's own two still work.
    let mut other = typed_as(&base, &bob).await;
    send(&mut other, json!({"type": "ping", "id": 1})).await;
    assert_eq!(recv(&mut other).await["type"], "pong");
    let mut guest = typed(&base).await;
    send(&mut guest, json!({"type": "ping", "id": 1})).await;
    assert_eq!(recv(&mut guest).await["type"], "pong");
    send(&mut first, json!({"type": "ping", "id": 9})).await;
    assert_eq!(recv(&mut first).await["type"], "pong");

    // A slot frees when a connection ends (the server may take a moment to
    // finish the session after echoing the close).
    use futures::StreamExt;
    second.close(None).await.unwrap();
    while second.next().await.is_some() {}
    let mut hello = None;
    for _ in 0..50 {
        let (mut ws, _) = connect_with(
            &server.ws_url("/ws/v1"),
            &[("authorization", &bearer(&ann))],
        )
        .await
        .unwrap();
        match tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                hello = Some(serde_json::from_str::<Value>(&text).unwrap());
                break;
            }
            Ok(Some(Ok(Message::Close(Some(frame))))) => assert_eq!(u16::from(frame.code), 1008),
            other => panic!("unexpected {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(hello.expect("a freed slot is usable again")["user"], "ann");
}

// ------------------------------------------------------ registration quota

#[tokio::test]
async fn registrations_per_address_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--register-max-per-hour", "3"]).await;
    assert_eq!(
        server.register("ann", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    // Asking about a taken name counts (the quota bounds listing accounts);
    // a malformed body does not.
    assert_eq!(
        server.register("ann", PASSWORD).await.status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        server.register("x", PASSWORD).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        server.register("bob", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    // Over the quota, a taken name is not even looked up.
    let probe = server.register("ann", PASSWORD).await;
    assert_eq!(probe.status(), StatusCode::TOO_MANY_REQUESTS);
    let resp = server.register("cyd", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3500..=3600).contains(&retry), "{retry}");
    let (_, body) = json_of(resp).await;
    assert_eq!(body["error"], "too_many_attempts");
    // Signing in is a different matter.
    assert_eq!(server.login("bob", PASSWORD).await.status(), StatusCode::OK);
}
