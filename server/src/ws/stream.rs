//! The byte stream under yawc: a guard on what the client sends, and a
//! write link shared with the session.
//!
//! **Reading.** yawc answers a reserved opcode with 1003 and an over-long
//! control frame (a close reason past 123 bytes) with 1000, where RFC 6455
//! requires the connection to fail with 1002. [`FrameGuard`] reads frame
//! headers as they arrive, before yawc does, and fails the connection with
//! 1002 itself.
//!
//! **Writing.** Every byte for the client goes through one buffer that
//! both yawc (through the guard: pings, pongs, closes, replies) and the
//! session (through a [`Link`]: events) append whole frames to, in the
//! order they are produced. That lets the session write an event's frame
//! itself, with a payload rendered and compressed once for every
//! subscriber of the topic, instead of handing each connection's yawc the
//! plain text to compress again. The buffer accepts everything yawc writes
//! at once, so yawc never leaves half a frame in it, and frames from the
//! two writers can never interleave; flushing it is what waits for the
//! socket.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Capacity the write buffer may keep once drained; a larger one (after a
/// big batch) is given back, so idle connections stay small.
const KEEP_CAPACITY: usize = 4096;

/// The socket and its pending output, shared by the guard and the link.
struct Shared<T> {
    io: T,
    out: BytesMut,
    /// A 1002 close has been queued: nothing may follow it on the wire.
    sealed: bool,
}

impl<T: AsyncWrite + Unpin> Shared<T> {
    /// Writes the buffer out; `Pending` while the socket is full.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.advance(n);
        }
        if self.out.capacity() > KEEP_CAPACITY {
            self.out = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }
}

fn lock<T>(shared: &Mutex<Shared<T>>) -> MutexGuard<'_, Shared<T>> {
    // Only one task uses a connection; a poisoned lock means a panic
    // mid-write, after which the connection is dropped anyway.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// The session's side of the write buffer.
pub struct Link<T> {
    shared: Arc<Mutex<Shared<T>>>,
    frames_in: Arc<AtomicU64>,
}

impl<T: AsyncWrite + Unpin> Link<T> {
    /// Appends a whole, final text frame (server frames are not masked);
    /// `compressed` sets RSV1 for a permessage-deflate payload.
    pub fn push_text(&self, payload: &[u8], compressed: bool) {
        let mut shared = lock(&self.shared);
        if shared.sealed {
            return;
        }
        let out = &mut shared.out;
        out.reserve(payload.len() + 10);
        out.put_u8(0x81 | if compressed { 0x40 } else { 0 });
        match payload.len() {
            n if n < 126 => out.put_u8(n as u8),
            n if n <= 0xffff => {
                out.put_u8(126);
                out.put_u16(n as u16);
            }
            n => {
                out.put_u8(127);
                out.put_u64(n as u64);
            }
        }
        out.put_slice(payload);
    }

    /// Frames the client has sent so far, of every kind: data,
    /// continuation, ping, pong, close. The session's inbound rate limit
    /// charges them all, so a flood of pings or of one-byte fragments costs
    /// as much as a flood of messages. An atomic, not a field behind the
    /// write lock: the session reads it on every wake.
    pub fn frames_in(&self) -> u64 {
        self.frames_in.load(Ordering::Relaxed)
    }

    /// Writes everything appended so far (by either writer).
    pub fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut shared = lock(&self.shared);
        ready!(shared.poll_drain(cx))?;
        Pin::new(&mut shared.io).poll_flush(cx)
    }

    pub async fn flush(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_flush(cx)).await
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

/// The close frame that fails a connection for a protocol error (1002):
/// FIN + close opcode, a two-byte payload, the code in network order.
const PROTOCOL_ERROR: [u8; 4] = {
    let [high, low] = app::protocol::close::PROTOCOL_ERROR.to_be_bytes();
    [0x88, 0x02, high, low]
};

/// Tracks frame boundaries in the client's byte stream.
#[derive(Debug)]
struct Scanner {
    state: Scan,
    /// Frames begun since the last [`take_frames`](Self::take_frames).
    frames: u64,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            state: Scan::First,
            frames: 0,
        }
    }
}

impl Scanner {
    fn take_frames(&mut self) -> u64 {
        std::mem::take(&mut self.frames)
    }

    /// Advances over `bytes`; returns the offset of a violating byte.
    fn scan(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            self.state = match self.state {
                Scan::First => {
                    self.frames += 1;
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
                    self.state = if left == 0 {
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

/// What yawc reads from and writes to: the socket, behind the protocol
/// guard, writing through the buffer it shares with the session's [`Link`].
pub struct FrameGuard<T> {
    shared: Arc<Mutex<Shared<T>>>,
    frames_in: Arc<AtomicU64>,
    scanner: Scanner,
    /// A violation was found: the 1002 close is queued.
    closing: bool,
    /// The close frame is out; the stream reads as ended.
    done: bool,
}

impl<T> FrameGuard<T> {
    /// Wraps a socket; the link is for the session's direct writes.
    pub fn new(io: T) -> (FrameGuard<T>, Link<T>) {
        let shared = Arc::new(Mutex::new(Shared {
            io,
            out: BytesMut::new(),
            sealed: false,
        }));
        let frames_in = Arc::new(AtomicU64::new(0));
        let guard = FrameGuard {
            shared: shared.clone(),
            frames_in: frames_in.clone(),
            scanner: Scanner::default(),
            closing: false,
            done: false,
        };
        (guard, Link { shared, frames_in })
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
        let mut shared = lock(&this.shared);
        if this.closing {
            // Whatever was queued before, then our close frame.
            ready!(shared.poll_drain(cx))?;
            ready!(Pin::new(&mut shared.io).poll_flush(cx))?;
            this.done = true;
            return Poll::Ready(Ok(()));
        }
        let start = buf.filled().len();
        ready!(Pin::new(&mut shared.io).poll_read(cx, buf))?;
        let violation = this.scanner.scan(&buf.filled()[start..]);
        this.frames_in
            .fetch_add(this.scanner.take_frames(), Ordering::Relaxed);
        if let Some(at) = violation {
            buf.set_filled(start + at);
            shared.out.put_slice(&PROTOCOL_ERROR);
            shared.sealed = true;
            this.closing = true;
            if at == 0 {
                // Nothing to hand over: write the close frame now.
                drop(shared);
                return Pin::new(this).poll_read(cx, buf);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for FrameGuard<T> {
    /// Takes all of `data` (whole frames from yawc's buffer) and writes as
    /// much as the socket takes; the rest waits in the shared buffer for
    /// the next flush.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut shared = lock(&self.shared);
        if shared.sealed {
            // After our close frame nothing else may follow it on the wire.
            return Poll::Ready(Ok(data.len()));
        }
        let mut rest = data;
        if shared.out.is_empty() {
            if let Poll::Ready(written) = Pin::new(&mut shared.io).poll_write(cx, data) {
                rest = &data[written?..];
            }
        }
        shared.out.put_slice(rest);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut shared = lock(&self.shared);
        ready!(shared.poll_drain(cx))?;
        Pin::new(&mut shared.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut shared = lock(&self.shared);
        ready!(shared.poll_drain(cx))?;
        Pin::new(&mut shared.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Scanner {
        Scanner::default()
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
        assert!(matches!(g.state, Scan::First));
    }

    #[test]
    fn every_frame_is_counted_even_split_byte_by_byte() {
        let mut bytes = frame(0x01, b"he");
        bytes.extend(frame(0x00, b"l"));
        bytes.extend(frame(0x89, b""));
        bytes.extend(frame(0x8A, b"p"));
        bytes.extend(frame(0x80, b"lo"));
        let mut g = guard();
        for b in &bytes {
            assert_eq!(g.scan(std::slice::from_ref(b)), None);
        }
        assert_eq!(g.take_frames(), 5);
        assert_eq!(g.take_frames(), 0);
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

    /// What yawc writes and what the session writes reach the socket in
    /// the order they were produced, whole.
    #[tokio::test]
    async fn both_writers_share_one_ordered_stream() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (server, mut client) = tokio::io::duplex(64);
        let (mut guard, link) = FrameGuard::new(server);
        guard.write_all(&[0x89, 0x00]).await.unwrap(); // a ping, as yawc would
        link.push_text(b"event one", false);
        link.push_text(&[1, 2, 3], true);
        guard.write_all(&[0x8a, 0x00]).await.unwrap(); // a pong
        let big = vec![b'x'; 300];
        link.push_text(&big, false);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while got.len() < 2 + 11 + 5 + 2 + 304 {
                let n = client.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        link.flush().await.unwrap();
        let got = reader.await.unwrap();
        let mut want = vec![0x89, 0x00, 0x81, 9];
        want.extend_from_slice(b"event one");
        want.extend_from_slice(&[0xc1, 3, 1, 2, 3, 0x8a, 0x00, 0x81, 126, 1, 44]);
        want.extend_from_slice(&big);
        assert_eq!(got, want);
    }
}
