//! WebSocket clients for black-box tests: a typed client on
//! tokio-tungstenite, and a raw one for what a well-behaved library would
//! never do (stall, trickle, send compressed bombs).

#![allow(dead_code)]

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any single step of a test may wait: a bug must fail a test
/// in seconds, never hang it.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Awaits `fut`, panicking with `what` after [`DEADLINE`].
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {DEADLINE:?}"))
}

pub async fn connect(url: &str) -> Ws {
    within("WebSocket handshake", tokio_tungstenite::connect_async(url))
        .await
        .expect("connect")
        .0
}

/// Opens `/ws/v1` and consumes the `hello`.
pub async fn typed(base: &str) -> Ws {
    let mut ws = connect(&format!("{base}/ws/v1")).await;
    let hello = recv(&mut ws).await;
    assert_eq!(hello["type"], "hello");
    ws
}

/// Opens `/ws/v1` with `Authorization: Bearer <token>` and consumes the
/// `hello`, which must name a signed-in user.
pub async fn typed_as(base: &str, token: &str) -> Ws {
    let (mut ws, _) = connect_with(
        &format!("{base}/ws/v1"),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
    .expect("connect with a token");
    let hello = recv(&mut ws).await;
    assert_eq!(hello["type"], "hello");
    assert!(hello["user"].is_string(), "signed in: {hello}");
    ws
}

/// The handshake response of a successful connection.
pub type Handshake = tokio_tungstenite::tungstenite::handshake::client::Response;

/// Connects with extra request headers. A refused handshake is an `Err`;
/// [`refused_status`] reads its HTTP status.
pub async fn connect_with(
    url: &str,
    headers: &[(&str, &str)],
) -> Result<(Ws, Handshake), tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    within("WebSocket handshake", tokio_tungstenite::connect_async(req)).await
}

/// The HTTP status and JSON body of a handshake the server refused. Panics
/// if the connection was accepted or failed otherwise.
pub fn refused_status(
    result: Result<(Ws, Handshake), tokio_tungstenite::tungstenite::Error>,
) -> (u16, Value) {
    match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            (resp.status().as_u16(), body)
        }
        Ok((_, resp)) => panic!("expected a refused handshake, got {}", resp.status()),
        Err(e) => panic!("expected a refused handshake, got {e}"),
    }
}

/// Reads text messages until `expected` arrives (earlier ones are skipped).
pub async fn recv_until(ws: &mut Ws, expected: &str) {
    loop {
        if recv_text(ws).await == expected {
            return;
        }
    }
}

pub async fn send(ws: &mut Ws, v: Value) {
    within("send", ws.send(Message::text(v.to_string())))
        .await
        .expect("send");
}

/// The next text message as is. Panics after 5 s or on a close.
pub async fn recv_text(ws: &mut Ws) -> String {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message within 5 s")
            .expect("stream open")
            .expect("no error");
        match msg {
            Message::Text(t) => return t.to_string(),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

/// The next JSON message as is, heartbeats included.
pub async fn recv_json(ws: &mut Ws) -> Value {
    serde_json::from_str(&recv_text(ws).await).expect("JSON")
}

/// The next JSON message, skipping heartbeats.
pub async fn recv(ws: &mut Ws) -> Value {
    loop {
        let v: Value = serde_json::from_str(&recv_text(ws).await).expect("JSON");
        if v["type"] != "heartbeat" {
            return v;
        }
    }
}

/// Waits for the close frame and returns its code.
pub async fn closed_with(ws: &mut Ws, within: Duration) -> CloseCode {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("closed in time");
        match msg {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code,
            Some(Ok(Message::Close(None))) => return CloseCode::Status,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

pub async fn subscribe(ws: &mut Ws, id: u64, topic: &str, since: Option<Value>) -> Value {
    let mut cmd = json!({"type": "subscribe", "id": id, "topic": topic});
    if let Some(since) = since {
        cmd["since"] = since;
    }
    send(ws, cmd).await;
    let reply = recv(ws).await;
    assert_eq!(reply["type"], "subscribed", "{reply}");
    assert_eq!(reply["id"], id);
    reply
}

pub async fn publish_chat(ws: &mut Ws, id: u64, topic: &str, text: &str) -> Value {
    send(
        ws,
        json!({"type": "publish", "id": id, "topic": topic,
               "payload": {"kind": "chat", "from": "tester", "text": text}}),
    )
    .await;
    ws_reply(ws, id).await
}

/// The resume scenario a single server and a cluster must both pass: a
/// subscriber on `first` reads three events live and leaves; five are
/// published while it is away; back on `second` with its last position it
/// gets exactly those five, in order, then the next live one (offset 9)
/// with nothing repeated. `publisher` may be on either server.
pub async fn resume_loses_nothing(publisher: &mut Ws, first: &str, second: &str) {
    let mut s = typed(first).await;
    subscribe(&mut s, 1, "feed", None).await;
    for i in 0..3 {
        publish_chat(publisher, 100 + i, "feed", &format!("m{i}")).await;
    }
    let mut last = Value::Null;
    for i in 0..3 {
        let ev = recv(&mut s).await;
        assert_eq!(ev["payload"]["text"], format!("m{i}"));
        last = json!({"offset": ev["offset"], "epoch": ev["epoch"]});
    }
    drop(s);
    // Missed while away.
    for i in 3..8 {
        publish_chat(publisher, 100 + i, "feed", &format!("m{i}")).await;
    }
    let mut s = typed(second).await;
    let reply = subscribe(&mut s, 2, "feed", Some(last)).await;
    assert_eq!(reply["recovered"], true, "{reply}");
    assert_eq!(reply["position"]["offset"], 8);
    for i in 3..8 {
        let ev = recv(&mut s).await;
        assert_eq!(ev["payload"]["text"], format!("m{i}"), "missed, in order");
    }
    publish_chat(publisher, 200, "feed", "live").await;
    let ev = recv(&mut s).await;
    assert_eq!(
        (ev["offset"].as_u64(), ev["payload"]["text"].as_str()),
        (Some(9), Some("live")),
        "live after the replay, nothing repeated"
    );
}

/// Two seed chat clients (`/ws/{name}`) that have each seen the other:
/// `a` says "ready" and `b` says "here". `b` may or may not have joined in
/// time to see `a`'s "ready", so that line is skipped when it comes.
pub async fn join_chat(a: &mut Ws, a_name: &str, b: &mut Ws, b_name: &str) {
    a.send(Message::text("ready")).await.unwrap();
    assert_eq!(recv_text(a).await, format!("Client {a_name}: ready"));
    b.send(Message::text("here")).await.unwrap();
    let mut first = recv_text(b).await;
    if first == format!("Client {a_name}: ready") {
        first = recv_text(b).await;
    }
    assert_eq!(first, format!("Client {b_name}: here"));
    assert_eq!(recv_text(a).await, format!("Client {b_name}: here"));
}

/// The reply with `id`, buffering nothing: events before it are skipped.
pub async fn ws_reply(ws: &mut Ws, id: u64) -> Value {
    loop {
        let v = recv(ws).await;
        if v["id"] == id && v["type"] != "event" {
            return v;
        }
    }
}

/// A raw WebSocket connection: our own framing, no automatic pongs.
pub struct Raw {
    pub stream: TcpStream,
    pub response: String,
}

impl Raw {
    /// Performs the handshake with `extra` request headers.
    pub async fn connect(addr: std::net::SocketAddr, path: &str, extra: &str) -> Raw {
        let mut stream = within("connect", TcpStream::connect(addr)).await.unwrap();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        );
        let response = within("handshake", async {
            stream.write_all(req.as_bytes()).await.unwrap();
            let mut response = Vec::new();
            let mut byte = [0u8; 1];
            while !response.ends_with(b"\r\n\r\n") {
                stream.read_exact(&mut byte).await.unwrap();
                response.push(byte[0]);
            }
            response
        })
        .await;
        let response = String::from_utf8(response).unwrap();
        assert!(response.starts_with("HTTP/1.1 101"), "{response}");
        Raw { stream, response }
    }

    /// Sends one masked, final frame.
    pub async fn send_frame(&mut self, opcode: u8, rsv1: bool, payload: &[u8]) {
        self.send_raw(opcode, true, rsv1, payload).await;
    }

    /// Sends one masked frame with the FIN bit as given (RSV1 clear).
    pub async fn send_frame_fin(&mut self, opcode: u8, fin: bool, payload: &[u8]) {
        self.send_raw(opcode, fin, false, payload).await;
    }

    /// Sends one masked frame with every header bit chosen.
    pub async fn send_raw(&mut self, opcode: u8, fin: bool, rsv1: bool, payload: &[u8]) {
        let mut frame = vec![if fin { 0x80 } else { 0 } | if rsv1 { 0x40 } else { 0 } | opcode];
        let len = payload.len();
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else if len <= 0xffff {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let mask = [0x12, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        within("sending a frame", self.stream.write_all(&frame))
            .await
            .unwrap();
    }

    /// Reads one frame: (rsv1, opcode, payload). `None` on EOF; panics if
    /// none comes within [`DEADLINE`].
    pub async fn read_frame(&mut self) -> Option<(bool, u8, Vec<u8>)> {
        within("reading a frame", self.read_frame_now()).await
    }

    async fn read_frame_now(&mut self) -> Option<(bool, u8, Vec<u8>)> {
        let mut head = [0u8; 2];
        self.stream.read_exact(&mut head).await.ok()?;
        let rsv1 = head[0] & 0x40 != 0;
        let opcode = head[0] & 0x0f;
        let len = match head[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                self.stream.read_exact(&mut b).await.ok()?;
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                self.stream.read_exact(&mut b).await.ok()?;
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        self.stream.read_exact(&mut payload).await.ok()?;
        Some((rsv1, opcode, payload))
    }

    /// Reads frames until a close frame; returns its code, or `None` if the
    /// connection ended without one.
    pub async fn close_code(&mut self) -> Option<u16> {
        while let Some((_, opcode, payload)) = self.read_frame().await {
            if opcode == 8 {
                return (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
            }
        }
        None
    }
}

/// Inflates a permessage-deflate payload.
pub fn inflate(payload: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut data = payload.to_vec();
    data.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
    let mut out = Vec::new();
    let _ = flate2::read::DeflateDecoder::new(&data[..]).read_to_end(&mut out);
    out
}

/// Deflates a message as a permessage-deflate sender would (trailer removed).
pub fn deflate(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    let mut out = enc.finish().unwrap();
    // A final empty stored block ends with 00 00 ff ff; the sender strips it.
    if out.ends_with(&[0x00, 0x00, 0xff, 0xff]) {
        out.truncate(out.len() - 4);
    }
    out
}
