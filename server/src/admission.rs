//! Connection admission: how many TCP connections the server holds, in all
//! and per client address, decided at accept, before any byte is read.
//!
//! A connection holds a [`Ticket`] for as long as it lives: the HTTP
//! connection holds it, and a WebSocket session started on it holds a
//! clone, so an upgraded socket keeps counting after hyper has let go of
//! the connection. Without this, one client could open every socket the
//! process may have (sending nothing, or a body one byte at a time) and
//! every other client would be refused by the kernel instead of by us.
//!
//! IPv6 addresses are counted per /64: one host is routinely given a whole
//! /64, so counting per address would let it take a limit's worth of
//! sockets from each of 2^64 addresses.
//!
//! WebSocket handshakes are also rationed per client address
//! ([`Handshakes`]): each costs a token check and a session, so one client
//! reconnecting in a loop is refused (429) before any of that is done. The
//! per-account limit on live sockets is the connection gate's
//! (`ws::ConnectionGate`), as it needs the account.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Limits on open connections; 0 means no limit.
#[derive(Clone, Copy, Debug)]
pub struct AdmissionLimits {
    pub max_total: usize,
    pub max_per_address: usize,
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The server holds `max_total` connections.
    Full,
    /// This client address holds `max_per_address` connections.
    AddressFull,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Full => "the server holds as many connections as it may",
            Refusal::AddressFull => "too many connections from your address",
        }
    }
}

/// Counts open connections. Cheap to clone.
#[derive(Clone)]
pub struct Admission(Arc<Inner>);

struct Inner {
    limits: AdmissionLimits,
    state: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    /// Only addresses with at least one open connection.
    per_address: HashMap<AddressKey, usize>,
}

/// WebSocket handshakes per client address, as a token bucket each.
pub struct Handshakes(crate::rate::KeyedBuckets<AddressKey>);

impl Handshakes {
    /// `per_sec` a second per address with bursts of `burst`; 0: no limit.
    pub fn new(per_sec: u32, burst: u32) -> Self {
        Handshakes(crate::rate::KeyedBuckets::new(per_sec, burst))
    }

    /// One handshake from `ip`, or how long until it may try again.
    pub fn take(&self, ip: IpAddr) -> Result<(), std::time::Duration> {
        self.0.take(AddressKey::from(ip))
    }
}

/// An address as counted: IPv4 whole, IPv6 by its /64 (an IPv4-mapped
/// IPv6 address counts as the IPv4 address it is).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum AddressKey {
    V4(u32),
    V6(u64),
}

impl From<IpAddr> for AddressKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => AddressKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey::V4(u32::from(v4)),
                None => AddressKey::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl std::fmt::Display for AddressKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddressKey::V4(v4) => write!(f, "{}", std::net::Ipv4Addr::from(*v4)),
            AddressKey::V6(net) => {
                write!(f, "{}/64", std::net::Ipv6Addr::from(u128::from(*net) << 64))
            }
        }
    }
}

/// One admitted connection; dropping the last clone gives its place back.
pub struct Ticket {
    admission: Admission,
    key: AddressKey,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut counts = self.admission.lock();
        counts.total -= 1;
        if let Some(n) = counts.per_address.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.per_address.remove(&self.key);
            }
        }
    }
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Self {
        Admission(Arc::new(Inner {
            limits,
            state: Mutex::default(),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection from `ip`, or says why not.
    pub fn admit(&self, ip: IpAddr) -> Result<Arc<Ticket>, Refusal> {
        let key = AddressKey::from(ip);
        let limits = self.0.limits;
        let mut counts = self.lock();
        if limits.max_total > 0 && counts.total >= limits.max_total {
            return Err(Refusal::Full);
        }
        let here = counts.per_address.get(&key).copied().unwrap_or(0);
        if limits.max_per_address > 0 && here >= limits.max_per_address {
            return Err(Refusal::AddressFull);
        }
        counts.total += 1;
        counts.per_address.insert(key, here + 1);
        drop(counts);
        Ok(Arc::new(Ticket {
            admission: self.clone(),
            key,
        }))
    }

    /// Connections open now, in all.
    pub fn open(&self) -> usize {
        self.lock().total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn counts_per_address_and_in_total_and_gives_places_back() {
        let a = Admission::new(AdmissionLimits {
            max_total: 3,
            max_per_address: 2,
        });
        let first = a.admit(ip("10.0.0.1")).unwrap();
        let second = a.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(a.admit(ip("10.0.0.1")).err(), Some(Refusal::AddressFull));
        let other = a.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(a.admit(ip("10.0.0.3")).err(), Some(Refusal::Full));
        // A clone (a WebSocket session) keeps the place after the
        // connection's own ticket is gone.
        let session = first.clone();
        drop(first);
        assert_eq!(a.open(), 3);
        drop(session);
        assert_eq!(a.open(), 2);
        assert!(a.admit(ip("10.0.0.1")).is_ok());
        drop((second, other));
        assert_eq!(a.open(), 0);
        assert!(a.lock().per_address.is_empty());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let a = Admission::new(AdmissionLimits {
            max_total: 0,
            max_per_address: 1,
        });
        let _one = a.admit(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(
            a.admit(ip("2001:db8:1:2:ffff::9")).err(),
            Some(Refusal::AddressFull)
        );
        assert!(a.admit(ip("2001:db8:1:3::1")).is_ok());
        let _v4 = a.admit(ip("192.0.2.7")).unwrap();
        assert_eq!(
            a.admit(ip("::ffff:192.0.2.7")).err(),
            Some(Refusal::AddressFull)
        );
    }

    #[test]
    fn zero_means_unlimited() {
        let a = Admission::new(AdmissionLimits {
            max_total: 0,
            max_per_address: 0,
        });
        let held: Vec<_> = (0..1000)
            .map(|_| a.admit(ip("10.0.0.1")).unwrap())
            .collect();
        assert_eq!(a.open(), 1000);
        drop(held);
        assert_eq!(a.open(), 0);
    }
}
