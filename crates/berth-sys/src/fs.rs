//! Crash-safe file writes (a record on disk is always either the old or the new version),
//! and the removal of what a crash left behind.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `data` to `path` atomically: a temp file in the same directory, fsync, rename over
/// `path`, fsync the directory. The new file gets exactly `mode` (e.g. 0o600 for keys),
/// whatever the umask. Safe to call from several threads at once.
pub fn atomic_write(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    write_and_rename(path, data, mode, true)
}

/// Replaces `path` with `data` as [`atomic_write`] does (a reader sees the old file or the
/// whole new one), without the fsyncs: for files that mean nothing after the machine
/// restarts (a bundle's `config.json`, a shim's pid file: the processes they describe are
/// gone then too), where waiting for the disk only slows a container's start.
pub fn replace(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    write_and_rename(path, data, mode, false)
}

fn write_and_rename(path: &Path, data: &[u8], mode: u32, durable: bool) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if durable {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes one entry of a directory being cleaned, a directory with all it holds (a link
/// is removed, never followed). `Ok(false)`: it was gone already.
pub fn remove_entry(entry: &fs::DirEntry) -> io::Result<bool> {
    let path = entry.path();
    let result = if entry.file_type().is_ok_and(|t| t.is_dir()) {
        fs::remove_dir_all(&path)
    } else {
        fs::remove_file(&path)
    };
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("record.json");
        atomic_write(&p, b"old", 0o600).unwrap();
        atomic_write(&p, b"new", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temp file left behind");
    }

    #[test]
    fn replace_without_fsync_is_still_whole_file_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        replace(&p, b"old", 0o644).unwrap();
        replace(&p, b"new, longer", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new, longer");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(replace(&dir.path().join("no/such/file"), b"x", 0o644).is_err());
    }

    #[test]
    fn missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(atomic_write(&dir.path().join("no/such/file"), b"x", 0o644).is_err());
    }

    #[test]
    fn remove_entry_removes_trees_and_links_not_their_targets() {
        let dir = tempfile::tempdir().unwrap();
        let (root, keep) = (dir.path().join("root"), dir.path().join("keep"));
        fs::create_dir_all(root.join("tree/sub")).unwrap();
        fs::create_dir(&keep).unwrap();
        fs::write(root.join("tree/sub/f"), b"x").unwrap();
        fs::write(root.join("file"), b"x").unwrap();
        fs::write(keep.join("kept"), b"x").unwrap();
        std::os::unix::fs::symlink(&keep, root.join("link")).unwrap();
        let entries: Vec<_> = fs::read_dir(&root).unwrap().map(Result::unwrap).collect();
        for e in &entries {
            assert!(remove_entry(e).unwrap(), "{:?}", e.path());
        }
        assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
        assert!(keep.join("kept").exists(), "the link's target was followed");
        assert!(!remove_entry(&entries[0]).unwrap(), "gone already");
    }
}
