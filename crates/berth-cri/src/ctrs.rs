//! A pod's containers as engine containers: the create request a `ContainerConfig`
//! becomes (joining the sandbox's network, IPC and UTS namespaces, and its PID namespace
//! for `pid: POD`), the resources an update writes, and the CRI views (`Container`,
//! `ContainerStatus`) read back from the engine's list and inspect.

use std::path::{Component, Path, PathBuf};

use serde_json::{json, Map, Value};
use tonic::Status;

use crate::labels::{self, Labels};
use crate::pods::into_map;
use crate::proto::*;

/// What the create needs of the sandbox, read from its inspect.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sandbox {
    pub id: String,
    pub labels: Labels,
    /// `Config.Hostname` (empty on the host's network).
    pub hostname: String,
}

impl Sandbox {
    /// The sandbox an inspect shows; `None` when it is not a CRI sandbox.
    pub(crate) fn of(inspect: &Value) -> Option<Sandbox> {
        let l = Labels::of(inspect.pointer("/Config/Labels"));
        if !l.is(labels::TYPE_SANDBOX) {
            return None;
        }
        Some(Sandbox {
            id: inspect.get("Id")?.as_str()?.to_string(),
            hostname: inspect
                .pointer("/Config/Hostname")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            labels: l,
        })
    }
}

/// A container's name, the engine's create request, and its log file.
pub(crate) type Planned = (String, Map<String, Value>, Option<PathBuf>);

/// The engine's create request for `config` in `sandbox`, its container name, and the
/// log file (when the sandbox has a log directory and the container a log path).
/// `profiles`: the `SecurityOpt` entries of the seccomp and AppArmor profiles
/// ([`crate::seccomp::security_opt`], [`crate::apparmor::security_opt`]).
pub(crate) fn create_body(
    sandbox: &Sandbox,
    config: &ContainerConfig,
    profiles: impl IntoIterator<Item = String>,
) -> Result<Planned, Status> {
    let meta = config
        .metadata
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("container config must include metadata"))?;
    let name = labels::required(&meta.name, "container metadata.name")?;
    let image = config
        .image
        .as_ref()
        .map(|i| i.image.as_str())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| Status::invalid_argument("container config must name an image"))?;
    let pod = &sandbox.labels;
    let container_name = format!(
        "k8s_{}_{}_{}_{}_{}",
        labels::name_part(name),
        labels::name_part(pod.get(labels::POD_NAME)),
        labels::name_part(pod.get(labels::POD_NAMESPACE)),
        labels::name_part(pod.get(labels::POD_UID)),
        meta.attempt
    );
    let log_path = log_path(pod.get(labels::LOG_DIRECTORY), &config.log_path)?;
    let ours = [
        (labels::TYPE, labels::TYPE_CONTAINER.to_string()),
        (labels::SANDBOX_ID, sandbox.id.clone()),
        (labels::CONTAINER_NAME, name.to_string()),
        (labels::ATTEMPT, meta.attempt.to_string()),
        (labels::POD_NAME, pod.get(labels::POD_NAME).to_string()),
        (
            labels::POD_NAMESPACE,
            pod.get(labels::POD_NAMESPACE).to_string(),
        ),
        (labels::POD_UID, pod.get(labels::POD_UID).to_string()),
        (labels::IMAGE, image.to_string()),
        (
            labels::LOG_PATH,
            log_path
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
    ];
    let docker_labels = labels::pack(&ours, &config.labels, &config.annotations);
    let peer = format!("container:{}", sandbox.id);
    let linux = config.linux.clone().unwrap_or_default();
    let security = linux.security_context.clone().unwrap_or_default();
    let ns = security.namespace_options.clone().unwrap_or_default();
    let pid_mode = match NamespaceMode::try_from(ns.pid).unwrap_or(NamespaceMode::Container) {
        NamespaceMode::Pod => peer.clone(),
        NamespaceMode::Node => "host".into(),
        NamespaceMode::Target => {
            labels::required(&ns.target_id, "namespace_options.target_id")?;
            format!("container:{}", ns.target_id)
        }
        NamespaceMode::Container => String::new(),
    };
    let mut host_config = json!({
        "NetworkMode": peer,
        "IpcMode": peer,
        "UTSMode": peer,
        "PidMode": pid_mode,
        "RestartPolicy": {"Name": "no"},
        "Binds": binds(&config.mounts)?,
        "Mounts": image_mounts(&config.mounts)?,
        "Privileged": security.privileged,
        "ReadonlyRootfs": security.readonly_rootfs,
    });
    if let Some(caps) = &security.capabilities {
        host_config["CapAdd"] = json!(caps.add_capabilities);
        host_config["CapDrop"] = json!(caps.drop_capabilities);
    }
    if !security.supplemental_groups.is_empty() {
        let groups: Vec<String> = security
            .supplemental_groups
            .iter()
            .map(i64::to_string)
            .collect();
        host_config["GroupAdd"] = json!(groups);
    }
    let security_opt: Vec<String> = security
        .no_new_privs
        .then(|| "no-new-privileges".to_string())
        .into_iter()
        .chain(profiles)
        .collect();
    if !security_opt.is_empty() {
        host_config["SecurityOpt"] = json!(security_opt);
    }
    if !security.masked_paths.is_empty() {
        host_config["MaskedPaths"] = json!(security.masked_paths);
    }
    if !security.readonly_paths.is_empty() {
        host_config["ReadonlyPaths"] = json!(security.readonly_paths);
    }
    if let Some(r) = &linux.resources {
        for (k, v) in resources(r) {
            host_config[k] = v;
        }
    }
    if !config.devices.is_empty() {
        host_config["Devices"] = json!(devices(&config.devices));
    }
    if let Some(cdi) = config.cdi_devices.first() {
        // No CDI registry here: containerd refuses a device no spec names.
        return Err(Status::invalid_argument(format!(
            "CDI device injection failed: unresolvable CDI devices {}",
            cdi.name
        )));
    }
    let mut body = json!({
        "Image": image,
        "Env": env(&config.envs)?,
        "WorkingDir": config.working_dir,
        "Tty": config.tty,
        "OpenStdin": config.stdin,
        "StdinOnce": config.stdin_once,
        "AttachStdin": false,
        "AttachStdout": false,
        "AttachStderr": false,
        "Labels": docker_labels,
        "HostConfig": host_config,
    });
    // CRI's command replaces the image's entrypoint and its args the image's cmd; a
    // command without args drops the image's cmd (Docker does the same for Entrypoint).
    if !config.command.is_empty() {
        body["Entrypoint"] = json!(config.command);
    }
    if !config.args.is_empty() {
        body["Cmd"] = json!(config.args);
    }
    if !sandbox.hostname.is_empty() {
        body["Hostname"] = json!(sandbox.hostname);
    }
    if let Some(signal) = stop_signal(config.stop_signal)? {
        body["StopSignal"] = json!(signal);
    }
    if let Some(user) = user(&security)? {
        body["User"] = json!(user);
    }
    Ok((container_name, into_map(body), log_path))
}

/// The container's log file: `log_path` (relative, no `..`, checked even when unused)
/// under the sandbox's `log_directory`; none without either.
pub(crate) fn log_path(directory: &str, log_path: &str) -> Result<Option<PathBuf>, Status> {
    let rel = Path::new(log_path);
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(Status::invalid_argument(format!(
            "log_path {log_path:?} must be relative to the sandbox's log directory, without '..'"
        )));
    }
    if directory.is_empty() || log_path.is_empty() {
        return Ok(None);
    }
    Ok(Some(Path::new(directory).join(rel)))
}

/// `KEY=value` strings from the request's environment.
fn env(envs: &[KeyValue]) -> Result<Vec<String>, Status> {
    envs.iter()
        .map(|kv| {
            if kv.key.is_empty() || kv.key.contains('=') {
                return Err(Status::invalid_argument(format!(
                    "invalid environment variable name {:?}",
                    kv.key
                )));
            }
            let value = std::str::from_utf8(&kv.value).map_err(|_| {
                Status::invalid_argument(format!("environment variable {} is not UTF-8", kv.key))
            })?;
            Ok(format!("{}={value}", kv.key))
        })
        .collect()
}

/// Docker `Binds` for the request's mounts: `host:container[:ro][,rslave|rshared]`, so
/// that the daemon's bind policy and its creation of a missing host directory apply as
/// for `docker run -v`.
fn binds(mounts: &[Mount]) -> Result<Vec<String>, Status> {
    mounts
        .iter()
        .filter(|m| m.image.is_none())
        .map(|m| {
            for (what, p) in [
                ("host_path", &m.host_path),
                ("container_path", &m.container_path),
            ] {
                if !p.starts_with('/') || p.contains(':') || p.contains(',') {
                    return Err(Status::invalid_argument(format!(
                        "mount {what} {p:?} must be an absolute path without ':' or ','"
                    )));
                }
            }
            let mut opts = vec![if m.readonly { "ro" } else { "rw" }];
            match MountPropagation::try_from(m.propagation) {
                Ok(MountPropagation::PropagationHostToContainer) => opts.push("rslave"),
                Ok(MountPropagation::PropagationBidirectional) => opts.push("rshared"),
                _ => opts.push("rprivate"),
            }
            Ok(format!(
                "{}:{}:{}",
                m.host_path,
                m.container_path,
                opts.join(",")
            ))
        })
        .collect()
}

/// Docker `Mounts` of `Type: "image"` for the request's image volumes (`Mount.image`,
/// with `image_sub_path`): read-only as the CRI requires, so one asked writable is
/// refused (critest checks it), as is one that names a host path too.
fn image_mounts(mounts: &[Mount]) -> Result<Vec<Value>, Status> {
    mounts
        .iter()
        .filter_map(|m| m.image.as_ref().map(|image| (m, image)))
        .map(|(m, image)| {
            let p = &m.container_path;
            if !p.starts_with('/') {
                return Err(Status::invalid_argument(format!(
                    "image volume container_path {p:?} must be an absolute path"
                )));
            }
            if !m.host_path.is_empty() {
                return Err(Status::invalid_argument(format!(
                    "image volume at {p:?} must not name a host_path too"
                )));
            }
            if !m.readonly {
                return Err(Status::invalid_argument(format!(
                    "image volume at {p:?} must be read-only"
                )));
            }
            if image.image.is_empty() {
                return Err(Status::invalid_argument(format!(
                    "image volume at {p:?} must name an image"
                )));
            }
            let mut mount = json!({
                "Type": "image",
                "Source": image.image,
                "Target": p,
                "ReadOnly": true,
            });
            if !m.image_sub_path.is_empty() {
                mount["ImageOptions"] = json!({"Subpath": m.image_sub_path});
            }
            Ok(mount)
        })
        .collect()
}

/// Docker `Devices` (`docker run --device`) for the request's devices: the engine
/// checks that each host path is a device node (or a directory of them) at create, with
/// dockerd's words, and an empty permission string means `rwm` there as in Docker.
fn devices(devices: &[Device]) -> Vec<Value> {
    devices
        .iter()
        .map(|d| {
            json!({
                "PathOnHost": d.host_path,
                "PathInContainer": d.container_path,
                "CgroupPermissions": d.permissions,
            })
        })
        .collect()
}

/// The engine's `StopSignal` for a CRI stop signal: `None` for the runtime's default (the
/// image's, else SIGTERM), the signal's name (`SIGUSR1`) for the classic ones and its
/// number for the real-time ones (SIGRTMIN+n is 34+n as for Docker's `RTMIN+n`, SIGRTMAX
/// is 64); an unknown value is refused as containerd does.
fn stop_signal(value: i32) -> Result<Option<String>, Status> {
    let signal = Signal::try_from(value)
        .map_err(|_| Status::invalid_argument(format!("unknown CRI stop signal {value}")))?;
    Ok(match signal {
        Signal::RuntimeDefault => None,
        // Aliases the engine's parser does not know by name.
        Signal::Sigcld => Some("SIGCHLD".into()),
        Signal::Sigiot => Some("SIGABRT".into()),
        Signal::Sigpoll => Some("SIGIO".into()),
        _ if value >= Signal::Sigrtmin as i32 => Some((value - 1).to_string()),
        s => Some(s.as_str_name().trim_start_matches("SIGNAL_").to_string()),
    })
}

/// The CRI stop signal of the engine's `StopSignal` (a name or a number, as the image or
/// the request gave it); SIGTERM when unset, the runtime default when unknown (as
/// containerd reports it).
fn cri_stop_signal(engine: &str) -> Signal {
    if engine.is_empty() {
        return Signal::Sigterm;
    }
    if let Ok(n) = engine.parse::<i32>() {
        return match n {
            34..=64 => Signal::try_from(n + 1).unwrap_or(Signal::RuntimeDefault),
            _ => nix::sys::signal::Signal::try_from(n)
                .ok()
                .map_or(Signal::RuntimeDefault, |s| cri_stop_signal(s.as_str())),
        };
    }
    let up = engine.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    Signal::from_str_name(&format!("SIGNAL_SIG{name}")).unwrap_or(Signal::RuntimeDefault)
}

/// Whether `r` asks for a non-zero hugepage limit (the kubelet sends every page size of
/// the node, zero where the pod asks for none).
pub(crate) fn asks_hugepages(r: &LinuxContainerResources) -> bool {
    r.hugepage_limits.iter().any(|h| h.limit != 0)
}

/// What becomes of `r`'s hugepage limits, `present` telling whether the host has the
/// hugetlb controller: without it they are skipped with a warning, as containerd does by
/// default (`tolerate_missing_hugetlb_controller`); with it, when one is non-zero, every
/// one (page size, bytes; a zero denies that size, as the kubelet means it) for the engine
/// to apply. `None`: nothing to apply.
pub(crate) fn hugepage_limits(
    r: &LinuxContainerResources,
    present: bool,
) -> Option<Vec<(String, u64)>> {
    if !asks_hugepages(r) {
        return None;
    }
    if !present {
        tracing::warn!("CRI: hugetlb cgroup controller is absent; skipping huge pages limits");
        return None;
    }
    Some(
        r.hugepage_limits
            .iter()
            .map(|h| (h.page_size.clone(), h.limit))
            .collect(),
    )
}

/// The `User` of a security context: `uid[:gid]`, or the user name. A group without a
/// user is refused, as containerd does (critest checks it).
fn user(s: &LinuxContainerSecurityContext) -> Result<Option<String>, Status> {
    let group = s.run_as_group.as_ref().map(|g| g.value);
    let user = match (&s.run_as_user, s.run_as_username.as_str()) {
        (Some(u), _) => u.value.to_string(),
        (None, "") => {
            return match group {
                Some(g) => Err(Status::invalid_argument(format!(
                    "user group {g:?} is specified without user"
                ))),
                None => Ok(None),
            }
        }
        (None, name) => name.to_string(),
    };
    Ok(Some(match group {
        Some(g) => format!("{user}:{g}"),
        None => user,
    }))
}

/// The Docker `HostConfig` resource fields of CRI resources (zero or empty: not set).
pub(crate) fn resources(r: &LinuxContainerResources) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    for (k, v) in [
        ("CpuPeriod", r.cpu_period),
        ("CpuQuota", r.cpu_quota),
        ("CpuShares", r.cpu_shares),
        ("Memory", r.memory_limit_in_bytes),
        ("MemorySwap", r.memory_swap_limit_in_bytes),
    ] {
        if v != 0 {
            out.push((k, json!(v)));
        }
    }
    for (k, v) in [
        ("CpusetCpus", &r.cpuset_cpus),
        ("CpusetMems", &r.cpuset_mems),
    ] {
        if !v.is_empty() {
            out.push((k, json!(v)));
        }
    }
    if r.oom_score_adj != 0 {
        out.push(("OomScoreAdj", json!(r.oom_score_adj)));
    }
    out
}

/// The engine's update request for `UpdateContainerResources` (the OOM score is the
/// container's from its start, as for `docker update`).
pub(crate) fn update_body(r: &LinuxContainerResources) -> Map<String, Value> {
    resources(r)
        .into_iter()
        .filter(|(k, _)| *k != "OomScoreAdj")
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// The CRI state of an engine state (`State.Status` / a summary's `State`).
pub(crate) fn state(status: &str) -> ContainerState {
    match status {
        "created" => ContainerState::ContainerCreated,
        "running" | "paused" | "restarting" => ContainerState::ContainerRunning,
        "exited" | "dead" => ContainerState::ContainerExited,
        _ => ContainerState::ContainerUnknown,
    }
}

fn metadata(l: &Labels) -> ContainerMetadata {
    ContainerMetadata {
        name: l.get(labels::CONTAINER_NAME).into(),
        attempt: l.attempt(),
    }
}

fn image_spec(l: &Labels) -> ImageSpec {
    ImageSpec {
        image: l.get(labels::IMAGE).into(),
        ..Default::default()
    }
}

/// A container as `ListContainers` answers it, from a summary; `None` when not CRI's.
pub(crate) fn from_summary(s: &Value) -> Option<(Container, Labels)> {
    let l = Labels::of(s.get("Labels"));
    if !l.is(labels::TYPE_CONTAINER) {
        return None;
    }
    let image_id = s.get("ImageID").and_then(Value::as_str).unwrap_or("");
    let c = Container {
        id: s.get("Id")?.as_str()?.to_string(),
        pod_sandbox_id: l.get(labels::SANDBOX_ID).into(),
        metadata: Some(metadata(&l)),
        image: Some(image_spec(&l)),
        image_ref: image_id.into(),
        image_id: image_id.into(),
        state: state(s.get("State").and_then(Value::as_str).unwrap_or("")) as i32,
        created_at: s
            .get("Created")
            .and_then(Value::as_i64)
            .and_then(|secs| secs.checked_mul(1_000_000_000))
            .unwrap_or(0),
        labels: l.cri_labels(),
        annotations: l.annotations(),
    };
    Some((c, l))
}

/// Whether `filter` keeps `c`.
pub(crate) fn selected(c: &Container, l: &Labels, filter: &ContainerFilter) -> bool {
    labels::id_matches(&filter.id, &c.id)
        && labels::id_matches(&filter.pod_sandbox_id, &c.pod_sandbox_id)
        && filter.state.as_ref().is_none_or(|s| s.state == c.state)
        && l.selected(&filter.label_selector)
}

/// Why a container exited, as the kubelet reads it.
fn reason(state: &Value, cri_state: ContainerState) -> String {
    if cri_state != ContainerState::ContainerExited {
        return String::new();
    }
    if state.get("OOMKilled").and_then(Value::as_bool) == Some(true) {
        "OOMKilled".into()
    } else if state.get("ExitCode").and_then(Value::as_i64) == Some(0) {
        "Completed".into()
    } else {
        "Error".into()
    }
}

/// The mounts of an inspect's `Mounts` (binds, volumes and image volumes).
fn mounts(inspect: &Value) -> Vec<Mount> {
    let Some(items) = inspect.get("Mounts").and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .map(|m| {
            let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let propagation = match s("Propagation").as_str() {
                "rslave" | "slave" => MountPropagation::PropagationHostToContainer,
                "rshared" | "shared" => MountPropagation::PropagationBidirectional,
                _ => MountPropagation::PropagationPrivate,
            };
            let readonly = m.get("RW").and_then(Value::as_bool) == Some(false);
            if s("Type") == "image" {
                // The image as the request named it, and its ID (`image_ref`, KEP-5365).
                return Mount {
                    container_path: s("Destination"),
                    readonly,
                    propagation: propagation as i32,
                    image: Some(ImageSpec {
                        image: s("Name"),
                        image_ref: s("Source"),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
            }
            Mount {
                container_path: s("Destination"),
                host_path: s("Source"),
                readonly,
                propagation: propagation as i32,
                ..Default::default()
            }
        })
        .collect()
}

/// `ContainerStatus` from the container's inspect; `None` when it is not CRI's.
pub(crate) fn status(inspect: &Value) -> Option<ContainerStatus> {
    let l = Labels::of(inspect.pointer("/Config/Labels"));
    if !l.is(labels::TYPE_CONTAINER) {
        return None;
    }
    let st = inspect.get("State")?;
    let cri_state = state(st.get("Status").and_then(Value::as_str).unwrap_or(""));
    let image_id = inspect.get("Image").and_then(Value::as_str).unwrap_or("");
    Some(ContainerStatus {
        id: inspect.get("Id")?.as_str()?.to_string(),
        metadata: Some(metadata(&l)),
        state: cri_state as i32,
        created_at: labels::unix_nanos(inspect.get("Created")),
        started_at: labels::unix_nanos(st.get("StartedAt")),
        finished_at: labels::unix_nanos(st.get("FinishedAt")),
        exit_code: st
            .get("ExitCode")
            .and_then(Value::as_i64)
            .and_then(|c| i32::try_from(c).ok())
            .unwrap_or(0),
        image: Some(image_spec(&l)),
        image_ref: image_id.into(),
        image_id: image_id.into(),
        reason: reason(st, cri_state),
        message: st.get("Error").and_then(Value::as_str).unwrap_or("").into(),
        labels: l.cri_labels(),
        annotations: l.annotations(),
        mounts: mounts(inspect),
        log_path: l.get(labels::LOG_PATH).into(),
        stop_signal: cri_stop_signal(
            inspect
                .pointer("/Config/StopSignal")
                .and_then(Value::as_str)
                .unwrap_or(""),
        ) as i32,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox() -> Sandbox {
        let (_, body) = crate::pods::create_body(
            &PodSandboxConfig {
                metadata: Some(PodSandboxMetadata {
                    name: "web".into(),
                    uid: "u1".into(),
                    namespace: "ns".into(),
                    attempt: 0,
                }),
                log_directory: "/var/log/pods/u1".into(),
                ..Default::default()
            },
            "",
            "p",
        )
        .unwrap();
        Sandbox::of(&json!({"Id": "sb1", "Config": {"Labels": body["Labels"], "Hostname": "web"}}))
            .unwrap()
    }

    fn config() -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: "app".into(),
                attempt: 1,
            }),
            image: Some(ImageSpec {
                image: "busybox".into(),
                ..Default::default()
            }),
            command: vec!["sh".into(), "-c".into()],
            args: vec!["echo hi".into()],
            envs: vec![KeyValue {
                key: "A".into(),
                value: b"1=2".to_vec(),
            }],
            mounts: vec![Mount {
                host_path: "/srv/data".into(),
                container_path: "/data".into(),
                readonly: true,
                propagation: MountPropagation::PropagationHostToContainer as i32,
                ..Default::default()
            }],
            log_path: "app/1.log".into(),
            labels: [("tier".to_string(), "front".to_string())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_container_joins_its_sandbox() {
        let (name, body, log) = create_body(&sandbox(), &config(), None).unwrap();
        assert_eq!(name, "k8s_app_web_ns_u1_1");
        assert_eq!(log, Some(PathBuf::from("/var/log/pods/u1/app/1.log")));
        let hc = &body["HostConfig"];
        for k in ["NetworkMode", "IpcMode", "UTSMode"] {
            assert_eq!(hc[k], "container:sb1", "{k}");
        }
        // POD is the protocol's zero value: the sandbox's PID namespace.
        assert_eq!(hc["PidMode"], "container:sb1");
        assert_eq!(hc["Binds"], json!(["/srv/data:/data:ro,rslave"]));
        assert_eq!(body["Entrypoint"], json!(["sh", "-c"]));
        assert_eq!(body["Cmd"], json!(["echo hi"]));
        assert_eq!(body["Env"], json!(["A=1=2"]));
        assert_eq!(body["Hostname"], "web");
        assert!(body.get("User").is_none());
        let l = Labels::of(body.get("Labels"));
        assert!(l.is(labels::TYPE_CONTAINER));
        assert_eq!(l.get(labels::SANDBOX_ID), "sb1");
        assert_eq!(l.get(labels::LOG_PATH), "/var/log/pods/u1/app/1.log");
        assert_eq!(l.cri_labels()["tier"], "front");
    }

    #[test]
    fn namespace_security_and_resources() {
        let mut c = config();
        c.command.clear();
        c.linux = Some(LinuxContainerConfig {
            resources: Some(LinuxContainerResources {
                cpu_quota: 50_000,
                cpu_period: 100_000,
                memory_limit_in_bytes: 64 << 20,
                cpuset_cpus: "0".into(),
                oom_score_adj: 100,
                ..Default::default()
            }),
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(NamespaceOption {
                    pid: NamespaceMode::Container as i32,
                    ..Default::default()
                }),
                run_as_user: Some(Int64Value { value: 1000 }),
                run_as_group: Some(Int64Value { value: 10 }),
                supplemental_groups: vec![5],
                no_new_privs: true,
                readonly_rootfs: true,
                capabilities: Some(Capability {
                    add_capabilities: vec!["NET_ADMIN".into()],
                    drop_capabilities: vec!["ALL".into()],
                    ..Default::default()
                }),
                ..Default::default()
            }),
        });
        let profiles = ["seccomp=unconfined".into(), "apparmor=unconfined".into()];
        let (_, body, _) = create_body(&sandbox(), &c, profiles).unwrap();
        let hc = &body["HostConfig"];
        assert_eq!(hc["PidMode"], "", "CONTAINER: a PID namespace of its own");
        assert!(body.get("Entrypoint").is_none());
        assert_eq!(body["User"], "1000:10");
        assert_eq!(hc["GroupAdd"], json!(["5"]));
        assert_eq!(
            hc["SecurityOpt"],
            json!([
                "no-new-privileges",
                "seccomp=unconfined",
                "apparmor=unconfined"
            ])
        );
        assert_eq!(hc["ReadonlyRootfs"], true);
        assert_eq!(hc["CapAdd"], json!(["NET_ADMIN"]));
        assert_eq!(hc["CapDrop"], json!(["ALL"]));
        assert_eq!(hc["CpuQuota"], 50_000);
        assert_eq!(hc["Memory"], 64 << 20);
        assert_eq!(hc["CpusetCpus"], "0");
        assert_eq!(hc["OomScoreAdj"], 100);
        assert!(hc.get("CpuShares").is_none());
        let update = update_body(c.linux.as_ref().unwrap().resources.as_ref().unwrap());
        assert_eq!(update["CpuPeriod"], 100_000);
        assert!(!update.contains_key("OomScoreAdj"));
    }

    #[test]
    fn refuses_what_cannot_be_said_safely() {
        let cases: Vec<fn(&mut ContainerConfig)> = vec![
            |c| c.metadata = None,
            |c| c.image = None,
            |c| c.log_path = "../../etc/x".into(),
            |c| c.log_path = "/abs.log".into(),
            |c| c.mounts[0].host_path = "relative".into(),
            |c| c.mounts[0].container_path = "/a:/b".into(),
            |c| c.envs[0].key = "A=B".into(),
            |c| c.envs[0].value = vec![0xff],
            |c| {
                c.linux = Some(LinuxContainerConfig {
                    security_context: Some(LinuxContainerSecurityContext {
                        run_as_group: Some(Int64Value { value: 10 }),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
            },
        ];
        for (i, f) in cases.iter().enumerate() {
            let mut c = config();
            f(&mut c);
            let e = create_body(&sandbox(), &c, None).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "case {i}: {e:?}");
        }
    }

    fn image_volume() -> Mount {
        Mount {
            container_path: "/mnt/img".into(),
            readonly: true,
            image: Some(ImageSpec {
                image: "sha256:abc".into(),
                ..Default::default()
            }),
            image_sub_path: "etc".into(),
            ..Default::default()
        }
    }

    #[test]
    fn image_volumes_are_read_only_image_mounts() {
        let mut c = config();
        c.mounts.push(image_volume());
        let (_, body, _) = create_body(&sandbox(), &c, None).unwrap();
        let hc = &body["HostConfig"];
        assert_eq!(hc["Binds"], json!(["/srv/data:/data:ro,rslave"]));
        assert_eq!(
            hc["Mounts"],
            json!([{"Type": "image", "Source": "sha256:abc", "Target": "/mnt/img",
                    "ReadOnly": true, "ImageOptions": {"Subpath": "etc"}}])
        );
        c.mounts[1].image_sub_path.clear();
        let (_, body, _) = create_body(&sandbox(), &c, None).unwrap();
        assert!(body["HostConfig"]["Mounts"][0]
            .get("ImageOptions")
            .is_none());
        let cases: Vec<fn(&mut Mount)> = vec![
            |m| m.readonly = false,
            |m| m.host_path = "/srv".into(),
            |m| m.container_path = "rel".into(),
            |m| m.image.as_mut().unwrap().image.clear(),
        ];
        for (i, f) in cases.iter().enumerate() {
            let mut c = config();
            let mut m = image_volume();
            f(&mut m);
            c.mounts = vec![m];
            let e = create_body(&sandbox(), &c, None).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "case {i}: {e:?}");
        }
    }

    #[test]
    fn status_shows_an_image_volumes_image() {
        let (_, body, _) = create_body(&sandbox(), &config(), None).unwrap();
        let inspect = json!({
            "Id": "c1", "Image": "sha256:img", "Created": "2024-01-01T00:00:00Z",
            "Config": {"Labels": body["Labels"]},
            "State": {"Status": "running"},
            "Mounts": [{"Type": "image", "Name": "busybox", "Source": "sha256:abc",
                        "Destination": "/mnt/img", "RW": false, "Propagation": "rprivate"}],
        });
        let m = &status(&inspect).unwrap().mounts[0];
        assert_eq!(
            (m.container_path.as_str(), m.host_path.as_str()),
            ("/mnt/img", "")
        );
        assert!(m.readonly);
        let image = m.image.as_ref().unwrap();
        assert_eq!(
            (image.image.as_str(), image.image_ref.as_str()),
            ("busybox", "sha256:abc")
        );
    }

    #[test]
    fn status_reads_state_and_exit() {
        let (_, body, _) = create_body(&sandbox(), &config(), None).unwrap();
        let mut inspect = json!({
            "Id": "c1", "Image": "sha256:img", "Created": "2024-01-01T00:00:00Z",
            "Config": {"Labels": body["Labels"]},
            "State": {"Status": "exited", "ExitCode": 3, "OOMKilled": false,
                      "StartedAt": "2024-01-01T00:00:01Z", "FinishedAt": "2024-01-01T00:00:02Z"},
            "Mounts": [{"Source": "/srv/data", "Destination": "/data", "RW": false, "Propagation": "rslave"}],
        });
        let s = status(&inspect).unwrap();
        assert_eq!(s.state, ContainerState::ContainerExited as i32);
        assert_eq!((s.exit_code, s.reason.as_str()), (3, "Error"));
        assert_eq!(s.finished_at - s.started_at, 1_000_000_000);
        assert_eq!(s.log_path, "/var/log/pods/u1/app/1.log");
        assert_eq!(s.image.unwrap().image, "busybox");
        assert_eq!(s.image_ref, "sha256:img");
        assert!(s.mounts[0].readonly);
        assert_eq!(
            s.mounts[0].propagation,
            MountPropagation::PropagationHostToContainer as i32
        );
        inspect["State"]["ExitCode"] = json!(0);
        assert_eq!(status(&inspect).unwrap().reason, "Completed");
        inspect["State"]["OOMKilled"] = json!(true);
        assert_eq!(status(&inspect).unwrap().reason, "OOMKilled");
        inspect["State"]["Status"] = json!("running");
        assert_eq!(status(&inspect).unwrap().reason, "");
        inspect["Config"]["Labels"] = json!({});
        assert!(status(&inspect).is_none());
    }

    #[test]
    fn devices_and_the_stop_signal() {
        let mut c = config();
        c.devices = vec![Device {
            host_path: "/dev/null".into(),
            container_path: "/dev/xnull".into(),
            permissions: "rwm".into(),
        }];
        c.stop_signal = Signal::Sigusr1 as i32;
        let (_, body, _) = create_body(&sandbox(), &c, None).unwrap();
        assert_eq!(
            body["HostConfig"]["Devices"],
            json!([{"PathOnHost": "/dev/null", "PathInContainer": "/dev/xnull",
                    "CgroupPermissions": "rwm"}])
        );
        assert_eq!(body["StopSignal"], "SIGUSR1");
        let (_, body, _) = create_body(&sandbox(), &config(), None).unwrap();
        assert!(body.get("StopSignal").is_none() && body["HostConfig"].get("Devices").is_none());
        for (cri, engine) in [
            (Signal::Sigterm, Some("SIGTERM")),
            (Signal::Sigrtmaxminus6, Some("58")),
            (Signal::Sigkill, Some("SIGKILL")),
            (Signal::Sigcld, Some("SIGCHLD")),
            (Signal::Sigrtmin, Some("34")),
            (Signal::Sigrtminplus15, Some("49")),
            (Signal::Sigrtmaxminus14, Some("50")),
            (Signal::Sigrtmax, Some("64")),
            (Signal::RuntimeDefault, None),
        ] {
            let got = stop_signal(cri as i32).unwrap();
            assert_eq!(got.as_deref(), engine, "{cri:?}");
        }
        c.stop_signal = 99;
        let e = create_body(&sandbox(), &c, None).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("unknown CRI stop signal 99"), "{e:?}");
        let mut c = config();
        c.cdi_devices = vec![CdiDevice {
            name: "vendor.com/gpu=0".into(),
        }];
        let e = create_body(&sandbox(), &c, None).unwrap_err();
        assert!(e.message().contains("vendor.com/gpu=0"), "{e:?}");
    }

    #[test]
    fn status_reports_the_stop_signal() {
        let (_, body, _) = create_body(&sandbox(), &config(), None).unwrap();
        let mut inspect = json!({
            "Id": "c1", "Config": {"Labels": body["Labels"]}, "State": {"Status": "running"},
        });
        for (engine, cri) in [
            (None, Signal::Sigterm),
            (Some("SIGUSR1"), Signal::Sigusr1),
            (Some("usr2"), Signal::Sigusr2),
            (Some("9"), Signal::Sigkill),
            (Some("34"), Signal::Sigrtmin),
            (Some("64"), Signal::Sigrtmax),
            (Some("SIGNOPE"), Signal::RuntimeDefault),
        ] {
            if let Some(e) = engine {
                inspect["Config"]["StopSignal"] = json!(e);
            }
            assert_eq!(
                status(&inspect).unwrap().stop_signal,
                cri as i32,
                "{engine:?}"
            );
        }
    }

    #[test]
    fn hugepage_limits_follow_containerd() {
        let mut r = LinuxContainerResources {
            hugepage_limits: vec![
                HugepageLimit {
                    page_size: "2MB".into(),
                    limit: 0,
                },
                HugepageLimit {
                    page_size: "1GB".into(),
                    limit: 0,
                },
            ],
            ..Default::default()
        };
        // The kubelet's zeros for every page size: nothing asked, nothing applied.
        assert!(!asks_hugepages(&r));
        assert_eq!(hugepage_limits(&r, true), None);
        r.hugepage_limits[0].limit = 4 << 20;
        assert!(asks_hugepages(&r));
        // Without the controller skipped, as containerd's default.
        assert_eq!(hugepage_limits(&r, false), None);
        // With it all of them, the zero denying 1GB pages.
        assert_eq!(
            hugepage_limits(&r, true),
            Some(vec![("2MB".into(), 4 << 20), ("1GB".into(), 0)])
        );
    }
}
