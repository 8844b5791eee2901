//! The host's cgroup layout as the monitor needs it: moving itself into its own cgroup and
//! back, the container's OOM counter and process list, and the v1 cgroup-mount fix.
//!
//! libcgroups picks the v1 manager when `/sys/fs/cgroup` is not itself a cgroup2 mount
//! (legacy or hybrid), and then places the container at `<mountpoint>/<cgroupsPath>` in
//! every v1 hierarchy it knows ([`LIBCGROUPS_V1`]); this module follows the same rule.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Mount, MountBuilder, Spec};

/// The v1 controllers libcgroups 0.7 creates a directory in (`v1::CONTROLLERS`).
const LIBCGROUPS_V1: &[&str] = &[
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

    fn memory_dir(&self, cgroups_path: &str) -> Option<PathBuf> {
        let rel = cgroups_path.trim_start_matches('/');
        self.hierarchies
            .iter()
            .find(|h| {
                if self.unified() {
                    h.v2
                } else {
                    h.controllers.iter().any(|c| c == "memory")
                }
            })
            .map(|h| h.mountpoint.join(rel))
    }

    /// Whether the kernel's OOM killer fired in the container's cgroup.
    pub fn oom_killed(&self, cgroups_path: &str) -> bool {
        let Some(dir) = self.memory_dir(cgroups_path) else {
            return false;
        };
        let file = if self.unified() {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        fs::read_to_string(dir.join(file))
            .map(|s| oom_kill_count(&s) > 0)
            .unwrap_or(false)
    }

    /// The pids in the container's cgroup.
    pub fn procs(&self, cgroups_path: &str) -> Vec<i32> {
        let Some(dir) = self
            .memory_dir(cgroups_path)
            .or_else(|| self.container_dirs(cgroups_path).pop())
        else {
            return Vec::new();
        };
        fs::read_to_string(dir.join("cgroup.procs"))
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
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

/// The `oom_kill` counter of `memory.oom_control` (v1) or `memory.events` (v2).
fn oom_kill_count(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == "oom_kill")
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Where the monitor was and where it went, so it can go back and clean up: (the
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

/// Removes the shared cgroup `dir` unless a process still lives in it (another shim: the
/// last one out removes it). An empty cgroup can refuse removal for a moment (`EBUSY`)
/// while the kernel lets go of tasks that just left or exited; that is waited out, at most
/// [`EMPTY_BUSY_WAIT`]: giving up there left `shims` behind after many containers ended
/// together.
fn remove_when_empty(dir: &Path) {
    let deadline = std::time::Instant::now() + EMPTY_BUSY_WAIT;
    loop {
        match fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
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

/// On cgroup v1, libcontainer mounts the `cgroup` mount read-write even when the spec says
/// `ro` (runc refuses the write; DESIGN.md): a container root could raise its own memory
/// limit. Replace it with a tmpfs at the same place and a read-only bind of each
/// controller's container directory. Returns whether the spec changed. Only for the
/// embedded runtime: runc makes that same layout from the `cgroup` mount itself.
pub fn replace_cgroup_mount(spec: &mut Spec, layout: &Layout, cgroups_path: &str) -> bool {
    if layout.unified() {
        return false;
    }
    let Some(mounts) = spec.mounts().clone() else {
        return false;
    };
    let Some(pos) = mounts
        .iter()
        .position(|m| m.typ().as_deref() == Some("cgroup"))
    else {
        return false;
    };
    let dest = mounts[pos].destination().clone();
    let mut replacement: Vec<Mount> = vec![mount(
        &dest,
        "tmpfs",
        "tmpfs",
        &["nosuid", "noexec", "nodev", "mode=755", "size=64k"],
    )];
    let rel = cgroups_path.trim_start_matches('/');
    let mut seen = Vec::new();
    for h in layout.hierarchies.iter().filter(|h| !h.v2) {
        if !h
            .controllers
            .iter()
            .any(|c| LIBCGROUPS_V1.contains(&c.as_str()))
        {
            continue;
        }
        let Some(name) = h.mountpoint.file_name() else {
            continue;
        };
        if seen.contains(&name) {
            continue;
        }
        seen.push(name);
        let source = h.mountpoint.join(rel);
        replacement.push(mount(
            &dest.join(name),
            &source.to_string_lossy(),
            "bind",
            &["rbind", "ro", "nosuid", "noexec", "nodev"],
        ));
    }
    let mut mounts = mounts;
    mounts.splice(pos..=pos, replacement);
    spec.set_mounts(Some(mounts));
    true
}

fn mount(dest: &Path, source: &str, typ: &str, options: &[&str]) -> Mount {
    MountBuilder::default()
        .destination(dest)
        .source(source)
        .typ(typ)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .expect("all mount fields set")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
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
    fn unified_layout() {
        let l = parse_mountinfo("26 25 0:24 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n");
        assert!(l.unified());
        assert_eq!(
            l.container_dirs("/berth/c1"),
            vec![PathBuf::from("/sys/fs/cgroup/berth/c1")]
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
    }

    #[test]
    fn mount_points_are_unescaped() {
        let l = parse_mountinfo("26 25 0:24 / /my\\040cg\\040 rw - cgroup2 cgroup2 rw\n");
        assert_eq!(l.hierarchies[0].mountpoint, PathBuf::from("/my cg "));
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
    fn current_path_matches_controller_sets() {
        let own = "9:name=systemd:/a\n4:cpuacct,cpu:/b\n0::/c\n";
        let l = parse_mountinfo(HYBRID);
        assert_eq!(current_path(own, &l.hierarchies[0]).as_deref(), Some("/c"));
        assert_eq!(current_path(own, &l.hierarchies[1]).as_deref(), Some("/a"));
        assert_eq!(current_path(own, &l.hierarchies[3]).as_deref(), Some("/b"));
        assert_eq!(current_path(own, &l.hierarchies[2]), None);
    }

    #[test]
    fn cgroup_mount_replaced_by_tmpfs_and_ro_binds_on_v1_only() {
        let cgroup = mount(Path::new("/sys/fs/cgroup"), "cgroup", "cgroup", &["ro"]);
        let proc_ = mount(Path::new("/proc"), "proc", "proc", &[]);
        let mut spec = Spec::default();
        spec.set_mounts(Some(vec![proc_.clone(), cgroup.clone()]));

        let mut unchanged = spec.clone();
        let v2 = parse_mountinfo("26 25 0:24 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
        assert!(!replace_cgroup_mount(&mut unchanged, &v2, "/p/c"));
        assert_eq!(unchanged, spec);

        let mut none = Spec::default();
        none.set_mounts(Some(vec![proc_.clone()]));
        assert!(!replace_cgroup_mount(
            &mut none,
            &parse_mountinfo(HYBRID),
            "/p/c"
        ));

        assert!(replace_cgroup_mount(
            &mut spec,
            &parse_mountinfo(HYBRID),
            "/p/c"
        ));
        let m = spec.mounts().as_ref().unwrap();
        let dests: Vec<_> = m
            .iter()
            .map(|m| m.destination().display().to_string())
            .collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/sys/fs/cgroup",
                "/sys/fs/cgroup/memory",
                "/sys/fs/cgroup/cpu,cpuacct",
                "/sys/fs/cgroup/pids"
            ]
        );
        assert_eq!(m[1].typ().as_deref(), Some("tmpfs"));
        assert_eq!(
            m[2].source().as_deref(),
            Some(Path::new("/sys/fs/cgroup/memory/p/c"))
        );
        assert!(m[2..]
            .iter()
            .all(|m| m.options().as_ref().unwrap().contains(&"ro".to_string())));
    }
}
