//! The three status columns and their cards.

use leptos::prelude::*;

use super::{Dispatch, Here, SIGN_IN_HINT};
use crate::auth::Auth;
use crate::board::Board;
use crate::protocol::{Task, TaskStatus};
#[cfg(feature = "hydrate")]
use crate::{
    board::Action,
    protocol::{Level, TaskPatch},
};

/// One column per status, each listing its tasks in id order.
#[component]
pub fn Columns(
    base: Vec<Task>,
    board: RwSignal<Board>,
    dispatch: Dispatch,
    auth: Auth,
    here: Here,
) -> impl IntoView {
    let base = StoredValue::new(base);
    TaskStatus::ALL
        .into_iter()
        .map(|status| {
            let tasks = move || base.with_value(|b| board.with(|bd| bd.column(b, status)));
            let count = move || tasks().len();
            view! {
                <div class="column" data-testid=format!("column-{}", status.as_str())>
                    <h2 class="column-title">
                        <span class=format!("dot dot-{}", status.as_str())></span>
                        {status.label()}
                        <span class="count">{count}</span>
                    </h2>
                    <ul class="cards">
                        <For each=tasks key=|t| (t.id, t.version) let:task>
                            <TaskCard task dispatch auth here/>
                        </For>
                    </ul>
                    <Show when=move || count() == 0>
                        <p class="empty">"Nothing here yet."</p>
                    </Show>
                </div>
            }
        })
        .collect_view()
}

/// The status a card moves to with its "back" and "forward" buttons.
fn neighbours(status: TaskStatus) -> (Option<TaskStatus>, Option<TaskStatus>) {
    match status {
        TaskStatus::Todo => (None, Some(TaskStatus::Doing)),
        TaskStatus::Doing => (Some(TaskStatus::Todo), Some(TaskStatus::Done)),
        TaskStatus::Done => (Some(TaskStatus::Doing), None),
    }
}

/// The signed-in user's token, or a toast saying that signing in is needed.
/// The buttons are disabled while signed out, so this is a safety net.
#[cfg(feature = "hydrate")]
fn token_or_hint(auth: Auth, dispatch: Dispatch) -> Option<String> {
    let token = auth.session_untracked().map(|s| s.token);
    if token.is_none() {
        dispatch.run(Action::Notify(Level::Warning, SIGN_IN_HINT.into()));
    }
    token
}

/// Shows a failed write, unless it ended the session (which toasts itself).
#[cfg(feature = "hydrate")]
fn report(auth: Auth, dispatch: Dispatch, failure: crate::auth::Failure) {
    if let Some(message) = super::write_failed(auth, dispatch, failure) {
        dispatch.run(Action::Notify(Level::Error, message));
    }
}

/// A card: title, description, who made it and who has it, and buttons to
/// move or delete it (on the shared board disabled while signed out; on
/// other boards there only for those who may use them).
#[component]
fn TaskCard(task: Task, dispatch: Dispatch, auth: Auth, here: Here) -> impl IntoView {
    #[cfg(not(feature = "hydrate"))]
    let _ = auth;
    let (back, forward) = neighbours(task.status);
    let id = task.id;
    let version = task.version;
    let move_to = move |target: TaskStatus| {
        #[cfg(feature = "hydrate")]
        {
            let Some(token) = token_or_hint(auth, dispatch) else {
                return;
            };
            leptos::task::spawn_local(async move {
                let patch = TaskPatch {
                    status: Some(target),
                    ..TaskPatch::default()
                };
                match crate::api::update_task(&token, id, version, patch).await {
                    Ok(task) => dispatch.run(Action::Upsert(task)),
                    Err(e) => report(auth, dispatch, e),
                }
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (target, dispatch, version);
    };
    let delete = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let Some(token) = token_or_hint(auth, dispatch) else {
                return;
            };
            leptos::task::spawn_local(async move {
                match crate::api::delete_task(&token, id, version).await {
                    Ok(()) => dispatch.run(Action::Removed(id)),
                    Err(e) => report(auth, dispatch, e),
                }
            });
        }
    };
    let signed_out = move || !here.can_write.get();
    let hint = move || signed_out().then_some(SIGN_IN_HINT);
    // The "← To do" / "Done →" buttons differ only in target and label.
    let move_button = move |target: TaskStatus, testid: &'static str, label: String| {
        view! {
            <button
                class="ghost"
                data-testid=testid
                disabled=signed_out
                title=hint
                on:click=move |_| move_to(target)
            >
                {label}
            </button>
        }
    };
    let updated = task.updated_at.format("%b %-d, %H:%M").to_string();
    let people = (task.created_by.is_some() || task.assignee.is_some()).then(|| {
        view! {
            <div class="task-people">
                {task
                    .created_by
                    .clone()
                    .map(|by| view! { <span class="by" data-testid="task-created-by">{format!("by {by}")}</span> })}
                {task
                    .assignee
                    .clone()
                    .map(|to| {
                        view! {
                            <span class="assignee" data-testid="task-assignee" title="Assigned to">
                                {format!("→ {to}")}
                            </span>
                        }
                    })}
            </div>
        }
    });
    view! {
        <li class="task" data-testid="task" data-task-id=id.to_string()>
            <h3 class="task-title" data-testid="task-title">{task.title.clone()}</h3>
            <Show when={
                let empty = task.description.is_empty();
                move || !empty
            }>
                <p class="task-description">{task.description.clone()}</p>
            </Show>
            {people}
            <div class="task-meta">
                <span title="Task id and version">{format!("#{id} · v{version}")}</span>
                <span>{updated.clone()}</span>
            </div>
            <Show when=move || here.shows_controls()>
            <div class="task-actions">
                {back.map(|s| move_button(s, "move-back", format!("← {}", s.label())))}
                {forward.map(|s| move_button(s, "move-forward", format!("{} →", s.label())))}
                <button
                    class="ghost danger"
                    data-testid="delete-task"
                    disabled=signed_out
                    title=hint
                    on:click=delete
                >
                    "Delete"
                </button>
            </div>
            </Show>
        </li>
    }
}
