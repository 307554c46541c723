//! Boards and their members on the wire: the REST bodies of `/boards`, the
//! roles that decide who may do what, and each board's topic.
//!
//! A board has one owner and any number of members, each a `member`
//! (reads and writes tasks) or a `viewer` (reads). Who else may read it
//! depends on its [`Visibility`]. Board 1 is the shared board every
//! installation starts with: it has no owner, everyone may read it and
//! every signed-in account may write to it, and its tasks are the ones
//! `/tasks` serves and the `tasks` topic carries, so clients written
//! before boards existed keep working unchanged.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The shared board: `/tasks` and the `tasks` topic.
pub const DEFAULT_BOARD: i64 = 1;
/// Longest accepted board name, in characters, after trimming.
pub const BOARD_NAME_MAX_CHARS: usize = 80;
/// Most boards one account may own.
pub const BOARDS_PER_OWNER_MAX: usize = 100;
/// Most members a board may have, its owner included.
pub const MEMBERS_PER_BOARD_MAX: usize = 500;

/// Prefix of the topic of every board but the shared one.
pub const BOARD_TOPIC_PREFIX: &str = "board:";

/// The topic a board's task events are published on: `tasks` for the
/// shared board (as before boards existed), `board:<id>` for the others.
pub fn board_topic(board: i64) -> String {
    if board == DEFAULT_BOARD {
        "tasks".to_owned()
    } else {
        format!("{BOARD_TOPIC_PREFIX}{board}")
    }
}

/// The board a `board:<id>` topic belongs to. `Some(Err(()))` for a topic
/// with the prefix that names no board the server would publish on (not
/// a number, a leading zero or sign, or the shared board's id, whose
/// topic is `tasks`); `None` for other topics.
pub fn topic_board(topic: &str) -> Option<Result<i64, ()>> {
    let digits = topic.strip_prefix(BOARD_TOPIC_PREFIX)?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    Some(match digits.parse::<i64>() {
        Ok(id) if canonical && id != DEFAULT_BOARD => Ok(id),
        _ => Err(()),
    })
}

/// What a member may do on a board.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads the board and its tasks.
    Viewer,
    /// Also creates, edits, moves and deletes tasks.
    Member,
    /// Also renames, shares and deletes the board and manages its members.
    Owner,
}

impl Role {
    /// The name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Role::Viewer),
            "member" => Some(Role::Member),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    /// Whether this role may change tasks.
    pub fn writes(self) -> bool {
        self >= Role::Member
    }
}

/// Who besides the members may read a board.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Members only.
    Private,
    /// Anyone may read; members write.
    Public,
    /// The shared board: anyone reads, every signed-in account writes.
    /// Only board 1 is open; it cannot be set on others.
    Open,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Public => "public",
            Visibility::Open => "open",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "private" => Some(Visibility::Private),
            "public" => Some(Visibility::Public),
            "open" => Some(Visibility::Open),
            _ => None,
        }
    }
}

/// A board as stored and served.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Board {
    pub id: i64,
    pub name: String,
    /// Username of the owner; `None` for the shared board.
    pub owner: Option<String>,
    pub visibility: Visibility,
    pub created_at: DateTime<Utc>,
    /// Grows by one with every rename or change of visibility.
    pub version: i64,
}

/// A board with the caller's role on it: `GET /boards` lists these, and
/// `GET /boards/{id}` answers one with its members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardView {
    #[serde(flatten)]
    pub board: Board,
    /// The caller's role; `None` when they read a public board they are
    /// not a member of.
    pub role: Option<Role>,
    /// The board's topic, to subscribe to on `/ws/v1`.
    pub topic: String,
    /// Present on `GET /boards/{id}` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<Member>>,
    /// The board's labels; present on `GET /boards/{id}` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<super::Label>>,
}

/// One member of a board.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub username: String,
    pub role: Role,
    pub added_at: DateTime<Utc>,
}

/// Body of `POST /boards`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBoard {
    pub name: String,
    /// `private` (the default) or `public`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
}

/// Body of `PATCH /boards/{id}`: absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
}

/// Body of `PUT /boards/{id}/members/{username}`: invites the account, or
/// changes its role. Only `member` and `viewer` are accepted: a board has
/// exactly one owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRole {
    pub role: Role,
}

/// Why a board field was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BoardFieldError {
    #[error("name must not be empty")]
    NameEmpty,
    #[error("name must be at most {BOARD_NAME_MAX_CHARS} characters")]
    NameTooLong,
    #[error("name must not contain control characters")]
    NameControl,
    #[error("visibility must be \"private\" or \"public\"; only the shared board is open")]
    OpenVisibility,
}

/// Trims and checks a board name; returns the text to store.
pub fn validate_board_name(name: &str) -> Result<String, BoardFieldError> {
    let trimmed = name.trim();
    if trimmed.chars().any(char::is_control) {
        return Err(BoardFieldError::NameControl);
    }
    match trimmed.chars().count() {
        0 => Err(BoardFieldError::NameEmpty),
        n if n > BOARD_NAME_MAX_CHARS => Err(BoardFieldError::NameTooLong),
        _ => Ok(trimmed.to_owned()),
    }
}

/// Checks a visibility a client asked for.
pub fn validate_visibility(v: Visibility) -> Result<Visibility, BoardFieldError> {
    match v {
        Visibility::Open => Err(BoardFieldError::OpenVisibility),
        v => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_and_refuse_lookalikes() {
        assert_eq!(board_topic(DEFAULT_BOARD), "tasks");
        assert_eq!(board_topic(7), "board:7");
        assert_eq!(topic_board("board:7"), Some(Ok(7)));
        assert_eq!(topic_board("tasks"), None);
        assert_eq!(topic_board("boards:7"), None);
        for odd in [
            "board:", "board:07", "board:1", "board:x", "board:-2", "board:+2",
        ] {
            assert_eq!(topic_board(odd), Some(Err(())), "{odd}");
        }
        assert_eq!(topic_board("board:99999999999999999999"), Some(Err(())));
    }

    #[test]
    fn roles_order_by_power() {
        assert!(Role::Owner.writes() && Role::Member.writes() && !Role::Viewer.writes());
        for r in [Role::Viewer, Role::Member, Role::Owner] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("admin"), None);
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(validate_board_name("  Launch  ").unwrap(), "Launch");
        assert_eq!(validate_board_name(" "), Err(BoardFieldError::NameEmpty));
        assert_eq!(
            validate_board_name(&"é".repeat(BOARD_NAME_MAX_CHARS))
                .unwrap()
                .chars()
                .count(),
            BOARD_NAME_MAX_CHARS
        );
        assert_eq!(
            validate_board_name(&"x".repeat(BOARD_NAME_MAX_CHARS + 1)),
            Err(BoardFieldError::NameTooLong)
        );
        assert_eq!(
            validate_board_name("a\u{0}b"),
            Err(BoardFieldError::NameControl)
        );
        assert!(validate_visibility(Visibility::Open).is_err());
        assert_eq!(
            validate_visibility(Visibility::Public),
            Ok(Visibility::Public)
        );
    }

    #[test]
    fn a_board_view_is_flat_json() {
        let view = BoardView {
            board: Board {
                id: 2,
                name: "Launch".into(),
                owner: Some("ann".into()),
                visibility: Visibility::Private,
                created_at: DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                    .unwrap()
                    .with_timezone(&Utc),
                version: 1,
            },
            role: Some(Role::Owner),
            topic: board_topic(2),
            members: None,
            labels: None,
        };
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["id"], 2);
        assert_eq!(json["visibility"], "private");
        assert_eq!(json["role"], "owner");
        assert_eq!(json["topic"], "board:2");
        assert!(json.get("members").is_none());
        assert!(json.get("labels").is_none());
        assert_eq!(serde_json::from_value::<BoardView>(json).unwrap(), view);
    }
}
