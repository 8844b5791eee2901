//! IPv6 address management: subnets in CIDR form and sequential allocation inside a
//! subnet (or its `IPRange`), as libnetwork's default IPAM hands IPv6 addresses out
//! (gateway first, then the next free address after the last one given).

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::NetError;

/// An IPv6 subnet in CIDR form; the address is always the network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv6Net {
    addr: Ipv6Addr,
    prefix: u8,
}

fn mask(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    }
}

/// How many addresses one allocation looks at, at most: an IPv6 subnet has up to 2^64 or
/// more, and a search must stay short (libnetwork's bitmap search is bounded the same way
/// by the addresses in use).
const MAX_PROBE: u128 = 1 << 16;

impl Ipv6Net {
    pub fn new(addr: Ipv6Addr, prefix: u8) -> Result<Self, NetError> {
        if prefix > 128 {
            return Err(NetError::InvalidArgument(format!(
                "invalid CIDR address: {addr}/{prefix}"
            )));
        }
        Ok(Self {
            addr: Ipv6Addr::from(u128::from(addr) & mask(prefix)),
            prefix,
        })
    }

    pub fn addr(&self) -> Ipv6Addr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & mask(self.prefix) == u128::from(self.addr)
    }

    pub fn overlaps(&self, other: &Ipv6Net) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// The `n`th address of the subnet (0 is the network address).
    pub fn nth(&self, n: u128) -> Option<Ipv6Addr> {
        let host_bits = 128 - u32::from(self.prefix);
        let fits = host_bits >= 128 || n < (1u128 << host_bits);
        fits.then(|| Ipv6Addr::from(u128::from(self.addr) | n))
    }

    /// The number of addresses, capped at `u128::MAX` (a /0).
    fn size(&self) -> u128 {
        let host_bits = 128 - u32::from(self.prefix);
        if host_bits >= 128 {
            u128::MAX
        } else {
            1u128 << host_bits
        }
    }
}

impl fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv6Net {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Self, NetError> {
        let bad = || NetError::InvalidArgument(format!("invalid CIDR address: {s}"));
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv6Addr = a.parse().map_err(|_| bad())?;
        if !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        Self::new(addr, prefix).map_err(|_| bad())
    }
}

impl TryFrom<String> for Ipv6Net {
    type Error = NetError;
    fn try_from(s: String) -> Result<Self, NetError> {
        s.parse()
    }
}

impl From<Ipv6Net> for String {
    fn from(n: Ipv6Net) -> String {
        n.to_string()
    }
}

/// The next free address of `range` (or the whole subnet) after `last` (wrapping): not the
/// subnet's own address (the subnet-router anycast), not the gateway, not in `used`. At
/// most [`MAX_PROBE`] candidates are looked at.
pub fn allocate(
    subnet: &Ipv6Net,
    range: Option<&Ipv6Net>,
    gateway: Ipv6Addr,
    used: &BTreeSet<Ipv6Addr>,
    last: Option<Ipv6Addr>,
) -> Option<Ipv6Addr> {
    let pool = range.unwrap_or(subnet);
    let size = pool.size();
    let start = last.filter(|l| pool.contains(*l)).map_or(0, |l| {
        (u128::from(l) - u128::from(pool.addr)).wrapping_add(1)
    });
    let nth = |i: u128| pool.nth(start.wrapping_add(i) % size);
    (0..size.min(MAX_PROBE)).filter_map(nth).find(|ip| {
        subnet.contains(*ip) && *ip != subnet.addr && *ip != gateway && !used.contains(ip)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_rejects() {
        assert_eq!(net("fd00:1::7/64").to_string(), "fd00:1::/64");
        for bad in [
            "fd00::",
            "fd00::/129",
            "10.0.0.0/8",
            "x/64",
            "fd00::/+64",
            "",
        ] {
            assert!(bad.parse::<Ipv6Net>().is_err(), "{bad}");
        }
        assert!(net("fd00:1::/64").contains(ip("fd00:1::ffff")));
        assert!(!net("fd00:1::/64").contains(ip("fd00:2::1")));
        assert!(net("fd00::/16").overlaps(&net("fd00:1::/64")));
        assert!(!net("fd00:1::/64").overlaps(&net("fd00:2::/64")));
        assert_eq!(net("::/0").nth(5), Some(ip("::5")));
        assert_eq!(net("fd00::/127").nth(2), None);
    }

    /// As dockerd 20.10 hands them out: the gateway is ::1, the first container ::2; with
    /// an IPRange, the range's first address.
    #[test]
    fn allocation_is_sequential() {
        let s = net("fd00:1::/64");
        let gw = ip("fd00:1::1");
        let mut used = BTreeSet::new();
        assert_eq!(allocate(&s, None, gw, &used, None), Some(ip("fd00:1::2")));
        used.insert(ip("fd00:1::2"));
        assert_eq!(
            allocate(&s, None, gw, &used, Some(ip("fd00:1::2"))),
            Some(ip("fd00:1::3"))
        );
        let r = net("fd00:1::100/120");
        assert_eq!(
            allocate(&s, Some(&r), ip("fd00:1::fe"), &used, None),
            Some(ip("fd00:1::100"))
        );
        // Wraps after the end of the range; a full range has nothing left.
        let tiny = net("fd00:1::/126");
        used.insert(ip("fd00:1::3"));
        assert_eq!(
            allocate(&s, Some(&tiny), gw, &used, Some(ip("fd00:1::3"))),
            None
        );
        let used = BTreeSet::new();
        assert_eq!(
            allocate(&s, Some(&tiny), gw, &used, Some(ip("fd00:1::3"))),
            Some(ip("fd00:1::2"))
        );
        // A /0 does not overflow.
        let all = net("::/0");
        assert_eq!(
            allocate(
                &all,
                None,
                ip("::1"),
                &used,
                Some(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))
            ),
            Some(ip("::2"))
        );
    }
}
