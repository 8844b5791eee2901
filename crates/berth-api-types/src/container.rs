//! The container side of the Docker API: the create request's `Config` and `HostConfig`,
//! the states and modes as enums, and the inspect and list responses. (`NetworkingConfig`
//! and `EndpointSettings` belong to the network module's types.)
//!
//! Request types are tolerant: every field is a [`Field`] (absent, `null`, set, or of the
//! wrong JSON type and then read as absent; always kept as sent) and fields Berth does not
//! read are kept in `extra`, so that inspect echoes the request exactly as it came. Enums read from strings keep an unknown word in an
//! `Other` variant: the engine refuses it with dockerd's message, not serde's.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::field::Field;
use crate::network::{NetworkSettings, Port, SummaryNetworkSettings};

/// Docker's `strslice.StrSlice`: a JSON string or an array of strings, kept as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StrSlice {
    One(String),
    Many(Vec<String>),
}

impl StrSlice {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            StrSlice::One(s) => vec![s.clone()],
            StrSlice::Many(v) => v.clone(),
        }
    }
}

impl Field<StrSlice> {
    /// The strings sent (of a list with other items too, its strings); `None` when neither
    /// a string nor a list was sent.
    pub fn strings(&self) -> Option<Vec<String>> {
        match self {
            Field::Set(s) => Some(s.to_vec()),
            Field::Invalid(Value::Array(a)) => Some(
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect(),
            ),
            _ => None,
        }
    }
}

/// Implements `From<String>`, `Into<String>` and `Display` for a string-backed enum whose
/// unknown words land in `Other`.
macro_rules! string_enum {
    ($ty:ident { $($var:ident => $word:literal),* $(,)? }) => {
        impl $ty {
            pub fn as_str(&self) -> &str {
                match self {
                    $($ty::$var => $word,)*
                    $ty::Other(s) => s,
                }
            }
        }
        impl From<String> for $ty {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $($word => $ty::$var,)*
                    _ => $ty::Other(s),
                }
            }
        }
        impl From<&str> for $ty {
            fn from(s: &str) -> Self {
                $ty::from(s.to_string())
            }
        }
        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.as_str().to_string()
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// `State.Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl ContainerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Paused => "paused",
            ContainerStatus::Restarting => "restarting",
            ContainerStatus::Removing => "removing",
            ContainerStatus::Exited => "exited",
            ContainerStatus::Dead => "dead",
        }
    }
}

impl fmt::Display for ContainerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `HostConfig.RestartPolicy.Name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum RestartPolicyName {
    /// `""`: as `no`.
    Unspecified,
    No,
    Always,
    UnlessStopped,
    OnFailure,
    Other(String),
}

string_enum!(RestartPolicyName {
    Unspecified => "",
    No => "no",
    Always => "always",
    UnlessStopped => "unless-stopped",
    OnFailure => "on-failure",
});

/// `Mount.Type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum MountType {
    Bind,
    Volume,
    Tmpfs,
    Npipe,
    Cluster,
    Image,
    Other(String),
}

string_enum!(MountType {
    Bind => "bind",
    Volume => "volume",
    Tmpfs => "tmpfs",
    Npipe => "npipe",
    Cluster => "cluster",
    Image => "image",
});

/// `HostConfig.NetworkMode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum NetworkMode {
    /// `""`: the daemon's default (bridge).
    Unspecified,
    /// `default`, the same.
    Default,
    Bridge,
    Host,
    None,
    /// `container:<name or id>`: another container's network namespace.
    Container(String),
    /// A user-defined network, by name or ID.
    Named(String),
}

impl NetworkMode {
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        match self {
            NetworkMode::Unspecified => "".into(),
            NetworkMode::Default => "default".into(),
            NetworkMode::Bridge => "bridge".into(),
            NetworkMode::Host => "host".into(),
            NetworkMode::None => "none".into(),
            NetworkMode::Container(c) => format!("container:{c}").into(),
            NetworkMode::Named(n) => n.as_str().into(),
        }
    }

    /// `""` and `default` name the bridge.
    pub fn is_default(&self) -> bool {
        matches!(self, NetworkMode::Unspecified | NetworkMode::Default)
    }

    /// The peer of `container:<peer>`.
    pub fn container_peer(&self) -> Option<&str> {
        match self {
            NetworkMode::Container(c) => Some(c),
            _ => None,
        }
    }
}

impl From<String> for NetworkMode {
    fn from(s: String) -> Self {
        match s.as_str() {
            "" => NetworkMode::Unspecified,
            "default" => NetworkMode::Default,
            "bridge" => NetworkMode::Bridge,
            "host" => NetworkMode::Host,
            "none" => NetworkMode::None,
            _ => match s.strip_prefix("container:") {
                Some(c) => NetworkMode::Container(c.to_string()),
                None => NetworkMode::Named(s),
            },
        }
    }
}

impl From<&str> for NetworkMode {
    fn from(s: &str) -> Self {
        NetworkMode::from(s.to_string())
    }
}

impl From<NetworkMode> for String {
    fn from(m: NetworkMode) -> String {
        m.as_str().into_owned()
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

/// The create request's `Config` (swagger `ContainerConfig`), image defaults merged in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub hostname: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub domainname: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub user: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub attach_stdin: Field<bool>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub attach_stdout: Field<bool>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub attach_stderr: Field<bool>,
    /// `{"80/tcp": {}}`; the values are empty objects.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub exposed_ports: Field<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub tty: Field<bool>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub open_stdin: Field<bool>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub stdin_once: Field<bool>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub env: Field<Vec<String>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub cmd: Field<StrSlice>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub image: Field<String>,
    /// `{"/data": {}}`; the values are empty objects.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub volumes: Field<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub working_dir: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub entrypoint: Field<StrSlice>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub labels: Field<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub stop_signal: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub stop_timeout: Field<i64>,
    /// Fields Berth does not read (`Healthcheck`, `OnBuild`, `Shell`...), echoed back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ContainerConfig {
    pub fn tty(&self) -> bool {
        self.tty.or_default()
    }

    /// `Entrypoint` followed by `Cmd`.
    pub fn args(&self) -> Vec<String> {
        let mut a = self.entrypoint.strings().unwrap_or_default();
        a.extend(self.cmd.strings().unwrap_or_default());
        a
    }
}

/// `HostConfig.RestartPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicy {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub name: Field<RestartPolicyName>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub maximum_retry_count: Field<i64>,
    /// Unknown fields, echoed back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `HostConfig.LogConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogConfig {
    #[serde(rename = "Type", default, skip_serializing_if = "Field::is_absent")]
    pub kind: Field<String>,
    #[serde(rename = "Config", default, skip_serializing_if = "Field::is_absent")]
    pub config: Field<BTreeMap<String, String>>,
    /// Unknown fields, echoed back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One host address of `HostConfig.PortBindings["80/tcp"]`, as sent (echoed by inspect; the
/// network code reads port bindings its own way).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PortBinding {
    #[serde(rename = "HostIp", default, skip_serializing_if = "Field::is_absent")]
    pub host_ip: Field<String>,
    #[serde(rename = "HostPort", default, skip_serializing_if = "Field::is_absent")]
    pub host_port: Field<String>,
    /// Unknown fields, echoed back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One of `HostConfig.Devices`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceMapping {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub path_on_host: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub path_in_container: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub cgroup_permissions: Field<String>,
    /// Unknown fields, echoed back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One of `HostConfig.Ulimits`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub name: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub soft: Field<i64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub hard: Field<i64>,
    /// Unknown fields, echoed back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One of `HostConfig.Mounts` (`--mount`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Mount {
    #[serde(rename = "Type", default, skip_serializing_if = "Field::is_absent")]
    pub kind: Field<MountType>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub source: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub target: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub read_only: Field<bool>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub consistency: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub bind_options: Field<BindOptions>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub volume_options: Field<VolumeOptions>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub tmpfs_options: Field<TmpfsOptions>,
    /// `type=image` only (API 1.48).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub image_options: Field<ImageOptions>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `Mount.ImageOptions` (`--mount type=image,image-subpath=…`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageOptions {
    /// The directory (or file) inside the image to mount instead of its root.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub subpath: Field<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `Mount.BindOptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BindOptions {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub propagation: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub create_mountpoint: Field<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `Mount.VolumeOptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeOptions {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub no_copy: Field<bool>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub labels: Field<BTreeMap<String, String>>,
    /// `{"Name": driver, "Options": {...}}`, passed to the volume driver.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub driver_config: Field<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `Mount.TmpfsOptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TmpfsOptions {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub size_bytes: Field<i64>,
    /// Permission bits (Go's `os.FileMode`, unsigned).
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub mode: Field<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The resource fields of `HostConfig` (swagger `Resources`), also what `update` changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub cpu_shares: Field<i64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub memory: Field<i64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub nano_cpus: Field<i64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub cpu_period: Field<i64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub cpu_quota: Field<i64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub cpuset_cpus: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub cpuset_mems: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub devices: Field<Vec<DeviceMapping>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub memory_reservation: Field<i64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub memory_swap: Field<i64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub pids_limit: Field<i64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub ulimits: Field<Vec<Ulimit>>,
}

/// The create request's `HostConfig`, as sent plus what the daemon fills in at create
/// (`NetworkMode`, `Runtime`, the namespace modes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub binds: Field<Vec<String>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub log_config: Field<LogConfig>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub network_mode: Field<NetworkMode>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub port_bindings: Field<BTreeMap<String, Field<Vec<PortBinding>>>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub restart_policy: Field<RestartPolicy>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub auto_remove: Field<bool>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub volumes_from: Field<Vec<String>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub mounts: Field<Vec<Mount>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub cap_add: Field<StrSlice>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub cap_drop: Field<StrSlice>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub cgroupns_mode: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub dns: Field<Vec<String>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub dns_options: Field<Vec<String>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub dns_search: Field<Vec<String>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub extra_hosts: Field<Vec<String>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub group_add: Field<Vec<String>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub ipc_mode: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub links: Field<Vec<String>>,
    /// The number as sent, so that an out-of-range one is refused in dockerd's words.
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub oom_score_adj: Field<serde_json::Number>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub pid_mode: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub privileged: Field<bool>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub publish_all_ports: Field<bool>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub readonly_rootfs: Field<bool>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub security_opt: Field<Vec<String>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub tmpfs: Field<BTreeMap<String, String>>,
    #[serde(rename = "UTSMode", default, skip_serializing_if = "Field::is_absent")]
    pub uts_mode: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub shm_size: Field<i64>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub sysctls: Field<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub runtime: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub init: Field<bool>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub masked_paths: Field<Vec<String>>,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub readonly_paths: Field<Vec<String>>,
    #[serde(flatten)]
    pub resources: Resources,
    /// Fields Berth does not read (`ConsoleSize`, `Isolation`, the blkio settings...),
    /// echoed back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl HostConfig {
    /// `NetworkMode`, `bridge` for `""`, `default` or none.
    pub fn network_mode(&self) -> NetworkMode {
        match self.network_mode.get() {
            None => NetworkMode::Bridge,
            Some(m) if m.is_default() => NetworkMode::Bridge,
            Some(m) => m.clone(),
        }
    }

    pub fn auto_remove(&self) -> bool {
        self.auto_remove.or_default()
    }

    /// `PortBindings` as the network code reads them: a value that is not a list is no
    /// bindings, an address that is not a string `""`, and an item of a list with a wrong
    /// item read on its own (an object as a binding, anything else as an empty one, but an
    /// array by position as serde reads a struct: kept as the map-based code read it).
    pub fn bindings(&self) -> BTreeMap<String, Vec<crate::network::PortBinding>> {
        use crate::network::PortBinding as Binding;
        let Some(m) = self.port_bindings.get() else {
            return BTreeMap::new();
        };
        let list = |f: &Field<Vec<PortBinding>>| match f {
            Field::Set(l) => l
                .iter()
                .map(|b| Binding {
                    host_ip: b.host_ip.or_default(),
                    host_port: b.host_port.or_default(),
                })
                .collect(),
            Field::Invalid(Value::Array(a)) => a
                .iter()
                .map(|x| Binding::deserialize(x).unwrap_or_default())
                .collect(),
            _ => Vec::new(),
        };
        m.iter().map(|(k, f)| (k.clone(), list(f))).collect()
    }

    /// The restart policy's name (`Unspecified` when none) and retry count (0 when none).
    pub fn restart_policy(&self) -> (RestartPolicyName, i64) {
        let p = self.restart_policy.get();
        let name = p.and_then(|p| p.name.get().cloned());
        let max = p.and_then(|p| p.maximum_retry_count.get().copied());
        (
            name.unwrap_or(RestartPolicyName::Unspecified),
            max.unwrap_or(0),
        )
    }
}

/// `POST /containers/{id}/update`'s body (swagger `ContainerUpdate`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerUpdate {
    #[serde(flatten)]
    pub resources: Resources,
    #[serde(default, skip_serializing_if = "Field::is_absent")]
    pub restart_policy: Field<RestartPolicy>,
    /// What `update` does not change (`BlkioWeight`...), ignored.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Inspect's `State`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    pub status: ContainerStatus,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    pub pid: i32,
    pub exit_code: i32,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    /// Absent when the container has no healthcheck.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

/// `State.Health`: the healthcheck's state (moby `api/types/container/health.go`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: u32,
    /// The last probes, oldest first.
    #[serde(default)]
    pub log: Vec<HealthcheckResult>,
}

/// One probe of `State.Health.Log`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthcheckResult {
    /// RFC 3339 with nanoseconds.
    pub start: String,
    pub end: String,
    /// 0: healthy; anything else (-1: the probe could not run or timed out) a failure.
    pub exit_code: i64,
    pub output: String,
}

/// Inspect's `GraphDriver`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriverData {
    pub name: String,
    pub data: BTreeMap<String, String>,
}

/// `GET /containers/{id}/json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInspect {
    pub id: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub state: ContainerState,
    pub image: String,
    pub resolv_conf_path: String,
    pub hostname_path: String,
    pub hosts_path: String,
    pub log_path: String,
    pub name: String,
    pub restart_count: u32,
    pub driver: String,
    pub platform: String,
    pub mount_label: String,
    pub process_label: String,
    pub app_armor_profile: String,
    #[serde(rename = "ExecIDs")]
    pub exec_ids: Option<Vec<String>>,
    pub host_config: HostConfig,
    pub graph_driver: GraphDriverData,
    /// The mount points, as the mounts module describes them.
    pub mounts: Vec<Value>,
    pub config: ContainerConfig,
    /// Filled by the network module.
    pub network_settings: NetworkSettings,
}

/// `HostConfig` of a list entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SummaryHostConfig {
    pub network_mode: String,
}

/// One entry of `GET /containers/json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSummary {
    pub id: String,
    pub names: Vec<String>,
    pub image: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    pub command: String,
    /// Unix seconds.
    pub created: i64,
    /// Filled by the network module.
    pub ports: Vec<Port>,
    pub labels: BTreeMap<String, String>,
    pub state: ContainerStatus,
    pub status: String,
    pub host_config: SummaryHostConfig,
    /// Filled by the network module.
    pub network_settings: SummaryNetworkSettings,
    pub mounts: Vec<Value>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn host_config_round_trips_exactly() {
        let v = json!({
            "Binds": null, "CapAdd": "NET_ADMIN", "ConsoleSize": [0, 0], "Memory": 5,
            "Devices": [{"PathOnHost": "/dev/null"}], "NetworkMode": "container:abc",
            "PortBindings": {"80/tcp": null, "81/tcp": [{"HostPort": "8080"}]},
            "RestartPolicy": {"Name": "sometimes"}, "Unknown": {"x": [1]},
            "ShmSize": "big", "Ulimits": [{"Name": "nofile", "Soft": "x"}],
        });
        let hc: HostConfig = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(hc.resources.memory, Field::Set(5));
        assert_eq!(hc.network_mode(), NetworkMode::Container("abc".into()));
        assert_eq!(
            hc.restart_policy().0,
            RestartPolicyName::Other("sometimes".into())
        );
        assert_eq!(hc.extra.len(), 2, "{:?}", hc.extra);
        // A wrong-typed value reads as absent and is echoed as sent.
        assert_eq!(hc.shm_size.get(), None);
        assert_eq!(hc.shm_size.or_default(), 0);
        let u = &hc.resources.ulimits.get().unwrap()[0];
        assert_eq!(
            (u.soft.get(), u.name.get().map(String::as_str)),
            (None, Some("nofile"))
        );
        assert_eq!(serde_json::to_value(&hc).unwrap(), v);
    }

    #[test]
    fn config_round_trips_exactly() {
        let v =
            json!({"Cmd": "sh", "Entrypoint": null, "Env": [], "Healthcheck": {"Test": ["NONE"]}});
        let c: ContainerConfig = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(c.args(), ["sh"]);
        assert_eq!(serde_json::to_value(&c).unwrap(), v);
    }

    #[test]
    fn words_of_enums() {
        for w in [
            "",
            "default",
            "bridge",
            "host",
            "none",
            "container:x",
            "mynet",
        ] {
            assert_eq!(NetworkMode::from(w).to_string(), w);
        }
        assert!(NetworkMode::from("").is_default());
        assert_eq!(
            serde_json::to_value(ContainerStatus::Restarting).unwrap(),
            json!("restarting")
        );
        assert_eq!(MountType::from("tmpfs"), MountType::Tmpfs);
        assert_eq!(RestartPolicyName::from("on-failure").as_str(), "on-failure");
    }
}
