//! The scale-out soak: subscribers spread over several instances that
//! share one Redis, task changes sent to instances in turn, and every
//! subscriber's stream checked for what a cluster can get wrong: events
//! lost, delivered twice, or out of order, and `resync` pushes.
//!
//! Latency is counted from the event's own timestamp (set by the instance
//! that published it, on this machine's clock) to its arrival.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::hist::Histogram;
use crate::receiver::{open_with, Protocol};
use crate::ws::{OP_CLOSE, OP_PING, OP_TEXT};

/// What one subscriber saw.
#[derive(Default)]
struct Seen {
    delivered: u64,
    lost: u64,
    duplicated: u64,
    resyncs: u64,
    /// A `resync` came since the last event: the next may start a new epoch.
    resynced: bool,
    last: u64,
    epoch: Option<String>,
    latency: Histogram,
    error: Option<String>,
}

/// The fields of a typed message the soak reads.
#[derive(Deserialize)]
struct Msg<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    offset: u64,
    #[serde(default)]
    epoch: Option<&'a str>,
    #[serde(default)]
    ts: Option<&'a str>,
}

impl Seen {
    fn take(&mut self, text: &[u8]) {
        let Ok(msg) = serde_json::from_slice::<Msg>(text) else {
            return;
        };
        match msg.kind {
            "event" => {
                if msg.epoch != self.epoch.as_deref() {
                    if self.epoch.is_some() && !self.resynced {
                        // A new epoch without a resync would be a silent
                        // restart: count it as loss.
                        self.lost += 1;
                    }
                    self.epoch = msg.epoch.map(str::to_owned);
                    self.last = 0;
                }
                self.resynced = false;
                if msg.offset <= self.last {
                    self.duplicated += 1;
                    return;
                }
                self.lost += msg.offset - self.last - 1;
                self.last = msg.offset;
                self.delivered += 1;
                if let Some(ts) = msg
                    .ts
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                {
                    let waited = chrono::Utc::now().signed_duration_since(ts);
                    self.latency
                        .record(waited.num_microseconds().unwrap_or(0).max(0) as u64);
                }
            }
            "resync" => {
                self.resyncs += 1;
                self.resynced = true;
            }
            _ => {}
        }
    }
}

/// The soak's outcome.
#[derive(Serialize, Debug)]
pub struct Outcome {
    pub instances: usize,
    pub subscribers: usize,
    pub rate: u32,
    pub seconds: f64,
    pub published: u64,
    pub publish_errors: u64,
    /// Deliveries expected: every subscriber gets every published event.
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub resyncs: u64,
    pub subscriber_errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Runs the soak: `subscribers` on `/ws/v1` spread over `addrs` in turn,
/// `rate` task creations a second for `duration`, each to the next
/// instance in turn (the servers must run with open writes).
pub async fn run(
    addrs: &[SocketAddr],
    subscribers: usize,
    rate: u32,
    duration: Duration,
) -> Result<Outcome, String> {
    if addrs.is_empty() || rate == 0 {
        return Err("at least one instance and a positive rate".into());
    }
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let mut readers = JoinSet::new();
    for i in 0..subscribers {
        let addr = addrs[i % addrs.len()];
        let mut conn = open_with(addr, "/ws/v1", Protocol::Typed, "tasks", "")
            .await
            .map_err(|e| format!("subscriber {i} on {addr}: {e}"))?;
        let target = target.clone();
        readers.spawn(async move {
            let mut seen = Seen::default();
            loop {
                while let Ok(Some(frame)) = conn.next_frame() {
                    match frame.opcode {
                        OP_TEXT => seen.take(conn.payload(&frame)),
                        OP_PING => conn.queue_pong_for(&frame),
                        OP_CLOSE => {
                            seen.error = Some("closed by the server".into());
                            return seen;
                        }
                        _ => {}
                    }
                }
                if seen.last >= target.load(Ordering::Acquire) {
                    return seen;
                }
                if conn.flush().await.is_err() {
                    seen.error = Some("write failed".into());
                    return seen;
                }
                match tokio::time::timeout(Duration::from_millis(200), conn.read_more()).await {
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        seen.error = Some("connection lost".into());
                        return seen;
                    }
                    _ => {}
                }
            }
        });
    }
    eprintln!(
        "    {subscribers} subscribers on {} instances; publishing {rate}/s for {:.0} s",
        addrs.len(),
        duration.as_secs_f64()
    );

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let total = (f64::from(rate) * duration.as_secs_f64()).round() as u64;
    let start = tokio::time::Instant::now();
    let mut requests = JoinSet::new();
    for seq in 0..total {
        tokio::time::sleep_until(start + Duration::from_secs_f64(seq as f64 / f64::from(rate)))
            .await;
        let url = format!("http://{}/tasks", addrs[seq as usize % addrs.len()]);
        let client = client.clone();
        requests.spawn(async move {
            client
                .post(url)
                .json(&serde_json::json!({ "title": format!("soak {seq}") }))
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() == 201)
        });
    }
    let (mut published, mut publish_errors) = (0, 0);
    while let Some(done) = requests.join_next().await {
        if done.unwrap_or(false) {
            published += 1;
        } else {
            publish_errors += 1;
        }
    }
    // Every event was offset 1.. on the fresh `tasks` topic; readers stop
    // once they reach the last, or after a grace period.
    target.store(published, Ordering::Release);
    let grace = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(grace);
    let mut all = Vec::with_capacity(subscribers);
    loop {
        tokio::select! {
            next = readers.join_next() => match next {
                Some(Ok(seen)) => all.push(seen),
                Some(Err(e)) => return Err(format!("a subscriber task failed: {e}")),
                None => break,
            },
            _ = &mut grace => {
                readers.abort_all();
                break;
            }
        }
    }
    let missing_readers = subscribers - all.len();
    let mut latency = Histogram::default();
    let mut out = Outcome {
        instances: addrs.len(),
        subscribers,
        rate,
        seconds: duration.as_secs_f64(),
        published,
        publish_errors,
        expected: published * subscribers as u64,
        delivered: 0,
        lost: 0,
        duplicated: 0,
        resyncs: 0,
        subscriber_errors: missing_readers as u64,
        p50_ms: 0.0,
        p99_ms: 0.0,
        max_ms: 0.0,
    };
    for seen in &all {
        out.delivered += seen.delivered;
        // What a subscriber never reached counts as lost too.
        out.lost += seen.lost + published.saturating_sub(seen.last);
        out.duplicated += seen.duplicated;
        out.resyncs += seen.resyncs;
        out.subscriber_errors += u64::from(seen.error.is_some());
        latency.merge(&seen.latency);
    }
    let ms = |us: u64| (us as f64 / 10.0).round() / 100.0;
    out.p50_ms = ms(latency.quantile(0.50));
    out.p99_ms = ms(latency.quantile(0.99));
    out.max_ms = ms(latency.max());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(offset: u64, epoch: &str) -> Vec<u8> {
        format!(
            r#"{{"type":"event","topic":"tasks","offset":{offset},"epoch":"{epoch}","ts":"2026-01-01T00:00:00Z","payload":{{}}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn holes_repeats_and_silent_new_epochs_are_counted() {
        let mut seen = Seen::default();
        for offset in [1, 2, 2, 5, 4] {
            seen.take(&event(offset, "a"));
        }
        assert_eq!(
            (seen.delivered, seen.lost, seen.duplicated, seen.last),
            (3, 2, 2, 5),
            "2 again and 4 after 5 are repeats/out of order; 3 and 4 were skipped"
        );
        seen.take(br#"{"type":"resync","topic":"tasks"}"#);
        seen.take(&event(1, "b"));
        assert_eq!(seen.resyncs, 1);
        assert_eq!(
            seen.lost, 2,
            "a new epoch announced by resync loses nothing"
        );
        seen.take(&event(1, "c"));
        assert_eq!(seen.lost, 3, "a silent new epoch is counted");
        assert_eq!(seen.latency.count(), 5);
    }
}
