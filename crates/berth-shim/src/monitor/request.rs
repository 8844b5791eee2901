//! What either backend is asked to do: the state changes ([`Op`]) and where a created
//! process's stdio goes ([`ChildStdio`]). Shared by `container` (libcontainer) and
//! `oci_cli` (an external runtime), so neither imports the other for them.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// Where the created process's stdio goes.
pub enum ChildStdio {
    /// Pipes (and `/dev/null` for a missing stdin).
    Pipes {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// A pty whose master libcontainer sends to this listening socket.
    Console(PathBuf),
}

/// A change of the container's state made by its runtime, one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Lets a created container's init exec its process.
    Start,
    /// Freezes every process of the container.
    Pause,
    Resume,
}

impl Op {
    /// The runtime's command for it.
    pub fn name(self) -> &'static str {
        match self {
            Op::Start => "start",
            Op::Pause => "pause",
            Op::Resume => "resume",
        }
    }
}
