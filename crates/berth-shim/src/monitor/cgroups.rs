//! The v1 cgroup-mount fix of the embedded runtime ([`replace_cgroup_mount`]); the layout,
//! joining the shim cgroup, the OOM counter and the process list are `berth-cgroups`',
//! re-exported here for the monitor's modules.

use std::path::Path;

use berth_cgroups::LIBCGROUPS_V1;
pub use berth_cgroups::{join, Joined, Layout};
use oci_spec::runtime::{Mount, MountBuilder, Spec};

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
    use berth_cgroups::parse_mountinfo;

    const HYBRID: &str = "\
26 25 0:24 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
27 26 0:25 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
28 26 0:26 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
29 26 0:27 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
30 26 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
31 26 0:29 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
";

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
