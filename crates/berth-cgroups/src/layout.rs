//! The host's cgroup hierarchies from `/proc/self/mountinfo` (through
//! [`berth_sys::mountinfo`]): which are mounted where, with which v1 controllers, and
//! whether the host is unified (v2) or legacy/hybrid (v1).
//!
//! libcgroups picks the v1 manager when `/sys/fs/cgroup` is not itself a cgroup2 mount
//! (legacy or hybrid), and then places the container at `<mountpoint>/<cgroupsPath>` in
//! every v1 hierarchy it knows ([`LIBCGROUPS_V1`]); this module follows the same rule.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::Dirs;

/// The v1 controllers libcgroups 0.7 creates a directory in (`v1::CONTROLLERS`).
pub const LIBCGROUPS_V1: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "hugetlb",
    "memory",
    "pids",
    "perf_event",
    "blkio",
    "net_prio",
    "net_cls",
    "freezer",
];

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mountpoint: PathBuf,
    /// v1 controllers from the mount options (`memory`, `name=systemd`); empty for v2.
    pub controllers: Vec<String>,
    pub v2: bool,
}

/// Every cgroup hierarchy mounted in our mount namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    pub hierarchies: Vec<Hierarchy>,
}

impl Layout {
    pub fn read() -> io::Result<Layout> {
        Ok(parse_mountinfo(&fs::read_to_string(
            "/proc/self/mountinfo",
        )?))
    }

    /// Unified mode: `/sys/fs/cgroup` is the cgroup2 mount and libcgroups uses v2.
    pub fn unified(&self) -> bool {
        self.hierarchies
            .iter()
            .any(|h| h.v2 && h.mountpoint == Path::new("/sys/fs/cgroup"))
    }

    /// Whether the hugetlb controller is there for containers: a v1 hierarchy of its own,
    /// or listed in the unified root's `cgroup.controllers` (read by `v2_controllers`),
    /// which is where containerd looks (`isHugetlbControllerPresent`).
    pub fn hugetlb(&self, v2_controllers: impl FnOnce() -> io::Result<String>) -> bool {
        if self.unified() {
            return v2_controllers()
                .is_ok_and(|c| c.split_whitespace().any(|name| name == "hugetlb"));
        }
        self.hierarchies
            .iter()
            .any(|h| !h.v2 && h.controllers.iter().any(|c| c == "hugetlb"))
    }

    /// The host's [`Self::hugetlb`], from mountinfo and `/sys/fs/cgroup/cgroup.controllers`.
    pub fn hugetlb_present() -> bool {
        Layout::read()
            .is_ok_and(|l| l.hugetlb(|| fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")))
    }

    /// The container's directories, one per hierarchy libcgroups manages.
    pub fn container_dirs(&self, cgroups_path: &str) -> Vec<PathBuf> {
        let rel = cgroups_path.trim_start_matches('/');
        self.hierarchies
            .iter()
            .filter(|h| {
                if self.unified() {
                    h.v2
                } else {
                    !h.v2
                        && h.controllers
                            .iter()
                            .any(|c| LIBCGROUPS_V1.contains(&c.as_str()))
                }
            })
            .map(|h| h.mountpoint.join(rel))
            .collect()
    }

    /// The directories of cgroup `cgroups_path` in this layout, v2 when [`Self::unified`].
    pub fn dirs(&self, cgroups_path: &str) -> Dirs {
        Dirs::from_layout(self, self.unified(), cgroups_path)
    }

    /// Whether the kernel's OOM killer fired in the container's cgroup.
    pub fn oom_killed(&self, cgroups_path: &str) -> bool {
        self.dirs(cgroups_path).oom_killed()
    }

    /// The pids in the container's cgroup (and its descendants).
    pub fn procs(&self, cgroups_path: &str) -> Vec<i32> {
        self.dirs(cgroups_path).pids()
    }
}

/// Parses `/proc/self/mountinfo` for cgroup and cgroup2 mounts.
pub fn parse_mountinfo(text: &str) -> Layout {
    let mut hierarchies = Vec::new();
    for m in berth_sys::mountinfo::parse(text) {
        match m.fs_type.as_str() {
            "cgroup2" => hierarchies.push(Hierarchy {
                mountpoint: m.mount_point,
                controllers: Vec::new(),
                v2: true,
            }),
            "cgroup" => {
                let controllers = m
                    .super_options
                    .split(',')
                    .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("release_agent"))
                    .filter(|o| {
                        !matches!(
                            *o,
                            "clone_children" | "noprefix" | "xattr" | "cpuset_v2_mode"
                        )
                    })
                    .map(str::to_string)
                    .collect();
                hierarchies.push(Hierarchy {
                    mountpoint: m.mount_point,
                    controllers,
                    v2: false,
                });
            }
            _ => {}
        }
    }
    Layout { hierarchies }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const HYBRID: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
27 26 0:25 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
28 26 0:26 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
29 26 0:27 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
30 26 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
31 26 0:29 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
32 30 0:30 / /my\\040dir rw - ext4 /dev/sda rw
garbage line
";

    #[test]
    fn mountinfo_ignores_garbage_and_other_filesystems() {
        assert_eq!(parse_mountinfo(""), Layout::default());
        assert_eq!(parse_mountinfo("1 2 3\n - \n"), Layout::default());
        let l = parse_mountinfo(HYBRID);
        assert_eq!(l.hierarchies.len(), 5);
        assert!(!l.unified());
        assert_eq!(l.hierarchies[1].controllers, vec!["name=systemd"]);
        assert_eq!(l.hierarchies[3].controllers, vec!["cpu", "cpuacct"]);
    }

    #[test]
    fn hugetlb_is_a_v1_hierarchy_or_a_v2_controller() {
        let none = || -> io::Result<String> { panic!("v2 controllers read on v1") };
        assert!(!parse_mountinfo(HYBRID).hugetlb(none));
        let with = format!(
            "{HYBRID}33 26 0:31 / /sys/fs/cgroup/hugetlb rw,relatime - cgroup cgroup rw,hugetlb\n"
        );
        assert!(parse_mountinfo(&with).hugetlb(none));
        let v2 = parse_mountinfo("26 25 0:24 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
        assert!(v2.hugetlb(|| Ok("cpuset cpu io memory hugetlb pids\n".into())));
        assert!(!v2.hugetlb(|| Ok("cpuset cpu io memory pids\n".into())));
        assert!(!v2.hugetlb(|| Err(io::ErrorKind::NotFound.into())));
    }

    #[test]
    fn unified_layout() {
        let l = parse_mountinfo("26 25 0:24 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n");
        assert!(l.unified());
        assert_eq!(
            l.container_dirs("/berth/c1"),
            vec![PathBuf::from("/sys/fs/cgroup/berth/c1")]
        );
        assert_eq!(
            l.dirs("/berth/c1"),
            Dirs::V2(PathBuf::from("/sys/fs/cgroup/berth/c1"))
        );
    }

    #[test]
    fn container_dirs_skip_named_and_v2_on_hybrid() {
        let l = parse_mountinfo(HYBRID);
        assert_eq!(
            l.container_dirs("/p/c"),
            vec![
                PathBuf::from("/sys/fs/cgroup/memory/p/c"),
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/p/c"),
                PathBuf::from("/sys/fs/cgroup/pids/p/c"),
            ]
        );
        // The shim's view of a hybrid host is the engine's v1 one.
        assert_eq!(
            l.dirs("/p/c").v1("memory"),
            Some(Path::new("/sys/fs/cgroup/memory/p/c"))
        );
    }

    #[test]
    fn mount_points_are_unescaped() {
        let l = parse_mountinfo("26 25 0:24 / /my\\040cg\\040 rw - cgroup2 cgroup2 rw\n");
        assert_eq!(l.hierarchies[0].mountpoint, PathBuf::from("/my cg "));
    }
}
