//! `/ws/redis/{channel}`: the seed article's Redis channel subscription.
//! Each message published to the channel (`POST /publish/{channel}`, or
//! `publish` on `/ws/v1` to `channel:{channel}`) arrives as one text frame,
//! exactly as it was published. Text the client sends is ignored, as in
//! the seed.

use bytes::Bytes;

use app::protocol::close as codes;
use app::protocol::Payload;

use super::session::{Ctx, Flow, Handler};
use crate::hub::{Delivery, Wire};

pub struct Channel {
    /// The hub topic: `channel:` and the path's channel.
    pub topic: String,
}

impl Handler for Channel {
    async fn on_open(&mut self, ctx: &mut Ctx) -> Flow {
        let topic = self.topic.clone();
        match ctx.subscribe(&topic, None).await {
            Ok(_) => Flow::Continue,
            Err(e) => Flow::Close(
                super::code(codes::INTERNAL),
                format!("cannot subscribe: {e}"),
            ),
        }
    }

    async fn on_text(&mut self, _ctx: &mut Ctx, _text: &str) -> Flow {
        Flow::Continue
    }

    const WIRE: Wire = Wire::Message;

    fn render(&self, delivery: &Delivery) -> Option<Bytes> {
        delivery.rendered(Self::WIRE, |e| match &e.payload {
            Payload::Message { text } => Some(text.clone()),
            _ => None,
        })
    }

    async fn on_close(&mut self, _ctx: &mut Ctx) {}
}
