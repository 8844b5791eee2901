//! One container's network settings as stored (`CtrNet`): its mode, the networks it is
//! attached to with aliases and requested addresses, DNS and hosts options, published
//! ports; and how they are read from a create request (`ContainerRequest`).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use berth_api_types::network::{EndpointSettings, PortBinding};
use serde::{Deserialize, Serialize};

use super::{find, Endpoint, NetRecord, DEFAULT};
use crate::files::DnsSettings;
use crate::NetError;

/// A container's network settings as its create request gives them (the engine reads them
/// out of `Config`, `HostConfig` and `NetworkingConfig`).
#[derive(Debug, Clone, Default)]
pub struct ContainerRequest {
    pub id: String,
    /// The container's name (a leading `/` is dropped).
    pub name: String,
    /// `HostConfig.NetworkMode` (empty or `default`: the default bridge).
    pub network_mode: String,
    /// `NetworkingConfig.EndpointsConfig`.
    pub endpoints: BTreeMap<String, EndpointSettings>,
    pub hostname: String,
    pub domainname: String,
    /// `Config.MacAddress` (clients of API < 1.44).
    pub mac_address: String,
    /// `Config.ExposedPorts`' keys (`80/tcp`).
    pub exposed_ports: Vec<String>,
    pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
    pub publish_all_ports: bool,
    pub extra_hosts: Vec<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// For `container:<name>`: the resolved ID of that container (`None`: not found).
    pub peer_id: Option<String>,
    /// `HostConfig.Links` (`name:alias`, `/name:/parent/alias`), legacy links that apply
    /// on the default bridge only (moby `registerLinks`).
    pub legacy_links: Vec<String>,
}

/// One network a container is attached to, as asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attach {
    pub network_id: String,
    /// The name the client used (for messages).
    pub network_name: String,
    pub aliases: Vec<String>,
    pub ipv4: Option<Ipv4Addr>,
    /// `IPAMConfig.IPv6Address` (`--ip6`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    /// The endpoint's own `MacAddress` (`network connect --mac-address`, or per network
    /// in `NetworkingConfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// `IPAMConfig.LinkLocalIPs`: kept and reported (no address is added for them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link_local_ips: Vec<String>,
    /// `Links` on a user network: (container name, alias); the alias resolves to that
    /// container in this one's embedded DNS only, as dockerd does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<(String, String)>,
}

impl Attach {
    /// `--link-local-ip` addresses (checked at create) to add to the interface.
    pub fn link_local(&self) -> Vec<std::net::IpAddr> {
        (self.link_local_ips.iter())
            .filter_map(|ip| ip.parse().ok())
            .collect()
    }
}

/// A `HostConfig.Links` entry as the daemon stores it (`/db:/web/alias`) or as a client
/// sends it (`db:alias`, `db`): the linked container's name and the alias (the last path
/// element, moby `path.Split`).
pub fn parse_legacy_link(l: &str) -> Result<(String, String), NetError> {
    let (name, alias) = parse_link(l)?;
    let alias = alias.rsplit('/').next().unwrap_or(&alias).to_string();
    if alias.is_empty() {
        return Err(NetError::InvalidArgument(format!(
            "invalid link format: {l}"
        )));
    }
    Ok((name, alias))
}

/// A `Links` entry, `name[:alias]` (moby `opts.ParseLink`): the container's name without
/// its leading `/`, and the alias (the name when none is given).
fn parse_link(l: &str) -> Result<(String, String), NetError> {
    let bad = || NetError::InvalidArgument(format!("invalid link format: {l}"));
    let (name, alias) = l.split_once(':').unwrap_or((l, l));
    let name = name.strip_prefix('/').unwrap_or(name);
    let alias = alias.strip_prefix('/').unwrap_or(alias);
    if name.is_empty() || alias.is_empty() || alias.contains(':') {
        return Err(bad());
    }
    Ok((name.to_string(), alias.to_string()))
}

/// A MAC as `aa:bb:cc:dd:ee:ff`, refused otherwise.
fn check_mac(m: &str) -> Result<(), NetError> {
    // Hex digits only: `from_str_radix` would also take a sign (`+f`).
    let ok = m.split(':').count() == 6
        && m.split(':')
            .all(|x| x.len() == 2 && x.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(NetError::InvalidArgument(format!(
            "invalid MAC address: {m}"
        )))
    }
}

/// A port to publish: container `port/proto` on `host_ip:host_port` (port or range; empty
/// means any free port).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    pub port: u16,
    pub proto: String,
    pub host_ip: String,
    pub host_port: String,
}

/// A published port as bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bound {
    pub port: u16,
    pub proto: String,
    pub host_ip: String,
    pub host_port: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CtrNet {
    pub id: String,
    pub name: String,
    /// `bridge`, `host`, `none`, `container:<id>`, or a user network's name as given.
    pub mode: String,
    pub attach: Vec<Attach>,
    pub hostname: String,
    pub domainname: String,
    pub extra_hosts: Vec<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    pub mac: Option<String>,
    pub bindings: Vec<PortSpec>,
    pub exposed: Vec<(u16, String)>,
    pub publish_all: bool,
    /// While running: the init pid and the bound ports.
    #[serde(default)]
    pub pid: i32,
    #[serde(default)]
    pub bound: Vec<Bound>,
    /// While running: its endpoints (network ID → endpoint), the one durable copy of the
    /// addresses it holds; written with `pid` in the one write a start makes anyway.
    /// `None` in files written before this field existed (their endpoints are in the
    /// network records).
    #[serde(default)]
    pub endpoints: Option<BTreeMap<String, Endpoint>>,
    /// Legacy links on the default bridge: (linked container's name, alias).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub legacy_links: Vec<(String, String)>,
}

/// A port number in decimal digits only, as Go's `strconv.ParseUint` reads it (Rust's
/// `parse` would also take a leading `+`).
fn port_number(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `80/tcp` → (80, "tcp"); `80` → tcp.
pub fn parse_port_key(k: &str) -> Result<(u16, String), NetError> {
    let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(NetError::InvalidArgument(format!(
            "invalid proto '{proto}'"
        )));
    }
    let port = port_number(p)
        .filter(|p| *p > 0)
        .ok_or_else(|| NetError::InvalidArgument(format!("invalid port '{p}'")))?;
    Ok((port, proto))
}

/// `8080` or `8000-8010`; empty is "any" (0).
pub fn port_range(s: &str) -> Result<(u16, u16), NetError> {
    let bad = || NetError::InvalidArgument(format!("invalid hostPort: {s}"));
    if s.is_empty() {
        return Ok((0, 0));
    }
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b) = (
        port_number(a).ok_or_else(bad)?,
        port_number(b).ok_or_else(bad)?,
    );
    if a > b {
        return Err(bad());
    }
    Ok((a, b))
}

impl CtrNet {
    /// The request that attaches this container to one more network (`net_id`, named
    /// `net_name`) with the settings `ec` (`network connect`); refused when it is attached
    /// there already.
    pub fn connect_request(
        &self,
        net_id: &str,
        net_name: &str,
        ec: &EndpointSettings,
    ) -> Result<ContainerRequest, NetError> {
        if self.attach.iter().any(|a| a.network_id == net_id) {
            return Err(NetError::Forbidden(format!(
                "endpoint with name {} already exists in network {net_name}",
                self.name
            )));
        }
        Ok(ContainerRequest {
            id: self.id.clone(),
            name: self.name.clone(),
            network_mode: net_name.to_string(),
            endpoints: BTreeMap::from([(net_name.to_string(), ec.clone())]),
            ..Default::default()
        })
    }

    pub fn dns_settings(&self) -> DnsSettings {
        DnsSettings {
            servers: self.dns.clone(),
            search: self.dns_search.clone(),
            options: self.dns_options.clone(),
        }
    }

    /// What to publish at start: the bindings, plus every other exposed port on a free
    /// host port under `-P`.
    pub fn port_specs(&self) -> Vec<PortSpec> {
        let mut v = self.bindings.clone();
        if self.publish_all {
            for (port, proto) in &self.exposed {
                if !v.iter().any(|b| b.port == *port && &b.proto == proto) {
                    v.push(PortSpec {
                        port: *port,
                        proto: proto.clone(),
                        host_ip: String::new(),
                        host_port: String::new(),
                    });
                }
            }
        }
        v
    }
}

/// Reads a create request's network settings and checks them against the networks.
pub fn from_request(
    nets: &BTreeMap<String, NetRecord>,
    req: &ContainerRequest,
) -> Result<CtrNet, NetError> {
    let cid = req.id.as_str();
    let mut mode = req.network_mode.clone();
    if mode.is_empty() || mode == "default" {
        mode = DEFAULT.into();
    }
    // The docker CLI names the default network `default` in EndpointsConfig too.
    let endpoints: BTreeMap<String, EndpointSettings> = req
        .endpoints
        .iter()
        .map(|(k, v)| {
            if k == "default" {
                (DEFAULT.to_string(), v.clone())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    let mut attach = Vec::new();
    let mut add = |net: &str, ec: Option<&EndpointSettings>| -> Result<(), NetError> {
        let aliases = ec.and_then(|e| e.aliases.clone()).unwrap_or_default();
        let mac = ec.map(|e| e.mac_address.clone()).filter(|m| !m.is_empty());
        if let Some(m) = &mac {
            check_mac(m)?;
        }
        let link_local_ips: Vec<String> = ec
            .and_then(|e| e.ipam_config.as_ref())
            .and_then(|i| i.link_local_ips.clone())
            .unwrap_or_default();
        if let Some(bad) = link_local_ips
            .iter()
            .find(|ip| ip.parse::<std::net::IpAddr>().is_err())
        {
            return Err(NetError::InvalidArgument(format!(
                "invalid link-local IP address: {bad}"
            )));
        }
        let links = ec
            .and_then(|e| e.links.as_ref())
            .map(|l| {
                l.iter()
                    .map(|l| parse_link(l))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let ipv4 = ec
            .and_then(EndpointSettings::requested_ipv4)
            .map(|s| {
                s.parse::<Ipv4Addr>()
                    .map_err(|_| NetError::InvalidArgument(format!("invalid IPv4 address: {s}")))
            })
            .transpose()?;
        let ipv6 = ec
            .and_then(|e| e.ipam_config.as_ref())
            .and_then(|c| c.ipv6_address.as_deref())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<Ipv6Addr>()
                    .map_err(|_| NetError::InvalidArgument(format!("invalid IPv6 address: {s}")))
            })
            .transpose()?;
        // By name as well as after the lookup: moby checks the name, so these are refused
        // under `--bridge=none` too, where there is no `bridge` network to find.
        if net == DEFAULT && (ipv4.is_some() || ipv6.is_some()) {
            return Err(NetError::InvalidArgument(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        if net == DEFAULT && !aliases.is_empty() {
            return Err(NetError::InvalidArgument(
                "network-scoped alias is supported only for containers in user defined networks"
                    .into(),
            ));
        }
        let (id, r) = match find(nets, net) {
            Ok(id) => match nets.get(&id) {
                Some(r) => (id, r),
                None => return Err(NetError::NotFound(format!("network {net} not found"))),
            },
            // dockerd creates the container and fails its start (moby
            // `updateContainerNetworkSettings` ignores the lookup error).
            Err(NetError::NotFound(_)) => {
                attach.push(Attach {
                    network_id: String::new(),
                    network_name: net.to_string(),
                    aliases: Vec::new(),
                    ipv4: None,
                    ipv6: None,
                    mac: None,
                    link_local_ips: Vec::new(),
                    links: Vec::new(),
                });
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if r.name == DEFAULT && (ipv4.is_some() || ipv6.is_some()) {
            return Err(NetError::InvalidArgument(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        if r.name == DEFAULT && !aliases.is_empty() {
            return Err(NetError::InvalidArgument(
                "network-scoped alias is supported only for containers in user defined networks"
                    .into(),
            ));
        }
        if !r.is_bridge() {
            return Err(NetError::InvalidArgument(format!(
                "container cannot be connected to network {} with driver {}",
                r.name, r.driver
            )));
        }
        // moby `validateNetworkingConfig` (ErrUnsupportedNetworkNoSubnetAndIP).
        if (ipv4.is_some() && !r.user_ipam) || (ipv6.is_some() && r.subnet6.is_none()) {
            return Err(NetError::InvalidArgument(
                "user specified IP address is supported only when connecting to networks with user configured subnets".into(),
            ));
        }
        if let (Some(ip), Some(subnet)) = (ipv4, r.subnet) {
            if !subnet.contains(ip) {
                return Err(NetError::InvalidArgument(format!(
                    "Invalid address {ip}: It does not belong to any of this network's subnets"
                )));
            }
        }
        if let (Some(ip), Some((subnet, _))) = (ipv6, r.v6()) {
            if !subnet.contains(ip) {
                return Err(NetError::InvalidArgument(format!(
                    "Invalid address {ip}: It does not belong to any of this network's subnets"
                )));
            }
        }
        if attach.iter().any(|a: &Attach| a.network_id == id) {
            return Ok(());
        }
        attach.push(Attach {
            network_id: id,
            network_name: net.to_string(),
            aliases,
            ipv4,
            ipv6,
            mac,
            link_local_ips,
            links,
        });
        Ok(())
    };
    match mode.as_str() {
        "host" | "none" => {}
        m if m.starts_with("container:") => {
            if req.peer_id.is_none() {
                return Err(NetError::NotFound(format!(
                    "No such container: {}",
                    m.strip_prefix("container:").unwrap_or(m)
                )));
            }
        }
        net => {
            let ec = endpoints.get(net);
            add(net, ec)?;
            for (k, v) in &endpoints {
                if k != net {
                    add(k, Some(v))?;
                }
            }
        }
    }
    if let Some(peer) = &req.peer_id {
        mode = format!("container:{peer}");
    }
    let mut bindings = Vec::new();
    for (k, list) in &req.port_bindings {
        let (port, proto) = parse_port_key(k)?;
        let empty = [PortBinding::default()];
        let list = if list.is_empty() { &empty[..] } else { list };
        for b in list {
            port_range(&b.host_port)?;
            if !b.host_ip.is_empty() && b.host_ip.parse::<std::net::IpAddr>().is_err() {
                return Err(NetError::InvalidArgument(format!(
                    "invalid IP address: {}",
                    b.host_ip
                )));
            }
            bindings.push(PortSpec {
                port,
                proto: proto.clone(),
                host_ip: b.host_ip.clone(),
                host_port: b.host_port.clone(),
            });
        }
    }
    let mut exposed = Vec::new();
    for k in &req.exposed_ports {
        exposed.push(parse_port_key(k)?);
    }
    for b in &bindings {
        if !exposed.contains(&(b.port, b.proto.clone())) {
            exposed.push((b.port, b.proto.clone()));
        }
    }
    exposed.sort();
    // API 1.44+ clients send the MAC in the endpoint settings, older ones in Config.
    let mut mac = req.mac_address.clone();
    if mac.is_empty() {
        let key = if mode == "default" {
            DEFAULT
        } else {
            mode.as_str()
        };
        mac = endpoints
            .get(key)
            .map(|e| e.mac_address.clone())
            .unwrap_or_default();
    }
    let mac = (!mac.is_empty()).then_some(mac);
    if let Some(m) = &mac {
        check_mac(m)?;
    }
    // moby `registerLinks`: legacy links apply on the default bridge only.
    let legacy_links = if mode == DEFAULT {
        req.legacy_links
            .iter()
            .map(|l| parse_legacy_link(l))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    let hostname = if req.hostname.is_empty() {
        cid.get(..12).unwrap_or(cid).to_string()
    } else {
        req.hostname.clone()
    };
    Ok(CtrNet {
        id: cid.to_string(),
        name: req.name.trim_start_matches('/').to_string(),
        mode,
        attach,
        hostname,
        domainname: req.domainname.clone(),
        extra_hosts: req.extra_hosts.clone(),
        dns: req.dns.clone(),
        dns_search: req.dns_search.clone(),
        dns_options: req.dns_options.clone(),
        mac,
        bindings,
        exposed,
        publish_all: req.publish_all_ports,
        pid: 0,
        bound: Vec::new(),
        endpoints: None,
        legacy_links,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use berth_api_types::network::NetworkingConfig;
    use serde_json::{json, Value};

    use super::*;
    use crate::manager::State;

    /// The fixture's two bridge networks (`aaa111`, the default; `bbb222`, "user").
    pub(crate) fn state() -> State {
        State {
            nets: crate::fixtures::two_bridges(),
            ..State::default()
        }
    }

    /// A request on network `mode` with `NetworkingConfig` `net`, exposing 90/udp.
    fn request(mode: &str, net: Value) -> ContainerRequest {
        let net: NetworkingConfig = serde_json::from_value(net).unwrap();
        ContainerRequest {
            id: "c0ffee0123456789".into(),
            name: "/n".into(),
            network_mode: mode.into(),
            endpoints: net.endpoints_config,
            exposed_ports: vec!["90/udp".into()],
            ..Default::default()
        }
    }

    fn req(mode: &str, net: Value) -> Result<CtrNet, NetError> {
        from_request(&state().nets, &request(mode, net))
    }

    fn binding(host_ip: &str, host_port: &str) -> BTreeMap<String, Vec<PortBinding>> {
        BTreeMap::from([(
            "80/tcp".to_string(),
            vec![PortBinding {
                host_ip: host_ip.into(),
                host_port: host_port.into(),
            }],
        )])
    }

    #[test]
    fn bad_requests_are_refused() {
        let ip =
            json!({"EndpointsConfig": {"bridge": {"IPAMConfig": {"IPv4Address": "10.0.0.9"}}}});
        let e = req("bridge", ip).unwrap_err().to_string();
        assert!(e.contains("user defined networks only"), "{e}");
        let alias = json!({"EndpointsConfig": {"default": {"Aliases": ["x"]}}});
        let e = req("default", alias).unwrap_err().to_string();
        assert!(e.contains("network-scoped alias"), "{e}");
        let outside =
            json!({"EndpointsConfig": {"user": {"IPAMConfig": {"IPv4Address": "10.9.9.9"}}}});
        assert!(req("user", outside).is_err());
        let mac = json!({"EndpointsConfig": {"user": {"MacAddress": "zz:00"}}});
        assert!(req("user", mac).is_err());
        // Found by fuzzing: a sign passed `u8::from_str_radix` (`+f` read as 0x0f).
        let signed = json!({"EndpointsConfig": {"user": {"MacAddress": "+f:+f:+f:+f:+f:+f"}}});
        let e = req("user", signed).unwrap_err();
        assert_eq!(e.to_string(), "invalid MAC address: +f:+f:+f:+f:+f:+f");
        let mut port = request("user", json!({}));
        port.port_bindings = binding("", "x");
        assert!(from_request(&state().nets, &port).is_err());
        let mut hostip = request("user", json!({}));
        hostip.port_bindings = binding("nope", "");
        assert!(from_request(&state().nets, &hostip).is_err());
        let mut peer = request("container:abc", json!({}));
        let e = from_request(&state().nets, &peer).unwrap_err();
        assert_eq!(e.to_string(), "No such container: abc");
        peer.peer_id = Some("abc123".into());
        let c = from_request(&state().nets, &peer).unwrap();
        assert_eq!(c.mode, "container:abc123");
    }

    #[test]
    fn static_ip_needs_a_configured_subnet_and_mac_is_per_network() {
        let mut st = state();
        st.nets.get_mut("bbb222").unwrap().user_ipam = false;
        let e = from_request(
            &st.nets,
            &request(
                "user",
                json!({"EndpointsConfig": {"user": {"IPAMConfig": {"IPv4Address": "10.0.1.5"}}}}),
            ),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "user specified IP address is supported only when connecting to networks with user configured subnets");
        let c = req(
            "user",
            json!({"EndpointsConfig": {"user": {"MacAddress": "02:00:00:00:00:07"}}}),
        )
        .unwrap();
        assert_eq!(c.attach[0].mac.as_deref(), Some("02:00:00:00:00:07"));
        let e = req(
            "user",
            json!({"EndpointsConfig": {"user": {"MacAddress": "+2:00:00:00:00:07"}}}),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "invalid MAC address: +2:00:00:00:00:07");
    }

    #[test]
    fn links_and_link_local_ips_are_read() {
        assert_eq!(parse_link("/db:x").unwrap(), ("db".into(), "x".into()));
        assert_eq!(parse_link("db").unwrap(), ("db".into(), "db".into()));
        for bad in ["", ":a", "a:", "a:b:c"] {
            assert!(parse_link(bad).is_err(), "{bad}");
        }
        let c = req(
            "user",
            json!({"EndpointsConfig": {"user": {"Links": ["db:store"],
                "IPAMConfig": {"LinkLocalIPs": ["169.254.1.1", "fe80::1"]}}}}),
        )
        .unwrap();
        assert_eq!(c.attach[0].links, [("db".to_string(), "store".to_string())]);
        assert_eq!(c.attach[0].link_local_ips, ["169.254.1.1", "fe80::1"]);
        let e = req(
            "user",
            json!({"EndpointsConfig": {"user": {"IPAMConfig": {"LinkLocalIPs": ["nope"]}}}}),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "invalid link-local IP address: nope");
    }

    #[test]
    fn good_request_is_read() {
        let mut r = request(
            "user",
            json!({"EndpointsConfig": {"user": {"Aliases": ["web"], "IPAMConfig": {"IPv4Address": "10.0.1.5"}}}}),
        );
        r.publish_all_ports = true;
        r.dns = vec!["1.1.1.1".into()];
        r.port_bindings = binding("127.0.0.1", "8080");
        let c = from_request(&state().nets, &r).unwrap();
        assert_eq!(c.name, "n");
        assert_eq!(c.hostname, "c0ffee012345");
        assert_eq!(c.attach.len(), 1);
        assert_eq!(c.attach[0].network_id, "bbb222");
        assert_eq!(c.attach[0].aliases, ["web"]);
        assert_eq!(c.attach[0].ipv4, Some(Ipv4Addr::new(10, 0, 1, 5)));
        assert_eq!(
            c.exposed,
            [(80, "tcp".to_string()), (90, "udp".to_string())]
        );
        let specs = c.port_specs();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].host_port, "8080");
        assert_eq!(specs[1].host_port, "");
        // An unknown network is recorded; the start fails, as dockerd's does.
        let c = req("nope", json!({})).unwrap();
        assert_eq!(c.attach[0].network_id, "");
    }

    #[test]
    fn without_a_default_bridge() {
        // `--bridge=none`: no `bridge` record. The attachment is kept by name (the start
        // then skips it), and what dockerd refuses by name is still refused.
        let mut st = state();
        st.nets.remove("aaa111");
        let make = |net: Value| from_request(&st.nets, &request("default", net));
        let c = make(json!({"EndpointsConfig": {"default": {}}})).unwrap();
        assert_eq!(c.mode, DEFAULT);
        assert_eq!(c.attach.len(), 1);
        assert_eq!(
            (
                c.attach[0].network_id.as_str(),
                c.attach[0].network_name.as_str()
            ),
            ("", DEFAULT)
        );
        let ip =
            json!({"EndpointsConfig": {"default": {"IPAMConfig": {"IPv4Address": "10.0.0.9"}}}});
        assert!(make(ip)
            .unwrap_err()
            .to_string()
            .contains("user defined networks only"));
        let alias = json!({"EndpointsConfig": {"bridge": {"Aliases": ["x"]}}});
        assert!(make(alias)
            .unwrap_err()
            .to_string()
            .contains("network-scoped alias"));
    }

    #[test]
    fn port_keys_and_ranges() {
        assert_eq!(parse_port_key("80/tcp").unwrap(), (80, "tcp".into()));
        assert_eq!(parse_port_key("53/UDP").unwrap(), (53, "udp".into()));
        assert_eq!(parse_port_key("80").unwrap(), (80, "tcp".into()));
        assert!(parse_port_key("0/tcp").is_err());
        assert!(parse_port_key("80/xyz").is_err());
        assert!(parse_port_key("x/tcp").is_err());
        assert_eq!(port_range("").unwrap(), (0, 0));
        assert_eq!(port_range("8000-8010").unwrap(), (8000, 8010));
        assert!(port_range("9-8").is_err());
        assert!(port_range("70000").is_err());
        // Rust's integer parsing takes a `+` sign, Go's ParseUint (moby `nat.ParsePort`)
        // does not.
        assert!(parse_port_key("+80/tcp").is_err());
        assert!(port_range("+8080").is_err());
        assert!(port_range("1-+2").is_err());
    }

    fn ep(ip: &str, name: &str) -> Endpoint {
        Endpoint {
            endpoint_id: format!("ep-{name}"),
            ip: ip.parse().unwrap(),
            mac: String::new(),
            name: name.into(),
            aliases: Vec::new(),
            veth: String::new(),
            ip6: None,
        }
    }

    fn ctr(id: &str, pid: i32, endpoints: Option<&[(&str, Endpoint)]>) -> CtrNet {
        let mut c = req("user", json!({})).unwrap();
        c.id = id.into();
        c.pid = pid;
        c.endpoints = endpoints.map(|e| {
            e.iter()
                .map(|(n, ep)| (n.to_string(), ep.clone()))
                .collect()
        });
        c
    }

    #[test]
    fn endpoints_come_back_from_the_containers_files() {
        let mut st = state();
        // What a network record of an older version says, and stale entries.
        let user = st.nets.get_mut("bbb222").unwrap();
        user.endpoints
            .insert("legacy".into(), ep("10.0.1.7", "legacy"));
        user.endpoints
            .insert("running".into(), ep("10.0.1.99", "stale"));
        user.endpoints
            .insert("gone".into(), ep("10.0.1.98", "gone"));
        for c in [
            ctr("legacy", 41, None),
            ctr(
                "running",
                42,
                Some(&[("bbb222", ep("10.0.1.5", "running"))]),
            ),
            ctr("stopped", 0, Some(&[("bbb222", ep("10.0.1.6", "stopped"))])),
            // Outside the subnet (the network changed) and on a network that is gone.
            ctr(
                "moved",
                43,
                Some(&[
                    ("aaa111", ep("10.9.9.9", "moved")),
                    ("zzz", ep("10.0.1.8", "x")),
                ]),
            ),
        ] {
            st.ctrs.insert(c.id.clone(), c);
        }
        crate::manager::rebuild_endpoints(&mut st);
        let user: Vec<(&str, String)> = st.nets["bbb222"]
            .endpoints
            .iter()
            .map(|(k, e)| (k.as_str(), e.ip.to_string()))
            .collect();
        assert_eq!(
            user,
            [
                ("legacy", "10.0.1.7".to_string()),
                ("running", "10.0.1.5".to_string())
            ]
        );
        assert!(st.nets["aaa111"].endpoints.is_empty());
        // The embedded DNS answers from the rebuilt endpoints.
        let ip = crate::manager::lifecycle::resolve(&st, "legacy", "running");
        assert_eq!(ip, Some(vec!["10.0.1.5".parse().unwrap()]));
        assert_eq!(
            crate::manager::lifecycle::resolve(&st, "legacy", "stale"),
            None
        );
    }
}
