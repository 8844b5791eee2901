//! Facts about the host that `GET /info` and `GET /version` report: kernel, OS release,
//! CPUs, memory, cgroup version and open descriptors; and the security modules it has
//! (seccomp, AppArmor and its loaded profiles, SELinux).

use std::fs;
use std::path::Path;

use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};

/// `uname` fields as dockerd reports them.
#[derive(Debug, Clone)]
pub struct Uname {
    /// e.g. `6.1.0-18-amd64`
    pub kernel_version: String,
    /// e.g. `x86_64`
    pub machine: String,
    pub hostname: String,
}

pub fn uname() -> Uname {
    match nix::sys::utsname::uname() {
        Ok(u) => Uname {
            kernel_version: u.release().to_string_lossy().into_owned(),
            machine: u.machine().to_string_lossy().into_owned(),
            hostname: u.nodename().to_string_lossy().into_owned(),
        },
        Err(_) => Uname {
            kernel_version: String::new(),
            machine: std::env::consts::ARCH.to_string(),
            hostname: String::new(),
        },
    }
}

/// Total RAM in bytes, from `sysinfo(2)`.
pub fn mem_total() -> u64 {
    nix::sys::sysinfo::sysinfo()
        .map(|s| s.ram_total())
        .unwrap_or(0)
}

/// CPUs this process may run on (Go's `runtime.NumCPU`, which dockerd reports, also honours
/// the affinity mask).
pub fn ncpu() -> u64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1)
}

/// Number of open file descriptors of this process.
pub fn open_fds() -> u64 {
    fs::read_dir("/proc/self/fd")
        .map(|d| d.count().saturating_sub(1) as u64)
        .unwrap_or(0)
}

/// `PRETTY_NAME` and `VERSION_ID` from os-release.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    pub pretty_name: String,
    pub version_id: String,
}

pub fn os_release() -> OsRelease {
    ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| fs::read_to_string(p).ok())
        .map(|s| parse_os_release(&s))
        .unwrap_or_default()
}

fn parse_os_release(content: &str) -> OsRelease {
    let mut out = OsRelease::default();
    for line in content.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value
            .trim()
            .trim_matches('"')
            .trim_matches('\'')
            .to_string();
        match key.trim() {
            "PRETTY_NAME" => out.pretty_name = value,
            "VERSION_ID" => out.version_id = value,
            _ => {}
        }
    }
    if out.pretty_name.is_empty() {
        out.pretty_name = "Linux".into();
    }
    out
}

/// Which cgroup hierarchy the host mounts at `/sys/fs/cgroup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// cgroup v1, including the hybrid layout (v1 controllers plus `unified`).
    V1,
    V2,
}

impl CgroupVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "1",
            CgroupVersion::V2 => "2",
        }
    }
}

pub fn cgroup_version() -> CgroupVersion {
    match statfs(Path::new("/sys/fs/cgroup")) {
        Ok(s) if s.filesystem_type() == CGROUP2_SUPER_MAGIC => CgroupVersion::V2,
        _ => CgroupVersion::V1,
    }
}

/// Whether IPv4 forwarding is on (`/proc/sys/net/ipv4/ip_forward`).
pub fn ipv4_forwarding() -> bool {
    read_flag("/proc/sys/net/ipv4/ip_forward")
}

/// Whether bridged traffic passes iptables (`br_netfilter` loaded and enabled).
pub fn bridge_nf_call(ipv6: bool) -> bool {
    read_flag(if ipv6 {
        "/proc/sys/net/bridge/bridge-nf-call-ip6tables"
    } else {
        "/proc/sys/net/bridge/bridge-nf-call-iptables"
    })
}

fn read_flag(path: &str) -> bool {
    fs::read_to_string(path).is_ok_and(|s| s.trim() == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loaded_apparmor_profiles_are_looked_up_by_exact_name() {
        let list = "docker-default (enforce)\nberth-default (enforce)\n/usr/bin/man (complain)\n";
        assert!(apparmor_listed(list, "berth-default"));
        assert!(apparmor_listed(list, "/usr/bin/man"));
        assert!(!apparmor_listed(list, "berth"));
        assert!(!apparmor_listed(
            "berth-default-old (enforce)\n",
            "berth-default"
        ));
        assert!(!apparmor_listed("", "berth-default"));
    }

    #[test]
    fn os_release_quotes_and_defaults() {
        let r = parse_os_release(
            "NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\n",
        );
        assert_eq!(r.pretty_name, "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(r.version_id, "12");
        assert_eq!(parse_os_release("junk\n").pretty_name, "Linux");
    }

    #[test]
    fn host_facts_are_plausible() {
        assert!(ncpu() >= 1);
        assert!(mem_total() > 0);
        assert!(!uname().kernel_version.is_empty());
        assert!(open_fds() >= 3);
    }
}

/// The name dockerd gives the filesystem under the data root ("Backing Filesystem").
pub fn backing_filesystem(path: &Path) -> String {
    use nix::sys::statfs::{
        BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, OVERLAYFS_SUPER_MAGIC, TMPFS_MAGIC, XFS_SUPER_MAGIC,
    };
    let Ok(s) = statfs(path) else {
        return "unknown".into();
    };
    let t = s.filesystem_type();
    // Names as moby `daemon/graphdriver/driver_linux.go` FsNames.
    if t == EXT4_SUPER_MAGIC {
        "extfs"
    } else if t == XFS_SUPER_MAGIC {
        "xfs"
    } else if t == BTRFS_SUPER_MAGIC {
        "btrfs"
    } else if t == TMPFS_MAGIC {
        "tmpfs"
    } else if t == OVERLAYFS_SUPER_MAGIC {
        "overlayfs"
    } else {
        "<unknown>"
    }
    .into()
}

/// Which resource controls the host's cgroups offer (the booleans of `/info`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupFeatures {
    pub memory_limit: bool,
    pub swap_limit: bool,
    pub kernel_memory_tcp: bool,
    pub cpu_cfs_period: bool,
    pub cpu_cfs_quota: bool,
    pub cpu_shares: bool,
    pub cpu_set: bool,
    pub pids_limit: bool,
    pub oom_kill_disable: bool,
}

pub fn cgroup_features(version: CgroupVersion) -> CgroupFeatures {
    let root = Path::new("/sys/fs/cgroup");
    match version {
        CgroupVersion::V1 => {
            let has = |rel: &str| root.join(rel).exists();
            CgroupFeatures {
                memory_limit: has("memory/memory.limit_in_bytes"),
                swap_limit: has("memory/memory.memsw.limit_in_bytes"),
                kernel_memory_tcp: has("memory/memory.kmem.tcp.limit_in_bytes"),
                cpu_cfs_period: has("cpu/cpu.cfs_period_us"),
                cpu_cfs_quota: has("cpu/cpu.cfs_quota_us"),
                cpu_shares: has("cpu/cpu.shares"),
                cpu_set: has("cpuset/cpuset.cpus"),
                pids_limit: has("pids"),
                oom_kill_disable: has("memory/memory.oom_control"),
            }
        }
        CgroupVersion::V2 => {
            let controllers =
                fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
            let on = |c: &str| controllers.split_whitespace().any(|x| x == c);
            CgroupFeatures {
                memory_limit: on("memory"),
                swap_limit: on("memory"),
                kernel_memory_tcp: false,
                cpu_cfs_period: on("cpu"),
                cpu_cfs_quota: on("cpu"),
                cpu_shares: on("cpu"),
                cpu_set: on("cpuset"),
                pids_limit: on("pids"),
                oom_kill_disable: false,
            }
        }
    }
}

/// Whether the kernel offers seccomp filtering (`Seccomp:` in /proc/self/status).
pub fn seccomp_available() -> bool {
    fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
}

/// Whether the kernel has AppArmor enabled, as runc's `apparmor.IsEnabled`: securityfs
/// shows it and the module parameter says `Y`.
pub fn apparmor_enabled() -> bool {
    Path::new("/sys/kernel/security/apparmor").exists()
        && fs::read("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|b| b.first() == Some(&b'Y'))
}

/// Where the kernel lists the loaded AppArmor profiles: "name (mode)" per line.
pub const APPARMOR_PROFILES: &str = "/sys/kernel/security/apparmor/profiles";

/// Whether the kernel lists AppArmor profile `name` as loaded (false where it has no
/// AppArmor). Blocking: a read of securityfs.
pub fn apparmor_profile_loaded(name: &str) -> bool {
    fs::read_to_string(APPARMOR_PROFILES).is_ok_and(|l| apparmor_listed(&l, name))
}

/// Whether `name` is in `list`, a list of loaded profiles as [`APPARMOR_PROFILES`] has it.
fn apparmor_listed(list: &str, name: &str) -> bool {
    list.lines().any(|l| {
        l.strip_suffix(')')
            .and_then(|l| l.rsplit_once(" ("))
            .is_some_and(|(n, _)| n == name)
    })
}

/// Whether SELinux is enabled: selinuxfs mounted at `/sys/fs/selinux`.
pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// 16 random bytes from the kernel.
pub fn random_bytes() -> std::io::Result<[u8; 16]> {
    use std::io::Read;
    let mut buf = [0u8; 16];
    fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

/// This process's hard limit for the `--ulimit` resource `name` (`nofile`, `nproc`, …),
/// from `/proc/self/limits`; `u64::MAX` when unlimited, `None` for an unknown name.
pub fn hard_rlimit(name: &str) -> Option<u64> {
    let label = match name {
        "as" => "Max address space",
        "core" => "Max core file size",
        "cpu" => "Max cpu time",
        "data" => "Max data size",
        "fsize" => "Max file size",
        "locks" => "Max file locks",
        "memlock" => "Max locked memory",
        "msgqueue" => "Max msgqueue size",
        "nice" => "Max nice priority",
        "nofile" => "Max open files",
        "nproc" => "Max processes",
        "rss" => "Max resident set",
        "rtprio" => "Max realtime priority",
        "rttime" => "Max realtime timeout",
        "sigpending" => "Max pending signals",
        "stack" => "Max stack size",
        _ => return None,
    };
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with(label))?;
    let hard = line[label.len()..].split_whitespace().nth(1)?;
    Some(if hard == "unlimited" {
        u64::MAX
    } else {
        hard.parse().ok()?
    })
}

/// Whether this process holds `CAP_SYS_RESOURCE` (may raise hard rlimits).
pub fn has_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))?
                .trim()
                .to_string();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}
