//! Processes addressed by pidfd instead of by a stored pid: a container's `/proc/<pid>/root`
//! and `/proc/<pid>/ns/*` must never resolve to what a reused pid (or the host) has.
//!
//! [`ProcessHandle::open`] takes a pidfd (`pidfd_open(2)`) and checks that the process it
//! names is the expected one: its start time (`/proc/<pid>/stat` field 22, clock ticks
//! since boot, fixed for the life of a process) must equal the one recorded when the
//! container started. Each `/proc/<pid>/…` entry is then opened by path and the pidfd asked
//! whether its process is still alive (`pidfd_send_signal(fd, 0)`) *after* the open: a pid
//! is only reused once its process has been reaped, so a process still alive after the
//! open is the one whose entry was opened. Callers keep the fd they got, never the path.
//!
//! Owns: the syscalls and that check. Does not own: where start times are recorded (the
//! engine's container records), nor keeping a handle for as long as a path given to
//! another program must stay good (callers hold the handle and ask [`ProcessHandle::alive`]
//! once that program is done).

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

/// Why a process could not be addressed.
#[derive(Debug, thiserror::Error)]
pub enum PidfdError {
    /// No process has that pid, or the one the handle names has exited.
    #[error("process {0} is gone")]
    Gone(i32),
    /// A process has that pid but is not the expected one (the pid was reused).
    #[error(
        "process {pid} is not the expected one (started at tick {found}, expected {expected})"
    )]
    Reused { pid: i32, expected: u64, found: u64 },
    #[error("process {pid}: {source}")]
    Io {
        pid: i32,
        #[source]
        source: io::Error,
    },
}

impl PidfdError {
    fn io(pid: i32) -> impl FnOnce(io::Error) -> PidfdError {
        move |source| match source.raw_os_error() {
            Some(libc::ESRCH) | Some(libc::ENOENT) => PidfdError::Gone(pid),
            _ => PidfdError::Io { pid, source },
        }
    }
}

/// One live process, held by a pidfd.
#[derive(Debug)]
pub struct ProcessHandle {
    pid: i32,
    fd: OwnedFd,
}

impl ProcessHandle {
    /// The process now at `pid`, which must have started at `start_time` (as
    /// [`start_time`] read it earlier).
    pub fn open(pid: i32, start_time: u64) -> Result<ProcessHandle, PidfdError> {
        if pid <= 0 {
            return Err(PidfdError::Gone(pid));
        }
        let fd = pidfd_open(pid).map_err(PidfdError::io(pid))?;
        let handle = ProcessHandle { pid, fd };
        // The pidfd came first: if the stat read below is of another process (ours exited
        // and the pid was reused in between), ours is no longer alive afterwards.
        let found = start_time_of(pid).map_err(PidfdError::io(pid))?;
        handle.confirm()?;
        if found != start_time {
            return Err(PidfdError::Reused {
                pid,
                expected: start_time,
                found,
            });
        }
        Ok(handle)
    }

    /// The pid (valid as a name for this process while [`ProcessHandle::alive`] is true).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether the process has not exited yet (a zombie not yet reaped still counts as
    /// alive: its pid cannot be reused until it is reaped).
    pub fn alive(&self) -> bool {
        // Signal 0 only checks that the process exists and may be signalled.
        pidfd_send_signal(self.fd.as_fd(), 0).is_ok()
    }

    fn confirm(&self) -> Result<(), PidfdError> {
        if self.alive() {
            Ok(())
        } else {
            Err(PidfdError::Gone(self.pid))
        }
    }

    /// Opens `/proc/<pid>/<entry>` with `flags` (`O_CLOEXEC` added), confirmed to belong to
    /// this process.
    pub fn open_entry(&self, entry: &str, flags: i32) -> Result<File, PidfdError> {
        let path = format!("/proc/{}/{}", self.pid, entry.trim_start_matches('/'));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags | libc::O_CLOEXEC)
            .open(&path)
            .map_err(PidfdError::io(self.pid))?;
        self.confirm()?;
        Ok(f)
    }

    /// The process's root directory (its mount namespace's view), opened as a directory:
    /// a root for [`crate::resolve::openat_in_root`].
    pub fn root(&self) -> Result<File, PidfdError> {
        self.open_entry("root", libc::O_DIRECTORY)
    }

    /// The process's namespace `kind` (`net`, `ipc`, `pid`, …), for `setns(2)`.
    pub fn ns(&self, kind: &str) -> Result<File, PidfdError> {
        self.open_entry(&format!("ns/{kind}"), 0)
    }

    /// Reads `/proc/<pid>/<entry>` (a small procfs text such as `net/dev`), confirmed to be
    /// this process's.
    pub fn read_entry(&self, entry: &str) -> Result<String, PidfdError> {
        let f = self.open_entry(entry, 0)?;
        let text = io::read_to_string(f).map_err(PidfdError::io(self.pid))?;
        self.confirm()?;
        Ok(text)
    }
}

impl AsFd for ProcessHandle {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `pidfd_open(2)`: a descriptor on process `pid` that cannot be confused with a later
/// process that reuses the number (check that `pid` is the expected process, as
/// [`ProcessHandle::open`] does, when it was not just created by the caller).
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags by value and returns a new descriptor
    // we own, or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("pidfd out of range"))?;
    // SAFETY: the kernel returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_send_signal(2)`: sends `signal` (0 only checks) to the process `pidfd` holds.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    // SAFETY: a borrowed (so open) descriptor, a signal number, no siginfo (NULL), no
    // flags; nothing is written through a pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The start time of process `pid` (`/proc/<pid>/stat` field 22, clock ticks since boot):
/// what [`ProcessHandle::open`] checks. Record it right after the process was created.
pub fn start_time(pid: i32) -> Result<u64, PidfdError> {
    if pid <= 0 {
        return Err(PidfdError::Gone(pid));
    }
    start_time_of(pid).map_err(PidfdError::io(pid))
}

fn start_time_of(pid: i32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_start_time(&stat)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable /proc/<pid>/stat"))
}

/// Field 22 of a `/proc/<pid>/stat` line. The command name (field 2) is in parentheses and
/// may hold spaces and `)`, so fields are counted from the last `)`.
fn parse_start_time(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts with field 3 (the state).
    rest.split_ascii_whitespace().nth(22 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command, Stdio};

    fn sleeper() -> Child {
        Command::new("sleep")
            .arg("1000")
            .stdin(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn pid_of(c: &Child) -> i32 {
        i32::try_from(c.id()).unwrap()
    }

    #[test]
    fn parses_field_22_past_a_hostile_command_name() {
        let line = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    123456 1000 10 18446744073709551615";
        assert_eq!(parse_start_time(line), Some(123456));
        assert_eq!(parse_start_time("42 (x) S 1 2"), None);
        assert_eq!(parse_start_time("no parenthesis"), None);
    }

    #[test]
    fn opens_a_live_process_and_refuses_it_once_reaped() {
        let mut child = sleeper();
        let pid = pid_of(&child);
        let t = start_time(pid).unwrap();
        let h = ProcessHandle::open(pid, t).unwrap();
        assert!(h.alive());
        let root = h.root().unwrap();
        assert!(root.metadata().unwrap().is_dir());
        let ns = h.ns("net").unwrap();
        assert!(ns.metadata().is_ok());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!h.alive());
        assert!(matches!(h.root(), Err(PidfdError::Gone(p)) if p == pid));
        assert!(matches!(h.ns("net"), Err(PidfdError::Gone(_))));
        assert!(matches!(
            ProcessHandle::open(pid, t),
            Err(PidfdError::Gone(_))
        ));
    }

    #[test]
    fn a_zombie_is_alive_but_its_root_cannot_be_opened() {
        let mut child = sleeper();
        let pid = pid_of(&child);
        let h = ProcessHandle::open(pid, start_time(pid).unwrap()).unwrap();
        child.kill().unwrap();
        // Not reaped yet: poll (bounded) until the kernel has made it a zombie.
        let mut zombie = false;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            if stat
                .rsplit_once(')')
                .unwrap()
                .1
                .trim_start()
                .starts_with('Z')
            {
                zombie = true;
                break;
            }
            std::thread::yield_now();
        }
        assert!(zombie);
        assert!(h.root().is_err());
        child.wait().unwrap();
        assert!(!h.alive());
    }

    #[test]
    fn refuses_a_process_with_another_start_time() {
        let mut child = sleeper();
        let pid = pid_of(&child);
        let t = start_time(pid).unwrap();
        let got = ProcessHandle::open(pid, t + 1);
        child.kill().unwrap();
        child.wait().unwrap();
        match got {
            Err(PidfdError::Reused {
                pid: p,
                expected,
                found,
            }) => assert_eq!((p, expected, found), (pid, t + 1, t)),
            other => panic!("expected Reused, got {other:?}"),
        }
    }

    #[test]
    fn refuses_no_pid() {
        assert!(matches!(
            ProcessHandle::open(0, 1),
            Err(PidfdError::Gone(0))
        ));
        assert!(matches!(start_time(-1), Err(PidfdError::Gone(-1))));
    }
}
