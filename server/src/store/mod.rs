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

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use app::protocol::{Task, TaskStatus};

mod creates;
mod users;
pub use users::{User, UserStore};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no task with id {0}")]
    NotFound(i64),
    #[error("that username is taken")]
    UsernameTaken,
    #[error("no such user")]
    UserNotFound,
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

/// A task's fields as validated by the API, ready to store.
#[derive(Clone, Debug)]
pub struct Draft {
    pub title: String,
    pub description: String,
    pub status: TaskStatus,
    pub created_by: Option<String>,
    pub assignee: Option<String>,
}

/// A partial change; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct Change {
    pub title: Option<String>,
    pub description: Option<String>,
    pub status: Option<TaskStatus>,
    /// `Some(None)` clears the assignee.
    pub assignee: Option<Option<String>>,
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
}

const COLUMNS: &str =
    "id, title, description, status, created_at, updated_at, version, created_by, assignee";

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
        Ok(TaskStore { pool, creates })
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
             assignee = CASE WHEN CAST($7 AS BIGINT) = 1 THEN $8 ELSE assignee END \
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
        .fetch_optional(&self.pool)
        .await?;
        self.conditional_result(id, row).await
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (TaskStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
        (TaskStore::connect(&url).await.unwrap(), dir)
    }

    fn draft(title: &str) -> Draft {
        Draft {
            title: title.into(),
            description: String::new(),
            status: TaskStatus::Todo,
            created_by: Some("ann".into()),
            assignee: None,
        }
    }

    #[tokio::test]
    async fn create_list_get_update_delete() {
        let (s, _dir) = store().await;
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

    #[tokio::test]
    async fn stale_versions_conflict_and_missing_ids_are_not_found() {
        let (s, _dir) = store().await;
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

    #[tokio::test]
    async fn assignee_is_set_kept_and_cleared() {
        let (s, _dir) = store().await;
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

    #[tokio::test]
    async fn concurrent_creations_are_batched_but_kept_apart() {
        let (s, _dir) = store().await;
        concurrent_creations_each_get_their_own_task(&s).await;
    }

    #[tokio::test]
    async fn ids_are_not_reused_after_delete() {
        let (s, _dir) = store().await;
        let a = s.create(draft("a")).await.unwrap();
        s.delete(a.id, None).await.unwrap();
        let b = s.create(draft("b")).await.unwrap();
        assert!(b.id > a.id);
    }

    /// The same queries against PostgreSQL, in a schema of its own that is
    /// dropped afterwards. Runs when `PULSEBOARD_TEST_POSTGRES` names a
    /// server (`make test` sets it when one answers on 127.0.0.1:5432).
    #[tokio::test]
    async fn postgres_runs_the_same_queries() {
        let Ok(base) = std::env::var("PULSEBOARD_TEST_POSTGRES") else {
            eprintln!("skipped: PULSEBOARD_TEST_POSTGRES is not set");
            return;
        };
        sqlx::any::install_default_drivers();
        let schema = format!(
            "pb_test_{}_{}",
            std::process::id(),
            Utc::now().timestamp_micros()
        );
        let admin = sqlx::AnyPool::connect(&base)
            .await
            .expect("connect to postgres");
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        let result = async move {
            let s = TaskStore::connect(&url).await.unwrap();
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
            let cleared = users.delete(bob.id, &bob.username).await.unwrap();
            assert_eq!(cleared.len(), 1);
            assert_eq!(cleared[0].assignee, None);
            assert_eq!(s.list().await.unwrap().len(), 1);
            s.delete(a.id, None).await.unwrap();
            concurrent_creations_each_get_their_own_task(&s).await;
            s.close().await;
        };
        // Drop the schema whether or not the checks passed.
        let outcome = tokio::spawn(result).await;
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&admin)
            .await
            .unwrap();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic.into_panic());
        }
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
