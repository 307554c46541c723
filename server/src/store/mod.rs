//! The task store: SQLite by default, PostgreSQL for several instances.
//!
//! One set of queries serves both back ends through sqlx's `Any` driver;
//! only the migrations differ (`migrations/sqlite`, `migrations/postgres`),
//! and they run at start-up. Timestamps are stored as fixed-width RFC 3339
//! text, which sorts correctly and reads the same on both.
//!
//! Every change increments `version` in the same statement that makes it,
//! and a change can be made conditional on the version the client saw
//! (`If-Match`), so two concurrent edits never overwrite each other silently.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use app::protocol::{Task, TaskStatus};

mod boards;
mod creates;
mod history;
pub mod labels;
pub mod order;
mod sessions;
mod users;
pub use boards::{BoardStore, Owned};
pub use history::HistoryStore;
pub use sessions::SessionStore;
pub use users::{Deleted, User, UserStore};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no task with id {0}")]
    NotFound(i64),
    #[error("that username is taken")]
    UsernameTaken,
    #[error("no such user")]
    UserNotFound,
    /// A bound on how many of something one account or board may have.
    #[error("{0}")]
    Limit(String),
    /// A board already has a label of that name.
    #[error("label {0:?} exists")]
    LabelExists(String),
    /// The expected version is stale; carries the task as it is now.
    #[error("version conflict")]
    Conflict(Box<Task>),
    #[error("unsupported database URL (expected sqlite:// or postgres://)")]
    UnsupportedUrl,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("could not create the database directory: {0}")]
    Io(#[from] std::io::Error),
    /// A row that the migrations' constraints should have made impossible.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The store is shutting down.
    #[error("the task store is closed")]
    Closed,
}

impl StoreError {
    /// Whether the database could not be reached (or was busy) rather than
    /// refusing the operation: worth a retry, and a 503 rather than a 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Closed => true,
            StoreError::Db(e) => match e {
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                    // PostgreSQL: connection exceptions (08), insufficient
                    // resources (53), operator intervention such as a
                    // shutdown (57), a database refusing connections
                    // (55000). SQLite: busy (5) and locked (6).
                    code.starts_with("08")
                        || code.starts_with("53")
                        || code.starts_with("57")
                        || code == "55000"
                        || code == "5"
                        || code == "6"
                }),
                _ => false,
            },
            _ => false,
        }
    }
}

/// A task's fields as validated by the API, ready to store.
#[derive(Clone, Debug)]
pub struct Draft {
    pub title: String,
    pub description: String,
    pub status: TaskStatus,
    pub created_by: Option<String>,
    pub assignee: Option<String>,
    pub board_id: i64,
    pub due: Option<NaiveDate>,
    pub labels: Vec<i64>,
}

/// A partial change; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct Change {
    pub title: Option<String>,
    pub description: Option<String>,
    pub status: Option<TaskStatus>,
    /// `Some(None)` clears the assignee.
    pub assignee: Option<Option<String>>,
    /// `Some(None)` clears the due date.
    pub due: Option<Option<NaiveDate>>,
    /// A new place in the task's (new) column (see `order`).
    pub position: Option<i64>,
    /// The card's labels, replacing the ones it has.
    pub labels: Option<Vec<i64>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A cheap-to-clone handle on the task table.
#[derive(Clone, Debug)]
pub struct TaskStore {
    pool: AnyPool,
    /// Where creations go to be written together (see `creates`).
    creates: creates::Creator,
    backend: Backend,
}

const COLUMNS: &str = "id, title, description, status, created_at, updated_at, version, \
     created_by, assignee, board_id, sort_order, due_on, labels";

fn now_text() -> String {
    format_ts(Utc::now())
}

fn format_ts(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_ts(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp {text:?}: {e}")))
}

fn task_from_row(row: &AnyRow) -> Result<Task, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(Task {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        status: TaskStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
        created_at: parse_ts(&row.try_get::<String, _>("created_at")?)?,
        updated_at: parse_ts(&row.try_get::<String, _>("updated_at")?)?,
        version: row.try_get("version")?,
        created_by: row.try_get("created_by")?,
        assignee: row.try_get("assignee")?,
        board_id: row.try_get("board_id")?,
        position: row.try_get("sort_order")?,
        due: row
            .try_get::<Option<String>, _>("due_on")?
            .map(|text| {
                text.parse::<NaiveDate>()
                    .map_err(|e| StoreError::Corrupt(format!("due date {text:?}: {e}")))
            })
            .transpose()?,
        labels: labels::decode(&row.try_get::<String, _>("labels")?)?,
    })
}

impl TaskStore {
    /// Connects, creating the SQLite file (and its directory) if needed, and
    /// applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        if backend == Backend::Sqlite {
            if let Some(dir) = sqlite_parent_dir(url) {
                std::fs::create_dir_all(dir)?;
            }
        }
        let options = AnyConnectOptions::from_str(url)?;
        let pool = AnyPoolOptions::new()
            // SQLite has one writer at a time; a few connections are enough
            // for concurrent readers under WAL.
            .max_connections(if backend == Backend::Sqlite { 4 } else { 10 })
            .acquire_timeout(Duration::from_secs(10))
            // A SQLite connection is a file handle in this process; it cannot
            // go stale the way a network connection can, so checking it
            // before every query would only add a round trip to SQLite's
            // worker thread to each one.
            .test_before_acquire(backend != Backend::Sqlite)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        let creates = creates::Creator::spawn(pool.clone());
        Ok(TaskStore {
            pool,
            creates,
            backend,
        })
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Every task, oldest first.
    pub async fn list(&self) -> Result<Vec<Task>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM tasks ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(task_from_row).collect()
    }

    /// One page of a board's tasks in id order (`newest_first`:
    /// descending), strictly past `after` in that order, at most `limit`;
    /// and whether more follow. Keyset pagination: each page is one range
    /// scan of the `(board_id, id)` index, however deep into the board.
    pub async fn page(
        &self,
        board: i64,
        newest_first: bool,
        after: Option<i64>,
        limit: usize,
    ) -> Result<(Vec<Task>, bool), StoreError> {
        let (cmp, order, start) = if newest_first {
            ("<", "DESC", i64::MAX)
        } else {
            (">", "ASC", 0)
        };
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM tasks WHERE board_id = $1 AND id {cmp} $2 \
             ORDER BY id {order} LIMIT $3"
        ))
        .bind(board)
        .bind(after.unwrap_or(start))
        .bind(limit as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        let more = rows.len() > limit;
        let tasks = rows
            .iter()
            .take(limit)
            .map(task_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((tasks, more))
    }

    pub async fn get(&self, id: i64) -> Result<Task, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM tasks WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => task_from_row(&row),
            None => Err(StoreError::NotFound(id)),
        }
    }

    /// Stores a new task. Concurrent creations share one statement.
    pub async fn create(&self, draft: Draft) -> Result<Task, StoreError> {
        self.creates.create(draft, now_text()).await
    }

    /// Applies `change` if the task exists and, when `expected` is given,
    /// still has that version. Bumps the version even for an empty change,
    /// so every successful PATCH is visible to other clients.
    pub async fn update(
        &self,
        id: i64,
        change: Change,
        expected: Option<i64>,
    ) -> Result<Task, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE tasks SET title = COALESCE($1, title), \
             description = COALESCE($2, description), status = COALESCE($3, status), \
             updated_at = $4, version = version + 1, \
             assignee = CASE WHEN CAST($7 AS BIGINT) = 1 THEN $8 ELSE assignee END, \
             due_on = CASE WHEN CAST($9 AS BIGINT) = 1 THEN $10 ELSE due_on END, \
             sort_order = COALESCE(CAST($11 AS BIGINT), sort_order), \
             labels = COALESCE($12, labels) \
             WHERE id = $5 AND (CAST($6 AS BIGINT) IS NULL OR version = CAST($6 AS BIGINT)) \
             RETURNING {COLUMNS}"
        ))
        .bind(change.title)
        .bind(change.description)
        .bind(change.status.map(|s| s.as_str()))
        .bind(now_text())
        .bind(id)
        .bind(expected)
        .bind(i64::from(change.assignee.is_some()))
        .bind(change.assignee.flatten())
        .bind(i64::from(change.due.is_some()))
        .bind(change.due.flatten().map(|d| d.to_string()))
        .bind(change.position)
        .bind(change.labels.as_deref().map(labels::encode))
        .fetch_optional(&self.pool)
        .await?;
        self.conditional_result(id, row).await
    }

    /// Settles a write that made `assignee` the assignee of task `id`
    /// against a concurrent deletion of that account: if the account is
    /// gone by now, it is taken off the task the way deleting it does
    /// (version bumped), and the task as it then is comes back to be
    /// published. On PostgreSQL the check waits for a deletion in progress
    /// (`FOR SHARE`), which deletes the account before it clears its
    /// tasks: so either that clearing sees this write, or this check sees
    /// the account gone. SQLite runs one writer at a time, which orders
    /// them the same way.
    pub async fn settle_assignee(
        &self,
        id: i64,
        assignee: &str,
    ) -> Result<Option<Task>, StoreError> {
        let lock = match self.backend {
            Backend::Postgres => " FOR SHARE",
            Backend::Sqlite => "",
        };
        let exists = sqlx::query(&format!("SELECT id FROM users WHERE username = $1{lock}"))
            .bind(assignee)
            .fetch_optional(&self.pool)
            .await?
            .is_some();
        if exists {
            return Ok(None);
        }
        let row = sqlx::query(&format!(
            "UPDATE tasks SET assignee = NULL, updated_at = $1, version = version + 1 \
             WHERE id = $2 AND assignee = $3 RETURNING {COLUMNS}"
        ))
        .bind(now_text())
        .bind(id)
        .bind(assignee)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(task_from_row).transpose()
    }

    /// Deletes the task if it exists and, when `expected` is given, still has
    /// that version. Returns the task as it was.
    pub async fn delete(&self, id: i64, expected: Option<i64>) -> Result<Task, StoreError> {
        let row = sqlx::query(&format!(
            "DELETE FROM tasks WHERE id = $1 \
             AND (CAST($2 AS BIGINT) IS NULL OR version = CAST($2 AS BIGINT)) \
             RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(expected)
        .fetch_optional(&self.pool)
        .await?;
        self.conditional_result(id, row).await
    }

    /// The row a conditional statement returned, or, when it touched none,
    /// why: the task is missing, or its version was different.
    async fn conditional_result(&self, id: i64, row: Option<AnyRow>) -> Result<Task, StoreError> {
        match row {
            Some(row) => task_from_row(&row),
            None => match self.get(id).await {
                Ok(current) => Err(StoreError::Conflict(Box::new(current))),
                Err(e) => Err(e),
            },
        }
    }

    /// The accounts table, on the same pool.
    pub fn users(&self) -> UserStore {
        UserStore::new(self.pool.clone())
    }

    /// Signed-in sessions, on the same pool.
    pub fn sessions(&self) -> SessionStore {
        SessionStore::new(self.pool.clone())
    }

    /// Boards and their members, on the same pool.
    pub fn boards(&self) -> BoardStore {
        BoardStore::new(self.pool.clone())
    }

    pub fn labels(&self) -> labels::LabelStore {
        labels::LabelStore::new(self.pool.clone())
    }

    /// Topic streams saved by a graceful shutdown.
    pub fn history(&self) -> HistoryStore {
        HistoryStore::new(self.pool.clone())
    }

    /// Closes every connection; SQLite checkpoints its WAL on the last close.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The directory of a `sqlite://path?query` URL's file, if it has one.
fn sqlite_parent_dir(url: &str) -> Option<&std::path::Path> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    std::path::Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
}

/// Runs each store test on both back ends: a test is an `async fn` taking a
/// fresh [`TaskStore`], and [`on_both_backends!`] makes it two tests,
/// `NAME::sqlite` (a new SQLite file) and `NAME::postgres` (a new schema on
/// the server `PULSEBOARD_TEST_POSTGRES` names, dropped afterwards even if
/// the test panics).
///
/// Without `PULSEBOARD_TEST_POSTGRES` the PostgreSQL half is skipped, and
/// says so on stderr; with `CI=true` it fails instead, so CI cannot pass
/// without having run it.
#[cfg(test)]
pub(crate) mod testing {
    use std::future::Future;
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};

    use sqlx::{AnyConnection, Connection};

    use super::{Draft, TaskStore};
    use app::protocol::TaskStatus;

    /// Names the PostgreSQL server (and database) the tests may use.
    pub(crate) const POSTGRES_ENV: &str = "PULSEBOARD_TEST_POSTGRES";

    /// PostgreSQL tests running at once: each holds up to 11 connections
    /// (its pool and the one that creates and drops its schema), so a run
    /// with many test threads stays well under a default server's 100.
    static POSTGRES_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

    /// A to-do task created by ann, assigned to nobody.
    pub(crate) fn draft(title: &str) -> Draft {
        Draft {
            title: title.into(),
            description: String::new(),
            status: TaskStatus::Todo,
            created_by: Some("ann".into()),
            assignee: None,
            board_id: app::protocol::DEFAULT_BOARD,
            due: None,
            labels: Vec::new(),
        }
    }

    /// Runs `test` on a store in a new SQLite file.
    pub(crate) async fn on_sqlite<F, Fut>(test: F)
    where
        F: FnOnce(TaskStore) -> Fut,
        Fut: Future<Output = ()>,
    {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
        let store = TaskStore::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("open a new SQLite store at {url}: {e}"));
        test(store.clone()).await;
        store.close().await;
    }

    fn in_ci() -> bool {
        std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// The PostgreSQL URL to test against, or `None` to skip (outside CI).
    fn postgres_url(test: &str) -> Option<String> {
        if let Ok(url) = std::env::var(POSTGRES_ENV) {
            if !url.trim().is_empty() {
                return Some(url);
            }
        }
        if in_ci() {
            panic!(
                "{test}: CI=true but {POSTGRES_ENV} is not set, so this PostgreSQL store \
                 test cannot run, and CI must not skip it. Point {POSTGRES_ENV} at a server \
                 (e.g. postgres://postgres@127.0.0.1:5432/test; `make test-unit` does when \
                 one answers on 127.0.0.1:5432)."
            );
        }
        // Straight to the process's stderr, past the test harness's output
        // capture, so the skip shows in every run and not only on failure.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: {POSTGRES_ENV} is not set (with CI=true this fails instead)"
        );
        None
    }

    /// A schema name no other test, in this process or another, uses: the
    /// process id, a counter and the time, then as much of the test's name as
    /// fits in PostgreSQL's 63 bytes (to tell a leftover apart).
    fn unique_schema(test: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let mut name = format!(
            "pb_test_{}_{}_{}_",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            chrono::Utc::now().timestamp_micros()
        );
        let tag = test.rsplit("::").nth(1).unwrap_or(test);
        name.extend(
            tag.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .map(|c| c.to_ascii_lowercase()),
        );
        name.truncate(63);
        name
    }

    /// Runs `test` on a store in a new schema on the PostgreSQL server, and
    /// drops the schema afterwards, whether the test passed or panicked.
    pub(crate) async fn on_postgres<F, Fut>(test_name: &str, test: F)
    where
        F: FnOnce(TaskStore) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        // As the test harness names it: without the crate.
        let test_name = test_name.split_once("::").map_or(test_name, |(_, t)| t);
        let Some(base) = postgres_url(test_name) else {
            return;
        };
        let _slot = POSTGRES_SLOTS.acquire().await.expect("never closed");
        sqlx::any::install_default_drivers();
        let schema = unique_schema(test_name);
        let mut admin = AnyConnection::connect(&base)
            .await
            .unwrap_or_else(|e| panic!("connect to PostgreSQL at {base}: {e}"));
        sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("create schema {schema}: {e}"));
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        let mut connect_error = None;
        let mut panicked = None;
        match TaskStore::connect(&url).await {
            // In a task of its own, so that a panic comes back here as an
            // error instead of skipping the cleanup.
            Ok(store) => {
                let outcome = tokio::spawn(test(store.clone())).await;
                // Waits for every connection to come back (a panic may have
                // left one in a transaction) and closes them, so none holds a
                // lock that DROP SCHEMA would wait for.
                store.close().await;
                panicked = outcome.err().map(|e| e.into_panic());
            }
            Err(e) => connect_error = Some(e),
        }
        let dropped = sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .execute(&mut admin)
            .await;
        let _ = admin.close().await;
        if let Some(panic) = panicked {
            std::panic::resume_unwind(panic);
        }
        if let Some(e) = connect_error {
            panic!("open the store in schema {schema}: {e}");
        }
        if let Err(e) = dropped {
            panic!("drop schema {schema}: {e}");
        }
    }

    /// Declares each named `async fn(TaskStore)` in the calling module as
    /// two tests, `NAME::sqlite` and `NAME::postgres`.
    macro_rules! on_both_backends {
        ($($name:ident),+ $(,)?) => {$(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    $crate::store::testing::on_sqlite(super::$name).await;
                }

                #[tokio::test]
                async fn postgres() {
                    $crate::store::testing::on_postgres(
                        concat!(module_path!(), "::postgres"),
                        super::$name,
                    )
                    .await;
                }
            }
        )+};
    }
    pub(crate) use on_both_backends;
}

#[cfg(test)]
mod tests {
    use super::testing::{draft, on_both_backends};
    use super::*;

    on_both_backends!(
        create_list_get_update_delete,
        stale_versions_conflict_and_missing_ids_are_not_found,
        assignee_is_set_kept_and_cleared,
        concurrent_creations_are_batched_but_kept_apart,
        ids_are_not_reused_after_delete,
        assignment_conflict_and_account_deletion,
    );

    async fn create_list_get_update_delete(s: TaskStore) {
        let a = s.create(draft("a")).await.unwrap();
        let b = s.create(draft("b")).await.unwrap();
        assert_eq!((a.version, b.id > a.id), (1, true));
        assert_eq!(s.list().await.unwrap(), vec![a.clone(), b.clone()]);
        let change = Change {
            status: Some(TaskStatus::Done),
            ..Change::default()
        };
        let a2 = s.update(a.id, change, Some(1)).await.unwrap();
        assert_eq!(
            (a2.version, a2.status, a2.title.as_str()),
            (2, TaskStatus::Done, "a")
        );
        assert_eq!(s.get(a.id).await.unwrap(), a2);
        let gone = s.delete(a.id, None).await.unwrap();
        assert_eq!(gone, a2);
        assert!(matches!(s.get(a.id).await, Err(StoreError::NotFound(_))));
    }

    async fn stale_versions_conflict_and_missing_ids_are_not_found(s: TaskStore) {
        let a = s.create(draft("a")).await.unwrap();
        s.update(a.id, Change::default(), None).await.unwrap();
        match s.update(a.id, Change::default(), Some(1)).await {
            Err(StoreError::Conflict(current)) => assert_eq!(current.version, 2),
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert!(matches!(
            s.delete(a.id, Some(1)).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            s.delete(999, None).await,
            Err(StoreError::NotFound(999))
        ));
        assert!(matches!(
            s.update(999, Change::default(), Some(1)).await,
            Err(StoreError::NotFound(999))
        ));
    }

    async fn assignee_is_set_kept_and_cleared(s: TaskStore) {
        let a = s.create(draft("a")).await.unwrap();
        assert_eq!(
            (a.created_by.as_deref(), a.assignee.as_deref()),
            (Some("ann"), None)
        );
        let assign = Change {
            assignee: Some(Some("bob".into())),
            ..Change::default()
        };
        let a = s.update(a.id, assign, None).await.unwrap();
        assert_eq!(a.assignee.as_deref(), Some("bob"));
        let title = Change {
            title: Some("b".into()),
            ..Change::default()
        };
        let a = s.update(a.id, title, None).await.unwrap();
        assert_eq!(
            a.assignee.as_deref(),
            Some("bob"),
            "an unrelated change keeps the assignee"
        );
        let clear = Change {
            assignee: Some(None),
            ..Change::default()
        };
        assert_eq!(s.update(a.id, clear, None).await.unwrap().assignee, None);
    }

    /// Creations made at once are written in shared statements; each
    /// caller must still get its own task back.
    async fn concurrent_creations_each_get_their_own_task(s: &TaskStore) {
        let creations = (0..300).map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut d = draft(&format!("t{i}"));
                d.description = format!("d{i}");
                (i, s.create(d).await.unwrap())
            })
        });
        let mut ids = std::collections::HashSet::new();
        for handle in creations.collect::<Vec<_>>() {
            let (i, task) = handle.await.unwrap();
            assert_eq!(task.title, format!("t{i}"));
            assert_eq!(task.description, format!("d{i}"));
            assert_eq!(s.get(task.id).await.unwrap(), task);
            assert!(ids.insert(task.id), "id {} given twice", task.id);
        }
    }

    async fn concurrent_creations_are_batched_but_kept_apart(s: TaskStore) {
        concurrent_creations_each_get_their_own_task(&s).await;
    }

    async fn ids_are_not_reused_after_delete(s: TaskStore) {
        let a = s.create(draft("a")).await.unwrap();
        s.delete(a.id, None).await.unwrap();
        let b = s.create(draft("b")).await.unwrap();
        assert!(b.id > a.id);
    }

    /// Tasks and accounts together: an assignment under `If-Match`, a stale
    /// version, a taken username, and deleting an account clearing it as
    /// assignee. (This was the PostgreSQL-only test; it now runs on both.)
    async fn assignment_conflict_and_account_deletion(s: TaskStore) {
        let a = s.create(draft("a")).await.unwrap();
        assert_eq!((a.version, a.created_by.as_deref()), (1, Some("ann")));
        let assign = Change {
            assignee: Some(Some("bob".into())),
            ..Change::default()
        };
        let a2 = s.update(a.id, assign, Some(1)).await.unwrap();
        assert_eq!((a2.version, a2.assignee.as_deref()), (2, Some("bob")));
        assert!(matches!(
            s.update(a.id, Change::default(), Some(1)).await,
            Err(StoreError::Conflict(_))
        ));
        let users = s.users();
        let bob = users.create("bob", "$argon2id$x").await.unwrap();
        assert!(matches!(
            users.create("bob", "$argon2id$y").await,
            Err(StoreError::UsernameTaken)
        ));
        let cleared = users
            .delete(bob.id, &bob.username)
            .await
            .unwrap()
            .unassigned;
        assert_eq!(cleared.len(), 1);
        assert_eq!(cleared[0].assignee, None);
        assert_eq!(s.list().await.unwrap().len(), 1);
        s.delete(a.id, None).await.unwrap();
        concurrent_creations_each_get_their_own_task(&s).await;
    }

    #[tokio::test]
    async fn rejects_unknown_url_schemes() {
        assert!(matches!(
            TaskStore::connect("mysql://x/y").await,
            Err(StoreError::UnsupportedUrl)
        ));
    }

    #[test]
    fn parent_dir_of_sqlite_urls() {
        assert_eq!(
            sqlite_parent_dir("sqlite://data/x.db?mode=rwc"),
            Some(std::path::Path::new("data"))
        );
        assert_eq!(sqlite_parent_dir("sqlite::memory:"), None);
        assert_eq!(sqlite_parent_dir("sqlite://x.db"), None);
    }
}
