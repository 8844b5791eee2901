//! Refusing input that cannot run, in Docker's words where clients know them.

use super::defaults;
use super::input::{ContainerSpecInput, NamespaceMode, Namespaces};
use super::invalid;
use crate::RuntimeError;

pub(super) fn validate(i: &ContainerSpecInput) -> Result<(), RuntimeError> {
    if i.id.is_empty() {
        return Err(invalid("container id is empty"));
    }
    if i.args.is_empty() || i.args[0].is_empty() {
        return Err(invalid("No command specified"));
    }
    if !i.rootfs.is_absolute() {
        return Err(invalid(format!(
            "rootfs must be an absolute path: {}",
            i.rootfs.display()
        )));
    }
    if !i.cwd.is_empty() && !i.cwd.starts_with('/') {
        // moby daemon/container.go
        return Err(invalid(format!(
            "the working directory '{}' is invalid, it needs to be an absolute path",
            i.cwd
        )));
    }
    if !i.cgroups_path.starts_with('/') {
        return Err(invalid(format!(
            "cgroups path must be absolute: {:?}",
            i.cgroups_path
        )));
    }
    if i.env
        .iter()
        .any(|e| e.is_empty() || e.starts_with('=') || e.contains('\0'))
    {
        return Err(invalid("invalid environment variable"));
    }
    if i.hostname.len() > 64 {
        return Err(invalid(format!(
            "invalid hostname: {:?} is longer than 64 characters",
            i.hostname
        )));
    }
    if i.namespaces.uts == NamespaceMode::Host && !i.hostname.is_empty() {
        return Err(invalid("Conflicting options: hostname and the UTS mode"));
    }
    if let Some(adj) = i.oom_score_adj {
        if !(-1000..=1000).contains(&adj) {
            return Err(invalid(format!(
                "Invalid value {adj}, range for oom score adj is [-1000, 1000]"
            )));
        }
    }
    if i.shm_size.is_some_and(|s| s < 0) {
        return Err(invalid("SHM size can not be less than 0"));
    }
    for ns in [
        &i.namespaces.pid,
        &i.namespaces.ipc,
        &i.namespaces.uts,
        &i.namespaces.net,
    ] {
        if let NamespaceMode::Path(p) = ns {
            if !p.is_absolute() {
                return Err(invalid(format!(
                    "namespace path must be absolute: {}",
                    p.display()
                )));
            }
        }
    }
    for u in &i.ulimits {
        if !defaults::ULIMITS.iter().any(|(n, _)| *n == u.name) {
            return Err(invalid(format!("invalid ulimit type: {}", u.name)));
        }
        if u.hard >= 0 && (u.soft < 0 || u.soft > u.hard) {
            return Err(invalid(format!(
                "ulimit soft limit must be less than or equal to hard limit: {} > {}",
                u.soft, u.hard
            )));
        }
    }
    for k in i.sysctls.keys() {
        validate_sysctl(k, &i.namespaces)?;
    }
    for (dest, opts) in &i.tmpfs {
        check_destination(dest)?;
        if opts
            .split(',')
            .any(|o| o.trim().is_empty() && !opts.is_empty())
        {
            return Err(invalid(format!(
                "invalid tmpfs options for {dest}: {opts:?}"
            )));
        }
    }
    for m in &i.mounts {
        check_destination(&m.destination)?;
        if !m.source.is_absolute() {
            return Err(invalid(format!(
                "invalid mount config: source must be an absolute path: {}",
                m.source.display()
            )));
        }
        if let Some(p) = &m.propagation {
            if ![
                "private", "rprivate", "shared", "rshared", "slave", "rslave",
            ]
            .contains(&p.as_str())
            {
                return Err(invalid(format!("invalid propagation mode: {p}")));
            }
        }
    }
    for d in &i.devices {
        if !d.path.starts_with('/') || !matches!(d.kind, 'c' | 'b') {
            return Err(invalid(format!("invalid device: {}", d.path)));
        }
        if d.permissions.is_empty() || !d.permissions.chars().all(|c| "rwm".contains(c)) {
            return Err(invalid(format!("invalid device mode: {}", d.permissions)));
        }
    }
    Ok(())
}

pub(super) fn check_destination(dest: &str) -> Result<(), RuntimeError> {
    if !dest.starts_with('/') {
        return Err(invalid(format!(
            "invalid mount config: destination must be an absolute path: {dest}"
        )));
    }
    if dest.trim_end_matches('/').is_empty() {
        return Err(invalid("invalid specification: destination can't be '/'"));
    }
    if dest.split('/').any(|c| c == "..") {
        return Err(invalid(format!(
            "invalid mount config: destination must not contain '..': {dest}"
        )));
    }
    Ok(())
}

/// moby `opts/runtime` `ValidateSysctl` and `daemon` checks against host namespaces.
fn validate_sysctl(key: &str, ns: &Namespaces) -> Result<(), RuntimeError> {
    let ipc = defaults::IPC_SYSCTLS.contains(&key) || key.starts_with("fs.mqueue.");
    if ipc {
        if ns.ipc == NamespaceMode::Host {
            return Err(invalid(format!(
                "sysctl '{key}' is not allowed in host IPC namespace"
            )));
        }
        return Ok(());
    }
    if key.starts_with("net.") {
        if ns.net == NamespaceMode::Host {
            return Err(invalid(format!(
                "sysctl '{key}' is not allowed in host network namespace"
            )));
        }
        return Ok(());
    }
    if key == "kernel.domainname" || key == "kernel.hostname" {
        if ns.uts == NamespaceMode::Host {
            return Err(invalid(format!(
                "sysctl '{key}' is not allowed in host UTS namespace"
            )));
        }
        return Ok(());
    }
    Err(invalid(format!("sysctl '{key}' is not whitelisted")))
}
