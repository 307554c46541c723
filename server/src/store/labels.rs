//! A board's labels, and the label ids kept on its cards.

use app::protocol::{Label, LabelColor, LABELS_PER_BOARD_MAX};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{now_text, StoreError};

#[derive(Clone, Debug)]
pub struct LabelStore {
    pool: AnyPool,
}

fn label_from_row(row: &AnyRow) -> Result<Label, StoreError> {
    let color: String = row.try_get("color")?;
    Ok(Label {
        id: row.try_get("id")?,
        board_id: row.try_get("board_id")?,
        name: row.try_get("name")?,
        color: LabelColor::parse(&color)
            .ok_or_else(|| StoreError::Corrupt(format!("label colour {color:?}")))?,
    })
}

/// A card's label ids as stored: `",3,5,"`, or empty for none.
pub fn encode(ids: &[i64]) -> String {
    if ids.is_empty() {
        return String::new();
    }
    let mut out = String::from(",");
    for id in ids {
        out.push_str(&id.to_string());
        out.push(',');
    }
    out
}

/// The ids of a stored label list.
pub fn decode(text: &str) -> Result<Vec<i64>, StoreError> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| StoreError::Corrupt(format!("label list {text:?}")))
        })
        .collect()
}

/// The names of `board`'s labels, but for label `except`.
async fn names_on(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    board: i64,
    except: Option<i64>,
) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query("SELECT name FROM labels WHERE board_id = $1 AND id <> $2")
        .bind(board)
        .bind(except.unwrap_or(0))
        .fetch_all(&mut **tx)
        .await?;
    rows.iter()
        .map(|row| row.try_get("name").map_err(StoreError::from))
        .collect()
}

/// Names differ whatever their case: "Bug" and "bug" would read as one.
fn refuse_clash(names: &[String], name: &str) -> Result<(), StoreError> {
    let lower = name.to_lowercase();
    match names.iter().find(|taken| taken.to_lowercase() == lower) {
        Some(taken) => Err(StoreError::LabelExists(taken.clone())),
        None => Ok(()),
    }
}

impl LabelStore {
    pub(super) fn new(pool: AnyPool) -> Self {
        LabelStore { pool }
    }

    /// The board's labels, by name.
    pub async fn list(&self, board: i64) -> Result<Vec<Label>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, board_id, name, color FROM labels WHERE board_id = $1 ORDER BY name, id",
        )
        .bind(board)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(label_from_row).collect()
    }

    /// Which of `ids` are not labels of `board`.
    pub async fn missing(&self, board: i64, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        let have: Vec<i64> = self.list(board).await?.iter().map(|l| l.id).collect();
        Ok(ids
            .iter()
            .copied()
            .filter(|id| !have.contains(id))
            .collect())
    }

    /// Makes a label; a limit error past [`LABELS_PER_BOARD_MAX`], and
    /// `LabelExists` when the board has one of that name.
    pub async fn create(
        &self,
        board: i64,
        name: &str,
        color: LabelColor,
    ) -> Result<Label, StoreError> {
        let mut tx = self.pool.begin().await?;
        let names = names_on(&mut tx, board, None).await?;
        if names.len() >= LABELS_PER_BOARD_MAX {
            return Err(StoreError::Limit(format!(
                "this board has {LABELS_PER_BOARD_MAX} labels, the most a board may"
            )));
        }
        refuse_clash(&names, name)?;
        let row = sqlx::query(
            "INSERT INTO labels (board_id, name, color, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id, board_id, name, color",
        )
        .bind(board)
        .bind(name)
        .bind(color.as_str())
        .bind(now_text())
        .fetch_one(&mut *tx)
        .await?;
        let label = label_from_row(&row)?;
        tx.commit().await?;
        Ok(label)
    }

    /// Renames or recolours label `id` of `board`; `None` if there is no
    /// such label.
    pub async fn update(
        &self,
        board: i64,
        id: i64,
        name: Option<&str>,
        color: Option<LabelColor>,
    ) -> Result<Option<Label>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(name) = name {
            refuse_clash(&names_on(&mut tx, board, Some(id)).await?, name)?;
        }
        let row = sqlx::query(
            "UPDATE labels SET name = COALESCE($3, name), color = COALESCE($4, color) \
             WHERE board_id = $1 AND id = $2 RETURNING id, board_id, name, color",
        )
        .bind(board)
        .bind(id)
        .bind(name)
        .bind(color.map(LabelColor::as_str))
        .fetch_optional(&mut *tx)
        .await?;
        let label = row.as_ref().map(label_from_row).transpose()?;
        tx.commit().await?;
        Ok(label)
    }

    /// Deletes label `id` of `board` and takes it off the board's cards
    /// (their versions stay: readers drop a label they no longer know).
    /// Whether it existed.
    pub async fn delete(&self, board: i64, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query("DELETE FROM labels WHERE board_id = $1 AND id = $2")
            .bind(board)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone > 0 {
            let mark = format!(",{id},");
            sqlx::query(
                "UPDATE tasks SET labels = CASE WHEN REPLACE(labels, $2, ',') = ',' THEN '' \
                 ELSE REPLACE(labels, $2, ',') END \
                 WHERE board_id = $1 AND labels LIKE $3",
            )
            .bind(board)
            .bind(&mark)
            .bind(format!("%{mark}%"))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(gone > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{draft, on_both_backends};
    use super::super::{Change, TaskStore};
    use super::*;

    on_both_backends!(labels_are_made_bounded_and_taken_off_cards);

    #[test]
    fn label_lists_round_trip() {
        for ids in [vec![], vec![3], vec![12, 4, 7]] {
            assert_eq!(decode(&encode(&ids)).unwrap(), ids);
        }
        assert_eq!(encode(&[3, 5]), ",3,5,");
        assert!(decode(",x,").is_err());
    }

    async fn labels_are_made_bounded_and_taken_off_cards(s: TaskStore) {
        let labels = s.labels();
        let bug = labels.create(1, "bug", LabelColor::Red).await.unwrap();
        let ux = labels.create(1, "UX", LabelColor::Blue).await.unwrap();
        assert!(matches!(
            labels.create(1, "Bug", LabelColor::Green).await,
            Err(StoreError::LabelExists(name)) if name == "bug"
        ));
        assert!(matches!(
            labels.update(1, ux.id, Some("BUG"), None).await,
            Err(StoreError::LabelExists(_))
        ));
        let ux = labels
            .update(1, ux.id, Some("design"), Some(LabelColor::Purple))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((ux.name.as_str(), ux.color), ("design", LabelColor::Purple));
        assert!(labels.update(2, ux.id, None, None).await.unwrap().is_none());
        assert_eq!(labels.missing(1, &[bug.id, 999]).await.unwrap(), vec![999]);

        let task = s.create(draft("t")).await.unwrap();
        let change = Change {
            labels: Some(vec![ux.id, bug.id]),
            ..Change::default()
        };
        let task = s.update(task.id, change, None).await.unwrap();
        assert_eq!(task.labels, vec![ux.id, bug.id]);
        assert!(labels.delete(1, bug.id).await.unwrap());
        assert!(!labels.delete(1, bug.id).await.unwrap());
        assert_eq!(s.get(task.id).await.unwrap().labels, vec![ux.id]);
        labels.delete(1, ux.id).await.unwrap();
        assert_eq!(s.get(task.id).await.unwrap().labels, Vec::<i64>::new());
        assert!(labels.list(1).await.unwrap().is_empty());

        for n in 0..LABELS_PER_BOARD_MAX {
            labels
                .create(1, &format!("l{n}"), LabelColor::Gray)
                .await
                .unwrap();
        }
        assert!(matches!(
            labels.create(1, "one more", LabelColor::Gray).await,
            Err(StoreError::Limit(_))
        ));
    }
}
