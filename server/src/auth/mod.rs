//! Accounts and access tokens.
//!
//! * [`jwt`]: signing and checking tokens, and where the secret comes from.
//! * [`password`]: argon2id hashing off the async threads.
//! * [`throttle`]: refusing repeated failed logins.
//! * [`shared`]: the same limits in Redis, for several instances.
//! * [`routes`]: `/auth/register`, `/token`, `/auth/refresh`, `/users/me`.
//!
//! A token proves who someone is only while its session and its account
//! exist: every check reads both by the token's `sid` and `sub`, so a
//! signed-out session, the sessions a password change ended and a deleted
//! account's tokens stop working at once, on every instance. A session
//! lasts at most `--session-max-secs` from the sign-in that began it;
//! refreshing a token never extends that.
//!
//! Where tokens are read from: REST takes only `Authorization: Bearer`.
//! WebSocket upgrades also take the `Sec-WebSocket-Protocol` pair
//! `bearer, <token>` (browsers cannot set headers on a WebSocket) and a
//! `token` query parameter (for clients that can do neither; query strings
//! end up in proxies' logs, so it is the last resort, and ours never logs
//! them).

pub mod jwt;
pub mod password;
pub mod routes;
pub mod shared;
pub mod throttle;

use std::net::IpAddr;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderMap};
use chrono::{DateTime, Utc};

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::TaskStore;
use jwt::{Keys, TokenError};
use password::Hasher;
use throttle::LoginThrottle;

/// Everything authentication needs, shared by the handlers.
pub struct Auth {
    pub keys: Keys,
    pub hasher: Hasher,
    pub throttle: LoginThrottle,
    /// Accounts registered per client address per hour.
    pub registrations: throttle::AddressQuota,
    /// With Redis configured: the throttle and quota shared by every
    /// instance, used instead of the in-process ones.
    pub shared: Option<shared::SharedLimits>,
    /// Task writes without a token (for demos). Tokens that are sent are
    /// still checked.
    pub open_writes: bool,
    /// Sessions one account may hold; a sign-in beyond it ends the oldest.
    pub max_sessions_per_user: usize,
}

impl Auth {
    /// A login attempt on `username` from `addr`, counted as a failure
    /// until [`login_succeeded`](Self::login_succeeded).
    pub async fn login_attempt(
        &self,
        username: &str,
        addr: Option<IpAddr>,
    ) -> Result<(), ApiError> {
        match &self.shared {
            Some(shared) => shared.attempt(username, addr).await,
            None => self
                .throttle
                .attempt(username, addr)
                .map_err(ApiError::TooManyAttempts),
        }
    }

    /// Clears `username`'s failures and refunds the address's attempt.
    pub async fn login_succeeded(&self, username: &str, addr: Option<IpAddr>) {
        match &self.shared {
            Some(shared) => shared.succeeded(username, addr).await,
            None => {
                self.throttle.succeeded(username, addr);
                self.throttle.refund(addr);
            }
        }
    }

    /// Starts a session for `user_id` (a sign-in with the password, or a
    /// password change) and issues its first token.
    pub async fn start_session(
        &self,
        store: &TaskStore,
        user_id: i64,
        username: &str,
    ) -> Result<jwt::Issued, ApiError> {
        let now = Utc::now().timestamp();
        let max = self.keys.max_session().as_secs() as i64;
        let id = store
            .sessions()
            .start(user_id, now, now - max, self.max_sessions_per_user)
            .await?;
        let session = jwt::SessionRef {
            id,
            started_at: now,
        };
        self.keys
            .issue(user_id, username, &session)
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::Internal("a new session is already over".into()))
    }

    /// Takes one registration from the address's quota.
    pub async fn registration(&self, addr: Option<IpAddr>) -> Result<(), ApiError> {
        match &self.shared {
            Some(shared) => shared.registration(addr).await,
            None => self
                .registrations
                .take(addr)
                .map_err(ApiError::TooManyRegistrations),
        }
    }
}

/// An authenticated caller: the account, and until when the token that
/// proved it is good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthUser {
    pub id: i64,
    pub username: String,
    /// When the account was made (read with it, so `/users/me` needs no
    /// second query).
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The session the token belongs to.
    pub session: jwt::SessionRef,
}

impl AuthUser {
    /// How long until the token expires (zero if it already has).
    pub fn remaining(&self) -> Duration {
        (self.expires_at - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
    }
}

/// Why a token did not authenticate anyone. The texts are what clients see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required: send a bearer token")]
    Missing,
    #[error("{0}")]
    Token(#[from] TokenError),
    #[error("the token's account no longer exists")]
    UserGone,
    #[error("the session has ended (signed out, or the password was changed): sign in again")]
    SessionEnded,
    #[error("the session has reached its maximum length ({}): sign in again", span(*.0))]
    SessionTooLong(Duration),
    #[error("the account store is unavailable")]
    Store,
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Store => ApiError::Unavailable(e.to_string()),
            other => ApiError::Unauthorized(other.to_string()),
        }
    }
}

/// A duration as people say it: "7 days", "12 h", "90 s".
fn span(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s >= 3_600 && s % 3_600 == 0 => format!("{} h", s / 3_600),
        s => format!("{s} s"),
    }
}

/// Checks a token and that its session and account still exist.
pub async fn authenticate(
    auth: &Auth,
    store: &TaskStore,
    token: &str,
) -> Result<AuthUser, AuthError> {
    let claims = auth.keys.verify(token)?;
    let id: i64 = claims
        .sub
        .parse()
        .map_err(|_| AuthError::Token(TokenError::Invalid))?;
    let store_error = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "looking up a token's session failed");
        AuthError::Store
    };
    let user = if claims.sid.is_empty() {
        None
    } else {
        store
            .sessions()
            .user(&claims.sid, id)
            .await
            .map_err(store_error)?
    };
    let Some(user) = user else {
        // Only on refusal: say which of the two is gone.
        let exists = store.users().by_id(id).await.map_err(store_error)?;
        return Err(match exists {
            Some(_) => AuthError::SessionEnded,
            None => AuthError::UserGone,
        });
    };
    Ok(AuthUser {
        id,
        username: user.username,
        created_at: user.created_at,
        expires_at: claims.expires_at(),
        session: jwt::SessionRef {
            id: claims.sid,
            started_at: claims.auth_time,
        },
    })
}

/// The token of an `Authorization: Bearer <token>` header. `Err` when the
/// header is there but is not a bearer credential.
fn bearer_header(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| AuthError::Token(TokenError::Invalid))?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or(AuthError::Token(TokenError::Invalid))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Token(TokenError::Invalid));
    }
    Ok(Some(token.trim()))
}

/// The subprotocol name that announces a token as the next entry.
pub const BEARER_PROTOCOL: &str = "bearer";

/// The token of a `Sec-WebSocket-Protocol: bearer, <token>` offer.
pub fn bearer_protocol(headers: &HeaderMap) -> Option<String> {
    let offered: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let at = offered
        .iter()
        .position(|p| p.eq_ignore_ascii_case(BEARER_PROTOCOL))?;
    offered.get(at + 1).map(|t| (*t).to_owned())
}

/// The `token` query parameter, percent-decoded.
fn query_token(parts: &Parts) -> Option<String> {
    let query = parts.uri.query()?;
    url_pairs(query).find(|(k, _)| k == "token").map(|(_, v)| v)
}

/// `application/x-www-form-urlencoded` pairs, decoded.
fn url_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap_or_default()
        .into_iter()
}

/// The token a WebSocket upgrade carries, from the header, the subprotocol
/// or the query, in that order.
pub fn ws_token(parts: &Parts) -> Result<Option<String>, AuthError> {
    if let Some(t) = bearer_header(&parts.headers)? {
        return Ok(Some(t.to_owned()));
    }
    Ok(bearer_protocol(&parts.headers).or_else(|| query_token(parts)))
}

/// Counts a refusal in the metrics and turns it into the API's error.
fn rejected(state: &AppState, e: AuthError) -> ApiError {
    if e != AuthError::Store {
        state
            .metrics
            .auth_rejections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    e.into()
}

/// [`authenticate`], with a refusal counted and turned into the API's error.
async fn checked(state: &AppState, token: &str) -> Result<AuthUser, ApiError> {
    authenticate(&state.auth, &state.store, token)
        .await
        .map_err(|e| rejected(state, e))
}

/// Extractor: the caller must present a valid token (REST: header only).
pub struct RequireUser(pub AuthUser);

impl FromRequestParts<AppState> for RequireUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_header(&parts.headers)
            .and_then(|t| t.ok_or(AuthError::Missing))
            .map_err(|e| rejected(state, e))?;
        Ok(RequireUser(checked(state, token).await?))
    }
}

/// Extractor for task writes: the caller, or `None` when writes are open
/// and no token was sent. A token that is sent must be valid either way.
pub struct Writer(pub Option<AuthUser>);

impl FromRequestParts<AppState> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match bearer_header(&parts.headers).map_err(|e| rejected(state, e))? {
            Some(token) => Ok(Writer(Some(checked(state, token).await?))),
            None if state.auth.open_writes => Ok(Writer(None)),
            None => Err(rejected(state, AuthError::Missing)),
        }
    }
}

/// Extractor for reads: the caller if a bearer token came, `None` if none
/// did. A token that is sent must be valid: a bad one is a 401, never a
/// silent downgrade to anonymous (which would hide a private board behind
/// a misleading "sign in").
pub struct Reader(pub Option<AuthUser>);

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match bearer_header(&parts.headers).map_err(|e| rejected(state, e))? {
            Some(token) => Ok(Reader(Some(checked(state, token).await?))),
            None => Ok(Reader(None)),
        }
    }
}

/// Extractor for WebSocket upgrades: the caller if a token came with the
/// request (header, subprotocol or query), `None` if none did. A token that
/// does not check out is refused with 401 before the upgrade, rather than
/// silently treated as anonymous.
pub struct WsUser(pub Option<AuthUser>);

impl FromRequestParts<AppState> for WsUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match ws_token(parts).map_err(|e| rejected(state, e))? {
            Some(token) => Ok(WsUser(Some(checked(state, &token).await?))),
            None => Ok(WsUser(None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut req = Request::builder().uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn tokens_come_from_header_then_subprotocol_then_query() {
        let p = parts(
            "/ws?token=q",
            &[
                ("authorization", "Bearer h"),
                ("sec-websocket-protocol", "bearer, s"),
            ],
        );
        assert_eq!(ws_token(&p).unwrap().as_deref(), Some("h"));
        let p = parts(
            "/ws?token=q",
            &[("sec-websocket-protocol", "chat, bearer, s")],
        );
        assert_eq!(ws_token(&p).unwrap().as_deref(), Some("s"));
        let p = parts("/ws?a=1&token=a%2Eb", &[]);
        assert_eq!(ws_token(&p).unwrap().as_deref(), Some("a.b"));
        let p = parts("/ws", &[("sec-websocket-protocol", "bearer")]);
        assert_eq!(ws_token(&p).unwrap(), None);
        let p = parts("/ws", &[("authorization", "Basic dXNlcjpwdw==")]);
        assert!(ws_token(&p).is_err());
        let p = parts("/ws", &[("authorization", "bearer   t  ")]);
        assert_eq!(ws_token(&p).unwrap().as_deref(), Some("t"));
    }
}
