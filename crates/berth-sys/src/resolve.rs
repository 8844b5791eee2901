//! Path resolution confined to a directory: `openat2(2)` with `RESOLVE_IN_ROOT`, so that
//! `..`, absolute symlinks and relative symlinks planted inside a container's root all
//! resolve as if the root were `/` and never reach the host (the shapes of CVE-2018-15664
//! and CVE-2019-14271). Magic links (`/proc/self/fd/N`) are refused while resolving.
//!
//! Owns: the syscall wrapper and the helpers that turn a container path into an fd or a
//! host path inside the root. Does not own: what callers do with the result (a path
//! returned by [`resolve_in_root`] is only as good as the moment it was resolved; callers
//! that race with a running container use the fd from [`open_in_root`]).

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// The kernel's `struct open_how` (libc's is `non_exhaustive`, so it cannot be built
/// without `unsafe` zeroing).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Opens `path` (absolute or relative, read as if `root` were `/`) below the directory
/// `root`, with open(2) `flags` (`O_CLOEXEC` is always added) and `mode` for `O_CREAT`.
/// The final component is followed when it is a symlink unless `flags` has
/// `O_NOFOLLOW`; either way the result stays inside `root`.
pub fn open_in_root(root: &Path, path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let dir = File::open(root)?;
    openat_in_root(&dir, path, flags, mode)
}

/// As [`open_in_root`], with the root already open (`O_PATH` or a read-only directory).
pub fn openat_in_root(root: &File, path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let rel = relative(path);
    let c = CString::new(rel.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    openat2(root.as_fd(), &c, flags, mode, libc::RESOLVE_IN_ROOT)
}

/// Opens the relative `path` beneath the directory `root` with `flags`: symlinks are
/// followed while they stay beneath it, and one that leads out (absolute, `..` above
/// the root) fails with `EXDEV`, as `..` itself does. Unlike [`openat_in_root`], which
/// reads such a link inside the root, this refuses it.
pub fn openat_beneath(root: &File, path: &Path, flags: i32) -> io::Result<OwnedFd> {
    let rel = path.as_os_str().as_bytes();
    let rel = if rel.is_empty() { b"." as &[u8] } else { rel };
    let c = CString::new(rel)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    openat2(root.as_fd(), &c, flags, 0, libc::RESOLVE_BENEATH)
}

/// `openat2(2)` of `path` below `dir` with the `resolve` flags (magic links always
/// refused, `O_CLOEXEC` always added), retried while a rename races the lookup.
pub(crate) fn openat2(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
            u64::from(mode)
        } else {
            0
        },
        resolve: resolve | libc::RESOLVE_NO_MAGICLINKS,
    };
    loop {
        // SAFETY: `path` is a valid NUL-terminated string and `how` a valid `open_how`
        // that both outlive the call; the size passed is that of `how`. The kernel
        // returns a new file descriptor we own, or -1.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: openat2 returned a fresh descriptor that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        let err = io::Error::last_os_error();
        // EAGAIN: a rename raced the lookup; the kernel asks us to retry.
        if err.raw_os_error() != Some(libc::EAGAIN) {
            return Err(err);
        }
    }
}

/// The host path of what `path` names inside `root` (symlinks followed inside the root,
/// the last one too). The object must exist.
pub fn resolve_in_root(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let fd = open_in_root(root, path, libc::O_PATH, 0)?;
    fd_path(&fd)
}

/// The host path of the directory holding `path`'s last component (resolved inside
/// `root`), and that component, which is not followed. `/` has no parent: its own host
/// path and an empty name come back.
pub fn resolve_parent_in_root(root: &Path, path: &Path) -> io::Result<(PathBuf, OsString)> {
    let rel = relative(path);
    let mut parts: Vec<&OsStr> = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => parts.push(n),
            Component::ParentDir => parts.push(OsStr::new("..")),
            _ => {}
        }
    }
    // A trailing `..` must be resolved, not kept as a name.
    match parts.last() {
        Some(last) if *last != OsStr::new("..") => {
            let name = last.to_os_string();
            let parent: PathBuf = parts[..parts.len() - 1].iter().collect();
            Ok((resolve_in_root(root, &parent)?, name))
        }
        _ => Ok((resolve_in_root(root, &rel)?, OsString::new())),
    }
}

/// The directory holding `path`'s last component, opened (`O_PATH`) by resolving inside
/// the open `root`, and that component, not followed (empty for `/` or a trailing `..`,
/// where the fd is the resolved directory itself). Works for roots in other mount
/// namespaces (`/proc/<pid>/root`): use `/proc/self/fd/<fd>/<name>` to reach the object.
pub fn open_parent_in_root(root: &File, path: &Path) -> io::Result<(OwnedFd, OsString)> {
    let rel = relative(path);
    let parts: Vec<&OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            Component::ParentDir => Some(OsStr::new("..")),
            _ => None,
        })
        .collect();
    let flags = libc::O_PATH | libc::O_DIRECTORY;
    match parts.last() {
        Some(last) if *last != OsStr::new("..") => {
            let parent: PathBuf = parts[..parts.len() - 1].iter().collect();
            Ok((
                openat_in_root(root, &parent, flags, 0)?,
                last.to_os_string(),
            ))
        }
        _ => Ok((openat_in_root(root, &rel, flags, 0)?, OsString::new())),
    }
}

/// Where an open descriptor points, per `/proc/self/fd`.
pub fn fd_path(fd: &OwnedFd) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// `path` without its root (`/a/b` → `a/b`, `/` → `.`).
fn relative(path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn symlinks_and_dotdot_stay_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "inside").unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../../../../etc", root.join("rel")).unwrap();
        for p in [
            "/abs/passwd",
            "rel/passwd",
            "/../../etc/passwd",
            "/etc/passwd",
        ] {
            let got = resolve_in_root(&root, Path::new(p)).unwrap();
            assert_eq!(got, root.join("etc/passwd"), "{p}");
        }
        assert_eq!(resolve_in_root(&root, Path::new("/")).unwrap(), root);
        assert!(resolve_in_root(&root, Path::new("/missing")).is_err());
    }

    /// Links that stay beneath are followed; those that leave, and `..`, are refused.
    #[test]
    fn beneath_refuses_what_leads_out() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("usr/bin/sh"), "inside").unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../../../../etc", root.join("rel")).unwrap();
        let dir = File::open(&root).unwrap();
        let fd = openat_beneath(&dir, Path::new("bin/sh"), libc::O_RDONLY).unwrap();
        assert_eq!(fd_path(&fd).unwrap(), root.join("usr/bin/sh"));
        let fd = openat_beneath(&dir, Path::new(""), libc::O_PATH).unwrap();
        assert_eq!(fd_path(&fd).unwrap(), root);
        for p in ["abs", "rel", "../root/usr", "/etc"] {
            let e = openat_beneath(&dir, Path::new(p), libc::O_PATH).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EXDEV), "{p}");
        }
        let e = openat_beneath(&dir, Path::new("missing"), libc::O_PATH).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn parent_resolution_keeps_the_last_component() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        std::fs::create_dir(root.join("d")).unwrap();
        symlink("/d", root.join("link")).unwrap();
        let (dir, name) = resolve_parent_in_root(&root, Path::new("/link/new")).unwrap();
        assert_eq!((dir, name), (root.join("d"), OsString::from("new")));
        let (dir, name) = resolve_parent_in_root(&root, Path::new("/link")).unwrap();
        assert_eq!((dir, name), (root.clone(), OsString::from("link")));
        let (dir, name) = resolve_parent_in_root(&root, Path::new("/d/..")).unwrap();
        assert_eq!((dir, name), (root, OsString::new()));
    }
}
