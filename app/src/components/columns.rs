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

/// What the cards of a board share: the tasks by id, each column's order,
/// the cards whose deletion waits for its undo window, and the card being
/// dragged.
#[derive(Clone, Copy)]
pub struct Deck {
    pub tasks: Memo<BTreeMap<i64, Task>>,
    /// Each column's card ids in order (position, then id), without the
    /// cards being deleted; indexed like `TaskStatus::ALL`. Worked out once
    /// per change for every card to read, so a board of hundreds of cards
    /// does not sort its column once per card.
    pub order: Memo<[Vec<i64>; 3]>,
    /// The board's labels, to show on cards and to choose from.
    pub labels: Signal<Vec<Label>>,
    pub deleting: Deleting,
    pub dragging: RwSignal<Option<i64>>,
}

/// Where a status's column is in `Deck::order`.
fn slot(status: TaskStatus) -> usize {
    TaskStatus::ALL
        .iter()
        .position(|&s| s == status)
        .unwrap_or_default()
}

impl Deck {
    /// One column's card ids in order.
    pub fn column(&self, status: TaskStatus) -> Vec<i64> {
        self.order.with(|o| o[slot(status)].clone())
    }

    /// Where card `id` is in its column, and how many cards the column has.
    pub fn index(&self, status: TaskStatus, id: i64) -> (Option<usize>, usize) {
        self.order.with(|o| {
            let column = &o[slot(status)];
            (column.iter().position(|&c| c == id), column.len())
        })
    }

    /// The ids of a column in order, read without subscribing.
    pub fn order_untracked(&self, status: TaskStatus) -> Vec<i64> {
        untrack(|| self.column(status))
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
    let deleting = Deleting::new();
    let order = Memo::new(move |_| {
        let hidden = deleting.hidden();
        let mut cards: Vec<(usize, i64, i64)> = tasks.with(|tasks| {
            tasks
                .values()
                .filter(|t| !hidden.contains(&t.id))
                .map(|t| (slot(t.status), t.position, t.id))
                .collect()
        });
        cards.sort_unstable();
        let mut columns: [Vec<i64>; 3] = Default::default();
        for (column, _, id) in cards {
            columns[column].push(id);
        }
        columns
    });
    let deck = Deck {
        tasks,
        order,
        labels,
        deleting,
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
                        <For each=cards key=|id| *id let:id>
                            <TaskCard id deck dispatch auth here/>
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
