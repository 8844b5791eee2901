//! Where one container's cgroup lives ([`Dirs`]: v1 one directory per controller, or the
//! one v2 directory), the pids in it, its OOM counter, and the small file readers the
//! other modules share.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::layout::{parse_mountinfo, Layout};

/// The v1 controllers whose files Berth reads or writes.
const V1_CONTROLLERS: &[&str] = &[
    "memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "freezer", "hugetlb",
];

/// The cgroup hierarchies mounted when first asked (they do not move while a daemon
/// runs); an unreadable mountinfo is read again next time.
fn host_layout() -> &'static Layout {
    static LAYOUT: std::sync::OnceLock<Layout> = std::sync::OnceLock::new();
    if let Some(l) = LAYOUT.get() {
        return l;
    }
    match Layout::read() {
        Ok(l) => LAYOUT.get_or_init(|| l),
        Err(_) => {
            static EMPTY: Layout = Layout {
                hierarchies: Vec::new(),
            };
            &EMPTY
        }
    }
}

/// Where one container's cgroup lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dirs {
    /// Controller name (`memory`, `cpuacct`, `pids`, …) → directory.
    V1(HashMap<String, PathBuf>),
    V2(PathBuf),
}

impl Dirs {
    /// The directories of cgroup `path` (e.g. `/berth/<id>`) on this host: v2 when
    /// `/sys/fs/cgroup` is a cgroup2 filesystem. The hierarchies are read from
    /// `/proc/self/mountinfo` once per process: with a thousand containers' overlay
    /// mounts that file is half a megabyte, and a stats stream for each container read
    /// it each time.
    pub fn of(path: &str) -> Dirs {
        let v2 = berth_sys::host::cgroup_version() == berth_sys::host::CgroupVersion::V2;
        Dirs::from_layout(host_layout(), v2, path)
    }

    /// As [`Dirs::of`], from a mountinfo text.
    pub fn from_mountinfo(info: &str, v2: bool, path: &str) -> Dirs {
        Dirs::from_layout(&parse_mountinfo(info), v2, path)
    }

    /// As [`Dirs::of`], from a parsed layout: v2, the first cgroup2 mount (or
    /// `/sys/fs/cgroup`); v1, the first mount of each controller.
    pub fn from_layout(layout: &Layout, v2: bool, path: &str) -> Dirs {
        let rel = path.trim_start_matches('/');
        let mut v1 = HashMap::new();
        for h in &layout.hierarchies {
            if h.v2 && v2 {
                return Dirs::V2(h.mountpoint.join(rel));
            }
            if !h.v2 && !v2 {
                for c in &h.controllers {
                    if V1_CONTROLLERS.contains(&c.as_str()) {
                        v1.entry(c.clone())
                            .or_insert_with(|| h.mountpoint.join(rel));
                    }
                }
            }
        }
        if v2 {
            Dirs::V2(Path::new("/sys/fs/cgroup").join(rel))
        } else {
            Dirs::V1(v1)
        }
    }

    /// The directory of v1 `controller` (`None` on v2 or where it is not mounted).
    pub fn v1(&self, controller: &str) -> Option<&Path> {
        match self {
            Dirs::V1(m) => m.get(controller).map(PathBuf::as_path),
            Dirs::V2(_) => None,
        }
    }

    /// Every pid in the cgroup and its descendants, sorted.
    pub fn pids(&self) -> Vec<i32> {
        let root = match self {
            Dirs::V2(d) => Some(d.as_path()),
            Dirs::V1(_) => self
                .v1("pids")
                .or_else(|| self.v1("memory"))
                .or_else(|| self.v1("freezer")),
        };
        let mut out = Vec::new();
        if let Some(root) = root {
            collect_procs(root, &mut out, 0);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether the kernel's OOM killer fired in the cgroup (`oom_kill` of v1
    /// `memory.oom_control`, v2 `memory.events`).
    pub fn oom_killed(&self) -> bool {
        let file = match self {
            Dirs::V2(d) => d.join("memory.events"),
            Dirs::V1(_) => match self.v1("memory") {
                Some(d) => d.join("memory.oom_control"),
                None => return false,
            },
        };
        std::fs::read_to_string(file)
            .map(|s| oom_kill_count(&s) > 0)
            .unwrap_or(false)
    }
}

fn collect_procs(dir: &Path, out: &mut Vec<i32>, depth: u32) {
    if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if depth > 16 {
        return;
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_procs(&e.path(), out, depth + 1);
            }
        }
    }
}

/// The `oom_kill` counter of `memory.oom_control` (v1) or `memory.events` (v2).
fn oom_kill_count(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == "oom_kill")
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

pub(crate) fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

pub(crate) fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    read(dir, file)?.trim().parse().ok()
}

/// `key value` lines (`memory.stat`, `cpu.stat`, `cpuacct.stat`).
pub(crate) fn flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const MOUNTINFO_V1: &str = "\
25 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
30 25 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 30 0:31 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
36 30 0:32 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
";

    #[test]
    fn finds_v1_controllers_and_v2_dir() {
        let d = Dirs::from_mountinfo(MOUNTINFO_V1, false, "/berth/abc");
        assert_eq!(
            d.v1("memory"),
            Some(Path::new("/sys/fs/cgroup/memory/berth/abc"))
        );
        assert_eq!(
            d.v1("cpuacct"),
            Some(Path::new("/sys/fs/cgroup/cpu,cpuacct/berth/abc"))
        );
        assert_eq!(d.v1("cpu"), d.v1("cpuacct"));
        assert_eq!(d.v1("systemd"), None);
        assert_eq!(d.v1("blkio"), None);
        let v2 = "31 30 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            Dirs::from_mountinfo(v2, true, "/berth/abc"),
            Dirs::V2(PathBuf::from("/sys/fs/cgroup/berth/abc"))
        );
        // Mount points come unescaped (`\040` is a space).
        let spaced = "31 30 0:27 / /cg\\040root rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            Dirs::from_mountinfo(spaced, true, "/berth/abc"),
            Dirs::V2(PathBuf::from("/cg root/berth/abc"))
        );
        // Garbage lines are skipped.
        assert_eq!(
            Dirs::from_mountinfo("x\n - \n1 2 3 - cgroup\n", false, "/a"),
            Dirs::V1(HashMap::new())
        );
    }

    #[test]
    fn oom_counter() {
        assert_eq!(oom_kill_count(""), 0);
        assert_eq!(
            oom_kill_count("oom_kill_disable 0\nunder_oom 0\noom_kill x\n"),
            0
        );
        assert_eq!(
            oom_kill_count("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            2
        );
        assert_eq!(
            oom_kill_count("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
            1
        );
    }

    #[test]
    fn pids_and_oom_from_files() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("cgroup.procs"), "7\n3\n").unwrap();
        std::fs::write(d.join("sub/cgroup.procs"), "5\n3\nbad\n").unwrap();
        let v2 = Dirs::V2(d.to_path_buf());
        assert_eq!(v2.pids(), [3, 5, 7]);
        assert!(!v2.oom_killed());
        std::fs::write(d.join("memory.events"), "oom 1\noom_kill 1\n").unwrap();
        assert!(v2.oom_killed());
        let v1 = Dirs::V1(HashMap::from([("memory".to_string(), d.to_path_buf())]));
        assert_eq!(v1.pids(), [3, 5, 7]);
        assert!(!v1.oom_killed());
        std::fs::write(d.join("memory.oom_control"), "oom_kill 2\n").unwrap();
        assert!(v1.oom_killed());
        assert!(!Dirs::V1(HashMap::new()).oom_killed());
        assert!(Dirs::V1(HashMap::new()).pids().is_empty());
    }
}
