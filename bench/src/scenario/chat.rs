//! Chat broadcast on `/ws/{client_id}`: N clients, each sending at a rate,
//! everyone receiving everyone's messages (N x N x rate deliveries/s).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::fanout::{ms, Target, P99_LIMIT_MS};
use crate::procstat::CpuMeter;
use crate::receiver::{Group, Protocol, Talk};
use crate::tally::{Run, Summary};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Point {
    pub server: String,
    pub clients: usize,
    /// Messages per second each client sends.
    pub rate_per_client: u32,
    pub sent: u64,
    pub expected: u64,
    pub delivered: u64,
    pub missing: u64,
    pub duplicates: u64,
    pub cut: usize,
    pub deliveries_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub server_cpu_pct: f64,
    pub sustained: bool,
    pub note: String,
}

pub async fn ladder(
    target: &Target,
    clients: usize,
    rates: &[u32],
    duration: Duration,
    run_ids: &AtomicU64,
) -> Result<Vec<Point>, String> {
    let group = Group::connect(
        target.addr,
        |i| format!("/ws/c{i}"),
        clients,
        Protocol::Text,
        "chat",
        "",
    )
    .await?;
    // Let every client's subscription settle before anything counts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut points = Vec::new();
    for &rate in rates {
        let point = measure(target, &group, rate, duration, run_ids).await;
        eprintln!(
            "    {clients} clients x {rate}/s: {:.0} deliveries/s, p50 {:.2} ms, p99 {:.2} ms, missing {}{}",
            point.deliveries_per_sec,
            point.p50_ms,
            point.p99_ms,
            point.missing,
            if point.sustained { String::new() } else { format!("  NOT SUSTAINED: {}", point.note) }
        );
        let sustained = point.sustained;
        points.push(point);
        if !sustained {
            break;
        }
    }
    group.close().await;
    Ok(points)
}

async fn measure(
    target: &Target,
    group: &Group,
    rate: u32,
    duration: Duration,
    run_ids: &AtomicU64,
) -> Point {
    let n = group.len();
    // Room for every message plus the odd extra tick.
    let capacity = (n as f64 * f64::from(rate) * (duration.as_secs_f64() + 1.0)) as usize;
    let id = run_ids.fetch_add(1, Ordering::Relaxed) as u32;
    let run = Run::new(id, crate::epoch(), capacity);
    let cpu = target.pid.map(CpuMeter::start);
    let t0 = Instant::now();
    let talk = Talk {
        interval: Duration::from_secs_f64(1.0 / f64::from(rate)),
        until: tokio::time::Instant::now() + duration,
    };
    group.start(&run, Some(talk)).await;
    let progress = crate::progress(format!("chat {n} x {rate}/s"), {
        let run = run.clone();
        move || format!("delivered {}", run.delivered.load(Ordering::Relaxed))
    });
    tokio::time::sleep(duration).await;
    // Drain: stop when every client has every message or nothing moves.
    let mut last = 0;
    let mut last_progress = Instant::now();
    let drain = Instant::now();
    loop {
        let sent = run.next_seq.load(Ordering::Relaxed);
        let now = run.delivered.load(Ordering::Relaxed);
        if now >= sent * n as u64 {
            last_progress = Instant::now();
            break;
        }
        if now != last {
            last = now;
            last_progress = Instant::now();
        }
        if last_progress.elapsed() > Duration::from_secs(1)
            || drain.elapsed() > Duration::from_secs(5)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    progress.abort();
    let server_cpu_pct = cpu.and_then(|c| c.percent()).unwrap_or(0.0).round();
    let reports = group.finish().await;
    let sent = run.next_seq.load(Ordering::Relaxed).min(capacity as u64);
    let expected = sent * n as u64;
    let summary = Summary::of(&reports, expected);
    let notes = summary.faults("clients", None, P99_LIMIT_MS);
    let Summary {
        hist,
        delivered,
        duplicates,
        missing,
        cut,
        ..
    } = summary;
    let p99_ms = ms(hist.quantile(0.99));
    let elapsed = last_progress.duration_since(t0).as_secs_f64().max(1e-3);
    Point {
        server: target.name.clone(),
        clients: n,
        rate_per_client: rate,
        sent,
        expected,
        delivered,
        missing,
        duplicates,
        cut,
        deliveries_per_sec: (delivered as f64 / elapsed).round(),
        p50_ms: ms(hist.quantile(0.5)),
        p99_ms,
        max_ms: ms(hist.max()),
        server_cpu_pct,
        sustained: notes.is_empty(),
        note: notes.join("; "),
    }
}
