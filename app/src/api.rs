//! How the UI reaches the task store.
//!
//! During server rendering the server hands the page a [`TaskSource`] through
//! Leptos context, so `app` never depends on the database crates. In the
//! browser the same operations go over the REST API.

use serde::{Deserialize, Serialize};

use crate::protocol::{StreamPosition, Task};
#[cfg(feature = "hydrate")]
use crate::protocol::{ErrorBody, NewTask, TaskPatch};

/// A failure the UI can show as is.
pub type UiError = String;

/// What the page starts from: the task list and the position of the
/// `tasks` topic read just before it. The live connection resumes from that
/// position, so a change made between rendering and connecting is not lost
/// (one already in the list is recognised by its version).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub tasks: Vec<Task>,
    pub position: Option<StreamPosition>,
}

/// The server's way of listing tasks while rendering, provided as context.
#[cfg(feature = "ssr")]
#[derive(Clone)]
pub struct TaskSource(
    pub std::sync::Arc<
        dyn Fn() -> futures::future::BoxFuture<'static, Result<Snapshot, UiError>> + Send + Sync,
    >,
);

/// Loads the snapshot: from the store during SSR; over REST in the browser,
/// where it is only needed to reload after the live connection reported a
/// gap (the subscription's own position then covers what follows).
pub fn load_tasks() -> impl std::future::Future<Output = Result<Snapshot, UiError>> + Send + 'static {
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
            let resp = gloo_net::http::Request::get("/tasks")
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let tasks = read_json(resp, 200).await?;
            Ok(Snapshot { tasks, position: None })
        })
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    {
        std::future::ready(Err("built without the ssr or hydrate feature".to_owned()))
    }
}

/// Reads a JSON body if the status is the expected one, or the API's error
/// message if not.
#[cfg(feature = "hydrate")]
async fn read_json<T: serde::de::DeserializeOwned>(
    resp: gloo_net::http::Response,
    expected: u16,
) -> Result<T, UiError> {
    if resp.status() == expected {
        return resp.json::<T>().await.map_err(|e| e.to_string());
    }
    let status = resp.status();
    match resp.json::<ErrorBody>().await {
        Ok(body) => Err(body.message),
        Err(_) => Err(format!("the server answered {status}")),
    }
}

/// `POST /tasks`.
#[cfg(feature = "hydrate")]
pub async fn create_task(body: NewTask) -> Result<Task, UiError> {
    let resp = gloo_net::http::Request::post("/tasks")
        .json(&body)
        .map_err(|e| e.to_string())?
        .send()
        .await
        .map_err(|e| e.to_string())?;
    read_json(resp, 201).await
}

/// `PATCH /tasks/{id}` with `If-Match`, so a stale card never overwrites a
/// newer edit.
#[cfg(feature = "hydrate")]
pub async fn update_task(id: i64, version: i64, patch: TaskPatch) -> Result<Task, UiError> {
    let resp = gloo_net::http::Request::patch(&format!("/tasks/{id}"))
        .header("If-Match", &format!("\"{version}\""))
        .json(&patch)
        .map_err(|e| e.to_string())?
        .send()
        .await
        .map_err(|e| e.to_string())?;
    read_json(resp, 200).await
}

/// `DELETE /tasks/{id}` with `If-Match`.
#[cfg(feature = "hydrate")]
pub async fn delete_task(id: i64, version: i64) -> Result<(), UiError> {
    let resp = gloo_net::http::Request::delete(&format!("/tasks/{id}"))
        .header("If-Match", &format!("\"{version}\""))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if resp.status() == 204 {
        return Ok(());
    }
    read_json::<serde_json::Value>(resp, 204).await.map(|_| ())
}
