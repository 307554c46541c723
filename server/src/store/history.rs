//! Topic streams kept across a graceful restart of the in-process broker.
//!
//! The shutdown writes every topic's state in one transaction, replacing
//! whatever an earlier shutdown left; the next start reads it and deletes
//! it in one transaction. Consuming it matters: if the server later
//! crashed and this state were restored again, offsets published after it
//! would be handed out a second time for different events, and a resuming
//! client would silently get the wrong ones. Without a saved state, topics
//! start new epochs and resuming clients are told `recovered: false`.

use sqlx::{AnyPool, Row};

use app::protocol::Event;

use super::{now_text, StoreError};
use crate::broker::TopicState;

/// A cheap-to-clone handle on the saved topic streams.
#[derive(Clone, Debug)]
pub struct HistoryStore {
    pool: AnyPool,
}

impl HistoryStore {
    pub(super) fn new(pool: AnyPool) -> Self {
        HistoryStore { pool }
    }

    /// Replaces the saved state with `topics`.
    pub async fn save(&self, topics: &[TopicState]) -> Result<(), StoreError> {
        let saved_at = now_text();
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM broker_history")
            .execute(&mut *tx)
            .await?;
        for t in topics {
            let events = serde_json::to_string(&t.events)
                .map_err(|e| StoreError::Corrupt(format!("events of {:?}: {e}", t.topic)))?;
            let offset = i64::try_from(t.offset)
                .map_err(|_| StoreError::Corrupt(format!("offset of {:?}", t.topic)))?;
            sqlx::query(
                "INSERT INTO broker_history (topic, epoch, last_offset, events, saved_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&t.topic)
            .bind(&t.epoch)
            .bind(offset)
            .bind(events)
            .bind(&saved_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Takes the saved state: returns it and deletes it. A row that cannot
    /// be read is skipped with a warning (its topic starts a new epoch);
    /// it never stops the server from starting.
    pub async fn take(&self) -> Result<Vec<TopicState>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT topic, epoch, last_offset, events FROM broker_history ORDER BY topic",
        )
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM broker_history")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut topics = Vec::with_capacity(rows.len());
        for row in rows {
            let topic: String = row.try_get("topic")?;
            let parsed = (|| -> Result<TopicState, String> {
                let offset: i64 = row.try_get("last_offset").map_err(|e| e.to_string())?;
                let events: String = row.try_get("events").map_err(|e| e.to_string())?;
                Ok(TopicState {
                    topic: topic.clone(),
                    epoch: row.try_get("epoch").map_err(|e| e.to_string())?,
                    offset: u64::try_from(offset).map_err(|_| "negative offset".to_owned())?,
                    events: serde_json::from_str::<Vec<Event>>(&events)
                        .map_err(|e| e.to_string())?,
                })
            })();
            match parsed {
                Ok(t) => topics.push(t),
                Err(e) => tracing::warn!(topic, error = %e, "skipping an unreadable saved topic"),
            }
        }
        Ok(topics)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::on_both_backends;
    use super::super::TaskStore;
    use super::*;
    use app::protocol::Payload;

    on_both_backends!(saved_state_is_taken_once, unreadable_rows_are_skipped);

    fn state(topic: &str, offsets: std::ops::RangeInclusive<u64>) -> TopicState {
        TopicState {
            topic: topic.into(),
            epoch: "ep".into(),
            offset: *offsets.end(),
            events: offsets
                .map(|offset| Event {
                    topic: topic.into(),
                    offset,
                    epoch: "ep".into(),
                    ts: chrono::Utc::now(),
                    payload: Payload::Message {
                        text: format!("m{offset} \u{1}\"'"),
                    },
                })
                .collect(),
        }
    }

    async fn saved_state_is_taken_once(s: TaskStore) {
        let h = s.history();
        assert_eq!(h.take().await.unwrap(), vec![]);
        h.save(&[state("old", 1..=1)]).await.unwrap();
        let topics = vec![state("a", 3..=5), state("b", 1..=2)];
        h.save(&topics).await.unwrap();
        assert_eq!(
            h.take().await.unwrap(),
            topics,
            "the last save replaces the one before"
        );
        assert_eq!(
            h.take().await.unwrap(),
            vec![],
            "consumed by the start that restores it"
        );
    }

    async fn unreadable_rows_are_skipped(s: TaskStore) {
        let h = s.history();
        let good = state("good", 1..=2);
        h.save(std::slice::from_ref(&good)).await.unwrap();
        sqlx::query(
            "INSERT INTO broker_history (topic, epoch, last_offset, events, saved_at) \
             VALUES ('bad', 'ep', 3, 'not json', 'now')",
        )
        .execute(&s.pool)
        .await
        .unwrap();
        assert_eq!(h.take().await.unwrap(), vec![good]);
        assert_eq!(h.take().await.unwrap(), vec![]);
    }
}
