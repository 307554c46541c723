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

/// A token bucket per key (an account, an address), in a bounded table: a
/// bucket that has filled up again says nothing a new one would not, so
/// those go first when the table is full, then the least recently used
/// tenth.
pub struct KeyedBuckets<K> {
    /// (rate, burst); `None`: unlimited.
    limit: Option<(f64, f64)>,
    map: std::sync::Mutex<std::collections::HashMap<K, TokenBucket>>,
    max: usize,
}

/// Keys kept at most by default.
pub const MAX_KEYS: usize = 100_000;

impl<K: std::hash::Hash + Eq + Copy> KeyedBuckets<K> {
    /// `per_sec` a second with bursts of `burst` per key; 0 turns it off.
    pub fn new(per_sec: u32, burst: u32) -> Self {
        KeyedBuckets {
            limit: (per_sec > 0).then(|| (f64::from(per_sec), f64::from(burst.max(1)))),
            map: std::sync::Mutex::default(),
            max: MAX_KEYS,
        }
    }

    /// With a different table bound (tests).
    pub fn with_max(mut self, max: usize) -> Self {
        self.max = max.max(1);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<K, TokenBucket>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One token of `key`'s, or how long until there is one.
    pub fn take(&self, key: K) -> Result<(), Duration> {
        let Some((rate, burst)) = self.limit else {
            return Ok(());
        };
        let mut map = self.lock();
        if map.len() >= self.max && !map.contains_key(&key) {
            let now = Instant::now();
            map.retain(|_, b| !b.is_full(now));
            if map.len() + self.max / 10 > self.max {
                let mut by_use: Vec<(Instant, K)> =
                    map.iter().map(|(k, b)| (b.last_used(), *k)).collect();
                by_use.sort_unstable_by_key(|(at, _)| *at);
                for (_, k) in by_use.into_iter().take((self.max / 10).max(1)) {
                    map.remove(&k);
                }
            }
        }
        map.entry(key)
            .or_insert_with(|| TokenBucket::new(rate, burst))
            .take()
    }

    /// How many keys have a bucket.
    pub fn keys(&self) -> usize {
        self.lock().len()
    }

    /// Whether `key` has a bucket.
    pub fn holds(&self, key: &K) -> bool {
        self.lock().contains_key(key)
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
