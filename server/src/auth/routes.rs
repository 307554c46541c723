//! The account endpoints.
//!
//! | route | what |
//! |---|---|
//! | `POST /auth/register` | JSON `{username, password}` → 201 and the account |
//! | `POST /token` | OAuth2 password grant (form `username`, `password`) → a bearer token |
//! | `POST /auth/refresh` | a valid token → a fresh one of the same session, up to the session's maximum length |
//! | `POST /auth/logout` | ends the token's session: its tokens and sockets stop working at once |
//! | `POST /auth/password` | JSON `{current_password, new_password}` → a token of a new session; every other session ends |
//! | `GET /users/me` | the token's account |
//! | `DELETE /users/me` | JSON `{password}` → deletes the account; its tokens stop working at once |
//!
//! The two steps a stolen token must not be enough for, changing the
//! password and deleting the account, ask for the password again; wrong
//! answers count against the same login throttle as `POST /token`.

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use app::protocol::{
    validate_password, validate_username, Credentials, PasswordChange, Reauthentication,
    TokenResponse, UserInfo,
};

use super::{AuthError, AuthUser, RequireUser};
use crate::client_addr::PeerAddr;
use crate::error::{ApiError, Json};
use crate::state::AppState;
use crate::store::StoreError;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/token", post(token))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/auth/password", post(change_password))
        .route("/users/me", get(me).delete(delete_me))
}

/// The form of `POST /token`, as OAuth2's password grant and FastAPI's
/// `OAuth2PasswordRequestForm` define it. `scope` and the client fields are
/// accepted and ignored.
#[derive(Deserialize)]
struct TokenForm {
    #[serde(default)]
    grant_type: Option<String>,
    username: String,
    password: String,
}

/// A busy hasher is a 503 the client may retry; anything else is ours.
fn hash_error(e: crate::auth::password::HashError) -> ApiError {
    match e {
        crate::auth::password::HashError::Busy => ApiError::Unavailable(e.to_string()),
        other => ApiError::internal(other),
    }
}

/// `axum::Form` with our error shape.
struct Form<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Form<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        use axum::extract::rejection::FormRejection;
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(v)) => Ok(Form(v)),
            Err(FormRejection::InvalidFormContentType(_)) => Err(ApiError::UnsupportedForm),
            Err(FormRejection::FailedToDeserializeFormBody(e)) => {
                Err(ApiError::BadBody(e.body_text()))
            }
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::PayloadTooLarge),
            Err(e) => Err(ApiError::BadBody(e.body_text())),
        }
    }
}

fn token_response(issued: super::jwt::Issued) -> Response {
    let body = TokenResponse {
        access_token: issued.token,
        token_type: "bearer".into(),
        expires_in: issued.expires_in,
    };
    // RFC 6749 §5.1: token responses must not be cached.
    let headers = [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ];
    (StatusCode::OK, headers, axum::Json(body)).into_response()
}

/// Checks `password` against `user`'s, as a login attempt: wrong answers
/// count against the same throttle as `POST /token`.
async fn reauthenticate(
    state: &AppState,
    addr: Option<std::net::IpAddr>,
    user: &AuthUser,
    password: &str,
) -> Result<(), ApiError> {
    state.auth.login_attempt(&user.username, addr).await?;
    let stored = state.store.users().by_id(user.id).await?;
    let ok = password.chars().count() <= app::protocol::PASSWORD_MAX
        && state
            .auth
            .hasher
            .verify(password, stored.as_ref().map(|u| u.password_hash.as_str()))
            .await
            .map_err(hash_error)?;
    if !ok {
        state
            .metrics
            .login_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(user = %user.username, "re-authentication failed");
        return Err(ApiError::InvalidCredentials);
    }
    state.auth.login_succeeded(&user.username, addr).await;
    Ok(())
}

/// Closes the sockets an announcement names, here at once and on every
/// other instance through the broker (here too, again, harmlessly).
async fn announce(state: &AppState, announcement: crate::broker::Announcement) {
    use crate::broker::Announcement;
    match &announcement {
        Announcement::AccountDeleted { user_id } => state.gate.end_user(*user_id),
        Announcement::SessionEnded { session } => state.gate.sessions.end(session),
        Announcement::SessionsEnded { user_id, except } => {
            state.gate.sessions.end_all(*user_id, except.as_deref())
        }
    }
    if let Err(e) = state.rt.announce(announcement).await {
        tracing::error!(error = %e, "announcing to other instances failed");
    }
}

async fn register(
    State(state): State<AppState>,
    PeerAddr(addr): PeerAddr,
    Json(body): Json<Credentials>,
) -> Result<Response, ApiError> {
    validate_username(&body.username).map_err(|e| ApiError::Validation(e.to_string()))?;
    validate_password(&body.password).map_err(|e| ApiError::Validation(e.to_string()))?;
    let users = state.store.users();
    // The quota comes first: every registration attempt counts, a taken
    // name included, so asking which names exist costs the same quota as
    // registering (`--register-max-per-hour` names per address per hour).
    // The answer must say a name is taken (the user has to pick another);
    // the quota is what bounds using it to list accounts.
    state.auth.registration(addr).await?;
    // Checked before hashing, so a taken name costs no argon2 run.
    if users.by_name(&body.username).await?.is_some() {
        return Err(ApiError::UsernameTaken);
    }
    let hash = state
        .auth
        .hasher
        .hash(&body.password)
        .await
        .map_err(hash_error)?;
    let user = users
        .create(&body.username, &hash)
        .await
        .map_err(|e| match e {
            StoreError::UsernameTaken => ApiError::UsernameTaken,
            other => other.into(),
        })?;
    tracing::info!(user = %user.username, "account registered");
    let location = [(header::LOCATION, "/users/me")];
    Ok((StatusCode::CREATED, location, axum::Json(user.info())).into_response())
}

async fn token(
    State(state): State<AppState>,
    PeerAddr(addr): PeerAddr,
    Form(form): Form<TokenForm>,
) -> Result<Response, ApiError> {
    if form.grant_type.as_deref().is_some_and(|g| g != "password") {
        return Err(ApiError::Validation(
            "grant_type must be \"password\"".into(),
        ));
    }
    // A name that could never be registered is not worth a table entry.
    if validate_username(&form.username).is_err()
        || form.password.chars().count() > app::protocol::PASSWORD_MAX
    {
        state.auth.login_attempt("", addr).await?;
        state
            .metrics
            .login_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Err(ApiError::InvalidCredentials);
    }
    // Counted as a failure from here until the password is found right, so
    // concurrent guesses cannot all get past the throttle.
    state.auth.login_attempt(&form.username, addr).await?;
    let user = state.store.users().by_name(&form.username).await?;
    let ok = state
        .auth
        .hasher
        .verify(
            &form.password,
            user.as_ref().map(|u| u.password_hash.as_str()),
        )
        .await
        .map_err(hash_error)?;
    match user {
        Some(user) if ok => {
            state.auth.login_succeeded(&form.username, addr).await;
            let issued = state
                .auth
                .start_session(&state.store, user.id, &user.username)
                .await?;
            tracing::info!(user = %user.username, "signed in");
            Ok(token_response(issued))
        }
        _ => {
            state
                .metrics
                .login_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(user = %form.username, "login failed");
            Err(ApiError::InvalidCredentials)
        }
    }
}

/// A fresh token of the same session, never past the session's end.
async fn refresh(
    State(state): State<AppState>,
    RequireUser(user): RequireUser,
) -> Result<Response, ApiError> {
    let issued = state
        .auth
        .keys
        .issue(user.id, &user.username, &user.session)
        .map_err(ApiError::internal)?;
    match issued {
        Some(issued) => Ok(token_response(issued)),
        None => Err(AuthError::SessionTooLong(state.auth.keys.max_session()).into()),
    }
}

/// Signs out: the token's session ends, so its tokens are refused and its
/// sockets close with 4004, on every instance.
async fn logout(
    State(state): State<AppState>,
    RequireUser(user): RequireUser,
) -> Result<StatusCode, ApiError> {
    state.store.sessions().end(&user.session.id).await?;
    tracing::info!(user = %user.username, "signed out");
    announce(
        &state,
        crate::broker::Announcement::SessionEnded {
            session: user.session.id.clone(),
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the password with the current one, ends every session of the
/// account (the caller's too: a copy of its token may be what the change
/// is meant to shut out) and answers with a token of a new session.
async fn change_password(
    State(state): State<AppState>,
    PeerAddr(addr): PeerAddr,
    RequireUser(user): RequireUser,
    Json(body): Json<PasswordChange>,
) -> Result<Response, ApiError> {
    validate_password(&body.new_password).map_err(|e| ApiError::Validation(e.to_string()))?;
    reauthenticate(&state, addr, &user, &body.current_password).await?;
    let hash = state
        .auth
        .hasher
        .hash(&body.new_password)
        .await
        .map_err(hash_error)?;
    state
        .store
        .users()
        .set_password(user.id, &hash)
        .await
        .map_err(|e| match e {
            StoreError::UserNotFound => AuthError::UserGone.into(),
            other => ApiError::from(other),
        })?;
    let issued = state
        .auth
        .start_session(&state.store, user.id, &user.username)
        .await?;
    tracing::info!(user = %user.username, "password changed; other sessions ended");
    let except = state
        .auth
        .keys
        .verify(&issued.token)
        .ok()
        .map(|claims| claims.sid);
    announce(
        &state,
        crate::broker::Announcement::SessionsEnded {
            user_id: user.id,
            except,
        },
    )
    .await;
    Ok(token_response(issued))
}

/// The extractor has just read the account; no second query.
async fn me(RequireUser(user): RequireUser) -> axum::Json<UserInfo> {
    axum::Json(UserInfo {
        username: user.username,
        created_at: user.created_at,
    })
}

async fn delete_me(
    State(state): State<AppState>,
    PeerAddr(addr): PeerAddr,
    RequireUser(user): RequireUser,
    Json(body): Json<Reauthentication>,
) -> Result<StatusCode, ApiError> {
    state.rt.ensure_up()?;
    reauthenticate(&state, addr, &user, &body.password).await?;
    let deleted = state
        .store
        .users()
        .delete(user.id, &user.username)
        .await
        .map_err(|e| match e {
            StoreError::UserNotFound => AuthError::UserGone.into(),
            other => ApiError::from(other),
        })?;
    tracing::info!(user = %user.username, "account deleted");
    announce(
        &state,
        crate::broker::Announcement::AccountDeleted { user_id: user.id },
    )
    .await;
    // Whoever registers this name next starts with an empty personal topic.
    if let Err(e) = state
        .rt
        .forget(&app::protocol::user_topic(&user.username))
        .await
    {
        tracing::error!(error = %e, "dropping a deleted account's notification history failed");
    }
    for task in &deleted.unassigned {
        state.rt.task_updated(task).await;
    }
    for &id in &deleted.boards.boards {
        state
            .rt
            .board_event(id, app::protocol::Payload::BoardDeleted { id })
            .await;
    }
    Ok(StatusCode::NO_CONTENT)
}
