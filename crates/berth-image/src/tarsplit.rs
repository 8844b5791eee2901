//! Tar-split: how a layer that arrived as a plain tar is kept without a second copy of its
//! bytes. While the layer unpacks, every byte of the tar that is not the content of a
//! regular file (headers, PAX records, padding, the end-of-archive blocks) is written to
//! `raw`, and `index` lists the stream as runs of raw bytes and "the next N bytes are the
//! content of file P". Reading the layer back ([`SplitReader`]) replays the runs and reads
//! file contents from the unpacked `diff/`, which reproduces the tar byte for byte: the
//! layer's diffID is checked again at the end of every replay.
//!
//! A file whose content the index refers to can be replaced later in the same tar (a
//! duplicate name, a directory entry over a file, a whiteout). Before the unpacker
//! removes such a path it asks [`SplitRecorder::stash`], which moves the doomed file or
//! tree into `stash/` beside the index instead, and the index follows it there.
//!
//! Paths in the index are relative and are resolved with `lstat` on every component at
//! replay, refusing symlinks and anything that is not a regular file of the recorded size.

use std::cell::RefCell;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use crate::digest::{Digest, DigestWriter};

/// Name of the directory beside `diff/` that holds a split layer's index.
pub const SPLIT_DIR: &str = "tar-split";
const RAW_FILE: &str = "raw";
const INDEX_FILE: &str = "index";
const STASH_DIR: &str = "stash";
const TAG_RAW: u8 = b'R';
const TAG_FILE: u8 = b'F';

/// Where a recorded file's content lives.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Root {
    /// Below the layer's `diff/`.
    Diff,
    /// Below `tar-split/stash/`.
    Stash,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Run {
    Raw(u64),
    File {
        root: Root,
        path: PathBuf,
        size: u64,
    },
}

/// Records a layer's tar while the unpacker consumes it. Shared (single thread) between
/// the [`Recording`] reader under the tar parser and the unpacker, which says which bytes
/// are file content ([`SplitRecorder::file_content`]).
#[derive(Debug)]
pub(crate) struct SplitRecorder {
    dir: PathBuf,
    raw: BufWriter<File>,
    runs: Vec<Run>,
    /// Stream bytes seen so far.
    pos: u64,
    /// Bytes before this position are the content of the last recorded file.
    content_until: u64,
    /// Raw bytes written since the last run was closed.
    pending_raw: u64,
    stashed: u64,
    /// Set when the stream did not go as the recorder expects; the layer then cannot be
    /// replayed and the caller must keep the tar another way.
    broken: Option<String>,
}

pub(crate) type SharedRecorder = Rc<RefCell<SplitRecorder>>;

impl SplitRecorder {
    /// Starts recording into `dir` (created; must not exist).
    pub(crate) fn create(dir: &Path) -> io::Result<SharedRecorder> {
        fs::create_dir(dir)?;
        fs::create_dir(dir.join(STASH_DIR))?;
        let raw = BufWriter::with_capacity(64 * 1024, File::create(dir.join(RAW_FILE))?);
        Ok(Rc::new(RefCell::new(SplitRecorder {
            dir: dir.to_path_buf(),
            raw,
            runs: Vec::new(),
            pos: 0,
            content_until: 0,
            pending_raw: 0,
            stashed: 0,
            broken: None,
        })))
    }

    fn consume(&mut self, bytes: &[u8]) -> io::Result<()> {
        let content = (self.content_until.saturating_sub(self.pos)).min(bytes.len() as u64);
        let raw = &bytes[content as usize..];
        if !raw.is_empty() {
            self.raw.write_all(raw)?;
            self.pending_raw += raw.len() as u64;
        }
        self.pos += bytes.len() as u64;
        Ok(())
    }

    fn close_raw_run(&mut self) {
        if self.pending_raw > 0 {
            self.runs.push(Run::Raw(self.pending_raw));
            self.pending_raw = 0;
        }
    }

    /// The next `size` bytes of the stream, starting at `stream_pos`, are the content of
    /// `rel` (relative to the layer root). Call before reading them.
    pub(crate) fn file_content(&mut self, rel: &Path, size: u64, stream_pos: u64) {
        if self.broken.is_some() || size == 0 {
            return;
        }
        if stream_pos != self.pos || self.content_until > self.pos {
            self.broken = Some(format!(
                "content of {} at {stream_pos}, stream at {}",
                rel.display(),
                self.pos
            ));
            return;
        }
        self.close_raw_run();
        self.runs.push(Run::File {
            root: Root::Diff,
            path: rel.to_path_buf(),
            size,
        });
        self.content_until = self.pos + size;
    }

    /// Before `abs` (at `rel` in the layer) is removed: when recorded content lives there,
    /// moves it into the stash instead and returns true (the caller must then not remove
    /// it; it is gone from `rel` already).
    pub(crate) fn stash(&mut self, rel: &Path, abs: &Path) -> io::Result<bool> {
        let hit = |r: &Run| matches!(r, Run::File { root: Root::Diff, path, .. } if path.starts_with(rel));
        if self.broken.is_some() || !self.runs.iter().any(hit) {
            return Ok(false);
        }
        let name = self.stashed.to_string();
        self.stashed += 1;
        fs::rename(abs, self.dir.join(STASH_DIR).join(&name))?;
        for run in &mut self.runs {
            if let Run::File { root, path, .. } = run {
                if *root == Root::Diff {
                    if let Ok(rest) = path.strip_prefix(rel) {
                        *path = Path::new(&name).join(rest);
                        *root = Root::Stash;
                    }
                }
            }
        }
        Ok(true)
    }

    /// Writes the index (after the whole stream went through). Errors when the stream
    /// could not be recorded faithfully.
    pub(crate) fn finish(&mut self) -> io::Result<()> {
        if let Some(why) = &self.broken {
            return Err(io::Error::other(format!("cannot index layer: {why}")));
        }
        if self.content_until > self.pos {
            return Err(io::Error::other(
                "cannot index layer: stream ends inside a file",
            ));
        }
        self.close_raw_run();
        self.raw.flush()?;
        self.raw.get_ref().sync_all()?;
        let mut index = Vec::with_capacity(self.runs.len() * 32);
        for run in &self.runs {
            match run {
                Run::Raw(n) => {
                    index.push(TAG_RAW);
                    index.extend_from_slice(&n.to_le_bytes());
                }
                Run::File { root, path, size } => {
                    index.push(TAG_FILE);
                    index.push(match root {
                        Root::Diff => b'd',
                        Root::Stash => b's',
                    });
                    index.extend_from_slice(&size.to_le_bytes());
                    let p = path.as_os_str().as_bytes();
                    index.extend_from_slice(&(p.len() as u32).to_le_bytes());
                    index.extend_from_slice(p);
                }
            }
        }
        berth_sys::fs::atomic_write(&self.dir.join(INDEX_FILE), &index, 0o600)
    }
}

/// The reader the tar parser reads through: passes bytes on and records them.
pub(crate) struct Recording<R> {
    pub(crate) inner: R,
    pub(crate) recorder: Option<SharedRecorder>,
}

impl<R: Read> Read for Recording<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(r) = &self.recorder {
            r.borrow_mut().consume(&buf[..n])?;
        }
        Ok(n)
    }
}

fn parse_index(bytes: &[u8]) -> io::Result<Vec<Run>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "corrupt tar-split index");
    let mut runs = Vec::new();
    let mut rest = bytes;
    let take = |rest: &mut &[u8], n: usize| -> io::Result<Vec<u8>> {
        if rest.len() < n {
            return Err(bad());
        }
        let (a, b) = rest.split_at(n);
        *rest = b;
        Ok(a.to_vec())
    };
    let u64_of = |v: Vec<u8>| u64::from_le_bytes(v.try_into().unwrap_or([0; 8]));
    while !rest.is_empty() {
        match take(&mut rest, 1)?[0] {
            TAG_RAW => runs.push(Run::Raw(u64_of(take(&mut rest, 8)?))),
            TAG_FILE => {
                let root = match take(&mut rest, 1)?[0] {
                    b'd' => Root::Diff,
                    b's' => Root::Stash,
                    _ => return Err(bad()),
                };
                let size = u64_of(take(&mut rest, 8)?);
                let len = u32::from_le_bytes(take(&mut rest, 4)?.try_into().unwrap_or([0; 4]));
                let path =
                    PathBuf::from(std::ffi::OsString::from_vec(take(&mut rest, len as usize)?));
                runs.push(Run::File { root, path, size });
            }
            _ => return Err(bad()),
        }
    }
    Ok(runs)
}

/// Opens `rel` below `base` for reading, refusing `..`, absolute paths, symlinks in any
/// component and anything but a regular file of `size` bytes.
fn open_below(base: &Path, rel: &Path, size: u64) -> io::Result<File> {
    let refuse = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("layer file {}: {why}", rel.display()),
        )
    };
    let mut path = base.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for (i, c) in comps.iter().enumerate() {
        let Component::Normal(name) = c else {
            return Err(refuse("not a plain relative path"));
        };
        path.push(name);
        let meta = fs::symlink_metadata(&path)?;
        let last = i + 1 == comps.len();
        if meta.file_type().is_symlink() {
            return Err(refuse("a symlink is in the way"));
        }
        if !last && !meta.is_dir() {
            return Err(refuse("a parent is not a directory"));
        }
        if last && (!meta.is_file() || meta.len() != size) {
            return Err(refuse("changed since the layer was stored"));
        }
    }
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(&path)
}

/// What a replay is in the middle of.
enum Current {
    Raw(u64),
    File(File, u64),
}

/// Replays a split layer as its original tar stream; fails at the end when the bytes do
/// not hash to the layer's diffID.
pub struct SplitReader {
    layer_dir: PathBuf,
    runs: std::vec::IntoIter<Run>,
    raw: BufReader<File>,
    current: Option<Current>,
    hasher: DigestWriter<io::Sink>,
    expected: Digest,
    done: bool,
}

impl std::fmt::Debug for SplitReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplitReader")
            .field("layer_dir", &self.layer_dir)
            .finish_non_exhaustive()
    }
}

impl SplitReader {
    /// `layer_dir` holds `diff/` and `tar-split/`.
    pub fn open(layer_dir: &Path, diff_id: Digest) -> io::Result<SplitReader> {
        let split = layer_dir.join(SPLIT_DIR);
        let runs = parse_index(&fs::read(split.join(INDEX_FILE))?)?;
        let raw = BufReader::with_capacity(64 * 1024, File::open(split.join(RAW_FILE))?);
        Ok(SplitReader {
            layer_dir: layer_dir.to_path_buf(),
            runs: runs.into_iter(),
            raw,
            current: None,
            hasher: DigestWriter::new(io::sink()),
            expected: diff_id,
            done: false,
        })
    }

    fn next_run(&mut self) -> io::Result<Option<Current>> {
        Ok(match self.runs.next() {
            None => None,
            Some(Run::Raw(n)) => Some(Current::Raw(n)),
            Some(Run::File { root, path, size }) => {
                let base = match root {
                    Root::Diff => self.layer_dir.join("diff"),
                    Root::Stash => self.layer_dir.join(SPLIT_DIR).join(STASH_DIR),
                };
                Some(Current::File(open_below(&base, &path, size)?, size))
            }
        })
    }

    fn end(&mut self) -> io::Result<usize> {
        self.done = true;
        let actual = self.hasher.digest();
        if actual != self.expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "layer {} replays as {actual}: its files changed on disk",
                    self.expected
                ),
            ));
        }
        Ok(0)
    }
}

impl Read for SplitReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        loop {
            let current = match self.current.take() {
                Some(c) => c,
                None => match self.next_run()? {
                    Some(c) => c,
                    None => return self.end(),
                },
            };
            let (n, left) = match current {
                Current::Raw(0) | Current::File(_, 0) => continue,
                Current::Raw(left) => {
                    let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = self.raw.read(&mut buf[..want])?;
                    self.current = Some(Current::Raw(left - n as u64));
                    (n, left)
                }
                Current::File(mut f, left) => {
                    let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = f.read(&mut buf[..want])?;
                    self.current = Some(Current::File(f, left - n as u64));
                    (n, left)
                }
            };
            if n == 0 && left > 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "layer data shorter than recorded",
                ));
            }
            self.hasher.write_all(&buf[..n])?;
            return Ok(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unpack::{unpack_layer_split, UnpackOptions};

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        h
    }

    fn layer(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data, link) in entries {
            let mut h = header(*kind, data.len() as u64);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            // append_data writes GNU long-name entries for long paths.
            b.append_data(&mut h, path, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// Unpacks `tar` with tar-split into a fresh layer dir, replays it, and returns the
    /// layer dir (kept alive by the tempdir) and the replayed bytes.
    fn round_trip(tar: &[u8]) -> (tempfile::TempDir, io::Result<Vec<u8>>) {
        let dir = tempfile::tempdir().unwrap();
        let stats = unpack_layer_split(
            tar,
            &dir.path().join("diff"),
            &dir.path().join(SPLIT_DIR),
            &UnpackOptions::default(),
        )
        .unwrap();
        let mut out = Vec::new();
        let replay = SplitReader::open(dir.path(), stats.diff_id)
            .and_then(|mut r| r.read_to_end(&mut out))
            .map(|_| out);
        (dir, replay)
    }

    use tar::EntryType as T;

    #[test]
    fn replays_a_layer_byte_for_byte() {
        let long = format!("dir/{}", "n".repeat(150));
        let tar = layer(&[
            ("dir", T::Directory, b"", None),
            ("dir/a.txt", T::Regular, b"hello world", None),
            (&long, T::Regular, &[7u8; 5000], None),
            ("dir/empty", T::Regular, b"", None),
            ("dir/link", T::Symlink, b"", Some("a.txt")),
            ("dir/hard", T::Link, b"", Some("dir/a.txt")),
            ("dir/.wh.gone", T::Regular, b"", None),
        ]);
        let (dir, replay) = round_trip(&tar);
        assert_eq!(replay.unwrap(), tar);
        // Only headers and padding are kept beside the files.
        let raw = fs::metadata(dir.path().join(SPLIT_DIR).join(RAW_FILE))
            .unwrap()
            .len();
        assert!(raw < tar.len() as u64 - 5000, "{raw}");
    }

    #[test]
    fn content_replaced_later_in_the_same_layer_is_stashed() {
        let tar = layer(&[
            ("f", T::Regular, b"first version", None),
            ("d/x", T::Regular, b"inside a dir that goes", None),
            ("f", T::Regular, b"second", None),
            ("d", T::Regular, b"now a file", None),
            ("g", T::Regular, b"gone by whiteout", None),
            (".wh.g", T::Regular, b"", None),
        ]);
        let (dir, replay) = round_trip(&tar);
        assert_eq!(replay.unwrap(), tar);
        assert_eq!(fs::read(dir.path().join("diff/f")).unwrap(), b"second");
    }

    #[test]
    fn tampered_files_and_planted_symlinks_are_refused() {
        let tar = layer(&[
            ("d", T::Directory, b"", None),
            ("d/secret", T::Regular, b"0123456789", None),
        ]);
        // Same size, other bytes: the replay digest catches it.
        let (dir, _) = round_trip(&tar);
        fs::write(dir.path().join("diff/d/secret"), b"9876543210").unwrap();
        let diff_id = Digest::of(&tar);
        let mut out = Vec::new();
        let err = SplitReader::open(dir.path(), diff_id)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(err.to_string().contains("changed on disk"), "{err}");
        // A directory swapped for a symlink to elsewhere is never followed.
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"host secret").unwrap();
        fs::remove_dir_all(dir.path().join("diff/d")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("diff/d")).unwrap();
        let err = SplitReader::open(dir.path(), diff_id)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
    }
}
