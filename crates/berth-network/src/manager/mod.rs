//! The orchestration of container networking: the network records
//! (`<data-root>/network/networks/<id>.json`), each container's network settings
//! (`<data-root>/network/containers/<id>.json`), IPAM bookkeeping, and the steps a
//! container's start and stop take: `prepare` (addresses, `/etc/hosts`, `resolv.conf`,
//! which netns) before the runtime creates the container, `plug` (veths, published ports,
//! embedded DNS) once its init exists, `unplug` when it stops; `connect` and `disconnect`
//! of a container that runs; creating and removing a network's bridge and firewall rules.
//! The engine reaches all of it through [`crate::NetworkDriver`]; the Docker API (names,
//! filters, JSON, events) stays the engine's.
//!
//! The IPAM state is the endpoints of running containers. Each container's file holds its
//! own (with its pid, written once by `plug` before the container runs and once by
//! `unplug`), and the network records' endpoint maps are rebuilt from them at start-up:
//! so a start and a stop on a bridge network cost no more writes than with
//! `--network none`, and a network record is written only when the network changes.

mod create;
mod lifecycle;
mod ops;
mod settings;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use create::{
    create_ipam, create_ipam6, parse_bool, CreateRequest, NetAddresses, NetAddresses6,
};
pub use ops::{ContainerView, EndpointStatus, NetworkRef};
pub use settings::{
    from_request, parse_legacy_link, parse_port_key, port_range, Attach, Bound, ContainerRequest,
    CtrNet, PortSpec,
};

use crate::dns::DnsServer;
use crate::firewall::{BridgeRules, Firewall};
use crate::ipam::{self, Pool};
use crate::proxy::Proxy;
use crate::{bridge, endpoint, Ipv4Net, Ipv6Net, NetError};

/// `--bridge`, `--bip`, `--iptables`, `--ip-forward`, `--mtu`, `default-address-pools`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The default bridge's Linux name (created if missing). `None` is `--bridge=none`
    /// (moby's `DisableBridge`): no default `bridge` network at all; containers left on it
    /// start with loopback only.
    pub bridge: Option<String>,
    /// The default bridge's gateway and subnet (`172.17.0.1/16`); `None`: the first free
    /// subnet of the pools.
    pub bip: Option<String>,
    /// Where new networks' subnets come from; empty: Docker's defaults.
    pub pools: Vec<Pool>,
    pub iptables: bool,
    /// `--ip-forward`: IPv4 forwarding on at start, IPv6 forwarding once a network has an
    /// IPv6 subnet (as dockerd's bridge driver).
    pub ip_forward: bool,
    /// `--ipv6`: the default bridge has `EnableIPv6`, with `fixed_cidr_v6` its IPv6 subnet
    /// (`--fixed-cidr-v6`; the gateway is its first address, as dockerd's).
    pub ipv6: bool,
    pub fixed_cidr_v6: Option<Ipv6Net>,
    /// `--icc`: containers on the default bridge reach each other (false: only through
    /// the exposed ports of their legacy links).
    pub icc: bool,
    pub mtu: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bridge: Some("berth0".into()),
            bip: None,
            pools: Vec::new(),
            iptables: true,
            ip_forward: true,
            ipv6: false,
            fixed_cidr_v6: None,
            icc: true,
            mtu: 1500,
        }
    }
}

/// What happened to a container's endpoint, for the engine's event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetEvent {
    /// `connect` or `disconnect`.
    pub action: &'static str,
    pub network_id: String,
    pub network_name: String,
    /// The network's driver (`bridge`).
    pub driver: String,
    pub container: String,
}

/// What the manager needs from its owner: the time for new records, and where events go.
#[derive(Clone)]
pub struct Hooks {
    /// The current time as RFC 3339 (a network's `Created`).
    pub now: fn() -> String,
    pub events: Arc<dyn Fn(NetEvent) + Send + Sync>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks").finish_non_exhaustive()
    }
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            now: String::new,
            events: Arc::new(|_| {}),
        }
    }
}

/// The default bridge network's name.
pub const DEFAULT: &str = "bridge";

/// One network, as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetRecord {
    pub id: String,
    pub name: String,
    /// `bridge`, `host` or `null`.
    pub driver: String,
    pub created: String,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub ip_range: Option<Ipv4Net>,
    /// `AuxiliaryAddresses`: reserved, never handed out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aux: BTreeMap<String, Ipv4Addr>,
    /// Whether the client gave the IPAM config (then inspect shows only what it gave).
    #[serde(default)]
    pub user_ipam: bool,
    #[serde(default)]
    pub gateway_given: bool,
    pub internal: bool,
    pub attachable: bool,
    pub labels: Map<String, Value>,
    pub options: Map<String, Value>,
    /// The Linux bridge (bridge driver only).
    pub bridge: String,
    pub mtu: u32,
    /// Container ID → endpoint, for containers that run on this network. Not written: the
    /// containers' files hold them (read here only from records of older versions).
    #[serde(default, skip_serializing)]
    pub endpoints: BTreeMap<String, Endpoint>,
    /// The address handed out last (allocation continues after it).
    #[serde(default)]
    pub last_ip: Option<Ipv4Addr>,
    /// `EnableIPv6`: containers get an address of `subnet6` too.
    #[serde(default)]
    pub ipv6: bool,
    /// The IPv6 IPAM config (kept and shown without `EnableIPv6`, as dockerd does, but
    /// then unused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Ipv6Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
    #[serde(default)]
    pub gateway6_given: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range6: Option<Ipv6Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ip6: Option<Ipv6Addr>,
}

/// The bridge driver's option naming the default address of published ports.
pub const HOST_BINDING_IPV4: &str = "com.docker.network.bridge.host_binding_ipv4";

impl NetRecord {
    /// A copy without the endpoints of the containers on it: what a plug needs of the
    /// network. The copy of the whole record cost one endpoint per container on every plug
    /// and restore (quadratic in the containers at a daemon restart).
    pub fn without_endpoints(&self) -> NetRecord {
        let NetRecord {
            id,
            name,
            driver,
            created,
            subnet,
            gateway,
            ip_range,
            aux,
            user_ipam,
            gateway_given,
            internal,
            attachable,
            labels,
            options,
            bridge,
            mtu,
            endpoints: _,
            last_ip,
            ipv6,
            subnet6,
            gateway6,
            gateway6_given,
            ip_range6,
            last_ip6,
        } = self;
        NetRecord {
            id: id.clone(),
            name: name.clone(),
            driver: driver.clone(),
            created: created.clone(),
            subnet: *subnet,
            gateway: *gateway,
            ip_range: *ip_range,
            aux: aux.clone(),
            user_ipam: *user_ipam,
            gateway_given: *gateway_given,
            internal: *internal,
            attachable: *attachable,
            labels: labels.clone(),
            options: options.clone(),
            bridge: bridge.clone(),
            mtu: *mtu,
            endpoints: BTreeMap::new(),
            last_ip: *last_ip,
            ipv6: *ipv6,
            subnet6: *subnet6,
            gateway6: *gateway6,
            gateway6_given: *gateway6_given,
            ip_range6: *ip_range6,
            last_ip6: *last_ip6,
        }
    }

    pub fn is_bridge(&self) -> bool {
        self.driver == "bridge"
    }

    /// The IPv6 subnet and gateway in use: only with `EnableIPv6`.
    pub fn v6(&self) -> Option<(Ipv6Net, Ipv6Addr)> {
        self.subnet6.zip(self.gateway6).filter(|_| self.ipv6)
    }

    fn rules(&self) -> Option<BridgeRules> {
        Some(BridgeRules {
            bridge: self.bridge.clone(),
            subnet: self.subnet?,
            subnet6: self.v6().map(|(s, _)| s),
            internal: self.internal,
            masquerade: self.bool_option("com.docker.network.bridge.enable_ip_masquerade"),
            icc: self.icc(),
            links: Vec::new(),
        })
    }

    /// `com.docker.network.bridge.enable_icc`.
    fn icc(&self) -> bool {
        self.bool_option("com.docker.network.bridge.enable_icc")
    }

    /// `com.docker.network.bridge.host_binding_ipv4`: where ports published without a
    /// host address bind (create refuses an unreadable one; `0.0.0.0` otherwise).
    pub fn host_binding_ipv4(&self) -> Ipv4Addr {
        self.options
            .get(HOST_BINDING_IPV4)
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    /// A boolean driver option (Go `strconv.ParseBool`'s words); absent or unreadable is
    /// `true` (create refuses an unreadable one).
    fn bool_option(&self, key: &str) -> bool {
        self.options
            .get(key)
            .and_then(Value::as_str)
            .and_then(parse_bool)
            .unwrap_or(true)
    }
}

impl NetRecord {
    /// What plugging endpoint `ep` of this network into a container as `ifname` takes.
    fn plug<'a>(
        &'a self,
        ep: &'a Endpoint,
        ifname: &'a str,
        subnet: Ipv4Net,
        gateway: Option<Ipv4Addr>,
    ) -> endpoint::Plug<'a> {
        endpoint::Plug {
            bridge: &self.bridge,
            ifname,
            ip: ep.ip,
            prefix: subnet.prefix(),
            mac: &ep.mac,
            mtu: self.mtu,
            gateway,
            ip6: ep.ip6.zip(self.v6().map(|(s, _)| s.prefix())),
            gateway6: self.v6().map(|(_, g)| g).filter(|_| gateway.is_some()),
            link_local: Vec::new(),
        }
    }
}

/// A container's endpoint on one network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub endpoint_id: String,
    pub ip: Ipv4Addr,
    pub mac: String,
    /// The container's name, without `/`.
    pub name: String,
    pub aliases: Vec<String>,
    /// The host end of the veth, once plugged.
    #[serde(default)]
    pub veth: String,
    /// Its IPv6 address, on a network with `EnableIPv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
}

/// What a running container holds in the daemon: its proxies and DNS server.
#[derive(Debug, Default)]
struct Live {
    proxies: Vec<Proxy>,
    dns: Option<DnsServer>,
}

#[derive(Debug, Default)]
struct State {
    nets: BTreeMap<String, NetRecord>,
    ctrs: HashMap<String, CtrNet>,
    live: HashMap<String, Live>,
}

/// Which network namespace a container runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetNs {
    /// Its own (made by the runtime).
    Private,
    /// The host's.
    Host,
    /// Another container's (`/proc/<pid>/ns/net`).
    Path(PathBuf),
}

/// What the runtime needs from the network for one start.
#[derive(Debug, Clone)]
pub struct NetPlan {
    pub ns: NetNs,
    pub hosts: String,
    pub resolv: String,
    /// The containers its legacy links (`HostConfig.Links` on the default bridge) name, as
    /// they run now (their `/etc/hosts` entries are in `hosts`; the engine adds the
    /// environment, which needs the linked container's own).
    pub links: Vec<LinkedPeer>,
}

/// A container a legacy link names, running on the default bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedPeer {
    /// The alias the link gives it.
    pub alias: String,
    /// Its container ID and name (without `/`).
    pub id: String,
    pub name: String,
    /// Its address on the default bridge.
    pub ip: Ipv4Addr,
    /// Its exposed ports (port, protocol).
    pub exposed: Vec<(u16, String)>,
}

/// The real network driver: bridges, veths, iptables, proxies and DNS on this host.
#[derive(Debug)]
pub struct Manager {
    dir: PathBuf,
    cfg: Config,
    fw: Firewall,
    /// Whether our chains may exist; held while they are rewritten, so that two syncs
    /// apply in the order they read the networks.
    fw_live: Mutex<FwLive>,
    st: Arc<Mutex<State>>,
    hooks: Hooks,
    /// Set once the bridges and the firewall are brought up (in the background at start,
    /// so the API answers first); everything that touches them waits for it.
    host_ready: HostReady,
    /// Removes stopped containers' veths off the stop's path.
    reaper: endpoint::Reaper,
}

/// Whether our iptables and ip6tables chains may exist.
#[derive(Debug)]
struct FwLive {
    v4: bool,
    v6: bool,
}

/// A one-way latch: [`HostReady::wait`] returns once [`HostReady::set`] was called.
#[derive(Debug, Default)]
struct HostReady {
    done: Mutex<bool>,
    cv: std::sync::Condvar,
}

impl HostReady {
    fn set(&self) {
        *self.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }

    fn wait(&self) {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        while !*done {
            done = self.cv.wait(done).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// `bytes` random bytes in hex (IDs of networks and endpoints).
pub fn random_hex(bytes: usize) -> Result<String, NetError> {
    let mut s = String::new();
    while s.len() < bytes * 2 {
        let b =
            berth_sys::host::random_bytes().map_err(NetError::io("cannot read random bytes"))?;
        for x in b {
            s.push_str(&format!("{x:02x}"));
        }
    }
    s.truncate(bytes * 2);
    Ok(s)
}

/// What an earlier run with other bridge flags left on the host.
#[derive(Debug, Default)]
struct Leftovers {
    /// Its default bridge, gone with `--bridge=none`.
    bridge: Option<String>,
    /// The tag of its chains (see [`firewall_tag`]).
    chains: Option<String>,
}

impl Leftovers {
    /// An earlier default bridge: the interface and the chains named after it.
    fn default_bridge(name: String) -> Self {
        let name = Some(name).filter(|b| !b.is_empty());
        Leftovers {
            chains: name.clone(),
            bridge: name,
        }
    }

    /// Best effort: what cannot be removed is logged.
    fn remove(self, iptables: bool) {
        if let Some(b) = &self.bridge {
            if let Err(e) = bridge::delete(b) {
                tracing::warn!(bridge = %b, error = %e, "cannot remove the old default bridge");
            }
        }
        if let Some(tag) = &self.chains {
            let fw = Firewall::new(tag, iptables);
            for e in [fw.teardown(), fw.teardown6()]
                .into_iter()
                .filter_map(Result::err)
            {
                tracing::warn!(chains = %tag, error = %e, "cannot remove an earlier run's chains");
            }
        }
    }
}

/// What names this daemon's iptables chains (`BERTH-*-<tag>`): its default bridge, or with
/// `--bridge=none` `none-` and the FNV-1a hash of its data root, so that two daemons (each
/// has its own data root) still never share a chain, and a restart finds its own again.
fn firewall_tag(bridge: Option<&str>, data_root: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    match bridge {
        Some(b) => b.to_string(),
        None => {
            let h = data_root
                .as_os_str()
                .as_bytes()
                .iter()
                .fold(0x811c_9dc5_u32, |h, b| {
                    (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
                });
            format!("none-{h:08x}")
        }
    }
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<(), NetError> {
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| NetError::Other(e.to_string()))?;
    berth_sys::fs::atomic_write(path, &bytes, 0o600)
        .map_err(NetError::io(format!("cannot write {}", path.display())))
}

fn read_dir_json<T: for<'de> Deserialize<'de>>(dir: &Path) -> Vec<T> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| {
            let r = std::fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            if r.is_none() {
                tracing::warn!(file = %e.path().display(), "ignoring an unreadable network file");
            }
            r
        })
        .collect()
}

impl Manager {
    /// Loads the records, makes the predefined networks, and brings every bridge and the
    /// firewall back to what the records say (a reboot or a crash may have lost them).
    /// Blocking (files, and a thread started for the host set-up).
    pub fn open(data_root: &Path, cfg: Config, hooks: Hooks) -> Result<Arc<Manager>, NetError> {
        let dir = data_root.join("network");
        for d in ["networks", "containers"] {
            let p = dir.join(d);
            std::fs::create_dir_all(&p)
                .map_err(NetError::io(format!("cannot create {}", p.display())))?;
        }
        let mut st = State::default();
        for r in read_dir_json::<NetRecord>(&dir.join("networks")) {
            st.nets.insert(r.id.clone(), r);
        }
        for c in read_dir_json::<CtrNet>(&dir.join("containers")) {
            st.ctrs.insert(c.id.clone(), c);
        }
        rebuild_endpoints(&mut st);
        let fw = Firewall::new(
            &firewall_tag(cfg.bridge.as_deref(), data_root),
            cfg.iptables,
        );
        let n = Manager {
            dir,
            cfg,
            fw,
            // Unknown at start: a sync with no bridge network removes what may be left.
            fw_live: Mutex::new(FwLive { v4: true, v6: true }),
            st: Arc::new(Mutex::new(st)),
            hooks,
            host_ready: HostReady::default(),
            reaper: endpoint::Reaper::start()?,
        };
        let leftovers = n.ensure_predefined(data_root)?;
        let n = Arc::new(n);
        let bg = n.clone();
        std::thread::Builder::new()
            .name("network-setup".into())
            .spawn(move || {
                leftovers.remove(bg.cfg.iptables);
                bg.bring_up_host();
                bg.host_ready.set();
            })
            .map_err(NetError::io("cannot start network set-up"))?;
        Ok(n)
    }

    /// ip_forward, every bridge the records name, and the firewall chains.
    fn bring_up_host(&self) {
        if self.cfg.ip_forward {
            if let Err(e) = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
                tracing::warn!(error = %e, "cannot enable IPv4 forwarding");
            }
        }
        let bridges: Vec<NetRecord> = self.lock().nets.values().cloned().collect();
        if bridges.iter().any(|r| r.v6().is_some()) {
            self.ipv6_forwarding();
        }
        for r in bridges.iter().filter(|r| r.is_bridge()) {
            if let Err(e) = bridge::ensure(
                &r.bridge,
                r.gateway.zip(r.subnet.map(|s| s.prefix())),
                r.v6().map(|(s, g)| (g, s.prefix())),
                Some(r.mtu),
            ) {
                tracing::error!(network = %r.name, error = %e, "cannot set up the bridge");
            }
        }
        if let Err(e) = self.sync_firewall_now() {
            tracing::error!(error = %e, "cannot set up the firewall");
        }
        tracing::debug!("bridges and firewall ready");
    }

    /// With `--ip-forward` (the default), once a network has an IPv6 subnet: IPv6
    /// forwarding on (`net.ipv6.conf.{default,all}.forwarding`), as dockerd's bridge
    /// driver (`setupIPv6Forwarding`) does, so that containers route out over IPv6.
    /// Interfaces with `accept_ra=1` then stop taking router advertisements.
    pub(super) fn ipv6_forwarding(&self) {
        if !self.cfg.ip_forward {
            return;
        }
        for scope in ["default", "all"] {
            let p = format!("/proc/sys/net/ipv6/conf/{scope}/forwarding");
            if std::fs::read_to_string(&p).is_ok_and(|v| v.trim() == "1") {
                continue;
            }
            if let Err(e) = std::fs::write(&p, "1") {
                tracing::warn!(error = %e, scope, "cannot enable IPv6 forwarding");
            }
        }
    }

    /// Waits until the start-up set-up of bridges and firewall is done.
    pub fn wait_host_ready(&self) {
        self.host_ready.wait();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn net_path(&self, id: &str) -> PathBuf {
        self.dir.join("networks").join(format!("{id}.json"))
    }

    fn ctr_path(&self, id: &str) -> PathBuf {
        self.dir.join("containers").join(format!("{id}.json"))
    }

    fn save_net(&self, r: &NetRecord) -> Result<(), NetError> {
        write_json(&self.net_path(&r.id), r)
    }

    fn save_ctr(&self, c: &CtrNet) {
        if let Err(e) = write_json(&self.ctr_path(&c.id), c) {
            tracing::error!(id = %c.id, error = %e, "cannot persist container network settings");
        }
    }

    fn sync_firewall(&self) -> Result<(), NetError> {
        self.wait_host_ready();
        self.sync_firewall_now()
    }

    /// Our chains say what the bridge networks need; with none (`--bridge=none` and no user
    /// network) there are no chains at all. The ip6tables chains exist only while a
    /// network has IPv6.
    fn sync_firewall_now(&self) -> Result<(), NetError> {
        let mut live = self.fw_live.lock().unwrap_or_else(|e| e.into_inner());
        let rules: Vec<BridgeRules> = {
            let st = self.lock();
            (st.nets.values())
                .filter(|r| r.is_bridge())
                .filter_map(|r| {
                    let mut rules = r.rules()?;
                    if r.name == DEFAULT && !rules.icc {
                        rules.links = link_rules(&st, r);
                    }
                    Some(rules)
                })
                .collect()
        };
        let v4 = if rules.is_empty() {
            if live.v4 {
                self.fw.teardown()?;
                live.v4 = false;
            }
            Ok(())
        } else {
            live.v4 = true;
            self.fw.sync(&rules)
        };
        if rules.iter().any(|r| r.subnet6.is_some()) {
            live.v6 = true;
            v4.and(self.fw.sync6(&rules))
        } else {
            if live.v6 {
                // Chains an earlier run may have left; a host without IPv6 (or without
                // ip6tables) has none, and its answer must not stop the IPv4 rules.
                if let Err(e) = self.fw.teardown6() {
                    tracing::warn!(error = %e, "cannot remove the ip6tables chains");
                }
                live.v6 = false;
            }
            v4
        }
    }

    fn pools(&self) -> Vec<Pool> {
        if self.cfg.pools.is_empty() {
            ipam::default_pools()
        } else {
            self.cfg.pools.clone()
        }
    }

    /// Subnets a new network must not overlap: other networks and the host's routes.
    fn taken_subnets(st: &State) -> Vec<Ipv4Net> {
        let mut v: Vec<Ipv4Net> = st.nets.values().filter_map(|r| r.subnet).collect();
        v.extend(bridge::host_subnets());
        v
    }

    /// `bridge` (from `--bridge`/`--bip`), `host` and `none`. With `--bridge=none`, no
    /// `bridge`: a record left by an earlier run is removed (as dockerd deletes its stale
    /// default network). What an earlier run with other bridge flags left on the host is
    /// returned, to remove off the API's path.
    fn ensure_predefined(&self, data_root: &Path) -> Result<Leftovers, NetError> {
        let mut st = self.lock();
        let find = |st: &State, name: &str| {
            st.nets
                .values()
                .find(|r| r.name == name)
                .map(|r| r.id.clone())
        };
        // Every run records `host` and `none`: without them this data root is new.
        let used_before = find(&st, "host").is_some();
        for (name, driver) in [("host", "host"), ("none", "null")] {
            if find(&st, name).is_none() {
                let r = NetRecord {
                    id: random_hex(32)?,
                    name: name.into(),
                    driver: driver.into(),
                    created: (self.hooks.now)(),
                    ..Default::default()
                };
                self.save_net(&r)?;
                st.nets.insert(r.id.clone(), r);
            }
        }
        let existing = find(&st, DEFAULT);
        let Some(bridge) = self.cfg.bridge.clone() else {
            let Some(r) = existing.and_then(|id| st.nets.remove(&id)) else {
                return Ok(Leftovers::default());
            };
            let p = self.net_path(&r.id);
            if let Err(e) = std::fs::remove_file(&p) {
                tracing::warn!(file = %p.display(), error = %e, "cannot remove");
            }
            tracing::info!(bridge = %r.bridge, "--bridge=none: removing the default bridge network");
            // dockerd removes its default bridge interface too (moby
            // `removeDefaultBridgeInterface`); the chains named after it are ours no longer.
            return Ok(Leftovers::default_bridge(r.bridge));
        };
        // What an earlier run leaves: a default bridge of another name, or, after a run
        // with `--bridge=none`, the chains its user networks had.
        let leftovers = match existing.as_ref().and_then(|id| st.nets.get(id)) {
            Some(r) if r.bridge != bridge => Leftovers::default_bridge(r.bridge.clone()),
            Some(_) => Leftovers::default(),
            None if used_before => Leftovers {
                bridge: None,
                chains: Some(firewall_tag(None, data_root)),
            },
            None => Leftovers::default(),
        };
        let bip = match &self.cfg.bip {
            Some(b) => {
                let (net, gw) = Ipv4Net::parse_with_host(b)?;
                Some((net, gw))
            }
            None => None,
        };
        let mtu = self.cfg.mtu;
        let (subnet, gateway) = match (bip, existing.as_ref().and_then(|id| st.nets.get(id))) {
            (Some((net, gw)), _) => (net, gw),
            (None, Some(r)) if r.subnet.is_some() => (
                r.subnet.unwrap_or(Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 0)?),
                r.gateway.unwrap_or(Ipv4Addr::UNSPECIFIED),
            ),
            _ => {
                let mut taken = Self::taken_subnets(&st);
                taken.retain(|t| !bridge::routes_via(&bridge).contains(t));
                let net = ipam::next_subnet(&self.pools(), &taken).ok_or_else(|| {
                    NetError::InvalidArgument(
                        "could not find a free subnet for the default bridge; set --bip".into(),
                    )
                })?;
                let gw = net.nth(1).unwrap_or(net.addr());
                (net, gw)
            }
        };
        let subnet6 = self.cfg.fixed_cidr_v6.filter(|_| self.cfg.ipv6);
        let icc = if self.cfg.icc { "true" } else { "false" };
        let mut options = Map::new();
        for (k, v) in [
            ("com.docker.network.bridge.default_bridge", "true"),
            ("com.docker.network.bridge.enable_icc", icc),
            ("com.docker.network.bridge.enable_ip_masquerade", "true"),
            ("com.docker.network.bridge.host_binding_ipv4", "0.0.0.0"),
            ("com.docker.network.bridge.name", bridge.as_str()),
            ("com.docker.network.driver.mtu", &mtu.to_string()),
        ] {
            options.insert(k.into(), v.into());
        }
        let r = match existing.and_then(|id| st.nets.get(&id).cloned()) {
            Some(mut r) => {
                if r.subnet != Some(subnet) || r.bridge != bridge {
                    // The flags changed: old endpoints cannot stay (they get new addresses
                    // on their next start). An old bridge is in `leftovers`.
                    r.endpoints.clear();
                }
                if r.v6().map(|(s, _)| s) != subnet6 {
                    r.endpoints.clear();
                }
                r.subnet = Some(subnet);
                r.gateway = Some(gateway);
                r.bridge = bridge;
                r.mtu = mtu;
                r.options = options;
                r
            }
            None => NetRecord {
                id: random_hex(32)?,
                name: DEFAULT.into(),
                driver: "bridge".into(),
                created: (self.hooks.now)(),
                subnet: Some(subnet),
                gateway: Some(gateway),
                ip_range: None,
                aux: BTreeMap::new(),
                user_ipam: false,
                gateway_given: true,
                internal: false,
                attachable: false,
                labels: Map::new(),
                options,
                bridge,
                mtu,
                endpoints: BTreeMap::new(),
                last_ip: None,
                ..Default::default()
            },
        };
        let mut r = r;
        // `--ipv6` (`--fixed-cidr-v6`): as given at each start, like `--bip`.
        r.ipv6 = self.cfg.ipv6;
        r.subnet6 = subnet6;
        r.gateway6 = subnet6.and_then(|s| s.nth(1));
        r.gateway6_given = false;
        r.ip_range6 = None;
        if r.subnet6.is_none() {
            r.last_ip6 = None;
        }
        self.save_net(&r)?;
        st.nets.insert(r.id.clone(), r);
        Ok(leftovers)
    }

    /// Whether `a` is an attachment to the default bridge while the daemon runs without
    /// one (`--bridge=none`).
    fn disabled_default(&self, a: &settings::Attach) -> bool {
        self.cfg.bridge.is_none() && a.network_name == DEFAULT
    }
}

/// The open ports of the legacy links between containers running on `default` (the
/// default bridge): each exposed port of each linked container, for the one linking.
fn link_rules(st: &State, default: &NetRecord) -> Vec<crate::firewall::LinkRule> {
    let mut out = Vec::new();
    for c in st.ctrs.values().filter(|c| c.pid != 0) {
        let Some(parent) = default.endpoints.get(&c.id) else {
            continue;
        };
        for (child, _) in &c.legacy_links {
            let Some(peer) = st.ctrs.values().find(|x| x.name == *child && x.pid != 0) else {
                continue;
            };
            let Some(ep) = default.endpoints.get(&peer.id) else {
                continue;
            };
            for (port, proto) in &peer.exposed {
                out.push(crate::firewall::LinkRule {
                    parent: parent.ip,
                    child: ep.ip,
                    port: *port,
                    proto: proto.clone(),
                });
            }
        }
    }
    out
}

/// By full ID, exact name, or unique ID prefix (moby `FindNetwork`).
pub fn find(nets: &BTreeMap<String, NetRecord>, name: &str) -> Result<String, NetError> {
    if nets.contains_key(name) {
        return Ok(name.to_string());
    }
    if let Some(r) = nets.values().find(|r| r.name == name) {
        return Ok(r.id.clone());
    }
    let found: Vec<&String> = nets
        .keys()
        .filter(|id| !name.is_empty() && id.starts_with(name))
        .collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(NetError::NotFound(format!("network {name} not found"))),
        _ => Err(NetError::InvalidArgument(format!(
            "network {name} is ambiguous ({} matches found based on ID prefix)",
            found.len()
        ))),
    }
}

/// At start-up: the networks' endpoints are those the containers' files hold for the
/// containers that ran when the daemon stopped (`forget_stale` then drops those that no
/// longer run). Files of older versions (no endpoints in the container's file) keep what
/// the network record says. An address outside its network's subnet (the default bridge
/// got a new `--bip`) is dropped.
fn rebuild_endpoints(st: &mut State) {
    let State { nets, ctrs, .. } = st;
    for r in nets.values_mut() {
        r.endpoints
            .retain(|cid, _| ctrs.get(cid).is_some_and(|c| c.endpoints.is_none()));
    }
    for c in ctrs.values().filter(|c| c.pid != 0) {
        for (net, ep) in c.endpoints.iter().flatten() {
            let Some(r) = nets.get_mut(net) else { continue };
            if r.subnet.is_some_and(|s| s.contains(ep.ip)) {
                r.endpoints.insert(c.id.clone(), ep.clone());
            }
        }
    }
}

/// The first of `subnets` (as a client wrote them) that overlaps a subnet the host routes
/// to directly, with that route: a bridge on it would take the host's traffic for those
/// addresses. Unparsable subnets are skipped (network create refuses them itself).
/// Blocking (reads the host's routes): call it off the async workers.
pub fn host_route_overlap(subnets: &[String]) -> Option<(String, String)> {
    let wanted: Vec<(&String, Ipv4Net)> = subnets
        .iter()
        .filter_map(|s| Some((s, s.parse::<Ipv4Net>().ok()?)))
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let routes = bridge::host_subnets();
    wanted.into_iter().find_map(|(s, net)| {
        routes
            .iter()
            .find(|r| r.overlaps(&net))
            .map(|r| (s.clone(), r.to_string()))
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn host_route_overlap_skips_what_does_not_parse() {
        assert_eq!(host_route_overlap(&["not a subnet".into()]), None);
        assert_eq!(host_route_overlap(&[]), None);
    }

    use super::*;

    #[test]
    fn firewall_tags() {
        let root = Path::new("/var/lib/berth");
        assert_eq!(firewall_tag(Some("berth0"), root), "berth0");
        // FNV-1a 32 of "a" is e40c292c.
        assert_eq!(firewall_tag(None, Path::new("a")), "none-e40c292c");
        let t = firewall_tag(None, root);
        assert_eq!(t, firewall_tag(None, root));
        assert_ne!(t, firewall_tag(None, Path::new("/var/lib/berth2")));
        // Chain names stay within iptables' 28 characters.
        assert!(format!("BERTH-POST-{t}").len() <= 28);
    }

    /// A daemon without a default bridge and without iptables: no host work at all, so
    /// this runs unprivileged. The records and a container's settings outlive a restart.
    #[test]
    fn records_and_settings_persist() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = Config {
            bridge: None,
            iptables: false,
            ip_forward: false,
            ..Config::default()
        };
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let hooks = Hooks {
            now: || "2026-01-02T03:04:05Z".into(),
            events: Arc::new(move |e: NetEvent| seen.lock().unwrap().push(e)),
        };
        let m = Manager::open(tmp.path(), cfg.clone(), hooks.clone()).unwrap();
        m.wait_host_ready();
        let names: Vec<String> = m.networks().values().map(|r| r.name.clone()).collect();
        assert_eq!(names.len(), 2);
        assert!(names.contains(&"host".to_string()) && names.contains(&"none".to_string()));
        let req = ContainerRequest {
            id: "c0ffee0123456789".into(),
            name: "/web".into(),
            network_mode: "none".into(),
            hostname: "h".into(),
            ..Default::default()
        };
        m.register(&req).unwrap();
        let plan = m.prepare("c0ffee0123456789", None).unwrap();
        assert_eq!(plan.ns, NetNs::Private);
        assert!(plan.hosts.contains("h"), "{}", plan.hosts);
        let before: Vec<String> = m.networks().keys().cloned().collect();
        drop(m);
        let m = Manager::open(tmp.path(), cfg, hooks).unwrap();
        assert_eq!(m.networks().keys().cloned().collect::<Vec<_>>(), before);
        let view = m.container("c0ffee0123456789").unwrap();
        assert_eq!(view.settings.name, "web");
        assert_eq!(view.settings.mode, "none");
        let none_id = m
            .networks()
            .values()
            .find(|r| r.name == "none")
            .unwrap()
            .id
            .clone();
        assert_eq!(view.mode_network, Some(none_id));
        m.forget("c0ffee0123456789");
        assert!(m.container("c0ffee0123456789").is_none());
        assert!(!tmp
            .path()
            .join("network/containers/c0ffee0123456789.json")
            .exists());
        assert!(events.lock().unwrap().is_empty());
    }

    /// A restore after a daemon restart writes a container's file only where it changes:
    /// an fsynced write per running container was most of a restart at 1,000.
    #[test]
    fn a_restore_that_changes_nothing_writes_nothing() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let cfg = Config {
            bridge: None,
            iptables: false,
            ip_forward: false,
            ..Config::default()
        };
        let hooks = Hooks {
            now: || "2026-01-02T03:04:05Z".into(),
            events: Arc::new(|_| {}),
        };
        let m = Manager::open(tmp.path(), cfg, hooks).unwrap();
        let cid = "c0ffee0123456789";
        let req = ContainerRequest {
            id: cid.into(),
            name: "/web".into(),
            network_mode: "none".into(),
            hostname: "h".into(),
            ..Default::default()
        };
        m.register(&req).unwrap();
        let pid = i32::try_from(std::process::id()).unwrap();
        let me =
            berth_sys::pidfd::ProcessHandle::open(pid, berth_sys::pidfd::start_time(pid).unwrap())
                .unwrap();
        let file = tmp.path().join(format!("network/containers/{cid}.json"));
        // The first restore records the process: written.
        let ino = || std::fs::metadata(&file).unwrap().ino();
        let first = ino();
        m.restore(cid, &me);
        let restored = ino();
        assert_ne!(
            first, restored,
            "a change is written (a new file replaces the old)"
        );
        assert_eq!(m.container(cid).unwrap().settings.pid, pid);
        m.restore(cid, &me);
        assert_eq!(ino(), restored, "nothing changed: not written again");
    }

    #[test]
    fn a_record_without_endpoints_is_the_record_less_its_endpoints() {
        let mut r = NetRecord {
            id: "n1".into(),
            name: "user".into(),
            driver: "bridge".into(),
            subnet: Some("10.9.0.0/24".parse().unwrap()),
            mtu: 1400,
            ..Default::default()
        };
        r.options.insert("o".into(), Value::from("v"));
        let ep = Endpoint {
            endpoint_id: "e1".into(),
            ip: "10.9.0.2".parse().unwrap(),
            mac: "02:42:0a:09:00:02".into(),
            name: "web".into(),
            aliases: Vec::new(),
            veth: String::new(),
            ip6: None,
        };
        r.endpoints.insert("c1".into(), ep);
        let copy = r.without_endpoints();
        assert!(copy.endpoints.is_empty());
        // The endpoints are not serialised: the rest is equal field for field.
        assert_eq!(
            serde_json::to_value(&copy).unwrap(),
            serde_json::to_value(&r).unwrap()
        );
    }
}
