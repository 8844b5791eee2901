//! Execs through an external runtime whose `<rt> exec` command has not ended. The monitor
//! never waits for that command: runc opens the container's `/etc/passwd` itself, and a
//! container that makes it a FIFO blocks it for ever. The command is reaped like any
//! child; then the exec's process is recorded and its client answered. Past
//! [`EXEC_START_TIMEOUT`] the command's process group is killed and the exec fails; the
//! container's end kills whatever is still pending.

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_shim::{ErrorKind, Response};
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::conn::Mode;
use super::container::Backend;
use super::event_loop::{Monitor, Target};
use super::oci_cli::ExecCommand;
use super::stdio::Held;
use super::{setup, sys};

/// How long the runtime may take to start an exec's process.
pub const EXEC_START_TIMEOUT: Duration = Duration::from_secs(30);
/// At most this many exits of unknown processes are remembered.
const ORPHAN_EXITS_MAX: usize = 64;

/// An exec whose runtime command runs.
pub struct PendingExec {
    pub exec_id: String,
    pub command: ExecCommand,
    pub deadline: Instant,
    pub timed_out: bool,
    /// How the command ended (exit code as Docker reports it, signal), once reaped.
    pub status: Option<(i32, Option<i32>)>,
    pub tty: bool,
    pub stdin: bool,
    /// Our ends of the pipes, or the console socket the runtime sends the pty master to.
    pub held: Option<Held>,
    pub listener: Option<UnixListener>,
    /// The process JSON and the console socket, removed when done.
    pub files: Vec<PathBuf>,
}

impl PendingExec {
    /// Kills the runtime's command and what it forked: its process group, and its
    /// descendants (`runc init` makes a session of its own, but the command is their
    /// subreaper, see [`sys::subreaper_after_spawn`]), children first so that none is
    /// orphaned to us alive.
    pub fn kill(&self) {
        let pid = self.command.pid;
        for d in sys::descendants(pid).into_iter().rev() {
            let _ = kill(d, Signal::SIGKILL);
        }
        if let Err(e) = killpg(pid, Signal::SIGKILL) {
            tracing::debug!(error = %e, %pid, "kill exec command");
        }
    }
}

impl Drop for PendingExec {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

impl Monitor {
    /// A reaped child that is neither init nor a known exec: a pending exec's command
    /// (settled at once, so that its process is known before it can be reaped), or an
    /// orphan, remembered while execs are pending.
    pub fn reaped_other(&mut self, pid: Pid, exit: (i32, Option<i32>)) {
        if let Some(p) = self.pending.iter_mut().find(|p| p.command.pid == pid) {
            p.status = Some(exit);
            self.settle_pending();
        } else if !self.pending.is_empty() {
            if self.orphan_exits.len() >= ORPHAN_EXITS_MAX {
                self.orphan_exits.remove(0);
            }
            self.orphan_exits.push((pid, exit));
        }
    }

    /// The earliest deadline of a pending exec not yet killed.
    pub fn pending_deadline(&self) -> Option<Instant> {
        self.pending
            .iter()
            .filter(|p| !p.timed_out)
            .map(|p| p.deadline)
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

    /// Kills every pending exec's command (the container is gone), waits for them and
    /// fails their clients.
    pub fn abandon_pending(&mut self) {
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
                EXEC_START_TIMEOUT.as_secs()
            )),
            Backend::External { cli, .. } => {
                let status = match signal {
                    Some(s) => format!("signal: {s}"),
                    None => format!("exit status {code}"),
                };
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
