//! Pulseboard's server as a library: `main.rs` only reads the configuration
//! and calls [`start`]; tests build the same router and serve it on port 0.

pub mod config;
pub mod error;
pub mod rest;
pub mod serve;
pub mod state;
pub mod store;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::trace::TraceLayer;

use app::api::TaskSource;
use app::{shell, App};
use config::Config;
use error::ApiError;
use state::AppState;
use store::TaskStore;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("task store: {0}")]
    Store(#[from] store::StoreError),
    #[error("could not listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// Connects the store and assembles the shared state.
pub async fn build_state(config: Config) -> Result<AppState, StartError> {
    let mut leptos = leptos::config::get_configuration(None)
        .map_err(|e| StartError::Config(e.to_string()))?
        .leptos_options;
    leptos.site_addr = config.addr;
    leptos.site_root = config.site_root.clone().into();
    let store = TaskStore::connect(&config.database_url()).await?;
    Ok(AppState {
        config: Arc::new(config),
        store,
        leptos,
        shutdown: CancellationToken::new(),
        sessions: TaskTracker::new(),
    })
}

/// The whole application: REST, WebSockets, health, and the Leptos pages.
pub fn router(state: AppState) -> Router {
    let store = state.store.clone();
    let source = TaskSource(Arc::new(move || {
        let store = store.clone();
        Box::pin(async move {
            store.list().await.map_err(|e| {
                tracing::error!(error = %e, "loading tasks for the page failed");
                "the task store did not answer".to_owned()
            })
        })
    }));
    let routes = generate_route_list(App);
    let leptos = state.leptos.clone();

    Router::new()
        .merge(rest::routes())
        .route("/ws", get(ws::echo::handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(source.clone()),
            move || shell(leptos.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        // Spans name the path only: query strings may carry tokens.
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
        }))
        .with_state(state)
}

/// Ready when the task store answers.
async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    match state.store.ping().await {
        Ok(()) => Ok((StatusCode::OK, "ready")),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// Serves on `listener` until `signal` completes.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    signal: impl std::future::Future<Output = ()>,
) -> Result<(), StartError> {
    let options = serve::ServeOptions {
        header_timeout: Duration::from_secs(state.config.header_timeout_secs.max(1)),
        grace: Duration::from_secs(state.config.shutdown_grace_secs),
    };
    let cancel = state.shutdown.clone();
    let sessions = state.sessions.clone();
    let store = state.store.clone();
    let app = router(state);
    serve::serve(listener, app, options, cancel, sessions, signal).await?;
    store.close().await;
    Ok(())
}

/// Binds the configured address and serves until `signal`.
pub async fn start(
    config: Config,
    signal: impl std::future::Future<Output = ()>,
) -> Result<(), StartError> {
    let addr = config.addr;
    let state = build_state(config).await?;
    let listener =
        TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
    let local = listener.local_addr()?;
    // Tests and scripts read this line to learn the port when binding to 0.
    tracing::info!(%local, "listening on http://{local}");
    run(listener, state, signal).await
}
