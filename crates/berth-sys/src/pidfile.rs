//! One daemon per data root: an exclusive `flock` on `<data-root>/berthd.lock`, plus the
//! dockerd-style pidfile that tools read.
//!
//! The flock is the real guard: the kernel drops it when the holder dies, even while the
//! holder lingers as a zombie (this machine's init reaps slowly). The pidfile check follows
//! moby `pkg/pidfile`: refuse only when the recorded process is alive, and count a zombie
//! (`/proc/PID/stat` state `Z`) as dead.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    #[error("another berthd (pid {pid}) is using data root {root}; stop it or pass a different --data-root")]
    DataRootBusy { root: PathBuf, pid: String },
    #[error("pid file {path} names a running process {pid}; is berthd already running? (remove the file if not)")]
    PidFileBusy { path: PathBuf, pid: i32 },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PidFileError + 'a {
    move |source| PidFileError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Held for the daemon's lifetime; dropping it releases the lock and removes the pidfile.
#[derive(Debug)]
pub struct DaemonLock {
    _lock: Flock<File>,
    pidfile: Option<PathBuf>,
}

impl DaemonLock {
    /// Locks `data_root` (which must exist) and writes our pid to `pidfile`.
    pub fn acquire(data_root: &Path, pidfile: Option<&Path>) -> Result<Self, PidFileError> {
        let lock_path = data_root.join("berthd.lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_err("cannot open lock file", &lock_path))?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, _)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Err(PidFileError::DataRootBusy {
                    root: data_root.to_path_buf(),
                    pid: pid.trim().to_string(),
                });
            }
        };
        let me = std::process::id().to_string();
        lock.set_len(0)
            .and_then(|_| lock.rewind())
            .and_then(|_| lock.write_all(me.as_bytes()))
            .map_err(io_err("cannot write lock file", &lock_path))?;

        if let Some(path) = pidfile {
            check_stale(path)?;
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).map_err(io_err("cannot create directory for", path))?;
            }
            crate::fs::atomic_write(path, me.as_bytes(), 0o644)
                .map_err(io_err("cannot write pid file", path))?;
        }
        Ok(Self {
            _lock: lock,
            pidfile: pidfile.map(Path::to_path_buf),
        })
    }
}

impl Drop for DaemonLock {
    fn drop(&mut self) {
        if let Some(p) = &self.pidfile {
            let _ = fs::remove_file(p);
        }
    }
}

fn check_stale(path: &Path) -> Result<(), PidFileError> {
    let Ok(content) = fs::read_to_string(path) else {
        return Ok(());
    };
    let Ok(pid) = content.trim().parse::<i32>() else {
        return Ok(());
    };
    if pid != std::process::id() as i32 && process_alive(pid) {
        return Err(PidFileError::PidFileBusy {
            path: path.to_path_buf(),
            pid,
        });
    }
    Ok(())
}

/// Whether `pid` names a live process; a zombie counts as dead.
pub fn process_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => parse_stat_state(&stat).is_some_and(|s| s != 'Z' && s != 'X'),
        Err(_) => false,
    }
}

/// The state letter of a `/proc/PID/stat` line; the command name may hold spaces and parens,
/// so read after the last `)`.
fn parse_stat_state(stat: &str) -> Option<char> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().next()?.chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_parsing_handles_odd_names() {
        assert_eq!(parse_stat_state("12 (sh) S 1 2 3"), Some('S'));
        assert_eq!(parse_stat_state("12 (a) b) Z 1 2"), Some('Z'));
        assert_eq!(parse_stat_state("garbage"), None);
    }

    #[test]
    fn second_lock_on_same_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("berthd.pid");
        let first = DaemonLock::acquire(dir.path(), Some(&pid)).unwrap();
        // flock locks belong to the open file description, so a second open conflicts
        // even within one process.
        let err = DaemonLock::acquire(dir.path(), None).unwrap_err();
        assert!(matches!(err, PidFileError::DataRootBusy { .. }), "{err}");
        assert_eq!(
            fs::read_to_string(&pid).unwrap(),
            std::process::id().to_string()
        );
        drop(first);
        assert!(!pid.exists(), "pidfile not removed on drop");
        DaemonLock::acquire(dir.path(), None).unwrap();
    }

    #[test]
    fn stale_pidfile_of_dead_process_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("p.pid");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        fs::write(&pid, dead.to_string()).unwrap();
        DaemonLock::acquire(dir.path(), Some(&pid)).unwrap();
    }

    #[test]
    fn pidfile_of_live_process_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("p.pid");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        fs::write(&pid, child.id().to_string()).unwrap();
        let err = DaemonLock::acquire(dir.path(), Some(&pid)).unwrap_err();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(matches!(err, PidFileError::PidFileBusy { .. }), "{err}");
    }
}
