//! The host side of a CRI mount's propagation, checked as containerd checks it before a
//! create: a bidirectional mount's source must be on a shared mount, a host-to-container
//! one's on a shared or slave mount, or nothing would propagate; the create is refused
//! with containerd's words instead. The mount is found in `/proc/self/mountinfo` (the
//! daemon's mount namespace, which the shims share).

use std::path::{Path, PathBuf};

use tokio::io::AsyncReadExt;
use tonic::Status;

use crate::proto::{Mount, MountPropagation};

/// The most of `/proc/self/mountinfo` read (a host with thousands of mounts is ~1 MiB).
const MOUNTINFO_MAX: u64 = 16 << 20;

/// One mount's point and its propagation, from a mountinfo line.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    point: PathBuf,
    shared: bool,
    slave: bool,
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).and_then(|d| {
            let s = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(s, 8).ok()
        });
        match (b[i], octal) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse(line: &str) -> Option<Entry> {
    let fields: Vec<&str> = line.split(' ').collect();
    let point = fields.get(4)?;
    let optional = fields.get(6..)?.iter().take_while(|f| **f != "-");
    let (mut shared, mut slave) = (false, false);
    for f in optional {
        shared |= f.starts_with("shared:");
        slave |= f.starts_with("master:");
    }
    Some(Entry {
        point: PathBuf::from(unescape(point)),
        shared,
        slave,
    })
}

/// The mount `path` (absolute, symlinks resolved) is on: the deepest mount point above
/// it, the last mounted where several share it.
fn mount_of(mountinfo: &str, path: &Path) -> Option<Entry> {
    mountinfo
        .lines()
        .filter_map(parse)
        .filter(|e| path.starts_with(&e.point))
        .fold(None, |best: Option<Entry>, e| match best {
            Some(b) if b.point.components().count() > e.point.components().count() => Some(b),
            _ => Some(e),
        })
}

/// What `propagation` needs of the source's mount, and containerd's refusal otherwise.
fn check(entry: &Entry, path: &Path, propagation: MountPropagation) -> Result<(), Status> {
    let (ok, what) = match propagation {
        MountPropagation::PropagationBidirectional => (entry.shared, "a shared mount"),
        MountPropagation::PropagationHostToContainer => {
            (entry.shared || entry.slave, "a shared or slave mount")
        }
        MountPropagation::PropagationPrivate => return Ok(()),
    };
    if ok {
        return Ok(());
    }
    Err(Status::failed_precondition(format!(
        "path {:?} is mounted on {:?} but it is not {what}",
        path.display().to_string(),
        entry.point.display().to_string()
    )))
}

/// The deepest existing directory at or above `path`, symlinks resolved (the engine
/// makes a missing bind source; it will be on that directory's mount).
async fn existing(path: &Path) -> Result<PathBuf, Status> {
    let mut p = path;
    loop {
        match tokio::fs::canonicalize(p).await {
            Ok(c) => return Ok(c),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                p = p.parent().ok_or_else(|| {
                    Status::invalid_argument(format!("mount host_path {path:?} has no parent"))
                })?;
            }
            Err(e) => {
                return Err(Status::invalid_argument(format!(
                    "mount host_path {path:?}: {e}"
                )))
            }
        }
    }
}

/// Checks every mount that asks for propagation from the host.
pub(crate) async fn check_mounts(mounts: &[Mount]) -> Result<(), Status> {
    let wanted: Vec<(&Mount, MountPropagation)> = mounts
        .iter()
        .filter_map(|m| {
            let p = MountPropagation::try_from(m.propagation).ok()?;
            (p != MountPropagation::PropagationPrivate).then_some((m, p))
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let file = tokio::fs::File::open("/proc/self/mountinfo")
        .await
        .map_err(|e| Status::internal(format!("cannot read /proc/self/mountinfo: {e}")))?;
    let mut info = String::new();
    file.take(MOUNTINFO_MAX)
        .read_to_string(&mut info)
        .await
        .map_err(|e| Status::internal(format!("cannot read /proc/self/mountinfo: {e}")))?;
    for (m, propagation) in wanted {
        let path = Path::new(&m.host_path);
        let real = existing(path).await?;
        let entry = mount_of(&info, &real)
            .ok_or_else(|| Status::internal(format!("no mount holds {}", real.display())))?;
        check(&entry, path, propagation)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:40 / /srv rw shared:5 master:2 - tmpfs tmpfs rw
31 30 0:41 / /srv/private rw - tmpfs tmpfs rw
32 30 0:42 / /srv/slave rw master:7 - tmpfs tmpfs rw
33 30 0:43 / /srv/with\\040space rw - tmpfs tmpfs rw
34 33 0:44 / /srv/with\\040space rw shared:9 - tmpfs tmpfs rw
";

    fn at(p: &str) -> Entry {
        mount_of(INFO, Path::new(p)).unwrap()
    }

    #[test]
    fn finds_the_deepest_and_last_mount() {
        assert_eq!(at("/home/x").point, Path::new("/"));
        assert_eq!(
            at("/srv/privatex").point,
            Path::new("/srv"),
            "by components"
        );
        let e = at("/srv/private/a/b");
        assert_eq!(
            (e.point.to_str(), e.shared, e.slave),
            (Some("/srv/private"), false, false)
        );
        let e = at("/srv/with space/d");
        assert_eq!(
            (e.point.to_str(), e.shared),
            (Some("/srv/with space"), true),
            "the last one"
        );
        assert!(at("/srv/slave").slave);
    }

    #[test]
    fn each_propagation_needs_its_kind_of_mount() {
        let both = MountPropagation::PropagationBidirectional;
        let down = MountPropagation::PropagationHostToContainer;
        let p = Path::new("/x");
        assert!(check(&at("/srv/a"), p, both).is_ok());
        assert!(check(&at("/srv/slave/a"), p, down).is_ok());
        let e = check(&at("/srv/slave/a"), p, both).unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert_eq!(
            e.message(),
            r#"path "/x" is mounted on "/srv/slave" but it is not a shared mount"#
        );
        let e = check(&at("/srv/private"), p, down).unwrap_err();
        assert!(
            e.message().ends_with("not a shared or slave mount"),
            "{e:?}"
        );
        assert!(check(&at("/srv/private"), p, MountPropagation::PropagationPrivate).is_ok());
    }

    #[test]
    fn odd_lines_are_skipped() {
        assert_eq!(mount_of("garbage\n\n1 2 3\n", Path::new("/")), None);
        assert_eq!(unescape(r"a\040b\07"), r"a b\07");
    }
}
