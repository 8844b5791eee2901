//! A new network: its address space (the requested one checked against the others, or
//! the next free subnet of the pools), its bridge, its firewall rules, its record; and a
//! network's removal.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

use super::{Manager, NetRecord};
use crate::{bridge, ipam, Ipv4Net, Ipv6Net, NetError};

/// A new network as the engine read it from `POST /networks/create` (checked on its own:
/// nothing there looked at the other networks or the host).
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub id: String,
    pub name: String,
    pub options: Map<String, Value>,
    pub mtu: u32,
    pub bridge_name: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    /// `AuxiliaryAddresses`: name → address, reserved (never handed out).
    pub aux: BTreeMap<String, String>,
    /// `EnableIPv6`.
    pub enable_ipv6: bool,
    /// The IPv6 IPAM config, as given.
    pub subnet6: Option<String>,
    pub gateway6: Option<String>,
    pub ip_range6: Option<String>,
    pub internal: bool,
    pub attachable: bool,
    pub labels: Map<String, Value>,
    /// RFC 3339.
    pub created: String,
}

/// A boolean as Go's `strconv.ParseBool` reads it (how dockerd reads the bridge driver's
/// boolean options).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The addresses [`create_ipam`] gives a new network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetAddresses {
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub ip_range: Option<Ipv4Net>,
    pub aux: BTreeMap<String, Ipv4Addr>,
}

/// The subnet, gateway, IP range and auxiliary addresses of a new network: the requested
/// ones checked against the `taken` subnets, or `next` free subnet of the pools.
pub fn create_ipam(
    req: &CreateRequest,
    taken: impl IntoIterator<Item = Ipv4Net>,
    next: impl FnOnce() -> Option<Ipv4Net>,
) -> Result<NetAddresses, NetError> {
    let subnet = match &req.subnet {
        Some(s) => {
            let net: Ipv4Net = s.parse().map_err(|e: NetError| {
                NetError::InvalidArgument(format!("Invalid subnet {s} : {e}"))
            })?;
            if taken.into_iter().any(|o| o.overlaps(&net)) {
                return Err(NetError::Forbidden(
                    "Pool overlaps with other one on this address space".into(),
                ));
            }
            net
        }
        None => {
            if req.gateway.is_some() || req.ip_range.is_some() || !req.aux.is_empty() {
                return Err(NetError::InvalidArgument(
                    "ipRange or gateway given without a subnet".into(),
                ));
            }
            next().ok_or_else(|| {
                NetError::Forbidden(
                    "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into(),
                )
            })?
        }
    };
    let gateway = match &req.gateway {
        Some(g) => {
            let ip: Ipv4Addr = g
                .parse()
                .map_err(|_| NetError::InvalidArgument(format!("invalid gateway address {g}")))?;
            if !subnet.contains(ip) {
                return Err(NetError::InvalidArgument(format!(
                    "failed to allocate gateway ({g}): Requested address is out of range"
                )));
            }
            ip
        }
        None => subnet.nth(1).unwrap_or(subnet.addr()),
    };
    let ip_range = match &req.ip_range {
        Some(s) => {
            let range: Ipv4Net = s.parse().map_err(|e: NetError| {
                NetError::InvalidArgument(format!("Invalid range {s} : {e}"))
            })?;
            if !subnet.contains(range.addr()) || range.prefix() < subnet.prefix() {
                return Err(NetError::InvalidArgument(format!(
                    "no matching subnet for range {s}"
                )));
            }
            Some(range)
        }
        None => None,
    };
    let mut aux = BTreeMap::new();
    for (name, a) in &req.aux {
        // moby `validateIpamConfig`'s words.
        let ip: Ipv4Addr = a.parse().map_err(|_| {
            NetError::InvalidArgument(format!(
                "invalid network config:\ninvalid auxiliary address {name}: {a} is not an IPv4 address"
            ))
        })?;
        if !subnet.contains(ip) {
            return Err(NetError::InvalidArgument(format!(
                "invalid network config:\ninvalid auxiliary address {name}: parent subnet {subnet} doesn't contain this address"
            )));
        }
        aux.insert(name.clone(), ip);
    }
    Ok(NetAddresses {
        subnet,
        gateway,
        ip_range,
        aux,
    })
}

/// The IPv6 subnet, gateway and range [`create_ipam6`] gives a new network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetAddresses6 {
    pub subnet: Ipv6Net,
    pub gateway: Ipv6Addr,
    pub ip_range: Option<Ipv6Net>,
}

/// The IPv6 address space of a new network, as dockerd 20.10's default IPAM gives it: the
/// requested subnet (not overlapping the `taken` ones), its first address as the gateway
/// unless one is given; none without a subnet, and without one `EnableIPv6` is refused
/// (20.10 has no default IPv6 pools).
pub fn create_ipam6(
    req: &CreateRequest,
    taken: impl IntoIterator<Item = Ipv6Net>,
) -> Result<Option<NetAddresses6>, NetError> {
    let Some(s) = &req.subnet6 else {
        if req.enable_ipv6 {
            return Err(NetError::NotFound(
                "could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network".into(),
            ));
        }
        return Ok(None);
    };
    let subnet: Ipv6Net = s
        .parse()
        .map_err(|e: NetError| NetError::InvalidArgument(format!("Invalid subnet {s} : {e}")))?;
    if taken.into_iter().any(|o| o.overlaps(&subnet)) {
        return Err(NetError::Forbidden(
            "Pool overlaps with other one on this address space".into(),
        ));
    }
    let gateway = match &req.gateway6 {
        Some(g) => g
            .parse::<Ipv6Addr>()
            .ok()
            .filter(|ip| subnet.contains(*ip))
            .ok_or_else(|| {
                NetError::InvalidArgument(format!(
                    "failed to allocate gateway ({g}): Requested address is out of range"
                ))
            })?,
        None => subnet.nth(1).unwrap_or(subnet.addr()),
    };
    let ip_range = match &req.ip_range6 {
        Some(r) => {
            let range: Ipv6Net = r.parse().map_err(|e: NetError| {
                NetError::InvalidArgument(format!("Invalid range {r} : {e}"))
            })?;
            if !subnet.contains(range.addr()) || range.prefix() < subnet.prefix() {
                return Err(NetError::InvalidArgument(format!(
                    "no matching subnet for range {r}"
                )));
            }
            Some(range)
        }
        None => None,
    };
    Ok(Some(NetAddresses6 {
        subnet,
        gateway,
        ip_range,
    }))
}

impl NetRecord {
    /// The record of a new bridge network: `req` with the addresses [`create_ipam`] and
    /// [`create_ipam6`] gave.
    pub fn bridge(req: CreateRequest, a: NetAddresses, a6: Option<NetAddresses6>) -> NetRecord {
        NetRecord {
            ipv6: req.enable_ipv6,
            subnet6: a6.as_ref().map(|a| a.subnet),
            gateway6: a6.as_ref().map(|a| a.gateway),
            gateway6_given: req.gateway6.is_some(),
            ip_range6: a6.as_ref().and_then(|a| a.ip_range),
            last_ip6: None,
            user_ipam: req.subnet.is_some(),
            gateway_given: req.gateway.is_some(),
            id: req.id,
            name: req.name,
            driver: "bridge".into(),
            created: req.created,
            subnet: Some(a.subnet),
            gateway: Some(a.gateway),
            ip_range: a.ip_range,
            aux: a.aux,
            internal: req.internal,
            attachable: req.attachable,
            labels: req.labels,
            options: req.options,
            bridge: req.bridge_name,
            mtu: req.mtu,
            endpoints: BTreeMap::new(),
            last_ip: None,
        }
    }
}

impl Manager {
    /// Makes the network `req` describes: refused if its name or bridge is taken or its
    /// address space overlaps another network's. Blocking.
    pub fn create_network(&self, req: CreateRequest) -> Result<NetRecord, NetError> {
        let r = {
            let st = self.lock();
            let name = &req.name;
            if st.nets.values().any(|r| r.name == *name) {
                return Err(NetError::Conflict(format!(
                    "network with name {name} already exists"
                )));
            }
            // An interface berth did not make (docker0, eth0, ...) is never adopted: removing
            // the network would delete it.
            let bridge_name = &req.bridge_name;
            if st.nets.values().any(|r| r.bridge == *bridge_name) || bridge::exists(bridge_name) {
                return Err(NetError::Conflict(format!(
                    "bridge name {bridge_name} is already in use by another network"
                )));
            }
            let addresses = create_ipam(&req, st.nets.values().filter_map(|r| r.subnet), || {
                ipam::next_subnet(&self.pools(), &Manager::taken_subnets(&st))
            })?;
            let addresses6 = create_ipam6(&req, st.nets.values().filter_map(|r| r.subnet6))?;
            NetRecord::bridge(req, addresses, addresses6)
        };
        let id = r.id.clone();
        let prefix = r.subnet.map(|s| s.prefix()).unwrap_or(24);
        self.wait_host_ready();
        let made = bridge::ensure(
            &r.bridge,
            r.gateway.map(|g| (g, prefix)),
            r.v6().map(|(s, g)| (g, s.prefix())),
            Some(r.mtu),
        )
        .and_then(|()| self.save_net(&r));
        if let Err(e) = made {
            let _ = bridge::delete(&r.bridge);
            return Err(e);
        }
        self.lock().nets.insert(id.clone(), r.clone());
        if let Err(e) = self.sync_firewall() {
            self.lock().nets.remove(&id);
            let _ = std::fs::remove_file(self.net_path(&id));
            let _ = bridge::delete(&r.bridge);
            let _ = self.sync_firewall();
            return Err(e);
        }
        if r.v6().is_some() {
            self.ipv6_forwarding();
        }
        Ok(r)
    }

    /// Removes network `id` (refused while containers run on it): its record, bridge and
    /// rules. Once it is gone from the records, what could not be cleaned up is returned
    /// with it (one message per failure). Blocking.
    pub fn remove_network(&self, id: &str) -> Result<(NetRecord, Vec<String>), NetError> {
        let r = {
            let mut st = self.lock();
            let Some(r) = st.nets.get(id) else {
                return Err(NetError::NotFound(format!("network {id} not found")));
            };
            if !r.endpoints.is_empty() {
                return Err(NetError::Forbidden(format!(
                    "error while removing network: network {} id {} has active endpoints",
                    r.name, r.id
                )));
            }
            let r = r.clone();
            st.nets.remove(id);
            r
        };
        let mut errors = Vec::new();
        if let Err(e) = self.sync_firewall() {
            errors.push(e.to_string());
        }
        if let Err(e) = bridge::delete(&r.bridge) {
            errors.push(e.to_string());
        }
        if let Err(e) = std::fs::remove_file(self.net_path(&r.id)) {
            errors.push(format!("cannot remove the network record: {e}"));
        }
        Ok((r, errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(subnet: &str, range: Option<&str>, aux: &[(&str, &str)]) -> CreateRequest {
        CreateRequest {
            id: "d".repeat(64),
            name: "n".into(),
            options: Map::new(),
            mtu: 1500,
            bridge_name: "br-n".into(),
            subnet: Some(subnet.into()),
            gateway: None,
            ip_range: range.map(String::from),
            aux: aux
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            internal: false,
            attachable: false,
            labels: Map::new(),
            created: String::new(),
            enable_ipv6: false,
            subnet6: None,
            gateway6: None,
            ip_range6: None,
        }
    }

    /// dockerd 20.10's answers: no default IPv6 pool, overlaps and a gateway outside the
    /// subnet refused; the gateway is the subnet's first address unless given; an IPv6
    /// config without `EnableIPv6` is kept (and unused).
    #[test]
    fn ipv6_address_space() {
        let mut r = req("10.5.0.0/24", None, &[]);
        assert_eq!(create_ipam6(&r, []).unwrap(), None);
        r.enable_ipv6 = true;
        let e = create_ipam6(&r, []).unwrap_err();
        assert!(matches!(e, NetError::NotFound(_)), "{e:?}");
        assert_eq!(e.to_string(), "could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network");
        r.subnet6 = Some("fd00:1::/64".into());
        let a = create_ipam6(&r, []).unwrap().unwrap();
        assert_eq!(a.gateway, "fd00:1::1".parse::<Ipv6Addr>().unwrap());
        let e = create_ipam6(&r, ["fd00::/16".parse().unwrap()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Pool overlaps with other one on this address space"
        );
        r.gateway6 = Some("fd00:2::1".into());
        let e = create_ipam6(&r, []).unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to allocate gateway (fd00:2::1): Requested address is out of range"
        );
        r.gateway6 = Some("fd00:1::fe".into());
        r.ip_range6 = Some("fd00:1::100/120".into());
        let a = create_ipam6(&r, []).unwrap().unwrap();
        let mut n = NetRecord::bridge(r.clone(), create_ipam(&r, [], || None).unwrap(), Some(a));
        let ep = Manager::allocate(&mut n, "c1", "c1", &[], None, None, None).unwrap();
        assert_eq!(ep.ip6, Some("fd00:1::100".parse().unwrap()));
        let want = Some("fd00:1::7".parse().unwrap());
        let ep = Manager::allocate(&mut n, "c2", "c2", &[], None, want, None).unwrap();
        assert_eq!(ep.ip6, want);
        let e = Manager::allocate(&mut n, "c3", "c3", &[], None, want, None).unwrap_err();
        assert_eq!(e.to_string(), "Address already in use");
        let e = Manager::allocate(
            &mut n,
            "c3",
            "c3",
            &[],
            None,
            Some("fd00:3::1".parse().unwrap()),
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Invalid address fd00:3::1: It does not belong to any of this network's subnets"
        );
        r.subnet6 = Some("nope".into());
        assert!(create_ipam6(&r, []).is_err());
    }

    #[test]
    fn auxiliary_addresses_are_checked_and_never_handed_out() {
        let e =
            create_ipam(&req("10.5.0.0/24", None, &[("x", "10.6.0.1")]), [], || None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid network config:\ninvalid auxiliary address x: parent subnet 10.5.0.0/24 doesn't contain this address"
        );
        let e = create_ipam(&req("10.5.0.0/24", None, &[("x", "nope")]), [], || None).unwrap_err();
        assert!(e.to_string().contains("invalid auxiliary address x"), "{e}");
        let a = create_ipam(
            &req("10.5.0.0/24", Some("10.5.0.248/29"), &[("r", "10.5.0.249")]),
            [],
            || None,
        )
        .unwrap();
        let aux: Ipv4Addr = "10.5.0.249".parse().unwrap();
        assert_eq!(a.aux.get("r"), Some(&aux));
        let mut r = NetRecord::bridge(
            req("10.5.0.0/24", Some("10.5.0.248/29"), &[("r", "10.5.0.249")]),
            a,
            None,
        );
        let mut got = Vec::new();
        for cid in ["c1", "c2", "c3", "c4", "c5", "c6"] {
            got.push(
                Manager::allocate(&mut r, cid, cid, &[], None, None, None)
                    .unwrap()
                    .ip,
            );
        }
        // .248 .. .254 less the reserved one; .255 is the broadcast.
        assert!(!got.contains(&aux), "{got:?}");
        assert!(got.iter().all(|ip| ip.octets()[3] >= 248), "{got:?}");
        assert!(Manager::allocate(&mut r, "c7", "c7", &[], None, None, None).is_err());
        let e = Manager::allocate(&mut r, "c8", "c8", &[], Some(aux), None, None).unwrap_err();
        assert_eq!(e.to_string(), "Address already in use: 10.5.0.249");
    }

    #[test]
    fn go_booleans() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for x in ["", "yes", "tRUE", " true"] {
            assert_eq!(parse_bool(x), None, "{x}");
        }
    }
}
