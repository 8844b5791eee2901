//! Table tests of the spec builder, bad input first.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oci_spec::runtime::{Capability, LinuxNamespaceType, Spec};

use super::*;

fn base() -> ContainerSpecInput {
    ContainerSpecInput {
        id: "c1".into(),
        rootfs: "/run/berth/c1/rootfs".into(),
        args: vec!["sh".into()],
        env: vec!["PATH=/bin".into()],
        cgroups_path: "/berth/c1".into(),
        seccomp: true,
        hostname: "c1".into(),
        ..Default::default()
    }
}

fn err(i: &ContainerSpecInput) -> String {
    match build_spec(i) {
        Err(RuntimeError::InvalidArgument(m)) => m,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

fn ok(i: &ContainerSpecInput) -> Spec {
    build_spec(i).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn bad_input_is_refused_with_dockers_words() {
    type Tweak = fn(&mut ContainerSpecInput);
    let cases: &[(Tweak, &str)] = &[
        (|i| i.id.clear(), "container id is empty"),
        (|i| i.args.clear(), "No command specified"),
        (|i| i.args = vec![String::new()], "No command specified"),
        (
            |i| i.rootfs = "rel/rootfs".into(),
            "rootfs must be an absolute path",
        ),
        (
            |i| i.cwd = "tmp".into(),
            "the working directory 'tmp' is invalid, it needs to be an absolute path",
        ),
        (
            |i| i.cgroups_path = "berth/c1".into(),
            "cgroups path must be absolute",
        ),
        (|i| i.env.push("=x".into()), "invalid environment variable"),
        (
            |i| i.env.push(String::new()),
            "invalid environment variable",
        ),
        (|i| i.hostname = "h".repeat(65), "longer than 64"),
        (
            |i| i.namespaces.uts = NamespaceMode::Host,
            "Conflicting options: hostname and the UTS mode",
        ),
        (
            |i| i.oom_score_adj = Some(1001),
            "range for oom score adj is [-1000, 1000]",
        ),
        (|i| i.oom_score_adj = Some(-1001), "range for oom score adj"),
        (|i| i.shm_size = Some(-1), "SHM size can not be less than 0"),
        (
            |i| i.namespaces.net = NamespaceMode::Path("netns/x".into()),
            "namespace path must be absolute",
        ),
        (
            |i| i.cap_add = vec!["CAP_NOPE".into()],
            "unknown capability: \"CAP_NOPE\"",
        ),
        (
            |i| i.cap_drop = vec!["fly".into()],
            "unknown capability: \"fly\"",
        ),
        (
            |i| i.resources.memory = Some(1 << 20),
            "Minimum memory limit allowed is 6MB",
        ),
        (
            |i| i.resources.memory_swap = Some(64 << 20),
            "You should always set the Memory limit when using Memoryswap limit",
        ),
        (
            |i| {
                i.resources.memory = Some(64 << 20);
                i.resources.memory_swap = Some(32 << 20);
            },
            "Minimum memoryswap limit should be larger than memory limit",
        ),
        (
            |i| i.resources.memory_swap = Some(-2),
            "invalid memory swap",
        ),
        (
            |i| {
                i.resources.memory = Some(64 << 20);
                i.resources.memory_reservation = Some(128 << 20);
            },
            "can not be less than memory reservation",
        ),
        (
            |i| i.resources.cpu_quota = Some(999),
            "CPU cfs quota can not be less than 1ms",
        ),
        (
            |i| i.resources.cpu_period = Some(999),
            "CPU cfs period can not be less than 1ms",
        ),
        (
            |i| i.resources.cpu_period = Some(1_000_001),
            "or larger than 1s",
        ),
        (
            |i| {
                i.resources.nano_cpus = Some(1_000_000_000);
                i.resources.cpu_period = Some(100_000);
            },
            "Nano CPUs and CPU Period cannot both be set",
        ),
        (
            |i| {
                i.resources.nano_cpus = Some(1_000_000_000);
                i.resources.cpu_quota = Some(50_000);
            },
            "Nano CPUs and CPU Quota cannot both be set",
        ),
        (|i| i.resources.nano_cpus = Some(-1), "Range of CPUs"),
        (
            |i| i.resources.cpuset_cpus = Some("0-".into()),
            "Invalid value 0- for cpuset cpus",
        ),
        (
            |i| i.resources.cpuset_cpus = Some("3-1".into()),
            "Invalid value 3-1 for cpuset cpus",
        ),
        (
            |i| i.resources.cpuset_mems = Some("a".into()),
            "Invalid value a for cpuset mems",
        ),
        (
            |i| {
                i.ulimits = vec![Ulimit {
                    name: "nofiles".into(),
                    soft: 1,
                    hard: 1,
                }]
            },
            "invalid ulimit type: nofiles",
        ),
        (
            |i| {
                i.ulimits = vec![Ulimit {
                    name: "nofile".into(),
                    soft: 2,
                    hard: 1,
                }]
            },
            "ulimit soft limit must be less than or equal to hard limit: 2 > 1",
        ),
        (
            |i| {
                i.sysctls.insert("kernel.panic".into(), "1".into());
            },
            "sysctl 'kernel.panic' is not whitelisted",
        ),
        (
            |i| {
                i.namespaces.net = NamespaceMode::Host;
                i.sysctls.insert("net.ipv4.ip_forward".into(), "1".into());
            },
            "not allowed in host network namespace",
        ),
        (
            |i| {
                i.namespaces.ipc = NamespaceMode::Host;
                i.sysctls.insert("kernel.shmmax".into(), "1".into());
            },
            "not allowed in host IPC namespace",
        ),
        (
            |i| {
                i.tmpfs.insert("run".into(), String::new());
            },
            "destination must be an absolute path",
        ),
        (
            |i| {
                i.tmpfs.insert("/".into(), String::new());
            },
            "destination can't be '/'",
        ),
        (
            |i| {
                i.tmpfs.insert("/a/../b".into(), String::new());
            },
            "must not contain '..'",
        ),
        (
            |i| {
                i.tmpfs.insert("/run".into(), "rw,,size=1m".into());
            },
            "invalid tmpfs options",
        ),
        (
            |i| {
                i.mounts = vec![BindMount {
                    source: "data".into(),
                    destination: "/data".into(),
                    readonly: false,
                    propagation: None,
                }]
            },
            "source must be an absolute path",
        ),
        (
            |i| {
                i.mounts = vec![BindMount {
                    source: "/d".into(),
                    destination: "/".into(),
                    readonly: false,
                    propagation: None,
                }]
            },
            "destination can't be '/'",
        ),
        (
            |i| {
                i.mounts = vec![BindMount {
                    source: "/d".into(),
                    destination: "/d".into(),
                    readonly: false,
                    propagation: Some("sideways".into()),
                }]
            },
            "invalid propagation mode: sideways",
        ),
        (
            |i| {
                i.devices = vec![Device {
                    path: "dev/x".into(),
                    kind: 'c',
                    major: 1,
                    minor: 1,
                    permissions: "rwm".into(),
                    file_mode: None,
                    uid: None,
                    gid: None,
                }]
            },
            "invalid device: dev/x",
        ),
        (
            |i| {
                i.devices = vec![Device {
                    path: "/dev/x".into(),
                    kind: 'c',
                    major: 1,
                    minor: 1,
                    permissions: "rwx".into(),
                    file_mode: None,
                    uid: None,
                    gid: None,
                }]
            },
            "invalid device mode: rwx",
        ),
    ];
    for (tweak, want) in cases {
        let mut i = base();
        tweak(&mut i);
        let got = err(&i);
        assert!(got.contains(want), "want {want:?}, got {got:?}");
    }
}

fn caps_of(s: &Spec) -> Vec<String> {
    let mut v: Vec<String> = s
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .as_ref()
        .unwrap()
        .bounding()
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| format!("CAP_{c}"))
        .collect();
    v.sort();
    v
}

fn sorted(c: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = c.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn default_capabilities_and_tweaks() {
    assert_eq!(caps_of(&ok(&base())), sorted(DEFAULT_CAPS));
    /// (cap_add, cap_drop, privileged, expected capabilities)
    type Case<'a> = (&'a [&'a str], &'a [&'a str], bool, Vec<String>);
    let cases: &[Case] = &[
        (&["sys_admin"], &["chown", "CAP_KILL"], false, {
            let mut v: Vec<&str> = DEFAULT_CAPS
                .iter()
                .copied()
                .filter(|c| *c != "CAP_CHOWN" && *c != "CAP_KILL")
                .collect();
            v.push("CAP_SYS_ADMIN");
            sorted(&v)
        }),
        (&["NET_ADMIN"], &["ALL"], false, sorted(&["CAP_NET_ADMIN"])),
        (&[], &["ALL"], false, vec![]),
        (
            &["ALL"],
            &["mknod"],
            false,
            sorted(
                &ALL_CAPS
                    .iter()
                    .copied()
                    .filter(|c| *c != "CAP_MKNOD")
                    .collect::<Vec<_>>(),
            ),
        ),
        (&["chown"], &["chown"], false, sorted(DEFAULT_CAPS)),
        (&[], &["net_raw"], true, sorted(ALL_CAPS)),
    ];
    for (add, drop, privileged, want) in cases {
        let mut i = base();
        i.cap_add = add.iter().map(|s| s.to_string()).collect();
        i.cap_drop = drop.iter().map(|s| s.to_string()).collect();
        i.privileged = *privileged;
        assert_eq!(&caps_of(&ok(&i)), want, "add {add:?} drop {drop:?}");
    }
    let s = ok(&base());
    let c = s
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .as_ref()
        .unwrap();
    assert!(c.effective().as_ref().unwrap().contains(&Capability::Chown));
    assert!(c.inheritable().is_none() && c.ambient().is_none());
}

#[test]
fn docker_default_mounts_paths_and_devices() {
    let s = ok(&base());
    let dests: Vec<String> = s
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.destination().display().to_string())
        .collect();
    assert_eq!(
        dests,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/sys",
            "/sys/fs/cgroup",
            "/dev/mqueue",
            "/dev/shm"
        ]
    );
    let shm = &s.mounts().as_ref().unwrap()[6];
    assert!(shm
        .options()
        .as_ref()
        .unwrap()
        .contains(&"size=67108864".to_string()));
    let sys = &s.mounts().as_ref().unwrap()[3];
    assert!(sys.options().as_ref().unwrap().contains(&"ro".to_string()));
    let linux = s.linux().as_ref().unwrap();
    assert_eq!(
        linux.masked_paths().as_ref().unwrap(),
        &to_strings(MASKED_PATHS)
    );
    assert_eq!(
        linux.readonly_paths().as_ref().unwrap(),
        &to_strings(READONLY_PATHS)
    );
    assert_eq!(
        linux.cgroups_path().as_ref().unwrap(),
        &PathBuf::from("/berth/c1")
    );
    assert!(linux.seccomp().is_some());
    let devices = linux
        .resources()
        .as_ref()
        .unwrap()
        .devices()
        .as_ref()
        .unwrap();
    assert!(!devices[0].allow() && devices[0].major().is_none());
    assert!(devices
        .iter()
        .any(|d| d.allow() && d.major() == Some(136) && d.minor().is_none()));
    assert_eq!(s.hostname().as_deref(), Some("c1"));
    let p = s.process().as_ref().unwrap();
    assert_eq!(p.cwd(), &PathBuf::from("/"));
    assert_eq!(
        p.no_new_privileges(),
        None,
        "absent unless set (libcontainer seccomp ordering)"
    );
    assert_eq!(s.root().as_ref().unwrap().readonly(), Some(false));
}

#[test]
fn privileged_gets_rw_sys_all_devices_no_masks_no_seccomp() {
    let mut i = base();
    i.privileged = true;
    let s = ok(&i);
    let linux = s.linux().as_ref().unwrap();
    assert!(
        linux.masked_paths().is_none()
            && linux.readonly_paths().is_none()
            && linux.seccomp().is_none()
    );
    let devices = linux
        .resources()
        .as_ref()
        .unwrap()
        .devices()
        .as_ref()
        .unwrap();
    assert_eq!(devices.len(), 1);
    assert!(devices[0].allow());
    let sys = s
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.destination() == &PathBuf::from("/sys"))
        .unwrap();
    assert!(!sys.options().as_ref().unwrap().contains(&"ro".to_string()));
}

#[test]
fn seccomp_off_and_custom_paths() {
    let mut i = base();
    i.seccomp = false;
    i.masked_paths = Some(vec![]);
    i.readonly_paths = Some(vec!["/proc/sys".into()]);
    let s = ok(&i);
    let linux = s.linux().as_ref().unwrap();
    assert!(linux.seccomp().is_none());
    assert_eq!(linux.masked_paths().as_ref().unwrap().len(), 0);
    assert_eq!(
        linux.readonly_paths().as_ref().unwrap(),
        &vec!["/proc/sys".to_string()]
    );
}

#[test]
fn seccomp_follows_capabilities() {
    let mut i = base();
    i.cap_add = vec!["SYS_ADMIN".into()];
    let s = ok(&i);
    let sc = s.linux().as_ref().unwrap().seccomp().as_ref().unwrap();
    assert!(sc
        .syscalls()
        .as_ref()
        .unwrap()
        .iter()
        .any(|r| r.names().contains(&"mount".to_string())));
    let s = ok(&base());
    let sc = s.linux().as_ref().unwrap().seccomp().as_ref().unwrap();
    assert!(!sc
        .syscalls()
        .as_ref()
        .unwrap()
        .iter()
        .any(|r| r.names().contains(&"mount".to_string())));
}

#[test]
fn custom_seccomp_profile_replaces_the_default() {
    let profile = serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_SYS_ADMIN"]}}]});
    let mut i = base();
    i.seccomp_profile = Some(profile.to_string());
    let rules = |s: &Spec| -> Vec<String> {
        let sc = s.linux().as_ref().unwrap().seccomp().as_ref().unwrap();
        sc.syscalls()
            .iter()
            .flatten()
            .flat_map(|r| r.names().clone())
            .collect()
    };
    let s = ok(&i);
    assert_eq!(rules(&s), ["mkdir", "mount"]);
    // Resolved against the container's own capabilities.
    i.cap_add = vec!["SYS_ADMIN".into()];
    assert_eq!(rules(&ok(&i)), ["mkdir"]);
    // Privileged: applied all the same, as dockerd; unconfined wins over it.
    i.privileged = true;
    assert_eq!(rules(&ok(&i)), ["mkdir"]);
    i.seccomp = false;
    assert!(ok(&i).linux().as_ref().unwrap().seccomp().is_none());
    // A profile that says nothing disables seccomp.
    let mut i = base();
    i.seccomp_profile = Some("{}".into());
    assert!(ok(&i).linux().as_ref().unwrap().seccomp().is_none());
    i.seccomp_profile = Some("{nope".into());
    let e = build_spec(&i).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
    assert!(
        e.to_string()
            .starts_with("Decoding seccomp profile failed: "),
        "{e}"
    );
}

#[test]
fn apparmor_profile_only_when_set() {
    let mut i = base();
    assert!(ok(&i)
        .process()
        .as_ref()
        .unwrap()
        .apparmor_profile()
        .is_none());
    i.apparmor_profile = Some("berth-default".into());
    assert_eq!(
        ok(&i)
            .process()
            .as_ref()
            .unwrap()
            .apparmor_profile()
            .as_deref(),
        Some("berth-default")
    );
}

#[test]
fn namespaces_private_host_and_joined() {
    let kinds = |s: &Spec| -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
        s.linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| (n.typ(), n.path().clone()))
            .collect()
    };
    let s = ok(&base());
    assert_eq!(
        kinds(&s),
        vec![
            (LinuxNamespaceType::Mount, None),
            (LinuxNamespaceType::Pid, None),
            (LinuxNamespaceType::Ipc, None),
            (LinuxNamespaceType::Uts, None),
            (LinuxNamespaceType::Network, None),
        ]
    );
    let mut i = base();
    i.hostname.clear();
    i.namespaces = Namespaces {
        pid: NamespaceMode::Host,
        ipc: NamespaceMode::Path("/proc/42/ns/ipc".into()),
        uts: NamespaceMode::Host,
        net: NamespaceMode::Path("/run/berth/netns/c1".into()),
        cgroup: true,
    };
    let s = ok(&i);
    assert_eq!(
        kinds(&s),
        vec![
            (LinuxNamespaceType::Mount, None),
            (LinuxNamespaceType::Ipc, Some("/proc/42/ns/ipc".into())),
            (
                LinuxNamespaceType::Network,
                Some("/run/berth/netns/c1".into())
            ),
            (LinuxNamespaceType::Cgroup, None),
        ]
    );
    assert!(s.hostname().is_none());
    let mut i = base();
    i.namespaces.ipc = NamespaceMode::Host;
    let s = ok(&i);
    let shm = s
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.destination() == &PathBuf::from("/dev/shm"))
        .unwrap();
    assert_eq!(shm.typ().as_deref(), Some("bind"));
}

#[test]
fn resources_translate_like_docker() {
    let mut i = base();
    i.resources = Resources {
        memory: Some(64 << 20),
        memory_reservation: Some(32 << 20),
        cpu_shares: Some(1),
        nano_cpus: Some(1_500_000_000),
        cpuset_cpus: Some("0-1,3".into()),
        pids_limit: Some(100),
        ..Default::default()
    };
    let s = ok(&i);
    let r = s.linux().as_ref().unwrap().resources().as_ref().unwrap();
    let m = r.memory().as_ref().unwrap();
    assert_eq!(
        (m.limit(), m.swap(), m.reservation()),
        (Some(64 << 20), Some(128 << 20), Some(32 << 20))
    );
    let c = r.cpu().as_ref().unwrap();
    assert_eq!(
        (c.shares(), c.quota(), c.period()),
        (Some(2), Some(150_000), Some(100_000))
    );
    assert_eq!(c.cpus().as_deref(), Some("0-1,3"));
    assert_eq!(r.pids().as_ref().unwrap().limit(), 100);

    let mut i = base();
    i.resources = Resources {
        memory: Some(64 << 20),
        memory_swap: Some(-1),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        pids_limit: Some(-1),
        ..Default::default()
    };
    let s = ok(&i);
    let r = s.linux().as_ref().unwrap().resources().as_ref().unwrap();
    assert_eq!(r.memory().as_ref().unwrap().swap(), Some(-1));
    assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(50_000));
    assert!(r.pids().is_none());
    let r = ok(&base());
    let r = r.linux().as_ref().unwrap().resources().as_ref().unwrap();
    assert!(r.memory().is_none() && r.cpu().is_none() && r.pids().is_none());
    assert!(r.hugepage_limits().is_none());
}

#[test]
fn hugepage_limits_go_to_the_spec() {
    let mut i = base();
    i.resources.hugepage_limits = vec![("2MB".into(), 4 << 20), ("1GB".into(), u64::MAX)];
    let s = ok(&i);
    let r = s.linux().as_ref().unwrap().resources().as_ref().unwrap();
    let got: Vec<(String, i64)> = r
        .hugepage_limits()
        .as_ref()
        .unwrap()
        .iter()
        .map(|h| (h.page_size().clone(), h.limit()))
        .collect();
    assert_eq!(got, [("2MB".into(), 4 << 20), ("1GB".into(), i64::MAX)]);
}

#[test]
fn user_env_ulimits_sysctls_oom() {
    let mut i = base();
    i.user = User {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![10, 20],
    };
    i.cwd = "/work".into();
    i.tty = true;
    i.readonly_rootfs = true;
    i.no_new_privileges = true;
    i.oom_score_adj = Some(500);
    i.ulimits = vec![
        Ulimit {
            name: "nofile".into(),
            soft: 1024,
            hard: 2048,
        },
        Ulimit {
            name: "core".into(),
            soft: -1,
            hard: -1,
        },
    ];
    i.sysctls = BTreeMap::from([
        ("net.ipv4.ip_forward".to_string(), "1".to_string()),
        ("kernel.shmmax".to_string(), "1000".to_string()),
        ("fs.mqueue.msg_max".to_string(), "10".to_string()),
    ]);
    let s = ok(&i);
    let p = s.process().as_ref().unwrap();
    assert_eq!((p.user().uid(), p.user().gid()), (1000, 1000));
    assert_eq!(p.user().additional_gids().as_ref().unwrap(), &vec![10, 20]);
    assert_eq!(p.cwd(), &PathBuf::from("/work"));
    assert_eq!(
        (p.terminal(), p.no_new_privileges(), p.oom_score_adj()),
        (Some(true), Some(true), Some(500))
    );
    let rl = p.rlimits().as_ref().unwrap();
    assert_eq!((rl[0].soft(), rl[0].hard()), (1024, 2048));
    assert_eq!(rl[1].soft(), u64::MAX);
    assert_eq!(s.root().as_ref().unwrap().readonly(), Some(true));
    assert_eq!(
        s.linux().as_ref().unwrap().sysctl().as_ref().unwrap().len(),
        3
    );
}

#[test]
fn user_mounts_override_defaults_and_sort_parents_first() {
    let mut i = base();
    i.shm_size = Some(1 << 20);
    i.tmpfs = BTreeMap::from([
        ("/run/a".to_string(), "size=1m".to_string()),
        ("/run".to_string(), String::new()),
    ]);
    i.mounts = vec![
        BindMount {
            source: "/var/lib/berth/c1/hosts".into(),
            destination: "/etc/hosts".into(),
            readonly: false,
            propagation: None,
        },
        BindMount {
            source: "/data".into(),
            destination: "/dev/mqueue".into(),
            readonly: true,
            propagation: Some("rslave".into()),
        },
    ];
    let s = ok(&i);
    let ms = s.mounts().as_ref().unwrap();
    let dests: Vec<String> = ms
        .iter()
        .map(|m| m.destination().display().to_string())
        .collect();
    assert_eq!(
        dests,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/sys",
            "/sys/fs/cgroup",
            "/dev/shm",
            "/run",
            "/run/a",
            "/etc/hosts",
            "/dev/mqueue"
        ]
    );
    let shm = &ms[5];
    assert!(shm
        .options()
        .as_ref()
        .unwrap()
        .contains(&"size=1048576".to_string()));
    let run_a = &ms[7];
    assert_eq!(
        run_a.options().as_ref().unwrap(),
        &vec!["noexec", "nosuid", "nodev", "size=1m"]
    );
    let mq = &ms[9];
    assert_eq!(mq.typ().as_deref(), Some("bind"));
    assert_eq!(
        mq.options().as_ref().unwrap(),
        &vec!["rbind", "ro", "rslave"]
    );
    assert_eq!(
        ms[8].options().as_ref().unwrap(),
        &vec!["rbind", "rw", "rprivate"]
    );
}

#[test]
fn a_shared_bind_keeps_the_root_shared() {
    let mut i = base();
    let bind = |propagation: &str| BindMount {
        source: "/data".into(),
        destination: "/data".into(),
        readonly: false,
        propagation: Some(propagation.into()),
    };
    i.mounts = vec![bind("rslave")];
    let linux = ok(&i).linux().clone().unwrap();
    assert_eq!(
        linux.rootfs_propagation(),
        &None,
        "libcontainer's default: slave"
    );
    i.mounts.push(bind("rshared"));
    let linux = ok(&i).linux().clone().unwrap();
    assert_eq!(linux.rootfs_propagation().as_deref(), Some("shared"));
}

#[test]
fn devices_are_created_and_allowed() {
    let mut i = base();
    i.devices = vec![Device {
        path: "/dev/fuse".into(),
        kind: 'c',
        major: 10,
        minor: 229,
        permissions: "rw".into(),
        file_mode: Some(0o666),
        uid: Some(0),
        gid: Some(0),
    }];
    let s = ok(&i);
    let linux = s.linux().as_ref().unwrap();
    let d = &linux.devices().as_ref().unwrap()[0];
    assert_eq!(
        (d.major(), d.minor(), d.file_mode()),
        (10, 229, Some(0o666))
    );
    let allow = linux
        .resources()
        .as_ref()
        .unwrap()
        .devices()
        .as_ref()
        .unwrap();
    assert!(allow.iter().any(|a| a.allow()
        && a.major() == Some(10)
        && a.minor() == Some(229)
        && a.access().as_deref() == Some("rw")));
}

#[test]
fn spec_serializes_for_libcontainer() {
    let s = ok(&base());
    let v = serde_json::to_value(&s).unwrap();
    assert!(v["ociVersion"].as_str().unwrap().starts_with("1."));
    assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    let back: Spec = serde_json::from_value(v).unwrap();
    assert_eq!(back.linux(), s.linux());
}

/// Block I/O, swappiness, the OOM killer, real-time CPU, device cgroup rules and
/// annotations reach the spec (they were dropped before), in the OCI field names.
#[test]
fn blkio_swappiness_oom_realtime_rules_annotations() {
    let mut i = base();
    let t = |rate| ThrottleDevice {
        major: 254,
        minor: 0,
        rate,
    };
    i.resources = Resources {
        memory_swappiness: Some(10),
        oom_kill_disable: true,
        cpu_rt_period: Some(1_000_000),
        cpu_rt_runtime: Some(950_000),
        cpuset_mems: Some("0".into()),
        block_io: BlockIo {
            weight: Some(300),
            weight_device: vec![WeightDevice {
                major: 8,
                minor: 0,
                weight: 200,
            }],
            read_bps: vec![t(1_048_576)],
            write_bps: vec![t(2)],
            read_iops: vec![t(3)],
            write_iops: vec![t(4)],
        },
        ..Default::default()
    };
    i.device_rules = vec![DeviceRule {
        kind: 'c',
        major: Some(42),
        minor: None,
        access: "rmw".into(),
    }];
    i.annotations = BTreeMap::from([("org.example/a".to_string(), "1".to_string())]);
    let s = ok(&i);
    let v = serde_json::to_value(&s).unwrap();
    let r = &v["linux"]["resources"];
    assert_eq!(r["memory"]["swappiness"], 10);
    assert_eq!(r["memory"]["disableOOMKiller"], true);
    assert_eq!(r["cpu"]["realtimePeriod"], 1_000_000);
    assert_eq!(r["cpu"]["realtimeRuntime"], 950_000);
    assert_eq!(r["cpu"]["mems"], "0");
    let b = &r["blockIO"];
    assert_eq!(b["weight"], 300);
    assert_eq!(
        b["weightDevice"],
        serde_json::json!([{"major": 8, "minor": 0, "weight": 200}])
    );
    for (key, rate) in [
        ("throttleReadBpsDevice", 1_048_576),
        ("throttleWriteBpsDevice", 2),
        ("throttleReadIOPSDevice", 3),
        ("throttleWriteIOPSDevice", 4),
    ] {
        assert_eq!(
            b[key],
            serde_json::json!([{"major": 254, "minor": 0, "rate": rate}]),
            "{key}"
        );
    }
    let devices = r["devices"].as_array().unwrap();
    assert_eq!(
        devices.last().unwrap(),
        &serde_json::json!({"allow": true, "type": "c", "major": 42, "access": "rmw"})
    );
    assert_eq!(v["annotations"]["org.example/a"], "1");

    let mut i = base();
    i.resources.memory_swappiness = Some(101);
    assert_eq!(
        err(&i),
        "Invalid value: 101, valid memory swappiness range is 0-100"
    );
    let mut i = base();
    i.resources.cpu_rt_period = Some(1000);
    i.resources.cpu_rt_runtime = Some(2000);
    assert_eq!(
        err(&i),
        "cpu real-time runtime cannot be higher than cpu real-time period"
    );
    let r = ok(&base());
    let v = serde_json::to_value(&r).unwrap();
    assert!(v["linux"]["resources"].get("blockIO").is_none());
    assert!(v.get("annotations").is_none());
}
