//! From a container record (and its mounted rootfs) to the runtime's spec input: args,
//! env, user, resources, namespaces, and the `/etc/{hostname,hosts,resolv.conf}` files.

use std::collections::BTreeMap;
use std::path::Path;

use berth_api_types::container::{ContainerConfig, StrSlice};
use berth_api_types::field::Field;
use berth_runtime::spec::{BindMount, NamespaceMode, Namespaces, Resources};
use berth_runtime::ContainerSpecInput;
use serde_json::{Map, Value};

use super::host_opts::{self, HostOptions};
use super::record::Record;
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
pub(crate) fn merge_config(req: &ContainerConfig, image: &Map<String, Value>) -> ContainerConfig {
    let mut out = req.clone();
    let req_ep = req.entrypoint.strings();
    let req_cmd = req.cmd.strings().filter(|c| !c.is_empty());
    let image_cmd = || strings(image.get("Cmd"));
    // moby `merge`: an entrypoint asked for keeps the command asked for; an empty one
    // (`[]`) takes the image's command but not its entrypoint.
    let (ep, cmd) = match req_ep {
        Some(ep) if !ep.is_empty() => (ep, req_cmd.unwrap_or_default()),
        Some(_) => (Vec::new(), req_cmd.or_else(image_cmd).unwrap_or_default()),
        None => (
            strings(image.get("Entrypoint")).unwrap_or_default(),
            req_cmd.or_else(image_cmd).unwrap_or_default(),
        ),
    };
    // moby `mergeAndVerifyConfig`: `[""]` (the CLI's `--entrypoint ""`) resets it.
    let ep = if ep.len() == 1 && ep.iter().all(String::is_empty) {
        Vec::new()
    } else {
        ep
    };
    let slice = |v: Vec<String>| {
        if v.is_empty() {
            Field::Null
        } else {
            Field::Set(StrSlice::Many(v))
        }
    };
    out.entrypoint = slice(ep);
    out.cmd = slice(cmd);
    let mut env: Vec<String> = strings(image.get("Env")).unwrap_or_default();
    let req_env = match &req.env {
        Field::Invalid(Value::String(e)) => vec![e.clone()],
        sent => sent.strings(),
    };
    for e in req_env {
        let key = e.split('=').next().unwrap_or("").to_string();
        env.retain(|x| x.split('=').next() != Some(key.as_str()));
        env.push(e);
    }
    // As moby: `Config.Env` is what the image and the request set (`null` when neither
    // did); the default PATH belongs to the process (`with_default_path`), not the config.
    out.env = if env.is_empty() {
        Field::Null
    } else {
        Field::Set(env)
    };
    for (key, field) in [
        ("WorkingDir", &mut out.working_dir),
        ("User", &mut out.user),
        ("StopSignal", &mut out.stop_signal),
    ] {
        if field.get().is_none_or(String::is_empty) {
            let v = image.get(key).and_then(Value::as_str).unwrap_or("");
            *field = Field::Set(v.to_string());
        }
    }
    // An image's label that is not a string is not a label (the OCI config says strings).
    let mut labels: BTreeMap<String, String> = match image.get("Labels") {
        Some(Value::Object(m)) => m
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect(),
        _ => BTreeMap::new(),
    };
    labels.extend(req.labels.or_default());
    out.labels = Field::Set(labels);
    for f in [
        &mut out.tty,
        &mut out.open_stdin,
        &mut out.stdin_once,
        &mut out.attach_stdin,
        &mut out.attach_stdout,
        &mut out.attach_stderr,
    ] {
        if f.is_absent() {
            *f = Field::Set(false);
        }
    }
    if out.domainname.is_absent() {
        out.domainname = Field::Set(String::new());
    }
    super::health::merge_image(&mut out.extra, image);
    out
}

/// moby `CreateDaemonEnvironment`: a process whose config sets no PATH gets the default.
pub(crate) fn with_default_path(mut env: Vec<String>) -> Vec<String> {
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.into());
    }
    env
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

/// A number field, `None` when absent, `null` or 0.
fn int(f: &Field<i64>) -> Option<i64> {
    f.get().copied().filter(|v| *v != 0)
}

/// The spec input for a record whose rootfs is mounted at `rootfs`; the container's
/// `hostname`, `hosts` and `resolv.conf` are written into `data_dir` and bound in; host
/// binds are staged in `staging` (cleared by the caller, on failure too).
#[allow(clippy::too_many_arguments)]
pub(crate) fn spec_input(
    rec: &Record,
    rootfs: &Path,
    data_dir: &Path,
    net: &crate::networks::NetPlan,
    cgroup_path: &str,
    opts: HostOptions,
    users: &UserDb,
    staging: &super::mounts::Staging,
) -> Result<ContainerSpecInput, EngineError> {
    let c = &rec.config;
    let hc = &rec.host_config;
    let r = &hc.resources;
    let mut hostname = c.hostname.or_default();
    if opts.uts == NamespaceMode::Host {
        // The host's name, in /etc/hostname too (dockerd); the spec sets none.
        hostname = berth_sys::host::uname().hostname;
    } else if hostname.is_empty() {
        hostname = rec.id[..12].to_string();
    }
    write_etc_files(data_dir, &hostname, net)?;
    super::workdir::ensure(rootfs, &c.working_dir.or_default())?;
    if opts.uts != NamespaceMode::Private {
        // The host's or a peer's namespace: its name is not this container's to set.
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
    let (user_binds, mut tmpfs) = super::mounts::for_start(data_root, data_dir, rootfs, staging)?;
    mounts.retain(|m| !user_binds.iter().any(|u| u.destination == m.destination));
    mounts.extend(user_binds);
    tmpfs.extend(hc.tmpfs.string_values());
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
    let user = users.user(&c.user.or_default(), &opts.group_add)?;
    let strs = |f: &Field<StrSlice>| f.strings().unwrap_or_default();
    let resources = Resources {
        memory: int(&r.memory),
        memory_swap: int(&r.memory_swap),
        memory_reservation: int(&r.memory_reservation),
        // Negative shares are refused at create; a period out of range by the spec builder.
        cpu_shares: int(&r.cpu_shares).and_then(|v| u64::try_from(v).ok()),
        nano_cpus: int(&r.nano_cpus),
        cpu_quota: int(&r.cpu_quota),
        cpu_period: int(&r.cpu_period).map(|v| u64::try_from(v).unwrap_or(u64::MAX)),
        cpuset_cpus: r.cpuset_cpus.get().filter(|s| !s.is_empty()).cloned(),
        pids_limit: int(&r.pids_limit).filter(|v| *v > 0),
        hugepage_limits: rec
            .hugepage_limits
            .iter()
            .map(|h| (h.page_size.clone(), h.limit))
            .collect(),
        ..Resources::default()
    };
    let mut input = ContainerSpecInput {
        id: rec.id.clone(),
        rootfs: rootfs.to_path_buf(),
        args,
        env: with_home(
            with_default_path(super::links::merge_env(&net.env, c.env.strings())),
            users,
            user.uid,
        ),
        cwd: c.working_dir.or_default(),
        user,
        hostname,
        tty: c.tty(),
        readonly_rootfs: hc.readonly_rootfs.or_default(),
        privileged: hc.privileged.or_default(),
        cap_add: strs(&hc.cap_add),
        cap_drop: strs(&hc.cap_drop),
        all_caps: host_opts::bounding_caps(),
        resources,
        shm_size: int(&hc.shm_size),
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
        ..ContainerSpecInput::default()
    };
    super::create_fields::apply(hc, &mut input)?;
    Ok(input)
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
    // Written again at every start, before the container sees them: whole files (a reader
    // sees the old or the new one), not fsynced (nothing reads them after the machine
    // restarts before the next start rewrites them).
    let w = |name: &str, data: &str| {
        let p = dir.join(name);
        berth_sys::fs::replace(&p, data.as_bytes(), 0o644)
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

    fn cfg(v: Value) -> ContainerConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn request_overrides_image() {
        let image = obj(json!({"Cmd": ["sh"], "Env": ["A=1", "PATH=/bin"], "WorkingDir": "/w"}));
        let m = merge_config(&cfg(json!({"Cmd": ["echo", "hi"], "Env": ["A=2"]})), &image);
        assert_eq!(m.args(), ["echo", "hi"]);
        assert_eq!(m.env.or_default(), ["PATH=/bin", "A=2"]);
        assert_eq!(m.working_dir.or_default(), "/w");
        let m = merge_config(&cfg(json!({"Entrypoint": ["top"]})), &image);
        assert_eq!(m.args(), ["top"]);
        // No Env in the image or the request: `null`, as dockerd shows it; the process
        // still gets the default PATH.
        let m = merge_config(&cfg(json!({})), &obj(json!({})));
        assert_eq!(m.env, Field::Null);
        assert_eq!(with_default_path(m.env.strings()), [DEFAULT_PATH]);
        assert_eq!(with_default_path(vec!["PATH=/x".into()]), ["PATH=/x"]);
        assert!(m.args().is_empty());
    }

    /// moby `merge` and `mergeAndVerifyConfig`: `--entrypoint ""` (sent as `[""]`)
    /// clears the image's entrypoint and runs the command as given; `[]` clears it and
    /// keeps the image's command.
    #[test]
    fn empty_entrypoint_clears_the_images() {
        let image = obj(json!({"Entrypoint": ["/init"], "Cmd": ["sh"]}));
        let m = merge_config(
            &cfg(json!({"Entrypoint": [""], "Cmd": ["echo", "hi"]})),
            &image,
        );
        assert_eq!(m.args(), ["echo", "hi"]);
        let m = merge_config(&cfg(json!({"Entrypoint": [""]})), &image);
        assert!(m.args().is_empty(), "no command specified");
        let m = merge_config(&cfg(json!({"Entrypoint": ""})), &image);
        assert!(m.args().is_empty());
        let m = merge_config(&cfg(json!({"Entrypoint": []})), &image);
        assert_eq!(m.args(), ["sh"]);
        let m = merge_config(&cfg(json!({"Entrypoint": null})), &image);
        assert_eq!(m.args(), ["/init", "sh"]);
    }

    /// What the map-based merge stored for a docker CLI body over an image's config.
    #[test]
    fn merged_config_is_stored_as_before() {
        let image = obj(json!({"Cmd": ["sh"], "Env": ["PATH=/bin"], "Labels": {"a": "1"}}));
        let body = json!({"Image": "busybox", "Cmd": "true", "Entrypoint": null, "Env": null,
                          "Labels": {"b": "2"}, "OnBuild": null, "Tty": true, "Volumes": {}});
        let m = merge_config(&cfg(body), &image);
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"AttachStderr": false, "AttachStdin": false, "AttachStdout": false,
                   "Cmd": ["true"], "Domainname": "", "Entrypoint": null, "Env": ["PATH=/bin"],
                   "Image": "busybox", "Labels": {"a": "1", "b": "2"}, "OnBuild": null,
                   "OpenStdin": false, "StdinOnce": false, "StopSignal": "", "Tty": true,
                   "User": "", "Volumes": {}, "WorkingDir": ""})
        );
    }
}
