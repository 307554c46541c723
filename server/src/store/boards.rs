//! Boards and their members.
//!
//! A board's owner is also a row in `board_members` with the role
//! `owner`, so "what may this user do on this board" is one indexed
//! lookup ([`BoardStore::access`]), made on every task write and every
//! subscription to a board's topic. The owner's row is never changed or
//! removed through the member operations: a board has exactly one owner
//! for as long as it exists.

use app::protocol::{
    Board, Member, Role, Visibility, BOARDS_PER_OWNER_MAX, DEFAULT_BOARD, MEMBERS_PER_BOARD_MAX,
};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{now_text, parse_ts, StoreError};

const BOARD_COLUMNS: &str = "b.id, b.name, b.owner, b.visibility, b.created_at, b.version";

/// Most boards [`BoardStore::for_user`] lists: the shared board and the
/// ones the user belongs to, oldest first.
pub const LISTED_MAX: i64 = 1000;

/// What deleting an account took with it.
#[derive(Debug, Default)]
pub struct Owned {
    /// The boards it owned, deleted with their tasks and members.
    pub boards: Vec<i64>,
}

#[derive(Clone, Debug)]
pub struct BoardStore {
    pool: AnyPool,
}

fn board_from_row(row: &AnyRow) -> Result<Board, StoreError> {
    let visibility: String = row.try_get("visibility")?;
    Ok(Board {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        owner: row.try_get("owner")?,
        visibility: Visibility::parse(&visibility)
            .ok_or_else(|| StoreError::Corrupt(format!("visibility {visibility:?}")))?,
        created_at: parse_ts(&row.try_get::<String, _>("created_at")?)?,
        version: row.try_get("version")?,
    })
}

fn role_from_row(row: &AnyRow) -> Result<Option<Role>, StoreError> {
    let role: Option<String> = row.try_get("role")?;
    role.map(|r| Role::parse(&r).ok_or_else(|| StoreError::Corrupt(format!("role {r:?}"))))
        .transpose()
}

fn member_from_row(row: &AnyRow) -> Result<Member, StoreError> {
    Ok(Member {
        username: row.try_get("username")?,
        role: role_from_row(row)?.ok_or_else(|| StoreError::Corrupt("role NULL".into()))?,
        added_at: parse_ts(&row.try_get::<String, _>("added_at")?)?,
    })
}

impl BoardStore {
    pub(super) fn new(pool: AnyPool) -> Self {
        BoardStore { pool }
    }

    /// Makes a board owned by `owner`, within [`BOARDS_PER_OWNER_MAX`].
    /// Concurrent creations by one owner may each see the count below the
    /// bound, so it can be passed by as many as race; it bounds what one
    /// account can make, not an exact figure.
    pub async fn create(
        &self,
        owner: &str,
        name: &str,
        visibility: Visibility,
    ) -> Result<Board, StoreError> {
        let mut tx = self.pool.begin().await?;
        let owned: i64 = sqlx::query("SELECT COUNT(*) AS n FROM boards WHERE owner = $1")
            .bind(owner)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if owned >= BOARDS_PER_OWNER_MAX as i64 {
            return Err(StoreError::Limit(format!(
                "you own {BOARDS_PER_OWNER_MAX} boards, the most one account may"
            )));
        }
        let now = now_text();
        let row = sqlx::query(
            "INSERT INTO boards (name, owner, visibility, created_at, version) \
             VALUES ($1, $2, $3, $4, 1) \
             RETURNING id, name, owner, visibility, created_at, version",
        )
        .bind(name)
        .bind(owner)
        .bind(visibility.as_str())
        .bind(&now)
        .fetch_one(&mut *tx)
        .await?;
        let board = board_from_row(&row)?;
        sqlx::query(
            "INSERT INTO board_members (board_id, username, role, added_at) \
             VALUES ($1, $2, 'owner', $3)",
        )
        .bind(board.id)
        .bind(owner)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(board)
    }

    /// The board and `username`'s membership role on it (`None` for an
    /// anonymous caller or a non-member); `None` if there is no such board.
    pub async fn access(
        &self,
        id: i64,
        username: Option<&str>,
    ) -> Result<Option<(Board, Option<Role>)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {BOARD_COLUMNS}, m.role FROM boards b \
             LEFT JOIN board_members m ON m.board_id = b.id AND m.username = $2 \
             WHERE b.id = $1"
        ))
        .bind(id)
        .bind(username.unwrap_or(""))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| Ok((board_from_row(&row)?, role_from_row(&row)?)))
            .transpose()
    }

    /// The boards `username` sees in its list: the shared board and every
    /// board it is a member of, oldest first, at most [`LISTED_MAX`].
    pub async fn for_user(
        &self,
        username: Option<&str>,
    ) -> Result<Vec<(Board, Option<Role>)>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {BOARD_COLUMNS}, m.role FROM boards b \
             LEFT JOIN board_members m ON m.board_id = b.id AND m.username = $1 \
             WHERE b.id = $2 OR m.username IS NOT NULL ORDER BY b.id LIMIT $3"
        ))
        .bind(username.unwrap_or(""))
        .bind(DEFAULT_BOARD)
        .bind(LISTED_MAX)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((board_from_row(row)?, role_from_row(row)?)))
            .collect()
    }

    /// Renames the board or changes its visibility (absent: unchanged);
    /// the version grows either way. `None` if there is no such board.
    pub async fn update(
        &self,
        id: i64,
        name: Option<String>,
        visibility: Option<Visibility>,
    ) -> Result<Option<Board>, StoreError> {
        let row = sqlx::query(
            "UPDATE boards SET name = COALESCE($1, name), \
             visibility = COALESCE($2, visibility), version = version + 1 \
             WHERE id = $3 RETURNING id, name, owner, visibility, created_at, version",
        )
        .bind(name)
        .bind(visibility.map(Visibility::as_str))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(board_from_row).transpose()
    }

    /// Deletes the board with its tasks and memberships, in one
    /// transaction. Whether it existed.
    pub async fn delete(&self, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let gone = delete_boards(&mut tx, &[id]).await?;
        tx.commit().await?;
        Ok(gone > 0)
    }

    /// The board's members: the owner, then members, then viewers, each
    /// by name. At most [`MEMBERS_PER_BOARD_MAX`] exist.
    pub async fn members(&self, id: i64) -> Result<Vec<Member>, StoreError> {
        let rows = sqlx::query(
            "SELECT username, role, added_at FROM board_members WHERE board_id = $1 \
             ORDER BY CASE role WHEN 'owner' THEN 0 WHEN 'member' THEN 1 ELSE 2 END, username",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(member_from_row).collect()
    }

    /// Adds `username` with `role`, or changes its role; the owner's row
    /// is left alone (`None` then). `StoreError::UserNotFound` when no
    /// account has that name; a limit error past
    /// [`MEMBERS_PER_BOARD_MAX`]. The second value is whether the member
    /// is new.
    pub async fn set_member(
        &self,
        id: i64,
        username: &str,
        role: Role,
    ) -> Result<Option<(Member, bool)>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query("SELECT id FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            return Err(StoreError::UserNotFound);
        }
        let current =
            sqlx::query("SELECT role FROM board_members WHERE board_id = $1 AND username = $2")
                .bind(id)
                .bind(username)
                .fetch_optional(&mut *tx)
                .await?;
        let is_new = current.is_none();
        if let Some(row) = &current {
            if role_from_row(row)? == Some(Role::Owner) {
                return Ok(None);
            }
        } else {
            let count: i64 =
                sqlx::query("SELECT COUNT(*) AS n FROM board_members WHERE board_id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("n")?;
            if count >= MEMBERS_PER_BOARD_MAX as i64 {
                return Err(StoreError::Limit(format!(
                    "the board has {MEMBERS_PER_BOARD_MAX} members, the most a board may have"
                )));
            }
        }
        let row = sqlx::query(
            "INSERT INTO board_members (board_id, username, role, added_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (board_id, username) DO UPDATE SET role = excluded.role \
             RETURNING username, role, added_at",
        )
        .bind(id)
        .bind(username)
        .bind(role.as_str())
        .bind(now_text())
        .fetch_one(&mut *tx)
        .await?;
        let member = member_from_row(&row)?;
        tx.commit().await?;
        Ok(Some((member, is_new)))
    }

    /// Removes a member (never the owner). Whether a row went.
    pub async fn remove_member(&self, id: i64, username: &str) -> Result<bool, StoreError> {
        let gone = sqlx::query(
            "DELETE FROM board_members WHERE board_id = $1 AND username = $2 \
             AND role <> 'owner'",
        )
        .bind(id)
        .bind(username)
        .execute(&self.pool)
        .await?;
        Ok(gone.rows_affected() > 0)
    }
}

/// Within an account's deletion: deletes the boards it owns (with their
/// tasks and members) and its other memberships.
pub(super) async fn delete_owner(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    username: &str,
) -> Result<Owned, StoreError> {
    let rows = sqlx::query("SELECT id FROM boards WHERE owner = $1")
        .bind(username)
        .fetch_all(&mut **tx)
        .await?;
    let boards = rows
        .iter()
        .map(|r| r.try_get::<i64, _>("id"))
        .collect::<Result<Vec<_>, _>>()?;
    delete_boards(tx, &boards).await?;
    sqlx::query("DELETE FROM board_members WHERE username = $1")
        .bind(username)
        .execute(&mut **tx)
        .await?;
    Ok(Owned { boards })
}

/// Deletes boards with their tasks and members; how many boards went.
async fn delete_boards(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ids: &[i64],
) -> Result<u64, StoreError> {
    let mut gone = 0;
    for &id in ids {
        for sql in [
            "DELETE FROM tasks WHERE board_id = $1",
            "DELETE FROM board_members WHERE board_id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut **tx).await?;
        }
        gone += sqlx::query("DELETE FROM boards WHERE id = $1 AND owner IS NOT NULL")
            .bind(id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{draft, on_both_backends};
    use super::super::TaskStore;
    use super::*;

    on_both_backends!(owners_members_and_limits);
    on_both_backends!(deleting_a_board_takes_its_tasks);
    on_both_backends!(deleting_an_account_takes_its_boards);
    on_both_backends!(members_per_board_are_bounded);

    async fn members_per_board_are_bounded(store: TaskStore) {
        let users = store.users();
        users.create("ann", "$argon2id$x").await.unwrap();
        let boards = store.boards();
        let b = boards
            .create("ann", "Crowded", Visibility::Private)
            .await
            .unwrap();
        // The owner is the first of the MEMBERS_PER_BOARD_MAX.
        for i in 1..MEMBERS_PER_BOARD_MAX {
            let name = format!("u{i}");
            users.create(&name, "$argon2id$x").await.unwrap();
            boards.set_member(b.id, &name, Role::Viewer).await.unwrap();
        }
        users.create("late", "$argon2id$x").await.unwrap();
        assert!(matches!(
            boards.set_member(b.id, "late", Role::Viewer).await,
            Err(StoreError::Limit(_))
        ));
        let (_, again) = boards
            .set_member(b.id, "u1", Role::Member)
            .await
            .unwrap()
            .unwrap();
        assert!(
            !again,
            "changing a role is not a new member, even when full"
        );
        assert_eq!(
            boards.members(b.id).await.unwrap().len(),
            MEMBERS_PER_BOARD_MAX
        );
    }

    async fn owners_members_and_limits(store: TaskStore) {
        let users = store.users();
        users.create("ann", "$argon2id$x").await.unwrap();
        users.create("bob", "$argon2id$x").await.unwrap();
        let boards = store.boards();
        let shared = boards.access(DEFAULT_BOARD, None).await.unwrap().unwrap();
        assert_eq!(shared.0.visibility, Visibility::Open);
        assert_eq!(shared.0.owner, None);

        let b = boards
            .create("ann", "Launch", Visibility::Private)
            .await
            .unwrap();
        assert_ne!(b.id, DEFAULT_BOARD);
        assert_eq!(b.owner.as_deref(), Some("ann"));
        let (_, role) = boards.access(b.id, Some("ann")).await.unwrap().unwrap();
        assert_eq!(role, Some(Role::Owner));
        let (_, role) = boards.access(b.id, Some("bob")).await.unwrap().unwrap();
        assert_eq!(role, None);
        assert!(boards
            .access(b.id + 100, Some("ann"))
            .await
            .unwrap()
            .is_none());

        let (m, new) = boards
            .set_member(b.id, "bob", Role::Viewer)
            .await
            .unwrap()
            .unwrap();
        assert!(new);
        assert_eq!(m.role, Role::Viewer);
        let (m, new) = boards
            .set_member(b.id, "bob", Role::Member)
            .await
            .unwrap()
            .unwrap();
        assert!(!new);
        assert_eq!(m.role, Role::Member);
        assert!(
            boards
                .set_member(b.id, "ann", Role::Viewer)
                .await
                .unwrap()
                .is_none(),
            "the owner's row is not a member's to change"
        );
        assert!(matches!(
            boards.set_member(b.id, "nobody", Role::Member).await,
            Err(StoreError::UserNotFound)
        ));
        let members = boards.members(b.id).await.unwrap();
        assert_eq!(
            members
                .iter()
                .map(|m| (m.username.as_str(), m.role))
                .collect::<Vec<_>>(),
            [("ann", Role::Owner), ("bob", Role::Member)]
        );
        let listed = boards.for_user(Some("bob")).await.unwrap();
        assert_eq!(
            listed.iter().map(|(b, r)| (b.id, *r)).collect::<Vec<_>>(),
            [(DEFAULT_BOARD, None), (b.id, Some(Role::Member))]
        );
        assert_eq!(boards.for_user(None).await.unwrap().len(), 1);

        assert!(!boards.remove_member(b.id, "ann").await.unwrap());
        assert!(boards.remove_member(b.id, "bob").await.unwrap());
        assert!(!boards.remove_member(b.id, "bob").await.unwrap());

        let renamed = boards
            .update(b.id, Some("Lift-off".into()), Some(Visibility::Public))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (renamed.name.as_str(), renamed.visibility, renamed.version),
            ("Lift-off", Visibility::Public, 2)
        );

        for i in 1..BOARDS_PER_OWNER_MAX {
            boards
                .create("ann", &format!("b{i}"), Visibility::Private)
                .await
                .unwrap();
        }
        assert!(matches!(
            boards
                .create("ann", "one too many", Visibility::Private)
                .await,
            Err(StoreError::Limit(_))
        ));
        boards
            .create("bob", "bob's own", Visibility::Private)
            .await
            .unwrap();
    }

    async fn deleting_a_board_takes_its_tasks(store: TaskStore) {
        store.users().create("ann", "$argon2id$x").await.unwrap();
        let boards = store.boards();
        let b = boards
            .create("ann", "Launch", Visibility::Private)
            .await
            .unwrap();
        let mut on_board = draft("on the board");
        on_board.board_id = b.id;
        let gone = store.create(on_board).await.unwrap();
        let kept = store.create(draft("shared")).await.unwrap();
        let (page, _) = store.page(b.id, false, None, 10).await.unwrap();
        assert_eq!(page, vec![gone.clone()]);
        assert!(boards.delete(b.id).await.unwrap());
        assert!(!boards.delete(b.id).await.unwrap());
        assert!(matches!(
            store.get(gone.id).await,
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(store.get(kept.id).await.unwrap(), kept);
        assert!(
            !boards.delete(DEFAULT_BOARD).await.unwrap(),
            "the shared board cannot go"
        );
    }

    async fn deleting_an_account_takes_its_boards(store: TaskStore) {
        let users = store.users();
        let ann = users.create("ann", "$argon2id$x").await.unwrap();
        users.create("bob", "$argon2id$x").await.unwrap();
        let boards = store.boards();
        let anns = boards
            .create("ann", "Ann's", Visibility::Private)
            .await
            .unwrap();
        let bobs = boards
            .create("bob", "Bob's", Visibility::Private)
            .await
            .unwrap();
        boards
            .set_member(bobs.id, "ann", Role::Member)
            .await
            .unwrap();
        boards
            .set_member(anns.id, "bob", Role::Member)
            .await
            .unwrap();
        let deleted = users.delete(ann.id, "ann").await.unwrap();
        assert_eq!(deleted.boards.boards, vec![anns.id]);
        assert!(boards.access(anns.id, None).await.unwrap().is_none());
        let members = boards.members(bobs.id).await.unwrap();
        assert_eq!(members.len(), 1, "ann's membership went with her");
    }
}
