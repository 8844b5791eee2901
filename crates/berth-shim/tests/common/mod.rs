//! Test harness: a busybox bundle, the real `berth-shim` binary, and leak checks (mounts,
//! cgroups, the monitor process) when a test is done. Needs root; skips otherwise.

#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use berth_shim::client::Client;
use berth_shim::{
    ExitRecord, LogEntry, LogOptions, Request, Response, StartOptions, StartReply, State,
};
use serde_json::{json, Value};

static SEQ: AtomicU32 = AtomicU32::new(0);

pub fn is_root() -> bool {
    // Through /proc: the test crate has no unsafe.
    fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Skips the calling test when not root.
#[macro_export]
macro_rules! need_root {
    () => {
        if !common::is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

/// One container's world: exec dir, bundle, rootfs, a unique cgroup parent.
pub struct Harness {
    pub tmp: tempfile::TempDir,
    pub id: String,
    pub dir: PathBuf,
    pub bundle: PathBuf,
    pub parent: String,
    pub spec: Value,
    pub shim_pid: Option<i32>,
    /// Added to the launcher's environment.
    pub env: Vec<(String, String)>,
}

impl Harness {
    pub fn new(args: &[&str]) -> Harness {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let tmp = tempfile::Builder::new()
            .prefix("berth-shim-test")
            .tempdir()
            .unwrap();
        let id = format!("c{n}");
        let dir = tmp.path().join("exec");
        let bundle = dir.join("bundle");
        fs::create_dir_all(&bundle).unwrap();
        make_rootfs(&bundle.join("rootfs"));
        let parent = format!("berth-test-{}-{n}", std::process::id());
        let spec = default_spec(args, &format!("/{parent}/{id}"));
        Harness {
            tmp,
            id,
            dir,
            bundle,
            parent,
            spec,
            shim_pid: None,
            env: Vec::new(),
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.tmp.path().join("ctr-json.log")
    }

    pub fn options(&self) -> StartOptions {
        StartOptions {
            id: self.id.clone(),
            dir: self.dir.clone(),
            bundle: self.bundle.clone(),
            log: Some(LogOptions {
                path: self.log_path(),
                max_size: None,
                max_files: 1,
                format: Default::default(),
                compress: false,
                sink: None,
                attrs: Vec::new(),
            }),
            open_stdin: false,
            stdin_once: false,
            defer_start: false,
            shim_cgroup: Some(format!("/{}/shims", self.parent)),
            debug: false,
            runtime: None,
            exit_notify: None,
        }
    }

    /// Writes config.json and runs the launcher like the daemon does.
    pub fn start_with(&mut self, opts: &StartOptions) -> StartReply {
        fs::write(
            self.bundle.join("config.json"),
            serde_json::to_vec_pretty(&self.spec).unwrap(),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth-shim"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&serde_json::to_vec(opts).unwrap())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let reply: StartReply = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("bad reply {:?}: {e}", String::from_utf8_lossy(&out.stdout))
        });
        match &reply {
            StartReply::Started { shim_pid, .. } => {
                assert!(out.status.success());
                self.shim_pid = Some(*shim_pid);
            }
            StartReply::Failed { .. } => assert_eq!(out.status.code(), Some(1)),
        }
        reply
    }

    pub fn start(&mut self) -> StartReply {
        let o = self.options();
        self.start_with(&o)
    }

    pub fn started(&mut self) -> i32 {
        match self.start() {
            StartReply::Started { pid, .. } => pid,
            StartReply::Failed { message, .. } => {
                panic!("start failed: {message}\n{}", self.shim_log())
            }
        }
    }

    pub fn shim_log(&self) -> String {
        fs::read_to_string(self.dir.join("shim.log")).unwrap_or_default()
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.dir.join("shim.sock")).unwrap()
    }

    pub fn state(&self) -> State {
        match self.client().call(&Request::State).unwrap() {
            Response::State(s) => s,
            r => panic!("unexpected {r:?}"),
        }
    }

    pub fn call(&self, r: &Request) -> Response {
        self.client().call(r).unwrap()
    }

    /// Waits for `exit.json` and for the monitor to be gone.
    pub fn wait_exit(&self, limit: Duration) -> ExitRecord {
        let path = self.dir.join("exit.json");
        let deadline = Instant::now() + limit;
        while !path.exists() || self.dir.join("shim.pid").exists() {
            assert!(
                Instant::now() < deadline,
                "no exit.json; shim log:\n{}",
                self.shim_log()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        if let Some(pid) = self.shim_pid {
            wait_gone(pid, deadline);
        }
        serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
    }

    pub fn log_entries(&self) -> Vec<LogEntry> {
        fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn log_text(&self) -> String {
        self.log_entries().iter().map(|e| e.log.as_str()).collect()
    }

    pub fn wait_log(&self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.log_text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{needle:?} not logged; log: {:?}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Harness {
    /// Leak checks: no monitor, no mounts under the temp dir, no cgroup left under the
    /// parent (removing the parent, which fails if a child is left).
    fn drop(&mut self) {
        let mut leaks = Vec::new();
        if let Some(pid) = self.shim_pid {
            if alive(pid) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                leaks.push(format!("shim {pid} still running"));
                wait_gone(pid, Instant::now() + Duration::from_secs(2));
            }
        }
        let tmp = self.tmp.path().to_string_lossy().into_owned();
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        for l in mounts.lines().filter(|l| l.contains(&tmp)) {
            leaks.push(format!("mount left: {l}"));
        }
        leaks.extend(kill_cgroup_tree(&self.parent));
        leaks.extend(remove_cgroup_parent(&self.parent));
        if !leaks.is_empty() && !std::thread::panicking() {
            panic!("leaks:\n{}", leaks.join("\n"));
        }
    }
}

/// Kills whatever still runs under the test's cgroup parent (a failed test's container);
/// each is a leak.
pub fn kill_cgroup_tree(parent: &str) -> Vec<String> {
    let mut leaks = Vec::new();
    let root = Path::new("/sys/fs/cgroup/pids").join(parent);
    let Ok(children) = fs::read_dir(&root) else {
        return leaks;
    };
    for child in children.flatten().filter(|e| e.path().is_dir()) {
        let procs = fs::read_to_string(child.path().join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            leaks.push(format!("process {pid} left in {}", child.path().display()));
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            wait_gone(pid, Instant::now() + Duration::from_secs(2));
        }
    }
    leaks
}

/// Removes the test's cgroup parent and its (shared) shim cgroup in every hierarchy; the
/// container's own cgroup must be gone already.
pub fn remove_cgroup_parent(parent: &str) -> Vec<String> {
    let mut leaks = Vec::new();
    for entry in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let p = entry.path().join(parent);
        if !p.exists() {
            continue;
        }
        let _ = fs::remove_dir(p.join("shims"));
        if let Ok(children) = fs::read_dir(&p) {
            for c in children.flatten().filter(|c| c.path().is_dir()) {
                leaks.push(format!("cgroup left: {}", c.path().display()));
                let _ = fs::remove_dir(c.path());
            }
        }
        if let Err(e) = fs::remove_dir(&p) {
            leaks.push(format!("cgroup left: {} ({e})", p.display()));
        }
    }
    leaks
}

pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

fn wait_gone(pid: i32, deadline: Instant) {
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Debian's static busybox with a symlink per applet.
pub fn make_rootfs(root: &Path) {
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "root"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", root.join("bin/busybox")).expect("needs Debian's busybox-static");
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = symlink("busybox", root.join("bin").join(applet));
        }
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
    )
    .unwrap();
    fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}

/// Docker's default capability set, as the spec builder applies it.
const DEFAULT_CAPS: &[&str] = berth_runtime::spec::DEFAULT_CAPS;

/// A Docker-like spec: default capabilities, namespaces and mounts, no seccomp.
pub fn default_spec(args: &[&str], cgroups_path: &str) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=test"],
            "cwd": "/",
            "capabilities": {
                "bounding": DEFAULT_CAPS, "effective": DEFAULT_CAPS, "permitted": DEFAULT_CAPS
            },
            "noNewPrivileges": false
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]}
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": {
                "devices": [
                    {"allow": false, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 136, "access": "rwm"}
                ]
            },
            "namespaces": [
                {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}
            ],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}
