//! Moving the calling process into a cgroup and back (the shim into berthd's
//! `<cgroup-parent>/shims`), creating the directories it needs and removing them when the
//! last one leaves.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::layout::{Hierarchy, Layout};

/// Where the process was and where it went, so it can go back and clean up: (the
/// hierarchy's root, where it was, where it went).
pub struct Joined {
    moves: Vec<(PathBuf, PathBuf, PathBuf)>,
}

/// Moves this process into `path` in every hierarchy (creating it), remembering where it
/// was. Failures are returned per hierarchy; the moves that worked stand.
pub fn join(layout: &Layout, path: &str) -> (Joined, Vec<String>) {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let rel = path.trim_start_matches('/');
    let mut moves = Vec::new();
    let mut errors = Vec::new();
    for h in &layout.hierarchies {
        let Some(current) = current_path(&own, h) else {
            continue;
        };
        let target = h.mountpoint.join(rel);
        // Shared with other shims: the last one out removes it, maybe between our mkdir and
        // our move; then it is made again.
        let mut tries = 0;
        let res = loop {
            let res = create_dirs(h, &target).and_then(|()| {
                fs::write(target.join("cgroup.procs"), std::process::id().to_string())
            });
            tries += 1;
            match res {
                Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 3 => continue,
                other => break other,
            }
        };
        match res {
            Ok(()) => moves.push((
                h.mountpoint.clone(),
                h.mountpoint.join(current.trim_start_matches('/')),
                target,
            )),
            Err(e) => errors.push(format!("{}: {e}", target.display())),
        }
    }
    (Joined { moves }, errors)
}

impl Joined {
    /// Goes back to the original cgroups (or to the hierarchy's root where that is gone:
    /// the daemon's service was stopped) and removes ours when empty (other shims may
    /// share it: then it stays).
    pub fn leave(self) {
        let pid = std::process::id().to_string();
        for (root, original, ours) in self.moves {
            if fs::write(original.join("cgroup.procs"), &pid).is_ok()
                || fs::write(root.join("cgroup.procs"), &pid).is_ok()
            {
                remove_when_empty(&ours);
            }
        }
    }
}

/// The daemon's sweep of the shared cgroup `path` (the shims') once no container runs:
/// removed in every hierarchy as soon as it is empty, trying for at most `within`. A shim
/// that left while another was still inside (or while the kernel was letting go of it)
/// could not remove it; this one is last.
pub fn sweep(layout: &Layout, path: &str, within: std::time::Duration) {
    let rel = path.trim_start_matches('/');
    let deadline = std::time::Instant::now() + within;
    loop {
        let mut left = false;
        for h in &layout.hierarchies {
            let dir = h.mountpoint.join(rel);
            if dir.is_dir() && fs::remove_dir(&dir).is_err() {
                left = true;
            }
        }
        if !left || std::time::Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Removes the shared cgroup `dir` unless a process still lives in it (another shim: the
/// last one out removes it). An empty cgroup can refuse removal for a moment (`EBUSY`)
/// while the kernel lets go of tasks that just left or exited; that is waited out, at most
/// [`EMPTY_BUSY_WAIT`]: giving up at once left `shims` behind after many containers ended
/// together.
fn remove_when_empty(dir: &Path) {
    let deadline = std::time::Instant::now() + EMPTY_BUSY_WAIT;
    loop {
        match fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(EBUSY) => {
                let members = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                if !members.trim().is_empty() || std::time::Instant::now() >= deadline {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            _ => return,
        }
    }
}

/// `EBUSY` (16 on Linux): a cgroup that still has tasks or is being let go of.
const EBUSY: i32 = 16;

/// How long [`remove_when_empty`] waits for an empty cgroup to become removable.
const EMPTY_BUSY_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// `mkdir -p`; in the v1 cpuset hierarchy a new cgroup has no CPUs or memory nodes until
/// given its parent's, and no task can join it before.
fn create_dirs(h: &Hierarchy, target: &Path) -> io::Result<()> {
    let missing: Vec<PathBuf> = target
        .ancestors()
        .take_while(|p| !p.exists())
        .map(Path::to_path_buf)
        .collect();
    fs::create_dir_all(target)?;
    if h.v2 || !h.controllers.iter().any(|c| c == "cpuset") {
        return Ok(());
    }
    for dir in missing.iter().rev() {
        let parent = dir.parent().unwrap_or(dir);
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let v = fs::read_to_string(parent.join(f))?;
            fs::write(dir.join(f), v.trim())?;
        }
    }
    Ok(())
}

/// Our path in hierarchy `h`, from `/proc/self/cgroup` (`id:controllers:path`).
fn current_path(own: &str, h: &Hierarchy) -> Option<String> {
    own.lines().find_map(|l| {
        let mut it = l.splitn(3, ':');
        let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
        let matches = if h.v2 {
            ctrls.is_empty()
        } else {
            let mut a: Vec<&str> = ctrls.split(',').collect();
            let mut b: Vec<&str> = h.controllers.iter().map(String::as_str).collect();
            a.sort_unstable();
            b.sort_unstable();
            a == b
        };
        matches.then(|| path.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{parse_mountinfo, tests::HYBRID};

    #[test]
    fn current_path_matches_controller_sets() {
        let own = "9:name=systemd:/a\n4:cpuacct,cpu:/b\n0::/c\n";
        let l = parse_mountinfo(HYBRID);
        assert_eq!(current_path(own, &l.hierarchies[0]).as_deref(), Some("/c"));
        assert_eq!(current_path(own, &l.hierarchies[1]).as_deref(), Some("/a"));
        assert_eq!(current_path(own, &l.hierarchies[3]).as_deref(), Some("/b"));
        assert_eq!(current_path(own, &l.hierarchies[2]), None);
    }
}
