//! One container's interfaces: a veth pair whose host end joins a bridge and whose other
//! end becomes `ethN` inside the container's network namespace (reached through its init
//! pid), with its IPv4 (and IPv6, and link-local) addresses, MAC, MTU and — for the first
//! interface — the default routes; and
//! `lo` brought up. All of it over rtnetlink ([`crate::rtnl`]): the peer is created
//! directly inside the namespace (`IFLA_NET_NS_FD`) with its final name, and a socket
//! opened inside the namespace configures it, so plugging a container starts no process.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsFd;
use std::time::Instant;

use crate::rtnl::{parse_mac, Rtnl, VethPeer};
use crate::NetError;

/// What to plug.
#[derive(Debug, Clone)]
pub struct Plug<'a> {
    pub bridge: &'a str,
    /// `eth0`, `eth1`, …
    pub ifname: &'a str,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub mac: &'a str,
    pub mtu: u32,
    /// The default route's gateway (first interface of a non-internal network).
    pub gateway: Option<Ipv4Addr>,
    /// The IPv6 address and prefix (networks with `EnableIPv6`).
    pub ip6: Option<(Ipv6Addr, u8)>,
    /// The IPv6 default route's gateway (as `gateway`).
    pub gateway6: Option<Ipv6Addr>,
    /// `--link-local-ip` addresses, added as /16 (IPv4) or /64 (IPv6) as libnetwork does.
    pub link_local: Vec<IpAddr>,
}

fn random_suffix() -> Result<String, NetError> {
    let b = berth_sys::host::random_bytes().map_err(NetError::io("cannot read random bytes"))?;
    Ok(b[..4]
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect::<String>()[..7]
        .to_string())
}

/// A running container's network namespace, opened once for all its interfaces: the
/// namespace file and rtnetlink sockets inside it and in the daemon's namespace.
#[derive(Debug)]
pub struct Sandbox {
    pid: i32,
    ns: File,
    inside: Rtnl,
    host: Rtnl,
}

impl Sandbox {
    /// Works in `ns`, the open network namespace of process `pid` (the caller opened it
    /// through the process's handle; `pid` only names it in messages).
    pub fn open(pid: i32, ns: File) -> Result<Sandbox, NetError> {
        let inside = Rtnl::open_in(ns.as_fd()).map_err(NetError::io(format!(
            "cannot open a netlink socket in the network namespace of {pid}"
        )))?;
        let host = Rtnl::open().map_err(NetError::io("cannot open a netlink socket"))?;
        Ok(Sandbox {
            pid,
            ns,
            inside,
            host,
        })
    }

    /// Brings `lo` up inside the namespace.
    pub fn loopback_up(&mut self) -> Result<(), NetError> {
        self.inside.set_up("lo").map_err(NetError::io(format!(
            "cannot bring lo up in the network namespace of {}",
            self.pid
        )))
    }

    /// Creates the pair and configures both ends; returns the host end's name. On failure
    /// the host end is removed (which removes its peer too).
    pub fn plug(&mut self, p: &Plug<'_>) -> Result<String, NetError> {
        let t0 = Instant::now();
        let mac = parse_mac(p.mac)
            .ok_or_else(|| NetError::InvalidArgument(format!("invalid MAC address: {}", p.mac)))?;
        let master = self
            .host
            .link_index(p.bridge)
            .map_err(NetError::io(format!("cannot look bridge {} up", p.bridge)))?
            .ok_or_else(|| NetError::NotFound(format!("bridge {} not found", p.bridge)))?;
        let host = format!("veth{}", random_suffix()?);
        let peer = VethPeer {
            name: p.ifname,
            mtu: p.mtu,
            mac,
            netns: self.ns.as_fd(),
        };
        self.host
            .add_veth(&host, p.mtu, master, &peer)
            .map_err(NetError::io(format!(
                "cannot create veth {host} (peer {} in the network namespace of {})",
                p.ifname, self.pid
            )))?;
        if let Err(e) = self.configure_inside(p) {
            if let Err(e) = self.host.del_link(&host) {
                tracing::warn!(veth = %host, error = %e, "cannot remove a half-made veth");
            }
            return Err(e);
        }
        tracing::debug!(
            veth = %host,
            ifname = p.ifname,
            elapsed_us = t0.elapsed().as_micros() as u64,
            "interface plugged"
        );
        Ok(host)
    }

    /// Address, link up and default route of the peer, from inside the namespace.
    fn configure_inside(&mut self, p: &Plug<'_>) -> Result<(), NetError> {
        let ifname = p.ifname;
        let index = self
            .inside
            .link_index(ifname)
            .map_err(NetError::io(format!("cannot look {ifname} up")))?
            .ok_or_else(|| NetError::NotFound(format!("{ifname} vanished")))?;
        let v6 = p.ip6.map(|(ip, prefix)| (IpAddr::V6(ip), prefix));
        let link_local = p.link_local.iter().map(|ip| match ip {
            IpAddr::V4(_) => (*ip, 16),
            IpAddr::V6(_) => (*ip, 64),
        });
        for (ip, prefix) in [(IpAddr::V4(p.ip), p.prefix)]
            .into_iter()
            .chain(v6)
            .chain(link_local)
        {
            self.inside
                .add_addr(index, ip, prefix)
                .map_err(NetError::io(format!(
                    "cannot add {ip}/{prefix} to {ifname}"
                )))?;
        }
        self.inside
            .set_up(ifname)
            .map_err(NetError::io(format!("cannot bring {ifname} up")))?;
        let gateways = p
            .gateway
            .map(IpAddr::V4)
            .into_iter()
            .chain(p.gateway6.map(IpAddr::V6));
        for gw in gateways {
            self.inside
                .replace_default_route(gw)
                .map_err(NetError::io(format!(
                    "cannot add the default route via {gw}"
                )))?;
        }
        Ok(())
    }
}

/// Brings `lo` up inside the namespace `ns` of process `pid`.
pub fn loopback_up(pid: i32, ns: File) -> Result<(), NetError> {
    Sandbox::open(pid, ns)?.loopback_up()
}

/// Removes a host-side veth (and so its peer); absent is fine (the container's exit may
/// have removed the pair meanwhile).
pub fn unplug(host: &str) -> Result<(), NetError> {
    Rtnl::open()
        .and_then(|mut nl| nl.del_link(host))
        .map(drop)
        .map_err(NetError::io(format!("cannot remove {host}")))
}

/// Removes host-side veths of stopped containers on a thread of its own. Deleting a veth
/// pair takes the kernel 15–20 ms on our machines (RCU grace periods while unregistering
/// both ends), and when the container's network namespace dies with its last process the
/// kernel removes the pair by itself anyway; so a container's stop does not wait for it.
/// Where the interface must be gone before the caller goes on (`network disconnect`), use
/// [`unplug`].
#[derive(Debug)]
pub struct Reaper {
    tx: std::sync::mpsc::Sender<String>,
}

impl Reaper {
    /// Starts the thread (it ends when the reaper is dropped, after the queue is empty).
    pub fn start() -> Result<Reaper, NetError> {
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("veth-reaper".into())
            .spawn(move || {
                let mut nl = None;
                for veth in rx {
                    if nl.is_none() {
                        nl = Rtnl::open()
                            .inspect_err(
                                |e| tracing::warn!(error = %e, "cannot open a netlink socket"),
                            )
                            .ok();
                    }
                    let Some(sock) = nl.as_mut() else { continue };
                    if let Err(e) = sock.del_link(&veth) {
                        tracing::warn!(veth = %veth, error = %e, "cannot remove a veth");
                        nl = None;
                    }
                }
            })
            .map_err(NetError::io("cannot start the veth reaper"))?;
        Ok(Reaper { tx })
    }

    /// Queues host-side veth `host` for removal (absent is fine); removes it right away
    /// if the thread is gone.
    pub fn remove(&self, host: String) {
        if let Err(std::sync::mpsc::SendError(host)) = self.tx.send(host) {
            if let Err(e) = unplug(&host) {
                tracing::warn!(veth = %host, error = %e, "cannot remove a veth");
            }
        }
    }
}
