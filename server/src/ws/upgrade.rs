//! The WebSocket handshake.
//!
//! yawc does the RFC 6455 work. It parses a single `permessage-deflate`
//! offer, so a browser or client that lists several (`a, b, c`) would get no
//! compression at all; RFC 7692 lets the server accept any one offer, and
//! we hand yawc the first one. The byte stream under yawc is ours
//! (`stream.rs`): it fails protocol violations yawc misgrades, and lets the
//! session write events itself.

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::response::Response;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use yawc::{IncomingUpgrade, Options, Role, WebSocket};

use super::stream::{FrameGuard, Link};

use crate::error::ApiError;
use crate::state::AppState;

/// A server-side WebSocket on an upgraded HTTP connection, behind the guard.
pub type Socket = WebSocket<FrameGuard<TokioIo<Upgraded>>>;

/// How a connection's events may be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventCompression {
    /// Uncompressed: the client did not offer compression, or asked for a
    /// server window narrower than the shared payloads are compressed with.
    Off,
    /// permessage-deflate with the full window and no context takeover:
    /// an event compressed once for everyone is valid here as it is.
    Shared,
}

impl EventCompression {
    /// From the `Sec-WebSocket-Extensions` the server answered with.
    pub fn from_agreed(agreed: Option<&str>) -> EventCompression {
        let Some(agreed) = agreed.filter(|a| a.contains("permessage-deflate")) else {
            return EventCompression::Off;
        };
        let params: Vec<&str> = agreed.split(';').map(str::trim).collect();
        let full_window = params
            .iter()
            .filter_map(|p| p.strip_prefix("server_max_window_bits"))
            .all(|v| v.trim_start_matches([' ', '=']).trim_matches('"') == "15");
        if full_window && params.contains(&"server_no_context_takeover") {
            EventCompression::Shared
        } else {
            EventCompression::Off
        }
    }
}

/// An accepted connection: yawc's socket, the link for writing events
/// directly, and how events may be compressed.
pub struct Accepted {
    pub ws: Socket,
    pub link: Link<TokioIo<Upgraded>>,
    pub compression: EventCompression,
}

/// The first `permessage-deflate` offer of a `Sec-WebSocket-Extensions`
/// header, if any. Offers are comma-separated; their parameters never
/// contain commas.
pub fn first_deflate_offer(value: &str) -> Option<&str> {
    value
        .split(',')
        .map(str::trim)
        .find(|offer| offer.split(';').next().map(str::trim) == Some("permessage-deflate"))
}

/// A validated upgrade request: extract it in a handler, then [`accept`](Self::accept).
pub struct WsUpgrade {
    inner: IncomingUpgrade,
    on_upgrade: OnUpgrade,
    /// The client offered the `bearer` subprotocol (a browser passing its
    /// token); the 101 must select it, or the browser drops the connection.
    bearer: bool,
    /// The connection's admission ticket: the session keeps it, so an
    /// upgraded socket counts against its address until it closes.
    pub ticket: Option<std::sync::Arc<crate::admission::Ticket>>,
}

/// Refuses cross-site WebSocket hijacking: a browser page on another
/// origin cannot open a socket that rides on this user's session. Requests
/// with no `Origin` come from non-browser clients and are allowed.
fn check_origin(parts: &Parts, state: &AppState) -> Result<(), ApiError> {
    let Some(origin) = parts.headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let allowed = origin
        .to_str()
        .is_ok_and(|o| state.config.origin_allowed(o));
    if allowed {
        Ok(())
    } else {
        state
            .metrics
            .connections_rejected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Err(ApiError::OriginNotAllowed)
    }
}

/// One handshake from the client's address (see `admission::Handshakes`).
fn check_handshake_rate(parts: &Parts, state: &AppState) -> Result<(), ApiError> {
    let Some(peer) = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    else {
        return Ok(());
    };
    let ip =
        crate::client_addr::client_ip(peer.0.ip(), &parts.headers, &state.config.trusted_proxies);
    state.handshakes.take(ip).map_err(|wait| {
        state
            .metrics
            .connections_rejected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ApiError::TooManyHandshakes(wait)
    })
}

impl FromRequestParts<AppState> for WsUpgrade {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        check_origin(parts, state)?;
        check_handshake_rate(parts, state)?;
        let offer = parts
            .headers
            .get(header::SEC_WEBSOCKET_EXTENSIONS)
            .and_then(|v| v.to_str().ok())
            .and_then(first_deflate_offer)
            .and_then(|o| HeaderValue::from_str(o).ok());
        match offer {
            Some(offer) => parts
                .headers
                .insert(header::SEC_WEBSOCKET_EXTENSIONS, offer),
            None => parts.headers.remove(header::SEC_WEBSOCKET_EXTENSIONS),
        };
        let upgrade_requested = parts
            .headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        let bearer = crate::auth::bearer_protocol(&parts.headers).is_some();
        let on_upgrade = parts.extensions.get::<OnUpgrade>().cloned();
        let ticket = parts
            .extensions
            .get::<std::sync::Arc<crate::admission::Ticket>>()
            .cloned();
        let inner = IncomingUpgrade::from_request_parts(parts, state).await;
        match (upgrade_requested, on_upgrade, inner) {
            (true, Some(on_upgrade), Ok(inner)) => Ok(WsUpgrade {
                inner,
                on_upgrade,
                bearer,
                ticket,
            }),
            _ => Err(ApiError::UpgradeRequired),
        }
    }
}

impl WsUpgrade {
    /// The 101 response, and a future that yields the socket once the
    /// response has been sent (`None` if the client went away first).
    pub fn accept(
        self,
        options: Options,
    ) -> Result<
        (
            Response,
            impl std::future::Future<Output = Option<Accepted>> + Send,
        ),
        ApiError,
    > {
        let (mut resp, _unused) = self
            .inner
            .upgrade(options.clone())
            .map_err(|e| ApiError::BadBody(format!("WebSocket handshake failed: {e}")))?;
        let agreed = resp
            .headers()
            .get(header::SEC_WEBSOCKET_EXTENSIONS)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let on_upgrade = self.on_upgrade;
        let compression = EventCompression::from_agreed(agreed.as_deref());
        let socket = async move {
            let upgraded = on_upgrade.await.ok()?;
            let (io, link) = FrameGuard::new(TokioIo::new(upgraded));
            let ws = WebSocket::from_stream_with_extensions(
                io,
                Role::Server,
                agreed.as_deref(),
                options,
            )
            .ok()?;
            Some(Accepted {
                ws,
                link,
                compression,
            })
        };
        debug_assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        if self.bearer {
            resp.headers_mut().insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(crate::auth::BEARER_PROTOCOL),
            );
        }
        Ok((resp.map(axum::body::Body::new), socket))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_compression_needs_the_full_window_and_no_context_takeover() {
        use EventCompression::*;
        let ok = "permessage-deflate; client_max_window_bits=9; server_no_context_takeover; client_no_context_takeover";
        assert_eq!(EventCompression::from_agreed(Some(ok)), Shared);
        let full = "permessage-deflate; server_max_window_bits=15; server_no_context_takeover";
        assert_eq!(EventCompression::from_agreed(Some(full)), Shared);
        let narrow = "permessage-deflate; server_max_window_bits=10; server_no_context_takeover";
        assert_eq!(EventCompression::from_agreed(Some(narrow)), Off);
        let takeover = "permessage-deflate; client_max_window_bits";
        assert_eq!(EventCompression::from_agreed(Some(takeover)), Off);
        assert_eq!(EventCompression::from_agreed(None), Off);
    }

    #[test]
    fn picks_the_first_deflate_offer() {
        let h = "permessage-deflate; client_no_context_takeover; server_max_window_bits=9, permessage-deflate";
        assert_eq!(
            first_deflate_offer(h),
            Some("permessage-deflate; client_no_context_takeover; server_max_window_bits=9")
        );
        assert_eq!(
            first_deflate_offer("x-webkit-deflate-frame, permessage-deflate"),
            Some("permessage-deflate")
        );
        assert_eq!(first_deflate_offer("x-webkit-deflate-frame"), None);
    }
}
