//! The WebSocket handshake, and a guard on the raw byte stream.
//!
//! yawc does the RFC 6455 work, with two gaps that Autobahn finds and that
//! we close here instead of forking it:
//!
//! * it parses a single `permessage-deflate` offer, so a browser or client
//!   that lists several (`a, b, c`) got no compression at all. RFC 7692 lets
//!   the server accept any one offer; we hand yawc the first one.
//! * it answers a reserved opcode with 1003 and an over-long control frame
//!   (a close reason past 123 bytes) with 1000, where RFC 6455 requires the
//!   connection to fail with 1002. [`FrameGuard`] reads frame headers as
//!   they arrive, before yawc does, and fails the connection with 1002 itself.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::response::Response;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use yawc::{IncomingUpgrade, Options, Role, WebSocket};

use crate::error::ApiError;
use crate::state::AppState;

/// A server-side WebSocket on an upgraded HTTP connection, behind the guard.
pub type Socket = WebSocket<FrameGuard<TokioIo<Upgraded>>>;

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

impl FromRequestParts<AppState> for WsUpgrade {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        check_origin(parts, state)?;
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
        let inner = IncomingUpgrade::from_request_parts(parts, state).await;
        match (upgrade_requested, on_upgrade, inner) {
            (true, Some(on_upgrade), Ok(inner)) => Ok(WsUpgrade {
                inner,
                on_upgrade,
                bearer,
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
            impl std::future::Future<Output = Option<Socket>> + Send,
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
        let socket = async move {
            let upgraded = on_upgrade.await.ok()?;
            let io = FrameGuard::new(TokioIo::new(upgraded));
            WebSocket::from_stream_with_extensions(io, Role::Server, agreed.as_deref(), options)
                .ok()
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

/// Where the guard is in the client's frame stream.
#[derive(Clone, Copy, Debug)]
enum Scan {
    /// Expecting a frame's first byte.
    First,
    /// Got the first byte (FIN/RSV/opcode); expecting the length byte.
    Second { control: bool },
    /// Reading the extended length (`need` bytes, 0 for a 7-bit length)
    /// and then the 4-byte mask key.
    Extended {
        need: usize,
        have: usize,
        len: u64,
        mask: bool,
    },
    /// Skipping the payload.
    Payload { left: u64 },
}

/// The close frame that fails a connection for a protocol error (1002).
const PROTOCOL_ERROR: [u8; 4] = [0x88, 0x02, 0x03, 0xea];

/// Passes bytes through, failing the connection with 1002 at the first
/// reserved opcode or over-long control frame, before yawc sees that byte.
pub struct FrameGuard<T> {
    inner: T,
    scan: Scan,
    /// Set on a violation: bytes of the close frame still to write.
    closing: Option<usize>,
    /// The close frame is out; the stream reads as ended.
    done: bool,
}

impl<T> FrameGuard<T> {
    pub fn new(inner: T) -> Self {
        FrameGuard {
            inner,
            scan: Scan::First,
            closing: None,
            done: false,
        }
    }

    /// Advances over `bytes`; returns the offset of a violating byte.
    fn scan(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            self.scan = match self.scan {
                Scan::First => {
                    let opcode = b & 0x0f;
                    if matches!(opcode, 3..=7 | 11..=15) {
                        return Some(i);
                    }
                    Scan::Second {
                        control: opcode >= 8,
                    }
                }
                Scan::Second { control } => {
                    let len7 = b & 0x7f;
                    if control && len7 > 125 {
                        return Some(i);
                    }
                    let mask = b & 0x80 != 0;
                    match len7 {
                        126 => Scan::Extended {
                            need: 2,
                            have: 0,
                            len: 0,
                            mask,
                        },
                        127 => Scan::Extended {
                            need: 8,
                            have: 0,
                            len: 0,
                            mask,
                        },
                        n if mask => Scan::Extended {
                            need: 0,
                            have: 0,
                            len: u64::from(n),
                            mask,
                        },
                        0 => Scan::First,
                        n => Scan::Payload { left: u64::from(n) },
                    }
                }
                Scan::Extended {
                    need,
                    have,
                    len,
                    mask,
                } => {
                    let (len, have) = if have < need {
                        (len << 8 | u64::from(b), have + 1)
                    } else {
                        (len, have + 1)
                    };
                    let total = need + if mask { 4 } else { 0 };
                    if have < total {
                        Scan::Extended {
                            need,
                            have,
                            len,
                            mask,
                        }
                    } else if len == 0 {
                        Scan::First
                    } else {
                        Scan::Payload { left: len }
                    }
                }
                Scan::Payload { left } => {
                    let take = (bytes.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    i += take;
                    let left = left - take as u64;
                    self.scan = if left == 0 {
                        Scan::First
                    } else {
                        Scan::Payload { left }
                    };
                    continue;
                }
            };
            i += 1;
        }
        None
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for FrameGuard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(Ok(()));
        }
        if let Some(written) = this.closing {
            let mut written = written;
            while written < PROTOCOL_ERROR.len() {
                let n =
                    ready!(Pin::new(&mut this.inner).poll_write(cx, &PROTOCOL_ERROR[written..]))?;
                if n == 0 {
                    break;
                }
                written += n;
                this.closing = Some(written);
            }
            ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
            this.done = true;
            return Poll::Ready(Ok(()));
        }
        let start = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if let Some(at) = this.scan(&buf.filled()[start..]) {
            buf.set_filled(start + at);
            this.closing = Some(0);
            if at == 0 {
                // Nothing to hand over: write the close frame now.
                return Pin::new(this).poll_read(cx, buf);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for FrameGuard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.closing.is_some() {
            // After our close frame nothing else may follow it on the wire.
            return Poll::Ready(Ok(data.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> FrameGuard<()> {
        FrameGuard::new(())
    }

    /// A masked client frame.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![first];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n <= 0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&[1, 2, 3, 4]);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn valid_streams_pass_even_split_byte_by_byte() {
        let mut bytes = frame(0x81, b"hello");
        bytes.extend(frame(0x82, &[7u8; 300]));
        bytes.extend(frame(0x89, b"ping"));
        bytes.extend(frame(0x01, &[b'a'; 70_000]));
        bytes.extend(frame(0x80, b""));
        bytes.extend(frame(0x88, &[0x03, 0xe8]));
        assert_eq!(guard().scan(&bytes), None);
        let mut g = guard();
        for b in &bytes {
            assert_eq!(g.scan(std::slice::from_ref(b)), None);
        }
        assert!(matches!(g.scan, Scan::First));
    }

    #[test]
    fn reserved_opcodes_are_caught_at_their_first_byte() {
        for opcode in [3u8, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
            let mut bytes = frame(0x81, b"ok");
            let at = bytes.len();
            bytes.extend(frame(0x80 | opcode, b"x"));
            assert_eq!(guard().scan(&bytes), Some(at), "opcode {opcode}");
        }
    }

    #[test]
    fn control_frames_over_125_bytes_are_caught_at_the_length() {
        let bytes = frame(0x88, &[b'r'; 126]);
        assert_eq!(guard().scan(&bytes), Some(1));
        assert_eq!(guard().scan(&frame(0x88, &[b'r'; 125])), None);
        assert_eq!(guard().scan(&frame(0x81, &[b'r'; 126])), None);
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
