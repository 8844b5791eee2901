//! The daemon's settings: flags merged with daemon.json, as dockerd merges them.
//!
//! A key in the file that Berth does not know is an error naming the key, and a setting
//! given both as a flag and in the file is an error too (moby `daemon/config`), so a typo
//! never silently falls back to a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use berth_engine::{EngineConfig, RuntimeConfig};
use berth_server::audit::AuditConfig;
use berth_server::{parse_host, Authorizer, Endpoint, Policy};
use berth_tls::TlsPaths;
use clap::parser::ValueSource;
use clap::ArgMatches;
use serde_json::{Map, Value};

use crate::flags::Flags;

const DEFAULT_CONFIG_FILE: &str = "/etc/berth/daemon.json";
const DEFAULT_DATA_ROOT: &str = "/var/lib/berth";
const DEFAULT_EXEC_ROOT: &str = "/run/berth";
const DEFAULT_PIDFILE: &str = "/run/berthd.pid";
const DEFAULT_HOST: &str = "unix:///run/berth.sock";
/// The CRI socket of `"cri": {"enabled": true}` without a `"socket"`.
const DEFAULT_CRI_SOCKET: &str = "/run/berth/cri.sock";
/// Where `--tlsverify` looks when the file flags are not given.
const DEFAULT_TLS_DIR: &str = "/etc/berth/tls";
/// The unix socket's group when `--group` is not given, if such a group exists.
const DEFAULT_GROUP: &str = "berth";

/// daemon.json keys Berth understands; each maps to the flag of the same meaning.
pub(crate) const KNOWN_KEYS: &[(&str, Option<&str>)] = &[
    ("hosts", Some("hosts")),
    ("tlsverify", Some("tlsverify")),
    ("tlscacert", Some("tlscacert")),
    ("tlscert", Some("tlscert")),
    ("tlskey", Some("tlskey")),
    ("tlscrl", Some("tlscrl")),
    ("audit-log", Some("audit_log")),
    ("audit-log-max-size", Some("audit_log_max_size")),
    ("audit-log-max-files", Some("audit_log_max_files")),
    ("authorization", Some("authorization")),
    ("authorization-policy", Some("authorization_policy")),
    ("data-root", Some("data_root")),
    ("exec-root", Some("exec_root")),
    ("pidfile", Some("pidfile")),
    ("group", Some("group")),
    ("log-level", Some("log_level")),
    ("debug", Some("debug")),
    ("log-format", Some("log_format")),
    ("labels", Some("labels")),
    ("insecure-registries", Some("insecure_registries")),
    ("experimental", Some("experimental")),
    ("live-restore", None),
    ("max-concurrent-downloads", Some("max_concurrent_downloads")),
    ("max-concurrent-uploads", Some("max_concurrent_uploads")),
    ("cgroup-parent", Some("cgroup_parent")),
    ("bridge", Some("bridge")),
    ("bip", Some("bip")),
    ("iptables", Some("iptables")),
    ("ip-forward", Some("ip_forward")),
    ("ipv6", Some("ipv6")),
    ("fixed-cidr-v6", Some("fixed_cidr_v6")),
    ("icc", Some("icc")),
    ("mtu", Some("mtu")),
    ("default-address-pools", None),
    ("runtimes", Some("add_runtimes")),
    ("default-runtime", Some("default_runtime")),
    ("log-driver", Some("log_driver")),
    ("log-opts", Some("log_opts")),
    ("cri", Some("cri_socket")),
    ("metrics-addr", Some("metrics_addr")),
    ("health-on-failure", Some("health_on_failure")),
];

/// Everything `daemon::run` needs, resolved and validated.
#[derive(Debug)]
pub struct DaemonConfig {
    pub hosts: Vec<Endpoint>,
    pub tls: Option<TlsPaths>,
    pub audit: Option<AuditConfig>,
    pub pidfile: PathBuf,
    pub socket_gid: Option<u32>,
    /// `--authorization roles`: the policy enforced; `None`: no authorization.
    pub authorization: Option<Arc<Authorizer>>,
    pub log_level: String,
    pub log_format: LogFormat,
    pub engine: EngineConfig,
    /// The Kubernetes CRI socket (`--cri-socket`, daemon.json `cri`); `None`: not served.
    pub cri_socket: Option<PathBuf>,
    /// CNI pod networking of the CRI API (daemon.json `cri.cni-conf-dir`, `cri.cni-bin-dir`).
    pub cri_cni: berth_cri::CniConfig,
    /// The CRI streaming server's address (daemon.json `cri.stream-address`,
    /// `cri.stream-port`; default 127.0.0.1, a port the kernel picks); loopback only.
    pub cri_stream: std::net::SocketAddr,
    /// Prometheus metrics (`--metrics-addr`, daemon.json `metrics-addr`); loopback only.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl DaemonConfig {
    pub fn resolve(flags: &Flags, matches: &ArgMatches) -> anyhow::Result<Self> {
        let (file, file_path) = load_file(flags.config_file.as_deref())?;
        if let Some(path) = &file_path {
            check_conflicts(&file, matches, path)?;
        }
        let f = FileSettings::from_map(&file)?;
        let mut network = berth_engine::NetConfig::default();
        resolve_network(flags, &f, &mut network)?;
        let audit = resolve_audit(flags, &f)?;

        let host_strings = if !flags.hosts.is_empty() {
            flags.hosts.clone()
        } else if let Some(h) = f.hosts {
            h
        } else {
            vec![DEFAULT_HOST.to_string()]
        };
        let hosts = host_strings
            .iter()
            .map(|h| parse_host(h))
            .collect::<Result<Vec<_>, _>>()?;

        let tlsverify = flags.tlsverify || f.tlsverify.unwrap_or(false);
        let pick = |flag: &Option<PathBuf>, file: Option<PathBuf>, default: &str| {
            flag.clone()
                .or(file)
                .unwrap_or_else(|| Path::new(DEFAULT_TLS_DIR).join(default))
        };
        let crl = flags.tlscrl.clone().or(f.tlscrl.clone());
        if crl.is_some() && !tlsverify {
            bail!("--tlscrl (daemon.json \"tlscrl\") needs --tlsverify: revocation applies to the client certificates of Berth's mutual-TLS TCP endpoint");
        }
        let tls = tlsverify.then(|| TlsPaths {
            ca: pick(&flags.tlscacert, f.tlscacert.clone(), "ca.pem"),
            cert: pick(&flags.tlscert, f.tlscert.clone(), "server-cert.pem"),
            key: pick(&flags.tlskey, f.tlskey.clone(), "server-key.pem"),
            crl,
        });
        let gave_tls_files =
            flags.tlscacert.is_some() || flags.tlscert.is_some() || flags.tlskey.is_some();
        if !tlsverify && gave_tls_files && hosts.iter().any(|h| matches!(h, Endpoint::Tcp(_))) {
            bail!("--tlscacert/--tlscert/--tlskey given without --tlsverify: Berth serves TCP only with mutual TLS; add --tlsverify");
        }

        let debug = flags.debug || f.debug.unwrap_or(false);
        let log_level = flags.log_level.clone().or(f.log_level).unwrap_or_else(|| {
            if debug {
                "debug".into()
            } else {
                "info".into()
            }
        });
        if !["debug", "info", "warn", "error", "fatal"].contains(&log_level.as_str()) {
            bail!("invalid --log-level {log_level:?}: use one of debug, info, warn, error, fatal");
        }

        let log_format = LogFormat::parse(flags.log_format.as_deref().or(f.log_format.as_deref()))?;

        let socket_gid = resolve_group(flags.group.clone().or(f.group).as_deref())?;
        let authorization = resolve_authorization(
            flags.authorization.clone().or(f.authorization.clone()),
            flags
                .authorization_policy
                .clone()
                .or(f.authorization_policy.clone()),
        )?;

        let data_root = absolute(
            flags
                .data_root
                .clone()
                .or(f.data_root)
                .unwrap_or_else(|| DEFAULT_DATA_ROOT.into()),
            "--data-root",
        )?;
        let exec_root = absolute(
            flags
                .exec_root
                .clone()
                .or(f.exec_root)
                .unwrap_or_else(|| DEFAULT_EXEC_ROOT.into()),
            "--exec-root",
        )?;
        let pidfile = absolute(
            flags
                .pidfile
                .clone()
                .or(f.pidfile)
                .unwrap_or_else(|| DEFAULT_PIDFILE.into()),
            "--pidfile",
        )?;

        let mut engine = EngineConfig::new(data_root, exec_root);
        engine.debug = debug;
        engine.network = network;
        engine.experimental = flags.experimental || f.experimental.unwrap_or(false);
        engine.labels = if flags.labels.is_empty() {
            f.labels.unwrap_or_default()
        } else {
            flags.labels.clone()
        };
        for label in &engine.labels {
            if !label.contains('=') {
                bail!("invalid label {label:?}: labels take the form key=value");
            }
        }
        engine.insecure_registries = if flags.insecure_registries.is_empty() {
            f.insecure_registries.unwrap_or_default()
        } else {
            flags.insecure_registries.clone()
        };
        engine.live_restore = f.live_restore.unwrap_or(true);
        if let Some(n) = flags
            .max_concurrent_downloads
            .or(f.max_concurrent_downloads)
        {
            engine.max_concurrent_downloads = positive(n, "max-concurrent-downloads")?;
        }
        if let Some(n) = flags.max_concurrent_uploads.or(f.max_concurrent_uploads) {
            engine.max_concurrent_uploads = positive(n, "max-concurrent-uploads")?;
        }
        if let Some(p) = flags.cgroup_parent.clone().or(f.cgroup_parent.clone()) {
            engine.cgroup_parent = cgroup_parent(&p)?;
        }
        let runc_on_path = find_in_path("runc").is_some();
        let file_runtimes = (f.runtimes.as_ref(), f.default_runtime.as_deref());
        resolve_runtimes(flags, file_runtimes, &mut engine, runc_on_path)?;
        if let Some(d) = flags.log_driver.clone().or(f.log_driver) {
            engine.log_driver = d;
        }
        engine.log_opts = match &f.log_opts {
            Some(opts) if flags.log_opts.is_empty() => opts.clone(),
            _ => flags
                .log_opts
                .iter()
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => Ok((k.to_string(), v.to_string())),
                    None => bail!("invalid --log-opt {kv:?}: use key=value"),
                })
                .collect::<anyhow::Result<_>>()?,
        };

        if let Some(a) = flags
            .health_on_failure
            .as_ref()
            .or(f.health_on_failure.as_ref())
        {
            engine.health_on_failure = a.parse().map_err(|e| {
                anyhow::anyhow!("--health-on-failure (daemon.json health-on-failure): {e}")
            })?;
        }
        engine.bind_policy = authorization.as_ref().map(|a| a.bind_policy());
        let cri_socket = resolve_cri(flags, f.cri.as_ref())?;
        let cri_cni = resolve_cni(f.cri.as_ref())?;
        let cri_stream = resolve_cri_stream(f.cri.as_ref())?;
        let metrics_addr = flags
            .metrics_addr
            .clone()
            .or(f.metrics_addr)
            .map(|a| resolve_metrics_addr(&a))
            .transpose()?;

        Ok(Self {
            hosts,
            tls,
            audit,
            pidfile,
            socket_gid,
            authorization,
            log_level,
            log_format,
            engine,
            cri_socket,
            cri_cni,
            cri_stream,
            metrics_addr,
        })
    }
}

/// How log lines are written (`--log-format`, daemon.json `log-format`), as dockerd's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    fn parse(value: Option<&str>) -> anyhow::Result<Self> {
        match value {
            None | Some("text") => Ok(Self::Text),
            Some("json") => Ok(Self::Json),
            Some(other) => {
                bail!("invalid --log-format {other:?}: use \"text\" or \"json\"")
            }
        }
    }
}

/// `--metrics-addr`: a loopback `IP:PORT` (the endpoint is plain HTTP, as dockerd's).
fn resolve_metrics_addr(value: &str) -> anyhow::Result<std::net::SocketAddr> {
    let addr: std::net::SocketAddr = value.parse().with_context(|| {
        format!("invalid --metrics-addr {value:?}: use IP:PORT, e.g. 127.0.0.1:9323")
    })?;
    if !addr.ip().is_loopback() {
        bail!(
            "invalid --metrics-addr {value:?}: the metrics endpoint is plain HTTP, so Berth \
             serves it on loopback only (127.0.0.1:PORT or [::1]:PORT)"
        );
    }
    Ok(addr)
}

/// `--cri-socket PATH`, or daemon.json's `"cri": {"enabled": true, "socket": PATH}`.
fn resolve_cri(flags: &Flags, file: Option<&CriSetting>) -> anyhow::Result<Option<PathBuf>> {
    if let Some(p) = &flags.cri_socket {
        return absolute(p.clone(), "--cri-socket").map(Some);
    }
    let Some(cri) = file else {
        return Ok(None);
    };
    match (cri.enabled, &cri.socket) {
        (Some(true), socket) => {
            let socket = socket
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CRI_SOCKET));
            absolute(socket, "cri.socket").map(Some)
        }
        (Some(false), _) => Ok(None),
        (None, Some(_)) => {
            bail!("daemon.json \"cri\" has a \"socket\" but no \"enabled\": set \"enabled\": true to serve the CRI API")
        }
        (None, None) => Ok(None),
    }
}

/// daemon.json `cri.cni-conf-dir` (default `/etc/cni/net.d`) and `cri.cni-bin-dir`
/// (default `/usr/lib/cni`; a `:`-separated list, as `CNI_PATH`), each absolute.
fn resolve_cni(file: Option<&CriSetting>) -> anyhow::Result<berth_cri::CniConfig> {
    let mut cni = berth_cri::CniConfig::default();
    let Some(cri) = file else {
        return Ok(cni);
    };
    if let Some(dir) = &cri.cni_conf_dir {
        cni.conf_dir = absolute(dir.clone(), "cri.cni-conf-dir")?;
    }
    if let Some(dirs) = &cri.cni_bin_dir {
        cni.bin_dirs = dirs
            .split(':')
            .map(|d| absolute(PathBuf::from(d), "cri.cni-bin-dir"))
            .collect::<anyhow::Result<_>>()?;
    }
    Ok(cni)
}

/// daemon.json `cri.stream-address` (an IP, loopback: the streaming server has no
/// authentication beyond its single-use tokens) and `cri.stream-port` (0: any free one).
fn resolve_cri_stream(file: Option<&CriSetting>) -> anyhow::Result<std::net::SocketAddr> {
    let mut addr = berth_cri::DEFAULT_STREAM_ADDRESS;
    let Some(cri) = file else {
        return Ok(addr);
    };
    if let Some(ip) = &cri.stream_address {
        let ip: std::net::IpAddr = ip.parse().with_context(|| {
            format!("invalid cri.stream-address {ip:?}: use an IP address, e.g. 127.0.0.1")
        })?;
        if !ip.is_loopback() {
            bail!(
                "invalid cri.stream-address {ip}: the CRI streaming server is plain HTTP, so \
                 Berth serves it on loopback only (127.0.0.1 or ::1)"
            );
        }
        addr.set_ip(ip);
    }
    if let Some(port) = cri.stream_port {
        addr.set_port(port);
    }
    Ok(addr)
}

/// `--audit-log` (`-`: stderr), `--audit-log-max-size`, `--audit-log-max-files`.
fn resolve_audit(flags: &Flags, f: &FileSettings) -> anyhow::Result<Option<AuditConfig>> {
    let size = flags
        .audit_log_max_size
        .clone()
        .or(f.audit_log_max_size.clone());
    let files = flags.audit_log_max_files.or(f.audit_log_max_files);
    let Some(dest) = flags.audit_log.clone().or(f.audit_log.clone()) else {
        if size.is_some() || files.is_some() {
            bail!("--audit-log-max-size and --audit-log-max-files need --audit-log");
        }
        return Ok(None);
    };
    let path = match dest.as_str() {
        "-" => None,
        p => Some(absolute(PathBuf::from(p), "--audit-log")?),
    };
    let max_size = match size {
        None => berth_server::audit::DEFAULT_MAX_SIZE,
        Some(s) => match parse_size(&s) {
            Some(n) if n > 0 => n,
            _ => bail!("invalid --audit-log-max-size {s:?}: give a size such as 100m, 512k or 1g"),
        },
    };
    let max_files = match files {
        None => berth_server::audit::DEFAULT_MAX_FILES,
        Some(0) => bail!("invalid --audit-log-max-files 0: it must be at least 1"),
        Some(n) => n,
    };
    Ok(Some(AuditConfig {
        path,
        max_size,
        max_files,
    }))
}

/// A byte count with an optional binary multiple: `512`, `64k`, `100m`, `1g` (`kb`, `MiB`
/// and the like too, as go-units `RAMInBytes` reads them; whole numbers only).
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    let num: u64 = num.parse().ok()?;
    let unit = unit.to_ascii_lowercase();
    let unit = unit.trim_end_matches('b').trim_end_matches('i');
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    num.checked_mul(1u64 << shift)
}

/// `--bridge`, `--bip`, `--iptables`, `--ip-forward`, `--ipv6`, `--fixed-cidr-v6`,
/// `--icc`, `--mtu`, `default-address-pools`.
fn resolve_network(
    flags: &Flags,
    f: &FileSettings,
    net: &mut berth_engine::NetConfig,
) -> anyhow::Result<()> {
    let bridge = flags.bridge.clone().or(f.bridge.clone());
    let bip = flags.bip.clone().or(f.bip.clone());
    match bridge.as_deref() {
        // dockerd's `DisableBridge`: no default bridge network.
        Some("none") => {
            // dockerd refuses `-b` with `--bip` whatever the name (moby
            // `verifyDaemonSettings`). berthd takes both for a named bridge, since it makes
            // that bridge and `--bip` is its address; with no bridge there is nothing
            // to give the address to, so it refuses as dockerd does.
            if bip.is_some() {
                bail!(
                    "You specified -b & --bip, mutually exclusive options. Please specify only one"
                );
            }
            net.bridge = None;
        }
        Some(b) if b.is_empty() || b.len() > 15 => {
            bail!(
                "invalid --bridge {b:?}: give an interface name of at most 15 characters, or none"
            );
        }
        Some(b) => net.bridge = Some(b.to_string()),
        None => {}
    }
    if let Some(bip) = bip {
        let (addr, prefix) = bip.split_once('/').unwrap_or((&bip, ""));
        if addr.parse::<std::net::Ipv4Addr>().is_err()
            || !matches!(prefix.parse::<u8>(), Ok(0..=30))
        {
            bail!("invalid --bip {bip:?}: give the bridge's address with its prefix, e.g. 172.17.0.1/16");
        }
        net.bip = Some(bip);
    }
    net.iptables = flags.iptables.or(f.iptables).unwrap_or(true);
    net.ip_forward = flags.ip_forward.or(f.ip_forward).unwrap_or(true);
    net.ipv6 = flags.ipv6.or(f.ipv6).unwrap_or(false);
    if let Some(cidr) = flags.fixed_cidr_v6.as_ref().or(f.fixed_cidr_v6.as_ref()) {
        let net6: berth_engine::Ipv6Net = cidr
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid --fixed-cidr-v6 {cidr:?}: {e}"))?;
        if net6.prefix() > 126 {
            bail!("invalid --fixed-cidr-v6 {cidr:?}: the subnet is too small");
        }
        net.fixed_cidr_v6 = Some(net6);
    }
    // dockerd 20.10 refuses to start so (20.10 has no default IPv6 pool to give the
    // default bridge a subnet from); without a default bridge (`--bridge=none`) it starts.
    if net.ipv6 && net.fixed_cidr_v6.is_none() && net.bridge.is_some() {
        bail!("IPv6 is enabled for the default bridge, but no subnet is configured. Specify an IPv6 subnet using --fixed-cidr-v6");
    }
    net.icc = flags.icc.or(f.icc).unwrap_or(true);
    if let Some(mtu) = flags.mtu.or(f.mtu) {
        if !(68..=65535).contains(&mtu) {
            bail!("invalid --mtu {mtu}: it must be between 68 and 65535");
        }
        net.mtu = mtu;
    }
    for p in f.default_address_pools.iter().flatten() {
        let base: berth_engine::Ipv4Net = p
            .base
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid default-address-pools base {:?}: {e}", p.base))?;
        if p.size < base.prefix() || p.size > 30 {
            bail!(
                "invalid default-address-pools size {} for base {}",
                p.size,
                p.base
            );
        }
        net.pools
            .push(berth_engine::AddressPool { base, size: p.size });
    }
    Ok(())
}

/// `runtimes` / `--add-runtime` and `default-runtime`, as dockerd takes them (moby
/// `daemon/pkg/opts/runtime.go`, `daemon/runtime_unix.go`). `runc` is registered (as
/// dockerd has it) when `runc_on_path` and neither source defines that name.
fn resolve_runtimes(
    flags: &Flags,
    (file_runtimes, file_default): (Option<&BTreeMap<String, RuntimeSetting>>, Option<&str>),
    engine: &mut EngineConfig,
    runc_on_path: bool,
) -> anyhow::Result<()> {
    let mut runtimes = BTreeMap::new();
    for (name, rt) in file_runtimes.into_iter().flatten() {
        let path = rt.path.clone().unwrap_or_default();
        if rt.runtime_type.is_some() || rt.options.is_some() {
            bail!("runtime {name}: runtimeType and options are not supported by Berth; give a path to an OCI runtime binary");
        }
        runtimes.insert(
            name.clone(),
            RuntimeConfig {
                path,
                args: rt.runtime_args.clone(),
            },
        );
    }
    for arg in &flags.add_runtimes {
        let (name, path) = arg
            .split_once('=')
            .map(|(n, p)| (n.trim().to_ascii_lowercase(), p.trim()))
            .filter(|(n, p)| !n.is_empty() && !p.is_empty())
            .ok_or_else(|| anyhow::anyhow!("invalid runtime argument: {arg}"))?;
        if runtimes.contains_key(&name) {
            bail!("runtime '{name}' was already defined");
        }
        runtimes.insert(
            name,
            RuntimeConfig {
                path: path.to_string(),
                args: Vec::new(),
            },
        );
    }
    if runc_on_path && !runtimes.contains_key("runc") {
        runtimes.insert(
            "runc".to_string(),
            RuntimeConfig {
                path: "runc".to_string(),
                args: Vec::new(),
            },
        );
    }
    engine.runtimes = runtimes;
    if let Some(d) = flags.default_runtime.as_deref().or(file_default) {
        engine.default_runtime = d.to_string();
    }
    engine.check_runtimes()?;
    Ok(())
}

/// The first executable `name` in `$PATH`.
fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn positive(n: usize, key: &str) -> anyhow::Result<usize> {
    if n == 0 {
        bail!("invalid {key} 0: it must be at least 1");
    }
    Ok(n)
}

/// `--authorization` and `--authorization-policy`: the policy file is read and checked
/// here, so that a bad one stops the daemon before it serves.
fn resolve_authorization(
    mode: Option<String>,
    policy: Option<PathBuf>,
) -> anyhow::Result<Option<Arc<Authorizer>>> {
    match (mode.as_deref(), policy) {
        (None, None) => Ok(None),
        (None, Some(_)) => bail!("--authorization-policy (daemon.json \"authorization-policy\") needs --authorization roles"),
        (Some("roles"), policy) => {
            let policy = match policy {
                Some(p) => Policy::load(&absolute(p, "--authorization-policy")?)?,
                None => Policy::default(),
            };
            Ok(Some(Arc::new(Authorizer::new(policy))))
        }
        (Some(other), _) => bail!("invalid --authorization {other:?}: the only mode is \"roles\""),
    }
}

/// `--cgroup-parent`: a cgroup path of plain components, made absolute (`berth` → `/berth`).
fn cgroup_parent(p: &str) -> anyhow::Result<String> {
    let parts: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
    if parts.is_empty() || parts.iter().any(|c| *c == "." || *c == "..") {
        bail!("invalid cgroup-parent {p:?}: it must name a cgroup, such as /berth");
    }
    Ok(format!("/{}", parts.join("/")))
}

fn absolute(p: PathBuf, flag: &str) -> anyhow::Result<PathBuf> {
    if !p.is_absolute() {
        bail!("{flag} must be an absolute path, got {}", p.display());
    }
    Ok(p)
}

fn resolve_group(name: Option<&str>) -> anyhow::Result<Option<u32>> {
    let (name, explicit) = match name {
        Some(n) => (n, true),
        None => (DEFAULT_GROUP, false),
    };
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(Some(gid));
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(Some(g.gid.as_raw())),
        Ok(None) if !explicit => Ok(None),
        Ok(None) => {
            bail!("group {name:?} not found: create it (groupadd {name}) or pass another --group")
        }
        Err(e) => Err(e).with_context(|| format!("cannot look up group {name:?}")),
    }
}

/// Reads daemon.json: the given file (which must exist) or the default one if present.
fn load_file(path: Option<&Path>) -> anyhow::Result<(Map<String, Value>, Option<PathBuf>)> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok((Map::new(), None))
        }
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read config file {}", path.display()))
        }
    };
    let value: Value = serde_json::from_str(&text)
        .with_context(|| format!("config file {} is not valid JSON", path.display()))?;
    let Value::Object(map) = value else {
        bail!("config file {} must hold a JSON object", path.display());
    };
    let unknown: Vec<&str> = map
        .keys()
        .filter(|k| !KNOWN_KEYS.iter().any(|(known, _)| known == k))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        bail!(
            "unable to configure the Berth daemon with file {}: the following directives don't match any configuration option: {}",
            path.display(),
            unknown.join(", ")
        );
    }
    Ok((map, Some(path)))
}

fn check_conflicts(
    file: &Map<String, Value>,
    matches: &ArgMatches,
    path: &Path,
) -> anyhow::Result<()> {
    let both: Vec<&str> = KNOWN_KEYS
        .iter()
        .filter(|(key, flag)| {
            file.contains_key(*key)
                && flag.is_some_and(|f| matches.value_source(f) == Some(ValueSource::CommandLine))
        })
        .map(|(key, _)| *key)
        .collect();
    if !both.is_empty() {
        bail!(
            "unable to configure the Berth daemon with file {}: the following directives are specified both as a flag and in the configuration file: {}",
            path.display(),
            both.join(", ")
        );
    }
    Ok(())
}

/// Typed view of the known daemon.json keys.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
struct FileSettings {
    hosts: Option<Vec<String>>,
    tlsverify: Option<bool>,
    tlscacert: Option<PathBuf>,
    tlscert: Option<PathBuf>,
    tlskey: Option<PathBuf>,
    tlscrl: Option<PathBuf>,
    audit_log: Option<String>,
    audit_log_max_size: Option<String>,
    audit_log_max_files: Option<u32>,
    authorization: Option<String>,
    authorization_policy: Option<PathBuf>,
    data_root: Option<PathBuf>,
    exec_root: Option<PathBuf>,
    pidfile: Option<PathBuf>,
    group: Option<String>,
    log_level: Option<String>,
    log_format: Option<String>,
    debug: Option<bool>,
    labels: Option<Vec<String>>,
    insecure_registries: Option<Vec<String>>,
    experimental: Option<bool>,
    live_restore: Option<bool>,
    max_concurrent_downloads: Option<usize>,
    max_concurrent_uploads: Option<usize>,
    cgroup_parent: Option<String>,
    bridge: Option<String>,
    bip: Option<String>,
    iptables: Option<bool>,
    ip_forward: Option<bool>,
    ipv6: Option<bool>,
    fixed_cidr_v6: Option<String>,
    icc: Option<bool>,
    mtu: Option<u32>,
    default_address_pools: Option<Vec<PoolSetting>>,
    runtimes: Option<BTreeMap<String, RuntimeSetting>>,
    default_runtime: Option<String>,
    log_driver: Option<String>,
    log_opts: Option<BTreeMap<String, String>>,
    cri: Option<CriSetting>,
    metrics_addr: Option<String>,
    health_on_failure: Option<String>,
}

/// daemon.json's `"cri": {"enabled": true, "socket": "/run/berth/cri.sock",
/// "cni-conf-dir": "/etc/cni/net.d", "cni-bin-dir": "/usr/lib/cni", "stream-address":
/// "127.0.0.1", "stream-port": 0}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CriSetting {
    enabled: Option<bool>,
    socket: Option<PathBuf>,
    cni_conf_dir: Option<PathBuf>,
    cni_bin_dir: Option<String>,
    stream_address: Option<String>,
    stream_port: Option<u16>,
}

/// One `runtimes` entry: `{"path": "/usr/bin/runc", "runtimeArgs": ["--debug"]}`.
/// dockerd's `runtimeType` and `options` (containerd shims) are recognised to be refused.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RuntimeSetting {
    path: Option<String>,
    #[serde(rename = "runtimeArgs", default)]
    runtime_args: Vec<String>,
    #[serde(rename = "runtimeType")]
    runtime_type: Option<String>,
    options: Option<serde_json::Value>,
}

/// One `default-address-pools` entry: `{"base": "10.10.0.0/16", "size": 24}`.
#[derive(Debug, serde::Deserialize)]
struct PoolSetting {
    base: String,
    size: u8,
}

impl FileSettings {
    fn from_map(map: &Map<String, Value>) -> anyhow::Result<Self> {
        serde_json::from_value(Value::Object(map.clone())).context("invalid value in config file")
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::*;

    fn resolve(args: &[&str]) -> anyhow::Result<DaemonConfig> {
        let mut argv = vec!["berthd"];
        argv.extend_from_slice(args);
        let m = Flags::command().try_get_matches_from(argv)?;
        let f = Flags::from_arg_matches(&m)?;
        DaemonConfig::resolve(&f, &m)
    }

    /// A daemon.json with `body` in a directory of its own, removed when the returned
    /// guard is dropped.
    fn write_config(body: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("daemon.json");
        std::fs::write(&p, body).unwrap();
        let s = p.display().to_string();
        (dir, s)
    }

    #[test]
    fn unknown_key_is_named() {
        let (_p, path) = write_config(r#"{"debug": true, "no-such-thing": 1}"#);
        let err = resolve(&["--config-file", &path]).unwrap_err().to_string();
        assert!(err.contains("no-such-thing"), "{err}");
        assert!(!err.contains("debug,"), "{err}");
    }

    #[test]
    fn log_format_from_flag_or_file() {
        assert_eq!(resolve(&[]).unwrap().log_format, LogFormat::Text);
        assert_eq!(
            resolve(&["--log-format", "json"]).unwrap().log_format,
            LogFormat::Json
        );
        let (_p, path) = write_config(r#"{"log-format": "json"}"#);
        assert_eq!(
            resolve(&["--config-file", &path]).unwrap().log_format,
            LogFormat::Json
        );
        let err = resolve(&["--log-format", "xml"]).unwrap_err().to_string();
        assert!(err.contains("invalid --log-format \"xml\""), "{err}");
    }

    #[test]
    fn metrics_addr_is_loopback_only() {
        assert_eq!(resolve(&[]).unwrap().metrics_addr, None);
        let c = resolve(&["--metrics-addr", "127.0.0.1:9323"]).unwrap();
        assert_eq!(c.metrics_addr, Some("127.0.0.1:9323".parse().unwrap()));
        let err = resolve(&["--metrics-addr", "0.0.0.0:9323"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("loopback only"), "{err}");
        assert!(resolve(&["--metrics-addr", "localhost"]).is_err());
    }

    #[test]
    fn flag_and_file_conflict() {
        let (_p, path) = write_config(r#"{"data-root": "/var/lib/x"}"#);
        let err = resolve(&["--config-file", &path, "--data-root", "/y"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("both as a flag and in the configuration file: data-root"),
            "{err}"
        );
    }

    #[test]
    fn health_on_failure_key() {
        assert_eq!(
            resolve(&[]).unwrap().engine.health_on_failure,
            berth_engine::HealthAction::None
        );
        let (_p, path) = write_config(r#"{"health-on-failure": "restart"}"#);
        let c = resolve(&["--config-file", &path]).unwrap();
        assert_eq!(
            c.engine.health_on_failure,
            berth_engine::HealthAction::Restart
        );
        let c = resolve(&["--health-on-failure", "kill"]).unwrap();
        assert_eq!(c.engine.health_on_failure, berth_engine::HealthAction::Kill);
        assert!(resolve(&["--health-on-failure", "x"]).is_err());
        let (_p, path) = write_config(r#"{"health-on-failure": "reboot"}"#);
        let err = resolve(&["--config-file", &path]).unwrap_err().to_string();
        assert!(err.contains("use restart, stop, kill or none"), "{err}");
    }

    #[test]
    fn cri_socket_flag_and_file_key() {
        // Off unless asked.
        assert_eq!(resolve(&[]).unwrap().cri_socket, None);
        let c = resolve(&["--cri-socket", "/tmp/cri.sock"]).unwrap();
        assert_eq!(c.cri_socket, Some(PathBuf::from("/tmp/cri.sock")));
        assert!(resolve(&["--cri-socket", "cri.sock"]).is_err());
        let (_p, path) = write_config(r#"{"cri": {"enabled": true}}"#);
        let c = resolve(&["--config-file", &path]).unwrap();
        assert_eq!(c.cri_socket, Some(PathBuf::from("/run/berth/cri.sock")));
        let (_p, path) = write_config(r#"{"cri": {"enabled": true, "socket": "/x/cri.sock"}}"#);
        let c = resolve(&["--config-file", &path]).unwrap();
        assert_eq!(c.cri_socket, Some(PathBuf::from("/x/cri.sock")));
        let (_p, path) = write_config(r#"{"cri": {"enabled": false, "socket": "/x/cri.sock"}}"#);
        assert_eq!(resolve(&["--config-file", &path]).unwrap().cri_socket, None);
        // A socket without "enabled", an unknown key inside "cri", and the flag beside the
        // file key are refused.
        let (_p, path) = write_config(r#"{"cri": {"socket": "/x/cri.sock"}}"#);
        let err = resolve(&["--config-file", &path]).unwrap_err();
        assert!(format!("{err:#}").contains("enabled"), "{err:#}");
        let (_p, path) = write_config(r#"{"cri": {"enabled": true, "sokcet": "/x"}}"#);
        let err = resolve(&["--config-file", &path]).unwrap_err();
        assert!(format!("{err:#}").contains("sokcet"), "{err:#}");
        let (_p, path) = write_config(r#"{"cri": {"enabled": true}}"#);
        assert!(resolve(&["--config-file", &path, "--cri-socket", "/y.sock"]).is_err());
    }

    #[test]
    fn cri_stream_address_is_loopback() {
        assert_eq!(
            resolve(&[]).unwrap().cri_stream,
            "127.0.0.1:0".parse().unwrap()
        );
        let (_p, path) = write_config(
            r#"{"cri": {"enabled": true, "stream-address": "::1", "stream-port": 10010}}"#,
        );
        let c = resolve(&["--config-file", &path]).unwrap();
        assert_eq!(c.cri_stream, "[::1]:10010".parse().unwrap());
        for (bad, says) in [
            (r#""stream-address": "0.0.0.0""#, "loopback only"),
            (r#""stream-address": "localhost""#, "use an IP address"),
            (r#""stream-port": 70000"#, ""),
        ] {
            let (_p, path) = write_config(&format!(r#"{{"cri": {{"enabled": true, {bad}}}}}"#));
            let err = format!("{:#}", resolve(&["--config-file", &path]).unwrap_err());
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn cri_cni_dirs_default_and_file_keys() {
        let c = resolve(&[]).unwrap().cri_cni;
        assert_eq!(c.conf_dir, PathBuf::from("/etc/cni/net.d"));
        assert_eq!(c.bin_dirs, vec![PathBuf::from("/usr/lib/cni")]);
        let (_p, path) = write_config(
            r#"{"cri": {"enabled": true, "cni-conf-dir": "/t/net.d", "cni-bin-dir": "/t/a:/t/b"}}"#,
        );
        let c = resolve(&["--config-file", &path]).unwrap().cri_cni;
        assert_eq!(c.conf_dir, PathBuf::from("/t/net.d"));
        assert_eq!(
            c.bin_dirs,
            vec![PathBuf::from("/t/a"), PathBuf::from("/t/b")]
        );
        for bad in [r#""cni-conf-dir": "net.d""#, r#""cni-bin-dir": "/a:b""#] {
            let (_p, path) = write_config(&format!(r#"{{"cri": {{"enabled": true, {bad}}}}}"#));
            let err = resolve(&["--config-file", &path]).unwrap_err().to_string();
            assert!(err.contains("must be an absolute path"), "{err}");
        }
    }

    #[test]
    fn file_values_apply() {
        let (_p, path) = write_config(
            r#"{"data-root": "/var/lib/x", "hosts": ["unix:///tmp/x.sock"], "labels": ["a=b"], "live-restore": false}"#,
        );
        let c = resolve(&["--config-file", &path]).unwrap();
        assert_eq!(c.engine.data_root, PathBuf::from("/var/lib/x"));
        assert_eq!(c.hosts, vec![Endpoint::Unix("/tmp/x.sock".into())]);
        assert_eq!(c.engine.labels, vec!["a=b".to_string()]);
        assert!(!c.engine.live_restore);
    }

    #[test]
    fn defaults_and_tls_paths() {
        let c = resolve(&["--config-file", "/dev/null/none"]).unwrap_err();
        assert!(c.to_string().contains("cannot read config file"));
        let c = resolve(&[
            "-H",
            "tcp://127.0.0.1:2376",
            "--tlsverify",
            "--tlscacert",
            "/c/ca.pem",
        ])
        .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.ca, PathBuf::from("/c/ca.pem"));
        assert_eq!(tls.cert, PathBuf::from("/etc/berth/tls/server-cert.pem"));
        assert_eq!(tls.crl, None);
    }

    #[test]
    fn audit_log_flags_and_file_keys() {
        assert!(resolve(&[]).unwrap().audit.is_none());
        let c = resolve(&["--audit-log", "/var/log/berth-audit.log"]).unwrap();
        assert_eq!(
            c.audit,
            Some(AuditConfig {
                path: Some("/var/log/berth-audit.log".into()),
                max_size: 100 << 20,
                max_files: 5,
            })
        );
        let c = resolve(&["--audit-log", "-", "--audit-log-max-size", "64k"]).unwrap();
        let audit = c.audit.unwrap();
        assert_eq!((audit.path, audit.max_size), (None, 64 << 10));
        let (_p, path) = write_config(
            r#"{"audit-log": "/f/audit.log", "audit-log-max-size": "1m", "audit-log-max-files": 2}"#,
        );
        let audit = resolve(&["--config-file", &path]).unwrap().audit.unwrap();
        assert_eq!(
            (audit.path, audit.max_size, audit.max_files),
            (Some("/f/audit.log".into()), 1 << 20, 2)
        );
        assert!(resolve(&["--config-file", &path, "--audit-log", "-"]).is_err());
        for bad in [
            &["--audit-log", "audit.log"][..],
            &["--audit-log", "/a", "--audit-log-max-size", "ten"],
            &["--audit-log", "/a", "--audit-log-max-size", "0"],
            &[
                "--audit-log",
                "/a",
                "--audit-log-max-size",
                "99999999999999t",
            ],
            &["--audit-log", "/a", "--audit-log-max-files", "0"],
            &["--audit-log-max-files", "3"],
        ] {
            assert!(resolve(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tlscrl_flag_and_file_key() {
        let c = resolve(&["--tlsverify", "--tlscrl", "/c/crl.pem"]).unwrap();
        assert_eq!(c.tls.unwrap().crl, Some(PathBuf::from("/c/crl.pem")));
        let (_p, path) = write_config(r#"{"tlsverify": true, "tlscrl": "/f/crl.pem"}"#);
        let c = resolve(&["--config-file", &path]).unwrap();
        assert_eq!(c.tls.unwrap().crl, Some(PathBuf::from("/f/crl.pem")));
        // Both places: refused like every other directive.
        assert!(resolve(&["--config-file", &path, "--tlscrl", "/c/crl.pem"]).is_err());
        // Without mutual TLS there is nothing to revoke.
        let err = resolve(&["--tlscrl", "/c/crl.pem"]).unwrap_err();
        assert!(err.to_string().contains("needs --tlsverify"), "{err}");
        let (_p, path) = write_config(r#"{"tlscrl": "/f/crl.pem"}"#);
        assert!(resolve(&["--config-file", &path]).is_err());
    }

    #[test]
    fn authorization_flags_and_file_keys() {
        assert!(resolve(&[]).unwrap().authorization.is_none());
        assert!(resolve(&["--authorization", "roles"])
            .unwrap()
            .authorization
            .is_some());
        let (_p, path) = write_config(r#"{"authorization": "roles"}"#);
        assert!(resolve(&["--config-file", &path])
            .unwrap()
            .authorization
            .is_some());
        let err = resolve(&["--authorization", "rbac"]).unwrap_err();
        assert!(
            err.to_string().contains("the only mode is \"roles\""),
            "{err}"
        );
        let err = resolve(&["--authorization-policy", "/p.json"]).unwrap_err();
        assert!(
            err.to_string().contains("needs --authorization roles"),
            "{err}"
        );
        let (_p, policy) = write_config(r#"{"ous": {"Platform": "admin"}}"#);
        let c = resolve(&[
            "--authorization",
            "roles",
            "--authorization-policy",
            &policy,
        ])
        .unwrap();
        assert!(c.authorization.is_some());
        let (_p, bad) = write_config(r#"{"ous": {"Platform": "root"}}"#);
        let err =
            resolve(&["--authorization", "roles", "--authorization-policy", &bad]).unwrap_err();
        assert!(
            format!("{err:#}").contains("invalid authorization policy"),
            "{err:#}"
        );
        let (_p, path) = write_config(r#"{"authorization": "roles"}"#);
        assert!(resolve(&["--config-file", &path, "--authorization", "roles"]).is_err());
    }

    #[test]
    fn transfer_concurrency() {
        let (_p, path) = write_config(r#"{"max-concurrent-downloads": 6}"#);
        let c = resolve(&["--config-file", &path, "--max-concurrent-uploads", "2"]).unwrap();
        assert_eq!(c.engine.max_concurrent_downloads, 6);
        assert_eq!(c.engine.max_concurrent_uploads, 2);
        assert!(resolve(&["--max-concurrent-downloads", "0"]).is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(resolve(&["--log-level", "loud"]).is_err());
        assert!(resolve(&["--data-root", "relative"]).is_err());
        assert!(resolve(&["--label", "nokey"]).is_err());
        assert!(resolve(&["-H", "tcp://127.0.0.1:1", "--tlscert", "/x"]).is_err());
        assert!(resolve(&["--group", "no-such-group-berth-test"]).is_err());
    }

    /// `resolve` with the `runc` registration decided by the test, not by this host.
    fn runtimes_of(args: &[&str], file: &str, runc_on_path: bool) -> anyhow::Result<EngineConfig> {
        let mut argv = vec!["berthd"];
        argv.extend_from_slice(args);
        let m = Flags::command().try_get_matches_from(argv)?;
        let flags = Flags::from_arg_matches(&m)?;
        let map: Map<String, Value> = serde_json::from_str(file)?;
        let f = FileSettings::from_map(&map)?;
        let mut engine = EngineConfig::new("/d".into(), "/e".into());
        let file_runtimes = (f.runtimes.as_ref(), f.default_runtime.as_deref());
        resolve_runtimes(&flags, file_runtimes, &mut engine, runc_on_path)?;
        Ok(engine)
    }

    #[test]
    fn runtimes_from_file_and_flags() {
        let e = runtimes_of(&[], "{}", false).unwrap();
        assert!(e.runtimes.is_empty());
        assert_eq!(e.default_runtime, "berth");
        // runc on PATH is registered by its name, as dockerd has it.
        let e = runtimes_of(&[], "{}", true).unwrap();
        assert_eq!(e.runtimes["runc"].path, "runc");
        let e = runtimes_of(
            &[],
            r#"{"runtimes": {"runc": {"path": "/opt/runc"}, "dbg": {"path": "/usr/sbin/runc", "runtimeArgs": ["--debug"]}}, "default-runtime": "dbg"}"#,
            true,
        )
        .unwrap();
        assert_eq!(e.runtimes["runc"].path, "/opt/runc", "the file's runc wins");
        assert_eq!(e.runtimes["dbg"].args, vec!["--debug".to_string()]);
        assert_eq!(e.default_runtime, "dbg");
        let e = runtimes_of(
            &[
                "--add-runtime",
                "OCI = /usr/sbin/runc",
                "--add-runtime",
                "vm=/x",
                "--default-runtime",
                "vm",
            ],
            "{}",
            false,
        )
        .unwrap();
        assert_eq!(e.runtimes["oci"].path, "/usr/sbin/runc");
        assert_eq!(e.default_runtime, "vm");
    }

    #[test]
    fn bad_runtimes_are_refused_with_dockerds_words() {
        let err =
            |args: &[&str], file: &str| runtimes_of(args, file, true).unwrap_err().to_string();
        assert_eq!(
            err(&["--add-runtime", "nopath"], "{}"),
            "invalid runtime argument: nopath"
        );
        assert_eq!(
            err(&["--add-runtime", "x="], "{}"),
            "invalid runtime argument: x="
        );
        assert_eq!(
            err(&["--add-runtime", "a=/x", "--add-runtime", "A=/y"], "{}"),
            "runtime 'a' was already defined"
        );
        assert_eq!(
            err(&["--add-runtime", "berth=/x"], "{}"),
            "runtime name 'berth' is reserved"
        );
        assert_eq!(
            err(&[], r#"{"runtimes": {"berth": {"path": "/x"}}}"#),
            "runtime name 'berth' is reserved"
        );
        assert_eq!(
            err(&[], r#"{"runtimes": {"vm": {"runtimeArgs": ["-d"]}}}"#),
            "runtime vm: a path must be configured"
        );
        assert!(err(
            &[],
            r#"{"runtimes": {"vm": {"runtimeType": "io.containerd.kata.v2"}}}"#
        )
        .contains("runtimeType"));
        assert!(runtimes_of(
            &[],
            r#"{"runtimes": {"vm": {"path": "/x", "pth": 1}}}"#,
            true
        )
        .is_err());
        assert_eq!(
            err(&["--default-runtime", "crun"], "{}"),
            "specified default runtime 'crun' does not exist"
        );
        assert_eq!(
            runtimes_of(&["--default-runtime", "runc"], "{}", false)
                .unwrap_err()
                .to_string(),
            "specified default runtime 'runc' does not exist"
        );
    }

    #[test]
    fn runtimes_in_file_and_flags_conflict() {
        let (_p, path) = write_config(r#"{"runtimes": {"vm": {"path": "/x"}}}"#);
        let err = resolve(&["--config-file", &path, "--add-runtime", "oci=runc"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("both as a flag and in the configuration file: runtimes"),
            "{err}"
        );
        let (_p, path) = write_config(r#"{"default-runtime": "berth"}"#);
        assert!(resolve(&["--config-file", &path, "--default-runtime", "berth"]).is_err());
    }

    #[test]
    fn network_settings() {
        let (_p, path) = write_config(
            r#"{"default-address-pools": [{"base": "10.40.0.0/16", "size": 24}], "mtu": 1400}"#,
        );
        let c = resolve(&[
            "--config-file",
            &path,
            "--bridge",
            "bt0",
            "--bip",
            "10.41.0.1/24",
            "--iptables=false",
        ])
        .unwrap();
        let n = &c.engine.network;
        assert_eq!(
            (n.bridge.as_deref(), n.bip.as_deref(), n.mtu),
            (Some("bt0"), Some("10.41.0.1/24"), 1400)
        );
        assert!(!n.iptables && n.ip_forward);
        assert_eq!(n.pools.len(), 1);
        assert_eq!(
            (n.pools[0].base.to_string(), n.pools[0].size),
            ("10.40.0.0/16".into(), 24)
        );
        assert!(resolve(&["--bip", "10.41.0.1"]).is_err());
        assert!(resolve(&["--bridge", "a-name-longer-than-15"]).is_err());
        assert!(resolve(&["--bridge", ""]).is_err());
        // `--bridge=none` (or daemon.json `"bridge": "none"`): no default bridge.
        let c = resolve(&["--bridge=none"]).unwrap();
        assert_eq!(c.engine.network.bridge, None);
        let (_p3, path) = write_config(r#"{"bridge": "none"}"#);
        let c = resolve(&["--config-file", &path]).unwrap();
        assert_eq!(c.engine.network.bridge, None);
        assert_eq!(
            resolve(&[]).unwrap().engine.network.bridge.as_deref(),
            Some("berth0")
        );
        // With `--bip`, refused as dockerd refuses it.
        let e = resolve(&["-b", "none", "--bip", "10.41.0.1/24"]).unwrap_err();
        assert!(e.to_string().contains("mutually exclusive"), "{e}");
        let (_p4, path) = write_config(r#"{"bridge": "none", "bip": "10.41.0.1/24"}"#);
        assert!(resolve(&["--config-file", &path]).is_err());
        let (_p2, path) =
            write_config(r#"{"default-address-pools": [{"base": "10.40.0.0/16", "size": 8}]}"#);
        assert!(resolve(&["--config-file", &path]).is_err());
        // `--ipv6 --fixed-cidr-v6`, or daemon.json `ipv6` and `fixed-cidr-v6`.
        let c = resolve(&["--ipv6", "--fixed-cidr-v6", "fd00:1::/64"]).unwrap();
        let n = &c.engine.network;
        assert!(n.ipv6);
        assert_eq!(
            n.fixed_cidr_v6.map(|s| s.to_string()).as_deref(),
            Some("fd00:1::/64")
        );
        let (_p5, path) = write_config(r#"{"ipv6": true, "fixed-cidr-v6": "fd00:2::/80"}"#);
        let n = resolve(&["--config-file", &path]).unwrap().engine.network;
        assert!(n.ipv6 && n.fixed_cidr_v6.is_some_and(|s| s.prefix() == 80));
        assert!(!resolve(&[]).unwrap().engine.network.ipv6);
        assert!(resolve(&["--fixed-cidr-v6", "10.0.0.0/8"]).is_err());
        assert!(resolve(&["--fixed-cidr-v6", "fd00::/127"]).is_err());
    }

    /// dockerd 20.10 with `--ipv6` (or daemon.json `"ipv6": true`) and no
    /// `--fixed-cidr-v6` refuses to start: "failed to start daemon: Error initializing
    /// network controller: IPv6 is enabled for the default bridge, but no subnet is
    /// configured. Specify an IPv6 subnet using --fixed-cidr-v6"; with `--bridge=none`
    /// there is no default bridge, and it starts.
    #[test]
    fn ipv6_without_fixed_cidr_v6_is_refused_as_dockerd() {
        let want = "IPv6 is enabled for the default bridge, but no subnet is configured. \
                    Specify an IPv6 subnet using --fixed-cidr-v6";
        let e = resolve(&["--ipv6"]).unwrap_err();
        assert!(e.to_string().contains(want), "{e}");
        let e = resolve(&["--ipv6", "--bridge", "br-other"]).unwrap_err();
        assert!(e.to_string().contains(want), "{e}");
        let (_p, path) = write_config(r#"{"ipv6": true}"#);
        let e = resolve(&["--config-file", &path]).unwrap_err();
        assert!(e.to_string().contains(want), "{e}");
        let n = resolve(&["--ipv6", "--bridge=none"])
            .unwrap()
            .engine
            .network;
        assert!(n.ipv6 && n.bridge.is_none());
        let (_p2, path) = write_config(r#"{"ipv6": true, "bridge": "none"}"#);
        assert!(resolve(&["--config-file", &path]).is_ok());
    }
}
