//! The page's components. Each file holds one piece of the board.

mod account;
mod columns;
mod older;
mod task_form;
mod toasts;

use leptos::prelude::*;

use crate::api::load_tasks;
use crate::auth::Auth;
use crate::board::{Action, Board, Connection};
#[cfg(feature = "hydrate")]
use crate::{auth::Failure, protocol::Level};
use account::AccountArea;
use columns::Columns;
use older::OlderTasks;
use task_form::NewTaskForm;
use toasts::Toasts;

/// Sends an action to the board's reducer. A `Callback` is `Copy`, so every
/// component can hold one without cloning state around.
pub type Dispatch = Callback<Action>;

/// How long a toast stays before it dismisses itself.
#[cfg(feature = "hydrate")]
const TOAST_MS: u64 = 5_000;

/// Shown wherever a write needs an account.
pub const SIGN_IN_HINT: &str = "Sign in to add or change tasks";

/// Ends the session because the server no longer accepts its token, and
/// says so. Does nothing if already signed out, so one expiry noticed in
/// several places shows one toast.
#[cfg(feature = "hydrate")]
pub fn end_session(auth: Auth, dispatch: Dispatch, reason: String) {
    if auth.session_untracked().is_some() {
        auth.sign_out();
        dispatch.run(Action::Notify(Level::Warning, reason));
    }
}

/// Handles a failed task write: a 401 ends the session (with a toast);
/// anything else is returned for the caller to show.
#[cfg(feature = "hydrate")]
pub fn write_failed(auth: Auth, dispatch: Dispatch, failure: Failure) -> Option<String> {
    if failure.is_unauthorized() {
        end_session(
            auth,
            dispatch,
            "Your session has expired; please sign in again.".into(),
        );
        None
    } else {
        Some(failure.message)
    }
}

/// The board page: the header with the account area, the composer on the
/// left, the three columns, the toasts.
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
    // Rendered signed out; the stored session is restored after hydration.
    let auth = Auth::new();

    // In the browser only (effects never run on the server): restore the
    // stored session and keep its token fresh, let the live connection
    // follow sign-ins and sign-outs, and once the snapshot is there, open
    // that connection from the snapshot's position.
    #[cfg(feature = "hydrate")]
    {
        let expired = Callback::new(move |reason: String| end_session(auth, dispatch, reason));
        crate::auth::start(auth, expired);
        let changes = StoredValue::new(Some(crate::live::follow_session(auth)));
        let page = crate::live::Page {
            board,
            dispatch,
            reload: Callback::new(move |()| tasks.refetch()),
            auth,
            expired,
        };
        Effect::new(move |_| {
            if let Some(Ok(snapshot)) = tasks.get() {
                if let Some(changes) = changes.try_update_value(Option::take).flatten() {
                    crate::live::connect(page, snapshot.position, changes);
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
                <AccountArea auth dispatch hydrated=hydrated.read_only()/>
            </header>
            <main class="layout">
                <aside class="composer">
                    <NewTaskForm dispatch auth/>
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
                                        let oldest = snapshot.tasks.last().map(|t| t.id);
                                        let more = snapshot.more;
                                        view! {
                                            <Columns base=snapshot.tasks board dispatch auth/>
                                            <OlderTasks
                                                more
                                                oldest
                                                dispatch
                                                hydrated=hydrated.read_only()
                                            />
                                        }
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
            data-personal=move || board.with(|b| b.personal.clone().unwrap_or_default())
            title=move || {
                board
                    .with(|b| b.personal.is_some())
                    .then_some("Connected; your personal notifications arrive here too")
            }
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
