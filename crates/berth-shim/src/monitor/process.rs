//! The processes the monitor holds the stdio of (the container's init and its execs),
//! and how a stream names one ([`Target`]).

use std::fs::File;
use std::os::fd::OwnedFd;
use std::time::{Duration, SystemTime};

use berth_shim::Stream;
use nix::unistd::Pid;

use super::stdio::Held;

/// Past this many buffered bytes for a client, the process's output is not read until
/// the client catches up (a slow attached client slows the container, as in Docker).
pub const CLIENT_BUFFER_MAX: usize = 256 * 1024;
/// Which process a stream belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Init,
    Exec(usize),
}

/// How long the pty's slave side stays open after its process exits (see `pty_peer`).
const PTY_LINGER: Duration = Duration::from_millis(30);

/// A process we hold the stdio of: init or an exec.
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

/// Whether [`PTY_LINGER`] has passed since `finished_at`.
pub fn lingered(finished_at: Option<SystemTime>) -> bool {
    finished_at
        .and_then(|f| SystemTime::now().duration_since(f).ok())
        .is_none_or(|d| d >= PTY_LINGER)
}
