//! A container's networking in the API: its create request's network settings read into
//! the driver's [`ContainerRequest`], and the `NetworkSettings` (and ps `Ports`) that
//! inspect shows from the driver's [`ContainerView`].

use std::collections::BTreeMap;

use berth_api_types::container::{ContainerConfig, ContainerSummary, HostConfig};
use berth_api_types::network::{
    EndpointIpamConfig, EndpointSettings, NetworkSettings, NetworkingConfig, Port, PortBinding,
    SummaryNetworkSettings,
};
use berth_network::manager::{ContainerRequest, ContainerView, EndpointStatus};

use super::{Networks, DEFAULT};

/// A create request's network settings, from its typed `Config` and `HostConfig` (a
/// field of the wrong JSON type reads as absent, as the daemon always read it; `peer_id`:
/// the resolved ID for `container:<name>`).
pub(crate) fn container_request(
    cid: &str,
    name: &str,
    config: &ContainerConfig,
    hc: &HostConfig,
    networking: &NetworkingConfig,
    peer_id: Option<String>,
) -> ContainerRequest {
    let mac = config.extra.get("MacAddress").and_then(|v| v.as_str());
    ContainerRequest {
        id: cid.to_string(),
        name: name.to_string(),
        network_mode: (hc.network_mode.get())
            .map(|m| m.as_str().into_owned())
            .unwrap_or_default(),
        endpoints: networking.endpoints_config.clone(),
        hostname: config.hostname.or_default(),
        domainname: config.domainname.or_default(),
        mac_address: mac.unwrap_or_default().to_string(),
        exposed_ports: (config.exposed_ports.get())
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
        port_bindings: hc.bindings(),
        publish_all_ports: hc.publish_all_ports.or_default(),
        extra_hosts: hc.extra_hosts.strings(),
        dns: hc.dns.strings(),
        dns_search: hc.dns_search.strings(),
        dns_options: hc.dns_options.strings(),
        peer_id,
        legacy_links: hc.links.strings(),
    }
}

impl Networks {
    /// `NetworkSettings` of `docker inspect` for container `cid`.
    pub(crate) fn inspect_settings(&self, cid: &str, running: bool) -> Option<NetworkSettings> {
        let view = self.driver.container(cid)?;
        Some(network_settings(cid, running, &view))
    }

    /// `Ports` and `NetworkSettings` of one `docker ps` entry.
    pub(crate) fn patch_summary(&self, cid: &str, running: bool, s: &mut ContainerSummary) {
        let Some(view) = self.driver.container(cid) else {
            return;
        };
        s.ports = ps_ports(running, &view);
        s.network_settings = SummaryNetworkSettings {
            networks: network_settings(cid, running, &view).networks,
        };
    }
}

/// The `Ports` of a `docker ps` entry: while running, each bound port, then each exposed
/// port that is not bound.
fn ps_ports(running: bool, view: &ContainerView) -> Vec<Port> {
    let c = &view.settings;
    if !running {
        return Vec::new();
    }
    let bound = c.bound.iter().map(|b| Port {
        ip: Some(b.host_ip.clone()),
        private_port: b.port,
        public_port: Some(b.host_port),
        kind: b.proto.clone(),
    });
    let exposed = (c.exposed.iter())
        .filter(|(port, proto)| !c.bound.iter().any(|b| b.port == *port && &b.proto == proto))
        .map(|(port, proto)| Port {
            ip: None,
            private_port: *port,
            public_port: None,
            kind: proto.clone(),
        });
    bound.chain(exposed).collect()
}

/// An endpoint of `NetworkSettings.Networks` with nothing but its network.
fn empty_endpoint(net_id: &str) -> EndpointSettings {
    EndpointSettings {
        network_id: net_id.to_string(),
        ..Default::default()
    }
}

/// One attachment of container `cid` (named `name`) as `NetworkSettings.Networks` shows
/// it: the address, prefix, gateway, MAC and DNS names while it runs there; `None` when
/// its network is gone.
pub(crate) fn endpoint_settings(
    cid: &str,
    name: &str,
    running: bool,
    s: &EndpointStatus,
) -> Option<EndpointSettings> {
    let (a, r) = (&s.attach, s.network.as_ref()?);
    let mut v = empty_endpoint(&r.id);
    if a.ipv4.is_some() || a.ipv6.is_some() || !a.link_local_ips.is_empty() {
        v.ipam_config = Some(EndpointIpamConfig {
            ipv4_address: a.ipv4.map(|ip| ip.to_string()),
            ipv6_address: a.ipv6.map(|ip| ip.to_string()),
            link_local_ips: (!a.link_local_ips.is_empty()).then(|| a.link_local_ips.clone()),
        });
    }
    if !a.links.is_empty() {
        v.links = Some(
            a.links
                .iter()
                .map(|(name, alias)| format!("{name}:{alias}"))
                .collect(),
        );
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
        if let (Some(ip6), Some((subnet6, gw6))) = (ep.ip6, r.v6) {
            v.global_ipv6_address = ip6.to_string();
            v.global_ipv6_prefix_len = i64::from(subnet6.prefix());
            v.ipv6_gateway = gw6.to_string();
        }
        if r.name != DEFAULT {
            let mut names = vec![name.to_string(), cid.get(..12).unwrap_or(cid).to_string()];
            names.extend(a.aliases.iter().cloned());
            v.dns_names = Some(names);
        }
    }
    Some(v)
}

/// `NetworkSettings` of `docker inspect` for container `cid`.
fn network_settings(cid: &str, running: bool, view: &ContainerView) -> NetworkSettings {
    let c = &view.settings;
    let mut nets: BTreeMap<String, EndpointSettings> = BTreeMap::new();
    let mut top = EndpointSettings::default();
    if let Some(id) = &view.mode_network {
        nets.insert(c.mode.clone(), empty_endpoint(id));
    }
    for s in &view.endpoints {
        let Some(r) = &s.network else {
            if s.disabled_default {
                // As dockerd shows it: the network the container asked for, with no
                // endpoint (its networking is disabled).
                nets.insert(DEFAULT.into(), empty_endpoint(""));
            }
            continue;
        };
        let v = endpoint_settings(cid, &c.name, running, s).unwrap_or_default();
        if r.name == DEFAULT {
            top = v.clone();
        }
        nets.insert(r.name.clone(), v);
    }
    let mut ports: BTreeMap<String, Option<Vec<PortBinding>>> = BTreeMap::new();
    if running {
        for (port, proto) in &c.exposed {
            ports.insert(format!("{port}/{proto}"), None);
        }
        for b in &c.bound {
            let e = ports.entry(format!("{}/{}", b.port, b.proto)).or_default();
            e.get_or_insert_with(Vec::new).push(PortBinding {
                host_ip: b.host_ip.clone(),
                host_port: b.host_port.to_string(),
            });
        }
    }
    let sandbox_key = if running && c.pid > 0 {
        format!("/proc/{}/ns/net", c.pid)
    } else {
        String::new()
    };
    NetworkSettings {
        sandbox_id: if running {
            cid.to_string()
        } else {
            String::new()
        },
        sandbox_key,
        ports,
        endpoint_id: top.endpoint_id,
        gateway: top.gateway,
        ip_address: top.ip_address,
        ip_prefix_len: top.ip_prefix_len,
        mac_address: top.mac_address,
        global_ipv6_address: top.global_ipv6_address,
        global_ipv6_prefix_len: top.global_ipv6_prefix_len,
        ipv6_gateway: top.ipv6_gateway,
        networks: nets,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use berth_network::manager::Endpoint;
    use berth_network::NetworkDriver;
    use serde_json::{json, Map, Value};

    use super::*;
    use crate::networks::fake::FakeDriver;
    use crate::networks::fuzz::{state, typed_request};

    /// The hand-built `NetworkSettings` the typed one replaced, kept as the reference.
    fn old_network_settings(cid: &str, running: bool, view: &ContainerView) -> Value {
        let c = &view.settings;
        let top = network_settings(cid, running, view);
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
        let def = top.networks.get(DEFAULT).filter(|_| running);
        let def = |f: fn(&EndpointSettings) -> Value, empty: Value| def.map(f).unwrap_or(empty);
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
            "EndpointID": def(|e| json!(e.endpoint_id), json!("")),
            "Gateway": def(|e| json!(e.gateway), json!("")),
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": def(|e| json!(e.ip_address), json!("")),
            "IPPrefixLen": def(|e| json!(e.ip_prefix_len), json!(0)),
            "IPv6Gateway": "",
            "MacAddress": def(|e| json!(e.mac_address), json!("")),
            "Networks": top.networks,
        })
    }

    /// The hand-built `ps` `Ports` the typed ones replaced.
    fn old_ports(running: bool, view: &ContainerView) -> Value {
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
        json!(ports)
    }

    /// The view of a container registered with `hc` (and `EndpointsConfig` `net`).
    fn view(hc: Value, net: Option<Value>) -> ContainerView {
        let fake = FakeDriver::with(state());
        let config = json!({"ExposedPorts": {"90/udp": {}, "80/tcp": {}}});
        let req = typed_request(
            "/web",
            config.as_object().unwrap(),
            hc.as_object().unwrap(),
            net.as_ref(),
            None,
        )
        .unwrap();
        fake.seed(&req).unwrap();
        fake.container("c0ffee0123456789").unwrap()
    }

    #[test]
    fn network_settings_and_ports_are_what_they_were() {
        let cid = "c0ffee0123456789";
        let mut running = view(
            json!({"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}}),
            Some(json!({"EndpointsConfig": {"user": {"Aliases": ["w"]}}})),
        );
        running.settings.pid = 42;
        running.settings.bound = vec![
            berth_network::manager::Bound {
                port: 80,
                proto: "tcp".into(),
                host_ip: "0.0.0.0".into(),
                host_port: 8080,
            },
            berth_network::manager::Bound {
                port: 80,
                proto: "tcp".into(),
                host_ip: "::".into(),
                host_port: 8080,
            },
        ];
        for (i, s) in running.endpoints.iter_mut().enumerate() {
            s.endpoint = Some(Endpoint {
                endpoint_id: format!("e{i}"),
                ip: format!("10.0.{i}.2").parse().unwrap(),
                mac: format!("02:42:0a:00:0{i}:02"),
                name: "web".into(),
                aliases: Vec::new(),
                veth: String::new(),
                ip6: None,
            });
        }
        let mut gone = view(json!({"NetworkMode": "user"}), None);
        gone.endpoints[0].network = None;
        gone.endpoints[0].disabled_default = true;
        let views = [
            running,
            view(json!({}), None),
            view(json!({"NetworkMode": "host"}), None),
            view(json!({"NetworkMode": "none"}), None),
            gone,
        ];
        assert!(views[0].endpoints.len() == 2 && !views[0].settings.exposed.is_empty());
        for v in &views {
            for running in [false, true] {
                let new = serde_json::to_value(network_settings(cid, running, v)).unwrap();
                assert_eq!(new, old_network_settings(cid, running, v), "{v:?}");
                let ports = serde_json::to_value(ps_ports(running, v)).unwrap();
                assert_eq!(ports, old_ports(running, v), "{v:?}");
            }
        }
    }
}
