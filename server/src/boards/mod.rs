//! Who may do what on a board: one set of rules that every task route,
//! every board route and every subscription to a board's topic asks.
//!
//! | board | anonymous | signed-in non-member | viewer | member | owner |
//! |---|---|---|---|---|---|
//! | shared (open) | read (write with `--open-writes`) | read, write | | | |
//! | public | read | read | read | write | manage |
//! | private | 401 | 403 | read | write | manage |
//!
//! "Write" is creating, editing, moving and deleting tasks; "manage" is
//! renaming, sharing and deleting the board and inviting, re-roling and
//! removing members. Nobody manages the shared board: it has no owner.

use app::protocol::{topic_board, Board, ErrorCode, Role, Visibility};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::store::TaskStore;
use crate::topics::Refusal;

pub mod labels;
pub mod page;
pub mod routes;

/// What a request needs to do on a board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
    Manage,
}

/// The role the caller acts with: its membership, or what the board's
/// visibility grants everyone. `anonymous_writes` is `--open-writes`,
/// which lets callers without a token write to the shared board only.
pub fn acting_role(
    board: &Board,
    membership: Option<Role>,
    signed_in: bool,
    anonymous_writes: bool,
) -> Option<Role> {
    if membership.is_some() {
        return membership;
    }
    match board.visibility {
        Visibility::Open if signed_in || anonymous_writes => Some(Role::Member),
        Visibility::Open | Visibility::Public => Some(Role::Viewer),
        Visibility::Private => None,
    }
}

/// Why a caller with `role` may not do `need`, if it may not.
pub fn refusal(board: &Board, role: Option<Role>, signed_in: bool, need: Need) -> Option<ApiError> {
    let Some(role) = role else {
        return Some(if signed_in {
            ApiError::Forbidden("you are not a member of this board".into())
        } else {
            ApiError::Unauthorized("this board is private: sign in as one of its members".into())
        });
    };
    match need {
        Need::Read => None,
        Need::Write if role.writes() => None,
        Need::Write if !signed_in => Some(ApiError::Unauthorized(
            "sign in as a member of this board to change it".into(),
        )),
        Need::Write => Some(ApiError::Forbidden(
            "viewers cannot change this board's tasks".into(),
        )),
        Need::Manage if role == Role::Owner => None,
        Need::Manage if board.owner.is_none() => Some(ApiError::Forbidden(
            "the shared board has no owner: nobody can rename, share or delete it".into(),
        )),
        Need::Manage => Some(ApiError::Forbidden(
            "only the board's owner can do this".into(),
        )),
    }
}

/// A board and the caller's standing on it, once allowed.
#[derive(Debug)]
pub struct Allowed {
    pub board: Board,
    /// Acting role (see [`acting_role`]).
    pub role: Role,
    /// The caller's membership row, which [`acting_role`] may have widened.
    pub membership: Option<Role>,
}

impl Allowed {
    /// The role the API shows the caller: its membership, or on the shared
    /// board what everyone acts with there. A non-member reading a public
    /// board gets `None`: it is not a viewer in the members list.
    pub fn shown_role(&self) -> Option<Role> {
        self.membership
            .or((self.board.visibility == Visibility::Open).then_some(self.role))
    }
}

/// Looks the board up and checks that `user` may do `need` on it: 404 for
/// a board that does not exist, 401 or 403 for a refusal.
pub async fn authorize(
    store: &TaskStore,
    board: i64,
    user: Option<&AuthUser>,
    anonymous_writes: bool,
    need: Need,
) -> Result<Allowed, ApiError> {
    let name = user.map(|u| u.username.as_str());
    let Some((board, membership)) = store.boards().access(board, name).await? else {
        return Err(ApiError::BoardNotFound(board));
    };
    let role = acting_role(&board, membership, user.is_some(), anonymous_writes);
    if let Some(refused) = refusal(&board, role, user.is_some(), need) {
        if matches!(refused, ApiError::Unauthorized(_) | ApiError::Forbidden(_)) {
            tracing::debug!(board = board.id, ?need, "board access refused");
        }
        return Err(refused);
    }
    Ok(Allowed {
        board,
        role: role.unwrap_or(Role::Viewer),
        membership,
    })
}

/// Who asks to subscribe to a board's topic.
#[derive(Clone, Copy, Debug)]
pub enum Subscriber<'a> {
    /// A signed-in account.
    Account(&'a AuthUser),
    /// Nobody signed in, on an endpoint that takes a token: signing in is
    /// the answer to a private board (401).
    Anonymous,
    /// An endpoint that takes no token at all: signing in would not help,
    /// so a private board is refused outright (403) and the refusal says
    /// where it is served.
    Tokenless,
}

impl<'a> Subscriber<'a> {
    /// A signed-in account, or nobody on an endpoint that takes tokens.
    pub fn from(user: Option<&'a AuthUser>) -> Self {
        user.map_or(Subscriber::Anonymous, Subscriber::Account)
    }

    fn user(self) -> Option<&'a AuthUser> {
        match self {
            Subscriber::Account(user) => Some(user),
            Subscriber::Anonymous | Subscriber::Tokenless => None,
        }
    }
}

/// Whether `who` may subscribe to `topic`, for the topics of boards
/// (`board:<id>`): `Some(as_member)` if so, `None` for every other topic,
/// which passes here and is judged by [`crate::topics::may_read`]. A board
/// that does not exist is refused as one the caller may not read, so
/// topic names reveal nothing.
pub async fn may_subscribe(
    store: &TaskStore,
    topic: &str,
    who: Subscriber<'_>,
) -> Result<Option<bool>, Refusal> {
    let Some(id) = topic_board(topic) else {
        return Ok(None);
    };
    let Ok(id) = id else {
        return Err((
            ErrorCode::InvalidTopic,
            "board topics are board:<id> for a board other than the shared one, whose topic is tasks",
        ));
    };
    let user = who.user();
    let name = user.map(|u| u.username.as_str());
    let found = match store.boards().access(id, name).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "checking a board subscription failed");
            return Err((
                ErrorCode::Unavailable,
                "the board store is unavailable; retry",
            ));
        }
    };
    let (role, as_member) = match found {
        Some((board, m)) => (acting_role(&board, m, user.is_some(), false), m.is_some()),
        None => (None, false),
    };
    match (role, who) {
        (Some(_), _) => Ok(Some(as_member)),
        (None, Subscriber::Anonymous) => Err((
            ErrorCode::Unauthorized,
            "this board is private: sign in as one of its members",
        )),
        (None, Subscriber::Tokenless) => Err((
            ErrorCode::Forbidden,
            "private boards are served on /ws/v1, to their members",
        )),
        (None, Subscriber::Account(_)) => Err((
            ErrorCode::Forbidden,
            "no such board, or you are not a member of it",
        )),
    }
}

/// A refused board topic named in an HTTP path (a WebSocket upgrade, a
/// presence listing), as the HTTP error.
pub fn refused((code, why): Refusal) -> ApiError {
    match code {
        ErrorCode::Unavailable => ApiError::Unavailable(why.into()),
        ErrorCode::InvalidTopic => ApiError::BadPath(why.into()),
        ErrorCode::Unauthorized => ApiError::Unauthorized(why.into()),
        _ => ApiError::Forbidden(why.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(visibility: Visibility) -> Board {
        Board {
            id: 2,
            name: "b".into(),
            owner: (visibility != Visibility::Open).then(|| "ann".into()),
            visibility,
            created_at: chrono::Utc::now(),
            version: 1,
        }
    }

    fn allowed(v: Visibility, m: Option<Role>, signed_in: bool, open: bool, need: Need) -> bool {
        let b = board(v);
        let role = acting_role(&b, m, signed_in, open);
        refusal(&b, role, signed_in, need).is_none()
    }

    #[test]
    fn the_table_in_the_module_doc() {
        use Need::*;
        use Visibility::*;
        // shared board
        assert!(allowed(Open, None, false, false, Read));
        assert!(!allowed(Open, None, false, false, Write));
        assert!(allowed(Open, None, false, true, Write));
        assert!(allowed(Open, None, true, false, Write));
        assert!(!allowed(Open, None, true, false, Manage));
        // public
        assert!(allowed(Public, None, false, true, Read));
        assert!(
            !allowed(Public, None, false, true, Write),
            "open-writes is the shared board's only"
        );
        assert!(!allowed(Public, None, true, false, Write));
        assert!(!allowed(Public, Some(Role::Viewer), true, false, Write));
        assert!(allowed(Public, Some(Role::Member), true, false, Write));
        assert!(!allowed(Public, Some(Role::Member), true, false, Manage));
        assert!(allowed(Public, Some(Role::Owner), true, false, Manage));
        // private
        for need in [Read, Write, Manage] {
            assert!(!allowed(Private, None, false, true, need));
            assert!(!allowed(Private, None, true, false, need));
        }
        assert!(allowed(Private, Some(Role::Viewer), true, false, Read));
        assert!(!allowed(Private, Some(Role::Viewer), true, false, Write));
        assert!(allowed(Private, Some(Role::Member), true, false, Write));
        assert!(allowed(Private, Some(Role::Owner), true, false, Manage));
    }

    #[test]
    fn refusals_say_sign_in_or_forbidden() {
        let b = board(Visibility::Private);
        assert!(matches!(
            refusal(&b, None, false, Need::Read),
            Some(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            refusal(&b, None, true, Need::Read),
            Some(ApiError::Forbidden(_))
        ));
        let shared = board(Visibility::Open);
        assert!(matches!(
            refusal(&shared, Some(Role::Viewer), false, Need::Write),
            Some(ApiError::Unauthorized(_))
        ));
    }
}
