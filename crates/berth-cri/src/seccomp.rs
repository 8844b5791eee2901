//! A CRI container's seccomp profile as the engine's `SecurityOpt`: the container's
//! `SecurityProfile` (or, without one, its deprecated `seccomp_profile_path` string, read
//! by [`legacy_profile`] as containerd reads it) wins over its pod's; `RuntimeDefault` is
//! the engine's default profile, `Unconfined` and no profile at all (containerd's
//! reading, which critest checks) run without a filter, `Localhost` is a profile file on
//! the node (an absolute path, read as Docker's JSON, at most [`PROFILE_MAX`] bytes). A
//! privileged container gets no filter whatever is asked, as with containerd and dockerd.

use std::path::{Path, PathBuf};

use tokio::io::AsyncReadExt;
use tonic::Status;

use crate::proto::security_profile::ProfileType;
use crate::proto::{LinuxContainerSecurityContext, LinuxSandboxSecurityContext, SecurityProfile};

/// The prefix of a localhost profile's name or path in the deprecated strings (and, as
/// containerd trims it there too, in a `Localhost` profile's `localhost_ref`).
pub(crate) const LOCALHOST_PREFIX: &str = "localhost/";

/// The largest profile file read (Docker's default profile is about 20 KiB).
pub(crate) const PROFILE_MAX: u64 = 1 << 20;

/// What a container's seccomp is to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Choice {
    /// The engine's default profile (no `SecurityOpt`).
    RuntimeDefault,
    /// No filter: `seccomp=unconfined`.
    Unconfined,
    /// The profile file at this absolute path on the node.
    Localhost(PathBuf),
}

/// The profile a deprecated profile string names (`seccomp_profile_path`,
/// `apparmor_profile`), as containerd's `generateSecurityProfile`: `runtime/default` and
/// `docker/default` the runtime's default, `unconfined`, `localhost/<ref>` (the ref is a
/// path for seccomp, a profile name for AppArmor); the empty string none.
pub(crate) fn legacy_profile(what: &str, text: &str) -> Result<Option<SecurityProfile>, Status> {
    let profile = |t: ProfileType, r: &str| {
        Some(SecurityProfile {
            profile_type: t as i32,
            localhost_ref: r.into(),
        })
    };
    match text {
        "" => Ok(None),
        "runtime/default" | "docker/default" => Ok(profile(ProfileType::RuntimeDefault, "")),
        "unconfined" => Ok(profile(ProfileType::Unconfined, "")),
        _ => match text.strip_prefix(LOCALHOST_PREFIX) {
            Some(r) => Ok(profile(ProfileType::Localhost, r)),
            None => Err(Status::invalid_argument(format!(
                "invalid {what} profile {text:?}"
            ))),
        },
    }
}

/// The profile in force at one level: `profile` when set, else what the deprecated
/// string `legacy` names.
pub(crate) fn effective(
    what: &str,
    profile: Option<&SecurityProfile>,
    legacy: &str,
) -> Result<Option<SecurityProfile>, Status> {
    match profile {
        Some(p) => Ok(Some(p.clone())),
        None => legacy_profile(what, legacy),
    }
}

/// The container's seccomp profile as its security context gives it.
#[allow(deprecated)] // seccomp_profile_path: still sent by older kubelets, read as containerd does
pub(crate) fn of_container(
    s: Option<&LinuxContainerSecurityContext>,
) -> Result<Option<SecurityProfile>, Status> {
    let Some(s) = s else { return Ok(None) };
    effective("seccomp", s.seccomp.as_ref(), &s.seccomp_profile_path)
}

/// The pod's seccomp profile as its security context gives it.
#[allow(deprecated)] // seccomp_profile_path: still sent by older kubelets, read as containerd does
pub(crate) fn of_pod(
    s: Option<&LinuxSandboxSecurityContext>,
) -> Result<Option<SecurityProfile>, Status> {
    let Some(s) = s else { return Ok(None) };
    effective("seccomp", s.seccomp.as_ref(), &s.seccomp_profile_path)
}

/// A `localhost_ref` set on a profile of another type: refused, as containerd does.
pub(crate) fn check_ref(what: &str, p: &SecurityProfile) -> Result<(), Status> {
    if p.profile_type != ProfileType::Localhost as i32 && !p.localhost_ref.is_empty() {
        return Err(Status::invalid_argument(format!(
            "{what} config invalid LocalhostRef must only be set if ProfileType is Localhost"
        )));
    }
    Ok(())
}

/// The choice for a container with `container`'s profile in a pod with `pod`'s.
pub(crate) fn choose(
    pod: Option<&SecurityProfile>,
    container: Option<&SecurityProfile>,
    privileged: bool,
) -> Result<Choice, Status> {
    let Some(p) = container.or(pod) else {
        return Ok(Choice::Unconfined);
    };
    if privileged {
        return Ok(Choice::Unconfined);
    }
    check_ref("seccomp", p)?;
    match ProfileType::try_from(p.profile_type) {
        Ok(ProfileType::RuntimeDefault) => Ok(Choice::RuntimeDefault),
        Ok(ProfileType::Unconfined) => Ok(Choice::Unconfined),
        Ok(ProfileType::Localhost) => {
            let r = &p.localhost_ref;
            let path = Path::new(r.strip_prefix(LOCALHOST_PREFIX).unwrap_or(r));
            if !path.is_absolute() {
                return Err(Status::invalid_argument(format!(
                    "seccomp localhost profile {r:?} must be an absolute path"
                )));
            }
            Ok(Choice::Localhost(path.to_path_buf()))
        }
        Err(_) => Err(Status::invalid_argument(format!(
            "unknown seccomp profile type {}",
            p.profile_type
        ))),
    }
}

/// The engine's `SecurityOpt` entry for `choice` (none for the default), reading a
/// localhost profile's file; the engine checks the profile itself.
pub(crate) async fn security_opt(choice: &Choice) -> Result<Option<String>, Status> {
    match choice {
        Choice::RuntimeDefault => Ok(None),
        Choice::Unconfined => Ok(Some("seccomp=unconfined".into())),
        Choice::Localhost(path) => {
            let text = read_profile(path).await.map_err(|e| {
                Status::invalid_argument(format!(
                    "cannot load seccomp profile {}: {e}",
                    path.display()
                ))
            })?;
            Ok(Some(format!("seccomp={text}")))
        }
    }
}

/// A profile file's text: UTF-8, not empty, at most [`PROFILE_MAX`] bytes.
async fn read_profile(path: &Path) -> std::io::Result<String> {
    let file = tokio::fs::File::open(path).await?;
    let mut buf = Vec::new();
    file.take(PROFILE_MAX + 1).read_to_end(&mut buf).await?;
    if buf.len() as u64 > PROFILE_MAX {
        return Err(std::io::Error::other(format!(
            "larger than {PROFILE_MAX} bytes"
        )));
    }
    let text = String::from_utf8(buf).map_err(|_| std::io::Error::other("not UTF-8"))?;
    if text.trim().is_empty() {
        return Err(std::io::Error::other("empty"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(t: ProfileType, r: &str) -> SecurityProfile {
        SecurityProfile {
            profile_type: t as i32,
            localhost_ref: r.into(),
        }
    }

    #[test]
    fn the_container_wins_and_none_is_unconfined() {
        let default = profile(ProfileType::RuntimeDefault, "");
        let unconfined = profile(ProfileType::Unconfined, "");
        let local = profile(ProfileType::Localhost, "/var/lib/kubelet/seccomp/a.json");
        assert_eq!(choose(None, None, false).unwrap(), Choice::Unconfined);
        assert_eq!(
            choose(Some(&default), None, false).unwrap(),
            Choice::RuntimeDefault
        );
        assert_eq!(
            choose(Some(&default), Some(&unconfined), false).unwrap(),
            Choice::Unconfined
        );
        assert_eq!(
            choose(Some(&unconfined), Some(&local), false).unwrap(),
            Choice::Localhost("/var/lib/kubelet/seccomp/a.json".into())
        );
        assert_eq!(
            choose(None, Some(&local), true).unwrap(),
            Choice::Unconfined,
            "privileged: no filter"
        );
    }

    #[test]
    fn refuses_relative_paths_and_unknown_types() {
        let rel = profile(ProfileType::Localhost, "profiles/a.json");
        let e = choose(None, Some(&rel), false).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        let odd = SecurityProfile {
            profile_type: 9,
            localhost_ref: String::new(),
        };
        assert_eq!(
            choose(Some(&odd), None, false).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    #[allow(deprecated)]
    fn the_deprecated_path_when_no_profile() {
        let ctr = |profile: Option<SecurityProfile>, path: &str| LinuxContainerSecurityContext {
            seccomp: profile,
            seccomp_profile_path: path.into(),
            ..Default::default()
        };
        let pod = |path: &str| LinuxSandboxSecurityContext {
            seccomp_profile_path: path.into(),
            ..Default::default()
        };
        let pick = |p: &LinuxSandboxSecurityContext, c: &LinuxContainerSecurityContext| {
            let (p, c) = (of_pod(Some(p)).unwrap(), of_container(Some(c)).unwrap());
            choose(p.as_ref(), c.as_ref(), false).unwrap()
        };
        for (path, want) in [
            ("runtime/default", Choice::RuntimeDefault),
            ("docker/default", Choice::RuntimeDefault),
            ("unconfined", Choice::Unconfined),
            (
                "localhost//var/lib/kubelet/seccomp/a.json",
                Choice::Localhost("/var/lib/kubelet/seccomp/a.json".into()),
            ),
        ] {
            assert_eq!(pick(&pod(""), &ctr(None, path)), want, "{path}");
            assert_eq!(pick(&pod(path), &ctr(None, "")), want, "pod's {path}");
        }
        assert_eq!(pick(&pod(""), &ctr(None, "")), Choice::Unconfined);
        // The profile wins over the string, the container's string over the pod's.
        let unconfined = profile(ProfileType::Unconfined, "");
        assert_eq!(
            pick(&pod(""), &ctr(Some(unconfined), "runtime/default")),
            Choice::Unconfined
        );
        assert_eq!(
            pick(&pod("runtime/default"), &ctr(None, "unconfined")),
            Choice::Unconfined
        );
        // containerd's refusals: a string of no known form, a localhost path that is not
        // absolute, a ref on a profile that is not Localhost.
        let e = of_container(Some(&ctr(None, "/abs/a.json"))).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert_eq!(e.message(), "invalid seccomp profile \"/abs/a.json\"");
        let rel = of_container(Some(&ctr(None, "localhost/a.json"))).unwrap();
        assert!(choose(None, rel.as_ref(), false).is_err());
        let odd = profile(ProfileType::RuntimeDefault, "/a.json");
        assert_eq!(
            choose(None, Some(&odd), false).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        // A Localhost ref with containerd's prefix.
        let prefixed = profile(ProfileType::Localhost, "localhost//a.json");
        assert_eq!(
            choose(None, Some(&prefixed), false).unwrap(),
            Choice::Localhost("/a.json".into())
        );
    }

    #[tokio::test]
    async fn reads_a_bounded_profile() {
        let dir = std::env::temp_dir().join(format!("berth-cri-seccomp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("ok.json");
        std::fs::write(&ok, r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
        let big = dir.join("big.json");
        std::fs::write(&big, vec![b' '; PROFILE_MAX as usize + 1]).unwrap();
        let opt = security_opt(&Choice::Localhost(ok)).await.unwrap();
        assert_eq!(
            opt.as_deref(),
            Some(r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW"}"#)
        );
        for p in [big, dir.join("missing.json")] {
            let e = security_opt(&Choice::Localhost(p)).await.unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
            assert!(
                e.message().starts_with("cannot load seccomp profile"),
                "{e:?}"
            );
        }
        assert_eq!(security_opt(&Choice::RuntimeDefault).await.unwrap(), None);
        assert_eq!(
            security_opt(&Choice::Unconfined).await.unwrap().as_deref(),
            Some("seccomp=unconfined")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
