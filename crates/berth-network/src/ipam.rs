//! IPv4 address management: subnets, gateways, address allocation inside a subnet (or
//! its `IPRange`), and picking a free subnet out of the default address pools.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::NetError;

/// An IPv4 subnet in CIDR form; the address is always the network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl Ipv4Net {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, NetError> {
        if prefix > 32 {
            return Err(NetError::InvalidArgument(format!(
                "invalid CIDR address: {addr}/{prefix}"
            )));
        }
        Ok(Self {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    /// `a.b.c.d/n` (host bits dropped) and the address as written.
    pub fn parse_with_host(s: &str) -> Result<(Self, Ipv4Addr), NetError> {
        let bad = || NetError::InvalidArgument(format!("invalid CIDR address: {s}"));
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        Ok((Self::new(addr, prefix).map_err(|_| bad())?, addr))
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.addr)
    }

    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !mask(self.prefix))
    }

    /// The `n`th address of the subnet (0 is the network address).
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - u32::from(self.prefix));
        (u64::from(n) < size).then(|| Ipv4Addr::from(u32::from(self.addr) + n))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Self, NetError> {
        Self::parse_with_host(s).map(|(n, _)| n)
    }
}

impl TryFrom<String> for Ipv4Net {
    type Error = NetError;
    fn try_from(s: String) -> Result<Self, NetError> {
        s.parse()
    }
}

impl From<Ipv4Net> for String {
    fn from(n: Ipv4Net) -> String {
        n.to_string()
    }
}

/// One entry of `default-address-pools`: carve `size`-prefix subnets out of `base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub base: Ipv4Net,
    pub size: u8,
}

/// Docker's default pools (moby `ipamutils`): 172.17–31.0.0/16, then 192.168.0.0/20s.
pub fn default_pools() -> Vec<Pool> {
    let mut v: Vec<Pool> = (17..=31)
        .map(|b| Pool {
            base: Ipv4Net {
                addr: Ipv4Addr::new(172, b, 0, 0),
                prefix: 16,
            },
            size: 16,
        })
        .collect();
    v.push(Pool {
        base: Ipv4Net {
            addr: Ipv4Addr::new(192, 168, 0, 0),
            prefix: 16,
        },
        size: 20,
    });
    v
}

/// The first subnet of the pools that overlaps none of `taken`.
pub fn next_subnet(pools: &[Pool], taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    for p in pools {
        if p.size < p.base.prefix || p.size > 30 {
            continue;
        }
        let count = 1u64 << (p.size - p.base.prefix);
        let step = 1u64 << (32 - u32::from(p.size));
        for i in 0..count {
            let addr = u64::from(u32::from(p.base.addr)) + i * step;
            let Ok(addr) = u32::try_from(addr) else { break };
            let cand = Ipv4Net {
                addr: Ipv4Addr::from(addr),
                prefix: p.size,
            };
            if !taken.iter().any(|t| t.overlaps(&cand)) {
                return Some(cand);
            }
        }
    }
    None
}

/// The next free address of `range` (or the whole subnet) after `last` (wrapping), that
/// is neither the network nor the broadcast address, the gateway, nor in `used`. Like
/// Docker's allocator, a released address is not handed out again at once.
pub fn allocate(
    subnet: &Ipv4Net,
    range: Option<&Ipv4Net>,
    gateway: Ipv4Addr,
    used: &BTreeSet<Ipv4Addr>,
    last: Option<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let pool = range.unwrap_or(subnet);
    let size = 1u64 << (32 - u32::from(pool.prefix));
    let start = last
        .filter(|l| pool.contains(*l))
        .map_or(0, |l| u64::from(u32::from(l) - u32::from(pool.addr)) + 1);
    let nth = |i: u64| pool.nth(((start + i) % size) as u32);
    (0..size).filter_map(nth).find(|ip| {
        subnet.contains(*ip)
            && *ip != subnet.addr
            && *ip != subnet.broadcast()
            && *ip != gateway
            && !used.contains(ip)
    })
}

/// A locally administered MAC from an IPv4 address, as Docker makes them (`02:42:` + IP).
pub fn mac_for(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_rejects() {
        assert_eq!(net("10.1.2.3/16").to_string(), "10.1.0.0/16");
        for bad in ["10.1.2.3", "10.1.2/8", "10.1.2.3/33", "x/8", ""] {
            assert!(bad.parse::<Ipv4Net>().is_err(), "{bad}");
        }
        let (n, host) = Ipv4Net::parse_with_host("172.18.0.1/16").unwrap();
        assert_eq!(
            (n.to_string(), host),
            ("172.18.0.0/16".into(), Ipv4Addr::new(172, 18, 0, 1))
        );
    }

    #[test]
    fn overlap_and_contains() {
        assert!(net("10.0.0.0/8").overlaps(&net("10.5.0.0/16")));
        assert!(net("10.5.0.0/16").overlaps(&net("10.0.0.0/8")));
        assert!(!net("10.5.0.0/16").overlaps(&net("10.6.0.0/16")));
        assert!(net("10.5.0.0/16").contains(Ipv4Addr::new(10, 5, 255, 255)));
        assert_eq!(
            net("10.5.0.0/16").broadcast(),
            Ipv4Addr::new(10, 5, 255, 255)
        );
    }

    #[test]
    fn allocation_skips_reserved_and_used() {
        let s = net("10.9.0.0/30");
        let gw = Ipv4Addr::new(10, 9, 0, 1);
        let mut used = BTreeSet::new();
        assert_eq!(
            allocate(&s, None, gw, &used, None),
            Some(Ipv4Addr::new(10, 9, 0, 2))
        );
        used.insert(Ipv4Addr::new(10, 9, 0, 2));
        assert_eq!(allocate(&s, None, gw, &used, None), None);
        let s = net("10.9.0.0/24");
        let r = net("10.9.0.128/25");
        assert_eq!(
            allocate(&s, Some(&r), gw, &used, None),
            Some(Ipv4Addr::new(10, 9, 0, 128))
        );
    }

    #[test]
    fn allocation_continues_after_the_last() {
        let s = net("10.9.0.0/24");
        let gw = Ipv4Addr::new(10, 9, 0, 1);
        let used = BTreeSet::new();
        let at = |last| allocate(&s, None, gw, &used, Some(last));
        assert_eq!(
            at(Ipv4Addr::new(10, 9, 0, 7)),
            Some(Ipv4Addr::new(10, 9, 0, 8))
        );
        assert_eq!(
            at(Ipv4Addr::new(10, 9, 0, 254)),
            Some(Ipv4Addr::new(10, 9, 0, 2))
        );
        assert_eq!(
            at(Ipv4Addr::new(10, 200, 0, 1)),
            Some(Ipv4Addr::new(10, 9, 0, 2))
        );
    }

    #[test]
    fn pools_skip_taken() {
        let pools = [Pool {
            base: net("10.20.0.0/20"),
            size: 24,
        }];
        let got = next_subnet(&pools, &[net("10.20.0.0/24"), net("10.20.1.0/24")]);
        assert_eq!(got, Some(net("10.20.2.0/24")));
        assert_eq!(next_subnet(&pools, &[net("10.0.0.0/8")]), None);
        assert_eq!(
            next_subnet(&default_pools(), &[]),
            Some(net("172.17.0.0/16"))
        );
    }

    #[test]
    fn macs() {
        assert_eq!(mac_for(Ipv4Addr::new(172, 17, 0, 2)), "02:42:ac:11:00:02");
    }
}
