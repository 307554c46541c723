//! Ending a connection's reading of a board when its access ends while
//! it is subscribed: removed from a private board, a public board made
//! private while it reads as a non-member, or the board deleted.
//!
//! Access is checked at subscribe ([`crate::boards::may_subscribe`]), but a
//! subscription outlives that check. The events that can end access travel
//! on the board's own topic, so every subscriber on every instance sees
//! them in order with the board's other events, with no lookup of its own:
//! the ending event is still sent (it tells the client why), and nothing
//! on that topic after it. A client that still may read subscribes again,
//! which checks afresh. Connections that read no board pay one relaxed
//! atomic load per event.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use app::protocol::{topic_board, Event, Payload, Visibility};

/// Every `/ws/v1` connection holds one for as long as it is open, and most
/// never read a board: the sets are allocated on the first board
/// subscription, so the others pay two words and a flag.
#[derive(Debug, Default)]
pub struct BoardAccess {
    /// Set once the connection subscribes to any board's topic.
    watching: AtomicBool,
    topics: Mutex<Option<Box<Topics>>>,
}

#[derive(Debug, Default)]
struct Topics {
    /// Board topics read without a membership (public boards).
    visiting: HashSet<String>,
    /// Board topics whose access ended: their events are not sent.
    ended: HashSet<String>,
}

impl BoardAccess {
    fn topics(&self) -> std::sync::MutexGuard<'_, Option<Box<Topics>>> {
        self.topics.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A board topic was subscribed to, as a member or not.
    pub fn subscribed(&self, topic: &str, as_member: bool) {
        self.watching.store(true, Ordering::Relaxed);
        let mut guard = self.topics();
        let t = guard.get_or_insert_with(Box::default);
        t.ended.remove(topic);
        if as_member {
            t.visiting.remove(topic);
        } else {
            t.visiting.insert(topic.to_owned());
        }
    }

    /// The client left a topic.
    pub fn unsubscribed(&self, topic: &str) {
        if let Some(t) = self.topics().as_mut() {
            t.ended.remove(topic);
            t.visiting.remove(topic);
        }
    }

    /// Whether `event` is still to be sent to this connection (`user` is
    /// who it acts for). The event that ends access is sent; the ones
    /// after it on that topic are not.
    pub fn admit(&self, user: Option<&str>, event: &Event) -> bool {
        if !self.watching.load(Ordering::Relaxed) || topic_board(&event.topic).is_none() {
            return true;
        }
        let mut guard = self.topics();
        let Some(t) = guard.as_mut() else {
            return true;
        };
        if t.ended.contains(&event.topic) {
            return false;
        }
        let ends = match &event.payload {
            Payload::BoardDeleted { .. } => true,
            Payload::BoardUpdated { board } => {
                board.visibility == Visibility::Private && t.visiting.contains(&event.topic)
            }
            Payload::MemberRemoved {
                username,
                visibility,
            } => user == Some(username.as_str()) && *visibility == Visibility::Private,
            _ => false,
        };
        if ends {
            t.visiting.remove(&event.topic);
            t.ended.insert(event.topic.clone());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::protocol::Board;

    fn event(topic: &str, payload: Payload) -> Event {
        Event {
            topic: topic.into(),
            offset: 1,
            epoch: "e".into(),
            ts: chrono::Utc::now(),
            payload,
        }
    }

    fn message() -> Payload {
        Payload::Message { text: "x".into() }
    }

    fn updated(visibility: Visibility) -> Payload {
        Payload::BoardUpdated {
            board: Board {
                id: 2,
                name: "b".into(),
                owner: Some("ann".into()),
                visibility,
                created_at: chrono::Utc::now(),
                version: 2,
            },
        }
    }

    fn removed(who: &str, visibility: Visibility) -> Payload {
        Payload::MemberRemoved {
            username: who.into(),
            visibility,
        }
    }

    #[test]
    fn a_removed_member_gets_the_removal_and_nothing_after() {
        let access = BoardAccess::default();
        access.subscribed("board:2", true);
        assert!(access.admit(Some("bob"), &event("board:2", message())));
        assert!(access.admit(
            Some("bob"),
            &event("board:2", removed("cy", Visibility::Private))
        ));
        assert!(
            access.admit(Some("bob"), &event("board:2", message())),
            "someone else left"
        );
        assert!(access.admit(
            Some("bob"),
            &event("board:2", removed("bob", Visibility::Private))
        ));
        assert!(!access.admit(Some("bob"), &event("board:2", message())));
        assert!(
            access.admit(Some("bob"), &event("tasks", message())),
            "other topics flow"
        );
        access.unsubscribed("board:2");
        access.subscribed("board:2", true);
        assert!(
            access.admit(Some("bob"), &event("board:2", message())),
            "re-checked and back"
        );
    }

    #[test]
    fn a_public_board_keeps_its_readers_until_it_goes_private() {
        let access = BoardAccess::default();
        access.subscribed("board:2", false);
        assert!(access.admit(
            Some("bob"),
            &event("board:2", removed("bob", Visibility::Public))
        ));
        assert!(
            access.admit(Some("bob"), &event("board:2", message())),
            "still public"
        );
        assert!(access.admit(None, &event("board:2", updated(Visibility::Public))));
        assert!(access.admit(None, &event("board:2", updated(Visibility::Private))));
        assert!(!access.admit(None, &event("board:2", message())));

        let member = BoardAccess::default();
        member.subscribed("board:2", true);
        assert!(member.admit(Some("ann"), &event("board:2", updated(Visibility::Private))));
        assert!(
            member.admit(Some("ann"), &event("board:2", message())),
            "members stay"
        );
        assert!(member.admit(
            Some("ann"),
            &event("board:2", Payload::BoardDeleted { id: 2 })
        ));
        assert!(!member.admit(Some("ann"), &event("board:2", message())));
    }

    #[test]
    fn connections_without_boards_are_not_looked_at() {
        let access = BoardAccess::default();
        assert!(access.admit(None, &event("board:2", Payload::BoardDeleted { id: 2 })));
        assert!(!access.watching.load(Ordering::Relaxed));
    }
}
