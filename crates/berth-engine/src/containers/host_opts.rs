//! The `HostConfig` options that shape a container's process and namespaces beyond
//! resources and mounts: `Ulimits`, `Sysctls`, `Devices`, `SecurityOpt`, `MaskedPaths` /
//! `ReadonlyPaths`, `OomScoreAdj`, `GroupAdd`, `Init`, and the `PidMode` / `IpcMode` /
//! `UTSMode` namespace modes.
//!
//! [`settle`] runs at create: it fills dockerd's defaults into the stored `HostConfig`
//! (`IpcMode: private`) and refuses what cannot run with dockerd's words, so nothing is
//! made for a bad request. [`resolve`] runs at each start, when `container:<id>` peers
//! have a PID to join and host devices are looked up again.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_api_types::container::{HostConfig, NetworkMode};
use berth_api_types::field::Field;
use berth_runtime::spec::{Device, NamespaceMode, Namespaces, Ulimit};
use berth_sys::pidfd::ProcessHandle;

use super::security_opts::{self, HostSecurity, SecurityOpts};
use super::Containers;
use crate::EngineError;

/// Where `--init`'s binary is mounted in the container, as dockerd does.
pub(crate) const INIT_PATH_IN_CONTAINER: &str = "/sbin/docker-init";
/// Binaries that can be `--init` (tini built static), looked up on the daemon's PATH.
const INIT_BINARIES: &[&str] = &["docker-init", "tini-static"];

/// What [`resolve`] found for one start.
#[derive(Debug, Default)]
pub(crate) struct HostOptions {
    pub ulimits: Vec<Ulimit>,
    pub sysctls: BTreeMap<String, String>,
    pub devices: Vec<Device>,
    pub no_new_privileges: bool,
    /// A seccomp filter (off with `seccomp=unconfined`); the spec builder skips the
    /// default one for privileged containers.
    pub seccomp: bool,
    /// `seccomp=<profile JSON>`: in place of the default.
    pub seccomp_profile: Option<String>,
    /// `process.apparmorProfile`.
    pub apparmor_profile: Option<String>,
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    pub oom_score_adj: Option<i32>,
    /// `GroupAdd` as given: names are looked up in the container's `/etc/group`.
    pub group_add: Vec<String>,
    /// The host binary to run as the container's PID 1 (`--init`).
    pub init: Option<PathBuf>,
    pub pid: NamespaceMode,
    pub ipc: NamespaceMode,
    pub uts: NamespaceMode,
    /// `/dev/shm` to bind instead of a private tmpfs (`--ipc host` or `container:`).
    pub shm_bind: Option<PathBuf>,
    /// `--ipc none`: no `/dev/shm` at all.
    pub no_shm: bool,
    /// A private cgroup namespace (`CgroupnsMode: private`).
    pub cgroupns_private: bool,
    /// The containers whose namespaces `pid`/`ipc` name by path, held by pidfd until the
    /// runtime has joined them (see [`super::process`]).
    pub peers: Vec<berth_sys::pidfd::ProcessHandle>,
}

fn bad(msg: impl Into<String>) -> EngineError {
    EngineError::InvalidArgument(msg.into())
}

/// A string field, `""` when absent or `null`.
fn str_of(f: &Field<String>) -> &str {
    f.get().map_or("", String::as_str)
}

/// At create: stores dockerd's defaults and refuses what cannot run.
pub(crate) fn settle(
    c: &Containers,
    config: &crate::EngineConfig,
    hc: &mut HostConfig,
) -> Result<(), EngineError> {
    let cgroupns = cgroupns_of(hc).to_string();
    if cgroupns != "private" && cgroupns != "host" {
        return Err(bad(format!("invalid cgroup namespace mode: {cgroupns}")));
    }
    hc.cgroupns_mode = Field::Set(cgroupns);
    if str_of(&hc.ipc_mode).is_empty() {
        // dockerd's `default-ipc-mode`.
        hc.ipc_mode = Field::Set("private".into());
    }
    let mode = str_of(&hc.pid_mode);
    if !(mode.is_empty() || mode == "host" || peer_name(mode).is_some()) {
        return Err(bad(format!("invalid PID mode: {mode}")));
    }
    let mode = str_of(&hc.ipc_mode);
    if !(["none", "private", "shareable", "host"].contains(&mode) || peer_name(mode).is_some()) {
        return Err(bad(format!("invalid IPC mode: {mode}")));
    }
    let mode = str_of(&hc.uts_mode);
    // `container:<id>` is berth's (dockerd has `host` only): the CRI server's pod
    // containers share their sandbox's hostname through it.
    if !(mode.is_empty() || mode == "host" || peer_name(mode).is_some()) {
        return Err(bad(format!("invalid UTS mode: {mode}")));
    }
    for mode in [&hc.pid_mode, &hc.ipc_mode, &hc.uts_mode] {
        if let Some(peer) = peer_name(str_of(mode)) {
            c.get(peer)?;
        }
    }
    security(hc)?;
    if let Some(n) = hc.resources.nano_cpus.get() {
        super::update::check_nano_cpus(*n, berth_sys::host::ncpu())?;
    }
    // A negative value became 2^64 - n shares (then the maximum) through `as u64`; dockerd
    // refuses it (at start, with these words).
    if hc.resources.cpu_shares.get().is_some_and(|s| *s < 0) {
        return Err(bad("shares: invalid argument"));
    }
    probe_spec(hc)?;
    super::logs::settle_log_config(hc, &config.log_driver, &config.log_opts)?;
    if hc.init.get() == Some(&true) {
        init_binary()?;
    }
    Ok(())
}

/// `OomScoreAdj`, range-checked on the request's own number: a cast to `i32` first would
/// let 2^32 + 1 through as 1.
fn oom_score_adj(hc: &HostConfig) -> Result<Option<i32>, EngineError> {
    let Some(n) = hc.oom_score_adj.get() else {
        return Ok(None);
    };
    n.as_i64()
        .and_then(|v| i32::try_from(v).ok())
        .filter(|v| (-1000..=1000).contains(v))
        .map(Some)
        .ok_or_else(|| {
            bad(format!(
                "Invalid value {n}, range for oom score adj is [-1000, 1000]"
            ))
        })
}

/// `CgroupnsMode`, with dockerd's default for an empty one: a private cgroup namespace on
/// cgroup v2, the host's on v1 (moby `daemon/daemon_unix.go`).
fn cgroupns_of(hc: &HostConfig) -> &str {
    match str_of(&hc.cgroupns_mode) {
        "" if berth_sys::host::cgroup_version() == berth_sys::host::CgroupVersion::V2 => "private",
        "" => "host",
        m => m,
    }
}

/// Runs the spec builder's checks (ulimits, sysctls against the namespace modes, devices,
/// OOM score) on what the create request asks, so that they fail at create, not start.
fn probe_spec(hc: &HostConfig) -> Result<(), EngineError> {
    let host = |is_host: bool| {
        if is_host {
            NamespaceMode::Host
        } else {
            NamespaceMode::Private
        }
    };
    let probe = berth_runtime::ContainerSpecInput {
        id: "probe".into(),
        rootfs: "/".into(),
        args: vec!["probe".into()],
        cgroups_path: "/probe".into(),
        ulimits: ulimits(hc)?,
        sysctls: sysctls(hc),
        devices: devices(hc)?,
        oom_score_adj: oom_score_adj(hc)?,
        namespaces: Namespaces {
            pid: host(str_of(&hc.pid_mode) == "host"),
            ipc: host(str_of(&hc.ipc_mode) == "host"),
            uts: host(str_of(&hc.uts_mode) == "host"),
            net: host(hc.network_mode.get() == Some(&NetworkMode::Host)),
            cgroup: false,
        },
        ..Default::default()
    };
    berth_runtime::build_spec(&probe)
        .map(drop)
        .map_err(|e| match e.kind() {
            berth_runtime::ErrorKind::InvalidArgument => bad(e.to_string()),
            _ => EngineError::Internal(e.to_string()),
        })
}

fn sysctls(hc: &HostConfig) -> BTreeMap<String, String> {
    hc.sysctls.string_values()
}

fn peer_name(mode: &str) -> Option<&str> {
    mode.strip_prefix("container:").filter(|p| !p.is_empty())
}

/// At start: everything the spec needs, with `container:` peers joined through their PID.
/// A `shareable` IPC container's `/dev/shm` is a tmpfs mounted on the host in its exec
/// dir (`shm_dir`, unmounted by the engine's release), so that joiners can bind the same.
pub(crate) fn resolve(
    c: &Containers,
    hc: &HostConfig,
    shm_dir: &Path,
) -> Result<HostOptions, EngineError> {
    let security = security(hc)?;
    let mut o = HostOptions {
        ulimits: ulimits(hc)?,
        sysctls: sysctls(hc),
        devices: devices(hc)?,
        no_new_privileges: security.no_new_privileges,
        seccomp: security.seccomp,
        seccomp_profile: security.seccomp_profile,
        apparmor_profile: security.apparmor_profile,
        masked_paths: hc.masked_paths.strings_if_list(),
        readonly_paths: hc.readonly_paths.strings_if_list(),
        oom_score_adj: oom_score_adj(hc)?.filter(|v| *v != 0),
        group_add: hc.group_add.strings(),
        cgroupns_private: cgroupns_of(hc) == "private",
        init: match hc.init.get() {
            Some(true) => Some(init_binary()?),
            _ => None,
        },
        ..HostOptions::default()
    };
    o.pid = match str_of(&hc.pid_mode) {
        "host" => NamespaceMode::Host,
        mode => match peer_name(mode) {
            Some(peer) => {
                let (_, ns, handle) = peer_ns(c, peer, "pid", "PID")?;
                o.peers.push(handle);
                NamespaceMode::Path(ns)
            }
            None => NamespaceMode::Private,
        },
    };
    o.uts = match str_of(&hc.uts_mode) {
        "host" => NamespaceMode::Host,
        mode => match peer_name(mode) {
            Some(peer) => {
                let (_, ns, handle) = peer_ns(c, peer, "uts", "UTS")?;
                o.peers.push(handle);
                NamespaceMode::Path(ns)
            }
            None => NamespaceMode::Private,
        },
    };
    match str_of(&hc.ipc_mode) {
        "host" => {
            o.ipc = NamespaceMode::Host;
            o.shm_bind = Some("/dev/shm".into());
        }
        "none" => o.no_shm = true,
        "shareable" => {
            let size = (hc.shm_size.get().copied())
                .filter(|s| *s > 0)
                .map(|s| s as u64)
                .unwrap_or(berth_runtime::spec::DEFAULT_SHM_SIZE);
            if !berth_sys::mount::is_mountpoint(shm_dir) {
                std::fs::create_dir_all(shm_dir)
                    .and_then(|()| berth_sys::mount::mount_shm(shm_dir, size))
                    .map_err(EngineError::io(
                        "cannot mount the shareable /dev/shm",
                        shm_dir,
                    ))?;
            }
            o.shm_bind = Some(shm_dir.to_path_buf());
        }
        mode => {
            if let Some(peer) = peer_name(mode) {
                let (donor, ns, handle) = peer_ns(c, peer, "ipc", "IPC")?;
                o.peers.push(handle);
                let donor_mode = str_of(&donor.host_config.ipc_mode);
                if donor_mode == "host" {
                    o.ipc = NamespaceMode::Host;
                    o.shm_bind = Some("/dev/shm".into());
                } else if donor_mode == "shareable" {
                    o.ipc = NamespaceMode::Path(ns);
                    o.shm_bind = Some(c.shm_dir(&donor.id));
                } else {
                    // moby `daemon/container_operations_unix.go`.
                    return Err(bad(format!(
                        "non-shareable IPC (hint: use IpcMode:shareable for the donor container {peer})"
                    )));
                }
            }
        }
    }
    Ok(o)
}

/// The capabilities in this process's bounding set (`CapBnd`), by name: the most a
/// container started from here can hold. `None` if unreadable.
pub(crate) fn bounding_caps() -> Option<Vec<String>> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapBnd:"))?;
    let bits = u64::from_str_radix(hex.trim(), 16).ok()?;
    Some(
        berth_runtime::spec::ALL_CAPS
            .iter()
            .enumerate()
            .filter(|(n, _)| *n < 64 && bits & (1 << n) != 0)
            .map(|(_, c)| c.to_string())
            .collect(),
    )
}

/// Running container `peer`'s record, the path of its namespace `kind`, and its process
/// (the path is good while that process is alive).
fn peer_ns(
    c: &Containers,
    peer: &str,
    kind: &str,
    what: &str,
) -> Result<(super::record::Record, PathBuf, ProcessHandle), EngineError> {
    let r = c.get(peer)?.rec().clone();
    let handle = super::process::of_record(&r).map_err(|_| {
        EngineError::Conflict(format!(
            "cannot join {what} of a non running container: {}",
            r.id
        ))
    })?;
    let ns = PathBuf::from(format!("/proc/{}/ns/{kind}", handle.pid()));
    Ok((r, ns, handle))
}

/// `SecurityOpt`, checked against this host (security_opts.rs).
fn security(hc: &HostConfig) -> Result<SecurityOpts, EngineError> {
    let privileged = hc.privileged.get() == Some(&true);
    security_opts::parse(
        &hc.security_opt.strings(),
        privileged,
        &HostSecurity::probe(),
    )
    .map_err(|e| bad(e.to_string()))
}

fn ulimits(hc: &HostConfig) -> Result<Vec<Ulimit>, EngineError> {
    let mut out = Vec::new();
    for u in &hc.resources.ulimits.items() {
        let name = str_of(&u.name);
        let soft = u.soft.or_default();
        let hard = u.hard.or_default();
        if let Some(max) = berth_sys::host::hard_rlimit(name) {
            // Without CAP_SYS_RESOURCE nothing we start can go above our own hard limit;
            // say so now instead of failing the start with EPERM.
            if !berth_sys::host::has_cap_sys_resource()
                && max != u64::MAX
                && (hard < 0 || hard as u64 > max)
            {
                return Err(bad(format!(
                    "ulimit {name}: hard limit {hard} is above the daemon's own ({max}), which \
                     it cannot raise (no CAP_SYS_RESOURCE)"
                )));
            }
        }
        out.push(Ulimit {
            name: name.to_string(),
            soft,
            hard,
        });
    }
    Ok(out)
}

/// `Devices`: each host path is a device node, or a directory of them.
fn devices(hc: &HostConfig) -> Result<Vec<Device>, EngineError> {
    let mut out = Vec::new();
    for d in &hc.resources.devices.items() {
        let host = str_of(&d.path_on_host);
        let inside = Some(str_of(&d.path_in_container))
            .filter(|p| !p.is_empty())
            .unwrap_or(host);
        let perms = Some(str_of(&d.cgroup_permissions))
            .filter(|p| !p.is_empty())
            .unwrap_or("rwm");
        let gather = |e: String| {
            bad(format!(
                "error gathering device information while adding custom device {host:?}: {e}"
            ))
        };
        let meta = std::fs::metadata(host).map_err(|e| gather(io_text(&e)))?;
        if meta.is_dir() {
            let before = out.len();
            walk_devices(Path::new(host), Path::new(inside), perms, &mut out);
            if out.len() == before {
                return Err(gather("no devices found in the directory".into()));
            }
        } else {
            out.push(
                device(inside, &meta, perms).ok_or_else(|| gather("not a device node".into()))?,
            );
        }
    }
    Ok(out)
}

fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        _ => e.to_string(),
    }
}

fn device(inside: &str, meta: &std::fs::Metadata, perms: &str) -> Option<Device> {
    let ft = meta.file_type();
    let kind = if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else {
        return None;
    };
    let rdev = meta.rdev();
    Some(Device {
        path: inside.to_string(),
        kind,
        major: libc_major(rdev) as i64,
        minor: libc_minor(rdev) as i64,
        permissions: perms.to_string(),
        file_mode: Some(meta.mode() & 0o7777),
        uid: Some(meta.uid()),
        gid: Some(meta.gid()),
    })
}

fn walk_devices(host: &Path, inside: &Path, perms: &str, out: &mut Vec<Device>) {
    let Ok(entries) = std::fs::read_dir(host) else {
        return;
    };
    for e in entries.flatten() {
        let (h, i) = (e.path(), inside.join(e.file_name()));
        let Ok(meta) = std::fs::symlink_metadata(&h) else {
            continue;
        };
        if meta.is_dir() {
            walk_devices(&h, &i, perms, out);
        } else if let Some(d) = device(&i.to_string_lossy(), &meta, perms) {
            out.push(d);
        }
    }
}

/// glibc's `gnu_dev_major`/`gnu_dev_minor` encoding of `st_rdev`.
fn libc_major(dev: u64) -> u64 {
    ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff)
}

fn libc_minor(dev: u64) -> u64 {
    ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff)
}

/// The `--init` binary on the daemon's PATH.
fn init_binary() -> Result<PathBuf, EngineError> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    for name in INIT_BINARIES {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(bad(
        "--init: no docker-init or tini-static binary on berthd's PATH (install Debian's `tini` \
         package)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn hc(v: Value) -> HostConfig {
        serde_json::from_value(v).unwrap()
    }

    /// Checked on the i64: 2^32 + 1 used to pass the range check as 1 after `as i32`.
    #[test]
    fn oom_score_adj_is_checked_before_narrowing() {
        for v in [
            json!(4_294_967_297i64),
            json!(-4_294_967_296i64),
            json!(1001),
            json!(u64::MAX),
        ] {
            let e = oom_score_adj(&hc(json!({ "OomScoreAdj": v }))).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("Invalid value {v}, range for oom score adj is [-1000, 1000]")
            );
            assert!(probe_spec(&hc(json!({ "OomScoreAdj": v }))).is_err(), "{v}");
        }
        assert_eq!(
            oom_score_adj(&hc(json!({"OomScoreAdj": -1000}))).unwrap(),
            Some(-1000)
        );
        assert_eq!(oom_score_adj(&hc(json!({}))).unwrap(), None);
    }

    #[test]
    fn devices_are_device_nodes() {
        let h = hc(
            json!({"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "rw"}]}),
        );
        let d = devices(&h).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].path.as_str(), d[0].kind, d[0].major, d[0].minor),
            ("/dev/mynull", 'c', 1, 3)
        );
        assert_eq!(d[0].permissions, "rw");
        let e = devices(&hc(json!({"Devices": [{"PathOnHost": "/dev/nope"}]}))).unwrap_err();
        assert!(e.to_string().contains("no such file or directory"), "{e}");
        let e = devices(&hc(json!({"Devices": [{"PathOnHost": "/etc/hostname"}]}))).unwrap_err();
        assert!(e.to_string().contains("not a device node"), "{e}");
    }

    /// A list with an item of the wrong type is read item by item, as the map-based code read
    /// it: the other items still count.
    #[test]
    fn lists_with_a_wrong_item_are_read_item_by_item() {
        let h = hc(
            json!({"SecurityOpt": ["no-new-privileges", 5], "GroupAdd": [1, "audio"],
                          "MaskedPaths": ["/proc/x", false], "Sysctls": {"kernel.shmmax": 1}}),
        );
        assert!(security(&h).unwrap().no_new_privileges);
        assert_eq!(h.group_add.strings(), ["audio"]);
        assert_eq!(
            h.masked_paths.strings_if_list(),
            Some(vec!["/proc/x".to_string()])
        );
        assert_eq!(sysctls(&h)["kernel.shmmax"], "");
        let e = devices(&hc(json!({"Devices": [{"PathOnHost": "/dev/null"}, 7]}))).unwrap_err();
        assert!(
            e.to_string().contains("error gathering device information"),
            "{e}"
        );
        let u = ulimits(&hc(
            json!({"Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 2}, 3]}),
        ));
        assert_eq!(u.unwrap().len(), 2);
    }

    #[test]
    fn device_numbers_decode_like_glibc() {
        // makedev(1, 3) and makedev(259, 65536)
        assert_eq!((libc_major(0x103), libc_minor(0x103)), (1, 3));
        let (major, minor) = (259u64, 65536u64);
        let dev = ((major & 0xfff) << 8)
            | ((major & !0xfff) << 32)
            | (minor & 0xff)
            | ((minor & !0xff) << 12);
        assert_eq!((libc_major(dev), libc_minor(dev)), (259, 65536));
    }
}
