//! Safe layer extraction: turns one image layer (a tar stream, plain, gzip or zstd) into a
//! directory in overlayfs "upper" format, computing the layer's diffID on the way.
//!
//! This is security-critical code: a layer is untrusted input and the daemon runs as root.
//! The rules, each with a test of a hand-crafted malicious tarball below:
//!
//! - Entry names are cleaned (leading `/` and `./` stripped, `.` and empty components
//!   dropped); a `..` component anywhere refuses the whole layer.
//! - Symlinks are never followed. Before an entry is created, every parent component inside
//!   the destination is checked with `lstat`: a symlink or non-directory there refuses the
//!   layer. Whatever already exists at the entry's own path is removed and replaced, never
//!   written through (new files are opened with `O_CREAT | O_EXCL | O_NOFOLLOW`); only a
//!   directory entry keeps an existing directory.
//! - Symlink targets are stored verbatim and never resolved here; hard-link targets are
//!   cleaned like names and must already exist inside the destination.
//! - Whiteouts become what overlayfs understands: `.wh.NAME` a 0/0 character device `NAME`,
//!   `.wh..wh..opq` the `trusted.overlay.opaque=y` xattr on its directory (as moby's
//!   `overlayWhiteoutConverter` in `pkg/archive/archive_linux.go`).
//!
//! The destination must be private to the caller while extraction runs: the checks are
//! made with paths, so they hold because nobody else writes there. It owns no policy about
//! where layers live; [`unpack_layer_into_fresh_dir`] gives callers the all-or-nothing
//! behaviour the layer store needs.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{OFlag, AT_FDCWD};
use nix::sys::stat::{self, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use tar::EntryType;

use crate::digest::{Digest, DigestReader};
use crate::tarmeta::{self, clean_components, Meta, MetaError};
use crate::tarsplit::{Recording, SharedRecorder, SplitRecorder};

/// Size of the buffers between decompressor, hasher and files.
const COPY_BUF: usize = 256 * 1024;
/// Prefix of whiteout names in the OCI / Docker layer format.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Prefix of names reserved for whiteout metadata (`.wh..wh..opq`, aufs' `.wh..wh.plnk`).
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
/// Marks the directory it sits in as opaque.
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
/// The xattr overlayfs reads to treat a directory as opaque.
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Mode of directories that a layer implies but does not list (moby uses 0755 too).
const IMPLIED_DIR_MODE: u32 = 0o755;

/// Why a layer could not be extracted. After any error the destination holds a partial
/// layer that must be discarded ([`unpack_layer_into_fresh_dir`] does that).
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// An entry name (or hard-link target) has a `..` component.
    #[error("layer entry {entry:?} escapes the layer: `..` is not allowed in paths")]
    DotDot { entry: String },
    /// An entry would be created below a symlink.
    #[error("layer entry {entry:?} escapes through symlink {symlink:?}")]
    ThroughSymlink { entry: String, symlink: String },
    /// An entry would be created below something that is not a directory.
    #[error("layer entry {entry:?} needs {parent:?} to be a directory, but it is not")]
    ParentNotDirectory { entry: String, parent: String },
    /// A hard link whose target is outside the layer, missing, or a directory.
    #[error("layer entry {entry:?} is a hard link to {target:?}, which {problem}")]
    BadHardLink {
        entry: String,
        target: String,
        problem: &'static str,
    },
    /// `.wh.` followed by nothing, `.` or `..`.
    #[error("layer entry {entry:?} is a whiteout of an invalid name")]
    BadWhiteout { entry: String },
    /// A tar entry type that has no meaning in a layer (volume labels, multi-volume parts).
    #[error("layer entry {entry:?} has unsupported type {kind:?}")]
    UnsupportedType { entry: String, kind: char },
    /// A header field that cannot be parsed or applied.
    #[error("layer entry {entry:?} has an invalid {field}: {reason}")]
    BadHeader {
        entry: String,
        field: &'static str,
        reason: String,
    },
    /// A compression format we recognise but do not read.
    #[error("unsupported layer compression {0}")]
    UnsupportedCompression(&'static str),
    /// The stream could not be read, decompressed or parsed as tar (also: truncated input).
    #[error("reading layer: {0}")]
    Read(#[source] io::Error),
    /// The destination is missing, a symlink, or not a directory.
    #[error("layer destination {} is not a directory", path.display())]
    BadDestination { path: PathBuf },
    /// [`unpack_layer_into_fresh_dir`] was asked to create a directory that exists.
    #[error("layer directory {} already exists", path.display())]
    AlreadyExists { path: PathBuf },
    /// An extended attribute from the layer could not be set.
    #[error("setting extended attribute {name:?} on {}: {source}", path.display())]
    Xattr {
        name: String,
        path: PathBuf,
        source: io::Error,
    },
    /// A filesystem operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl UnpackError {
    /// Whether the layer itself is at fault (malicious or malformed content), as opposed
    /// to the destination filesystem or the input stream.
    pub fn is_invalid_layer(&self) -> bool {
        matches!(
            self,
            UnpackError::DotDot { .. }
                | UnpackError::ThroughSymlink { .. }
                | UnpackError::ParentNotDirectory { .. }
                | UnpackError::BadHardLink { .. }
                | UnpackError::BadWhiteout { .. }
                | UnpackError::UnsupportedType { .. }
                | UnpackError::BadHeader { .. }
                | UnpackError::UnsupportedCompression(_)
        )
    }

    fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> UnpackError + 'a {
        move |source| UnpackError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// How a layer stream is compressed, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Detects the format from magic bytes (at least 6 bytes give a definite answer).
    /// Formats Docker knows but we do not read are an error, not "plain tar".
    pub fn detect(magic: &[u8]) -> Result<Compression, UnpackError> {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Ok(Compression::Gzip)
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Ok(Compression::Zstd)
        } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Err(UnpackError::UnsupportedCompression("xz"))
        } else if magic.starts_with(b"BZh") {
            Err(UnpackError::UnsupportedCompression("bzip2"))
        } else {
            Ok(Compression::None)
        }
    }
}

/// Choices for [`unpack_layer`]. The default is what image layers need.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// Give entries the uid/gid from their headers (needs root). Default true.
    pub preserve_ownership: bool,
    /// Turn `.wh.` entries into overlayfs whiteouts. Default true; false writes them as
    /// ordinary files (for archives that are not layers).
    pub overlay_whiteouts: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            preserve_ownership: true,
            overlay_whiteouts: true,
        }
    }
}

/// What extraction learned about the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackStats {
    /// sha256 of the uncompressed tar stream (the image config's `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// sha256 of the bytes as given (the manifest's layer digest); equals `diff_id` for
    /// uncompressed input.
    pub compressed_digest: Digest,
    /// How the input was compressed.
    pub compression: Compression,
    /// Sum of the sizes of regular files written.
    pub size: u64,
    /// Number of tar entries applied (every member except PAX global headers).
    pub entries: u64,
}

/// Extracts the layer in `reader` into `dest`, an existing directory that nobody else
/// writes to meanwhile (normally empty). See the module docs for the safety rules.
///
/// On error `dest` holds part of the layer: the caller must discard it. Prefer
/// [`unpack_layer_into_fresh_dir`], which does.
pub fn unpack_layer<R: Read>(
    reader: R,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    unpack_layer_recorded(reader, dest, opts, None, true)
}

/// [`unpack_layer`] for an archive that is no image layer (`docker cp`): the same safety
/// rules, without hashing the stream (the digests in the returned stats are meaningless).
pub fn unpack_archive<R: Read>(
    reader: R,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    unpack_layer_recorded(reader, dest, opts, None, false)
}

fn unpack_layer_recorded<R: Read>(
    reader: R,
    dest: &Path,
    opts: &UnpackOptions,
    recorder: Option<SharedRecorder>,
    hash: bool,
) -> Result<UnpackStats, UnpackError> {
    match fs::symlink_metadata(dest) {
        Ok(m) if m.is_dir() => {}
        _ => {
            return Err(UnpackError::BadDestination {
                path: dest.to_path_buf(),
            })
        }
    }

    let mut raw = DigestReader::new(reader);
    let mut magic = [0u8; 6];
    let n = read_up_to(&mut raw, &mut magic).map_err(UnpackError::Read)?;
    let compression = Compression::detect(&magic[..n])?;
    if compression == Compression::None || !hash {
        // The plain stream is the input: its diffID is its digest; hash it once.
        raw.stop_hashing();
    }
    let src = io::Cursor::new(&magic[..n]).chain(&mut raw);
    let decoder: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(src),
        // Multi-member, as Go's gzip reader (and so Docker) reads layers.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(src)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(src).map_err(UnpackError::Read)?)
        }
    };
    let mut plain = DigestReader::new(BufReader::with_capacity(COPY_BUF, decoder));
    if !hash {
        plain.stop_hashing();
    }

    let mut unpacker = Unpacker::new(dest, opts);
    unpacker.split = recorder.clone();
    {
        let mut recording = Recording {
            inner: &mut plain,
            recorder: recorder.clone(),
        };
        {
            // Entries one by one: `Archive::unpack` has its own (different) idea of safety.
            let mut archive = tar::Archive::new(&mut recording);
            for entry in archive.entries().map_err(UnpackError::Read)? {
                let mut entry = entry.map_err(UnpackError::Read)?;
                unpacker.apply(&mut entry)?;
            }
        }
        // The diffID covers the whole uncompressed stream, end-of-archive padding
        // included, and the compressed digest every byte we were given.
        io::copy(&mut recording, &mut io::sink()).map_err(UnpackError::Read)?;
    }
    if let Some(r) = &recorder {
        r.borrow_mut().finish().map_err(UnpackError::Read)?;
    }
    let (_, diff_id, _) = plain.into_parts();
    io::copy(&mut raw, &mut io::sink()).map_err(UnpackError::Read)?;
    let compressed_digest = match compression {
        Compression::None => diff_id,
        _ => raw.into_parts().1,
    };

    unpacker.restore_dir_times()?;
    Ok(UnpackStats {
        diff_id,
        compressed_digest,
        compression,
        size: unpacker.size,
        entries: unpacker.entries,
    })
}

/// Extracts the layer into `final_dir`, all or nothing: the layer is unpacked into a
/// sibling temp directory (`<final_dir>.tmp-<pid>-<n>`), renamed to `final_dir` on
/// success and removed entirely on failure, so no half-made layer is ever visible under
/// `final_dir`. `final_dir` must not exist. A crash can leave the temp directory behind;
/// [`cleanup_partial_unpacks`] on the parent removes such leftovers at start-up.
///
/// The rename makes the layer safe against the daemon being killed, not against power
/// loss: file contents are not fsynced (neither does dockerd).
pub fn unpack_layer_into_fresh_dir<R: Read>(
    reader: R,
    final_dir: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    unpack_into_fresh_dir(reader, final_dir, opts, None)
}

/// [`unpack_layer_into_fresh_dir`], also recording the tar's non-content bytes and file
/// map into `split_dir` (which must not exist), so that the layer can later be replayed
/// byte for byte from `final_dir` ([`crate::tarsplit::SplitReader`]) without keeping
/// the tar. On error the caller removes `split_dir`.
pub fn unpack_layer_split<R: Read>(
    reader: R,
    final_dir: &Path,
    split_dir: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let recorder = SplitRecorder::create(split_dir)
        .map_err(UnpackError::io("creating layer index", split_dir))?;
    unpack_into_fresh_dir(reader, final_dir, opts, Some(recorder))
}

fn unpack_into_fresh_dir<R: Read>(
    reader: R,
    final_dir: &Path,
    opts: &UnpackOptions,
    recorder: Option<SharedRecorder>,
) -> Result<UnpackStats, UnpackError> {
    if fs::symlink_metadata(final_dir).is_ok() {
        return Err(UnpackError::AlreadyExists {
            path: final_dir.to_path_buf(),
        });
    }
    let tmp = temp_dir_for(final_dir)?;
    if fs::symlink_metadata(&tmp).is_ok() {
        // A leftover from a crashed process that had our pid.
        fs::remove_dir_all(&tmp).map_err(UnpackError::io("removing stale layer", &tmp))?;
    }
    fs::create_dir(&tmp).map_err(UnpackError::io("creating layer directory", &tmp))?;

    let result = unpack_layer_recorded(reader, &tmp, opts, recorder, true).and_then(|stats| {
        fs::rename(&tmp, final_dir).map_err(UnpackError::io("publishing layer", final_dir))?;
        if let Some(parent) = final_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(UnpackError::io("syncing directory", parent))?;
        }
        Ok(stats)
    });
    if result.is_err() {
        if let Err(e) = fs::remove_dir_all(&tmp) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %tmp.display(), error = %e, "cannot remove partial layer");
            }
        }
    }
    result
}

/// Removes temp directories [`unpack_layer_into_fresh_dir`] left in `parent` when the
/// process died mid-extraction. Call at start-up, before any extraction into `parent`.
/// Returns how many were removed.
pub fn cleanup_partial_unpacks(parent: &Path) -> Result<usize, UnpackError> {
    let entries = fs::read_dir(parent).map_err(UnpackError::io("listing layers", parent))?;
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(UnpackError::io("listing layers", parent))?;
        if !is_partial_unpack_name(entry.file_name().as_bytes()) {
            continue;
        }
        let path = entry.path();
        let gone = berth_sys::fs::remove_entry(&entry)
            .map_err(UnpackError::io("removing partial layer", &path))?;
        removed += usize::from(gone);
    }
    if removed > 0 {
        tracing::info!(removed, dir = %parent.display(), "removed partial layers left by a crash");
    }
    Ok(removed)
}

/// Distinguishes temp directories of concurrent extractions in one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_dir_for(final_dir: &Path) -> Result<PathBuf, UnpackError> {
    let name = final_dir
        .file_name()
        .ok_or_else(|| UnpackError::BadDestination {
            path: final_dir.to_path_buf(),
        })?;
    let mut tmp_name = name.to_os_string();
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    tmp_name.push(format!(".tmp-{}-{n}", std::process::id()));
    Ok(final_dir.with_file_name(tmp_name))
}

/// `<anything>.tmp-<digits>-<digits>`, the names [`temp_dir_for`] makes.
fn is_partial_unpack_name(name: &[u8]) -> bool {
    let Some(pos) = name.windows(5).rposition(|w| w == b".tmp-") else {
        return false;
    };
    let suffix = &name[pos + 5..];
    let mut parts = suffix.split(|&b| b == b'-');
    let digits =
        |p: Option<&[u8]>| p.is_some_and(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit));
    pos > 0 && digits(parts.next()) && digits(parts.next()) && parts.next().is_none()
}

pub(crate) fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn rel_path(comps: &[&OsStr]) -> PathBuf {
    comps.iter().collect()
}

/// The header fields of `entry`, with errors in the unpacker's words.
fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta, UnpackError> {
    tarmeta::read_meta(entry).map_err(|e| match e {
        MetaError::Field { field, reason } => UnpackError::BadHeader {
            entry: name.to_owned(),
            field,
            reason,
        },
        MetaError::Read(e) => UnpackError::Read(e),
    })
}

fn set_times(path: &Path, t: &TimeSpec) -> io::Result<()> {
    stat::utimensat(AT_FDCWD, path, t, t, UtimensatFlags::NoFollowSymlink).map_err(io::Error::from)
}

/// What [`Unpacker::finish`] applies metadata to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Dir,
    Symlink,
    Other,
}

/// State of one extraction.
struct Unpacker<'a> {
    dest: &'a Path,
    opts: &'a UnpackOptions,
    /// Relative paths checked to be real directories (not symlinks). Cleared whenever a
    /// directory is removed, since something else may then appear at those paths.
    verified_dirs: HashSet<PathBuf>,
    /// Directory mtimes to restore at the end (children change them while we write).
    dir_times: HashMap<PathBuf, TimeSpec>,
    buf: Vec<u8>,
    size: u64,
    entries: u64,
    /// Records the tar for replay ([`unpack_layer_split`]).
    split: Option<SharedRecorder>,
}

impl<'a> Unpacker<'a> {
    fn new(dest: &'a Path, opts: &'a UnpackOptions) -> Self {
        Unpacker {
            dest,
            opts,
            verified_dirs: HashSet::new(),
            dir_times: HashMap::new(),
            buf: vec![0u8; COPY_BUF],
            size: 0,
            entries: 0,
            split: None,
        }
    }

    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let mut kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            return Ok(());
        }
        self.entries += 1;
        let raw_name = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_name).into_owned();
        // Pre-POSIX archives mark directories with a trailing slash on type '\0' (Go's
        // archive/tar reads them so too).
        if entry.header().as_bytes()[156] == 0 && raw_name.ends_with(b"/") {
            kind = EntryType::Directory;
        }
        let comps = clean_components(&raw_name).ok_or_else(|| UnpackError::DotDot {
            entry: name.clone(),
        })?;
        let Some((last, parents)) = comps.split_last() else {
            // The layer root itself: only a directory entry means something (its mode,
            // owner and mtime, as moby applies them).
            if kind == EntryType::Directory {
                let meta = read_meta(entry, &name)?;
                self.finish(self.dest, &meta, Node::Dir)?;
                self.dir_times.insert(PathBuf::new(), meta.mtime);
            }
            return Ok(());
        };

        if self.opts.overlay_whiteouts && last.as_bytes().starts_with(WHITEOUT_PREFIX) {
            return self.whiteout(entry, &name, parents, last.as_bytes());
        }

        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let meta = read_meta(entry, &name)?;
                let path = self.prepare(&name, parents, last, false)?;
                self.write_file(entry, &name, &path, &meta)?;
            }
            EntryType::Directory => {
                let meta = read_meta(entry, &name)?;
                let path = self.prepare(&name, parents, last, true)?;
                if fs::symlink_metadata(&path).is_err() {
                    fs::create_dir(&path).map_err(UnpackError::io("creating directory", &path))?;
                }
                self.finish(&path, &meta, Node::Dir)?;
                let rel = rel_path(&comps);
                self.dir_times.insert(rel.clone(), meta.mtime);
                self.verified_dirs.insert(rel);
            }
            EntryType::Symlink => {
                let meta = read_meta(entry, &name)?;
                let target = entry
                    .link_name_bytes()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| UnpackError::BadHeader {
                        entry: name.clone(),
                        field: "link name",
                        reason: "symlink without target".to_owned(),
                    })?
                    .into_owned();
                let path = self.prepare(&name, parents, last, false)?;
                // The target is text; it is only ever resolved inside the container.
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                    .map_err(UnpackError::io("creating symlink", &path))?;
                // dockerd's layer size counts a symlink as its target's length (lstat size).
                self.size += target.len() as u64;
                self.finish(&path, &meta, Node::Symlink)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                self.hard_link(&name, parents, last, &target)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let meta = read_meta(entry, &name)?;
                let h = entry.header();
                let dev_field = |v: io::Result<Option<u32>>| {
                    v.map(|d| u64::from(d.unwrap_or(0)))
                        .map_err(|e| UnpackError::BadHeader {
                            entry: name.clone(),
                            field: "device number",
                            reason: e.to_string(),
                        })
                };
                let (major, minor) = (dev_field(h.device_major())?, dev_field(h.device_minor())?);
                let sflag = match kind {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let path = self.prepare(&name, parents, last, false)?;
                stat::mknod(
                    &path,
                    sflag,
                    Mode::from_bits_truncate(meta.mode),
                    stat::makedev(major, minor),
                )
                .map_err(|e| UnpackError::io("creating device node", &path)(e.into()))?;
                self.finish(&path, &meta, Node::Other)?;
            }
            other => {
                return Err(UnpackError::UnsupportedType {
                    entry: name,
                    kind: char::from(other.as_byte()),
                })
            }
        }
        Ok(())
    }

    /// Checks (and creates) the parents of an entry and clears its own path, returning the
    /// absolute path to create. An existing directory is kept when `keep_dir`.
    fn prepare(
        &mut self,
        name: &str,
        parents: &[&OsStr],
        last: &OsStr,
        keep_dir: bool,
    ) -> Result<PathBuf, UnpackError> {
        self.check_dirs(name, parents, true)?;
        let rel = rel_path(parents).join(last);
        self.remove_existing(&rel, keep_dir)?;
        Ok(self.dest.join(rel))
    }

    /// Walks `comps` below dest with `lstat`: each must be a real directory. Missing ones
    /// are created when `create`, else reported by returning `false`.
    fn check_dirs(
        &mut self,
        name: &str,
        comps: &[&OsStr],
        create: bool,
    ) -> Result<bool, UnpackError> {
        let mut rel = PathBuf::new();
        for c in comps {
            rel.push(c);
            if self.verified_dirs.contains(&rel) {
                continue;
            }
            let abs = self.dest.join(&rel);
            match fs::symlink_metadata(&abs) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(UnpackError::ThroughSymlink {
                        entry: name.to_owned(),
                        symlink: rel.to_string_lossy().into_owned(),
                    })
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(UnpackError::ParentNotDirectory {
                        entry: name.to_owned(),
                        parent: rel.to_string_lossy().into_owned(),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    fs::create_dir(&abs).map_err(UnpackError::io("creating directory", &abs))?;
                    fs::set_permissions(&abs, Permissions::from_mode(IMPLIED_DIR_MODE))
                        .map_err(UnpackError::io("setting mode of", &abs))?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(UnpackError::io("inspecting", &abs)(e)),
            }
            self.verified_dirs.insert(rel.clone());
        }
        Ok(true)
    }

    /// Removes whatever is at `rel` (without following it), unless it is a directory and
    /// `keep_dir`. Returns whether a directory was kept.
    fn remove_existing(&mut self, rel: &Path, keep_dir: bool) -> Result<bool, UnpackError> {
        let abs = self.dest.join(rel);
        let meta = match fs::symlink_metadata(&abs) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(UnpackError::io("inspecting", &abs)(e)),
        };
        if meta.is_dir() && keep_dir {
            return Ok(true);
        }
        if let Some(split) = &self.split {
            // Content the tar-split index refers to moves aside instead of going away.
            if split
                .borrow_mut()
                .stash(rel, &abs)
                .map_err(UnpackError::io(
                    "keeping replaced file for the layer index",
                    &abs,
                ))?
            {
                if meta.is_dir() {
                    self.verified_dirs.clear();
                    self.dir_times.retain(|p, _| !p.starts_with(rel));
                }
                return Ok(false);
            }
        }
        if meta.is_dir() {
            // remove_dir_all does not follow symlinks inside the tree.
            fs::remove_dir_all(&abs).map_err(UnpackError::io("replacing directory", &abs))?;
            self.verified_dirs.clear();
            self.dir_times.retain(|p, _| !p.starts_with(rel));
        } else {
            fs::remove_file(&abs).map_err(UnpackError::io("replacing", &abs))?;
        }
        Ok(false)
    }

    fn write_file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        name: &str,
        path: &Path,
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        let expected = entry.size();
        let mut written = 0u64;
        // O_EXCL makes the kernel refuse any existing name, a dangling symlink included,
        // so nothing is ever written through a link.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
            .open(path)
            .map_err(UnpackError::io("creating file", path))?;
        if let Some(split) = &self.split {
            let rel = path.strip_prefix(self.dest).unwrap_or(path);
            split
                .borrow_mut()
                .file_content(rel, expected, entry.raw_file_position());
        }
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(UnpackError::Read(e)),
            };
            file.write_all(&self.buf[..n])
                .map_err(UnpackError::io("writing file", path))?;
            written += n as u64;
        }
        if written != expected {
            return Err(UnpackError::Read(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("layer entry {name:?} is truncated ({written} of {expected} bytes)"),
            )));
        }
        self.size += written;
        drop(file);
        self.finish(path, meta, Node::Other)
    }

    fn hard_link(
        &mut self,
        name: &str,
        parents: &[&OsStr],
        last: &OsStr,
        raw_target: &[u8],
    ) -> Result<(), UnpackError> {
        let target_name = String::from_utf8_lossy(raw_target).into_owned();
        let bad = |problem: &'static str| UnpackError::BadHardLink {
            entry: name.to_owned(),
            target: target_name.clone(),
            problem,
        };
        let target = clean_components(raw_target).ok_or_else(|| bad("is outside the layer"))?;
        let Some((target_last, target_parents)) = target.split_last() else {
            return Err(bad("is the layer root"));
        };
        if !self.check_dirs(name, target_parents, false)? {
            return Err(bad("does not exist in the layer"));
        }
        let target_rel = rel_path(target_parents).join(target_last);
        let target_abs = self.dest.join(&target_rel);
        match fs::symlink_metadata(&target_abs) {
            // Linking a symlink links the symlink itself (linkat without
            // AT_SYMLINK_FOLLOW), which is as harmless as the symlink.
            Ok(m) if !m.is_dir() => {}
            Ok(_) => return Err(bad("is a directory")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(bad("does not exist in the layer"))
            }
            Err(e) => return Err(UnpackError::io("inspecting", &target_abs)(e)),
        }
        if rel_path(parents).join(last) == target_rel {
            return Ok(());
        }
        let path = self.prepare(name, parents, last, false)?;
        // std's hard_link is linkat(…, 0) on Linux: it does not follow a symlink target.
        fs::hard_link(&target_abs, &path).map_err(UnpackError::io("creating hard link", &path))
    }

    fn whiteout<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        name: &str,
        parents: &[&OsStr],
        base: &[u8],
    ) -> Result<(), UnpackError> {
        if base == WHITEOUT_OPAQUE {
            self.check_dirs(name, parents, true)?;
            let dir = self.dest.join(rel_path(parents));
            return xattr::set(&dir, OVERLAY_OPAQUE_XATTR, b"y").map_err(|source| {
                UnpackError::Xattr {
                    name: OVERLAY_OPAQUE_XATTR.to_owned(),
                    path: dir,
                    source,
                }
            });
        }
        if base.starts_with(WHITEOUT_META_PREFIX) {
            // Other aufs metadata (`.wh..wh.plnk`, `.wh..wh.aufs`) means nothing to overlay.
            return Ok(());
        }
        let hidden = &base[WHITEOUT_PREFIX.len()..];
        if matches!(hidden, b"" | b"." | b"..") {
            return Err(UnpackError::BadWhiteout {
                entry: name.to_owned(),
            });
        }
        let meta = read_meta(entry, name)?;
        let path = self.prepare(name, parents, OsStr::from_bytes(hidden), false)?;
        // overlayfs whiteout: character device 0/0 (moby: unix.Mknod(path, S_IFCHR, 0)).
        stat::mknod(&path, SFlag::S_IFCHR, Mode::empty(), stat::makedev(0, 0))
            .map_err(|e| UnpackError::io("creating whiteout", &path)(e.into()))?;
        if self.opts.preserve_ownership {
            std::os::unix::fs::lchown(&path, Some(meta.uid), Some(meta.gid))
                .map_err(UnpackError::io("setting owner of", &path))?;
        }
        Ok(())
    }

    /// Owner, then mode (chown clears setuid bits), then xattrs, then times (except for
    /// directories, whose times are restored at the end).
    fn finish(&mut self, path: &Path, meta: &Meta, node: Node) -> Result<(), UnpackError> {
        if self.opts.preserve_ownership {
            std::os::unix::fs::lchown(path, Some(meta.uid), Some(meta.gid))
                .map_err(UnpackError::io("setting owner of", path))?;
        }
        if node != Node::Symlink {
            // `path` was created by us just now and is not a symlink, so chmod (which
            // follows symlinks) acts on the entry itself.
            fs::set_permissions(path, Permissions::from_mode(meta.mode))
                .map_err(UnpackError::io("setting mode of", path))?;
        }
        for (attr, value) in &meta.xattrs {
            // xattr::set is lsetxattr: it never follows a symlink.
            if let Err(source) = xattr::set(path, attr, value) {
                // File capabilities cannot be set in a user namespace; the file still
                // works, just without its capabilities (moby tolerates this too).
                if attr == "security.capability"
                    && source.raw_os_error() == Some(Errno::EPERM as i32)
                {
                    tracing::warn!(path = %path.display(), "cannot set security.capability; skipped");
                    continue;
                }
                return Err(UnpackError::Xattr {
                    name: attr.to_string_lossy().into_owned(),
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
        if node != Node::Dir {
            set_times(path, &meta.mtime).map_err(UnpackError::io("setting times of", path))?;
        }
        Ok(())
    }

    /// Sets directory mtimes last: creating children changed them.
    fn restore_dir_times(&self) -> Result<(), UnpackError> {
        for (rel, t) in &self.dir_times {
            let path = self.dest.join(rel);
            if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                set_times(&path, t).map_err(UnpackError::io("setting times of", &path))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
