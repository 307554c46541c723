//! Group commit for task creations.
//!
//! An `INSERT` on its own costs SQLite a whole transaction (file locks, a
//! WAL append) and costs sqlx a round trip to the connection's worker
//! thread; under load those, not the insert itself, are most of the work
//! (measured: about 190 µs of CPU per creation at 4,000 a second). So one
//! task writes every creation: the ones that arrive while a statement is
//! running wait, and are written together by the next one, as a single
//! multi-row `INSERT ... RETURNING`. A creation that finds nobody ahead of
//! it is written at once, so batching adds no latency; it only collects
//! what is already waiting.

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use app::protocol::Task;

use super::{order::GAP, task_from_row, Draft, StoreError, COLUMNS};

/// Most creations written by one statement (9 parameters each, far below
/// SQLite's and PostgreSQL's limits on parameters).
const MAX_BATCH: usize = 64;
/// Creations that may wait for the writer; more wait to enqueue.
const QUEUE: usize = 1024;

struct Pending {
    draft: Draft,
    now: String,
    reply: oneshot::Sender<Result<Task, StoreError>>,
}

/// The handle through which creations reach the writer task.
#[derive(Clone, Debug)]
pub(super) struct Creator {
    tx: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}

impl Creator {
    /// Starts the writer task; it ends when the last handle is dropped.
    pub(super) fn spawn(pool: AnyPool) -> Creator {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, rx));
        Creator { tx }
    }

    /// Creates one task, possibly in the same statement as others.
    pub(super) async fn create(&self, draft: Draft, now: String) -> Result<Task, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Pending { draft, now, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run(pool: AnyPool, mut rx: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let drafts: Vec<(&Draft, &str)> =
            batch.iter().map(|p| (&p.draft, p.now.as_str())).collect();
        match insert(&pool, &drafts).await {
            Ok(tasks) => {
                for (pending, task) in batch.drain(..).zip(tasks) {
                    let _ = pending.reply.send(Ok(task));
                }
            }
            // A statement fails as a whole; write each row on its own so
            // every request gets its own answer (and one bad row cannot
            // fail the others).
            Err(_) => {
                for pending in batch.drain(..) {
                    let one = [(&pending.draft, pending.now.as_str())];
                    let result = insert(&pool, &one).await.map(|mut t| t.remove(0));
                    let _ = pending.reply.send(result);
                }
            }
        }
    }
}

/// Inserts `drafts` in one statement; the tasks come back in the same
/// order. Rows of one `INSERT` get increasing ids in the order of its
/// `VALUES`, so sorting what `RETURNING` gives by id restores that order
/// whatever order the database returns them in.
async fn insert(pool: &AnyPool, drafts: &[(&Draft, &str)]) -> Result<Vec<Task>, StoreError> {
    // Each task goes to the end of its column. Rows of one statement all
    // read the column as it was before it, so tasks created together in
    // one column share a position and keep their id order.
    let rows: Vec<String> = (0..drafts.len())
        .map(|i| {
            let p = i * 9;
            let (title, description, status, now) = (p + 1, p + 2, p + 3, p + 4);
            let (created_by, assignee, board, due) = (p + 5, p + 6, p + 7, p + 8);
            let labels = p + 9;
            format!(
                "(${title}, ${description}, ${status}, ${now}, ${now}, 1, ${created_by}, \
                 ${assignee}, ${board}, ${due}, ${labels}, \
                 (SELECT COALESCE(MAX(sort_order), 0) + {GAP} FROM tasks \
                  WHERE board_id = ${board} AND status = ${status}))"
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO tasks \
         (title, description, status, created_at, updated_at, version, created_by, assignee, \
          board_id, due_on, labels, sort_order) \
         VALUES {} RETURNING {COLUMNS}",
        rows.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for (draft, now) in drafts {
        query = query
            .bind(draft.title.clone())
            .bind(draft.description.clone())
            .bind(draft.status.as_str())
            .bind(now.to_string())
            .bind(draft.created_by.clone())
            .bind(draft.assignee.clone())
            .bind(draft.board_id)
            .bind(draft.due.map(|d| d.to_string()))
            .bind(super::labels::encode(&draft.labels));
    }
    let rows = query.fetch_all(pool).await?;
    let mut tasks = rows
        .iter()
        .map(task_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    if tasks.len() != drafts.len() {
        return Err(StoreError::Corrupt(format!(
            "inserted {} tasks, got {} back",
            drafts.len(),
            tasks.len()
        )));
    }
    tasks.sort_by_key(|t| t.id);
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::super::testing::on_both_backends;
    use super::super::{now_text, parse_ts, TaskStore};
    use super::*;
    use app::protocol::TaskStatus;

    on_both_backends!(a_full_batch_comes_back_in_values_order);

    /// The largest statement the writer makes, straight through `insert`:
    /// every row comes back with its own fields, in the order given, with
    /// increasing ids, and is what the table then holds.
    async fn a_full_batch_comes_back_in_values_order(store: TaskStore) {
        let statuses = [TaskStatus::Todo, TaskStatus::Doing, TaskStatus::Done];
        let drafts: Vec<Draft> = (0..MAX_BATCH)
            .map(|i| Draft {
                title: format!("t{i}"),
                description: format!("d{i}"),
                status: statuses[i % 3],
                created_by: (i % 2 == 0).then(|| format!("c{i}")),
                assignee: (i % 3 == 0).then(|| format!("a{i}")),
                board_id: 1 + (i % 2) as i64,
                due: (i % 4 == 0)
                    .then(|| chrono::NaiveDate::from_ymd_opt(2027, 1, 1 + i as u32 % 28).unwrap()),
                labels: (0..(i % 3) as i64).collect(),
            })
            .collect();
        let now = now_text();
        let rows: Vec<(&Draft, &str)> = drafts.iter().map(|d| (d, now.as_str())).collect();
        let tasks = insert(&store.pool, &rows).await.unwrap();
        assert_eq!(tasks.len(), MAX_BATCH);
        for (draft, task) in drafts.iter().zip(&tasks) {
            assert_eq!(
                (
                    task.title.as_str(),
                    task.description.as_str(),
                    task.status,
                    task.created_by.as_deref(),
                    task.assignee.as_deref(),
                    task.version,
                ),
                (
                    draft.title.as_str(),
                    draft.description.as_str(),
                    draft.status,
                    draft.created_by.as_deref(),
                    draft.assignee.as_deref(),
                    1,
                )
            );
            assert_eq!((task.due, task.board_id), (draft.due, draft.board_id));
            assert_eq!(task.labels, draft.labels);
            let stamp = parse_ts(&now).unwrap();
            assert_eq!((task.created_at, task.updated_at), (stamp, stamp));
            // The column was empty: a batch's tasks share the first place
            // in their column and keep their id order.
            assert_eq!(task.position, super::GAP);
        }
        assert!(tasks.windows(2).all(|w| w[0].id < w[1].id));
        assert_eq!(store.list().await.unwrap(), tasks);
    }
}
