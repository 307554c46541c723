//! `/ws/v1`: the typed, multiplexed endpoint the UI uses.
//!
//! One connection carries any number of topic subscriptions. Commands and
//! replies are [`ClientMessage`] and [`ServerMessage`] from the shared
//! protocol; a frame that does not decode gets an `error` reply and the
//! connection stays open (the rate limit bounds how many it can send).
//!
//! Who may read and publish what is decided in [`crate::topics`], which
//! REST asks too.
//!
//! A connection signs in with a token on the upgrade request or with an
//! `auth` command, and stays signed in until the token expires: then it is
//! closed with 4001 unless an `auth` with a fresh token of the same user
//! came first, and with 4003 if its account is deleted. A refused command gets an `error` reply with a stable code
//! (`unauthorized`, `forbidden`, …) and the connection stays usable.

use yawc::frame::Frame;

use app::protocol::close as codes;
use app::protocol::{validate_topic, ClientMessage, ErrorCode, ServerMessage, PROTOCOL_VERSION};

use super::session::{Ctx, Flow, Handler, SubscribeError};
use std::sync::Arc;

use crate::auth::{authenticate, Auth, AuthError, AuthUser};
use crate::broker::BrokerError;
use crate::hub::{Delivery, Wire};
use crate::store::TaskStore;

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
    /// Ends the reading of a board whose access ends mid-subscription.
    pub boards: super::board_access::BoardAccess,
}

use crate::boards::{may_subscribe, Subscriber};
use crate::topics::{may_publish, may_read, Refusal};

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
                None => {
                    return Flow::Close(super::code(codes::POLICY), super::USER_LIMIT_REASON.into())
                }
            },
        };
        // A fresh token may belong to another session of the same account
        // (signed in again elsewhere): the connection follows the newest.
        let watch = seat.watch_session(&user.session.id);
        ctx.watch_session(seat.ended.clone(), watch.ended.clone());
        self.watch = Some(watch);
        self.seat = Some(seat);
        if let Some((code, reason)) = super::recheck_session(&self.store, &user).await {
            return Flow::Close(code, reason);
        }
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
            if let Some((code, reason)) = super::recheck_session(&self.store, user).await {
                return Flow::Close(code, reason);
            }
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
                let user = self.user.as_ref();
                let board = match may_subscribe(&self.store, &topic, Subscriber::from(user)).await {
                    Ok(board) => board,
                    Err(refusal) => {
                        refuse(ctx, id, refusal);
                        return Flow::Continue;
                    }
                };
                match ctx.subscribe(&topic, since.as_ref()).await {
                    Ok(sub) => {
                        if let Some(as_member) = board {
                            self.boards.subscribed(&topic, as_member);
                        }
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
                    self.boards.unsubscribed(&topic);
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
                if let Err(e) = ctx.rt.publishing(self.user.as_ref(), None) {
                    error(ctx, Some(id), ErrorCode::RateLimited, e.to_string());
                    return Flow::Continue;
                }
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
        let user = self.user.as_ref().map(|u| u.username.as_str());
        if !self.boards.admit(user, &delivery.event) {
            return None;
        }
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
