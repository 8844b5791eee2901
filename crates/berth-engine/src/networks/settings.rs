//! A container's networking in the API: its create request's network settings read into
//! the driver's [`ContainerRequest`], and the `NetworkSettings` (and ps `Ports`) that
//! inspect shows from the driver's [`ContainerView`].

use std::collections::BTreeMap;

use berth_api_types::lenient;
use berth_api_types::network::{
    port_bindings, EndpointIpamConfig, EndpointSettings, NetworkingConfig, PortBinding,
};
use berth_network::manager::{ContainerRequest, ContainerView};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{Networks, DEFAULT};

/// What `HostConfig` says of networking, read as the daemon always read it (a wrong-typed
/// field is absent).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HostNet {
    #[serde(default, deserialize_with = "lenient::or_default")]
    network_mode: String,
    #[serde(default, deserialize_with = "port_bindings")]
    port_bindings: BTreeMap<String, Vec<PortBinding>>,
    #[serde(default, deserialize_with = "lenient::or_default")]
    publish_all_ports: bool,
    #[serde(default, deserialize_with = "lenient::strings")]
    extra_hosts: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient::strings")]
    dns: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient::strings")]
    dns_search: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient::strings")]
    dns_options: Option<Vec<String>>,
}

/// What `Config` says of networking.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigNet {
    #[serde(default, deserialize_with = "lenient::or_default")]
    hostname: String,
    #[serde(default, deserialize_with = "lenient::or_default")]
    domainname: String,
    #[serde(default, deserialize_with = "lenient::or_default")]
    mac_address: String,
    #[serde(default, deserialize_with = "lenient::or_default")]
    exposed_ports: Map<String, Value>,
}

/// A create request's network settings (`peer_id`: the resolved ID for
/// `container:<name>`).
pub(crate) fn container_request(
    cid: &str,
    name: &str,
    config: &Map<String, Value>,
    hc: &Map<String, Value>,
    networking: Option<&Value>,
    peer_id: Option<String>,
) -> ContainerRequest {
    // Every field is read tolerantly, so an object always reads.
    let hc: HostNet = serde_json::from_value(Value::Object(hc.clone())).unwrap_or_default();
    let config: ConfigNet =
        serde_json::from_value(Value::Object(config.clone())).unwrap_or_default();
    let networking: NetworkingConfig = networking
        .and_then(|n| serde_json::from_value(n.clone()).ok())
        .unwrap_or_default();
    ContainerRequest {
        id: cid.to_string(),
        name: name.to_string(),
        network_mode: hc.network_mode,
        endpoints: networking.endpoints_config,
        hostname: config.hostname,
        domainname: config.domainname,
        mac_address: config.mac_address,
        exposed_ports: config.exposed_ports.keys().cloned().collect(),
        port_bindings: hc.port_bindings,
        publish_all_ports: hc.publish_all_ports,
        extra_hosts: hc.extra_hosts.unwrap_or_default(),
        dns: hc.dns.unwrap_or_default(),
        dns_search: hc.dns_search.unwrap_or_default(),
        dns_options: hc.dns_options.unwrap_or_default(),
        peer_id,
    }
}

impl Networks {
    /// `NetworkSettings` of `docker inspect` for container `cid`.
    pub(crate) fn inspect_settings(&self, cid: &str, running: bool) -> Option<Value> {
        let view = self.driver.container(cid)?;
        Some(network_settings(cid, running, &view))
    }

    /// `Ports` and `NetworkSettings` of one `docker ps` entry.
    pub(crate) fn patch_summary(&self, cid: &str, running: bool, v: &mut Value) {
        let Some(view) = self.driver.container(cid) else {
            return;
        };
        let ns = network_settings(cid, running, &view);
        let c = &view.settings;
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

/// An endpoint of `NetworkSettings.Networks` with nothing but its network.
fn empty_endpoint(net_id: &str) -> EndpointSettings {
    EndpointSettings {
        network_id: net_id.to_string(),
        ..Default::default()
    }
}

/// `NetworkSettings` of `docker inspect` for container `cid`.
fn network_settings(cid: &str, running: bool, view: &ContainerView) -> Value {
    let c = &view.settings;
    let mut nets: BTreeMap<String, EndpointSettings> = BTreeMap::new();
    let mut top = EndpointSettings::default();
    if let Some(id) = &view.mode_network {
        nets.insert(c.mode.clone(), empty_endpoint(id));
    }
    for s in &view.endpoints {
        let a = &s.attach;
        let Some(r) = &s.network else {
            if s.disabled_default {
                // As dockerd shows it: the network the container asked for, with no
                // endpoint (its networking is disabled).
                nets.insert(DEFAULT.into(), empty_endpoint(""));
            }
            continue;
        };
        let mut v = empty_endpoint(&r.id);
        if let Some(ip) = a.ipv4 {
            v.ipam_config = Some(EndpointIpamConfig {
                ipv4_address: Some(ip.to_string()),
                ipv6_address: None,
            });
        }
        if !a.aliases.is_empty() {
            v.aliases = Some(a.aliases.clone());
        }
        if let Some(ep) = s.endpoint.as_ref().filter(|_| running) {
            v.endpoint_id.clone_from(&ep.endpoint_id);
            v.ip_address = ep.ip.to_string();
            v.ip_prefix_len = r.subnet.map(|s| i64::from(s.prefix())).unwrap_or(0);
            v.gateway = r.gateway.map(|g| g.to_string()).unwrap_or_default();
            v.mac_address.clone_from(&ep.mac);
            if r.name != DEFAULT {
                let mut names = vec![c.name.clone(), cid.get(..12).unwrap_or(cid).to_string()];
                names.extend(a.aliases.iter().cloned());
                v.dns_names = Some(names);
            }
            if r.name == DEFAULT {
                top = v.clone();
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
    json!({
        "Bridge": "",
        "SandboxID": if running { cid.to_string() } else { String::new() },
        "SandboxKey": sandbox,
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports,
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": top.endpoint_id,
        "Gateway": top.gateway,
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": top.ip_address,
        "IPPrefixLen": top.ip_prefix_len,
        "IPv6Gateway": "",
        "MacAddress": top.mac_address,
        "Networks": nets,
    })
}
