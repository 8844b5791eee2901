//! External runtime commands that run while the loop serves clients: execs whose
//! `<rt> exec` has not ended, and the one start, pause or resume ([`PendingOp`]) in
//! progress. The monitor never waits for such a command: runc opens the container's
//! `/etc/passwd` itself for an exec, and a container that makes it a FIFO blocks it for
//! ever; a runtime can hang in any step. The command is reaped like any child; then the
//! exec's process is recorded, or the container's status changes, and the client is
//! answered. Past its deadline ([`super::oci_cli::OciCli::timeout`]) the command's process
//! group and descendants are killed and the request fails naming the runtime and the
//! step. The container's end kills whatever is still pending but a start, which the loop
//! waits for (within its bound): the process may end before `<rt> start` does.
//!
//! One state change at a time: a start, pause or resume asked for while another runs is
//! refused at once ([`OP_BUSY`], a conflict) rather than queued, so that no request waits
//! behind a hung runtime for more than one deadline and the status never has two
//! changes in flight. Execs, kill, state, attach and the rest are served meanwhile.

use std::time::{Instant, SystemTime};

use berth_shim::timefmt::rfc3339_nano;
use berth_shim::{ErrorKind, Response, Status};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::conn::Mode;
use super::container::{Backend, Op, OpStarted};
use super::oci_cli;
use super::pending::{PendingExec, PendingOp, OP_BUSY};
use super::process::Target;
use super::setup;
use super::state::Monitor;

/// At most this many exits of unknown processes are remembered.
const ORPHAN_EXITS_MAX: usize = 64;

impl Monitor {
    /// A reaped child that is neither init nor a known exec: a pending exec's command
    /// (settled at once, so that its process is known before it can be reaped), or an
    /// orphan, remembered while execs are pending.
    pub fn reaped_other(&mut self, pid: Pid, exit: (i32, Option<i32>)) {
        if let Some(p) = self.op.as_mut().filter(|p| p.command.pid == pid) {
            p.status = Some(exit);
            self.settle_op();
        } else if let Some(p) = self.pending.iter_mut().find(|p| p.command.pid == pid) {
            p.status = Some(exit);
            self.settle_pending();
        } else if !self.pending.is_empty() {
            if self.orphan_exits.len() >= ORPHAN_EXITS_MAX {
                self.orphan_exits.remove(0);
            }
            self.orphan_exits.push((pid, exit));
        }
    }

    /// The earliest deadline of a pending command not yet killed.
    pub fn pending_deadline(&self) -> Option<Instant> {
        self.pending
            .iter()
            .filter(|p| !p.timed_out)
            .map(|p| p.deadline)
            .chain(
                self.op
                    .iter()
                    .filter(|p| !p.timed_out)
                    .map(|p| p.command.deadline),
            )
            .min()
    }

    /// Answers the execs whose command ended; kills those past their deadline (they are
    /// answered once reaped).
    pub fn settle_pending(&mut self) {
        let now = Instant::now();
        let mut x = 0;
        while x < self.pending.len() {
            let p = &mut self.pending[x];
            if p.status.is_none() {
                if !p.timed_out && now >= p.deadline {
                    tracing::warn!(exec_id = %p.exec_id, "the runtime did not start the exec in time; killing it");
                    p.timed_out = true;
                    p.kill();
                }
                x += 1;
                continue;
            }
            let p = self.pending.remove(x);
            self.pending_done(p);
        }
        if self.pending.is_empty() {
            self.orphan_exits.clear();
        }
    }

    /// Kills every pending command (the container is gone), waits for them and fails their
    /// clients.
    pub fn abandon_pending(&mut self) {
        if let Some(p) = self.op.as_mut().filter(|p| p.status.is_none()) {
            p.command.kill();
            // SIGKILLed: this returns at once.
            let _ = waitpid(p.command.pid, None);
            p.status = Some((137, Some(libc::SIGKILL)));
            self.thaw_after_op = false;
            self.settle_op();
        }
        for p in &self.pending {
            p.kill();
        }
        for mut p in std::mem::take(&mut self.pending) {
            if p.status.is_none() {
                // SIGKILLed: this returns at once.
                let _ = waitpid(p.command.pid, None);
                p.status = Some((137, Some(libc::SIGKILL)));
            }
            self.pending_done(p);
        }
    }

    fn pending_done(&mut self, mut p: PendingExec) {
        let (code, signal) = p.status.unwrap_or((255, None));
        let res = match &self.container {
            Backend::External { cli, .. } if p.timed_out => Err(format!(
                "{} exec did not start the process within {}s: killed",
                cli.name(),
                cli.timeout().as_secs()
            )),
            Backend::External { cli, .. } => {
                let status = oci_cli::status_text(code, signal);
                cli.exec_result(&p.command, code == 0 && signal.is_none(), &status)
                    .and_then(|pid| {
                        // The process may have ended, and been reaped, before its command.
                        let exited = self
                            .orphan_exits
                            .iter()
                            .position(|(o, _)| *o == pid)
                            .map(|o| self.orphan_exits.remove(o).1);
                        setup::exec_started(
                            pid,
                            exited,
                            p.tty,
                            p.stdin,
                            p.held.take(),
                            p.listener.as_ref(),
                        )
                    })
            }
            Backend::Embedded { .. } => Err("no external runtime".into()),
        };
        let conn = self.conns.iter().position(
            |c| matches!(&c.mode, Mode::ExecPending { exec_id, .. } if *exec_id == p.exec_id),
        );
        let attach = conn
            .is_some_and(|i| matches!(self.conns[i].mode, Mode::ExecPending { attach: true, .. }));
        let answer = match res {
            Ok(mut proc_) => {
                proc_.exec_id = std::mem::take(&mut p.exec_id);
                let pid = proc_.pid.as_raw();
                self.execs.push(proc_);
                Response::ExecStarted { pid }
            }
            Err(message) => {
                tracing::warn!(exec_id = %p.exec_id, error = %message, "exec did not start");
                Response::Error {
                    kind: ErrorKind::Internal,
                    message,
                }
            }
        };
        let Some(i) = conn else { return };
        let started = matches!(answer, Response::ExecStarted { .. });
        let c = &mut self.conns[i];
        c.mode = Mode::Control;
        c.send(&answer);
        if started && attach {
            let target = Target::Exec(self.execs.len() - 1);
            c.mode = Mode::Attach {
                target,
                stdin: p.stdin,
                stdout: true,
                stderr: true,
            };
            if c.read_closed && p.stdin {
                self.proc_mut(target).close_stdin();
            }
        }
        // What the client sent meanwhile: stdin, or further requests.
        let rest = std::mem::take(&mut self.conns[i].inbuf);
        self.conn_input(i, &rest);
    }
}

impl Monitor {
    /// Starts `op` for connection `conn` (none: the monitor's own, a thaw after a kill).
    /// The answer, or `None` when it comes once the runtime's command ends (the connection
    /// waits in [`Mode::OpPending`]).
    pub fn begin_op(&mut self, op: Op, conn: Option<usize>) -> Option<Response> {
        if let Some(p) = &self.op {
            let name = match &self.container {
                Backend::External { cli, .. } => cli.name(),
                Backend::Embedded { .. } => "runtime",
            };
            return Some(Response::Error {
                kind: ErrorKind::Conflict,
                message: format!("{OP_BUSY}: {name} {}", p.op.name()),
            });
        }
        match self.container.begin(op) {
            OpStarted::Done(res) => Some(self.op_done(op, res, SystemTime::now())),
            OpStarted::Pending(command) => {
                self.op = Some(PendingOp {
                    op,
                    command,
                    began: SystemTime::now(),
                    timed_out: false,
                    status: None,
                });
                if let Some(i) = conn {
                    self.conns[i].mode = Mode::OpPending;
                }
                None
            }
        }
    }

    /// Kills the pending op's command past its deadline (it is answered once reaped);
    /// answers it once its command ended.
    pub fn settle_op(&mut self) {
        let Some(p) = self.op.as_mut() else { return };
        if p.status.is_none() {
            if !p.timed_out && Instant::now() >= p.command.deadline {
                tracing::warn!(
                    op = p.op.name(),
                    "the runtime did not finish in time; killing it"
                );
                p.timed_out = true;
                p.command.kill();
            }
            return;
        }
        let Some(p) = self.op.take() else { return };
        let (code, signal) = p.status.unwrap_or((255, None));
        let res = match &self.container {
            Backend::External { cli, .. } if p.timed_out => Err(cli.timed_out(p.op.name())),
            Backend::External { cli, .. } => cli.op_result(
                p.op,
                &p.command,
                code == 0 && signal.is_none(),
                &oci_cli::status_text(code, signal),
            ),
            Backend::Embedded { .. } => Err("no external runtime".into()),
        };
        let answer = self.op_done(p.op, res, p.began);
        if let Some(i) = self
            .conns
            .iter()
            .position(|c| matches!(c.mode, Mode::OpPending))
        {
            let c = &mut self.conns[i];
            c.mode = Mode::Control;
            c.send(&answer);
            // What the client sent meanwhile.
            let rest = std::mem::take(&mut c.inbuf);
            self.conn_input(i, &rest);
        }
        if std::mem::take(&mut self.thaw_after_op)
            && self.status == Status::Paused
            && self.init.exit.is_none()
        {
            self.thaw_after_kill();
        }
    }

    /// Thaws the container after a kill that a frozen process would not act on; with a
    /// pause in progress, once it is done.
    pub fn thaw_after_kill(&mut self) {
        match self.op.as_ref().map(|p| p.op) {
            Some(Op::Pause) => self.thaw_after_op = true,
            Some(_) => {}
            None => {
                if let Some(Response::Error { message, .. }) = self.begin_op(Op::Resume, None) {
                    tracing::warn!(error = %message, "thaw after kill");
                }
            }
        }
    }

    /// The container's status after `op`, begun at `began`, ended with `res`; the answer
    /// to its client. A container that exited meanwhile stays stopped.
    fn op_done(&mut self, op: Op, res: Result<(), String>, began: SystemTime) -> Response {
        match res {
            Ok(()) => {
                let running = self.init.exit.is_none();
                match op {
                    Op::Start => {
                        self.started_at = Some(rfc3339_nano(began));
                        if running {
                            self.status = Status::Running;
                        }
                        super::sys::release_setup_memory();
                    }
                    Op::Pause if running => self.status = Status::Paused,
                    Op::Resume if running && self.status == Status::Paused => {
                        self.status = Status::Running
                    }
                    Op::Pause | Op::Resume => {}
                }
                Response::Ok
            }
            Err(e) => {
                tracing::warn!(op = op.name(), error = %e, "runtime command failed");
                let message = match op {
                    // Its words decide Docker's exit code (see `start_failure_exit_code`).
                    Op::Start => e,
                    Op::Pause | Op::Resume => format!("{}: {e}", op.name()),
                };
                Response::Error {
                    kind: ErrorKind::Internal,
                    message,
                }
            }
        }
    }
}
