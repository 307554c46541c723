//! WebSocket endpoints.
//!
//! All of them use yawc rather than axum's built-in WebSocket, because yawc
//! implements permessage-deflate (RFC 7692) and enforces message and buffer
//! limits itself, closing with 1009 when a peer exceeds them.

pub mod echo;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use yawc::{IncomingUpgrade, Options};

use crate::config::Config;
use crate::error::ApiError;

/// The yawc options every endpoint starts from: our message limit (yawc's
/// bounds are exclusive, hence the `+ 1`) for single frames, for fragmented
/// messages and for the inflated size of compressed ones; UTF-8 validation
/// of text frames; compression for peers that offer it.
pub fn options(config: &Config) -> Options {
    let limit = config.ws_max_message_bytes.max(1).saturating_add(1);
    Options::default()
        .with_limits(limit, limit)
        .with_utf8()
        .with_balanced_compression()
        .with_no_delay()
}

/// Performs the handshake or explains why it cannot.
pub fn accept(
    upgrade: Result<IncomingUpgrade, StatusCode>,
    options: Options,
) -> Result<(Response, yawc::UpgradeFut), Response> {
    let upgrade = upgrade.map_err(|_| ApiError::UpgradeRequired.into_response())?;
    match upgrade.upgrade(options) {
        Ok((resp, fut)) => Ok((resp.map(axum::body::Body::new), fut)),
        Err(e) => Err(ApiError::BadBody(format!("WebSocket handshake failed: {e}")).into_response()),
    }
}

/// Flushes the close frame yawc queues when it rejects a frame (1009 for an
/// oversized message, 1007 for invalid UTF-8, 1002 for protocol errors) and
/// closes the socket. Bounded, so a peer that stopped reading cannot hold us.
pub async fn finish<S>(ws: &mut yawc::WebSocket<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures::{Sink, SinkExt};
    // `poll_ready` is what writes yawc's queued ("obligated") frames; a
    // plain flush or close would not send the 1009 first.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        let _ = futures::future::poll_fn(|cx| std::pin::Pin::new(&mut *ws).poll_ready(cx)).await;
        let _ = ws.flush().await;
    })
    .await;
}
