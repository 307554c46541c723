//! `/ws/v1`: the typed, multiplexed endpoint the UI uses.
//!
//! One connection carries any number of topic subscriptions. Commands and
//! replies are [`ClientMessage`] and [`ServerMessage`] from the shared
//! protocol; a frame that does not decode gets an `error` reply and the
//! connection stays open (the rate limit bounds how many it can send).
//!
//! Who may do what:
//!
//! | topic | read | publish |
//! |---|---|---|
//! | `tasks`, `chat` | anyone | the server only |
//! | `user:<name>` | only `<name>` | the server only |
//! | `secure:<x>` | any signed-in user | any signed-in user |
//! | anything else | anyone | any signed-in user |
//!
//! A connection signs in with a token on the upgrade request or with an
//! `auth` command, and stays signed in until the token expires: then it is
//! closed with 4001 unless an `auth` with a fresh token of the same user
//! came first, and with 4003 if its account is deleted. A refused command gets an `error` reply with a stable code
//! (`unauthorized`, `forbidden`, …) and the connection stays usable.

use yawc::close::CloseCode;
use yawc::frame::Frame;

use app::protocol::{
    user_topic, validate_topic, ClientMessage, ErrorCode, Payload, ServerMessage, PROTOCOL_VERSION,
};

use super::session::{Ctx, Flow, Handler, SubscribeError};
use std::sync::Arc;

use crate::auth::{authenticate, Auth, AuthError, AuthUser};
use crate::broker::BrokerError;
use crate::hub::{Delivery, Wire};
use crate::store::TaskStore;

/// Topics only the server publishes to, and prefixes reserved for private
/// topics.
const RESERVED_TOPICS: [&str; 2] = [crate::pubsub::TASKS_TOPIC, super::chat::CHAT_TOPIC];
const USER_PREFIX: &str = "user:";
const SECURE_PREFIX: &str = "secure:";

pub struct Typed {
    /// Sent in `hello` so clients can tell a dead link from a quiet one.
    pub heartbeat_ms: u64,
    /// Who the connection acts for, if anyone.
    pub user: Option<AuthUser>,
    /// The account's connection slot, once signed in.
    pub seat: Option<super::UserPermit>,
    /// The watch on the session of the token last accepted.
    pub watch: Option<super::live_sessions::SessionWatch>,
    /// For checking tokens sent in-band (only what that needs: this is
    /// held by every open connection).
    pub auth: Arc<Auth>,
    pub store: TaskStore,
    pub gate: Arc<super::ConnectionGate>,
}

/// A refusal: the error code and the sentence for the client.
pub(crate) type Refusal = (ErrorCode, &'static str);

fn reply(ctx: &mut Ctx, msg: &ServerMessage) {
    ctx.send(Frame::text(msg.to_json()));
}

fn error(ctx: &mut Ctx, id: Option<u64>, code: ErrorCode, message: impl Into<String>) {
    reply(
        ctx,
        &ServerMessage::Error {
            id,
            code,
            message: message.into(),
        },
    );
}

/// Whether `user` may subscribe to `topic`. Anonymous endpoints ask with
/// `None`.
pub(crate) fn may_read(topic: &str, user: Option<&AuthUser>) -> Result<(), Refusal> {
    if topic.starts_with(USER_PREFIX) {
        return match user {
            None => Err((ErrorCode::Unauthorized, "personal topics need a token")),
            Some(u) if topic == user_topic(&u.username) => Ok(()),
            Some(_) => Err((
                ErrorCode::Forbidden,
                "this is another user's personal topic",
            )),
        };
    }
    if topic.starts_with(SECURE_PREFIX) && user.is_none() {
        return Err((ErrorCode::Unauthorized, "secure topics need a token"));
    }
    Ok(())
}

/// Whether `user` may publish `payload` on `topic`, and the payload as it
/// will be published: a chat message or presence always names the
/// connection's user, whatever the client wrote in it.
pub(crate) fn may_publish(
    topic: &str,
    payload: Payload,
    user: Option<&AuthUser>,
) -> Result<Payload, Refusal> {
    let Some(user) = user else {
        return Err((ErrorCode::Unauthorized, "publishing needs a token"));
    };
    if RESERVED_TOPICS.contains(&topic) || topic.starts_with(USER_PREFIX) {
        return Err((
            ErrorCode::PublishForbidden,
            "this topic is written by the server only",
        ));
    }
    // A channel carries plain messages and nothing else, so the seed's
    // subscribers (`/ws/redis/{channel}`) see every event of their topic.
    let on_channel = topic.starts_with(crate::channels::CHANNEL_PREFIX);
    if on_channel != matches!(payload, Payload::Message { .. }) {
        return Err((
            ErrorCode::PublishForbidden,
            "plain messages go to channel: topics, and channel: topics take only plain messages",
        ));
    }
    match payload {
        Payload::TaskCreated { .. } | Payload::TaskUpdated { .. } | Payload::TaskDeleted { .. } => {
            Err((
                ErrorCode::PublishForbidden,
                "task events come from the task API, not from clients",
            ))
        }
        Payload::Chat { text, .. } => Ok(Payload::Chat {
            from: user.username.clone(),
            text,
        }),
        Payload::Presence { online, .. } => Ok(Payload::Presence {
            user: user.username.clone(),
            online,
        }),
        n @ (Payload::Notification { .. } | Payload::Message { .. }) => Ok(n),
    }
}

fn refuse(ctx: &mut Ctx, id: u64, (code, why): Refusal) {
    if matches!(code, ErrorCode::Unauthorized | ErrorCode::Forbidden) {
        ctx.rt
            .metrics
            .auth_rejections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    error(ctx, Some(id), code, why);
}

impl Typed {
    /// `auth`: sign the connection in, or extend it with a fresh token.
    /// Signing in takes one of the account's connection slots; with none
    /// left the connection is closed with 1008, as at the upgrade.
    async fn auth(&mut self, ctx: &mut Ctx, id: u64, token: &str) -> Flow {
        let user = match authenticate(&self.auth, &self.store, token).await {
            Ok(user) => user,
            Err(AuthError::Store) => {
                error(
                    ctx,
                    Some(id),
                    ErrorCode::Unavailable,
                    "the account store is unavailable; retry",
                );
                return Flow::Continue;
            }
            Err(e) => {
                ctx.rt
                    .metrics
                    .auth_rejections
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                error(ctx, Some(id), ErrorCode::Unauthorized, e.to_string());
                return Flow::Continue;
            }
        };
        if self
            .user
            .as_ref()
            .is_some_and(|current| current.id != user.id)
        {
            refuse(
                ctx,
                id,
                (
                    ErrorCode::Forbidden,
                    "this connection is signed in as another user",
                ),
            );
            return Flow::Continue;
        }
        let seat = match self.seat.take() {
            Some(seat) => seat,
            None => match self.gate.acquire_user(user.id).await {
                Some(seat) => seat,
                None => return Flow::Close(CloseCode::Policy, super::USER_LIMIT_REASON.into()),
            },
        };
        // A fresh token may belong to another session of the same account
        // (signed in again elsewhere): the connection follows the newest.
        let watch = seat.watch_session(&user.session.id);
        ctx.watch_session(seat.ended.clone(), watch.ended.clone());
        self.watch = Some(watch);
        self.seat = Some(seat);
        ctx.set_deadline(Some(user.remaining()));
        if self.user.is_none() {
            ctx.sign_in(&user.username);
        }
        reply(
            ctx,
            &ServerMessage::Authed {
                id,
                user: user.username.clone(),
                expires_at: user.expires_at,
            },
        );
        self.user = Some(user);
        Flow::Continue
    }
}

impl Handler for Typed {
    async fn on_open(&mut self, ctx: &mut Ctx) -> Flow {
        ctx.set_deadline(self.user.as_ref().map(AuthUser::remaining));
        if let (Some(seat), Some(user)) = (&self.seat, &self.user) {
            let watch = seat.watch_session(&user.session.id);
            ctx.watch_session(seat.ended.clone(), watch.ended.clone());
            self.watch = Some(watch);
        }
        if let Some(user) = &self.user {
            ctx.sign_in(&user.username);
        }
        reply(
            ctx,
            &ServerMessage::Hello {
                version: PROTOCOL_VERSION,
                heartbeat_ms: self.heartbeat_ms,
                user: self.user.as_ref().map(|u| u.username.clone()),
                expires_at: self.user.as_ref().map(|u| u.expires_at),
            },
        );
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
                error(
                    ctx,
                    id,
                    ErrorCode::BadRequest,
                    format!("invalid message: {e}"),
                );
                return Flow::Continue;
            }
        };
        match msg {
            ClientMessage::Ping { id } => reply(ctx, &ServerMessage::Pong { id }),
            ClientMessage::Auth { id, token } => return self.auth(ctx, id, &token).await,
            ClientMessage::Subscribe { id, topic, since } => {
                if let Err(e) = validate_topic(&topic) {
                    error(ctx, Some(id), ErrorCode::InvalidTopic, e.to_string());
                    return Flow::Continue;
                }
                if let Err(refusal) = may_read(&topic, self.user.as_ref()) {
                    refuse(ctx, id, refusal);
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
                    Err(SubscribeError::Already) => error(
                        ctx,
                        Some(id),
                        ErrorCode::AlreadySubscribed,
                        "already subscribed to this topic",
                    ),
                    Err(e @ SubscribeError::TooMany(_)) => error(
                        ctx,
                        Some(id),
                        ErrorCode::TooManySubscriptions,
                        e.to_string(),
                    ),
                    Err(SubscribeError::Broker(e)) => {
                        tracing::warn!(error = %e, "subscribe failed");
                        let message = match e {
                            BrokerError::TooManyTopics(_) => e.to_string(),
                            BrokerError::Unavailable(_) => {
                                "the broker is unavailable; retry".to_owned()
                            }
                        };
                        error(ctx, Some(id), ErrorCode::Unavailable, message)
                    }
                }
            }
            ClientMessage::Unsubscribe { id, topic } => {
                if ctx.unsubscribe(&topic).await {
                    reply(ctx, &ServerMessage::Unsubscribed { id, topic });
                } else {
                    error(
                        ctx,
                        Some(id),
                        ErrorCode::NotSubscribed,
                        "not subscribed to this topic",
                    );
                }
            }
            ClientMessage::Publish { id, topic, payload } => {
                if let Err(e) = validate_topic(&topic) {
                    error(ctx, Some(id), ErrorCode::InvalidTopic, e.to_string());
                    return Flow::Continue;
                }
                let payload = match may_publish(&topic, payload, self.user.as_ref()) {
                    Ok(payload) => payload,
                    Err(refusal) => {
                        refuse(ctx, id, refusal);
                        return Flow::Continue;
                    }
                };
                match ctx.publish(&topic, payload).await {
                    Ok(event) => reply(
                        ctx,
                        &ServerMessage::Published {
                            id,
                            topic,
                            offset: event.offset,
                        },
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "publish failed");
                        error(
                            ctx,
                            Some(id),
                            ErrorCode::Unavailable,
                            "the broker is unavailable; retry",
                        );
                    }
                }
            }
        }
        Flow::Continue
    }

    const WIRE: Wire = Wire::Typed;

    fn render(&self, delivery: &Delivery) -> Option<bytes::Bytes> {
        Some(delivery.typed())
    }

    fn heartbeat(&self) -> Option<Frame> {
        Some(Frame::text(
            ServerMessage::Heartbeat {
                ts: chrono::Utc::now(),
            }
            .to_json(),
        ))
    }

    fn resync(&self, topic: &str, reason: &str) -> Option<Frame> {
        Some(Frame::text(
            ServerMessage::Resync {
                topic: topic.to_owned(),
                reason: reason.to_owned(),
            }
            .to_json(),
        ))
    }

    async fn on_close(&mut self, _ctx: &mut Ctx) {}
}

/// Close code for a broker failure on endpoints that cannot report errors
/// in-band.
pub const INTERNAL: CloseCode = CloseCode::Error;

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> AuthUser {
        AuthUser {
            id: 1,
            username: name.into(),
            created_at: chrono::Utc::now(),
            expires_at: chrono::Utc::now(),
            session: crate::auth::jwt::SessionRef {
                id: "s".into(),
                started_at: 0,
            },
        }
    }

    #[test]
    fn reading_rules() {
        let ann = user("ann");
        assert!(may_read("tasks", None).is_ok());
        assert!(may_read("room", None).is_ok());
        assert_eq!(
            may_read("user:ann", None).unwrap_err().0,
            ErrorCode::Unauthorized
        );
        assert!(may_read("user:ann", Some(&ann)).is_ok());
        assert_eq!(
            may_read("user:bob", Some(&ann)).unwrap_err().0,
            ErrorCode::Forbidden
        );
        assert_eq!(
            may_read("user:ann2", Some(&ann)).unwrap_err().0,
            ErrorCode::Forbidden
        );
        assert_eq!(
            may_read("secure:ops", None).unwrap_err().0,
            ErrorCode::Unauthorized
        );
        assert!(may_read("secure:ops", Some(&ann)).is_ok());
    }

    #[test]
    fn publishing_rules() {
        let ann = user("ann");
        let chat = || Payload::Chat {
            from: "mallory".into(),
            text: "b".into(),
        };
        assert_eq!(
            may_publish("room", chat(), None).unwrap_err().0,
            ErrorCode::Unauthorized
        );
        assert_eq!(
            may_publish("room", chat(), Some(&ann)).unwrap(),
            Payload::Chat {
                from: "ann".into(),
                text: "b".into()
            },
            "the sender is the connection's user, not what the client claims"
        );
        assert!(may_publish("secure:ops", chat(), Some(&ann)).is_ok());
        for topic in ["tasks", "chat", "user:ann", "user:bob"] {
            assert_eq!(
                may_publish(topic, chat(), Some(&ann)).unwrap_err().0,
                ErrorCode::PublishForbidden,
                "{topic}"
            );
        }
        let deleted = Payload::TaskDeleted { id: 1, version: 1 };
        assert_eq!(
            may_publish("room", deleted, Some(&ann)).unwrap_err().0,
            ErrorCode::PublishForbidden
        );
    }

    #[test]
    fn channels_carry_plain_messages_only() {
        let ann = user("ann");
        let message = || Payload::Message { text: "hi".into() };
        assert_eq!(
            may_publish("channel:news", message(), Some(&ann)).unwrap(),
            message()
        );
        assert_eq!(
            may_publish("channel:news", message(), None).unwrap_err().0,
            ErrorCode::Unauthorized
        );
        let chat = Payload::Chat {
            from: "ann".into(),
            text: "hi".into(),
        };
        assert_eq!(
            may_publish("channel:news", chat, Some(&ann)).unwrap_err().0,
            ErrorCode::PublishForbidden,
            "a channel's seed subscribers would never see a chat message"
        );
        assert_eq!(
            may_publish("room", message(), Some(&ann)).unwrap_err().0,
            ErrorCode::PublishForbidden
        );
        assert!(may_read("channel:news", None).is_ok());
    }
}
