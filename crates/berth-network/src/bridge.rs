//! Linux bridges: create (idempotently) with the gateway address and MTU, and delete
//! (over rtnetlink: no `ip` process at daemon start); the host's directly routed subnets.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::cmd::run;
use crate::rtnl::Rtnl;
use crate::NetError;

pub fn exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Whether interface `name` is a Linux bridge.
pub fn is_bridge(name: &str) -> bool {
    Path::new("/sys/class/net")
        .join(name)
        .join("bridge")
        .exists()
}

/// Valid Linux interface name (IFNAMSIZ and the characters `ip` accepts).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Makes sure bridge `name` exists, is up, and carries `gateway/prefix` (if any).
pub fn ensure(
    name: &str,
    gateway: Option<(Ipv4Addr, u8)>,
    mtu: Option<u32>,
) -> Result<(), NetError> {
    if exists(name) && !is_bridge(name) {
        // Never configure an interface berth did not make as a bridge (eth0, a veth, ...).
        return Err(NetError::Conflict(format!(
            "interface {name} exists and is not a bridge"
        )));
    }
    let failed = |step: &str| NetError::io(format!("bridge {name}: cannot {step}"));
    let mut nl = Rtnl::open().map_err(failed("open rtnetlink"))?;
    if !exists(name) {
        nl.add_bridge(name).map_err(failed("create it"))?;
        tracing::info!(bridge = name, "bridge created");
    }
    if let Some(mtu) = mtu {
        nl.set_mtu(name, mtu).map_err(failed("set its MTU"))?;
    }
    if let Some((gw, prefix)) = gateway {
        let index = nl
            .link_index(name)
            .map_err(failed("look it up"))?
            .ok_or_else(|| NetError::NotFound(format!("bridge {name} vanished")))?;
        nl.replace_addr4(index, gw, prefix)
            .map_err(failed("set its address"))?;
    }
    nl.set_up(name).map_err(failed("set it up"))
}

/// Deletes bridge `name` if it exists.
pub fn delete(name: &str) -> Result<(), NetError> {
    if exists(name) {
        let failed = |step: &str| NetError::io(format!("bridge {name}: cannot {step}"));
        let mut nl = Rtnl::open().map_err(failed("open rtnetlink"))?;
        if nl.del_link(name).map_err(failed("delete it"))? {
            tracing::info!(bridge = name, "bridge deleted");
        }
    }
    Ok(())
}

fn routes(args: &[&str]) -> Vec<crate::Ipv4Net> {
    run("ip", args)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|d| d.contains('/'))
        .filter_map(|d| d.parse().ok())
        .collect()
}

/// Subnets the host routes to directly (a new network must not overlap them).
pub fn host_subnets() -> Vec<crate::Ipv4Net> {
    routes(&["-4", "route", "show", "scope", "link"])
}

/// Subnets routed through interface `dev`.
pub fn routes_via(dev: &str) -> Vec<crate::Ipv4Net> {
    if !exists(dev) {
        return Vec::new();
    }
    routes(&["-4", "route", "show", "dev", dev])
}
