//! One container's network settings as stored (`CtrNet`): its mode, the networks it is
//! attached to with aliases and requested addresses, DNS and hosts options, published
//! ports; how they are read from a create request; and the `NetworkSettings` JSON.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use berth_network::files::DnsSettings;
use berth_network::NetError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{Endpoint, Networks, State, DEFAULT};
use crate::EngineError;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Attach {
    pub network_id: String,
    /// The name the client used (for messages).
    pub network_name: String,
    pub aliases: Vec<String>,
    pub ipv4: Option<Ipv4Addr>,
}

/// A port to publish: container `port/proto` on `host_ip:host_port` (port or range; empty
/// means any free port).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PortSpec {
    pub port: u16,
    pub proto: String,
    pub host_ip: String,
    pub host_port: String,
}

/// A published port as bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Bound {
    pub port: u16,
    pub proto: String,
    pub host_ip: String,
    pub host_port: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CtrNet {
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
}

fn strs(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
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
pub(crate) fn parse_port_key(k: &str) -> Result<(u16, String), EngineError> {
    let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(EngineError::InvalidArgument(format!(
            "invalid proto '{proto}'"
        )));
    }
    let port = port_number(p)
        .filter(|p| *p > 0)
        .ok_or_else(|| EngineError::InvalidArgument(format!("invalid port '{p}'")))?;
    Ok((port, proto))
}

/// `8080` or `8000-8010`; empty is "any" (0).
pub(crate) fn port_range(s: &str) -> Result<(u16, u16), NetError> {
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
    pub(crate) fn dns_settings(&self) -> DnsSettings {
        DnsSettings {
            servers: self.dns.clone(),
            search: self.dns_search.clone(),
            options: self.dns_options.clone(),
        }
    }

    /// What to publish at start: the bindings, plus every other exposed port on a free
    /// host port under `-P`.
    pub(crate) fn port_specs(&self) -> Vec<PortSpec> {
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
pub(crate) fn from_request(
    st: &State,
    cid: &str,
    name: &str,
    config: &Map<String, Value>,
    hc: &Map<String, Value>,
    networking: Option<&Value>,
    peer_id: Option<String>,
) -> Result<CtrNet, EngineError> {
    let s = |m: &Map<String, Value>, k: &str| {
        m.get(k).and_then(Value::as_str).unwrap_or("").to_string()
    };
    let mut mode = s(hc, "NetworkMode");
    if mode.is_empty() || mode == "default" {
        mode = DEFAULT.into();
    }
    // The docker CLI names the default network `default` in EndpointsConfig too.
    let endpoints: Map<String, Value> = networking
        .and_then(|n| n.get("EndpointsConfig"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            if k == "default" {
                (DEFAULT.to_string(), v)
            } else {
                (k, v)
            }
        })
        .collect();
    let mut attach = Vec::new();
    let mut add = |net: &str, ec: Option<&Value>| -> Result<(), EngineError> {
        let aliases = strs(ec.and_then(|e| e.get("Aliases")));
        let ipv4 = ec
            .and_then(|e| e.get("IPAMConfig"))
            .and_then(|i| i.get("IPv4Address"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<Ipv4Addr>()
                    .map_err(|_| EngineError::InvalidArgument(format!("invalid IPv4 address: {s}")))
            })
            .transpose()?;
        // By name as well as after the lookup: moby checks the name, so these are refused
        // under `--bridge=none` too, where there is no `bridge` network to find.
        if net == DEFAULT && ipv4.is_some() {
            return Err(EngineError::InvalidArgument(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        if net == DEFAULT && !aliases.is_empty() {
            return Err(EngineError::InvalidArgument(
                "network-scoped alias is supported only for containers in user defined networks"
                    .into(),
            ));
        }
        let id = match Networks::find(st, net) {
            Ok(id) => id,
            // dockerd creates the container and fails its start (moby
            // `updateContainerNetworkSettings` ignores the lookup error).
            Err(EngineError::NotFound(_)) => {
                attach.push(Attach {
                    network_id: String::new(),
                    network_name: net.to_string(),
                    aliases: Vec::new(),
                    ipv4: None,
                });
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let r = &st.nets[&id];
        if r.name == DEFAULT && ipv4.is_some() {
            return Err(EngineError::InvalidArgument(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        if r.name == DEFAULT && !aliases.is_empty() {
            return Err(EngineError::InvalidArgument(
                "network-scoped alias is supported only for containers in user defined networks"
                    .into(),
            ));
        }
        if !r.is_bridge() {
            return Err(EngineError::InvalidArgument(format!(
                "container cannot be connected to network {} with driver {}",
                r.name, r.driver
            )));
        }
        if let (Some(ip), Some(subnet)) = (ipv4, r.subnet) {
            if !subnet.contains(ip) {
                return Err(EngineError::InvalidArgument(format!(
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
        });
        Ok(())
    };
    match mode.as_str() {
        "host" | "none" => {}
        m if m.starts_with("container:") => {
            if peer_id.is_none() {
                return Err(EngineError::NotFound(format!(
                    "No such container: {}",
                    &m["container:".len()..]
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
    if let Some(peer) = &peer_id {
        mode = format!("container:{peer}");
    }
    let mut bindings = Vec::new();
    if let Some(pb) = hc.get("PortBindings").and_then(Value::as_object) {
        for (k, v) in pb {
            let (port, proto) = parse_port_key(k)?;
            let list = v.as_array().cloned().unwrap_or_default();
            let list = if list.is_empty() {
                vec![json!({})]
            } else {
                list
            };
            for b in list {
                let host_port = b
                    .get("HostPort")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                port_range(&host_port).map_err(super::net_err)?;
                let host_ip = b
                    .get("HostIp")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if !host_ip.is_empty() && host_ip.parse::<Ipv4Addr>().is_err() {
                    return Err(EngineError::InvalidArgument(format!(
                        "invalid IP address: {host_ip}"
                    )));
                }
                bindings.push(PortSpec {
                    port,
                    proto: proto.clone(),
                    host_ip,
                    host_port,
                });
            }
        }
    }
    let mut exposed = Vec::new();
    if let Some(e) = config.get("ExposedPorts").and_then(Value::as_object) {
        for k in e.keys() {
            exposed.push(parse_port_key(k)?);
        }
    }
    for b in &bindings {
        if !exposed.contains(&(b.port, b.proto.clone())) {
            exposed.push((b.port, b.proto.clone()));
        }
    }
    exposed.sort();
    // API 1.44+ clients send the MAC in the endpoint settings, older ones in Config.
    let mut mac = s(config, "MacAddress");
    if mac.is_empty() {
        let key = if mode == "default" {
            DEFAULT
        } else {
            mode.as_str()
        };
        mac = endpoints
            .get(key)
            .and_then(|e| e.get("MacAddress"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
    }
    let mac = (!mac.is_empty()).then_some(mac);
    if let Some(m) = &mac {
        // Hex digits only: `from_str_radix` would also take a sign (`+f`).
        let ok = m.split(':').count() == 6
            && m.split(':')
                .all(|x| x.len() == 2 && x.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ok {
            return Err(EngineError::InvalidArgument(format!(
                "invalid MAC address: {m}"
            )));
        }
    }
    let hostname = {
        let h = s(config, "Hostname");
        if h.is_empty() {
            cid[..12.min(cid.len())].to_string()
        } else {
            h
        }
    };
    Ok(CtrNet {
        id: cid.to_string(),
        name: name.trim_start_matches('/').to_string(),
        mode,
        attach,
        hostname,
        domainname: s(config, "Domainname"),
        extra_hosts: strs(hc.get("ExtraHosts")),
        dns: strs(hc.get("Dns")),
        dns_search: strs(hc.get("DnsSearch")),
        dns_options: strs(hc.get("DnsOptions")),
        mac,
        bindings,
        exposed,
        publish_all: hc
            .get("PublishAllPorts")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        pid: 0,
        bound: Vec::new(),
        endpoints: None,
    })
}

impl Networks {
    /// `NetworkSettings` of `docker inspect` for container `cid`.
    pub(crate) fn inspect_settings(&self, cid: &str, running: bool) -> Option<Value> {
        let st = self.lock();
        let c = st.ctrs.get(cid)?;
        let mut nets = Map::new();
        let mut top = json!({"EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": ""});
        let empty_ep = |net_id: &str| {
            json!({
                "IPAMConfig": null, "Links": null, "Aliases": null, "MacAddress": "",
                "DriverOpts": null, "GwPriority": 0, "NetworkID": net_id, "EndpointID": "",
                "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": null,
            })
        };
        match c.mode.as_str() {
            "host" | "none" => {
                if let Some(r) = st.nets.values().find(|r| r.name == c.mode) {
                    nets.insert(c.mode.clone(), empty_ep(&r.id));
                }
            }
            _ => {}
        }
        for a in &c.attach {
            let Some(r) = st.nets.get(&a.network_id) else {
                if self.disabled_default(a) {
                    // As dockerd shows it: the network the container asked for, with no
                    // endpoint (its networking is disabled).
                    nets.insert(DEFAULT.into(), empty_ep(""));
                }
                continue;
            };
            let mut v = empty_ep(&r.id);
            if let Some(ip) = a.ipv4 {
                v["IPAMConfig"] = json!({"IPv4Address": ip.to_string()});
            }
            if !a.aliases.is_empty() {
                v["Aliases"] = json!(a.aliases);
            }
            if let Some(ep) = r.endpoints.get(cid).filter(|_| running) {
                v["EndpointID"] = json!(ep.endpoint_id);
                v["IPAddress"] = json!(ep.ip.to_string());
                v["IPPrefixLen"] = json!(r.subnet.map(|s| s.prefix()).unwrap_or(0));
                v["Gateway"] = json!(r.gateway.map(|g| g.to_string()).unwrap_or_default());
                v["MacAddress"] = json!(ep.mac);
                if r.name != DEFAULT {
                    let mut names = vec![c.name.clone(), cid[..12.min(cid.len())].to_string()];
                    names.extend(a.aliases.iter().cloned());
                    v["DNSNames"] = json!(names);
                }
                if r.name == DEFAULT {
                    for k in [
                        "EndpointID",
                        "Gateway",
                        "IPAddress",
                        "IPPrefixLen",
                        "MacAddress",
                    ] {
                        top[k] = v[k].clone();
                    }
                }
            }
            nets.insert(r.name.clone(), v);
        }
        let mut ports = Map::new();
        if running {
            for (port, proto) in &c.exposed {
                ports.insert(format!("{port}/{proto}"), Value::Null);
            }
            for b in &c.bound {
                let e = ports
                    .entry(format!("{}/{}", b.port, b.proto))
                    .or_insert_with(|| json!([]));
                if !e.is_array() {
                    *e = json!([]);
                }
                if let Some(a) = e.as_array_mut() {
                    a.push(json!({"HostIp": b.host_ip, "HostPort": b.host_port.to_string()}));
                }
            }
        }
        let sandbox = if running && c.pid > 0 {
            format!("/proc/{}/ns/net", c.pid)
        } else {
            String::new()
        };
        Some(json!({
            "Bridge": "",
            "SandboxID": if running { cid.to_string() } else { String::new() },
            "SandboxKey": sandbox,
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports,
            "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "EndpointID": top["EndpointID"],
            "Gateway": top["Gateway"],
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": top["IPAddress"],
            "IPPrefixLen": top["IPPrefixLen"],
            "IPv6Gateway": "",
            "MacAddress": top["MacAddress"],
            "Networks": nets,
        }))
    }

    /// `Ports` and `NetworkSettings` of one `docker ps` entry.
    pub(crate) fn patch_summary(&self, cid: &str, running: bool, v: &mut Value) {
        let Some(ns) = self.inspect_settings(cid, running) else {
            return;
        };
        let st = self.lock();
        let Some(c) = st.ctrs.get(cid) else { return };
        let mut ports = Vec::new();
        if running {
            for b in &c.bound {
                ports.push(json!({"IP": b.host_ip, "PrivatePort": b.port, "PublicPort": b.host_port, "Type": b.proto}));
            }
            for (port, proto) in &c.exposed {
                if !c.bound.iter().any(|b| b.port == *port && &b.proto == proto) {
                    ports.push(json!({"PrivatePort": port, "Type": proto}));
                }
            }
        }
        v["Ports"] = json!(ports);
        v["NetworkSettings"] = json!({"Networks": ns["Networks"]});
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two bridge networks: the default one and "user".
    fn state() -> State {
        crate::networks::fuzz::state()
    }

    fn req(hc: Value, net: Value) -> Result<CtrNet, EngineError> {
        let hc = hc.as_object().cloned().unwrap_or_default();
        let cfg = json!({"Hostname": "", "ExposedPorts": {"90/udp": {}}});
        from_request(
            &state(),
            "c0ffee0123456789",
            "/n",
            cfg.as_object().unwrap(),
            &hc,
            Some(&net),
            None,
        )
    }

    #[test]
    fn bad_requests_are_refused() {
        let ip =
            json!({"EndpointsConfig": {"bridge": {"IPAMConfig": {"IPv4Address": "10.0.0.9"}}}});
        let e = req(json!({"NetworkMode": "bridge"}), ip)
            .unwrap_err()
            .to_string();
        assert!(e.contains("user defined networks only"), "{e}");
        let alias = json!({"EndpointsConfig": {"default": {"Aliases": ["x"]}}});
        let e = req(json!({"NetworkMode": "default"}), alias)
            .unwrap_err()
            .to_string();
        assert!(e.contains("network-scoped alias"), "{e}");
        let outside =
            json!({"EndpointsConfig": {"user": {"IPAMConfig": {"IPv4Address": "10.9.9.9"}}}});
        assert!(req(json!({"NetworkMode": "user"}), outside).is_err());
        let mac = json!({"EndpointsConfig": {"user": {"MacAddress": "zz:00"}}});
        assert!(req(json!({"NetworkMode": "user"}), mac).is_err());
        // Found by fuzzing: a sign passed `u8::from_str_radix` (`+f` read as 0x0f).
        let signed = json!({"EndpointsConfig": {"user": {"MacAddress": "+f:+f:+f:+f:+f:+f"}}});
        let e = req(json!({"NetworkMode": "user"}), signed).unwrap_err();
        assert_eq!(e.to_string(), "invalid MAC address: +f:+f:+f:+f:+f:+f");
        let port = json!({"NetworkMode": "user", "PortBindings": {"80/tcp": [{"HostPort": "x"}]}});
        assert!(req(port, json!({})).is_err());
        let hostip =
            json!({"NetworkMode": "user", "PortBindings": {"80/tcp": [{"HostIp": "nope"}]}});
        assert!(req(hostip, json!({})).is_err());
    }

    #[test]
    fn good_request_is_read() {
        let hc = json!({"NetworkMode": "user", "PublishAllPorts": true, "Dns": ["1.1.1.1"],
                        "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}});
        let net = json!({"EndpointsConfig": {"user": {"Aliases": ["web"], "IPAMConfig": {"IPv4Address": "10.0.1.5"}}}});
        let c = req(hc, net).unwrap();
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
        let c = req(json!({"NetworkMode": "nope"}), json!({})).unwrap();
        assert_eq!(c.attach[0].network_id, "");
    }

    #[test]
    fn without_a_default_bridge() {
        // `--bridge=none`: no `bridge` record. The attachment is kept by name (the start
        // then skips it), and what dockerd refuses by name is still refused.
        let mut st = state();
        st.nets.remove("aaa111");
        let hc = json!({"NetworkMode": "default"});
        let hc = hc.as_object().unwrap();
        let cfg = Map::new();
        let make =
            |net: Value| from_request(&st, "c0ffee0123456789", "/n", &cfg, hc, Some(&net), None);
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
        }
    }

    fn ctr(id: &str, pid: i32, endpoints: Option<&[(&str, Endpoint)]>) -> CtrNet {
        let mut c = req(json!({"NetworkMode": "user"}), json!({})).unwrap();
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
        super::super::rebuild_endpoints(&mut st);
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
        let ip = super::super::resolve(&st, "legacy", "running");
        assert_eq!(ip, Some(vec!["10.0.1.5".parse().unwrap()]));
        assert_eq!(super::super::resolve(&st, "legacy", "stale"), None);
    }
}
