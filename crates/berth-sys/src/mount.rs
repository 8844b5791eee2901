//! Mounts the engine needs for container root filesystems: overlay mounts and unmounts,
//! and a look at `/proc/self/mountinfo`.

use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Mounts an overlay at `target`: `lowers` top layer first, `upper` and `work` on the same
/// filesystem. Paths holding `:` or `,` are refused (overlay's option syntax cannot carry
/// them).
pub fn mount_overlay(
    target: &Path,
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
) -> io::Result<()> {
    if lowers.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "overlay needs at least one lower directory",
        ));
    }
    let mut all: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
    all.push(upper);
    all.push(work);
    for p in &all {
        let s = p.to_string_lossy();
        if s.contains(':') || s.contains(',') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("overlay path {s:?} holds ':' or ','"),
            ));
        }
    }
    let lower = lowers
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let data = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(io::Error::from)
}

/// Mounts at `target` a read-only overlay of `lowers` alone (top layer first, at least
/// two: overlayfs refuses one without an upper directory), `nodev`: another image's
/// filesystem as it reads, whiteouts applied. Paths holding `:` or `,` are refused.
pub fn mount_overlay_ro(target: &Path, lowers: &[PathBuf]) -> io::Result<()> {
    if lowers.len() < 2 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a read-only overlay needs at least two lower directories",
        ));
    }
    let mut lower = String::new();
    for (i, p) in lowers.iter().enumerate() {
        let s = p.to_string_lossy();
        if s.contains(':') || s.contains(',') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("overlay path {s:?} holds ':' or ','"),
            ));
        }
        if i > 0 {
            lower.push(':');
        }
        lower.push_str(&s);
    }
    let data = format!("lowerdir={lower}");
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::MS_RDONLY | MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .map_err(io::Error::from)
}

/// Mounts a tmpfs of `size` bytes at `target` (an existing directory), `nosuid,nodev,noexec`
/// and mode 1777, as Docker's `/dev/shm`.
pub fn mount_shm(target: &Path, size: u64) -> io::Result<()> {
    let data = format!("mode=1777,size={size}");
    mount(
        Some("shm"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(data.as_str()),
    )
    .map_err(io::Error::from)
}

/// Unmounts `target` (lazily with `detach`). Not mounted (`EINVAL`) or missing is success.
pub fn unmount(target: &Path, detach: bool) -> io::Result<()> {
    let flags = if detach {
        MntFlags::MNT_DETACH
    } else {
        MntFlags::empty()
    };
    match umount2(target, flags) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Whether something is mounted exactly at `target` (per `/proc/self/mountinfo`).
pub fn is_mountpoint(target: &Path) -> bool {
    mount_points()
        .map(|m| m.iter().any(|p| p == target))
        .unwrap_or(false)
}

/// Every mount point of this process's mount namespace, octal escapes decoded.
pub fn mount_points() -> io::Result<Vec<PathBuf>> {
    Ok(crate::mountinfo::read_self()?
        .into_iter()
        .map(|e| e.mount_point)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_overlay_input() {
        let p = Path::new("/nonexistent");
        assert!(mount_overlay(p, &[], p, p).is_err());
        assert!(mount_overlay(p, &[PathBuf::from("/a:b")], p, p).is_err());
        assert!(mount_overlay_ro(p, &[PathBuf::from("/a")]).is_err());
        assert!(mount_overlay_ro(p, &[PathBuf::from("/a"), PathBuf::from("/b,c")]).is_err());
    }
}
