//! The accept loop.
//!
//! `axum::serve` installs no hyper timer, so hyper's header-read timeout
//! never fires and a client that trickles its request in one byte at a time
//! holds a socket forever. We drive hyper's HTTP/1 connection ourselves,
//! with a timer and `header_read_timeout`, and keep upgrades enabled for
//! WebSockets.
//!
//! Before anything is read, each accepted connection must be admitted
//! ([`crate::admission`]): over the total or per-address limit it is
//! answered 503 with `Retry-After` and closed. Writes that stall (a client
//! that never reads its response) end the connection after
//! `write_timeout`, and TCP keep-alive finds peers that vanished.
//!
//! Shutdown: when the signal fires we stop accepting, let in-flight HTTP
//! requests finish, and cancel the shared token that every WebSocket session
//! watches (they close with 1001). Everything must end within the grace
//! period, or we return anyway.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::admission::{Admission, AdmissionLimits, Refusal};
use crate::metrics::Metrics;

/// Tuning of the accept loop.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub header_timeout: Duration,
    pub write_timeout: Duration,
    pub admission: AdmissionLimits,
    pub grace: Duration,
}

/// TCP keep-alive: first probe after a minute of silence, then every 10 s;
/// the kernel gives up after its default count of probes.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// How long a refused connection's 503 may take to write.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `signal` completes, then shuts down.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    sessions_cancel: CancellationToken,
    sessions: TaskTracker,
    metrics: Arc<Metrics>,
    signal: impl Future<Output = ()>,
) -> io::Result<()> {
    let admission = Admission::new(options.admission);
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
        let ticket = match admission.admit(peer.ip()) {
            Ok(ticket) => ticket,
            Err(refusal) => {
                metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
                let response = refusal_response(refusal);
                // A fresh socket's send buffer takes the whole answer at
                // once: written and closed here, a refused socket never
                // outlives this turn of the loop, so refusals cannot pile
                // up descriptors however slow the rest of the server is.
                match stream.try_write(response.as_bytes()) {
                    Ok(n) if n == response.len() => {
                        if let Ok(socket) = stream.into_std() {
                            let _ = socket.shutdown(std::net::Shutdown::Write);
                        }
                    }
                    Ok(n) => {
                        connections.spawn(refuse(stream, response, n));
                    }
                    Err(_) => {
                        connections.spawn(refuse(stream, response, 0));
                    }
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(KEEPALIVE_IDLE)
            .with_interval(KEEPALIVE_INTERVAL);
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
        // The peer address, for login throttling by client address, and
        // the admission ticket, which a WebSocket session keeps.
        let service = TowerToHyperService::new(app.clone().map_request(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req.extensions_mut().insert(ticket.clone());
                req
            },
        ));
        let io = StallGuard::new(stream, options.write_timeout);
        let conn = builder
            .serve_connection(TokioIo::new(io), service)
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

/// The answer to a connection that was not admitted: 503, JSON, closed.
fn refusal_response(refusal: Refusal) -> String {
    let body = format!(
        r#"{{"error":"too_many_connections","message":"{}"}}"#,
        refusal.reason()
    );
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Writes the rest of a refusal (from byte `from`) when the socket did not
/// take it at once, without reading from it, for at most a bounded time.
async fn refuse(mut stream: TcpStream, response: String, from: usize) {
    let _ = tokio::time::timeout(REFUSAL_WRITE, async {
        stream.write_all(&response.as_bytes()[from..]).await?;
        stream.shutdown().await
    })
    .await;
}

/// A connection's byte stream whose writes may stall for at most `limit`:
/// a peer that stops reading cannot hold a response (or a WebSocket) open
/// forever. Any progress resets the clock.
pub struct StallGuard<S> {
    inner: S,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> StallGuard<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        StallGuard {
            inner,
            limit,
            stalled: None,
        }
    }

    /// After the inner write said `Pending`: pending until the stall has
    /// lasted `limit`, then an error.
    fn stall<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let limit = self.limit;
        let clock = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match clock.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(
        &mut self,
        result: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match result {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.stall(cx),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progress(result, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progress(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.progress(result, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_that_stalls_past_the_limit_fails_and_progress_resets_the_clock() {
        // A pipe with a 16-byte buffer that nobody reads.
        let (writer, mut reader) = tokio::io::duplex(16);
        let mut guarded = StallGuard::new(writer, Duration::from_millis(100));
        guarded.write_all(&[0; 16]).await.unwrap();
        // Read some, then stall: the next write waits, then fails.
        let mut buf = [0; 8];
        tokio::io::AsyncReadExt::read_exact(&mut reader, &mut buf)
            .await
            .unwrap();
        guarded.write_all(&[0; 8]).await.unwrap();
        let started = tokio::time::Instant::now();
        let err = guarded.write_all(&[0; 8]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(100));
    }
}
