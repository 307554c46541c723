//! The stack of toasts in the corner.

use leptos::prelude::*;

use super::Dispatch;
use crate::board::{Action, Board};
use crate::protocol::Level;

fn level_class(level: Level) -> &'static str {
    match level {
        Level::Info => "toast toast-info",
        Level::Success => "toast toast-success",
        Level::Warning => "toast toast-warning",
        Level::Error => "toast toast-error",
    }
}

/// Renders the board's toasts, newest last; each can be dismissed.
#[component]
pub fn Toasts(board: RwSignal<Board>, dispatch: Dispatch) -> impl IntoView {
    view! {
        <div class="toasts" role="status" aria-live="polite" data-testid="toasts">
            <For
                each=move || board.with(|b| b.toasts.iter().cloned().collect::<Vec<_>>())
                key=|t| t.id
                let:toast
            >
                <div class=level_class(toast.level) data-testid="toast">
                    <span class="toast-text">{toast.text.clone()}</span>
                    <button
                        class="toast-close"
                        aria-label="Dismiss"
                        on:click=move |_| dispatch.run(Action::Dismiss(toast.id))
                    >
                        "×"
                    </button>
                </div>
            </For>
        </div>
    }
}
