//! The monitor's raw system calls. DESIGN puts these in `berth-sys`; they stay here until
//! the shim can depend on it without growing, each with its `// SAFETY:` note.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::unistd::{ForkResult, Pid};

/// `fork(2)`.
///
/// Only called first thing in `main`, while the process is single-threaded.
pub fn fork() -> io::Result<ForkResult> {
    // SAFETY: the shim is single-threaded when it forks (called before anything else runs),
    // so the child cannot inherit a lock held by another thread.
    unsafe { nix::unistd::fork() }.map_err(io::Error::from)
}

fn prctl(option: libc::c_int, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only; no memory is passed to the kernel.
    let rc = unsafe {
        libc::prctl(
            option,
            arg,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Orphaned descendants (the container's init, processes of `--pid host` containers)
/// are re-parented to us, so we reap them and see init's exit status.
pub fn set_child_subreaper() -> io::Result<()> {
    prctl(libc::PR_SET_CHILD_SUBREAPER, 1)
}

/// Not dumpable: a process joining the container's namespaces cannot ptrace us or read
/// our `/proc/<pid>` (DESIGN: before libcontainer's `build()`).
pub fn set_not_dumpable() -> io::Result<()> {
    prctl(libc::PR_SET_DUMPABLE, 0)
}

/// `pidfd_open(2)`: a handle on `pid` that cannot be confused with a later process that
/// reuses the number.
pub fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags, and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(2)`.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    // SAFETY: a valid pidfd, a signal number, no siginfo (NULL), no flags.
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

/// Sets a terminal's size (`TIOCSWINSZ`).
pub fn set_winsize(tty: BorrowedFd<'_>, width: u16, height: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` through the pointer, which outlives the call.
    let rc = unsafe {
        libc::ioctl(
            tty.as_raw_fd(),
            libc::TIOCSWINSZ,
            &ws as *const libc::winsize,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes ownership of a descriptor received with `SCM_RIGHTS`.
pub fn own_received_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the kernel installed this descriptor in our table for this message; nobody
    // else refers to it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Closes every descriptor from `first` up, except those in `keep`.
pub fn close_fds_from(first: RawFd, keep: &[RawFd]) {
    let fds: Vec<RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(d) => d
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => return,
    };
    for fd in fds {
        if fd >= first && !keep.contains(&fd) {
            // SAFETY: runs first thing in the forked monitor, before anything in this process
            // has opened or borrowed a descriptor above 2 other than those in `keep` (the
            // directory handle of the listing above is closed already; closing a stale
            // number just fails with EBADF).
            unsafe { libc::close(fd) };
        }
    }
}

/// Gives back the memory that only the container's set-up needed, once it runs: freed heap
/// and the pages of our own executable that set-up touched (libcontainer, seccomp). The
/// event loop faults back in the little code it uses.
pub fn release_setup_memory() {
    berth_sys::memory::release_startup_memory();
}

/// A new descriptor on the slave side of the pty whose master is `master`
/// (`TIOCGPTPEER`, Linux 4.13), without making it our controlling terminal.
pub fn pty_peer(master: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    const TIOCGPTPEER: libc::c_ulong = 0x5441;
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: an ioctl on a descriptor we own with an integer argument; it returns a new
    // descriptor or -1.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), TIOCGPTPEER, flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes the process `cmd` starts a child subreaper (kept across its `execve`): what it
/// forks and orphans (runc's `runc init`) stays its descendant instead of becoming ours,
/// so killing its tree kills them all.
pub fn subreaper_after_spawn(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook runs in the forked child before `execve`, and `prctl` with integer
    // arguments is async-signal-safe: it takes no lock and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        })
    };
}

/// `pid`'s descendants as `/proc` shows them now, children before their own children.
pub fn descendants(pid: Pid) -> Vec<Pid> {
    let mut parents: Vec<(Pid, Pid)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            if let Some(ppid) = stat_ppid(&stat) {
                parents.push((Pid::from_raw(p), Pid::from_raw(ppid)));
            }
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while let Some(&parent) = found.get(i) {
        for (p, pp) in &parents {
            if *pp == parent && !found.contains(p) {
                found.push(*p);
            }
        }
        i += 1;
    }
    found.remove(0);
    found
}

/// The parent pid in a `/proc/<pid>/stat` line: the second field after the command name,
/// which is in parentheses and may hold anything (so: after the last `)`).
fn stat_ppid(stat: &str) -> Option<i32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ppid_skips_hostile_command_names() {
        assert_eq!(stat_ppid("42 (sh) S 7 42 42 0"), Some(7));
        assert_eq!(stat_ppid("42 (a) S 1 (b)) R 9 1"), Some(9));
        assert_eq!(stat_ppid("42 (x"), None);
        assert_eq!(stat_ppid("42 (x) S"), None);
    }

    #[test]
    fn descendants_of_this_process_include_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        assert!(descendants(Pid::this()).contains(&pid));
        assert!(descendants(pid).is_empty());
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
