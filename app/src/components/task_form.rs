//! The "new task" form.

use leptos::prelude::*;

use super::{Dispatch, FormError, Here, SIGN_IN_HINT};
use crate::auth::Auth;
use crate::protocol::{TaskStatus, DESCRIPTION_MAX_CHARS, TITLE_MAX_CHARS, USERNAME_MAX};
#[cfg(feature = "hydrate")]
use crate::{
    board::Action,
    protocol::{validate_due, validate_title, validate_username, NewTask},
};

/// Creates a task over REST without reloading the page. The new card is
/// added from the REST answer at once; the event that follows on the live
/// socket is recognised by its version and not shown twice.
///
/// Writing needs an account, so on the shared board the fields are
/// disabled while signed out and a hint says why (the server would answer
/// 401 anyway). On other boards the form is there for members only, and
/// readers see what they may do instead.
#[component]
pub fn NewTaskForm(dispatch: Dispatch, auth: Auth, here: Here) -> impl IntoView {
    let title = RwSignal::new(String::new());
    let description = RwSignal::new(String::new());
    let status = RwSignal::new(TaskStatus::Todo.as_str().to_owned());
    let assignee = RwSignal::new(String::new());
    let due = RwSignal::new(String::new());
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
            let who = assignee.get_untracked().trim().to_owned();
            if !who.is_empty() {
                if let Err(e) = validate_username(&who) {
                    error.set(Some(format!("assignee: {e}")));
                    return;
                }
            }
            let day = match due.get_untracked().trim() {
                "" => None,
                day => match day
                    .parse()
                    .map_err(|_| None)
                    .and_then(|d| validate_due(d).map_err(Some))
                {
                    Ok(d) => Some(d),
                    Err(e) => {
                        let why =
                            e.map_or_else(|| "due date: pick a day".to_owned(), |e| e.to_string());
                        error.set(Some(why));
                        return;
                    }
                },
            };
            let Some(token) = auth.session_untracked().map(|s| s.token) else {
                error.set(Some(SIGN_IN_HINT.to_owned()));
                return;
            };
            let body = NewTask {
                due: day,
                title: t,
                description: Some(description.get_untracked()),
                status: TaskStatus::parse(&status.get_untracked()),
                assignee: (!who.is_empty()).then_some(who),
                ..NewTask::default()
            };
            pending.set(true);
            error.set(None);
            leptos::task::spawn_local(async move {
                match crate::api::create_task(&token, here.id, body).await {
                    Ok(task) => {
                        title.set(String::new());
                        description.set(String::new());
                        assignee.set(String::new());
                        due.set(String::new());
                        dispatch.run(Action::Created(task));
                    }
                    Err(e) => error.set(super::write_failed(auth, dispatch, e)),
                }
                pending.set(false);
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (dispatch, description, status, assignee, due);
    };
    let signed_out = move || !auth.signed_in();
    let reader_note = move || {
        if auth.signed_in() {
            "You can read this board; its owner can make you a member to change it."
        } else {
            "Sign in as a member of this board to add or change tasks."
        }
    };

    view! {
        <Show
            when=move || here.shows_controls()
            fallback=move || {
                view! {
                    <div class="card reader-note" data-testid="reader-note">
                        <h2>"Reading"</h2>
                        <p>{reader_note}</p>
                    </div>
                }
            }
        >
        <form class="card new-task" on:submit=on_submit data-testid="new-task-form">
            <h2>"New task"</h2>
            <Show when=signed_out>
                <p class="hint" data-testid="signin-hint">{SIGN_IN_HINT}</p>
            </Show>
            <fieldset disabled=signed_out>
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
                    placeholder="Details, links, a checklist… (Markdown)"
                    bind:value=description
                ></textarea>
                <label for="new-status">"Column"</label>
                <select id="new-status" name="status" data-testid="new-status" bind:value=status>
                    {TaskStatus::ALL
                        .into_iter()
                        .map(|s| view! { <option value=s.as_str()>{s.label()}</option> })
                        .collect_view()}
                </select>
                <label for="new-due">"Due " <span class="optional">"(optional)"</span></label>
                <input id="new-due" name="due" type="date" data-testid="new-due" bind:value=due/>
                <label for="new-assignee">"Assignee " <span class="optional">"(optional)"</span></label>
                <input
                    id="new-assignee"
                    name="assignee"
                    data-testid="new-assignee"
                    maxlength=USERNAME_MAX.to_string()
                    placeholder="username"
                    autocomplete="off"
                    autocapitalize="none"
                    spellcheck="false"
                    bind:value=assignee
                />
                <button type="submit" data-testid="create-task" disabled=move || pending.get()>
                    {move || if pending.get() { "Adding…" } else { "Add task" }}
                </button>
            </fieldset>
            <FormError error testid="form-error"/>
        </form>
        </Show>
    }
    // Erased, like the members panel beside it (see there).
    .into_any()
}
