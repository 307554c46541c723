//! Who is signed in on this page, and the REST calls that sign in.
//!
//! The token lives in `localStorage`, not in a cookie: the server only ever
//! reads it from `Authorization` headers and the `auth` command, so it never
//! travels with a request the page did not mean to make. The price is that
//! the server cannot know who is signed in when it renders, so the rendered
//! page is always signed out; the browser restores the stored session in an
//! effect after hydration, which keeps the hydrated markup identical to the
//! server's.
//!
//! Times are the browser's clock in milliseconds since the epoch, taken when
//! the token arrives (`expires_in` is relative), so a skewed client clock
//! does not make a fresh token look expired.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::protocol::TokenResponse;

/// The `localStorage` key of the stored session.
#[cfg(feature = "hydrate")]
const STORAGE_KEY: &str = "pulseboard.session";

/// A token is refreshed once this share of its lifetime (in percent) has
/// passed, leaving a fifth of it for the refresh to succeed or be retried.
const REFRESH_AT_PERCENT: i64 = 80;

/// A signed-in user: their name, the bearer token, and its lifetime.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub username: String,
    pub token: String,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
}

impl Session {
    /// The session a token answer starts, received at `now_ms`.
    pub fn new(username: String, token: TokenResponse, now_ms: i64) -> Self {
        let lifetime_ms = i64::try_from(token.expires_in)
            .unwrap_or(i64::MAX / 2)
            .saturating_mul(1000);
        Session {
            username,
            token: token.access_token,
            issued_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(lifetime_ms),
        }
    }

    /// Whether the token is no longer worth sending.
    pub fn expired(&self, now_ms: i64) -> bool {
        now_ms >= self.expires_at_ms
    }

    /// When to ask for a fresh token.
    pub fn refresh_at_ms(&self) -> i64 {
        let lifetime = (self.expires_at_ms - self.issued_at_ms).max(0);
        self.issued_at_ms + lifetime / 100 * REFRESH_AT_PERCENT
    }
}

/// The page's sign-in state. `Copy`, so components take it as a prop.
///
/// Every change goes through [`Auth::set`] or [`Auth::sign_out`], which keep
/// `localStorage` in step; the live connection and the refresh timer follow
/// the signal.
#[derive(Clone, Copy, Debug)]
pub struct Auth {
    session: RwSignal<Option<Session>>,
}

impl Default for Auth {
    fn default() -> Self {
        Self::new()
    }
}

impl Auth {
    /// Signed out, as every page is rendered.
    pub fn new() -> Self {
        Auth {
            session: RwSignal::new(None),
        }
    }

    /// The signed-in user's name (reactive).
    pub fn username(&self) -> Option<String> {
        self.session
            .with(|s| s.as_ref().map(|s| s.username.clone()))
    }

    /// Whether someone is signed in (reactive).
    pub fn signed_in(&self) -> bool {
        self.session.with(Option::is_some)
    }

    /// The current session, without subscribing to changes.
    pub fn session_untracked(&self) -> Option<Session> {
        self.session.get_untracked()
    }

    /// The current session (reactive).
    pub fn session(&self) -> Option<Session> {
        self.session.get()
    }
}

/// What a REST call that can fail for a reason the user should see
/// answered: the HTTP status (none when the request never got an answer)
/// and a sentence.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    pub status: Option<u16>,
    pub message: String,
}

impl Failure {
    /// The token was refused: the session is over.
    pub fn is_unauthorized(&self) -> bool {
        self.status == Some(401)
    }
}

impl From<Failure> for String {
    fn from(f: Failure) -> String {
        f.message
    }
}

#[cfg(feature = "hydrate")]
pub use browser::*;

/// The browser half: storage, REST calls and the refresh timer.
#[cfg(feature = "hydrate")]
mod browser {
    use gloo_net::http::{Request, RequestBuilder, Response};
    use gloo_timers::future::TimeoutFuture;
    use leptos::prelude::*;

    use super::{Auth, Failure, Session, STORAGE_KEY};
    use crate::protocol::{
        validate_password, validate_username, Credentials, ErrorBody, TokenResponse,
    };

    /// The browser's clock, in milliseconds since the epoch.
    pub fn now_ms() -> i64 {
        js_sys::Date::now() as i64
    }

    fn storage() -> Option<web_sys::Storage> {
        window().local_storage().ok().flatten()
    }

    /// The stored session, if there is one that has not expired. An expired
    /// or unreadable one is removed.
    fn load() -> Option<Session> {
        let storage = storage()?;
        let text = storage.get_item(STORAGE_KEY).ok().flatten()?;
        match serde_json::from_str::<Session>(&text) {
            Ok(s) if !s.expired(now_ms()) => Some(s),
            _ => {
                let _ = storage.remove_item(STORAGE_KEY);
                None
            }
        }
    }

    impl Auth {
        /// Signs in (or swaps in a refreshed token) and remembers it.
        pub fn set(&self, session: Session) {
            if let (Some(storage), Ok(text)) = (storage(), serde_json::to_string(&session)) {
                // Private browsing may refuse; the session then lasts as
                // long as the page.
                let _ = storage.set_item(STORAGE_KEY, &text);
            }
            self.session.set(Some(session));
        }

        /// Signs out and forgets the token.
        pub fn sign_out(&self) {
            if let Some(storage) = storage() {
                let _ = storage.remove_item(STORAGE_KEY);
            }
            self.session.set(None);
        }

        /// Takes over a session stored by an earlier page load. Call it from
        /// an effect, after hydration.
        pub fn restore(&self) {
            if let Some(session) = load() {
                self.session.set(Some(session));
            }
        }
    }

    /// Reads a JSON body if the status is the expected one, or the API's
    /// error sentence if not.
    pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
        resp: Response,
        expected: u16,
    ) -> Result<T, Failure> {
        let status = resp.status();
        if status == expected {
            return resp.json::<T>().await.map_err(|e| Failure {
                status: Some(status),
                message: e.to_string(),
            });
        }
        let message = match resp.json::<ErrorBody>().await {
            Ok(body) => body.message,
            Err(_) => format!("the server answered {status}"),
        };
        Err(Failure {
            status: Some(status),
            message,
        })
    }

    /// Sends a request; a network failure becomes a [`Failure`] without status.
    pub(crate) async fn send(req: Request) -> Result<Response, Failure> {
        req.send().await.map_err(|e| Failure {
            status: None,
            message: e.to_string(),
        })
    }

    /// Adds the bearer token to a request.
    pub(crate) fn bearer(req: RequestBuilder, token: &str) -> RequestBuilder {
        req.header("Authorization", &format!("Bearer {token}"))
    }

    fn build_failed(e: impl std::fmt::Display) -> Failure {
        Failure {
            status: None,
            message: e.to_string(),
        }
    }

    /// `POST /token`: the OAuth2 password grant, which is form-encoded.
    pub async fn sign_in(username: &str, password: &str) -> Result<Session, Failure> {
        if username.is_empty() || password.is_empty() {
            return Err(build_failed("enter your username and password"));
        }
        let form = web_sys::UrlSearchParams::new()
            .map_err(|_| build_failed("could not build the form"))?;
        form.append("username", username);
        form.append("password", password);
        // The browser sets the form content type for a URLSearchParams body.
        let req = Request::post("/token").body(form).map_err(build_failed)?;
        let token: TokenResponse = read_json(send(req).await?, 200).await?;
        Ok(Session::new(username.to_owned(), token, now_ms()))
    }

    /// `POST /auth/register`, then signs in. The rules are checked here
    /// first, with the same validators as the server, so a typo is
    /// explained without a round trip.
    pub async fn sign_up(username: &str, password: &str) -> Result<Session, Failure> {
        validate_username(username).map_err(build_failed)?;
        validate_password(password).map_err(build_failed)?;
        let body = Credentials {
            username: username.to_owned(),
            password: password.to_owned(),
        };
        let req = Request::post("/auth/register")
            .json(&body)
            .map_err(build_failed)?;
        read_json::<serde_json::Value>(send(req).await?, 201).await?;
        sign_in(username, password).await
    }

    /// `POST /auth/refresh`: a fresh token for the same user.
    pub async fn refresh(session: &Session) -> Result<Session, Failure> {
        let req = bearer(Request::post("/auth/refresh"), &session.token)
            .build()
            .map_err(build_failed)?;
        let token: TokenResponse = read_json(send(req).await?, 200).await?;
        Ok(Session::new(session.username.clone(), token, now_ms()))
    }

    /// `POST /auth/logout`: ends the session on the server, so the token
    /// stops working everywhere, not only in this browser. Best effort: the
    /// page forgets the token either way.
    pub async fn logout(session: &Session) -> Result<(), Failure> {
        let req = bearer(Request::post("/auth/logout"), &session.token)
            .build()
            .map_err(build_failed)?;
        let resp = send(req).await?;
        if resp.status() == 204 {
            Ok(())
        } else {
            read_json::<serde_json::Value>(resp, 204).await.map(|_| ())
        }
    }

    /// How long to wait before retrying a refresh that did not get an answer.
    const RETRY_MS: i64 = 10_000;

    /// Restores the stored session after hydration and keeps its token
    /// fresh: shortly before it expires a new one is fetched and stored
    /// (the live connection picks it up from the signal). `expired` runs when
    /// the server refuses the token or it runs out, with the reason to show.
    pub fn start(auth: Auth, expired: Callback<String>) {
        Effect::new(move |_| auth.restore());
        // Bumped on every session change, so a timer for an older token
        // gives up instead of refreshing it.
        let generation = StoredValue::new(0u64);
        Effect::new(move |_| {
            let current = auth.session();
            generation.update_value(|g| *g += 1);
            let Some(mut session) = current else { return };
            let mine = generation.get_value();
            leptos::task::spawn_local(async move {
                let mut at = session.refresh_at_ms();
                loop {
                    // setTimeout treats anything past i32::MAX ms as 0.
                    let wait = (at - now_ms()).clamp(0, i64::from(i32::MAX));
                    TimeoutFuture::new(wait as u32).await;
                    if generation.try_get_value() != Some(mine) {
                        return;
                    }
                    match refresh(&session).await {
                        Ok(fresh) => {
                            if generation.try_get_value() == Some(mine) {
                                auth.set(fresh);
                            }
                            return;
                        }
                        Err(e) if e.is_unauthorized() => {
                            expired.run("Your session has ended; please sign in again.".into());
                            return;
                        }
                        Err(_) if session.expired(now_ms() + RETRY_MS) => {
                            expired.run("Your session expired; please sign in again.".into());
                            return;
                        }
                        Err(_) => {
                            at = now_ms() + RETRY_MS;
                            session = match auth.session_untracked() {
                                Some(s) => s,
                                None => return,
                            };
                        }
                    }
                }
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(expires_in: u64) -> TokenResponse {
        TokenResponse {
            access_token: "a.b.c".into(),
            token_type: "bearer".into(),
            expires_in,
        }
    }

    #[test]
    fn lifetime_is_counted_from_arrival() {
        let s = Session::new("ann".into(), token(3600), 1_000);
        assert_eq!(s.expires_at_ms, 3_601_000);
        assert!(!s.expired(3_600_999));
        assert!(s.expired(3_601_000));
    }

    #[test]
    fn refresh_comes_at_four_fifths_of_the_lifetime() {
        let s = Session::new("ann".into(), token(100), 0);
        assert_eq!(s.refresh_at_ms(), 80_000);
        let short = Session::new("ann".into(), token(1), 5_000);
        assert_eq!(short.refresh_at_ms(), 5_800);
    }

    #[test]
    fn failures_know_an_expired_token() {
        assert!(Failure {
            status: Some(401),
            message: String::new()
        }
        .is_unauthorized());
        assert!(!Failure {
            status: Some(403),
            message: String::new()
        }
        .is_unauthorized());
        assert!(!Failure {
            status: None,
            message: String::new()
        }
        .is_unauthorized());
    }

    #[test]
    fn session_round_trips_through_storage_text() {
        let s = Session::new("ann".into(), token(60), 42);
        let back: Session = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
