//! The network API: create, list, inspect, remove, prune, connect, disconnect, and the
//! Docker-shaped JSON of a network.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use berth_api_types::filters::{glob_match, Filters, GlobError, MAX_PATTERN_LEN};
use berth_api_types::network::{
    ConfigReference, Ipam, IpamConfig, NetworkContainer, NetworkCreateRequest,
    NetworkCreateResponse, NetworkInspect, NetworkPruneResponse,
};
use berth_api_types::timestamp::parse_nanos;
use berth_network::{bridge, ipam, Ipv4Net};
use serde_json::{json, Map, Value};

use super::{net_err, random_hex, NetRecord, Networks, State};
use crate::{Engine, EngineError};

const PREDEFINED: [&str; 3] = ["bridge", "host", "none"];

fn network_inspect(r: &NetRecord, st: &State) -> NetworkInspect {
    let mut config = Vec::new();
    if let Some(subnet) = r.subnet {
        config.push(IpamConfig {
            subnet: Some(subnet.to_string()),
            gateway: r
                .gateway
                .filter(|_| !r.user_ipam || r.gateway_given)
                .map(|g| g.to_string()),
            ip_range: r.ip_range.map(|x| x.to_string()),
        });
    }
    let containers = r
        .endpoints
        .iter()
        .map(|(cid, ep)| {
            let name = st
                .ctrs
                .get(cid)
                .map(|c| c.name.clone())
                .unwrap_or_else(|| ep.name.clone());
            let c = NetworkContainer {
                name,
                endpoint_id: ep.endpoint_id.clone(),
                mac_address: ep.mac.clone(),
                ipv4_address: format!("{}/{}", ep.ip, r.subnet.map(|s| s.prefix()).unwrap_or(32)),
                ipv6_address: String::new(),
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
        enable_ipv6: false,
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

/// A response as JSON (these structs hold only strings, numbers and maps: serialising
/// them cannot fail).
fn to_value<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
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

impl Networks {
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
        let dangling = f
            .bool_value("dangling")
            .map_err(EngineError::InvalidArgument)?;
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
}

/// `POST /networks/create`'s body, read and checked on its own (nothing here looks at the
/// other networks or the host).
#[derive(Debug, Clone)]
pub(crate) struct CreateRequest {
    pub name: String,
    pub options: Map<String, Value>,
    pub mtu: u32,
    pub bridge_name: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
}

/// Reads the create body (moby's checks and words, in its order). `new_id` makes the
/// network's ID, which names the bridge unless the options do.
pub(crate) fn parse_create(
    body: &NetworkCreateRequest,
    default_mtu: u32,
    new_id: impl FnOnce() -> Result<String, EngineError>,
) -> Result<(String, CreateRequest), EngineError> {
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
    if driver != "bridge" {
        return Err(EngineError::NotFound(format!(
            "plugin \"{driver}\" not found"
        )));
    }
    let options = body.options.clone();
    let opt = |k: &str| options.get(k).and_then(Value::as_str).map(String::from);
    let mtu = match opt("com.docker.network.driver.mtu") {
        Some(m) => m
            .parse::<u32>()
            .ok()
            .filter(|m| (68..=65535).contains(m))
            .ok_or_else(|| EngineError::InvalidArgument(format!("invalid MTU number: {m}")))?,
        None => default_mtu,
    };
    let id = new_id()?;
    let bridge_name = opt("com.docker.network.bridge.name")
        .unwrap_or_else(|| format!("br-{}", id.get(..12).unwrap_or(&id)));
    if !bridge::valid_name(&bridge_name) {
        return Err(EngineError::InvalidArgument(format!(
            "invalid bridge name: {bridge_name}"
        )));
    }
    let first = body.ipam.config.first().cloned().unwrap_or_default();
    let req = CreateRequest {
        name,
        mtu,
        bridge_name,
        subnet: IpamConfig::given(&first.subnet),
        gateway: IpamConfig::given(&first.gateway),
        ip_range: IpamConfig::given(&first.ip_range),
        options,
    };
    Ok((id, req))
}

/// The subnet, gateway and IP range of a new network: the requested ones checked against
/// the `taken` subnets, or `next` free subnet of the pools.
pub(crate) fn create_ipam(
    req: &CreateRequest,
    taken: impl IntoIterator<Item = Ipv4Net>,
    next: impl FnOnce() -> Option<Ipv4Net>,
) -> Result<(Ipv4Net, Ipv4Addr, Option<Ipv4Net>), EngineError> {
    let subnet = match &req.subnet {
        Some(s) => {
            let net: Ipv4Net = s.parse().map_err(|e: berth_network::NetError| {
                EngineError::InvalidArgument(format!("Invalid subnet {s} : {e}"))
            })?;
            if taken.into_iter().any(|o| o.overlaps(&net)) {
                return Err(EngineError::Forbidden(
                    "Pool overlaps with other one on this address space".into(),
                ));
            }
            net
        }
        None => {
            if req.gateway.is_some() || req.ip_range.is_some() {
                return Err(EngineError::InvalidArgument(
                    "ipRange or gateway given without a subnet".into(),
                ));
            }
            next().ok_or_else(|| {
                EngineError::Forbidden(
                    "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into(),
                )
            })?
        }
    };
    let gateway = match &req.gateway {
        Some(g) => {
            let ip: Ipv4Addr = g.parse().map_err(|_| {
                EngineError::InvalidArgument(format!("invalid gateway address {g}"))
            })?;
            if !subnet.contains(ip) {
                return Err(EngineError::InvalidArgument(format!(
                    "failed to allocate gateway ({g}): Requested address is out of range"
                )));
            }
            ip
        }
        None => subnet.nth(1).unwrap_or(subnet.addr()),
    };
    let ip_range = match &req.ip_range {
        Some(s) => {
            let range: Ipv4Net = s.parse().map_err(|e: berth_network::NetError| {
                EngineError::InvalidArgument(format!("Invalid range {s} : {e}"))
            })?;
            if !subnet.contains(range.addr()) || range.prefix() < subnet.prefix() {
                return Err(EngineError::InvalidArgument(format!(
                    "no matching subnet for range {s}"
                )));
            }
            Some(range)
        }
        None => None,
    };
    Ok((subnet, gateway, ip_range))
}

impl Engine {
    /// `POST /networks/create`.
    pub async fn network_create(&self, body: Map<String, Value>) -> Result<Value, EngineError> {
        let n = &self.networks;
        let body: NetworkCreateRequest = serde_json::from_value(Value::Object(body))
            .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        let (id, req) = parse_create(&body, self.config.network.mtu, || random_hex(32))?;
        let name = req.name.clone();
        let r = {
            let st = n.lock();
            if st.nets.values().any(|r| r.name == name) {
                return Err(EngineError::Conflict(format!(
                    "network with name {name} already exists"
                )));
            }
            // An interface berth did not make (docker0, eth0, ...) is never adopted: removing
            // the network would delete it.
            let bridge_name = &req.bridge_name;
            if st.nets.values().any(|r| r.bridge == *bridge_name) || bridge::exists(bridge_name) {
                return Err(EngineError::Conflict(format!(
                    "bridge name {bridge_name} is already in use by another network"
                )));
            }
            let (subnet, gateway, ip_range) =
                create_ipam(&req, st.nets.values().filter_map(|r| r.subnet), || {
                    ipam::next_subnet(&n.pools(), &Networks::taken_subnets(&st))
                })?;
            NetRecord {
                id: id.clone(),
                name: name.clone(),
                driver: "bridge".into(),
                created: crate::system::now_rfc3339(),
                subnet: Some(subnet),
                gateway: Some(gateway),
                ip_range,
                user_ipam: req.subnet.is_some(),
                gateway_given: req.gateway.is_some(),
                internal: body.internal,
                attachable: body.attachable,
                labels: body.labels.clone(),
                options: req.options,
                bridge: req.bridge_name,
                mtu: req.mtu,
                endpoints: BTreeMap::new(),
                last_ip: None,
            }
        };
        let prefix = r.subnet.map(|s| s.prefix()).unwrap_or(24);
        n.wait_host_ready();
        let made = bridge::ensure(&r.bridge, r.gateway.map(|g| (g, prefix)), Some(r.mtu))
            .map_err(net_err)
            .and_then(|()| n.save_net(&r));
        if let Err(e) = made {
            let _ = bridge::delete(&r.bridge);
            return Err(e);
        }
        n.lock().nets.insert(id.clone(), r.clone());
        if let Err(e) = n.sync_firewall() {
            n.lock().nets.remove(&id);
            let _ = std::fs::remove_file(n.net_path(&id));
            let _ = bridge::delete(&r.bridge);
            let _ = n.sync_firewall();
            return Err(e);
        }
        self.emit_event(
            "network",
            "create",
            &id,
            &[("name", &name), ("type", "bridge")],
        );
        Ok(to_value(NetworkCreateResponse {
            id,
            warning: String::new(),
        }))
    }

    /// `GET /networks`.
    pub async fn network_list(&self, filters: &Filters) -> Result<Vec<Value>, EngineError> {
        filters
            .allow_only(&["driver", "id", "label", "name", "scope", "type", "dangling"])
            .map_err(EngineError::InvalidArgument)?;
        let st = self.networks.lock();
        let mut out = Vec::new();
        for r in st.nets.values() {
            if Networks::matches(r, filters)? {
                let mut v = network_inspect(r, &st);
                // dockerd lists networks without their containers.
                v.containers.clear();
                out.push((r.created.clone(), to_value(v)));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out.into_iter().map(|(_, v)| v).collect())
    }

    /// `GET /networks/{id}`.
    pub async fn network_inspect(&self, name: &str) -> Result<Value, EngineError> {
        let st = self.networks.lock();
        let id = Networks::find(&st, name)?;
        Ok(to_value(network_inspect(&st.nets[&id], &st)))
    }

    /// `DELETE /networks/{id}`.
    pub async fn network_delete(&self, name: &str) -> Result<(), EngineError> {
        let n = &self.networks;
        let r = {
            let mut st = n.lock();
            let id = Networks::find(&st, name)?;
            let r = &st.nets[&id];
            if PREDEFINED.contains(&r.name.as_str()) {
                return Err(EngineError::Forbidden(format!(
                    "{} is a pre-defined network and cannot be removed",
                    r.name
                )));
            }
            if !r.endpoints.is_empty() {
                return Err(EngineError::Forbidden(format!(
                    "error while removing network: network {} id {} has active endpoints",
                    r.name, r.id
                )));
            }
            let r = r.clone();
            st.nets.remove(&id);
            r
        };
        let mut errors = Vec::new();
        if let Err(e) = n.sync_firewall() {
            errors.push(e.to_string());
        }
        if let Err(e) = bridge::delete(&r.bridge) {
            errors.push(e.to_string());
        }
        if let Err(e) = std::fs::remove_file(n.net_path(&r.id)) {
            errors.push(format!("cannot remove the network record: {e}"));
        }
        self.emit_event(
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

    /// `POST /networks/prune`: user networks without endpoints.
    pub async fn network_prune(&self, filters: &Filters) -> Result<Value, EngineError> {
        filters
            .allow_only(&["label", "label!", "until"])
            .map_err(EngineError::InvalidArgument)?;
        // Networks created after `until` stay (moby `prune`); this filter was once accepted
        // and ignored, so every unused network went.
        let until = filters
            .until(crate::events::now_nanos())
            .map_err(EngineError::InvalidArgument)?;
        let names: Vec<String> = {
            let st = self.networks.lock();
            st.nets
                .values()
                .filter(|r| !PREDEFINED.contains(&r.name.as_str()) && r.endpoints.is_empty())
                .filter(|r| {
                    until.is_none_or(|u| {
                        parse_nanos(&r.created, 0).is_ok_and(|created| created <= u)
                    })
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
                .collect()
        };
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
    pub async fn network_connect(
        &self,
        net: &str,
        body: Map<String, Value>,
    ) -> Result<(), EngineError> {
        let cname = body.get("Container").and_then(Value::as_str).unwrap_or("");
        let brief = self.container_brief(cname)?;
        let n = &self.networks;
        let ec = body.get("EndpointConfig").cloned().unwrap_or(Value::Null);
        let (net_id, net_name) = {
            let mut st = n.lock();
            let id = Networks::find(&st, net)?;
            let r = &st.nets[&id];
            let net_name = r.name.clone();
            let Some(c) = st.ctrs.get(&brief.id).cloned() else {
                return Err(EngineError::Conflict(format!(
                    "container {} has no network settings",
                    brief.id
                )));
            };
            if c.mode == "host" || c.mode == "none" || c.mode.starts_with("container:") {
                return Err(EngineError::Forbidden(
                    "container cannot be disconnected from host network or connected to host network"
                        .into(),
                ));
            }
            if c.attach.iter().any(|a| a.network_id == id) {
                return Err(EngineError::Forbidden(format!(
                    "endpoint with name {} already exists in network {}",
                    c.name, net_name
                )));
            }
            let hc =
                serde_json::Map::from_iter([("NetworkMode".to_string(), json!(net_name.clone()))]);
            let networking = json!({"EndpointsConfig": {net_name.clone(): ec}});
            let one = super::settings::from_request(
                &st,
                &brief.id,
                &c.name,
                &Map::new(),
                &hc,
                Some(&networking),
                None,
            )?;
            let mut c = c;
            c.attach.extend(one.attach);
            st.ctrs.insert(c.id.clone(), c.clone());
            drop(st);
            n.save_ctr(&c);
            (id, net_name)
        };
        if brief.running {
            let connected = brief
                .process
                .as_ref()
                .ok_or_else(|| {
                    EngineError::Conflict(format!("container {} is not running", brief.id))
                })
                .and_then(|p| n.connect_running(&brief.id, &net_id, p));
            if let Err(e) = connected {
                n.drop_attach(&brief.id, &net_id);
                return Err(e);
            }
        }
        if !brief.running {
            self.emit_event(
                "network",
                "connect",
                &net_id,
                &[
                    ("container", &brief.id),
                    ("name", &net_name),
                    ("type", "bridge"),
                ],
            );
        }
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn network_disconnect(
        &self,
        net: &str,
        body: Map<String, Value>,
    ) -> Result<(), EngineError> {
        let cname = body.get("Container").and_then(Value::as_str).unwrap_or("");
        let brief = self.container_brief(cname)?;
        let n = &self.networks;
        let (net_id, net_name) = {
            let st = n.lock();
            let id = Networks::find(&st, net)?;
            let name = st.nets[&id].name.clone();
            let attached = st
                .ctrs
                .get(&brief.id)
                .is_some_and(|c| c.attach.iter().any(|a| a.network_id == id));
            if !attached {
                return Err(EngineError::Forbidden(format!(
                    "container {} is not connected to network {}",
                    brief.id, name
                )));
            }
            (id, name)
        };
        if !n.disconnect_running(&brief.id, &net_id) {
            self.emit_event(
                "network",
                "disconnect",
                &net_id,
                &[
                    ("container", &brief.id),
                    ("name", &net_name),
                    ("type", "bridge"),
                ],
            );
        }
        n.drop_attach(&brief.id, &net_id);
        Ok(())
    }
}

impl Networks {
    fn drop_attach(&self, cid: &str, net_id: &str) {
        let c = {
            let mut st = self.lock();
            let Some(c) = st.ctrs.get_mut(cid) else {
                return;
            };
            c.attach.retain(|a| a.network_id != net_id);
            c.clone()
        };
        self.save_ctr(&c);
    }

    /// Connects a running container to one more network: address, veth (`ethN`).
    fn connect_running(
        &self,
        cid: &str,
        net_id: &str,
        process: &berth_sys::pidfd::ProcessHandle,
    ) -> Result<(), EngineError> {
        let (r, ep, ifindex) = {
            let mut st = self.lock();
            let Some(c) = st.ctrs.get(cid).cloned() else {
                return Ok(());
            };
            let a = c.attach.iter().find(|a| a.network_id == net_id).cloned();
            let ifindex = st
                .nets
                .values()
                .filter(|r| r.endpoints.contains_key(cid))
                .count();
            let Some(r) = st.nets.get_mut(net_id) else {
                return Ok(());
            };
            let a = a.ok_or_else(|| EngineError::Internal("attachment vanished".into()))?;
            let ep = Networks::allocate(r, cid, &c.name, &a.aliases, a.ipv4, None)?;
            (r.clone(), ep, ifindex)
        };
        let Some(subnet) = r.subnet else {
            self.save_ctr_endpoints(cid);
            return Ok(());
        };
        let ifname = format!("eth{ifindex}");
        let ns = process.ns("net").map_err(|e| {
            EngineError::Conflict(format!("cannot open the network namespace of {cid}: {e}"))
        })?;
        let plugged = berth_network::endpoint::Sandbox::open(process.pid(), ns)
            .and_then(|mut sb| sb.plug(&r.plug(&ep, &ifname, subnet, None)));
        match plugged {
            Ok(veth) => {
                self.emit(&r, cid, "connect");
                self.set_veth(net_id, cid, &veth);
                self.save_ctr_endpoints(cid);
                Ok(())
            }
            Err(e) => {
                let _ = self.disconnect_running(cid, net_id);
                Err(net_err(e))
            }
        }
    }

    /// Whether the container had an endpoint there (then the event is emitted).
    fn disconnect_running(&self, cid: &str, net_id: &str) -> bool {
        let (r, ep) = {
            let mut st = self.lock();
            let Some(r) = st.nets.get_mut(net_id) else {
                return false;
            };
            let Some(ep) = r.endpoints.remove(cid) else {
                return false;
            };
            (r.clone(), ep)
        };
        // The interface goes now, outside the lock (deleting a veth takes the kernel ms).
        if !ep.veth.is_empty() {
            if let Err(e) = berth_network::endpoint::unplug(&ep.veth) {
                tracing::warn!(id = cid, error = %e, "cannot remove a veth");
            }
        }
        self.emit(&r, cid, "disconnect");
        self.save_ctr_endpoints(cid);
        true
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::networks::Endpoint;

    /// The hand-built JSON the typed [`NetworkInspect`] replaced, kept as the reference.
    fn old_json(r: &NetRecord, st: &State) -> Value {
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
            let name = st
                .ctrs
                .get(cid)
                .map(|c| c.name.clone())
                .unwrap_or_else(|| ep.name.clone());
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
        let mut st = crate::networks::fuzz::state();
        let mut host = st.nets["aaa111"].clone();
        host.id = "ccc333".into();
        host.name = "host".into();
        host.driver = "host".into();
        host.subnet = None;
        host.bridge = String::new();
        st.nets.insert(host.id.clone(), host);
        let user = st.nets.get_mut("bbb222").unwrap();
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
            },
        );
        let def = st.nets.get_mut("aaa111").unwrap();
        def.gateway = Some("10.0.0.1".parse().unwrap());
        for gateway_given in [false, true] {
            st.nets.get_mut("bbb222").unwrap().gateway_given = gateway_given;
            for r in st.nets.values() {
                let new = to_value(network_inspect(r, &st));
                assert_eq!(new, old_json(r, &st), "{}", r.name);
                assert_eq!(new.to_string(), old_json(r, &st).to_string());
            }
        }
    }
}
