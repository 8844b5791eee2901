//! Start-up checks for the mistakes a new installation makes, each failing with what to do
//! next instead of a later, obscure error: not running as root, a kernel without overlayfs,
//! and a data root on a filesystem that cannot hold overlayfs layers.

use std::path::Path;

use anyhow::bail;

/// `/proc/filesystems`, which lists the filesystems the kernel can mount.
const PROC_FILESYSTEMS: &str = "/proc/filesystems";

/// Filesystems overlayfs refuses as its upper layer (moby's overlay2 driver refuses the
/// same), by statfs magic: overlayfs itself, eCryptfs and aufs.
const UNSUPPORTED_BACKING: &[(i64, &str)] = &[
    (0x794c_7630, "overlayfs"),
    (0xf15f, "ecryptfs"),
    (0x6175_6673, "aufs"),
];

/// Runs before anything is created: berthd must be root.
pub fn check_privileges() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "berthd needs root: it creates namespaces, mounts, cgroups and network interfaces. \
             Run it as root (sudo berthd, or the berthd.service unit); rootless mode is not \
             supported yet"
        );
    }
    Ok(())
}

/// Runs once the data root exists: the kernel mounts overlayfs and the data root's
/// filesystem can hold its layers.
pub fn check_storage(data_root: &Path) -> anyhow::Result<()> {
    // A kernel without /proc/filesystems (no procfs) fails later with its own error.
    if let Ok(list) = std::fs::read_to_string(PROC_FILESYSTEMS) {
        // A modular overlayfs is listed once loaded: load it as dockerd does, then look again.
        if !lists_overlay(&list) && !load_overlay_module() {
            bail!(
                "the kernel lacks overlayfs (no \"overlay\" in {PROC_FILESYSTEMS}), which \
                 Berth stores container filesystems on: load it with `modprobe overlay`, or \
                 boot a kernel built with CONFIG_OVERLAY_FS"
            );
        }
    }
    if let Ok(st) = nix::sys::statfs::statfs(data_root) {
        let magic = st.filesystem_type().0;
        if let Some((_, name)) = UNSUPPORTED_BACKING.iter().find(|(m, _)| *m == magic) {
            bail!(
                "the data root {} is on {name}, which cannot hold overlayfs layers: give \
                 --data-root (daemon.json \"data-root\") a directory on ext4, xfs, btrfs or tmpfs",
                data_root.display()
            );
        }
    }
    Ok(())
}

/// `modprobe overlay`, then whether the kernel lists overlayfs.
fn load_overlay_module() -> bool {
    let loaded = std::process::Command::new("modprobe")
        .args(["-q", "overlay"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    loaded && std::fs::read_to_string(PROC_FILESYSTEMS).is_ok_and(|list| lists_overlay(&list))
}

/// Whether a `/proc/filesystems` text lists overlayfs (`nodev\toverlay`).
fn lists_overlay(list: &str) -> bool {
    list.lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_overlay_in_proc_filesystems() {
        assert!(lists_overlay("nodev\tsysfs\nnodev\toverlay\n\text4\n"));
        assert!(!lists_overlay("nodev\tsysfs\n\text4\nnodev\toverlayfs2\n"));
        assert!(!lists_overlay(""));
    }

    #[test]
    fn this_hosts_storage_passes() {
        check_storage(&std::env::temp_dir()).unwrap();
    }
}
