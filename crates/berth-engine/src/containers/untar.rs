//! Extraction of a `docker cp` upload into a directory that a running container, or
//! another one sharing a volume, may change meanwhile. Every entry is made relative to
//! its parent directory's descriptor (`berth_sys::dirfd`): the parents are opened with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` (created one by one with `mkdirat`
//! where missing), the entry with `O_CREAT | O_EXCL | O_NOFOLLOW`, `mkdirat`,
//! `symlinkat`, `linkat`, `mknodat`, replaced with `unlinkat`, and its owner, mode and
//! times set through descriptors or `*at(AT_SYMLINK_NOFOLLOW)`. A directory swapped for a
//! symlink to `/` at any moment makes a step fail; no step ever reaches the host.
//!
//! The rules are the layer unpacker's (`berth_image::unpack`): names cleaned, `..`
//! refused; a symlink or non-directory among an entry's parents refuses the archive;
//! whatever is at the entry's own name is removed and replaced, never written through;
//! only a directory entry keeps an existing directory. `.wh.` names are plain files here
//! (an upload is no layer). With `no_overwrite_dir_non_dir`, replacing a directory by a
//! non-directory or the reverse stops the extraction in Docker's words.
//!
//! Owns: applying one tar stream below one open directory, streaming (one entry at a
//! time, a fixed buffer). Does not own: where that directory is (`archive`).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use berth_image::tarmeta::{self, clean_components, Meta, MetaError};
use berth_sys::dirfd;
use nix::libc;
use nix::sys::stat::SFlag;
use nix::sys::time::TimeSpec;
use tar::EntryType;

/// Mode of parent directories an archive implies but does not list (moby: 0755).
const IMPLIED_DIR_MODE: u32 = 0o755;
/// Size of the buffer file contents are copied through.
const COPY_BUF: usize = 256 * 1024;

/// How to apply an upload.
#[derive(Debug, Clone, Copy)]
pub(super) struct Options {
    /// Give entries the uid/gid of their headers (`copyUIDGID`).
    pub preserve_ownership: bool,
    /// Docker's `noOverwriteDirNonDir`.
    pub no_overwrite_dir_non_dir: bool,
}

/// Why an upload stopped. Entries applied before it stay (as dockerd).
#[derive(Debug, thiserror::Error)]
pub(super) enum UntarError {
    /// `noOverwriteDirNonDir` refused an entry (Docker's words).
    #[error("{0}")]
    Refused(String),
    #[error("archive entry {entry:?} escapes the destination: `..` is not allowed in paths")]
    DotDot { entry: String },
    #[error("archive entry {entry:?} has a symlink or a non-directory among its parents")]
    Parent { entry: String },
    #[error("archive entry {entry:?} is a hard link to {target:?}, which {problem}")]
    BadHardLink {
        entry: String,
        target: String,
        problem: &'static str,
    },
    #[error("archive entry {entry:?} has unsupported type {kind:?}")]
    Unsupported { entry: String, kind: char },
    #[error("archive entry {entry:?} has an invalid {field}: {reason}")]
    BadHeader {
        entry: String,
        field: &'static str,
        reason: String,
    },
    #[error("reading the archive: {0}")]
    Read(#[source] io::Error),
    #[error("{what} {entry:?}: {source}")]
    Io {
        what: &'static str,
        entry: String,
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, entry: &'a str) -> impl FnOnce(io::Error) -> UntarError + 'a {
    move |source| UntarError::Io {
        what,
        entry: entry.to_owned(),
        source,
    }
}

/// The header fields of `entry`, with errors in the extractor's words.
fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta, UntarError> {
    tarmeta::read_meta(entry).map_err(|e| match e {
        MetaError::Field { field, reason } => UntarError::BadHeader {
            entry: name.to_owned(),
            field,
            reason,
        },
        MetaError::Read(e) => UntarError::Read(e),
    })
}

/// Extracts the tar read from `body` below the open directory `dest`.
pub(super) fn untar(body: &mut dyn Read, dest: &File, opts: Options) -> Result<(), UntarError> {
    let mut u = Untar {
        dest,
        opts,
        parent: None,
        dir_times: HashMap::new(),
        buf: vec![0u8; COPY_BUF],
    };
    let mut archive = tar::Archive::new(body);
    for entry in archive.entries().map_err(UntarError::Read)? {
        let mut entry = entry.map_err(UntarError::Read)?;
        u.apply(&mut entry)?;
    }
    u.restore_dir_times();
    Ok(())
}

/// State of one extraction.
struct Untar<'a> {
    dest: &'a File,
    opts: Options,
    /// The last parent directory opened (entries come grouped by directory), by path.
    parent: Option<(PathBuf, File)>,
    /// Directory mtimes to set at the end (children change them while we write).
    dir_times: HashMap<PathBuf, TimeSpec>,
    buf: Vec<u8>,
}

impl Untar<'_> {
    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UntarError> {
        let mut kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        // Pre-POSIX archives mark directories with a trailing slash on type '\0'.
        if entry.header().as_bytes()[156] == 0 && raw.ends_with(b"/") {
            kind = EntryType::Directory;
        }
        let comps = clean_components(&raw).ok_or_else(|| UntarError::DotDot {
            entry: name.clone(),
        })?;
        let Some((last, parents)) = comps.split_last() else {
            // The destination itself: a directory entry gives it its metadata.
            if kind == EntryType::Directory {
                let meta = read_meta(entry, &name)?;
                self.finish_open(self.dest, &meta, &name)?;
                self.dir_times.insert(PathBuf::new(), meta.mtime);
            }
            return Ok(());
        };
        let parent_rel: PathBuf = parents.iter().collect();
        let parent = self.parent(&parent_rel, &name)?;
        let existing = dirfd::stat_child(&parent, last).map_err(io_err("inspecting", &name))?;
        let is_dir = kind == EntryType::Directory;
        if let (true, Some(md)) = (self.opts.no_overwrite_dir_non_dir, &existing) {
            let msg = match (md.is_dir(), is_dir) {
                (true, false) => Some("cannot overwrite directory"),
                (false, true) => Some("cannot overwrite non-directory"),
                _ => None,
            };
            if let Some(msg) = msg {
                let with = if is_dir { "directory" } else { "non-directory" };
                let rel: PathBuf = comps.iter().collect();
                return Err(UntarError::Refused(format!(
                    "{msg} \"/{}\" with {with} \"{name}\"",
                    rel.display()
                )));
            }
        }
        // Whatever is there goes, unless a directory meets a directory entry.
        let keep = is_dir && existing.as_ref().is_some_and(|m| m.is_dir());
        let remove = |u: &mut Self| -> Result<(), UntarError> {
            if existing.is_some() {
                if existing.as_ref().is_some_and(|m| m.is_dir()) {
                    // Anything cached below the removed tree is gone.
                    u.parent = None;
                    let rel = parent_rel.join(last);
                    u.dir_times.retain(|p, _| !p.starts_with(&rel));
                }
                dirfd::remove_child(&parent, last).map_err(io_err("replacing", &name))?;
            }
            Ok(())
        };
        match kind {
            EntryType::Directory => {
                let meta = read_meta(entry, &name)?;
                let dir = if keep {
                    dirfd::open_child_dir(&parent, last)
                } else {
                    remove(self)?;
                    dirfd::mkdir_child(&parent, last, meta.mode)
                }
                .map_err(io_err("creating directory", &name))?;
                self.finish_open(&dir, &meta, &name)?;
                self.dir_times.insert(parent_rel.join(last), meta.mtime);
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let meta = read_meta(entry, &name)?;
                remove(self)?;
                // O_EXCL refuses any name that is there again, a symlink included.
                let mut file = dirfd::open_child(
                    &parent,
                    last,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                    0o600,
                )
                .map_err(io_err("creating file", &name))?;
                let expected = entry.size();
                let mut written = 0u64;
                loop {
                    let n = match entry.read(&mut self.buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(UntarError::Read(e)),
                    };
                    file.write_all(&self.buf[..n])
                        .map_err(io_err("writing file", &name))?;
                    written += n as u64;
                }
                if written != expected {
                    return Err(UntarError::Read(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("entry {name:?} is truncated ({written} of {expected} bytes)"),
                    )));
                }
                self.finish_open(&file, &meta, &name)?;
                dirfd::set_times(&file, &meta.mtime).map_err(io_err("setting times of", &name))?;
            }
            EntryType::Symlink => {
                let meta = read_meta(entry, &name)?;
                let target = entry
                    .link_name_bytes()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| UntarError::BadHeader {
                        entry: name.clone(),
                        field: "link name",
                        reason: "symlink without target".to_owned(),
                    })?
                    .into_owned();
                remove(self)?;
                dirfd::symlink_child(&parent, last, OsStr::from_bytes(&target))
                    .map_err(io_err("creating symlink", &name))?;
                self.finish_child(&parent, last, &meta, &name)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                self.hard_link(&parent, last, &parent_rel, &name, &target, remove)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let meta = read_meta(entry, &name)?;
                let h = entry.header();
                let dev = |v: io::Result<Option<u32>>| {
                    v.map(|d| u64::from(d.unwrap_or(0)))
                        .map_err(|e| UntarError::BadHeader {
                            entry: name.clone(),
                            field: "device number",
                            reason: e.to_string(),
                        })
                };
                let (major, minor) = (dev(h.device_major())?, dev(h.device_minor())?);
                let sflag = match kind {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                remove(self)?;
                dirfd::mknod_child(
                    &parent,
                    last,
                    sflag,
                    meta.mode,
                    nix::sys::stat::makedev(major, minor),
                )
                .map_err(io_err("creating device node", &name))?;
                self.finish_child(&parent, last, &meta, &name)?;
            }
            other => {
                return Err(UntarError::Unsupported {
                    entry: name,
                    kind: char::from(other.as_byte()),
                })
            }
        }
        // The parent stays open for the next entry.
        self.parent = Some((parent_rel, parent));
        Ok(())
    }

    /// The directory `rel` below the destination, opened without any symlink on the way
    /// and made (mode 0755) where missing.
    fn parent(&mut self, rel: &Path, entry: &str) -> Result<File, UntarError> {
        if let Some((p, f)) = self.parent.take() {
            if p == rel {
                return Ok(f);
            }
        }
        let flags = libc::O_RDONLY | libc::O_DIRECTORY;
        match dirfd::open_beneath(self.dest, rel, flags, 0) {
            Ok(f) => return Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.parent_err(e, entry)),
        }
        let mut dir = dirfd::open_beneath(self.dest, Path::new(""), flags, 0)
            .map_err(io_err("opening", entry))?;
        for c in rel.iter() {
            dir = match dirfd::open_child_dir(&dir, c) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match dirfd::mkdir_child(&dir, c, IMPLIED_DIR_MODE) {
                        Ok(d) => d,
                        Err(e) => return Err(self.parent_err(e, entry)),
                    }
                }
                Err(e) => return Err(self.parent_err(e, entry)),
            };
        }
        Ok(dir)
    }

    fn parent_err(&self, e: io::Error, entry: &str) -> UntarError {
        match e.raw_os_error() {
            Some(libc::ELOOP | libc::ENOTDIR | libc::EXDEV | libc::EEXIST) => UntarError::Parent {
                entry: entry.to_owned(),
            },
            _ => io_err("opening the parent of", entry)(e),
        }
    }

    fn hard_link(
        &mut self,
        parent: &File,
        last: &OsStr,
        parent_rel: &Path,
        name: &str,
        raw_target: &[u8],
        remove: impl FnOnce(&mut Self) -> Result<(), UntarError>,
    ) -> Result<(), UntarError> {
        let target_name = String::from_utf8_lossy(raw_target).into_owned();
        let bad = |problem: &'static str| UntarError::BadHardLink {
            entry: name.to_owned(),
            target: target_name.clone(),
            problem,
        };
        let target =
            clean_components(raw_target).ok_or_else(|| bad("is outside the destination"))?;
        let Some((t_last, t_parents)) = target.split_last() else {
            return Err(bad("is the destination itself"));
        };
        let t_rel: PathBuf = t_parents.iter().collect();
        let t_dir = dirfd::open_beneath(self.dest, &t_rel, libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(|_| bad("does not exist in the destination"))?;
        match dirfd::stat_child(&t_dir, t_last) {
            Ok(Some(m)) if !m.is_dir() => {}
            Ok(Some(_)) => return Err(bad("is a directory")),
            _ => return Err(bad("does not exist in the destination")),
        }
        if t_rel == parent_rel && *t_last == last {
            return Ok(());
        }
        remove(self)?;
        // linkat without AT_SYMLINK_FOLLOW links a symlink itself, never its target.
        dirfd::link_child(&t_dir, t_last, parent, last).map_err(io_err("creating hard link", name))
    }

    /// Owner, then mode (chown clears setuid bits), then xattrs, of an open file or
    /// directory.
    fn finish_open(&self, file: &File, meta: &Meta, name: &str) -> Result<(), UntarError> {
        if self.opts.preserve_ownership {
            dirfd::set_owner(file, meta.uid, meta.gid).map_err(io_err("setting owner of", name))?;
        }
        dirfd::set_mode(file, meta.mode).map_err(io_err("setting mode of", name))?;
        set_xattrs(file, meta, name)
    }

    /// The same for a child just made that is no file or directory (a symlink, a device
    /// node, a fifo): through an `O_PATH` descriptor of it, times included.
    fn finish_child(
        &self,
        parent: &File,
        last: &OsStr,
        meta: &Meta,
        name: &str,
    ) -> Result<(), UntarError> {
        let file =
            dirfd::open_child(parent, last, libc::O_PATH, 0).map_err(io_err("opening", name))?;
        self.finish_open(&file, meta, name)?;
        dirfd::set_times_child(parent, last, &meta.mtime).map_err(io_err("setting times of", name))
    }

    /// Sets directory mtimes last, each directory opened again without symlinks.
    fn restore_dir_times(&self) {
        for (rel, t) in &self.dir_times {
            let dir = dirfd::open_beneath(self.dest, rel, libc::O_RDONLY | libc::O_DIRECTORY, 0);
            if let Ok(d) = dir {
                let _ = dirfd::set_times(&d, t);
            }
        }
    }
}

/// The entry's xattrs, through `/proc/self/fd` (which names the inode itself, so this
/// works for `O_PATH` descriptors of device nodes and fifos too).
fn set_xattrs(file: &File, meta: &Meta, name: &str) -> Result<(), UntarError> {
    if meta.xattrs.is_empty() {
        return Ok(());
    }
    // Never through a symlink's descriptor: setxattr would go on to its target. (Linux
    // allows no user xattrs on symlinks anyway.)
    let md = file.metadata().map_err(io_err("inspecting", name))?;
    if md.file_type().is_symlink() {
        return Ok(());
    }
    let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(file));
    for (attr, value) in &meta.xattrs {
        if let Err(e) = xattr::set_deref(&link, attr, value) {
            // File capabilities cannot be set in a user namespace (moby tolerates this).
            if attr == "security.capability" && e.raw_os_error() == Some(libc::EPERM) {
                tracing::warn!(entry = %name, "cannot set security.capability; skipped");
                continue;
            }
            return Err(io_err("setting extended attributes of", name)(e));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{symlink, MetadataExt};

    use super::*;

    fn opts() -> Options {
        Options {
            preserve_ownership: false,
            no_overwrite_dir_non_dir: false,
        }
    }

    fn tar_with(f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        f(&mut b);
        b.into_inner().unwrap()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o640);
        h.set_size(data.len() as u64);
        h.set_mtime(1_000_000);
        // Raw, so that names the tar crate would refuse (`..`) can be written.
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    #[test]
    fn symlinked_parents_are_refused_and_nothing_lands_outside() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        let dest = tmp.path().join("dest");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::create_dir_all(dest.join("real")).unwrap();
        symlink(&outside, dest.join("d")).unwrap();
        symlink(outside.join("f"), dest.join("f")).unwrap();
        let d = dirfd::open_dir(&dest).unwrap();
        for name in ["d/x", "d/sub/x", "../outside/x"] {
            let t = tar_with(|b| file(b, name, b"evil"));
            let e = untar(&mut t.as_slice(), &d, opts());
            assert!(e.is_err(), "{name}");
        }
        // A symlink at the entry's own name is replaced, not written through.
        let t = tar_with(|b| file(b, "f", b"mine"));
        untar(&mut t.as_slice(), &d, opts()).unwrap();
        assert_eq!(std::fs::read(dest.join("f")).unwrap(), b"mine");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        // A hard link to something outside cannot be named.
        let t = tar_with(|b| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(EntryType::Link);
            h.set_size(0);
            b.append_link(&mut h, "hl", "d/x").unwrap();
        });
        assert!(untar(&mut t.as_slice(), &d, opts()).is_err());
    }

    #[test]
    fn entries_get_their_metadata() {
        let tmp = tempfile::tempdir().unwrap();
        let d = dirfd::open_dir(tmp.path()).unwrap();
        let t = tar_with(|b| {
            file(b, "a/b/c", b"data");
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(EntryType::Directory);
            h.set_mode(0o710);
            h.set_size(0);
            h.set_mtime(2_000_000);
            b.append_data(&mut h, "a/", io::empty()).unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, "a/l", "/etc").unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(EntryType::Link);
            h.set_size(0);
            b.append_link(&mut h, "a/h", "a/b/c").unwrap();
        });
        untar(&mut t.as_slice(), &d, opts()).unwrap();
        let md = std::fs::metadata(tmp.path().join("a/b/c")).unwrap();
        assert_eq!(
            (md.mode() & 0o7777, md.mtime(), md.nlink()),
            (0o640, 1_000_000, 2)
        );
        let a = std::fs::metadata(tmp.path().join("a")).unwrap();
        assert_eq!((a.mode() & 0o7777, a.mtime()), (0o710, 2_000_000));
        assert_eq!(
            std::fs::metadata(tmp.path().join("a/b")).unwrap().mode() & 0o7777,
            0o755
        );
        assert_eq!(
            std::fs::read_link(tmp.path().join("a/l")).unwrap(),
            Path::new("/etc")
        );
    }

    #[test]
    fn xattrs_of_a_symlink_never_reach_its_target() {
        let tmp = tempfile::tempdir().unwrap();
        let (dest, target) = (tmp.path().join("d"), tmp.path().join("target"));
        std::fs::create_dir(&dest).unwrap();
        std::fs::write(&target, "t").unwrap();
        let d = dirfd::open_dir(&dest).unwrap();
        let t = tar_with(|b| {
            b.append_pax_extensions([("SCHILY.xattr.user.berth", &b"v"[..])])
                .unwrap();
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, "l", &target).unwrap();
        });
        untar(&mut t.as_slice(), &d, opts()).unwrap();
        assert!(dest.join("l").is_symlink());
        assert_eq!(xattr::get(&target, "user.berth").unwrap(), None);
    }

    #[test]
    fn refuses_dir_non_dir_overwrites_in_dockers_words() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        let d = dirfd::open_dir(tmp.path()).unwrap();
        let t = tar_with(|b| {
            file(b, "ok", b"x");
            file(b, "d", b"x");
        });
        let o = Options {
            no_overwrite_dir_non_dir: true,
            ..opts()
        };
        let e = untar(&mut t.as_slice(), &d, o).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot overwrite directory \"/d\" with non-directory \"d\""
        );
        assert!(tmp.path().join("ok").is_file() && tmp.path().join("d").is_dir());
        untar(&mut t.as_slice(), &d, opts()).unwrap();
        assert!(tmp.path().join("d").is_file());
    }

    /// Another container sharing the volume swaps a directory of the upload for a
    /// symlink to a host directory while the extraction runs: nothing lands there.
    #[test]
    fn a_directory_swapped_for_a_symlink_midway_is_never_written_through() {
        let tmp = tempfile::tempdir().unwrap();
        let (dest, host) = (tmp.path().join("d"), tmp.path().join("host"));
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::create_dir_all(&host).unwrap();
        let t = tar_with(|b| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, "sub/", io::empty()).unwrap();
            for i in 0..20 {
                file(b, &format!("sub/f{i}"), b"x");
            }
        });
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flipper = {
            let (stop, dest, host) = (stop.clone(), dest.clone(), host.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let aside = dest.join(format!("old{n}"));
                    n += 1;
                    if std::fs::rename(dest.join("sub"), &aside).is_ok() {
                        let _ = symlink(&host, dest.join("sub"));
                        let _ = std::fs::remove_dir_all(&aside);
                    }
                    let _ = std::fs::remove_file(dest.join("sub"));
                }
            })
        };
        let d = dirfd::open_dir(&dest).unwrap();
        // The path-based layer unpacker wrote all 20 files there within 200 tries.
        for _ in 0..200 {
            let _ = untar(&mut t.as_slice(), &d, opts());
            let _ = dirfd::remove_child(&d, OsStr::new("sub"));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        flipper.join().unwrap();
        let leaked = std::fs::read_dir(&host).unwrap().count();
        assert_eq!(leaked, 0, "files written through the symlink");
    }
}
