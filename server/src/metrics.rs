//! Counters for `GET /metrics`, in the Prometheus text format.
//!
//! Plain atomics: they are bumped on the hot path (every frame), so they
//! must cost no more than an atomic add. Labels never contain client input
//! (topic names, tokens), so a client cannot inflate the output.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Upper bounds (milliseconds) of the publish-to-send latency buckets.
const LATENCY_BUCKETS_MS: [f64; 12] = [
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0,
];

#[derive(Default)]
pub struct Metrics {
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    pub connections_rejected: AtomicU64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub slow_consumers: AtomicU64,
    pub rate_limited: AtomicU64,
    pub heartbeat_timeouts: AtomicU64,
    pub idle_closes: AtomicU64,
    pub published: AtomicU64,
    pub login_failures: AtomicU64,
    pub auth_rejections: AtomicU64,
    pub token_expiry_closes: AtomicU64,
    /// Holes in a topic's offsets filled from history before delivery.
    pub gaps_repaired: AtomicU64,
    /// Holes that history could not fill: the subscriber was sent `resync`.
    pub resyncs: AtomicU64,
    /// Times the link to a networked broker was restored after a loss.
    pub broker_reconnects: AtomicU64,
    /// TCP connections refused at accept (total or per-address limit).
    pub connections_refused: AtomicU64,
    /// Recoveries refused (answered as a gap) for being over the byte limit.
    pub recoveries_too_large: AtomicU64,
    /// Per bucket (not cumulative; the last one is `+Inf`).
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_MS.len() + 1],
    latency_count: AtomicU64,
    /// Sum of observed latencies in microseconds.
    latency_sum_us: AtomicU64,
}

/// Latencies observed by one session while writing a batch, added to the
/// shared histogram in one go: every session writing to the same few
/// atomics for every event would make the cores fight over those cache
/// lines on the hottest path.
#[derive(Default)]
pub struct LatencyBatch {
    buckets: [u64; LATENCY_BUCKETS_MS.len() + 1],
    count: u64,
    sum_us: u64,
}

impl LatencyBatch {
    /// Records the time from an event's publication to its write on a socket.
    pub fn observe(&mut self, micros: u64) {
        let ms = micros as f64 / 1000.0;
        let bucket = LATENCY_BUCKETS_MS
            .iter()
            .position(|bound| ms <= *bound)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.buckets[bucket] += 1;
        self.count += 1;
        self.sum_us += micros;
    }
}

impl Metrics {
    /// Adds a session's batch of observations.
    pub fn record_latencies(&self, batch: &LatencyBatch) {
        if batch.count == 0 {
            return;
        }
        for (shared, n) in self.latency_buckets.iter().zip(batch.buckets) {
            if n > 0 {
                shared.fetch_add(n, Relaxed);
            }
        }
        self.latency_count.fetch_add(batch.count, Relaxed);
        self.latency_sum_us.fetch_add(batch.sum_us, Relaxed);
    }

    /// Renders every metric; `topics` and `subscriptions` come from the hub.
    pub fn render(&self, topics: usize, subscriptions: usize) -> String {
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "pulseboard_ws_connections",
            "gauge",
            "Open WebSocket connections.",
            self.connections_open.load(Relaxed),
        );
        metric(
            "pulseboard_ws_connections_total",
            "counter",
            "WebSocket connections accepted.",
            self.connections_total.load(Relaxed),
        );
        metric(
            "pulseboard_ws_connections_rejected_total",
            "counter",
            "WebSocket connections refused by the connection limit.",
            self.connections_rejected.load(Relaxed),
        );
        metric(
            "pulseboard_topics",
            "gauge",
            "Topics with at least one local subscriber.",
            topics as u64,
        );
        metric(
            "pulseboard_subscriptions",
            "gauge",
            "Local subscriptions across all topics.",
            subscriptions as u64,
        );
        metric(
            "pulseboard_ws_messages_in_total",
            "counter",
            "Data messages received from clients.",
            self.messages_in.load(Relaxed),
        );
        metric(
            "pulseboard_ws_messages_out_total",
            "counter",
            "Data messages sent to clients.",
            self.messages_out.load(Relaxed),
        );
        metric(
            "pulseboard_ws_bytes_in_total",
            "counter",
            "Payload bytes received from clients (after decompression).",
            self.bytes_in.load(Relaxed),
        );
        metric(
            "pulseboard_ws_bytes_out_total",
            "counter",
            "Payload bytes sent to clients (before compression).",
            self.bytes_out.load(Relaxed),
        );
        metric(
            "pulseboard_ws_slow_consumer_disconnects_total",
            "counter",
            "Connections closed because their send queue was full.",
            self.slow_consumers.load(Relaxed),
        );
        metric(
            "pulseboard_ws_rate_limited_total",
            "counter",
            "Connections closed for exceeding the inbound rate limit.",
            self.rate_limited.load(Relaxed),
        );
        metric(
            "pulseboard_ws_heartbeat_timeouts_total",
            "counter",
            "Connections dropped for not answering heartbeats.",
            self.heartbeat_timeouts.load(Relaxed),
        );
        metric(
            "pulseboard_ws_idle_closes_total",
            "counter",
            "Connections closed for holding no subscription and sending nothing.",
            self.idle_closes.load(Relaxed),
        );
        metric(
            "pulseboard_login_failures_total",
            "counter",
            "Failed logins at POST /token (wrong username or password).",
            self.login_failures.load(Relaxed),
        );
        metric("pulseboard_auth_rejections_total", "counter", "Requests and upgrades refused for a missing, invalid or expired token, or a forbidden topic.", self.auth_rejections.load(Relaxed));
        metric(
            "pulseboard_ws_token_expired_closes_total",
            "counter",
            "Connections closed because their token expired without a refresh.",
            self.token_expiry_closes.load(Relaxed),
        );
        metric(
            "pulseboard_gaps_repaired_total",
            "counter",
            "Holes in a topic's offsets filled from history before delivery.",
            self.gaps_repaired.load(Relaxed),
        );
        metric(
            "pulseboard_resyncs_total",
            "counter",
            "Holes history could not fill: the subscriber was told to reload.",
            self.resyncs.load(Relaxed),
        );
        metric(
            "pulseboard_connections_refused_total",
            "counter",
            "TCP connections refused at accept: over the total or per-address limit.",
            self.connections_refused.load(Relaxed),
        );
        metric(
            "pulseboard_recoveries_too_large_total",
            "counter",
            "Recoveries over the byte limit: the client was told to reload instead.",
            self.recoveries_too_large.load(Relaxed),
        );
        metric(
            "pulseboard_broker_reconnects_total",
            "counter",
            "Times the link to Redis was restored after a loss.",
            self.broker_reconnects.load(Relaxed),
        );
        metric(
            "pulseboard_events_published_total",
            "counter",
            "Events published through the broker by this instance.",
            self.published.load(Relaxed),
        );

        let name = "pulseboard_publish_to_send_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from an event's publication to its write on a subscriber's socket."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS_MS) {
            cumulative += bucket.load(Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {cumulative}",
                bound / 1000.0,
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.latency_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        let mut batch = LatencyBatch::default();
        batch.observe(300); // 0.3 ms
        batch.observe(4_000); // 4 ms
        m.record_latencies(&batch);
        let mut late = LatencyBatch::default();
        late.observe(5_000_000); // 5 s: past every bound
        m.record_latencies(&late);
        let text = m.render(1, 2);
        assert!(text.contains("pulseboard_publish_to_send_seconds_bucket{le=\"0.00025\"} 0"));
        assert!(text.contains("pulseboard_publish_to_send_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("pulseboard_publish_to_send_seconds_bucket{le=\"0.005\"} 2"));
        assert!(text.contains("pulseboard_publish_to_send_seconds_bucket{le=\"1\"} 2"));
        assert!(text.contains("pulseboard_publish_to_send_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("pulseboard_publish_to_send_seconds_count 3"));
        assert!(text.contains("pulseboard_subscriptions 2"));
    }
}
