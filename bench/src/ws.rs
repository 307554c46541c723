//! A minimal WebSocket client for load generation.
//!
//! Only what the scenarios need, and nothing per message that a full client
//! library would do (no per-frame allocation, no message assembly, no
//! compression): the load generator shares two cores with the server it
//! measures, so every cycle it spends is one the server does not get.
//! Server frames are parsed in place from one growable buffer; client frames
//! are masked as RFC 6455 requires.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

pub const OP_TEXT: u8 = 0x1;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The compression offer a browser sends.
pub const DEFLATE_OFFER: &str =
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";

/// Largest frame the client accepts; the servers under test send far less.
const MAX_FRAME: usize = 16 << 20;

/// Source addresses rotate over 127.0.1.1 ... 127.0.1.250 (all loopback on
/// Linux), so tens of thousands of connections, and the TIME_WAIT they
/// leave, never run out of ephemeral ports towards one server port.
static NEXT_SOURCE: AtomicU32 = AtomicU32::new(0);

fn next_source() -> IpAddr {
    let n = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed) % 250;
    IpAddr::from([127, 0, 1, (n + 1) as u8])
}

/// An open WebSocket connection.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Start of unparsed bytes in `buf`.
    head: usize,
    /// End of received bytes in `buf`.
    tail: usize,
    out: Vec<u8>,
}

/// One parsed server frame: its opcode and where its payload is in the
/// connection's buffer (valid until the next read).
#[derive(Clone, Debug)]
pub struct Frame {
    pub opcode: u8,
    /// RSV1: the payload is deflated (permessage-deflate).
    pub compressed: bool,
    pub payload: Range<usize>,
}

impl Conn {
    /// Connects to `server` and performs the opening handshake for `path`.
    pub async fn connect(server: SocketAddr, path: &str) -> io::Result<Conn> {
        Self::connect_with(server, path, "").await
    }

    /// [`connect`](Self::connect) with extra request header lines (each
    /// ending in `\r\n`), e.g. [`DEFLATE_OFFER`]. Compressed messages are
    /// inflated one by one, so a server that keeps context between them is
    /// refused.
    pub async fn connect_with(server: SocketAddr, path: &str, headers: &str) -> io::Result<Conn> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(next_source(), 0))?;
        let mut stream = socket.connect(server).await?;
        stream.set_nodelay(true)?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: cHVsc2Vib2FyZC1iZW5jaA==\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut buf = vec![0u8; 1024];
        let mut tail = 0;
        let end = loop {
            if tail == buf.len() {
                return Err(io::Error::other("handshake response too long"));
            }
            let n = stream.read(&mut buf[tail..]).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed during handshake",
                ));
            }
            tail += n;
            if let Some(pos) = memchr::memmem::find(&buf[..tail], b"\r\n\r\n") {
                break pos + 4;
            }
        };
        let status = buf[..end]
            .split(|b| *b == b' ')
            .nth(1)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .unwrap_or_default();
        if status != "101" {
            return Err(io::Error::other(format!("handshake answered {status}")));
        }
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        if head.contains("permessage-deflate") && !head.contains("server_no_context_takeover") {
            return Err(io::Error::other(
                "the server compresses with context takeover, which this client cannot follow",
            ));
        }
        Ok(Conn {
            stream,
            buf,
            head: end,
            tail,
            out: Vec::new(),
        })
    }

    /// The next complete frame already received, if any.
    pub fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        let bytes = &self.buf[self.head..self.tail];
        if bytes.len() < 2 {
            return Ok(None);
        }
        let opcode = bytes[0] & 0x0f;
        let (len, mut at) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 if bytes.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&bytes[2..10]);
                (
                    usize::try_from(u64::from_be_bytes(n)).unwrap_or(usize::MAX),
                    10,
                )
            }
            126 | 127 => return Ok(None),
            n => (usize::from(n), 2),
        };
        if bytes[1] & 0x80 != 0 {
            at += 4; // a masked server frame is a protocol error; skip the key
        }
        if len > MAX_FRAME {
            return Err(io::Error::other("frame too large"));
        }
        if bytes.len() < at + len {
            return Ok(None);
        }
        let start = self.head + at;
        self.head = start + len;
        Ok(Some(Frame {
            opcode,
            compressed: bytes[0] & 0x40 != 0,
            payload: start..start + len,
        }))
    }

    pub fn payload(&self, frame: &Frame) -> &[u8] {
        &self.buf[frame.payload.clone()]
    }

    /// Reads more bytes. Returns 0 when the server closed the connection.
    /// Cancel-safe: a cancelled call has read nothing.
    pub async fn read_more(&mut self) -> io::Result<usize> {
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
        } else if self.head > 0 && self.buf.len() - self.tail < 512 {
            self.buf.copy_within(self.head..self.tail, 0);
            self.tail -= self.head;
            self.head = 0;
        }
        if self.buf.len() - self.tail < 512 {
            let grow = self.buf.len().max(4096);
            self.buf.resize(self.buf.len() + grow, 0);
        }
        let n = self.stream.read(&mut self.buf[self.tail..]).await?;
        self.tail += n;
        Ok(n)
    }

    /// Queues a masked client frame; [`flush`](Self::flush) sends it.
    pub fn queue(&mut self, opcode: u8, payload: &[u8]) {
        let mask = [0x5a, 0xa5, 0x3c, 0xc3];
        self.out.push(0x80 | opcode);
        match payload.len() {
            n if n < 126 => self.out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                self.out.push(0x80 | 126);
                self.out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                self.out.push(0x80 | 127);
                self.out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        self.out.extend_from_slice(&mask);
        self.out
            .extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    }

    /// Writes every queued frame.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    pub async fn send_text(&mut self, text: &[u8]) -> io::Result<()> {
        self.queue(OP_TEXT, text);
        self.flush().await
    }

    /// Answers a ping the way a browser would, so heartbeats never drop a
    /// load-generator connection.
    pub fn queue_pong_for(&mut self, ping: &Frame) {
        let payload = self.buf[ping.payload.clone()].to_vec();
        self.queue(OP_PONG, &payload);
    }

    /// Reads until a text message containing `needle` arrives (answering
    /// pings on the way). A typed `error` reply or a close fails it.
    pub async fn expect_text(&mut self, needle: &[u8], within: Duration) -> io::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(frame) = self.next_frame()? {
                match frame.opcode {
                    OP_TEXT => {
                        let text = self.payload(&frame);
                        if memchr::memmem::find(text, needle).is_some() {
                            return Ok(());
                        }
                        if memchr::memmem::find(text, br#""type":"error""#).is_some() {
                            return Err(io::Error::other(
                                String::from_utf8_lossy(text).into_owned(),
                            ));
                        }
                    }
                    OP_PING => self.queue_pong_for(&frame),
                    OP_CLOSE => return Err(io::Error::other(close_reason(self.payload(&frame)))),
                    _ => {}
                }
            }
            self.flush().await?;
            match tokio::time::timeout_at(deadline, self.read_more()).await {
                Ok(Ok(0)) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed")),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer")),
            }
        }
    }

    /// Sends a normal close frame and drops the connection.
    pub async fn close(mut self) {
        self.queue(OP_CLOSE, &1000u16.to_be_bytes());
        let _ = self.flush().await;
    }

    /// Bytes held for this connection (to keep 19,000 idle ones cheap).
    pub fn shrink(&mut self) {
        if self.head == self.tail {
            self.buf = vec![0; 256];
            self.head = 0;
            self.tail = 0;
        }
        self.out = Vec::new();
    }
}

/// Inflates a permessage-deflate payload negotiated without context
/// takeover (each message stands alone, so one decompressor per thread is
/// enough, however many connections there are).
pub fn inflate(payload: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    use flate2::{Decompress, FlushDecompress, Status};
    thread_local! {
        static INFLATE: std::cell::RefCell<Decompress> = std::cell::RefCell::new(Decompress::new(false));
    }
    INFLATE.with(|cell| {
        let mut d = cell.borrow_mut();
        d.reset(false);
        out.clear();
        for input in [payload, &[0x00, 0x00, 0xff, 0xff][..]] {
            let mut consumed = 0;
            while consumed < input.len() {
                out.reserve(4096);
                let before_in = d.total_in();
                let status = d
                    .decompress_vec(&input[consumed..], out, FlushDecompress::Sync)
                    .map_err(io::Error::other)?;
                consumed += (d.total_in() - before_in) as usize;
                if status == Status::StreamEnd {
                    break;
                }
            }
        }
        Ok(())
    })
}

/// The marker in a compressed payload. Subscribers of one topic receive the
/// same compressed bytes (the server compresses each event once), so each
/// thread remembers the markers of the payloads it inflated lately and
/// inflates only bytes it has not seen: a browser inflates every message,
/// but the load generator shares the machine with the server it measures
/// and must not spend it repeating work whose result it already has. A
/// payload that differs in any byte is inflated afresh.
pub fn find_marker_compressed(payload: &[u8]) -> io::Result<Option<(u32, u64)>> {
    use std::collections::{HashMap, VecDeque};
    use std::hash::{BuildHasher, Hasher};
    /// Enough for several seconds of events at the highest rates tried, so
    /// a subscriber running behind still finds what others inflated.
    const KEEP: usize = 16_384;
    /// A compressed payload and the marker inflating it gave.
    type Known = (Vec<u8>, Option<(u32, u64)>);
    /// Payloads by hash, and the order they came in.
    #[derive(Default)]
    struct Seen {
        by_hash: HashMap<u64, Known>,
        order: VecDeque<u64>,
    }
    thread_local! {
        static SEEN: std::cell::RefCell<Seen> = std::cell::RefCell::default();
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        static STATE: std::collections::hash_map::RandomState =
            std::collections::hash_map::RandomState::new();
    }
    let hash = STATE.with(|s| {
        let mut hasher = s.build_hasher();
        hasher.write(payload);
        hasher.finish()
    });
    let hit = SEEN.with(|seen| {
        seen.borrow()
            .by_hash
            .get(&hash)
            .filter(|(bytes, _)| bytes == payload)
            .map(|(_, marker)| *marker)
    });
    if let Some(marker) = hit {
        return Ok(marker);
    }
    let marker = SCRATCH.with(|scratch| {
        let mut out = scratch.borrow_mut();
        inflate(payload, &mut out).map(|()| find_marker(&out))
    })?;
    SEEN.with(|seen| {
        let mut seen = seen.borrow_mut();
        if seen.order.len() == KEEP {
            if let Some(old) = seen.order.pop_front() {
                seen.by_hash.remove(&old);
            }
        }
        if seen
            .by_hash
            .insert(hash, (payload.to_vec(), marker))
            .is_none()
        {
            seen.order.push_back(hash);
        }
    });
    Ok(marker)
}

/// "1013 slow consumer: ..." from a close frame's payload.
pub fn close_reason(payload: &[u8]) -> String {
    match payload {
        [a, b, reason @ ..] => format!(
            "closed {} {}",
            u16::from_be_bytes([*a, *b]),
            String::from_utf8_lossy(reason)
        ),
        _ => "closed".into(),
    }
}

/// Finds a bench marker `pb<run>.<seq>` in a payload.
pub fn find_marker(payload: &[u8]) -> Option<(u32, u64)> {
    let mut from = 0;
    while let Some(pos) = memchr::memmem::find(&payload[from..], b"pb") {
        let at = from + pos + 2;
        if let Some(found) = parse_marker(&payload[at..]) {
            return Some(found);
        }
        from = at;
    }
    None
}

fn parse_marker(bytes: &[u8]) -> Option<(u32, u64)> {
    let dot = bytes.iter().position(|b| *b == b'.')?;
    let run = parse_digits(&bytes[..dot])?;
    let rest = &bytes[dot + 1..];
    let end = rest
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len());
    let seq = parse_digits(&rest[..end])?;
    Some((u32::try_from(run).ok()?, seq))
}

fn parse_digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 19 {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

/// The marker a scenario puts in a published message.
pub fn marker(run: u32, seq: u64) -> String {
    format!("pb{run}.{seq}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_payloads_inflate() {
        use std::io::Write;
        let text = br#"{"payload":{"task":{"title":"pb4.2"}}}"#.repeat(20);
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&text).unwrap();
        let mut deflated = enc.finish().unwrap();
        // permessage-deflate strips the empty block's trailer.
        deflated.extend_from_slice(&[0, 0, 0xff, 0xff]);
        deflated.truncate(deflated.len() - 4);
        let mut out = Vec::new();
        inflate(&deflated, &mut out).unwrap();
        assert_eq!(out, text);
        assert_eq!(find_marker(&out), Some((4, 2)));
    }

    #[test]
    fn markers_are_found_in_every_wire_format() {
        assert_eq!(find_marker(b"New task created: pb3.17"), Some((3, 17)));
        assert_eq!(find_marker(b"Client c9: pb0.123456"), Some((0, 123456)));
        let typed = br#"{"type":"event","topic":"tasks","epoch":"18bcpb","payload":{"task":{"title":"pb12.5","x":1}}}"#;
        assert_eq!(find_marker(typed), Some((12, 5)));
        assert_eq!(find_marker(b"Message received: nothing"), None);
        assert_eq!(find_marker(marker(7, 99).as_bytes()), Some((7, 99)));
    }
}
