//! The archive API behind `docker cp`: stat (`HEAD`), read (`GET`, a tar) and extract
//! (`PUT`) a path of a container, running or stopped.
//!
//! Every path resolves inside the container with `openat2(RESOLVE_IN_ROOT)` from
//! `berth_sys::resolve`: a running container through `/proc/<pid>/root` (its own mount
//! tree, volumes included), a stopped one through an overlay view of its layers, or the
//! host directory of a volume or bind when the path lies under one. Symlinks planted in the
//! container resolve as if its root were `/`, never onto the host.
//!
//! Only the resolution of the named path is fd-based; walking a directory for a tar and
//! extracting below it use paths under `/proc/self/fd/<fd>`. So that nothing inside can
//! swap a directory for a symlink meanwhile, a running container is frozen for the
//! duration (moby's fix for CVE-2018-15664); the extraction also refuses symlinks in
//! parent components and never writes through one.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::fs_views::{append_entry, append_tree, ChannelWriter, RootView};
use super::{mounts, rid, Containers};
use crate::system::format_rfc3339;
use crate::volumes::{self, DriverSource};
use crate::{Engine, EngineError};

/// What the archive routes resolve a container path against.
struct Root {
    dir: File,
    /// The path to resolve inside `dir`.
    path: PathBuf,
    /// Keeps a stopped container's overlay view mounted while in use.
    _view: Option<RootView>,
}

/// A resolved path: its parent directory (open) and its last component.
struct Resolved {
    parent: OwnedFd,
    name: OsString,
    /// Keep the root (and its view) alive as long as the fd is used.
    _root: Root,
}

impl Resolved {
    /// A path reaching the object through the open parent (works across mount
    /// namespaces).
    fn host_path(&self) -> PathBuf {
        let base = PathBuf::from(format!("/proc/self/fd/{}", self.parent.as_raw_fd()));
        if self.name.is_empty() {
            base.join(".")
        } else {
            base.join(&self.name)
        }
    }
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

/// A running container frozen while its files are walked or written, so that nothing in
/// it can swap a directory for a symlink between our checks and our use (moby's fix for
/// CVE-2018-15664). A container the user paused is left as it is.
pub(super) struct Frozen {
    c: Arc<Containers>,
    rid: Option<String>,
}

impl Frozen {
    pub(super) async fn new(c: &Arc<Containers>, name: &str) -> Result<Frozen, EngineError> {
        let (id, running, paused) = {
            let e = c.get(name)?;
            let r = e.rec();
            (r.id.clone(), r.running(), r.state.paused)
        };
        if !running || paused {
            return Ok(Frozen {
                c: c.clone(),
                rid: None,
            });
        }
        let rid = rid(&id).to_string();
        c.runtime.pause(&rid).await.map_err(super::rt_err)?;
        Ok(Frozen {
            c: c.clone(),
            rid: Some(rid),
        })
    }

    pub(super) async fn thaw(self) {
        if let Some(rid) = &self.rid {
            if let Err(e) = self.c.runtime.resume(rid).await {
                tracing::warn!(id = %rid, error = %e, "cannot thaw the container after a copy");
            }
        }
    }
}

impl Engine {
    /// Opens what `path` of container `name` resolves against; `write` for extraction
    /// (a stopped container's view then writes into its own upper dir).
    fn archive_root(&self, name: &str, path: &str, write: bool) -> Result<Root, EngineError> {
        let c = &self.containers;
        let rec = c.get(name)?.rec().clone();
        let clean_path = clean(path);
        if rec.running() && rec.state.pid > 0 {
            let p = format!("/proc/{}/root", rec.state.pid);
            let dir = File::open(&p).map_err(EngineError::io("cannot open", Path::new(&p)))?;
            return Ok(Root {
                dir,
                path: PathBuf::from(path),
                _view: None,
            });
        }
        let data_dir = c.data_dir(&rec.id);
        // Under a volume or bind: that host directory is the root.
        let data_root = self.config().data_root.clone();
        let best = mounts::load(&data_dir)
            .into_iter()
            .filter(|m| clean_path.starts_with(&m.destination))
            .max_by_key(|m| m.destination.len());
        if let Some(m) = best {
            let source = match m.typ.as_str() {
                "bind" => Some(PathBuf::from(&m.source)),
                "volume" => match volumes::get(&data_root, &m.name)?.driver_source() {
                    None => Some(volumes::data_path(&data_root, &m.name)),
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
    fn archive_resolve(
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
        let root = self.archive_root(name, path, write)?;
        let follow = root.path.to_string_lossy().ends_with('/')
            || root.path.to_string_lossy().ends_with("/.");
        let r = if follow {
            berth_sys::resolve::openat_in_root(&root.dir, &root.path, libc_flags::PATH_DIR, 0)
                .map(|fd| (fd, OsString::new()))
        } else {
            berth_sys::resolve::open_parent_in_root(&root.dir, &root.path)
        };
        let (parent, last) = r.map_err(|_| not_found(path, name))?;
        let resolved = Resolved {
            parent,
            name: last,
            _root: root,
        };
        let md =
            std::fs::symlink_metadata(resolved.host_path()).map_err(|_| not_found(path, name))?;
        Ok((resolved, md))
    }

    /// `HEAD /containers/{id}/archive`: the stat object Docker sends (base64 JSON in
    /// `X-Docker-Container-Path-Stat`).
    pub async fn container_path_stat(&self, name: &str, path: &str) -> Result<Value, EngineError> {
        let (r, md) = self.archive_resolve(name, path, false)?;
        Ok(stat_json(&r, &md, path))
    }

    /// `GET /containers/{id}/archive`: the stat and a tar of the path, its entries named
    /// after the path's last component (`.` for a path ending in `/.`).
    pub async fn container_archive(
        &self,
        name: &str,
        path: &str,
    ) -> Result<(Value, mpsc::Receiver<io::Result<Bytes>>), EngineError> {
        let frozen = Frozen::new(&self.containers, name).await?;
        let (r, md) = match self.archive_resolve(name, path, false) {
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
        tokio::task::spawn_blocking(move || {
            let w = io::BufWriter::with_capacity(256 * 1024, ChannelWriter(tx.clone()));
            let mut b = tar::Builder::new(w);
            b.follow_symlinks(false);
            let host = r.host_path();
            let res = append_entry(&mut b, &host, &rebase, &md)
                .and_then(|()| {
                    if md.is_dir() {
                        append_tree(&mut b, &host, &rebase, false)
                    } else {
                        Ok(())
                    }
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

    /// `PUT /containers/{id}/archive`: extracts the tar `body` (read whole first, so a
    /// refused archive changes nothing) into the directory `path`.
    pub async fn container_extract(
        &self,
        name: &str,
        path: &str,
        body: Vec<u8>,
        no_overwrite_dir_non_dir: bool,
        copy_uid_gid: bool,
    ) -> Result<(), EngineError> {
        let entry = self.containers.get(name)?;
        // A stopped container's upper dir is written: no start meanwhile.
        let _guard = entry.op.lock().await;
        let frozen = Frozen::new(&self.containers, name).await?;
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
        body: Vec<u8>,
        no_overwrite_dir_non_dir: bool,
        copy_uid_gid: bool,
    ) -> Result<(), EngineError> {
        let (r, md) = self.archive_resolve(name, path, true)?;
        if !md.is_dir() {
            return Err(EngineError::InvalidArgument(
                "extraction point is not a directory".into(),
            ));
        }
        let dest = r.host_path();
        tokio::task::spawn_blocking(move || {
            if no_overwrite_dir_non_dir {
                check_overwrites(&dest, &body)?;
            }
            let opts = berth_image::unpack::UnpackOptions {
                preserve_ownership: copy_uid_gid,
                overlay_whiteouts: false,
            };
            let res =
                berth_image::unpack::unpack_layer(io::Cursor::new(&body), &dest.join("."), &opts)
                    .map(|_| ())
                    .map_err(|e| {
                        EngineError::InvalidArgument(format!("cannot extract archive: {e}"))
                    });
            drop(r);
            res
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?
    }
}

/// Flags for resolving a directory (kept here so the call site reads plainly).
mod libc_flags {
    pub const PATH_DIR: i32 = nix::libc::O_PATH | nix::libc::O_DIRECTORY;
}

/// Docker's `noOverwriteDirNonDir`: an entry may not replace a directory with a
/// non-directory or the reverse.
fn check_overwrites(dest: &Path, tar_bytes: &[u8]) -> Result<(), EngineError> {
    let mut a = tar::Archive::new(tar_bytes);
    let entries = a
        .entries()
        .map_err(|e| EngineError::InvalidArgument(format!("invalid archive: {e}")))?;
    for e in entries {
        let e = e.map_err(|e| EngineError::InvalidArgument(format!("invalid archive: {e}")))?;
        let name = e
            .path()
            .map_err(|e| EngineError::InvalidArgument(format!("invalid archive: {e}")))?
            .into_owned();
        let rel = clean(&name.to_string_lossy());
        let rel = rel.strip_prefix("/").unwrap_or(&rel);
        if rel.as_os_str().is_empty() {
            continue;
        }
        let Ok(existing) = std::fs::symlink_metadata(dest.join(rel)) else {
            continue;
        };
        let entry_dir = e.header().entry_type().is_dir();
        if existing.is_dir() && !entry_dir {
            return Err(EngineError::InvalidArgument(format!(
                "cannot overwrite directory \"/{}\" with non-directory \"{}\"",
                rel.display(),
                name.display()
            )));
        }
        if !existing.is_dir() && entry_dir {
            return Err(EngineError::InvalidArgument(format!(
                "cannot overwrite non-directory \"/{}\" with directory \"{}\"",
                rel.display(),
                name.display()
            )));
        }
    }
    Ok(())
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
        match std::fs::read_link(r.host_path()) {
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

    #[test]
    fn refuses_dir_non_dir_overwrites() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        b.append_data(&mut h, "d", &b"x"[..]).unwrap();
        let bytes = b.into_inner().unwrap();
        let e = check_overwrites(tmp.path(), &bytes).unwrap_err();
        assert!(e.to_string().starts_with("cannot overwrite directory"));
    }
}
