//! `POST /publish`: publishing from back-end services over plain HTTP.
//!
//! A cron job or another service that wants to notify the board's users
//! should not have to hold a WebSocket open. This endpoint applies exactly
//! the rules of `publish` on `/ws/v1` (a token is required; server-only
//! topics and task events are refused; a chat message names the caller),
//! and the event reaches every subscriber on every instance.

use crate::boards::Subscriber;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};

use app::protocol::{validate_topic, Payload};

use crate::auth::RequireUser;
use crate::error::{ApiError, Json};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/publish", post(publish))
        .route("/presence/{topic}", axum::routing::get(presence))
}

/// Body of `POST /publish`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    topic: String,
    payload: Payload,
}

/// Answer of `POST /publish`: where the event landed.
#[derive(Serialize)]
struct Published {
    topic: String,
    offset: u64,
    epoch: String,
}

async fn publish(
    State(state): State<AppState>,
    RequireUser(user): RequireUser,
    Json(body): Json<PublishBody>,
) -> Result<(StatusCode, axum::Json<Published>), ApiError> {
    validate_topic(&body.topic).map_err(|e| ApiError::Validation(format!("topic: {e}")))?;
    let payload = crate::topics::may_publish(&body.topic, body.payload, Some(&user))
        .map_err(|(_, why)| ApiError::Forbidden(why.to_owned()))?;
    state.rt.publishing(Some(&user), None)?;
    let event = state.rt.publish(&body.topic, payload).await.map_err(|e| {
        tracing::warn!(error = %e, "publish failed");
        ApiError::Unavailable("the broker is unavailable; retry".into())
    })?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Published {
            topic: event.topic,
            offset: event.offset,
            epoch: event.epoch,
        }),
    ))
}

/// `GET /presence/{topic}`: the signed-in users subscribed to a topic, on
/// every instance. A personal topic's presence is its owner's business.
async fn presence(
    State(state): State<AppState>,
    RequireUser(user): RequireUser,
    axum::extract::Path(topic): axum::extract::Path<String>,
) -> Result<axum::Json<crate::presence::Listing>, ApiError> {
    validate_topic(&topic).map_err(|e| ApiError::Validation(format!("topic: {e}")))?;
    if topic.starts_with("user:") && topic != app::protocol::user_topic(&user.username) {
        return Err(ApiError::Forbidden(
            "the presence of another user's personal topic is not yours to read".into(),
        ));
    }
    // Who is looking at a board is the board's business: its readers only.
    crate::boards::may_subscribe(&state.store, &topic, Subscriber::Account(&user))
        .await
        .map_err(crate::boards::refused)?;
    let listing = state.rt.presence.list(&topic).await.map_err(|e| {
        tracing::warn!(error = %e, "reading presence failed");
        ApiError::Unavailable("presence is unavailable; retry".into())
    })?;
    Ok(axum::Json(listing))
}
