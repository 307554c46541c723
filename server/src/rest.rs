//! The REST API for tasks.
//!
//! Handlers validate, call the store, and answer with the task as JSON and
//! its version as a strong `ETag`. `PATCH` and `DELETE` honour `If-Match`.
//!
//! `/tasks` is the shared board's task list; `/boards/{id}/tasks` (see
//! [`crate::boards::routes`]) is any board's, through the same functions.
//! Every task is on one board, and every read and write is checked
//! against the caller's role there ([`crate::boards`]): the shared board
//! is readable by anyone and writable with a token (or by anyone with
//! `--open-writes`). A task records who created it and who it is assigned
//! to, and every change is published on its board's topic (`tasks` for the
//! shared board) and, for the assignee (old and new), as a notification
//! on their `user:<name>` topic.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use app::protocol::{
    validate_description, validate_due, validate_task_labels, validate_title, NewTask, Task,
    TaskPatch, TaskStatus, DEFAULT_BOARD,
};

use crate::auth::{AuthUser, Reader, Writer};
use crate::boards::{authorize, Need};
use crate::client_addr::PeerAddr;
use crate::error::{ApiError, Json, Path};
use crate::placement::{self, Placement};
use crate::state::AppState;
use crate::store::{Change, Draft, StoreError};

/// The task routes, to be merged into the application router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tasks", get(list_tasks).post(create_task))
        .route(
            "/tasks/{id}",
            get(get_task).patch(update_task).delete(delete_task),
        )
}

/// The `ETag` value for a task version.
pub fn etag(version: i64) -> HeaderValue {
    // Digits and quotes are always a valid header value.
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn with_etag(status: StatusCode, task: Task) -> Response {
    let tag = etag(task.version);
    (status, [(header::ETAG, tag)], axum::Json(task)).into_response()
}

/// Reads `If-Match`: `None` when absent or `*`, the version otherwise.
/// Accepts `"3"`, `W/"3"` and a bare `3`.
fn expected_version(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::BadPrecondition)?
        .trim();
    if text == "*" {
        return Ok(None);
    }
    let text = text.strip_prefix("W/").unwrap_or(text);
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    text.parse::<i64>()
        .map(Some)
        .map_err(|_| ApiError::BadPrecondition)
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => ApiError::TaskNotFound(id),
            StoreError::UsernameTaken => ApiError::UsernameTaken,
            StoreError::Limit(why) => ApiError::LimitReached(why),
            StoreError::LabelExists(name) => ApiError::LabelExists(name),
            StoreError::Conflict(current) => ApiError::VersionMismatch {
                expected: 0,
                current,
            },
            e if e.is_unavailable() => {
                tracing::warn!(error = %e, "the task store is unavailable");
                ApiError::Unavailable("the task store is unavailable; retry".into())
            }
            other => ApiError::internal(other),
        }
    }
}

/// Maps a store error for a conditional request, naming the version the
/// client expected in the message.
fn conditional_error(e: StoreError, expected: Option<i64>) -> ApiError {
    match ApiError::from(e) {
        ApiError::VersionMismatch { current, .. } => ApiError::VersionMismatch {
            expected: expected.unwrap_or_default(),
            current,
        },
        other => other,
    }
}

fn validation(e: impl std::fmt::Display) -> ApiError {
    ApiError::Validation(e.to_string())
}

/// The query of `GET /tasks`.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    /// At most this many (1 to `TASKS_PAGE_MAX`, which is the default).
    limit: Option<usize>,
    /// `oldest` (the default, the seed's order) or `newest` first.
    order: Option<String>,
    /// Only tasks past this id in that order: the `next` link's cursor.
    after: Option<i64>,
}

/// `GET /tasks`: the shared board's tasks (see [`list_page`]).
async fn list_tasks(
    State(state): State<AppState>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    list_page(&state, DEFAULT_BOARD, "/tasks", query.as_deref()).await
}

/// One page of a board's tasks, oldest first unless `order=newest`.
/// When more follow, `Link: <...>; rel="next"` (RFC 8288) gives the next
/// page's address (`path` with the query). A board of any size costs one
/// bounded query. The caller has checked that the board may be read.
pub(crate) async fn list_page(
    state: &AppState,
    board: i64,
    path: &str,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    let q: PageQuery = match query {
        None | Some("") => PageQuery::default(),
        Some(q) => serde_urlencoded::from_str(q).map_err(|e| {
            ApiError::Validation(format!(
                "query: {e} (expected limit, order=oldest|newest, after)"
            ))
        })?,
    };
    let max = app::protocol::TASKS_PAGE_MAX;
    let limit = q.limit.unwrap_or(max);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::Validation(format!("limit: between 1 and {max}")));
    }
    let newest_first = match q.order.as_deref() {
        None | Some("oldest") => false,
        Some("newest") => true,
        Some(other) => {
            return Err(ApiError::Validation(format!(
                "order: \"oldest\" or \"newest\", not {other:?}"
            )))
        }
    };
    let (tasks, more) = state
        .store
        .page(board, newest_first, q.after, limit)
        .await?;
    let next = match tasks.last() {
        Some(last) if more => {
            let order = if newest_first { "newest" } else { "oldest" };
            let link = format!(
                "<{path}?order={order}&after={}&limit={limit}>; rel=\"next\"",
                last.id
            );
            HeaderValue::from_str(&link).ok()
        }
        _ => None,
    };
    let mut resp = axum::Json(tasks).into_response();
    if let Some(link) = next {
        resp.headers_mut().insert(header::LINK, link);
    }
    Ok(resp)
}

async fn get_task(
    State(state): State<AppState>,
    Reader(reader): Reader,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let task = state.store.get(id).await?;
    authorize(
        &state.store,
        task.board_id,
        reader.as_ref(),
        false,
        Need::Read,
    )
    .await?;
    Ok(with_etag(StatusCode::OK, task))
}

/// Checks that `actor` may change tasks on `board`.
async fn may_write(state: &AppState, board: i64, actor: Option<&AuthUser>) -> Result<(), ApiError> {
    let open = state.auth.open_writes;
    authorize(&state.store, board, actor, open, Need::Write).await?;
    Ok(())
}

/// Checks a card's labels: distinct, at most a few, each a label of
/// `board`. Returns them deduplicated, in the order given.
async fn checked_labels(state: &AppState, board: i64, ids: &[i64]) -> Result<Vec<i64>, ApiError> {
    let ids =
        validate_task_labels(ids).map_err(|e| ApiError::Validation(format!("labels: {e}")))?;
    if ids.is_empty() {
        return Ok(ids);
    }
    let missing = state.store.labels().missing(board, &ids).await?;
    if let Some(id) = missing.first() {
        return Err(ApiError::Validation(format!(
            "labels: this board has no label {id}"
        )));
    }
    Ok(ids)
}

/// Checks that an assignee names an account that may work on `board`:
/// any account on the shared board, a member or the owner on the others
/// (a viewer cannot do the work). Only signed-in writers may name one: the
/// answer tells whether an account exists, which a teammate assigning
/// work needs to hear ("no user named ...", not a silent nobody), but an
/// anonymous writer (`--open-writes`) has no business asking. Clearing the
/// assignee needs no account.
async fn checked_assignee(
    state: &AppState,
    board: i64,
    actor: Option<&AuthUser>,
    name: Option<String>,
) -> Result<Option<String>, ApiError> {
    let Some(name) = name else { return Ok(None) };
    if actor.is_none() {
        return Err(ApiError::Unauthorized(
            "sign in to assign a task: anonymous writers cannot name accounts".into(),
        ));
    }
    if state.store.users().by_name(&name).await?.is_none() {
        return Err(ApiError::Validation(format!(
            "assignee: no user named {name:?}"
        )));
    }
    if board != DEFAULT_BOARD {
        let role = match state.store.boards().access(board, Some(&name)).await? {
            Some((_, role)) => role,
            None => return Err(ApiError::BoardNotFound(board)),
        };
        if !role.is_some_and(|r| r.writes()) {
            return Err(ApiError::Validation(format!(
                "assignee: {name:?} is not a member of this board who can work on tasks"
            )));
        }
    }
    Ok(Some(name))
}

/// `POST /tasks`: a task on the shared board (see [`create_on`]).
async fn create_task(
    State(state): State<AppState>,
    Writer(actor): Writer,
    PeerAddr(addr): PeerAddr,
    Json(body): Json<NewTask>,
) -> Result<Response, ApiError> {
    create_on(&state, DEFAULT_BOARD, actor, addr, body).await
}

/// Creates a task on `board`, checking the caller's role there first.
pub(crate) async fn create_on(
    state: &AppState,
    board: i64,
    actor: Option<AuthUser>,
    addr: Option<std::net::IpAddr>,
    body: NewTask,
) -> Result<Response, ApiError> {
    state.rt.ensure_up()?;
    state.rt.publishing(actor.as_ref(), addr)?;
    may_write(state, board, actor.as_ref()).await?;
    let title = validate_title(&body.title).map_err(validation)?;
    let description = body.description.unwrap_or_default();
    validate_description(&description).map_err(validation)?;
    let due = body.due.map(validate_due).transpose().map_err(validation)?;
    let labels = checked_labels(state, board, &body.labels).await?;
    let assignee = checked_assignee(state, board, actor.as_ref(), body.assignee).await?;
    let draft = Draft {
        due,
        labels,
        title,
        description,
        status: body.status.unwrap_or(TaskStatus::Todo),
        created_by: actor.as_ref().map(|u| u.username.clone()),
        assignee,
        board_id: board,
    };
    let task = state.store.create(draft).await?;
    tracing::debug!(task = task.id, "task created");
    let _order = state.task_order.lock(task.id).await;
    state.rt.task_created(&task).await;
    let task = settle_assignee(state, task).await?;
    notify_assignees(state, actor.as_ref(), None, Some(&task)).await;
    let location =
        HeaderValue::from_str(&format!("/tasks/{}", task.id)).map_err(ApiError::internal)?;
    let mut resp = with_etag(StatusCode::CREATED, task);
    resp.headers_mut().insert(header::LOCATION, location);
    Ok(resp)
}

async fn update_task(
    State(state): State<AppState>,
    Writer(actor): Writer,
    PeerAddr(addr): PeerAddr,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(patch): Json<TaskPatch>,
) -> Result<Response, ApiError> {
    state.rt.ensure_up()?;
    state.rt.publishing(actor.as_ref(), addr)?;
    // One write to this task at a time on this instance, from reading
    // what it was to publishing what it became: events go out in version
    // order and the notifications compare the right "before". The same
    // read finds the board whose role the write is checked against.
    let _order = state.task_order.lock(id).await;
    let before = state.store.get(id).await?;
    let board = before.board_id;
    may_write(&state, board, actor.as_ref()).await?;
    let expected = expected_version(&headers)?;
    let title = patch
        .title
        .as_deref()
        .map(validate_title)
        .transpose()
        .map_err(validation)?;
    if let Some(d) = &patch.description {
        validate_description(d).map_err(validation)?;
    }
    let due = match patch.due {
        Some(Some(day)) => Some(Some(validate_due(day).map_err(validation)?)),
        other => other,
    };
    let assignee = match patch.assignee {
        Some(name) => Some(checked_assignee(&state, board, actor.as_ref(), name).await?),
        None => None,
    };
    let labels = match &patch.labels {
        Some(ids) => Some(checked_labels(&state, board, ids).await?),
        None => None,
    };
    let position = match Placement::of(patch.after, &before, patch.status) {
        Some(placement) => {
            let status = patch.status.unwrap_or(before.status);
            Some(placement::position(&state, &before, status, placement).await?)
        }
        None => None,
    };
    let change = Change {
        title,
        description: patch.description,
        status: patch.status,
        assignee,
        due,
        position,
        labels,
    };
    let task = state
        .store
        .update(id, change, expected)
        .await
        .map_err(|e| conditional_error(e, expected))?;
    tracing::debug!(task = task.id, version = task.version, "task updated");
    state.rt.task_updated(&task).await;
    let task = settle_assignee(&state, task).await?;
    notify_assignees(&state, actor.as_ref(), Some(&before), Some(&task)).await;
    Ok(with_etag(StatusCode::OK, task))
}

async fn delete_task(
    State(state): State<AppState>,
    Writer(actor): Writer,
    PeerAddr(addr): PeerAddr,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    state.rt.ensure_up()?;
    state.rt.publishing(actor.as_ref(), addr)?;
    let board = state.store.get(id).await?.board_id;
    may_write(&state, board, actor.as_ref()).await?;
    let expected = expected_version(&headers)?;
    let _order = state.task_order.lock(id).await;
    let task = state
        .store
        .delete(id, expected)
        .await
        .map_err(|e| conditional_error(e, expected))?;
    tracing::debug!(task = task.id, "task deleted");
    state.rt.task_deleted(&task).await;
    notify_assignees(&state, actor.as_ref(), Some(&task), None).await;
    Ok(StatusCode::NO_CONTENT)
}

/// After a write that set an assignee: if that account was deleted while
/// the write ran, the deletion's clearing may have missed this task, so it
/// is taken off here and that change published too (see
/// `TaskStore::settle_assignee`). Returns the task as it now is.
async fn settle_assignee(state: &AppState, task: Task) -> Result<Task, ApiError> {
    let Some(name) = task.assignee.clone() else {
        return Ok(task);
    };
    match state.store.settle_assignee(task.id, &name).await? {
        None => Ok(task),
        Some(cleared) => {
            tracing::info!(
                task = cleared.id,
                "assignee deleted during the write; cleared"
            );
            state.rt.task_updated(&cleared).await;
            Ok(cleared)
        }
    }
}

/// The personal notifications a change causes, as `(username, title,
/// body)`: the assignee hears about every change to their task, a former
/// assignee that it was taken off them. Nobody is notified of their own
/// change.
fn assignee_notices(
    actor: Option<&str>,
    before: Option<&Task>,
    after: Option<&Task>,
) -> Vec<(String, String, String)> {
    let who = actor.unwrap_or("someone");
    let old = before.and_then(|t| t.assignee.as_deref());
    let new = after.and_then(|t| t.assignee.as_deref());
    let mut notices = Vec::new();
    let mut notice = |user: &str, title: &str, body: String| {
        if Some(user) != actor {
            notices.push((user.to_owned(), title.to_owned(), body));
        }
    };
    match (before, after) {
        (None, Some(t)) => {
            if let Some(user) = new {
                notice(
                    user,
                    "Task assigned to you",
                    format!("{who} assigned you “{}”", t.title),
                );
            }
        }
        (Some(b), Some(a)) if old == new => {
            if let Some(user) = new {
                let what = if a.status != b.status {
                    format!("{who} moved “{}” to {}", a.title, a.status.label())
                } else {
                    format!("{who} edited “{}”", a.title)
                };
                notice(user, "Your task changed", what);
            }
        }
        (Some(b), Some(a)) => {
            if let Some(user) = old {
                notice(
                    user,
                    "Task unassigned",
                    format!("{who} took “{}” off you", b.title),
                );
            }
            if let Some(user) = new {
                notice(
                    user,
                    "Task assigned to you",
                    format!("{who} assigned you “{}”", a.title),
                );
            }
        }
        (Some(b), None) => {
            if let Some(user) = old {
                notice(
                    user,
                    "Your task was deleted",
                    format!("{who} deleted “{}”", b.title),
                );
            }
        }
        (None, None) => {}
    }
    notices
}

/// Publishes the personal notifications of a change. Like task events, a
/// broker failure is logged, not returned: the change itself is stored.
async fn notify_assignees(
    state: &AppState,
    actor: Option<&AuthUser>,
    before: Option<&Task>,
    after: Option<&Task>,
) {
    let actor = actor.map(|u| u.username.as_str());
    let sender = actor.unwrap_or("someone");
    for (user, title, body) in assignee_notices(actor, before, after) {
        state.rt.notify_from(sender, &user, title, body).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::IF_MATCH, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn if_match_forms() {
        assert_eq!(expected_version(&HeaderMap::new()).unwrap(), None);
        assert_eq!(expected_version(&headers("*")).unwrap(), None);
        assert_eq!(expected_version(&headers("\"3\"")).unwrap(), Some(3));
        assert_eq!(expected_version(&headers("W/\"4\"")).unwrap(), Some(4));
        assert_eq!(expected_version(&headers("5")).unwrap(), Some(5));
        assert!(expected_version(&headers("\"abc\"")).is_err());
        assert!(expected_version(&headers("\"1\", \"2\"")).is_err());
    }

    fn task(title: &str, status: TaskStatus, assignee: Option<&str>) -> Task {
        let now = chrono::Utc::now();
        Task {
            id: 1,
            title: title.into(),
            description: String::new(),
            status,
            created_at: now,
            updated_at: now,
            version: 1,
            created_by: None,
            assignee: assignee.map(Into::into),
            board_id: DEFAULT_BOARD,
            position: 0,
            due: None,
            labels: Vec::new(),
        }
    }

    #[test]
    fn assignees_hear_about_changes_but_not_their_own() {
        let todo = task("Ship", TaskStatus::Todo, Some("bob"));
        let done = task("Ship", TaskStatus::Done, Some("bob"));
        let to_cy = task("Ship", TaskStatus::Todo, Some("cy"));
        let n = assignee_notices(Some("ann"), None, Some(&todo));
        assert_eq!(
            n,
            vec![(
                "bob".into(),
                "Task assigned to you".into(),
                "ann assigned you “Ship”".into()
            )]
        );
        let n = assignee_notices(Some("ann"), Some(&todo), Some(&done));
        assert_eq!(n[0].2, "ann moved “Ship” to Done");
        let n = assignee_notices(Some("ann"), Some(&todo), Some(&to_cy));
        assert_eq!(
            n.iter().map(|n| n.0.as_str()).collect::<Vec<_>>(),
            ["bob", "cy"]
        );
        let n = assignee_notices(None, Some(&todo), None);
        assert_eq!(
            n,
            vec![(
                "bob".into(),
                "Your task was deleted".into(),
                "someone deleted “Ship”".into()
            )]
        );
        assert!(
            assignee_notices(Some("bob"), Some(&todo), Some(&done)).is_empty(),
            "own change"
        );
        let unassigned = task("Ship", TaskStatus::Todo, None);
        assert!(assignee_notices(Some("ann"), Some(&unassigned), Some(&unassigned)).is_empty());
    }

    #[test]
    fn etag_is_quoted() {
        assert_eq!(etag(12), "\"12\"");
    }
}
