//! The monitor's process-level helpers: the raw system calls come from `berth-sys` (the
//! one home of `unsafe`), re-exported under the names the monitor uses; what is left here
//! reads `/proc` only.

pub use berth_sys::pidfd::pidfd_send_signal;
pub use berth_sys::process::{
    close_fds_from, set_child_subreaper, set_not_dumpable, subreaper_after_spawn,
};
pub use berth_sys::tty::{pty_peer, set_winsize};

use std::io;
use std::path::Path;

use nix::unistd::{ForkResult, Pid};

/// `fork(2)`, called first thing in `main` while the process is single-threaded (berth-sys
/// checks that it is).
pub fn fork() -> io::Result<ForkResult> {
    berth_sys::process::fork_single_threaded()
}

/// `pidfd_open(2)` on `pid` (a child of ours, so not a reused number).
pub fn pidfd_open(pid: Pid) -> io::Result<std::os::fd::OwnedFd> {
    berth_sys::pidfd::pidfd_open(pid.as_raw())
}

/// Gives back the memory that only the container's set-up needed, once it runs: freed heap
/// and the pages of our own executable that set-up touched (libcontainer, seccomp). The
/// event loop faults back in the little code it uses.
pub fn release_setup_memory() {
    berth_sys::memory::release_startup_memory();
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

/// Writes a record the daemon reads (`exit.json`, `shim.pid`) atomically, mode 0644:
/// `berth_sys::fs::atomic_write` (unique temp name, fsync, rename, fsync the directory).
pub fn write_record(path: &Path, data: &[u8]) -> io::Result<()> {
    berth_sys::fs::atomic_write(path, data, 0o644)
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
