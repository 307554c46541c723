//! The page's components. Each file holds one piece of the board.

mod columns;
mod task_form;
mod toasts;

use leptos::prelude::*;

use crate::api::load_tasks;
use crate::board::{Action, Board, Connection};
use columns::Columns;
use task_form::NewTaskForm;
use toasts::Toasts;

/// Sends an action to the board's reducer. A `Callback` is `Copy`, so every
/// component can hold one without cloning state around.
pub type Dispatch = Callback<Action>;

/// How long a toast stays before it dismisses itself.
#[cfg(feature = "hydrate")]
const TOAST_MS: u64 = 5_000;

/// The board page: the composer on the left, the three columns, the toasts.
///
/// The task list is a `Resource` loaded during server rendering, so the page
/// is complete before (and without) JavaScript; after hydration every change
/// goes through [`Board::apply`].
#[component]
pub fn BoardPage() -> impl IntoView {
    let board = RwSignal::new(Board::default());
    let dispatch: Dispatch = Callback::new(move |action: Action| {
        let toast = board.try_update(|b| b.apply(action)).flatten();
        #[cfg(feature = "hydrate")]
        if let Some(id) = toast {
            set_timeout(
                move || {
                    board.update(|b| {
                        b.apply(Action::Dismiss(id));
                    })
                },
                std::time::Duration::from_millis(TOAST_MS),
            );
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = toast;
    });
    let tasks = Resource::new(|| (), |_| load_tasks());

    // Once the snapshot is there, open the live connection from its
    // position. Effects run only in the browser.
    #[cfg(feature = "hydrate")]
    {
        let started = StoredValue::new(false);
        let reload = Callback::new(move |()| tasks.refetch());
        Effect::new(move |_| {
            if let Some(Ok(snapshot)) = tasks.get() {
                if !started.get_value() {
                    started.set_value(true);
                    crate::live::connect(board, dispatch, snapshot.position, reload);
                }
            }
        });
    }

    // Flipped by an effect, which runs only in the browser: tests wait for
    // it before clicking, because SSR markup is visible before it is live.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    view! {
        <div class="app" data-testid="app" data-hydrated=move || hydrated.get().to_string()>
            <header class="topbar">
                <div class="brand">
                    <span class="brand-mark" aria-hidden="true"></span>
                    <span class="brand-name">"Pulseboard"</span>
                </div>
                <p class="tagline">"Live tasks and notifications"</p>
                <ConnectionPill board/>
            </header>
            <main class="layout">
                <aside class="composer">
                    <NewTaskForm dispatch/>
                </aside>
                <section class="board" aria-label="Task board">
                    // Transition, not Suspense: a reload after a gap keeps
                    // the old cards on screen until the new list is in.
                    <Transition fallback=|| view! { <p class="loading">"Loading tasks…"</p> }>
                        {move || {
                            tasks
                                .get()
                                .map(|res| match res {
                                    Ok(snapshot) => {
                                        view! { <Columns base=snapshot.tasks board dispatch/> }
                                            .into_any()
                                    }
                                    Err(e) => {
                                        view! {
                                            <p class="load-error" data-testid="load-error">
                                                "Could not load tasks: " {e}
                                            </p>
                                        }
                                            .into_any()
                                    }
                                })
                        }}
                    </Transition>
                </section>
            </main>
            <Toasts board dispatch/>
        </div>
    }
}

/// Whether the live connection is up.
#[component]
fn ConnectionPill(board: RwSignal<Board>) -> impl IntoView {
    let state = move || board.with(|b| b.connection);
    view! {
        <span
            class=move || match state() {
                Connection::Live => "conn conn-live",
                Connection::Connecting => "conn conn-connecting",
                Connection::Offline => "conn conn-offline",
            }
            data-testid="connection"
            data-state=move || match state() {
                Connection::Live => "live",
                Connection::Connecting => "connecting",
                Connection::Offline => "offline",
            }
        >
            {move || match state() {
                Connection::Live => "Live",
                Connection::Connecting => "Connecting…",
                Connection::Offline => "Offline, retrying",
            }}
        </span>
    }
}

/// Shown for any path the router does not know.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
        resp.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <main class="not-found">
            <h1>"Not found"</h1>
            <p>"There is nothing at this address."</p>
            <a href="/">"Back to the board"</a>
        </main>
    }
}
