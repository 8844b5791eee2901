//! End to end through `berth-runtime`: the spec builder's Docker defaults (default seccomp
//! profile, capabilities, masked paths) run by this shim through `ShimRuntime`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use berth_runtime::spec::{build_spec, ContainerSpecInput, Resources};
use berth_runtime::{AttachStreams, ContainerStart, ErrorKind, RuntimeError, ShimRuntime};
use berth_shim::{ExecProcess, LogOptions, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct World {
    tmp: tempfile::TempDir,
    parent: String,
    rt: ShimRuntime,
}

impl World {
    fn new(tag: &str) -> World {
        let tmp = tempfile::Builder::new()
            .prefix("berth-runtime-test")
            .tempdir()
            .unwrap();
        common::make_rootfs(&tmp.path().join("rootfs"));
        let parent = format!("berth-test-{}-rt-{tag}", std::process::id());
        let rt = ShimRuntime::new(env!("CARGO_BIN_EXE_berth-shim"), tmp.path().join("exec"))
            .with_shim_cgroup(format!("/{parent}/shims"));
        World { tmp, parent, rt }
    }

    fn input(&self, id: &str, args: &[&str]) -> ContainerSpecInput {
        ContainerSpecInput {
            id: id.into(),
            rootfs: self.tmp.path().join("rootfs"),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["PATH=/usr/bin:/bin".into()],
            hostname: id.into(),
            cgroups_path: format!("/{}/{id}", self.parent),
            seccomp: true,
            ..Default::default()
        }
    }

    fn start(&self, input: &ContainerSpecInput) -> ContainerStart {
        ContainerStart {
            id: input.id.clone(),
            spec: build_spec(input).unwrap(),
            log: Some(LogOptions {
                path: self.log(&input.id),
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
            runtime: None,
        }
    }

    fn log(&self, id: &str) -> std::path::PathBuf {
        self.tmp.path().join(format!("{id}-json.log"))
    }

    fn log_text(&self, id: &str) -> String {
        std::fs::read_to_string(self.log(id))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<berth_shim::LogEntry>(l).unwrap().log)
            .collect()
    }

    async fn run(&self, input: &ContainerSpecInput) -> (i32, String) {
        self.rt.create(self.start(input)).await.unwrap();
        let exit = self.rt.wait(&input.id).await.unwrap();
        wait_socket_gone(&self.rt.dir(&input.id)).await;
        self.rt.delete(&input.id).await.unwrap();
        (exit.exit_code, self.log_text(&input.id))
    }
}

/// The stdout payload of complete multiplexed frames (stream 1), in order.
fn stdout_of(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while b.len() >= 8 {
        let len = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
        if b.len() < 8 + len {
            break;
        }
        assert_eq!(&b[1..4], &[0, 0, 0], "frame header");
        if b[0] == 1 {
            out.extend_from_slice(&b[8..8 + len]);
        }
        b = &b[8 + len..];
    }
    out
}

async fn wait_socket_gone(dir: &Path) {
    for _ in 0..2000 {
        if !dir.join("shim.sock").exists() && !dir.join("shim.pid").exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("shim did not finish");
}

impl Drop for World {
    fn drop(&mut self) {
        let mut leaks = common::kill_cgroup_tree(&self.parent);
        let tmp = self.tmp.path().to_string_lossy().into_owned();
        for l in std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&tmp))
        {
            leaks.push(format!("mount left: {l}"));
        }
        leaks.extend(common::remove_cgroup_parent(&self.parent));
        if !leaks.is_empty() && !std::thread::panicking() {
            panic!("leaks:\n{}", leaks.join("\n"));
        }
    }
}

#[tokio::test]
async fn docker_defaults_run_and_seccomp_bites() {
    need_root!();
    let w = World::new("seccomp");
    // Creating a user namespace needs no capability, so only seccomp stops it.
    let probe = [
        "sh",
        "-c",
        "unshare -U true && echo allowed || echo denied; cat /proc/self/status | grep Seccomp:",
    ];
    let mut open = w.input("open", &probe);
    open.seccomp = false;
    let (code, log) = w.run(&open).await;
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("allowed") && log.contains("Seccomp:\t0"),
        "{log}"
    );

    let (code, log) = w.run(&w.input("confined", &probe)).await;
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("Operation not permitted") && log.contains("denied"),
        "{log}"
    );
    assert!(log.contains("Seccomp:\t2"), "{log}");

    let script = "wc -c < /proc/keys; hostname; (echo x > /proc/sys/kernel/domainname) 2>/dev/null || echo ro";
    let (code, log) = w.run(&w.input("masked", &["sh", "-c", script])).await;
    assert_eq!(code, 0);
    assert_eq!(log, "0\nmasked\nro\n");
}

#[tokio::test]
async fn lifecycle_through_the_runtime_trait() {
    need_root!();
    let w = World::new("life");
    let mut input = w.input(
        "life",
        &["sh", "-c", "echo started; read x; echo got:$x; sleep 100"],
    );
    input.resources = Resources {
        memory: Some(64 << 20),
        pids_limit: Some(50),
        ..Default::default()
    };
    input.sysctls = BTreeMap::from([("net.ipv4.ip_forward".to_string(), "1".to_string())]);
    let mut start = w.start(&input);
    start.open_stdin = true;
    start.defer_start = true;
    let started = w.rt.create(start.clone()).await.unwrap();
    assert!(started.pid > 0 && started.shim_pid > 0);
    // A second create of the same id is a conflict.
    assert_eq!(
        w.rt.create(start).await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
    assert_eq!(w.rt.state("life").await.unwrap().status, Status::Created);
    assert_eq!(w.rt.list().await.unwrap(), vec!["life".to_string()]);

    let mut att =
        w.rt.attach(
            "life",
            AttachStreams {
                stdin: true,
                stdout: true,
                stderr: true,
            },
        )
        .await
        .unwrap();
    w.rt.start("life").await.unwrap();
    att.write_all(b"hello\n").await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&stdout_of(&got)).contains("got:hello") {
        let n = tokio::time::timeout(Duration::from_secs(10), att.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "stream closed early: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(stdout_of(&got), b"started\ngot:hello\n");

    let (pid, stream) =
        w.rt.exec(
            "life",
            "x1",
            ExecProcess {
                args: vec!["cat".into(), "/proc/sys/net/ipv4/ip_forward".into()],
                ..Default::default()
            },
            true,
        )
        .await
        .unwrap();
    assert!(pid > 0);
    let mut out = Vec::new();
    stream.unwrap().read_to_end(&mut out).await.unwrap();
    assert_eq!(out, [&[1u8, 0, 0, 0, 0, 0, 0, 2][..], b"1\n"].concat());
    let mut done = w.rt.exec_state("life", "x1").await.unwrap();
    for _ in 0..200 {
        if !done.running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        done = w.rt.exec_state("life", "x1").await.unwrap();
    }
    assert_eq!(done.exit_code, Some(0));

    // An exec'd process runs under the container's seccomp filter (libcontainer's tenant
    // builder leaves it out of the spec; the shim's executor loads it).
    let (_, stream) =
        w.rt.exec(
            "life",
            "x2",
            ExecProcess {
                args: vec!["cat".into(), "/proc/self/status".into()],
                ..Default::default()
            },
            true,
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    stream.unwrap().read_to_end(&mut out).await.unwrap();
    let status = String::from_utf8_lossy(&stdout_of(&out)).into_owned();
    assert!(status.contains("Seccomp:\t2"), "{status}");

    assert_eq!(
        w.rt.delete("life").await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
    assert!(matches!(
        w.rt.kill("life", 0, false).await,
        Err(RuntimeError::InvalidArgument(_))
    ));
    let waiter = {
        let rt = w.rt.clone();
        tokio::spawn(async move { rt.wait("life").await })
    };
    w.rt.kill("life", 9, false).await.unwrap();
    let exit = waiter.await.unwrap().unwrap();
    assert_eq!(
        (exit.exit_code, exit.signal, exit.oom_killed),
        (137, Some(9), false)
    );
    wait_socket_gone(&w.rt.dir("life")).await;
    let s = w.rt.state("life").await.unwrap();
    assert_eq!(
        (s.status, s.exit.unwrap().exit_code),
        (Status::Stopped, 137)
    );
    assert_eq!(
        w.rt.kill("life", 9, false).await.unwrap_err().kind(),
        ErrorKind::NotRunning
    );
    assert_eq!(w.rt.wait("life").await.unwrap().exit_code, 137);
    w.rt.delete("life").await.unwrap();
    assert!(w.rt.list().await.unwrap().is_empty());
    assert_eq!(w.log_text("life"), "started\ngot:hello\n");
}

#[tokio::test]
async fn start_failure_is_127_with_nothing_left() {
    need_root!();
    let w = World::new("fail");
    let err =
        w.rt.create(w.start(&w.input("fail", &["nope"])))
            .await
            .unwrap_err();
    match &err {
        RuntimeError::StartFailed {
            exit_code: 127,
            message,
        } => assert!(message.contains("nope"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(w.rt.wait("fail").await.unwrap().exit_code, 127);
    w.rt.delete("fail").await.unwrap();
}

/// Not a check: create + wait + delete of `true` through `ShimRuntime` with Docker's
/// defaults, with and without the default seccomp profile (run with `--release
/// --nocapture`).
#[tokio::test]
async fn measure_true_through_the_runtime() {
    need_root!();
    let w = World::new("measure");
    for seccomp in [false, true] {
        let mut times = Vec::new();
        for n in 0..11 {
            let mut input = w.input(&format!("m{seccomp}{n}"), &["true"]);
            input.seccomp = seccomp;
            let t = std::time::Instant::now();
            let (code, _) = w.run(&input).await;
            times.push(t.elapsed());
            assert_eq!(code, 0);
        }
        times.sort();
        eprintln!(
            "runtime create+wait+delete of true, seccomp {seccomp}: median {:?} (min {:?})",
            times[5], times[0]
        );
    }
}
