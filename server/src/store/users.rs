//! The accounts table.
//!
//! Only what authentication needs: a name, an argon2id hash, and when the
//! account was made. The numeric id (never reused) is what tokens carry, so
//! a token outlives neither its account nor a later account of the same
//! name.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use app::protocol::{Task, UserInfo};

use super::{now_text, parse_ts, task_from_row, StoreError, COLUMNS};

/// What deleting an account changed besides the account.
#[derive(Debug)]
pub struct Deleted {
    /// Tasks it was the assignee of, now unassigned.
    pub unassigned: Vec<Task>,
    /// Boards it owned, now deleted.
    pub boards: super::Owned,
}

/// A stored account. `Debug` leaves the hash out, so a stray `{:?}` cannot
/// put it in a log.
#[derive(Clone)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl User {
    /// What the API shows of an account.
    pub fn info(&self) -> UserInfo {
        UserInfo {
            username: self.username.clone(),
            created_at: self.created_at,
        }
    }
}

/// A cheap-to-clone handle on the accounts table.
#[derive(Clone, Debug)]
pub struct UserStore {
    pool: AnyPool,
}

pub(super) const USER_COLUMNS: &str = "id, username, password_hash, created_at";

pub(super) fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        created_at: parse_ts(&row.try_get::<String, _>("created_at")?)?,
    })
}

impl UserStore {
    pub(super) fn new(pool: AnyPool) -> Self {
        UserStore { pool }
    }

    /// Creates an account; [`StoreError::UsernameTaken`] if the name exists.
    /// `ON CONFLICT DO NOTHING` rather than catching the constraint error,
    /// so the answer does not depend on how each driver reports it.
    pub async fn create(&self, username: &str, password_hash: &str) -> Result<User, StoreError> {
        let row = sqlx::query(&format!(
            "INSERT INTO users (username, password_hash, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (username) DO NOTHING RETURNING {USER_COLUMNS}"
        ))
        .bind(username)
        .bind(password_hash)
        .bind(now_text())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => user_from_row(&row),
            None => Err(StoreError::UsernameTaken),
        }
    }

    pub async fn by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Replaces the account's password hash and ends all its sessions, in
    /// one transaction: no token issued before the change works after it.
    pub async fn set_password(&self, id: i64, password_hash: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if changed.rows_affected() == 0 {
            return Err(StoreError::UserNotFound);
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes an account with its sessions, its memberships and the
    /// boards it owns, and clears it as assignee, in one transaction.
    /// Returns the tasks that lost their assignee and the boards that
    /// went, so those changes can be published like any other.
    pub async fn delete(&self, id: i64, username: &str) -> Result<Deleted, StoreError> {
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if gone.rows_affected() == 0 {
            return Err(StoreError::UserNotFound);
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(&format!(
            "UPDATE tasks SET assignee = NULL, updated_at = $1, version = version + 1 \
             WHERE assignee = $2 RETURNING {COLUMNS}"
        ))
        .bind(now_text())
        .bind(username)
        .fetch_all(&mut *tx)
        .await?;
        let owned = super::boards::delete_owner(&mut tx, username).await?;
        tx.commit().await?;
        Ok(Deleted {
            unassigned: rows.iter().map(task_from_row).collect::<Result<_, _>>()?,
            boards: owned,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::on_both_backends;
    use super::super::{Draft, TaskStore};
    use super::*;
    use app::protocol::TaskStatus;

    on_both_backends!(create_find_delete);

    async fn create_find_delete(store: TaskStore) {
        let users = store.users();
        let ann = users.create("ann", "$argon2id$x").await.unwrap();
        assert!(matches!(
            users.create("ann", "$argon2id$y").await,
            Err(StoreError::UsernameTaken)
        ));
        assert_eq!(users.by_name("ann").await.unwrap().unwrap().id, ann.id);
        assert_eq!(users.by_id(ann.id).await.unwrap().unwrap().username, "ann");
        assert!(users.by_name("bob").await.unwrap().is_none());
        assert!(
            !format!("{ann:?}").contains("argon2"),
            "Debug must not show the hash"
        );

        let draft = Draft {
            title: "t".into(),
            description: String::new(),
            status: TaskStatus::Todo,
            created_by: Some("ann".into()),
            assignee: Some("ann".into()),
            board_id: app::protocol::DEFAULT_BOARD,
            due: None,
            labels: Vec::new(),
        };
        let task = store.create(draft).await.unwrap();
        let cleared = users
            .delete(ann.id, &ann.username)
            .await
            .unwrap()
            .unassigned;
        assert_eq!(cleared.len(), 1);
        assert_eq!(
            (cleared[0].id, cleared[0].assignee.as_deref()),
            (task.id, None)
        );
        assert_eq!(
            cleared[0].created_by.as_deref(),
            Some("ann"),
            "the creator stays on record"
        );
        assert!(users.by_id(ann.id).await.unwrap().is_none());
        assert!(matches!(
            users.delete(ann.id, &ann.username).await,
            Err(StoreError::UserNotFound)
        ));
        // A new account of the same name is a new id.
        let again = users.create("ann", "$argon2id$z").await.unwrap();
        assert!(again.id > ann.id);
    }
}
