//! The wire protocol shared by the server and the WASM client.
//!
//! Everything that crosses the network as JSON is defined here once, so the
//! two ends cannot drift apart: the REST bodies (tasks, errors) and the typed
//! WebSocket messages of `/ws/v1`. Nothing in this module is gated on `ssr`
//! or `hydrate`.
//!
//! WebSocket messages are internally tagged with `"type"`. Following
//! Centrifugo, a server message is either a *reply* (it answers a client
//! command and carries that command's `id`) or a *push* (an event nobody
//! asked for at that moment). Decoding happens once, at the socket boundary;
//! everything past it matches on these types.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

mod boards;
mod labels;
pub use boards::*;
pub use labels::*;

/// Version of the typed WebSocket protocol, announced in [`ServerMessage::Hello`].
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest accepted task title, in characters, after trimming.
pub const TITLE_MAX_CHARS: usize = 200;
/// Longest accepted task description, in characters.
pub const DESCRIPTION_MAX_CHARS: usize = 10_000;
/// Longest accepted topic name, in bytes (topics are ASCII).
pub const TOPIC_MAX_LEN: usize = 128;

/// Where a task stands on the board.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Todo,
    Doing,
    Done,
}

impl TaskStatus {
    /// Every status, in board order.
    pub const ALL: [TaskStatus; 3] = [TaskStatus::Todo, TaskStatus::Doing, TaskStatus::Done];

    /// The name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Todo => "todo",
            TaskStatus::Doing => "doing",
            TaskStatus::Done => "done",
        }
    }

    /// The heading of this status's column.
    pub fn label(self) -> &'static str {
        match self {
            TaskStatus::Todo => "To do",
            TaskStatus::Doing => "Doing",
            TaskStatus::Done => "Done",
        }
    }

    /// Parses the wire name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "todo" => Some(TaskStatus::Todo),
            "doing" => Some(TaskStatus::Doing),
            "done" => Some(TaskStatus::Done),
            _ => None,
        }
    }
}

/// A task as stored and as served.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub status: TaskStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Starts at 1 and grows by one with every change; served as the `ETag`.
    pub version: i64,
    /// Username of whoever created the task; `None` for tasks created
    /// anonymously (open-writes mode, or before accounts existed).
    #[serde(default)]
    pub created_by: Option<String>,
    /// Username the task is assigned to. They get a personal notification
    /// on `user:<name>` whenever it changes.
    #[serde(default)]
    pub assignee: Option<String>,
    /// The board the task is on ([`DEFAULT_BOARD`] for tasks made through
    /// `/tasks`, and for clients that predate boards).
    #[serde(default = "default_board")]
    pub board_id: i64,
    /// Where the task stands in its column: columns list their tasks by
    /// `position`, then by id. Set by the server when a task is created
    /// (at the end of its column) or placed (`TaskPatch::after`); only
    /// the order matters, the numbers have gaps and may be renumbered.
    #[serde(default)]
    pub position: i64,
    /// The day the task is due, if it has one (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<NaiveDate>,
    /// Ids of the board's labels on this card, in the order they were put.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<i64>,
}

fn default_board() -> i64 {
    DEFAULT_BOARD
}

/// Body of `POST /tasks`.
///
/// `id` and `created_at` are accepted (clients written for the seed article
/// send them) and ignored: the server assigns both.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NewTask {
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub status: Option<TaskStatus>,
    /// Username to assign the task to; must be a registered user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// The day the task is due (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<NaiveDate>,
    /// Ids of labels of the task's board.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<i64>,
    #[serde(default, skip_serializing)]
    pub id: Option<serde_json::Value>,
    #[serde(default, skip_serializing)]
    pub created_at: Option<serde_json::Value>,
}

/// Body of `PATCH /tasks/{id}`: every field optional, absent means unchanged.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TaskStatus>,
    /// Absent: unchanged; `null`: unassign; a username: assign.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub assignee: Option<Option<String>>,
    /// Absent: unchanged; `null`: no due date; a day (`YYYY-MM-DD`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub due: Option<Option<NaiveDate>>,
    /// Places the task in its column (the one `status` names, if given):
    /// directly after the task with this id, or first when `null`. Absent:
    /// a task that changes column goes to the end of the new one, and one
    /// that stays keeps its place.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub after: Option<Option<i64>>,
    /// Replaces the card's labels (ids of labels of its board; `[]`
    /// takes them all off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<i64>>,
}

/// Deserialises a field that is present (possibly `null`) as `Some`, so an
/// absent field (`None` through `default`) differs from an explicit `null`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A validation failure of a task field, with the field named.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TaskFieldError {
    #[error("title must not be empty")]
    TitleEmpty,
    #[error("title must be at most {TITLE_MAX_CHARS} characters")]
    TitleTooLong,
    #[error("description must be at most {DESCRIPTION_MAX_CHARS} characters")]
    DescriptionTooLong,
    #[error("due date must be a day between {DUE_YEARS_MIN} and {DUE_YEARS_MAX}")]
    DueOutOfRange,
}

/// The years a due date may fall in: anything else is a typing mistake.
pub const DUE_YEARS_MIN: i32 = 1970;
pub const DUE_YEARS_MAX: i32 = 9999;

/// Checks a due date's year.
pub fn validate_due(due: NaiveDate) -> Result<NaiveDate, TaskFieldError> {
    if (DUE_YEARS_MIN..=DUE_YEARS_MAX).contains(&due.year()) {
        Ok(due)
    } else {
        Err(TaskFieldError::DueOutOfRange)
    }
}

/// Trims and checks a title; returns the text to store.
pub fn validate_title(title: &str) -> Result<String, TaskFieldError> {
    let trimmed = title.trim();
    match trimmed.chars().count() {
        0 => Err(TaskFieldError::TitleEmpty),
        n if n > TITLE_MAX_CHARS => Err(TaskFieldError::TitleTooLong),
        _ => Ok(trimmed.to_owned()),
    }
}

/// Checks a description's length; it is stored as given.
pub fn validate_description(description: &str) -> Result<(), TaskFieldError> {
    if description.chars().count() > DESCRIPTION_MAX_CHARS {
        Err(TaskFieldError::DescriptionTooLong)
    } else {
        Ok(())
    }
}

/// The JSON body of every REST error: a stable machine code and a sentence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

/// Shortest and longest accepted username, in characters.
pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 32;
/// Shortest accepted password, in characters. The longest is bounded too,
/// so a megabyte password cannot make the server hash a megabyte.
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 128;

/// Every close code the server sends, by name (the README's table says
/// when each is sent). The 1xxx codes are RFC 6455's; the 4xxx ones are
/// ours, for the reasons a client must act on (sign in again).
pub mod close {
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// Bad framing (reserved opcodes, oversized control frames).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A binary message on a text endpoint.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A text message that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// A limit or rule: rate, heartbeat, idle, connection limits.
    pub const POLICY: u16 = 1008;
    /// A message over the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// The broker failed.
    pub const INTERNAL: u16 = 1011;
    /// A slow consumer: its queue overflowed; reconnect and resume.
    pub const TRY_AGAIN: u16 = 1013;
    /// The token expired and no fresh one was sent (`auth` on `/ws/v1`).
    pub const TOKEN_EXPIRED: u16 = 4001;
    /// The account was deleted.
    pub const ACCOUNT_DELETED: u16 = 4003;
    /// The session ended: signed out, or the password was changed.
    pub const SESSION_ENDED: u16 = 4004;
}

/// Close code of a live connection whose token expired (see [`close`]).
pub const CLOSE_TOKEN_EXPIRED: u16 = close::TOKEN_EXPIRED;
/// Close code of a live connection whose account was deleted.
pub const CLOSE_ACCOUNT_DELETED: u16 = close::ACCOUNT_DELETED;
/// Close code of a live connection whose session ended.
pub const CLOSE_SESSION_ENDED: u16 = close::SESSION_ENDED;

/// Most tasks one `GET /tasks` answers (`limit`'s maximum and default).
pub const TASKS_PAGE_MAX: usize = 1000;
/// Tasks the board page starts with (the newest), and loads per "show
/// older tasks": a board of any size renders in bounded time.
pub const BOARD_PAGE: usize = 500;

/// Body of `POST /auth/register`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// Body of `POST /auth/password`: the current password proves it is the
/// account's owner, not only someone holding a token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// Body of `DELETE /users/me`: the password again, for a step that cannot
/// be undone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reauthentication {
    pub password: String,
}

/// Answer of `POST /token`, in the OAuth2 password-grant shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `"bearer"`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

/// A user as `GET /users/me` and `POST /auth/register` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub username: String,
    pub created_at: DateTime<Utc>,
}

/// Why a username or password was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("username must be {USERNAME_MIN} to {USERNAME_MAX} characters")]
    UsernameLength,
    #[error("username may contain only lowercase letters, digits, '.', '_' and '-', and must start with a letter")]
    UsernameCharacters,
    #[error("password must be at least {PASSWORD_MIN} characters")]
    PasswordTooShort,
    #[error("password must be at most {PASSWORD_MAX} characters")]
    PasswordTooLong,
}

/// Checks a username. Usernames name personal topics (`user:<name>`), so
/// they use a subset of the topic alphabet; they are case-sensitive and
/// lowercase only, so `Ann` and `ann` can never be two people.
pub fn validate_username(name: &str) -> Result<(), CredentialError> {
    let n = name.chars().count();
    if !(USERNAME_MIN..=USERNAME_MAX).contains(&n) {
        return Err(CredentialError::UsernameLength);
    }
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
    let rest_ok = bytes
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(CredentialError::UsernameCharacters)
    }
}

/// Checks a new password's length (in characters, not bytes).
pub fn validate_password(password: &str) -> Result<(), CredentialError> {
    match password.chars().count() {
        n if n < PASSWORD_MIN => Err(CredentialError::PasswordTooShort),
        n if n > PASSWORD_MAX => Err(CredentialError::PasswordTooLong),
        _ => Ok(()),
    }
}

/// The personal topic of a user: only they may subscribe, only the server
/// publishes.
pub fn user_topic(username: &str) -> String {
    format!("user:{username}")
}

/// Why a topic name was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic must not be empty")]
    Empty,
    #[error("topic must be at most {TOPIC_MAX_LEN} bytes")]
    TooLong,
    #[error("topic may contain only ASCII letters, digits and - _ . : @")]
    BadCharacter,
}

/// Checks a topic name.
///
/// Topics are deliberately a small alphabet: no glob characters (`* ? [ ]`,
/// which Redis `PSUBSCRIBE` would interpret), no whitespace or control
/// characters, no path separators.
pub fn validate_topic(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > TOPIC_MAX_LEN {
        return Err(TopicError::TooLong);
    }
    let ok = topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(TopicError::BadCharacter)
    }
}

/// Severity of a notification, which the UI shows as the toast's colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Success,
    Warning,
    Error,
}

/// What happened: the typed payload of an [`Event`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    TaskCreated {
        task: Task,
    },
    TaskUpdated {
        task: Task,
    },
    /// `version` is the version the task had when it was deleted.
    TaskDeleted {
        id: i64,
        version: i64,
    },
    Notification {
        title: String,
        body: String,
        level: Level,
    },
    Chat {
        from: String,
        text: String,
    },
    Presence {
        user: String,
        online: bool,
    },
    /// A plain text message on a channel (`POST /publish/{channel}`,
    /// `/ws/redis/{channel}`), delivered to the seed's clients exactly as
    /// it was published.
    Message {
        text: String,
    },
    /// A board was renamed or its visibility changed (on its own topic).
    BoardUpdated {
        board: Board,
    },
    /// A board was deleted with its tasks (the last event on its topic).
    BoardDeleted {
        id: i64,
    },
    /// A member was invited or their role changed.
    MemberSet {
        member: Member,
    },
    /// A member was removed or left. With a private board that ends their
    /// subscription to its topic: this is the last event they get on it.
    MemberRemoved {
        username: String,
        /// The board's visibility: a public board they still read.
        visibility: Visibility,
    },
    /// A label of the board was made or changed.
    LabelSet {
        label: Label,
    },
    /// A label of the board was deleted, and taken off its cards.
    LabelRemoved {
        id: i64,
    },
}

/// A position in a topic's stream. Offsets grow by one per event; the epoch
/// changes when the stream's history is lost (a broker restart), so an offset
/// from an old epoch is never mistaken for one of the new.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPosition {
    pub offset: u64,
    pub epoch: String,
}

/// One event on a topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub topic: String,
    pub offset: u64,
    pub epoch: String,
    pub ts: DateTime<Utc>,
    pub payload: Payload,
}

/// A command from a client of `/ws/v1`. Every command carries an `id` that
/// the reply echoes, so clients may pipeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Start receiving a topic's events. With `since`, first receive every
    /// event after that position that is still in the history.
    Subscribe {
        id: u64,
        topic: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<StreamPosition>,
    },
    Unsubscribe {
        id: u64,
        topic: String,
    },
    Publish {
        id: u64,
        topic: String,
        payload: Payload,
    },
    Ping {
        id: u64,
    },
    /// Authenticate the connection, or extend it with a fresh token of the
    /// same user before the current one expires.
    Auth {
        id: u64,
        token: String,
    },
}

/// Stable error codes of the typed endpoint; the README lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was not valid JSON or not a known message.
    BadRequest,
    /// The topic name is not acceptable.
    InvalidTopic,
    /// Already subscribed to that topic on this connection.
    AlreadySubscribed,
    /// Not subscribed to that topic on this connection.
    NotSubscribed,
    /// The connection holds the maximum number of subscriptions.
    TooManySubscriptions,
    /// This client may not publish that payload on that topic.
    PublishForbidden,
    /// The broker could not complete the command; retrying may help.
    Unavailable,
    /// The command needs an authenticated connection, or the token given
    /// is missing, invalid or expired.
    Unauthorized,
    /// The connection's user may not do this (another user's topic, or a
    /// token of a different user on an authenticated connection).
    Forbidden,
    /// The account is publishing faster than it may; the message says
    /// when to retry.
    RateLimited,
}

/// A message from the server on `/ws/v1`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Push, first on every connection. `user` names the authenticated
    /// user when a token came with the upgrade request.
    Hello {
        version: u32,
        heartbeat_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<DateTime<Utc>>,
    },
    /// Reply to `auth`: the connection now acts as `user` until `expires_at`.
    Authed {
        id: u64,
        user: String,
        expires_at: DateTime<Utc>,
    },
    /// Reply to `subscribe`. `position` is the topic's current position;
    /// `recovered` is false when `since` was given but the missed events are
    /// no longer all in the history (reload state, then carry on).
    Subscribed {
        id: u64,
        topic: String,
        position: StreamPosition,
        recovered: bool,
    },
    /// Reply to `unsubscribe`.
    Unsubscribed { id: u64, topic: String },
    /// Reply to `publish`, with the offset the event got.
    Published { id: u64, topic: String, offset: u64 },
    /// Reply to `ping`.
    Pong { id: u64 },
    /// Reply to a command that failed; `id` is absent when the frame could
    /// not be decoded far enough to find it.
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        code: ErrorCode,
        message: String,
    },
    /// Push: an event on a subscribed topic.
    Event(Event),
    /// Push: events of `topic` were lost before they reached this
    /// connection and history no longer holds them (or the stream restarted
    /// in a new epoch). The subscription carries on with the next event;
    /// reload the topic's state (e.g. `GET /tasks`).
    Resync { topic: String, reason: String },
    /// Push: application-level heartbeat (browsers cannot see pings).
    Heartbeat { ts: DateTime<Utc> },
}

impl ServerMessage {
    /// Serialises to the JSON text sent on the socket.
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: no maps with non-string keys,
        // no custom serialisers that error.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Task {
        let ts = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678Z")
            .unwrap()
            .with_timezone(&Utc);
        Task {
            id: 7,
            title: "Write tests".into(),
            description: "all of them".into(),
            status: TaskStatus::Doing,
            created_at: ts,
            updated_at: ts,
            version: 3,
            created_by: Some("ann".into()),
            assignee: None,
            board_id: DEFAULT_BOARD,
            position: 3 * 65_536,
            due: chrono::NaiveDate::from_ymd_opt(2026, 2, 28),
            labels: vec![4, 2],
        }
    }

    fn round_trip_server(msg: ServerMessage) {
        let json = msg.to_json();
        let back: ServerMessage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, msg, "{json}");
    }

    fn round_trip_client(msg: ClientMessage) {
        let json = serde_json::to_string(&msg).unwrap();
        let back: ClientMessage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, msg, "{json}");
    }

    #[test]
    fn every_client_message_round_trips() {
        round_trip_client(ClientMessage::Subscribe {
            id: 1,
            topic: "tasks".into(),
            since: None,
        });
        round_trip_client(ClientMessage::Subscribe {
            id: 2,
            topic: "tasks".into(),
            since: Some(StreamPosition {
                offset: 4,
                epoch: "e1".into(),
            }),
        });
        round_trip_client(ClientMessage::Unsubscribe {
            id: 3,
            topic: "tasks".into(),
        });
        round_trip_client(ClientMessage::Publish {
            id: 4,
            topic: "room".into(),
            payload: Payload::Chat {
                from: "ann".into(),
                text: "hi".into(),
            },
        });
        round_trip_client(ClientMessage::Ping { id: 5 });
        round_trip_client(ClientMessage::Auth {
            id: 6,
            token: "a.b.c".into(),
        });
    }

    #[test]
    fn every_server_message_and_payload_round_trips() {
        let payloads = vec![
            Payload::TaskCreated { task: task() },
            Payload::TaskUpdated { task: task() },
            Payload::TaskDeleted { id: 7, version: 3 },
            Payload::Notification {
                title: "t".into(),
                body: "b".into(),
                level: Level::Warning,
            },
            Payload::Chat {
                from: "a".into(),
                text: "b".into(),
            },
            Payload::Presence {
                user: "a".into(),
                online: true,
            },
            Payload::Message {
                text: "plain \u{1} text".into(),
            },
            Payload::BoardUpdated {
                board: Board {
                    id: 2,
                    name: "Launch".into(),
                    owner: Some("ann".into()),
                    visibility: Visibility::Public,
                    created_at: task().created_at,
                    version: 2,
                },
            },
            Payload::BoardDeleted { id: 2 },
            Payload::LabelSet {
                label: Label {
                    id: 4,
                    board_id: 2,
                    name: "bug".into(),
                    color: LabelColor::Red,
                },
            },
            Payload::LabelRemoved { id: 4 },
            Payload::MemberRemoved {
                username: "bob".into(),
                visibility: Visibility::Private,
            },
            Payload::MemberSet {
                member: Member {
                    username: "bob".into(),
                    role: Role::Viewer,
                    added_at: task().created_at,
                },
            },
        ];
        for (i, payload) in payloads.into_iter().enumerate() {
            round_trip_server(ServerMessage::Event(Event {
                topic: "tasks".into(),
                offset: i as u64,
                epoch: "ep".into(),
                ts: task().created_at,
                payload,
            }));
        }
        round_trip_server(ServerMessage::Hello {
            version: PROTOCOL_VERSION,
            heartbeat_ms: 25_000,
            user: None,
            expires_at: None,
        });
        round_trip_server(ServerMessage::Hello {
            version: PROTOCOL_VERSION,
            heartbeat_ms: 0,
            user: Some("ann".into()),
            expires_at: Some(task().created_at),
        });
        round_trip_server(ServerMessage::Authed {
            id: 2,
            user: "ann".into(),
            expires_at: task().created_at,
        });
        round_trip_server(ServerMessage::Subscribed {
            id: 1,
            topic: "tasks".into(),
            position: StreamPosition {
                offset: 9,
                epoch: "ep".into(),
            },
            recovered: true,
        });
        round_trip_server(ServerMessage::Unsubscribed {
            id: 1,
            topic: "tasks".into(),
        });
        round_trip_server(ServerMessage::Published {
            id: 1,
            topic: "tasks".into(),
            offset: 3,
        });
        round_trip_server(ServerMessage::Pong { id: 1 });
        round_trip_server(ServerMessage::Error {
            id: None,
            code: ErrorCode::BadRequest,
            message: "x".into(),
        });
        round_trip_server(ServerMessage::Resync {
            topic: "tasks".into(),
            reason: "lagged".into(),
        });
        round_trip_server(ServerMessage::Heartbeat {
            ts: task().created_at,
        });
    }

    #[test]
    fn wire_shape_is_tagged_and_snake_case() {
        let json = serde_json::to_value(ClientMessage::Ping { id: 9 }).unwrap();
        assert_eq!(json, serde_json::json!({"type": "ping", "id": 9}));
        let ev = ServerMessage::Event(Event {
            topic: "tasks".into(),
            offset: 1,
            epoch: "e".into(),
            ts: task().created_at,
            payload: Payload::TaskDeleted { id: 1, version: 2 },
        });
        let v = serde_json::to_value(ev).unwrap();
        assert_eq!(v["type"], "event");
        assert_eq!(v["payload"]["kind"], "task_deleted");
        assert_eq!(v["offset"], 1);
    }

    #[test]
    fn new_task_accepts_the_seed_body_and_ignores_id_and_created_at() {
        let body = r#"{"id": 0, "title": "Buy milk", "description": "2 l", "created_at": "2024-01-01T00:00:00"}"#;
        let t: NewTask = serde_json::from_str(body).unwrap();
        assert_eq!(t.title, "Buy milk");
        assert_eq!(t.description.as_deref(), Some("2 l"));
        let out = serde_json::to_value(&t).unwrap();
        assert!(out.get("id").is_none() && out.get("created_at").is_none());
    }

    #[test]
    fn unknown_status_and_patch_fields_are_rejected() {
        assert!(serde_json::from_str::<TaskPatch>(r#"{"status":"blocked"}"#).is_err());
        assert!(serde_json::from_str::<TaskPatch>(r#"{"colour":"red"}"#).is_err());
        assert!(serde_json::from_str::<TaskPatch>(r#"{"status":"done"}"#).is_ok());
    }

    #[test]
    fn title_rules() {
        assert_eq!(validate_title("  hi  ").unwrap(), "hi");
        assert_eq!(validate_title("   "), Err(TaskFieldError::TitleEmpty));
        assert!(validate_title(&"é".repeat(200)).is_ok());
        assert_eq!(
            validate_title(&"é".repeat(201)),
            Err(TaskFieldError::TitleTooLong)
        );
        assert!(validate_description(&"x".repeat(10_000)).is_ok());
        assert!(validate_description(&"x".repeat(10_001)).is_err());
    }

    #[test]
    fn topic_rules() {
        for ok in ["tasks", "user:42", "secure:ops", "a.b-c_d", "me@host"] {
            assert_eq!(validate_topic(ok), Ok(()), "{ok}");
        }
        for bad in [
            "*", "a?", "[a-z]", "a b", "a\nb", "a\0b", "tâche", "../x", "a/b",
        ] {
            assert_eq!(
                validate_topic(bad),
                Err(TopicError::BadCharacter),
                "{bad:?}"
            );
        }
        assert_eq!(validate_topic(""), Err(TopicError::Empty));
        assert_eq!(validate_topic(&"a".repeat(129)), Err(TopicError::TooLong));
        assert_eq!(validate_topic(&"a".repeat(128)), Ok(()));
    }

    #[test]
    fn patch_tells_absent_assignee_from_null() {
        let p: TaskPatch = serde_json::from_str(r#"{"title":"x"}"#).unwrap();
        assert_eq!(p.assignee, None);
        let p: TaskPatch = serde_json::from_str(r#"{"assignee":null}"#).unwrap();
        assert_eq!(p.assignee, Some(None));
        let p: TaskPatch = serde_json::from_str(r#"{"assignee":"bob"}"#).unwrap();
        assert_eq!(p.assignee, Some(Some("bob".into())));
    }

    #[test]
    fn credential_rules() {
        for ok in ["ann", "bob.smith", "c_3-po", &"a".repeat(32)] {
            assert_eq!(validate_username(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            validate_username("al"),
            Err(CredentialError::UsernameLength)
        );
        assert_eq!(
            validate_username(&"a".repeat(33)),
            Err(CredentialError::UsernameLength)
        );
        for bad in [
            "Ann", "1ann", "_ann", "an n", "ann*", "ann:x", "anné", "ann\0",
        ] {
            assert_eq!(
                validate_username(bad),
                Err(CredentialError::UsernameCharacters),
                "{bad:?}"
            );
        }
        assert_eq!(
            validate_password("1234567"),
            Err(CredentialError::PasswordTooShort)
        );
        assert_eq!(validate_password("12345678"), Ok(()));
        assert_eq!(validate_password(&"é".repeat(128)), Ok(()));
        assert_eq!(
            validate_password(&"é".repeat(129)),
            Err(CredentialError::PasswordTooLong)
        );
        assert_eq!(user_topic("ann"), "user:ann");
    }

    #[test]
    fn status_names() {
        for s in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(TaskStatus::parse("DONE"), None);
    }
}
