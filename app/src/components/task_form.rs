//! The "new task" form.

use leptos::prelude::*;

use super::Dispatch;
use crate::protocol::{TaskStatus, DESCRIPTION_MAX_CHARS, TITLE_MAX_CHARS};
#[cfg(feature = "hydrate")]
use crate::{
    board::Action,
    protocol::{validate_title, NewTask},
};

/// Creates a task over REST without reloading the page. The new card is
/// added from the REST answer at once; the event that follows on the live
/// socket is recognised by its version and not shown twice.
#[component]
pub fn NewTaskForm(dispatch: Dispatch) -> impl IntoView {
    let title = RwSignal::new(String::new());
    let description = RwSignal::new(String::new());
    let status = RwSignal::new(TaskStatus::Todo.as_str().to_owned());
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);

    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        {
            let t = match validate_title(&title.get_untracked()) {
                Ok(t) => t,
                Err(e) => {
                    error.set(Some(e.to_string()));
                    return;
                }
            };
            let body = NewTask {
                title: t,
                description: Some(description.get_untracked()),
                status: TaskStatus::parse(&status.get_untracked()),
                ..NewTask::default()
            };
            pending.set(true);
            error.set(None);
            leptos::task::spawn_local(async move {
                match crate::api::create_task(body).await {
                    Ok(task) => {
                        title.set(String::new());
                        description.set(String::new());
                        dispatch.run(Action::Created(task));
                    }
                    Err(e) => error.set(Some(e)),
                }
                pending.set(false);
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (dispatch, description, status);
    };

    view! {
        <form class="card new-task" on:submit=on_submit data-testid="new-task-form">
            <h2>"New task"</h2>
            <label for="new-title">"Title"</label>
            <input
                id="new-title"
                name="title"
                data-testid="new-title"
                required
                maxlength=TITLE_MAX_CHARS.to_string()
                placeholder="What needs doing?"
                bind:value=title
            />
            <label for="new-description">"Description"</label>
            <textarea
                id="new-description"
                name="description"
                data-testid="new-description"
                rows="4"
                maxlength=DESCRIPTION_MAX_CHARS.to_string()
                placeholder="Details, links, acceptance criteria…"
                bind:value=description
            ></textarea>
            <label for="new-status">"Column"</label>
            <select id="new-status" name="status" data-testid="new-status" bind:value=status>
                {TaskStatus::ALL
                    .into_iter()
                    .map(|s| view! { <option value=s.as_str()>{s.label()}</option> })
                    .collect_view()}
            </select>
            <button type="submit" data-testid="create-task" disabled=move || pending.get()>
                {move || if pending.get() { "Adding…" } else { "Add task" }}
            </button>
            <Show when=move || error.get().is_some()>
                <p class="form-error" role="alert" data-testid="form-error">
                    {move || error.get().unwrap_or_default()}
                </p>
            </Show>
        </form>
    }
}
