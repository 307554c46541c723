//! Topic access: who may subscribe to a topic and who may publish what on
//! it. The typed endpoint, the seed's endpoints and REST publishing all ask
//! here, so a rule changes in one place.
//!
//! | topic | read | publish |
//! |---|---|---|
//! | `tasks`, `chat` | anyone | the server only |
//! | `user:<name>` | only `<name>` | the server only |
//! | `secure:<x>` | any signed-in user | any signed-in user |
//! | `board:<id>` | the board's readers ([`crate::boards::may_subscribe`]) | the server only |
//! | anything else | anyone | any signed-in user |
//!
//! Names themselves are checked by [`app::protocol::validate_topic`], the
//! shared protocol's rule, so the browser refuses what the server would.

use app::protocol::{user_topic, ErrorCode, Payload};

use crate::auth::AuthUser;

/// Topics only the server publishes to, and prefixes reserved for private
/// topics.
pub(crate) const RESERVED_TOPICS: [&str; 2] =
    [crate::pubsub::TASKS_TOPIC, crate::ws::chat::CHAT_TOPIC];
pub(crate) const USER_PREFIX: &str = "user:";
pub(crate) const SECURE_PREFIX: &str = "secure:";

/// A refusal: the error code and the sentence for the client.
pub type Refusal = (ErrorCode, &'static str);

/// Whether `user` may subscribe to `topic`. Anonymous endpoints ask with
/// `None`.
pub fn may_read(topic: &str, user: Option<&AuthUser>) -> Result<(), Refusal> {
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
pub fn may_publish(
    topic: &str,
    payload: Payload,
    user: Option<&AuthUser>,
) -> Result<Payload, Refusal> {
    let Some(user) = user else {
        return Err((ErrorCode::Unauthorized, "publishing needs a token"));
    };
    if RESERVED_TOPICS.contains(&topic)
        || topic.starts_with(USER_PREFIX)
        || topic.starts_with(app::protocol::BOARD_TOPIC_PREFIX)
    {
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
        Payload::TaskCreated { .. }
        | Payload::TaskUpdated { .. }
        | Payload::TaskDeleted { .. }
        | Payload::BoardUpdated { .. }
        | Payload::BoardDeleted { .. }
        | Payload::MemberRemoved { .. }
        | Payload::MemberSet { .. }
        | Payload::LabelSet { .. }
        | Payload::LabelRemoved { .. } => Err((
            ErrorCode::PublishForbidden,
            "task and board events come from the API, not from clients",
        )),
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
        for topic in ["tasks", "chat", "user:ann", "user:bob", "board:2"] {
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
