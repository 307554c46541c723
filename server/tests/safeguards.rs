//! Safeguards against the real server: connection and message limits,
//! heartbeats, slow consumers, rate limits, compression and its bombs,
//! trickling handshakes, shutdown.

mod common;

use std::time::{Duration, Instant};

use common::ws::{self, closed_with, recv, subscribe, typed, typed_as, Raw};
use common::Server;
use futures::SinkExt;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn the_connection_over_the_limit_is_closed_with_1008() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--ws-max-connections", "2"]).await;
    let base = server.ws_url("");
    let mut a = typed(&base).await;
    let _b = typed(&base).await;
    let mut c = ws::connect(&server.ws_url("/ws/v1")).await;
    assert_eq!(
        closed_with(&mut c, Duration::from_secs(2)).await,
        CloseCode::Policy
    );
    // The admitted ones are unaffected, and a slot frees when one leaves.
    ws::send(&mut a, json!({"type": "ping", "id": 1})).await;
    assert_eq!(recv(&mut a).await["type"], "pong");
    drop(a);
    server.wait_for_metric("pulseboard_ws_connections", 1).await;
    let mut d = typed(&base).await;
    ws::send(&mut d, json!({"type": "ping", "id": 2})).await;
    assert_eq!(recv(&mut d).await["type"], "pong");
}

#[tokio::test]
async fn an_oversized_message_closes_only_its_connection_with_1009() {
    let dir = tempfile::tempdir().unwrap();
    // A burst allowance above the 1,000 fragments below, so that it is the
    // size limit they meet, not the frame rate.
    let server = Server::start(dir.path(), &["--ws-rate-burst", "2000"]).await;
    let base = server.ws_url("");
    let mut other = typed(&base).await;
    subscribe(&mut other, 1, "room", None).await;

    let mut big = typed(&base).await;
    big.send(Message::text("x".repeat(64 * 1024 + 1)))
        .await
        .unwrap();
    assert_eq!(
        closed_with(&mut big, Duration::from_secs(1)).await,
        CloseCode::Size
    );

    // The same, as 1,000 fragments: 999 x 65 bytes stay under 64 KiB, the
    // last one crosses it (so the server has read everything we sent when it
    // closes, and the close frame is not lost to a reset).
    let mut raw = Raw::connect(server.addr, "/ws/v1", "").await;
    raw.read_frame().await.unwrap(); // hello
    let piece = vec![b'y'; 65];
    raw.send_frame_fin(0x1, false, &piece).await;
    for _ in 0..998 {
        raw.send_frame_fin(0x0, false, &piece).await;
    }
    raw.send_frame_fin(0x0, true, &[b'y'; 1000]).await;
    assert_eq!(raw.close_code().await, Some(1009));

    // A header declaring 2^62 bytes: refused at once, nothing allocated.
    let mut raw = Raw::connect(server.addr, "/ws/v1", "").await;
    raw.read_frame().await.unwrap();
    let mut head = vec![0x81, 0x80 | 127];
    head.extend_from_slice(&(1u64 << 62).to_be_bytes());
    head.extend_from_slice(&[1, 2, 3, 4]);
    raw.stream.write_all(&head).await.unwrap();
    let started = Instant::now();
    assert_eq!(raw.close_code().await, Some(1009));
    assert!(started.elapsed() < Duration::from_secs(1));

    let mut publisher = typed_as(&base, &server.signup("tester").await).await;
    ws::publish_chat(&mut publisher, 2, "room", "still here").await;
    assert_eq!(recv(&mut other).await["payload"]["text"], "still here");
}

#[tokio::test]
async fn binary_and_invalid_utf8_are_closed_with_1003_and_1007() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let mut s = typed(&server.ws_url("")).await;
    s.send(Message::binary(vec![0xde, 0xad, 0xbe, 0xef]))
        .await
        .unwrap();
    assert_eq!(
        closed_with(&mut s, Duration::from_secs(1)).await,
        CloseCode::Unsupported
    );

    let mut raw = Raw::connect(server.addr, "/ws/v1", "").await;
    raw.read_frame().await.unwrap();
    raw.send_frame(0x1, false, &[0x68, 0xc3, 0x28]).await;
    assert_eq!(raw.close_code().await, Some(1007));
}

/// Pings, pongs and continuation frames count against the inbound rate
/// limit like messages do: floods of them are closed with 1008 too, on
/// every endpoint (the echo endpoint here, the typed one below).
#[tokio::test]
async fn floods_of_pings_and_of_fragments_are_closed_with_1008() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--ws-rate-per-sec", "10", "--ws-rate-burst", "20"],
    )
    .await;
    for path in ["/ws", "/ws/v1"] {
        let mut pings = Raw::connect(server.addr, path, "").await;
        for _ in 0..200 {
            pings.send_frame(0x9, false, b"p").await;
        }
        assert_eq!(pings.close_code().await, Some(1008), "pings on {path}");

        let mut pongs = Raw::connect(server.addr, path, "").await;
        for _ in 0..200 {
            pongs.send_frame(0xA, false, b"p").await;
        }
        assert_eq!(pongs.close_code().await, Some(1008), "pongs on {path}");

        // One message in 200 one-byte fragments: far under the size limit,
        // far over the frame allowance.
        let mut fragments = Raw::connect(server.addr, path, "").await;
        fragments.send_frame_fin(0x1, false, b"x").await;
        for _ in 0..199 {
            fragments.send_frame_fin(0x0, false, b"x").await;
        }
        assert_eq!(
            fragments.close_code().await,
            Some(1008),
            "fragments on {path}"
        );
    }
    // Within the allowance, pings are answered and the connection stays.
    let mut polite = Raw::connect(server.addr, "/ws", "").await;
    for _ in 0..5 {
        polite.send_frame(0x9, false, b"hi").await;
        let (_, opcode, payload) = polite.read_frame().await.expect("a pong");
        assert_eq!((opcode, payload.as_slice()), (0xA, &b"hi"[..]));
    }
}

#[tokio::test]
async fn a_flood_is_closed_with_1008() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--ws-rate-per-sec", "10", "--ws-rate-burst", "20"],
    )
    .await;
    let mut s = typed(&server.ws_url("")).await;
    for i in 0..200 {
        if s.send(Message::text(json!({"type": "ping", "id": i}).to_string()))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(
        closed_with(&mut s, Duration::from_secs(2)).await,
        CloseCode::Policy
    );
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--ws-ping-interval-secs", "1"]).await;
    // Raw: reads frames but never answers a ping.
    let mut raw = Raw::connect(server.addr, "/ws/v1", "").await;
    let started = Instant::now();
    let mut pings = 0;
    let code = loop {
        let (_, opcode, payload) = raw.read_frame().await.expect("closed with a frame");
        match opcode {
            0x9 => pings += 1,
            0x8 => break u16::from_be_bytes([payload[0], payload[1]]),
            _ => {}
        }
    };
    assert_eq!(code, 1008);
    assert!(pings >= 1);
    // Silent for more than one and a half intervals, checked at each
    // tick: closed at the second tick, give or take a loaded machine's
    // scheduling.
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(1400) && after < Duration::from_secs(5),
        "dropped after {after:?}, expected about 2 s"
    );

    // A well-behaved client answers pings (tungstenite does) and stays.
    let mut ok = typed(&server.ws_url("")).await;
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        match tokio::time::timeout(
            Duration::from_millis(500),
            futures::StreamExt::next(&mut ok),
        )
        .await
        {
            Ok(Some(Ok(Message::Close(c)))) => panic!("closed: {c:?}"),
            Ok(None) => panic!("ended"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn typed_connections_get_heartbeat_messages() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--ws-ping-interval-secs", "1"]).await;
    let mut s = ws::connect(&server.ws_url("/ws/v1")).await;
    let hello = ws::recv_json(&mut s).await;
    assert_eq!(hello["heartbeat_ms"], 1000, "{hello}");
    let started = Instant::now();
    let mut beats = Vec::new();
    while beats.len() < 2 {
        let msg = ws::recv_json(&mut s).await;
        assert_eq!(msg["type"], "heartbeat", "{msg}");
        let ts: chrono::DateTime<chrono::Utc> = msg["ts"].as_str().unwrap().parse().unwrap();
        beats.push((started.elapsed(), ts));
    }
    // One per interval: the first about a second in, the next a second on.
    assert!(
        beats[0].0 >= Duration::from_millis(800) && beats[0].0 < Duration::from_secs(3),
        "{beats:?}"
    );
    let apart = (beats[1].1 - beats[0].1).to_std().unwrap();
    assert!(
        apart >= Duration::from_millis(800) && apart < Duration::from_secs(3),
        "{beats:?}"
    );
}

#[tokio::test]
async fn a_stalled_subscriber_is_cut_and_does_not_hold_up_a_fast_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--ws-send-queue",
            "128",
            "--ws-rate-per-sec",
            "100000",
            "--ws-rate-burst",
            "100000",
            // Publishing as fast as the fast reader reads is the point.
            "--publish-rate-per-sec",
            "0",
        ],
    )
    .await;
    let base = server.ws_url("");

    // The stalled one subscribes, then never reads again.
    let mut stalled = Raw::connect(server.addr, "/ws/v1", "").await;
    stalled.read_frame().await.unwrap();
    stalled
        .send_frame(
            0x1,
            false,
            json!({"type": "subscribe", "id": 1, "topic": "flood"})
                .to_string()
                .as_bytes(),
        )
        .await;
    stalled.read_frame().await.unwrap();

    let mut fast = typed(&base).await;
    subscribe(&mut fast, 1, "flood", None).await;

    let mut publisher = typed_as(&base, &server.signup("tester").await).await;
    let text = "z".repeat(16 * 1024);
    let total = 1500u64;
    // The publisher never runs more than a window ahead of the fast reader,
    // so only the stalled subscriber can overflow its queue.
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = progress.clone();
    let reader = tokio::spawn(async move {
        let mut worst = Duration::ZERO;
        for expected in 1..=total {
            let ev = recv(&mut fast).await;
            assert_eq!(ev["offset"], expected, "in order, nothing skipped");
            let sent: chrono::DateTime<chrono::Utc> = ev["ts"].as_str().unwrap().parse().unwrap();
            let lag = (chrono::Utc::now() - sent).to_std().unwrap_or_default();
            worst = worst.max(lag);
            seen.store(expected, std::sync::atomic::Ordering::Relaxed);
        }
        worst
    });
    for i in 0..total {
        while i > progress.load(std::sync::atomic::Ordering::Relaxed) + 64 {
            // A reader that gave up (its recv timed out) would stall us forever.
            assert!(
                !reader.is_finished(),
                "the fast reader stopped at {}",
                progress.load(std::sync::atomic::Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let cmd = json!({"type": "publish", "id": i, "topic": "flood",
                         "payload": {"kind": "chat", "from": "p", "text": text}});
        publisher
            .send(Message::text(cmd.to_string()))
            .await
            .unwrap();
    }
    let worst = reader.await.unwrap();
    println!("fast subscriber: {total} events of 16 KiB, worst publish-to-receive lag {worst:?}");
    // A queue that overflows cuts its own connection; it never holds up
    // the publisher or the others. Generous for a loaded 2-core machine;
    // a subscriber held up by the stalled one would wait for ever.
    assert!(
        worst < Duration::from_secs(2),
        "the fast subscriber lagged {worst:?}"
    );

    // The stalled one was cut with 1013 once its queue overflowed.
    let metrics = common::client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("pulseboard_ws_slow_consumer_disconnects_total 1"),
        "{metrics}"
    );
    assert_eq!(stalled.close_code().await, Some(1013));
}

#[tokio::test]
async fn shutdown_closes_typed_clients_with_1001() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let mut clients = Vec::new();
    for i in 0..5 {
        let mut c = typed(&server.ws_url("")).await;
        subscribe(&mut c, i, "tasks", None).await;
        clients.push(c);
    }
    let exit = tokio::spawn(server.terminate());
    for c in &mut clients {
        assert_eq!(
            closed_with(c, Duration::from_secs(5)).await,
            CloseCode::Away
        );
    }
    assert!(exit.await.unwrap());
}

#[tokio::test]
async fn compression_is_negotiated_and_shrinks_task_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let mut raw = Raw::connect(
        server.addr,
        "/ws/v1",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    )
    .await;
    let header = raw.response.to_ascii_lowercase();
    assert!(
        header.contains("sec-websocket-extensions: permessage-deflate"),
        "{}",
        raw.response
    );
    // No context takeover in either direction, though the client did not
    // ask: no connection keeps deflate state between messages.
    assert!(
        header.contains("server_no_context_takeover")
            && header.contains("client_no_context_takeover"),
        "{}",
        raw.response
    );
    let (rsv1, _, hello) = raw.read_frame().await.unwrap();
    assert!(!rsv1, "a small message is sent uncompressed");
    assert!(hello.len() < 128);
    raw.send_frame(
        0x1,
        false,
        json!({"type": "subscribe", "id": 1, "topic": "tasks"})
            .to_string()
            .as_bytes(),
    )
    .await;
    raw.read_frame().await.unwrap();
    // A second subscriber, for the compressed-once check below.
    let mut other = Raw::connect(
        server.addr,
        "/ws/v1",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    )
    .await;
    other.read_frame().await.unwrap();
    other
        .send_frame(
            0x1,
            false,
            json!({"type": "subscribe", "id": 1, "topic": "tasks"})
                .to_string()
                .as_bytes(),
        )
        .await;
    other.read_frame().await.unwrap();

    let description =
        "Ship the release: update the changelog, tag, publish crates, announce. ".repeat(8);
    let client = common::authed_client(&server.signup("ann").await);
    // Two events alike: with context takeover the second would be coded
    // against the first and could not be inflated on its own.
    for title in ["Release 1.0", "Release 1.1"] {
        client
            .post(server.url("/tasks"))
            .json(&json!({"title": title, "description": description}))
            .send()
            .await
            .unwrap();
    }
    for title in ["Release 1.0", "Release 1.1"] {
        let (rsv1, opcode, payload) = raw.read_frame().await.unwrap();
        assert_eq!(opcode, 0x1);
        assert!(rsv1, "the event was sent compressed");
        let json = ws::inflate(&payload);
        let event: serde_json::Value = serde_json::from_slice(&json)
            .unwrap_or_else(|e| panic!("{title}: inflated alone to no JSON ({e})"));
        assert_eq!(event["payload"]["task"]["title"], title);
        println!(
            "task_created event: {} bytes as JSON, {} bytes on the wire ({:.0}% saved)",
            json.len(),
            payload.len(),
            100.0 * (1.0 - payload.len() as f64 / json.len() as f64)
        );
        assert!(payload.len() < json.len() / 2);
        // Compressed once for every subscriber: the same bytes reach both.
        let (other_rsv1, _, other_payload) = other.read_frame().await.unwrap();
        assert!(other_rsv1);
        assert_eq!(other_payload, payload);
    }

    // Without the offer, nothing is compressed.
    let plain = Raw::connect(server.addr, "/ws/v1", "").await;
    assert!(!plain
        .response
        .to_ascii_lowercase()
        .contains("permessage-deflate"));
}

#[tokio::test]
async fn a_decompression_bomb_is_closed_before_it_inflates() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let mut raw = Raw::connect(
        server.addr,
        "/ws/v1",
        "Sec-WebSocket-Extensions: permessage-deflate\r\n",
    )
    .await;
    raw.read_frame().await.unwrap();
    let bomb = ws::deflate(&vec![b' '; 64 * 1024 * 1024]);
    assert!(bomb.len() < 128 * 1024, "bomb is {} bytes", bomb.len());
    let started = Instant::now();
    raw.send_frame(0x1, true, &bomb).await;
    assert_eq!(raw.close_code().await, Some(1009));
    println!(
        "{} byte bomb (64 MiB inflated) closed after {:?}",
        bomb.len(),
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn trickling_handshakes_are_dropped_while_normal_clients_connect() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--header-timeout-secs", "2"]).await;
    let mut trickling = Vec::new();
    for _ in 0..500 {
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /ws/v1 HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        trickling.push(s);
    }
    let start = Instant::now();
    // Normal clients are served promptly meanwhile.
    for _ in 0..10 {
        let t = Instant::now();
        let mut c = typed(&server.ws_url("")).await;
        ws::send(&mut c, json!({"type": "ping", "id": 1})).await;
        assert_eq!(recv(&mut c).await["type"], "pong");
        // Unhindered this takes milliseconds; a client stuck behind the
        // stalled ones would take the whole 2 s header timeout or more.
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "handshake took {:?}",
            t.elapsed()
        );
    }
    // Keep trickling one header byte at a time; the server must hang up.
    let mut open = trickling.len();
    while open > 0 && start.elapsed() < Duration::from_secs(8) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        open = 0;
        for s in &mut trickling {
            if s.write_all(b"X").await.is_ok() {
                open += 1;
            }
        }
    }
    // Writes can succeed once more after the peer closed; reading tells.
    let mut closed = 0;
    for mut s in trickling {
        let mut buf = [0u8; 512];
        match tokio::time::timeout(
            Duration::from_secs(2),
            tokio::io::AsyncReadExt::read(&mut s, &mut buf),
        )
        .await
        {
            Ok(Ok(_)) | Ok(Err(_)) => closed += 1,
            Err(_) => {}
        }
    }
    assert_eq!(closed, 500, "every trickling connection was dropped");
    println!(
        "500 trickling connections dropped within {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn foreign_origins_are_refused_with_403_before_the_upgrade() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--allowed-origins", "https://board.example.com"],
    )
    .await;
    let own = format!("http://{}", server.addr);
    for origin in [
        "https://evil.test",
        "null",
        "https://board.example.com.evil.test",
        "HTTPS://BOARD.EXAMPLE.COM",
        "https://Board.Example.com",
    ] {
        for path in ["/ws/v1", "/ws", "/ws/alice", "/ws/notifications/tasks"] {
            let mut req = server.ws_url(path).into_client_request().unwrap();
            req.headers_mut().insert("origin", origin.parse().unwrap());
            match tokio_tungstenite::connect_async(req).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                    assert_eq!(resp.status(), 403, "{origin} {path}");
                }
                other => panic!("{origin} {path}: expected 403, got {:?}", other.map(|_| ())),
            }
        }
    }
    for origin in ["https://board.example.com", own.as_str()] {
        let mut req = server.ws_url("/ws/v1").into_client_request().unwrap();
        req.headers_mut().insert("origin", origin.parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect(origin);
        assert_eq!(recv(&mut ws).await["type"], "hello");
    }
    // No Origin: a non-browser client, allowed (documented policy).
    let _ = typed(&server.ws_url("")).await;
}
