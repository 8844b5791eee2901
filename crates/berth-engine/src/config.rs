//! Settings the engine runs with, resolved by `berthd` from flags and daemon.json.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::EngineError;

/// Where container cgroups go unless `--cgroup-parent` says otherwise.
pub const DEFAULT_CGROUP_PARENT: &str = "/berth";

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Persistent state (`/var/lib/berth`).
    pub data_root: PathBuf,
    /// Runtime state that a reboot clears (`/run/berth`).
    pub exec_root: PathBuf,
    pub debug: bool,
    pub experimental: bool,
    pub labels: Vec<String>,
    /// Registries reached over plain HTTP besides loopback (CIDRs or host:port).
    pub insecure_registries: Vec<String>,
    /// Where per-registry CAs and client certificates live (`<dir>/<host:port>/*.crt`,
    /// `*.cert`, `*.key`), searched in order.
    pub registry_certs_dirs: Vec<PathBuf>,
    /// Layers downloaded at once per pull.
    pub max_concurrent_downloads: usize,
    /// Layers uploaded at once per push.
    pub max_concurrent_uploads: usize,
    pub live_restore: bool,
    /// The `berth-shim` binary (berthd: next to its own executable, or `$BERTH_SHIM`).
    pub shim_binary: PathBuf,
    /// The cgroup every container's cgroup is made under (`--cgroup-parent`, `/berth`).
    pub cgroup_parent: String,
    /// Networking: the default bridge, address pools, firewall.
    pub network: NetConfig,
}

/// `--bridge`, `--bip`, `--iptables`, `--ip-forward`, `--mtu`, `default-address-pools`.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The default bridge's Linux name (created if missing).
    pub bridge: String,
    /// The default bridge's gateway and subnet (`172.17.0.1/16`); `None`: the first free
    /// subnet of the pools.
    pub bip: Option<String>,
    /// Where new networks' subnets come from; empty: Docker's defaults.
    pub pools: Vec<berth_network::ipam::Pool>,
    pub iptables: bool,
    pub ip_forward: bool,
    pub mtu: u32,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            bridge: "berth0".into(),
            bip: None,
            pools: Vec::new(),
            iptables: true,
            ip_forward: true,
            mtu: 1500,
        }
    }
}

impl EngineConfig {
    pub fn new(data_root: PathBuf, exec_root: PathBuf) -> Self {
        Self {
            data_root,
            exec_root,
            debug: false,
            experimental: false,
            labels: Vec::new(),
            insecure_registries: Vec::new(),
            registry_certs_dirs: vec![
                PathBuf::from("/etc/berth/certs.d"),
                PathBuf::from("/etc/docker/certs.d"),
            ],
            max_concurrent_downloads: 3,
            max_concurrent_uploads: 5,
            live_restore: true,
            shim_binary: PathBuf::from("berth-shim"),
            cgroup_parent: DEFAULT_CGROUP_PARENT.to_string(),
            network: NetConfig::default(),
        }
    }

    /// Creates both roots with owner-only access (they hold keys, logs and container files).
    pub(crate) fn prepare_dirs(&self) -> Result<(), EngineError> {
        for dir in [&self.data_root, &self.exec_root] {
            fs::create_dir_all(dir).map_err(EngineError::io("cannot create directory", dir))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o710))
                .map_err(EngineError::io("cannot set permissions on", dir))?;
        }
        Ok(())
    }
}
