//! Loads a board for its server-rendered page.
//!
//! The page is rendered for an anonymous reader: the browser keeps the
//! token, so the server cannot render a private board for its members.
//! Such a page is rendered with the refusal (401) and the browser loads
//! the board over REST with its token once hydrated; the shared board and
//! public boards are rendered whole, so they read without JavaScript.

use std::sync::Arc;

use app::api::{Failure, Snapshot, TaskSource};
use app::protocol::{board_topic, BoardView, BOARD_PAGE};

use super::{authorize, Need};
use crate::error::ApiError;
use crate::pubsub::Realtime;
use crate::store::TaskStore;

/// The page's way to load board `id`, for [`app::api::load_board`].
pub fn source(store: TaskStore, rt: Realtime, anonymous_writes: bool) -> TaskSource {
    TaskSource(Arc::new(move |id| {
        let store = store.clone();
        let rt = rt.clone();
        Box::pin(async move { load(&store, &rt, id, anonymous_writes).await })
    }))
}

fn failure(e: ApiError) -> Failure {
    if matches!(e, ApiError::Internal(_) | ApiError::Unavailable(_)) {
        tracing::error!(error = %e, "loading a board for its page failed");
    }
    Failure {
        status: Some(e.status().as_u16()),
        message: match e {
            ApiError::Internal(_) => "the task store did not answer".to_owned(),
            e => e.to_string(),
        },
    }
}

async fn load(
    store: &TaskStore,
    rt: &Realtime,
    id: i64,
    anonymous_writes: bool,
) -> Result<Snapshot, Failure> {
    let allowed = authorize(store, id, None, anonymous_writes, Need::Read)
        .await
        .map_err(failure)?;
    // Position first: every change after it is either in the list or
    // replayed to the client, never neither.
    let position = rt.position(&board_topic(id)).await.ok();
    // The newest page only: a board of any size renders in bounded time;
    // older tasks load on request.
    let (tasks, more) = store
        .page(id, true, None, BOARD_PAGE)
        .await
        .map_err(|e| failure(e.into()))?;
    let members = store
        .boards()
        .members(id)
        .await
        .map_err(|e| failure(e.into()))?;
    let labels = store
        .labels()
        .list(id)
        .await
        .map_err(|e| failure(e.into()))?;
    let role = allowed.shown_role();
    let topic = board_topic(id);
    Ok(Snapshot {
        board: Some(BoardView {
            board: allowed.board,
            role,
            topic,
            members: Some(members),
            labels: Some(labels),
        }),
        tasks,
        position,
        more,
    })
}
