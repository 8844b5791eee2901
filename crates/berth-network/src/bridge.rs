//! Linux bridges: create (idempotently) with the gateway address and MTU, and delete.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::cmd::run;
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
    if !exists(name) {
        run("ip", &["link", "add", "name", name, "type", "bridge"])?;
        tracing::info!(bridge = name, "bridge created");
    }
    if let Some(mtu) = mtu {
        run("ip", &["link", "set", "dev", name, "mtu", &mtu.to_string()])?;
    }
    if let Some((gw, prefix)) = gateway {
        run(
            "ip",
            &["addr", "replace", &format!("{gw}/{prefix}"), "dev", name],
        )?;
    }
    run("ip", &["link", "set", "dev", name, "up"])?;
    Ok(())
}

/// Deletes bridge `name` if it exists.
pub fn delete(name: &str) -> Result<(), NetError> {
    if exists(name) {
        run("ip", &["link", "del", "dev", name])?;
        tracing::info!(bridge = name, "bridge deleted");
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
