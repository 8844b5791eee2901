//! The pure OCI spec builder: a plain [`ContainerSpecInput`] (what the engine resolved
//! from the create request, the image config and the network driver) → an
//! `oci_spec::runtime::Spec` with Docker's defaults. No I/O: user names, `container:`
//! modes and devices are resolved by the engine before it calls [`build_spec`].

mod defaults;
mod input;
mod linux;
mod seccomp;
mod seccomp_profile;
#[cfg(test)]
mod tests;
mod validate;

use oci_spec::runtime::Spec;
use serde_json::json;

pub use defaults::{ALL_CAPS, DEFAULT_CAPS, DEFAULT_SHM_SIZE, MASKED_PATHS, READONLY_PATHS};
pub use input::*;
pub use seccomp::default_profile as default_seccomp_profile;
pub use seccomp_profile::check_seccomp_profile;

use crate::RuntimeError;

pub(crate) fn invalid(msg: impl Into<String>) -> RuntimeError {
    RuntimeError::InvalidArgument(msg.into())
}

/// Builds the container's OCI spec, or says (in Docker's words where clients know them)
/// why the input cannot run.
pub fn build_spec(input: &ContainerSpecInput) -> Result<Spec, RuntimeError> {
    validate::validate(input)?;
    let caps = linux::capabilities(input)?;
    let mut linux = json!({
        "cgroupsPath": input.cgroups_path,
        "namespaces": linux::namespaces(&input.namespaces),
        "resources": linux::resources(input)?,
    });
    if !input.privileged {
        let masked = input
            .masked_paths
            .clone()
            .unwrap_or_else(|| to_strings(MASKED_PATHS));
        let ro = input
            .readonly_paths
            .clone()
            .unwrap_or_else(|| to_strings(READONLY_PATHS));
        linux["maskedPaths"] = json!(masked);
        linux["readonlyPaths"] = json!(ro);
    }
    let seccomp = match &input.seccomp_profile {
        _ if !input.seccomp => None,
        Some(text) => {
            seccomp_profile::custom_profile(text, &caps, std::env::consts::ARCH, input.kernel)?
        }
        None if input.privileged => None,
        None => Some(seccomp::default_profile(&caps)),
    };
    if let Some(s) = seccomp {
        linux["seccomp"] = serde_json::to_value(s).map_err(internal)?;
    }
    // moby: a shared bind keeps the root's propagation shared, or what the container
    // mounts there never reaches the host (libcontainer's default makes `/` a slave).
    if input
        .mounts
        .iter()
        .any(|m| matches!(m.propagation.as_deref(), Some("shared" | "rshared")))
    {
        linux["rootfsPropagation"] = json!("shared");
    }
    if !input.sysctls.is_empty() {
        linux["sysctl"] = json!(input.sysctls);
    }
    if !input.devices.is_empty() {
        linux["devices"] = input
            .devices
            .iter()
            .map(|d| {
                let mut v = json!({"path": d.path, "type": d.kind.to_string(), "major": d.major, "minor": d.minor});
                if let Some(m) = d.file_mode {
                    v["fileMode"] = json!(m);
                }
                if let Some(u) = d.uid {
                    v["uid"] = json!(u);
                }
                if let Some(g) = d.gid {
                    v["gid"] = json!(g);
                }
                v
            })
            .collect();
    }
    let mut process = json!({
        "terminal": input.tty,
        "user": {"uid": input.user.uid, "gid": input.user.gid},
        "args": input.args,
        "env": input.env,
        "cwd": if input.cwd.is_empty() { "/" } else { input.cwd.as_str() },
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
    });
    // Only when set: libcontainer 0.7 loads seccomp after dropping capabilities whenever
    // the field is present, even `false`, and loading then fails without CAP_SYS_ADMIN.
    if input.no_new_privileges {
        process["noNewPrivileges"] = json!(true);
    }
    if let Some(profile) = &input.apparmor_profile {
        process["apparmorProfile"] = json!(profile);
    }
    if !input.user.additional_gids.is_empty() {
        process["user"]["additionalGids"] = json!(input.user.additional_gids);
    }
    if let Some(adj) = input.oom_score_adj {
        process["oomScoreAdj"] = json!(adj);
    }
    if !input.ulimits.is_empty() {
        process["rlimits"] = input
            .ulimits
            .iter()
            .map(|u| {
                let typ = defaults::ULIMITS
                    .iter()
                    .find(|(n, _)| *n == u.name)
                    .map(|(_, t)| *t);
                json!({"type": typ, "soft": ulimit_value(u.soft), "hard": ulimit_value(u.hard)})
            })
            .collect();
    }
    let mut spec = json!({
        "ociVersion": "1.0.2-dev",
        "process": process,
        "root": {"path": input.rootfs, "readonly": input.readonly_rootfs},
        "mounts": linux::mounts(input),
        "linux": linux,
    });
    if !input.annotations.is_empty() {
        spec["annotations"] = json!(input.annotations);
    }
    if input.namespaces.uts != NamespaceMode::Host && !input.hostname.is_empty() {
        spec["hostname"] = json!(input.hostname);
    }
    serde_json::from_value(spec).map_err(internal)
}

fn internal(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Internal(format!("building the OCI spec: {e}"))
}

pub(crate) fn to_strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

/// -1 is "unlimited" for `--ulimit`.
fn ulimit_value(v: i64) -> u64 {
    if v < 0 {
        u64::MAX
    } else {
        v as u64
    }
}
