//! `/ws/v1`: the typed, multiplexed endpoint the UI uses.
//!
//! One connection carries any number of topic subscriptions. Commands and
//! replies are [`ClientMessage`] and [`ServerMessage`] from the shared
//! protocol; a frame that does not decode gets an `error` reply and the
//! connection stays open (the rate limit bounds how many it can send).

use yawc::close::CloseCode;
use yawc::frame::Frame;

use app::protocol::{
    validate_topic, ClientMessage, ErrorCode, Payload, ServerMessage, PROTOCOL_VERSION,
};

use super::session::{Ctx, Flow, Handler, SubscribeError};
use crate::hub::Delivery;

/// Topics only the server publishes to, and prefixes reserved for private
/// topics.
const RESERVED_TOPICS: [&str; 2] = [crate::pubsub::TASKS_TOPIC, super::chat::CHAT_TOPIC];
const RESERVED_PREFIXES: [&str; 2] = ["user:", "secure:"];

pub struct Typed {
    /// Sent in `hello` so clients can tell a dead link from a quiet one.
    pub heartbeat_ms: u64,
}

fn reply(ctx: &mut Ctx, msg: &ServerMessage) {
    ctx.send(Frame::text(msg.to_json()));
}

fn error(ctx: &mut Ctx, id: Option<u64>, code: ErrorCode, message: impl Into<String>) {
    reply(ctx, &ServerMessage::Error { id, code, message: message.into() });
}

/// Whether a client may publish `payload` on `topic`.
fn may_publish(topic: &str, payload: &Payload) -> Result<(), &'static str> {
    if RESERVED_TOPICS.contains(&topic) || RESERVED_PREFIXES.iter().any(|p| topic.starts_with(p)) {
        return Err("this topic is written by the server only");
    }
    match payload {
        Payload::TaskCreated { .. } | Payload::TaskUpdated { .. } | Payload::TaskDeleted { .. } => {
            Err("task events come from the task API, not from clients")
        }
        Payload::Notification { .. } | Payload::Chat { .. } | Payload::Presence { .. } => Ok(()),
    }
}

impl Handler for Typed {
    async fn on_open(&mut self, ctx: &mut Ctx) -> Flow {
        reply(ctx, &ServerMessage::Hello { version: PROTOCOL_VERSION, heartbeat_ms: self.heartbeat_ms });
        Flow::Continue
    }

    async fn on_text(&mut self, ctx: &mut Ctx, text: &str) -> Flow {
        let msg = match serde_json::from_str::<ClientMessage>(text) {
            Ok(msg) => msg,
            Err(e) => {
                // Name the command's id when the frame is JSON with one, so
                // a pipelining client can match the error.
                let id = serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .and_then(|v| v.get("id").and_then(serde_json::Value::as_u64));
                error(ctx, id, ErrorCode::BadRequest, format!("invalid message: {e}"));
                return Flow::Continue;
            }
        };
        match msg {
            ClientMessage::Ping { id } => reply(ctx, &ServerMessage::Pong { id }),
            ClientMessage::Subscribe { id, topic, since } => {
                if let Err(e) = validate_topic(&topic) {
                    error(ctx, Some(id), ErrorCode::InvalidTopic, e.to_string());
                    return Flow::Continue;
                }
                match ctx.subscribe(&topic, since.as_ref()).await {
                    Ok(sub) => {
                        reply(
                            ctx,
                            &ServerMessage::Subscribed {
                                id,
                                topic,
                                position: sub.position,
                                recovered: sub.recovered,
                            },
                        );
                        for event in sub.missed {
                            reply(ctx, &ServerMessage::Event(event));
                        }
                    }
                    Err(SubscribeError::Already) => {
                        error(ctx, Some(id), ErrorCode::AlreadySubscribed, "already subscribed to this topic")
                    }
                    Err(e @ SubscribeError::TooMany(_)) => {
                        error(ctx, Some(id), ErrorCode::TooManySubscriptions, e.to_string())
                    }
                    Err(SubscribeError::Broker(e)) => {
                        tracing::warn!(error = %e, "subscribe failed");
                        error(ctx, Some(id), ErrorCode::Unavailable, "the broker is unavailable; retry")
                    }
                }
            }
            ClientMessage::Unsubscribe { id, topic } => {
                if ctx.unsubscribe(&topic).await {
                    reply(ctx, &ServerMessage::Unsubscribed { id, topic });
                } else {
                    error(ctx, Some(id), ErrorCode::NotSubscribed, "not subscribed to this topic");
                }
            }
            ClientMessage::Publish { id, topic, payload } => {
                if let Err(e) = validate_topic(&topic) {
                    error(ctx, Some(id), ErrorCode::InvalidTopic, e.to_string());
                    return Flow::Continue;
                }
                if let Err(why) = may_publish(&topic, &payload) {
                    error(ctx, Some(id), ErrorCode::PublishForbidden, why);
                    return Flow::Continue;
                }
                match ctx.publish(&topic, payload).await {
                    Ok(event) => reply(ctx, &ServerMessage::Published { id, topic, offset: event.offset }),
                    Err(e) => {
                        tracing::warn!(error = %e, "publish failed");
                        error(ctx, Some(id), ErrorCode::Unavailable, "the broker is unavailable; retry");
                    }
                }
            }
        }
        Flow::Continue
    }

    fn render(&self, delivery: &Delivery) -> Option<Frame> {
        Some(Frame::text(delivery.json().to_string()))
    }

    fn heartbeat(&self) -> Option<Frame> {
        Some(Frame::text(ServerMessage::Heartbeat { ts: chrono::Utc::now() }.to_json()))
    }

    async fn on_close(&mut self, _ctx: &mut Ctx) {}
}

/// Close code for a broker failure on endpoints that cannot report errors
/// in-band.
pub const INTERNAL: CloseCode = CloseCode::Error;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishing_rules() {
        let chat = Payload::Chat { from: "a".into(), text: "b".into() };
        assert!(may_publish("room", &chat).is_ok());
        assert!(may_publish("tasks", &chat).is_err());
        assert!(may_publish("chat", &chat).is_err());
        assert!(may_publish("user:1", &chat).is_err());
        assert!(may_publish("secure:ops", &chat).is_err());
        let deleted = Payload::TaskDeleted { id: 1, version: 1 };
        assert!(may_publish("room", &deleted).is_err());
    }
}
