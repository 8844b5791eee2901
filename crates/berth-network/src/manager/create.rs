//! A new network: its address space (the requested one checked against the others, or
//! the next free subnet of the pools), its bridge, its firewall rules, its record; and a
//! network's removal.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde_json::{Map, Value};

use super::{Manager, NetRecord};
use crate::{bridge, ipam, Ipv4Net, NetError};

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
    pub internal: bool,
    pub attachable: bool,
    pub labels: Map<String, Value>,
    /// RFC 3339.
    pub created: String,
}

/// The subnet, gateway and IP range of a new network: the requested ones checked against
/// the `taken` subnets, or `next` free subnet of the pools.
pub fn create_ipam(
    req: &CreateRequest,
    taken: impl IntoIterator<Item = Ipv4Net>,
    next: impl FnOnce() -> Option<Ipv4Net>,
) -> Result<(Ipv4Net, Ipv4Addr, Option<Ipv4Net>), NetError> {
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
            if req.gateway.is_some() || req.ip_range.is_some() {
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
    Ok((subnet, gateway, ip_range))
}

impl NetRecord {
    /// The record of a new bridge network: `req` with the addresses [`create_ipam`] gave.
    pub fn bridge(
        req: CreateRequest,
        subnet: Ipv4Net,
        gateway: Ipv4Addr,
        ip_range: Option<Ipv4Net>,
    ) -> NetRecord {
        NetRecord {
            user_ipam: req.subnet.is_some(),
            gateway_given: req.gateway.is_some(),
            id: req.id,
            name: req.name,
            driver: "bridge".into(),
            created: req.created,
            subnet: Some(subnet),
            gateway: Some(gateway),
            ip_range,
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
            let (subnet, gateway, ip_range) =
                create_ipam(&req, st.nets.values().filter_map(|r| r.subnet), || {
                    ipam::next_subnet(&self.pools(), &Manager::taken_subnets(&st))
                })?;
            NetRecord::bridge(req, subnet, gateway, ip_range)
        };
        let id = r.id.clone();
        let prefix = r.subnet.map(|s| s.prefix()).unwrap_or(24);
        self.wait_host_ready();
        let made = bridge::ensure(&r.bridge, r.gateway.map(|g| (g, prefix)), Some(r.mtu))
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
