//! `/ws`: the seed article's echo endpoint.
//!
//! Every text message is answered with `Message received: <text>`. It runs
//! as a session like every other endpoint, so it has the same safeguards:
//! heartbeats, the inbound rate limit, the connection limits, 1003 for
//! binary messages, 1001 on shutdown.

use bytes::Bytes;
use yawc::frame::Frame;

use super::session::{Ctx, Flow, Handler};
use crate::hub::{Delivery, Wire};

pub struct Echo;

impl Handler for Echo {
    async fn on_open(&mut self, _ctx: &mut Ctx) -> Flow {
        Flow::Continue
    }

    async fn on_text(&mut self, ctx: &mut Ctx, text: &str) -> Flow {
        ctx.send(Frame::text(format!("Message received: {text}")));
        Flow::Continue
    }

    /// Echo subscribes to nothing, so it never renders an event.
    const WIRE: Wire = Wire::Notification;

    fn render(&self, _delivery: &Delivery) -> Option<Bytes> {
        None
    }

    async fn on_close(&mut self, _ctx: &mut Ctx) {}
}
