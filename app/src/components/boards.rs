//! The list of boards at `/b`, and the route of one board at `/b/{id}`.
//!
//! The list needs the reader's token (it names the boards they are a
//! member of), which lives in the browser: the server renders the shared
//! board only, and the browser loads the reader's boards once its stored
//! session is restored.

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use super::{BoardPage, Dispatch, FormError, NotFound, TopBar};
use crate::api::board_page;
use crate::auth::Auth;
use crate::board::{Action, Board};
#[cfg(feature = "hydrate")]
use crate::protocol::{validate_board_name, NewBoard};
use crate::protocol::{BoardView, Role, Visibility, BOARD_NAME_MAX_CHARS, DEFAULT_BOARD};

/// `/b/{id}`: the board with that id, or "not found" for an id that is
/// not a number (or is the shared board's, which lives at `/`).
#[component]
pub fn BoardRoute() -> impl IntoView {
    let params = use_params_map();
    let id = params.with_untracked(|p| {
        p.get("id")
            .and_then(|id| id.parse::<i64>().ok())
            .filter(|id| *id > DEFAULT_BOARD)
    });
    match id {
        Some(id) => view! { <BoardPage id/> }.into_any(),
        None => view! { <NotFound/> }.into_any(),
    }
}

/// `/b`: the boards the reader can open, and a form to start one.
#[component]
pub fn BoardsPage() -> impl IntoView {
    let auth = Auth::new();
    let toasts = RwSignal::new(Board::default());
    let dispatch: Dispatch = Callback::new(move |action: Action| {
        toasts.update(|b| {
            b.apply(action);
        });
    });
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let boards = RwSignal::new(Vec::<BoardView>::new());
    let error = RwSignal::new(None::<String>);
    let loaded = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    {
        let expired =
            Callback::new(move |reason: String| super::end_session(auth, dispatch, reason));
        crate::auth::start(auth, expired);
        Effect::new(move |_| {
            let token = auth.session().map(|s| s.token);
            leptos::task::spawn_local(async move {
                match crate::api::list_boards(token.as_deref()).await {
                    Ok(list) => {
                        boards.set(list);
                        error.set(None);
                    }
                    Err(e) => error.set(Some(e.message)),
                }
                loaded.set(true);
            });
        });
    }
    let title = Signal::derive(|| "Your boards".to_owned());
    view! {
        <div class="app" data-testid="app" data-hydrated=move || hydrated.get().to_string()>
            <TopBar title auth dispatch hydrated=hydrated.read_only()/>
            <main class="layout">
                <aside class="composer">
                    <NewBoardForm auth dispatch/>
                </aside>
                <section class="boards" aria-labelledby="boards-title" aria-live="polite">
                    <h2 id="boards-title">"Boards you can open"</h2>
                    <ul class="board-list" data-testid="board-list" data-loaded=move || loaded.get().to_string()>
                        <Show when=move || boards.with(Vec::is_empty)>
                            <li class="board-link">
                                <a href="/" data-testid="board-link" data-board-id=DEFAULT_BOARD.to_string()>
                                    <span class="board-name">"Team board"</span>
                                    <span class="role">"shared"</span>
                                </a>
                            </li>
                        </Show>
                        <For each=move || boards.get() key=|b| (b.board.id, b.board.version, b.role) let:view>
                            <BoardLink view/>
                        </For>
                    </ul>
                    <Show when=move || !auth.signed_in()>
                        <p class="hint">"Sign in to see the boards you belong to and to start one."</p>
                    </Show>
                    <FormError error testid="boards-error"/>
                </section>
            </main>
            <super::toasts::Toasts board=toasts dispatch/>
        </div>
    }
}

/// One board in the list: its name, who owns it, the reader's role.
#[component]
fn BoardLink(view: BoardView) -> impl IntoView {
    let id = view.board.id;
    let role = match (id, view.role) {
        (DEFAULT_BOARD, _) => "shared".to_owned(),
        (_, Some(Role::Owner)) => "owner".to_owned(),
        (_, Some(r)) => r.as_str().to_owned(),
        (_, None) => "reader".to_owned(),
    };
    let visibility = match view.board.visibility {
        Visibility::Private => "private",
        Visibility::Public => "public",
        Visibility::Open => "open to all",
    };
    let about = match view.board.owner {
        Some(owner) => format!("by {owner} · {visibility}"),
        None => visibility.to_owned(),
    };
    view! {
        <li class="board-link">
            <a href=board_page(id) data-testid="board-link" data-board-id=id.to_string()>
                <span class="board-name">{view.board.name}</span>
                <span class="board-meta">{about}</span>
                <span class=format!("role role-{role}")>{role.clone()}</span>
            </a>
        </li>
    }
}

/// Starts a board owned by the signed-in user and opens it.
#[component]
fn NewBoardForm(auth: Auth, dispatch: Dispatch) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let public = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        {
            let n = match validate_board_name(&name.get_untracked()) {
                Ok(n) => n,
                Err(e) => {
                    error.set(Some(e.to_string()));
                    return;
                }
            };
            let Some(token) = auth.session_untracked().map(|s| s.token) else {
                error.set(Some("Sign in to start a board".into()));
                return;
            };
            let visibility = Some(if public.get_untracked() {
                Visibility::Public
            } else {
                Visibility::Private
            });
            pending.set(true);
            leptos::task::spawn_local(async move {
                match crate::api::create_board(
                    &token,
                    NewBoard {
                        name: n,
                        visibility,
                    },
                )
                .await
                {
                    Ok(view) => {
                        let _ = window().location().set_href(&board_page(view.board.id));
                    }
                    Err(e) => error.set(super::write_failed(auth, dispatch, e)),
                }
                pending.set(false);
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (dispatch, public);
    };
    view! {
        <form class="card new-board" on:submit=on_submit data-testid="new-board-form">
            <h2>"New board"</h2>
            <fieldset disabled=move || !auth.signed_in()>
                <label for="board-name">"Name"</label>
                <input
                    id="board-name"
                    data-testid="board-name"
                    required
                    maxlength=BOARD_NAME_MAX_CHARS.to_string()
                    placeholder="Launch plan"
                    bind:value=name
                />
                <label class="check">
                    <input type="checkbox" data-testid="board-public" bind:checked=public/>
                    "Public: anyone can read it"
                </label>
                <button type="submit" data-testid="create-board" disabled=move || pending.get()>
                    {move || if pending.get() { "Creating…" } else { "Create board" }}
                </button>
            </fieldset>
            <FormError error testid="board-form-error"/>
        </form>
    }
}
