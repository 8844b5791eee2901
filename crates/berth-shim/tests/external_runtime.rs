//! The shim's second backend: the same container requests served with runc (the binary
//! on `PATH`, as Debian's `runc` package installs it) doing create/start/exec/pause, and
//! nothing left behind (the harness checks on drop; here also runc's state).

mod common;

use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_shim::{ExecProcess, ExternalRuntime, Request, Response, StartReply, Status};
use common::Harness;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(30);

fn runc() -> ExternalRuntime {
    let path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join("runc"))
        .find(|p| p.is_file())
        .expect("these tests need runc (apt-get install runc)");
    ExternalRuntime {
        name: "runc".into(),
        path,
        args: vec![],
    }
}

fn start(h: &mut Harness, rt: ExternalRuntime) -> StartReply {
    let mut o = h.options();
    o.runtime = Some(rt);
    h.start_with(&o)
}

fn started(h: &mut Harness) -> i32 {
    match start(h, runc()) {
        StartReply::Started { pid, .. } => pid,
        StartReply::Failed { message, .. } => panic!("start failed: {message}\n{}", h.shim_log()),
    }
}

/// Nothing of runc's is left once the monitor is done.
fn assert_no_runc_state(h: &Harness) {
    let root = h.dir.join("runtime");
    assert!(!root.join(&h.id).exists(), "runc state left in {root:?}");
}

#[test]
fn echo_exit_code_and_log() {
    need_root!();
    let mut h = Harness::new(&["sh", "-c", "echo hi; echo oops >&2; exit 3"]);
    started(&mut h);
    let e = h.wait_exit(LIMIT);
    assert_eq!((e.exit_code, e.signal, e.oom_killed), (3, None, false));
    let log = h.log_entries();
    let got: Vec<_> = log
        .iter()
        .map(|l| (l.log.as_str(), l.stream.as_str()))
        .collect();
    assert!(got.contains(&("hi\n", "stdout")) && got.contains(&("oops\n", "stderr")));
    assert_eq!(got.len(), 2, "{got:?}");
    assert_no_runc_state(&h);
}

#[test]
fn missing_executable_exits_127_with_runcs_words() {
    need_root!();
    let mut h = Harness::new(&["/no/such/thing"]);
    match start(&mut h, runc()) {
        StartReply::Failed { exit_code, message } => {
            assert_eq!(exit_code, 127, "{message}");
            assert!(
                message.contains("/no/such/thing") && message.contains("no such file"),
                "{message}"
            );
        }
        r => panic!("started: {r:?}"),
    }
    let e = h.wait_exit(LIMIT);
    assert_eq!(e.exit_code, 127);
    assert!(!h.dir.join("shim.sock").exists());
    assert_no_runc_state(&h);
}

#[test]
fn a_missing_runtime_binary_exits_127() {
    need_root!();
    let mut h = Harness::new(&["true"]);
    let rt = ExternalRuntime {
        name: "vm".into(),
        path: "/nonexistent/vm-manager".into(),
        args: vec![],
    };
    match start(&mut h, rt) {
        StartReply::Failed { exit_code, message } => {
            assert_eq!(exit_code, 127, "{message}");
            assert!(
                message.contains("/nonexistent/vm-manager: no such file or directory"),
                "{message}"
            );
        }
        r => panic!("started: {r:?}"),
    }
    h.wait_exit(LIMIT);
}

#[test]
fn runtime_args_come_first() {
    need_root!();
    let mut h = Harness::new(&["echo", "debugged"]);
    let mut rt = runc();
    rt.args = vec!["--debug".into()];
    assert!(matches!(start(&mut h, rt), StartReply::Started { .. }));
    assert_eq!(h.wait_exit(LIMIT).exit_code, 0);
    assert_eq!(h.log_text(), "debugged\n");
    // --debug makes runc log at debug level into its json log.
    let log = std::fs::read_to_string(h.dir.join("runtime.log")).unwrap();
    assert!(log.contains(r#""level":"debug""#), "{log}");
}

#[test]
fn cgroup_files_are_read_only_inside() {
    need_root!();
    let mut h = Harness::new(&[
        "sh",
        "-c",
        "echo 999999999 > /sys/fs/cgroup/memory/memory.limit_in_bytes || echo refused; \
         cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]);
    h.spec["linux"]["resources"]["memory"] = json!({"limit": 32 << 20});
    started(&mut h);
    assert_eq!(h.wait_exit(LIMIT).exit_code, 0);
    let text = h.log_text();
    assert!(
        text.contains("refused") && text.contains("33554432"),
        "{text}"
    );
}

#[test]
fn exec_pause_resume_and_kill() {
    need_root!();
    let mut h = Harness::new(&["sleep", "100"]);
    let pid = started(&mut h);
    assert_eq!(h.state().pid, pid);
    // An attached exec: its output comes back framed, its exit code through ExecWait.
    let mut c = h.client();
    let r = c
        .call(&Request::Exec {
            exec_id: "e1".into(),
            process: ExecProcess {
                args: vec!["sh".into(), "-c".into(), "hostname; exit 5".into()],
                ..Default::default()
            },
            attach: true,
        })
        .unwrap();
    assert!(matches!(r, Response::ExecStarted { .. }), "{r:?}");
    let (mut buffered, mut s) = c.into_stream();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.read_to_end(&mut buffered).unwrap();
    assert_eq!(&buffered[8..], b"test\n", "{buffered:?}");
    match h.call(&Request::ExecWait {
        exec_id: "e1".into(),
    }) {
        Response::Exec(e) => assert_eq!((e.running, e.exit_code), (false, Some(5))),
        other => panic!("{other:?}"),
    }
    // A tty exec.
    let mut c = h.client();
    let r = c
        .call(&Request::Exec {
            exec_id: "t1".into(),
            process: ExecProcess {
                args: vec!["tty".into()],
                tty: true,
                ..Default::default()
            },
            attach: true,
        })
        .unwrap();
    assert!(matches!(r, Response::ExecStarted { .. }), "{r:?}");
    let (mut buffered, mut s) = c.into_stream();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.read_to_end(&mut buffered).unwrap();
    let out = String::from_utf8_lossy(&buffered);
    assert!(out.starts_with("/dev/pts/"), "{out:?}");
    // A missing executable: runc's reason, without its own prefix.
    match h.call(&Request::Exec {
        exec_id: "n1".into(),
        process: ExecProcess {
            args: vec!["nosuchcmd".into()],
            ..Default::default()
        },
        attach: false,
    }) {
        Response::Error { message, .. } => {
            assert!(
                message.starts_with("exec: \"nosuchcmd\": executable file not found"),
                "{message}"
            );
            assert_eq!(berth_shim::start_failure_exit_code(&message), 127);
        }
        other => panic!("{other:?}"),
    }
    // Pause and resume through runc.
    assert_eq!(h.call(&Request::Pause), Response::Ok);
    assert_eq!(h.state().status, Status::Paused);
    let freezer = format!("/sys/fs/cgroup/freezer/{}/{}/freezer.state", h.parent, h.id);
    assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "FROZEN");
    assert_eq!(h.call(&Request::Resume), Response::Ok);
    assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "THAWED");
    // SIGKILL while paused thaws it, so it dies.
    assert_eq!(h.call(&Request::Pause), Response::Ok);
    assert_eq!(
        h.call(&Request::Kill {
            signal: 9,
            all: false
        }),
        Response::Ok
    );
    let e = h.wait_exit(LIMIT);
    assert_eq!((e.exit_code, e.signal), (137, Some(9)));
    assert_no_runc_state(&h);
}

#[test]
fn deferred_start_and_kill_all() {
    need_root!();
    let mut h = Harness::new(&["sh", "-c", "sleep 100 & sleep 100"]);
    let mut o = h.options();
    o.runtime = Some(runc());
    o.defer_start = true;
    assert!(matches!(h.start_with(&o), StartReply::Started { .. }));
    assert_eq!(h.state().status, Status::Created);
    assert_eq!(h.call(&Request::Start), Response::Ok);
    assert_eq!(h.state().status, Status::Running);
    // Both sleeps run (sh execs the last one) before the kill reaches every process of
    // the cgroup.
    let procs = format!("/sys/fs/cgroup/pids/{}/{}/cgroup.procs", h.parent, h.id);
    let deadline = Instant::now() + LIMIT;
    while std::fs::read_to_string(&procs)
        .unwrap_or_default()
        .lines()
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "the sleeps did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        h.call(&Request::Kill {
            signal: 9,
            all: true
        }),
        Response::Ok
    );
    assert_eq!(h.wait_exit(LIMIT).exit_code, 137);
    assert_no_runc_state(&h);
}

/// One request on a connection of its own, sent now; its answer is read later, within
/// [`LIMIT`] (a shim that stopped serving fails the read instead of hanging the test).
struct Pending(std::io::BufReader<std::os::unix::net::UnixStream>);

impl Pending {
    fn send(h: &Harness, req: &Request) -> Pending {
        use std::io::Write;
        let mut s = std::os::unix::net::UnixStream::connect(h.dir.join("shim.sock")).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        let mut line = serde_json::to_vec(req).unwrap();
        line.push(b'\n');
        s.write_all(&line).unwrap();
        Pending(std::io::BufReader::new(s))
    }

    /// The answer; `None` when the shim closed the connection without one.
    fn answer(mut self) -> Option<Response> {
        let mut line = String::new();
        match std::io::BufRead::read_line(&mut self.0, &mut line) {
            Ok(0) => None,
            Ok(_) => Some(serde_json::from_str(&line).unwrap()),
            Err(e) => panic!("no answer within {LIMIT:?}: {e}"),
        }
    }
}

fn true_exec(id: &str) -> Request {
    Request::Exec {
        exec_id: id.into(),
        process: ExecProcess {
            args: vec!["true".into()],
            ..Default::default()
        },
        attach: false,
    }
}

/// Opens the FIFO for writing once a reader (runc, looking the user up) has it open, and
/// closes it: the reader sees an empty file.
fn release_fifo(path: &std::path::Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let deadline = Instant::now() + LIMIT;
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(_) => return,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                assert!(Instant::now() < deadline, "nobody opened {path:?}");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("{path:?}: {e}"),
        }
    }
}

/// runc opens the container's `/etc/passwd` for every exec: a FIFO there blocks
/// `runc exec`. The shim answers other requests meanwhile, starts the exec once runc goes
/// on, and a kill ends the container with an exec still stuck (no runc process left:
/// the harness checks the cgroups).
#[test]
fn a_stuck_runc_exec_does_not_stop_the_shim() {
    need_root!();
    let mut h = Harness::new(&["sleep", "100"]);
    started(&mut h);
    let passwd = h.bundle.join("rootfs/etc/passwd");
    std::fs::remove_file(&passwd).unwrap();
    nix::unistd::mkfifo(&passwd, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let stuck = Pending::send(&h, &true_exec("s1"));
    // Served while s1 waits for runc.
    let state = Pending::send(&h, &Request::State).answer();
    assert!(
        matches!(&state, Some(Response::State(s)) if s.status == Status::Running),
        "{state:?}"
    );
    let dup = Pending::send(&h, &true_exec("s1")).answer();
    assert!(
        matches!(&dup, Some(Response::Error { message, .. }) if message == "exec s1 exists"),
        "{dup:?}"
    );
    // runc goes on: the exec starts and is answered.
    release_fifo(&passwd);
    let started = stuck.answer();
    assert!(
        matches!(started, Some(Response::ExecStarted { .. })),
        "{started:?}"
    );
    match Pending::send(
        &h,
        &Request::ExecWait {
            exec_id: "s1".into(),
        },
    )
    .answer()
    {
        Some(Response::Exec(e)) => assert_eq!((e.running, e.exit_code), (false, Some(0))),
        other => panic!("{other:?}"),
    }
    // Another one stuck; the container is killed under it.
    let stuck = Pending::send(&h, &true_exec("s2"));
    // Stuck: a process of the container's cgroup waits for a writer on the FIFO.
    let procs = format!("/sys/fs/cgroup/pids/{}/{}/cgroup.procs", h.parent, h.id);
    let deadline = Instant::now() + LIMIT;
    while !std::fs::read_to_string(&procs)
        .unwrap_or_default()
        .lines()
        .any(|p| {
            std::fs::read_to_string(format!("/proc/{p}/wchan"))
                .is_ok_and(|w| w == "wait_for_partner")
        })
    {
        assert!(Instant::now() < deadline, "runc did not block on the FIFO");
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed = Pending::send(
        &h,
        &Request::Kill {
            signal: 9,
            all: false,
        },
    )
    .answer();
    assert_eq!(killed, Some(Response::Ok));
    // Answered either way: runc fails, or (its init killed before it reported an error)
    // it says the process started, and that process is gone with the container.
    match stuck.answer() {
        Some(Response::Error { message, .. }) => assert!(!message.is_empty()),
        Some(Response::ExecStarted { .. }) | None => {}
        other => panic!("{other:?}"),
    }
    let e = h.wait_exit(LIMIT);
    assert_eq!((e.exit_code, e.signal), (137, Some(9)));
    assert_no_runc_state(&h);
}

/// runc but for `step`, where it hangs (a shell script run by `/bin/sh`, so no ETXTBSY
/// from a fork elsewhere in the tests); the shim's bound on a runtime command is `secs`.
fn hang_on(h: &mut Harness, step: &str, secs: u32) -> ExternalRuntime {
    let script = h.tmp.path().join(format!("hang-{step}"));
    std::fs::write(
        &script,
        format!(
            "for a in \"$@\"; do [ \"$a\" = {step} ] && exec sleep 1000; done\nexec {} \"$@\"\n",
            runc().path.display()
        ),
    )
    .unwrap();
    h.env = vec![("BERTH_SHIM_RUNTIME_TIMEOUT".into(), secs.to_string())];
    ExternalRuntime {
        name: "hang".into(),
        path: "/bin/sh".into(),
        args: vec![script.to_string_lossy().into_owned()],
    }
}

/// A runtime whose `pause` never returns: the shim serves state and exec meanwhile,
/// refuses a second state change, and fails the pause past its bound, the runtime's
/// command killed; the container runs on.
#[test]
fn a_hung_runtime_pause_is_bounded() {
    need_root!();
    let mut h = Harness::new(&["sleep", "100"]);
    let rt = hang_on(&mut h, "pause", 10);
    assert!(
        matches!(start(&mut h, rt), StartReply::Started { .. }),
        "{}",
        h.shim_log()
    );
    let pause = Pending::send(&h, &Request::Pause);
    // The pause is pending for 10 s: another state change is refused, other requests
    // are served.
    match Pending::send(&h, &Request::Pause).answer() {
        Some(Response::Error { kind, message }) => {
            assert_eq!(kind, berth_shim::ErrorKind::Conflict);
            assert_eq!(
                message,
                "another runtime command is in progress: hang pause"
            );
        }
        other => panic!("{other:?}"),
    }
    let state = Pending::send(&h, &Request::State).answer();
    assert!(
        matches!(&state, Some(Response::State(s)) if s.status == Status::Running),
        "{state:?}"
    );
    assert!(matches!(
        Pending::send(&h, &true_exec("e1")).answer(),
        Some(Response::ExecStarted { .. })
    ));
    match pause.answer() {
        Some(Response::Error { message, .. }) => {
            assert_eq!(
                message,
                "pause: hang pause did not finish within 10s: killed"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.state().status, Status::Running);
    assert_eq!(
        h.call(&Request::Kill {
            signal: 9,
            all: false
        }),
        Response::Ok
    );
    assert_eq!(h.wait_exit(LIMIT).exit_code, 137);
    assert_no_runc_state(&h);
}

/// A runtime whose `create` never returns: the start fails past the bound, naming the
/// runtime and the step, and nothing is left (the harness checks processes and cgroups).
#[test]
fn a_hung_runtime_create_fails_the_start() {
    need_root!();
    let mut h = Harness::new(&["true"]);
    let rt = hang_on(&mut h, "create", 2);
    match start(&mut h, rt) {
        StartReply::Failed { message, .. } => {
            assert_eq!(message, "hang create did not finish within 2s: killed")
        }
        r => panic!("started: {r:?}"),
    }
    h.wait_exit(LIMIT);
    assert_no_runc_state(&h);
}

/// A runtime whose `start` returns only after the container's process has ended (a
/// short command on a loaded host): the start still succeeds and the exit is the
/// process's own (the command was once killed when init was reaped first: "runc start
/// failed: signal: 9").
#[test]
fn a_start_that_returns_after_the_process_ended() {
    need_root!();
    let mut h = Harness::new(&["sh", "-c", "exit 3"]);
    let procs = format!("/sys/fs/cgroup/pids/{}/{}/cgroup.procs", h.parent, h.id);
    let script = h.tmp.path().join("slow-start");
    std::fs::write(
        &script,
        format!(
            "for a in \"$@\"; do if [ \"$a\" = start ]; then\n\
             {runc} \"$@\" || exit $?\n\
             n=0; while [ -s {procs} ] && [ $n -lt 1000 ]; do sleep 0.01; n=$((n+1)); done\n\
             sleep 0.5; exit 0\n\
             fi; done\nexec {runc} \"$@\"\n",
            runc = runc().path.display()
        ),
    )
    .unwrap();
    let mut o = h.options();
    o.runtime = Some(ExternalRuntime {
        name: "slow".into(),
        path: "/bin/sh".into(),
        args: vec![script.to_string_lossy().into_owned()],
    });
    o.defer_start = true;
    assert!(matches!(h.start_with(&o), StartReply::Started { .. }));
    assert_eq!(h.call(&Request::Start), Response::Ok, "{}", h.shim_log());
    let e = h.wait_exit(LIMIT);
    assert_eq!((e.exit_code, e.signal), (3, None));
    assert!(e.started_at.is_some());
    assert_no_runc_state(&h);
}
