//! Bringing a container (or an exec process) up: bundle fix-ups, stdio, create and start
//! through the backend (libcontainer or an external runtime), the pidfd. A failure leaves
//! nothing running and no cgroup behind.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::net::UnixListener;
use std::time::{Instant, SystemTime};

use berth_shim::timefmt::rfc3339_nano;
use berth_shim::{start_failure_exit_code, ExecProcess, Status, PID_FILE, SOCKET_NAME};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{Capabilities, Capability, Process, Spec, UserBuilder};

use super::cgroups::{self, Layout};
use super::container::{self, Backend, ChildStdio, ExecStarted};
use super::logwriter::LogWriter;
use super::oci_cli::OciCli;
use super::pending::PendingExec;
use super::process::Proc;
use super::state::Monitor;
use super::stdio::Held;
use super::{stdio, sys};

/// Why nothing runs, with Docker's exit code for it.
pub struct Failure {
    pub message: String,
    pub exit_code: i32,
}

fn fail(message: impl Into<String>) -> Failure {
    let message = message.into();
    Failure {
        exit_code: start_failure_exit_code(&message),
        message,
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure {
        message: format!("{what}: {e}"),
        exit_code: 128,
    }
}

/// How long each set-up step took, logged as one `debug` line in `shim.log` (the daemon
/// asks for debug with `BERTH_LOG=berth_shim=debug`): where the start time goes.
struct Steps {
    last: Instant,
    line: String,
}

impl Steps {
    fn new() -> Steps {
        Steps {
            last: Instant::now(),
            line: String::new(),
        }
    }

    fn mark(&mut self, name: &str) {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let now = Instant::now();
        let us = now.saturating_duration_since(self.last).as_micros();
        let _ = write!(self.line, "{name}={}.{:03}ms ", us / 1000, us % 1000);
        self.last = now;
    }
}

impl Drop for Steps {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            tracing::debug!(steps = %self.line.trim_end(), "shim start steps");
        }
    }
}

/// Creates (and unless deferred starts) the container; the caller then runs the loop.
pub fn start(opts: &berth_shim::StartOptions, layout: Layout) -> Result<Monitor, Failure> {
    let mut steps = Steps::new();
    let dir = &opts.dir;
    // Whole or absent for a daemon that restarts meanwhile; not fsynced (the process it
    // names does not outlive the machine).
    berth_sys::fs::replace(
        &dir.join(PID_FILE),
        std::process::id().to_string().as_bytes(),
        0o644,
    )
    .map_err(|e| internal("write shim.pid", e))?;
    steps.mark("pid_file");
    let sock = dir.join(SOCKET_NAME);
    let _ = fs::remove_file(&sock);
    let listener =
        std::os::unix::net::UnixListener::bind(&sock).map_err(|e| internal("bind shim.sock", e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| internal("shim.sock", e))?;
    steps.mark("socket");
    let result = create(opts, layout, listener, &mut steps);
    if result.is_err() {
        let _ = fs::remove_file(&sock);
    }
    result
}

fn create(
    opts: &berth_shim::StartOptions,
    layout: Layout,
    listener: std::os::unix::net::UnixListener,
    steps: &mut Steps,
) -> Result<Monitor, Failure> {
    let config = opts.bundle.join("config.json");
    let mut spec =
        Spec::load(&config).map_err(|e| internal(&format!("load {}", config.display()), e))?;
    steps.mark("spec_load");
    let cgroups_path = fix_spec(&mut spec, &opts.id, &layout, opts.runtime.is_none());
    spec.save(&config)
        .map_err(|e| internal("save config.json", e))?;
    steps.mark("spec_save");
    let base_process = spec
        .process()
        .clone()
        .ok_or_else(|| fail("spec has no process"))?;
    let tty = base_process.terminal().unwrap_or(false);

    let log = match &opts.log {
        Some(l) => Some(LogWriter::open(l.clone()).map_err(|e| internal("open log", e))?),
        None => None,
    };
    steps.mark("log_open");
    let console = opts.dir.join("console.sock");
    let (child, mut held, console_listener) = if tty {
        let l = stdio::console_listener(&console).map_err(|e| internal("console socket", e))?;
        (ChildStdio::Console(console.clone()), None, Some(l))
    } else {
        let (c, h) = stdio::pipes(opts.open_stdin).map_err(|e| internal("pipes", e))?;
        (c, Some(h), None)
    };

    sys::set_not_dumpable().map_err(|e| internal("PR_SET_DUMPABLE", e))?;
    let mask = SigSet::from(Signal::SIGCHLD);
    mask.thread_block()
        .map_err(|e| internal("block SIGCHLD", e))?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| internal("signalfd", e))?;
    steps.mark("stdio");

    let root = opts.dir.join("runtime");
    let created = match &opts.runtime {
        None => {
            container::create(&opts.id, &root, &opts.bundle, child).map(|c| Backend::Embedded {
                container: c,
                root: root.clone(),
            })
        }
        Some(rt) => {
            let cli = OciCli::new(rt, &opts.id, &opts.dir, &root);
            let stderr = held.as_ref().and_then(|h| h.outputs.get(1));
            cli.create(&opts.bundle, child, stderr)
                .map(|init| Backend::External { cli, init })
        }
    };
    steps.mark("runtime_create");
    let mut c = match created {
        Ok(c) => c,
        Err(msg) => {
            let cleanup = match &opts.runtime {
                None => container::delete(&root, &opts.id),
                Some(rt) => OciCli::new(rt, &opts.id, &opts.dir, &root).delete(),
            };
            if let Err(e) = cleanup {
                tracing::warn!(error = %e, "cleanup after failed create");
            }
            let _ = fs::remove_dir_all(&root);
            let _ = fs::remove_file(&console);
            return Err(fail(msg));
        }
    };
    let pid = c
        .init_pid()
        .ok_or_else(|| fail("no init pid after create"))?;
    let undo = |c: &mut Backend, f: Failure| {
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        let _ = waitpid(Some(pid), None);
        if let Err(e) = c.delete() {
            tracing::warn!(error = %e, "cleanup after failed start");
        }
        let _ = fs::remove_dir_all(&root);
        let _ = fs::remove_file(&console);
        f
    };
    let pidfd = match sys::pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) => return Err(undo(&mut c, internal("pidfd_open", e))),
    };
    if let Some(l) = console_listener {
        let _ = fs::remove_file(&console);
        match stdio::receive_pty(&l, opts.open_stdin) {
            Ok(h) => held = Some(h),
            Err(e) => return Err(undo(&mut c, internal("receive pty", e))),
        }
    }
    steps.mark("pidfd_pty");
    let held = held.expect("pipes or pty");
    let mut status = Status::Created;
    let mut started_at = None;
    if !opts.defer_start {
        if let Err(msg) = container::start(&mut c) {
            return Err(undo(&mut c, fail(msg)));
        }
        status = Status::Running;
        started_at = Some(rfc3339_nano(SystemTime::now()));
    }
    let init = Proc::new(pid, Some(pidfd), tty, held);
    Ok(Monitor {
        opts: opts.clone(),
        layout,
        cgroups_path,
        root,
        listener,
        sigfd,
        container: c,
        base_process,
        log,
        status,
        started_at,
        init,
        execs: Vec::new(),
        exec_count: 0,
        pending: Vec::new(),
        orphan_exits: Vec::new(),
        execs_pruned_at: std::time::Instant::now(),
        op: None,
        thaw_after_op: false,
        joined: None,
        conns: Vec::new(),
        drain_deadline: None,
        read_buf: Vec::new(),
    })
}

/// Always a cgroups path (else libcontainer makes `:youki:<id>` directories, and the
/// monitor could not find the container's cgroup for OOM and `kill --all`), and for the
/// embedded runtime on v1 the cgroup mount replaced (see
/// [`cgroups::replace_cgroup_mount`]); runc mounts a read-only cgroup mount itself.
fn fix_spec(spec: &mut Spec, id: &str, layout: &Layout, embedded: bool) -> String {
    let mut linux = spec.linux().clone().unwrap_or_default();
    let path = match linux.cgroups_path() {
        Some(p) => p.to_string_lossy().into_owned(),
        None => {
            let p = format!("/berth/{id}");
            linux.set_cgroups_path(Some(p.clone().into()));
            p
        }
    };
    spec.set_linux(Some(linux));
    if embedded {
        cgroups::replace_cgroup_mount(spec, layout, &path);
    }
    path
}

/// Builds the OCI process of an exec from the container's own (`docker exec` inherits the
/// container's capabilities, rlimits, no-new-privileges; `env` adds to its environment).
pub fn exec_process(base: &Process, p: &ExecProcess) -> Result<Process, String> {
    if p.args.is_empty() {
        return Err("exec needs a command".into());
    }
    let mut proc_ = base.clone();
    if p.privileged {
        // moby `daemon/exec_linux.go`: bounding, permitted and effective get every
        // capability; inheritable and ambient stay the container's.
        if p.capabilities.is_empty() {
            return Err("privileged exec needs the capability list".into());
        }
        let held = held_capabilities();
        let mut caps = Capabilities::new();
        for c in &p.capabilities {
            let cap = c
                .trim_start_matches("CAP_")
                .parse::<Capability>()
                .map_err(|_| format!("unknown capability: {c:?}"))?;
            if held.as_ref().is_none_or(|h| h.iter().any(|x| x == c)) {
                caps.insert(cap);
            }
        }
        let mut set = base.capabilities().clone().unwrap_or_default();
        set.set_bounding(Some(caps.clone()));
        set.set_permitted(Some(caps.clone()));
        set.set_effective(Some(caps));
        proc_.set_capabilities(Some(set));
    }
    proc_.set_args(Some(p.args.clone()));
    let mut env: Vec<String> = base.env().clone().unwrap_or_default();
    for kv in &p.env {
        let key = kv.split('=').next().unwrap_or("");
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    proc_.set_env(Some(env));
    if let Some(cwd) = &p.cwd {
        if !cwd.starts_with('/') {
            return Err(format!("exec working directory must be absolute: {cwd}"));
        }
        proc_.set_cwd(cwd.into());
    }
    if p.uid.is_some() || p.gid.is_some() || !p.additional_gids.is_empty() {
        let user = UserBuilder::default()
            .uid(p.uid.unwrap_or(base.user().uid()))
            .gid(p.gid.unwrap_or(base.user().gid()))
            .additional_gids(p.additional_gids.clone())
            .build()
            .map_err(|e| e.to_string())?;
        proc_.set_user(user);
    }
    proc_.set_terminal(Some(p.tty));
    proc_.set_console_size(None);
    Ok(proc_)
}

/// The capabilities in `CapBnd` of a `/proc/<pid>/status` text.
fn bounding_set(status: &str) -> Option<Vec<&'static str>> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapBnd:"))?;
    let bits = u64::from_str_radix(hex.trim(), 16).ok()?;
    Some(
        berth_shim::ALL_CAPS
            .iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect(),
    )
}

/// What this monitor may hand out: a privileged exec gets every capability the host lets
/// us hold (asking for more makes `capset` fail; sandboxes without `CAP_SYS_RESOURCE`).
fn held_capabilities() -> Option<Vec<&'static str>> {
    bounding_set(&fs::read_to_string("/proc/self/status").ok()?)
}

/// How an exec's start went.
pub enum ExecStart {
    /// The process runs.
    Started(Proc),
    /// The external runtime's command that starts it runs (see [`super::pending`]).
    Pending(PendingExec),
}

/// Starts an exec process in the running container.
pub fn exec(m: &Monitor, exec_id: &str, p: &ExecProcess) -> Result<ExecStart, String> {
    let process = exec_process(&m.base_process, p)?;
    let file = m.opts.dir.join(format!("exec-{exec_id}.json"));
    // Short: a unix socket path must fit in 108 bytes; the count is unique here.
    let console = m.opts.dir.join(format!("e{}.sock", m.exec_count));
    let res = (|| {
        fs::write(
            &file,
            serde_json::to_vec(&process).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let (child, held, listener) = if p.tty {
            let l = stdio::console_listener(&console).map_err(|e| e.to_string())?;
            (ChildStdio::Console(console.clone()), None, Some(l))
        } else {
            let (c, h) = stdio::pipes(p.stdin).map_err(|e| e.to_string())?;
            (c, Some(h), None)
        };
        match m
            .container
            .exec(&m.opts.id, &file, child, &m.exec_count.to_string())?
        {
            ExecStarted::Now(pid) => Ok(ExecStart::Started(exec_started(
                pid,
                None,
                p.tty,
                p.stdin,
                held,
                listener.as_ref(),
            )?)),
            ExecStarted::Pending(command) => Ok(ExecStart::Pending(PendingExec {
                exec_id: exec_id.to_string(),
                deadline: command.deadline,
                command,
                timed_out: false,
                status: None,
                tty: p.tty,
                stdin: p.stdin,
                held,
                listener,
                files: vec![file.clone(), console.clone()],
            })),
        }
    })();
    if !matches!(res, Ok(ExecStart::Pending(_))) {
        let _ = fs::remove_file(&file);
        let _ = fs::remove_file(&console);
    }
    res
}

/// The started exec's record: a pidfd on `pid`, and its stdio (the pipes we kept, or the
/// pty master the runtime sent to `listener`). `exited`: the process already ended and was
/// reaped (an external runtime's exec can end before its command does), so no pidfd can
/// be had and its exit is known.
pub fn exec_started(
    pid: Pid,
    exited: Option<(i32, Option<i32>)>,
    tty: bool,
    open_stdin: bool,
    held: Option<Held>,
    listener: Option<&UnixListener>,
) -> Result<Proc, String> {
    let pidfd = match exited {
        Some(_) => None,
        None => Some(sys::pidfd_open(pid).map_err(|e| e.to_string())?),
    };
    let held = match (held, listener) {
        (Some(h), _) => h,
        (None, Some(l)) => stdio::receive_pty(l, open_stdin).map_err(|e| e.to_string())?,
        (None, None) => return Err("exec without stdio".into()),
    };
    let mut proc_ = Proc::new(pid, pidfd, tty, held);
    if let Some(exit) = exited {
        proc_.exit = Some(exit);
        proc_.finished_at = Some(std::time::SystemTime::now());
        proc_.stdin = None;
    }
    Ok(proc_)
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::ProcessBuilder;

    use super::*;

    fn base() -> Process {
        ProcessBuilder::default()
            .args(vec!["sh".to_string()])
            .env(vec!["PATH=/bin".to_string(), "A=1".to_string()])
            .cwd("/")
            .user(UserBuilder::default().uid(5u32).gid(6u32).build().unwrap())
            .build()
            .unwrap()
    }

    #[test]
    fn exec_rejects_bad_input() {
        let b = base();
        assert!(exec_process(&b, &ExecProcess::default()).is_err());
        let p = ExecProcess {
            args: vec!["x".into()],
            privileged: true,
            ..Default::default()
        };
        assert!(exec_process(&b, &p).is_err(), "privileged without the list");
        let p = ExecProcess {
            args: vec!["x".into()],
            privileged: true,
            capabilities: vec!["CAP_NOPE".into()],
            ..Default::default()
        };
        assert!(exec_process(&b, &p).is_err(), "unknown capability");
        let p = ExecProcess {
            args: vec!["x".into()],
            cwd: Some("rel".into()),
            ..Default::default()
        };
        assert!(exec_process(&b, &p).is_err());
    }

    #[test]
    fn bounding_set_names() {
        let s = "Name:\tx\nCapBnd:\t000001fffeffffff\n";
        let caps = bounding_set(s).unwrap();
        assert_eq!(caps.len(), 40);
        assert!(!caps.contains(&"CAP_SYS_RESOURCE"));
        assert!(caps.contains(&"CAP_CHECKPOINT_RESTORE"));
        assert_eq!(
            bounding_set("CapBnd:\t0000000000000003\n").unwrap(),
            ["CAP_CHOWN", "CAP_DAC_OVERRIDE"]
        );
        assert!(bounding_set("nothing").is_none());
    }

    #[test]
    fn exec_inherits_and_overrides() {
        let b = base();
        let p = ExecProcess {
            args: vec!["id".into()],
            env: vec!["A=2".into(), "B=3".into()],
            gid: Some(7),
            tty: true,
            ..Default::default()
        };
        let got = exec_process(&b, &p).unwrap();
        assert_eq!(got.args().as_ref().unwrap(), &vec!["id".to_string()]);
        assert_eq!(
            got.env().as_ref().unwrap(),
            &vec!["PATH=/bin", "A=2", "B=3"]
        );
        assert_eq!((got.user().uid(), got.user().gid()), (5, 7));
        assert_eq!(got.terminal(), Some(true));
        let plain = exec_process(
            &b,
            &ExecProcess {
                args: vec!["id".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((plain.user().uid(), plain.user().gid()), (5, 6));
        assert_eq!(plain.capabilities(), b.capabilities());
        let privileged = exec_process(
            &b,
            &ExecProcess {
                args: vec!["id".into()],
                privileged: true,
                capabilities: vec!["CAP_SYS_ADMIN".into(), "CAP_CHOWN".into()],
                ..Default::default()
            },
        )
        .unwrap();
        let caps = privileged.capabilities().clone().unwrap();
        let eff = caps.effective().clone().unwrap();
        assert!(eff.contains(&Capability::SysAdmin) && eff.len() == 2);
        assert_eq!(caps.bounding(), caps.permitted());
    }
}
