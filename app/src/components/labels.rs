//! A board's labels: shown on cards, and made or deleted here by the
//! board's writers.

use leptos::prelude::*;

use super::{Dispatch, FormError, Here};
use crate::auth::Auth;
#[cfg(feature = "hydrate")]
use crate::protocol::validate_label_name;
use crate::protocol::{BoardView, Label, LabelColor, LABEL_NAME_MAX_CHARS};

/// One label as a coloured chip.
#[component]
pub fn LabelChip(label: Label) -> impl IntoView {
    view! {
        <span class=format!("label label-{}", label.color.as_str()) data-testid="label">
            {label.name}
        </span>
    }
}

/// The labels card beside the board, for those who may write to it.
#[component]
pub fn LabelsPanel(
    here: Here,
    view_of: Signal<Option<BoardView>>,
    auth: Auth,
    dispatch: Dispatch,
    /// Reads the board again after a change made here.
    reload: Callback<()>,
) -> impl IntoView {
    let labels = move || {
        view_of.with(|v| {
            v.as_ref()
                .and_then(|v| v.labels.clone())
                .unwrap_or_default()
        })
    };
    let name = RwSignal::new(String::new());
    let color = RwSignal::new(LabelColor::Blue.as_str().to_owned());
    let error = RwSignal::new(None::<String>);
    #[cfg(not(feature = "hydrate"))]
    let _ = (auth, dispatch, reload, here);

    let on_add = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        {
            let label = match validate_label_name(&name.get_untracked()) {
                Ok(n) => n,
                Err(e) => {
                    error.set(Some(e.to_string()));
                    return;
                }
            };
            let colour = LabelColor::parse(&color.get_untracked()).unwrap_or(LabelColor::Blue);
            let Some(token) = auth.session_untracked().map(|s| s.token) else {
                return;
            };
            leptos::task::spawn_local(async move {
                match crate::api::create_label(&token, here.id, label, colour).await {
                    Ok(_) => {
                        name.set(String::new());
                        error.set(None);
                        reload.run(());
                    }
                    Err(e) => error.set(super::write_failed(auth, dispatch, e)),
                }
            });
        }
    };
    #[allow(unused_variables)]
    let remove = move |label: Label| {
        #[cfg(feature = "hydrate")]
        {
            let question = format!(
                "Delete the label “{}” and take it off every card?",
                label.name
            );
            if !window().confirm_with_message(&question).unwrap_or(false) {
                return;
            }
            let Some(token) = auth.session_untracked().map(|s| s.token) else {
                return;
            };
            leptos::task::spawn_local(async move {
                match crate::api::delete_label(&token, here.id, label.id).await {
                    Ok(()) => reload.run(()),
                    Err(e) => error.set(super::write_failed(auth, dispatch, e)),
                }
            });
        }
    };

    view! {
        <section class="card labels" aria-labelledby="labels-title" data-testid="labels-panel">
            <h2 id="labels-title">"Labels"</h2>
            <ul class="label-list">
                <For each=labels key=|l| (l.id, l.name.clone(), l.color) let:label>
                    <li>
                        <LabelChip label=label.clone()/>
                        <button
                            class="ghost small"
                            data-testid="delete-label"
                            aria-label=format!("Delete the label “{}”", label.name)
                            on:click={
                                let label = label.clone();
                                move |_| remove(label.clone())
                            }
                        >
                            "×"
                        </button>
                    </li>
                </For>
            </ul>
            <form class="label-form" on:submit=on_add>
                <label for="label-name" class="visually-hidden">"New label"</label>
                <input
                    id="label-name"
                    data-testid="label-name"
                    placeholder="New label"
                    maxlength=LABEL_NAME_MAX_CHARS.to_string()
                    bind:value=name
                />
                <label for="label-color" class="visually-hidden">"Colour"</label>
                <select id="label-color" data-testid="label-color" bind:value=color>
                    {LabelColor::ALL
                        .into_iter()
                        .map(|c| view! { <option value=c.as_str()>{c.as_str()}</option> })
                        .collect_view()}
                </select>
                <button type="submit" class="ghost" data-testid="add-label">"Add"</button>
            </form>
            <FormError error testid="labels-error"/>
        </section>
    }
    .into_any()
}
