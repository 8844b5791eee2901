//! Views of a container's filesystem: `changes` (A/C/D read from the overlay upper dir,
//! whiteouts and opaque directories understood), `export` (a tar of the merged root),
//! `commit` (the upper dir as a new image layer, written in one pass: a tar built on one
//! thread while the image store unpacks, hashes and indexes it on another), sizes and
//! `/system/df`. Stopped containers are read through a [`RootView`]; a daemon killed
//! while one was mounted leaves it behind, and the next start removes it.
//!
//! Owns: walking `<data-root>/containers/<id>/rw/diff`, read-only views of a stopped
//! container's root, tar writing of a directory tree (through directory descriptors,
//! `berth_sys::dirfd`: a running container that swaps a directory for a symlink to the
//! host meanwhile gets its symlink archived, never the host's files). Does not own: the layers
//! (`berth-image` stores and unpacks them) nor volume records (`volumes`).

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use super::{record::Record, Containers};
use crate::images::ImageListOptions;
use crate::system::now_rfc3339;
use crate::volumes::dir_size;
use crate::{Engine, EngineError};
use berth_image::chunks::{read_or_zeros, StreamWriter};
use berth_sys::dirfd;
use xattr::FileExt;

/// The xattr overlayfs reads to treat a directory as opaque.
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// An overlay whiteout: a 0/0 character device.
fn is_whiteout(md: &std::fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

/// Whether `rel` exists in the image's layers (`lowers`, top first).
fn in_lowers(lowers: &[PathBuf], rel: &Path) -> bool {
    for l in lowers {
        if let Ok(md) = std::fs::symlink_metadata(l.join(rel)) {
            return !is_whiteout(&md);
        }
    }
    false
}

/// `docker diff` entries (path, kind: 0 changed, 1 added, 2 deleted) of the upper dir
/// `upper` over `lowers` (top first), sorted by path. The upper dir, which a running
/// container changes meanwhile, is walked through directory descriptors; the lowers are
/// image layers nobody writes.
pub(crate) fn changes(upper: &Path, lowers: &[PathBuf]) -> Vec<(String, u8)> {
    fn walk(dir: &File, lowers: &[PathBuf], rel: &Path, out: &mut Vec<(String, u8)>) {
        if rel.components().count() > dirfd::MAX_DEPTH {
            return;
        }
        let Ok(names) = dirfd::read_names(dir) else {
            return;
        };
        for (n, hint) in names {
            let r = rel.join(&n);
            let Ok(o) = dirfd::open_entry(dir, &n, hint) else {
                continue;
            };
            let shown = format!("/{}", r.display());
            if is_whiteout(&o.md) {
                out.push((shown, 2));
                continue;
            }
            let existed = in_lowers(lowers, &r);
            out.push((shown, if existed { 0 } else { 1 }));
            if o.md.is_dir() {
                if existed && is_opaque_fd(&o.file) {
                    // Everything the image had below an opaque dir is gone, unless the
                    // upper dir has it again.
                    for l in lowers {
                        for c in std::fs::read_dir(l.join(&r))
                            .into_iter()
                            .flatten()
                            .flatten()
                        {
                            let cr = r.join(c.file_name());
                            if matches!(dirfd::stat_child(&o.file, &c.file_name()), Ok(None)) {
                                out.push((format!("/{}", cr.display()), 2));
                            }
                        }
                    }
                }
                walk(&o.file, lowers, &r, out);
            }
        }
    }
    let mut out = Vec::new();
    if let Ok(top) = dirfd::open_dir(upper) {
        walk(&top, lowers, Path::new(""), &mut out);
    }
    out.sort();
    out.dedup();
    out
}

/// Appends the tree below the open directory `dir` to `b`, entry names under `prefix`
/// (`""` for the top, else ending without `/`). Each child is opened relative to its
/// parent's descriptor without following it (`berth_sys::dirfd`), and its header made
/// from that descriptor: a directory swapped for a symlink meanwhile is archived as the
/// symlink it has become, never walked into. With `layer`, overlay whiteouts and opaque
/// dirs become `.wh.NAME` and `.wh..wh..opq` entries (the image layer format).
pub(crate) fn append_tree<W: TarSink>(
    b: &mut tar::Builder<W>,
    dir: &File,
    prefix: &str,
    layer: bool,
) -> io::Result<()> {
    append_tree_at(b, dir, prefix, layer, 0)
}

fn append_tree_at<W: TarSink>(
    b: &mut tar::Builder<W>,
    dir: &File,
    prefix: &str,
    layer: bool,
    depth: usize,
) -> io::Result<()> {
    if depth > dirfd::MAX_DEPTH {
        return Err(dirfd::too_deep());
    }
    let mut entries = dirfd::read_names(dir)?;
    entries.sort_by(|x, y| x.0.cmp(&y.0));
    let join = |n: &str| {
        if prefix.is_empty() {
            n.to_string()
        } else {
            format!("{prefix}/{n}")
        }
    };
    for (fname, hint) in entries {
        let mut o = match dirfd::open_entry(dir, &fname, hint) {
            Ok(o) => o,
            // Removed since the directory was read: as if it never was.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let fname = fname.to_string_lossy().into_owned();
        let name = join(&fname);
        if layer && is_whiteout(&o.md) {
            append_empty(b, &join(&format!(".wh.{fname}")), &o.md)?;
            continue;
        }
        if o.md.file_type().is_socket() {
            continue;
        }
        append_entry(b, &mut o, &name)?;
        if o.md.is_dir() {
            if layer && is_opaque_fd(&o.file) {
                append_empty(b, &format!("{name}/.wh..wh..opq"), &o.md)?;
            }
            append_tree_at(b, &o.file, &name, layer, depth + 1)?;
        }
    }
    Ok(())
}

fn is_opaque_fd(dir: &File) -> bool {
    matches!(dir.get_xattr(OPAQUE_XATTR), Ok(Some(v)) if v == b"y")
}

/// Writes `name` into `h`, with a GNU long-name record first when it does not fit.
/// Names are kept verbatim (`./x` stays `./x`, which the docker CLI's rebasing needs).
fn set_name<W: TarSink>(
    b: &mut tar::Builder<W>,
    h: &mut tar::Header,
    name: &str,
) -> io::Result<()> {
    let bytes = name.as_bytes();
    let field = &mut h.as_old_mut().name;
    if bytes.len() <= field.len() {
        field[..bytes.len()].copy_from_slice(bytes);
        return Ok(());
    }
    let mut long = tar::Header::new_gnu();
    long.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    long.set_entry_type(tar::EntryType::GNULongName);
    long.set_mode(0o644);
    long.set_size(bytes.len() as u64 + 1);
    long.set_cksum();
    let mut data = bytes.to_vec();
    data.push(0);
    b.append(&long, data.as_slice())?;
    let n = field.len();
    field.copy_from_slice(&bytes[..n]);
    Ok(())
}

/// One entry for the opened file `o` (see [`dirfd::open_entry`]) named `name` (a
/// directory gets a trailing `/`); contents and header both come from its descriptor.
pub(crate) fn append_entry<W: TarSink>(
    b: &mut tar::Builder<W>,
    o: &mut dirfd::Opened,
    name: &str,
) -> io::Result<()> {
    let md = &o.md;
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(md, tar::HeaderMode::Complete);
    let ft = md.file_type();
    let name = if ft.is_dir() && !name.ends_with('/') {
        format!("{name}/")
    } else {
        name.to_string()
    };
    if ft.is_symlink() {
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        let target = dirfd::read_link(&o.file)?;
        if h.set_link_name(&target).is_err() {
            // A target over 100 bytes: tar's own long-link records (names normalised).
            return b.append_link(&mut h, &name, &target);
        }
        set_name(b, &mut h, &name)?;
        h.set_cksum();
        return b.append(&h, io::empty());
    }
    if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
        h.set_entry_type(if ft.is_char_device() {
            tar::EntryType::Char
        } else if ft.is_block_device() {
            tar::EntryType::Block
        } else {
            tar::EntryType::Fifo
        });
        let rdev = md.rdev();
        h.set_device_major(nix::sys::stat::major(rdev) as u32)?;
        h.set_device_minor(nix::sys::stat::minor(rdev) as u32)?;
        h.set_size(0);
    } else if ft.is_dir() {
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
    }
    set_name(b, &mut h, &name)?;
    h.set_cksum();
    if ft.is_file() {
        // Exactly the size in the header, read in large blocks: the tar crate copies with
        // 8 KiB reads, and a file that grew meanwhile would corrupt the archive.
        let w = b.get_mut();
        w.write_all(h.as_bytes())?;
        w.copy_file(&mut o.file, md.len())?;
        let pad = (512 - md.len() % 512) % 512;
        w.write_all(&[0u8; 512][..pad as usize])
    } else {
        b.append(&h, io::empty())
    }
}

/// What a tar of a tree is written to: any writer, with file contents read straight into
/// the writer's own buffer where it has one.
pub(crate) trait TarSink: Write {
    /// Appends exactly `len` bytes of `file` (zeros past its end, if it shrank).
    fn copy_file(&mut self, file: &mut std::fs::File, len: u64) -> io::Result<()> {
        copy_exact(file, self, len)
    }
}

impl TarSink for Vec<u8> {}
impl TarSink for ChunkWriter {}

impl TarSink for StreamWriter {
    fn copy_file(&mut self, file: &mut std::fs::File, len: u64) -> io::Result<()> {
        self.read_exact_from(file, len)
    }
}

/// Size of the blocks file contents are read in when archived.
const READ_BLOCK: usize = 1 << 20;

thread_local! {
    static READ_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Copies `len` bytes of `r` to `w`; a file that shrank meanwhile is padded with zeros.
fn copy_exact(r: &mut impl io::Read, w: &mut (impl Write + ?Sized), len: u64) -> io::Result<()> {
    READ_BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        let want = usize::try_from(len).unwrap_or(usize::MAX).min(READ_BLOCK);
        if buf.len() < want {
            buf.resize(want, 0);
        }
        let mut left = len;
        let mut eof = false;
        while left > 0 {
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
            let got = read_or_zeros(r, &mut buf[..n], &mut eof)?;
            w.write_all(&buf[..got])?;
            left -= got as u64;
        }
        Ok(())
    })
}

fn append_empty<W: TarSink>(
    b: &mut tar::Builder<W>,
    name: &str,
    md: &std::fs::Metadata,
) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(0);
    h.set_mode(0o644);
    h.set_mtime(md.mtime().max(0) as u64);
    set_name(b, &mut h, name)?;
    h.set_cksum();
    b.append(&h, io::empty())
}

/// Size of the chunks between a tar writer and its reader on another thread.
const CHUNK: usize = 1 << 20;
/// Chunks queued between them (bounds the memory one stream holds).
const CHUNKS_IN_FLIGHT: usize = 4;

/// The writing end of an in-process pipe of `CHUNK`-sized buffers.
pub(crate) struct ChunkWriter {
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    pub(crate) fn new(tx: std::sync::mpsc::SyncSender<Vec<u8>>) -> Self {
        ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .send(full)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the reader went away"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&buf[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

/// The reading end of [`ChunkWriter`]'s pipe: end of stream once the writer is gone.
pub(crate) struct ChunkReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl ChunkReader {
    pub(crate) fn new(rx: std::sync::mpsc::Receiver<Vec<u8>>) -> Self {
        ChunkReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        }
    }
}

impl io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.cur = c;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A read-only merged view of a stopped container's root: an overlay of its upper dir
/// over the image layers with a throw-away upper, unmounted and removed on drop.
pub(crate) struct RootView {
    pub root: PathBuf,
    dir: Option<PathBuf>,
}

impl RootView {
    /// The live rootfs when the container runs, else a fresh overlay under `data_dir`:
    /// read-only (a throw-away upper), or with `writable` the container's own upper dir
    /// (the caller holds the container's lock so that it does not start meanwhile).
    pub(crate) fn open(
        live: Option<PathBuf>,
        data_dir: &Path,
        image_lowers: &[PathBuf],
        writable: bool,
    ) -> Result<RootView, EngineError> {
        if let Some(root) = live.filter(|r| berth_sys::mount::is_mountpoint(r)) {
            return Ok(RootView { root, dir: None });
        }
        let dir = data_dir.join(format!("view-{}", &super::names::new_id()?[..12]));
        reap_stale_views(data_dir, &dir);
        let root = dir.join("merged");
        // Made first, so that its drop cleans up whatever fails below.
        let view = RootView {
            root: root.clone(),
            dir: Some(dir.clone()),
        };
        for d in ["merged", "upper", "work"] {
            let p = dir.join(d);
            std::fs::create_dir_all(&p).map_err(EngineError::io("cannot create", &p))?;
        }
        let mut lowers = Vec::new();
        let (upper, work) = if writable {
            (data_dir.join("rw/diff"), data_dir.join("rw/work"))
        } else {
            lowers.push(data_dir.join("rw/diff"));
            (dir.join("upper"), dir.join("work"))
        };
        lowers.extend(image_lowers.iter().cloned());
        if lowers.is_empty() {
            lowers.push(dir.join("upper"));
        }
        berth_sys::mount::mount_overlay(&root, &lowers, &upper, &work).map_err(EngineError::io(
            "cannot mount a view of the rootfs at",
            &root,
        ))?;
        Ok(view)
    }
}

/// The views this process has mounted now; any other `view-*` directory of a container
/// was left by a daemon that died mid-copy.
static LIVE_VIEWS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Registers `new` and removes the container's stale views (unmounted first).
fn reap_stale_views(data_dir: &Path, new: &Path) {
    let mut live = LIVE_VIEWS.lock().unwrap_or_else(|e| e.into_inner());
    remove_views(data_dir, &live);
    live.push(new.to_path_buf());
}

/// At daemon start, before any view exists: unmounts and removes the views of the
/// container at `data_dir` that a daemon killed mid-copy, -export or -commit left.
pub(crate) fn reap_views_at_start(data_dir: &Path) {
    remove_views(data_dir, &[]);
}

/// Removes the `view-*` directories of `data_dir` not in `keep`. One whose overlay cannot
/// be unmounted is left alone: removing files through it would delete the container's.
fn remove_views(data_dir: &Path, keep: &[PathBuf]) {
    for e in std::fs::read_dir(data_dir).into_iter().flatten().flatten() {
        let p = e.path();
        if !e.file_name().to_string_lossy().starts_with("view-") || keep.contains(&p) {
            continue;
        }
        tracing::warn!(path = %p.display(), "removing a stale rootfs view");
        let merged = p.join("merged");
        if let Err(err) = berth_sys::mount::unmount(&merged, true) {
            tracing::warn!(path = %merged.display(), error = %err, "cannot unmount a stale view");
            continue;
        }
        if berth_sys::mount::is_mountpoint(&merged) {
            tracing::warn!(path = %merged.display(), "a stale view stays mounted");
            continue;
        }
        if let Err(err) = std::fs::remove_dir_all(&p) {
            tracing::warn!(path = %p.display(), error = %err, "cannot remove a stale view");
        }
    }
}

impl Drop for RootView {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            LIVE_VIEWS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|p| p != dir);
            if let Err(e) = berth_sys::mount::unmount(&self.root, true) {
                tracing::warn!(path = %self.root.display(), error = %e, "cannot unmount rootfs view");
            }
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `POST /commit`'s options.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    pub repo: Option<String>,
    pub tag: Option<String>,
    pub comment: String,
    pub author: String,
    pub changes: Vec<String>,
    /// Freeze a running container while its layer is read (the API's default).
    pub pause: bool,
    /// The request body: a container config whose set fields override.
    pub config: Map<String, Value>,
}

/// Writes the upper dir of the container whose data dir is `dir` into the store as a
/// layer (blocking). One pass: the tar is made on one thread while the store unpacks,
/// hashes and indexes it on this one (no tar is kept).
pub(crate) fn write_upper_layer(
    store: &berth_image::store::ImageStore,
    dir: &Path,
) -> Result<berth_image::store::LayerMeta, EngineError> {
    let upper = dir.join("rw/diff");
    let (tx, rx) = std::sync::mpsc::sync_channel(CHUNKS_IN_FLIGHT);
    let producer = std::thread::Builder::new()
        .name("commit-tar".into())
        .spawn(move || {
            let mut b = tar::Builder::new(ChunkWriter::new(tx));
            b.follow_symlinks(false);
            append_tree(&mut b, &dirfd::open_dir(&upper)?, "", true)?;
            b.into_inner()?.flush()
        })
        .map_err(EngineError::io("cannot start a thread for", dir))?;
    let added = store.add_layer_split(ChunkReader::new(rx), None);
    let produced = producer
        .join()
        .map_err(|_| EngineError::Internal("the layer writer panicked".into()))?;
    produced.map_err(EngineError::io("cannot write the layer of", dir))?;
    Ok(added?)
}

impl Containers {
    /// Bytes in the container's writable layer.
    pub(crate) fn size_rw(&self, id: &str) -> i64 {
        dir_size(&self.data_dir(id).join("rw/diff")).max(0)
    }
}

impl Engine {
    fn fs_target(&self, name: &str) -> Result<(Record, PathBuf, Vec<PathBuf>), EngineError> {
        let c = &self.containers;
        let rec = c.subject(name)?.rec().clone();
        let mut lowers = self.images.layer_diff_dirs(&rec.image_id)?;
        lowers.reverse();
        let dir = c.data_dir(&rec.id);
        Ok((rec, dir, lowers))
    }

    /// `GET /containers/{id}/changes`: `[{"Path", "Kind"}]`, or null when nothing changed.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_changes(&self, name: &str) -> Result<Value, EngineError> {
        let (_, dir, lowers) = self.fs_target(name)?;
        let list = crate::blocking::spawn(move || {
            let lowers = super::init_layer::with_image(&dir, lowers);
            changes(&dir.join("rw/diff"), &lowers)
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?;
        if list.is_empty() {
            return Ok(Value::Null);
        }
        Ok(Value::Array(
            list.into_iter()
                .map(|(p, k)| json!({"Path": p, "Kind": k}))
                .collect(),
        ))
    }

    /// `GET /containers/{id}/export`: the merged root as a tar stream.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_export(
        &self,
        name: &str,
    ) -> Result<mpsc::Receiver<io::Result<Bytes>>, EngineError> {
        let (rec, dir, lowers) = self.fs_target(name)?;
        let live = rec.running().then(|| self.containers.rootfs(&rec.id));
        let view = crate::blocking::spawn(move || {
            let lowers = super::init_layer::with_image(&dir, lowers);
            RootView::open(live, &dir, &lowers, false)
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))??;
        let (tx, rx) = mpsc::channel(8);
        crate::blocking::spawn(move || {
            let mut b = tar::Builder::new(StreamWriter::new(tx.clone()));
            b.follow_symlinks(false);
            let r = dirfd::open_dir(&view.root)
                .and_then(|root| append_tree(&mut b, &root, "", false))
                .and_then(|()| b.into_inner())
                .and_then(|mut w| w.flush());
            if let Err(e) = r {
                tracing::warn!(error = %e, "export failed mid-stream");
                let _ = tx.blocking_send(Err(e));
            }
            drop(view);
        });
        Ok(rx)
    }

    /// `POST /commit`: the container's upper dir as a new layer on its image, with its
    /// config (and `changes`) as the image config. Returns the image ID.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_commit(
        &self,
        name: &str,
        opts: CommitOptions,
    ) -> Result<String, EngineError> {
        let reference = match (&opts.repo, &opts.tag) {
            (Some(r), t) if !r.is_empty() => {
                let s = match t {
                    Some(t) if !t.is_empty() => format!("{r}:{t}"),
                    _ => r.clone(),
                };
                Some(
                    s.parse::<berth_image::reference::Reference>()
                        .map_err(|e| EngineError::InvalidArgument(e.to_string()))?
                        .with_default_tag(),
                )
            }
            _ => None,
        };
        let (rec, dir, _) = self.fs_target(name)?;
        let store = self.images.clone();
        let frozen = if opts.pause {
            Some(super::pause::Frozen::new(&self.containers, name).await?)
        } else {
            None
        };
        let result = crate::blocking::spawn(move || {
            let mut config = super::record::as_map(&rec.config);
            for (k, v) in &opts.config {
                if !v.is_null() {
                    config.insert(k.clone(), v.clone());
                }
            }
            berth_image::changes::apply_changes(&mut config, &opts.changes)
                .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
            let layer = write_upper_layer(&store, &dir)?;
            let mut image: Value = serde_json::from_slice(&store.config_bytes(&rec.image_id)?)
                .map_err(|e| EngineError::Internal(format!("image config: {e}")))?;
            let now = now_rfc3339();
            image["config"] = Value::Object(config);
            image["created"] = json!(now);
            image["container"] = json!(rec.id);
            if !opts.author.is_empty() {
                image["author"] = json!(opts.author);
            }
            if !opts.comment.is_empty() {
                image["comment"] = json!(opts.comment);
            }
            match image["rootfs"]["diff_ids"].as_array_mut() {
                Some(d) => d.push(json!(layer.diff_id)),
                None => image["rootfs"] = json!({"type": "layers", "diff_ids": [layer.diff_id]}),
            }
            let created_by = rec.args_full().join(" ");
            let mut h = json!({"created": now, "created_by": created_by});
            if !opts.author.is_empty() {
                h["author"] = json!(opts.author);
            }
            if !opts.comment.is_empty() {
                h["comment"] = json!(opts.comment);
            }
            match image["history"].as_array_mut() {
                Some(list) => list.push(h),
                None => image["history"] = json!([h]),
            }
            let bytes =
                serde_json::to_vec(&image).map_err(|e| EngineError::Internal(e.to_string()))?;
            let added = store.add_image(&bytes)?;
            if let Some(r) = reference {
                store.tag(&added.id, &r, &now)?;
            }
            tracing::info!(container = %rec.id, image = %added.id, "container committed");
            Ok(added.id)
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()));
        if let Some(f) = frozen {
            f.thaw().await;
        }
        result?
    }

    /// Adds `SizeRw` (the writable layer) and `SizeRootFs` (that plus the image) to an
    /// inspect or list object, as `size=1` asks.
    pub async fn container_add_sizes(&self, v: &mut Value) {
        let id = v["Id"].as_str().unwrap_or("").to_string();
        let image = v["Image"]
            .as_str()
            .filter(|i| i.starts_with("sha256:"))
            .or_else(|| v["ImageID"].as_str())
            .unwrap_or("")
            .to_string();
        let c = self.containers.clone();
        let rw = crate::blocking::spawn(move || c.size_rw(&id))
            .await
            .unwrap_or(0);
        let image_size = self
            .images
            .list()
            .into_iter()
            .find(|r| r.id == image)
            .map_or(0, |r| r.size as i64);
        v["SizeRw"] = json!(rw);
        v["SizeRootFs"] = json!(rw + image_size);
    }

    /// `GET /system/df` (`type` limits the sections computed, as API 1.42+), shaped as
    /// dockerd's: `LayersSize` counts each layer once, an image's `SharedSize` is what
    /// its layers shared with other images hold (moby `daemon/images/image_list.go`), a
    /// container carries its `Mounts` and sizes; there is no build cache.
    pub async fn system_df(&self, types: &[String]) -> Result<Value, EngineError> {
        let want = |t: &str| types.is_empty() || types.iter().any(|x| x == t);
        let mut out = json!({"LayersSize": 0, "Images": [], "Containers": [], "Volumes": [],
                             "BuildCache": null, "BuilderSize": 0});
        let containers = self
            .container_list(true, &berth_api_types::filters::Filters::default())
            .await?;
        if want("image") {
            let images = self.image_list(ImageListOptions::default()).await?;
            // How many images use each layer (once per image).
            let mut refs: std::collections::HashMap<String, usize> = Default::default();
            let records = self.images.list();
            for r in &records {
                let mut seen = std::collections::HashSet::new();
                for d in r.diff_ids.iter().filter(|d| seen.insert(*d)) {
                    *refs.entry(d.clone()).or_default() += 1;
                }
            }
            let layer_size = |d: &str| self.images.layer(d).map_or(0, |m| m.size as i64);
            let layers: i64 = refs.keys().map(|d| layer_size(d)).sum();
            let mut list = Vec::new();
            for img in images {
                let users = containers
                    .iter()
                    .filter(|c| c["ImageID"].as_str() == Some(img.id.as_str()))
                    .count() as i64;
                let shared: i64 = records
                    .iter()
                    .find(|r| r.id == img.id)
                    .map(|r| {
                        let mut seen = std::collections::HashSet::new();
                        r.diff_ids
                            .iter()
                            .filter(|d| seen.insert(*d) && refs.get(*d).is_some_and(|n| *n > 1))
                            .map(|d| layer_size(d))
                            .sum()
                    })
                    .unwrap_or(0);
                let mut v =
                    serde_json::to_value(&img).map_err(|e| EngineError::Internal(e.to_string()))?;
                v["Containers"] = json!(users);
                v["SharedSize"] = json!(shared);
                list.push(v);
            }
            out["LayersSize"] = json!(layers);
            out["Images"] = Value::Array(list);
        }
        if want("container") {
            let mut containers = containers;
            self.container_add_mounts(&mut containers).await;
            let mut list = Vec::with_capacity(containers.len());
            for mut c in containers {
                self.container_add_sizes(&mut c).await;
                list.push(c);
            }
            out["Containers"] = Value::Array(list);
        }
        if want("volume") {
            out["Volumes"] = Value::Array(self.volumes_df());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_tar(bytes: &[u8]) -> Vec<String> {
        let mut a = tar::Archive::new(bytes);
        a.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn changes_against_the_lower_layers() {
        let tmp = tempfile::tempdir().unwrap();
        let (upper, lower) = (tmp.path().join("upper"), tmp.path().join("lower"));
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::write(lower.join("etc/passwd"), "root").unwrap();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(upper.join("etc/passwd"), "root2").unwrap();
        std::fs::create_dir_all(upper.join("new/dir")).unwrap();
        let got = changes(&upper, std::slice::from_ref(&lower));
        assert_eq!(
            got,
            vec![
                ("/etc".to_string(), 0),
                ("/etc/passwd".to_string(), 0),
                ("/new".to_string(), 1),
                ("/new/dir".to_string(), 1),
            ]
        );
        // A whiteout (needs CAP_MKNOD) is a deletion, and a `.wh.` entry in a layer tar.
        let wh = upper.join("etc/group");
        if nix::sys::stat::mknod(
            &wh,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            0,
        )
        .is_ok()
        {
            assert!(changes(&upper, &[lower]).contains(&("/etc/group".to_string(), 2)));
            let mut b = tar::Builder::new(Vec::new());
            append_tree(&mut b, &dirfd::open_dir(&upper).unwrap(), "", true).unwrap();
            let names = read_tar(&b.into_inner().unwrap());
            assert!(names.contains(&"etc/.wh.group".to_string()), "{names:?}");
        }
    }

    #[test]
    fn file_contents_match_their_header_size() {
        let tmp = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(READ_BLOCK * 2 + 777))
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(tmp.path().join("big"), &data).unwrap();
        std::fs::write(tmp.path().join("small"), b"abc").unwrap();
        let mut b = tar::Builder::new(Vec::new());
        append_tree(&mut b, &dirfd::open_dir(tmp.path()).unwrap(), "", false).unwrap();
        let bytes = b.into_inner().unwrap();
        let mut a = tar::Archive::new(bytes.as_slice());
        let mut got = std::collections::BTreeMap::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut v = Vec::new();
            io::Read::read_to_end(&mut e, &mut v).unwrap();
            got.insert(name, v);
        }
        assert_eq!(got["big"], data);
        assert_eq!(got["small"], b"abc");
        // A file that shrank after its header was written is padded to the header's size.
        let mut out = Vec::new();
        copy_exact(&mut &b"ab"[..], &mut out, 5).unwrap();
        assert_eq!(out, b"ab\0\0\0");
    }

    #[test]
    fn tar_names_keep_dot_prefix_and_long_names() {
        let tmp = tempfile::tempdir().unwrap();
        let long = "x".repeat(150);
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        std::fs::write(tmp.path().join("d").join(&long), "x").unwrap();
        std::os::unix::fs::symlink("/etc", tmp.path().join("d/link")).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        append_tree(&mut b, &dirfd::open_dir(tmp.path()).unwrap(), ".", false).unwrap();
        let names = read_tar(&b.into_inner().unwrap());
        assert!(
            names.contains(&"./d/".to_string()) || names.contains(&"./d".to_string()),
            "{names:?}"
        );
        assert!(names.iter().any(|n| n.ends_with(&long)), "{names:?}");
        assert!(names.iter().any(|n| n.ends_with("d/link")), "{names:?}");
    }

    /// A running container swaps a directory for a symlink to a host directory while its
    /// tree is archived (export, commit, cp): no host byte gets into the tar.
    #[test]
    fn a_directory_swapped_for_a_symlink_midway_is_never_walked_into() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, host) = (tmp.path().join("root"), tmp.path().join("host"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&host).unwrap();
        for i in 0..200 {
            std::fs::write(host.join(format!("f{i}")), "HOST-ONLY").unwrap();
        }
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flips = std::sync::Arc::new(AtomicU64::new(0));
        let flipper = {
            let (stop, flips, root, host) =
                (stop.clone(), flips.clone(), root.clone(), host.clone());
            // Made beside the root, so that the walk only ever sees `sub`.
            let aside = tmp.path().join("aside");
            std::fs::create_dir(&aside).unwrap();
            for i in 0..200 {
                std::fs::write(aside.join(format!("f{i}")), "inside").unwrap();
            }
            std::thread::spawn(move || {
                let sub = root.join("sub");
                while !stop.load(Ordering::Relaxed) {
                    flips.fetch_add(1, Ordering::Relaxed);
                    // Each state stays a while: the directory, then the link.
                    let _ = std::fs::rename(&aside, &sub);
                    for _ in 0..20 {
                        let _ = std::fs::symlink_metadata(&sub);
                    }
                    let _ = std::fs::rename(&sub, &aside);
                    let _ = std::os::unix::fs::symlink(&host, &sub);
                    for _ in 0..20 {
                        let _ = std::fs::symlink_metadata(&sub);
                    }
                    let _ = std::fs::remove_file(&sub);
                }
            })
        };
        let mut leaked = 0;
        let dir = dirfd::open_dir(&root).unwrap();
        // The walks start once the flipping has.
        let mut spins = 0u64;
        while flips.load(Ordering::Relaxed) < 10 && spins < 1 << 32 {
            std::thread::yield_now();
            spins += 1;
        }
        // The path-based walk put host bytes in 1 to 4 tars of ~7000 over 5000 flips.
        let mut walks = 0;
        while flips.load(Ordering::Relaxed) < 5000 && walks < 1_000_000 {
            walks += 1;
            let mut b = tar::Builder::new(Vec::new());
            let _ = append_tree(&mut b, &dir, "", false);
            let bytes = b.into_inner().unwrap_or_default();
            if bytes.windows(5).any(|w| w == b"HOST-") {
                leaked += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        flipper.join().unwrap();
        assert_eq!(leaked, 0, "tars holding host bytes");
    }
}
