//! Connect rate: WebSocket handshakes per second (connect, upgrade, close),
//! with a fixed number of clients connecting in a loop.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::fanout::{ms, Target};
use crate::hist::Histogram;
use crate::procstat::CpuMeter;
use crate::ws::Conn;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Result {
    pub server: String,
    pub concurrency: usize,
    pub handshakes_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    pub server_cpu_pct: f64,
}

pub async fn run(target: &Target, path: &str, concurrency: usize, duration: Duration) -> Result {
    let cpu = target.pid.map(CpuMeter::start);
    let start = Instant::now();
    let until = start + duration;
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let addr = target.addr;
        let path = path.to_owned();
        tasks.spawn(async move {
            let mut hist = Histogram::default();
            let mut errors = 0u64;
            while Instant::now() < until {
                let t = Instant::now();
                match tokio::time::timeout(Duration::from_secs(5), Conn::connect(addr, &path)).await
                {
                    Ok(Ok(conn)) => {
                        hist.record(t.elapsed().as_micros() as u64);
                        conn.close().await;
                    }
                    _ => errors += 1,
                }
            }
            (hist, errors)
        });
    }
    let mut hist = Histogram::default();
    let mut errors = 0;
    while let Some(Ok((h, e))) = tasks.join_next().await {
        hist.merge(&h);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Result {
        server: target.name.clone(),
        concurrency,
        handshakes_per_sec: (hist.count() as f64 / elapsed).round(),
        p50_ms: ms(hist.quantile(0.5)),
        p99_ms: ms(hist.quantile(0.99)),
        errors,
        server_cpu_pct: cpu.and_then(|c| c.percent()).unwrap_or(0.0).round(),
    }
}
