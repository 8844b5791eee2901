//! The builder's input: what the engine resolved from the create request, the image
//! config and the network driver. Plain data, no I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use super::seccomp_profile::KernelVersion;

/// Everything the spec depends on, already resolved by the engine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSpecInput {
    pub id: String,
    /// Absolute path of the prepared root filesystem (the overlay mount).
    pub rootfs: PathBuf,
    /// Entrypoint followed by command.
    pub args: Vec<String>,
    /// `KEY=value`.
    pub env: Vec<String>,
    /// Absolute; empty means `/`.
    pub cwd: String,
    pub user: User,
    pub hostname: String,
    pub tty: bool,
    pub readonly_rootfs: bool,
    pub privileged: bool,
    /// `--cap-add`, with or without `CAP_`, any case; `ALL` for every capability.
    pub cap_add: Vec<String>,
    /// `--cap-drop`, the same way.
    pub cap_drop: Vec<String>,
    /// Every capability the host lets containers hold (the daemon's bounding set): what
    /// `--privileged` and `--cap-add ALL` grant. `None`: every capability known here.
    pub all_caps: Option<Vec<String>>,
    pub resources: Resources,
    pub ulimits: Vec<Ulimit>,
    pub sysctls: BTreeMap<String, String>,
    /// `/dev/shm`'s size in bytes; `None` or 0 is Docker's 64 MiB.
    pub shm_size: Option<i64>,
    /// No `/dev/shm` at all (`--ipc none`).
    pub no_shm: bool,
    /// `HostConfig.Tmpfs`: destination → options (`"rw,size=64m"`).
    pub tmpfs: BTreeMap<String, String>,
    /// Binds and volumes (also `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`).
    pub mounts: Vec<BindMount>,
    /// Replaces Docker's masked paths when set (`--security-opt systempaths=unconfined`
    /// is `Some(vec![])`).
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    pub namespaces: Namespaces,
    /// Where the container's cgroup goes, e.g. `/berth/<id>`.
    pub cgroups_path: String,
    pub no_new_privileges: bool,
    /// Docker's default seccomp profile (`false`: `--security-opt seccomp=unconfined`).
    /// Never applied to privileged containers.
    pub seccomp: bool,
    /// A custom profile in Docker's JSON (`--security-opt seccomp=<profile text>`) in
    /// place of the default one; applied to privileged containers too, as dockerd does.
    pub seccomp_profile: Option<String>,
    /// The host kernel's version, for a custom profile's `minKernel` conditions.
    pub kernel: Option<KernelVersion>,
    /// `process.apparmorProfile`: the AppArmor profile to run under (already loaded).
    pub apparmor_profile: Option<String>,
    pub oom_score_adj: Option<i32>,
    /// Host devices to create in the container (`--device`), resolved by the engine.
    pub devices: Vec<Device>,
    /// `--device-cgroup-rule`: more device cgroup allow rules.
    pub device_rules: Vec<DeviceRule>,
    /// `HostConfig.Annotations`: the spec's `annotations`.
    pub annotations: BTreeMap<String, String>,
}

/// One `--device-cgroup-rule` (`c 42:* rmw`): `None` is `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    /// `a`, `c` or `b`.
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
}

/// A block device's weight (`--blkio-weight-device`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightDevice {
    pub major: i64,
    pub minor: i64,
    pub weight: u16,
}

/// A block device's throttle (`--device-read-bps` ...): bytes or operations per second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleDevice {
    pub major: i64,
    pub minor: i64,
    pub rate: u64,
}

/// `linux.resources.blockIO`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockIo {
    pub weight: Option<u16>,
    pub weight_device: Vec<WeightDevice>,
    pub read_bps: Vec<ThrottleDevice>,
    pub write_bps: Vec<ThrottleDevice>,
    pub read_iops: Vec<ThrottleDevice>,
    pub write_iops: Vec<ThrottleDevice>,
}

/// The process's identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (the user's own from `/etc/group` plus `--group-add`).
    pub additional_gids: Vec<u32>,
}

/// Resource limits as in `HostConfig`; `None` (or 0 where Docker says so) is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// Bytes; at least 6 MiB.
    pub memory: Option<i64>,
    /// Memory plus swap in bytes; -1 unlimited; unset with `memory` set is twice `memory`.
    pub memory_swap: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub cpu_shares: Option<u64>,
    /// `--cpus` × 10⁹; exclusive with `cpu_quota`/`cpu_period`.
    pub nano_cpus: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// 0 or negative is unlimited.
    pub pids_limit: Option<i64>,
    /// 0 to 100 (checked by the engine at create).
    pub memory_swappiness: Option<u64>,
    pub oom_kill_disable: bool,
    /// Microseconds (`--cpu-rt-period`, `--cpu-rt-runtime`).
    pub cpu_rt_period: Option<u64>,
    pub cpu_rt_runtime: Option<i64>,
    pub block_io: BlockIo,
    /// Hugetlb limits in bytes by page size (`2MB`, `1GB`), from the CRI.
    pub hugepage_limits: Vec<(String, u64)>,
}

/// One `--ulimit name=soft:hard`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// A bind mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    pub destination: String,
    pub readonly: bool,
    /// `rprivate` (Docker's default), `rshared`, `rslave`, …
    pub propagation: Option<String>,
}

/// A device node to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub path: String,
    /// `c` or `b`.
    pub kind: char,
    pub major: i64,
    pub minor: i64,
    /// Cgroup access: a combination of `r`, `w`, `m`.
    pub permissions: String,
    pub file_mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// How the container gets a namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NamespaceMode {
    /// A new one (Docker's default).
    #[default]
    Private,
    /// The host's: no namespace entry (`--pid host`, `--network host`).
    Host,
    /// Join an existing one (`container:<id>` → `/proc/<pid>/ns/<kind>`, or the netns the
    /// network driver prepared).
    Path(PathBuf),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    pub pid: NamespaceMode,
    pub ipc: NamespaceMode,
    pub uts: NamespaceMode,
    pub net: NamespaceMode,
    /// A private cgroup namespace (Docker's default on cgroup v2, not on v1).
    pub cgroup: bool,
}
