//! `HostConfig.SecurityOpt`, read as moby's `parseSecurityOpt` reads it, against what this
//! host can apply. Nothing asked for is silently dropped: where dockerd quietly ignores an
//! AppArmor profile or an SELinux label on a host without them, berthd refuses the create
//! with the reason.
//!
//! - `seccomp=unconfined` | `builtin` | a profile's JSON text (the docker CLI sends a
//!   file's content): checked here, resolved per start by the spec builder.
//! - `apparmor=<profile>`: set as the process's profile where the kernel has AppArmor;
//!   elsewhere only `unconfined` (which is what every container gets there) is accepted.
//!   Without it, unprivileged containers get `berth-default` where it can be loaded.
//! - `label=disable` is accepted everywhere (nothing to label); any other `label=` is
//!   refused, as berthd does not apply SELinux labels.

use berth_runtime::spec::{check_seccomp_profile, KernelVersion};

/// What the host offers, probed once per request (cheap reads of /proc and /sys).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostSecurity {
    pub seccomp: bool,
    pub apparmor: bool,
    /// AppArmor, `apparmor_parser` to load `berth-default` with, and not in a container
    /// (as containerd's `apparmor.HostSupports`).
    pub apparmor_default: bool,
    pub selinux: bool,
    pub kernel: Option<KernelVersion>,
}

impl HostSecurity {
    pub fn probe() -> Self {
        let apparmor = berth_sys::host::apparmor_enabled();
        Self {
            seccomp: berth_sys::host::seccomp_available(),
            apparmor,
            apparmor_default: apparmor
                && super::apparmor::parser().is_some()
                && std::env::var_os("container").is_none_or(|v| v.is_empty()),
            selinux: berth_sys::host::selinux_enabled(),
            kernel: host_kernel(),
        }
    }
}

/// The running kernel's version, for seccomp profiles' `minKernel`.
pub(crate) fn host_kernel() -> Option<KernelVersion> {
    KernelVersion::from_release(&berth_sys::host::uname().kernel_version)
}

/// The options, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecurityOpts {
    pub no_new_privileges: bool,
    /// `false`: `seccomp=unconfined`.
    pub seccomp: bool,
    /// A custom profile (Docker's JSON), in place of the default.
    pub seccomp_profile: Option<String>,
    /// The AppArmor profile for the process; `None` sets none.
    pub apparmor_profile: Option<String>,
}

/// Why a `SecurityOpt` is refused (a 400): dockerd's texts where it has them.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SecurityOptError {
    /// Neither a known word nor `key=value`.
    #[error("invalid --security-opt 1: {0:?}")]
    Malformed(String),
    /// An unknown key, or a value its key does not take.
    #[error("invalid --security-opt 2: {0:?}")]
    Invalid(String),
    #[error("SELinux labels are not supported by berthd: cannot apply label {0:?} (only label=disable is accepted)")]
    SelinuxLabel(String),
    #[error("SELinux is not enabled on this host: cannot apply label {0:?} (only label=disable is accepted)")]
    NoSelinux(String),
    #[error("seccomp is not enabled in your kernel, cannot run a custom seccomp profile")]
    NoSeccomp,
    #[error(transparent)]
    SeccompProfile(#[from] berth_runtime::RuntimeError),
    #[error("invalid AppArmor profile name {0:?}")]
    AppArmorName(String),
    #[error("AppArmor is not enabled on this host: cannot apply the AppArmor profile {0:?} (only apparmor=unconfined is accepted)")]
    NoAppArmor(String),
}

/// Parses `opts` for a container (`privileged` or not) on `host`.
pub(crate) fn parse(
    opts: &[String],
    privileged: bool,
    host: &HostSecurity,
) -> Result<SecurityOpts, SecurityOptError> {
    let mut o = SecurityOpts {
        no_new_privileges: false,
        seccomp: true,
        seccomp_profile: None,
        apparmor_profile: None,
    };
    let mut apparmor: Option<&str> = None;
    for opt in opts {
        if opt == "no-new-privileges" {
            o.no_new_privileges = true;
            continue;
        }
        if opt == "disable" {
            continue; // label=disable in its old spelling
        }
        let Some((key, value)) = opt.split_once('=').or_else(|| opt.split_once(':')) else {
            return Err(SecurityOptError::Malformed(opt.clone()));
        };
        match key {
            "label" if value == "disable" => {}
            "label" if host.selinux => {
                return Err(SecurityOptError::SelinuxLabel(value.to_string()))
            }
            "label" => return Err(SecurityOptError::NoSelinux(value.to_string())),
            "apparmor" => apparmor = Some(value).filter(|v| !v.is_empty()),
            "no-new-privileges" => {
                o.no_new_privileges =
                    parse_go_bool(value).ok_or_else(|| SecurityOptError::Invalid(opt.clone()))?;
            }
            "seccomp" => match value {
                "unconfined" => (o.seccomp, o.seccomp_profile) = (false, None),
                "builtin" | "" => (o.seccomp, o.seccomp_profile) = (true, None),
                profile => {
                    if !host.seccomp {
                        return Err(SecurityOptError::NoSeccomp);
                    }
                    check_seccomp_profile(profile, host.kernel)?;
                    (o.seccomp, o.seccomp_profile) = (true, Some(profile.to_string()));
                }
            },
            _ => return Err(SecurityOptError::Invalid(opt.clone())),
        }
    }
    o.apparmor_profile = match apparmor {
        // The runtime writes "exec <name>" to the kernel's attr file: one plain line.
        Some(p) if p.chars().any(char::is_control) || p.len() > 4096 => {
            return Err(SecurityOptError::AppArmorName(p.to_string()))
        }
        Some(p) if host.apparmor => Some(p.to_string()),
        // What every container gets on a host without AppArmor.
        Some("unconfined") => None,
        Some(p) => return Err(SecurityOptError::NoAppArmor(p.to_string())),
        None if host.apparmor && privileged => Some("unconfined".into()),
        // berthd's own, loaded at start (apparmor.rs).
        None if host.apparmor_default => Some(super::apparmor::DEFAULT_PROFILE.into()),
        None => None,
    };
    Ok(o)
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARE: HostSecurity = HostSecurity {
        seccomp: true,
        apparmor: false,
        apparmor_default: false,
        selinux: false,
        kernel: Some(KernelVersion {
            kernel: 6,
            major: 1,
        }),
    };
    const APPARMOR: HostSecurity = HostSecurity {
        apparmor: true,
        ..BARE
    };
    const SELINUX: HostSecurity = HostSecurity {
        selinux: true,
        ..BARE
    };

    fn p(opts: &[&str], host: &HostSecurity) -> Result<SecurityOpts, SecurityOptError> {
        let opts: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
        parse(&opts, false, host)
    }

    fn plain() -> SecurityOpts {
        p(&[], &BARE).unwrap()
    }

    #[test]
    fn moby_syntax() {
        assert_eq!(
            plain(),
            SecurityOpts {
                no_new_privileges: false,
                seccomp: true,
                seccomp_profile: None,
                apparmor_profile: None
            }
        );
        let o = p(
            &["no-new-privileges", "seccomp=unconfined", "label=disable"],
            &BARE,
        )
        .unwrap();
        assert!(o.no_new_privileges && !o.seccomp);
        let o = p(&["no-new-privileges:false", "apparmor=unconfined"], &BARE).unwrap();
        assert_eq!(o, plain());
        for (opt, e) in [
            ("bogus", "invalid --security-opt 1: \"bogus\""),
            ("foo=bar", "invalid --security-opt 2: \"foo=bar\""),
            (
                "no-new-privileges=maybe",
                "invalid --security-opt 2: \"no-new-privileges=maybe\"",
            ),
        ] {
            assert_eq!(p(&[opt], &BARE).unwrap_err().to_string(), e);
        }
    }

    #[test]
    fn custom_seccomp_profile_checked_and_kept() {
        let profile = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#;
        let o = p(&[&format!("seccomp={profile}")], &BARE).unwrap();
        assert!(o.seccomp);
        assert_eq!(o.seccomp_profile.as_deref(), Some(profile));
        // The last one wins, as in moby.
        let o = p(
            &[&format!("seccomp={profile}"), "seccomp=unconfined"],
            &BARE,
        )
        .unwrap();
        assert_eq!((o.seccomp, o.seccomp_profile), (false, None));
        let e = p(&["seccomp=/etc/profile.json"], &BARE)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("Decoding seccomp profile failed: "), "{e}");
        let no_seccomp = HostSecurity {
            seccomp: false,
            ..BARE
        };
        assert_eq!(
            p(&[&format!("seccomp={profile}")], &no_seccomp)
                .unwrap_err()
                .to_string(),
            "seccomp is not enabled in your kernel, cannot run a custom seccomp profile"
        );
    }

    #[test]
    fn apparmor_applied_where_enabled_refused_elsewhere() {
        let e = p(&["apparmor=docker-default"], &BARE)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "AppArmor is not enabled on this host: cannot apply the AppArmor profile \
             \"docker-default\" (only apparmor=unconfined is accepted)"
        );
        assert!(p(&["apparmor:my-profile"], &BARE).is_err());
        assert_eq!(p(&["apparmor=unconfined"], &BARE).unwrap(), plain());
        let e = p(&["apparmor=a\nchangeprofile b"], &APPARMOR)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "invalid AppArmor profile name \"a\\nchangeprofile b\"");
        let o = p(&["apparmor=my-profile"], &APPARMOR).unwrap();
        assert_eq!(o.apparmor_profile.as_deref(), Some("my-profile"));
        let o = p(&["apparmor=unconfined"], &APPARMOR).unwrap();
        assert_eq!(o.apparmor_profile.as_deref(), Some("unconfined"));
        let o = parse(&[], true, &APPARMOR).unwrap();
        assert_eq!(o.apparmor_profile.as_deref(), Some("unconfined"));
        assert_eq!(parse(&[], true, &BARE).unwrap().apparmor_profile, None);
        // The default profile where it can be loaded; not for privileged containers.
        assert_eq!(p(&[], &APPARMOR).unwrap().apparmor_profile, None);
        let loadable = HostSecurity {
            apparmor_default: true,
            ..APPARMOR
        };
        assert_eq!(
            p(&[], &loadable).unwrap().apparmor_profile.as_deref(),
            Some("berth-default")
        );
        let o = parse(&[], true, &loadable).unwrap();
        assert_eq!(o.apparmor_profile.as_deref(), Some("unconfined"));
        let o = p(&["apparmor=other"], &loadable).unwrap();
        assert_eq!(o.apparmor_profile.as_deref(), Some("other"));
    }

    #[test]
    fn selinux_labels_refused_but_disable() {
        for host in [BARE, SELINUX] {
            for ok in ["label=disable", "label:disable", "disable"] {
                assert_eq!(p(&[ok], &host).unwrap(), plain(), "{ok}");
            }
        }
        assert_eq!(
            p(&["label=type:svirt_apache_t"], &BARE)
                .unwrap_err()
                .to_string(),
            "SELinux is not enabled on this host: cannot apply label \"type:svirt_apache_t\" \
             (only label=disable is accepted)"
        );
        assert!(p(&["label=level:s0:c100,c200"], &SELINUX)
            .unwrap_err()
            .to_string()
            .starts_with("SELinux labels are not supported by berthd"));
    }
}
