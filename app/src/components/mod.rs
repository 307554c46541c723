//! The page's components. Each file holds one piece of the board.

mod account;
mod boards;
mod card;
mod card_edit;
mod columns;
mod labels;
mod members;
mod older;
mod task_form;
mod toasts;

use leptos::prelude::*;

use crate::api::load_board;
use crate::auth::Auth;
use crate::board::{Action, Board, Connection};
use crate::protocol::{BoardView, Role, DEFAULT_BOARD};
#[cfg(feature = "hydrate")]
use crate::{auth::Failure, protocol::Level};
use account::AccountArea;
pub use boards::{BoardRoute, BoardsPage};
use columns::Columns;
use members::MembersPanel;
use older::OlderTasks;
use task_form::NewTaskForm;
use toasts::Toasts;

/// The board a page shows and what the reader may do there.
#[derive(Clone, Copy)]
pub struct Here {
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    pub id: i64,
    /// The shared board, where the write controls show (disabled, with a
    /// hint) to readers who are signed out; on other boards controls a
    /// reader cannot use are not shown at all.
    pub shared: bool,
    /// Whether the signed-in reader may change tasks here.
    pub can_write: Signal<bool>,
}

impl Here {
    /// Whether the task controls are on the page.
    pub fn shows_controls(&self) -> bool {
        self.shared || self.can_write.get()
    }
}

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

/// The header every page shares: the brand, the page's title as its one
/// `h1`, the connection pill when there is one, and the account area.
#[component]
pub fn TopBar(
    title: Signal<String>,
    auth: Auth,
    dispatch: Dispatch,
    hydrated: ReadSignal<bool>,
    /// The board whose live connection the pill shows, and whether to
    /// show it (not while the board cannot be read).
    #[prop(optional)]
    live: Option<(RwSignal<Board>, Signal<bool>)>,
) -> impl IntoView {
    view! {
        <header class="topbar">
            <a class="brand" href="/" aria-label="Pulseboard: the shared board">
                <span class="brand-mark" aria-hidden="true"></span>
                <span class="brand-name">"Pulseboard"</span>
            </a>
            <nav class="nav" aria-label="Boards">
                <a href="/b" data-testid="nav-boards">"Boards"</a>
            </nav>
            // In a Transition: a board's title comes with the board.
            <h1 class="page-title" data-testid="page-title">
                <Transition fallback=|| ()>{move || title.get()}</Transition>
            </h1>
            {live
                .map(|(board, shown)| {
                    view! {
                        <Transition fallback=|| ()>
                            <Show when=move || shown.get()>
                                <ConnectionPill board/>
                            </Show>
                        </Transition>
                    }
                })}
            <AccountArea auth dispatch hydrated/>
        </header>
    }
}

/// The page at `/`: the shared board.
#[component]
pub fn SharedBoardPage() -> impl IntoView {
    view! { <BoardPage id=DEFAULT_BOARD/> }
}

/// A board page: the header with the account area, the composer and the
/// members on the left, the three columns, the toasts.
///
/// The board is a `Resource` loaded during server rendering, so the shared
/// board and public boards are complete before (and without) JavaScript; a
/// private board loads once its member's stored session is restored.
/// After hydration every change goes through [`Board::apply`].
#[component]
pub fn BoardPage(id: i64) -> impl IntoView {
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
    // Rendered signed out; the stored session is restored after hydration.
    let auth = Auth::new();
    let shared = id == DEFAULT_BOARD;
    // Another board is loaded again when the reader signs in or out: what
    // they may see and do there depends on who they are.
    let reader = move || (!shared).then(|| auth.username()).flatten();
    let tasks = Resource::new(reader, move |_| {
        load_board(id, auth.session_untracked().map(|s| s.token))
    });
    // The board as last loaded (name, role, members), for the header, the
    // members panel and the write controls. Read inside a `Transition`
    // wherever the server must render it (the title, the members), so the
    // page waits for it.
    // A change of the board alone (renamed, shared, a member invited or
    // removed) is read again on its own, without the board's tasks; that
    // answer stands in for the snapshot's until the snapshot loads again.
    let fresh = RwSignal::new(None::<BoardView>);
    let view_of = Signal::derive(move || {
        fresh.get().or_else(|| {
            tasks
                .get()
                .and_then(Result::ok)
                .and_then(|snapshot| snapshot.board)
        })
    });
    Effect::new(move |_| {
        tasks.track();
        fresh.set(None);
    });
    // Reads the board again; when that is refused (the reader lost access,
    // the board is gone) the whole page loads again to show why.
    let refresh_board = Callback::new(move |()| {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            let token = auth.session_untracked().map(|s| s.token);
            match crate::api::get_board(id, token.as_deref()).await {
                Ok(view) => fresh.set(Some(view)),
                Err(_) => tasks.refetch(),
            }
        });
    });
    let loaded = Signal::derive(move || view_of.with(Option::is_some));
    let labels = Signal::derive(move || {
        view_of.with(|v| {
            v.as_ref()
                .and_then(|v| v.labels.clone())
                .unwrap_or_default()
        })
    });
    let can_write = Signal::derive(move || {
        auth.signed_in()
            && (shared
                || view_of.with(|v| v.as_ref().and_then(|v| v.role).is_some_and(Role::writes)))
    });
    let here = Here {
        id,
        shared,
        can_write,
    };
    let title = Signal::derive(move || {
        view_of
            .with(|v| v.as_ref().map(|v| v.board.name.clone()))
            .unwrap_or_else(|| {
                if shared {
                    "Team board".into()
                } else {
                    "Board".into()
                }
            })
    });

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
            board_id: id,
            dispatch,
            reload: Callback::new(move |()| tasks.refetch()),
            refresh_board,
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
            <TopBar title auth dispatch hydrated=hydrated.read_only() live=(board, loaded)/>
            <main class="layout">
                <aside class="composer">
                    // Only once the board is there: a board that cannot be
                    // read shows why, and nothing else.
                    <Transition fallback=|| ()>
                        <Show when=move || loaded.get()>
                            <NewTaskForm dispatch auth here/>
                            <Show when=move || here.can_write.get()>
                                <labels::LabelsPanel here view_of auth dispatch reload=refresh_board/>
                            </Show>
                            <Show when=move || !shared>
                                <MembersPanel
                                    here
                                    view_of
                                    auth
                                    dispatch
                                    reload=refresh_board
                                />
                            </Show>
                        </Show>
                    </Transition>
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
                                            <Columns base=snapshot.tasks board labels dispatch auth here/>
                                            <OlderTasks
                                                more
                                                oldest
                                                dispatch
                                                auth
                                                here
                                                hydrated=hydrated.read_only()
                                            />
                                        }
                                            .into_any()
                                    }
                                    Err(e) => view! { <LoadError failure=e/> }.into_any(),
                                })
                        }}
                    </Transition>
                </section>
            </main>
            <Toasts board dispatch/>
        </div>
    }
}

/// Why a board could not be shown: private to its members (sign in), not
/// shared with this account, gone, or the server did not answer. The
/// server-rendered page carries the status too.
#[component]
fn LoadError(failure: crate::auth::Failure) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let (Some(resp), Some(status)) = (
        use_context::<leptos_axum::ResponseOptions>(),
        failure
            .status
            .and_then(|s| http::StatusCode::from_u16(s).ok()),
    ) {
        resp.set_status(status);
    }
    let (headline, advice, detail) = match failure.status {
        Some(401) => (
            "This board is private",
            "Sign in as one of its members to see it.",
            None,
        ),
        Some(403) => (
            "This board is not shared with you",
            "Ask its owner to invite you.",
            None,
        ),
        Some(404) => ("There is no such board", "It may have been deleted.", None),
        _ => ("Could not load tasks", "", Some(failure.message)),
    };
    view! {
        <div class="load-error" data-testid="load-error" data-status=failure.status.map(|s| s.to_string())>
            <h2>{headline}</h2>
            <p>{advice} {detail.map(|d| view! { <span class="detail">{d}</span> })}</p>
            <p><a href="/b">"Your boards"</a></p>
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

/// The message under a form when its last attempt failed, announced to
/// screen readers as it appears (`role="alert"`). Every form shows its
/// errors through this, so they look and read alike.
#[component]
pub fn FormError(
    error: RwSignal<Option<String>>,
    testid: &'static str,
    #[prop(default = "form-error")] class: &'static str,
) -> impl IntoView {
    view! {
        <Show when=move || error.with(Option::is_some)>
            <p class=class role="alert" data-testid=testid>
                {move || error.get().unwrap_or_default()}
            </p>
        </Show>
    }
}
