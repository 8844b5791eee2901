//! The archive API behind `docker cp`: stat (`HEAD`), read (`GET`, a tar) and extract
//! (`PUT`) a path of a container, running or stopped.
//!
//! Every path resolves inside the container with `openat2(RESOLVE_IN_ROOT)` from
//! `berth_sys::resolve`: a running container through `/proc/<pid>/root` (its own mount
//! tree, volumes included), a stopped one through an overlay view of its layers, or the
//! host directory of a volume or bind when the path lies under one. Symlinks planted in the
//! container resolve as if its root were `/`, never onto the host.
//!
//! Past the named path everything is fd-based too: the tar is written by walking child
//! by child relative to directory descriptors (`fs_views::append_tree`), and an upload is
//! extracted relative to its parent directories' descriptors (`untar`), never through a
//! path string, so that nothing can swap a directory for a symlink under us: not the
//! container itself, nor another one sharing a volume or bind with it. A running
//! container is also frozen for the duration (moby's fix for CVE-2018-15664), which keeps
//! what is copied consistent.
//!
//! Both directions stream: a tar is written while it is sent, an upload extracted while
//! it arrives (read in the request's task, handed to a blocking thread in 1 MiB chunks),
//! so memory stays bounded whatever the size. The freeze therefore lasts as long as the
//! transfer: a slow client keeps a running container paused that long.
//!
//! As dockerd: a stopped container's tmpfs mounts do not exist for this API (their paths
//! are the rootfs' own), and a write outside every writable mount of a `--read-only`
//! container is refused (moby `checkWritablePath`).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::fs_views::{append_entry, append_tree, RootView};
use super::{mounts, untar};
use crate::images::BodyReader;
use crate::system::format_rfc3339;
use crate::volumes::{self, DriverSource};
use crate::{Engine, EngineError};
use berth_image::chunks::StreamWriter;
use berth_sys::dirfd;

/// What the archive routes resolve a container path against.
struct Root {
    dir: File,
    /// The path to resolve inside `dir`.
    path: PathBuf,
    /// Keeps a stopped container's overlay view mounted while in use.
    _view: Option<RootView>,
}

/// A resolved path: the object itself, opened `O_PATH` without following it, and its
/// last component.
struct Resolved {
    obj: File,
    name: OsString,
    /// Keep the root (and its view) alive as long as the fd is used.
    _root: Root,
}

fn not_found(path: &str, container: &str) -> EngineError {
    EngineError::NotFound(format!(
        "Could not find the file {path} in container {container}"
    ))
}

/// `a/./b/../c/` → components of a clean absolute path.
fn clean(path: &str) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Go's `os.FileMode` bits, which the docker CLI reads from the stat header.
fn go_mode(md: &std::fs::Metadata) -> u32 {
    let ft = md.file_type();
    let mut m = md.mode() & 0o777;
    if ft.is_dir() {
        m |= 1 << 31;
    }
    if ft.is_symlink() {
        m |= 1 << 27;
    }
    if ft.is_block_device() {
        m |= 1 << 26;
    }
    if ft.is_char_device() {
        m |= (1 << 26) | (1 << 21);
    }
    if ft.is_fifo() {
        m |= 1 << 25;
    }
    if ft.is_socket() {
        m |= 1 << 24;
    }
    if md.mode() & 0o4000 != 0 {
        m |= 1 << 23;
    }
    if md.mode() & 0o2000 != 0 {
        m |= 1 << 22;
    }
    if md.mode() & 0o1000 != 0 {
        m |= 1 << 20;
    }
    m
}

/// What resolving a container path needs, owned, so that the resolution (pidfd and
/// `openat2` calls, `mounts.json` and volume reads, an overlay mount) runs on a blocking
/// thread.
struct Resolver {
    containers: Arc<super::Containers>,
    images: Arc<berth_image::store::ImageStore>,
    data_root: PathBuf,
}

impl Engine {
    fn resolver(&self) -> Resolver {
        Resolver {
            containers: self.containers.clone(),
            images: self.images.clone(),
            data_root: self.config().data_root.clone(),
        }
    }

    /// [`Resolver::resolve`] on a blocking thread; with `write`, the extraction point is
    /// also checked to be a writable directory.
    async fn archive_resolve(
        &self,
        name: &str,
        path: &str,
        write: bool,
    ) -> Result<(Resolved, std::fs::Metadata), EngineError> {
        let (r, name, path) = (self.resolver(), name.to_string(), path.to_string());
        crate::blocking::spawn(move || {
            let (res, md) = r.resolve(&name, &path, write)?;
            if write {
                if !md.is_dir() {
                    return Err(EngineError::InvalidArgument(
                        "extraction point is not a directory".into(),
                    ));
                }
                r.check_writable(&name, &path)?;
            }
            Ok((res, md))
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?
    }
}

impl Resolver {
    /// Opens what `path` of container `name` resolves against; `write` for extraction
    /// (a stopped container's view then writes into its own upper dir).
    fn root(&self, name: &str, path: &str, write: bool) -> Result<Root, EngineError> {
        let c = &self.containers;
        let rec = c.subject(name)?.rec().clone();
        let clean_path = clean(path);
        if rec.running() && rec.state.pid > 0 {
            let dir = super::process::of_record(&rec)?
                .root()
                .map_err(|e| EngineError::Conflict(format!("container {}: {e}", rec.id)))?;
            return Ok(Root {
                dir,
                path: PathBuf::from(path),
                _view: None,
            });
        }
        let data_dir = c.data_dir(&rec.id);
        // Under a volume or bind: that host directory is the root.
        let data_root = &self.data_root;
        let best = mounts::load(&data_dir)
            .into_iter()
            .filter(|m| clean_path.starts_with(&m.destination))
            .max_by_key(|m| m.destination.len());
        if let Some(m) = best {
            let source = match m.typ.as_str() {
                "bind" => Some(PathBuf::from(&m.source)),
                "volume" => match volumes::get(data_root, &m.name)?.driver_source() {
                    None => Some(volumes::data_path(data_root, &m.name)),
                    Some(DriverSource::Bind(dev)) => Some(dev),
                    Some(DriverSource::Tmpfs(_)) => None,
                },
                _ => None,
            };
            if let Some(src) = source {
                let rest = clean_path
                    .strip_prefix(&m.destination)
                    .unwrap_or(Path::new(""))
                    .to_path_buf();
                // Keep the trailing `/.` or `/` the client gave.
                let mut rest = rest.to_string_lossy().into_owned();
                if path.ends_with("/.") {
                    rest.push_str("/.");
                } else if path.ends_with('/') {
                    rest.push('/');
                }
                let dir = File::open(&src).map_err(EngineError::io("cannot open", &src))?;
                return Ok(Root {
                    dir,
                    path: PathBuf::from(format!("/{rest}")),
                    _view: None,
                });
            }
        }
        let mut lowers = self.images.layer_diff_dirs(&rec.image_id)?;
        lowers.reverse();
        let lowers = super::init_layer::with_image(&data_dir, lowers);
        let view = RootView::open(None, &data_dir, &lowers, write)?;
        let dir = File::open(&view.root).map_err(EngineError::io("cannot open", &view.root))?;
        Ok(Root {
            dir,
            path: PathBuf::from(path),
            _view: Some(view),
        })
    }

    /// Resolves `path`: the last component is not followed unless the path ends in `/`
    /// or `/.` (moby `container.ResolvePath`).
    fn resolve(
        &self,
        name: &str,
        path: &str,
        write: bool,
    ) -> Result<(Resolved, std::fs::Metadata), EngineError> {
        if path.is_empty() {
            return Err(EngineError::InvalidArgument(
                "bad parameter: path cannot be empty".into(),
            ));
        }
        let root = self.root(name, path, write)?;
        let follow = root.path.to_string_lossy().ends_with('/')
            || root.path.to_string_lossy().ends_with("/.");
        let r = if follow {
            berth_sys::resolve::openat_in_root(&root.dir, &root.path, libc_flags::PATH_DIR, 0)
                .map(|fd| (fd, OsString::new()))
        } else {
            berth_sys::resolve::open_parent_in_root(&root.dir, &root.path)
        };
        let (parent, last) = r.map_err(|_| not_found(path, name))?;
        let obj = if last.is_empty() {
            dirfd::open_beneath(&parent, Path::new(""), libc_flags::PATH, 0)
        } else {
            dirfd::open_child(&parent, &last, libc_flags::PATH, 0)
        }
        .map_err(|_| not_found(path, name))?;
        let md = obj.metadata().map_err(|_| not_found(path, name))?;
        Ok((
            Resolved {
                obj,
                name: last,
                _root: root,
            },
            md,
        ))
    }

    /// moby `checkWritablePath`: under a mount, that mount must be read-write; elsewhere
    /// the rootfs must not be read-only (`--read-only`). `HostConfig.Tmpfs` mounts are no
    /// mount points to dockerd here, so they count as the rootfs.
    fn check_writable(&self, name: &str, path: &str) -> Result<(), EngineError> {
        let rec = self.containers.subject(name)?.rec().clone();
        let clean_path = clean(path);
        let best = mounts::load(&self.containers.data_dir(&rec.id))
            .into_iter()
            .filter(|m| clean_path.starts_with(&m.destination))
            .max_by_key(|m| m.destination.len());
        match best {
            Some(m) if m.rw => Ok(()),
            Some(_) => Err(EngineError::InvalidArgument(
                "mounted volume is marked read-only".into(),
            )),
            None if rec.host_config.readonly_rootfs.or_default() => Err(
                EngineError::InvalidArgument("container rootfs is marked read-only".into()),
            ),
            None => Ok(()),
        }
    }
}

impl Engine {
    /// `HEAD /containers/{id}/archive`: the stat object Docker sends (base64 JSON in
    /// `X-Docker-Container-Path-Stat`).
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_path_stat(&self, name: &str, path: &str) -> Result<Value, EngineError> {
        let (r, md) = self.archive_resolve(name, path, false).await?;
        let stat = stat_json(&r, &md, path);
        // A stopped container's view is unmounted as `r` goes.
        let _ = crate::blocking::spawn(move || drop(r)).await;
        Ok(stat)
    }

    /// `GET /containers/{id}/archive`: the stat and a tar of the path, its entries named
    /// after the path's last component (`.` for a path ending in `/.`).
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_archive(
        &self,
        name: &str,
        path: &str,
    ) -> Result<(Value, mpsc::Receiver<io::Result<Bytes>>), EngineError> {
        let frozen = super::pause::Frozen::new(&self.containers, name).await?;
        let (r, md) = match self.archive_resolve(name, path, false).await {
            Ok(x) => x,
            Err(e) => {
                frozen.thaw().await;
                return Err(e);
            }
        };
        let stat = stat_json(&r, &md, path);
        let rebase = if path.ends_with("/.") {
            ".".to_string()
        } else {
            stat["name"].as_str().unwrap_or(".").to_string()
        };
        let (tx, rx) = mpsc::channel(8);
        let rt = tokio::runtime::Handle::current();
        crate::blocking::spawn(move || {
            let mut b = tar::Builder::new(StreamWriter::new(tx.clone()));
            b.follow_symlinks(false);
            let res = r
                .obj
                .try_clone()
                .and_then(dirfd::open_for_reading)
                .and_then(|mut top| {
                    append_entry(&mut b, &mut top, &rebase)?;
                    if top.md.is_dir() {
                        append_tree(&mut b, &top.file, &rebase, false)?;
                    }
                    Ok(())
                })
                .and_then(|()| b.into_inner())
                .and_then(|mut w| w.flush());
            if let Err(e) = res {
                tracing::warn!(error = %e, "archive failed mid-stream");
                let _ = tx.blocking_send(Err(e));
            }
            drop(r);
            rt.block_on(frozen.thaw());
        });
        Ok((stat, rx))
    }

    /// `PUT /containers/{id}/archive`: extracts the tar in `body` into the directory
    /// `path` while it arrives (on a blocking thread). As dockerd, a refused entry stops
    /// the extraction where it is: entries before it stay.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_extract(
        &self,
        name: &str,
        path: &str,
        body: BodyReader,
        no_overwrite_dir_non_dir: bool,
        copy_uid_gid: bool,
    ) -> Result<(), EngineError> {
        let entry = self.containers.subject(name)?;
        // A stopped container's upper dir is written: no start meanwhile.
        let _guard = entry.op.lock().await;
        let frozen = super::pause::Frozen::new(&self.containers, name).await?;
        let result = self
            .extract_frozen(name, path, body, no_overwrite_dir_non_dir, copy_uid_gid)
            .await;
        frozen.thaw().await;
        result
    }

    async fn extract_frozen(
        &self,
        name: &str,
        path: &str,
        body: BodyReader,
        no_overwrite_dir_non_dir: bool,
        copy_uid_gid: bool,
    ) -> Result<(), EngineError> {
        let opened = self
            .archive_resolve(name, path, true)
            .await
            .and_then(|(r, _)| {
                let dest = dirfd::reopen(&r.obj, libc_flags::READ_DIR)
                    .map_err(EngineError::io("cannot open", Path::new(path)))?;
                Ok((r, dest))
            });
        let (r, dest) = match opened {
            Ok(x) => x,
            Err(e) => {
                // Read the body before answering: a client still sending would see a
                // broken pipe instead of the error.
                crate::pump::drain(body).await;
                return Err(e);
            }
        };
        // The body is read here, in the request's own task, and handed to the extracting
        // thread in large chunks: a thread woken for every network frame made context
        // switches the largest cost of a copy on two cores.
        let (pump, mut reader) = crate::pump::channel();
        let extractor = crate::blocking::spawn(move || {
            let res = extract(&mut reader, &dest, no_overwrite_dir_non_dir, copy_uid_gid);
            drop(reader);
            drop(r);
            res
        });
        let mut body = body;
        let pumped = pump.run(&mut body).await;
        let res = extractor
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        if res.is_err() {
            // Read the rest, so that the client gets the answer rather than a connection
            // reset while it still sends (bounded, as image load does).
            crate::pump::drain(body).await;
        }
        match (res, pumped) {
            (Err(e), _) => Err(e),
            (Ok(()), Err(e)) => Err(EngineError::InvalidArgument(format!(
                "cannot read the archive: {e}"
            ))),
            (Ok(()), Ok(())) => Ok(()),
        }
    }
}

/// Extracts the tar read from `body` below the open directory `dest`, every entry made
/// relative to its parent's descriptor ([`untar`]); whiteouts kept as plain files,
/// owners kept only with `copy_uid_gid`.
fn extract(
    body: &mut dyn io::Read,
    dest: &File,
    no_overwrite_dir_non_dir: bool,
    copy_uid_gid: bool,
) -> Result<(), EngineError> {
    let opts = untar::Options {
        preserve_ownership: copy_uid_gid,
        no_overwrite_dir_non_dir,
    };
    untar::untar(body, dest, opts).map_err(|e| match e {
        untar::UntarError::Refused(m) => EngineError::InvalidArgument(m),
        e => EngineError::InvalidArgument(format!("cannot extract archive: {e}")),
    })
}

/// Flags for resolving a directory (kept here so the call site reads plainly).
mod libc_flags {
    pub const PATH_DIR: i32 = nix::libc::O_PATH | nix::libc::O_DIRECTORY;
    pub const PATH: i32 = nix::libc::O_PATH | nix::libc::O_NOFOLLOW;
    pub const READ_DIR: i32 = nix::libc::O_RDONLY | nix::libc::O_DIRECTORY;
}

fn stat_json(r: &Resolved, md: &std::fs::Metadata, path: &str) -> Value {
    let name = if path.ends_with("/.") {
        ".".to_string()
    } else if r.name.is_empty() {
        let c = clean(path);
        c.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".into())
    } else {
        r.name.to_string_lossy().into_owned()
    };
    // Docker gives the target as a container path (the CLI's `cp -L` copies from it):
    // a relative target is taken from the link's directory.
    let link_target = if md.file_type().is_symlink() {
        match dirfd::read_link(&r.obj).map(PathBuf::from) {
            Ok(t) if t.is_absolute() => clean(&t.to_string_lossy()).display().to_string(),
            Ok(t) => {
                let dir = clean(path);
                let dir = dir.parent().unwrap_or(Path::new("/"));
                clean(&dir.join(t).to_string_lossy()).display().to_string()
            }
            Err(_) => String::new(),
        }
    } else {
        String::new()
    };
    json!({
        "name": name,
        "size": md.len(),
        "mode": go_mode(md),
        "mtime": format_rfc3339(md.mtime(), md.mtime_nsec().clamp(0, 999_999_999) as u32),
        "linkTarget": link_target,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn cleans_paths_and_modes() {
        assert_eq!(clean("/a/./b/../c/"), PathBuf::from("/a/c"));
        assert_eq!(clean("../../x"), PathBuf::from("/x"));
        let tmp = tempfile::tempdir().unwrap();
        let md = std::fs::symlink_metadata(tmp.path()).unwrap();
        assert_eq!(go_mode(&md) >> 31, 1);
        std::fs::write(tmp.path().join("f"), "x").unwrap();
        std::fs::set_permissions(tmp.path().join("f"), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        let md = std::fs::symlink_metadata(tmp.path().join("f")).unwrap();
        assert_eq!(go_mode(&md), 0o640);
    }

    fn tar_of(entries: &[(&str, bool)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, dir) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o755);
            if *dir {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, name, io::empty()).unwrap();
            } else {
                h.set_size(1);
                b.append_data(&mut h, name, &b"x"[..]).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn refuses_dir_non_dir_overwrites_while_streaming() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        std::fs::write(tmp.path().join("f"), "x").unwrap();
        let refused = |bytes: &[u8]| {
            let dest = dirfd::open_dir(tmp.path()).unwrap();
            extract(&mut &bytes[..], &dest, true, false).unwrap_err()
        };
        // A file over a directory: refused in Docker's words, earlier entries kept.
        let bytes = tar_of(&[("ok", false), ("d", false)]);
        let e = refused(&bytes);
        assert_eq!(
            e.to_string(),
            "cannot overwrite directory \"/d\" with non-directory \"d\""
        );
        assert!(tmp.path().join("d").is_dir());
        // A directory over a file, behind a GNU long name and a PAX path.
        let long = "x".repeat(120);
        std::fs::write(tmp.path().join(&long), "x").unwrap();
        let bytes = tar_of(&[(&format!("{long}/"), true)]);
        let e = refused(&bytes);
        assert!(
            e.to_string().starts_with("cannot overwrite non-directory"),
            "{e}"
        );
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_pax_extensions([("path", &b"f"[..])]).unwrap();
        b.append_data(&mut h, "other", io::empty()).unwrap();
        let bytes = b.into_inner().unwrap();
        let e = refused(&bytes);
        assert!(
            e.to_string()
                .starts_with("cannot overwrite non-directory \"/f\""),
            "{e}"
        );
        // Without the flag both are replaced; with it, same-kind entries merge.
        let name = "y".repeat(150);
        let bytes = tar_of(&[
            ("d/", true),
            (&name, false),
            ("sub/", true),
            ("sub/z", false),
        ]);
        extract(
            &mut bytes.as_slice(),
            &dirfd::open_dir(tmp.path()).unwrap(),
            true,
            false,
        )
        .unwrap();
        assert_eq!(std::fs::read(tmp.path().join(&name)).unwrap(), b"x");
        assert_eq!(std::fs::read(tmp.path().join("sub/z")).unwrap(), b"x");
        let bytes = tar_of(&[("d", false)]);
        extract(
            &mut bytes.as_slice(),
            &dirfd::open_dir(tmp.path()).unwrap(),
            false,
            false,
        )
        .unwrap();
        assert!(tmp.path().join("d").is_file());
    }
}
