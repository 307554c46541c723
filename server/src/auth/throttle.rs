//! Throttling of failed logins, per (username, client address) pair and
//! per client address.
//!
//! After `max_failures` failed attempts on one username from one address
//! within the window, further attempts on that pair are refused with 429
//! until the window that started with the first failure has passed; a
//! success clears the pair's count. Counting the pair, not the username
//! alone, is what keeps a stranger from locking the real user out: her
//! attempts come from her address, whose count the stranger cannot touch.
//! Addresses get four times the allowance, so one client spraying many
//! usernames is stopped too. IPv6 addresses count per /64 (see
//! [`crate::admission::AddressKey`]).
//!
//! These counts live in this process, for the single-instance default;
//! with Redis configured, [`super::shared`] keeps the same counts in Redis
//! so that every instance enforces one allowance. Entries are pruned as
//! they expire and the table is bounded: when it is full of live entries,
//! the oldest tenth is dropped, so new names and addresses are always
//! counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::admission::AddressKey;

/// Most keys tracked at once; past it, the oldest are dropped.
const MAX_ENTRIES: usize = 100_000;
/// How many more failures an address may have than a username.
const ADDRESS_FACTOR: u32 = 4;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    /// A username tried from an address (or from nowhere known).
    Pair(String, Option<AddressKey>),
    Addr(AddressKey),
}

/// Makes room for one more key: drops expired entries and, if the table is
/// still full, the oldest tenth (one sort per tenth of the table inserted,
/// not one scan per insert).
fn make_room<K: Clone + Eq + std::hash::Hash>(
    entries: &mut HashMap<K, Entry>,
    window: Duration,
    now: Instant,
) {
    if entries.len() < MAX_ENTRIES {
        return;
    }
    entries.retain(|_, e| now.duration_since(e.since) < window);
    if entries.len() < MAX_ENTRIES {
        return;
    }
    let mut ages: Vec<(Instant, K)> = entries.iter().map(|(k, e)| (e.since, k.clone())).collect();
    let cut = MAX_ENTRIES / 10;
    ages.select_nth_unstable_by_key(cut, |(since, _)| *since);
    for (_, key) in ages.into_iter().take(cut) {
        entries.remove(&key);
    }
    tracing::warn!("login throttle table full; dropped its oldest tenth");
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
            Key::Pair(..) => self.max_failures,
            Key::Addr(_) => self.max_failures.saturating_mul(ADDRESS_FACTOR),
        }
    }

    fn keys(username: &str, addr: Option<IpAddr>) -> impl Iterator<Item = Key> {
        let addr = addr.map(AddressKey::from);
        std::iter::once(Key::Pair(username.to_owned(), addr)).chain(addr.map(Key::Addr))
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
        if let Some(e) = entries.get_mut(&Key::Addr(AddressKey::from(addr))) {
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
        for key in Self::keys(username, addr) {
            if !entries.contains_key(&key) {
                make_room(entries, self.window, now);
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

    /// Clears the pair's count after a successful login. The address's
    /// count stays: one good password does not license guessing others.
    pub fn succeeded(&self, username: &str, addr: Option<IpAddr>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(&Key::Pair(username.to_owned(), addr.map(AddressKey::from)));
    }
}

/// A count of actions per client address in a fixed window, for actions
/// that cost us something whether or not they succeed (registering an
/// account costs an argon2 run and a row).
pub struct AddressQuota {
    max: u32,
    window: Duration,
    entries: Mutex<HashMap<AddressKey, Entry>>,
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
        let Some(addr) = addr.map(AddressKey::from) else {
            return Ok(());
        };
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if !entries.contains_key(&addr) {
            make_room(&mut entries, self.window, now);
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
        t.succeeded("ann", ADDR);
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
        t.succeeded("ann", ADDR);
        t.failed("ann", ADDR);
        assert!(t.check("ann", ADDR).is_ok());
        // The address has 2 of its 8 failures; spraying usernames uses it up.
        for i in 0..6 {
            t.failed(&format!("user{i}"), ADDR);
        }
        assert!(t.check("fresh", ADDR).is_err(), "the address is throttled");
        assert!(t.check("fresh", None).is_ok(), "the username alone is not");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stranger_cannot_lock_the_real_user_out() {
        let t = LoginThrottle::new(3, Duration::from_secs(60));
        let stranger = Some("198.51.100.7".parse().unwrap());
        for _ in 0..3 {
            t.failed("alice", stranger);
        }
        assert!(t.check("alice", stranger).is_err());
        assert!(
            t.check("alice", ADDR).is_ok(),
            "alice's own address is not locked"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn ipv6_counts_per_64() {
        let t = LoginThrottle::new(2, Duration::from_secs(60));
        for host in ["2001:db8:5:6::1", "2001:db8:5:6::2"] {
            t.failed("ann", Some(host.parse().unwrap()));
        }
        let same_64 = Some("2001:db8:5:6:ffff::3".parse().unwrap());
        assert!(t.check("ann", same_64).is_err());
        let other_64 = Some("2001:db8:5:7::1".parse().unwrap());
        assert!(t.check("ann", other_64).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_drops_its_oldest_and_keeps_counting() {
        let t = LoginThrottle::new(1, Duration::from_secs(3600));
        // Fill the table with live entries (no address: one key each), a
        // tenth at a time, each tenth a millisecond younger.
        for i in 0..MAX_ENTRIES {
            t.failed(&format!("filler{i}"), None);
            if i % (MAX_ENTRIES / 10) == MAX_ENTRIES / 10 - 1 {
                tokio::time::advance(Duration::from_millis(1)).await;
            }
        }
        t.failed("victim", None);
        assert!(t.check("victim", None).is_err(), "the new name was counted");
        assert!(t.check("filler0", None).is_ok(), "the oldest were dropped");
        let youngest_dropped = format!("filler{}", MAX_ENTRIES / 10 - 1);
        assert!(t.check(&youngest_dropped, None).is_ok());
        let oldest_kept = format!("filler{}", MAX_ENTRIES / 10);
        assert!(t.check(&oldest_kept, None).is_err(), "only a tenth went");
        assert!(t
            .check(&format!("filler{}", MAX_ENTRIES - 1), None)
            .is_err());
        let len = t.entries.lock().unwrap().len();
        assert!(len <= MAX_ENTRIES, "{len}");
    }
}
