//! Pod sandboxes as engine containers: the create request a `PodSandboxConfig` becomes
//! (the infra container running `berth-pause`, see [`crate::pause`]), and the CRI views
//! (`PodSandbox`, `PodSandboxStatus`) read back from the engine's list and inspect.
//!
//! The sandbox's network namespace is made as for the engine's `none` network (loopback
//! only) and then attached by the CNI plugins ([`crate::cni`]), or is the host's for
//! `network: NODE`; its IPC namespace is `shareable` (or the
//! host's for `ipc: NODE`) and its PID namespace the host's for `pid: NODE`. The pod's
//! containers join them (see [`crate::ctrs`]).

use serde_json::{json, Map, Value};
use tonic::Status;

use crate::labels::{self, Labels};
use crate::proto::*;

/// The engine's create request for the sandbox of `config`, and its container name.
pub(crate) fn create_body(
    config: &PodSandboxConfig,
    runtime_handler: &str,
    pause_image: &str,
) -> Result<(String, Map<String, Value>), Status> {
    let meta = config
        .metadata
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("sandbox config must include metadata"))?;
    let name = labels::required(&meta.name, "sandbox metadata.name")?;
    let namespace = labels::required(&meta.namespace, "sandbox metadata.namespace")?;
    let uid = labels::required(&meta.uid, "sandbox metadata.uid")?;
    let container_name = format!(
        "k8s_POD_{}_{}_{}_{}",
        labels::name_part(name),
        labels::name_part(namespace),
        labels::name_part(uid),
        meta.attempt
    );
    let linux = config.linux.clone().unwrap_or_default();
    let ns = linux
        .security_context
        .as_ref()
        .and_then(|s| s.namespace_options.clone())
        .unwrap_or_default();
    let node = NamespaceMode::Node as i32;
    let host_network = ns.network == node;
    let ours = [
        (labels::TYPE, labels::TYPE_SANDBOX.to_string()),
        (labels::POD_NAME, name.to_string()),
        (labels::POD_NAMESPACE, namespace.to_string()),
        (labels::POD_UID, uid.to_string()),
        (labels::ATTEMPT, meta.attempt.to_string()),
        (labels::LOG_DIRECTORY, config.log_directory.clone()),
        (labels::RUNTIME_HANDLER, runtime_handler.to_string()),
    ];
    let docker_labels = labels::pack(&ours, &config.labels, &config.annotations);
    let mut host_config = json!({
        "NetworkMode": if host_network { "host" } else { "none" },
        "IpcMode": if ns.ipc == node { "host" } else { "shareable" },
        "RestartPolicy": {"Name": "no"},
    });
    if ns.pid == node {
        host_config["PidMode"] = json!("host");
    }
    if host_network {
        host_config["UTSMode"] = json!("host");
    }
    if !linux.cgroup_parent.is_empty() {
        host_config["CgroupParent"] = json!(linux.cgroup_parent);
    }
    if !linux.sysctls.is_empty() {
        host_config["Sysctls"] = json!(linux.sysctls);
    }
    if let Some(dns) = &config.dns_config {
        host_config["Dns"] = json!(dns.servers);
        host_config["DnsSearch"] = json!(dns.searches);
        host_config["DnsOptions"] = json!(dns.options);
    }
    let mut body = json!({
        "Image": pause_image,
        "Entrypoint": [crate::pause::PATH_IN_IMAGE],
        "Cmd": null,
        "Labels": docker_labels,
        "HostConfig": host_config,
    });
    if !host_network {
        // No hostname: the node's, as containerd does (a pod name may be longer than the
        // 64 bytes a hostname can have; critest's are).
        let hostname = if config.hostname.is_empty() {
            node_hostname()
        } else {
            config.hostname.clone()
        };
        body["Hostname"] = json!(hostname);
    }
    Ok((container_name, into_map(body)))
}

/// The host's name (`gethostname(2)`, no I/O); empty if it cannot be read.
fn node_hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

/// A JSON object literal as the map the engine takes.
pub(crate) fn into_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The sandbox's metadata, from its labels.
pub(crate) fn metadata(l: &Labels) -> PodSandboxMetadata {
    PodSandboxMetadata {
        name: l.get(labels::POD_NAME).into(),
        uid: l.get(labels::POD_UID).into(),
        namespace: l.get(labels::POD_NAMESPACE).into(),
        attempt: l.attempt(),
    }
}

fn state(running: bool) -> i32 {
    if running {
        PodSandboxState::SandboxReady as i32
    } else {
        PodSandboxState::SandboxNotready as i32
    }
}

/// A sandbox as `ListPodSandbox` answers it, from a container summary; `None` when the
/// summary is not a sandbox's.
pub(crate) fn from_summary(s: &Value) -> Option<PodSandbox> {
    let l = Labels::of(s.get("Labels"));
    if !l.is(labels::TYPE_SANDBOX) {
        return None;
    }
    Some(PodSandbox {
        id: s.get("Id")?.as_str()?.to_string(),
        metadata: Some(metadata(&l)),
        state: state(s.get("State").and_then(Value::as_str) == Some("running")),
        created_at: s
            .get("Created")
            .and_then(Value::as_i64)
            .and_then(|secs| secs.checked_mul(1_000_000_000))
            .unwrap_or(0),
        labels: l.cri_labels(),
        annotations: l.annotations(),
        runtime_handler: l.get(labels::RUNTIME_HANDLER).into(),
    })
}

/// Whether `filter` keeps `sandbox`.
pub(crate) fn selected(sandbox: &PodSandbox, labels: &Labels, filter: &PodSandboxFilter) -> bool {
    labels::id_matches(&filter.id, &sandbox.id)
        && filter
            .state
            .as_ref()
            .is_none_or(|s| s.state == sandbox.state)
        && labels.selected(&filter.label_selector)
}

/// A namespace mode as the sandbox's `HostConfig` says it.
fn ns_mode(hc: Option<&Value>, key: &str) -> i32 {
    match hc.and_then(|h| h.get(key)).and_then(Value::as_str) {
        Some("host") => NamespaceMode::Node as i32,
        _ => NamespaceMode::Pod as i32,
    }
}

/// `PodSandboxStatus` from the sandbox container's inspect and the IPs CNI gave it (the
/// first is the pod IP); `None` when it is not a sandbox.
pub(crate) fn status(inspect: &Value, ips: &[String]) -> Option<PodSandboxStatus> {
    let config = inspect.get("Config");
    let l = Labels::of(config.and_then(|c| c.get("Labels")));
    if !l.is(labels::TYPE_SANDBOX) {
        return None;
    }
    let hc = inspect.get("HostConfig");
    let running = inspect
        .pointer("/State/Running")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Some(PodSandboxStatus {
        id: inspect.get("Id")?.as_str()?.to_string(),
        metadata: Some(metadata(&l)),
        state: state(running),
        created_at: labels::unix_nanos(inspect.get("Created")),
        network: Some(PodSandboxNetworkStatus {
            ip: ips.first().cloned().unwrap_or_default(),
            additional_ips: ips
                .iter()
                .skip(1)
                .map(|ip| PodIp { ip: ip.clone() })
                .collect(),
        }),
        linux: Some(LinuxPodSandboxStatus {
            namespaces: Some(Namespace {
                options: Some(NamespaceOption {
                    network: ns_mode(hc, "NetworkMode"),
                    pid: ns_mode(hc, "PidMode"),
                    ipc: ns_mode(hc, "IpcMode"),
                    ..Default::default()
                }),
            }),
        }),
        labels: l.cri_labels(),
        annotations: l.annotations(),
        runtime_handler: l.get(labels::RUNTIME_HANDLER).into(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config() -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "web".into(),
                uid: "u-1".into(),
                namespace: "default".into(),
                attempt: 2,
            }),
            log_directory: "/var/log/pods/x".into(),
            labels: [("app".to_string(), "web".to_string())].into(),
            annotations: [("note".to_string(), "n".to_string())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_pod_is_a_pause_container_with_its_own_namespaces() {
        let (name, body) = create_body(&config(), "", "localhost/berth-pause:1").unwrap();
        assert_eq!(name, "k8s_POD_web_default_u-1_2");
        assert_eq!(body["Image"], "localhost/berth-pause:1");
        assert_eq!(body["Entrypoint"], json!(["/pause"]));
        assert_eq!(
            body["Hostname"],
            json!(node_hostname()),
            "none asked: the node's"
        );
        let hc = &body["HostConfig"];
        assert_eq!(hc["NetworkMode"], "none");
        assert_eq!(hc["IpcMode"], "shareable");
        assert!(hc.get("PidMode").is_none() && hc.get("UTSMode").is_none());
        let l = Labels::of(body.get("Labels"));
        assert!(l.is(labels::TYPE_SANDBOX));
        assert_eq!(l.get(labels::POD_UID), "u-1");
        assert_eq!(l.get(labels::LOG_DIRECTORY), "/var/log/pods/x");
        assert_eq!(metadata(&l), config().metadata.unwrap());
        assert_eq!(l.cri_labels()["app"], "web");
        assert_eq!(l.annotations()["note"], "n");
    }

    #[test]
    fn host_namespaces_map_node_modes() {
        let mut c = config();
        c.hostname = "ignored".into();
        c.linux = Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Node as i32,
                    pid: NamespaceMode::Node as i32,
                    ipc: NamespaceMode::Node as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        let (_, body) = create_body(&c, "", "p").unwrap();
        let hc = &body["HostConfig"];
        for k in ["NetworkMode", "IpcMode", "PidMode", "UTSMode"] {
            assert_eq!(hc[k], "host", "{k}");
        }
        assert!(body.get("Hostname").is_none());
    }

    #[test]
    fn metadata_is_required() {
        for broken in [
            PodSandboxConfig::default(),
            PodSandboxConfig {
                metadata: Some(PodSandboxMetadata {
                    name: "a".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ] {
            let e = create_body(&broken, "", "p").unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
        }
    }

    #[test]
    fn list_and_status_read_back() {
        let (_, body) = create_body(&config(), "h", "p").unwrap();
        let summary =
            json!({"Id": "abc", "State": "running", "Created": 7, "Labels": body["Labels"]});
        let s = from_summary(&summary).unwrap();
        assert_eq!(s.state, PodSandboxState::SandboxReady as i32);
        assert_eq!(s.created_at, 7_000_000_000);
        assert_eq!(s.runtime_handler, "h");
        let l = Labels::of(summary.get("Labels"));
        let mut f = PodSandboxFilter {
            id: "ab".into(),
            label_selector: [("app".to_string(), "web".to_string())].into(),
            ..Default::default()
        };
        assert!(selected(&s, &l, &f));
        f.state = Some(PodSandboxStateValue {
            state: PodSandboxState::SandboxNotready as i32,
        });
        assert!(!selected(&s, &l, &f));
        assert!(from_summary(&json!({"Id": "d", "Labels": {}})).is_none());

        let inspect = json!({
            "Id": "abc", "Created": "2024-01-02T03:04:05.5Z",
            "State": {"Running": false},
            "Config": {"Labels": body["Labels"]},
            "HostConfig": {"NetworkMode": "none", "IpcMode": "shareable", "PidMode": "host"},
        });
        let st = status(&inspect, &[]).unwrap();
        assert_eq!(st.state, PodSandboxState::SandboxNotready as i32);
        assert_eq!(
            st.network.clone().unwrap(),
            PodSandboxNetworkStatus::default()
        );
        let ips = ["10.1.0.2".to_string(), "fd00::2".to_string()];
        let net = status(&inspect, &ips).unwrap().network.unwrap();
        assert_eq!(net.ip, "10.1.0.2");
        assert_eq!(
            net.additional_ips,
            [PodIp {
                ip: "fd00::2".into()
            }]
        );
        assert!(st.created_at > 0);
        let opts = st.linux.unwrap().namespaces.unwrap().options.unwrap();
        assert_eq!(opts.pid, NamespaceMode::Node as i32);
        assert_eq!(opts.network, NamespaceMode::Pod as i32);
        assert_eq!(
            st.annotations,
            HashMap::from([("note".to_string(), "n".to_string())])
        );
    }
}
