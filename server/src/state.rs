//! The state every handler shares.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Auth;
use crate::broker::memory::MemoryBroker;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::pubsub::Realtime;
use crate::store::TaskStore;
use crate::ws::ConnectionGate;

/// Cheap to clone: every field is a handle.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: TaskStore,
    pub leptos: LeptosOptions,
    /// Cancelled when the server shuts down; every WebSocket session watches
    /// it and closes with 1001.
    pub shutdown: CancellationToken,
    /// Every WebSocket session runs on this tracker, so shutdown can wait
    /// for them to finish.
    pub sessions: TaskTracker,
    /// The runtime sessions are spawned on.
    pub sessions_runtime: tokio::runtime::Handle,
    /// Topics, broker and local fan-out.
    pub rt: Realtime,
    /// Orders writes to one task with their events (see `task_order`).
    pub task_order: Arc<crate::task_order::TaskOrder>,
    /// The in-process broker, when no Redis is configured: a graceful
    /// shutdown saves its streams in the store for the next start.
    pub embedded_broker: Option<MemoryBroker>,
    /// WebSocket handshakes per client address.
    pub handshakes: Arc<crate::admission::Handshakes>,
    /// Counts open WebSocket connections against the limit.
    pub gate: Arc<ConnectionGate>,
    pub metrics: Arc<Metrics>,
    /// Token keys, password hashing and login throttling.
    pub auth: Arc<Auth>,
    /// Every WebSocket endpoint's options (limits, buffers, compression
    /// and its shared deflate pool), built once.
    pub ws_options: yawc::Options,
}

/// leptos_axum's routes and file handler read the options from the state.
impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}
