//! Idle connections: how much resident memory each open, quiet connection
//! costs the server, and whether it holds the target count. On `/ws/v1`
//! each connection has had its `hello` and subscribed to `tasks`, as the
//! board's page does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::fanout::Target;
use crate::procstat;
use crate::receiver::{self, Protocol};
use crate::ws::{Conn, OP_CLOSE, OP_PING};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Result {
    pub server: String,
    pub endpoint: String,
    /// Whether the clients offered permessage-deflate (browsers always do).
    pub deflate: bool,
    /// Connections at which memory was measured.
    pub measured_at: usize,
    pub rss_before_mib: f64,
    pub rss_after_mib: f64,
    pub kib_per_connection: f64,
    /// The same after one task event (about 1 KiB of JSON) reached every
    /// connection: what writing, and compressing, costs once it happened.
    pub kib_after_event: f64,
    pub connects_per_sec: f64,
    /// Connections tried in all (measured_at, then up to the capacity goal).
    pub goal: usize,
    /// Of `goal`, how many were open and unclosed after a pause.
    pub held: usize,
    pub note: String,
}

/// Opens `measure_at` connections, measures, then opens more up to `goal`
/// and counts how many the server holds.
pub async fn run(
    target: &Target,
    path: &str,
    protocol: Protocol,
    deflate: bool,
    measure_at: usize,
    goal: usize,
) -> std::result::Result<Result, String> {
    let headers = if deflate {
        crate::ws::DEFLATE_OFFER
    } else {
        ""
    };
    let pid = target
        .pid
        .ok_or("the idle scenario needs the server's pid")?;
    // Let the process settle after start-up before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = procstat::rss_kib(pid).unwrap_or(0);
    let alive = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut holders = JoinSet::new();
    let mut failures = Vec::new();

    let t0 = Instant::now();
    open(
        target,
        path,
        protocol,
        headers,
        measure_at,
        &alive,
        &stop_rx,
        &mut holders,
        &mut failures,
    )
    .await;
    let connect_secs = t0.elapsed().as_secs_f64();
    let opened = alive.load(Ordering::Relaxed);
    // Give the server time to finish setting every connection up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = procstat::rss_kib(pid).unwrap_or(0);
    if opened == 0 {
        return Err(format!(
            "no connection could be opened (first failure: {})",
            failures.first().map_or("none", String::as_str)
        ));
    }
    let kib_per_connection = after.saturating_sub(before) as f64 / opened as f64;
    eprintln!(
        "    {opened} connections in {connect_secs:.1} s: {:.1} MiB -> {:.1} MiB, {kib_per_connection:.1} KiB each",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
    );
    let description = "Memory after an event: sockets wrote it, deflate compressed it. ".repeat(16);
    let posted = crate::publish::client()
        .post(format!("http://{}/tasks", target.addr))
        .json(&serde_json::json!({"title": "idle event", "description": description}))
        .send()
        .await
        .map_err(|e| format!("POST /tasks: {e}"))?;
    if !posted.status().is_success() {
        return Err(format!("POST /tasks answered {}", posted.status()));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_event = procstat::rss_kib(pid).unwrap_or(0);
    let kib_after_event = after_event.saturating_sub(before) as f64 / opened as f64;
    eprintln!("    after one task event: {kib_after_event:.1} KiB each");

    if goal > measure_at {
        open(
            target,
            path,
            protocol,
            headers,
            goal - measure_at,
            &alive,
            &stop_rx,
            &mut holders,
            &mut failures,
        )
        .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let held = alive.load(Ordering::Relaxed);
    eprintln!("    held {held} of {goal}");
    let _ = stop_tx.send(true);
    while holders.join_next().await.is_some() {}
    let mut note = String::new();
    if let Some(first) = failures.first() {
        note = format!("{} connections failed (first: {first})", failures.len());
    }
    Ok(Result {
        server: target.name.clone(),
        endpoint: path.to_owned(),
        deflate,
        measured_at: opened,
        rss_before_mib: (before as f64 / 102.4).round() / 10.0,
        rss_after_mib: (after as f64 / 102.4).round() / 10.0,
        kib_per_connection: (kib_per_connection * 10.0).round() / 10.0,
        kib_after_event: (kib_after_event * 10.0).round() / 10.0,
        connects_per_sec: (opened as f64 / connect_secs).round(),
        goal,
        held,
        note,
    })
}

#[allow(clippy::too_many_arguments)]
async fn open(
    target: &Target,
    path: &str,
    protocol: Protocol,
    headers: &str,
    n: usize,
    alive: &Arc<AtomicUsize>,
    stop: &watch::Receiver<bool>,
    holders: &mut JoinSet<()>,
    failures: &mut Vec<String>,
) {
    let addr = target.addr;
    let mut conns = futures::stream::iter((0..n).map(|_| async move {
        let conn = receiver::open_with(addr, path, protocol, "tasks", headers).await?;
        Ok::<Conn, std::io::Error>(conn)
    }))
    .buffer_unordered(200);
    let mut done = 0usize;
    while let Some(conn) = conns.next().await {
        done += 1;
        if done.is_multiple_of(5000) {
            eprintln!("      connected {done} of {n}");
        }
        match conn {
            Ok(conn) => {
                alive.fetch_add(1, Ordering::Relaxed);
                holders.spawn(hold(conn, alive.clone(), stop.clone()));
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
}

/// Keeps a connection open and quiet (answering pings) until told to stop;
/// counts itself out if the server closes it.
async fn hold(mut conn: Conn, alive: Arc<AtomicUsize>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => {
                conn.close().await;
                alive.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            n = conn.read_more() => {
                let mut ended = !matches!(n, Ok(k) if k > 0);
                while let Ok(Some(frame)) = conn.next_frame() {
                    match frame.opcode {
                        OP_PING => conn.queue_pong_for(&frame),
                        OP_CLOSE => ended = true,
                        _ => {}
                    }
                }
                if ended || conn.flush().await.is_err() {
                    alive.fetch_sub(1, Ordering::Relaxed);
                    return;
                }
                conn.shrink();
            }
        }
    }
}
