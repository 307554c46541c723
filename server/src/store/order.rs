//! The order of tasks within a column (one status on one board).
//!
//! Each task has a `sort_order`; a column lists its tasks by it, then by
//! id. New tasks go to the end, `GAP` after the last one, so placing a
//! task between two others takes the midpoint and writes that task alone,
//! which keeps a move one event. Only after about 16 placements into the
//! same gap is there no midpoint left; then the column is renumbered
//! (`respace`), which writes every task in it once.

use app::protocol::{Task, TaskStatus};

#[cfg(test)]
use super::Draft;
use super::{now_text, task_from_row, StoreError, TaskStore, COLUMNS};

/// Distance between neighbours as created or renumbered.
pub const GAP: i64 = 65_536;

/// The position for a task placed between `before` and `after` (the
/// positions of its new neighbours, `None` at either end of the column),
/// or `None` when there is no room and the column must be renumbered.
pub fn between(before: Option<i64>, after: Option<i64>) -> Option<i64> {
    match (before, after) {
        (None, None) => Some(GAP),
        (Some(b), None) => b.checked_add(GAP),
        (None, Some(a)) => a.checked_sub(GAP),
        (Some(b), Some(a)) => {
            let (b, a) = (i128::from(b), i128::from(a));
            // Strictly between, so the new task sorts between the two
            // whatever their ids.
            (a - b >= 2)
                .then(|| i64::try_from(b + (a - b) / 2).ok())
                .flatten()
        }
    }
}

impl TaskStore {
    /// The position of the task that follows `anchor` in its column,
    /// leaving out task `moving` (the one being placed), if there is one.
    pub async fn next_in_column(
        &self,
        anchor: &Task,
        moving: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT sort_order FROM tasks \
             WHERE board_id = $1 AND status = $2 AND id <> $3 \
             AND (sort_order > $4 OR (sort_order = $4 AND id > $5)) \
             ORDER BY sort_order, id LIMIT 1",
        )
        .bind(anchor.board_id)
        .bind(anchor.status.as_str())
        .bind(moving)
        .bind(anchor.position)
        .bind(anchor.id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(p,)| p))
    }

    /// The first (`last == false`) or last position in a column, leaving
    /// out task `moving`; `None` for an empty column.
    pub async fn column_end(
        &self,
        board: i64,
        status: TaskStatus,
        moving: i64,
        last: bool,
    ) -> Result<Option<i64>, StoreError> {
        let which = if last { "MAX" } else { "MIN" };
        let row: (Option<i64>,) = sqlx::query_as(&format!(
            "SELECT {which}(sort_order) FROM tasks \
             WHERE board_id = $1 AND status = $2 AND id <> $3"
        ))
        .bind(board)
        .bind(status.as_str())
        .bind(moving)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.0)
    }

    /// Renumbers a column, `GAP` apart in its current order, leaving out
    /// task `moving` (which is being placed and gets its own position).
    /// Every renumbered task's version is bumped, so clients apply the new
    /// positions like any other change; the tasks come back to be
    /// published.
    pub async fn respace(
        &self,
        board: i64,
        status: TaskStatus,
        moving: i64,
    ) -> Result<Vec<Task>, StoreError> {
        let rows = sqlx::query(&format!(
            "UPDATE tasks SET sort_order = ranked.n * {GAP}, version = version + 1, \
             updated_at = $4 \
             FROM (SELECT id AS ranked_id, ROW_NUMBER() OVER (ORDER BY sort_order, id) AS n \
                   FROM tasks WHERE board_id = $1 AND status = $2 AND id <> $3) AS ranked \
             WHERE tasks.id = ranked.ranked_id \
             RETURNING {COLUMNS}"
        ))
        .bind(board)
        .bind(status.as_str())
        .bind(moving)
        .bind(now_text())
        .fetch_all(&self.pool)
        .await?;
        let mut tasks = rows
            .iter()
            .map(task_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        tasks.sort_by_key(|t| (t.position, t.id));
        Ok(tasks)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{draft, on_both_backends};
    use super::super::Change;
    use super::*;

    on_both_backends!(
        columns_keep_their_order,
        a_full_column_is_renumbered_in_order
    );

    /// The column's ids in order, as the board lists them.
    async fn column(s: &TaskStore, status: TaskStatus) -> Vec<i64> {
        let mut tasks: Vec<Task> = s
            .list()
            .await
            .unwrap()
            .into_iter()
            .filter(|t| t.status == status)
            .collect();
        tasks.sort_by_key(|t| (t.position, t.id));
        tasks.iter().map(|t| t.id).collect()
    }

    async fn place(s: &TaskStore, id: i64, position: i64) -> Task {
        let change = Change {
            position: Some(position),
            ..Change::default()
        };
        s.update(id, change, None).await.unwrap()
    }

    async fn columns_keep_their_order(s: TaskStore) {
        let a = s.create(draft("a")).await.unwrap();
        let b = s.create(draft("b")).await.unwrap();
        let c = s.create(draft("c")).await.unwrap();
        // New tasks go to the end of their column, each GAP further.
        assert_eq!(
            (a.position, b.position, c.position),
            (GAP, 2 * GAP, 3 * GAP)
        );
        assert_eq!(s.next_in_column(&a, c.id).await.unwrap(), Some(b.position));
        assert_eq!(s.next_in_column(&b, c.id).await.unwrap(), None);
        assert_eq!(
            s.column_end(1, TaskStatus::Todo, a.id, false)
                .await
                .unwrap(),
            Some(b.position)
        );
        assert_eq!(
            s.column_end(1, TaskStatus::Todo, 0, true).await.unwrap(),
            Some(c.position)
        );
        assert_eq!(
            s.column_end(1, TaskStatus::Done, 0, true).await.unwrap(),
            None
        );
        // c between a and b.
        let p = between(Some(a.position), s.next_in_column(&a, c.id).await.unwrap()).unwrap();
        place(&s, c.id, p).await;
        assert_eq!(column(&s, TaskStatus::Todo).await, vec![a.id, c.id, b.id]);
        // The end of another column is where a task lands in it.
        let d = s
            .create(Draft {
                status: TaskStatus::Done,
                ..draft("d")
            })
            .await
            .unwrap();
        assert_eq!(d.position, GAP);
    }

    async fn a_full_column_is_renumbered_in_order(s: TaskStore) {
        let a = s.create(draft("a")).await.unwrap();
        let b = s.create(draft("b")).await.unwrap();
        let c = s.create(draft("c")).await.unwrap();
        // a and b next to each other, no room between them.
        place(&s, b.id, a.position + 1).await;
        let a = s.get(a.id).await.unwrap();
        assert_eq!(
            between(Some(a.position), s.next_in_column(&a, c.id).await.unwrap()),
            None
        );
        // Renumbering leaves c (the task being placed) alone and bumps the
        // others' versions, in their order.
        let renumbered = s.respace(1, TaskStatus::Todo, c.id).await.unwrap();
        let got: Vec<(i64, i64, i64)> = renumbered
            .iter()
            .map(|t| (t.id, t.position, t.version))
            .collect();
        assert_eq!(got, vec![(a.id, GAP, 2), (b.id, 2 * GAP, 3)]);
        assert_eq!(s.get(c.id).await.unwrap().version, 1);
        assert!(between(Some(GAP), Some(2 * GAP)).is_some());
    }

    #[test]
    fn between_takes_midpoints_and_ends() {
        assert_eq!(between(None, None), Some(GAP));
        assert_eq!(between(Some(GAP), None), Some(2 * GAP));
        assert_eq!(between(None, Some(GAP)), Some(0));
        assert_eq!(between(Some(0), Some(GAP)), Some(GAP / 2));
        assert_eq!(between(Some(-5), Some(5)), Some(0));
    }

    #[test]
    fn between_refuses_when_there_is_no_room() {
        assert_eq!(between(Some(3), Some(4)), None);
        assert_eq!(between(Some(4), Some(4)), None);
        assert_eq!(between(Some(i64::MAX - 1), None), None);
        assert_eq!(between(None, Some(i64::MIN + 1)), None);
        assert_eq!(between(Some(i64::MIN), Some(i64::MAX)), Some(-1));
    }

    #[test]
    fn a_gap_takes_sixteen_placements_at_one_spot() {
        let (low, mut high) = (GAP, 2 * GAP);
        let mut placed = 0;
        while let Some(p) = between(Some(low), Some(high)) {
            assert!(low < p && p < high);
            high = p;
            placed += 1;
        }
        assert_eq!(placed, 16);
    }
}
