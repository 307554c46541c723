//! The REST API for boards and their members.
//!
//! | route | who |
//! |---|---|
//! | `GET /boards` | anyone: the shared board and the caller's boards |
//! | `POST /boards` | any signed-in account, which becomes the owner |
//! | `GET /boards/{id}` | whoever may read the board; with its members and labels |
//! | `PATCH /boards/{id}`, `DELETE /boards/{id}` | the owner |
//! | `GET /boards/{id}/members` | whoever may read the board |
//! | `PUT /boards/{id}/members/{username}` | the owner (invite, change role) |
//! | `DELETE /boards/{id}/members/{username}` | the owner, or the member leaving |
//! | `GET`, `POST /boards/{id}/tasks` | readers, writers (as `/tasks`) |
//!
//! Changes to a board are published on its topic (`board:<id>`) as
//! `board_updated`, `board_deleted`, `member_set` and `member_removed`;
//! invited members also hear about it on their personal topic.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;

use app::protocol::{
    board_topic, validate_board_name, validate_visibility, Board, BoardPatch, BoardView,
    MemberRole, NewBoard, NewTask, Payload, Role, Visibility,
};

use super::{authorize, Allowed, Need};
use crate::auth::{Reader, RequireUser, Writer};
use crate::client_addr::PeerAddr;
use crate::error::{ApiError, Json, Path};
use crate::state::AppState;
use crate::store::StoreError;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/boards", get(list_boards).post(create_board))
        .route(
            "/boards/{id}",
            get(get_board).patch(update_board).delete(delete_board),
        )
        .route("/boards/{id}/members", get(list_members))
        .route(
            "/boards/{id}/members/{username}",
            put(set_member).delete(remove_member),
        )
        .route("/boards/{id}/tasks", get(list_tasks).post(create_task))
}

fn view(board: Board, role: Option<Role>) -> BoardView {
    let topic = board_topic(board.id);
    BoardView {
        board,
        role,
        topic,
        members: None,
        labels: None,
    }
}

/// Checks that `reader` may read board `id`.
async fn readable(
    state: &AppState,
    id: i64,
    reader: Option<&crate::auth::AuthUser>,
) -> Result<Allowed, ApiError> {
    let open = state.auth.open_writes;
    authorize(&state.store, id, reader, open, Need::Read).await
}

fn validation(e: impl std::fmt::Display) -> ApiError {
    ApiError::Validation(e.to_string())
}

/// `GET /boards`: the shared board and every board the caller is a
/// member of, oldest first, each with the caller's role.
async fn list_boards(
    State(state): State<AppState>,
    Reader(reader): Reader,
) -> Result<Response, ApiError> {
    let name = reader.as_ref().map(|u| u.username.as_str());
    let boards = state.store.boards().for_user(name).await?;
    let open = state.auth.open_writes;
    let views: Vec<BoardView> = boards
        .into_iter()
        .map(|(board, membership)| {
            let role = super::acting_role(&board, membership, reader.is_some(), open);
            view(board, role)
        })
        .collect();
    Ok(axum::Json(views).into_response())
}

/// `POST /boards`: a new board owned by the caller, private unless asked.
async fn create_board(
    State(state): State<AppState>,
    RequireUser(user): RequireUser,
    Json(body): Json<NewBoard>,
) -> Result<Response, ApiError> {
    let name = validate_board_name(&body.name).map_err(validation)?;
    let visibility =
        validate_visibility(body.visibility.unwrap_or(Visibility::Private)).map_err(validation)?;
    let board = state
        .store
        .boards()
        .create(&user.username, &name, visibility)
        .await?;
    tracing::info!(board = board.id, "board created");
    let location =
        HeaderValue::from_str(&format!("/boards/{}", board.id)).map_err(ApiError::internal)?;
    let members = state.store.boards().members(board.id).await?;
    let mut body = view(board, Some(Role::Owner));
    body.members = Some(members);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(body),
    )
        .into_response())
}

/// `GET /boards/{id}`: the board, the caller's role and its members.
async fn get_board(
    State(state): State<AppState>,
    Reader(reader): Reader,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let allowed = readable(&state, id, reader.as_ref()).await?;
    let members = state.store.boards().members(id).await?;
    let role = allowed.shown_role();
    let mut body = view(allowed.board, role);
    body.members = Some(members);
    body.labels = Some(state.store.labels().list(id).await?);
    Ok(axum::Json(body).into_response())
}

/// `PATCH /boards/{id}`: rename, or make public or private (owner only).
async fn update_board(
    State(state): State<AppState>,
    RequireUser(user): RequireUser,
    Path(id): Path<i64>,
    Json(patch): Json<BoardPatch>,
) -> Result<Response, ApiError> {
    authorize(&state.store, id, Some(&user), false, Need::Manage).await?;
    let name = patch
        .name
        .as_deref()
        .map(validate_board_name)
        .transpose()
        .map_err(validation)?;
    let visibility = patch
        .visibility
        .map(validate_visibility)
        .transpose()
        .map_err(validation)?;
    let board = state
        .store
        .boards()
        .update(id, name, visibility)
        .await?
        .ok_or(ApiError::BoardNotFound(id))?;
    state
        .rt
        .board_event(
            id,
            Payload::BoardUpdated {
                board: board.clone(),
            },
        )
        .await;
    Ok(axum::Json(view(board, Some(Role::Owner))).into_response())
}

/// `DELETE /boards/{id}`: the board, its tasks and its members (owner
/// only). Subscribers get `board_deleted` as the topic's last event.
async fn delete_board(
    State(state): State<AppState>,
    RequireUser(user): RequireUser,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    authorize(&state.store, id, Some(&user), false, Need::Manage).await?;
    if !state.store.boards().delete(id).await? {
        return Err(ApiError::BoardNotFound(id));
    }
    tracing::info!(board = id, "board deleted");
    state.rt.board_event(id, Payload::BoardDeleted { id }).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /boards/{id}/members`.
async fn list_members(
    State(state): State<AppState>,
    Reader(reader): Reader,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    readable(&state, id, reader.as_ref()).await?;
    Ok(axum::Json(state.store.boards().members(id).await?).into_response())
}

/// `PUT /boards/{id}/members/{username}` with `{"role": ...}`: invites an
/// account or changes its role (owner only). 201 for a new member, 200
/// for a changed one.
async fn set_member(
    State(state): State<AppState>,
    RequireUser(user): RequireUser,
    Path((id, username)): Path<(i64, String)>,
    Json(body): Json<MemberRole>,
) -> Result<Response, ApiError> {
    let allowed = authorize(&state.store, id, Some(&user), false, Need::Manage).await?;
    if body.role == Role::Owner {
        return Err(ApiError::Validation(
            "role: \"member\" or \"viewer\"; a board has one owner".into(),
        ));
    }
    app::protocol::validate_username(&username)
        .map_err(|e| ApiError::Validation(format!("username: {e}")))?;
    let set = state
        .store
        .boards()
        .set_member(id, &username, body.role)
        .await
        .map_err(|e| match e {
            StoreError::UserNotFound => {
                ApiError::Validation(format!("username: no user named {username:?}"))
            }
            other => other.into(),
        })?;
    let Some((member, is_new)) = set else {
        return Err(ApiError::Validation(
            "the owner's role cannot change".into(),
        ));
    };
    tracing::info!(board = id, role = member.role.as_str(), "member set");
    state
        .rt
        .board_event(
            id,
            Payload::MemberSet {
                member: member.clone(),
            },
        )
        .await;
    let (title, verb) = if is_new {
        ("Added to a board", "added you to")
    } else {
        ("Your role changed", "changed your role on")
    };
    let body_text = format!(
        "{} {verb} “{}” as a {}",
        user.username,
        allowed.board.name,
        member.role.as_str()
    );
    state
        .rt
        .notify_from(&user.username, &member.username, title.into(), body_text)
        .await;
    let status = if is_new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(member)).into_response())
}

/// `DELETE /boards/{id}/members/{username}`: the owner removes a member,
/// or a member leaves. The owner cannot leave (delete the board instead).
async fn remove_member(
    State(state): State<AppState>,
    RequireUser(user): RequireUser,
    Path((id, username)): Path<(i64, String)>,
) -> Result<StatusCode, ApiError> {
    app::protocol::validate_username(&username)
        .map_err(|e| ApiError::Validation(format!("username: {e}")))?;
    let leaving = username == user.username;
    let need = if leaving { Need::Read } else { Need::Manage };
    let allowed = authorize(&state.store, id, Some(&user), false, need).await?;
    if leaving && allowed.membership == Some(Role::Owner) {
        return Err(ApiError::Validation(
            "the owner cannot leave the board; delete it instead".into(),
        ));
    }
    if !leaving && allowed.board.owner.as_deref() == Some(username.as_str()) {
        return Err(ApiError::Validation(
            "the owner cannot be removed from the board".into(),
        ));
    }
    if !state.store.boards().remove_member(id, &username).await? {
        return Err(ApiError::MemberNotFound(username));
    }
    tracing::info!(board = id, leaving, "member removed");
    // On the board's topic: their subscriptions to it end with this event
    // when the board is private (see `ws::board_access`).
    let visibility = allowed.board.visibility;
    state
        .rt
        .board_event(
            id,
            Payload::MemberRemoved {
                username,
                visibility,
            },
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /boards/{id}/tasks`: a page of the board's tasks, as `/tasks`.
async fn list_tasks(
    State(state): State<AppState>,
    Reader(reader): Reader,
    Path(id): Path<i64>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    readable(&state, id, reader.as_ref()).await?;
    let path = format!("/boards/{id}/tasks");
    crate::rest::list_page(&state, id, &path, query.as_deref()).await
}

/// `POST /boards/{id}/tasks`: a task on the board, as `POST /tasks`.
async fn create_task(
    State(state): State<AppState>,
    Writer(actor): Writer,
    PeerAddr(addr): PeerAddr,
    Path(id): Path<i64>,
    Json(body): Json<NewTask>,
) -> Result<Response, ApiError> {
    crate::rest::create_on(&state, id, actor, addr, body).await
}
