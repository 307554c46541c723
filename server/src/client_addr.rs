//! Which address a request comes from, for the limits that count per
//! client address (login throttling, the registration quota).
//!
//! The TCP peer is the client unless it is a proxy the operator named with
//! `--trusted-proxies`. Then the client is found in `X-Forwarded-For`, read
//! from the right: each trusted proxy appends the address it received the
//! request from, so the first address from the right that is not a trusted
//! proxy is the client. Entries to its left are whatever the client wrote
//! and are never believed. Without trusted proxies the header is ignored,
//! so nobody can choose the address they are counted as.

use std::net::IpAddr;
use std::str::FromStr;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;

/// An address or a network (`10.0.0.0/8`, `fd00::/8`) of trusted proxies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustedProxy {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for TrustedProxy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (s, None),
        };
        let network: IpAddr = ip
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or network"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(len) => len
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(TrustedProxy { network, prefix })
    }
}

impl TrustedProxy {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The client's address: `peer` itself, or, when `peer` is a trusted
/// proxy, the rightmost `X-Forwarded-For` entry that is not one. A header
/// that cannot be read leaves the proxy's own address (the request is then
/// counted against the proxy, never against an address of the client's
/// choosing).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[TrustedProxy]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|t| t.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .rev()
        .flat_map(|v| v.to_str().unwrap_or("").rsplit(',').collect::<Vec<_>>());
    for hop in hops {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            return client;
        };
        client = ip;
        if !is_trusted(ip) {
            return ip;
        }
    }
    client
}

/// The client's address, when the accept loop recorded it: the TCP peer,
/// or behind a trusted proxy the address it forwarded for (see
/// this module).
pub struct PeerAddr(pub Option<IpAddr>);

impl FromRequestParts<crate::state::AppState> for PeerAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &crate::state::AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(PeerAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| client_ip(c.0.ip(), &parts.headers, &state.config.trusted_proxies)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_match() {
        let net: TrustedProxy = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")));
        let one: TrustedProxy = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6: TrustedProxy = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let all: TrustedProxy = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        for bad in [
            "",
            "proxy",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/-1",
            "1.2.3.4/x",
        ] {
            assert!(bad.parse::<TrustedProxy>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_header_is_believed_only_from_trusted_proxies_and_only_from_the_right() {
        let trusted: Vec<TrustedProxy> =
            vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        let spoof = headers(&["6.6.6.6"]);
        // Not a proxy: the header is ignored.
        assert_eq!(
            client_ip(ip("198.51.100.1"), &spoof, &[]),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_ip(ip("198.51.100.1"), &spoof, &trusted),
            ip("198.51.100.1")
        );
        // One proxy: its entry is the client.
        assert_eq!(
            client_ip(ip("127.0.0.1"), &headers(&["203.0.113.5"]), &trusted),
            ip("203.0.113.5")
        );
        // The client wrote its own entry first; two proxies appended theirs.
        let chain = headers(&["6.6.6.6, 203.0.113.5, 10.0.0.7"]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &chain, &trusted),
            ip("203.0.113.5")
        );
        // The same over several header lines.
        let lines = headers(&["6.6.6.6", "203.0.113.5", "10.0.0.7"]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &lines, &trusted),
            ip("203.0.113.5")
        );
        // No header, or garbage: the proxy itself.
        assert_eq!(
            client_ip(ip("127.0.0.1"), &HeaderMap::new(), &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), &headers(&["not an ip"]), &trusted),
            ip("127.0.0.1")
        );
        // Garbage left of a good entry does not matter.
        assert_eq!(
            client_ip(ip("127.0.0.1"), &headers(&["junk, 203.0.113.5"]), &trusted),
            ip("203.0.113.5")
        );
    }
}
