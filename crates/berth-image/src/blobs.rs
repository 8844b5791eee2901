//! The content-addressed blob store: manifests, configs and compressed layers, each kept
//! under its sha256 at `<root>/blobs/sha256/<hex>`.
//!
//! Writes are verified and crash safe: content streams into a temp file under
//! `<root>/blobs/tmp/`, is hashed on the way, fsynced, checked against the digest the caller
//! expects, and only then renamed into place (and the directory fsynced). A blob that is
//! visible is therefore always complete and correct; a crash leaves at most a temp file,
//! which [`BlobStore::new`] removes. The store does not know what a blob means or who
//! references it: garbage collection belongs to the image store above.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::digest::{Digest, DigestWriter};

/// Size of the copy buffer for streamed writes.
const COPY_BUF: usize = 256 * 1024;
/// Blobs are read by the daemon only.
const BLOB_MODE: u32 = 0o600;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The store has no blob with this digest.
    #[error("no such blob: {digest}")]
    NotFound { digest: Digest },
    /// Content did not hash to the digest it was announced with; nothing was stored.
    #[error("blob digest mismatch: expected {expected}, got {actual}")]
    Mismatch { expected: Digest, actual: Digest },
    /// A filesystem operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// Reading the content to store failed (network, truncated upload).
    #[error("reading blob content: {0}")]
    Read(#[source] io::Error),
}

impl BlobError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, BlobError::NotFound { .. })
    }

    fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BlobError + 'a {
        move |source| BlobError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A blob store rooted at a directory (the image root, e.g. `/var/lib/berth/image`).
#[derive(Debug)]
pub struct BlobStore {
    /// `<root>/blobs/sha256`
    content: PathBuf,
    /// `<root>/blobs/tmp`
    tmp: PathBuf,
    /// Serialises [`BlobStore::put_bytes`]: `atomic_write` names its temp file after the
    /// target and the pid, so two writes of the same blob must not overlap.
    small_writes: Mutex<()>,
}

/// Distinguishes temp files of concurrent writes in one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl BlobStore {
    /// Opens (creating if needed) the store under `root` and removes temp files left by a
    /// crash. Call once at start-up, before any write.
    pub fn new(root: impl AsRef<Path>) -> Result<BlobStore, BlobError> {
        let blobs = root.as_ref().join("blobs");
        let store = BlobStore {
            content: blobs.join(Digest::ALGORITHM),
            tmp: blobs.join("tmp"),
            small_writes: Mutex::new(()),
        };
        for dir in [&store.content, &store.tmp] {
            fs::create_dir_all(dir).map_err(BlobError::io("creating blob directory", dir))?;
        }
        store.cleanup_temp()?;
        Ok(store)
    }

    /// Where the blob with `digest` lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.content.join(digest.hex())
    }

    /// Streams `reader` into the store. Returns the content's digest and size. When
    /// `expected` is given and the content hashes to something else, nothing is stored and
    /// [`BlobError::Mismatch`] names both digests.
    pub fn put_stream(
        &self,
        mut reader: impl Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), BlobError> {
        let (tmp_path, file) = self.create_temp()?;
        let result = (|| {
            let mut w = DigestWriter::new(file);
            let mut buf = vec![0u8; COPY_BUF];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(BlobError::Read(e)),
                };
                w.write_all(&buf[..n])
                    .map_err(BlobError::io("writing blob", &tmp_path))?;
            }
            let (file, digest, size) = w.into_parts();
            if let Some(expected) = expected {
                if *expected != digest {
                    return Err(BlobError::Mismatch {
                        expected: *expected,
                        actual: digest,
                    });
                }
            }
            file.sync_all()
                .map_err(BlobError::io("syncing blob", &tmp_path))?;
            drop(file);
            let dest = self.path(&digest);
            // Same name means same content: an existing blob is as good as ours.
            if !is_file(&dest) {
                fs::rename(&tmp_path, &dest).map_err(BlobError::io("storing blob", &dest))?;
                sync_dir(&self.content)?;
            }
            Ok((digest, size))
        })();
        // After a successful rename this finds nothing; after any failure it removes the
        // partial content so no trace of the failed write remains.
        let _ = fs::remove_file(&tmp_path);
        result
    }

    /// Stores a small blob held in memory (a manifest or config), verified like
    /// [`BlobStore::put_stream`], written with `berth_sys::fs::atomic_write`.
    pub fn put_bytes(&self, data: &[u8], expected: Option<&Digest>) -> Result<Digest, BlobError> {
        let digest = Digest::of(data);
        if let Some(expected) = expected {
            if *expected != digest {
                return Err(BlobError::Mismatch {
                    expected: *expected,
                    actual: digest,
                });
            }
        }
        let dest = self.path(&digest);
        let _guard = self
            .small_writes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !is_file(&dest) {
            berth_sys::fs::atomic_write(&dest, data, BLOB_MODE)
                .map_err(BlobError::io("storing blob", &dest))?;
        }
        Ok(digest)
    }

    /// Opens the blob for reading.
    pub fn open(&self, digest: &Digest) -> Result<File, BlobError> {
        let path = self.path(digest);
        File::open(&path).map_err(|e| self.not_found_or(e, digest, "opening blob", &path))
    }

    /// Reads a whole (small) blob into memory.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, BlobError> {
        let path = self.path(digest);
        fs::read(&path).map_err(|e| self.not_found_or(e, digest, "reading blob", &path))
    }

    /// Whether the store holds the blob.
    pub fn contains(&self, digest: &Digest) -> bool {
        is_file(&self.path(digest))
    }

    /// The blob's size in bytes.
    pub fn size(&self, digest: &Digest) -> Result<u64, BlobError> {
        let path = self.path(digest);
        fs::symlink_metadata(&path)
            .map(|m| m.len())
            .map_err(|e| self.not_found_or(e, digest, "inspecting blob", &path))
    }

    /// Re-hashes a stored blob and checks it still matches its name (for `fsck`-like
    /// checks; reads never do this on their own).
    pub fn verify(&self, digest: &Digest) -> Result<(), BlobError> {
        let path = self.path(digest);
        let mut file = self.open(digest)?;
        let mut w = DigestWriter::new(io::sink());
        io::copy(&mut file, &mut w).map_err(BlobError::io("reading blob", &path))?;
        let actual = w.digest();
        if actual != *digest {
            return Err(BlobError::Mismatch {
                expected: *digest,
                actual,
            });
        }
        Ok(())
    }

    /// Removes the blob. Returns whether it existed.
    pub fn delete(&self, digest: &Digest) -> Result<bool, BlobError> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(&self.content)?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(BlobError::Io {
                what: "removing blob",
                path,
                source: e,
            }),
        }
    }

    /// Every blob in the store, in no particular order.
    pub fn list(&self) -> Result<Vec<Digest>, BlobError> {
        let entries =
            fs::read_dir(&self.content).map_err(BlobError::io("listing blobs", &self.content))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(BlobError::io("listing blobs", &self.content))?;
            if let Some(d) = entry.file_name().to_str().and_then(Digest::from_hex) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Removes what a crash may have left: everything under `blobs/tmp/`, and
    /// `atomic_write` temp files (any name that is not a digest) in the content directory.
    /// Returns how many entries were removed. Must not run while writes are in flight.
    pub fn cleanup_temp(&self) -> Result<usize, BlobError> {
        let mut removed = 0;
        for (dir, keep_digests) in [(&self.tmp, false), (&self.content, true)] {
            let entries = fs::read_dir(dir).map_err(BlobError::io("listing blobs", dir))?;
            for entry in entries {
                let entry = entry.map_err(BlobError::io("listing blobs", dir))?;
                let name = entry.file_name();
                if keep_digests && name.to_str().and_then(Digest::from_hex).is_some() {
                    continue;
                }
                let path = entry.path();
                let gone = berth_sys::fs::remove_entry(&entry)
                    .map_err(BlobError::io("removing leftover temp file", &path))?;
                removed += usize::from(gone);
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed partial blob writes left by a crash");
        }
        Ok(removed)
    }

    fn create_temp(&self) -> Result<(PathBuf, File), BlobError> {
        loop {
            let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = self.tmp.join(format!("{}-{n}", std::process::id()));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(BLOB_MODE)
                .open(&path)
            {
                Ok(f) => return Ok((path, f)),
                // A leftover of an earlier process with the same pid.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(BlobError::Io {
                        what: "creating blob temp file",
                        path,
                        source: e,
                    })
                }
            }
        }
    }

    fn not_found_or(
        &self,
        e: io::Error,
        digest: &Digest,
        what: &'static str,
        path: &Path,
    ) -> BlobError {
        if e.kind() == io::ErrorKind::NotFound {
            BlobError::NotFound { digest: *digest }
        } else {
            BlobError::Io {
                what,
                path: path.to_path_buf(),
                source: e,
            }
        }
    }
}

fn is_file(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(BlobError::io("syncing directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that fails after `ok` bytes, like a registry connection that drops.
    struct Failing {
        ok: usize,
    }

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.ok == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "peer went away",
                ));
            }
            let n = buf.len().min(self.ok);
            buf[..n].fill(b'x');
            self.ok -= n;
            Ok(n)
        }
    }

    fn count(dir: &Path) -> usize {
        fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn digest_mismatch_stores_nothing_and_names_both() {
        let root = tempfile::tempdir().unwrap();
        let store = BlobStore::new(root.path()).unwrap();
        let wrong = Digest::of(b"something else");
        let err = store.put_stream(&b"content"[..], Some(&wrong)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&wrong.to_string()), "{msg}");
        assert!(msg.contains(&Digest::of(b"content").to_string()), "{msg}");
        assert!(!store.contains(&Digest::of(b"content")));
        assert_eq!(count(&store.tmp), 0, "temp file left behind");
        assert_eq!(count(&store.content), 0);

        let err = store.put_bytes(b"content", Some(&wrong)).unwrap_err();
        assert!(matches!(err, BlobError::Mismatch { .. }));
        assert_eq!(count(&store.content), 0);
    }

    #[test]
    fn failed_read_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let store = BlobStore::new(root.path()).unwrap();
        let err = store
            .put_stream(Failing { ok: 1_000_000 }, None)
            .unwrap_err();
        assert!(matches!(err, BlobError::Read(_)), "{err}");
        assert!(err.to_string().starts_with("reading blob content: "));
        assert_eq!(count(&store.tmp), 0);
        assert_eq!(count(&store.content), 0);
    }

    #[test]
    fn missing_blobs_are_not_found() {
        let root = tempfile::tempdir().unwrap();
        let store = BlobStore::new(root.path()).unwrap();
        let d = Digest::of(b"absent");
        assert!(!store.contains(&d));
        for err in [
            store.open(&d).unwrap_err(),
            store.read(&d).unwrap_err(),
            store.size(&d).unwrap_err(),
            store.verify(&d).unwrap_err(),
        ] {
            assert!(err.is_not_found(), "{err}");
            assert_eq!(err.to_string(), format!("no such blob: {d}"));
        }
        assert!(!store.delete(&d).unwrap());
    }

    #[test]
    fn put_open_size_delete() {
        let root = tempfile::tempdir().unwrap();
        let store = BlobStore::new(root.path()).unwrap();
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let want = Digest::of(&data);
        let (d, n) = store.put_stream(&data[..], Some(&want)).unwrap();
        assert_eq!((d, n), (want, data.len() as u64));
        assert_eq!(
            store.path(&d),
            root.path().join("blobs/sha256").join(d.hex())
        );
        assert!(store.contains(&d));
        assert_eq!(store.size(&d).unwrap(), data.len() as u64);
        let mut back = Vec::new();
        store.open(&d).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        store.verify(&d).unwrap();
        assert_eq!(store.list().unwrap(), vec![d]);

        // Writing the same content again is fine and changes nothing.
        let (again, _) = store.put_stream(&data[..], None).unwrap();
        assert_eq!(again, d);
        assert_eq!(count(&store.content), 1);
        assert_eq!(count(&store.tmp), 0);

        assert!(store.delete(&d).unwrap());
        assert!(!store.contains(&d));
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn put_bytes_round_trips() {
        let root = tempfile::tempdir().unwrap();
        let store = BlobStore::new(root.path()).unwrap();
        let d = store.put_bytes(b"{\"config\":{}}", None).unwrap();
        assert_eq!(d, Digest::of(b"{\"config\":{}}"));
        assert_eq!(store.read(&d).unwrap(), b"{\"config\":{}}");
        assert_eq!(store.put_bytes(b"{\"config\":{}}", Some(&d)).unwrap(), d);
        assert_eq!(count(&store.content), 1);
    }

    #[test]
    fn verify_detects_corruption_on_disk() {
        let root = tempfile::tempdir().unwrap();
        let store = BlobStore::new(root.path()).unwrap();
        let d = store.put_bytes(b"good", None).unwrap();
        fs::write(store.path(&d), b"evil").unwrap();
        match store.verify(&d).unwrap_err() {
            BlobError::Mismatch { expected, actual } => {
                assert_eq!(expected, d);
                assert_eq!(actual, Digest::of(b"evil"));
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn open_removes_crash_leftovers() {
        let root = tempfile::tempdir().unwrap();
        let store = BlobStore::new(root.path()).unwrap();
        let d = store.put_bytes(b"keep me", None).unwrap();
        fs::write(store.tmp.join("1234-0"), b"half a layer").unwrap();
        fs::create_dir(store.tmp.join("odd-dir")).unwrap();
        fs::write(store.content.join(format!(".{}.tmp-99", d.hex())), b"half").unwrap();
        drop(store);

        let store = BlobStore::new(root.path()).unwrap();
        assert_eq!(count(&store.tmp), 0);
        assert_eq!(store.list().unwrap(), vec![d]);
        assert_eq!(count(&store.content), 1);
        assert_eq!(store.read(&d).unwrap(), b"keep me");
        assert_eq!(store.cleanup_temp().unwrap(), 0);
    }
}
