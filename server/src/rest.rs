//! The REST API for tasks.
//!
//! Handlers validate, call the store, and answer with the task as JSON and
//! its version as a strong `ETag`. `PATCH` and `DELETE` honour `If-Match`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use app::protocol::{validate_description, validate_title, NewTask, Task, TaskPatch, TaskStatus};

use crate::error::{ApiError, Json, Path};
use crate::state::AppState;
use crate::store::{Change, Draft, StoreError};

/// The task routes, to be merged into the application router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tasks", get(list_tasks).post(create_task))
        .route("/tasks/{id}", get(get_task).patch(update_task).delete(delete_task))
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
    let text = value.to_str().map_err(|_| ApiError::BadPrecondition)?.trim();
    if text == "*" {
        return Ok(None);
    }
    let text = text.strip_prefix("W/").unwrap_or(text);
    let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
    text.parse::<i64>().map(Some).map_err(|_| ApiError::BadPrecondition)
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => ApiError::TaskNotFound(id),
            StoreError::Conflict(current) => ApiError::VersionMismatch {
                expected: 0,
                current,
            },
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

async fn list_tasks(State(state): State<AppState>) -> Result<axum::Json<Vec<Task>>, ApiError> {
    Ok(axum::Json(state.store.list().await?))
}

async fn get_task(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    Ok(with_etag(StatusCode::OK, state.store.get(id).await?))
}

async fn create_task(
    State(state): State<AppState>,
    Json(body): Json<NewTask>,
) -> Result<Response, ApiError> {
    let title = validate_title(&body.title).map_err(validation)?;
    let description = body.description.unwrap_or_default();
    validate_description(&description).map_err(validation)?;
    let draft = Draft { title, description, status: body.status.unwrap_or(TaskStatus::Todo) };
    let task = state.store.create(draft).await?;
    tracing::info!(task = task.id, "task created");
    state.rt.task_created(&task).await;
    let location = HeaderValue::from_str(&format!("/tasks/{}", task.id))
        .map_err(ApiError::internal)?;
    let mut resp = with_etag(StatusCode::CREATED, task);
    resp.headers_mut().insert(header::LOCATION, location);
    Ok(resp)
}

async fn update_task(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(patch): Json<TaskPatch>,
) -> Result<Response, ApiError> {
    let expected = expected_version(&headers)?;
    let title = patch.title.as_deref().map(validate_title).transpose().map_err(validation)?;
    if let Some(d) = &patch.description {
        validate_description(d).map_err(validation)?;
    }
    let change = Change { title, description: patch.description, status: patch.status };
    let task = state
        .store
        .update(id, change, expected)
        .await
        .map_err(|e| conditional_error(e, expected))?;
    tracing::info!(task = task.id, version = task.version, "task updated");
    state.rt.task_updated(&task).await;
    Ok(with_etag(StatusCode::OK, task))
}

async fn delete_task(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let expected = expected_version(&headers)?;
    let task = state
        .store
        .delete(id, expected)
        .await
        .map_err(|e| conditional_error(e, expected))?;
    tracing::info!(task = task.id, "task deleted");
    state.rt.task_deleted(&task).await;
    Ok(StatusCode::NO_CONTENT)
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

    #[test]
    fn etag_is_quoted() {
        assert_eq!(etag(12), "\"12\"");
    }
}
