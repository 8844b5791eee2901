//! A container's way through the network: its settings registered at create, addresses
//! allocated and `/etc/hosts`/`resolv.conf` written at `prepare`, interfaces, published
//! ports and embedded DNS at `plug` (or `restore` after a daemon restart), everything
//! released at `unplug`, its name changed at `rename`, its settings dropped at `forget`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use berth_sys::pidfd::ProcessHandle;

use super::settings::{self, ContainerRequest, CtrNet};
use super::{
    random_hex, write_json, Endpoint, LinkedPeer, Live, Manager, NetEvent, NetNs, NetPlan,
    NetRecord, State, DEFAULT,
};
use crate::files::DnsSettings;
use crate::proxy::Proxy;
use crate::{endpoint, ipam, ipam6, NetError};

impl Manager {
    /// Allocates an address on `net` for container `cid` (the requested one if given), and
    /// an IPv6 one on a network with `EnableIPv6`.
    pub(super) fn allocate(
        r: &mut NetRecord,
        cid: &str,
        name: &str,
        aliases: &[String],
        want: Option<Ipv4Addr>,
        want6: Option<Ipv6Addr>,
        mac: Option<&str>,
    ) -> Result<Endpoint, NetError> {
        if let Some(ep) = r.endpoints.get(cid) {
            return Ok(ep.clone());
        }
        let (Some(subnet), Some(gw)) = (r.subnet, r.gateway) else {
            return Err(NetError::InvalidArgument(format!(
                "network {} has no address space",
                r.name
            )));
        };
        // Auxiliary addresses are reserved: never handed out, refused when asked for.
        let used: BTreeSet<Ipv4Addr> = r
            .endpoints
            .values()
            .map(|e| e.ip)
            .chain(r.aux.values().copied())
            .collect();
        let ip = match want {
            Some(ip) => {
                if !subnet.contains(ip)
                    || ip == gw
                    || ip == subnet.addr()
                    || ip == subnet.broadcast()
                {
                    return Err(NetError::InvalidArgument(format!(
                        "Invalid address {ip}: It does not belong to any of this network's subnets"
                    )));
                }
                if used.contains(&ip) {
                    return Err(NetError::Conflict(format!("Address already in use: {ip}")));
                }
                ip
            }
            None => ipam::allocate(&subnet, r.ip_range.as_ref(), gw, &used, r.last_ip).ok_or_else(
                || {
                    NetError::Unavailable(format!(
                        "no available IPv4 addresses on this network's address pools: {} ({})",
                        r.name, r.id
                    ))
                },
            )?,
        };
        let mac = mac
            .filter(|m| !m.is_empty())
            .map(String::from)
            .unwrap_or_else(|| ipam::mac_for(ip));
        let ip6 = Self::allocate6(r, want6.or_else(|| from_mac(r, &mac)))?;
        let ep = Endpoint {
            endpoint_id: random_hex(32)?,
            ip6,
            ip,
            mac,
            name: name.to_string(),
            aliases: aliases.to_vec(),
            veth: String::new(),
        };
        r.endpoints.insert(cid.to_string(), ep.clone());
        r.last_ip = Some(ip);
        if ip6.is_some() {
            r.last_ip6 = ip6;
        }
        Ok(ep)
    }

    /// The IPv6 address of a new endpoint on `r` (the requested one if given): `None` on a
    /// network without `EnableIPv6`, where a requested one is ignored, as dockerd does.
    fn allocate6(r: &NetRecord, want: Option<Ipv6Addr>) -> Result<Option<Ipv6Addr>, NetError> {
        let Some((subnet, gw)) = r.v6() else {
            return Ok(None);
        };
        let used: BTreeSet<Ipv6Addr> = r.endpoints.values().filter_map(|e| e.ip6).collect();
        let ip = match want {
            Some(ip) => {
                if !subnet.contains(ip) || ip == gw || ip == subnet.addr() {
                    return Err(NetError::InvalidArgument(format!(
                        "Invalid address {ip}: It does not belong to any of this network's subnets"
                    )));
                }
                if used.contains(&ip) {
                    return Err(NetError::Conflict("Address already in use".into()));
                }
                ip
            }
            None => ipam6::allocate(&subnet, r.ip_range6.as_ref(), gw, &used, r.last_ip6)
                .ok_or_else(|| {
                    NetError::Unavailable(format!(
                        "no available IPv6 addresses on this network's address pools: {} ({})",
                        r.name, r.id
                    ))
                })?,
        };
        Ok(Some(ip))
    }

    /// Step one of a start: addresses for each attached network, the netns to use, and the
    /// `/etc/hosts` and `resolv.conf` content. `peer`: for `container:<id>`, that
    /// container's init pid and its hosts and resolv.conf.
    pub fn prepare(
        &self,
        cid: &str,
        peer: Option<(i32, String, String)>,
    ) -> Result<NetPlan, NetError> {
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let mut st = self.lock();
        let Some(c) = st.ctrs.get(cid).cloned() else {
            // A container made before networking existed: a private netns, loopback only.
            return Ok(NetPlan {
                ns: NetNs::Private,
                hosts: crate::files::hosts(cid.get(..12).unwrap_or(cid), "", None, &[]),
                resolv: crate::files::resolv_conf(&host_resolv, &DnsSettings::default(), false),
                links: Vec::new(),
            });
        };
        let dns = c.dns_settings();
        match c.mode.as_str() {
            "host" => {
                return Ok(NetPlan {
                    ns: NetNs::Host,
                    hosts: std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
                    resolv: host_resolv,
                    links: Vec::new(),
                })
            }
            m if m.starts_with("container:") => {
                let (pid, hosts, resolv) = peer.ok_or_else(|| {
                    NetError::Conflict(format!(
                        "cannot join network of a non running container: {}",
                        m.strip_prefix("container:").unwrap_or(m)
                    ))
                })?;
                return Ok(NetPlan {
                    ns: NetNs::Path(PathBuf::from(format!("/proc/{pid}/ns/net"))),
                    hosts,
                    resolv,
                    links: Vec::new(),
                });
            }
            _ => {}
        }
        let links = legacy_links(&st, &c, self.cfg.bridge.is_none())?;
        let mut extra_hosts = c.extra_hosts.clone();
        extra_hosts.extend(links.iter().map(|(line, _)| line.clone()));
        let mut first_ip = None;
        let mut first_ip6 = None;
        let mut embedded = false;
        let mut made: Vec<String> = Vec::new();
        for a in &c.attach {
            if self.disabled_default(a) {
                // moby `connectToNetwork`: with `DisableBridge`, a container on the default
                // bridge is started with its networking disabled (loopback only, no
                // address, no DNS); it still joins its other networks. Its published ports
                // then have nothing to forward to and, as with dockerd, are not bound.
                continue;
            }
            let Some(r) = st.nets.get_mut(&a.network_id) else {
                // Undo this start's allocations.
                for id in &made {
                    if let Some(r) = st.nets.get_mut(id) {
                        r.endpoints.remove(cid);
                    }
                }
                return Err(NetError::NotFound(format!(
                    "network {} not found",
                    a.network_name
                )));
            };
            let ep = match Self::allocate(
                r,
                cid,
                &c.name,
                &a.aliases,
                a.ipv4,
                a.ipv6,
                a.mac.as_deref().or(c.mac.as_deref()),
            ) {
                Ok(ep) => ep,
                Err(e) => {
                    for id in &made {
                        if let Some(r) = st.nets.get_mut(id) {
                            r.endpoints.remove(cid);
                        }
                    }
                    return Err(e);
                }
            };
            made.push(a.network_id.clone());
            if first_ip.is_none() {
                first_ip6 = ep.ip6;
            }
            first_ip.get_or_insert(ep.ip);
            embedded |= r.name != DEFAULT;
        }
        drop(st);
        // Nothing is written yet: `plug` records the endpoints in the container's file
        // before the container runs; a start that fails before that leaves nothing behind.
        Ok(NetPlan {
            ns: NetNs::Private,
            hosts: crate::files::hosts(
                &c.hostname,
                &c.domainname,
                first_ip
                    .map(IpAddr::V4)
                    .into_iter()
                    .chain(first_ip6.map(IpAddr::V6)),
                &extra_hosts,
            ),
            resolv: crate::files::resolv_conf(&host_resolv, &dns, embedded),
            links: links.into_iter().map(|(_, l)| l).collect(),
        })
    }

    /// Step two, once the container's init (`pid`) exists: interfaces, ports, DNS.
    pub fn plug(&self, cid: &str, process: &ProcessHandle) -> Result<(), NetError> {
        self.wait_host_ready();
        let result = self.plug_inner(cid, process, None);
        if result.is_err() {
            self.unplug(cid);
        }
        result
    }

    /// `restore`: ports to bind again after a daemon restart (veths are already there).
    pub(super) fn plug_inner(
        &self,
        cid: &str,
        process: &ProcessHandle,
        restore: Option<&[settings::Bound]>,
    ) -> Result<(), NetError> {
        let pid = process.pid();
        let netns = || {
            process.ns("net").map_err(|e| {
                NetError::Conflict(format!("cannot open the network namespace of {cid}: {e}"))
            })
        };
        let (c, eps) = {
            let st = self.lock();
            let Some(c) = st.ctrs.get(cid).cloned() else {
                drop(st);
                return endpoint::loopback_up(pid, netns()?);
            };
            let eps: Vec<(NetRecord, Endpoint)> = c
                .attach
                .iter()
                .filter_map(|a| {
                    let r = st.nets.get(&a.network_id)?;
                    Some((r.without_endpoints(), r.endpoints.get(cid)?.clone()))
                })
                .collect();
            (c, eps)
        };
        if c.mode == "host" || c.mode.starts_with("container:") {
            return Ok(());
        }
        if restore.is_none() {
            let mut sandbox = endpoint::Sandbox::open(pid, netns()?)?;
            sandbox.loopback_up()?;
            for (i, (r, ep)) in eps.iter().enumerate() {
                let Some(subnet) = r.subnet else { continue };
                let ifname = format!("eth{i}");
                let gateway = if i == 0 && !r.internal {
                    r.gateway
                } else {
                    None
                };
                let mut plug = r.plug(ep, &ifname, subnet, gateway);
                plug.link_local = (c.attach.iter())
                    .find(|a| a.network_id == r.id)
                    .map(settings::Attach::link_local)
                    .unwrap_or_default();
                let veth = sandbox.plug(&plug)?;
                self.set_veth(&r.id, cid, &veth);
                self.emit(r, cid, "connect");
            }
        }
        let mut live = Live::default();
        let mut bound = Vec::new();
        if let Some((r, ep)) = eps.first() {
            // Ports published without a host address bind where the network says.
            let default_ip = r.host_binding_ipv4();
            let specs = match restore {
                Some(b) => b
                    .iter()
                    .map(|b| settings::PortSpec {
                        port: b.port,
                        proto: b.proto.clone(),
                        host_ip: b.host_ip.clone(),
                        host_port: b.host_port.to_string(),
                    })
                    .collect(),
                None => c.port_specs(),
            };
            // Whether `::` goes with 0.0.0.0 (asked once, only where it may).
            let v6 = (specs.iter().any(|p| p.host_ip.is_empty()) && default_ip.is_unspecified())
                .then(crate::proxy::ipv6_listenable)
                .unwrap_or(false);
            for p in specs {
                for (proxy, b) in start_proxy(&p, (ep.ip, ep.ip6), default_ip, v6)? {
                    live.proxies.push(proxy);
                    bound.push(b);
                }
            }
        }
        if eps.iter().any(|(r, _)| r.name != DEFAULT) {
            let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            let ups = crate::files::upstreams(&host_resolv, &c.dns_settings());
            let st = self.st.clone();
            let me = cid.to_string();
            let lookup: crate::dns::Lookup = Arc::new(move |name: &str| {
                resolve(&st.lock().unwrap_or_else(|e| e.into_inner()), &me, name)
            });
            live.dns = Some(crate::dns::serve(netns()?, lookup, ups)?);
        }
        let mut st = self.lock();
        st.live.insert(cid.to_string(), live);
        let endpoints = Some(endpoints_of(&st, cid));
        if let Some(c) = st.ctrs.get_mut(cid) {
            // A restore mostly finds the file as it was: it is written only if it changes
            // (an fsynced write per running container was most of a restart's time).
            let before = restore.and_then(|_| serde_json::to_vec(&*c).ok());
            c.pid = pid;
            c.bound = bound;
            c.endpoints = endpoints;
            let c = c.clone();
            drop(st);
            if before.is_none() || before != serde_json::to_vec(&c).ok() {
                self.save_ctr(&c);
            }
            if restore.is_none() && self.links_need_rules(&c) {
                self.sync_firewall()?;
            }
        }
        Ok(())
    }

    /// A `network connect`/`disconnect` event for container `cid` on `r`.
    pub(super) fn emit(&self, r: &NetRecord, cid: &str, action: &'static str) {
        (self.hooks.events)(NetEvent {
            action,
            network_id: r.id.clone(),
            network_name: r.name.clone(),
            driver: r.driver.clone(),
            container: cid.to_string(),
        });
    }

    /// Notes the host end of a plugged endpoint (written with the container's file).
    pub(super) fn set_veth(&self, net: &str, cid: &str, veth: &str) {
        let mut st = self.lock();
        if let Some(ep) = st.nets.get_mut(net).and_then(|r| r.endpoints.get_mut(cid)) {
            ep.veth = veth.to_string();
        }
    }

    /// Writes container `cid`'s file with its endpoints as they are now (after a
    /// `network connect` or `disconnect` while it runs).
    pub(super) fn save_ctr_endpoints(&self, cid: &str) {
        let c = {
            let mut st = self.lock();
            let endpoints = Some(endpoints_of(&st, cid));
            let Some(c) = st.ctrs.get_mut(cid) else {
                return;
            };
            c.endpoints = endpoints;
            c.clone()
        };
        self.save_ctr(&c);
    }

    /// After a daemon restart: the proxies and DNS of a container that still runs.
    pub fn restore(&self, cid: &str, process: &ProcessHandle) {
        let bound = self.lock().ctrs.get(cid).map(|c| c.bound.clone());
        let Some(bound) = bound else { return };
        // Published ports bind on the host: after its set-up (bridges, firewall). A
        // container without any does not wait for it (nor does the first ping).
        if !bound.is_empty() {
            self.wait_host_ready();
        }
        if let Err(e) = self.plug_inner(cid, process, Some(&bound)) {
            tracing::error!(id = cid, error = %e, "cannot restore the container's network");
        }
    }

    /// Drops endpoints of containers that no longer run (a daemon crash left them).
    pub fn forget_stale(&self, running: &[String]) {
        let changed: Vec<CtrNet> = {
            // A set: a `contains` on the list was quadratic at a restart with many running.
            let running: std::collections::HashSet<&str> =
                running.iter().map(String::as_str).collect();
            let mut st = self.lock();
            for r in st.nets.values_mut() {
                r.endpoints.retain(|cid, _| running.contains(cid.as_str()));
            }
            st.ctrs
                .values_mut()
                .filter(|c| !running.contains(c.id.as_str()))
                .filter(|c| {
                    c.pid != 0
                        || !c.bound.is_empty()
                        || c.endpoints.as_ref().is_some_and(|e| !e.is_empty())
                })
                .map(|c| {
                    c.pid = 0;
                    c.bound.clear();
                    c.endpoints = Some(BTreeMap::new());
                    c.clone()
                })
                .collect()
        };
        for c in changed {
            self.save_ctr(&c);
        }
    }

    /// A container stopped (or its start failed): close its ports and DNS, release its
    /// addresses, and queue its veths for removal (the reaper's doc says why not now).
    /// Safe to call more than once.
    pub fn unplug(&self, cid: &str) {
        self.wait_host_ready();
        let (live, veths, changed, ctr) = {
            let mut st = self.lock();
            let live = st.live.remove(cid);
            let mut veths = Vec::new();
            let changed: Vec<NetRecord> = st
                .nets
                .values_mut()
                .filter_map(|r| {
                    let ep = r.endpoints.remove(cid)?;
                    if !ep.veth.is_empty() {
                        veths.push(ep.veth);
                    }
                    Some(r.without_endpoints())
                })
                .collect();
            let ctr = st.ctrs.get_mut(cid).and_then(|c| {
                let plugged = c.pid != 0
                    || !c.bound.is_empty()
                    || c.endpoints.as_ref().is_some_and(|e| !e.is_empty());
                plugged.then(|| {
                    c.pid = 0;
                    c.bound.clear();
                    c.endpoints = Some(BTreeMap::new());
                    c.clone()
                })
            });
            (live, veths, changed, ctr)
        };
        drop(live);
        for veth in veths {
            self.reaper.remove(veth);
        }
        for r in &changed {
            self.emit(r, cid, "disconnect");
        }
        if let Some(c) = ctr {
            self.save_ctr(&c);
            if self.links_need_rules(&c) {
                if let Err(e) = self.sync_firewall() {
                    tracing::warn!(id = cid, error = %e, "cannot close the links' ports");
                }
            }
        }
    }

    /// Whether `c` has legacy links on a default bridge without icc (their ports are
    /// firewall rules, made and removed with the container).
    fn links_need_rules(&self, c: &CtrNet) -> bool {
        !c.legacy_links.is_empty()
            && (self.lock().nets.values()).any(|r| r.name == DEFAULT && r.is_bridge() && !r.icc())
    }

    /// `docker rename`: the container's name in its settings and on its endpoints, so the
    /// embedded DNS answers the new name and no longer the old one, and `DNSNames` shows it
    /// (moby `daemon/rename.go` updates the endpoints' DNS names the same way).
    pub fn rename(&self, cid: &str, name: &str) {
        let name = name.trim_start_matches('/');
        let linking = self.relink(cid, name);
        for c in linking {
            self.save_ctr(&c);
        }
        let c = {
            let mut st = self.lock();
            for ep in st
                .nets
                .values_mut()
                .filter_map(|r| r.endpoints.get_mut(cid))
            {
                ep.name = name.to_string();
            }
            let endpoints = endpoints_of(&st, cid);
            let Some(c) = st.ctrs.get_mut(cid) else {
                return;
            };
            c.name = name.to_string();
            if c.endpoints.is_some() || !endpoints.is_empty() {
                c.endpoints = Some(endpoints);
            }
            c.clone()
        };
        self.save_ctr(&c);
    }

    /// Container `cid` is renamed `name`: the legacy links naming it follow it (moby links
    /// by ID). The containers whose links changed.
    fn relink(&self, cid: &str, name: &str) -> Vec<CtrNet> {
        let mut st = self.lock();
        let Some(old) = st.ctrs.get(cid).map(|c| c.name.clone()) else {
            return Vec::new();
        };
        let mut changed = Vec::new();
        for c in st.ctrs.values_mut() {
            let mut hit = false;
            for (child, _) in c.legacy_links.iter_mut().filter(|(child, _)| *child == old) {
                *child = name.to_string();
                hit = true;
            }
            if hit {
                changed.push(c.clone());
            }
        }
        changed
    }

    /// Legacy link `alias` of container `cid` is removed: its next start has neither its
    /// `/etc/hosts` entry nor its environment. While the container runs, the names of the
    /// entry its `/etc/hosts` has for the link (`alias hostname [name]`), for the engine
    /// to take out at once, as dockerd rewrites a running container's hosts file.
    pub fn unlink(&self, cid: &str, alias: &str) -> Option<String> {
        let (c, names) = {
            let mut st = self.lock();
            let names = st.ctrs.get(cid).filter(|c| c.pid != 0).and_then(|c| {
                let (child, _) = c.legacy_links.iter().find(|(_, a)| a == alias)?;
                let peer = st.ctrs.values().find(|x| x.name == *child)?;
                Some(link_names(alias, peer))
            });
            let c = st.ctrs.get_mut(cid)?;
            let before = c.legacy_links.len();
            c.legacy_links.retain(|(_, a)| a != alias);
            if c.legacy_links.len() == before {
                return None;
            }
            (c.clone(), names)
        };
        self.save_ctr(&c);
        names
    }

    /// The container is removed: drop its settings.
    pub fn forget(&self, cid: &str) {
        self.unplug(cid);
        if self.lock().ctrs.remove(cid).is_some() {
            let p = self.ctr_path(cid);
            if let Err(e) = std::fs::remove_file(&p) {
                tracing::warn!(file = %p.display(), error = %e, "cannot remove");
            }
        }
    }

    /// Validates and stores a new container's network settings (`container_create`).
    pub fn register(&self, req: &ContainerRequest) -> Result<(), NetError> {
        let cid = req.id.as_str();
        let c = {
            let st = self.lock();
            settings::from_request(&st.nets, req)?
        };
        write_json(&self.ctr_path(cid), &c)?;
        self.lock().ctrs.insert(cid.to_string(), c);
        Ok(())
    }
}

/// The legacy links of `c` (on the default bridge): each linked container, running there,
/// with its `/etc/hosts` entry (`alias hostname [name]:ip`, as `--add-host` gives them;
/// moby `getSandboxOptions`). A linked container that is gone or stopped fails the start
/// with dockerd's words; one without an address on the default bridge (`--bridge=none`)
/// gives no entry.
fn legacy_links(
    st: &State,
    c: &CtrNet,
    no_default_bridge: bool,
) -> Result<Vec<(String, LinkedPeer)>, NetError> {
    let default = st.nets.values().find(|r| r.name == DEFAULT);
    let mut out = Vec::new();
    for (child, alias) in &c.legacy_links {
        let Some(peer) = st.ctrs.values().find(|x| x.name == *child) else {
            return Err(NetError::InvalidArgument(format!(
                "could not get container for {child}: No such container: {child}"
            )));
        };
        if peer.pid == 0 {
            return Err(NetError::Other(format!(
                "Cannot link to a non running container: /{child} AS /{}/{alias}",
                c.name
            )));
        }
        let ip = default
            .and_then(|r| r.endpoints.get(&peer.id))
            .map(|e| e.ip);
        let Some(ip) = ip.filter(|_| !no_default_bridge) else {
            continue;
        };
        let names = link_names(alias, peer);
        let link = LinkedPeer {
            alias: alias.clone(),
            id: peer.id.clone(),
            name: peer.name.clone(),
            ip,
            exposed: peer.exposed.clone(),
        };
        out.push((format!("{names}:{ip}"), link));
    }
    Ok(out)
}

/// The names of a legacy link's `/etc/hosts` entry: `alias hostname`, and the linked
/// container's name where the alias is another.
fn link_names(alias: &str, peer: &CtrNet) -> String {
    let mut names = format!("{alias} {}", peer.hostname);
    if alias != peer.name {
        names += &format!(" {}", peer.name);
    }
    names
}

/// Container `cid`'s endpoints, by network ID.
fn endpoints_of(st: &State, cid: &str) -> BTreeMap<String, Endpoint> {
    st.nets
        .values()
        .filter_map(|r| Some((r.id.clone(), r.endpoints.get(cid)?.clone())))
        .collect()
}

/// The embedded DNS's view: names and aliases of containers sharing a user network with
/// `cid` (and their 12-character IDs), and `cid`'s own link aliases there.
pub(super) fn resolve(st: &State, cid: &str, name: &str) -> Option<Vec<IpAddr>> {
    let mut out = Vec::new();
    for r in st
        .nets
        .values()
        .filter(|r| r.name != DEFAULT && r.endpoints.contains_key(cid))
    {
        let bare = name
            .strip_suffix(&format!(".{}", r.name.to_ascii_lowercase()))
            .unwrap_or(name);
        // This container's own links on this network: alias → container name.
        let linked = st
            .ctrs
            .get(cid)
            .and_then(|c| c.attach.iter().find(|a| a.network_id == r.id))
            .and_then(|a| a.links.iter().find(|(_, al)| al.eq_ignore_ascii_case(bare)))
            .map(|(target, _)| target.as_str());
        for (id, ep) in &r.endpoints {
            let hit = ep.name.eq_ignore_ascii_case(bare)
                || linked.is_some_and(|t| ep.name.eq_ignore_ascii_case(t))
                || ep.aliases.iter().any(|a| a.eq_ignore_ascii_case(bare))
                || (bare.len() == 12 && id.starts_with(bare));
            let ips = [Some(IpAddr::V4(ep.ip)), ep.ip6.map(IpAddr::V6)];
            for ip in ips.into_iter().flatten().filter(|_| hit) {
                if !out.contains(&ip) {
                    out.push(ip);
                }
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// On the default bridge with `--fixed-cidr-v6` of at most /80, a container's IPv6
/// address is the subnet's prefix with its MAC address in the low 48 bits, as dockerd
/// gives it (`fd00:1::242:ac11:2` for `02:42:ac:11:00:02`); `None` elsewhere, or when
/// that address is taken (then the next free one is handed out).
fn from_mac(r: &NetRecord, mac: &str) -> Option<Ipv6Addr> {
    let (subnet, gw) = r.v6().filter(|_| r.name == DEFAULT)?;
    if subnet.prefix() > 80 {
        return None;
    }
    let mut bits: u128 = 0;
    let mut n = 0;
    for part in mac.split(':') {
        bits = (bits << 8) | u128::from(u8::from_str_radix(part, 16).ok()?);
        n += 1;
    }
    let ip = Ipv6Addr::from(u128::from(subnet.addr()) | bits);
    let taken = ip == gw || r.endpoints.values().any(|e| e.ip6 == Some(ip));
    (n == 6 && !taken).then_some(ip)
}

/// Binds the published port `p` and relays it to the container's addresses `ips` (IPv4,
/// and IPv6 where its network has it). Without a host address it binds `default_ip`
/// (the network's `host_binding_ipv4`, 0.0.0.0 unless set) and, where that is 0.0.0.0
/// and the host has IPv6 (`v6`), `::` on the same port as well, as dockerd 20.10 does
/// (libnetwork `allocatePortsInternal`: two bindings in `NetworkSettings.Ports`). An
/// IPv6 binding (`::`, or a host address such as `-p [::1]:8080:80`) relays to the
/// container's IPv6 address, or to its IPv4 address when it has none, as docker-proxy
/// does (the container sees the bridge's IPv6 or IPv4 address as the peer).
/// From a range, the first port free on every address; an ephemeral port (no host
/// port) is asked of the kernel for the first address and taken on the others, a few
/// times over should another address have it taken.
fn start_proxy(
    p: &settings::PortSpec,
    ips: (Ipv4Addr, Option<Ipv6Addr>),
    default_ip: Ipv4Addr,
    v6: bool,
) -> Result<Vec<(Proxy, settings::Bound)>, NetError> {
    let hosts: Vec<IpAddr> = if p.host_ip.is_empty() {
        let mut h = vec![IpAddr::V4(default_ip)];
        if default_ip.is_unspecified() && v6 {
            h.push(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        }
        h
    } else {
        vec![p.host_ip.parse().map_err(|_| {
            NetError::InvalidArgument(format!("invalid host IP address: {}", p.host_ip))
        })?]
    };
    let (lo, hi) = settings::port_range(&p.host_port)?;
    let (ip, ip6) = ips;
    let target = |host: &IpAddr| match (host, ip6) {
        (IpAddr::V6(_), Some(ip6)) => SocketAddr::from((ip6, p.port)),
        _ => SocketAddr::from((ip, p.port)),
    };
    let tries: Box<dyn Iterator<Item = u16>> = if hi == 0 {
        Box::new(std::iter::repeat_n(0, EPHEMERAL_TRIES))
    } else {
        Box::new(lo..=hi)
    };
    let mut last = None;
    for hp in tries {
        match bind_all(&p.proto, &hosts, hp, target) {
            Ok(proxies) => {
                return Ok(proxies
                    .into_iter()
                    .map(|proxy| {
                        let b = settings::Bound {
                            port: p.port,
                            proto: p.proto.clone(),
                            host_ip: proxy.host.ip().to_string(),
                            host_port: proxy.host.port(),
                        };
                        (proxy, b)
                    })
                    .collect());
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| NetError::InvalidArgument("empty port range".into())))
}

/// Attempts at an ephemeral port free on every address of a binding.
const EPHEMERAL_TRIES: usize = 8;

/// One proxy per host address in `hosts`, all on port `port` (0: the port the kernel
/// gives the first), each relaying to `target(host)`; none when one of them cannot bind.
fn bind_all(
    proto: &str,
    hosts: &[IpAddr],
    mut port: u16,
    target: impl Fn(&IpAddr) -> SocketAddr,
) -> Result<Vec<Proxy>, NetError> {
    let mut out: Vec<Proxy> = Vec::with_capacity(hosts.len());
    for h in hosts {
        let proxy = crate::proxy::start(proto, SocketAddr::from((*h, port)), target(h))?;
        port = proxy.host.port();
        out.push(proxy);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(host_ip: &str, host_port: &str) -> settings::PortSpec {
        settings::PortSpec {
            port: 80,
            proto: "tcp".into(),
            host_ip: host_ip.into(),
            host_port: host_port.into(),
        }
    }

    fn bindings(got: &[(Proxy, settings::Bound)]) -> Vec<(String, u16)> {
        got.iter()
            .map(|(_, b)| (b.host_ip.clone(), b.host_port))
            .collect()
    }

    #[tokio::test]
    async fn a_port_without_host_address_binds_both_families_on_one_port() {
        let target = Ipv4Addr::LOCALHOST;
        let got = start_proxy(&spec("", ""), (target, None), Ipv4Addr::UNSPECIFIED, true).unwrap();
        let port = got[0].1.host_port;
        assert_eq!(
            bindings(&got),
            [("0.0.0.0".to_string(), port), ("::".to_string(), port)]
        );
        // Each family's own socket: `::` does not hold the IPv4 port (IPV6_V6ONLY).
        assert!(got[1].0.host.is_ipv6());
        drop(got);
        // Without IPv6 on the host, or with a host address: one binding.
        let got = start_proxy(&spec("", ""), (target, None), Ipv4Addr::UNSPECIFIED, false).unwrap();
        assert_eq!(bindings(&got).len(), 1);
        let got = start_proxy(
            &spec("127.0.0.1", ""),
            (target, None),
            Ipv4Addr::UNSPECIFIED,
            true,
        )
        .unwrap();
        assert_eq!(
            bindings(&got)[..],
            [("127.0.0.1".to_string(), got[0].1.host_port)]
        );
        // host_binding_ipv4 set to an address: that address only.
        let got = start_proxy(&spec("", ""), (target, None), Ipv4Addr::LOCALHOST, true).unwrap();
        assert_eq!(
            bindings(&got)[..],
            [("127.0.0.1".to_string(), got[0].1.host_port)]
        );
    }

    /// A server on one port of 127.0.0.1 and of ::1 that answers which of the two it is
    /// (a container's IPv4 and IPv6 addresses); its port.
    async fn tagged_servers() -> u16 {
        use tokio::io::AsyncWriteExt;
        for _ in 0..20 {
            let v4 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = v4.local_addr().unwrap().port();
            let Ok(v6) = tokio::net::TcpListener::bind(("::1", port)).await else {
                continue;
            };
            for (l, tag) in [(v4, "v4"), (v6, "v6")] {
                tokio::spawn(async move {
                    while let Ok((mut c, _)) = l.accept().await {
                        let _ = c.write_all(tag.as_bytes()).await;
                    }
                });
            }
            return port;
        }
        panic!("no port free on both 127.0.0.1 and ::1");
    }

    /// What the server behind `at` says.
    async fn answer(at: SocketAddr) -> String {
        use tokio::io::AsyncReadExt;
        let mut c = tokio::net::TcpStream::connect(at).await.unwrap();
        let mut s = String::new();
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(20), c.read_to_string(&mut s));
        read.await.unwrap().unwrap();
        s
    }

    /// dockerd's `allocatePortsInternal`: an IPv6 binding relays to the container's IPv6
    /// address where it has one, to its IPv4 address otherwise; IPv4 bindings to IPv4.
    #[tokio::test]
    async fn ipv6_bindings_relay_to_the_containers_ipv6_address() {
        let port = tagged_servers().await;
        let both = (Ipv4Addr::LOCALHOST, Some(Ipv6Addr::LOCALHOST));
        let at =
            |ip: IpAddr, b: &[(Proxy, settings::Bound)]| SocketAddr::from((ip, b[0].1.host_port));
        let v4: IpAddr = Ipv4Addr::LOCALHOST.into();
        let v6: IpAddr = Ipv6Addr::LOCALHOST.into();
        let mut p = spec("", "");
        p.port = port;
        let got = start_proxy(&p, both, Ipv4Addr::UNSPECIFIED, true).unwrap();
        assert_eq!(answer(at(v4, &got)).await, "v4");
        assert_eq!(answer(at(v6, &got)).await, "v6");
        drop(got);
        // An IPv6 host address: to the IPv6 address too; an IPv4 one to IPv4.
        p.host_ip = "::1".into();
        let got = start_proxy(&p, both, Ipv4Addr::UNSPECIFIED, true).unwrap();
        assert_eq!(answer(at(v6, &got)).await, "v6");
        drop(got);
        p.host_ip = "127.0.0.1".into();
        let got = start_proxy(&p, both, Ipv4Addr::UNSPECIFIED, true).unwrap();
        assert_eq!(answer(at(v4, &got)).await, "v4");
        drop(got);
        // A container without IPv6: `::` relays to its IPv4 address (docker-proxy's).
        p.host_ip = String::new();
        let got =
            start_proxy(&p, (Ipv4Addr::LOCALHOST, None), Ipv4Addr::UNSPECIFIED, true).unwrap();
        assert_eq!(answer(at(v6, &got)).await, "v4");
        assert_eq!(answer(at(v4, &got)).await, "v4");
    }

    /// dockerd 20.10 with `--fixed-cidr-v6 fd77:1::/64`: `02:42:ac:11:00:02` is
    /// `fd77:1::242:ac11:2`.
    #[test]
    fn fixed_cidr_v6_addresses_come_from_the_mac() {
        let mut r = NetRecord {
            name: DEFAULT.into(),
            ipv6: true,
            subnet6: Some("fd77:1::/64".parse().unwrap()),
            gateway6: Some("fd77:1::1".parse().unwrap()),
            ..Default::default()
        };
        let want: Ipv6Addr = "fd77:1::242:ac11:2".parse().unwrap();
        assert_eq!(from_mac(&r, "02:42:ac:11:00:02"), Some(want));
        for bad in [
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "zz:42:ac:11:00:02",
            "",
        ] {
            assert_eq!(from_mac(&r, bad), None, "{bad}");
        }
        r.subnet6 = Some("fd77:1::/96".parse().unwrap());
        assert_eq!(from_mac(&r, "02:42:ac:11:00:02"), None, "narrower than /80");
        r.subnet6 = Some("fd77:1::/64".parse().unwrap());
        r.name = "user".into();
        assert_eq!(
            from_mac(&r, "02:42:ac:11:00:02"),
            None,
            "the default bridge only"
        );
    }

    #[tokio::test]
    async fn a_range_takes_the_first_port_free_on_both_families() {
        // A port of the range taken on IPv6 only: the next one serves both.
        let taken = crate::proxy::start(
            "tcp",
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
            SocketAddr::from((Ipv4Addr::LOCALHOST, 9)),
        )
        .unwrap();
        let p = taken.host.port();
        let Some(next) = p.checked_add(1) else { return };
        let got = start_proxy(
            &spec("", &format!("{p}-{next}")),
            (Ipv4Addr::LOCALHOST, None),
            Ipv4Addr::UNSPECIFIED,
            true,
        );
        match got {
            Ok(got) => assert_eq!(
                bindings(&got),
                [("0.0.0.0".to_string(), next), ("::".to_string(), next)]
            ),
            // Only if someone else has the next port on one family.
            Err(e) => {
                assert!(e.to_string().contains("address already in use"), "{e}");
                let free = |ip: IpAddr| std::net::TcpListener::bind((ip, next)).is_ok();
                assert!(!free(Ipv4Addr::UNSPECIFIED.into()) || !free(Ipv6Addr::UNSPECIFIED.into()));
            }
        }
    }
}
