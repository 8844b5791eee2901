//! One container's interfaces: a veth pair whose host end joins a bridge and whose other
//! end becomes `ethN` inside the container's network namespace (reached through its init
//! pid), with address, MAC, MTU and — for the first interface — the default route.

use std::net::Ipv4Addr;

use crate::cmd::{ip_batch, ip_in, run};
use crate::NetError;

/// What to plug.
#[derive(Debug, Clone)]
pub struct Plug<'a> {
    pub pid: i32,
    pub bridge: &'a str,
    /// `eth0`, `eth1`, …
    pub ifname: &'a str,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub mac: &'a str,
    pub mtu: u32,
    /// The default route's gateway (first interface of a non-internal network).
    pub gateway: Option<Ipv4Addr>,
}

fn random_suffix() -> Result<String, NetError> {
    let b = berth_sys::host::random_bytes().map_err(NetError::io("cannot read random bytes"))?;
    Ok(b[..4]
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect::<String>()[..7]
        .to_string())
}

/// Creates the pair and configures both ends; returns the host end's name. On failure the
/// host end is removed (which removes its peer too).
pub fn plug(p: &Plug<'_>) -> Result<String, NetError> {
    let sfx = random_suffix()?;
    let host = format!("veth{sfx}");
    let pid = p.pid.to_string();
    // The peer is made inside the container's namespace with its final name and address:
    // two `ip -batch` runs (host side, container side) instead of a process per step.
    let mtu = p.mtu;
    let configured = (|| {
        ip_batch(
            None,
            &[
                format!(
                    "link add {host} mtu {mtu} type veth peer name {} mtu {mtu} address {} netns {pid}",
                    p.ifname, p.mac
                ),
                format!("link set {host} master {} up", p.bridge),
            ],
        )?;
        let mut inside = vec![
            format!("addr add {}/{} dev {}", p.ip, p.prefix, p.ifname),
            format!("link set {} up", p.ifname),
            "link set lo up".to_string(),
        ];
        if let Some(gw) = p.gateway {
            inside.push(format!("route replace default via {gw}"));
        }
        ip_batch(Some(p.pid), &inside)
    })();
    if let Err(e) = configured {
        let _ = unplug(&host);
        return Err(e);
    }
    Ok(host)
}

/// Brings `lo` up inside the namespace of `pid`.
pub fn loopback_up(pid: i32) -> Result<(), NetError> {
    ip_in(pid, &["link", "set", "lo", "up"]).map(|_| ())
}

/// Removes a host-side veth (and so its peer); absent is fine.
pub fn unplug(host: &str) -> Result<(), NetError> {
    if crate::bridge::exists(host) {
        match run("ip", &["link", "del", "dev", host]) {
            // The container's exit removed the pair meanwhile.
            Err(NetError::Command { msg, .. }) if msg.contains("Cannot find device") => {}
            other => {
                other?;
            }
        }
    }
    Ok(())
}
