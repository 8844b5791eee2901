//! berthd's default AppArmor profile, `berth-default`: what dockerd's `docker-default` is
//! for Docker, applied to every unprivileged container without `apparmor=` on a host
//! whose kernel has AppArmor and that has `apparmor_parser`. Loaded (`apparmor_parser
//! -Kr`) at a container's start when the kernel does not list it, as dockerd re-loads
//! its own: package upgrades can unload profiles.
//!
//! The development hosts' kernel has no AppArmor; `tests/vm/apparmor.sh` checks all of
//! this for real in the v2vm guest (Debian 12's kernel): containers run as
//! `berth-default (enforce)`, which denies mounts and writes to `/proc/sysrq-trigger` that
//! `apparmor=unconfined` allows, privileged containers are unconfined, a custom loaded
//! profile applies, and an unloaded one is refused before the runtime is asked.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::EngineError;

pub(crate) const DEFAULT_PROFILE: &str = "berth-default";

const PARSERS: &[&str] = &["/sbin/apparmor_parser", "/usr/sbin/apparmor_parser"];

/// The profile: files, networking and capabilities as the container's other limits allow
/// (seccomp, capabilities, masked paths); no mounts; signals and ptrace only among
/// processes under this profile (and signals from the unconfined daemon and shim); no
/// writes to the kernel's knobs in /proc and /sys, nothing of firmware or securityfs.
/// `#include`s only of what the host's AppArmor installation has (`tunables` would
/// otherwise define `@{PROC}`).
fn profile_text(has: impl Fn(&str) -> bool) -> String {
    let tunables = if has("tunables/global") {
        "#include <tunables/global>"
    } else {
        "@{PROC}=/proc/"
    };
    let base = if has("abstractions/base") {
        "#include <abstractions/base>"
    } else {
        ""
    };
    format!(
        r#"{tunables}

profile {DEFAULT_PROFILE} flags=(attach_disconnected,mediate_deleted) {{
  {base}

  network,
  capability,
  file,
  umount,

  signal (send,receive) peer={DEFAULT_PROFILE},
  signal (receive) peer=unconfined,
  ptrace (trace,read,tracedby,readby) peer={DEFAULT_PROFILE},

  deny mount,

  deny @{{PROC}}/sysrq-trigger rwklx,
  deny @{{PROC}}/kcore rwklx,
  deny @{{PROC}}/kmsg rwklx,
  deny @{{PROC}}/sys/{{fs,vm,dev,debug,abi,crypto,user}}/** wklx,
  deny @{{PROC}}/sys/kernel/{{[^s]*,s[^h]*,sh[^m]*}} wklx,
  deny @{{PROC}}/sys/kernel/*/** wklx,
  deny /sys/firmware/** rwklx,
  deny /sys/kernel/security/** rwklx,
  deny /sys/{{block,bus,class,dev,devices,module,power,kernel}}/** wklx,
}}
"#
    )
}

/// The `apparmor_parser` binary, if installed.
pub(crate) fn parser() -> Option<&'static Path> {
    PARSERS.iter().map(Path::new).find(|p| p.is_file())
}

/// Makes sure the kernel has `profile` before a container is started under it: loads
/// `berth-default` if missing; any other profile must have been loaded by the host's
/// administrator (the runtime would otherwise fail with "failed apparmor: unknown").
/// Blocking: run it off the async workers.
pub(crate) fn ensure_loaded(profile: &str) -> Result<(), EngineError> {
    match profile {
        "unconfined" => Ok(()),
        DEFAULT_PROFILE => ensure_default_loaded(),
        p if berth_sys::host::apparmor_profile_loaded(p) => Ok(()),
        p => Err(EngineError::InvalidArgument(format!(
            "AppArmor profile {p:?} is not loaded on this host: load it with `apparmor_parser -r FILE` \
             (or use another apparmor= profile) and start the container again"
        ))),
    }
}

/// Loads `berth-default` unless the kernel lists it.
fn ensure_default_loaded() -> Result<(), EngineError> {
    let unloadable = |why: String| {
        EngineError::Internal(format!(
            "AppArmor enabled on system but the {DEFAULT_PROFILE} profile could not be loaded: {why}"
        ))
    };
    if berth_sys::host::apparmor_profile_loaded(DEFAULT_PROFILE) {
        return Ok(());
    }
    let parser = parser().ok_or_else(|| unloadable("no apparmor_parser".into()))?;
    // -K: no cache written; -r: replace a stale copy.
    let mut child = Command::new(parser)
        .args(["-Kr"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| unloadable(e.to_string()))?;
    let text = profile_text(|f| Path::new("/etc/apparmor.d").join(f).is_file());
    let wrote = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(text.as_bytes()));
    let out = child
        .wait_with_output()
        .map_err(|e| unloadable(e.to_string()))?;
    if let Some(Err(e)) = wrote {
        return Err(unloadable(e.to_string()));
    }
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(unloadable(format!("{}: {}", out.status, err.trim())));
    }
    tracing::info!(profile = DEFAULT_PROFILE, "AppArmor profile loaded");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unconfined_needs_nothing_and_an_unloaded_profile_is_refused_clearly() {
        assert!(ensure_loaded("unconfined").is_ok());
        let e = ensure_loaded("berth-no-such-profile")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"berth-no-such-profile\" is not loaded on this host"),
            "{e}"
        );
    }

    #[test]
    fn profile_names_itself_and_denies_mount() {
        let bare = profile_text(|_| false);
        assert!(
            bare.starts_with("@{PROC}=/proc/\n") && !bare.contains("#include"),
            "{bare}"
        );
        let t = profile_text(|_| true);
        assert!(t.starts_with("#include <tunables/global>\n"), "{t}");
        assert!(t.contains("  #include <abstractions/base>\n"), "{t}");
        assert!(t.contains("profile berth-default flags=(attach_disconnected,mediate_deleted) {"));
        assert!(t.contains("peer=berth-default,"));
        assert!(t.contains("  deny mount,\n"));
        assert!(t.contains("@{PROC}/sysrq-trigger"), "{t}");
        assert_eq!(t.matches('{').count(), t.matches('}').count(), "{t}");
    }
}
