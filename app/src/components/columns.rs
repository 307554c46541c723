//! The three status columns and the order of their cards.
//!
//! Cards are keyed by id, so a card that moves or changes keeps its DOM
//! node (and the focus of a keyboard user, and an edit in progress); each
//! card reads its task from one map of the board's tasks.

use std::collections::BTreeMap;

use leptos::prelude::*;

use super::card::{Deleting, TaskCard};
use super::{Dispatch, Here};
use crate::auth::Auth;
use crate::board::Board;
use crate::protocol::{Label, Task, TaskStatus};

/// What the cards of a board share: the tasks by id, the cards whose
/// deletion waits for its undo window, and the card being dragged.
#[derive(Clone, Copy)]
pub struct Deck {
    pub tasks: Memo<BTreeMap<i64, Task>>,
    /// The board's labels, to show on cards and to choose from.
    pub labels: Signal<Vec<Label>>,
    pub deleting: Deleting,
    pub dragging: RwSignal<Option<i64>>,
}

impl Deck {
    /// One column's cards in their order, without those being deleted.
    pub fn column(&self, status: TaskStatus) -> Vec<Task> {
        let hidden = self.deleting.hidden();
        let mut cards: Vec<Task> = self.tasks.with(|tasks| {
            tasks
                .values()
                .filter(|t| t.status == status && !hidden.contains(&t.id))
                .cloned()
                .collect()
        });
        cards.sort_by_key(|t| (t.position, t.id));
        cards
    }

    /// The ids of a column in order, read without subscribing.
    pub fn order_untracked(&self, status: TaskStatus) -> Vec<i64> {
        untrack(|| self.column(status).iter().map(|t| t.id).collect())
    }
}

/// One column per status, each listing its cards in their order.
#[component]
pub fn Columns(
    base: Vec<Task>,
    board: RwSignal<Board>,
    labels: Signal<Vec<Label>>,
    dispatch: Dispatch,
    auth: Auth,
    here: Here,
) -> impl IntoView {
    let base = StoredValue::new(base);
    let tasks = Memo::new(move |_| {
        base.with_value(|b| board.with(|bd| bd.merged(b)))
            .into_iter()
            .map(|t| (t.id, t))
            .collect::<BTreeMap<_, _>>()
    });
    let deck = Deck {
        tasks,
        labels,
        deleting: Deleting::new(),
        dragging: RwSignal::new(None),
    };
    let columns = TaskStatus::ALL
        .into_iter()
        .map(|status| {
            let cards = move || deck.column(status);
            let count = move || cards().len();
            let drop_here = move |ev: leptos::ev::DragEvent| {
                // Dropped on the column, not on a card: to its end.
                ev.prevent_default();
                #[cfg(feature = "hydrate")]
                if let Some(id) = deck.dragging.get_untracked() {
                    let order = deck.order_untracked(status);
                    let last = order.into_iter().rfind(|&o| o != id);
                    super::card::place(deck, auth, dispatch, id, status, last, None);
                }
                deck.dragging.set(None);
            };
            view! {
                <div
                    class="column"
                    data-testid=format!("column-{}", status.as_str())
                    on:dragover=move |ev| {
                        if deck.dragging.get_untracked().is_some() {
                            ev.prevent_default();
                        }
                    }
                    on:drop=drop_here
                >
                    <h2 class="column-title">
                        <span class=format!("dot dot-{}", status.as_str())></span>
                        {status.label()}
                        <span class="count">{count}</span>
                    </h2>
                    <ul class="cards">
                        <For each=cards key=|t| t.id let:task>
                            <TaskCard id=task.id deck dispatch auth here/>
                        </For>
                    </ul>
                    <Show when=move || count() == 0>
                        <p class="empty">"Nothing here yet."</p>
                    </Show>
                </div>
            }
        })
        .collect_view();
    view! {
        {columns}
        <super::card::UndoBar deck auth dispatch/>
    }
}
