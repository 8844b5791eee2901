//! From a container record (and its mounted rootfs) to the runtime's spec input: args,
//! env, user, resources, namespaces, and the `/etc/{hostname,hosts,resolv.conf}` files.

use std::path::Path;

use berth_runtime::spec::{BindMount, NamespaceMode, Namespaces, Resources};
use berth_runtime::ContainerSpecInput;
use serde_json::{Map, Value};

use super::host_opts::{self, HostOptions};
use super::record::{as_map, Record};
use super::userdb::{self, UserDb};
use crate::EngineError;

pub(crate) const DEFAULT_PATH: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    match v? {
        Value::Array(a) => Some(
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
        ),
        Value::String(s) => Some(vec![s.clone()]),
        _ => None,
    }
}

/// Merges the create request's `Config` over the image's: Entrypoint/Cmd (an overridden
/// entrypoint drops the image's Cmd), Env by key, WorkingDir, User, Labels, StopSignal.
pub(crate) fn merge_config(
    req: &Map<String, Value>,
    image: &Map<String, Value>,
) -> Map<String, Value> {
    let mut out = req.clone();
    let req_ep = strings(req.get("Entrypoint"));
    let req_cmd = strings(req.get("Cmd")).filter(|c| !c.is_empty());
    let (ep, cmd) = match req_ep {
        Some(ep) => (ep, req_cmd.unwrap_or_default()),
        None => (
            strings(image.get("Entrypoint")).unwrap_or_default(),
            req_cmd
                .or_else(|| strings(image.get("Cmd")))
                .unwrap_or_default(),
        ),
    };
    out.insert(
        "Entrypoint".into(),
        if ep.is_empty() {
            Value::Null
        } else {
            ep.into()
        },
    );
    out.insert(
        "Cmd".into(),
        if cmd.is_empty() {
            Value::Null
        } else {
            cmd.into()
        },
    );
    let mut env: Vec<String> = strings(image.get("Env")).unwrap_or_default();
    for e in strings(req.get("Env")).unwrap_or_default() {
        let key = e.split('=').next().unwrap_or("").to_string();
        env.retain(|x| x.split('=').next() != Some(key.as_str()));
        env.push(e);
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.into());
    }
    out.insert("Env".into(), env.into());
    for key in ["WorkingDir", "User", "StopSignal"] {
        let empty = out
            .get(key)
            .and_then(Value::as_str)
            .is_none_or(|s| s.is_empty());
        if empty {
            let v = image.get(key).and_then(Value::as_str).unwrap_or("");
            out.insert(key.into(), v.into());
        }
    }
    let mut labels = image
        .get("Labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(l) = req.get("Labels").and_then(Value::as_object) {
        labels.extend(l.clone());
    }
    out.insert("Labels".into(), labels.into());
    for (k, v) in [
        ("Tty", false.into()),
        ("OpenStdin", false.into()),
        ("StdinOnce", false.into()),
        ("AttachStdin", false.into()),
        ("AttachStdout", false.into()),
        ("AttachStderr", false.into()),
        ("Domainname", "".into()),
    ] {
        out.entry(k).or_insert(v);
    }
    out
}

/// Entrypoint followed by Cmd.
pub(crate) fn args_of(config: &Map<String, Value>) -> Vec<String> {
    let mut a = strings(config.get("Entrypoint")).unwrap_or_default();
    a.extend(strings(config.get("Cmd")).unwrap_or_default());
    a
}

/// `env` with `HOME` set to the user's home when it has none, as runc sets it. Set here
/// from the confined read, the runtime never looks the user up in the container's own
/// `/etc/passwd` (where a FIFO would hang it, and with it the shim's `kill`).
pub(crate) fn with_home(mut env: Vec<String>, users: &UserDb, uid: u32) -> Vec<String> {
    if !userdb::sets_home(&env) {
        env.push(format!("HOME={}", users.home(uid)));
    }
    env
}

fn int(hc: &Map<String, Value>, key: &str) -> Option<i64> {
    hc.get(key).and_then(Value::as_i64).filter(|v| *v != 0)
}

/// The spec input for a record whose rootfs is mounted at `rootfs`; the container's
/// `hostname`, `hosts` and `resolv.conf` are written into `data_dir` and bound in.
pub(crate) fn spec_input(
    rec: &Record,
    rootfs: &Path,
    data_dir: &Path,
    net: &crate::networks::NetPlan,
    cgroup_path: &str,
    opts: HostOptions,
    users: &UserDb,
) -> Result<ContainerSpecInput, EngineError> {
    let c = &as_map(&rec.config);
    let hc = &as_map(&rec.host_config);
    let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let b = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_bool).unwrap_or(false);
    let mut hostname = s("Hostname");
    if opts.uts == NamespaceMode::Host {
        // The host's name, in /etc/hostname too (dockerd); the spec sets none.
        hostname = berth_sys::host::uname().hostname;
    } else if hostname.is_empty() {
        hostname = rec.id[..12].to_string();
    }
    write_etc_files(data_dir, &hostname, net)?;
    if opts.uts == NamespaceMode::Host {
        hostname.clear();
    }
    let mut mounts = Vec::new();
    for (f, dest) in [
        ("hostname", "/etc/hostname"),
        ("hosts", "/etc/hosts"),
        ("resolv.conf", "/etc/resolv.conf"),
    ] {
        mounts.push(BindMount {
            source: data_dir.join(f),
            destination: dest.into(),
            readonly: false,
            propagation: Some("rprivate".into()),
        });
    }
    // User mounts: binds, volumes and tmpfs (`containers::mounts`), then `--tmpfs`.
    let data_root = data_dir
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| EngineError::Internal("container directory has no data root".into()))?;
    let (user_binds, mut tmpfs) = super::mounts::for_start(data_root, data_dir, rootfs)?;
    mounts.retain(|m| !user_binds.iter().any(|u| u.destination == m.destination));
    mounts.extend(user_binds);
    if let Some(Value::Object(t)) = hc.get("Tmpfs") {
        for (dest, o) in t {
            tmpfs.insert(dest.clone(), o.as_str().unwrap_or("").to_string());
        }
    }
    let taken =
        |d: &str| mounts.iter().any(|m: &BindMount| m.destination == d) || tmpfs.contains_key(d);
    let mut extra = Vec::new();
    if let Some(src) = &opts.shm_bind {
        if !taken("/dev/shm") {
            extra.push(BindMount {
                source: src.clone(),
                destination: "/dev/shm".into(),
                readonly: false,
                propagation: Some("rprivate".into()),
            });
        }
    }
    let mut args = rec.args_full();
    if let Some(init) = &opts.init {
        extra.push(BindMount {
            source: init.clone(),
            destination: host_opts::INIT_PATH_IN_CONTAINER.into(),
            readonly: true,
            propagation: Some("rprivate".into()),
        });
        args.splice(
            0..0,
            [host_opts::INIT_PATH_IN_CONTAINER.to_string(), "--".into()],
        );
    }
    mounts.extend(extra);
    let user = users.user(&s("User"), &opts.group_add)?;
    let strs = |k: &str| strings(hc.get(k)).unwrap_or_default();
    let resources = Resources {
        memory: int(hc, "Memory"),
        memory_swap: int(hc, "MemorySwap"),
        memory_reservation: int(hc, "MemoryReservation"),
        // Negative shares are refused at create; a period out of range by the spec builder.
        cpu_shares: int(hc, "CpuShares").and_then(|v| u64::try_from(v).ok()),
        nano_cpus: int(hc, "NanoCpus"),
        cpu_quota: int(hc, "CpuQuota"),
        cpu_period: int(hc, "CpuPeriod").map(|v| u64::try_from(v).unwrap_or(u64::MAX)),
        cpuset_cpus: hc
            .get("CpusetCpus")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from),
        cpuset_mems: None,
        pids_limit: int(hc, "PidsLimit").filter(|v| *v > 0),
    };
    Ok(ContainerSpecInput {
        id: rec.id.clone(),
        rootfs: rootfs.to_path_buf(),
        args,
        env: with_home(strings(c.get("Env")).unwrap_or_default(), users, user.uid),
        cwd: s("WorkingDir"),
        user,
        hostname,
        tty: b(c, "Tty"),
        readonly_rootfs: b(hc, "ReadonlyRootfs"),
        privileged: b(hc, "Privileged"),
        cap_add: strs("CapAdd"),
        cap_drop: strs("CapDrop"),
        all_caps: host_opts::bounding_caps(),
        resources,
        shm_size: int(hc, "ShmSize"),
        no_shm: opts.no_shm,
        mounts,
        tmpfs,
        namespaces: Namespaces {
            pid: opts.pid,
            ipc: opts.ipc,
            uts: opts.uts,
            net: net.ns.clone(),
            cgroup: opts.cgroupns_private,
        },
        cgroups_path: cgroup_path.to_string(),
        ulimits: opts.ulimits,
        sysctls: opts.sysctls,
        devices: opts.devices,
        no_new_privileges: opts.no_new_privileges,
        seccomp: opts.seccomp,
        seccomp_profile: opts.seccomp_profile,
        kernel: super::security_opts::host_kernel(),
        apparmor_profile: opts.apparmor_profile,
        masked_paths: opts.masked_paths,
        readonly_paths: opts.readonly_paths,
        oom_score_adj: opts.oom_score_adj,
    })
}

impl Record {
    pub(crate) fn args_full(&self) -> Vec<String> {
        std::iter::once(self.path.clone())
            .chain(self.args.iter().cloned())
            .collect()
    }
}

/// `hostname`, and the network's `hosts` and `resolv.conf` content (networks.rs).
fn write_etc_files(
    dir: &Path,
    hostname: &str,
    net: &crate::networks::NetPlan,
) -> Result<(), EngineError> {
    let w = |name: &str, data: &str| {
        let p = dir.join(name);
        berth_sys::fs::atomic_write(&p, data.as_bytes(), 0o644)
            .map_err(EngineError::io("cannot write", &p))
    };
    w("hostname", &format!("{hostname}\n"))?;
    w("hosts", &net.hosts)?;
    w("resolv.conf", &net.resolv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn request_overrides_image() {
        let image = obj(json!({"Cmd": ["sh"], "Env": ["A=1", "PATH=/bin"], "WorkingDir": "/w"}));
        let m = merge_config(&obj(json!({"Cmd": ["echo", "hi"], "Env": ["A=2"]})), &image);
        assert_eq!(args_of(&m), ["echo", "hi"]);
        assert_eq!(m["Env"], json!(["PATH=/bin", "A=2"]));
        assert_eq!(m["WorkingDir"], "/w");
        let m = merge_config(&obj(json!({"Entrypoint": ["top"]})), &image);
        assert_eq!(args_of(&m), ["top"]);
        let m = merge_config(&obj(json!({})), &obj(json!({})));
        assert_eq!(m["Env"], json!([DEFAULT_PATH]));
        assert!(args_of(&m).is_empty());
    }
}
