//! `GET /version` and `GET /info`: what the daemon is and what the host offers.

use std::collections::BTreeMap;

use berth_api_types::distribution::normalize_arch;
use berth_api_types::system::{
    Commit, ComponentVersion, IndexInfo, Platform, PluginsInfo, RegistryConfig, RuntimeInfo,
    SwarmInfo, SystemInfo, SystemVersion,
};
use berth_api_types::ApiVersion;
use berth_sys::host;

use crate::Engine;

/// Berth's release, reported where dockerd reports its own.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");

impl Engine {
    /// `GET /version`.
    pub fn version(&self) -> SystemVersion {
        let uname = host::uname();
        let arch = normalize_arch(&uname.machine);
        let details = BTreeMap::from([
            ("ApiVersion".to_string(), ApiVersion::CURRENT.to_string()),
            ("Arch".to_string(), arch.clone()),
            (
                "BuildTime".to_string(),
                env!("BERTH_BUILD_TIME").to_string(),
            ),
            (
                "Experimental".to_string(),
                self.config.experimental.to_string(),
            ),
            (
                "GitCommit".to_string(),
                env!("BERTH_GIT_COMMIT").to_string(),
            ),
            (
                "GoVersion".to_string(),
                env!("BERTH_RUSTC_VERSION").to_string(),
            ),
            ("KernelVersion".to_string(), uname.kernel_version.clone()),
            ("MinAPIVersion".to_string(), ApiVersion::MIN.to_string()),
            ("Os".to_string(), "linux".to_string()),
        ]);
        SystemVersion {
            platform: Platform {
                name: "Berth Engine".into(),
            },
            components: vec![ComponentVersion {
                name: "Engine".into(),
                version: ENGINE_VERSION.into(),
                details,
            }],
            version: ENGINE_VERSION.into(),
            api_version: ApiVersion::CURRENT.to_string(),
            min_api_version: ApiVersion::MIN.to_string(),
            git_commit: env!("BERTH_GIT_COMMIT").into(),
            go_version: env!("BERTH_RUSTC_VERSION").into(),
            os: "linux".into(),
            arch,
            kernel_version: uname.kernel_version,
            experimental: self.config.experimental,
            build_time: env!("BERTH_BUILD_TIME").into(),
        }
    }

    /// `GET /info`: host facts read fresh on each call (they are cheap and may change).
    pub async fn info(&self) -> SystemInfo {
        let config = self.config.clone();
        let id = self.id.clone();
        let images = self.images.count();
        let counts = self.container_counts();
        crate::blocking::spawn(move || collect_info(&config, id, images, counts))
            .await
            .expect("info collection does not panic")
    }
}

/// `counts`: containers (all, running, stopped).
fn collect_info(
    config: &crate::EngineConfig,
    id: String,
    images: usize,
    counts: (usize, usize, usize),
) -> SystemInfo {
    let uname = host::uname();
    let os = host::os_release();
    let cgroup_version = host::cgroup_version();
    let cg = host::cgroup_features(cgroup_version);
    let bridge_nf_iptables = host::bridge_nf_call(false);
    let bridge_nf_ip6tables = host::bridge_nf_call(true);

    let mut warnings = Vec::new();
    // Wording as moby `daemon/info_unix.go`, which the docker CLI prints verbatim.
    if !cg.swap_limit {
        warnings.push("WARNING: No swap limit support".to_string());
    }
    if !bridge_nf_iptables {
        warnings.push("WARNING: bridge-nf-call-iptables is disabled".to_string());
    }
    if !bridge_nf_ip6tables {
        warnings.push("WARNING: bridge-nf-call-ip6tables is disabled".to_string());
    }

    let mut insecure = vec!["127.0.0.0/8".to_string()];
    insecure.extend(config.insecure_registries.iter().cloned());

    let mut security_options = Vec::new();
    if host::seccomp_available() {
        security_options.push("name=seccomp,profile=builtin".to_string());
    }
    if cgroup_version == host::CgroupVersion::V2 {
        security_options.push("name=cgroupns".to_string());
    }

    SystemInfo {
        id,
        containers: counts.0 as u64,
        containers_running: counts.1 as u64,
        containers_paused: 0,
        containers_stopped: counts.2 as u64,
        images: images as u64,
        driver: "overlay2".into(),
        driver_status: vec![
            [
                "Backing Filesystem".into(),
                host::backing_filesystem(&config.data_root),
            ],
            ["Supports d_type".into(), "true".into()],
            ["Native Overlay Diff".into(), "true".into()],
            ["userxattr".into(), "false".into()],
        ],
        plugins: PluginsInfo {
            volume: vec!["local".into()],
            network: vec!["bridge".into(), "host".into(), "null".into()],
            authorization: None,
            // dockerd lists its drivers that log somewhere (not `none`), sorted.
            log: ["journald", "json-file", "local", "syslog"]
                .map(String::from)
                .into(),
        },
        memory_limit: cg.memory_limit,
        swap_limit: cg.swap_limit,
        kernel_memory_tcp: cg.kernel_memory_tcp,
        cpu_cfs_period: cg.cpu_cfs_period,
        cpu_cfs_quota: cg.cpu_cfs_quota,
        cpu_shares: cg.cpu_shares,
        cpu_set: cg.cpu_set,
        pids_limit: cg.pids_limit,
        ipv4_forwarding: host::ipv4_forwarding(),
        bridge_nf_iptables,
        bridge_nf_ip6tables,
        debug: config.debug,
        n_fd: host::open_fds(),
        oom_kill_disable: cg.oom_kill_disable,
        // Go reports goroutines; the nearest honest figure for us is the thread count.
        n_goroutines: thread_count(),
        system_time: now_rfc3339(),
        logging_driver: config.log_driver.clone(),
        cgroup_driver: "cgroupfs".into(),
        cgroup_version: cgroup_version.as_str().into(),
        n_events_listener: 0,
        kernel_version: uname.kernel_version,
        operating_system: os.pretty_name,
        os_version: os.version_id,
        os_type: "linux".into(),
        architecture: uname.machine,
        index_server_address: "https://index.docker.io/v1/".into(),
        registry_config: RegistryConfig {
            allow_nondistributable_artifacts_cidrs: vec![],
            allow_nondistributable_artifacts_hostnames: vec![],
            insecure_registry_cidrs: insecure,
            index_configs: BTreeMap::from([(
                "docker.io".to_string(),
                IndexInfo {
                    name: "docker.io".into(),
                    mirrors: vec![],
                    secure: true,
                    official: true,
                },
            )]),
            mirrors: vec![],
        },
        ncpu: host::ncpu(),
        mem_total: host::mem_total(),
        generic_resources: None,
        docker_root_dir: config.data_root.display().to_string(),
        http_proxy: proxy_env("HTTP_PROXY"),
        https_proxy: proxy_env("HTTPS_PROXY"),
        no_proxy: proxy_env("NO_PROXY"),
        name: uname.hostname,
        labels: config.labels.clone(),
        experimental_build: config.experimental,
        server_version: super::system::ENGINE_VERSION.into(),
        runtimes: runtimes_info(config),
        default_runtime: config.default_runtime.clone(),
        swarm: SwarmInfo::inactive(),
        live_restore_enabled: config.live_restore,
        isolation: String::new(),
        init_binary: String::new(),
        containerd_commit: Commit::default(),
        runc_commit: Commit::default(),
        init_commit: Commit::default(),
        security_options,
        cdi_spec_dirs: vec![],
        warnings: (!warnings.is_empty()).then_some(warnings),
    }
}

/// `Runtimes`: the embedded one and the configured ones, as dockerd lists them.
fn runtimes_info(config: &crate::EngineConfig) -> BTreeMap<String, RuntimeInfo> {
    let builtin = RuntimeInfo {
        path: "berth-shim".into(),
        runtime_args: vec![],
    };
    std::iter::once((crate::BUILTIN_RUNTIME.to_string(), builtin))
        .chain(config.runtimes.iter().map(|(name, rt)| {
            let info = RuntimeInfo {
                path: rt.path.clone(),
                runtime_args: rt.args.clone(),
            };
            (name.clone(), info)
        }))
        .collect()
}

fn thread_count() -> u64 {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count() as u64)
        .unwrap_or(1)
}

/// A proxy variable with any password removed (no secrets in API answers).
fn proxy_env(name: &str) -> String {
    let value = std::env::var(name)
        .or_else(|_| std::env::var(name.to_lowercase()))
        .unwrap_or_default();
    redact_userinfo(&value)
}

fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) if !host.contains('@') && userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:xxxxx@{host}")
        }
        _ => url.to_string(),
    }
}

/// Times in RFC 3339 with nine digits of nanoseconds, as Go's `time.Time` marshals them.
pub(crate) use berth_api_types::timestamp::{format_rfc3339, now_rfc3339};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_passwords_are_redacted() {
        assert_eq!(
            redact_userinfo("http://bob:secret@proxy:3128"),
            "http://bob:xxxxx@proxy:3128"
        );
        assert_eq!(redact_userinfo("http://proxy:3128"), "http://proxy:3128");
        assert_eq!(redact_userinfo(""), "");
    }
}
