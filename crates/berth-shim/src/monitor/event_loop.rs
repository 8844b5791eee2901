//! The monitor's `poll(2)` loop: container output to the json log and attached clients,
//! stdin from clients to the container, the control socket, reaping through a signalfd,
//! and the end: exit record, cleanup, last answers.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use berth_shim::timefmt::rfc3339_nano;
use berth_shim::{
    frame_header, ExitRecord, Response, StartOptions, Status, Stream, DRAIN_TIMEOUT_MS, EXIT_FILE,
    SOCKET_NAME,
};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::Process;

use super::cgroups::{Joined, Layout};
use super::conn::{Conn, Mode};
use super::container::{Backend, Op};
use super::exec_prune;
use super::logwriter::LogWriter;
use super::pending::{PendingExec, PendingOp};
use super::stdio::Held;
use super::write_atomic;

/// Past this many buffered bytes for a client, the process's output is not read until
/// the client catches up (a slow attached client slows the container, as in Docker).
pub const CLIENT_BUFFER_MAX: usize = 256 * 1024;
const READ_CHUNK: usize = 64 * 1024;

/// Which process a stream belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Init,
    Exec(usize),
}

/// A process we hold the stdio of: init or an exec.
/// How long the pty's slave side stays open after its process exits (see `pty_peer`).
const PTY_LINGER: Duration = Duration::from_millis(30);

pub struct Proc {
    pub pid: Pid,
    /// Dropped once the process is reaped (an exec record outlives its descriptors).
    pub pidfd: Option<OwnedFd>,
    pub tty: bool,
    pub stdin: Option<File>,
    pub stdin_buf: Vec<u8>,
    pub close_stdin_when_flushed: bool,
    /// Open read ends; `None` once at end of file.
    pub outputs: Vec<(Option<File>, Stream)>,
    pub pty: Option<File>,
    /// Our handle on the pty's slave side, dropped [`PTY_LINGER`] after the process exits
    /// so that its last output reaches the master before the hang-up.
    pub pty_peer: Option<OwnedFd>,
    /// (exit code as Docker reports it, killing signal).
    pub exit: Option<(i32, Option<i32>)>,
    pub finished_at: Option<SystemTime>,
    pub exec_id: String,
}

impl Proc {
    pub fn new(pid: Pid, pidfd: Option<OwnedFd>, tty: bool, held: Held) -> Proc {
        let streams = [Stream::Stdout, Stream::Stderr];
        let outputs = held
            .outputs
            .into_iter()
            .zip(streams)
            .map(|(f, s)| (Some(f), s))
            .collect();
        Proc {
            pid,
            pidfd,
            tty,
            stdin: held.stdin,
            stdin_buf: Vec::new(),
            close_stdin_when_flushed: false,
            outputs,
            pty: held.pty,
            pty_peer: held.pty_peer,
            exit: None,
            finished_at: None,
            exec_id: String::new(),
        }
    }

    /// Exited, and all its output read.
    pub fn done(&self) -> bool {
        self.exit.is_some() && self.outputs.is_empty()
    }

    pub fn close_stdin(&mut self) {
        if self.stdin_buf.is_empty() {
            self.stdin = None;
        } else {
            self.close_stdin_when_flushed = true;
        }
    }
}

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

#[derive(Clone, Copy)]
enum Slot {
    Signal,
    Listener,
    Output(Target, usize),
    Stdin(Target),
    Conn(usize),
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

    fn targets(&self) -> impl Iterator<Item = Target> {
        std::iter::once(Target::Init).chain((0..self.execs.len()).map(Target::Exec))
    }

    /// Runs until the container has exited and everything is written down.
    pub fn run(mut self) {
        super::sys::release_setup_memory();
        self.reap();
        while !self.drained() {
            if let Err(e) = self.poll_once() {
                tracing::error!(error = %e, "poll");
                std::thread::sleep(Duration::from_millis(10));
            }
            self.housekeeping();
        }
        self.finish();
    }

    /// Init has exited, its output is read (or the drain timed out), and no start is in
    /// progress (its answer says whether the container ran; it is bounded too).
    fn drained(&self) -> bool {
        self.init.exit.is_some()
            && !self.op.as_ref().is_some_and(|p| p.op == Op::Start)
            && (self.init.outputs.is_empty()
                || self.drain_deadline.is_some_and(|d| Instant::now() >= d))
    }

    fn paused(&self, t: Target) -> bool {
        self.conns
            .iter()
            .any(|c| c.attached_to(t) && c.outbuf.len() > CLIENT_BUFFER_MAX)
    }

    fn poll_once(&mut self) -> io::Result<()> {
        let mut slots = vec![Slot::Signal, Slot::Listener];
        for t in self.targets() {
            let p = self.proc_(t);
            if !self.paused(t) {
                for (i, (f, _)) in p.outputs.iter().enumerate() {
                    if f.is_some() {
                        slots.push(Slot::Output(t, i));
                    }
                }
            }
            if p.stdin.is_some() && !p.stdin_buf.is_empty() {
                slots.push(Slot::Stdin(t));
            }
        }
        for i in 0..self.conns.len() {
            slots.push(Slot::Conn(i));
        }
        let revents: Vec<PollFlags> = {
            let mut fds: Vec<PollFd<'_>> = slots
                .iter()
                .map(|s| match *s {
                    Slot::Signal => PollFd::new(self.sigfd.as_fd(), PollFlags::POLLIN),
                    Slot::Listener => PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
                    Slot::Output(t, i) => PollFd::new(
                        self.proc_(t).outputs[i]
                            .0
                            .as_ref()
                            .expect("open output")
                            .as_fd(),
                        PollFlags::POLLIN,
                    ),
                    Slot::Stdin(t) => PollFd::new(
                        self.proc_(t).stdin.as_ref().expect("open stdin").as_fd(),
                        PollFlags::POLLOUT,
                    ),
                    Slot::Conn(i) => {
                        let c = &self.conns[i];
                        let mut ev = PollFlags::empty();
                        if c.wants_input(self) {
                            ev |= PollFlags::POLLIN;
                        }
                        if !c.outbuf.is_empty() {
                            ev |= PollFlags::POLLOUT;
                        }
                        PollFd::new(c.sock.as_fd(), ev)
                    }
                })
                .collect();
            let lingering = self
                .targets()
                .any(|t| self.proc_(t).pty_peer.is_some() && self.proc_(t).exit.is_some());
            let deadline = match (self.drain_deadline, self.pending_deadline()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let timeout = match deadline {
                _ if lingering => PollTimeout::from(10u8),
                Some(d) => {
                    let ms = d
                        .saturating_duration_since(Instant::now())
                        .as_millis()
                        .clamp(1, 60_000);
                    PollTimeout::try_from(ms as i32).unwrap_or(PollTimeout::MAX)
                }
                None => PollTimeout::NONE,
            };
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(Errno::EINTR) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            fds.iter()
                .map(|f| f.revents().unwrap_or(PollFlags::empty()))
                .collect()
        };
        for (slot, ev) in slots.into_iter().zip(revents) {
            if !ev.is_empty() {
                self.handle(slot, ev);
            }
        }
        Ok(())
    }

    fn handle(&mut self, slot: Slot, ev: PollFlags) {
        match slot {
            Slot::Signal => {
                while let Ok(Some(_)) = self.sigfd.read_signal() {}
                self.reap();
            }
            Slot::Listener => self.accept(),
            Slot::Output(t, i) => self.read_output(t, i),
            Slot::Stdin(t) => self.write_stdin(t),
            Slot::Conn(i) => {
                if ev.contains(PollFlags::POLLOUT) {
                    self.conns[i].flush();
                }
                if ev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                    self.conn_readable(i);
                }
                // POLLHUP: the peer closed both ways, so nothing can reach it any more.
                // Once its input is read to the end the connection goes, even one kept
                // after its end of input (a wait): poll reports POLLHUP whatever it is
                // asked, and a kept connection would wake every poll for ever.
                let c = &mut self.conns[i];
                if ev.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) && c.read_closed {
                    c.dead = true;
                }
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((sock, _)) => {
                    if sock.set_nonblocking(true).is_ok() {
                        self.conns.push(Conn::new(sock));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!(error = %e, "accept");
                    return;
                }
            }
        }
    }

    fn read_output(&mut self, t: Target, i: usize) {
        let mut buf = std::mem::take(&mut self.read_buf);
        buf.resize(READ_CHUNK, 0);
        let p = self.proc_mut(t);
        let stream = p.outputs[i].1;
        let res = p.outputs[i].0.as_mut().expect("open output").read(&mut buf);
        match res {
            Ok(0) => p.outputs[i].0 = None,
            Ok(n) => self.dispatch_output(t, stream, &buf[..n]),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted => {}
            // A pty master reads EIO once the last slave is closed.
            Err(_) => p.outputs[i].0 = None,
        }
        self.read_buf = buf;
    }

    fn dispatch_output(&mut self, t: Target, stream: Stream, data: &[u8]) {
        if t == Target::Init {
            if let Some(log) = self.log.as_mut() {
                if let Err(e) = log.write(stream, data) {
                    tracing::warn!(error = %e, "log write");
                }
            }
        }
        let tty = self.proc_(t).tty;
        for c in self.conns.iter_mut() {
            if c.wants_stream(t, stream) {
                if !tty {
                    c.outbuf
                        .extend_from_slice(&frame_header(stream, data.len() as u32));
                }
                c.outbuf.extend_from_slice(data);
                c.flush();
            }
        }
    }

    fn write_stdin(&mut self, t: Target) {
        let p = self.proc_mut(t);
        let Some(f) = p.stdin.as_mut() else { return };
        match f.write(&p.stdin_buf) {
            Ok(n) => {
                p.stdin_buf.drain(..n);
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                // The container closed its stdin.
                p.stdin = None;
                p.stdin_buf.clear();
            }
        }
        if p.stdin_buf.is_empty() && p.close_stdin_when_flushed {
            p.stdin = None;
        }
    }

    /// Collects every child that exited: init, execs, orphans.
    fn reap(&mut self) {
        loop {
            let (pid, code, signal) = match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, code, None),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as i32, Some(sig as i32)),
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            };
            let now = SystemTime::now();
            if pid == self.init.pid {
                self.init.exit = Some((code, signal));
                self.init.finished_at = Some(now);
                self.status = Status::Stopped;
                self.drain_deadline =
                    Some(Instant::now() + Duration::from_millis(DRAIN_TIMEOUT_MS));
                self.init.stdin = None;
                // The container is gone: so is any chance of a pending command succeeding.
                for p in &self.pending {
                    p.kill();
                }
                // Not a start: the process may end before `<rt> start` does.
                if let Some(p) = self
                    .op
                    .as_ref()
                    .filter(|p| p.status.is_none() && p.op != Op::Start)
                {
                    p.command.kill();
                }
            } else if let Some(p) = self
                .execs
                .iter_mut()
                .find(|p| p.pid == pid && p.exit.is_none())
            {
                p.exit = Some((code, signal));
                p.finished_at = Some(now);
                p.stdin = None;
                p.pidfd = None;
            } else {
                self.reaped_other(pid, (code, signal));
            }
        }
    }

    fn housekeeping(&mut self) {
        self.settle_pending();
        self.settle_op();
        for t in self.targets().collect::<Vec<_>>() {
            let p = self.proc_mut(t);
            if p.pty_peer.is_some() && p.exit.is_some() && lingered(p.finished_at) {
                p.pty_peer = None;
            }
            p.outputs.retain(|(f, _)| f.is_some());
            if t != Target::Init && p.done() {
                p.pty = None;
                for c in self.conns.iter_mut().filter(|c| c.attached_to(t)) {
                    c.close_when_flushed = true;
                }
            }
        }
        for i in 0..self.conns.len() {
            if let Mode::ExecWait(x) = self.conns[i].mode {
                if self.execs[x].exit.is_some() {
                    let answer = Response::Exec(self.exec_state(x));
                    let c = &mut self.conns[i];
                    c.mode = Mode::Control;
                    c.send(&answer);
                    c.close_when_flushed = true;
                }
            }
        }
        for c in self.conns.iter_mut() {
            if c.close_when_flushed && c.outbuf.is_empty() {
                c.dead = true;
            }
        }
        self.conns.retain(|c| !c.dead);
        self.prune_execs();
    }

    /// Forgets finished exec records past what [`exec_prune`] keeps: looked at once the
    /// table is over its size, else once a minute (for their age).
    fn prune_execs(&mut self) {
        if self.execs.len() <= exec_prune::ENDED_KEPT
            && self.execs_pruned_at.elapsed() < Duration::from_secs(60)
        {
            return;
        }
        self.execs_pruned_at = Instant::now();
        let records: Vec<exec_prune::Record> = self
            .execs
            .iter()
            .enumerate()
            .map(|(x, p)| exec_prune::Record {
                done: p.done() && p.pty.is_none() && p.pty_peer.is_none() && p.stdin.is_none(),
                in_use: self.conns.iter().any(|c| c.uses_exec(x)),
                finished_at: p.finished_at,
            })
            .collect();
        let gone = exec_prune::to_forget(&records, SystemTime::now());
        if gone.is_empty() {
            return;
        }
        let map = exec_prune::remap(self.execs.len(), &gone);
        let mut x = 0;
        self.execs.retain(|_| {
            let keep = map.get(x).is_some_and(|m| m.is_some());
            x += 1;
            keep
        });
        for c in self.conns.iter_mut() {
            c.move_exec(&map);
        }
        tracing::debug!(forgot = gone.len(), kept = self.execs.len(), "exec records");
    }

    /// The exit record as it stands.
    fn exit_record(&self, oom_killed: bool) -> ExitRecord {
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

    /// Init exited and its output is drained: write everything down and answer.
    fn finish(mut self) {
        self.abandon_pending();
        if let Some(log) = self.log.as_mut() {
            if let Err(e) = log.flush() {
                tracing::warn!(error = %e, "log flush");
            }
        }
        let oom = self.layout.oom_killed(&self.cgroups_path);
        if let Err(e) = self.container.delete() {
            tracing::error!(error = %e, "delete container");
        }
        let _ = fs::remove_dir(&self.root);
        let record = self.exit_record(oom);
        let dir = self.opts.dir.clone();
        match serde_json::to_vec(&record) {
            Ok(bytes) => {
                if let Err(e) = write_atomic(&dir.join(EXIT_FILE), &bytes) {
                    tracing::error!(error = %e, "write exit.json");
                }
            }
            Err(e) => tracing::error!(error = %e, "encode exit.json"),
        }
        let answer = Response::Exit(record);
        for c in self.conns.iter_mut() {
            if matches!(c.mode, Mode::Wait) {
                c.send(&answer);
            }
            c.close_when_flushed = true;
        }
        self.flush_all(Duration::from_secs(1));
        if let Some(j) = self.joined.take() {
            j.leave();
        }
        let _ = fs::remove_file(dir.join(SOCKET_NAME));
    }

    fn flush_all(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            self.conns.retain(|c| !c.dead && !c.outbuf.is_empty());
            if self.conns.is_empty() || Instant::now() >= deadline {
                return;
            }
            let mut fds: Vec<PollFd<'_>> = self
                .conns
                .iter()
                .map(|c| PollFd::new(c.sock.as_fd(), PollFlags::POLLOUT))
                .collect();
            let _ = poll(&mut fds, PollTimeout::from(50u8));
            drop(fds);
            for c in self.conns.iter_mut() {
                c.flush();
            }
        }
    }
}

/// Whether [`PTY_LINGER`] has passed since `finished_at`.
fn lingered(finished_at: Option<SystemTime>) -> bool {
    finished_at
        .and_then(|f| SystemTime::now().duration_since(f).ok())
        .is_none_or(|d| d >= PTY_LINGER)
}
