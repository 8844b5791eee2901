//! A CRI container's AppArmor profile as the engine's `SecurityOpt` (`apparmor=`, the
//! same as `docker run --security-opt apparmor=`), read as containerd reads it: the
//! container's `apparmor` `SecurityProfile`, else its deprecated `apparmor_profile`
//! string (`runtime/default`, `unconfined`, `localhost/<name>`), else the pod's
//! `apparmor` (the kubelet copies the pod's into each container's; containerd reads the
//! container's only).
//!
//! - none, `RuntimeDefault`: the engine's default (`berth-default` where AppArmor is,
//!   unconfined for a privileged container), so no `SecurityOpt`;
//! - `Unconfined`: `apparmor=unconfined`;
//! - `Localhost`: `apparmor=<name>` (a `localhost/` prefix trimmed), refused at create
//!   when the kernel does not list the profile as loaded (critest checks it).
//!
//! On a host without AppArmor only none and `Unconfined` are accepted: containerd answers
//! any other "apparmor is not supported" rather than run the container unconfined.

use tonic::Status;

use crate::proto::security_profile::ProfileType;
use crate::proto::{LinuxContainerSecurityContext, LinuxSandboxSecurityContext};
use crate::seccomp::{check_ref, effective, LOCALHOST_PREFIX};

/// What a container's AppArmor is to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Choice {
    /// The engine's default: no `SecurityOpt`.
    RuntimeDefault,
    /// `apparmor=unconfined`.
    Unconfined,
    /// The loaded profile of this name.
    Localhost(String),
}

/// Whether the host's kernel has AppArmor (a read of sysfs, off the async workers).
pub(crate) async fn enabled() -> bool {
    tokio::task::spawn_blocking(berth_sys::host::apparmor_enabled)
        .await
        .unwrap_or(false)
}

/// The choice for a container with security context `container` in a pod with `pod`,
/// on a host whose kernel has AppArmor or not (`enabled`).
#[allow(deprecated)] // apparmor_profile: still sent by kubelets, read as containerd does
pub(crate) fn choose(
    pod: Option<&LinuxSandboxSecurityContext>,
    container: Option<&LinuxContainerSecurityContext>,
    enabled: bool,
) -> Result<Choice, Status> {
    let profile = match container {
        Some(c) => effective("apparmor", c.apparmor.as_ref(), &c.apparmor_profile)?,
        None => None,
    }
    .or_else(|| pod.and_then(|p| p.apparmor.clone()));
    let Some(p) = profile else {
        return Ok(Choice::RuntimeDefault);
    };
    let kind = ProfileType::try_from(p.profile_type).map_err(|_| {
        Status::invalid_argument(format!("unknown apparmor profile type {}", p.profile_type))
    })?;
    if !enabled {
        return match kind {
            ProfileType::Unconfined => Ok(Choice::Unconfined),
            _ => Err(Status::failed_precondition(
                "failed to generate apparmor spec opts: apparmor is not supported",
            )),
        };
    }
    check_ref("apparmor", &p)?;
    match kind {
        ProfileType::RuntimeDefault => Ok(Choice::RuntimeDefault),
        ProfileType::Unconfined => Ok(Choice::Unconfined),
        ProfileType::Localhost => {
            let r = &p.localhost_ref;
            let name = r.strip_prefix(LOCALHOST_PREFIX).unwrap_or(r);
            if name.is_empty() {
                return Err(Status::invalid_argument(
                    "apparmor localhost profile must name a profile",
                ));
            }
            Ok(Choice::Localhost(name.to_string()))
        }
    }
}

/// The engine's `SecurityOpt` entry for `choice` (none for the default), after checking
/// that a localhost profile is loaded.
pub(crate) async fn security_opt(choice: Choice) -> Result<Option<String>, Status> {
    match choice {
        Choice::RuntimeDefault => Ok(None),
        Choice::Unconfined => Ok(Some("apparmor=unconfined".into())),
        Choice::Localhost(name) => {
            let probe = name.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                berth_sys::host::apparmor_profile_loaded(&probe)
            })
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
            if !loaded {
                return Err(Status::failed_precondition(format!(
                    "failed to generate apparmor spec opts: apparmor profile not found {name}"
                )));
            }
            Ok(Some(format!("apparmor={name}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::SecurityProfile;

    fn profile(t: ProfileType, r: &str) -> Option<SecurityProfile> {
        Some(SecurityProfile {
            profile_type: t as i32,
            localhost_ref: r.into(),
        })
    }

    #[allow(deprecated)]
    fn ctr(p: Option<SecurityProfile>, legacy: &str) -> LinuxContainerSecurityContext {
        LinuxContainerSecurityContext {
            apparmor: p,
            apparmor_profile: legacy.into(),
            ..Default::default()
        }
    }

    fn pod(p: Option<SecurityProfile>) -> LinuxSandboxSecurityContext {
        LinuxSandboxSecurityContext {
            apparmor: p,
            ..Default::default()
        }
    }

    #[test]
    fn profiles_and_deprecated_strings_where_apparmor_is() {
        let pick = |p: &LinuxSandboxSecurityContext, c: &LinuxContainerSecurityContext| {
            choose(Some(p), Some(c), true)
        };
        let none = pod(None);
        assert_eq!(choose(None, None, true).unwrap(), Choice::RuntimeDefault);
        for (legacy, want) in [
            ("", Choice::RuntimeDefault),
            ("runtime/default", Choice::RuntimeDefault),
            ("docker/default", Choice::RuntimeDefault),
            ("unconfined", Choice::Unconfined),
            (
                "localhost/my-profile",
                Choice::Localhost("my-profile".into()),
            ),
        ] {
            assert_eq!(pick(&none, &ctr(None, legacy)).unwrap(), want, "{legacy}");
        }
        // The profile wins over the string (critest's "prefer new apparmor field"),
        // and its ref may carry the localhost/ prefix (critest's does).
        let local = profile(ProfileType::Localhost, "localhost/deny-write");
        assert_eq!(
            pick(&none, &ctr(local, "localhost/non-existent")).unwrap(),
            Choice::Localhost("deny-write".into())
        );
        // The pod's when the container says nothing; the container's over the pod's.
        let unconfined = pod(profile(ProfileType::Unconfined, ""));
        assert_eq!(
            pick(&unconfined, &ctr(None, "")).unwrap(),
            Choice::Unconfined
        );
        assert_eq!(
            pick(&unconfined, &ctr(None, "runtime/default")).unwrap(),
            Choice::RuntimeDefault
        );
        // containerd's refusals.
        for (c, why) in [
            (
                ctr(None, "my-profile"),
                "invalid apparmor profile \"my-profile\"",
            ),
            (
                ctr(profile(ProfileType::RuntimeDefault, "x"), ""),
                "apparmor config invalid LocalhostRef must only be set if ProfileType is Localhost",
            ),
            (
                ctr(profile(ProfileType::Localhost, "localhost/"), ""),
                "apparmor localhost profile must name a profile",
            ),
            (
                ctr(
                    Some(SecurityProfile {
                        profile_type: 7,
                        localhost_ref: String::new(),
                    }),
                    "",
                ),
                "unknown apparmor profile type 7",
            ),
        ] {
            let e = pick(&none, &c).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
            assert_eq!(e.message(), why);
        }
    }

    #[test]
    fn without_apparmor_only_unconfined_or_nothing() {
        assert_eq!(choose(None, None, false).unwrap(), Choice::RuntimeDefault);
        assert_eq!(
            choose(None, Some(&ctr(None, "")), false).unwrap(),
            Choice::RuntimeDefault
        );
        assert_eq!(
            choose(None, Some(&ctr(None, "unconfined")), false).unwrap(),
            Choice::Unconfined
        );
        for c in [
            ctr(None, "runtime/default"),
            ctr(profile(ProfileType::RuntimeDefault, ""), ""),
            ctr(None, "localhost/my-profile"),
            ctr(profile(ProfileType::Localhost, "my-profile"), ""),
        ] {
            let e = choose(None, Some(&c), false).unwrap_err();
            assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{c:?}");
            assert_eq!(
                e.message(),
                "failed to generate apparmor spec opts: apparmor is not supported"
            );
        }
        let from_pod = pod(profile(ProfileType::Localhost, "p"));
        assert!(choose(Some(&from_pod), Some(&ctr(None, "")), false).is_err());
    }

    #[tokio::test]
    async fn the_security_opt_of_each_choice() {
        assert_eq!(security_opt(Choice::RuntimeDefault).await.unwrap(), None);
        assert_eq!(
            security_opt(Choice::Unconfined).await.unwrap().as_deref(),
            Some("apparmor=unconfined")
        );
        // No kernel lists this one (and these hosts' kernel has no AppArmor at all).
        let e = security_opt(Choice::Localhost("berth-test-never-loaded".into()))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert_eq!(
            e.message(),
            "failed to generate apparmor spec opts: apparmor profile not found berth-test-never-loaded"
        );
    }
}
