//! External runtime commands in flight ([`PendingExec`], [`PendingOp`]); how they are
//! settled, and why the loop never waits for one, is [`super::settle`]'s.

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use super::container::Op;
use super::oci_cli::{self, ExecCommand, RuntimeCommand};
use super::stdio::Held;

/// The refusal of a state change while another one runs.
pub const OP_BUSY: &str = "another runtime command is in progress";

/// A start, pause or resume whose runtime command runs.
pub struct PendingOp {
    pub op: Op,
    pub command: RuntimeCommand,
    /// When it began: a started container's start time (its process may end before the
    /// command does).
    pub began: SystemTime,
    pub timed_out: bool,
    /// How the command ended, once reaped.
    pub status: Option<(i32, Option<i32>)>,
}

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
    /// Kills the runtime's command and what it forked (see [`oci_cli::kill_tree`]).
    pub fn kill(&self) {
        oci_cli::kill_tree(self.command.pid);
    }
}

impl Drop for PendingExec {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}
