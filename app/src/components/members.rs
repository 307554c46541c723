//! A board's members beside its tasks. Everyone who may read the board
//! sees who is on it; the owner invites by username, changes roles,
//! removes members, shares or unshares the board and deletes it; a member
//! may leave. Every change is published on the board's topic, so the
//! panel of everyone looking at the board reloads with it.

use leptos::prelude::*;

use super::{Dispatch, FormError, Here};
use crate::auth::Auth;
use crate::protocol::{BoardView, Role, Visibility, USERNAME_MAX};
#[cfg(feature = "hydrate")]
use crate::{
    board::Action,
    protocol::{validate_username, BoardPatch, Level},
};

/// The members card and, for the owner, the board's settings.
#[component]
pub fn MembersPanel(
    here: Here,
    view_of: Signal<Option<BoardView>>,
    auth: Auth,
    dispatch: Dispatch,
    /// Reads the board again after a change made here.
    reload: Callback<()>,
) -> impl IntoView {
    let is_owner = move || view_of.with(|v| v.as_ref().and_then(|v| v.role) == Some(Role::Owner));
    let my_role = move || view_of.with(|v| v.as_ref().and_then(|v| v.role));
    let members = move || {
        view_of.with(|v| {
            v.as_ref()
                .and_then(|v| v.members.clone())
                .unwrap_or_default()
        })
    };
    #[cfg(not(feature = "hydrate"))]
    let _ = (here, dispatch, reload);
    let error = RwSignal::new(None::<String>);
    let invitee = RwSignal::new(String::new());
    let invite_role = RwSignal::new(Role::Member.as_str().to_owned());

    // Runs one change as the signed-in user, then reloads the board (or
    // shows why it failed).
    #[cfg(feature = "hydrate")]
    let act = move |change: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), crate::auth::Failure>>>,
    >| {
        leptos::task::spawn_local(async move {
            match change.await {
                Ok(()) => {
                    error.set(None);
                    reload.run(());
                }
                Err(e) => error.set(super::write_failed(auth, dispatch, e)),
            }
        });
    };
    #[cfg(feature = "hydrate")]
    let token = move || auth.session_untracked().map(|s| s.token);

    let on_invite = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        {
            let name = invitee.get_untracked().trim().to_lowercase();
            if let Err(e) = validate_username(&name) {
                error.set(Some(format!("username: {e}")));
                return;
            }
            let role = Role::parse(&invite_role.get_untracked()).unwrap_or(Role::Member);
            let Some(token) = token() else { return };
            invitee.set(String::new());
            act(Box::pin(async move {
                crate::api::set_member(&token, here.id, &name, role)
                    .await
                    .map(|_| ())
            }));
        }
    };
    #[allow(unused_variables)]
    let change_role = move |name: String, role: Role| {
        #[cfg(feature = "hydrate")]
        if let Some(token) = token() {
            act(Box::pin(async move {
                crate::api::set_member(&token, here.id, &name, role)
                    .await
                    .map(|_| ())
            }));
        }
    };
    #[allow(unused_variables)]
    let remove = move |name: String| {
        #[cfg(feature = "hydrate")]
        if let Some(token) = token() {
            let leaving = auth.username().as_deref() == Some(name.as_str());
            let question = if leaving {
                "Leave this board? You will need an invitation to come back.".to_owned()
            } else {
                format!("Remove {name} from this board?")
            };
            if !window().confirm_with_message(&question).unwrap_or(false) {
                return;
            }
            act(Box::pin(async move {
                crate::api::remove_member(&token, here.id, &name).await
            }));
        }
    };
    let toggle_visibility = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let public = view_of.with_untracked(|v| {
                v.as_ref().map(|v| v.board.visibility) == Some(Visibility::Public)
            });
            let visibility = if public {
                Visibility::Private
            } else {
                Visibility::Public
            };
            let Some(token) = token() else { return };
            act(Box::pin(async move {
                let patch = BoardPatch {
                    visibility: Some(visibility),
                    ..BoardPatch::default()
                };
                crate::api::update_board(&token, here.id, patch)
                    .await
                    .map(|_| ())
            }));
        }
    };
    let delete_board = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let name = view_of.with_untracked(|v| v.as_ref().map(|v| v.board.name.clone()));
            let question = format!(
                "Delete the board “{}” and all its tasks? This cannot be undone.",
                name.unwrap_or_default()
            );
            if !window().confirm_with_message(&question).unwrap_or(false) {
                return;
            }
            let Some(token) = token() else { return };
            leptos::task::spawn_local(async move {
                match crate::api::delete_board(&token, here.id).await {
                    Ok(()) => {
                        dispatch.run(Action::Notify(Level::Info, "Board deleted".into()));
                        let _ = window().location().set_href("/b");
                    }
                    Err(e) => error.set(super::write_failed(auth, dispatch, e)),
                }
            });
        }
    };
    let public = move || {
        view_of.with(|v| v.as_ref().map(|v| v.board.visibility) == Some(Visibility::Public))
    };

    view! {
        <section class="card members" aria-labelledby="members-title" data-testid="members">
            <h2 id="members-title">"Members"</h2>
            <p class="visibility" data-testid="visibility">
                {move || if public() {
                    "Public: anyone can read this board; members change it."
                } else {
                    "Private: only members can see this board."
                }}
            </p>
            <ul class="member-list">
                <For each=members key=|m| (m.username.clone(), m.role) let:member>
                    {
                        let name = member.username.clone();
                        let role = member.role;
                        let for_select = name.clone();
                        let for_remove = name.clone();
                        let label = format!("Role of {name}");
                        let remove_label = format!("Remove {name}");
                        view! {
                            <li class="member" data-testid="member" data-username=name.clone()>
                                <span class="member-name">{name.clone()}</span>
                                <Show
                                    when=move || is_owner() && role != Role::Owner
                                    fallback=move || view! { <span class=format!("role role-{}", role.as_str()) data-testid="member-role">{role.as_str()}</span> }
                                >
                                    {
                                        let for_select = for_select.clone();
                                        let for_remove = for_remove.clone();
                                        view! {
                                            <select
                                                aria-label=label.clone()
                                                data-testid="member-role-select"
                                                on:change=move |ev| {
                                                    if let Some(r) = Role::parse(&event_target_value(&ev)) {
                                                        change_role(for_select.clone(), r);
                                                    }
                                                }
                                            >
                                                <option value="member" selected=role == Role::Member>"member"</option>
                                                <option value="viewer" selected=role == Role::Viewer>"viewer"</option>
                                            </select>
                                            <button
                                                type="button"
                                                class="ghost danger small"
                                                aria-label=remove_label.clone()
                                                data-testid="remove-member"
                                                on:click=move |_| remove(for_remove.clone())
                                            >
                                                "Remove"
                                            </button>
                                        }
                                    }
                                </Show>
                            </li>
                        }
                    }
                </For>
            </ul>
            <Show when=is_owner>
                <form class="invite" on:submit=on_invite data-testid="invite-form">
                    <label for="invite-name">"Invite by username"</label>
                    <div class="invite-row">
                        <input
                            id="invite-name"
                            data-testid="invite-name"
                            required
                            maxlength=USERNAME_MAX.to_string()
                            placeholder="username"
                            autocomplete="off"
                            autocapitalize="none"
                            spellcheck="false"
                            bind:value=invitee
                        />
                        <select aria-label="Role of the invitee" data-testid="invite-role" bind:value=invite_role>
                            <option value="member">"member"</option>
                            <option value="viewer">"viewer"</option>
                        </select>
                    </div>
                    <button type="submit" data-testid="invite">"Invite"</button>
                </form>
                <div class="board-settings">
                    <button type="button" class="ghost" data-testid="toggle-visibility" on:click=toggle_visibility>
                        {move || if public() { "Make private" } else { "Make public" }}
                    </button>
                    <button type="button" class="ghost danger" data-testid="delete-board" on:click=delete_board>
                        "Delete board"
                    </button>
                </div>
            </Show>
            <Show when=move || matches!(my_role(), Some(Role::Member | Role::Viewer))>
                <button
                    type="button"
                    class="ghost"
                    data-testid="leave-board"
                    on:click=move |_| {
                        if let Some(me) = auth.username() {
                            remove(me);
                        }
                    }
                >
                    "Leave board"
                </button>
            </Show>
            <FormError error testid="members-error"/>
        </section>
    }
    // Erased: without it the page's view type nests too deep for rustc
    // in builds that do not erase components (release).
    .into_any()
}
