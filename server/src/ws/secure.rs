//! `/ws/secure/{topic}`: the seed article's JWT-secured topic.
//!
//! The token is checked before the upgrade (401 with a JSON body if it is
//! missing, invalid or expired). Every text message from the signed-in user
//! reaches the topic's subscribers, on every instance, as
//! `{username}: {text}`. The topic lives on the hub as `secure:{topic}`, so
//! signed-in clients of `/ws/v1` can follow it too. When the token expires
//! the connection is closed with 4001 (4003 when the account is deleted): this endpoint has no in-band refresh,
//! so clients reconnect with a fresh token.

use bytes::Bytes;

use app::protocol::close as codes;
use app::protocol::Payload;

use super::session::{Ctx, Flow, Handler};
use crate::auth::AuthUser;
use crate::hub::{Delivery, Wire};

pub struct Secure {
    pub user: AuthUser,
    /// The hub topic: `secure:` and the path's topic.
    pub topic: String,
    /// The account's connection slot, held for the session's life.
    pub seat: super::UserPermit,
    /// The watch on the token's session, once open.
    pub watch: Option<super::live_sessions::SessionWatch>,
    pub store: crate::store::TaskStore,
}

impl Handler for Secure {
    async fn on_open(&mut self, ctx: &mut Ctx) -> Flow {
        ctx.set_deadline(Some(self.user.remaining()));
        let watch = self.seat.watch_session(&self.user.session.id);
        ctx.watch_session(self.seat.ended.clone(), watch.ended.clone());
        self.watch = Some(watch);
        if let Some((code, reason)) = super::recheck_session(&self.store, &self.user).await {
            return Flow::Close(code, reason);
        }
        ctx.sign_in(&self.user.username);
        let topic = self.topic.clone();
        match ctx.subscribe(&topic, None).await {
            Ok(_) => Flow::Continue,
            Err(e) => Flow::Close(
                super::code(codes::INTERNAL),
                format!("cannot subscribe: {e}"),
            ),
        }
    }

    async fn on_text(&mut self, ctx: &mut Ctx, text: &str) -> Flow {
        // This endpoint has no way to answer "not now" in-band: over the
        // account's publishing rate, the connection is closed instead.
        if let Err(e) = ctx.rt.publishing(Some(&self.user), None) {
            return Flow::Close(super::code(codes::POLICY), e.to_string());
        }
        let payload = Payload::Chat {
            from: self.user.username.clone(),
            text: text.to_owned(),
        };
        match ctx.publish(&self.topic, payload).await {
            Ok(_) => Flow::Continue,
            Err(e) => Flow::Close(
                super::code(codes::INTERNAL),
                format!("message not delivered: {e}"),
            ),
        }
    }

    const WIRE: Wire = Wire::Secure;

    fn render(&self, delivery: &Delivery) -> Option<Bytes> {
        delivery.rendered(Self::WIRE, |e| match &e.payload {
            Payload::Chat { from, text } => Some(format!("{from}: {text}")),
            _ => None,
        })
    }

    async fn on_close(&mut self, _ctx: &mut Ctx) {}
}
