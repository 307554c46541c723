//! The accept loop.
//!
//! `axum::serve` installs no hyper timer, so hyper's header-read timeout
//! never fires and a client that trickles its request in one byte at a time
//! holds a socket forever. We drive hyper's HTTP/1 connection ourselves,
//! with a timer and `header_read_timeout`, and keep upgrades enabled for
//! WebSockets.
//!
//! Shutdown: when the signal fires we stop accepting, let in-flight HTTP
//! requests finish, and cancel the shared token that every WebSocket session
//! watches (they close with 1001). Everything must end within the grace
//! period, or we return anyway.

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Tuning of the accept loop.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub header_timeout: Duration,
    pub grace: Duration,
}

/// Serves `app` on `listener` until `signal` completes, then shuts down.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    sessions_cancel: CancellationToken,
    sessions: TaskTracker,
    signal: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .keep_alive(true)
        .max_buf_size(64 * 1024);
    // Plain HTTP connections: tracked so shutdown can wait for in-flight
    // requests, and told to finish their current request and close.
    let connections = TaskTracker::new();
    let stop_http = CancellationToken::new();
    tokio::pin!(signal);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors or a connection reset before
                    // accept: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        let _ = stream.set_nodelay(true);
        // The peer address, for login throttling by client address.
        let service = TowerToHyperService::new(app.clone().map_request(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        ));
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let stop = stop_http.clone();
        connections.spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }

    tracing::info!("shutting down: no longer accepting connections");
    drop(listener);
    stop_http.cancel();
    sessions_cancel.cancel();
    connections.close();
    sessions.close();
    let drained = async {
        connections.wait().await;
        sessions.wait().await;
    };
    if tokio::time::timeout(options.grace, drained).await.is_err() {
        tracing::warn!(grace = ?options.grace, "connections still open after the grace period");
    }
    Ok(())
}
