//! `/ws/{client_id}`: the seed article's broadcast chat, wire-compatible
//! with its texts. Messages go through the broker like everything else, so
//! chat spans every instance.

use bytes::Bytes;

use app::protocol::close as codes;
use app::protocol::Payload;

use super::session::{Ctx, Flow, Handler};
use crate::hub::{Delivery, Wire};

/// The topic chat messages travel on.
pub const CHAT_TOPIC: &str = "chat";

pub struct Chat {
    pub client_id: String,
}

impl Handler for Chat {
    async fn on_open(&mut self, ctx: &mut Ctx) -> Flow {
        match ctx.subscribe(CHAT_TOPIC, None).await {
            Ok(_) => Flow::Continue,
            Err(e) => Flow::Close(
                super::code(codes::INTERNAL),
                format!("cannot join the chat: {e}"),
            ),
        }
    }

    async fn on_text(&mut self, ctx: &mut Ctx, text: &str) -> Flow {
        let payload = Payload::Chat {
            from: self.client_id.clone(),
            text: text.to_owned(),
        };
        match ctx.publish(CHAT_TOPIC, payload).await {
            Ok(_) => Flow::Continue,
            Err(e) => Flow::Close(
                super::code(codes::INTERNAL),
                format!("message not delivered: {e}"),
            ),
        }
    }

    const WIRE: Wire = Wire::Chat;

    fn render(&self, delivery: &Delivery) -> Option<Bytes> {
        delivery.rendered(Self::WIRE, |e| match &e.payload {
            Payload::Chat { from, text } => Some(format!("Client {from}: {text}")),
            Payload::Presence {
                user,
                online: false,
            } => Some(format!("Client {user} left the chat")),
            _ => None,
        })
    }

    async fn on_close(&mut self, ctx: &mut Ctx) {
        let left = Payload::Presence {
            user: self.client_id.clone(),
            online: false,
        };
        if let Err(e) = ctx.publish(CHAT_TOPIC, left).await {
            tracing::warn!(error = %e, "could not announce a chat departure");
        }
    }
}
