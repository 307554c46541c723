//! The sessions table: which signed-in sessions are still good.
//!
//! A token is a signed claim that its session exists; the row is what can
//! be taken back. Every check of a token reads its session and its account
//! in one query, so a session ended on one instance is refused by every
//! other at once, with no cache to wait for.

use sqlx::AnyPool;

use super::users::{user_from_row, USER_COLUMNS};
use super::{StoreError, User};

/// A cheap-to-clone handle on the sessions table.
#[derive(Clone, Debug)]
pub struct SessionStore {
    pool: AnyPool,
}

/// A new random session id: 128 bits, as hex.
fn new_id() -> Result<String, StoreError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Corrupt(format!("random source: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl SessionStore {
    pub(super) fn new(pool: AnyPool) -> Self {
        SessionStore { pool }
    }

    /// Starts a session for `user_id` at `started_at` (Unix seconds) and
    /// returns its id. The account's sessions that began before
    /// `expired_before` are dropped, and beyond the newest `keep` the
    /// oldest too, so signing in over and over cannot grow the table.
    pub async fn start(
        &self,
        user_id: i64,
        started_at: i64,
        expired_before: i64,
        keep: usize,
    ) -> Result<String, StoreError> {
        let id = new_id()?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND started_at < $2")
            .bind(user_id)
            .bind(expired_before)
            .execute(&mut *tx)
            .await?;
        // Room for the new one: everything but the newest `keep - 1` goes.
        sqlx::query(
            "DELETE FROM sessions WHERE user_id = $1 AND id NOT IN \
             (SELECT id FROM sessions WHERE user_id = $1 \
              ORDER BY n DESC LIMIT $2)",
        )
        .bind(user_id)
        .bind(keep.saturating_sub(1) as i64)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO sessions (id, user_id, started_at) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(user_id)
            .bind(started_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The account of session `id`, if the session is still good and
    /// belongs to `user_id`.
    pub async fn user(&self, id: &str, user_id: i64) -> Result<Option<User>, StoreError> {
        let columns = USER_COLUMNS
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let row = sqlx::query(&format!(
            "SELECT {columns} FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id = $1 AND s.user_id = $2"
        ))
        .bind(id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Ends session `id`; whether it was still there.
    pub async fn end(&self, id: &str) -> Result<bool, StoreError> {
        let gone = sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(gone.rows_affected() > 0)
    }

    /// How many sessions `user_id` has.
    #[cfg(test)]
    pub async fn count(&self, user_id: i64) -> Result<i64, StoreError> {
        use sqlx::Row;
        let row = sqlx::query("SELECT COUNT(*) AS n FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::on_both_backends;
    use super::super::TaskStore;

    on_both_backends!(sessions_start_check_end_and_stay_bounded);

    async fn sessions_start_check_end_and_stay_bounded(store: TaskStore) {
        let ann = store.users().create("ann", "$argon2id$x").await.unwrap();
        let bob = store.users().create("bob", "$argon2id$y").await.unwrap();
        let sessions = store.sessions();
        let first = sessions.start(ann.id, 100, 0, 3).await.unwrap();
        assert_eq!(first.len(), 32);
        let user = sessions.user(&first, ann.id).await.unwrap().unwrap();
        assert_eq!(user.username, "ann");
        assert!(
            sessions.user(&first, bob.id).await.unwrap().is_none(),
            "a session is good only for its own account"
        );
        assert!(sessions.user("nope", ann.id).await.unwrap().is_none());

        // At most three: the oldest give way.
        let mut ids = vec![first.clone()];
        for at in 101..105 {
            ids.push(sessions.start(ann.id, at, 0, 3).await.unwrap());
        }
        assert_eq!(sessions.count(ann.id).await.unwrap(), 3);
        assert!(sessions.user(&first, ann.id).await.unwrap().is_none());
        assert!(sessions.user(&ids[4], ann.id).await.unwrap().is_some());

        // Sessions begun before the cut-off are dropped at the next start.
        let late = sessions.start(ann.id, 200, 150, 3).await.unwrap();
        assert_eq!(sessions.count(ann.id).await.unwrap(), 1);
        assert!(sessions.end(&late).await.unwrap());
        assert!(!sessions.end(&late).await.unwrap());
        assert!(sessions.user(&late, ann.id).await.unwrap().is_none());

        // A password change ends every session of the account, in the same
        // transaction as the new hash; deleting the account ends them too.
        let a = sessions.start(ann.id, 300, 0, 3).await.unwrap();
        let b = sessions.start(bob.id, 300, 0, 3).await.unwrap();
        store
            .users()
            .set_password(ann.id, "$argon2id$new")
            .await
            .unwrap();
        assert!(sessions.user(&a, ann.id).await.unwrap().is_none());
        assert_eq!(
            store
                .users()
                .by_id(ann.id)
                .await
                .unwrap()
                .unwrap()
                .password_hash,
            "$argon2id$new"
        );
        assert!(sessions.user(&b, bob.id).await.unwrap().is_some());
        store.users().delete(bob.id, "bob").await.unwrap();
        assert_eq!(sessions.count(bob.id).await.unwrap(), 0);
    }
}
