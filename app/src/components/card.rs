//! A card: what a task says, and what a writer can do with it there:
//! move it between columns, reorder it (buttons, so the keyboard can do
//! everything the mouse does, and drag and drop), edit it in place, and
//! delete it with a confirmation and a few seconds to undo.

use leptos::prelude::*;

use super::card_edit::EditCard;
use super::columns::Deck;
use super::labels::LabelChip;
use super::{Dispatch, Here, SIGN_IN_HINT};
use crate::auth::Auth;
use crate::markdown::Markdown;
use crate::protocol::{Label, Task, TaskStatus};
#[cfg(feature = "hydrate")]
use crate::{
    board::Action,
    protocol::{Level, TaskPatch},
};

/// How long a deleted card can be brought back before the deletion is sent.
#[cfg(feature = "hydrate")]
const UNDO_MS: u32 = 5_000;

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
pub(super) fn report(auth: Auth, dispatch: Dispatch, failure: crate::auth::Failure) {
    if let Some(message) = super::write_failed(auth, dispatch, failure) {
        dispatch.run(Action::Notify(Level::Error, message));
    }
}

/// Moves card `id` into column `status`, directly after card `after` (first
/// when `None`), then gives the keyboard focus back to `refocus` in that
/// card: its DOM node moves, and a keyboard user goes on from where they
/// were.
pub fn place(
    deck: Deck,
    auth: Auth,
    dispatch: Dispatch,
    id: i64,
    status: TaskStatus,
    after: Option<i64>,
    refocus: Option<&'static str>,
) {
    #[cfg(feature = "hydrate")]
    {
        let Some(version) = deck.tasks.with_untracked(|t| t.get(&id).map(|t| t.version)) else {
            return;
        };
        let Some(token) = token_or_hint(auth, dispatch) else {
            return;
        };
        leptos::task::spawn_local(async move {
            let patch = TaskPatch {
                status: Some(status),
                after: Some(after),
                ..TaskPatch::default()
            };
            match crate::api::update_task(&token, id, version, patch).await {
                Ok(task) => {
                    dispatch.run(Action::Upsert(task));
                    if let Some(testid) = refocus {
                        focus_later(id, testid);
                    }
                }
                Err(e) => report(auth, dispatch, e),
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (deck, auth, dispatch, id, status, after, refocus);
}

/// Focuses the control `testid` of card `id` once the page has rendered
/// the change, or the card's other reorder button when that one is now
/// disabled (the card reached the top or the bottom).
#[cfg(feature = "hydrate")]
fn focus_later(id: i64, testid: &'static str) {
    use wasm_bindgen::JsCast;
    request_animation_frame(move || {
        let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
            return;
        };
        for which in [testid, "move-up", "move-down", "edit-task"] {
            let selector =
                format!("[data-task-id=\"{id}\"] [data-testid=\"{which}\"]:not([disabled])");
            if let Some(el) = doc
                .query_selector(&selector)
                .ok()
                .flatten()
                .and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok())
            {
                let _ = el.focus();
                return;
            }
        }
    });
}

/// A card, read from the deck by id: title, description (Markdown), due
/// date, who made it and who has it, and the controls for writers (on the
/// shared board disabled while signed out; on other boards there only for
/// those who may use them).
#[component]
pub fn TaskCard(id: i64, deck: Deck, dispatch: Dispatch, auth: Auth, here: Here) -> impl IntoView {
    let task = Memo::new(move |_| deck.tasks.with(|t| t.get(&id).cloned()));
    let get =
        move |f: fn(&Task) -> String| move || task.with(|t| t.as_ref().map(f).unwrap_or_default());
    let status =
        Memo::new(move |_| task.with(|t| t.as_ref().map_or(TaskStatus::Todo, |t| t.status)));
    let description = Memo::new(move |_| get(|t| t.description.clone())());
    let editing = RwSignal::new(false);
    let confirming = RwSignal::new(false);
    let drop_mark = RwSignal::new(None::<bool>);
    let signed_out = move || !here.can_write.get();
    let hint = move || signed_out().then_some(SIGN_IN_HINT);
    let title = get(|t| t.title.clone());

    // Where this card stands in its column, for the reorder buttons.
    let index = Memo::new(move |_| deck.index(status.get(), id));
    let is_first = move || index.get().0.is_none_or(|i| i == 0);
    let is_last = move || {
        let (at, len) = index.get();
        at.is_none_or(|i| i + 1 >= len)
    };
    let shift = move |up: bool| {
        let s = status.get_untracked();
        let order = deck.order_untracked(s);
        let Some(i) = order.iter().position(|&o| o == id) else {
            return;
        };
        let after = if up {
            if i == 0 {
                return;
            }
            i.checked_sub(2).map(|j| order[j])
        } else {
            match order.get(i + 1) {
                Some(&next) => Some(next),
                None => return,
            }
        };
        let testid = if up { "move-up" } else { "move-down" };
        place(deck, auth, dispatch, id, s, after, Some(testid));
    };
    let move_to = move |target: TaskStatus| {
        let order = deck.order_untracked(target);
        let last = order.into_iter().rfind(|&o| o != id);
        place(deck, auth, dispatch, id, target, last, None);
    };

    // Dropping another card on this one puts it before or after this one,
    // by which half of the card the pointer is over.
    let dragover = move |ev: leptos::ev::DragEvent| {
        if deck.dragging.get_untracked().is_some_and(|d| d != id) {
            ev.prevent_default();
            ev.stop_propagation();
            drop_mark.set(Some(lower_half(&ev)));
        }
    };
    let drop = move |ev: leptos::ev::DragEvent| {
        drop_mark.set(None);
        let Some(dragged) = deck.dragging.get_untracked().filter(|&d| d != id) else {
            return;
        };
        ev.prevent_default();
        ev.stop_propagation();
        deck.dragging.set(None);
        let s = status.get_untracked();
        let order: Vec<i64> = deck
            .order_untracked(s)
            .into_iter()
            .filter(|&o| o != dragged)
            .collect();
        let Some(i) = order.iter().position(|&o| o == id) else {
            return;
        };
        let after = if lower_half(&ev) {
            Some(id)
        } else {
            i.checked_sub(1).map(|j| order[j])
        };
        place(deck, auth, dispatch, dragged, s, after, None);
    };

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
    // "↑" / "↓": the keyboard's way to reorder, disabled at either end.
    let reorder_button = move |up: bool| {
        let (testid, word, arrow) = if up {
            ("move-up", "up", "↑")
        } else {
            ("move-down", "down", "↓")
        };
        let at_end = move || if up { is_first() } else { is_last() };
        view! {
            <button
                class="ghost icon"
                data-testid=testid
                aria-label=move || format!("Move “{}” {word}", title())
                title=format!("Move {word}")
                disabled=move || signed_out() || at_end()
                on:click=move |_| shift(up)
            >
                {arrow}
            </button>
        }
    };
    let column_buttons = move || {
        let (back, forward) = neighbours(status.get());
        view! {
            {back.map(|s| move_button(s, "move-back", format!("← {}", s.label())))}
            {forward.map(|s| move_button(s, "move-forward", format!("{} →", s.label())))}
        }
    };
    let due = move || {
        task.with(|t| t.as_ref().and_then(|t| t.due)).map(|due| {
            let done = status.get() == TaskStatus::Done;
            view! {
                <span class="due" class:overdue=move || !done && deck_today().is_some_and(|d| due < d)>
                    <time datetime=due.to_string()>{format!("Due {}", due.format("%b %-d, %Y"))}</time>
                </span>
            }
        })
    };
    // The card's labels that the board still has, in the card's order.
    let chips = move || {
        let ids = task.with(|t| t.as_ref().map(|t| t.labels.clone()).unwrap_or_default());
        let known: Vec<Label> = deck.labels.with(|all| {
            ids.iter()
                .filter_map(|id| all.iter().find(|l| l.id == *id).cloned())
                .collect()
        });
        (!known.is_empty()).then(|| {
            view! {
                <div class="task-labels">
                    {known.into_iter().map(|label| view! { <LabelChip label/> }).collect_view()}
                </div>
            }
        })
    };
    let people = move || {
        let (by, to) = task.with(|t| {
            t.as_ref()
                .map(|t| (t.created_by.clone(), t.assignee.clone()))
                .unwrap_or_default()
        });
        (by.is_some() || to.is_some()).then(|| {
            view! {
                <div class="task-people">
                    {by.map(|by| view! { <span class="by" data-testid="task-created-by">{format!("by {by}")}</span> })}
                    {to.map(|to| view! { <span class="assignee" data-testid="task-assignee" title="Assigned to">{format!("→ {to}")}</span> })}
                </div>
            }
        })
    };
    let meta = move || {
        task.with(|t| {
            t.as_ref().map(|t| {
                (
                    format!("#{} · v{}", t.id, t.version),
                    t.updated_at.format("%b %-d, %H:%M").to_string(),
                )
            })
        })
        .unwrap_or_default()
    };
    let draggable =
        move || (here.shows_controls() && !signed_out() && !editing.get()).then_some("true");

    view! {
        <li
            class="task"
            class:drop-before=move || drop_mark.get() == Some(false)
            class:drop-after=move || drop_mark.get() == Some(true)
            class:dragging=move || deck.dragging.get() == Some(id)
            data-testid="task"
            data-task-id=id.to_string()
            draggable=draggable
            on:dragstart=move |ev| {
                #[cfg(feature = "hydrate")]
                if let Some(dt) = ev.data_transfer() {
                    let _ = dt.set_data("text/plain", &id.to_string());
                    dt.set_effect_allowed("move");
                }
                #[cfg(not(feature = "hydrate"))]
                let _ = ev;
                deck.dragging.set(Some(id));
            }
            on:dragend=move |_| deck.dragging.set(None)
            on:dragover=dragover
            on:dragleave=move |_| drop_mark.set(None)
            on:drop=drop
        >
            <Show
                when=move || editing.get()
                fallback=move || {
                    view! {
                        <h3 class="task-title" data-testid="task-title">{title}</h3>
                        {move || {
                            let d = description.get();
                            (!d.is_empty())
                                .then(|| view! { <div class="task-description" data-testid="task-description"><Markdown text=d/></div> })
                        }}
                        {chips}
                        {due}
                        {people}
                        <div class="task-meta">
                            <span title="Task id and version">{move || meta().0}</span>
                            <span>{move || meta().1}</span>
                        </div>
                    }
                }
            >
                <EditCard task labels=deck.labels editing auth dispatch/>
            </Show>
            <Show when=move || here.shows_controls() && !editing.get()>
                <div class="task-actions">
                    {column_buttons}
                    {reorder_button(true)}
                    {reorder_button(false)}
                    <button
                        class="ghost"
                        data-testid="edit-task"
                        disabled=signed_out
                        title=hint
                        on:click=move |_| editing.set(true)
                    >
                        "Edit"
                    </button>
                    <Show
                        when=move || confirming.get()
                        fallback=move || {
                            view! {
                                <button
                                    class="ghost danger"
                                    data-testid="delete-task"
                                    disabled=signed_out
                                    title=hint
                                    on:click=move |_| confirming.set(true)
                                >
                                    "Delete"
                                </button>
                            }
                        }
                    >
                        <span class="confirm" role="group" aria-label="Delete this card?">
                            "Delete?"
                            <button
                                class="danger"
                                data-testid="confirm-delete"
                                on:click=move |_| {
                                    confirming.set(false);
                                    let version = task.with_untracked(|t| t.as_ref().map_or(0, |t| t.version));
                                    deck.deleting.start(id, title(), version);
                                }
                            >
                                "Yes, delete"
                            </button>
                            <button class="ghost" data-testid="cancel-delete" on:click=move |_| confirming.set(false)>
                                "Keep"
                            </button>
                        </span>
                    </Show>
                </div>
            </Show>
        </li>
    }
}

/// Whether a drag event is over the lower half of the element it targets.
fn lower_half(ev: &leptos::ev::DragEvent) -> bool {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        if let Some(el) = ev
            .current_target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        {
            let rect = el.get_bounding_client_rect();
            return f64::from(ev.client_y()) > rect.top() + rect.height() / 2.0;
        }
        false
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = ev;
        false
    }
}

/// Today in the reader's time zone, known in the browser only (the server
/// renders no card as overdue; the browser marks them once it runs).
fn deck_today() -> Option<chrono::NaiveDate> {
    #[cfg(feature = "hydrate")]
    {
        let now = js_sys::Date::new_0();
        chrono::NaiveDate::from_ymd_opt(
            now.get_full_year() as i32,
            now.get_month() + 1,
            now.get_date(),
        )
    }
    #[cfg(not(feature = "hydrate"))]
    None
}

/// Cards deleted but not yet sent: hidden at once, deleted on the server
/// when their undo window ends unless undone first. Closing the page in
/// that window deletes nothing, so an accident can always be taken back.
#[derive(Clone, Copy)]
pub struct Deleting {
    pending: RwSignal<Vec<Pending>>,
    next: StoredValue<u64>,
}

/// One deletion waiting for its undo window to end.
#[derive(Clone, Debug, PartialEq)]
struct Pending {
    id: i64,
    title: String,
    /// The version the reader saw when confirming: a card changed by
    /// someone else in the meantime is not deleted (the server refuses).
    version: i64,
    /// Tells this deletion from an earlier one of the same card that was
    /// undone, whose timer may still be running.
    seq: u64,
}

impl Deleting {
    pub fn new() -> Self {
        Deleting {
            pending: RwSignal::new(Vec::new()),
            next: StoredValue::new(0),
        }
    }

    /// The ids of the cards hidden while they wait.
    pub fn hidden(&self) -> Vec<i64> {
        self.pending.with(|p| p.iter().map(|d| d.id).collect())
    }

    fn start(&self, id: i64, title: String, version: i64) {
        let seq = self.next.get_value();
        self.next.set_value(seq + 1);
        self.pending.update(|p| {
            if !p.iter().any(|d| d.id == id) {
                p.push(Pending {
                    id,
                    title,
                    version,
                    seq,
                });
            }
        });
    }

    /// Takes the deletion of card `id` out of the queue (only the one
    /// numbered `seq`, when given); what was taken.
    fn take(&self, id: i64, seq: Option<u64>) -> Option<Pending> {
        let mut taken = None;
        self.pending.update(|p| {
            if let Some(i) = p
                .iter()
                .position(|d| d.id == id && seq.is_none_or(|s| d.seq == s))
            {
                taken = Some(p.remove(i));
            }
        });
        taken
    }
}

/// The bar that offers to undo each pending deletion, and sends each one
/// when its time is up.
#[component]
pub fn UndoBar(deck: Deck, auth: Auth, dispatch: Dispatch) -> impl IntoView {
    let deleting = deck.deleting;
    // Each pending deletion gets one timer, started when it first shows here.
    #[cfg(feature = "hydrate")]
    {
        let started = StoredValue::new(std::collections::BTreeSet::<u64>::new());
        Effect::new(move |_| {
            let waiting: Vec<(i64, u64)> = deleting
                .pending
                .with(|p| p.iter().map(|d| (d.id, d.seq)).collect());
            for (id, seq) in waiting {
                if started.try_update_value(|s| s.insert(seq)) != Some(true) {
                    continue;
                }
                set_timeout(
                    move || {
                        started.update_value(|s| {
                            s.remove(&seq);
                        });
                        let Some(gone) = deleting.take(id, Some(seq)) else {
                            return;
                        };
                        let Some(token) = token_or_hint(auth, dispatch) else {
                            return;
                        };
                        leptos::task::spawn_local(async move {
                            match crate::api::delete_task(&token, id, gone.version).await {
                                Ok(()) => dispatch.run(Action::Removed(id)),
                                Err(e) if e.status == Some(412) => dispatch.run(Action::Notify(
                                    Level::Warning,
                                    format!("“{}” was changed by someone else meanwhile, so it was kept", gone.title),
                                )),
                                Err(e) => report(auth, dispatch, e),
                            }
                        });
                    },
                    std::time::Duration::from_millis(u64::from(UNDO_MS)),
                );
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (auth, dispatch);
    view! {
        <div class="undo-bar" role="status" aria-live="polite">
            <For each=move || deleting.pending.get() key=|d| d.seq let:pending>
                <div class="undo" data-testid="undo-delete">
                    <span>{format!("Deleted “{}”", pending.title)}</span>
                    <button
                        class="ghost"
                        data-testid="undo"
                        on:click=move |_| {
                            deleting.take(pending.id, None);
                        }
                    >
                        "Undo"
                    </button>
                </div>
            </For>
        </div>
    }
}
