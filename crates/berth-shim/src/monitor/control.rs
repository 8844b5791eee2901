//! Requests on the control socket: each line a client sends in [`Mode::Control`] is one
//! [`Request`], answered at once or, for waits and runtime commands, once the event
//! comes; an attach turns the connection into the process's streams.

use std::io::{self, Read};
use std::os::fd::AsFd;

use berth_shim::{ErrorKind, Request, Response, Status};

use super::conn::{Mode, LINE_MAX};
use super::container::Op;
use super::logwriter::LogWriter;
use super::process::{Target, CLIENT_BUFFER_MAX};
use super::setup::{self, ExecStart};
use super::state::Monitor;
use super::sys;

fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
    Response::Error {
        kind,
        message: message.into(),
    }
}
impl Monitor {
    pub fn conn_readable(&mut self, i: usize) {
        let mut buf = [0u8; 16 * 1024];
        let res = self.conns[i].sock.read(&mut buf);
        match res {
            Ok(0) => self.conn_eof(i),
            Ok(n) => self.conn_input(i, &buf[..n]),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => self.conns[i].dead = true,
        }
    }

    fn conn_eof(&mut self, i: usize) {
        let c = &mut self.conns[i];
        c.read_closed = true;
        match c.mode {
            Mode::Control => c.close_when_flushed = true,
            Mode::Wait | Mode::ExecWait(_) | Mode::ExecPending { .. } | Mode::OpPending => {}
            Mode::Attach {
                target,
                stdin: true,
                ..
            } => {
                // moby `container/stream/attach.go`: without a tty, the client's end of
                // input closes the container's stdin when StdinOnce, and an exec's always.
                // With a tty it never does: that attach ends instead and the process keeps
                // its terminal, so that a detach (ctrl-p ctrl-q, caught by the client or
                // the daemon, which then drops the connection) leaves it attachable.
                // Without an open stdin the client's input means nothing (moby drops it).
                let p = self.proc_(target);
                if p.tty && p.stdin.is_some() {
                    let c = &mut self.conns[i];
                    c.mode = Mode::Control;
                    c.close_when_flushed = true;
                } else if target != Target::Init || self.opts.stdin_once {
                    self.proc_mut(target).close_stdin();
                }
            }
            Mode::Attach { .. } => {}
        }
    }

    pub fn conn_input(&mut self, i: usize, data: &[u8]) {
        match self.conns[i].mode {
            Mode::Attach {
                target,
                stdin: true,
                ..
            } => {
                let p = self.proc_mut(target);
                if p.stdin.is_some() {
                    p.stdin_buf.extend_from_slice(data);
                }
                return;
            }
            Mode::Attach { .. } | Mode::Wait | Mode::ExecWait(_) => return,
            Mode::ExecPending { .. } | Mode::OpPending => {
                // Read only on a hang-up (not polled for input meanwhile): bounded anyway.
                let c = &mut self.conns[i];
                if c.inbuf.len() + data.len() <= CLIENT_BUFFER_MAX {
                    c.inbuf.extend_from_slice(data);
                }
                return;
            }
            Mode::Control => self.conns[i].inbuf.extend_from_slice(data),
        }
        loop {
            let c = &mut self.conns[i];
            if !matches!(c.mode, Mode::Control) {
                let rest = std::mem::take(&mut c.inbuf);
                if !rest.is_empty() {
                    self.conn_input(i, &rest);
                }
                return;
            }
            let Some(pos) = c.inbuf.iter().position(|&b| b == b'\n') else {
                if c.inbuf.len() > LINE_MAX {
                    c.send(&error(ErrorKind::InvalidArgument, "request line too long"));
                    c.close_when_flushed = true;
                    c.inbuf.clear();
                }
                return;
            };
            let line: Vec<u8> = c.inbuf.drain(..=pos).collect();
            let resp = match serde_json::from_slice::<Request>(&line) {
                Ok(req) => self.request(i, req),
                Err(e) => Some(error(
                    ErrorKind::InvalidArgument,
                    format!("bad request: {e}"),
                )),
            };
            if let Some(r) = resp {
                self.conns[i].send(&r);
            }
        }
    }

    fn resize(&mut self, t: Target, width: u16, height: u16) -> Response {
        match &self.proc_(t).pty {
            Some(pty) => match sys::set_winsize(pty.as_fd(), width, height) {
                Ok(()) => Response::Ok,
                Err(e) => error(ErrorKind::Internal, format!("resize: {e}")),
            },
            None => error(ErrorKind::InvalidArgument, "the process has no tty"),
        }
    }

    /// Answers one request; `None` when the answer comes later (`Wait`).
    fn request(&mut self, i: usize, req: Request) -> Option<Response> {
        let running = self.init.exit.is_none();
        Some(match req {
            Request::State => Response::State(self.state()),
            Request::Start => {
                if self.status != Status::Created || !running {
                    error(ErrorKind::Conflict, "container already started")
                } else {
                    return self.begin_op(Op::Start, Some(i));
                }
            }
            Request::Kill { signal, all } => {
                if !(1..=64).contains(&signal) {
                    error(
                        ErrorKind::InvalidArgument,
                        format!("invalid signal: {signal}"),
                    )
                } else if !running {
                    error(
                        ErrorKind::NotRunning,
                        format!("container {} is not running", self.opts.id),
                    )
                } else {
                    if all {
                        for pid in self.layout.procs(&self.cgroups_path) {
                            let _ = nix::sys::signal::kill(
                                nix::unistd::Pid::from_raw(pid),
                                nix::sys::signal::Signal::try_from(signal).ok(),
                            );
                        }
                    }
                    let Some(pidfd) = self.init.pidfd.as_ref() else {
                        return Some(error(ErrorKind::NotRunning, "container is not running"));
                    };
                    match sys::pidfd_send_signal(pidfd.as_fd(), signal) {
                        Ok(()) => {
                            // A frozen process acts on a signal only once thawed; moby
                            // (`daemon/kill.go`) unpauses after SIGKILL or the stop signal.
                            let pausing = self.op.as_ref().is_some_and(|p| p.op == Op::Pause);
                            if (self.status == Status::Paused || pausing)
                                && (all || signal == libc::SIGKILL || signal == libc::SIGTERM)
                            {
                                self.thaw_after_kill();
                            }
                            Response::Ok
                        }
                        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => error(
                            ErrorKind::NotRunning,
                            format!("container {} is not running", self.opts.id),
                        ),
                        Err(e) => error(ErrorKind::Internal, format!("kill: {e}")),
                    }
                }
            }
            Request::Wait => {
                self.conns[i].mode = Mode::Wait;
                return None;
            }
            Request::Attach {
                stdin,
                stdout,
                stderr,
            } => {
                self.conns[i].mode = Mode::Attach {
                    target: Target::Init,
                    stdin,
                    stdout,
                    stderr,
                };
                if self.init.outputs.is_empty() {
                    self.conns[i].close_when_flushed = true;
                }
                Response::Ok
            }
            Request::Resize { width, height } => self.resize(Target::Init, width, height),
            Request::CloseStdin => {
                self.init.close_stdin();
                Response::Ok
            }
            Request::Exec {
                exec_id,
                process,
                attach,
            } => {
                if running && self.status == Status::Paused {
                    return Some(error(
                        ErrorKind::Conflict,
                        format!(
                            "Container {} is paused, unpause the container before exec",
                            self.opts.id
                        ),
                    ));
                }
                if !running || self.status != Status::Running {
                    return Some(error(
                        ErrorKind::NotRunning,
                        format!("container {} is not running", self.opts.id),
                    ));
                }
                if exec_id.is_empty()
                    || exec_id.len() > 128
                    || !exec_id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                {
                    return Some(error(
                        ErrorKind::InvalidArgument,
                        format!("invalid exec id: {exec_id:?}"),
                    ));
                }
                if self.find_exec(&exec_id).is_some()
                    || self.pending.iter().any(|p| p.exec_id == exec_id)
                {
                    return Some(error(ErrorKind::Conflict, format!("exec {exec_id} exists")));
                }
                let res = setup::exec(self, &exec_id, &process);
                self.exec_count += 1;
                match res {
                    Ok(ExecStart::Pending(p)) => {
                        self.pending.push(p);
                        self.conns[i].mode = Mode::ExecPending { exec_id, attach };
                        return None;
                    }
                    Ok(ExecStart::Started(mut p)) => {
                        p.exec_id = exec_id;
                        let pid = p.pid.as_raw();
                        self.execs.push(p);
                        if attach {
                            let target = Target::Exec(self.execs.len() - 1);
                            self.conns[i].mode = Mode::Attach {
                                target,
                                stdin: process.stdin,
                                stdout: true,
                                stderr: true,
                            };
                        }
                        Response::ExecStarted { pid }
                    }
                    Err(e) => error(ErrorKind::Internal, e),
                }
            }
            Request::ExecState { exec_id } => match self.find_exec(&exec_id) {
                Some(x) => Response::Exec(self.exec_state(x)),
                None => error(ErrorKind::NotFound, format!("no such exec: {exec_id}")),
            },
            Request::ExecWait { exec_id } => match self.find_exec(&exec_id) {
                Some(x) if self.execs[x].exit.is_some() => Response::Exec(self.exec_state(x)),
                Some(x) => {
                    self.conns[i].mode = Mode::ExecWait(x);
                    return None;
                }
                None => error(ErrorKind::NotFound, format!("no such exec: {exec_id}")),
            },
            Request::ExecResize {
                exec_id,
                width,
                height,
            } => match self.find_exec(&exec_id) {
                Some(x) => self.resize(Target::Exec(x), width, height),
                None => error(ErrorKind::NotFound, format!("no such exec: {exec_id}")),
            },
            Request::Pause => {
                if !running || self.status == Status::Created {
                    error(
                        ErrorKind::NotRunning,
                        format!("Container {} is not running", self.opts.id),
                    )
                } else if self.status == Status::Paused {
                    error(
                        ErrorKind::Conflict,
                        format!("Container {} is already paused", self.opts.id),
                    )
                } else {
                    return self.begin_op(Op::Pause, Some(i));
                }
            }
            Request::ReopenLog => {
                if !running {
                    error(
                        ErrorKind::NotRunning,
                        format!("container {} is not running", self.opts.id),
                    )
                } else {
                    match self.log.as_mut().map(LogWriter::reopen) {
                        Some(Ok(true)) => Response::Ok,
                        Some(Ok(false)) | None => error(
                            ErrorKind::InvalidArgument,
                            "the container's log driver writes no file to reopen",
                        ),
                        Some(Err(e)) => {
                            error(ErrorKind::Internal, format!("cannot reopen the log: {e}"))
                        }
                    }
                }
            }
            Request::Resume => {
                if !running {
                    error(
                        ErrorKind::NotRunning,
                        format!("Container {} is not running", self.opts.id),
                    )
                } else if self.status != Status::Paused {
                    error(
                        ErrorKind::Conflict,
                        format!("Container {} is not paused", self.opts.id),
                    )
                } else {
                    return self.begin_op(Op::Resume, Some(i));
                }
            }
        })
    }
}
