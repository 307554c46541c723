//! How the UI reaches the task store.
//!
//! During server rendering the server hands the page a [`TaskSource`] through
//! Leptos context, so `app` never depends on the database crates. In the
//! browser the same operations go over the REST API; writes carry the
//! signed-in user's bearer token, and a refusal keeps its status so the
//! caller can tell an expired session (401) from any other error.

use serde::{Deserialize, Serialize};

use crate::protocol::{StreamPosition, Task};
#[cfg(feature = "hydrate")]
use crate::{
    auth::{bearer, read_json, send, Failure},
    protocol::{NewTask, TaskPatch},
};
#[cfg(feature = "hydrate")]
use gloo_net::http::Request;

/// A failure the UI can show as is.
pub type UiError = String;

/// What the page starts from: the task list and the position of the
/// `tasks` topic read just before it. The live connection resumes from that
/// position, so a change made between rendering and connecting is not lost
/// (one already in the list is recognised by its version).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The newest tasks, at most [`BOARD_PAGE`](crate::protocol::BOARD_PAGE).
    pub tasks: Vec<Task>,
    pub position: Option<StreamPosition>,
    /// Older tasks exist beyond these.
    #[serde(default)]
    pub more: bool,
}

/// The server's way of listing tasks while rendering, provided as context.
#[cfg(feature = "ssr")]
#[derive(Clone)]
pub struct TaskSource(
    pub  std::sync::Arc<
        dyn Fn() -> futures::future::BoxFuture<'static, Result<Snapshot, UiError>> + Send + Sync,
    >,
);

/// Loads the snapshot: from the store during SSR; over REST in the browser,
/// where it is only needed to reload after the live connection reported a
/// gap (the subscription's own position then covers what follows).
pub fn load_tasks() -> impl std::future::Future<Output = Result<Snapshot, UiError>> + Send + 'static
{
    #[cfg(feature = "ssr")]
    {
        let source = leptos::prelude::use_context::<TaskSource>();
        async move {
            match source {
                Some(source) => (source.0)().await,
                None => Err("the task store is not available".to_owned()),
            }
        }
    }
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    {
        send_wrapper::SendWrapper::new(async move {
            let (tasks, more) = older_tasks(None).await.map_err(|f| f.message)?;
            Ok(Snapshot {
                tasks,
                position: None,
                more,
            })
        })
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    {
        std::future::ready(Err("built without the ssr or hydrate feature".to_owned()))
    }
}

/// One page of tasks older than `before` (the newest page without it),
/// newest first, and whether more follow (the answer has a `next` link).
#[cfg(feature = "hydrate")]
pub async fn older_tasks(before: Option<i64>) -> Result<(Vec<Task>, bool), Failure> {
    let mut url = format!("/tasks?order=newest&limit={}", crate::protocol::BOARD_PAGE);
    if let Some(id) = before {
        url.push_str(&format!("&after={id}"));
    }
    let resp = send(Request::get(&url).build().map_err(local)?).await?;
    let more = resp
        .headers()
        .get("link")
        .is_some_and(|l| l.contains("rel=\"next\""));
    let tasks = read_json(resp, 200).await?;
    Ok((tasks, more))
}

/// `POST /tasks`, as the signed-in user.
#[cfg(feature = "hydrate")]
pub async fn create_task(token: &str, body: NewTask) -> Result<Task, Failure> {
    let req = bearer(Request::post("/tasks"), token)
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
    let resp = send(req).await?;
    if resp.status() == 204 {
        return Ok(());
    }
    read_json::<serde_json::Value>(resp, 204).await.map(|_| ())
}

/// A request that could not even be built.
#[cfg(feature = "hydrate")]
fn local(e: gloo_net::Error) -> Failure {
    Failure {
        status: None,
        message: e.to_string(),
    }
}
