//! The open-loop publisher: creates tasks over REST at a fixed rate,
//! whatever the server's answers take. Each message's latency is counted
//! from when it was *meant* to be sent, so a server that makes the
//! publisher wait is charged for the wait (no coordinated omission).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::hist::Histogram;
use crate::tally::Run;
use crate::ws;

/// Requests in flight at once; past this the schedule slips and the slip
/// shows up in latency.
const IN_FLIGHT: usize = 256;

#[derive(Clone, Default)]
pub struct Published {
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// How long each `POST` took to answer, in microseconds.
    pub answered: Histogram,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()
        .expect("HTTP client")
}

/// Publishes `rate` tasks a second for `duration` through `POST /tasks`,
/// titled with the run's markers `0..`.
pub async fn tasks(
    client: &reqwest::Client,
    addr: std::net::SocketAddr,
    run: &Arc<Run>,
    rate: f64,
    duration: Duration,
    sent: &Arc<AtomicU64>,
) -> Published {
    let url = format!("http://{addr}/tasks");
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let start = tokio::time::Instant::now();
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut requests = JoinSet::new();
    let mut out = Published::default();
    let mut count = |done: Result<Result<u64, String>, tokio::task::JoinError>| match done {
        Ok(Ok(micros)) => {
            out.ok += 1;
            out.answered.record(micros);
        }
        Ok(Err(e)) => {
            out.errors += 1;
            out.first_error.get_or_insert(e);
        }
        Err(e) => {
            out.errors += 1;
            out.first_error.get_or_insert(e.to_string());
        }
    };
    for seq in 0..total {
        let due = start + Duration::from_secs_f64(seq as f64 / rate);
        tokio::time::sleep_until(due).await;
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        run.mark_sent(
            seq,
            due.into_std()
                .saturating_duration_since(run.epoch)
                .as_nanos() as u64,
        );
        sent.fetch_add(1, Ordering::Relaxed);
        let request = client
            .post(&url)
            .json(&serde_json::json!({ "title": ws::marker(run.id, seq) }));
        requests.spawn(async move {
            let sent = std::time::Instant::now();
            let result = match request.send().await {
                Ok(resp) if resp.status().is_success() => Ok(sent.elapsed().as_micros() as u64),
                Ok(resp) => Err(format!("POST /tasks answered {}", resp.status())),
                Err(e) => Err(format!("POST /tasks failed: {e}")),
            };
            drop(permit);
            result
        });
        while let Some(done) = requests.try_join_next() {
            count(done);
        }
    }
    while let Some(done) = requests.join_next().await {
        count(done);
    }
    out
}
