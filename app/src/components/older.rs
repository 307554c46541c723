//! "Show older tasks": the page starts with the newest tasks only (a board
//! of any size renders in bounded time); older ones load a page at a time
//! over REST and join the board like any other change.

use leptos::prelude::*;

use super::{Dispatch, Here};
use crate::auth::Auth;

/// Shown under the board when older tasks exist beyond those on screen.
#[component]
pub fn OlderTasks(
    /// Older tasks exist beyond the first page.
    more: bool,
    /// The oldest task id on the first page.
    oldest: Option<i64>,
    dispatch: Dispatch,
    auth: Auth,
    here: Here,
    hydrated: ReadSignal<bool>,
) -> impl IntoView {
    let more = RwSignal::new(more);
    let cursor = RwSignal::new(oldest);
    let loading = RwSignal::new(false);
    let loaded = RwSignal::new(0usize);
    let error = RwSignal::new(None::<String>);
    let load = move |_| {
        #[cfg(feature = "hydrate")]
        {
            loading.set(true);
            leptos::task::spawn_local(async move {
                let token = auth.session_untracked().map(|s| s.token);
                match crate::api::older_tasks(here.id, token.as_deref(), cursor.get_untracked())
                    .await
                {
                    Ok((tasks, more_left)) => {
                        if let Some(last) = tasks.last() {
                            cursor.set(Some(last.id));
                        }
                        loaded.update(|n| *n += tasks.len());
                        for task in tasks {
                            dispatch.run(crate::board::Action::Upsert(task));
                        }
                        more.set(more_left);
                        error.set(None);
                    }
                    Err(e) => error.set(Some(e.message)),
                }
                loading.set(false);
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (cursor, loaded, dispatch, auth, here);
    };
    let shown = move || more.get() || loaded.get() != 0 || error.get().is_some();
    view! {
        <Show when=shown>
            <div class="older" data-testid="older-tasks">
                <p class="older-note" aria-live="polite">
                    {move || {
                        if let Some(e) = error.get() {
                            format!("Could not load older tasks: {e}")
                        } else if more.get() {
                            format!(
                                "Showing the newest tasks; {} older loaded so far.",
                                loaded.get(),
                            )
                        } else {
                            "Every task is shown.".to_owned()
                        }
                    }}
                </p>
                <Show when=move || more.get()>
                    <button
                        type="button"
                        class="ghost"
                        data-testid="load-older"
                        disabled=move || loading.get() || !hydrated.get()
                        on:click=load
                    >
                        {move || if loading.get() { "Loading…" } else { "Show older tasks" }}
                    </button>
                </Show>
            </div>
        </Show>
    }
}
