//! Where a task lands in its column when it is placed or changes column.
//!
//! The client names the task it should follow (`TaskPatch::after`), not a
//! number: the server reads the neighbours as they are now, so two people
//! reordering the same column at once each get their card where they
//! dropped it relative to what they saw, and no client has to know how
//! positions are kept (`store::order`).

use app::protocol::{Task, TaskStatus};

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::order::between;

/// How a write places its task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Directly after this task, or first in the column when `None`.
    After(Option<i64>),
    /// Last in the column (a task moved to another column without a place).
    End,
}

impl Placement {
    /// The placement a patch asks for, if any: an explicit `after`, or
    /// the end of the new column for a task that changes column.
    pub fn of(after: Option<Option<i64>>, task: &Task, status: Option<TaskStatus>) -> Option<Self> {
        match (after, status) {
            (Some(after), _) => Some(Placement::After(after)),
            (None, Some(status)) if status != task.status => Some(Placement::End),
            (None, _) => None,
        }
    }
}

/// The position for `task` placed in the `status` column of its board.
/// When the neighbours leave no room, the column is renumbered first (every
/// other task in it changes, and is published), then the position is taken
/// again.
pub async fn position(
    state: &AppState,
    task: &Task,
    status: TaskStatus,
    placement: Placement,
) -> Result<i64, ApiError> {
    let store = &state.store;
    let board = task.board_id;
    let mut anchor = match placement {
        Placement::After(Some(anchor)) => Some(anchor_in(state, task, status, anchor).await?),
        Placement::After(None) | Placement::End => None,
    };
    // Renumbering makes room everywhere, so the second round finds it.
    for _ in 0..2 {
        let (before, after) = match (&anchor, placement) {
            (Some(anchor), _) => (
                Some(anchor.position),
                store.next_in_column(anchor, task.id).await?,
            ),
            (None, Placement::End) => (store.column_end(board, status, task.id, true).await?, None),
            (None, _) => (None, store.column_end(board, status, task.id, false).await?),
        };
        if let Some(position) = between(before, after) {
            return Ok(position);
        }
        let renumbered = store.respace(board, status, task.id).await?;
        tracing::info!(
            board,
            status = status.as_str(),
            tasks = renumbered.len(),
            "column renumbered"
        );
        for changed in &renumbered {
            state.rt.task_updated(changed).await;
        }
        if let Some(a) = anchor.as_mut() {
            *a = store.get(a.id).await?;
        }
    }
    Err(ApiError::internal(std::io::Error::other(
        "no room in the column after renumbering it",
    )))
}

/// The task named as the one to follow, which must be another task in the
/// same column of the same board.
async fn anchor_in(
    state: &AppState,
    task: &Task,
    status: TaskStatus,
    anchor: i64,
) -> Result<Task, ApiError> {
    let misplaced = || {
        ApiError::Validation(format!(
            "after: task {anchor} is not in the {} column of this task's board",
            status.as_str()
        ))
    };
    if anchor == task.id {
        return Err(ApiError::Validation(
            "after: a task cannot follow itself".into(),
        ));
    }
    let found = match state.store.get(anchor).await {
        Ok(found) => found,
        Err(crate::store::StoreError::NotFound(_)) => return Err(misplaced()),
        Err(e) => return Err(e.into()),
    };
    if found.board_id != task.board_id || found.status != status {
        return Err(misplaced());
    }
    Ok(found)
}
