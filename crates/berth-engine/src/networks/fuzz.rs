//! Bounded fuzzing (proptest) of what a network create body and a container create
//! body's network settings are read into: arbitrary JSON and well-formed bodies with
//! hostile values never panic, and what is accepted holds together (the gateway and the
//! range lie in the subnet, the MTU is in range, published ports parse).
//! Seeds: `tests/corpus/network_create.jsonl`, `tests/corpus/container_network.jsonl`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use berth_network::{bridge, Ipv4Net};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use berth_api_types::container::{ContainerConfig, HostConfig};
use berth_api_types::lenient;
use berth_api_types::network::{port_bindings, NetworkingConfig, PortBinding};
use berth_network::manager::{
    create_ipam, from_request, port_range, ContainerRequest, CtrNet, NetRecord,
};

use super::api::parse_create;
use super::fake::FakeDriver;
use super::settings::container_request;
use super::Networks;
use crate::fuzz_support::{arb_json, config, corpus, mutated};

const NET_KEYS: &[&str] = &[
    "Name",
    "Driver",
    "Options",
    "IPAM",
    "Config",
    "Subnet",
    "Gateway",
    "IPRange",
    "Labels",
    "Internal",
    "Attachable",
    "com.docker.network.driver.mtu",
    "com.docker.network.bridge.name",
    "EnableIPv6",
    "CheckDuplicate",
];

const NET_PATHS: &[&str] = &[
    "Name",
    "Driver",
    "Options",
    "Options|com.docker.network.driver.mtu",
    "Options|com.docker.network.bridge.name",
    "IPAM",
    "IPAM|Config",
    "IPAM|Config|0",
    "IPAM|Config|0|Subnet",
    "IPAM|Config|0|Gateway",
    "IPAM|Config|0|IPRange",
    "Labels",
    "Internal",
    "Attachable",
];

/// Subnets already taken by other networks.
fn taken() -> Vec<Ipv4Net> {
    ["172.17.0.0/16", "10.0.1.0/24"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
}

/// Runs the pure part of `network_create` and checks what it accepted.
fn check_network(body: &Value) {
    let Some(body) = body.as_object() else { return };
    // The engine's decoding (`network_create`): tolerant, so any object reads.
    let body: berth_api_types::network::NetworkCreateRequest =
        serde_json::from_value(Value::Object(body.clone())).unwrap();
    let id = "0123456789abcdef".repeat(4);
    let Ok(req) = parse_create(&body, 1500, || Ok(id.clone())) else {
        return;
    };
    assert_eq!(req.id, id);
    assert!(!req.name.is_empty());
    assert!((68..=65535).contains(&req.mtu), "mtu {}", req.mtu);
    assert!(bridge::valid_name(&req.bridge_name));
    let default: Ipv4Net = "172.18.0.0/16".parse().unwrap();
    let Ok(a) = create_ipam(&req, taken(), || Some(default)) else {
        return;
    };
    let (subnet, gateway, range) = (a.subnet, a.gateway, a.ip_range);
    assert!(a.aux.values().all(|x| subnet.contains(*x)));
    assert!(subnet.contains(gateway), "{subnet} lacks gateway {gateway}");
    assert!(taken().iter().all(|t| !t.overlaps(&subnet)) || req.subnet.is_none());
    if let Some(r) = range {
        assert!(subnet.contains(r.addr()) && r.prefix() >= subnet.prefix());
    }
    // What inspect later prints must parse back.
    assert_eq!(subnet.to_string().parse::<Ipv4Net>().unwrap(), subnet);
    let _ = subnet.nth(u32::MAX);
    let _ = subnet.nth(2);
}

fn good_network() -> Value {
    json!({
        "Name": "fuzznet",
        "Driver": "bridge",
        "Options": {"com.docker.network.driver.mtu": "1400"},
        "IPAM": {"Config": [{"Subnet": "172.28.0.0/16", "Gateway": "172.28.0.1", "IPRange": "172.28.5.0/24"}]},
        "Labels": {"a": "b"},
    })
}

const CTR_KEYS: &[&str] = &[
    "NetworkMode",
    "PortBindings",
    "HostIp",
    "HostPort",
    "ExposedPorts",
    "EndpointsConfig",
    "Aliases",
    "IPAMConfig",
    "IPv4Address",
    "MacAddress",
    "Dns",
    "DnsSearch",
    "DnsOptions",
    "ExtraHosts",
    "PublishAllPorts",
    "Hostname",
    "Domainname",
    "80/tcp",
    "bridge",
    "user",
];

const CTR_PATHS: &[&str] = &[
    "config|Hostname",
    "config|Domainname",
    "config|MacAddress",
    "config|ExposedPorts",
    "config|ExposedPorts|90/udp",
    "hc|NetworkMode",
    "hc|PortBindings",
    "hc|PortBindings|80/tcp",
    "hc|PortBindings|80/tcp|0|HostPort",
    "hc|PortBindings|80/tcp|0|HostIp",
    "hc|PublishAllPorts",
    "hc|Dns",
    "hc|ExtraHosts",
    "net|EndpointsConfig",
    "net|EndpointsConfig|user",
    "net|EndpointsConfig|user|Aliases",
    "net|EndpointsConfig|user|IPAMConfig|IPv4Address",
    "net|EndpointsConfig|user|MacAddress",
    "net|EndpointsConfig|bridge|Aliases",
    "net|EndpointsConfig|default",
];

/// Networks over a fake driver holding [`state`]'s two networks, for tests that need a
/// `Networks` (`_data_root`: where the real driver would keep its files).
pub(crate) fn test_networks(_data_root: &std::path::Path) -> std::sync::Arc<Networks> {
    std::sync::Arc::new(Networks::new(
        std::sync::Arc::new(FakeDriver::with(state())),
        Default::default(),
    ))
}

/// Two bridge networks: the default one (`aaa111`, 10.0.0.0/24) and "user" (`bbb222`,
/// 10.0.1.0/24); also the settings tests' state.
pub(crate) fn state() -> BTreeMap<String, NetRecord> {
    berth_network::fixtures::two_bridges()
}

/// The network request (container `c0ffee0123456789`) of a create body's `Config`, `HostConfig` and `NetworkingConfig`,
/// read as `container_create` reads them (`None`: create refuses the `HostConfig` or
/// `Config` before the network code sees it).
pub(crate) fn typed_request(
    name: &str,
    config: &Map<String, Value>,
    hc: &Map<String, Value>,
    net: Option<&Value>,
    peer: Option<String>,
) -> Option<ContainerRequest> {
    let config: ContainerConfig = serde_json::from_value(Value::Object(config.clone())).ok()?;
    let hc: HostConfig = serde_json::from_value(Value::Object(hc.clone())).ok()?;
    let net: NetworkingConfig = net
        .and_then(|n| serde_json::from_value(n.clone()).ok())
        .unwrap_or_default();
    Some(container_request(
        "c0ffee0123456789",
        name,
        &config,
        &hc,
        &net,
        peer,
    ))
}

/// What `HostConfig` says of networking, as the map-based code read it before the typed
/// model (the reference [`container_request`] is checked against).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OldHostNet {
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

/// What `Config` says of networking, as the map-based code read it.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OldConfigNet {
    #[serde(default, deserialize_with = "lenient::or_default")]
    hostname: String,
    #[serde(default, deserialize_with = "lenient::or_default")]
    domainname: String,
    #[serde(default, deserialize_with = "lenient::or_default")]
    mac_address: String,
    #[serde(default, deserialize_with = "lenient::or_default")]
    exposed_ports: Map<String, Value>,
}

/// The map-based `container_request` the typed one replaced.
fn old_container_request(
    cid: &str,
    name: &str,
    config: &Map<String, Value>,
    hc: &Map<String, Value>,
    networking: Option<&Value>,
    peer_id: Option<String>,
) -> ContainerRequest {
    let legacy_links = (hc.get("Links").and_then(Value::as_array))
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let hc: OldHostNet = serde_json::from_value(Value::Object(hc.clone())).unwrap_or_default();
    let config: OldConfigNet =
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
        legacy_links,
    }
}

/// Reads a container's network settings from `{"config", "hc", "net"}` and checks them.
fn check_container(v: &Value) {
    let obj = |k: &str| {
        v.get(k)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (config, hc) = (obj("config"), obj("hc"));
    let net = v.get("net");
    let peer = v.get("peer").and_then(Value::as_str).map(String::from);
    let Some(req) = typed_request("/n", &config, &hc, net, peer.clone()) else {
        return;
    };
    // The typed read is the map-based one it replaced, over the maps the record stored.
    let stored = |v: Value| v.as_object().cloned().unwrap_or_default();
    let config_t: ContainerConfig = serde_json::from_value(Value::Object(config)).unwrap();
    let hc_t: HostConfig = serde_json::from_value(Value::Object(hc)).unwrap();
    let old = old_container_request(
        "c0ffee0123456789",
        "/n",
        &stored(serde_json::to_value(&config_t).unwrap()),
        &stored(serde_json::to_value(&hc_t).unwrap()),
        net,
        peer,
    );
    assert_eq!(format!("{req:?}"), format!("{old:?}"));
    let Ok(c) = from_request(&state(), &req) else {
        return;
    };
    for spec in c.port_specs() {
        assert!(spec.port > 0);
        assert!(port_range(&spec.host_port).is_ok(), "{spec:?}");
        assert!(spec.host_ip.is_empty() || spec.host_ip.parse::<IpAddr>().is_ok());
    }
    if let Some(m) = &c.mac {
        // Six pairs of hex digits, as Go's `net.ParseMAC` wants them (no signs).
        assert_eq!(m.split(':').count(), 6, "{m}");
        assert!(
            m.split(':')
                .all(|x| x.len() == 2 && x.bytes().all(|b| b.is_ascii_hexdigit())),
            "MAC {m:?} accepted"
        );
    }
    let _ = c.dns_settings();
    // The record is stored as JSON and read back at every start.
    let back: CtrNet = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
    assert_eq!(back.bindings, c.bindings);
}

fn good_container() -> Value {
    json!({
        "config": {"Hostname": "", "ExposedPorts": {"90/udp": {}}},
        "hc": {
            "NetworkMode": "user",
            "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080-8081"}]},
            "Dns": ["1.1.1.1"],
        },
        "net": {"EndpointsConfig": {"user": {"Aliases": ["a"], "IPAMConfig": {"IPv4Address": "10.0.1.5"}}}},
    })
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn network_create_arbitrary_json(body in arb_json(NET_KEYS)) {
        check_network(&body);
    }

    #[test]
    fn network_create_hostile_fields(body in mutated(good_network(), NET_PATHS, NET_KEYS)) {
        check_network(&body);
    }

    #[test]
    fn network_create_subnet_text(
        subnet in "[0-9./-]{0,20}",
        gw in "[0-9.]{0,16}",
        range in "[0-9./]{0,20}",
    ) {
        let mut body = good_network();
        body["IPAM"]["Config"][0] = json!({"Subnet": subnet, "Gateway": gw, "IPRange": range});
        check_network(&body);
    }

    #[test]
    fn container_network_arbitrary_json(v in arb_json(CTR_KEYS)) {
        check_container(&json!({"config": v.clone(), "hc": v.clone(), "net": v}));
    }

    #[test]
    fn container_network_hostile_fields(v in mutated(good_container(), CTR_PATHS, CTR_KEYS)) {
        check_container(&v);
    }
}

#[test]
fn network_create_corpus() {
    for body in corpus("network_create.jsonl") {
        check_network(&body);
    }
}

#[test]
fn container_network_corpus() {
    for v in corpus("container_network.jsonl") {
        check_container(&v);
    }
}

/// The well-formed seeds are accepted whole, so the hostile variants start deep.
#[test]
fn good_bodies_are_accepted() {
    let body = good_network();
    let body = serde_json::from_value(body).unwrap();
    let req = parse_create(&body, 1500, || Ok("f".repeat(64))).unwrap();
    create_ipam(&req, taken(), || None).unwrap();
    let v = good_container();
    let obj = |k: &str| v[k].as_object().unwrap().clone();
    let req = typed_request("/n", &obj("config"), &obj("hc"), v.get("net"), None).unwrap();
    from_request(&state(), &req).unwrap();
}
