//! The calling process itself: forking while single-threaded, `prctl` settings (child
//! subreaper, not dumpable), signal dispositions, and closing inherited descriptors. The
//! shim's start-up needs these; each is a safe function whose conditions are checked or
//! stated here.

use std::io;
use std::os::fd::RawFd;
use std::process::Command;

use nix::sys::signal::{SigHandler, Signal};
use nix::unistd::ForkResult;

/// `fork(2)`, refused unless this process has exactly one thread (a child forked from a
/// threaded process may inherit a lock another thread held, and deadlock or worse).
pub fn fork_single_threaded() -> io::Result<ForkResult> {
    let threads = std::fs::read_dir("/proc/self/task")?.count();
    if threads != 1 {
        return Err(io::Error::other(format!(
            "fork refused: the process has {threads} threads"
        )));
    }
    // SAFETY: the process has one thread (checked just above; nothing here starts one in
    // between), so the child cannot inherit a lock or state held by another thread.
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

/// `PR_SET_CHILD_SUBREAPER`: orphaned descendants are re-parented to this process instead
/// of to init, so it reaps them.
pub fn set_child_subreaper() -> io::Result<()> {
    prctl(libc::PR_SET_CHILD_SUBREAPER, 1)
}

/// `PR_SET_DUMPABLE(0)`: another process of the same user (one joining a container's
/// namespaces) cannot ptrace this one or read its `/proc/<pid>`.
pub fn set_not_dumpable() -> io::Result<()> {
    prctl(libc::PR_SET_DUMPABLE, 0)
}

/// Makes the process `cmd` starts a child subreaper (kept across its `execve`): what it
/// forks and orphans stays its descendant instead of becoming ours, so killing its tree
/// kills them all.
pub fn subreaper_after_spawn(cmd: &mut Command) {
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

/// Restores `signal`'s default disposition (e.g. `SIGPIPE`, which Rust's runtime ignores
/// and an `execve`d program would inherit ignored).
pub fn restore_default_signal(signal: Signal) -> io::Result<()> {
    // SAFETY: installing `SIG_DFL` registers no handler code, so nothing can run in a
    // signal context on our behalf.
    unsafe { nix::sys::signal::signal(signal, SigHandler::SigDfl) }
        .map(drop)
        .map_err(io::Error::from)
}

/// Closes every descriptor from `first` up, except those in `keep`: what a process
/// inherited and must not pass on. Call it first thing after a fork or at start-up, while
/// nothing in the process holds (as a `File`, `OwnedFd`…) a descriptor it would close.
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
            // SAFETY: per this function's contract no owner refers to these descriptors
            // (the directory handle of the listing above is closed already; closing a
            // stale number just fails with EBADF), so no `OwnedFd` is left dangling.
            unsafe { libc::close(fd) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_is_refused_with_threads() {
        // The test harness runs tests on threads of its own: this process has several.
        let other = std::thread::spawn(std::thread::park);
        let err = fork_single_threaded().unwrap_err();
        assert!(err.to_string().contains("threads"), "{err}");
        other.thread().unpark();
        other.join().unwrap();
    }

    #[test]
    fn subreaper_hook_adopts_the_orphans_of_the_child() {
        // The child's subshell starts a sleep and exits: the orphaned sleep must be
        // re-parented to the child (the subreaper), not to init.
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "p=$( (sleep 30 >/dev/null 2>&1 & echo $!) ); \
             ppid=$(cut -d' ' -f4 /proc/$p/stat); kill $p; [ \"$ppid\" = \"$$\" ]",
        ]);
        subreaper_after_spawn(&mut cmd);
        assert!(cmd.status().unwrap().success());
    }
}
