//! Pulseboard's isomorphic UI and its wire protocol.
//!
//! Built with `ssr` into the server (which renders the page) and with
//! `hydrate` into the WASM bundle (which takes the rendered page over).
//! [`protocol`] is shared by both and by the server's REST and WebSocket code.
// Leptos views are nested types; without erased components (release
// builds) a board page's type is deeper than rustc's default limit of 128.
#![recursion_limit = "256"]

pub mod api;
pub mod auth;
pub mod board;
mod components;
#[cfg(feature = "hydrate")]
mod live;
pub mod markdown;
pub mod protocol;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Link, Meta, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    ParamSegment, SsrMode, StaticSegment,
};

use components::{BoardRoute, BoardsPage, SharedBoardPage};

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The root component: metadata and routes.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/pulseboard.css"/>
        <Link rel="icon" type_="image/svg+xml" href="/favicon.svg"/>
        <Title text="Pulseboard"/>
        <Meta name="description" content="A live task board and notification hub."/>
        <Router>
            <Routes fallback=|| view! { <components::NotFound/> }>
                // Async: the server waits for the task list and sends the
                // whole page, so it is complete without JavaScript.
                <Route path=StaticSegment("") view=SharedBoardPage ssr=SsrMode::Async/>
                <Route path=StaticSegment("b") view=BoardsPage/>
                <Route
                    path=(StaticSegment("b"), ParamSegment("id"))
                    view=BoardRoute
                    ssr=SsrMode::Async
                />
            </Routes>
        </Router>
    }
}
