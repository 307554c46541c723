//! How fast one publisher may publish: an account, or for anonymous task
//! writes under `--open-writes` a client address. Task writes,
//! `POST /publish`, `POST /publish/{channel}` and publishing on `/ws/v1`
//! and `/ws/secure/{topic}` all draw from the publisher's one bucket, so
//! spreading a flood over endpoints, connections or topics gains nothing.
//!
//! Per instance: with several instances behind a balancer, an account that
//! reaches all of them gets the rate on each. The table is bounded (see
//! [`KeyedBuckets`]).

use std::time::Duration;

use crate::admission::AddressKey;
use crate::rate::KeyedBuckets;

/// Who is publishing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Publisher {
    Account(i64),
    /// An anonymous writer, by client address (IPv6 per /64).
    Address(AddressKey),
}

impl Publisher {
    /// The account if signed in, else the address (unknown addresses share
    /// one bucket).
    pub fn of(user: Option<&crate::auth::AuthUser>, addr: Option<std::net::IpAddr>) -> Self {
        match (user, addr) {
            (Some(user), _) => Publisher::Account(user.id),
            (None, Some(ip)) => Publisher::Address(AddressKey::from(ip)),
            (None, None) => Publisher::Address(AddressKey::V4(0)),
        }
    }
}

/// Publishing rate per publisher.
pub struct PublishQuota(KeyedBuckets<Publisher>);

impl PublishQuota {
    /// `per_sec` publishes a second with bursts of `burst`; 0 turns the
    /// quota off.
    pub fn new(per_sec: u32, burst: u32) -> Self {
        PublishQuota(KeyedBuckets::new(per_sec, burst))
    }

    /// One publish by `who`, or how long until it may publish again.
    pub fn take(&self, who: Publisher) -> Result<(), Duration> {
        self.0.take(who)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn each_publisher_has_its_own_bucket() {
        let q = PublishQuota::new(2, 3);
        let (ann, bob) = (Publisher::Account(1), Publisher::Account(2));
        for _ in 0..3 {
            assert!(q.take(ann).is_ok());
        }
        let wait = q.take(ann).unwrap_err();
        assert!(wait <= Duration::from_millis(500), "{wait:?}");
        assert!(q.take(bob).is_ok(), "bob is not held up by ann");
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(q.take(ann).is_ok());
        assert!(PublishQuota::new(0, 0).take(ann).is_ok(), "0 is off");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_drops_refilled_buckets_then_the_least_recently_used() {
        let q = PublishQuota(KeyedBuckets::new(1, 2).with_max(10));
        for id in 0..10 {
            q.take(Publisher::Account(id)).unwrap();
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        // None has refilled yet: the oldest goes.
        q.take(Publisher::Account(100)).unwrap();
        assert_eq!(q.0.keys(), 10);
        assert!(!q.0.holds(&Publisher::Account(0)));
        // Once they have refilled, they all make way.
        tokio::time::advance(Duration::from_secs(5)).await;
        q.take(Publisher::Account(101)).unwrap();
        assert_eq!(q.0.keys(), 1);
    }
}
