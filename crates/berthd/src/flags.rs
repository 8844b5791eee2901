//! berthd's command line, spelled as dockerd's so existing unit files and habits carry over.

use std::path::PathBuf;

use clap::Parser;

/// The Berth container engine daemon: serves the Docker Engine API.
#[derive(Debug, Parser)]
#[command(name = "berthd", version, about, max_term_width = 100)]
pub struct Flags {
    /// Daemon socket(s) to listen on: unix:///path, tcp://host:port (mutual TLS only), fd://
    #[arg(short = 'H', long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,

    /// Require clients to present a certificate signed by --tlscacert (mandatory for tcp://)
    #[arg(long)]
    pub tlsverify: bool,

    /// Trust only client certificates signed by this CA
    #[arg(long, value_name = "FILE")]
    pub tlscacert: Option<PathBuf>,

    /// The daemon's TLS certificate (may include intermediates)
    #[arg(long, value_name = "FILE")]
    pub tlscert: Option<PathBuf>,

    /// The daemon's TLS private key
    #[arg(long, value_name = "FILE")]
    pub tlskey: Option<PathBuf>,

    /// Refuse client certificates listed in this PEM CRL (signed by a --tlscacert CA; see
    /// `berth tls revoke`); SIGHUP reloads it and closes the revoked clients' connections
    #[arg(long, value_name = "FILE")]
    pub tlscrl: Option<PathBuf>,

    /// Write one JSON line per mutating request and per attach, exec, archive, export and
    /// image save (who, what, target, status, duration) to FILE; "-" for stderr
    #[arg(long = "audit-log", value_name = "FILE")]
    pub audit_log: Option<String>,

    /// Rotate the audit log when it would pass this size (default 100m; k, m, g multiples)
    #[arg(long = "audit-log-max-size", value_name = "SIZE")]
    pub audit_log_max_size: Option<String>,

    /// Audit log files kept, the live one included (default 5)
    #[arg(long = "audit-log-max-files", value_name = "N")]
    pub audit_log_max_files: Option<u32>,

    /// Authorization mode: "roles" enforces the viewer/operator/admin role of each client
    /// (OU=berth:ROLE in its certificate, or the policy); default: every client is admin
    #[arg(long, value_name = "MODE")]
    pub authorization: Option<String>,

    /// JSON policy mapping certificate subjects, OUs, unix uids and gids to roles, and the
    /// host paths operators may bind (needs --authorization roles)
    #[arg(long = "authorization-policy", value_name = "FILE")]
    pub authorization_policy: Option<PathBuf>,

    /// Root directory of persistent state
    #[arg(long = "data-root", value_name = "DIR")]
    pub data_root: Option<PathBuf>,

    /// Root directory of runtime state (cleared on reboot)
    #[arg(long = "exec-root", value_name = "DIR")]
    pub exec_root: Option<PathBuf>,

    /// Path of the daemon's pid file
    #[arg(short = 'p', long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,

    /// Group that owns the unix socket(s) (mode 0660)
    #[arg(short = 'G', long, value_name = "GROUP")]
    pub group: Option<String>,

    /// Daemon configuration file (daemon.json)
    #[arg(long = "config-file", value_name = "FILE")]
    pub config_file: Option<PathBuf>,

    /// Log level: debug, info, warn, error, fatal
    #[arg(short = 'l', long = "log-level", value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Enable debug logging
    #[arg(short = 'D', long)]
    pub debug: bool,

    /// Log line format: text (default) or json (one JSON object per line)
    #[arg(long = "log-format", value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// Check the flags and the configuration file, print "configuration OK" and exit
    #[arg(long)]
    pub validate: bool,

    /// Print berthd(8), the man page, in roff and exit (used by packaging)
    #[arg(long = "man-page", hide = true)]
    pub man_page: bool,

    /// Set a label on the daemon (key=value), repeatable
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,

    /// Allow plain-HTTP access to this registry (host:port or CIDR), repeatable
    #[arg(long = "insecure-registry", value_name = "REGISTRY")]
    pub insecure_registries: Vec<String>,

    /// Enable experimental features
    #[arg(long)]
    pub experimental: bool,

    /// Layers pulled in parallel per pull
    #[arg(long = "max-concurrent-downloads", value_name = "N")]
    pub max_concurrent_downloads: Option<usize>,

    /// Layers pushed in parallel per push
    #[arg(long = "max-concurrent-uploads", value_name = "N")]
    pub max_concurrent_uploads: Option<usize>,

    /// Parent cgroup of all containers (default "/berth")
    #[arg(long = "cgroup-parent", value_name = "PATH")]
    pub cgroup_parent: Option<String>,

    /// The default bridge network's Linux bridge (created if missing); "none": no default bridge network
    #[arg(short = 'b', long = "bridge", value_name = "NAME")]
    pub bridge: Option<String>,

    /// The default bridge's address and subnet (e.g. 172.17.0.1/16)
    #[arg(long = "bip", value_name = "CIDR")]
    pub bip: Option<String>,

    /// Manage iptables rules (in berth's own chains)
    #[arg(long = "iptables", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub iptables: Option<bool>,

    /// Enable IPv6 on the default bridge (its subnet from --fixed-cidr-v6)
    #[arg(long = "ipv6", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub ipv6: Option<bool>,

    /// The default bridge's IPv6 subnet, with --ipv6 (e.g. 2001:db8:1::/64)
    #[arg(long = "fixed-cidr-v6", value_name = "CIDR")]
    pub fixed_cidr_v6: Option<String>,

    /// Enable IPv4 forwarding on start (and IPv6 forwarding once an IPv6 network exists)
    #[arg(long = "ip-forward", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub ip_forward: Option<bool>,

    /// Enable inter-container communication on the default bridge (false: only legacy
    /// links' exposed ports)
    #[arg(long = "icc", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub icc: Option<bool>,

    /// MTU of the default bridge and new networks
    #[arg(long = "mtu", value_name = "BYTES")]
    pub mtu: Option<u32>,

    /// Register an OCI runtime binary (name=path), repeatable; "berth" is the embedded one
    #[arg(long = "add-runtime", value_name = "NAME=PATH")]
    pub add_runtimes: Vec<String>,

    /// Runtime of containers created without --runtime (default "berth")
    #[arg(long = "default-runtime", value_name = "NAME")]
    pub default_runtime: Option<String>,

    /// Serve the Kubernetes CRI v1 API (runtime and image services) on this unix socket
    /// (daemon.json: "cri": {"enabled": true, "socket": PATH, "cni-conf-dir": DIR,
    /// "cni-bin-dir": DIR, "stream-address": IP, "stream-port": PORT}; default off; CNI dirs
    /// default to /etc/cni/net.d and /usr/lib/cni; the exec/attach/port-forward streaming
    /// server listens on loopback only, default 127.0.0.1 on a free port)
    #[arg(long = "cri-socket", value_name = "PATH")]
    pub cri_socket: Option<PathBuf>,

    /// Serve Prometheus metrics on this loopback address (e.g. 127.0.0.1:9323) at /metrics
    #[arg(long = "metrics-addr", value_name = "ADDR")]
    pub metrics_addr: Option<String>,

    /// Log driver of containers created without one: json-file (default) or none
    #[arg(long = "log-driver", value_name = "NAME")]
    pub log_driver: Option<String>,

    /// What is done to a container whose healthcheck turns it unhealthy, unless its label
    /// berth.health-on-failure says otherwise: none (default, as dockerd), restart, stop or kill
    #[arg(long = "health-on-failure", value_name = "ACTION")]
    pub health_on_failure: Option<String>,

    /// Default log driver option (key=value), repeatable, e.g. max-size=10m
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opts: Vec<String>,
}
