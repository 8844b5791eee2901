//! Settings the engine runs with, resolved by `berthd` from flags and daemon.json, and the
//! rules for the OCI runtimes a daemon offers (checked once, at start-up).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::EngineError;

/// Where container cgroups go unless `--cgroup-parent` says otherwise.
pub const DEFAULT_CGROUP_PARENT: &str = "/berth";

/// The embedded runtime's name: libcontainer inside `berth-shim`, the default. Like
/// dockerd's `runc`, it cannot be redefined.
pub const BUILTIN_RUNTIME: &str = "berth";

/// An external OCI runtime (daemon.json `runtimes`, `--add-runtime name=path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// The binary: absolute, or a name looked up in `PATH` when a container starts.
    pub path: String,
    /// Options put before every command (`runtimeArgs`).
    pub args: Vec<String>,
}

/// Why the daemon refuses its runtime settings (worded as dockerd's, moby
/// `daemon/runtime_unix.go`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeConfigError {
    #[error("runtime name '{0}' is reserved")]
    Reserved(String),
    #[error("runtime {0}: a path must be configured")]
    NoPath(String),
    #[error("specified default runtime '{0}' does not exist")]
    UnknownDefault(String),
    #[error("invalid runtime name {0:?}: use letters, digits, '.', '_' and '-'")]
    BadName(String),
}

/// What runs a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeChoice<'a> {
    /// libcontainer in `berth-shim`.
    Builtin,
    External(&'a RuntimeConfig),
}

/// Where host binds approved under an authorization role may come from at start
/// (`berthd --authorization roles`, from the policy's `bind_allow`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindPolicy {
    /// The roles whose binds must stay beneath `allow` (operators'): a container created
    /// under one of them keeps that confinement whoever starts it.
    pub confined_roles: Vec<String>,
    /// Resolved directories (no symlink in them) a confined bind must open beneath.
    pub allow: Vec<PathBuf>,
}

impl BindPolicy {
    /// Whether a bind approved under `role` (none: created without authorization) must
    /// open beneath [`BindPolicy::allow`].
    pub fn confines(&self, role: Option<&str>) -> bool {
        role.is_some_and(|r| self.confined_roles.iter().any(|c| c == r))
    }
}

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
    /// The cgroup every container's cgroup is made under (`--cgroup-parent`, `/berth`).
    pub cgroup_parent: String,
    /// Networking: the default bridge, address pools, firewall.
    pub network: NetConfig,
    /// External OCI runtimes by name, besides [`BUILTIN_RUNTIME`].
    pub runtimes: BTreeMap<String, RuntimeConfig>,
    /// The runtime of a container created without one (`--default-runtime`).
    pub default_runtime: String,
    /// daemon.json `log-driver` / `--log-driver`: containers' driver when they name none.
    pub log_driver: String,
    /// daemon.json `log-opts` / `--log-opt`: that driver's default options.
    pub log_opts: BTreeMap<String, String>,
    /// `--authorization roles`: the confinement of binds approved under a role; `None`
    /// without authorization (every bind opened as the path resolves).
    pub bind_policy: Option<BindPolicy>,
    /// daemon.json `health-on-failure`: what is done to a container whose healthcheck
    /// turns it unhealthy, unless its label `berth.health-on-failure` says otherwise.
    pub health_on_failure: crate::HealthAction,
}

/// `--bridge`, `--bip`, `--iptables`, `--ip-forward`, `--mtu`, `default-address-pools`
/// (the network driver's configuration).
pub use berth_network::manager::Config as NetConfig;

impl EngineConfig {
    /// The cgroup every shim moves into, `<cgroup-parent>/shims`: out of berthd's, so
    /// that a service manager stopping berthd's cgroup (systemd's
    /// `KillMode=control-group`) leaves shims and containers running. No container's
    /// cgroup has that name (theirs are `<cgroup-parent>/<64-hex id>`).
    pub fn shim_cgroup(&self) -> String {
        format!("{}/shims", self.cgroup_parent.trim_end_matches('/'))
    }

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
            cgroup_parent: DEFAULT_CGROUP_PARENT.to_string(),
            network: NetConfig::default(),
            runtimes: BTreeMap::new(),
            default_runtime: BUILTIN_RUNTIME.to_string(),
            log_driver: "json-file".to_string(),
            log_opts: BTreeMap::new(),
            bind_policy: None,
            health_on_failure: crate::HealthAction::None,
        }
    }

    /// The runtime settings hold together: no external runtime takes the builtin's name
    /// or lacks a path, and the default exists.
    pub fn check_runtimes(&self) -> Result<(), RuntimeConfigError> {
        for (name, rt) in &self.runtimes {
            if name == BUILTIN_RUNTIME {
                return Err(RuntimeConfigError::Reserved(name.clone()));
            }
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(RuntimeConfigError::BadName(name.clone()));
            }
            if rt.path.trim().is_empty() {
                return Err(RuntimeConfigError::NoPath(name.clone()));
            }
        }
        if self.runtime(&self.default_runtime).is_none() {
            return Err(RuntimeConfigError::UnknownDefault(
                self.default_runtime.clone(),
            ));
        }
        Ok(())
    }

    /// The runtime called `name` (the default for `""`), if there is one.
    pub fn runtime(&self, name: &str) -> Option<RuntimeChoice<'_>> {
        let name = if name.is_empty() {
            &self.default_runtime
        } else {
            name
        };
        if name == BUILTIN_RUNTIME {
            return Some(RuntimeChoice::Builtin);
        }
        self.runtimes.get(name).map(RuntimeChoice::External)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(runtimes: &[(&str, &str)], default: &str) -> EngineConfig {
        let mut c = EngineConfig::new("/d".into(), "/e".into());
        for (name, path) in runtimes {
            c.runtimes.insert(
                name.to_string(),
                RuntimeConfig {
                    path: path.to_string(),
                    args: vec![],
                },
            );
        }
        c.default_runtime = default.into();
        c
    }

    #[test]
    fn shims_have_a_cgroup_beside_the_containers() {
        let mut c = EngineConfig::new("/d".into(), "/e".into());
        assert_eq!(c.shim_cgroup(), "/berth/shims");
        c.cgroup_parent = "/a/b".into();
        assert_eq!(c.shim_cgroup(), "/a/b/shims");
    }

    #[test]
    fn bad_runtime_settings_are_refused() {
        use RuntimeConfigError as E;
        let cases = [
            (
                config(&[("berth", "/x")], "berth"),
                E::Reserved("berth".into()),
            ),
            (config(&[("vm", " ")], "berth"), E::NoPath("vm".into())),
            (config(&[("a/b", "/x")], "berth"), E::BadName("a/b".into())),
            (config(&[("", "/x")], "berth"), E::BadName("".into())),
            (config(&[], "runc"), E::UnknownDefault("runc".into())),
            (
                config(&[("runc", "runc")], "crun"),
                E::UnknownDefault("crun".into()),
            ),
        ];
        for (c, want) in cases {
            assert_eq!(c.check_runtimes(), Err(want));
        }
        assert_eq!(
            E::Reserved("berth".into()).to_string(),
            "runtime name 'berth' is reserved"
        );
        assert_eq!(
            E::UnknownDefault("x".into()).to_string(),
            "specified default runtime 'x' does not exist"
        );
    }

    #[test]
    fn runtimes_by_name_and_default() {
        let c = config(&[("runc", "runc"), ("my-rt", "/usr/sbin/runc")], "berth");
        c.check_runtimes().unwrap();
        assert_eq!(c.runtime(""), Some(RuntimeChoice::Builtin));
        assert_eq!(c.runtime("berth"), Some(RuntimeChoice::Builtin));
        assert!(
            matches!(c.runtime("my-rt"), Some(RuntimeChoice::External(r)) if r.path == "/usr/sbin/runc")
        );
        assert_eq!(c.runtime("crun"), None);
        let c = config(&[("runc", "runc")], "runc");
        c.check_runtimes().unwrap();
        assert!(matches!(c.runtime(""), Some(RuntimeChoice::External(r)) if r.path == "runc"));
        assert_eq!(
            EngineConfig::new("/d".into(), "/e".into()).check_runtimes(),
            Ok(())
        );
    }
}
