//! Throttling of failed logins, per username and per client address.
//!
//! After `max_failures` failed attempts on one username within the window,
//! further attempts on it are refused with 429 until the window that
//! started with the first failure has passed; a success clears the
//! username's count. Addresses get four times the allowance, so one client
//! spraying many usernames is stopped too, while a household behind one
//! address is not locked out by one forgetful member.
//!
//! These counts live in this process, for the single-instance default;
//! with Redis configured, [`super::shared`] keeps the same counts in Redis
//! so that every instance enforces one allowance. Entries are pruned as
//! they expire and the table is bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Most keys tracked at once; past it, new keys are not counted (and a
/// warning is logged) rather than growing without bound.
const MAX_ENTRIES: usize = 100_000;
/// How many more failures an address may have than a username.
const ADDRESS_FACTOR: u32 = 4;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Addr(IpAddr),
}

struct Entry {
    failures: u32,
    since: Instant,
}

pub struct LoginThrottle {
    max_failures: u32,
    window: Duration,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl LoginThrottle {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        LoginThrottle {
            max_failures: max_failures.max(1),
            window,
            entries: Mutex::default(),
        }
    }

    fn limit(&self, key: &Key) -> u32 {
        match key {
            Key::User(_) => self.max_failures,
            Key::Addr(_) => self.max_failures.saturating_mul(ADDRESS_FACTOR),
        }
    }

    fn keys(username: &str, addr: Option<IpAddr>) -> impl Iterator<Item = Key> {
        std::iter::once(Key::User(username.to_owned())).chain(addr.map(Key::Addr))
    }

    /// `Err(retry_after)` if this attempt must be refused without checking
    /// the password.
    pub fn check(&self, username: &str, addr: Option<IpAddr>) -> Result<(), Duration> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.check_locked(&entries, username, addr)
    }

    /// [`check`](Self::check) and, if allowed, [`failed`](Self::failed) in
    /// one step under one lock: the attempt counts as a failure until
    /// [`succeeded`](Self::succeeded) and [`refund`](Self::refund) say
    /// otherwise. Checking and counting separately would let a burst of
    /// concurrent guesses all pass the check while the first ones are still
    /// being hashed.
    pub fn attempt(&self, username: &str, addr: Option<IpAddr>) -> Result<(), Duration> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.check_locked(&entries, username, addr)?;
        self.count_locked(&mut entries, username, addr);
        Ok(())
    }

    /// Gives the address back the one failure an [`attempt`](Self::attempt)
    /// counted, when the attempt turned out to be a success.
    pub fn refund(&self, addr: Option<IpAddr>) {
        let Some(addr) = addr else { return };
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = entries.get_mut(&Key::Addr(addr)) {
            e.failures = e.failures.saturating_sub(1);
        }
    }

    fn check_locked(
        &self,
        entries: &HashMap<Key, Entry>,
        username: &str,
        addr: Option<IpAddr>,
    ) -> Result<(), Duration> {
        let now = Instant::now();
        let mut wait = Duration::ZERO;
        for key in Self::keys(username, addr) {
            if let Some(e) = entries.get(&key) {
                let age = now.duration_since(e.since);
                if age < self.window && e.failures >= self.limit(&key) {
                    wait = wait.max(self.window - age);
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }

    /// Counts a failed attempt.
    pub fn failed(&self, username: &str, addr: Option<IpAddr>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.count_locked(&mut entries, username, addr);
    }

    fn count_locked(
        &self,
        entries: &mut HashMap<Key, Entry>,
        username: &str,
        addr: Option<IpAddr>,
    ) {
        let now = Instant::now();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| now.duration_since(e.since) < self.window);
        }
        for key in Self::keys(username, addr) {
            if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
                tracing::warn!("login throttle table full; not counting a failure");
                continue;
            }
            let e = entries.entry(key).or_insert(Entry {
                failures: 0,
                since: now,
            });
            if now.duration_since(e.since) >= self.window {
                *e = Entry {
                    failures: 0,
                    since: now,
                };
            }
            e.failures = e.failures.saturating_add(1);
        }
    }

    /// Clears the username's count after a successful login. The address's
    /// count stays: one good password does not license guessing others.
    pub fn succeeded(&self, username: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(&Key::User(username.to_owned()));
    }
}

/// A count of actions per client address in a fixed window, for actions
/// that cost us something whether or not they succeed (registering an
/// account costs an argon2 run and a row).
pub struct AddressQuota {
    max: u32,
    window: Duration,
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

impl AddressQuota {
    pub fn new(max: u32, window: Duration) -> Self {
        AddressQuota {
            max: max.max(1),
            window,
            entries: Mutex::default(),
        }
    }

    /// Takes one from the address's quota, or says how long until it
    /// refills. Without an address (not served through our accept loop)
    /// nothing is counted.
    pub fn take(&self, addr: Option<IpAddr>) -> Result<(), Duration> {
        let Some(addr) = addr else { return Ok(()) };
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| now.duration_since(e.since) < self.window);
            if entries.len() >= MAX_ENTRIES && !entries.contains_key(&addr) {
                tracing::warn!("address quota table full; not counting");
                return Ok(());
            }
        }
        let e = entries.entry(addr).or_insert(Entry {
            failures: 0,
            since: now,
        });
        let age = now.duration_since(e.since);
        if age >= self.window {
            *e = Entry {
                failures: 0,
                since: now,
            };
        } else if e.failures >= self.max {
            return Err(self.window - age);
        }
        e.failures += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[tokio::test(start_paused = true)]
    async fn locks_a_username_after_max_failures_until_the_window_passes() {
        let t = LoginThrottle::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(t.check("ann", ADDR).is_ok());
            t.failed("ann", ADDR);
        }
        let wait = t.check("ann", ADDR).unwrap_err();
        assert_eq!(wait, Duration::from_secs(60));
        assert!(t.check("bob", None).is_ok(), "other users are not affected");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(t.check("ann", ADDR).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_are_counted_as_they_are_allowed() {
        let t = LoginThrottle::new(3, Duration::from_secs(60));
        // Three in flight at once use up the allowance; the fourth waits.
        for _ in 0..3 {
            assert!(t.attempt("ann", ADDR).is_ok());
        }
        assert!(t.attempt("ann", ADDR).is_err());
        // One of the three was right: the username is cleared and the
        // address gets that attempt back.
        t.succeeded("ann");
        t.refund(ADDR);
        assert!(t.attempt("ann", ADDR).is_ok());
        // The address holds 3 (two wrong, one in flight); 9 more reach its 12.
        for i in 0..9 {
            assert!(t.attempt(&format!("user{i}"), ADDR).is_ok());
        }
        assert!(t.attempt("fresh", ADDR).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn address_quota_refills_after_the_window() {
        let q = AddressQuota::new(2, Duration::from_secs(3600));
        assert!(q.take(ADDR).is_ok());
        assert!(q.take(ADDR).is_ok());
        assert_eq!(q.take(ADDR), Err(Duration::from_secs(3600)));
        assert!(q
            .take(Some(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2))))
            .is_ok());
        assert!(q.take(None).is_ok());
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(q.take(ADDR).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn success_clears_the_username_but_not_the_address() {
        let t = LoginThrottle::new(2, Duration::from_secs(60));
        t.failed("ann", ADDR);
        t.succeeded("ann");
        t.failed("ann", ADDR);
        assert!(t.check("ann", ADDR).is_ok());
        // The address has 2 of its 8 failures; spraying usernames uses it up.
        for i in 0..6 {
            t.failed(&format!("user{i}"), ADDR);
        }
        assert!(t.check("fresh", ADDR).is_err(), "the address is throttled");
        assert!(t.check("fresh", None).is_ok(), "the username alone is not");
    }
}
