//! Docker's defaults for a Linux container (moby `oci/defaults.go`, `oci/caps`,
//! `daemon/oci_linux.go`): capabilities, mounts, masked and read-only paths, the device
//! cgroup allow-list.

/// Docker's default capability set (moby `oci/caps/defaults.go`).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability the kernel knows, by number: what `--privileged` and `--cap-add ALL`
/// grant (the table lives in the shim's protocol library, which the shim itself needs).
pub use berth_shim_protocol::ALL_CAPS;

/// Paths masked (bind of /dev/null or an empty read-only tmpfs) in a non-privileged
/// container (moby `oci/defaults.go`, `DefaultLinuxSpec`).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths re-mounted read-only in a non-privileged container.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// `/dev/shm`'s size when `ShmSize` is not given (64 MiB, moby `config.DefaultShmSize`).
pub const DEFAULT_SHM_SIZE: u64 = 64 << 20;

/// Docker's smallest memory limit (moby `daemon/daemon_unix.go`, `linuxMinMemory`).
pub const MIN_MEMORY: i64 = 6 << 20;

/// One mount of Docker's default set: destination, type, source, options.
pub struct DefaultMount {
    pub destination: &'static str,
    pub typ: &'static str,
    pub source: &'static str,
    pub options: &'static [&'static str],
}

/// The mounts every container gets (before `/dev/shm`, which depends on IPC mode and
/// `ShmSize`).
pub const MOUNTS: &[DefaultMount] = &[
    DefaultMount {
        destination: "/proc",
        typ: "proc",
        source: "proc",
        options: &["nosuid", "noexec", "nodev"],
    },
    DefaultMount {
        destination: "/dev",
        typ: "tmpfs",
        source: "tmpfs",
        options: &["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    DefaultMount {
        destination: "/dev/pts",
        typ: "devpts",
        source: "devpts",
        options: &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ],
    },
    DefaultMount {
        destination: "/sys",
        typ: "sysfs",
        source: "sysfs",
        options: &["nosuid", "noexec", "nodev", "ro"],
    },
    DefaultMount {
        destination: "/sys/fs/cgroup",
        typ: "cgroup",
        source: "cgroup",
        options: &["ro", "nosuid", "noexec", "nodev"],
    },
    DefaultMount {
        destination: "/dev/mqueue",
        typ: "mqueue",
        source: "mqueue",
        options: &["nosuid", "noexec", "nodev"],
    },
];

/// The device cgroup allow-list of a non-privileged container: deny everything, allow
/// `mknod` of any device, and the usual character devices (moby `oci/defaults.go` and
/// runc's `AllowedDevices`): (type, major, minor, access); `None` is a wildcard.
pub const DEVICE_ALLOW: &[(&str, Option<i64>, Option<i64>, &str)] = &[
    ("c", None, None, "m"),
    ("b", None, None, "m"),
    ("c", Some(1), Some(3), "rwm"),    // /dev/null
    ("c", Some(1), Some(5), "rwm"),    // /dev/zero
    ("c", Some(1), Some(7), "rwm"),    // /dev/full
    ("c", Some(1), Some(8), "rwm"),    // /dev/random
    ("c", Some(1), Some(9), "rwm"),    // /dev/urandom
    ("c", Some(5), Some(0), "rwm"),    // /dev/tty
    ("c", Some(5), Some(1), "rwm"),    // /dev/console
    ("c", Some(5), Some(2), "rwm"),    // /dev/ptmx
    ("c", Some(136), None, "rwm"),     // /dev/pts/*
    ("c", Some(10), Some(200), "rwm"), // /dev/net/tun
];

/// Sysctls a container may set (moby `opts/runtime`'s `ValidateSysctl`): the IPC
/// namespace's (not with `--ipc host`) and the network namespace's `net.*` (not with
/// `--network host`).
pub const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// `--ulimit` names (moby `pkg/ulimit`).
pub const ULIMITS: &[(&str, &str)] = &[
    ("as", "RLIMIT_AS"),
    ("core", "RLIMIT_CORE"),
    ("cpu", "RLIMIT_CPU"),
    ("data", "RLIMIT_DATA"),
    ("fsize", "RLIMIT_FSIZE"),
    ("locks", "RLIMIT_LOCKS"),
    ("memlock", "RLIMIT_MEMLOCK"),
    ("msgqueue", "RLIMIT_MSGQUEUE"),
    ("nice", "RLIMIT_NICE"),
    ("nofile", "RLIMIT_NOFILE"),
    ("nproc", "RLIMIT_NPROC"),
    ("rss", "RLIMIT_RSS"),
    ("rtprio", "RLIMIT_RTPRIO"),
    ("rttime", "RLIMIT_RTTIME"),
    ("sigpending", "RLIMIT_SIGPENDING"),
    ("stack", "RLIMIT_STACK"),
];
