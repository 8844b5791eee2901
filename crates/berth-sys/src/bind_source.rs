//! Bind-mount sources held open from the check to the mount. A source named by path is
//! only as good as the moment it was resolved: whoever can write a directory on the way
//! (an operator owning a directory in the authorization policy's allow-list) can swap a
//! component for a symlink to `/etc` or `/` between a check and a mount by path. So the
//! source is opened once (`O_PATH`), confined with `openat2(RESOLVE_BENEATH)` where a
//! policy applies, and mounted from the descriptor (`/proc/self/fd/N`: the kernel follows
//! the opened object, not the path) onto a staging point that only root can reach; the
//! runtime then binds that staging point.
//!
//! Owns: opening a source (confined or not), making missing directories of a confined
//! source without following symlinks, the bind from a descriptor. Does not own: which
//! sources are confined (the engine, from the authorization policy), nor staging
//! directories' layout and removal.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{self, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;

use crate::dirfd;

/// `path` below `root`, both absolute and compared component by component (`/srv/data`
/// holds `/srv/data/x`, not `/srv/database`); `None` when it is not at or under `root`
/// or holds `..`.
pub fn relative_to(path: &Path, root: &Path) -> Option<PathBuf> {
    if !path.is_absolute()
        || !root.is_absolute()
        || path.components().any(|c| c == Component::ParentDir)
    {
        return None;
    }
    path.strip_prefix(root).ok().map(Path::to_path_buf)
}

/// Opens the allowed root itself (an absolute path with no symlink in it: the policy
/// resolved it when it loaded), `O_PATH | O_DIRECTORY`.
fn open_root(root: &Path) -> io::Result<File> {
    let slash = fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(File::from)
    .map_err(io::Error::from)?;
    let rel = root.strip_prefix("/").unwrap_or(root);
    dirfd::open_beneath(&slash, rel, libc::O_PATH | libc::O_DIRECTORY, 0)
}

/// Opens the bind source `path` (absolute) with `O_PATH`.
///
/// With `beneath`, `path` must lie at or under that directory and is resolved below it
/// with `openat2(RESOLVE_BENEATH)`: symlinks inside are followed, but none may lead out
/// (an absolute symlink, `..` above the root, a magic link: `EXDEV`/`ELOOP`), whatever
/// is swapped meanwhile. Without, it is resolved as mount(2) resolves a path (symlinks
/// followed): the mount still gets exactly the object that was checked to exist.
pub fn open_source(path: &Path, beneath: Option<&Path>) -> io::Result<OwnedFd> {
    let Some(root) = beneath else {
        return fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(io::Error::from);
    };
    let rel = relative_to(path, root).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is not under {}", path.display(), root.display()),
        )
    })?;
    let dir = open_root(root)?;
    let rel = if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    };
    let c = CString::new(rel.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    crate::resolve::openat2(dir.as_fd(), &c, libc::O_PATH, 0, libc::RESOLVE_BENEATH)
}

/// Makes the missing directories of `path` below `root` (mode 0755), one component at a
/// time relative to its parent's descriptor, never following a symlink (`ELOOP`).
pub fn create_dirs_beneath(path: &Path, root: &Path) -> io::Result<()> {
    let rel = relative_to(path, root).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is not under {}", path.display(), root.display()),
        )
    })?;
    let mut dir = dirfd::reopen(&open_root(root)?, libc::O_RDONLY | libc::O_DIRECTORY)?;
    for c in rel.components() {
        let Component::Normal(name) = c else { continue };
        dir = match dirfd::open_child_dir(&dir, name) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match dirfd::mkdir_child(&dir, name, 0o755) {
                    Ok(d) => d,
                    // Made by someone else meanwhile: open what is there (never followed).
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        dirfd::open_child_dir(&dir, name)?
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
    }
    Ok(())
}

/// Whether the object `fd` is open on is a directory.
pub fn is_dir(fd: &OwnedFd) -> io::Result<bool> {
    let st = nix::sys::stat::fstat(fd.as_fd()).map_err(io::Error::from)?;
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// Binds (recursively, as `rbind`) the object `src` is open on at `target` (an existing
/// directory or file of the same kind): the source is `/proc/self/fd/N`, a magic link the
/// kernel follows to the opened object, never a path resolved again.
pub fn bind_fd(src: &OwnedFd, target: &Path) -> io::Result<()> {
    let proc_path = format!("/proc/self/fd/{}", src.as_raw_fd());
    mount(
        Some(OsStr::new(&proc_path)),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_to_compares_components() {
        let r = Path::new("/srv/data");
        assert_eq!(
            relative_to(Path::new("/srv/data/x/y"), r),
            Some(PathBuf::from("x/y"))
        );
        assert_eq!(relative_to(Path::new("/srv/data"), r), Some(PathBuf::new()));
        assert_eq!(relative_to(Path::new("/srv/database"), r), None);
        assert_eq!(relative_to(Path::new("/srv/data/../etc"), r), None);
        assert_eq!(relative_to(Path::new("srv/data/x"), r), None);
    }

    /// A source under the root that is (or becomes) a symlink out of it is refused; one
    /// that stays inside is followed.
    #[test]
    fn confined_open_never_leaves_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("allowed");
        let outside = tmp.path().join("host");
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../host", root.join("rel")).unwrap();
        std::os::unix::fs::symlink("real", root.join("inside")).unwrap();
        for bad in ["abs", "rel", "abs/x"] {
            assert!(
                open_source(&root.join(bad), Some(&root)).is_err(),
                "{bad} opened"
            );
        }
        let fd = open_source(&root.join("inside"), Some(&root)).unwrap();
        assert!(is_dir(&fd).unwrap());
        assert_eq!(
            crate::resolve::fd_path(&fd).unwrap(),
            root.join("real").canonicalize().unwrap()
        );
        assert!(open_source(&outside, Some(&root)).is_err());
        // Unconfined: followed as mount(2) would.
        let fd = open_source(&root.join("abs"), None).unwrap();
        assert_eq!(
            crate::resolve::fd_path(&fd).unwrap(),
            outside.canonicalize().unwrap()
        );
    }

    #[test]
    fn confined_mkdir_does_not_follow_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("allowed");
        let outside = tmp.path().join("host");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        create_dirs_beneath(&root.join("a/b"), &root).unwrap();
        assert!(root.join("a/b").is_dir());
        assert!(create_dirs_beneath(&root.join("link/c"), &root).is_err());
        assert!(!outside.join("c").exists());
    }
}
