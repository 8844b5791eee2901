//! The monitor's state ([`Monitor`]): the container, its processes, its clients and the
//! runtime commands in flight, with the read-only views of it. The loop
//! ([`super::event_loop`]), the control requests ([`super::control`]) and the settling of
//! runtime commands ([`super::settle`]) act on it; it depends on none of them.

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use berth_shim::timefmt::rfc3339_nano;
use berth_shim::{ExecState, ExitRecord, StartOptions, State, Status};
use nix::sys::signalfd::SignalFd;
use nix::unistd::Pid;
use oci_spec::runtime::Process;

use super::cgroups::{Joined, Layout};
use super::conn::Conn;
use super::container::Backend;
use super::logwriter::LogWriter;
use super::pending::{PendingExec, PendingOp};
use super::process::{Proc, Target};

pub struct Monitor {
    pub opts: StartOptions,
    pub layout: Layout,
    pub cgroups_path: String,
    /// The runtime's state root (libcontainer's, or runc's `--root`).
    pub root: PathBuf,
    pub listener: UnixListener,
    pub sigfd: SignalFd,
    pub container: Backend,
    /// The container's own process, the base of every exec.
    pub base_process: Process,
    pub log: Option<LogWriter>,
    pub status: Status,
    pub started_at: Option<String>,
    pub init: Proc,
    pub execs: Vec<Proc>,
    /// Execs started so far, for unique file names.
    pub exec_count: u64,
    /// Execs whose external runtime command has not ended yet.
    pub pending: Vec<PendingExec>,
    /// Recent exits of processes we did not know, while execs are pending: an exec's
    /// process may be reaped before its runtime command is (see [`super::pending`]).
    pub orphan_exits: Vec<(Pid, (i32, Option<i32>))>,
    /// The start, pause or resume whose external runtime command runs (one at a time).
    pub op: Option<PendingOp>,
    /// Thaw once the pause in progress is done: a kill came meanwhile.
    pub thaw_after_op: bool,
    /// When finished exec records were last looked at (see [`exec_prune`]).
    pub execs_pruned_at: Instant,
    pub conns: Vec<Conn>,
    pub drain_deadline: Option<Instant>,
    /// The shims' cgroup this monitor joined, left at the end.
    pub joined: Option<Joined>,
    /// Every read of output lands here: allocated (and zeroed) on the first output, then
    /// reused, so a chatty container costs no allocation per read.
    pub read_buf: Vec<u8>,
}

impl Monitor {
    pub fn init_pid(&self) -> i32 {
        self.init.pid.as_raw()
    }

    pub fn proc_mut(&mut self, t: Target) -> &mut Proc {
        match t {
            Target::Init => &mut self.init,
            Target::Exec(i) => &mut self.execs[i],
        }
    }

    pub fn proc_(&self, t: Target) -> &Proc {
        match t {
            Target::Init => &self.init,
            Target::Exec(i) => &self.execs[i],
        }
    }

    pub fn targets(&self) -> impl Iterator<Item = Target> {
        std::iter::once(Target::Init).chain((0..self.execs.len()).map(Target::Exec))
    }

    /// The exit record as it stands.
    pub fn exit_record(&self, oom_killed: bool) -> ExitRecord {
        let (exit_code, signal) = self.init.exit.unwrap_or((255, None));
        ExitRecord {
            exit_code,
            signal,
            oom_killed,
            started_at: self.started_at.clone(),
            finished_at: rfc3339_nano(self.init.finished_at.unwrap_or_else(SystemTime::now)),
            error: None,
        }
    }

    pub fn exit_state(&self) -> Option<ExitRecord> {
        self.init.exit.map(|_| self.exit_record(false))
    }
    pub fn state(&self) -> State {
        State {
            id: self.opts.id.clone(),
            status: self.status,
            pid: self.init.pid.as_raw(),
            shim_pid: std::process::id() as i32,
            tty: self.init.tty,
            started_at: self.started_at.clone(),
            exit: self.exit_state(),
            exit_notify: self.opts.exit_notify.is_some(),
        }
    }

    pub fn find_exec(&self, exec_id: &str) -> Option<usize> {
        self.execs.iter().position(|p| p.exec_id == exec_id)
    }

    /// Exec `x` as the daemon sees it.
    pub fn exec_state(&self, x: usize) -> ExecState {
        let p: &Proc = &self.execs[x];
        ExecState {
            exec_id: p.exec_id.clone(),
            pid: p.pid.as_raw(),
            running: p.exit.is_none(),
            exit_code: p.exit.map(|e| e.0),
        }
    }
}
