//! Docker's default seccomp profile as a Rust table (policy from moby/profiles seccomp v0.2.1
//! `default.json`): an allow-list, everything else fails with `EPERM`;
//! some syscalls only with a capability (`mount` with `CAP_SYS_ADMIN`, …) or on an
//! architecture. Resolved per container against its capabilities, as dockerd does.
//!
//! The `io_uring_*` syscalls are not in the list (moby 891241e7, Docker 25: io_uring has
//! been a steady source of kernel exploits), so they fail with `EPERM` like any other.
//!
//! The `minKernel: 4.8` rule for `ptrace` & co. is taken as met: berth needs pidfds (5.3).

use oci_spec::runtime::LinuxSeccomp;
use serde_json::json;

/// One rule: `names` are allowed (or fail with `errno`) when every condition holds.
struct Rule {
    names: &'static [&'static str],
    /// Only for a container with this capability.
    cap: Option<&'static str>,
    /// Only for a container without this capability.
    unless_cap: Option<&'static str>,
    /// Only on these architectures (Go's names); empty means all.
    arches: &'static [&'static str],
    /// Not on these architectures.
    not_arches: &'static [&'static str],
    /// Argument conditions: (index, value, value_two, operator).
    args: &'static [(u32, u64, u64, &'static str)],
    /// `None` allows; `Some(e)` fails the call with `e`.
    errno: Option<u32>,
}

const R: Rule = Rule {
    names: &[],
    cap: None,
    unless_cap: None,
    arches: &[],
    not_arches: &[],
    args: &[],
    errno: None,
};

/// `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
/// CLONE_NEWPID | CLONE_NEWNET`: `clone` may not make namespaces without `CAP_SYS_ADMIN`.
const CLONE_NS_FLAGS: u64 = 0x7E02_0000;

#[rustfmt::skip]
const ALLOWED: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset", "chdir",
    "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres",
    "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
    "clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range", "creat", "dup",
    "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
    "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat",
    "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
    "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown", "fchown32", "fchownat", "fcntl",
    "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr",
    "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64",
    "futex", "futex_time64", "futex_waitv", "futimesat", "getcpu", "getcwd", "getdents",
    "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups",
    "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid",
    "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit",
    "get_robust_list", "getrusage", "getsid", "getsockname", "getsockopt", "get_thread_area",
    "gettid", "gettimeofday", "getuid", "getuid32", "getxattr", "inotify_add_watch", "inotify_init",
    "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents",
    "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit",
    "ipc", "kill", "landlock_add_rule",
    "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link",
    "linkat", "listen", "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr",
    "lstat", "lstat64", "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir",
    "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect",
    "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64",
    "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv",
    "msgsnd", "msync", "munlock", "munlockall", "munmap", "name_to_handle_at", "nanosleep",
    "newfstatat", "_newselect", "open", "openat", "openat2", "pause", "pidfd_open",
    "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll",
    "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64",
    "process_mrelease", "pselect6", "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read",
    "readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg",
    "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat",
    "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending",
    "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr",
    "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget",
    "semop", "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg",
    "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32",
    "setgroups", "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
    "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit",
    "set_robust_list", "setsid", "setsockopt", "set_thread_area", "set_tid_address", "setuid",
    "setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack",
    "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair", "splice",
    "stat", "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync",
    "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete",
    "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
    "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
    "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname",
    "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice",
    "wait4", "waitid", "waitpid", "write", "writev",
    // Added by Docker since 25 (kernels 6.5 to 6.13): glibc 2.39 calls fchmodat2 and falls
    // back to fchmodat on ENOSYS only, not on EPERM.
    "cachestat", "fchmodat2", "futex_requeue", "futex_wait", "futex_wake", "getxattrat",
    "listmount", "listxattrat", "map_shadow_stack", "mseal", "removexattrat", "riscv_hwprobe",
    "setxattrat", "statmount", "uretprobe",
    // minKernel 4.8: ptrace can no longer bypass seccomp.
    "process_vm_readv", "process_vm_writev", "ptrace",
];

const RULES: &[Rule] = &[
    Rule {
        names: ALLOWED,
        ..R
    },
    // Any socket family but AF_ALG (38, the kernel's crypto API; moby/profiles v0.2.1) and
    // AF_VSOCK (40).
    Rule {
        names: &["socket"],
        args: &[(0, 38, 0, "SCMP_CMP_LT")],
        ..R
    },
    Rule {
        names: &["socket"],
        args: &[(0, 39, 0, "SCMP_CMP_EQ")],
        ..R
    },
    Rule {
        names: &["socket"],
        args: &[(0, 40, 0, "SCMP_CMP_GT")],
        ..R
    },
    // personality(2): PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and the query.
    Rule {
        names: &["personality"],
        args: &[(0, 0, 0, "SCMP_CMP_EQ")],
        ..R
    },
    Rule {
        names: &["personality"],
        args: &[(0, 8, 0, "SCMP_CMP_EQ")],
        ..R
    },
    Rule {
        names: &["personality"],
        args: &[(0, 131_072, 0, "SCMP_CMP_EQ")],
        ..R
    },
    Rule {
        names: &["personality"],
        args: &[(0, 131_080, 0, "SCMP_CMP_EQ")],
        ..R
    },
    Rule {
        names: &["personality"],
        args: &[(0, 4_294_967_295, 0, "SCMP_CMP_EQ")],
        ..R
    },
    Rule {
        names: &["sync_file_range2", "swapcontext"],
        arches: &["ppc64le"],
        ..R
    },
    Rule {
        names: &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
        arches: &["arm", "arm64"],
        ..R
    },
    Rule {
        names: &["arch_prctl"],
        arches: &["amd64", "x32"],
        ..R
    },
    Rule {
        names: &["modify_ldt"],
        arches: &["amd64", "x32", "x86"],
        ..R
    },
    Rule {
        names: &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
        arches: &["s390", "s390x"],
        ..R
    },
    Rule {
        names: &["riscv_flush_icache"],
        arches: &["riscv64"],
        ..R
    },
    Rule {
        names: &["open_by_handle_at"],
        cap: Some("CAP_DAC_READ_SEARCH"),
        ..R
    },
    Rule {
        names: &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "lsm_get_self_attr",
            "lsm_list_modules",
            "lsm_set_self_attr",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
        cap: Some("CAP_SYS_ADMIN"),
        ..R
    },
    Rule {
        names: &["clone"],
        unless_cap: Some("CAP_SYS_ADMIN"),
        not_arches: &["s390", "s390x"],
        args: &[(0, CLONE_NS_FLAGS, 0, "SCMP_CMP_MASKED_EQ")],
        ..R
    },
    // s390 passes clone's flags second.
    Rule {
        names: &["clone"],
        unless_cap: Some("CAP_SYS_ADMIN"),
        arches: &["s390", "s390x"],
        args: &[(1, CLONE_NS_FLAGS, 0, "SCMP_CMP_MASKED_EQ")],
        ..R
    },
    // ENOSYS, so that libcs fall back to clone, which the rule above can inspect.
    Rule {
        names: &["clone3"],
        unless_cap: Some("CAP_SYS_ADMIN"),
        errno: Some(38),
        ..R
    },
    Rule {
        names: &["reboot"],
        cap: Some("CAP_SYS_BOOT"),
        ..R
    },
    Rule {
        names: &["chroot"],
        cap: Some("CAP_SYS_CHROOT"),
        ..R
    },
    Rule {
        names: &["delete_module", "init_module", "finit_module"],
        cap: Some("CAP_SYS_MODULE"),
        ..R
    },
    Rule {
        names: &["acct"],
        cap: Some("CAP_SYS_PACCT"),
        ..R
    },
    Rule {
        names: &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
        cap: Some("CAP_SYS_PTRACE"),
        ..R
    },
    Rule {
        names: &["iopl", "ioperm"],
        cap: Some("CAP_SYS_RAWIO"),
        ..R
    },
    Rule {
        names: &["settimeofday", "stime", "clock_settime", "clock_settime64"],
        cap: Some("CAP_SYS_TIME"),
        ..R
    },
    Rule {
        names: &["vhangup"],
        cap: Some("CAP_SYS_TTY_CONFIG"),
        ..R
    },
    Rule {
        names: &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
        cap: Some("CAP_SYS_NICE"),
        ..R
    },
    Rule {
        names: &["syslog"],
        cap: Some("CAP_SYSLOG"),
        ..R
    },
    Rule {
        names: &["bpf"],
        cap: Some("CAP_BPF"),
        ..R
    },
    Rule {
        names: &["perf_event_open"],
        cap: Some("CAP_PERFMON"),
        ..R
    },
];

/// Go's name for an architecture (`runtime.GOARCH`), as the profile's rules use them.
fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The seccomp architectures a filter covers (the profile's `archMap`).
fn scmp_arches(rust_arch: &str) -> &'static [&'static str] {
    match rust_arch {
        "x86_64" => &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "aarch64" => &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "s390x" => &["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
        "riscv64" => &["SCMP_ARCH_RISCV64"],
        _ => &["SCMP_ARCH_NATIVE"],
    }
}

/// Docker's default profile for a container holding `caps` (`CAP_*` names), on this
/// machine's architecture.
pub fn default_profile(caps: &[String]) -> LinuxSeccomp {
    profile_for(caps, std::env::consts::ARCH)
}

pub(crate) fn profile_for(caps: &[String], rust_arch: &str) -> LinuxSeccomp {
    let arch = go_arch(rust_arch);
    let has = |c: &str| caps.iter().any(|x| x == c);
    let syscalls: Vec<serde_json::Value> = RULES
        .iter()
        .filter(|r| r.cap.is_none_or(has))
        .filter(|r| !r.unless_cap.is_some_and(has))
        .filter(|r| r.arches.is_empty() || r.arches.contains(&arch))
        .filter(|r| !r.not_arches.contains(&arch))
        .map(|r| {
            let mut v = json!({
                "names": r.names,
                "action": if r.errno.is_some() { "SCMP_ACT_ERRNO" } else { "SCMP_ACT_ALLOW" },
            });
            if let Some(e) = r.errno {
                v["errnoRet"] = json!(e);
            }
            if !r.args.is_empty() {
                v["args"] = r
                    .args
                    .iter()
                    .map(|(index, value, value_two, op)| {
                        json!({"index": index, "value": value, "valueTwo": value_two, "op": op})
                    })
                    .collect();
            }
            v
        })
        .collect();
    let profile = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": scmp_arches(rust_arch),
        "syscalls": syscalls,
    });
    serde_json::from_value(profile).expect("the default seccomp table is valid")
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::{LinuxSeccompAction, LinuxSeccompOperator, LinuxSyscall};

    use super::*;

    fn allowed<'a>(p: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
        p.syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|s| s.names().iter().any(|n| n == name))
            .collect()
    }

    fn caps(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dangerous_syscalls_denied_by_default() {
        let p = profile_for(&caps(super::super::defaults::DEFAULT_CAPS), "x86_64");
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(1));
        for name in [
            "kexec_load",
            "open_by_handle_at",
            "init_module",
            "finit_module",
            "delete_module",
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "keyctl",
            "add_key",
            "request_key",
            "mount",
            "umount2",
            "unshare",
            "setns",
            "reboot",
            "swapon",
            "swapoff",
            "syslog",
            "acct",
            "settimeofday",
            "clock_settime",
            "iopl",
            "kcmp",
            "vhangup",
            "sethostname",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
        ] {
            assert!(allowed(&p, name).is_empty(), "{name} allowed");
        }
    }

    #[test]
    fn io_uring_denied_whatever_the_capabilities() {
        for (c, arch) in [
            (caps(super::super::defaults::ALL_CAPS), "x86_64"),
            (caps(super::super::defaults::ALL_CAPS), "aarch64"),
            (vec![], "x86_64"),
        ] {
            let p = profile_for(&c, arch);
            for name in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
                assert!(allowed(&p, name).is_empty(), "{name} allowed on {arch}");
            }
        }
    }

    #[test]
    fn socket_families_but_alg_and_vsock() {
        let p = profile_for(&caps(super::super::defaults::ALL_CAPS), "x86_64");
        let rules: Vec<(u64, LinuxSeccompOperator)> = allowed(&p, "socket")
            .iter()
            .flat_map(|r| r.args().iter().flatten().map(|a| (a.value(), a.op())))
            .collect();
        let allows = |family: u64| {
            rules.iter().any(|(v, op)| match op {
                LinuxSeccompOperator::ScmpCmpLt => family < *v,
                LinuxSeccompOperator::ScmpCmpEq => family == *v,
                LinuxSeccompOperator::ScmpCmpGt => family > *v,
                _ => panic!("unexpected operator {op:?}"),
            })
        };
        // AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_NFC, AF_XDP.
        for family in [1, 2, 10, 16, 17, 39, 44] {
            assert!(allows(family), "{family}");
        }
        assert!(!allows(38), "AF_ALG");
        assert!(!allows(40), "AF_VSOCK");
    }

    #[test]
    fn everyday_syscalls_allowed() {
        let p = profile_for(&[], "x86_64");
        for name in [
            "read",
            "write",
            "execve",
            "ptrace",
            "arch_prctl",
            "modify_ldt",
            "chown",
            "fchmodat2",
            "futex_wait",
            "mseal",
            "statmount",
        ] {
            assert!(!allowed(&p, name).is_empty(), "{name} denied");
        }
        assert!(
            allowed(&p, "chroot").is_empty(),
            "chroot needs CAP_SYS_CHROOT"
        );
        assert!(allowed(&p, "cacheflush").is_empty(), "arm only");
    }

    #[test]
    fn clone_filtered_without_sys_admin() {
        let p = profile_for(&[], "x86_64");
        let clone = allowed(&p, "clone");
        assert_eq!(clone.len(), 1);
        let a = &clone[0].args().as_ref().unwrap()[0];
        assert_eq!(
            (a.index(), a.value(), a.value_two()),
            (0, CLONE_NS_FLAGS, Some(0))
        );
        let c3 = allowed(&p, "clone3");
        assert_eq!(
            (c3[0].action(), c3[0].errno_ret()),
            (LinuxSeccompAction::ScmpActErrno, Some(38))
        );
        let s390 = profile_for(&[], "s390x");
        assert_eq!(
            allowed(&s390, "clone")[0].args().as_ref().unwrap()[0].index(),
            1
        );
    }

    #[test]
    fn capabilities_unlock_their_syscalls() {
        let p = profile_for(
            &caps(&["CAP_SYS_ADMIN", "CAP_SYS_TIME", "CAP_SYS_PTRACE"]),
            "x86_64",
        );
        for name in [
            "mount",
            "unshare",
            "setns",
            "clone3",
            "settimeofday",
            "kcmp",
            "lsm_list_modules",
        ] {
            let rules = allowed(&p, name);
            assert!(
                rules
                    .iter()
                    .any(|r| r.action() == LinuxSeccompAction::ScmpActAllow),
                "{name}"
            );
        }
        assert!(
            allowed(&p, "clone").iter().all(|r| r.args().is_none()),
            "clone unrestricted"
        );
        assert!(allowed(&p, "clone3")
            .iter()
            .all(|r| r.errno_ret().is_none()));
    }

    #[test]
    fn architectures_follow_the_arch_map() {
        let json = serde_json::to_value(profile_for(&[], "x86_64")).unwrap();
        assert_eq!(
            json["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        let json = serde_json::to_value(profile_for(&[], "aarch64")).unwrap();
        assert_eq!(
            json["architectures"],
            json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
        );
        assert!(!allowed(&profile_for(&[], "aarch64"), "cacheflush").is_empty());
    }
}
