//! The seed article's Redis channels, wire-compatible and carried by the
//! broker like every other event.
//!
//! `POST /publish/{channel}` publishes a plain text message; every
//! subscriber of `/ws/redis/{channel}` receives it as one text frame,
//! exactly as it was published. The seed wired these two straight to Redis
//! PUBLISH and SUBSCRIBE; here they go through the broker, so they work
//! without Redis too, and a channel gains what every topic has: offsets,
//! history, and the typed endpoint (`/ws/v1` subscribers of
//! `channel:{channel}` get each message as a `message` event).
//!
//! Writes follow the task-write rule: a token is required unless the
//! server runs with `--open-writes`, and a token that is sent is checked
//! either way. The seed took no token at all; a public hub where anyone
//! can push text to everyone's screens is not something we ship by default.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde::{Deserialize, Serialize};

use app::protocol::{validate_topic, Payload};

use crate::auth::Writer;
use crate::error::{ApiError, Path};
use crate::state::AppState;

/// The hub topics that channels live on: `channel:{channel}`.
pub const CHANNEL_PREFIX: &str = "channel:";

pub fn routes() -> Router<AppState> {
    Router::new().route("/publish/{channel}", post(publish))
}

/// The hub topic of a channel named in a path, or a 400 for a name that is
/// not a valid topic name (or too long once prefixed).
pub fn topic_of(channel: &str) -> Result<String, ApiError> {
    validate_topic(channel).map_err(|e| ApiError::BadPath(format!("channel: {e}")))?;
    let topic = format!("{CHANNEL_PREFIX}{channel}");
    validate_topic(&topic).map_err(|e| ApiError::BadPath(format!("channel: {e}")))?;
    Ok(topic)
}

/// The JSON body form: `{"message": "..."}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageBody {
    message: String,
}

/// The seed's answer, word for word.
#[derive(Serialize)]
struct Published {
    message: &'static str,
}

/// Where the message came from: the seed sent it as the `message` query
/// parameter; HTML forms and most HTTP clients would rather send a body.
/// Exactly one source is accepted, so a request is never read two ways.
fn message_of(query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Result<String, ApiError> {
    let from_query = match query {
        Some(q) => serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .map_err(|_| ApiError::Validation("the query string is not valid".into()))?
            .into_iter()
            .find_map(|(k, v)| (k == "message").then_some(v)),
        None => None,
    };
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let from_body = if body.is_empty() {
        None
    } else {
        Some(match media.as_deref() {
            Some("application/json") => {
                serde_json::from_slice::<MessageBody>(body)
                    .map_err(|e| {
                        if e.is_data() {
                            ApiError::BadBody(format!("expected {{\"message\": \"...\"}}: {e}"))
                        } else {
                            ApiError::BadJson(format!("the body is not valid JSON: {e}"))
                        }
                    })?
                    .message
            }
            Some("application/x-www-form-urlencoded") => serde_urlencoded::from_bytes::<
                Vec<(String, String)>,
            >(body)
            .map_err(|_| ApiError::BadBody("the form is not valid".into()))?
            .into_iter()
            .find_map(|(k, v)| (k == "message").then_some(v))
            .ok_or_else(|| ApiError::Validation("message: the form has no message field".into()))?,
            _ => {
                return Err(ApiError::Validation(
                    "send the message as the `message` query parameter, as a form \
                     (application/x-www-form-urlencoded) or as JSON {\"message\": \"...\"}"
                        .into(),
                ))
            }
        })
    };
    match (from_query, from_body) {
        (Some(_), Some(_)) => Err(ApiError::Validation(
            "message: given both in the query and in the body; send it once".into(),
        )),
        (Some(m), None) | (None, Some(m)) => Ok(m),
        (None, None) => Err(ApiError::Validation(
            "message: required (query parameter, form field or JSON field)".into(),
        )),
    }
}

async fn publish(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    Writer(user): Writer,
    crate::client_addr::PeerAddr(addr): crate::client_addr::PeerAddr,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, axum::Json<Published>), ApiError> {
    let topic = topic_of(&channel)?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadBody(e.body_text())
        }
    })?;
    let text = message_of(query.as_deref(), &headers, &body)?;
    // A subscriber receives the message as one frame; it must fit in what
    // our own endpoints accept as one message.
    let max = state.config.ws_max_message_bytes;
    if text.len() > max {
        return Err(ApiError::Validation(format!(
            "message: at most {max} bytes"
        )));
    }
    state.rt.publishing(user.as_ref(), addr)?;
    state
        .rt
        .publish(&topic, Payload::Message { text })
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "channel publish failed");
            ApiError::Unavailable("the broker is unavailable; retry".into())
        })?;
    Ok((
        StatusCode::OK,
        axum::Json(Published {
            message: "Published",
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(ct) = content_type {
            h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_message_comes_from_exactly_one_place() {
        let none = headers(None);
        assert_eq!(
            message_of(Some("message=hello%20world&x=1"), &none, b"").unwrap(),
            "hello world"
        );
        assert_eq!(
            message_of(
                None,
                &headers(Some("application/json; charset=utf-8")),
                br#"{"message":"a\u0001b"}"#
            )
            .unwrap(),
            "a\u{1}b"
        );
        assert_eq!(
            message_of(
                None,
                &headers(Some("application/x-www-form-urlencoded")),
                b"message=caf%C3%A9+ok"
            )
            .unwrap(),
            "café ok"
        );
        assert_eq!(message_of(Some("message="), &none, b"").unwrap(), "");
    }

    #[test]
    fn ambiguous_missing_or_malformed_messages_are_refused() {
        let json = headers(Some("application/json"));
        let code = |r: Result<String, ApiError>| r.unwrap_err().code();
        assert_eq!(
            code(message_of(None, &headers(None), b"")),
            "validation_failed"
        );
        assert_eq!(
            code(message_of(Some("other=1"), &headers(None), b"")),
            "validation_failed"
        );
        assert_eq!(
            code(message_of(Some("message=a"), &json, br#"{"message":"b"}"#)),
            "validation_failed"
        );
        assert_eq!(code(message_of(None, &json, b"{nope")), "invalid_json");
        assert_eq!(
            code(message_of(None, &json, br#"{"message":1}"#)),
            "invalid_body"
        );
        assert_eq!(
            code(message_of(None, &json, br#"{"message":"a","x":1}"#)),
            "invalid_body"
        );
        assert_eq!(
            code(message_of(None, &headers(Some("text/plain")), b"hello")),
            "validation_failed"
        );
        assert_eq!(
            code(message_of(
                None,
                &headers(Some("application/x-www-form-urlencoded")),
                b"text=a"
            )),
            "validation_failed"
        );
    }

    #[test]
    fn channel_names_are_topic_names() {
        assert_eq!(topic_of("news").unwrap(), "channel:news");
        assert_eq!(topic_of("bad name").unwrap_err().code(), "invalid_path");
        assert_eq!(topic_of("").unwrap_err().code(), "invalid_path");
        let long = "a".repeat(app::protocol::TOPIC_MAX_LEN);
        assert_eq!(topic_of(&long).unwrap_err().code(), "invalid_path");
    }
}
