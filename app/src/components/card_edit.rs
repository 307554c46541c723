//! Editing a card in place: its title, description, due date and
//! assignee, saved as one change against the version the editor started
//! from, so an edit never silently overwrites someone else's.

use leptos::prelude::*;

use super::{Dispatch, FormError};
use crate::auth::Auth;
use crate::protocol::{Label, Task, DESCRIPTION_MAX_CHARS, TITLE_MAX_CHARS, USERNAME_MAX};
#[cfg(feature = "hydrate")]
use crate::{
    board::Action,
    protocol::{validate_due, validate_title, validate_username, TaskPatch},
};

/// The edit form that stands in for a card while `editing` is on.
#[component]
pub fn EditCard(
    task: Memo<Option<Task>>,
    /// The board's labels, to tick.
    labels: Signal<Vec<Label>>,
    editing: RwSignal<bool>,
    auth: Auth,
    dispatch: Dispatch,
) -> impl IntoView {
    // The card as it was when editing started: the fields start from it,
    // only what differs from it is sent, and its version guards the save.
    let start = task.get_untracked();
    let id = start.as_ref().map_or(0, |t| t.id);
    let field = |f: fn(&Task) -> String| RwSignal::new(start.as_ref().map(f).unwrap_or_default());
    let title = field(|t| t.title.clone());
    let description = field(|t| t.description.clone());
    let due = field(|t| t.due.map(|d| d.to_string()).unwrap_or_default());
    let assignee = field(|t| t.assignee.clone().unwrap_or_default());
    let ticked = RwSignal::new(start.as_ref().map(|t| t.labels.clone()).unwrap_or_default());
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let start = StoredValue::new(start);
    #[cfg(not(feature = "hydrate"))]
    let _ = (auth, dispatch, start);

    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        {
            let Some(before) = start.get_value() else {
                editing.set(false);
                return;
            };
            let fields = Fields {
                title: title.get_untracked(),
                description: description.get_untracked(),
                due: due.get_untracked(),
                assignee: assignee.get_untracked(),
                labels: ticked.get_untracked(),
                known: labels.with_untracked(|l| l.iter().map(|l| l.id).collect()),
            };
            match patch_from(&before, fields) {
                Err(message) => error.set(Some(message)),
                Ok(None) => editing.set(false),
                Ok(Some(patch)) => {
                    let Some(token) = auth.session_untracked().map(|s| s.token) else {
                        error.set(Some(super::SIGN_IN_HINT.to_owned()));
                        return;
                    };
                    pending.set(true);
                    leptos::task::spawn_local(async move {
                        match crate::api::update_task(&token, before.id, before.version, patch)
                            .await
                        {
                            Ok(task) => {
                                dispatch.run(Action::Upsert(task));
                                editing.set(false);
                            }
                            Err(e) if e.status == Some(412) => error.set(Some(
                                "Someone else saved this card after you opened it: \
                                 copy what you need, cancel, and edit the card as it is now."
                                    .into(),
                            )),
                            Err(e) => error.set(super::write_failed(auth, dispatch, e)),
                        }
                        pending.set(false);
                    });
                }
            }
        }
    };
    let fid = move |name: &str| format!("edit-{id}-{name}");

    view! {
        <form class="edit-card" on:submit=on_submit data-testid="edit-form" aria-label="Edit card">
            <label for=fid("title")>"Title"</label>
            <input
                id=fid("title")
                data-testid="edit-title"
                required
                maxlength=TITLE_MAX_CHARS.to_string()
                bind:value=title
                autofocus
            />
            <label for=fid("description")>"Description " <span class="optional">"(Markdown)"</span></label>
            <textarea
                id=fid("description")
                data-testid="edit-description"
                rows="5"
                maxlength=DESCRIPTION_MAX_CHARS.to_string()
                bind:value=description
            ></textarea>
            <div class="edit-row">
                <span>
                    <label for=fid("due")>"Due"</label>
                    <input id=fid("due") type="date" data-testid="edit-due" bind:value=due/>
                </span>
                <span>
                    <label for=fid("assignee")>"Assignee"</label>
                    <input
                        id=fid("assignee")
                        data-testid="edit-assignee"
                        maxlength=USERNAME_MAX.to_string()
                        autocomplete="off"
                        autocapitalize="none"
                        spellcheck="false"
                        bind:value=assignee
                    />
                </span>
            </div>
            <Show when=move || labels.with(|l| !l.is_empty())>
                <fieldset class="edit-labels">
                    <legend>"Labels"</legend>
                    <For each=move || labels.get() key=|l| (l.id, l.name.clone(), l.color) let:label>
                        <label class="tick">
                            <input
                                type="checkbox"
                                data-testid="edit-label"
                                prop:checked=move || ticked.with(|t| t.contains(&label.id))
                                on:change=move |_| {
                                    ticked.update(|t| {
                                        if let Some(i) = t.iter().position(|&x| x == label.id) {
                                            t.remove(i);
                                        } else {
                                            t.push(label.id);
                                        }
                                    })
                                }
                            />
                            <span class=format!("label label-{}", label.color.as_str())>{label.name.clone()}</span>
                        </label>
                    </For>
                </fieldset>
            </Show>
            <div class="edit-actions">
                <button type="submit" data-testid="save-edit" disabled=move || pending.get()>
                    {move || if pending.get() { "Saving…" } else { "Save" }}
                </button>
                <button type="button" class="ghost" data-testid="cancel-edit" on:click=move |_| editing.set(false)>
                    "Cancel"
                </button>
            </div>
            <FormError error testid="edit-error"/>
        </form>
    }
}

/// What the edit form holds.
#[cfg(feature = "hydrate")]
struct Fields {
    title: String,
    description: String,
    due: String,
    assignee: String,
    labels: Vec<i64>,
    /// The board's labels now: a card may still name one deleted since.
    known: Vec<i64>,
}

/// The change from `before` to what the form holds, `None` when nothing
/// changed, or why the form cannot be saved.
#[cfg(feature = "hydrate")]
fn patch_from(before: &Task, form: Fields) -> Result<Option<TaskPatch>, String> {
    let title = validate_title(&form.title).map_err(|e| e.to_string())?;
    let due = match form.due.trim() {
        "" => None,
        day => Some(
            day.parse::<chrono::NaiveDate>()
                .map_err(|_| "due date: pick a day".to_owned())
                .and_then(|d| validate_due(d).map_err(|e| e.to_string()))?,
        ),
    };
    let assignee = match form.assignee.trim() {
        "" => None,
        who => Some(
            validate_username(who)
                .map(|_| who.to_owned())
                .map_err(|e| format!("assignee: {e}"))?,
        ),
    };
    // Labels the board no longer has are dropped rather than sent back.
    let labels: Vec<i64> = form
        .labels
        .into_iter()
        .filter(|id| form.known.contains(id))
        .collect();
    let had: Vec<i64> = before
        .labels
        .iter()
        .copied()
        .filter(|id| form.known.contains(id))
        .collect();
    let patch = TaskPatch {
        title: (title != before.title).then_some(title),
        description: (form.description != before.description).then_some(form.description),
        due: (due != before.due).then_some(due),
        assignee: (assignee != before.assignee).then_some(assignee),
        labels: (labels != had).then_some(labels),
        ..TaskPatch::default()
    };
    Ok((patch != TaskPatch::default()).then_some(patch))
}
