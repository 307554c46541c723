//! Pulseboard's server as a library: `main.rs` only reads the configuration
//! and calls [`start`]; tests build the same router and serve it on port 0.
// Leptos views are nested types; without erased components (release
// builds) the pages' types are deeper than rustc's default limit of 128,
// as in the frontend crate.
#![recursion_limit = "256"]

pub mod admission;
pub mod auth;
pub mod boards;
pub mod broker;
pub mod channels;
pub mod client_addr;
pub mod config;
pub mod error;
pub mod hub;
pub mod metrics;
pub mod notices;
pub mod placement;
pub mod presence;
pub mod publish;
pub mod pubsub;
pub mod rate;
pub mod rest;
pub mod serve;
pub mod state;
pub mod store;
pub mod task_order;
pub mod topics;
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

use app::{shell, App};
use broker::memory::{HistoryLimits, MemoryBroker};
use config::Config;
use error::ApiError;
use hub::Hub;
use metrics::Metrics;
use pubsub::Realtime;
use state::AppState;
use store::TaskStore;
use ws::ConnectionGate;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("task store: {0}")]
    Store(#[from] store::StoreError),
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    #[error("token secret: {0}")]
    Secret(#[from] auth::jwt::SecretError),
    #[error("{0}")]
    Hasher(#[from] auth::password::HashError),
    #[error("{0}")]
    Redis(#[from] broker::redis::RedisConfigError),
}

/// What the broker hands this process: events and heads go to the hub's
/// subscribers, announcements to the connection gate.
struct LocalSink {
    hub: Hub,
    gate: Arc<ConnectionGate>,
}

impl broker::Sink for LocalSink {
    fn event(&self, event: app::protocol::Event) {
        self.hub.deliver(event);
    }

    fn head(&self, topic: &str, position: app::protocol::StreamPosition) {
        broker::Sink::head(&self.hub, topic, position);
    }

    fn announcement(&self, announcement: broker::Announcement) {
        match announcement {
            broker::Announcement::AccountDeleted { user_id } => self.gate.end_user(user_id),
            broker::Announcement::SessionEnded { session } => self.gate.sessions.end(&session),
            broker::Announcement::SessionsEnded { user_id, except } => {
                self.gate.sessions.end_all(user_id, except.as_deref())
            }
        }
    }
}

/// Connects the store and assembles the shared state. WebSocket sessions
/// are spawned on `sessions` (see `main.rs` for why a runtime of their own).
pub async fn build_state(
    config: Config,
    sessions: tokio::runtime::Handle,
) -> Result<AppState, StartError> {
    let leptos = leptos_options(&config);
    let store = TaskStore::connect(&config.database_url()).await?;
    let metrics = Arc::new(Metrics::default());
    let hub = Hub::new(
        config.ws_send_queue,
        config.ws_send_queue_bytes,
        metrics.clone(),
    );
    let gate = Arc::new(ConnectionGate::new(
        config.ws_max_connections,
        config.ws_max_connections_per_user,
        metrics.clone(),
    ));
    let sink = LocalSink {
        hub: hub.clone(),
        gate: gate.clone(),
    };
    let limits = HistoryLimits {
        max_events: config.history_size.max(1),
        max_age: Duration::from_secs(config.history_ttl_secs.max(1)),
        max_bytes: config.history_max_bytes,
        max_total_bytes: config.history_max_total_bytes,
        max_topics: config.max_topics.max(1),
    };
    let shutdown = CancellationToken::new();
    let mut shared_limits = None;
    let mut presence_conn = None;
    let (broker, embedded): (Arc<dyn broker::Broker>, Option<MemoryBroker>) = match &config
        .redis_url
    {
        Some(url) => {
            let redis = broker::redis::RedisBroker::start(
                url,
                &config.redis_prefix,
                limits,
                Arc::new(sink),
                metrics.clone(),
            )?;
            presence_conn = Some(redis.connection());
            gate.set_cluster(ws::seats::ClusterSeats::start(
                redis.connection(),
                &config.redis_prefix,
                config.ws_max_connections_per_user,
                shutdown.clone(),
            ));
            shared_limits = Some(auth::shared::SharedLimits::new(
                redis.connection(),
                &config.redis_prefix,
                config.login_max_failures,
                Duration::from_secs(config.login_lockout_secs.max(1)),
                config.register_max_per_hour,
            ));
            tracing::info!("broker: redis (history, fan-out and epochs shared by every instance)");
            (Arc::new(redis), None)
        }
        None => {
            let memory = MemoryBroker::new(limits, Arc::new(sink));
            // What the last graceful shutdown saved, before anything is
            // published. Failing to read it costs clients their resume,
            // not the start.
            match store.history().take().await {
                Ok(saved) if !saved.is_empty() => {
                    tracing::info!(topics = saved.len(), "topic history restored");
                    memory.restore(saved);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not read the saved topic history"),
            }
            (Arc::new(memory.clone()), Some(memory))
        }
    };
    let mut rt = Realtime::new(hub, broker, metrics.clone())
        .with_recovery_limit(config.recovery_max_bytes)
        .with_publish_quota(topics::PublishQuota::new(
            config.publish_rate_per_sec,
            config.publish_burst,
        ))
        .with_notices(notices::Notices::new(config.notices_per_minute));
    if let Some(conn) = presence_conn {
        // Members outlive one and a half heartbeat intervals, so a crashed
        // instance's users are gone within a heartbeat or two.
        let beat = config.ping_interval().unwrap_or(Duration::from_secs(30));
        rt = rt.with_presence(presence::Presence::redis(
            conn,
            &config.redis_prefix,
            (beat * 3 / 2).max(Duration::from_secs(3)),
            shutdown.clone(),
        ));
    }
    let secret = auth::jwt::load_secret(config.jwt_secret.as_deref(), &config.data_dir)?;
    let auth = Arc::new(auth::Auth {
        keys: auth::jwt::Keys::new(
            &secret,
            Duration::from_secs(config.token_ttl_secs.max(1)),
            Duration::from_secs(config.session_max_secs.max(1)),
        ),
        max_sessions_per_user: config.max_sessions_per_user.max(1),
        hasher: auth::password::Hasher::new()?,
        throttle: auth::throttle::LoginThrottle::new(
            config.login_max_failures,
            Duration::from_secs(config.login_lockout_secs.max(1)),
        ),
        registrations: auth::throttle::AddressQuota::new(
            config.register_max_per_hour,
            Duration::from_secs(3600),
        ),
        shared: shared_limits,
        open_writes: config.open_writes,
    });
    if config.open_writes {
        tracing::warn!("open writes: anyone may create, edit and delete tasks without a token");
    }
    let handshakes = Arc::new(admission::Handshakes::new(
        config.ws_handshakes_per_sec,
        config.ws_handshake_burst,
    ));
    Ok(AppState {
        handshakes,
        auth,
        ws_options: ws::options(&config),
        config: Arc::new(config),
        store,
        leptos,
        shutdown,
        sessions: TaskTracker::new(),
        sessions_runtime: sessions,
        rt,
        task_order: Arc::default(),
        embedded_broker: embedded,
        gate,
        metrics,
    })
}

/// Leptos' options, from our configuration and the `LEPTOS_*` variables
/// cargo-leptos sets. Built here rather than by `get_configuration`, so a
/// binary built by plain `cargo` (as the tests do) still names the bundle
/// cargo-leptos writes.
fn leptos_options(config: &Config) -> leptos::config::LeptosOptions {
    use leptos::config::{Env, LeptosOptions};
    let var = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
    let output_name = var("LEPTOS_OUTPUT_NAME")
        .or_else(|| option_env!("LEPTOS_OUTPUT_NAME").map(str::to_owned))
        .unwrap_or_else(|| "pulseboard".to_owned());
    let production = var("LEPTOS_ENV")
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "prod" | "production"));
    LeptosOptions::builder()
        .output_name(output_name)
        .site_root(config.site_root.clone())
        .site_pkg_dir(var("LEPTOS_SITE_PKG_DIR").unwrap_or_else(|| "pkg".to_owned()))
        .site_addr(config.addr)
        .reload_port(
            var("LEPTOS_RELOAD_PORT")
                .and_then(|p| p.parse().ok())
                .unwrap_or(3001),
        )
        .env(if production { Env::PROD } else { Env::DEV })
        .build()
}

/// The whole application: REST, WebSockets, health, and the Leptos pages.
pub fn router(state: AppState) -> Router {
    let source = boards::page::source(
        state.store.clone(),
        state.rt.clone(),
        state.auth.open_writes,
    );
    let routes = generate_route_list(App);
    let leptos = state.leptos.clone();

    let mut router = Router::new()
        .merge(rest::routes())
        .merge(boards::routes::routes())
        .merge(boards::labels::routes())
        .merge(auth::routes::routes())
        .merge(publish::routes())
        .merge(channels::routes())
        .route("/ws", get(ws::echo_handler))
        .route("/ws/secure/{topic}", get(ws::secure_handler))
        .route("/ws/v1", get(ws::typed_handler))
        .route("/ws/{client_id}", get(ws::chat_handler))
        .route("/ws/notifications/{topic}", get(ws::notifications_handler))
        .route("/ws/redis/{channel}", get(ws::channel_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler));
    if state.config.autobahn_echo {
        router = router.route("/autobahn", get(ws::autobahn::handler));
    }
    let mut router = router
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(source.clone()),
            move || shell(leptos.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        // A known path with an unknown method: our JSON error, not an
        // empty 405.
        .method_not_allowed_fallback(|| async { error::ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes));
    if let Some(cors) = cors_layer(&state.config.cors_origins) {
        router = router.layer(cors);
    }
    let limit = Duration::from_secs(state.config.request_timeout_secs.max(1));
    router
        // Bounds each request, the reading of its body included: a client
        // that sends a body one byte at a time gets 408 and loses the
        // connection instead of holding it (the header read has its own
        // timeout in `serve`).
        .layer(axum::middleware::from_fn(move |req, next: axum::middleware::Next| async move {
            match tokio::time::timeout(limit, next.run(req)).await {
                Ok(response) => response,
                Err(_) => ApiError::RequestTimeout(limit).into_response(),
            }
        }))
        // Spans name the path only: query strings may carry tokens. They are
        // debug spans: at the default level a span per request would cost
        // every request an allocation and bookkeeping nobody reads.
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            tracing::debug_span!("http", method = %req.method(), path = %req.uri().path())
        }))
        .with_state(state)
}

/// CORS for the REST API: only the configured origins, only our methods
/// and headers, no cookies (tokens travel in `Authorization`). With no
/// origins configured no CORS layer is installed and no CORS headers are
/// sent at all, so browsers keep the same-origin policy.
fn cors_layer(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{header, HeaderValue, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if allowed.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
        ])
        .expose_headers([header::ETAG, header::LOCATION, header::RETRY_AFTER])
        .max_age(Duration::from_secs(600));
    Some(layer)
}

/// Ready when the task store answers and the broker is reachable.
async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    state.store.ping().await?;
    if !state.rt.healthy() {
        return Err(ApiError::Unavailable("the broker is unreachable".into()));
    }
    Ok((StatusCode::OK, "ready"))
}

/// Prometheus text exposition, for the configured token's holder or, with
/// no token configured, for clients on loopback only: connection counts,
/// rejections and throttling are a map for an attacker.
async fn metrics_handler(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    extensions: axum::http::Extensions,
) -> Result<impl IntoResponse, ApiError> {
    let peer = extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
    match &state.config.metrics_token {
        Some(expected) => {
            let given = headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if !same_secret(given.as_bytes(), expected.as_bytes()) {
                return Err(ApiError::Unauthorized(
                    "metrics need the metrics token (Authorization: Bearer ...)".into(),
                ));
            }
        }
        None => {
            if !peer.is_some_and(|p| p.0.ip().is_loopback()) {
                return Err(ApiError::Forbidden(
                    "metrics are served on loopback only unless --metrics-token is set".into(),
                ));
            }
        }
    }
    let (topics, subscriptions) = state.rt.hub.counts();
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(topics, subscriptions),
    ))
}

/// Compares two secrets in time that depends only on their lengths.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serves on `listener` until `signal` completes.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    signal: impl std::future::Future<Output = ()>,
) -> Result<(), StartError> {
    let options = serve::ServeOptions {
        header_timeout: Duration::from_secs(state.config.header_timeout_secs.max(1)),
        write_timeout: Duration::from_secs(state.config.write_timeout_secs.max(1)),
        admission: admission::AdmissionLimits {
            max_total: state.config.max_connections,
            max_per_address: state.config.max_connections_per_address,
        },
        grace: Duration::from_secs(state.config.shutdown_grace_secs),
    };
    let metrics = state.metrics.clone();
    let cancel = state.shutdown.clone();
    let sessions = state.sessions.clone();
    let store = state.store.clone();
    let embedded = state.embedded_broker.clone();
    let rt = state.rt.clone();
    let app = router(state);
    serve::serve(listener, app, options, cancel, sessions, metrics, signal).await?;
    // Requests and sessions have ended: close the broker (anything still
    // trying to publish is refused) and, with the in-process one, keep its
    // streams for the next start. Redis keeps its own.
    if let Some(broker) = embedded {
        let saved = broker.close();
        match store.history().save(&saved).await {
            Ok(()) => tracing::info!(
                topics = saved.len(),
                "topic history saved for the next start"
            ),
            Err(e) => tracing::warn!(error = %e, "could not save the topic history"),
        }
    }
    rt.shutdown().await;
    store.close().await;
    Ok(())
}

/// Binds the configured address and serves until `signal`; WebSocket
/// sessions run on `sessions`.
pub async fn start(
    mut config: Config,
    sessions: tokio::runtime::Handle,
    signal: impl std::future::Future<Output = ()>,
) -> Result<(), StartError> {
    let addr = config.addr;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let local = listener.local_addr()?;
    // The real port (when configured as 0) is what the Origin check and the
    // page's own address must name.
    config.addr = local;
    let state = build_state(config, sessions).await?;
    // Tests and scripts read this line to learn the port when binding to 0.
    tracing::info!(%local, "listening on http://{local}");
    run(listener, state, signal).await
}
