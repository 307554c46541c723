//! How the UI reaches the task store.
//!
//! During server rendering the server hands the page a [`TaskSource`] through
//! Leptos context, so `app` never depends on the database crates. In the
//! browser the same operations go over the REST API; requests carry the
//! signed-in user's bearer token (reads too: a private board is readable
//! by its members only), and a refusal keeps its status so the caller can
//! tell an expired session (401) from any other error.

use serde::{Deserialize, Serialize};

pub use crate::auth::Failure;
use crate::protocol::{BoardView, StreamPosition, Task, DEFAULT_BOARD};
#[cfg(feature = "hydrate")]
use crate::{
    auth::{bearer, read_json, send},
    protocol::{
        Board, BoardPatch, Label, LabelColor, Member, MemberRole, NewBoard, NewLabel, NewTask,
        Role, TaskPatch,
    },
};
#[cfg(feature = "hydrate")]
use gloo_net::http::{Request, RequestBuilder};

/// What a board page starts from: the board, its newest tasks and the
/// position of its topic read just before them. The live connection
/// resumes from that position, so a change made between rendering and
/// connecting is not lost (one already in the list is recognised by its
/// version).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The board with the reader's role and its members.
    #[serde(default)]
    pub board: Option<BoardView>,
    /// The newest tasks, at most [`BOARD_PAGE`](crate::protocol::BOARD_PAGE).
    pub tasks: Vec<Task>,
    pub position: Option<StreamPosition>,
    /// Older tasks exist beyond these.
    #[serde(default)]
    pub more: bool,
}

/// The server's way of loading a board while rendering (as an anonymous
/// reader: the token lives in the browser), provided as context.
#[cfg(feature = "ssr")]
#[derive(Clone)]
pub struct TaskSource(
    pub  std::sync::Arc<
        dyn Fn(i64) -> futures::future::BoxFuture<'static, Result<Snapshot, Failure>> + Send + Sync,
    >,
);

/// Where a board's tasks are listed and created: `/tasks` for the shared
/// board (as before boards), `/boards/{id}/tasks` for the others.
pub fn tasks_path(board: i64) -> String {
    if board == DEFAULT_BOARD {
        "/tasks".to_owned()
    } else {
        format!("/boards/{board}/tasks")
    }
}

/// The page address of a board.
pub fn board_page(board: i64) -> String {
    if board == DEFAULT_BOARD {
        "/".to_owned()
    } else {
        format!("/b/{board}")
    }
}

/// Loads the snapshot of `board`: from the store during SSR (as an
/// anonymous reader); over REST in the browser with `token`, after signing
/// in (a private board) and to reload after the live connection reported
/// a gap (the subscription's own position then covers what follows).
pub fn load_board(
    board: i64,
    token: Option<String>,
) -> impl std::future::Future<Output = Result<Snapshot, Failure>> + Send + 'static {
    #[cfg(feature = "ssr")]
    {
        let _ = token;
        let source = leptos::prelude::use_context::<TaskSource>();
        async move {
            match source {
                Some(source) => (source.0)(board).await,
                None => Err(Failure {
                    status: None,
                    message: "the task store is not available".to_owned(),
                }),
            }
        }
    }
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    {
        send_wrapper::SendWrapper::new(async move {
            let view = get_board(board, token.as_deref()).await?;
            let (tasks, more) = older_tasks(board, token.as_deref(), None).await?;
            Ok(Snapshot {
                board: Some(view),
                tasks,
                position: None,
                more,
            })
        })
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    {
        let _ = (board, token);
        std::future::ready(Err(Failure {
            status: None,
            message: "built without the ssr or hydrate feature".to_owned(),
        }))
    }
}

/// Adds the bearer token when there is one.
#[cfg(feature = "hydrate")]
fn maybe_bearer(req: RequestBuilder, token: Option<&str>) -> RequestBuilder {
    match token {
        Some(token) => bearer(req, token),
        None => req,
    }
}

/// `GET /boards/{id}`: the board, the caller's role and its members.
#[cfg(feature = "hydrate")]
pub async fn get_board(board: i64, token: Option<&str>) -> Result<BoardView, Failure> {
    let req = maybe_bearer(Request::get(&format!("/boards/{board}")), token);
    read_json(send(req.build().map_err(local)?).await?, 200).await
}

/// `GET /boards`: the shared board and the caller's boards.
#[cfg(feature = "hydrate")]
pub async fn list_boards(token: Option<&str>) -> Result<Vec<BoardView>, Failure> {
    let req = maybe_bearer(Request::get("/boards"), token);
    read_json(send(req.build().map_err(local)?).await?, 200).await
}

/// `POST /boards`.
#[cfg(feature = "hydrate")]
pub async fn create_board(token: &str, body: NewBoard) -> Result<BoardView, Failure> {
    let req = bearer(Request::post("/boards"), token)
        .json(&body)
        .map_err(local)?;
    read_json(send(req).await?, 201).await
}

/// `PATCH /boards/{id}`.
#[cfg(feature = "hydrate")]
pub async fn update_board(token: &str, board: i64, patch: BoardPatch) -> Result<Board, Failure> {
    let req = bearer(Request::patch(&format!("/boards/{board}")), token)
        .json(&patch)
        .map_err(local)?;
    let view: BoardView = read_json(send(req).await?, 200).await?;
    Ok(view.board)
}

/// `DELETE /boards/{id}`.
#[cfg(feature = "hydrate")]
pub async fn delete_board(token: &str, board: i64) -> Result<(), Failure> {
    let req = bearer(Request::delete(&format!("/boards/{board}")), token);
    no_content(send(req.build().map_err(local)?).await?).await
}

/// `PUT /boards/{id}/members/{username}`: invite, or change a role.
#[cfg(feature = "hydrate")]
pub async fn set_member(
    token: &str,
    board: i64,
    username: &str,
    role: Role,
) -> Result<Member, Failure> {
    let url = format!("/boards/{board}/members/{username}");
    let req = bearer(Request::put(&url), token)
        .json(&MemberRole { role })
        .map_err(local)?;
    let resp = send(req).await?;
    let expected = if resp.status() == 201 { 201 } else { 200 };
    read_json(resp, expected).await
}

/// `POST /boards/{id}/labels`: a new label.
#[cfg(feature = "hydrate")]
pub async fn create_label(
    token: &str,
    board: i64,
    name: String,
    color: LabelColor,
) -> Result<Label, Failure> {
    let req = bearer(Request::post(&format!("/boards/{board}/labels")), token)
        .json(&NewLabel { name, color })
        .map_err(local)?;
    read_json(send(req).await?, 201).await
}

/// `DELETE /boards/{id}/labels/{label}`.
#[cfg(feature = "hydrate")]
pub async fn delete_label(token: &str, board: i64, label: i64) -> Result<(), Failure> {
    let req = bearer(
        Request::delete(&format!("/boards/{board}/labels/{label}")),
        token,
    )
    .build()
    .map_err(local)?;
    no_content(send(req).await?).await
}

/// `DELETE /boards/{id}/members/{username}`: remove a member, or leave.
#[cfg(feature = "hydrate")]
pub async fn remove_member(token: &str, board: i64, username: &str) -> Result<(), Failure> {
    let url = format!("/boards/{board}/members/{username}");
    let req = bearer(Request::delete(&url), token);
    no_content(send(req.build().map_err(local)?).await?).await
}

/// A 204, or the API's error.
#[cfg(feature = "hydrate")]
async fn no_content(resp: gloo_net::http::Response) -> Result<(), Failure> {
    if resp.status() == 204 {
        return Ok(());
    }
    read_json::<serde_json::Value>(resp, 204).await.map(|_| ())
}

/// One page of a board's tasks older than `before` (the newest page
/// without it), newest first, and whether more follow (the answer has a
/// `next` link).
#[cfg(feature = "hydrate")]
pub async fn older_tasks(
    board: i64,
    token: Option<&str>,
    before: Option<i64>,
) -> Result<(Vec<Task>, bool), Failure> {
    let mut url = format!(
        "{}?order=newest&limit={}",
        tasks_path(board),
        crate::protocol::BOARD_PAGE
    );
    if let Some(id) = before {
        url.push_str(&format!("&after={id}"));
    }
    let req = maybe_bearer(Request::get(&url), token);
    let resp = send(req.build().map_err(local)?).await?;
    let more = resp
        .headers()
        .get("link")
        .is_some_and(|l| l.contains("rel=\"next\""));
    let tasks = read_json(resp, 200).await?;
    Ok((tasks, more))
}

/// `POST` a task to a board, as the signed-in user.
#[cfg(feature = "hydrate")]
pub async fn create_task(token: &str, board: i64, body: NewTask) -> Result<Task, Failure> {
    let req = bearer(Request::post(&tasks_path(board)), token)
        .json(&body)
        .map_err(local)?;
    read_json(send(req).await?, 201).await
}

/// `PATCH /tasks/{id}` with `If-Match`, so a stale card never overwrites a
/// newer edit.
#[cfg(feature = "hydrate")]
pub async fn update_task(
    token: &str,
    id: i64,
    version: i64,
    patch: TaskPatch,
) -> Result<Task, Failure> {
    let req = bearer(Request::patch(&format!("/tasks/{id}")), token)
        .header("If-Match", &format!("\"{version}\""))
        .json(&patch)
        .map_err(local)?;
    read_json(send(req).await?, 200).await
}

/// `DELETE /tasks/{id}` with `If-Match`.
#[cfg(feature = "hydrate")]
pub async fn delete_task(token: &str, id: i64, version: i64) -> Result<(), Failure> {
    let req = bearer(Request::delete(&format!("/tasks/{id}")), token)
        .header("If-Match", &format!("\"{version}\""))
        .build()
        .map_err(local)?;
    no_content(send(req).await?).await
}

/// A request that could not even be built.
#[cfg(feature = "hydrate")]
fn local(e: gloo_net::Error) -> Failure {
    Failure {
        status: None,
        message: e.to_string(),
    }
}
