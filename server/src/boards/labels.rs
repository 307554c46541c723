//! The REST API for a board's labels.
//!
//! | route | who |
//! |---|---|
//! | `GET /boards/{id}/labels` | whoever may read the board |
//! | `POST /boards/{id}/labels` | signed-in writers of the board |
//! | `PATCH`, `DELETE /boards/{id}/labels/{label}` | signed-in writers of the board |
//!
//! Changes are published on the board's topic as `label_set` and
//! `label_removed`. Deleting a label takes it off the board's cards without
//! a new version of each: readers drop label ids they do not know.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::Router;

use app::protocol::{validate_label_name, LabelPatch, NewLabel, Payload};

use super::{authorize, Need};
use crate::auth::{Reader, RequireUser};
use crate::error::{ApiError, Json, Path};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/boards/{id}/labels", get(list_labels).post(create_label))
        .route(
            "/boards/{id}/labels/{label}",
            patch(update_label).delete(delete_label),
        )
}

fn validation(e: impl std::fmt::Display) -> ApiError {
    ApiError::Validation(e.to_string())
}

/// `GET /boards/{id}/labels`: the board's labels, by name.
async fn list_labels(
    State(state): State<AppState>,
    Reader(reader): Reader,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let open = state.auth.open_writes;
    authorize(&state.store, id, reader.as_ref(), open, Need::Read).await?;
    Ok(axum::Json(state.store.labels().list(id).await?).into_response())
}

/// `POST /boards/{id}/labels`: a new label.
async fn create_label(
    State(state): State<AppState>,
    RequireUser(user): RequireUser,
    Path(id): Path<i64>,
    Json(body): Json<NewLabel>,
) -> Result<Response, ApiError> {
    authorize(&state.store, id, Some(&user), false, Need::Write).await?;
    let name = validate_label_name(&body.name).map_err(validation)?;
    let label = state.store.labels().create(id, &name, body.color).await?;
    tracing::info!(board = id, label = label.id, "label created");
    state
        .rt
        .board_event(
            id,
            Payload::LabelSet {
                label: label.clone(),
            },
        )
        .await;
    Ok((StatusCode::CREATED, axum::Json(label)).into_response())
}

/// `PATCH /boards/{id}/labels/{label}`: rename or recolour.
async fn update_label(
    State(state): State<AppState>,
    RequireUser(user): RequireUser,
    Path((id, label)): Path<(i64, i64)>,
    Json(body): Json<LabelPatch>,
) -> Result<Response, ApiError> {
    authorize(&state.store, id, Some(&user), false, Need::Write).await?;
    let name = body
        .name
        .as_deref()
        .map(validate_label_name)
        .transpose()
        .map_err(validation)?;
    let label = state
        .store
        .labels()
        .update(id, label, name.as_deref(), body.color)
        .await?
        .ok_or(ApiError::LabelNotFound(label))?;
    state
        .rt
        .board_event(
            id,
            Payload::LabelSet {
                label: label.clone(),
            },
        )
        .await;
    Ok(axum::Json(label).into_response())
}

/// `DELETE /boards/{id}/labels/{label}`: the label, taken off every card.
async fn delete_label(
    State(state): State<AppState>,
    RequireUser(user): RequireUser,
    Path((id, label)): Path<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    authorize(&state.store, id, Some(&user), false, Need::Write).await?;
    if !state.store.labels().delete(id, label).await? {
        return Err(ApiError::LabelNotFound(label));
    }
    tracing::info!(board = id, label, "label deleted");
    state
        .rt
        .board_event(id, Payload::LabelRemoved { id: label })
        .await;
    Ok(StatusCode::NO_CONTENT)
}
