//! Fan-out: N subscribers on the `tasks` topic, tasks created over REST at
//! a fixed rate, every creation delivered to every subscriber.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::procstat::{self, CpuMeter};
use crate::publish;
use crate::receiver::{Group, Protocol};
use crate::tally::{Run, Summary};

/// A run passes when nothing is lost or duplicated, every publish
/// succeeded, no subscriber was cut, and p99 stays under this.
pub const P99_LIMIT_MS: f64 = 100.0;

/// How long to wait after the last publish for deliveries still on their
/// way, at most, and without progress.
const DRAIN_MAX: Duration = Duration::from_secs(5);
const DRAIN_STALL: Duration = Duration::from_secs(1);

/// Which endpoint the subscribers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/ws/notifications/tasks`, the seed's plain texts.
    Notifications,
    /// `/ws/v1`, subscribed to `tasks` with the typed protocol.
    Typed,
    /// The same, with compression offered as a browser offers it.
    TypedCompressed,
}

impl Endpoint {
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Notifications => "/ws/notifications/tasks",
            Endpoint::Typed => "/ws/v1",
            Endpoint::TypedCompressed => "/ws/v1 compressed",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Endpoint::Notifications => "/ws/notifications/tasks",
            Endpoint::Typed | Endpoint::TypedCompressed => "/ws/v1",
        }
    }

    fn protocol(self) -> Protocol {
        match self {
            Endpoint::Notifications => Protocol::Text,
            Endpoint::Typed | Endpoint::TypedCompressed => Protocol::Typed,
        }
    }

    fn headers(self) -> &'static str {
        match self {
            Endpoint::TypedCompressed => crate::ws::DEFLATE_OFFER,
            _ => "",
        }
    }
}

/// One measured point: a server, an endpoint, N subscribers, a rate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Point {
    pub server: String,
    pub endpoint: String,
    pub subscribers: usize,
    pub offered_rate: u32,
    pub published: u64,
    pub publish_errors: u64,
    pub expected: u64,
    pub delivered: u64,
    pub missing: u64,
    pub duplicates: u64,
    /// Subscribers the server closed during the run.
    pub cut: usize,
    pub deliveries_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// CPU of the server process (100 = one core).
    pub server_cpu_pct: f64,
    /// CPU of the load generator itself.
    pub bench_cpu_pct: f64,
    pub server_rss_mib: f64,
    /// How long `POST /tasks` took to answer (p50, p99), in ms.
    pub publish_p50_ms: f64,
    pub publish_p99_ms: f64,
    pub sustained: bool,
    /// Why not, when not.
    pub note: String,
}

pub fn ms(micros: u64) -> f64 {
    (micros as f64 / 10.0).round() / 100.0
}

/// The target of a scenario: a server's address, process and name.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    pub addr: SocketAddr,
    pub pid: Option<u32>,
}

/// Connects `n` subscribers, then measures each rate in turn, stopping
/// after the first rate the server does not sustain.
pub async fn ladder(
    target: &Target,
    endpoint: Endpoint,
    n: usize,
    rates: &[u32],
    duration: Duration,
    run_ids: &AtomicU64,
) -> Result<Vec<Point>, String> {
    let started = Instant::now();
    let group = Group::connect(
        target.addr,
        |_| endpoint.path().to_owned(),
        n,
        endpoint.protocol(),
        "tasks",
        endpoint.headers(),
    )
    .await?;
    eprintln!(
        "    {n} subscribers connected in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let client = publish::client();
    // Warm-up: a few messages everyone must get before anything counts, so
    // a subscription still being set up is never mistaken for a loss.
    let warm = measure(
        target,
        &group,
        &client,
        endpoint,
        10,
        Duration::from_millis(500),
        run_ids,
    )
    .await;
    if warm.missing > 0 || warm.publish_errors > 0 {
        let why = format!(
            "warm-up lost {} of {} deliveries ({})",
            warm.missing, warm.expected, warm.note
        );
        group.close().await;
        return Err(why);
    }
    let mut points = Vec::new();
    for &rate in rates {
        let point = measure(target, &group, &client, endpoint, rate, duration, run_ids).await;
        eprintln!("    {}", line(&point));
        let sustained = point.sustained;
        points.push(point);
        if !sustained {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    group.close().await;
    Ok(points)
}

/// A point as one progress line.
pub fn line(p: &Point) -> String {
    format!(
        "{:>5}/s x {:>5}: {:>9.0} deliveries/s, p50 {:>7.2} ms, p99 {:>8.2} ms, max {:>8.2} ms, missing {}, dup {}, cpu {:>3.0}%, POST p99 {:.1} ms{}",
        p.offered_rate,
        p.subscribers,
        p.deliveries_per_sec,
        p.p50_ms,
        p.p99_ms,
        p.max_ms,
        p.missing,
        p.duplicates,
        p.server_cpu_pct,
        p.publish_p99_ms,
        if p.sustained { String::new() } else { format!("  NOT SUSTAINED: {}", p.note) }
    )
}

async fn measure(
    target: &Target,
    group: &Group,
    client: &reqwest::Client,
    endpoint: Endpoint,
    rate: u32,
    duration: Duration,
    run_ids: &AtomicU64,
) -> Point {
    let n = group.len();
    let total = (f64::from(rate) * duration.as_secs_f64()).round() as usize;
    let id = run_ids.fetch_add(1, Ordering::Relaxed) as u32;
    let run = Run::new(id, crate::epoch(), total.max(1));
    group.start(&run, None).await;
    let server_cpu = target.pid.map(CpuMeter::start);
    let bench_cpu = CpuMeter::start(std::process::id());
    let sent = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let progress = crate::progress(format!("{rate}/s x {n}"), {
        let run = run.clone();
        let sent = sent.clone();
        move || {
            format!(
                "published {}, delivered {}",
                sent.load(Ordering::Relaxed),
                run.delivered.load(Ordering::Relaxed)
            )
        }
    });
    let published =
        publish::tasks(client, target.addr, &run, f64::from(rate), duration, &sent).await;
    let expected = published.ok * n as u64;
    // Wait for what is still on its way.
    let drain_start = Instant::now();
    let mut last = run.delivered.load(Ordering::Relaxed);
    let mut last_progress = Instant::now();
    loop {
        let now = run.delivered.load(Ordering::Relaxed);
        if now >= expected {
            last_progress = Instant::now();
            break;
        }
        if now != last {
            last = now;
            last_progress = Instant::now();
        }
        if last_progress.elapsed() > DRAIN_STALL || drain_start.elapsed() > DRAIN_MAX {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    progress.abort();
    let elapsed = last_progress.duration_since(t0).as_secs_f64().max(1e-3);
    let server_cpu_pct = server_cpu.and_then(|m| m.percent()).unwrap_or(0.0);
    let bench_cpu_pct = bench_cpu.percent().unwrap_or(0.0);
    let server_rss_mib = target
        .pid
        .and_then(procstat::rss_kib)
        .map_or(0.0, |k| k as f64 / 1024.0);

    let reports = group.finish().await;
    let summary = Summary::of(&reports, expected);
    let failed = (published.errors > 0).then(|| {
        format!(
            "{} publishes failed ({})",
            published.errors,
            published.first_error.clone().unwrap_or_default()
        )
    });
    let notes = summary.faults("subscribers", failed, P99_LIMIT_MS);
    let Summary {
        hist,
        delivered,
        duplicates,
        missing,
        cut,
        ..
    } = summary;
    let p99_ms = ms(hist.quantile(0.99));
    Point {
        server: target.name.clone(),
        endpoint: endpoint.name().to_owned(),
        subscribers: n,
        offered_rate: rate,
        published: published.ok,
        publish_errors: published.errors,
        expected,
        delivered,
        missing,
        duplicates,
        cut,
        deliveries_per_sec: (delivered as f64 / elapsed).round(),
        p50_ms: ms(hist.quantile(0.50)),
        p90_ms: ms(hist.quantile(0.90)),
        p99_ms,
        p999_ms: ms(hist.quantile(0.999)),
        max_ms: ms(hist.max()),
        server_cpu_pct: server_cpu_pct.round(),
        bench_cpu_pct: bench_cpu_pct.round(),
        server_rss_mib: (server_rss_mib * 10.0).round() / 10.0,
        publish_p50_ms: ms(published.answered.quantile(0.5)),
        publish_p99_ms: ms(published.answered.quantile(0.99)),
        sustained: notes.is_empty(),
        note: notes.join("; "),
    }
}
