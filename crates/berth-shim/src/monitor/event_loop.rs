//! The monitor's `poll(2)` loop: container output to the json log and attached clients,
//! stdin from clients to the container, the control socket, reaping through a signalfd,
//! and the end: exit record, cleanup, last answers.

use std::fs::{self};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant, SystemTime};

use berth_shim::{
    frame_header, Response, Status, Stream, DRAIN_TIMEOUT_MS, EXIT_FILE, SOCKET_NAME,
};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::conn::{Conn, Mode};
use super::container::Op;
use super::exec_prune;
use super::process::{lingered, Target, CLIENT_BUFFER_MAX};
use super::state::Monitor;
use super::sys;

const READ_CHUNK: usize = 64 * 1024;

#[derive(Clone, Copy)]
enum Slot {
    Signal,
    Listener,
    Output(Target, usize),
    Stdin(Target),
    Conn(usize),
}

impl Monitor {
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
                        if c.wants_input(|t| self.proc_(t).stdin_buf.len() >= CLIENT_BUFFER_MAX) {
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
                if let Err(e) = sys::write_record(&dir.join(EXIT_FILE), &bytes) {
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
        if let Some(path) = &self.opts.exit_notify {
            notify_exit(path, &self.opts.id);
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

/// Tells the daemon, on its exit-notification socket, that the exit record of container
/// `id` is written. A daemon that is gone (no socket, nobody bound) hears nothing and
/// reads the record when it comes back; a full queue is waited on for a bound time (the
/// daemon also finds the record on its periodic sweep).
fn notify_exit(path: &std::path::Path, id: &str) {
    let sent = std::os::unix::net::UnixDatagram::unbound().and_then(|sock| {
        sock.set_write_timeout(Some(Duration::from_secs(2)))?;
        sock.send_to(id.as_bytes(), path)
    });
    match sent {
        Ok(_) => tracing::debug!("exit notified"),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            tracing::debug!(error = %e, "no daemon to notify of the exit")
        }
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "cannot notify the daemon of the exit")
        }
    }
}
