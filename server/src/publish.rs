//! `POST /publish`: publishing from back-end services over plain HTTP.
//!
//! A cron job or another service that wants to notify the board's users
//! should not have to hold a WebSocket open. This endpoint applies exactly
//! the rules of `publish` on `/ws/v1` (a token is required; server-only
//! topics and task events are refused; a chat message names the caller),
//! and the event reaches every subscriber on every instance.

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
    Router::new().route("/publish", post(publish))
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
    let payload = crate::ws::typed::may_publish(&body.topic, body.payload, Some(&user))
        .map_err(|(_, why)| ApiError::Forbidden(why.to_owned()))?;
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
