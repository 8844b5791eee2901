//! A directory tree that someone else may change while we walk or write it (a running
//! container's root, a volume another container shares), handled only relative to open
//! directories: every child is named by one component below its parent's descriptor and
//! never followed when it is a symlink, and a path of several components is opened with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`. So a directory swapped for a symlink
//! to `/` between two of our steps makes a step fail (`ELOOP`, `ENOTDIR`) instead of
//! leading it onto the host.
//!
//! Owns: the `*at` calls behind tar writing, extraction and volume copy-up. Does not own:
//! what a tree means (tar headers, whiteouts), nor resolution of a container path with its
//! own symlinks (`resolve`).

use std::ffi::{CString, OsStr, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{self, AtFlags, OFlag};
use nix::sys::stat::{self, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{self, Gid, Uid, UnlinkatFlags};

/// How deep a walk goes below its start: each level holds a descriptor and a stack frame,
/// so a tree a container nests without end must not take the daemon's descriptors or
/// stack with it (a path-based walk stopped at `PATH_MAX`, about 2000 levels).
pub const MAX_DEPTH: usize = 512;

/// The error for a tree deeper than [`MAX_DEPTH`].
pub fn too_deep() -> io::Error {
    io::Error::other(format!("directory tree deeper than {MAX_DEPTH} levels"))
}

/// What a directory entry said it was (`d_type`); only a hint, the inode may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hint {
    Dir,
    File,
    Other,
}

/// A child opened without following it: readable when it is a regular file or a
/// directory, an `O_PATH` descriptor otherwise (symlinks, devices, fifos, sockets).
/// `md` comes from the descriptor, so it describes exactly what was opened.
#[derive(Debug)]
pub struct Opened {
    pub file: File,
    pub md: Metadata,
}

fn errno(e: Errno) -> io::Error {
    io::Error::from(e)
}

/// Refuses anything but one plain component (no `/`, not empty, `.` or `..`).
fn component(name: &OsStr) -> io::Result<&OsStr> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a single path component"),
        ));
    }
    Ok(name)
}

/// Opens the directory at the host path `path` (its last component not followed).
pub fn open_dir(path: &Path) -> io::Result<File> {
    fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(File::from)
    .map_err(errno)
}

/// Opens the relative `path` below `dir` with open(2) `flags`, no symlink (nor magic
/// link, nor `..` above `dir`) allowed in any component: a symlink on the way fails
/// with `ELOOP`, unless it is the last component and `flags` has `O_PATH | O_NOFOLLOW`
/// (the link itself is opened then). An empty path opens `dir` again.
pub fn open_beneath(dir: &impl AsFd, path: &Path, flags: i32, mode: u32) -> io::Result<File> {
    let rel = path.as_os_str().as_bytes();
    let rel = if rel.is_empty() { b"." } else { rel };
    let c = CString::new(rel)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    crate::resolve::openat2(
        dir.as_fd(),
        &c,
        flags,
        mode,
        libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
    )
    .map(File::from)
}

/// Opens the child `name` of `dir` with `flags` plus `O_NOFOLLOW | O_CLOEXEC`.
pub fn open_child(dir: &impl AsFd, name: &OsStr, flags: i32, mode: u32) -> io::Result<File> {
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    fcntl::openat(
        dir.as_fd(),
        component(name)?,
        flags,
        Mode::from_bits_truncate(mode),
    )
    .map(File::from)
    .map_err(errno)
}

/// Opens the child directory `name` of `dir` for reading (`ELOOP` or `ENOTDIR` when it
/// is no directory, a symlink to one included).
pub fn open_child_dir(dir: &impl AsFd, name: &OsStr) -> io::Result<File> {
    open_child(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
}

/// Opens the child `name` of `dir` without following it, for reading when it is a
/// regular file or a directory. `hint` (the entry's `d_type`) picks the first try; what
/// comes back is described by its own descriptor whatever the entry became meanwhile.
/// Regular files are opened `O_NONBLOCK`, so a fifo swapped in cannot block the walk.
pub fn open_entry(dir: &impl AsFd, name: &OsStr, hint: Option<Hint>) -> io::Result<Opened> {
    let first = match hint {
        Some(Hint::File) => Some(libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY),
        Some(Hint::Dir) => Some(libc::O_RDONLY | libc::O_DIRECTORY),
        _ => None,
    };
    if let Some(flags) = first {
        match open_child(dir, name, flags, 0) {
            Ok(file) => {
                let md = file.metadata()?;
                return Ok(Opened { file, md });
            }
            // Not what the hint said any more: look at what it is.
            Err(e)
                if matches!(
                    Errno::from_raw(e.raw_os_error().unwrap_or(0)),
                    Errno::ELOOP | Errno::ENOTDIR | Errno::ENXIO | Errno::EISDIR
                ) => {}
            Err(e) => return Err(e),
        }
    }
    open_for_reading(open_child(dir, name, libc::O_PATH, 0)?)
}

/// What the `O_PATH` descriptor `path` refers to, opened again for reading when it is a
/// regular file (`O_NONBLOCK`) or a directory; anything else comes back as it is.
pub fn open_for_reading(path: File) -> io::Result<Opened> {
    let md = path.metadata()?;
    let ft = md.file_type();
    let file = if ft.is_dir() {
        // "." below an O_PATH directory is that same directory.
        fcntl::openat(
            path.as_fd(),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map(File::from)
        .map_err(errno)?
    } else if ft.is_file() {
        reopen(&path, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY)?
    } else {
        return Ok(Opened { file: path, md });
    };
    let md = file.metadata()?;
    Ok(Opened { file, md })
}

/// Opens the very inode `fd` refers to (an `O_PATH` descriptor) again with `flags`,
/// through its `/proc/self/fd` link: no name is looked up again.
pub fn reopen(fd: &impl AsFd, flags: i32) -> io::Result<File> {
    let link = format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd());
    fcntl::open(
        link.as_str(),
        OFlag::from_bits_retain(flags) | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(File::from)
    .map_err(errno)
}

/// The names in the directory `dir` (without `.` and `..`) with their `d_type` hints,
/// read through a descriptor of its own (the offset of `dir` is left alone).
pub fn read_names(dir: &impl AsFd) -> io::Result<Vec<(OsString, Option<Hint>)>> {
    let mut d = Dir::openat(
        dir.as_fd(),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e.map_err(errno)?;
        let name = e.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let hint = e.file_type().map(|t| match t {
            Type::Directory => Hint::Dir,
            Type::File => Hint::File,
            _ => Hint::Other,
        });
        out.push((OsStr::from_bytes(name).to_os_string(), hint));
    }
    Ok(out)
}

/// The child `name` of `dir` as it is (a symlink's own metadata): `None` when missing.
pub fn stat_child(dir: &impl AsFd, name: &OsStr) -> io::Result<Option<Metadata>> {
    match open_child(dir, name, libc::O_PATH, 0) {
        Ok(f) => f.metadata().map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// `mkdirat`: a directory `name` in `dir` with exactly `mode` (umask undone).
pub fn mkdir_child(dir: &impl AsFd, name: &OsStr, mode: u32) -> io::Result<File> {
    stat::mkdirat(
        dir.as_fd(),
        component(name)?,
        Mode::from_bits_truncate(0o700),
    )
    .map_err(errno)?;
    let d = open_child_dir(dir, name)?;
    set_mode(&d, mode)?;
    Ok(d)
}

/// `symlinkat`: a symlink `name` in `dir` with the text `target` (never resolved here).
pub fn symlink_child(dir: &impl AsFd, name: &OsStr, target: &OsStr) -> io::Result<()> {
    unistd::symlinkat(target, dir.as_fd(), component(name)?).map_err(errno)
}

/// `linkat` without following: a hard link `name` in `dir` to `from_name` in `from_dir`.
pub fn link_child(
    from_dir: &impl AsFd,
    from_name: &OsStr,
    dir: &impl AsFd,
    name: &OsStr,
) -> io::Result<()> {
    unistd::linkat(
        from_dir.as_fd(),
        component(from_name)?,
        dir.as_fd(),
        component(name)?,
        AtFlags::empty(),
    )
    .map_err(errno)
}

/// `mknodat`: a device node or fifo (`kind` one of `S_IFCHR`, `S_IFBLK`, `S_IFIFO`).
pub fn mknod_child(
    dir: &impl AsFd,
    name: &OsStr,
    kind: SFlag,
    mode: u32,
    dev: u64,
) -> io::Result<()> {
    stat::mknodat(
        dir.as_fd(),
        component(name)?,
        kind,
        Mode::from_bits_truncate(mode),
        dev,
    )
    .map_err(errno)
}

/// Removes the child `name` of `dir`, a whole directory tree included (walked by
/// descriptors; a symlink inside is removed, never followed). Missing is no error.
pub fn remove_child(dir: &impl AsFd, name: &OsStr) -> io::Result<()> {
    remove_child_at(dir, name, 0)
}

fn remove_child_at(dir: &impl AsFd, name: &OsStr, depth: usize) -> io::Result<()> {
    let name = component(name)?;
    loop {
        match unistd::unlinkat(dir.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::EISDIR) => {}
            Err(e) => return Err(errno(e)),
        }
        let sub = match open_child_dir(dir, name) {
            Ok(d) => d,
            // It changed kind meanwhile: unlink it again.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if depth >= MAX_DEPTH {
            return Err(too_deep());
        }
        for (n, _) in read_names(&sub)? {
            remove_child_at(&sub, &n, depth + 1)?;
        }
        match unistd::unlinkat(dir.as_fd(), name, UnlinkatFlags::RemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => return Ok(()),
            // Something was added or it became a file meanwhile: go again.
            Err(Errno::ENOTEMPTY | Errno::ENOTDIR) => continue,
            Err(e) => return Err(errno(e)),
        }
    }
}

/// `fchownat(AT_SYMLINK_NOFOLLOW)` of the child `name` (a symlink's own owner).
pub fn chown_child(dir: &impl AsFd, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
    unistd::fchownat(
        dir.as_fd(),
        component(name)?,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(errno)
}

/// The owner of what `file` refers to (an `O_PATH` descriptor of a symlink included).
pub fn set_owner(file: &File, uid: u32, gid: u32) -> io::Result<()> {
    unistd::fchownat(
        file.as_fd(),
        "",
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_EMPTY_PATH,
    )
    .map_err(errno)
}

/// The permission bits of what `file` refers to; nothing for a symlink (Linux has no
/// modes on them). `O_PATH` descriptors (device nodes, fifos) go through their
/// `/proc/self/fd` link, which names the inode itself.
pub fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    let mode = Mode::from_bits_truncate(mode & 0o7777);
    match stat::fchmod(file.as_fd(), mode) {
        Ok(()) => Ok(()),
        Err(Errno::EBADF) => {
            if file.metadata()?.file_type().is_symlink() {
                return Ok(());
            }
            let link = format!("/proc/self/fd/{}", file.as_raw_fd());
            stat::fchmodat(
                fcntl::AT_FDCWD,
                link.as_str(),
                mode,
                stat::FchmodatFlags::FollowSymlink,
            )
            .map_err(errno)
        }
        Err(e) => Err(errno(e)),
    }
}

/// Access and modification times of the child `name` of `dir`, not followed.
pub fn set_times_child(dir: &impl AsFd, name: &OsStr, t: &TimeSpec) -> io::Result<()> {
    stat::utimensat(
        dir.as_fd(),
        component(name)?,
        t,
        t,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(errno)
}

/// Access and modification times of an open file or directory.
pub fn set_times(file: &File, t: &TimeSpec) -> io::Result<()> {
    stat::futimens(file.as_fd(), t, t).map_err(errno)
}

/// The target of the symlink `file` (an `O_PATH | O_NOFOLLOW` descriptor of it).
pub fn read_link(file: &File) -> io::Result<OsString> {
    fcntl::readlinkat(file.as_fd(), "").map_err(errno)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    use super::*;

    #[test]
    fn children_are_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), "host").unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).unwrap();
        symlink(&outside, root.join("d")).unwrap();
        symlink(outside.join("secret"), root.join("f")).unwrap();
        let dir = open_dir(&root).unwrap();
        // A directory or file swapped for a symlink: refused, not followed.
        assert!(open_child_dir(&dir, OsStr::new("d")).is_err());
        assert!(open_beneath(&dir, Path::new("d/secret"), libc::O_RDONLY, 0).is_err());
        assert!(open_beneath(&dir, Path::new("../outside"), libc::O_RDONLY, 0).is_err());
        for (n, target) in [("d", outside.clone()), ("f", outside.join("secret"))] {
            let o = open_entry(&dir, OsStr::new(n), Some(Hint::File)).unwrap();
            assert!(o.md.file_type().is_symlink(), "{n}");
            assert_eq!(read_link(&o.file).unwrap(), target.into_os_string());
        }
        // Writes through a symlinked child go nowhere.
        assert!(open_child(&dir, OsStr::new("f"), libc::O_WRONLY | libc::O_CREAT, 0o600).is_err());
        for bad in ["", ".", "..", "a/b"] {
            assert!(
                open_child(&dir, OsStr::new(bad), libc::O_RDONLY, 0).is_err(),
                "{bad}"
            );
        }
        assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"host");
    }

    #[test]
    fn opened_entries_describe_themselves() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = open_dir(tmp.path()).unwrap();
        std::fs::write(tmp.path().join("f"), "data").unwrap();
        std::fs::create_dir(tmp.path().join("sub")).unwrap();
        // A stale hint (a directory said to be a file and the reverse) still works.
        for (n, hint) in [
            ("f", Some(Hint::Dir)),
            ("sub", Some(Hint::File)),
            ("f", None),
        ] {
            let o = open_entry(&dir, OsStr::new(n), hint).unwrap();
            assert_eq!(o.md.is_dir(), n == "sub");
        }
        let mut o = open_entry(&dir, OsStr::new("f"), None).unwrap();
        let mut s = String::new();
        o.file.read_to_string(&mut s).unwrap();
        assert_eq!(s, "data");
        let mut names: Vec<_> = read_names(&dir).unwrap();
        names.sort();
        assert_eq!(
            names,
            vec![
                (OsString::from("f"), Some(Hint::File)),
                (OsString::from("sub"), Some(Hint::Dir))
            ]
        );
    }

    #[test]
    fn writes_stay_in_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = open_dir(tmp.path()).unwrap();
        let sub = mkdir_child(&dir, OsStr::new("sub"), 0o751).unwrap();
        assert_eq!(sub.metadata().unwrap().mode() & 0o7777, 0o751);
        let mut f = open_child(
            &sub,
            OsStr::new("f"),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            0o600,
        )
        .unwrap();
        f.write_all(b"x").unwrap();
        set_mode(&f, 0o4755).unwrap();
        assert_eq!(f.metadata().unwrap().mode() & 0o7777, 0o4755);
        symlink_child(&sub, OsStr::new("l"), OsStr::new("/etc/passwd")).unwrap();
        chown_child(&sub, OsStr::new("l"), 1, 2).unwrap();
        let l = std::fs::symlink_metadata(tmp.path().join("sub/l")).unwrap();
        assert_eq!((l.uid(), l.gid()), (1, 2));
        assert_ne!(std::fs::metadata("/etc/passwd").unwrap().uid(), 1);
        link_child(&sub, OsStr::new("f"), &dir, OsStr::new("hard")).unwrap();
        assert_eq!(std::fs::read(tmp.path().join("hard")).unwrap(), b"x");
        mknod_child(&dir, OsStr::new("fifo"), SFlag::S_IFIFO, 0o600, 0).unwrap();
        let fifo = open_child(&dir, OsStr::new("fifo"), libc::O_PATH, 0).unwrap();
        set_mode(&fifo, 0o640).unwrap();
        let md = std::fs::symlink_metadata(tmp.path().join("fifo")).unwrap();
        assert_eq!(md.permissions().mode() & 0o777, 0o640);
        let t = TimeSpec::new(1_000_000, 5);
        set_times_child(&sub, OsStr::new("l"), &t).unwrap();
        assert_eq!(
            std::fs::symlink_metadata(tmp.path().join("sub/l"))
                .unwrap()
                .mtime(),
            1_000_000
        );
        assert_eq!(
            stat_child(&dir, OsStr::new("none")).unwrap().map(|_| ()),
            None
        );
        remove_child(&dir, OsStr::new("sub")).unwrap();
        assert!(!tmp.path().join("sub").exists());
        assert!(std::fs::metadata("/etc/passwd").is_ok());
    }

    #[test]
    fn endless_nesting_stops_at_the_depth_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let top = open_dir(tmp.path()).unwrap();
        let mut d = mkdir_child(&top, OsStr::new("n"), 0o755).unwrap();
        for _ in 0..MAX_DEPTH + 5 {
            d = mkdir_child(&d, OsStr::new("n"), 0o755).unwrap();
        }
        let e = remove_child(&top, OsStr::new("n")).unwrap_err();
        assert!(e.to_string().contains("deeper than"), "{e}");
    }

    #[test]
    fn removal_does_not_follow_symlinks_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let keep = tmp.path().join("keep");
        std::fs::create_dir(&keep).unwrap();
        std::fs::write(keep.join("k"), "k").unwrap();
        std::fs::create_dir_all(tmp.path().join("t/a/b")).unwrap();
        symlink(&keep, tmp.path().join("t/a/link")).unwrap();
        let dir = open_dir(tmp.path()).unwrap();
        remove_child(&dir, OsStr::new("t")).unwrap();
        assert!(!tmp.path().join("t").exists());
        assert_eq!(std::fs::read(keep.join("k")).unwrap(), b"k");
    }
}
