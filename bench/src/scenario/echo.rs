//! Echo round trips on `/ws`: C connections, each keeping K messages in
//! flight, for a fixed time.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::fanout::{ms, Target};
use crate::hist::Histogram;
use crate::procstat::CpuMeter;
use crate::ws::{self, Conn, OP_CLOSE, OP_PING, OP_TEXT};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Result {
    pub server: String,
    pub connections: usize,
    pub in_flight: usize,
    pub round_trips_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub errors: usize,
    pub server_cpu_pct: f64,
}

pub async fn run(
    target: &Target,
    connections: usize,
    in_flight: usize,
    duration: Duration,
) -> std::result::Result<Result, String> {
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(
            Conn::connect(target.addr, "/ws")
                .await
                .map_err(|e| format!("connecting to /ws: {e}"))?,
        );
    }
    let done = Arc::new(AtomicU64::new(0));
    let progress = crate::progress(format!("echo {connections} x {in_flight}"), {
        let done = done.clone();
        move || format!("{} round trips", done.load(Ordering::Relaxed))
    });
    let cpu = target.pid.map(CpuMeter::start);
    let start = Instant::now();
    let until = start + duration;
    let mut tasks = JoinSet::new();
    for conn in conns {
        tasks.spawn(pump(conn, in_flight, until, done.clone()));
    }
    let mut hist = Histogram::default();
    let mut errors = 0;
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(h)) => hist.merge(&h),
            _ => errors += 1,
        }
    }
    progress.abort();
    let elapsed = start.elapsed().as_secs_f64();
    Ok(Result {
        server: target.name.clone(),
        connections,
        in_flight,
        round_trips_per_sec: (hist.count() as f64 / elapsed).round(),
        p50_ms: ms(hist.quantile(0.5)),
        p99_ms: ms(hist.quantile(0.99)),
        max_ms: ms(hist.max()),
        errors,
        server_cpu_pct: cpu.and_then(|c| c.percent()).unwrap_or(0.0).round(),
    })
}

/// Keeps `in_flight` messages outstanding until `until`, then collects the
/// last replies.
async fn pump(
    mut conn: Conn,
    in_flight: usize,
    until: Instant,
    done: Arc<AtomicU64>,
) -> std::result::Result<Histogram, String> {
    let mut hist = Histogram::default();
    let mut waiting: VecDeque<Instant> = VecDeque::with_capacity(in_flight);
    let mut seq = 0u64;
    for _ in 0..in_flight {
        conn.queue(OP_TEXT, ws::marker(0, seq).as_bytes());
        waiting.push_back(Instant::now());
        seq += 1;
    }
    conn.flush().await.map_err(|e| e.to_string())?;
    while !waiting.is_empty() {
        let read = tokio::time::timeout(Duration::from_secs(10), conn.read_more()).await;
        match read {
            Ok(Ok(n)) if n > 0 => {}
            Ok(Ok(_)) => return Err("closed".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("no reply within 10 s".into()),
        }
        let now = Instant::now();
        let mut replies = 0;
        while let Some(frame) = conn.next_frame().map_err(|e| e.to_string())? {
            match frame.opcode {
                OP_TEXT => {
                    if let Some(sent) = waiting.pop_front() {
                        hist.record(now.duration_since(sent).as_micros() as u64);
                        replies += 1;
                    }
                }
                OP_PING => conn.queue_pong_for(&frame),
                OP_CLOSE => return Err(ws::close_reason(conn.payload(&frame))),
                _ => {}
            }
        }
        done.fetch_add(replies, Ordering::Relaxed);
        if now < until {
            for _ in 0..replies {
                conn.queue(OP_TEXT, ws::marker(0, seq).as_bytes());
                waiting.push_back(now);
                seq += 1;
            }
        }
        conn.flush().await.map_err(|e| e.to_string())?;
    }
    conn.close().await;
    Ok(hist)
}
