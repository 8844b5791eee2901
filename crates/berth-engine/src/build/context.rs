//! The build context: the client's tar (plain or gzip, bounded) unpacked with the layer
//! unpacker's rules into a private directory under the data root, the Dockerfile and
//! `.dockerignore` read from it without following a symlink out, and the sources of a
//! COPY/ADD gathered from it (or from a stage's files) into one tar with their cache hash.
//!
//! Every name in the context comes from the client. Sources are walked with `lstat` only:
//! a symlink is copied as a symlink, never followed, and a path through a symlinked
//! directory is refused, so nothing outside the context is ever read.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_build::cache::{dir_hash, source_hash, EntryHasher, TarsumHeader};
use berth_build::dockerignore::{clean, Matcher};

use crate::EngineError;

/// The largest context accepted (the unpacked files count again against the disk).
pub(crate) const MAX_CONTEXT: u64 = 8 << 30;

/// The tar the sources of a COPY/ADD are written to (or only hashed through).
type TarOut = tar::Builder<Box<dyn Write>>;

/// Unpacks the context tar read from `tar` (plain, gzip or zstd) into the empty directory
/// `dest` (the unpacker buffers its input itself).
pub(crate) fn unpack(tar: impl Read, dest: &Path) -> Result<(), EngineError> {
    let opts = berth_image::unpack::UnpackOptions {
        preserve_ownership: true,
        overlay_whiteouts: false,
    };
    berth_image::unpack::unpack_archive(tar, dest, &opts)
        .map(drop)
        .map_err(|e| EngineError::InvalidArgument(format!("failed to read the build context: {e}")))
}

/// Reads `name` (a path in the context) with every component resolved inside `root`, at
/// most `limit` bytes; `None` when it does not exist.
pub(crate) fn read_in_root(root: &Path, name: &str, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let rel = clean(&format!("/{name}"));
    let fd = match berth_sys::resolve::open_in_root(
        root,
        Path::new(rel.trim_start_matches('/')),
        nix::libc::O_RDONLY | nix::libc::O_CLOEXEC,
        0,
    ) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut data = Vec::new();
    File::from(fd).take(limit + 1).read_to_end(&mut data)?;
    if data.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{name} is larger than {limit} bytes"),
        ));
    }
    Ok(Some(data))
}

/// One file or directory to copy: where it is on disk, its name in the context (hashed),
/// and where it goes in the image (relative to `/`).
#[derive(Debug)]
struct Item {
    disk: PathBuf,
    ctx_name: String,
    dest: String,
    /// ADD of a local archive: extracted.
    extract: bool,
    /// An ADD URL's file.
    downloaded: bool,
}

/// One COPY/ADD source: a path (wildcards allowed) below `root`; a `downloaded` one (an
/// ADD URL's file) is neither matched against `.dockerignore` nor extracted (moby).
pub(crate) struct Source<'a> {
    pub root: &'a Path,
    pub name: String,
    pub downloaded: bool,
}

/// The sources of one COPY/ADD, written as a tar rooted at `/`.
#[derive(Debug)]
pub(crate) struct Gathered {
    /// `file:<sha>`, `dir:<sha>` or `multi:<sha>` as moby names the sources.
    pub hash: String,
}

/// `--chown` as numbers, for tests and numeric values.
#[cfg(test)]
pub(crate) fn parse_chown(chown: &str) -> Result<Option<(u64, u64)>, EngineError> {
    resolve_chown(chown, &[])
}

/// A file of the image whose layers are `layers` (bottom first): the topmost layer that
/// has it, read inside that layer's root (bounded; a whiteout or anything but a file
/// reads as absent).
fn image_file(layers: &[PathBuf], name: &str) -> Option<Vec<u8>> {
    for l in layers.iter().rev() {
        let md = std::fs::symlink_metadata(l.join(name));
        match md {
            Ok(m) if m.is_file() => return read_in_root(l, name, 1 << 20).ok().flatten(),
            Ok(_) => return None,
            Err(_) => continue,
        }
    }
    None
}

/// The id of `name` in an `/etc/passwd` or `/etc/group` text, and for passwd the
/// primary group.
fn lookup(db: Option<&[u8]>, name: &str) -> Option<(u64, u64)> {
    let text = String::from_utf8_lossy(db?);
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.first() != Some(&name) {
            return None;
        }
        let id = f.get(2)?.parse().ok()?;
        let gid = f.get(3).and_then(|g| g.parse().ok()).unwrap_or(id);
        Some((id, gid))
    })
}

/// `--chown=user[:group]` (moby `parseChownFlag`): numbers as they are, names from the
/// image's `/etc/passwd` and `/etc/group`; a user alone gives its primary group.
pub(crate) fn resolve_chown(
    chown: &str,
    layers: &[PathBuf],
) -> Result<Option<(u64, u64)>, EngineError> {
    if chown.is_empty() {
        return Ok(None);
    }
    let (u, g) = match chown.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (chown, None),
    };
    let err = |what: &str, n: &str| {
        EngineError::InvalidArgument(format!(
            "unable to convert uid/gid chown string to host mapping: can't find {what} for {} {n}: no such {} {n}",
            if what == "uid" { "user" } else { "group" },
            if what == "uid" { "user:" } else { "group:" },
        ))
    };
    let (uid, primary) = match u.parse::<u64>() {
        Ok(n) => (n, n),
        Err(_) => {
            lookup(image_file(layers, "etc/passwd").as_deref(), u).ok_or_else(|| err("uid", u))?
        }
    };
    let gid = match g {
        None => primary,
        Some(g) => match g.parse::<u64>() {
            Ok(n) => n,
            Err(_) => lookup(image_file(layers, "etc/group").as_deref(), g)
                .map(|(id, _)| id)
                .ok_or_else(|| err("gid", g))?,
        },
    };
    Ok(Some((uid, gid)))
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Refuses a source that leaves the context (moby's message) and one whose parent
/// directories include a symlink.
fn source_path(root: &Path, src: &str) -> Result<(PathBuf, String), EngineError> {
    let cleaned = clean(&format!("/{src}"));
    let rel = cleaned.trim_start_matches('/').to_string();
    if clean(src).starts_with("..") {
        return Err(EngineError::InvalidArgument(format!(
            "forbidden path outside the build context: {src} ()"
        )));
    }
    let mut p = root.to_path_buf();
    let parts: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        p.push(part);
        if i + 1 < parts.len() {
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(EngineError::InvalidArgument(format!(
                        "COPY source {src:?}: a parent directory is a symlink or not a directory"
                    )))
                }
                Err(_) => break,
            }
        }
    }
    Ok((p, rel))
}

/// Lists context paths matching a wildcard source (Go `filepath.Match` per path).
fn glob(root: &Path, pattern: &str, ignore: &Matcher) -> Result<Vec<String>, EngineError> {
    let pat = clean(pattern.trim_start_matches('/'));
    let m =
        Matcher::new(&[pat.as_str()]).map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
    let depth = pat.split('/').count();
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new(), 0usize)];
    while let Some((dir, rel, d)) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(EngineError::io("cannot read", &dir))?;
        for e in rd {
            let e = e.map_err(EngineError::io("cannot read", &dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if ignore.excluded(&r) {
                continue;
            }
            if d + 1 == depth {
                if m.excluded(&r) {
                    out.push(r);
                }
            } else if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push((e.path(), r, d + 1));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Gathers `sources` (context paths, wildcards allowed) from `root` for `dest` (absolute,
/// already joined to the working directory) into a tar at `out`, owners and modes from
/// `perms`.
#[cfg(test)]
pub(crate) fn gather(
    root: &Path,
    sources: &[String],
    dest: &str,
    perms: Perms,
    ignore: &Matcher,
    out: &Path,
    add: bool,
) -> Result<Gathered, EngineError> {
    let sources: Vec<Source> = sources
        .iter()
        .map(|s| Source {
            root,
            name: s.clone(),
            downloaded: false,
        })
        .collect();
    gather_sources(&sources, dest, perms, ignore, Some(out), add)
}

/// [`gather`] over sources from several roots (ADD mixing URLs and context paths), in
/// their order; the hash is moby's over all of them. Without `out` only the hash is
/// made (a cache probe: nothing is written).
pub(crate) fn gather_sources(
    sources: &[Source],
    dest: &str,
    perms: Perms,
    ignore: &Matcher,
    out: Option<&Path>,
    add: bool,
) -> Result<Gathered, EngineError> {
    let none = Matcher::new::<&str>(&[]).map_err(|e| EngineError::Internal(e.to_string()))?;
    let mut names = Vec::new();
    for s in sources {
        let ignore = if s.downloaded { &none } else { ignore };
        if has_glob(&s.name) && !s.downloaded {
            let found = glob(s.root, &s.name, ignore)?;
            if found.is_empty() {
                return Err(EngineError::InvalidArgument(
                    "COPY failed: no source files were specified".into(),
                ));
            }
            names.extend(found.into_iter().map(|n| (s, n)));
        } else {
            names.push((s, s.name.clone()));
        }
    }
    let many = names.len() > 1;
    let dest_is_dir = dest.ends_with('/') || many;
    if many && !dest.ends_with('/') {
        return Err(EngineError::InvalidArgument(
            "When using COPY with more than one source file, the destination must be a directory and end with a /".into(),
        ));
    }
    let dest_clean = clean(dest).trim_start_matches('/').to_string();
    let mut items = Vec::new();
    for (src, n) in &names {
        let ignore = if src.downloaded { &none } else { ignore };
        let (disk, rel) = source_path(src.root, n)?;
        let md = std::fs::symlink_metadata(&disk).map_err(|_| {
            EngineError::InvalidArgument(format!(
                "COPY failed: file not found in build context or excluded by .dockerignore: stat {n}: file does not exist"
            ))
        })?;
        if !rel.is_empty() && ignore.excluded(&rel) {
            return Err(EngineError::InvalidArgument(format!(
                "COPY failed: file not found in build context or excluded by .dockerignore: stat {n}: file does not exist"
            )));
        }
        let target = if md.is_dir() || !dest_is_dir {
            dest_clean.clone()
        } else {
            let base = disk
                .file_name()
                .map(|b| b.to_string_lossy().into_owned())
                .unwrap_or_default();
            join(&dest_clean, &base)
        };
        items.push(Item {
            disk,
            ctx_name: rel,
            dest: target,
            extract: add && !src.downloaded,
            downloaded: src.downloaded,
        });
    }
    let sink: Box<dyn Write> = match out {
        Some(out) => Box::new(io::BufWriter::new(
            File::create(out).map_err(EngineError::io("cannot create", out))?,
        )),
        None => Box::new(io::sink()),
    };
    let mut b = tar::Builder::new(sink);
    b.follow_symlinks(false);
    let mut hashes = Vec::new();
    for it in &items {
        let md = std::fs::symlink_metadata(&it.disk)
            .map_err(EngineError::io("cannot stat", &it.disk))?;
        if md.is_dir() {
            let mut entries = Vec::new();
            walk(
                &it.disk,
                &it.ctx_name,
                &it.dest,
                ignore,
                &mut b,
                perms,
                &mut entries,
                true,
            )?;
            hashes.push(dir_hash(&entries));
        } else if it.extract && md.is_file() && is_archive(&it.disk) {
            // ADD of a local archive: its entries land below the destination directory.
            let h = append_archive(&mut b, &it.disk, &md, &it.ctx_name, &dest_clean)?;
            hashes.push(format!("file:{h}"));
        } else if it.downloaded {
            // moby hashes a download with Go's file-info header, without a `file:` prefix.
            hashes.push(append(
                &mut b,
                &it.disk,
                &md,
                &it.ctx_name,
                &it.dest,
                perms,
                true,
            )?);
        } else {
            let h = append(&mut b, &it.disk, &md, &it.ctx_name, &it.dest, perms, false)?;
            hashes.push(format!("file:{h}"));
        }
    }
    b.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(EngineError::io(
            "cannot write",
            out.unwrap_or(Path::new("-")),
        ))?;
    Ok(Gathered {
        hash: source_hash(&hashes),
    })
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}/{b}")
    }
}

/// Adds the tree below `dir` (the directory itself only as a hash entry: its contents go
/// into `dest`).
#[allow(clippy::too_many_arguments)]
fn walk(
    dir: &Path,
    ctx: &str,
    dest: &str,
    ignore: &Matcher,
    b: &mut TarOut,
    perms: Perms,
    hashes: &mut Vec<String>,
    top: bool,
) -> Result<(), EngineError> {
    if top {
        let md = std::fs::symlink_metadata(dir).map_err(EngineError::io("cannot stat", dir))?;
        hashes.push(entry_hash(&md, &format!("{ctx}/"), "", None));
        if !dest.is_empty() {
            // The destination directory itself, as COPY creates it.
            append_dir(b, &md, dest, perms)?;
        }
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(EngineError::io("cannot read", dir))?
        .collect::<Result<_, _>>()
        .map_err(EngineError::io("cannot read", dir))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let c = join(ctx, &name);
        let d = join(dest, &name);
        let path = e.path();
        if ignore.excluded(&c) {
            // An excluded directory is still walked when a `!` exception may bring
            // back something inside it (docker's archive walk), without its own entry.
            if e.file_type().is_ok_and(|t| t.is_dir()) && !ignore.can_skip_dir(&c) {
                walk(&path, &c, &d, ignore, b, perms, hashes, false)?;
            }
            continue;
        }
        let md = std::fs::symlink_metadata(&path).map_err(EngineError::io("cannot stat", &path))?;
        if md.is_dir() {
            hashes.push(entry_hash(&md, &format!("{c}/"), "", None));
            append_dir(b, &md, &d, perms)?;
            walk(&path, &c, &d, ignore, b, perms, hashes, false)?;
        } else {
            hashes.push(append(b, &path, &md, &c, &d, perms, false)?);
        }
    }
    Ok(())
}

/// Owners and mode of the copied entries: `--chown` (root when absent) and `--chmod`
/// (the source's mode when absent; never applied to a symlink).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Perms {
    pub chown: Option<(u64, u64)>,
    pub chmod: Option<u32>,
}

/// `--chmod=<octal>` (BuildKit's syntax: an octal mode up to 7777).
pub(crate) fn parse_chmod(chmod: &str) -> Result<Option<u32>, EngineError> {
    if chmod.is_empty() {
        return Ok(None);
    }
    match u32::from_str_radix(chmod, 8) {
        Ok(m) if m <= 0o7777 => Ok(Some(m)),
        _ => Err(EngineError::InvalidArgument(format!(
            "invalid chmod parameter: {chmod:?}: an octal mode such as 0755 is expected"
        ))),
    }
}

fn header(md: &std::fs::Metadata, perms: Perms) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    let mode = match perms.chmod {
        Some(m) if !md.file_type().is_symlink() => m,
        _ => md.mode() & 0o7777,
    };
    h.set_mode(mode);
    let (u, g) = perms.chown.unwrap_or((0, 0));
    h.set_uid(u);
    h.set_gid(g);
    h.set_mtime(md.mtime().max(0) as u64);
    h
}

fn append_dir(
    b: &mut TarOut,
    md: &std::fs::Metadata,
    dest: &str,
    perms: Perms,
) -> Result<(), EngineError> {
    let mut h = header(md, perms);
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    b.append_data(&mut h, format!("{dest}/"), io::empty())
        .map_err(EngineError::io("cannot add", Path::new(dest)))
}

fn entry_hash(md: &std::fs::Metadata, name: &str, link: &str, flag: Option<u8>) -> String {
    let typeflag = flag.unwrap_or(if md.is_dir() { b'5' } else { b'0' });
    EntryHasher::new(&TarsumHeader {
        name,
        mode: i64::from(md.mode() & 0o7777),
        uid: u64::from(md.uid()),
        gid: u64::from(md.gid()),
        size: if md.is_file() { md.len() } else { 0 },
        typeflag,
        linkname: link,
        ..Default::default()
    })
    .finish()
}

/// Adds one non-directory and returns its content hash (`downloaded`: an ADD URL's file,
/// hashed as moby hashes downloads).
fn append(
    b: &mut TarOut,
    path: &Path,
    md: &std::fs::Metadata,
    ctx: &str,
    dest: &str,
    perms: Perms,
    downloaded: bool,
) -> Result<String, EngineError> {
    let mut h = header(md, perms);
    let err = EngineError::io("cannot add", path);
    let ft = md.file_type();
    if ft.is_symlink() {
        let target = std::fs::read_link(path).map_err(EngineError::io("cannot read", path))?;
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        let t = target.to_string_lossy().into_owned();
        b.append_link(&mut h, dest, &target).map_err(err)?;
        return Ok(entry_hash(md, ctx, &t, Some(b'2')));
    }
    if !ft.is_file() {
        // Devices, fifos and sockets in a context are skipped, as moby's copier skips
        // what it cannot read as a file.
        return Ok(entry_hash(md, ctx, "", Some(b'0')));
    }
    // O_NOFOLLOW: the entry was a file at lstat time and must still be one.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags_nofollow()
        .open(path)
        .map_err(EngineError::io("cannot open", path))?;
    let mut hasher = if downloaded {
        download_hasher(ctx, md)
    } else {
        file_hasher(ctx, md)
    };
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(md.len());
    let reader = HashingReader {
        inner: f.take(md.len()),
        hasher: &mut hasher,
    };
    b.append_data(&mut h, dest, reader).map_err(err)?;
    Ok(hasher.finish())
}

/// The hasher of a downloaded regular file (moby `NewFileHash`: Go's `FileInfoHeader`
/// puts the file type bits in the mode and looks the owner's names up).
fn download_hasher(name: &str, md: &std::fs::Metadata) -> EntryHasher {
    use nix::unistd::{Gid, Group, Uid, User};
    let uname = User::from_uid(Uid::from_raw(md.uid()))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default();
    let gname = Group::from_gid(Gid::from_raw(md.gid()))
        .ok()
        .flatten()
        .map(|g| g.name)
        .unwrap_or_default();
    EntryHasher::new(&TarsumHeader {
        name,
        mode: i64::from(0o100000 | (md.mode() & 0o7777)),
        uid: u64::from(md.uid()),
        gid: u64::from(md.gid()),
        size: md.len(),
        typeflag: b'0',
        uname: &uname,
        gname: &gname,
        ..Default::default()
    })
}

/// The tarsum hasher of regular file `ctx` (its mode, owner and size from `md`).
fn file_hasher(ctx: &str, md: &std::fs::Metadata) -> EntryHasher {
    EntryHasher::new(&TarsumHeader {
        name: ctx,
        mode: i64::from(md.mode() & 0o7777),
        uid: u64::from(md.uid()),
        gid: u64::from(md.gid()),
        size: md.len(),
        typeflag: b'0',
        ..Default::default()
    })
}

/// Whether a file is a tar (plain or gzip), as moby's `archive.IsArchivePath` decides:
/// its first header reads.
fn is_archive(path: &Path) -> bool {
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags_nofollow()
        .open(path)
    else {
        return false;
    };
    let mut head = Vec::new();
    if f.take(2).read_to_end(&mut head).is_err() {
        return false;
    }
    let Ok(f) = File::open(path) else {
        return false;
    };
    let reader: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(f))
    } else {
        Box::new(f)
    };
    let mut a = tar::Archive::new(reader.take(1024));
    matches!(a.entries().map(|mut e| e.next()), Ok(Some(Ok(_))))
}

/// Re-roots the entries of the archive at `path` below `dest` (the container's safe
/// extraction refuses `..` and links out when the result is applied).
fn append_archive(
    b: &mut TarOut,
    path: &Path,
    md: &std::fs::Metadata,
    ctx: &str,
    dest: &str,
) -> Result<String, EngineError> {
    let err = |e: io::Error| EngineError::InvalidArgument(format!("ADD {ctx}: {e}"));
    let mut hasher = file_hasher(ctx, md);
    // Hash the archive's bytes as they are (the cache names the file, not its entries).
    {
        let mut f = File::open(path).map_err(err)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf).map_err(err)?;
            if n == 0 {
                break;
            }
            hasher.update(buf.get(..n).unwrap_or_default());
        }
    }
    let mut f = File::open(path).map_err(err)?;
    let mut head = [0u8; 2];
    let gz = f.read(&mut head).map_err(err)? == 2 && head == [0x1f, 0x8b];
    let f = File::open(path).map_err(err)?;
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(f))
    } else {
        Box::new(f)
    };
    let mut a = tar::Archive::new(reader);
    for e in a.entries().map_err(err)? {
        let mut e = e.map_err(err)?;
        let name = e.path().map_err(err)?.to_string_lossy().into_owned();
        let cleaned = clean(&format!("/{name}"));
        let rel = cleaned.trim_start_matches('/');
        if rel.is_empty() {
            continue;
        }
        let target = join(dest, rel);
        let mut h = e.header().clone();
        match h.entry_type() {
            tar::EntryType::Link => {
                let l = e.link_name().map_err(err)?.unwrap_or_default();
                let l = clean(&format!("/{}", l.to_string_lossy()));
                let l = join(dest, l.trim_start_matches('/'));
                b.append_link(&mut h, &target, &l).map_err(err)?;
            }
            tar::EntryType::Symlink => {
                let l = e.link_name().map_err(err)?.unwrap_or_default();
                b.append_link(&mut h, &target, &l).map_err(err)?;
            }
            _ => b.append_data(&mut h, &target, &mut e).map_err(err)?,
        }
    }
    Ok(hasher.finish())
}

trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}

impl NoFollow for std::fs::OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
    }
}

struct HashingReader<'a, R> {
    inner: R,
    hasher: &'a mut EntryHasher,
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.txt"), b"a").unwrap();
        std::fs::write(d.path().join("b.txt"), b"b").unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/c"), b"c").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", d.path().join("link")).unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("etc")).unwrap();
        d
    }

    fn names(tar: &Path) -> Vec<(String, tar::EntryType)> {
        let mut a = tar::Archive::new(File::open(tar).unwrap());
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().entry_type(),
                )
            })
            .collect()
    }

    #[test]
    fn wildcards_dirs_and_symlinks_are_copied_without_following() {
        let d = ctx();
        let out = d.path().join("out.tar");
        let none = Matcher::new::<&str>(&[]).unwrap();
        let srcs = vec!["*.txt".to_string(), "sub".into(), "link".into()];
        let g = gather(
            d.path(),
            &srcs,
            "/app/",
            Perms::default(),
            &none,
            &out,
            false,
        )
        .unwrap();
        assert!(g.hash.starts_with("multi:"));
        let n = names(&out);
        assert!(n.contains(&("app/a.txt".into(), tar::EntryType::Regular)));
        assert!(n.contains(&("app/c".into(), tar::EntryType::Regular)));
        assert!(n.contains(&("app/link".into(), tar::EntryType::Symlink)));
        // A path through a symlinked directory is refused, never read.
        let e = gather(
            d.path(),
            &["etc/shadow".into()],
            "/x",
            Perms::default(),
            &none,
            &out,
            false,
        );
        assert!(e.is_err());
        let e = gather(
            d.path(),
            &["../x".into()],
            "/x",
            Perms::default(),
            &none,
            &out,
            false,
        );
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("outside the build context"));
    }

    #[test]
    fn a_probe_hashes_without_writing() {
        let d = ctx();
        let none = Matcher::new::<&str>(&[]).unwrap();
        let srcs: Vec<Source> = ["*.txt", "sub", "link"]
            .iter()
            .map(|n| Source {
                root: d.path(),
                name: n.to_string(),
                downloaded: false,
            })
            .collect();
        let before: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        let probe = gather_sources(&srcs, "/app/", Perms::default(), &none, None, false).unwrap();
        let after: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(before.len(), after.len(), "the probe wrote a file");
        let out = d.path().join("out.tar");
        let written =
            gather_sources(&srcs, "/app/", Perms::default(), &none, Some(&out), false).unwrap();
        assert_eq!(probe.hash, written.hash);
        assert!(names(&out).contains(&("app/c".into(), tar::EntryType::Regular)));
    }

    #[test]
    fn one_file_to_a_file_name_and_ignored_files_missing() {
        let d = ctx();
        let out = d.path().join("out.tar");
        let ign = Matcher::new(&["b.txt"]).unwrap();
        let g = gather(
            d.path(),
            &["a.txt".into()],
            "/x/y",
            Perms {
                chown: Some((5, 6)),
                chmod: None,
            },
            &ign,
            &out,
            false,
        )
        .unwrap();
        assert!(g.hash.starts_with("file:"));
        assert_eq!(names(&out), [("x/y".to_string(), tar::EntryType::Regular)]);
        assert!(gather(
            d.path(),
            &["b.txt".into()],
            "/x",
            Perms::default(),
            &ign,
            &out,
            false
        )
        .is_err());
        assert_eq!(parse_chown("1:2").unwrap(), Some((1, 2)));
        assert!(parse_chown("bob").is_err());
        let img = tempfile::tempdir().unwrap();
        std::fs::create_dir(img.path().join("etc")).unwrap();
        std::fs::write(
            img.path().join("etc/passwd"),
            "root:x:0:0::/:/bin/sh\nbob:x:7:8::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(img.path().join("etc/group"), "staff:x:50:\n").unwrap();
        let layers = [img.path().to_path_buf()];
        assert_eq!(resolve_chown("bob", &layers).unwrap(), Some((7, 8)));
        assert_eq!(resolve_chown("bob:staff", &layers).unwrap(), Some((7, 50)));
        assert_eq!(resolve_chown("3:staff", &layers).unwrap(), Some((3, 50)));
        let e = resolve_chown("eve", &layers).unwrap_err().to_string();
        assert!(e.contains("can't find uid for user eve"), "{e}");
    }

    #[test]
    fn an_exception_inside_an_excluded_directory_is_copied() {
        let d = ctx();
        std::fs::write(d.path().join("sub/keep"), b"k").unwrap();
        let out = d.path().join("out.tar");
        let ign = Matcher::new(&["sub", "!sub/keep", "link", "etc", "out.tar"]).unwrap();
        gather(
            d.path(),
            &[".".into()],
            "/x/",
            Perms::default(),
            &ign,
            &out,
            false,
        )
        .unwrap();
        let files: Vec<String> = names(&out)
            .into_iter()
            .filter(|(_, t)| *t == tar::EntryType::Regular)
            .map(|(n, _)| n)
            .collect();
        assert_eq!(files, ["x/a.txt", "x/b.txt", "x/sub/keep"]);
    }

    #[test]
    fn chmod_sets_files_and_dirs_but_not_symlinks() {
        let d = ctx();
        let out = d.path().join("out.tar");
        let ign = Matcher::new(&["out.tar", "etc"]).unwrap();
        let perms = Perms {
            chown: None,
            chmod: parse_chmod("0750").unwrap(),
        };
        gather(d.path(), &[".".into()], "/x/", perms, &ign, &out, false).unwrap();
        let mut a = tar::Archive::new(File::open(&out).unwrap());
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            let mode = e.header().mode().unwrap();
            let want = if e.header().entry_type() == tar::EntryType::Symlink {
                0o777
            } else {
                0o750
            };
            assert_eq!(mode, want, "{:?}", e.path().unwrap());
        }
        assert!(parse_chmod("999").is_err());
        assert!(parse_chmod("17777").is_err());
        assert_eq!(parse_chmod("").unwrap(), None);
    }
}
