//! The account area in the header: sign in, create an account, sign out.
//!
//! Rendered signed out on the server (the token is only in the browser's
//! storage) and with its fields disabled until the page has hydrated: a
//! form submitted without JavaScript would send the password in a URL.

use leptos::prelude::*;

use super::{Dispatch, FormError};
use crate::auth::Auth;
#[cfg(feature = "hydrate")]
use crate::{board::Action, protocol::Level};

/// Which button started the pending request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    SignIn,
    SignUp,
}

/// The signed-out form or the signed-in user with a sign-out button.
#[component]
pub fn AccountArea(auth: Auth, dispatch: Dispatch, hydrated: ReadSignal<bool>) -> impl IntoView {
    view! {
        <div class="account" data-testid="account">
            <Show
                when=move || auth.signed_in()
                fallback=move || view! { <SignInForm auth dispatch hydrated/> }
            >
                <span class="signed-in" data-testid="signed-in-as">
                    "Signed in as "
                    <strong>{move || auth.username().unwrap_or_default()}</strong>
                </span>
                <button
                    type="button"
                    class="ghost on-dark"
                    data-testid="signout"
                    on:click=move |_| {
                        #[cfg(feature = "hydrate")]
                        {
                            if let Some(session) = auth.session_untracked() {
                                leptos::task::spawn_local(async move {
                                    let _ = crate::auth::logout(&session).await;
                                });
                            }
                            auth.sign_out();
                            dispatch.run(Action::Notify(Level::Info, "Signed out".into()));
                        }
                    }
                >
                    "Sign out"
                </button>
            </Show>
        </div>
    }
}

/// Username, password, "Sign in" (submit) and "Create account".
#[component]
fn SignInForm(auth: Auth, dispatch: Dispatch, hydrated: ReadSignal<bool>) -> impl IntoView {
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(None::<Pending>);

    // Both buttons run this; the form's submit (Enter) signs in.
    let start = move |which: Pending| {
        #[cfg(feature = "hydrate")]
        {
            let name = username.get_untracked().trim().to_owned();
            let pass = password.get_untracked();
            pending.set(Some(which));
            error.set(None);
            leptos::task::spawn_local(async move {
                let result = match which {
                    Pending::SignIn => crate::auth::sign_in(&name, &pass).await,
                    Pending::SignUp => crate::auth::sign_up(&name, &pass).await,
                };
                // This form is unmounted once signed in: set nothing after.
                pending.try_set(None);
                match result {
                    Ok(session) => {
                        let text = match which {
                            Pending::SignIn => format!("Welcome back, {}", session.username),
                            Pending::SignUp => {
                                format!("Account created; welcome, {}", session.username)
                            }
                        };
                        auth.set(session);
                        dispatch.run(Action::Notify(Level::Success, text));
                    }
                    Err(e) => {
                        error.try_set(Some(e.message));
                    }
                }
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (which, auth, dispatch, error, username, password);
    };
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        start(Pending::SignIn);
    };
    let busy = move || pending.get().is_some();

    view! {
        <form class="signin" on:submit=on_submit data-testid="signin-form" autocomplete="on">
            <fieldset disabled=move || !hydrated.get() || busy()>
                <input
                    name="username"
                    data-testid="signin-username"
                    aria-label="Username"
                    placeholder="username"
                    autocomplete="username"
                    autocapitalize="none"
                    spellcheck="false"
                    bind:value=username
                />
                <input
                    type="password"
                    name="password"
                    data-testid="signin-password"
                    aria-label="Password"
                    placeholder="password"
                    autocomplete="current-password"
                    bind:value=password
                />
                <button type="submit" data-testid="signin-submit">
                    {move || if pending.get() == Some(Pending::SignIn) { "Signing in…" } else { "Sign in" }}
                </button>
                <button
                    type="button"
                    class="secondary"
                    data-testid="signup-submit"
                    on:click=move |_| start(Pending::SignUp)
                >
                    {move || {
                        if pending.get() == Some(Pending::SignUp) { "Creating…" } else { "Create account" }
                    }}
                </button>
            </fieldset>
            <FormError error testid="signin-error" class="signin-error"/>
        </form>
    }
}
