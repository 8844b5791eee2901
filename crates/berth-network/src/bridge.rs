//! Linux bridges: create (idempotently) with the gateway address and MTU, and delete
//! (over rtnetlink: no `ip` process at daemon start), looked up over rtnetlink in the
//! daemon's network namespace; the host's directly routed subnets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::cmd::run;
use crate::rtnl::{Link, Rtnl};
use crate::NetError;

/// Link `name` in the calling thread's network namespace, looked up over rtnetlink (not
/// in `/sys/class/net`, which shows the namespace of whoever mounted that sysfs); `None`
/// when there is none or the lookup fails.
fn link(name: &str) -> Option<Link> {
    let found = Rtnl::open().and_then(|mut nl| nl.link(name));
    found
        .inspect_err(|e| tracing::warn!(link = name, error = %e, "cannot look a link up"))
        .ok()
        .flatten()
}

/// Whether interface `name` exists in the calling thread's network namespace.
pub fn exists(name: &str) -> bool {
    link(name).is_some()
}

/// Whether interface `name` is a Linux bridge.
pub fn is_bridge(name: &str) -> bool {
    link(name).is_some_and(|l| l.is_bridge)
}

/// Valid Linux interface name (IFNAMSIZ and the characters `ip` accepts).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Makes sure bridge `name` exists, is up, and carries `gateway/prefix` and the IPv6
/// `gateway6/prefix` (if any; IPv6 is then enabled on that bridge alone).
pub fn ensure(
    name: &str,
    gateway: Option<(Ipv4Addr, u8)>,
    gateway6: Option<(Ipv6Addr, u8)>,
    mtu: Option<u32>,
) -> Result<(), NetError> {
    let failed = |step: &str| NetError::io(format!("bridge {name}: cannot {step}"));
    let mut nl = Rtnl::open().map_err(failed("open rtnetlink"))?;
    let found = nl.link(name).map_err(failed("look it up"))?;
    if found.is_some_and(|l| !l.is_bridge) {
        // Never configure an interface berth did not make as a bridge (eth0, a veth, ...).
        return Err(NetError::Conflict(format!(
            "interface {name} exists and is not a bridge"
        )));
    }
    if found.is_none() {
        nl.add_bridge(name).map_err(failed("create it"))?;
        tracing::info!(bridge = name, "bridge created");
    }
    if let Some(mtu) = mtu {
        nl.set_mtu(name, mtu).map_err(failed("set its MTU"))?;
    }
    let addrs = gateway
        .map(|(g, p)| (IpAddr::V4(g), p))
        .into_iter()
        .chain(gateway6.map(|(g, p)| (IpAddr::V6(g), p)));
    for (gw, prefix) in addrs {
        if gw.is_ipv6() {
            enable_ipv6(name)?;
        }
        let index = nl
            .link_index(name)
            .map_err(failed("look it up"))?
            .ok_or_else(|| NetError::NotFound(format!("bridge {name} vanished")))?;
        nl.replace_addr(index, gw, prefix)
            .map_err(failed("set its address"))?;
    }
    nl.set_up(name).map_err(failed("set it up"))
}

/// Sets `net.ipv6.conf.<name>.disable_ipv6` to 0 where it is 1 (this interface only;
/// nothing host-wide). A host without IPv6 has no such file: the address then fails.
fn enable_ipv6(name: &str) -> Result<(), NetError> {
    let p = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
    match std::fs::read_to_string(&p) {
        Ok(v) if v.trim() == "1" => {
            std::fs::write(&p, "0").map_err(NetError::io(format!("cannot enable IPv6 on {name}")))
        }
        _ => Ok(()),
    }
}

/// Deletes bridge `name` if it exists.
pub fn delete(name: &str) -> Result<(), NetError> {
    let failed = |step: &str| NetError::io(format!("bridge {name}: cannot {step}"));
    let mut nl = Rtnl::open().map_err(failed("open rtnetlink"))?;
    if nl.del_link(name).map_err(failed("delete it"))? {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// In a network namespace of its own (this thread's alone), a bridge made there
    /// exists and the host's links do not; `/sys/class/net` would show the host's.
    #[test]
    fn links_are_looked_up_in_the_threads_own_namespace() {
        let name = "berthtestbr0";
        assert!(!exists(name));
        std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            assert!(exists("lo") && !is_bridge("lo"));
            assert!(!exists(name));
            Rtnl::open().unwrap().add_bridge(name).unwrap();
            assert!(exists(name) && is_bridge(name));
            // A link of the host's, seen through the host's sysfs, is not here.
            let host_links = std::fs::read_dir("/sys/class/net").unwrap();
            for l in host_links.flatten().map(|e| e.file_name()) {
                let l = l.to_string_lossy();
                if l != "lo" && l != name {
                    assert!(!exists(&l), "{l}");
                }
            }
            delete(name).unwrap();
            assert!(!exists(name));
            // The namespace (and anything left in it) goes with the thread.
        })
        .join()
        .unwrap();
        assert!(!exists(name));
    }
}
