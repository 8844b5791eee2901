//! Files the CLI streams to the user's disk (`save -o`): written beside their destination
//! under a fresh name (`O_EXCL`, so a planted link is never followed), synced, renamed over
//! the destination only when complete, the directory synced; an unfinished one is removed
//! when dropped. A whole buffer (the registry's `config.json`) goes through
//! `berth_sys::fs::atomic_write` instead.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Attempts at a free temporary name before giving up.
const NAME_TRIES: u32 = 1000;

/// A file written beside its destination and renamed over it only when complete.
#[derive(Debug)]
pub(crate) struct AtomicFile {
    file: File,
    tmp: PathBuf,
    dest: PathBuf,
    done: bool,
}

impl AtomicFile {
    /// Creates the temporary file (mode 0600 less the umask) in `dest`'s directory.
    pub(crate) fn create_beside(dest: &Path) -> io::Result<AtomicFile> {
        let dir = dest
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut n = 0u32;
        loop {
            let tmp = dir.join(format!(".berth_temp_{}_{n}", std::process::id()));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
            {
                Ok(file) => {
                    return Ok(AtomicFile {
                        file,
                        tmp,
                        dest: dest.to_path_buf(),
                        done: false,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < NAME_TRIES => n += 1,
                Err(e) => return Err(e),
            }
        }
    }

    pub(crate) fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)
    }

    /// Syncs the file, renames it over the destination and syncs the directory; the error
    /// names the step and the path (`sync PATH: ...`, `rename PATH: ...`).
    pub(crate) fn persist(mut self) -> io::Result<()> {
        self.file
            .sync_all()
            .map_err(|e| io::Error::new(e.kind(), format!("sync {}: {e}", self.tmp.display())))?;
        fs::rename(&self.tmp, &self.dest).map_err(|e| {
            io::Error::new(e.kind(), format!("rename {}: {e}", self.dest.display()))
        })?;
        self.done = true;
        let dir = self.dest.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io::Error::new(e.kind(), format!("sync {}: {e}", dir.display())))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("berth-atomic-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn replaces_the_destination_only_when_persisted() {
        let dir = scratch("persist");
        let dest = dir.join("out");
        fs::write(&dest, b"old").unwrap();
        let mut f = AtomicFile::create_beside(&dest).unwrap();
        f.write_all(b"new").unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        f.persist().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        let mode = fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o600, 0, "mode {mode:o}");
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            1,
            "a temp file was left"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dropped_unfinished_leaves_nothing_and_a_planted_link_is_not_followed() {
        let dir = scratch("drop");
        let dest = dir.join("out");
        let victim = dir.join("victim");
        fs::write(&victim, b"keep").unwrap();
        // The first name a writer would pick is a link to another file.
        let first = dir.join(format!(".berth_temp_{}_0", std::process::id()));
        std::os::unix::fs::symlink(&victim, &first).unwrap();
        let mut f = AtomicFile::create_beside(&dest).unwrap();
        f.write_all(b"data").unwrap();
        drop(f);
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert!(!dest.exists());
        let mut names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.len(), 2, "{names:?}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
