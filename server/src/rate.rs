//! Token buckets: the one rate-limiting primitive, used per connection for
//! inbound frames and per account for publishing.

use std::time::Duration;

// Tokio's clock: the same as the system's at run time, and one tests can
// pause and advance.
use tokio::time::Instant;

/// `rate` tokens a second, up to `burst` saved.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: f64) -> Self {
        TokenBucket {
            tokens: burst,
            rate,
            burst,
            at: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        self.tokens = (self.tokens
            + now.saturating_duration_since(self.at).as_secs_f64() * self.rate)
            .min(self.burst);
        self.at = now;
    }

    /// Takes `n` tokens, or takes none and says the bucket is short.
    pub fn allow_n(&mut self, n: u64) -> bool {
        self.refill(Instant::now());
        if self.tokens >= n as f64 {
            self.tokens -= n as f64;
            true
        } else {
            false
        }
    }

    /// Takes one token, or says how long until there is one.
    pub fn take(&mut self) -> Result<(), Duration> {
        if self.allow_n(1) {
            return Ok(());
        }
        let missing = 1.0 - self.tokens;
        Err(Duration::from_secs_f64(
            missing / self.rate.max(f64::MIN_POSITIVE),
        ))
    }

    /// Whether the bucket has filled up again: it then says nothing a
    /// fresh one would not, and a table of buckets may drop it.
    pub fn is_full(&self, now: Instant) -> bool {
        let refilled = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens + refilled >= self.burst
    }

    /// When it was last used (looking at it with `is_full` does not count).
    pub fn last_used(&self) -> Instant {
        self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_burst_then_the_rate() {
        let mut b = TokenBucket::new(10.0, 5.0);
        for _ in 0..5 {
            assert!(b.take().is_ok());
        }
        let wait = b.take().unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(b.take().is_ok(), "refilled at the rate");
        assert!(!b.allow_n(1));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(b.is_full(Instant::now()), "never more than the burst");
        assert!(b.allow_n(5));
        assert!(!b.allow_n(1));
    }
}
