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
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::fs_views::{append_entry, append_tree, RootView};
use super::{mounts, rid, Containers};
use crate::images::BodyReader;
use crate::system::format_rfc3339;
use crate::volumes::{self, DriverSource};
use crate::{Engine, EngineError};
use berth_image::chunks::StreamWriter;

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
            let mut b = tar::Builder::new(StreamWriter::new(tx.clone()));
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

    /// `PUT /containers/{id}/archive`: extracts the tar in `body` into the directory
    /// `path` while it arrives (on a blocking thread). As dockerd, a refused entry stops
    /// the extraction where it is: entries before it stay.
    pub async fn container_extract(
        &self,
        name: &str,
        path: &str,
        body: BodyReader,
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
        body: BodyReader,
        no_overwrite_dir_non_dir: bool,
        copy_uid_gid: bool,
    ) -> Result<(), EngineError> {
        let checked = self.archive_resolve(name, path, true).and_then(|(r, md)| {
            if !md.is_dir() {
                return Err(EngineError::InvalidArgument(
                    "extraction point is not a directory".into(),
                ));
            }
            self.check_writable(name, path)?;
            Ok(r)
        });
        let r = match checked {
            Ok(r) => r,
            Err(e) => {
                // Read the body before answering: a client still sending would see a
                // broken pipe instead of the error.
                let _ = tokio::io::copy(
                    &mut tokio::io::AsyncReadExt::take(body, DRAIN_MAX),
                    &mut tokio::io::sink(),
                )
                .await;
                return Err(e);
            }
        };
        let dest = r.host_path();
        // The body is read here, in the request's own task, and handed to the extracting
        // thread in large chunks: a thread woken for every network frame made context
        // switches the largest cost of a copy on two cores.
        let (tx, rx) = mpsc::channel::<Vec<u8>>(PUMP_CHUNKS);
        let (spare_tx, spare_rx) = std::sync::mpsc::channel();
        let extractor = tokio::task::spawn_blocking(move || {
            let mut reader = ChunkReceiver {
                rx,
                spare: spare_tx,
                cur: Vec::new(),
                pos: 0,
            };
            let res = extract(&mut reader, &dest, no_overwrite_dir_non_dir, copy_uid_gid);
            drop(reader);
            drop(r);
            res
        });
        let mut body = body;
        let pumped = pump(&mut body, tx, spare_rx).await;
        let res = extractor
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        if res.is_err() {
            // Read the rest, so that the client gets the answer rather than a connection
            // reset while it still sends (bounded, as image load does).
            let _ = tokio::io::copy(
                &mut tokio::io::AsyncReadExt::take(body, DRAIN_MAX),
                &mut tokio::io::sink(),
            )
            .await;
        }
        match (res, pumped) {
            (Err(e), _) => Err(e),
            (Ok(()), Err(e)) => Err(EngineError::InvalidArgument(format!(
                "cannot read the archive: {e}"
            ))),
            (Ok(()), Ok(())) => Ok(()),
        }
    }

    /// moby `checkWritablePath`: under a mount, that mount must be read-write; elsewhere
    /// the rootfs must not be read-only (`--read-only`). `HostConfig.Tmpfs` mounts are no
    /// mount points to dockerd here, so they count as the rootfs.
    fn check_writable(&self, name: &str, path: &str) -> Result<(), EngineError> {
        let rec = self.containers.get(name)?.rec().clone();
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
            None if rec.host_config.get("ReadonlyRootfs") == Some(&Value::Bool(true)) => Err(
                EngineError::InvalidArgument("container rootfs is marked read-only".into()),
            ),
            None => Ok(()),
        }
    }
}

/// Extracts the tar read from `body` below `dest` with the layer unpacker's safety rules
/// (no `..`, nothing through symlinks, existing links replaced), whiteouts kept as plain
/// files, owners kept only with `copy_uid_gid`.
fn extract(
    body: &mut dyn io::Read,
    dest: &Path,
    no_overwrite_dir_non_dir: bool,
    copy_uid_gid: bool,
) -> Result<(), EngineError> {
    let opts = berth_image::unpack::UnpackOptions {
        preserve_ownership: copy_uid_gid,
        overlay_whiteouts: false,
    };
    let res = if no_overwrite_dir_non_dir {
        let guard = OverwriteGuard::new(body, dest.to_path_buf());
        berth_image::unpack::unpack_archive(guard, &dest.join("."), &opts)
    } else {
        berth_image::unpack::unpack_archive(body, &dest.join("."), &opts)
    };
    res.map(|_| ()).map_err(|e| {
        // A refusal of the guard travels as the reader's error; give its own words.
        let refused = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<io::Error>())
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<Refused>());
        match refused {
            Some(r) => EngineError::InvalidArgument(r.0.clone()),
            None => EngineError::InvalidArgument(format!("cannot extract archive: {e}")),
        }
    })
}

/// Size of the chunks the request body is handed to the extracting thread in.
const PUMP_CHUNK: usize = 1 << 20;
/// Chunks in flight between them.
const PUMP_CHUNKS: usize = 8;

/// Reads `body` into `PUMP_CHUNK`-sized chunks for `tx` until it ends or the receiver is
/// gone (the extraction stopped: the caller then drains what is left). Buffers come back
/// through `spare` for reuse, so that a long upload allocates (and faults in) a few only.
async fn pump(
    body: &mut BodyReader,
    tx: mpsc::Sender<Vec<u8>>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
) -> io::Result<()> {
    use tokio::io::AsyncReadExt;
    loop {
        let mut buf = spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(PUMP_CHUNK));
        buf.clear();
        let mut ended = false;
        while buf.len() < PUMP_CHUNK {
            let room = (PUMP_CHUNK - buf.len()) as u64;
            if (&mut *body).take(room).read_buf(&mut buf).await? == 0 {
                ended = true;
                break;
            }
        }
        if !buf.is_empty() && tx.send(buf).await.is_err() {
            return Ok(());
        }
        if ended {
            return Ok(());
        }
    }
}

/// The extracting thread's end of [`pump`]'s channel.
struct ChunkReceiver {
    rx: mpsc::Receiver<Vec<u8>>,
    spare: std::sync::mpsc::Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl io::Read for ChunkReceiver {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.blocking_recv() {
                Some(b) => {
                    let used = std::mem::replace(&mut self.cur, b);
                    if used.capacity() > 0 {
                        let _ = self.spare.send(used);
                    }
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The most of a refused upload read (and dropped) before answering.
const DRAIN_MAX: u64 = 256 << 20;

/// Why [`OverwriteGuard`] stopped the stream (Docker's words).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

const BLOCK: usize = 512;
/// Largest GNU long-name or PAX record the guard reads to learn an entry's name.
const MAX_META: u64 = 1 << 20;

/// Docker's `noOverwriteDirNonDir` on a streamed tar: a reader between the body and the
/// unpacker that parses each header before passing it on, and fails the stream (so the
/// entry is never applied) when it would replace a directory by a non-directory or the
/// reverse. Entry data passes through untouched. It reads headers as the `tar` crate
/// does (GNU long names, PAX `path` and `size`, sparse extension blocks), so that both
/// agree on where each header is.
struct OverwriteGuard<R> {
    inner: R,
    dest: PathBuf,
    /// Bytes ready for the reader (headers and metadata entries), from `pos`.
    out: Vec<u8>,
    pos: usize,
    /// Entry data (with its padding) still to pass through.
    data_left: u64,
    long_name: Option<Vec<u8>>,
    pax: Option<Vec<u8>>,
    /// The end-of-archive block was seen: pass the rest through.
    ended: bool,
}

impl<R: io::Read> OverwriteGuard<R> {
    fn new(inner: R, dest: PathBuf) -> Self {
        OverwriteGuard {
            inner,
            dest,
            out: Vec::with_capacity(BLOCK),
            pos: 0,
            data_left: 0,
            long_name: None,
            pax: None,
            ended: false,
        }
    }

    /// Reads one block into `out`; false at a clean end of stream.
    fn read_block(&mut self) -> io::Result<bool> {
        let start = self.out.len();
        self.out.resize(start + BLOCK, 0);
        let mut got = 0;
        while got < BLOCK {
            match self.inner.read(&mut self.out[start + got..start + BLOCK]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if got < BLOCK {
            // Truncated or ended: hand on what there is; the unpacker reports it.
            self.out.truncate(start + got);
            return Ok(false);
        }
        Ok(true)
    }

    /// Reads the next header (and, for metadata entries, their data) into `out`, checking
    /// real entries.
    fn next_header(&mut self) -> io::Result<()> {
        self.out.clear();
        self.pos = 0;
        let start = self.out.len();
        if !self.read_block()? {
            return Ok(());
        }
        let block: [u8; BLOCK] = self.out[start..start + BLOCK]
            .try_into()
            .expect("one block");
        if block.iter().all(|b| *b == 0) {
            self.ended = true;
            return Ok(());
        }
        let h = tar::Header::from_byte_slice(&block);
        let kind = h.entry_type();
        let recognized = h.as_gnu().is_some() || h.as_ustar().is_some();
        let meta = kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions();
        let mut size = h.entry_size()?;
        if !meta {
            if let Some(s) = self.pax.as_deref().and_then(pax_size) {
                size = s;
            }
        }
        let padded = size
            .checked_add(BLOCK as u64 - 1)
            .ok_or_else(|| io::Error::other("size overflow"))?
            & !(BLOCK as u64 - 1);
        if meta && recognized && !kind.is_pax_global_extensions() {
            if size > MAX_META {
                return Err(io::Error::other("archive metadata entry too large"));
            }
            let data_start = self.out.len();
            for _ in 0..padded / BLOCK as u64 {
                if !self.read_block()? {
                    return Ok(());
                }
            }
            let data = self.out[data_start..data_start + size as usize].to_vec();
            if kind.is_gnu_longname() {
                self.long_name = Some(data);
            } else if kind.is_pax_local_extensions() {
                self.pax = Some(data);
            }
            return Ok(());
        }
        if meta {
            self.data_left = padded;
            return Ok(());
        }
        // A real entry: its name as the tar crate reads it.
        let name = match (self.long_name.take(), self.pax.take()) {
            (Some(mut n), _) => {
                if n.last() == Some(&0) {
                    n.pop();
                }
                n
            }
            (None, Some(p)) => pax_value(&p, "path").unwrap_or_else(|| h.path_bytes().into_owned()),
            (None, None) => h.path_bytes().into_owned(),
        };
        let is_dir = kind.is_dir() || (block[156] == 0 && name.ends_with(b"/"));
        self.check(&name, is_dir)?;
        if kind.is_gnu_sparse() {
            let mut extended = h.as_gnu().is_some_and(|g| g.is_extended());
            while extended {
                let at = self.out.len();
                if !self.read_block()? {
                    return Ok(());
                }
                extended = self.out[at + 504] != 0;
            }
        }
        self.data_left = padded;
        Ok(())
    }

    fn check(&self, name: &[u8], is_dir: bool) -> io::Result<()> {
        let name = String::from_utf8_lossy(name);
        let rel = clean(&name);
        let rel = rel.strip_prefix("/").unwrap_or(&rel);
        if rel.as_os_str().is_empty() {
            return Ok(());
        }
        let Ok(existing) = std::fs::symlink_metadata(self.dest.join(rel)) else {
            return Ok(());
        };
        let msg = match (existing.is_dir(), is_dir) {
            (true, false) => "cannot overwrite directory",
            (false, true) => "cannot overwrite non-directory",
            _ => return Ok(()),
        };
        let with = if is_dir { "directory" } else { "non-directory" };
        Err(io::Error::other(Refused(format!(
            "{msg} \"/{}\" with {with} \"{name}\"",
            rel.display()
        ))))
    }
}

impl<R: io::Read> io::Read for OverwriteGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.out.len() {
                let n = buf.len().min(self.out.len() - self.pos);
                buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.ended {
                return self.inner.read(buf);
            }
            if self.data_left > 0 {
                let want = buf
                    .len()
                    .min(usize::try_from(self.data_left).unwrap_or(usize::MAX));
                let n = self.inner.read(&mut buf[..want])?;
                self.data_left -= n as u64;
                return Ok(n);
            }
            self.next_header()?;
            if self.out.is_empty() && !self.ended {
                return Ok(0);
            }
        }
    }
}

/// The value of PAX record `key` in `data` (`"<len> <key>=<value>\n"` records).
fn pax_value(data: &[u8], key: &str) -> Option<Vec<u8>> {
    tar::PaxExtensions::new(data)
        .filter_map(Result::ok)
        .find(|e| e.key_bytes() == key.as_bytes())
        .map(|e| e.value_bytes().to_vec())
}

fn pax_size(data: &[u8]) -> Option<u64> {
    std::str::from_utf8(&pax_value(data, "size")?)
        .ok()?
        .parse()
        .ok()
}

/// Flags for resolving a directory (kept here so the call site reads plainly).
mod libc_flags {
    pub const PATH_DIR: i32 = nix::libc::O_PATH | nix::libc::O_DIRECTORY;
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
        // A file over a directory: refused in Docker's words, earlier entries kept.
        let bytes = tar_of(&[("ok", false), ("d", false)]);
        let e = extract(&mut bytes.as_slice(), tmp.path(), true, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot overwrite directory \"/d\" with non-directory \"d\""
        );
        assert!(tmp.path().join("d").is_dir());
        // A directory over a file, behind a GNU long name and a PAX path.
        let long = "x".repeat(120);
        std::fs::write(tmp.path().join(&long), "x").unwrap();
        let bytes = tar_of(&[(&format!("{long}/"), true)]);
        let e = extract(&mut bytes.as_slice(), tmp.path(), true, false).unwrap_err();
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
        let e = extract(&mut bytes.as_slice(), tmp.path(), true, false).unwrap_err();
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
        extract(&mut bytes.as_slice(), tmp.path(), true, false).unwrap();
        assert_eq!(std::fs::read(tmp.path().join(&name)).unwrap(), b"x");
        assert_eq!(std::fs::read(tmp.path().join("sub/z")).unwrap(), b"x");
        let bytes = tar_of(&[("d", false)]);
        extract(&mut bytes.as_slice(), tmp.path(), false, false).unwrap();
        assert!(tmp.path().join("d").is_file());
    }
}
