//! `/ws/notifications/{topic}`: the seed article's plain-text
//! notifications. Subscribers of `tasks` get `New task created: {title}`
//! when a task is created through REST; other topics carry their own
//! events only. Text the client sends is ignored.

use bytes::Bytes;

use app::protocol::close as codes;
use app::protocol::Payload;

use super::session::{Ctx, Flow, Handler};
use crate::hub::{Delivery, Wire};

pub struct Notifications {
    topic: String,
    /// A public board's topic stops when the board goes private.
    boards: super::board_access::BoardAccess,
}

impl Notifications {
    /// A subscriber of `topic`, which the caller has checked it may read.
    pub fn new(topic: String) -> Self {
        let boards = super::board_access::BoardAccess::default();
        if app::protocol::topic_board(&topic).is_some() {
            boards.subscribed(&topic, false);
        }
        Notifications { topic, boards }
    }
}

/// The seed's text for each kind of event.
pub fn render_text(payload: &Payload) -> Option<String> {
    match payload {
        Payload::TaskCreated { task } => Some(format!("New task created: {}", task.title)),
        Payload::TaskUpdated { task } => Some(format!("Task updated: {}", task.title)),
        Payload::TaskDeleted { id, .. } => Some(format!("Task deleted: #{id}")),
        Payload::Notification { title, body, .. } => Some(format!("{title}: {body}")),
        Payload::Chat { from, text } => Some(format!("{from}: {text}")),
        Payload::Presence { .. } => None,
        Payload::Message { text } => Some(text.clone()),
        Payload::BoardUpdated { board } => Some(format!("Board updated: {}", board.name)),
        Payload::BoardDeleted { id } => Some(format!("Board deleted: #{id}")),
        Payload::MemberRemoved { username, .. } => Some(format!("Member removed: {username}")),
        Payload::MemberSet { member } => Some(format!(
            "Member {}: {}",
            member.username,
            member.role.as_str()
        )),
        Payload::LabelSet { label } => Some(format!("Label: {}", label.name)),
        Payload::LabelRemoved { id } => Some(format!("Label removed: #{id}")),
    }
}

impl Handler for Notifications {
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

    const WIRE: Wire = Wire::Notification;

    fn render(&self, delivery: &Delivery) -> Option<Bytes> {
        if !self.boards.admit(None, &delivery.event) {
            return None;
        }
        delivery.rendered(Self::WIRE, |e| render_text(&e.payload))
    }

    async fn on_close(&mut self, _ctx: &mut Ctx) {}
}
