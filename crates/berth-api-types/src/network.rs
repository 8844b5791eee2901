//! Network shapes of the API (swagger `NetworkCreateRequest`, `Network`, `IPAM`,
//! `EndpointSettings`, `NetworkingConfig`, `PortBinding`, the connect and disconnect
//! bodies, a container's `NetworkSettings` and `ps` `Ports`).
//!
//! Request bodies are read tolerantly, as the daemon always read them: unknown fields are
//! ignored and a field of the wrong JSON type counts as absent (see [`crate::lenient`]).
//! Responses emit exactly the fields dockerd emits, `null`s included.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::lenient;

/// `POST /networks/create`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkCreateRequest {
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub name: String,
    /// Empty means `bridge`.
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub driver: String,
    /// Driver options, kept as given (inspect shows them back).
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub options: Map<String, Value>,
    #[serde(default, rename = "IPAM", deserialize_with = "lenient::or_default")]
    pub ipam: IpamRequest,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub labels: Map<String, Value>,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub internal: bool,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub attachable: bool,
    /// Refused: an ingress network needs swarm.
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub ingress: bool,
    #[serde(
        default,
        rename = "EnableIPv6",
        deserialize_with = "lenient::or_default"
    )]
    pub enable_ipv6: Option<bool>,
}

/// A create request's `IPAM`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamRequest {
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub driver: String,
    #[serde(default, deserialize_with = "lenient::each_or_default")]
    pub config: Vec<IpamConfig>,
}

/// One IPAM pool: in a create request (every field optional), and in inspect (`Subnet`
/// always, `Gateway` and `IPRange` when set).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::or_default"
    )]
    pub subnet: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::or_default"
    )]
    pub gateway: Option<String>,
    #[serde(
        default,
        rename = "IPRange",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::or_default"
    )]
    pub ip_range: Option<String>,
    /// Named addresses of the subnet that are never handed out.
    #[serde(
        default,
        rename = "AuxiliaryAddresses",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::or_default"
    )]
    pub aux_address: Option<BTreeMap<String, String>>,
}

impl IpamConfig {
    /// A field as the daemon reads it: an empty string is no value.
    pub fn given(v: &Option<String>) -> Option<String> {
        v.clone().filter(|s| !s.is_empty())
    }
}

/// `POST /networks/create`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkCreateResponse {
    pub id: String,
    pub warning: String,
}

/// `GET /networks/{id}` and one entry of `GET /networks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInspect {
    pub name: String,
    pub id: String,
    pub created: String,
    pub scope: String,
    pub driver: String,
    #[serde(rename = "EnableIPv4")]
    pub enable_ipv4: bool,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    pub config_from: ConfigReference,
    pub config_only: bool,
    pub containers: BTreeMap<String, NetworkContainer>,
    pub options: Map<String, Value>,
    pub labels: Map<String, Value>,
}

/// A network's `IPAM` in inspect.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    pub driver: String,
    /// `{}` for a network whose IPAM config the client gave, `null` otherwise (dockerd).
    pub options: Option<BTreeMap<String, String>>,
    pub config: Vec<IpamConfig>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigReference {
    pub network: String,
}

/// One container of a network's inspect.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkContainer {
    pub name: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub mac_address: String,
    /// `address/prefix`.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// `POST /networks/prune`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkPruneResponse {
    pub networks_deleted: Vec<String>,
}

/// `POST /networks/{id}/connect`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkConnectRequest {
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub container: String,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub endpoint_config: Option<EndpointSettings>,
}

/// `POST /networks/{id}/disconnect`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkDisconnectRequest {
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub container: String,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub force: bool,
}

/// A container create body's `NetworkingConfig`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkingConfig {
    /// Network name (or ID) → endpoint settings; an entry that is not an object reads as
    /// empty settings.
    #[serde(default, deserialize_with = "lenient::values_or_default")]
    pub endpoints_config: BTreeMap<String, EndpointSettings>,
}

/// One endpoint: what a client asks for (create's `EndpointsConfig`, connect's
/// `EndpointConfig`: `IPAMConfig`, `Aliases`, `MacAddress`) and what container inspect
/// shows (`NetworkSettings.Networks`, every field).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSettings {
    #[serde(
        default,
        rename = "IPAMConfig",
        deserialize_with = "lenient::or_default"
    )]
    pub ipam_config: Option<EndpointIpamConfig>,
    #[serde(default, deserialize_with = "lenient::strings")]
    pub links: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient::strings")]
    pub aliases: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub mac_address: String,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub driver_opts: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub gw_priority: i64,
    #[serde(
        default,
        rename = "NetworkID",
        deserialize_with = "lenient::or_default"
    )]
    pub network_id: String,
    #[serde(
        default,
        rename = "EndpointID",
        deserialize_with = "lenient::or_default"
    )]
    pub endpoint_id: String,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub gateway: String,
    #[serde(
        default,
        rename = "IPAddress",
        deserialize_with = "lenient::or_default"
    )]
    pub ip_address: String,
    #[serde(
        default,
        rename = "IPPrefixLen",
        deserialize_with = "lenient::or_default"
    )]
    pub ip_prefix_len: i64,
    #[serde(
        default,
        rename = "IPv6Gateway",
        deserialize_with = "lenient::or_default"
    )]
    pub ipv6_gateway: String,
    #[serde(
        default,
        rename = "GlobalIPv6Address",
        deserialize_with = "lenient::or_default"
    )]
    pub global_ipv6_address: String,
    #[serde(
        default,
        rename = "GlobalIPv6PrefixLen",
        deserialize_with = "lenient::or_default"
    )]
    pub global_ipv6_prefix_len: i64,
    #[serde(default, rename = "DNSNames", deserialize_with = "lenient::strings")]
    pub dns_names: Option<Vec<String>>,
}

impl EndpointSettings {
    /// The requested IPv4 address, if a non-empty one was given.
    pub fn requested_ipv4(&self) -> Option<&str> {
        self.ipam_config
            .as_ref()
            .and_then(|c| c.ipv4_address.as_deref())
            .filter(|s| !s.is_empty())
    }
}

/// An endpoint's `IPAMConfig`: the addresses a client asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointIpamConfig {
    #[serde(
        default,
        rename = "IPv4Address",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::or_default"
    )]
    pub ipv4_address: Option<String>,
    #[serde(
        default,
        rename = "IPv6Address",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::or_default"
    )]
    pub ipv6_address: Option<String>,
    #[serde(
        default,
        rename = "LinkLocalIPs",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::strings"
    )]
    pub link_local_ips: Option<Vec<String>>,
}

/// One host binding of a published port (`HostConfig.PortBindings` values, and
/// `NetworkSettings.Ports` in inspect).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub host_ip: String,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub host_port: String,
}

/// A container's `NetworkSettings` in `docker inspect` (swagger `NetworkSettings`, with
/// the deprecated top-level fields dockerd still fills from the default bridge's endpoint).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSettings {
    pub bridge: String,
    #[serde(rename = "SandboxID")]
    pub sandbox_id: String,
    pub sandbox_key: String,
    pub hairpin_mode: bool,
    #[serde(rename = "LinkLocalIPv6Address")]
    pub link_local_ipv6_address: String,
    #[serde(rename = "LinkLocalIPv6PrefixLen")]
    pub link_local_ipv6_prefix_len: i64,
    /// `80/tcp` → its host bindings; `null` for a port exposed but not published.
    pub ports: BTreeMap<String, Option<Vec<PortBinding>>>,
    /// Always `null` (no secondary addresses).
    #[serde(rename = "SecondaryIPAddresses")]
    pub secondary_ip_addresses: Option<Vec<Value>>,
    #[serde(rename = "SecondaryIPv6Addresses")]
    pub secondary_ipv6_addresses: Option<Vec<Value>>,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub gateway: String,
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: i64,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: i64,
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    pub mac_address: String,
    /// Network name → the container's endpoint on it.
    pub networks: BTreeMap<String, EndpointSettings>,
}

/// `NetworkSettings` of a `docker ps` entry: its networks only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SummaryNetworkSettings {
    pub networks: BTreeMap<String, EndpointSettings>,
}

/// One of a `docker ps` entry's `Ports` (swagger `Port`): a published port with its host
/// address, or an exposed one without (no `IP`, no `PublicPort`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Port {
    #[serde(rename = "IP", default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    pub private_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_port: Option<u16>,
    #[serde(rename = "Type")]
    pub kind: String,
}

/// `HostConfig.PortBindings` read as the daemon reads it: `port/proto` → bindings, where a
/// value that is not an array is no bindings and an element that is not an object is an
/// empty binding.
pub fn port_bindings<'de, D>(d: D) -> Result<BTreeMap<String, Vec<PortBinding>>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Value::deserialize(d)? {
        Value::Object(m) => m
            .into_iter()
            .map(|(k, v)| {
                let list = match v {
                    Value::Array(a) => a
                        .into_iter()
                        .map(|x| serde_json::from_value(x).unwrap_or_default())
                        .collect(),
                    _ => Vec::new(),
                };
                (k, list)
            })
            .collect(),
        _ => BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The empty settings are what inspect and ps showed, as `json!`, before a container
    /// had network settings.
    #[test]
    fn empty_network_settings_are_what_they_were() {
        let old = json!({
            "Bridge": "", "SandboxID": "", "SandboxKey": "", "HairpinMode": false,
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": {},
            "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null, "EndpointID": "",
            "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
            "Networks": {},
        });
        let new = serde_json::to_value(NetworkSettings::default()).unwrap();
        assert_eq!(new, old);
        let new = serde_json::to_value(SummaryNetworkSettings::default()).unwrap();
        assert_eq!(new, json!({"Networks": {}}));
    }

    #[test]
    fn create_request_reads_wrong_types_as_absent() {
        let r: NetworkCreateRequest = serde_json::from_value(json!({
            "Name": 5, "Driver": null, "Options": [], "Labels": {"a": "b"},
            "IPAM": {"Config": [7, {"Subnet": "10.1.0.0/16", "Gateway": 3}]},
            "Internal": "yes", "Attachable": true, "Unknown": {"x": 1},
        }))
        .unwrap();
        assert_eq!(r.name, "");
        assert_eq!(r.driver, "");
        assert!(r.options.is_empty());
        assert_eq!(r.labels["a"], "b");
        assert_eq!(r.ipam.config.len(), 2);
        assert_eq!(r.ipam.config[0], IpamConfig::default());
        assert_eq!(r.ipam.config[1].subnet.as_deref(), Some("10.1.0.0/16"));
        assert_eq!(r.ipam.config[1].gateway, None);
        assert!(!r.internal);
        assert!(r.attachable);
        let r: NetworkCreateRequest = serde_json::from_value(json!({"IPAM": 1})).unwrap();
        assert!(r.ipam.config.is_empty());
    }

    #[test]
    fn endpoint_settings_read_and_written() {
        let e: EndpointSettings = serde_json::from_value(json!({
            "Aliases": ["a", 1, "b"], "IPAMConfig": {"IPv4Address": "10.0.0.2"},
            "MacAddress": 7,
        }))
        .unwrap();
        assert_eq!(e.aliases, Some(vec!["a".into(), "b".into()]));
        assert_eq!(e.requested_ipv4(), Some("10.0.0.2"));
        assert_eq!(e.mac_address, "");
        let n: NetworkingConfig =
            serde_json::from_value(json!({"EndpointsConfig": {"x": 3, "y": {"IPAMConfig": "no"}}}))
                .unwrap();
        assert_eq!(n.endpoints_config["x"], EndpointSettings::default());
        assert_eq!(n.endpoints_config["y"].requested_ipv4(), None);
        // Inspect's shape: every field, nulls included, the IPAM config without its unset
        // addresses.
        let out = EndpointSettings {
            ipam_config: Some(EndpointIpamConfig {
                ipv4_address: Some("10.0.0.2".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&out).unwrap(),
            json!({
                "IPAMConfig": {"IPv4Address": "10.0.0.2"}, "Links": null, "Aliases": null,
                "MacAddress": "", "DriverOpts": null, "GwPriority": 0, "NetworkID": "",
                "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
                "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                "DNSNames": null,
            })
        );
    }

    #[test]
    fn port_bindings_are_read_per_element() {
        #[derive(Deserialize)]
        struct H {
            #[serde(deserialize_with = "port_bindings")]
            b: BTreeMap<String, Vec<PortBinding>>,
        }
        let h: H = serde_json::from_value(
            json!({"b": {"80/tcp": [3, {"HostPort": "8080"}], "81/tcp": null}}),
        )
        .unwrap();
        assert_eq!(h.b["80/tcp"].len(), 2);
        assert_eq!(h.b["80/tcp"][0], PortBinding::default());
        assert_eq!(h.b["80/tcp"][1].host_port, "8080");
        assert!(h.b["81/tcp"].is_empty());
    }
}
