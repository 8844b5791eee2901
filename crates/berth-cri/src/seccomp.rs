//! A CRI container's seccomp profile as the engine's `SecurityOpt`: the container's
//! `SecurityProfile` wins over its pod's; `RuntimeDefault` is the engine's default
//! profile, `Unconfined` and no profile at all (containerd's reading, which critest
//! checks) run without a filter, `Localhost` is a profile file on the node (an absolute
//! path, read as Docker's JSON, at most [`PROFILE_MAX`] bytes). A privileged container
//! gets no filter whatever is asked, as with containerd and dockerd.

use std::path::{Path, PathBuf};

use tokio::io::AsyncReadExt;
use tonic::Status;

use crate::proto::security_profile::ProfileType;
use crate::proto::SecurityProfile;

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
    match ProfileType::try_from(p.profile_type) {
        Ok(ProfileType::RuntimeDefault) => Ok(Choice::RuntimeDefault),
        Ok(ProfileType::Unconfined) => Ok(Choice::Unconfined),
        Ok(ProfileType::Localhost) => {
            let path = Path::new(&p.localhost_ref);
            if !path.is_absolute() {
                return Err(Status::invalid_argument(format!(
                    "seccomp localhost profile {:?} must be an absolute path",
                    p.localhost_ref
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
