//! `berth network create/ls/inspect/rm/prune/connect/disconnect`, `berth port`, and the
//! network flags `run`/`create` take (`-p`, `-P`, `--expose`, `--ip`, `--network-alias`,
//! `--add-host`, `--dns*`, `--mac-address`), with docker's words and output
//! (docker/cli `cli/command/network/*.go`, `opts/port.go`, `cli/command/container/port.go`).

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, Ipam, IpamConfig,
    NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest, NetworkingConfig,
    PortBinding,
};
use bollard::query_parameters::PruneNetworksOptions;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::error::Error;

use crate::inspect::inspect_each;
use crate::request::{list_path, parse_filters, query_escape};
use crate::table::{list_format, prune_report, render_list};
use crate::{write_out, Session};

/// `berth network ...`.
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short = 'd', long, value_name = "string", default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long, value_name = "strings")]
    pub subnet: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long, value_name = "strings")]
    pub gateway: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range", value_name = "strings")]
    pub ip_range: Vec<String>,
    /// Enable or disable IPv6 networking
    #[arg(long)]
    pub ipv6: bool,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Enable manual container attachment
    #[arg(long)]
    pub attachable: bool,
    /// Set metadata on a network
    #[arg(long = "label", value_name = "list")]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt", value_name = "map")]
    pub opt: Vec<String>,
    #[arg(value_name = "NETWORK")]
    pub name: String,
}

#[derive(Debug, Clone, Args)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
}

#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long, value_name = "string")]
    pub format: Option<String>,
    #[arg(value_name = "NETWORK", required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(value_name = "NETWORK", required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long = "alias", value_name = "strings")]
    pub alias: Vec<String>,
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long, value_name = "string")]
    pub ip: Option<String>,
    #[arg(value_name = "NETWORK")]
    pub network: String,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Debug, Clone, Args)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(value_name = "NETWORK")]
    pub network: String,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `berth port CONTAINER [PRIVATE_PORT[/PROTO]]`.
#[derive(Debug, Clone, Args)]
pub struct PortArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub port: Option<String>,
}

/// The network flags of `run` and `create`.
#[derive(Debug, Clone, Default, Args)]
pub struct NetFlags {
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish", value_name = "list")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long = "expose", value_name = "list")]
    pub expose: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long = "ip", value_name = "string")]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long = "ip6", value_name = "string")]
    pub ip6: Option<String>,
    /// Container IPv4/IPv6 link-local addresses
    #[arg(long = "link-local-ip", value_name = "list")]
    pub link_local_ip: Vec<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", value_name = "list")]
    pub network_alias: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host", value_name = "list")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long = "dns", value_name = "list")]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search", value_name = "list")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", value_name = "list")]
    pub dns_option: Vec<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address", value_name = "string")]
    pub mac_address: Option<String>,
}

fn port_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("invalid range format for --publish: {s}");
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a.parse().map_err(|_| bad())?;
    let b: u16 = b.parse().map_err(|_| bad())?;
    if a > b {
        return Err(bad());
    }
    Ok((a, b))
}

/// One `-p` value (`[ip:][hostPort:]containerPort[/proto]`, ranges allowed) as
/// `("80/tcp", binding)` pairs (docker/go-connections `nat.ParsePortSpec`).
pub fn parse_publish(spec: &str) -> Result<Vec<(String, PortBinding)>, String> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let parts: Vec<&str> = rest.rsplitn(3, ':').collect();
    let (cport, hport, ip) = match parts.as_slice() {
        [c] => (*c, "", ""),
        [c, h] => (*c, *h, ""),
        [c, h, ip] => (*c, *h, ip.trim_start_matches('[').trim_end_matches(']')),
        _ => return Err(format!("invalid port format for --publish: {spec}")),
    };
    if cport.is_empty() {
        return Err(format!("no port specified: {spec}<empty>"));
    }
    let (c0, c1) = port_range(cport)?;
    let host = if hport.is_empty() {
        None
    } else {
        Some(port_range(hport)?)
    };
    let n = c1 - c0;
    let mut out = Vec::new();
    for i in 0..=n {
        let host_port = match host {
            None => String::new(),
            Some((h0, h1)) if h1 - h0 == n => (h0 + i).to_string(),
            Some((h0, h1)) if n == 0 => format!("{h0}-{h1}"),
            Some(_) => {
                return Err(format!(
                    "invalid ranges specified for container and host Ports: {cport} and {hport}"
                ))
            }
        };
        out.push((
            format!("{}/{proto}", c0 + i),
            PortBinding {
                host_ip: Some(ip.to_string()),
                host_port: Some(host_port),
            },
        ));
    }
    Ok(out)
}

/// Puts the network flags into a create request; `network` is `--network`.
pub fn apply_net_flags(
    f: &NetFlags,
    network: Option<&str>,
    body: &mut ContainerCreateBody,
) -> Result<(), Error> {
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    let mut exposed: Vec<String> = body.exposed_ports.clone().unwrap_or_default();
    for p in &f.publish {
        for (key, b) in parse_publish(p).map_err(Error::client)? {
            bindings
                .entry(key.clone())
                .or_insert_with(|| Some(Vec::new()));
            if let Some(Some(v)) = bindings.get_mut(&key) {
                v.push(b);
            }
            if !exposed.contains(&key) {
                exposed.push(key);
            }
        }
    }
    for e in &f.expose {
        let (ports, proto) = e.split_once('/').unwrap_or((e, "tcp"));
        let (a, b) = port_range(ports)
            .map_err(|_| Error::client(format!("invalid range format for --expose: {e}")))?;
        for p in a..=b {
            let key = format!("{p}/{proto}");
            if !exposed.contains(&key) {
                exposed.push(key);
            }
        }
    }
    if !exposed.is_empty() {
        body.exposed_ports = Some(exposed);
    }
    let hc = body.host_config.get_or_insert_with(Default::default);
    if !bindings.is_empty() {
        hc.port_bindings = Some(bindings);
    }
    if f.publish_all {
        hc.publish_all_ports = Some(true);
    }
    let list = |v: &[String]| (!v.is_empty()).then(|| v.to_vec());
    hc.extra_hosts = list(&f.add_host);
    hc.dns = list(&f.dns);
    hc.dns_search = list(&f.dns_search);
    hc.dns_options = list(&f.dns_option);
    let addresses = f.ip.is_some() || f.ip6.is_some() || !f.link_local_ip.is_empty();
    if addresses || !f.network_alias.is_empty() || f.mac_address.is_some() {
        let net = network.unwrap_or("default").to_string();
        let ep = EndpointSettings {
            aliases: list(&f.network_alias),
            ipam_config: addresses.then(|| EndpointIpamConfig {
                ipv4_address: f.ip.clone(),
                ipv6_address: f.ip6.clone(),
                link_local_ips: list(&f.link_local_ip),
            }),
            mac_address: f.mac_address.clone(),
            ..Default::default()
        };
        body.networking_config = Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(net, ep)])),
        });
    }
    Ok(())
}

fn key_values(list: &[String]) -> HashMap<String, String> {
    list.iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// One IPAM config per subnet; each gateway and IP range goes with the first subnet of
/// its family (IPv4 or IPv6) that has none yet, so `--subnet 10.1.0.0/24 --subnet
/// fd00::/64 --gateway fd00::1` gives the gateway to the IPv6 subnet.
fn ipam_configs(subnets: &[String], gateways: &[String], ranges: &[String]) -> Vec<IpamConfig> {
    let v6 = |s: &str| s.contains(':');
    let mut config: Vec<IpamConfig> = subnets
        .iter()
        .map(|s| IpamConfig {
            subnet: Some(s.clone()),
            ..Default::default()
        })
        .collect();
    for x in gateways {
        let same = |c: &&mut IpamConfig| c.subnet.as_deref().is_some_and(|s| v6(s) == v6(x));
        if let Some(c) = config.iter_mut().filter(same).find(|c| c.gateway.is_none()) {
            c.gateway = Some(x.clone());
        }
    }
    for x in ranges {
        let same = |c: &&mut IpamConfig| c.subnet.as_deref().is_some_and(|s| v6(s) == v6(x));
        if let Some(c) = config
            .iter_mut()
            .filter(same)
            .find(|c| c.ip_range.is_none())
        {
            c.ip_range = Some(x.clone());
        }
    }
    config
}

/// Runs one `berth network` subcommand.
pub async fn run(session: &Session, cmd: &NetworkCommand) -> Result<(), Error> {
    let client = session.client().await?;
    let docker = client.docker();
    match cmd {
        NetworkCommand::Create(a) => {
            let config = ipam_configs(&a.subnet, &a.gateway, &a.ip_range);
            if a.subnet.is_empty() && (!a.gateway.is_empty() || !a.ip_range.is_empty()) {
                return Err(Error::client(
                    "every ip-range or gateway must have a corresponding subnet",
                ));
            }
            let req = NetworkCreateRequest {
                name: a.name.clone(),
                driver: Some(a.driver.clone()),
                internal: Some(a.internal),
                attachable: Some(a.attachable),
                enable_ipv6: a.ipv6.then_some(true),
                ipam: Some(Ipam {
                    driver: Some("default".into()),
                    config: Some(config),
                    options: Some(HashMap::new()),
                }),
                options: Some(key_values(&a.opt)),
                labels: Some(key_values(&a.label)),
                ..Default::default()
            };
            let r = docker
                .create_network(req)
                .await
                .map_err(|e| client.explain(e))?;
            write_out(&format!("{}\n", r.id))
        }
        NetworkCommand::Ls(a) => {
            let list = client.get_json(&list_path("/networks", &a.filter)?).await?;
            let mut nets = list.as_array().cloned().unwrap_or_default();
            nets.sort_by(|x, y| x["Name"].as_str().cmp(&y["Name"].as_str()));
            if !a.no_trunc {
                for n in &mut nets {
                    let id = n["Id"]
                        .as_str()
                        .unwrap_or("")
                        .chars()
                        .take(12)
                        .collect::<String>();
                    n["ID"] = json!(id);
                }
            } else {
                for n in &mut nets {
                    n["ID"] = n["Id"].clone();
                }
            }
            let default = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";
            let format = list_format(a.format.as_deref(), a.quiet, "{{.ID}}", default);
            let headers = json!({"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                                 "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"});
            write_out(&render_list(&format, &headers, &nets)?)
        }
        NetworkCommand::Inspect(a) => {
            inspect_each(&client, "/networks", &a.names, a.format.as_deref()).await
        }
        NetworkCommand::Rm(a) => {
            let mut failed = Vec::new();
            for n in &a.names {
                match docker.remove_network(n).await {
                    Ok(()) => write_out(&format!("{n}\n"))?,
                    Err(e) => {
                        let msg = client.explain(e).to_string();
                        if !(a.force && msg.contains("not found")) {
                            failed.push(msg);
                        }
                    }
                }
            }
            Error::from_each(failed)
        }
        NetworkCommand::Prune(a) => {
            let filters = parse_filters(&a.filter, "--filter")?;
            let opts = PruneNetworksOptions {
                filters: Some(filters),
            };
            let r = docker
                .prune_networks(Some(opts))
                .await
                .map_err(|e| client.explain(e))?;
            let deleted = r.networks_deleted.unwrap_or_default();
            write_out(&prune_report("Networks", &deleted, None))
        }
        NetworkCommand::Connect(a) => {
            let req = NetworkConnectRequest {
                container: a.container.clone(),
                endpoint_config: Some(EndpointSettings {
                    aliases: (!a.alias.is_empty()).then(|| a.alias.clone()),
                    ipam_config: a.ip.clone().map(|ip| EndpointIpamConfig {
                        ipv4_address: Some(ip),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            };
            docker
                .connect_network(&a.network, req)
                .await
                .map_err(|e| client.explain(e))
        }
        NetworkCommand::Disconnect(a) => {
            let req = NetworkDisconnectRequest {
                container: a.container.clone(),
                force: Some(a.force),
            };
            docker
                .disconnect_network(&a.network, req)
                .await
                .map_err(|e| client.explain(e))
        }
    }
}

/// `berth port`: the container's published ports, as `docker port` prints them.
pub async fn port(session: &Session, a: &PortArgs) -> Result<(), Error> {
    let client = session.client().await?;
    let c = client
        .get_json(&format!("/containers/{}/json", query_escape(&a.container)))
        .await?;
    let ports = c["NetworkSettings"]["Ports"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let line = |b: &Value| {
        format!(
            "{}:{}",
            b["HostIp"].as_str().unwrap_or(""),
            b["HostPort"].as_str().unwrap_or("")
        )
    };
    let mut out = String::new();
    match &a.port {
        Some(p) => {
            let key = if p.contains('/') {
                p.clone()
            } else {
                format!("{p}/tcp")
            };
            let binds = ports
                .get(&key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if binds.is_empty() {
                return Err(Error::client(format!(
                    "Error: No public port '{key}' published for {}",
                    a.container
                )));
            }
            for b in &binds {
                out.push_str(&line(b));
                out.push('\n');
            }
        }
        None => {
            let mut keys: Vec<&String> = ports.keys().collect();
            keys.sort_by_key(|k| {
                let (p, proto) = k.split_once('/').unwrap_or((k, ""));
                (p.parse::<u32>().unwrap_or(0), proto.to_string())
            });
            for k in keys {
                for b in ports[k].as_array().into_iter().flatten() {
                    out.push_str(&format!("{k} -> {}\n", line(b)));
                }
            }
        }
    }
    write_out(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> Vec<(String, String, String)> {
        parse_publish(spec)
            .unwrap()
            .into_iter()
            .map(|(k, b)| {
                (
                    k,
                    b.host_ip.unwrap_or_default(),
                    b.host_port.unwrap_or_default(),
                )
            })
            .collect()
    }

    #[test]
    fn publish_specs() {
        assert_eq!(one("80"), [("80/tcp".into(), "".into(), "".into())]);
        assert_eq!(
            one("8080:80/udp"),
            [("80/udp".into(), "".into(), "8080".into())]
        );
        assert_eq!(
            one("127.0.0.1::80"),
            [("80/tcp".into(), "127.0.0.1".into(), "".into())]
        );
        assert_eq!(
            one("8000-8001:80-81"),
            [
                ("80/tcp".into(), "".into(), "8000".into()),
                ("81/tcp".into(), "".into(), "8001".into())
            ]
        );
        assert_eq!(
            one("8000-8010:80"),
            [("80/tcp".into(), "".into(), "8000-8010".into())]
        );
        for bad in ["", "x:80", "80/icmp", "8000-8002:80-81", "a:b:c:d"] {
            assert!(parse_publish(bad).is_err(), "{bad}");
        }
    }
}
