//! The network API: create, list, inspect, remove, prune, connect, disconnect, and the
//! Docker-shaped JSON of a network, over the driver's records. Name resolution (ID, name,
//! unique ID prefix), filters, checks that need no records, and events are here; what
//! must hold under the driver's lock (unique names, free subnets, no active endpoints) is
//! the driver's.

use std::collections::BTreeMap;

use berth_api_types::filters::{glob_match, Filters, GlobError, MAX_PATTERN_LEN};
use berth_api_types::network::{
    ConfigReference, EndpointSettings, Ipam, IpamConfig, NetworkConnectRequest, NetworkContainer,
    NetworkCreateRequest, NetworkCreateResponse, NetworkDisconnectRequest, NetworkInspect,
    NetworkPruneResponse,
};
use berth_api_types::timestamp::parse_nanos;
use berth_network::bridge;
use berth_network::manager::{
    parse_bool, CreateRequest, EndpointStatus, NetRecord, HOST_BINDING_IPV4,
};
use berth_sys::pidfd::ProcessHandle;
use serde_json::{Map, Value};

use super::{net_err, random_hex, Networks};
use crate::{Engine, EngineError};

const PREDEFINED: [&str; 3] = ["bridge", "host", "none"];

fn network_inspect(r: &NetRecord) -> NetworkInspect {
    let mut config = Vec::new();
    if let Some(subnet) = r.subnet {
        config.push(IpamConfig {
            subnet: Some(subnet.to_string()),
            gateway: r
                .gateway
                .filter(|_| !r.user_ipam || r.gateway_given)
                .map(|g| g.to_string()),
            ip_range: r.ip_range.map(|x| x.to_string()),
            aux_address: (!r.aux.is_empty()).then(|| {
                r.aux
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect()
            }),
        });
    }
    if let Some(subnet) = r.subnet6 {
        // As given: the gateway only when the client named it.
        config.push(IpamConfig {
            subnet: Some(subnet.to_string()),
            gateway: r
                .gateway6
                .filter(|_| r.gateway6_given)
                .map(|g| g.to_string()),
            ip_range: r.ip_range6.map(|x| x.to_string()),
            aux_address: None,
        });
    }
    let prefix6 = r.subnet6.map(|s| s.prefix()).unwrap_or(128);
    let containers = r
        .endpoints
        .iter()
        .map(|(cid, ep)| {
            let c = NetworkContainer {
                name: ep.name.clone(),
                endpoint_id: ep.endpoint_id.clone(),
                mac_address: ep.mac.clone(),
                ipv4_address: format!("{}/{}", ep.ip, r.subnet.map(|s| s.prefix()).unwrap_or(32)),
                ipv6_address: ep
                    .ip6
                    .map(|ip| format!("{ip}/{prefix6}"))
                    .unwrap_or_default(),
            };
            (cid.clone(), c)
        })
        .collect();
    NetworkInspect {
        name: r.name.clone(),
        id: r.id.clone(),
        created: r.created.clone(),
        scope: "local".into(),
        driver: r.driver.clone(),
        enable_ipv4: true,
        enable_ipv6: r.ipv6,
        ipam: Ipam {
            driver: "default".into(),
            options: r.user_ipam.then(BTreeMap::new),
            config,
        },
        internal: r.internal,
        attachable: r.attachable,
        ingress: false,
        config_from: ConfigReference::default(),
        config_only: false,
        containers,
        options: r.options.clone(),
        labels: r.labels.clone(),
    }
}

fn label_match(labels: &Map<String, Value>, filter: &str) -> bool {
    let (k, v) = filter
        .split_once('=')
        .map_or((filter, None), |(k, v)| (k, Some(v)));
    match labels.get(k) {
        Some(Value::String(s)) => v.is_none_or(|v| v == s),
        _ => false,
    }
}

/// Whether `r` passes the list/prune filters.
fn matches(r: &NetRecord, f: &Filters) -> Result<bool, EngineError> {
    let any = |key: &str, pred: &dyn Fn(&str) -> bool| {
        let v = f.get(key);
        v.is_empty() || v.iter().any(|x| pred(x))
    };
    let builtin = PREDEFINED.contains(&r.name.as_str());
    for t in f.get("type") {
        if t != "custom" && t != "builtin" {
            return Err(EngineError::InvalidArgument(format!(
                "invalid filter: 'type'='{t}'"
            )));
        }
    }
    let dangling = f.bool_value("dangling").map_err(EngineError::from)?;
    // dockerd matches names as regular expressions and skips one that does not
    // compile; here a malformed glob is only a substring, but a long one is refused.
    if f.get("name").iter().any(|n| n.len() > MAX_PATTERN_LEN) {
        return Err(EngineError::InvalidArgument(GlobError::TooLong.to_string()));
    }
    Ok(any("driver", &|d| d == r.driver)
        && any("id", &|i| r.id.starts_with(i))
        && any("name", &|n| {
            r.name.contains(n) || glob_match(n, &r.name).unwrap_or(false)
        })
        && any("scope", &|s| s == "local")
        && any("type", &|t| (t == "builtin") == builtin)
        && f.get("label").iter().all(|l| label_match(&r.labels, l))
        && dangling.is_none_or(|d| d == (r.endpoints.is_empty() && !builtin)))
}

/// Reads the create body (moby's checks and words, in its order; nothing here looks at
/// the other networks or the host). `new_id` makes the network's ID, which names the
/// bridge unless the options do. `created` is left for the caller.
pub(crate) fn parse_create(
    body: &NetworkCreateRequest,
    default_mtu: u32,
    new_id: impl FnOnce() -> Result<String, EngineError>,
) -> Result<CreateRequest, EngineError> {
    let name = body.name.clone();
    if name.is_empty() {
        return Err(EngineError::InvalidArgument(
            "network name cannot be empty".into(),
        ));
    }
    let driver = if body.driver.is_empty() {
        "bridge"
    } else {
        body.driver.as_str()
    };
    if PREDEFINED.contains(&name.as_str()) {
        return Err(EngineError::Forbidden(format!(
            "{name} is a pre-defined network and cannot be created"
        )));
    }
    // The host and null drivers hold one network each, made by the daemon (libnetwork).
    if driver == "host" || driver == "null" {
        return Err(EngineError::Forbidden(format!(
            "only one instance of \"{driver}\" network is allowed"
        )));
    }
    if driver != "bridge" {
        return Err(EngineError::NotFound(format!(
            "plugin \"{driver}\" not found"
        )));
    }
    // libnetwork: the bridge driver's scope is local.
    if body.ingress {
        return Err(EngineError::Forbidden(
            "Ingress network can only be global scope network".into(),
        ));
    }
    let options = body.options.clone();
    let opt = |k: &str| options.get(k).and_then(Value::as_str).map(String::from);
    for key in [
        "com.docker.network.bridge.enable_ip_masquerade",
        "com.docker.network.bridge.enable_icc",
    ] {
        if let Some(v) = opt(key) {
            if parse_bool(&v).is_none() {
                return Err(EngineError::InvalidArgument(format!(
                    "failed to parse {key} value: {v} (strconv.ParseBool: parsing \"{v}\": invalid syntax)"
                )));
            }
        }
    }
    let mtu = match opt("com.docker.network.driver.mtu") {
        Some(m) => m
            .parse::<u32>()
            .ok()
            .filter(|m| (68..=65535).contains(m))
            .ok_or_else(|| EngineError::InvalidArgument(format!("invalid MTU number: {m}")))?,
        None => default_mtu,
    };
    if let Some(v) = opt(HOST_BINDING_IPV4) {
        if v.parse::<std::net::Ipv4Addr>().is_err() {
            return Err(EngineError::InvalidArgument(format!(
                "invalid {HOST_BINDING_IPV4}: {v} is not an IPv4 address"
            )));
        }
    }
    let id = new_id()?;
    let bridge_name = opt("com.docker.network.bridge.name")
        .unwrap_or_else(|| format!("br-{}", id.get(..12).unwrap_or(&id)));
    if !bridge::valid_name(&bridge_name) {
        return Err(EngineError::InvalidArgument(format!(
            "invalid bridge name: {bridge_name}"
        )));
    }
    // IPAM configs by family: an IPv6 one names an IPv6 subnet (or, without one, gateway
    // or range). The bridge driver takes one of each (libnetwork's words and status).
    let (v6, v4): (Vec<&IpamConfig>, Vec<&IpamConfig>) = body.ipam.config.iter().partition(|c| {
        [&c.subnet, &c.gateway, &c.ip_range]
            .into_iter()
            .find_map(IpamConfig::given)
            .is_some_and(|s| s.contains(':'))
    });
    if v4.len() > 1 || v6.len() > 1 {
        return Err(EngineError::Forbidden(
            "bridge driver doesn't support multiple subnets".into(),
        ));
    }
    let first = v4.first().copied().cloned().unwrap_or_default();
    let first6 = v6.first().copied().cloned().unwrap_or_default();
    Ok(CreateRequest {
        id,
        name,
        mtu,
        bridge_name,
        subnet: IpamConfig::given(&first.subnet),
        gateway: IpamConfig::given(&first.gateway),
        ip_range: IpamConfig::given(&first.ip_range),
        aux: first.aux_address.clone().unwrap_or_default(),
        enable_ipv6: body.enable_ipv6 == Some(true),
        subnet6: IpamConfig::given(&first6.subnet),
        gateway6: IpamConfig::given(&first6.gateway),
        ip_range6: IpamConfig::given(&first6.ip_range),
        options,
        internal: body.internal,
        attachable: body.attachable,
        labels: body.labels.clone(),
        created: String::new(),
    })
}

/// A response as JSON (these structs hold only strings, numbers and maps: serialising
/// them cannot fail).
fn to_value<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A request body read tolerantly (every field of these types is, so any object reads).
fn read_body<T: serde::de::DeserializeOwned>(body: Map<String, Value>) -> Result<T, EngineError> {
    serde_json::from_value(Value::Object(body))
        .map_err(|e| EngineError::InvalidArgument(e.to_string()))
}

impl Networks {
    /// The ID of network `name` (full ID, exact name, or unique ID prefix: moby
    /// `FindNetwork`) and the records it was found in.
    fn lookup(&self, name: &str) -> Result<(String, BTreeMap<String, NetRecord>), EngineError> {
        let nets = self.driver.networks();
        let id = berth_network::manager::find(&nets, name).map_err(net_err)?;
        Ok((id, nets))
    }

    /// `POST /networks/create` once the body is read: the driver makes it; the event.
    fn create(&self, mut req: CreateRequest) -> Result<String, EngineError> {
        req.created = crate::system::now_rfc3339();
        let r = self.driver.create_network(req).map_err(net_err)?;
        self.events.emit(
            "network",
            "create",
            &r.id,
            &[("name", &r.name), ("type", "bridge")],
        );
        Ok(r.id)
    }

    /// `GET /networks`.
    fn list(&self, filters: &Filters) -> Result<Vec<Value>, EngineError> {
        filters
            .allow_only(&["driver", "id", "label", "name", "scope", "type", "dangling"])
            .map_err(EngineError::from)?;
        let mut out = Vec::new();
        for r in self.driver.networks().values() {
            if matches(r, filters)? {
                let mut v = network_inspect(r);
                // dockerd lists networks without their containers.
                v.containers.clear();
                out.push((r.created.clone(), to_value(v)));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out.into_iter().map(|(_, v)| v).collect())
    }

    /// `GET /networks/{id}`.
    fn inspect(&self, name: &str) -> Result<Value, EngineError> {
        let (id, nets) = self.lookup(name)?;
        let r = nets
            .get(&id)
            .ok_or_else(|| EngineError::NotFound(format!("network {name} not found")))?;
        Ok(to_value(network_inspect(r)))
    }

    /// `DELETE /networks/{id}`.
    fn delete(&self, name: &str) -> Result<(), EngineError> {
        let (id, nets) = self.lookup(name)?;
        if let Some(r) = nets.get(&id) {
            if PREDEFINED.contains(&r.name.as_str()) {
                return Err(EngineError::Forbidden(format!(
                    "{} is a pre-defined network and cannot be removed",
                    r.name
                )));
            }
        }
        let (r, errors) = self.driver.remove_network(&id).map_err(net_err)?;
        self.events.emit(
            "network",
            "destroy",
            &r.id,
            &[("name", &r.name), ("type", "bridge")],
        );
        if errors.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Internal(errors.join("; ")))
        }
    }

    /// The names of the networks `POST /networks/prune` removes: user networks without
    /// endpoints, created before `until`, that pass the label filters.
    fn prunable(&self, filters: &Filters) -> Result<Vec<String>, EngineError> {
        filters
            .allow_only(&["label", "label!", "until"])
            .map_err(EngineError::from)?;
        // Networks created after `until` stay (moby `prune`); this filter was once accepted
        // and ignored, so every unused network went.
        let until = filters
            .until(crate::events::now_nanos())
            .map_err(EngineError::from)?;
        Ok(self
            .driver
            .networks()
            .values()
            .filter(|r| !PREDEFINED.contains(&r.name.as_str()) && r.endpoints.is_empty())
            .filter(|r| {
                until.is_none_or(|u| parse_nanos(&r.created, 0).is_ok_and(|created| created <= u))
            })
            .filter(|r| {
                filters
                    .get("label")
                    .iter()
                    .all(|l| label_match(&r.labels, l))
            })
            .filter(|r| {
                !filters
                    .get("label!")
                    .iter()
                    .any(|l| label_match(&r.labels, l))
            })
            .map(|r| r.name.clone())
            .collect())
    }

    /// `POST /networks/{id}/connect` of container `cid` (running: its init `process`).
    /// Returns the new attachment as the driver made it (network, endpoint).
    fn connect(
        &self,
        net: &str,
        cid: &str,
        ec: &EndpointSettings,
        running: bool,
        process: Option<&ProcessHandle>,
    ) -> Result<EndpointStatus, EngineError> {
        let status = self
            .driver
            .connect(cid, net, ec, running, process)
            .map_err(net_err)?;
        // A running container's connect event comes from the driver, once plugged.
        if let Some(r) = status.network.as_ref().filter(|_| !running) {
            self.events.emit(
                "network",
                "connect",
                &r.id,
                &[("container", cid), ("name", &r.name), ("type", "bridge")],
            );
        }
        Ok(status)
    }

    /// `POST /networks/{id}/disconnect` of container `cid`.
    fn disconnect(&self, net: &str, cid: &str) -> Result<(), EngineError> {
        let (r, plugged) = self.driver.disconnect(cid, net).map_err(net_err)?;
        if !plugged {
            self.events.emit(
                "network",
                "disconnect",
                &r.id,
                &[("container", cid), ("name", &r.name), ("type", "bridge")],
            );
        }
        Ok(())
    }
}

impl Engine {
    /// `POST /networks/create`.
    #[tracing::instrument(skip_all, fields(network = tracing::field::Empty))]
    pub async fn network_create(&self, body: Map<String, Value>) -> Result<Value, EngineError> {
        let body: NetworkCreateRequest = read_body(body)?;
        let req = parse_create(&body, self.config.network.mtu, || random_hex(32))?;
        tracing::Span::current().record("network", tracing::field::debug(&body.name));
        let n = self.networks.clone();
        let id = crate::blocking::spawn(move || n.create(req))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))??;
        Ok(to_value(NetworkCreateResponse {
            id,
            warning: String::new(),
        }))
    }

    /// `GET /networks`.
    pub async fn network_list(&self, filters: &Filters) -> Result<Vec<Value>, EngineError> {
        self.networks.list(filters)
    }

    /// `GET /networks/{id}`.
    pub async fn network_inspect(&self, name: &str) -> Result<Value, EngineError> {
        self.networks.inspect(name)
    }

    /// `DELETE /networks/{id}`.
    #[tracing::instrument(skip_all, fields(network = ?name))]
    pub async fn network_delete(&self, name: &str) -> Result<(), EngineError> {
        let (n, name) = (self.networks.clone(), name.to_string());
        crate::blocking::spawn(move || n.delete(&name))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?
    }

    /// `POST /networks/prune`: user networks without endpoints.
    pub async fn network_prune(&self, filters: &Filters) -> Result<Value, EngineError> {
        let names = self.networks.prunable(filters)?;
        let mut deleted = Vec::new();
        for name in names {
            match self.network_delete(&name).await {
                Ok(()) => deleted.push(name),
                Err(e) => tracing::warn!(network = %name, error = %e, "prune: cannot remove"),
            }
        }
        Ok(to_value(NetworkPruneResponse {
            networks_deleted: deleted,
        }))
    }

    /// `POST /networks/{id}/connect`.
    #[tracing::instrument(skip_all, fields(network = ?net, container_id = tracing::field::Empty))]
    pub async fn network_connect(
        &self,
        net: &str,
        body: Map<String, Value>,
    ) -> Result<(), EngineError> {
        let body: NetworkConnectRequest = read_body(body)?;
        let brief = self.container_brief(&body.container)?;
        tracing::Span::current().record("container_id", tracing::field::display(&brief.id));
        let ec = body.endpoint_config.unwrap_or_default();
        let (n, net) = (self.networks.clone(), net.to_string());
        crate::blocking::spawn(move || {
            n.connect(&net, &brief.id, &ec, brief.running, brief.process.as_ref())
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?
        .map(drop)
    }

    /// `POST /networks/{id}/disconnect`.
    #[tracing::instrument(skip_all, fields(network = ?net, container_id = tracing::field::Empty))]
    pub async fn network_disconnect(
        &self,
        net: &str,
        body: Map<String, Value>,
    ) -> Result<(), EngineError> {
        let body: NetworkDisconnectRequest = read_body(body)?;
        let brief = self.container_brief(&body.container)?;
        tracing::Span::current().record("container_id", tracing::field::display(&brief.id));
        let (n, net) = (self.networks.clone(), net.to_string());
        crate::blocking::spawn(move || n.disconnect(&net, &brief.id))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use std::sync::Arc;

    use berth_network::manager::Endpoint;

    use super::*;
    use crate::events::EventBus;
    use crate::networks::fake::FakeDriver;

    /// The hand-built JSON the typed [`NetworkInspect`] replaced, kept as the reference
    /// (endpoint names: the driver's records name endpoints by their containers).
    fn old_json(r: &NetRecord) -> Value {
        let mut cfg = Vec::new();
        if let Some(subnet) = r.subnet {
            let mut c = json!({"Subnet": subnet.to_string()});
            if !r.user_ipam || r.gateway_given {
                if let Some(gw) = r.gateway {
                    c["Gateway"] = json!(gw.to_string());
                }
            }
            if let Some(range) = r.ip_range {
                c["IPRange"] = json!(range.to_string());
            }
            cfg.push(c);
        }
        let mut containers = Map::new();
        for (cid, ep) in &r.endpoints {
            let name = ep.name.clone();
            containers.insert(
                cid.clone(),
                json!({
                    "Name": name,
                    "EndpointID": ep.endpoint_id,
                    "MacAddress": ep.mac,
                    "IPv4Address": format!("{}/{}", ep.ip, r.subnet.map(|s| s.prefix()).unwrap_or(32)),
                    "IPv6Address": "",
                }),
            );
        }
        json!({
            "Name": r.name,
            "Id": r.id,
            "Created": r.created,
            "Scope": "local",
            "Driver": r.driver,
            "EnableIPv4": true,
            "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": if r.user_ipam { json!({}) } else { Value::Null }, "Config": cfg},
            "Internal": r.internal,
            "Attachable": r.attachable,
            "Ingress": false,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": false,
            "Containers": containers,
            "Options": r.options,
            "Labels": r.labels,
        })
    }

    #[test]
    fn inspect_json_is_what_it_was() {
        let mut nets = crate::networks::fuzz::state();
        let mut host = nets["aaa111"].clone();
        host.id = "ccc333".into();
        host.name = "host".into();
        host.driver = "host".into();
        host.subnet = None;
        host.bridge = String::new();
        nets.insert(host.id.clone(), host);
        let user = nets.get_mut("bbb222").unwrap();
        user.user_ipam = true;
        user.gateway = Some("10.0.1.1".parse().unwrap());
        user.ip_range = Some("10.0.1.128/25".parse().unwrap());
        user.internal = true;
        user.labels.insert("a".into(), json!("b"));
        user.options
            .insert("com.docker.network.driver.mtu".into(), json!("1400"));
        user.endpoints.insert(
            "c0ffee".into(),
            Endpoint {
                endpoint_id: "e1".into(),
                ip: "10.0.1.130".parse().unwrap(),
                mac: "02:42:0a:00:01:82".into(),
                name: "web".into(),
                aliases: vec!["w".into()],
                veth: "veth1".into(),
                ip6: None,
            },
        );
        let def = nets.get_mut("aaa111").unwrap();
        def.gateway = Some("10.0.0.1".parse().unwrap());
        for gateway_given in [false, true] {
            nets.get_mut("bbb222").unwrap().gateway_given = gateway_given;
            for r in nets.values() {
                let new = to_value(network_inspect(r));
                assert_eq!(new, old_json(r), "{}", r.name);
                assert_eq!(new.to_string(), old_json(r).to_string());
            }
        }
    }

    /// Networks over the fake driver (the default bridge and "user"), and their events.
    fn fixture() -> (Arc<Networks>, Arc<FakeDriver>, Arc<EventBus>) {
        let fake = Arc::new(FakeDriver::with(crate::networks::fuzz::state()));
        let events = Arc::new(EventBus::default());
        let n = Arc::new(Networks::new(fake.clone(), events.clone()));
        (n, fake, events)
    }

    fn events(bus: &EventBus) -> Vec<String> {
        bus.subscribe(Some(0))
            .past
            .iter()
            .map(|e| format!("{} {} {}", e.typ, e.action, e.actor_id))
            .collect()
    }

    fn create_body(v: Value) -> CreateRequest {
        let body: NetworkCreateRequest = serde_json::from_value(v).unwrap();
        parse_create(&body, 1500, || Ok("d".repeat(64))).unwrap()
    }

    #[test]
    fn create_refusals_are_dockerds() {
        let refused = |v: Value| {
            let body: NetworkCreateRequest = serde_json::from_value(v).unwrap();
            parse_create(&body, 1500, || Ok("d".repeat(64))).unwrap_err()
        };
        let e = refused(json!({"Name": "h", "Driver": "host"}));
        assert!(matches!(e, EngineError::Forbidden(_)), "{e}");
        assert_eq!(
            e.to_string(),
            "only one instance of \"host\" network is allowed"
        );
        let e = refused(json!({"Name": "n", "Driver": "null"}));
        assert_eq!(
            e.to_string(),
            "only one instance of \"null\" network is allowed"
        );
        let e = refused(json!({"Name": "i", "Ingress": true}));
        assert!(matches!(e, EngineError::Forbidden(_)), "{e}");
        assert_eq!(
            e.to_string(),
            "Ingress network can only be global scope network"
        );
        let e = refused(json!({"Name": "m",
            "Options": {"com.docker.network.bridge.enable_icc": "nah"}}));
        assert!(matches!(e, EngineError::InvalidArgument(_)), "{e}");
        let e = refused(json!({"Name": "b",
            "Options": {"com.docker.network.bridge.host_binding_ipv4": "::1"}}));
        assert!(matches!(e, EngineError::InvalidArgument(_)), "{e}");
        // One subnet per family (libnetwork's bridge driver), IPv6 ones told apart.
        for two in [
            json!([{"Subnet": "10.1.0.0/24"}, {"Subnet": "10.2.0.0/24"}]),
            json!([{"Subnet": "fd00:1::/64"}, {"Gateway": "fd00:2::1"}]),
        ] {
            let e = refused(json!({"Name": "s", "IPAM": {"Config": two}}));
            assert!(matches!(e, EngineError::Forbidden(_)), "{e}");
            assert_eq!(
                e.to_string(),
                "bridge driver doesn't support multiple subnets"
            );
        }
        let req = create_body(json!({"Name": "d", "EnableIPv6": true, "IPAM": {"Config": [
            {"Subnet": "fd00:1::/64", "Gateway": "fd00:1::fe", "IPRange": "fd00:1::100/120"},
            {"Subnet": "10.1.0.0/24"}]}}));
        assert!(req.enable_ipv6);
        assert_eq!(req.subnet.as_deref(), Some("10.1.0.0/24"));
        assert_eq!(
            (
                req.subnet6.as_deref(),
                req.gateway6.as_deref(),
                req.ip_range6.as_deref()
            ),
            (
                Some("fd00:1::/64"),
                Some("fd00:1::fe"),
                Some("fd00:1::100/120")
            )
        );
        // What is accepted: Go booleans, auxiliary addresses.
        let req = create_body(json!({"Name": "ok", "EnableIPv6": false,
            "Options": {"com.docker.network.bridge.enable_ip_masquerade": "0"},
            "IPAM": {"Config": [{"Subnet": "10.7.0.0/24",
                "AuxiliaryAddresses": {"a": "10.7.0.5"}}]}}));
        assert_eq!(req.aux.get("a").map(String::as_str), Some("10.7.0.5"));
    }

    #[test]
    fn create_inspect_list_delete_over_the_driver() {
        // As the engine's blocking threads call this layer.
        let _blocking = crate::blocking::as_blocking_thread();
        let (n, _, bus) = fixture();
        let req = create_body(json!({"Name": "web", "Labels": {"tier": "front"},
            "IPAM": {"Config": [{"Subnet": "10.7.0.0/24"}]}}));
        let id = n.create(req).unwrap();
        assert_eq!(id, "d".repeat(64));
        // By name, full ID and unique prefix.
        for name in ["web", id.as_str(), "ddd"] {
            let v = n.inspect(name).unwrap();
            assert_eq!(v["Id"], id.as_str());
            assert_eq!(v["IPAM"]["Config"], json!([{"Subnet": "10.7.0.0/24"}]));
            assert_eq!(v["IPAM"]["Options"], json!({}));
            assert_eq!(v["Labels"], json!({"tier": "front"}));
            assert_ne!(v["Created"], "");
        }
        let e = n.inspect("nope").unwrap_err();
        assert!(matches!(e, EngineError::NotFound(_)), "{e}");
        // The driver refuses a second network of that name.
        let again = n.create(create_body(json!({"Name": "web"}))).unwrap_err();
        assert!(matches!(again, EngineError::Conflict(_)), "{again}");
        let f = Filters::parse(Some(r#"{"label": ["tier=front"]}"#)).unwrap();
        let listed = n.list(&f).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["Containers"], json!({}));
        assert_eq!(n.prunable(&Filters::default()).unwrap(), ["user", "web"]);
        let e = n.delete("bridge").unwrap_err();
        assert_eq!(
            e.to_string(),
            "bridge is a pre-defined network and cannot be removed"
        );
        n.delete("web").unwrap();
        assert!(n.inspect("web").is_err());
        let create = format!("network create {id}");
        let destroy = format!("network destroy {id}");
        assert_eq!(events(&bus), [create, destroy]);
    }

    #[test]
    fn connect_and_disconnect_a_stopped_container() {
        // As the engine's blocking threads call this layer.
        let _blocking = crate::blocking::as_blocking_thread();
        let (n, fake, bus) = fixture();
        let hc = json!({"NetworkMode": "bridge"});
        let req = crate::networks::fuzz::typed_request(
            "/c",
            &Map::new(),
            hc.as_object().unwrap(),
            None,
            None,
        )
        .unwrap();
        fake.seed(&req).unwrap();
        let ec: EndpointSettings = serde_json::from_value(
            json!({"Aliases": ["db"], "IPAMConfig": {"IPv4Address": "10.0.1.9"}}),
        )
        .unwrap();
        let status = n
            .connect("user", "c0ffee0123456789", &ec, false, None)
            .unwrap();
        let e = n
            .connect("user", "c0ffee0123456789", &ec, false, None)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "endpoint with name c already exists in network user"
        );
        let settings = to_value(n.inspect_settings("c0ffee0123456789", false).unwrap());
        let user = &settings["Networks"]["user"];
        assert_eq!(user["NetworkID"], "bbb222");
        assert_eq!(user["Aliases"], json!(["db"]));
        assert_eq!(user["IPAMConfig"], json!({"IPv4Address": "10.0.1.9"}));
        // What connect returned is what inspect shows.
        let returned =
            super::super::settings::endpoint_settings("c0ffee0123456789", "c", false, &status);
        assert_eq!(&to_value(returned.unwrap()), user);
        // Stopped: no endpoint, so no address shown.
        assert_eq!(user["IPAddress"], "");
        assert_eq!(settings["Networks"]["bridge"]["NetworkID"], "aaa111");
        n.disconnect("user", "c0ffee0123456789").unwrap();
        let e = n.disconnect("user", "c0ffee0123456789").unwrap_err();
        assert!(matches!(e, EngineError::Forbidden(_)), "{e}");
        let settings = to_value(n.inspect_settings("c0ffee0123456789", false).unwrap());
        assert!(settings["Networks"].get("user").is_none());
        assert_eq!(
            events(&bus),
            ["network connect bbb222", "network disconnect bbb222"]
        );
    }

    fn typed(hc: Value) -> berth_api_types::container::HostConfig {
        serde_json::from_value(hc).unwrap()
    }

    #[tokio::test]
    async fn container_steps_reach_the_driver() {
        let (n, fake, _) = fixture();
        let cid = "c0ffee0123456789";
        let register = |hc: Value| {
            let n = n.clone();
            async move {
                let hc = typed(hc);
                n.register(
                    cid,
                    "/c",
                    &Default::default(),
                    &hc,
                    &Default::default(),
                    None,
                )
                .await
            }
        };
        let hc = json!({"NetworkMode": "user", "PortBindings": {"80/tcp": [{"HostPort": "x"}]}});
        let e = register(hc).await.unwrap_err();
        assert!(matches!(e, EngineError::InvalidArgument(_)), "{e}");
        let e = register(json!({"NetworkMode": "container:abc"}))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "No such container: abc");
        register(json!({"NetworkMode": "user"})).await.unwrap();
        let plan = n.prepare(cid, None).await.unwrap();
        assert_eq!(plan.ns, berth_runtime::spec::NamespaceMode::Private);
        n.rename(cid, "/d").await;
        let (n2, c2) = (n.clone(), cid.to_string());
        crate::blocking::spawn(move || n2.unplug(&c2))
            .await
            .unwrap();
        let settings = to_value(n.inspect_settings(cid, false).unwrap());
        assert!(settings["Networks"]["user"].is_object());
        n.forget(cid).await;
        assert!(n.inspect_settings(cid, false).is_none());
        assert_eq!(
            fake.calls(),
            [
                format!("prepare {cid}"),
                format!("unplug {cid}"),
                format!("forget {cid}")
            ]
        );
    }
}
