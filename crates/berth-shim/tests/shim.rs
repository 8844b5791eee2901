//! The real `berth-shim` binary running busybox containers as root: output in the json log,
//! exit codes as Docker's, limits enforced, the control socket, attach and exec, and
//! nothing left behind (checked by the harness on drop).

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use berth_shim::{ErrorKind, ExecProcess, Request, Response, StartReply, Status};
use common::Harness;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(20);

/// Splits a Docker multiplexed stream into (stream, payload) frames.
fn demux(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while b.len() >= 8 {
        let len = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
        out.push((b[0], b[8..8 + len].to_vec()));
        b = &b[8 + len..];
    }
    assert!(b.is_empty(), "trailing bytes");
    out
}

fn read_to_end(s: &mut std::os::unix::net::UnixStream, mut buf: Vec<u8>) -> Vec<u8> {
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.read_to_end(&mut buf).unwrap();
    buf
}

#[test]
fn missing_executable_exits_127_and_leaves_nothing() {
    need_root!();
    let mut h = Harness::new(&["/no/such/thing"]);
    match h.start() {
        StartReply::Failed { exit_code, message } => {
            assert_eq!(exit_code, 127, "{message}");
            assert!(message.contains("not found"), "{message}");
        }
        r => panic!("started: {r:?}"),
    }
    let e = h.wait_exit(LIMIT);
    assert_eq!(e.exit_code, 127);
    assert!(e.error.is_some());
    assert!(!h.dir.join("shim.sock").exists() && !h.dir.join("shim.pid").exists());
    assert!(!h.dir.join("runtime").join(&h.id).exists());
}

#[test]
fn missing_bundle_fails_cleanly() {
    need_root!();
    let mut h = Harness::new(&["true"]);
    let mut o = h.options();
    o.bundle = h.dir.join("nope");
    // start_with writes config.json into the real bundle; the options point elsewhere.
    match h.start_with(&o) {
        StartReply::Failed { exit_code, message } => {
            assert_eq!(exit_code, 128, "{message}");
            assert!(message.contains("config.json"), "{message}");
        }
        r => panic!("started: {r:?}"),
    }
    h.wait_exit(LIMIT);
}

#[test]
fn echo_lands_in_json_log_and_exit_0() {
    need_root!();
    let mut h = Harness::new(&["echo", "hi"]);
    h.started();
    let e = h.wait_exit(LIMIT);
    assert_eq!((e.exit_code, e.signal, e.oom_killed), (0, None, false));
    assert!(e.started_at.is_some() && e.finished_at.ends_with('Z'));
    let log = h.log_entries();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        (log[0].log.as_str(), log[0].stream.as_str()),
        ("hi\n", "stdout")
    );
    let raw = std::fs::read_to_string(h.log_path()).unwrap();
    assert!(
        raw.starts_with(r#"{"log":"hi\n","stream":"stdout","time":""#),
        "{raw}"
    );
}

#[test]
fn exit_code_and_stderr() {
    need_root!();
    let mut h = Harness::new(&["sh", "-c", "echo oops >&2; exit 3"]);
    h.started();
    assert_eq!(h.wait_exit(LIMIT).exit_code, 3);
    let log = h.log_entries();
    assert_eq!(
        (log[0].log.as_str(), log[0].stream.as_str()),
        ("oops\n", "stderr")
    );
}

#[test]
fn memory_limit_oom_kills() {
    need_root!();
    let mut h = Harness::new(&[
        "sh",
        "-c",
        "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived",
    ]);
    h.spec["linux"]["resources"]["memory"] = json!({"limit": 16 << 20, "swap": 16 << 20});
    h.started();
    let e = h.wait_exit(LIMIT);
    assert!(e.oom_killed, "{e:?}");
    assert_eq!(e.exit_code, 137, "{e:?} log {:?}", h.log_text());
    assert!(!h.log_text().contains("survived"));
}

#[test]
fn pids_limit_stops_fork_bomb() {
    need_root!();
    let mut h = Harness::new(&[
        "sh",
        "-c",
        "(for i in $(seq 1 40); do sleep 60 & done); echo spawned; exec sleep 60",
    ]);
    h.spec["linux"]["resources"]["pids"] = json!({"limit": 10});
    h.started();
    h.wait_log("spawned", LIMIT);
    assert!(h.log_text().contains("can't fork"), "{}", h.log_text());
    let path = format!("/sys/fs/cgroup/pids/{}/{}/pids.current", h.parent, h.id);
    let current: u32 = std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(current <= 10, "{current}");
    assert_eq!(
        h.call(&Request::Kill {
            signal: 9,
            all: false
        }),
        Response::Ok
    );
    let e = h.wait_exit(LIMIT);
    assert_eq!((e.exit_code, e.signal), (137, Some(9)));
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
    h.started();
    assert_eq!(h.wait_exit(LIMIT).exit_code, 0);
    let text = h.log_text();
    assert!(
        text.contains("refused") && text.contains("33554432"),
        "{text}"
    );
}

#[test]
fn kill_wait_and_bad_requests_over_the_socket() {
    need_root!();
    let mut h = Harness::new(&["sleep", "100"]);
    let pid = h.started();
    let s = h.state();
    assert_eq!((s.status, s.pid, s.tty), (Status::Running, pid, false));
    assert!(s.exit.is_none());
    // Bad input first.
    for bad in [
        "garbage",
        "{}",
        r#"{"op":"kill","signal":0}"#,
        r#"{"op":"kill","signal":65}"#,
    ] {
        let r = raw_call(&h, bad);
        assert!(r.contains(r#""kind":"invalid_argument""#), "{bad}: {r}");
    }
    let mut c = h.client();
    assert!(matches!(
        c.call(&Request::Resize {
            width: 80,
            height: 24
        })
        .unwrap(),
        Response::Error {
            kind: ErrorKind::InvalidArgument,
            ..
        }
    ));
    assert!(matches!(
        c.call(&Request::Start).unwrap(),
        Response::Error {
            kind: ErrorKind::Conflict,
            ..
        }
    ));
    // A waiter on one connection, the kill on another.
    let (_, mut ws) = h.client().into_stream();
    ws.write_all(b"{\"op\":\"wait\"}\n").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        c.call(&Request::Kill {
            signal: 9,
            all: true
        })
        .unwrap(),
        Response::Ok
    );
    let mut line = String::new();
    ws.set_read_timeout(Some(LIMIT)).unwrap();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&mut ws), &mut line).unwrap();
    match serde_json::from_str::<Response>(&line).unwrap() {
        Response::Exit(e) => assert_eq!((e.exit_code, e.signal), (137, Some(9))),
        r => panic!("{r:?}"),
    }
    let e = h.wait_exit(LIMIT);
    assert_eq!(e.exit_code, 137);
    // After the exit, requests fail at connect: the record is exit.json.
    assert!(berth_shim::client::Client::connect(&h.dir.join("shim.sock")).is_err());
}

/// One raw line out, one line back.
fn raw_call(h: &Harness, line: &str) -> String {
    let (_, mut s) = h.client().into_stream();
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let mut r = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&mut s), &mut r).unwrap();
    r
}

#[test]
fn monitor_outlives_its_launcher_and_serves_a_second_client() {
    need_root!();
    let mut h = Harness::new(&["sleep", "100"]);
    h.started();
    let shim = h.shim_pid.unwrap();
    // The launcher (our child) has exited; the monitor is someone else's child now.
    let stat = std::fs::read_to_string(format!("/proc/{shim}/stat")).unwrap();
    let ppid: i32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(ppid, std::process::id() as i32);
    let sid: i32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(sid, shim, "own session");
    let cg = std::fs::read_to_string(format!("/proc/{shim}/cgroup")).unwrap();
    assert!(cg.contains(&format!("/{}/shims", h.parent)), "{cg}");
    let first = h.state();
    let second = h.state();
    assert_eq!(first, second);
    assert_eq!(
        h.call(&Request::Kill {
            signal: 9,
            all: false
        }),
        Response::Ok
    );
    assert_eq!(h.wait_exit(LIMIT).exit_code, 137);
    let again = berth_shim::client::Client::connect(&h.dir.join("shim.sock"));
    assert!(again.is_err(), "socket removed after exit");
}

#[test]
fn attach_before_start_and_stdin_once() {
    need_root!();
    let mut h = Harness::new(&["sh", "-c", "echo ready; cat; echo bye >&2"]);
    let mut o = h.options();
    o.defer_start = true;
    o.open_stdin = true;
    o.stdin_once = true;
    h.start_with(&o);
    assert_eq!(h.state().status, Status::Created);
    let mut a = h.client();
    assert_eq!(
        a.call(&Request::Attach {
            stdin: true,
            stdout: true,
            stderr: true
        })
        .unwrap(),
        Response::Ok
    );
    let (buffered, mut s) = a.into_stream();
    assert_eq!(h.call(&Request::Start), Response::Ok);
    s.write_all(b"hello\n").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let frames = demux(&read_to_end(&mut s, buffered));
    let out: Vec<(u8, &[u8])> = frames.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    let stdout: Vec<u8> = out
        .iter()
        .filter(|f| f.0 == 1)
        .flat_map(|f| f.1.to_vec())
        .collect();
    let stderr: Vec<u8> = out
        .iter()
        .filter(|f| f.0 == 2)
        .flat_map(|f| f.1.to_vec())
        .collect();
    assert_eq!(stdout, b"ready\nhello\n");
    assert_eq!(stderr, b"bye\n");
    assert_eq!(h.wait_exit(LIMIT).exit_code, 0);
    assert_eq!(h.log_text(), "ready\nhello\nbye\n");
}

#[test]
fn tty_output_is_raw() {
    need_root!();
    let mut h = Harness::new(&["sh", "-c", "read line; echo got:$line; tty"]);
    h.spec["process"]["terminal"] = json!(true);
    let mut o = h.options();
    o.defer_start = true;
    o.open_stdin = true;
    h.start_with(&o);
    let mut a = h.client();
    assert_eq!(
        a.call(&Request::Attach {
            stdin: true,
            stdout: true,
            stderr: true
        })
        .unwrap(),
        Response::Ok
    );
    let (buffered, mut s) = a.into_stream();
    assert_eq!(
        h.call(&Request::Resize {
            width: 100,
            height: 40
        }),
        Response::Ok
    );
    assert_eq!(h.call(&Request::Start), Response::Ok);
    s.write_all(b"x\n").unwrap();
    let out = String::from_utf8_lossy(&read_to_end(&mut s, buffered)).into_owned();
    assert!(
        out.contains("got:x\r\n") && out.contains("/dev/pts/0"),
        "{out:?}"
    );
    assert_eq!(h.wait_exit(LIMIT).exit_code, 0);
}

#[test]
fn exec_runs_in_the_container() {
    need_root!();
    let mut h = Harness::new(&["sleep", "100"]);
    h.started();
    let process = ExecProcess {
        args: vec![
            "sh".into(),
            "-c".into(),
            "hostname; echo err >&2; exit 5".into(),
        ],
        ..Default::default()
    };
    let bad = h.call(&Request::Exec {
        exec_id: "../x".into(),
        process: process.clone(),
        attach: false,
    });
    assert!(matches!(
        bad,
        Response::Error {
            kind: ErrorKind::InvalidArgument,
            ..
        }
    ));
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", h.shim_pid.unwrap()))
            .unwrap()
            .count()
    };
    std::thread::sleep(Duration::from_millis(50));
    let fds_before = fds();
    let mut c = h.client();
    let r = c
        .call(&Request::Exec {
            exec_id: "e1".into(),
            process: process.clone(),
            attach: true,
        })
        .unwrap();
    assert!(matches!(r, Response::ExecStarted { .. }), "{r:?}");
    let (buffered, mut s) = c.into_stream();
    let frames = demux(&read_to_end(&mut s, buffered));
    assert!(
        frames.contains(&(1, b"test\n".to_vec())) && frames.contains(&(2, b"err\n".to_vec())),
        "{frames:?}"
    );
    let deadline = Instant::now() + LIMIT;
    loop {
        match h.call(&Request::ExecState {
            exec_id: "e1".into(),
        }) {
            Response::Exec(e) if !e.running => {
                assert_eq!(e.exit_code, Some(5));
                break;
            }
            r => assert!(Instant::now() < deadline, "{r:?}"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Exec descriptors (pipes, pidfd) are released once it is done; our connections close.
    let deadline = Instant::now() + LIMIT;
    while fds() > fds_before {
        assert!(
            Instant::now() < deadline,
            "shim holds {} fds, had {fds_before}",
            fds()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let dup = h.call(&Request::Exec {
        exec_id: "e1".into(),
        process,
        attach: false,
    });
    assert!(matches!(
        dup,
        Response::Error {
            kind: ErrorKind::Conflict,
            ..
        }
    ));
    assert!(matches!(
        h.call(&Request::ExecState {
            exec_id: "nope".into()
        }),
        Response::Error {
            kind: ErrorKind::NotFound,
            ..
        }
    ));
    assert_eq!(
        h.call(&Request::Kill {
            signal: 9,
            all: false
        }),
        Response::Ok
    );
    h.wait_exit(LIMIT);
    assert!(h.log_text().is_empty(), "exec output is not logged");
}

/// Not a check: prints what `true` costs through the shim (launch to exit record and
/// monitor gone) and what idle monitors hold
/// (`cargo test --release -p berth-shim --test shim -- --nocapture --test-threads 1 measure`).
#[test]
fn measure_true_and_idle_rss() {
    need_root!();
    let mut times = Vec::new();
    for _ in 0..11 {
        let mut h = Harness::new(&["true"]);
        let t = Instant::now();
        h.started();
        h.wait_exit(LIMIT);
        times.push(t.elapsed());
    }
    times.sort();
    eprintln!(
        "true through berth-shim: median {:?} (min {:?}, max {:?})",
        times[5], times[0], times[10]
    );
    let mut shims: Vec<Harness> = (0..3).map(|_| Harness::new(&["sleep", "100"])).collect();
    for h in shims.iter_mut() {
        h.started();
    }
    std::thread::sleep(Duration::from_millis(100));
    for h in &shims {
        let rollup =
            std::fs::read_to_string(format!("/proc/{}/smaps_rollup", h.shim_pid.unwrap())).unwrap();
        let kb = |k: &str| -> u64 {
            rollup
                .lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        eprintln!(
            "idle shim (1 of 3): Rss {} kB, Pss {} kB, Private_Dirty {} kB, Private_Clean {} kB",
            kb("Rss:"),
            kb("Pss:"),
            kb("Private_Dirty:"),
            kb("Private_Clean:")
        );
    }
    for h in &shims {
        assert_eq!(
            h.call(&Request::Kill {
                signal: 9,
                all: false
            }),
            Response::Ok
        );
        h.wait_exit(LIMIT);
    }
}

/// The freezer file of the harness's container (cgroup v1; `None` elsewhere).
fn freezer_state(h: &Harness) -> Option<String> {
    let p = format!("/sys/fs/cgroup/freezer/{}/{}/freezer.state", h.parent, h.id);
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

#[test]
fn pause_resume_exec_wait_and_kill_while_paused() {
    need_root!();
    let mut h = Harness::new(&["sleep", "100"]);
    h.started();
    assert!(matches!(
        h.call(&Request::Resume),
        Response::Error {
            kind: ErrorKind::Conflict,
            ..
        }
    ));
    // An exec that ends on its own: ExecWait answers with its exit code.
    let process = ExecProcess {
        args: vec!["sh".into(), "-c".into(), "sleep 0.2; exit 3".into()],
        ..Default::default()
    };
    let r = h.call(&Request::Exec {
        exec_id: "w1".into(),
        process,
        attach: false,
    });
    assert!(matches!(r, Response::ExecStarted { .. }), "{r:?}");
    match h.call(&Request::ExecWait {
        exec_id: "w1".into(),
    }) {
        Response::Exec(e) => assert_eq!((e.running, e.exit_code), (false, Some(3))),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.call(&Request::Pause), Response::Ok);
    assert_eq!(h.state().status, Status::Paused);
    if let Some(s) = freezer_state(&h) {
        assert_eq!(s, "FROZEN");
    }
    assert!(matches!(
        h.call(&Request::Pause),
        Response::Error {
            kind: ErrorKind::Conflict,
            ..
        }
    ));
    let sleeper = ExecProcess {
        args: vec!["true".into()],
        ..Default::default()
    };
    assert!(matches!(
        h.call(&Request::Exec {
            exec_id: "p1".into(),
            process: sleeper,
            attach: false,
        }),
        Response::Error {
            kind: ErrorKind::Conflict,
            ..
        }
    ));
    assert_eq!(h.call(&Request::Resume), Response::Ok);
    assert_eq!(h.state().status, Status::Running);
    if let Some(s) = freezer_state(&h) {
        assert_eq!(s, "THAWED");
    }
    // SIGKILL to a paused container thaws it, so it dies.
    assert_eq!(h.call(&Request::Pause), Response::Ok);
    assert_eq!(
        h.call(&Request::Kill {
            signal: 9,
            all: false
        }),
        Response::Ok
    );
    assert_eq!(h.wait_exit(LIMIT).exit_code, 137);
}
